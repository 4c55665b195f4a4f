/**
 * The linear (regression) model against a reference: ordinary least squares in closed form
 * (the normal equations XᵀX β = Xᵀt, solved in float64 in this test) on a small fixed dataset, and its
 * evaluation metrics (MSE, MAE, RMSE, R²) computed directly from the OLS predictions.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { nextGaussian } from '../core/rng.ts';
import type { Tensor } from '../core/tensor.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { computeExampleGradient, createModelWorkspace } from './dense-network.ts';
import { combineRegressionEvaluations, evaluateModel, evaluateRegression } from './evaluate-model.ts';
import { flattenWeights } from './flat-parameters.ts';
import { initializeWeights } from './initialize-weights.ts';
import type { LabeledData } from './labeled-data.ts';
import { describeLayout, parseModelSpec } from './model-spec.ts';
import { predictClasses, predictValues } from './predict.ts';
import { trainLocally } from './train-locally.ts';
import { parseTrainOptions } from './train-options.ts';

const spec = parseModelSpec({ kind: 'linear', inputDim: 3 });

/** 60 rows, 3 standard-normal features, t = 1.5·x0 − 2·x1 + 0.5·x2 + 3 + noise(0.3). */
function dataset(): LabeledData {
  const rng = createSeededRng('linear-regression-test');
  const count = 60;
  const x = new Float32Array(count * 3);
  const target = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < 3; j++) x[i * 3 + j] = nextGaussian(rng);
    target[i] = 1.5 * x[i * 3]! - 2 * x[i * 3 + 1]! + 0.5 * x[i * 3 + 2]! + 3 + 0.3 * nextGaussian(rng);
  }
  return { x, y: new Int32Array(count), target, count, dim: 3 };
}

/** OLS with an intercept: β = (XᵀX)⁻¹ Xᵀt by Gauss-Jordan elimination with partial pivoting. */
function solveOls(d: LabeledData): { weights: number[]; bias: number } {
  const p = d.dim + 1;
  const a = Array.from({ length: p }, () => new Array<number>(p + 1).fill(0));
  for (let i = 0; i < d.count; i++) {
    const row = [...Array.from({ length: d.dim }, (_, j) => d.x[i * d.dim + j]!), 1];
    for (let r = 0; r < p; r++) {
      for (let c = 0; c < p; c++) a[r]![c]! += row[r]! * row[c]!;
      a[r]![p]! += row[r]! * d.target![i]!;
    }
  }
  for (let col = 0; col < p; col++) {
    let pivot = col;
    for (let r = col + 1; r < p; r++) if (Math.abs(a[r]![col]!) > Math.abs(a[pivot]![col]!)) pivot = r;
    [a[col], a[pivot]] = [a[pivot]!, a[col]!];
    for (let r = 0; r < p; r++) {
      if (r === col) continue;
      const f = a[r]![col]! / a[col]![col]!;
      for (let c = col; c <= p; c++) a[r]![c]! -= f * a[col]![c]!;
    }
  }
  const beta = a.map((row, r) => row[p]! / row[r]!);
  return { weights: beta.slice(0, d.dim), bias: beta[d.dim]! };
}

function tensorsOf(weights: number[], bias: number): Tensor[] {
  const [w, b] = describeLayout(spec);
  return [
    { name: w!.name, shape: w!.shape, data: Float32Array.from(weights) },
    { name: b!.name, shape: b!.shape, data: Float32Array.from([bias]) },
  ];
}

