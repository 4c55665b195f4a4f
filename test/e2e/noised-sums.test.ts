/**
 * Differential privacy on a run's secure sums, with real processes: `secureSums.noiseMultiplier` makes
 * every site add its share of discrete Gaussian noise to the statistics sum and every round's evaluation
 * sum; each site charges its own ledger (ρ-zCDP for one of its records) once per sum, the coordinator
 * logs each charge with its phase, and the run completes on the noised sums. A
 * site whose configuration requires noised sums takes part in that run and refuses an exact one.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseLogEntry } from '../../src/audit/index.ts';
import type { PrivacyEvent } from '../../src/privacy/index.ts';
import type { ProcessFederation } from '../../src/simulation/index.ts';
import { startTestFederation, waitFor, waitForRunCompleted } from './fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'];
const ROUNDS = 2;

const runConfig = (id: string, noise: boolean) => ({
  id,
  model: { kind: 'logistic', inputDim: 30 },
  strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
  rounds: ROUNDS,
  minParticipants: 3,
  train: { epochs: 2, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
  standardize: 'federated',
  evaluate: true,
  evaluation: { scoreBins: 20 },
  roundTimeoutMs: 60_000,
  seed: id,
  secureSums: { maxAbsFeature: 5000, ...(noise ? { noiseMultiplier: 2 } : {}) },
  secureAggregation: { protocol: 'secagg', stageTimeoutMs: 20_000, maxParticipants: 10 },
});

describe('noised secure sums in a run', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('noises statistics and evaluation sums and charges each ledger once per sum', {
    timeout: 240_000,
  }, async () => {
    const started = await startTestFederation({
      institutions: INSTITUTIONS,
      prefix: 'entente-noised-sums-',
      siteConfigs: { gamma: { name: 'site.json', text: JSON.stringify({ requireNoisedSums: true }) } },
    });
    ({ federation } = started);
    const { setup, client } = started;
    dir = setup.dir;
    after(() => client.close());
    await client.postJson('/v1/runs', runConfig('noised', true));
    type View = {
      status: string;
      standardization: { mean: number[]; std: number[] };
      rounds: { round: number; evalMetrics?: { overall: { accuracy: number; rows: number } } }[];
    };
    const final = await waitForRunCompleted<View>(client, 'noised', 200_000);
    assert.equal(final.rounds.length, ROUNDS);
    // The standardization comes from the noised sums (one clip bound for every feature: with noise it
    // is only as good as that bound is tight, see the README); the evaluation from noised sums too.
    assert.equal(final.standardization.std.length, 30);
    assert.ok(final.standardization.std.every((s) => s > 0));
    const last = final.rounds.at(-1)!.evalMetrics!.overall;
    assert.ok(last.accuracy >= 0 && last.accuracy <= 1 && last.rows > 0, JSON.stringify(last));

    // Each site: one zCDP charge for one record per noised sum (the statistics, then each round's
    // evaluation); training without DP charges nothing.
    const charges = new Map<string, PrivacyEvent[]>();
    for (const id of INSTITUTIONS) {
      const ledger = readFileSync(join(dir, 'institutions', id, 'privacy-ledger.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as PrivacyEvent);
      assert.equal(ledger.length, 1 + ROUNDS, `${id}: ${JSON.stringify(ledger)}`);
      for (const e of ledger) {
        assert.equal(e.run, 'noised');
        assert.equal(e.mechanism, 'zcdp');
        assert.equal(e.neighbouring, 'add-remove-record');
        assert.ok(e.rho! > 0 && e.rho! <= (1 / (2 * 2 * 2)) * 1.001, `ρ ${e.rho}`);
      }
      charges.set(id, ledger);
    }
    // The coordinator logged each charge with its phase.
    const entries = (
      await client.getJson<{ entries: { index: number; body: string }[] }>(
        '/v1/log/entries?start=0&end=10000',
      )
    ).body!.entries.map((e) => parseLogEntry(Buffer.from(e.body, 'base64'), `entry ${e.index}`));
    const spent = entries.filter((e) => e.kind === 'privacy-spent') as unknown as {
      participant: string;
      phase?: string;
      rho: number;
    }[];
    for (const id of INSTITUTIONS) {
      const mine = spent.filter((e) => e.participant === id);
      assert.deepEqual(
        mine.map((e) => e.phase).sort(),
        ['statistics', ...Array.from({ length: ROUNDS }, () => 'evaluate')].sort(),
      );
      assert.deepEqual(
        mine.map((e) => e.rho).sort(),
        charges
          .get(id)!
          .map((e) => e.rho!)
          .sort(),
      );
    }

    // The same run without noise: gamma refuses its statistics sum, naming its own limit.
    await client.postJson('/v1/runs', runConfig('exact', false));
    const journal = join(dir, 'institutions', 'gamma', 'journal.jsonl');
    const refusal = await waitFor(
      'gamma to refuse the exact statistics sum',
      async () => {
        const lines = (() => {
          try {
            return readFileSync(journal, 'utf8').trim().split('\n');
          } catch {
            return [];
          }
        })();
        return lines
          .map((l) => JSON.parse(l) as { event: string; code?: string; field?: string; message?: string })
          .find((e) => e.event === 'task-refused' && /requireNoisedSums/.test(e.message ?? ''));
      },
      60_000,
    );
    assert.equal(refusal.code, 'SITE_POLICY_REFUSED');
    // Nothing was charged for it.
    const ledgerText = readFileSync(
      join(dir, 'institutions', 'gamma', 'privacy-ledger.jsonl'),
      'utf8',
    ).trim();
    assert.equal(ledgerText.split('\n').length, 1 + ROUNDS);
  });
});
