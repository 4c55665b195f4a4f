/**
 * A data team's first day over real processes: runs that cannot go on end visibly instead of looping.
 * A run no registered site can execute (wrong inputDim, wrong class count) is refused up front, naming
 * the field and the site; a site that registers later and cannot execute its task says so once per
 * attempt, and after maxFailuresPerPhase failed attempts the run fails with that reason (`run start
 * --wait` prints it and exits non-zero). A site that refuses (site policy) drops out of the phase: the
 * run goes on without it when enough remain, otherwise it fails naming the site. `entente run cancel`
 * ends a run for good: its open tasks are withdrawn (a late result is STALE_ROUND), it stays cancelled
 * across a coordinator restart, and the next run starts and completes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type ProcessFederation, startProcessFederation, stopChild } from '../../src/simulation/index.ts';
import { createMtlsClient } from '../../src/transport/index.ts';
import { SCHEMA_PATH, createTestWorkspace, findFreePort, waitFor } from './fixtures.ts';

const FIRST = ['alpha', 'beta', 'gamma'];
const LATE = 'delta';
const CLI_ENTRY = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

type View = {
  status: string;
  phase: string;
  round: number;
  cohort: string[];
  received: string[];
  failure: { code: string; round: number; attempt: number; message: string } | null;
  cancellation: { by: string; proposal?: string } | null;
  rounds: { round: number; contributors: string[] }[];
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

const plainRun = (id: string, extra: Record<string, unknown> = {}) => {
  const min = (extra.minParticipants as number | undefined) ?? 3;
  return {
    id,
    model: { kind: 'logistic', inputDim: 30 },
    strategy: { name: 'fedavg', minTrainParticipants: min, minEvaluateParticipants: min },
    rounds: 1,
    minParticipants: min,
    train: { epochs: 1, batchSize: 32, learningRate: 0.1, optimizer: 'sgd' },
    evaluate: false,
    roundTimeoutMs: 600_000,
    seed: id,
    secureAggregation: { protocol: 'none' },
    ...extra,
  };
};

describe("a data team's first day: runs that cannot go on end visibly", () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses, fails, proceeds without refusing sites and cancels, each with its reason', {
    timeout: 600_000,
  }, async () => {
    const setup = await createTestWorkspace([...FIRST, LATE], 'entente-first-day-');
    dir = setup.dir;
    const port = await findFreePort();
    const siteArgs = (id: string, schema = SCHEMA_PATH): string[] => [
      '--data',
      setup.dataPath(id),
      '--schema',
      schema,
    ];
    federation = await startProcessFederation({
      workspace: dir,
      port,
      participants: FIRST.map((id) => ({ institution: id, args: siteArgs(id) })),
    });
    const fed = federation;
    const client = createMtlsClient({ baseUrl: `https://127.0.0.1:${port}`, ...setup.ws.operatorIdentity() });
    after(() => client.close());
    const availableCount = async (): Promise<number> => {
      const st = (await client.getJson<{ participants: { id: string; available: boolean }[] }>('/v1/status'))
        .body!;
      return st.participants.filter((p) => p.available).length;
    };
    const waitAvailable = (n: number) =>
      waitFor(
        `${n} participants available`,
        async () => ((await availableCount()) === n ? true : undefined),
        60_000,
      );
    /** The newest delta process registered (declaring its data) and is polling. */
    const waitRegistered = () =>
      waitFor(
        'delta to register',
        async () => (/"msg":"registered"/.test(fed.participants.get(LATE)!.stderr()) ? true : undefined),
        60_000,
      );
    const runView = (id: string) => client.getJson<View>(`/v1/runs/${id}`).then((r) => r.body!);
    const waitEnded = (id: string) =>
      waitFor(
        `run ${id} to end`,
        async () => {
          const v = await runView(id);
          return v.status === 'running' ? undefined : v;
        },
        240_000,
        250,
      );
    const db = (): Database.Database =>
      new Database(join(dir, 'coordinator', 'state', 'coordinator.db'), { readonly: true });
    const logEntries = (run: string): Record<string, unknown>[] => {
      const d = db();
      try {
        return (d.prepare('SELECT body FROM log_entries ORDER BY idx').all() as { body: Buffer }[])
          .map((r) => JSON.parse(Buffer.from(r.body).toString('utf8')) as Record<string, unknown>)
          .filter((e) => e.run === run);
      } finally {
        d.close();
      }
    };
    const journal = (id: string): { event: string; code?: string; taskId?: string; message?: string }[] => {
      try {
        return readFileSync(join(dir, 'institutions', id, 'journal.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as { event: string; code?: string; taskId?: string });
      } catch {
        return [];
      }
    };
    await waitAvailable(3);

    // 1a. A run no registered site can execute is refused before any round, naming the field and the site.
    const wrongDim = await client
      .postJson('/v1/runs', plainRun('wrong-dim', { model: { kind: 'logistic', inputDim: 31 } }))
      .then(
        () => assert.fail('a run with inputDim 31 was accepted'),
        (err: { code?: string; field?: string; message: string }) => err,
      );
    assert.equal(wrongDim.code, 'INVALID_CONFIG');
    assert.equal(wrongDim.field, 'model.inputDim');
    assert.match(wrongDim.message, /model\.inputDim: 31, but site (alpha|beta|gamma) declared 30 features/);
    const wrongClassesPath = join(dir, 'wrong-classes.json');
    writeFileSync(
      wrongClassesPath,
      JSON.stringify(plainRun('wrong-classes', { model: { kind: 'softmax', inputDim: 30, numClasses: 3 } })),
    );
    const wrongClasses = await runCli(['run', 'start', wrongClassesPath, '--workspace', dir, '--wait']);
    assert.equal(wrongClasses.code, 2, wrongClasses.stderr);
    assert.match(
      wrongClasses.stderr,
      /entente: INVALID_CONFIG: model\.numClasses: 3, but site (alpha|beta|gamma) declared 2 classes/,
    );
    for (const id of ['wrong-dim', 'wrong-classes'])
      await client.getJson(`/v1/runs/${id}`).then(
        () => assert.fail(`run ${id} exists`),
        (err: { code?: string }) => assert.equal(err.code, 'NOT_FOUND'),
      );

    // 1b. A site that registers after the run was accepted with records the run cannot use (its schema
    // has three classes, the model two): its schema digest differs from the others', so the run's first
    // phase does not open and a coded schema-mismatch event names it (no task is handed out to fail
    // once a second); the operator cancels the run and `run start --wait` exits non-zero saying so.
    const lateConfig = join(dir, 'late.json');
    writeFileSync(
      lateConfig,
      JSON.stringify(plainRun('late', { minParticipants: 4, maxFailuresPerPhase: 2 })),
    );
    const lateWait = runCli(['run', 'start', lateConfig, '--workspace', dir, '--wait', '--json']);
    await waitFor(
      'run late to exist',
      async () => (await runView('late').catch(() => undefined)) ?? undefined,
      60_000,
    );
    const threeClasses = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as { label: { classes: string[] } };
    threeClasses.label.classes.push('unknown');
    const threeClassesPath = join(dir, 'three-classes.json');
    writeFileSync(threeClassesPath, JSON.stringify(threeClasses));
    fed.startParticipant(LATE, siteArgs(LATE, threeClassesPath));
    const mismatch = await waitFor(
      'a schema-mismatch event naming delta',
      async () => {
        const st = (
          await client.getJson<{
            events: { kind: string; run_id: string | null; code: string | null; message: string }[];
          }>('/v1/status')
        ).body!;
        return st.events.find((e) => e.kind === 'schema-mismatch' && e.run_id === 'late');
      },
      120_000,
    );
    assert.equal(mismatch.code, 'SCHEMA_MISMATCH');
    assert.match(mismatch.message, /delta/);
    assert.deepEqual(
      journal(LATE).filter((e) => e.event === 'task-refused' && e.taskId?.startsWith('late.')),
      [],
      'no task of the run reached delta',
    );
    const cancelLate = await runCli(['run', 'cancel', 'late', '--workspace', dir]);
    assert.equal(cancelLate.code, 0, cancelLate.stderr);
    const late = await waitEnded('late');
    assert.equal(late.status, 'cancelled');
    const lateDone = await lateWait;
    assert.equal(lateDone.code, 5, lateDone.stderr);
    assert.match(lateDone.stderr, /entente: RUN_CANCELLED: run late/);
    // Now that delta declared three classes, a two-class run is refused up front, naming it.
    const nowRefused = await client.postJson('/v1/runs', plainRun('after-delta')).then(
      () => assert.fail('accepted'),
      (err: { code?: string; message: string }) => err,
    );
    assert.equal(nowRefused.code, 'INVALID_CONFIG');
    assert.match(nowRefused.message, /site delta declared 3/);

    // 2. delta comes back with its real schema and a site policy it trains only MLPs under: it refuses.
    await stopChild(fed.participants.get(LATE)!);
    const policyPath = join(dir, 'institutions', LATE, 'site.json');
    writeFileSync(policyPath, JSON.stringify({ allowedModels: ['mlp'] }));
    fed.startParticipant(LATE, [...siteArgs(LATE), '--site-config', policyPath]);
    await waitRegistered();
    // Enough remain: the round goes on without delta.
    await client.postJson('/v1/runs', plainRun('without-delta', { rounds: 2 }));
    const without = await waitEnded('without-delta');
    assert.equal(without.status, 'completed', JSON.stringify(without.failure));
    assert.deepEqual(
      without.rounds.map((r) => r.contributors),
      [FIRST, FIRST],
    );
    const refusedEvents = (() => {
      const d = db();
      try {
        return d
          .prepare(
            "SELECT round, code FROM events WHERE kind = 'participant-refused' AND run_id = ? AND participant = ? ORDER BY id",
          )
          .all('without-delta', LATE) as { round: number; code: string }[];
      } finally {
        d.close();
      }
    })();
    assert.deepEqual(
      refusedEvents.map((e) => [e.round, e.code]),
      [
        [1, 'SITE_POLICY_REFUSED'],
        [2, 'SITE_POLICY_REFUSED'],
      ],
    );
    // Too few remain (plain): the run fails at once naming delta and its reason.
    await client.postJson(
      '/v1/runs',
      plainRun('needs-delta', { minParticipants: 4, maxFailuresPerPhase: 1 }),
    );
    const needs = await waitEnded('needs-delta');
    assert.equal(needs.status, 'failed');
    assert.equal(needs.failure?.code, 'PHASE_FAILED');
    assert.match(
      needs.failure!.message,
      /delta \(SITE_POLICY_REFUSED: site\.allowedModels: model kind "logistic"/,
    );
    // Too few remain (secure aggregation, threshold 4): each attempt aborts naming the refusal; then the run fails.
    await client.postJson(
      '/v1/runs',
      plainRun('needs-delta-secagg', {
        minParticipants: 4,
        maxAttemptsPerRound: 2,
        secureAggregation: { protocol: 'secagg', threshold: 4, stageTimeoutMs: 60_000, maxWeight: 1000 },
      }),
    );
    const secagg = await waitEnded('needs-delta-secagg');
    assert.equal(secagg.status, 'failed');
    assert.equal(secagg.failure?.code, 'ATTEMPTS_EXHAUSTED');
    assert.match(secagg.failure!.message, /aborted in all 2 attempts.*refused: delta \(SITE_POLICY_REFUSED/);

    // 3. Cancel: delta now answers every task late, so the run's train phase is open when it is cancelled.
    await stopChild(fed.participants.get(LATE)!);
    fed.startParticipant(LATE, [...siteArgs(LATE), '--slow-ms', '15000']);
    await waitRegistered();
    const cancelConfig = join(dir, 'cancel-me.json');
    writeFileSync(cancelConfig, JSON.stringify(plainRun('cancel-me', { rounds: 50, minParticipants: 4 })));
    const cancelWait = runCli(['run', 'start', cancelConfig, '--workspace', dir, '--wait', '--json']);
    // delta holds its train task (it answers 15 s later) when the run is cancelled.
    await waitFor(
      'delta to receive its train task of cancel-me',
      async () =>
        fed.participants.get(LATE)!.stderr().includes('"task":"cancel-me.r1.train.delta"') ? true : undefined,
      120_000,
      100,
    );
    const cancelled = await runCli(['run', 'cancel', 'cancel-me', '--workspace', dir]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, /run cancel-me: cancelled/);
    const view = await runView('cancel-me');
    assert.equal(view.status, 'cancelled');
    assert.equal(view.cancellation?.by, setup.ws.consortium.operators[0]);
    const openTasks = (): number => {
      const d = db();
      try {
        return (
          d
            .prepare("SELECT COUNT(*) AS n FROM tasks WHERE run_id = 'cancel-me' AND status = 'open'")
            .get() as {
            n: number;
          }
        ).n;
      } finally {
        d.close();
      }
    };
    const allTasks = (): number => {
      const d = db();
      try {
        return (
          d.prepare("SELECT COUNT(*) AS n FROM tasks WHERE run_id = 'cancel-me'").get() as { n: number }
        ).n;
      } finally {
        d.close();
      }
    };
    assert.equal(openTasks(), 0, 'every open task was withdrawn');
    const tasksAtCancel = allTasks();
    // delta's late result is stale.
    await waitFor(
      "delta's late result to be refused as STALE_ROUND",
      async () => {
        const d = db();
        try {
          const row = d
            .prepare(
              "SELECT code FROM events WHERE kind = 'result-refused' AND run_id = 'cancel-me' AND participant = ? AND code = 'STALE_ROUND'",
            )
            .get(LATE);
          return row ? true : undefined;
        } finally {
          d.close();
        }
      },
      120_000,
      250,
    );
    const waitedCancel = await cancelWait;
    assert.equal(waitedCancel.code, 5, waitedCancel.stderr);
    assert.match(waitedCancel.stderr, /entente: RUN_CANCELLED: run cancel-me: cancelled/);
    const again = await runCli(['run', 'cancel', 'cancel-me', '--workspace', dir]);
    assert.equal(again.code, 5, again.stderr);
    assert.match(again.stderr, /entente: CONFLICT: runId: run "cancel-me" already ended \(cancelled\)/);
    assert.deepEqual(
      logEntries('cancel-me')
        .filter((e) => e.kind === 'run-cancelled')
        .map((e) => e.proposal ?? null),
      [null],
    );

    // It never restarts: the coordinator is killed and restarted; the run stays cancelled, and the next
    // run starts and completes with every site.
    fed.coordinator.child.kill('SIGKILL');
    await fed.coordinator.exited;
    await fed.startCoordinator(port);
    await waitAvailable(4);
    assert.equal((await runView('cancel-me')).status, 'cancelled');
    await stopChild(fed.participants.get(LATE)!);
    fed.startParticipant(LATE, siteArgs(LATE));
    await waitRegistered();
    await client.postJson('/v1/runs', plainRun('after-cancel', { minParticipants: 4 }));
    const next = await waitEnded('after-cancel');
    assert.equal(next.status, 'completed');
    assert.deepEqual(next.rounds[0]!.contributors, [...FIRST, LATE].sort());
    assert.equal((await runView('cancel-me')).status, 'cancelled');
    assert.equal(
      allTasks(),
      tasksAtCancel,
      'no task of the cancelled run was written after it was cancelled',
    );
    assert.equal(openTasks(), 0);
  });
});