describe('linear model (regression)', () => {
  const data = dataset();
  const ols = solveOls(data);

  it('has one output unit: dense0.weight [1, inputDim] and dense0.bias [1]', () => {
    assert.deepEqual(describeLayout(spec), [
      { name: 'dense0.weight', shape: [1, 3] },
      { name: 'dense0.bias', shape: [1] },
    ]);
  });

  it('has the squared-loss gradient 2(z − t)·[x, 1]', () => {
    const ws = createModelWorkspace(spec);
    const params = Float32Array.from([0.2, -0.1, 0.4, 0.5]);
    const g = new Float32Array(4);
    const loss = computeExampleGradient(ws, params, data, 7, g);
    const xs = [data.x[21]!, data.x[22]!, data.x[23]!];
    const z = 0.2 * xs[0]! - 0.1 * xs[1]! + 0.4 * xs[2]! + 0.5;
    const r = z - data.target![7]!;
    assert.ok(Math.abs(loss - r * r) < 1e-5);
    [...xs, 1].forEach((v, k) => {
      assert.ok(Math.abs(g[k]! - 2 * r * v) < 1e-4, `g[${k}]`);
    });
  });

  it('trained with full-batch gradient descent, reaches the OLS closed-form solution', () => {
    const options = parseTrainOptions({ epochs: 400, batchSize: 60, learningRate: 0.1, optimizer: 'sgd' });
    const rng = createSeededRng('linear-init');
    const trained = trainLocally(spec, initializeWeights(spec, rng), data, options, rng);
    const got = flattenWeights(spec, trained.weights);
    [...ols.weights, ols.bias].forEach((want, k) => {
      assert.ok(Math.abs(got[k]! - want) < 1e-3, `parameter ${k}: ${got[k]} vs OLS ${want}`);
    });
    // And the OLS solution is near the generating coefficients (a sanity check of the reference).
    assert.ok(Math.abs(ols.weights[0]! - 1.5) < 0.2 && Math.abs(ols.bias - 3) < 0.2);
  });

  it('evaluates MSE, MAE, RMSE and R² as computed from the OLS predictions', () => {
    const weights = tensorsOf(ols.weights, ols.bias);
    const m = evaluateRegression(spec, weights, data);
    const pred = predictValues(spec, weights, data.x);
    let sse = 0;
    let sae = 0;
    let mean = 0;
    for (let i = 0; i < data.count; i++) mean += data.target![i]! / data.count;
    let ssTot = 0;
    for (let i = 0; i < data.count; i++) {
      const e = pred[i]! - data.target![i]!;
      sse += e * e;
      sae += Math.abs(e);
      ssTot += (data.target![i]! - mean) ** 2;
    }
    const close = (a: number, b: number, what: string) =>
      assert.ok(Math.abs(a - b) < 1e-5 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
    close(m.mse, sse / data.count, 'mse');
    close(m.mae, sae / data.count, 'mae');
    close(m.rmse, Math.sqrt(sse / data.count), 'rmse');
    close(m.r2!, 1 - sse / ssTot, 'r2');
    assert.equal(m.numExamples, 60);
    // A good fit: noise 0.3 against a signal of variance ≈ 6.5.
    assert.ok(m.r2! > 0.95 && m.rmse < 0.4, `r2 ${m.r2}, rmse ${m.rmse}`);
    // The mean predictor has R² = 0.
    const flat = evaluateRegression(spec, tensorsOf([0, 0, 0], mean), data);
    assert.ok(Math.abs(flat.r2!) < 1e-5);
  });

  it('combines sites by their sums: the metrics equal those over the pooled rows', () => {
    const weights = tensorsOf(
      ols.weights.map((w) => w * 0.9),
      ols.bias + 0.2,
    );
    const pooled = evaluateRegression(spec, weights, data);
    const slice = (from: number, to: number): LabeledData => ({
      x: data.x.slice(from * 3, to * 3),
      y: data.y.slice(from, to),
      target: data.target!.slice(from, to),
      count: to - from,
      dim: 3,
    });
    const parts = [slice(0, 10), slice(10, 35), slice(35, 60)].map(
      (d) => evaluateRegression(spec, weights, d).sums,
    );
    const combined = combineRegressionEvaluations(parts);
    for (const k of ['mse', 'mae', 'rmse', 'r2'] as const)
      assert.ok(Math.abs(combined[k]! - pooled[k]!) < 1e-9 * Math.max(1, Math.abs(pooled[k]!)), k);
    assert.equal(combined.numExamples, 60);
    // Not the mean of the sites' R²s (each around its own mean).
    const meanR2 = parts.map((p) => combineRegressionEvaluations([p]).r2!).reduce((a, b) => a + b) / 3;
    assert.notEqual(meanR2.toFixed(6), combined.r2!.toFixed(6));
    // Constant targets: R² is undefined (null), the errors are not.
    const constant = combineRegressionEvaluations([
      { numExamples: 2, sumSquaredError: 2, sumAbsoluteError: 2, sumTarget: 10, sumTargetSquared: 50 },
    ]);
    assert.deepEqual(constant, { numExamples: 2, mse: 1, mae: 1, rmse: 1, r2: null });
  });

  it('refuses data without targets, non-finite targets, classifier-only calls and malformed sums', () => {
    const weights = tensorsOf([0, 0, 0], 0);
    const codeOf = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (e) {
        assert.ok(e instanceof EntenteError);
        return `${e.code} ${e.field}`;
      }
      return undefined;
    };
    const { target: _t, ...noTarget } = data;
    assert.equal(
      codeOf(() => evaluateRegression(spec, weights, noTarget)),
      'INVALID_DATA data.target',
    );
    const bad = Float32Array.from(data.target!);
    bad[4] = Number.NaN;
    assert.equal(
      codeOf(() => evaluateRegression(spec, weights, { ...data, target: bad })),
      'INVALID_DATA data.target[4]',
    );
    assert.equal(
      codeOf(() => evaluateModel(spec, weights, data)),
      'INVALID_CONFIG modelSpec.kind',
    );
    assert.equal(
      codeOf(() => predictClasses(spec, weights, data.x)),
      'INVALID_CONFIG modelSpec.kind',
    );
    assert.equal(
      codeOf(() => combineRegressionEvaluations([])),
      'INVALID_ARGUMENT parts',
    );
    assert.equal(
      codeOf(() =>
        combineRegressionEvaluations([
          { numExamples: 1, sumSquaredError: -1, sumAbsoluteError: 0, sumTarget: 0, sumTargetSquared: 0 },
        ]),
      ),
      'INVALID_ARGUMENT parts[0]',
    );
  });
});
