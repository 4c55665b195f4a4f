/**
 * A federated regression on the vendored diabetes data (datasets/diabetes, Efron et al. 2004), in
 * process: the table loads under its schema (a number label), three sites standardize with merged
 * feature statistics, train the linear model locally and are averaged by example count (FedAvg, the
 * mean the secure-aggregation path also produces since it sums deltas); the metrics come from each
 * site's sums. Reference: ordinary least squares on all 442 rows, R² = 0.5177484222, RMSE = 53.476129
 * (numpy.linalg.lstsq, the solution of scikit-learn's LinearRegression, recorded in ATTRIBUTION.md).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Tensor } from '../src/core/index.ts';
import { createSeededRng } from '../src/crypto/index.ts';
import {
  type LabeledData,
  applyStandardization,
  computeFeatureStats,
  deriveStandardization,
  loadTable,
  mergeFeatureStats,
  parseDataSchema,
  partitionIid,
  selectRows,
} from '../src/data/index.ts';
import {
  combineRegressionEvaluations,
  evaluateRegression,
  initializeWeights,
  parseModelSpec,
  parseTrainOptions,
  trainLocally,
} from '../src/models/index.ts';

const DIR = join(import.meta.dirname, '..', 'datasets', 'diabetes');
const OLS_R2 = 0.5177484222;
const OLS_RMSE = 53.476129;

describe('federated linear regression on the diabetes data', () => {
  const schema = parseDataSchema(JSON.parse(readFileSync(join(DIR, 'schema.json'), 'utf8')));
  const all = loadTable(readFileSync(join(DIR, 'diabetes.csv'), 'utf8'), schema);
  const spec = parseModelSpec({ kind: 'linear', inputDim: all.dim });

  it('loads 442 rows, 10 features and a continuous target', () => {
    assert.equal(all.count, 442);
    assert.equal(all.dim, 10);
    assert.equal(all.target![0], 151);
    assert.equal(
      all.target!.reduce((a, b) => a + b, 0),
      67_243,
    );
  });

  it('three sites reach the least-squares fit: R² and RMSE within 0.005 and 0.3 of OLS', () => {
    const parts = partitionIid(all.count, 3, createSeededRng('diabetes/partition'));
    const raw = parts.map((rows) => selectRows(all, rows));
    // The statistics phase: each site sums its features, the merged sums standardize every site.
    const stats = raw.map(computeFeatureStats).reduce(mergeFeatureStats);
    const params = deriveStandardization(stats);
    const sites: LabeledData[] = raw.map((d) => applyStandardization(d, params));
    const options = parseTrainOptions({ epochs: 4, batchSize: 32, learningRate: 0.02, optimizer: 'sgd' });
    let global: Tensor[] = initializeWeights(spec, createSeededRng('diabetes/init'));
    const history: number[] = [];
    for (let round = 1; round <= 60; round++) {
      const updates = sites.map((d, k) =>
        trainLocally(spec, global, d, options, createSeededRng(`diabetes/train/${round}/${k}`)),
      );
      const total = updates.reduce((n, u) => n + u.numExamples, 0);
      global = global.map((t, i) => {
        const data = new Float32Array(t.data.length);
        for (const u of updates)
          for (let j = 0; j < data.length; j++) data[j]! += (u.numExamples / total) * u.weights[i]!.data[j]!;
        return { name: t.name, shape: t.shape, data };
      });
      history.push(
        combineRegressionEvaluations(sites.map((d) => evaluateRegression(spec, global, d).sums)).mse,
      );
    }
    const combined = combineRegressionEvaluations(sites.map((d) => evaluateRegression(spec, global, d).sums));
    // The sites' sums give exactly the metrics of one evaluation over the pooled rows.
    const pooled = evaluateRegression(spec, global, applyStandardization(all, params));
    assert.ok(Math.abs(combined.r2! - pooled.r2!) < 1e-9 && Math.abs(combined.mae - pooled.mae) < 1e-9);
    assert.equal(combined.numExamples, 442);
    console.log(
      `federated R² ${combined.r2!.toFixed(4)} RMSE ${combined.rmse.toFixed(3)} (OLS ${OLS_R2}, ${OLS_RMSE})`,
    );
    assert.ok(combined.r2! > OLS_R2 - 0.005 && combined.r2! <= OLS_R2 + 1e-6, `R² ${combined.r2}`);
    assert.ok(Math.abs(combined.rmse - OLS_RMSE) < 0.3, `RMSE ${combined.rmse}`);
    // Training made progress: the first round's error is far above the last.
    assert.ok(history[0]! > 2 * history.at(-1)!, `MSE ${history[0]} → ${history.at(-1)}`);
  });
});
