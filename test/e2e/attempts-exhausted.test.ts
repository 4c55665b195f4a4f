/**
 * A member that keeps dropping out of secure aggregation cannot make a run retry for ever, nor burn the
 * other members' privacy budgets: with DP-SGD over real processes, one institution answers ShareKeys
 * only after the stage deadline in every attempt, so each attempt aborts before unmasking. The run
 * stops after maxAttemptsPerRound attempts with a coded, visible reason (run view and `entente status`,
 * and a run-failed entry in the audit log). Every site trained once: its ledger holds one charge for
 * the round (attempt 0), the retried attempts reused that update, and the status shows each attempt's
 * charges.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { PrivacyEvent } from '../../src/privacy/index.ts';
import type { ProcessFederation } from '../../src/simulation/index.ts';
import { startTestFederation, waitFor } from './fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'];
const DROPPER = 'gamma';
const MAX_ATTEMPTS = 3;
const STAGE_TIMEOUT_MS = 2_000;
const CLI_ENTRY = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

type Charge = { participant: string; charged: boolean; reusedFrom?: number; event: { mechanism: string } };
type View = {
  status: string;
  failure: { code: string; round: number; attempt: number; message: string } | null;
  maxAttemptsPerRound: number;
  attemptsPerRound: { round: number; attempts: number; aborted: number; charged: number }[];
  secureAggregation: { round: number; attempt: number; outcome: string; reason: string; charges: Charge[] }[];
};

function runCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI_ENTRY, ...args],
      { env: { ...process.env, ENTENTE_LOG_LEVEL: 'warn' }, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
}

describe('a run whose secure-aggregation attempts keep aborting', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stops after maxAttemptsPerRound with a visible reason, each charged attempt in the ledgers', {
    timeout: 240_000,
  }, async () => {
    const federated = await startTestFederation({
      institutions: INSTITUTIONS,
      prefix: 'entente-attempts-',
      // Always too late for ShareKeys: every attempt aborts after the keys were advertised.
      extraArgs: (id) => (id === DROPPER ? ['--slow-ms', `secagg-share-keys=${3 * STAGE_TIMEOUT_MS}`] : []),
    });
    ({ federation } = federated);
    const { client } = federated;
    dir = federated.setup.dir;
    after(() => client.close());
    const config = {
      id: 'stop',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: 2,
      minParticipants: 3,
      train: {
        epochs: 1,
        batchSize: 16,
        learningRate: 0.1,
        optimizer: 'sgd',
        dp: { clipNorm: 1, noiseMultiplier: 1.1, samplingRate: 0.05 },
      },
      // No statistics phase: it is a secure sum too, and the dropper would exhaust it before round 1.
      standardize: 'none',
      evaluate: false,
      roundTimeoutMs: 60_000,
      maxAttemptsPerRound: MAX_ATTEMPTS,
      seed: 'attempts',
      secureAggregation: { protocol: 'secagg', stageTimeoutMs: STAGE_TIMEOUT_MS, maxWeight: 1000 },
    };
    const configPath = join(dir, 'run.json');
    writeFileSync(configPath, JSON.stringify(config));
    // The operator waits for the run with the CLI: it ends with the run's code.
    const started = runCli(['run', 'start', configPath, '--workspace', dir, '--wait', '--json']);
    const view = await waitFor(
      'the run to stop',
      async () => {
        const v = (await client.getJson<View>('/v1/runs/stop')).body!;
        return v.status === 'running' ? undefined : v;
      },
      200_000,
      250,
    );
    assert.equal(view.status, 'failed');
    assert.equal(view.maxAttemptsPerRound, MAX_ATTEMPTS);
    assert.equal(view.failure?.code, 'ATTEMPTS_EXHAUSTED');
    assert.equal(view.failure?.round, 1);
    assert.equal(view.failure?.attempt, MAX_ATTEMPTS - 1);
    assert.match(view.failure!.message, /aborted in all 3 attempts \(maxAttemptsPerRound 3\)/);
    const attempts = view.secureAggregation.filter((a) => a.round === 1);
    assert.deepEqual(
      attempts.map((a) => [a.attempt, a.outcome]),
      [
        [0, 'aborted'],
        [1, 'aborted'],
        [2, 'aborted'],
      ],
    );
    for (const a of attempts) assert.match(a.reason, /ShareKeys: \d participants sent shares, threshold 3/);
    assert.ok(!view.secureAggregation.some((a) => a.round > 1), 'no round after the failed one');
    // Charges per attempt: every site trained (and was charged) for attempt 0; later attempts reused it.
    assert.deepEqual(
      attempts[0]!.charges.map((c) => [c.participant, c.charged]),
      INSTITUTIONS.map((id) => [id, true]),
    );
    for (const a of attempts.slice(1)) {
      assert.ok(a.charges.length > 0, `attempt ${a.attempt} shows its charges`);
      for (const c of a.charges)
        assert.equal(c.reusedFrom, 0, `${c.participant} reused in attempt ${a.attempt}`);
    }
    assert.deepEqual(view.attemptsPerRound, [{ round: 1, attempts: 3, aborted: 3, charged: 3 }]);

    // Each site's own ledger: one charge for round 1, attempt 0 (what it trained for), nothing more.
    for (const id of INSTITUTIONS) {
      const ledger = readFileSync(join(dir, 'institutions', id, 'privacy-ledger.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as PrivacyEvent);
      assert.deepEqual(
        ledger.map((e) => [e.run, e.round, e.attempt, e.mechanism]),
        [['stop', 1, 0, 'subsampled-gaussian']],
        id,
      );
      const journal = readFileSync(join(dir, 'institutions', id, 'journal.jsonl'), 'utf8');
      assert.equal(
        journal.split('\n').filter((l) => l.includes('"update-reused"')).length,
        2,
        `${id} reused its update in attempts 1 and 2`,
      );
    }

    // The audit log: each abort, each charge with its attempt, and the failure with its code.
    const db = new Database(join(dir, 'coordinator', 'state', 'coordinator.db'), { readonly: true });
    after(() => db.close());
    const entries = (db.prepare('SELECT body FROM log_entries ORDER BY idx').all() as { body: Buffer }[])
      .map((r) => JSON.parse(Buffer.from(r.body).toString('utf8')) as Record<string, unknown>)
      .filter((e) => e.run === 'stop');
    assert.deepEqual(
      entries.filter((e) => e.kind === 'round-aborted').map((e) => e.attempt),
      [0, 1, 2],
    );
    assert.deepEqual(
      entries
        .filter((e) => e.kind === 'privacy-spent')
        .map((e) => [e.participant, e.attempt])
        .sort(),
      INSTITUTIONS.map((id) => [id, 0]),
    );
    const failed = entries.filter((e) => e.kind === 'run-failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.code, 'ATTEMPTS_EXHAUSTED');

    const waited = await started;
    assert.equal(waited.code, 5, waited.stderr);
    assert.match(waited.stderr, /entente: ATTEMPTS_EXHAUSTED: run stop: round 1: secure aggregation aborted/);
    // `entente status --run` shows the same.
    const status = await runCli(['status', '--workspace', dir, '--run', 'stop', '--json']);
    assert.equal(status.code, 0, status.stderr);
    const shown = JSON.parse(status.stdout) as View;
    assert.equal(shown.status, 'failed');
    assert.equal(shown.failure?.code, 'ATTEMPTS_EXHAUSTED');
    assert.deepEqual(shown.attemptsPerRound, view.attemptsPerRound);
  });
});
