/**
 * A federated regression run with real processes: three institutions hold IID thirds of the vendored
 * diabetes data (datasets/diabetes, a number label), the run trains the `linear` model with federated
 * standardization under secure aggregation (the masked sum of deltas is the same for any model), and
 * each round's evaluation combines the sites' sums into MSE (the loss), MAE, RMSE and R² over all
 * their holdout rows. Reference: least squares on all 442 rows has R² = 0.518 (datasets/diabetes).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createSeededRng } from '../../src/crypto/index.ts';
import { parseCsv, partitionIid } from '../../src/data/index.ts';
import { type ProcessFederation, startProcessFederation } from '../../src/simulation/index.ts';
import { createWorkspace, writePrivateFile } from '../../src/storage/index.ts';
import { type MtlsClient, createMtlsClient } from '../../src/transport/index.ts';
import { findFreePort, waitForAllAvailable, waitForRunCompleted } from './fixtures.ts';

const DIR = join(import.meta.dirname, '..', '..', 'datasets', 'diabetes');
const INSTITUTIONS = ['north', 'south', 'west'] as const;

interface RoundView {
  round: number;
  evalExamples: number | null;
  evalLoss: number | null;
  evalAccuracy: number | null;
  evalMetrics?: { mse: number; mae: number; rmse: number; r2: number | null };
}

describe('federated linear regression (diabetes, secure aggregation)', () => {
  let dir: string;
  let federation: ProcessFederation;
  let client: MtlsClient;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'entente-regression-e2e-'));
    const ws = await createWorkspace(dir, {
      consortium: 'test',
      institutions: INSTITUTIONS,
      now: new Date(),
    });
    const table = parseCsv(readFileSync(join(DIR, 'diabetes.csv'), 'utf8'));
    const parts = partitionIid(table.rows.length, INSTITUTIONS.length, createSeededRng('e2e/diabetes'));
    INSTITUTIONS.forEach((id, k) => {
      const lines = [table.header.join(','), ...parts[k]!.map((i) => table.rows[i]!.join(','))];
      writePrivateFile(join(dir, 'institutions', id, 'data.csv'), `${lines.join('\n')}\n`);
    });
    const port = await findFreePort();
    federation = await startProcessFederation({
      workspace: dir,
      port,
      participants: INSTITUTIONS.map((id) => ({
        institution: id,
        args: ['--data', join(dir, 'institutions', id, 'data.csv'), '--schema', join(DIR, 'schema.json')],
      })),
    });
    client = createMtlsClient({ baseUrl: `https://127.0.0.1:${port}`, ...ws.operatorIdentity() });
    await waitForAllAvailable(client);
  });

  after(async () => {
    await client?.close();
    await federation?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('completes and reports MSE, MAE, RMSE and R² over every site, near least squares', {
    timeout: 240_000,
  }, async () => {
    const created = await client.postJson<{ runId: string }>('/v1/runs', {
      id: 'diabetes',
      model: { kind: 'linear', inputDim: 10 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: 6,
      minParticipants: 3,
      train: { epochs: 5, batchSize: 16, learningRate: 0.05 },
      standardize: 'federated',
      seed: 'diabetes-e2e',
      secureAggregation: { protocol: 'secagg', clipRange: 50, maxWeight: 1000, maxParticipants: 10 },
    });
    assert.equal(created.status, 201);
    const run = await waitForRunCompleted<{
      status: string;
      rounds: RoundView[];
      secureAggregation: { round: number; outcome: string }[];
    }>(client, 'diabetes', 200_000);
    assert.equal(run.rounds.length, 6);
    for (const r of run.rounds) {
      assert.ok(r.evalMetrics, `round ${r.round} has regression metrics`);
      assert.equal(r.evalAccuracy, null);
      assert.equal(r.evalLoss, r.evalMetrics.mse);
      assert.ok(Math.abs(r.evalMetrics.rmse - Math.sqrt(r.evalMetrics.mse)) < 1e-9);
      // The holdouts: 20 % of each third of 442 rows.
      assert.ok(r.evalExamples! >= 85 && r.evalExamples! <= 92, String(r.evalExamples));
    }
    const last = run.rounds.at(-1)!.evalMetrics!;
    console.log(
      `round 6: R² ${last.r2?.toFixed(4)} RMSE ${last.rmse.toFixed(2)} MAE ${last.mae.toFixed(2)} (least squares on all rows: R² 0.518, RMSE 53.5)`,
    );
    assert.ok(last.r2! > 0.45 && last.r2! < 0.65, `R² ${last.r2}`);
    assert.ok(last.rmse < 62, `RMSE ${last.rmse}`);
    assert.ok(run.secureAggregation.filter((a) => a.outcome === 'completed').length >= 6);
  });
});
