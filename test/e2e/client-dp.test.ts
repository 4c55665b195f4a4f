/**
 * Client-level DP-FedAvg under secure aggregation with distributed discrete Gaussian noise, with real
 * processes: each institution clips its update and adds its share of integer noise before masking; the
 * run completes, each site's ledger records one zCDP event per round for the institution as a whole
 * (ρ from the noise it actually added), and the model still learns when the noise is moderate.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type PrivacyEvent, computeLedgerEpsilon } from '../../src/privacy/index.ts';
import type { ProcessFederation } from '../../src/simulation/index.ts';
import { openWorkspace } from '../../src/storage/index.ts';
import { createMtlsClient } from '../../src/transport/index.ts';
import { waitFor, waitForRunCompleted, startTestFederation } from './fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'];
const ROUNDS = 4;

describe('client-level DP under secure aggregation', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('adds distributed discrete Gaussian noise, accounts it per institution, and still learns', {
    timeout: 180_000,
  }, async () => {
    const started = await startTestFederation({ institutions: INSTITUTIONS, prefix: 'entente-client-dp-' });
    ({ federation } = started);
    const { setup, client } = started;
    dir = setup.dir;
    after(() => client.close());
    await client.postJson('/v1/runs', {
      id: 'cdp',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: ROUNDS,
      minParticipants: 3,
      train: { epochs: 2, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
      standardize: 'federated',
      evaluate: true,
      roundTimeoutMs: 60_000,
      seed: 'client-dp',
      clientDp: { clipNorm: 2, noiseMultiplier: 0.3 },
      secureAggregation: { protocol: 'secagg', stageTimeoutMs: 20_000, maxParticipants: 10 },
    });
    type View = {
      status: string;
      rounds: { round: number; contributors: string[]; evalAccuracy: number | null }[];
      privacy: Record<string, { round: number; epsilonRun: number | null; delta: number }>;
    };
    const final = await waitForRunCompleted<View>(client, 'cdp', 150_000);
    assert.equal(final.rounds.length, ROUNDS);
    for (const r of final.rounds) assert.deepEqual(r.contributors, [...INSTITUTIONS].sort());
    const accuracy = final.rounds.at(-1)!.evalAccuracy!;
    assert.ok(accuracy > 0.8, `the noised model still learns (accuracy ${accuracy})`);
    for (const id of INSTITUTIONS) {
      const ledger = readFileSync(join(dir, 'institutions', id, 'privacy-ledger.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as PrivacyEvent);
      assert.equal(ledger.length, ROUNDS);
      for (const e of ledger) {
        assert.equal(e.mechanism, 'zcdp');
        assert.equal(e.neighbouring, 'add-remove-institution');
        // ρ ≈ 1/(2 z²): the clipped, quantised update over the noise the sum carries.
        assert.ok(Math.abs(e.rho! - 1 / (2 * 0.3 * 0.3)) / (1 / (2 * 0.3 * 0.3)) < 1e-3, `rho ${e.rho}`);
      }
      const epsilon = computeLedgerEpsilon(ledger, 1e-5).epsilon;
      assert.ok(
        Math.abs(final.privacy[id]!.epsilonRun! - epsilon) < 1e-9,
        'the coordinator shows what the site computed',
      );
    }
  });

  it('adaptive clipping (Andrew et al. 2021): the clip moves with the noisy unclipped fraction, within bounds', {
    timeout: 180_000,
  }, async () => {
    assert.ok(federation, 'the federation of the first test is running');
    const client = createMtlsClient({ baseUrl: federation.url, ...openWorkspace(dir).operatorIdentity() });
    after(() => client.close());
    await client.postJson('/v1/runs', {
      id: 'cdp-adaptive',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: ROUNDS,
      minParticipants: 3,
      train: { epochs: 2, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
      standardize: 'federated',
      evaluate: false,
      roundTimeoutMs: 60_000,
      seed: 'client-dp-adaptive',
      // Start far above the update norms (~0.1): every update is unclipped, so the clip must shrink.
      clientDp: {
        clipNorm: 5,
        noiseMultiplier: 0.3,
        adaptive: { countNoiseStd: 0.5, learningRate: 0.5, targetQuantile: 0.5, maxGrowth: 4 },
      },
      secureAggregation: { protocol: 'secagg', stageTimeoutMs: 20_000, maxParticipants: 10 },
    });
    const final = await waitFor(
      'the adaptive run to complete',
      async () => {
        const v = (
          await client.getJson<{ status: string; clientDpClipNorm: number }>('/v1/runs/cdp-adaptive')
        ).body!;
        return v.status === 'completed' ? v : undefined;
      },
      150_000,
      200,
    );
    const db = new Database(join(dir, 'coordinator', 'state', 'coordinator.db'), { readonly: true });
    const moves = (
      db
        .prepare(
          "SELECT message FROM events WHERE kind = 'clip-updated' AND run_id = 'cdp-adaptive' ORDER BY id",
        )
        .all() as { message: string }[]
    ).map((m) => m.message);
    db.close();
    assert.equal(moves.length, ROUNDS, 'one clip update per round, recorded');
    assert.ok(
      final.clientDpClipNorm < 5,
      `the clip shrank (now ${final.clientDpClipNorm}):\n${moves.join('\n')}`,
    );
    assert.ok(final.clientDpClipNorm >= 5 / 4 - 1e-9, 'and stayed within its bounds');
    const ledger = readFileSync(join(dir, 'institutions', 'alpha', 'privacy-ledger.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as PrivacyEvent)
      .filter((e) => e.run === 'cdp-adaptive');
    assert.equal(ledger.length, ROUNDS);
    // The noise split keeps the round's total at ρ ≈ 1/(2z²) for updates and indicator together.
    for (const e of ledger)
      assert.ok(Math.abs(e.rho! - 1 / (2 * 0.3 * 0.3)) / (1 / (2 * 0.3 * 0.3)) < 1e-3, `rho ${e.rho}`);
  });
});
