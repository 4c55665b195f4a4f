/**
 * DP-SGD batches are secret from the coordinator: a real DP-SGD round over participant processes, each
 * recording the batches it actually drew in a test-only journal in its own folder (--batch-journal).
 * The coordinator's best reproduction, from everything it holds (the run seed, round and cohort in the
 * audit log, each site's row count from the statistics phase, the task seed formula), does not match
 * any batch a site drew: the Poisson sampling comes from the site's own CSPRNG, not from the seed.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createSeededRng } from '../../src/crypto/index.ts';
import { computeDpStepsPerEpoch, samplePoissonBatch } from '../../src/models/index.ts';
import type { ProcessFederation } from '../../src/simulation/index.ts';
import { startTestFederation, waitForRunCompleted } from './fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'];
const DP = { clipNorm: 1, noiseMultiplier: 1.1, samplingRate: 0.1 };

type BatchLine = { run: string; round: number; seed: string; count: number; batches: number[][] };

describe('DP-SGD batches under a coordinator that knows the seed', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a DP-SGD batch cannot be predicted from everything in the log', { timeout: 180_000 }, async () => {
    const journalOf = (root: string, id: string): string => join(root, 'institutions', id, 'batches.jsonl');
    const started = await startTestFederation({
      institutions: INSTITUTIONS,
      prefix: 'entente-dp-batches-',
      extraArgs: (id, root) => ['--batch-journal', journalOf(root, id)],
    });
    ({ federation } = started);
    const { client } = started;
    dir = started.setup.dir;
    after(() => client.close());
    await client.postJson('/v1/runs', {
      id: 'dp',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: 1,
      minParticipants: 3,
      train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd', dp: DP },
      standardize: 'federated',
      evaluate: false,
      roundTimeoutMs: 60_000,
      seed: 'public-seed',
    });
    await waitForRunCompleted(client, 'dp', 150_000);

    const db = new Database(join(dir, 'coordinator', 'state', 'coordinator.db'), { readonly: true });
    after(() => db.close());
    const entries = (db.prepare('SELECT body FROM log_entries ORDER BY idx').all() as { body: Buffer }[]).map(
      (r) => JSON.parse(Buffer.from(r.body).toString('utf8')) as Record<string, unknown>,
    );
    const configured = entries.find((e) => e.kind === 'run-configured' && e.run === 'dp')!;
    const runSeed = (configured.config as { seed: string }).seed;
    const rounds = entries.filter((e) => e.kind === 'round-started' && e.run === 'dp' && e.round === 1);
    assert.equal(rounds.length, 1, 'one attempt');
    const started1 = rounds[0]!;
    const cohort = started1.cohort as string[];
    assert.deepEqual([...cohort].sort(), [...INSTITUTIONS].sort());
    // Under secure aggregation the statistics phase is a secure sum: the coordinator does not learn a
    // site's row count. The attack below grants it anyway (the strongest coordinator): it still fails.
    const statistics = db.prepare("SELECT count(*) AS n FROM statistics WHERE run_id = 'dp'").get() as {
      n: number;
    };
    assert.equal(statistics.n, 0, 'no site revealed its statistics');
    const steps = computeDpStepsPerEpoch(DP.samplingRate);

    let compared = 0;
    for (const id of cohort) {
      const lines = readFileSync(journalOf(dir, id), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as BatchLine);
      assert.equal(lines.length, 1, `${id} trained once`);
      const drawn = lines[0]!;
      // The coordinator knows the task seed and the row count of every site.
      const seed =
        started1.protocol === 'secagg'
          ? `${runSeed}/train/1/${started1.attempt as number}/${id}`
          : `${runSeed}/train/1/${id}`;
      assert.equal(drawn.seed, seed, 'the task seed is the one derived from the log');
      assert.equal(drawn.batches.length, steps);
      assert.ok(
        drawn.batches.some((b) => b.length > 0),
        `${id} sampled rows`,
      );
      // Its reproduction: the seeded stream the task's Rng is made from, drawn as DP-SGD draws.
      const rng = createSeededRng(seed);
      const rows = new Int32Array(drawn.count);
      const predicted: string[] = [];
      for (let s = 0; s < steps; s++) {
        const n = samplePoissonBatch(rng, drawn.count, DP.samplingRate, rows);
        predicted.push([...rows.subarray(0, n)].join(','));
      }
      for (const [s, batch] of drawn.batches.entries()) {
        assert.ok(!predicted.includes(batch.join(',')), `${id}: batch of step ${s} was predicted`);
        compared++;
      }
      // Not even most rows of a step: the overlap is what independent draws give (≈ q of each batch).
      let hits = 0;
      let total = 0;
      for (const [s, batch] of drawn.batches.entries()) {
        const guess = new Set(predicted[s]!.split(',').filter(Boolean).map(Number));
        for (const r of batch) if (guess.has(r)) hits++;
        total += batch.length;
      }
      assert.ok(hits / total < 0.5, `${id}: ${hits} of ${total} sampled rows guessed`);
    }
    assert.equal(compared, cohort.length * steps);
  });
});
