/**
 * A data team's first day with real processes: the mistakes an operator makes with `entente` processes
 * on one workspace, each refused with a coded answer while the honest processes carry on.
 *  - a second coordinator on the same workspace: WORKSPACE_LOCKED naming the first one's pid, nothing
 *    touched; the lock is released on SIGTERM/SIGINT and a lock left by kill -9 is taken over;
 *  - the coordinator stopped and restarted under participants started with --workspace: they wait
 *    (UNAVAILABLE, backoff) and reconnect, never dying of an uncaught exception;
 *  - two processes started as the same institution: the second exits with CONFLICT; one restarted
 *    after a crash is accepted at once; one that stalled past the liveness window is replaced, and
 *    when it wakes it exits with CONFLICT.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { exitCodeOf } from '../../src/core/index.ts';
import { type ChildHandle, spawnEntente, stopChild, waitForUrl } from '../../src/simulation/index.ts';
import type { Workspace } from '../../src/storage/index.ts';
import { type MtlsClient, createMtlsClient } from '../../src/transport/index.ts';
import { SCHEMA_PATH, createTestWorkspace, waitFor } from './fixtures.ts';

const live = new Set<ChildHandle>();
after(async () => {
  await Promise.all([...live].map((c) => stopChild(c)));
});

function spawn(name: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildHandle {
  const h = spawnEntente(name, args, env ? { env } : {});
  live.add(h);
  void h.exited.then(() => live.delete(h));
  return h;
}

const startCoordinator = async (dir: string, port = '0'): Promise<ChildHandle> => {
  const h = spawn('coordinator', ['coordinator', 'start', '--workspace', dir, '--port', port]);
  await waitForUrl(h);
  return h;
};

const participantArgs = (dir: string, id: string, data: string): string[] => [
  'participant',
  'start',
  '--workspace',
  dir,
  '--institution',
  id,
  '--data',
  data,
  '--schema',
  SCHEMA_PATH,
];

interface Status {
  participants: { id: string; available: boolean; lastSeenMsAgo: number | null }[];
}

const operatorOf = (ws: Workspace): MtlsClient =>
  createMtlsClient({ baseUrl: ws.readEndpoint(), ...ws.operatorIdentity() });

const availability = async (operator: MtlsClient, id: string): Promise<boolean> =>
  (await operator.getJson<Status>('/v1/status')).body!.participants.find((p) => p.id === id)!.available;

const lockPath = (dir: string) => join(dir, 'coordinator', 'coordinator.lock');
const lockPid = (dir: string): number =>
  (JSON.parse(readFileSync(lockPath(dir), 'utf8')) as { pid: number }).pid;

describe('one coordinator per workspace', () => {
  it('a second coordinator is refused with WORKSPACE_LOCKED and touches nothing; the lock follows the first', {
    timeout: 180_000,
  }, async () => {
    const setup = await createTestWorkspace(['alpha'], 'entente-lock-');
    after(() => rmSync(setup.dir, { recursive: true, force: true }));
    const dir = setup.dir;
    const first = await startCoordinator(dir);
    const participant = spawn('alpha', participantArgs(dir, 'alpha', setup.dataPath('alpha')));
    const operator = operatorOf(setup.ws);
    after(() => operator.close());
    await waitFor(
      'alpha to be available',
      async () => ((await availability(operator, 'alpha')) ? true : undefined),
      60_000,
    );
    assert.equal(lockPid(dir), first.child.pid);

    // The first coordinator's state as the second one finds it, with an upload in progress.
    const endpoint = join(dir, 'coordinator', 'endpoint.json');
    const state = join(dir, 'coordinator', 'state');
    const inFlight = join(state, 'blobs', 'tmp', 'upload-in-progress');
    writeFileSync(inFlight, 'half an upload');
    // (The store itself is busy with the first coordinator's own writes; the second never opens it.)
    const watched = [endpoint, lockPath(dir), join(state, 'port.json'), inFlight];
    const snapshot = () =>
      watched.map((p) => {
        const st = statSync(p);
        return { p, bytes: readFileSync(p, 'utf8').length, mtimeMs: st.mtimeMs, ino: st.ino };
      });
    const before = snapshot();
    const endpointBefore = readFileSync(endpoint, 'utf8');

    // The mistake: a second `coordinator start` on the same workspace (another port, so no PORT_IN_USE).
    const second = spawn('second-coordinator', ['coordinator', 'start', '--workspace', dir, '--port', '0']);
    const code = await second.exited;
    assert.equal(code, exitCodeOf('WORKSPACE_LOCKED'));
    assert.match(second.stderr(), new RegExp(`entente: WORKSPACE_LOCKED: .*pid ${first.child.pid}\\b`));
    assert.doesNotMatch(second.stderr(), /\n\s+at /, 'no stack trace');
    assert.deepEqual(
      snapshot(),
      before,
      'endpoint, lock, store, port file and the upload in progress untouched',
    );
    assert.equal(readFileSync(endpoint, 'utf8'), endpointBefore);

    // The first coordinator and its participant carry on.
    assert.equal(first.child.exitCode, null);
    assert.equal(participant.child.exitCode, null);
    assert.equal(await availability(operator, 'alpha'), true);
    rmSync(inFlight);

    // SIGTERM: a clean exit releases the lock and removes the endpoint file.
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    assert.equal(existsSync(lockPath(dir)), false, 'lock released on SIGTERM');
    assert.equal(existsSync(endpoint), false);

    // SIGINT (Ctrl-C) likewise.
    const third = await startCoordinator(dir);
    assert.equal(lockPid(dir), third.child.pid);
    third.child.kill('SIGINT');
    assert.equal(await third.exited, 0, `${third.child.signalCode}\n${third.stderr().slice(-3000)}`);
    assert.equal(existsSync(lockPath(dir)), false, 'lock released on SIGINT');

    // kill -9 leaves a stale lock: the next start takes it over and says so.
    const killed = await startCoordinator(dir);
    killed.child.kill('SIGKILL');
    await killed.exited;
    assert.equal(lockPid(dir), killed.child.pid, 'a stale lock was left behind');
    const next = await startCoordinator(dir);
    assert.equal(lockPid(dir), next.child.pid);
    assert.match(
      next.stderr(),
      new RegExp(`took over a stale workspace lock: coordinator pid ${killed.child.pid} `),
    );
    // The participant (started with --workspace) lived through all of it and is back.
    const again = operatorOf(setup.ws);
    after(() => again.close());
    await waitFor(
      'alpha to be available again',
      async () => ((await availability(again, 'alpha')) ? true : undefined),
      60_000,
    );
    assert.equal(participant.child.exitCode, null);
  });
});

describe('participants started with --workspace outlive their coordinator', () => {
  it('they wait while no coordinator is recorded and reconnect to a restarted one on a new port', {
    timeout: 180_000,
  }, async () => {
    const ids = ['alpha', 'beta'];
    const setup = await createTestWorkspace(ids, 'entente-outlive-');
    after(() => rmSync(setup.dir, { recursive: true, force: true }));
    const dir = setup.dir;
    let coordinator = await startCoordinator(dir);
    // Heartbeats every 5 s; debug logs show each heartbeat that could not be delivered.
    const participants = ids.map((id) =>
      spawn(id, participantArgs(dir, id, setup.dataPath(id)), { ENTENTE_LOG_LEVEL: 'debug' }),
    );
    let operator = operatorOf(setup.ws);
    const allAvailable = async (client: MtlsClient) =>
      (await client.getJson<Status>('/v1/status')).body!.participants.every((p) => p.available)
        ? true
        : undefined;
    await waitFor('both participants available', () => allAvailable(operator), 60_000);
    await operator.close();
    const oldUrl = setup.ws.readEndpoint();

    // The mistake: the coordinator is stopped (its endpoint file goes) and restarted a while later.
    coordinator.child.kill('SIGTERM');
    await coordinator.exited;
    assert.equal(existsSync(join(dir, 'coordinator', 'endpoint.json')), false);
    // Each participant backs off on UNAVAILABLE, and a heartbeat fires while nothing is recorded.
    for (const p of participants) {
      await waitFor(
        `${p.name} to find no coordinator recorded`,
        async () =>
          p.child.exitCode !== null ||
          (/"code":"UNAVAILABLE".*no running coordinator recorded/.test(p.stderr()) &&
            /heartbeat not delivered: no running coordinator recorded/.test(p.stderr()))
            ? true
            : undefined,
        60_000,
      );
    }
    for (const p of participants) {
      assert.equal(p.child.exitCode, null, `${p.name} is still running:\n${p.stderr().slice(-2000)}`);
      assert.doesNotMatch(p.stderr(), /Uncaught|\n\s+at /, `${p.name} printed no stack trace`);
    }

    // Restarted on another port: they re-read the endpoint file and take part again.
    coordinator = await startCoordinator(dir, '0');
    const newUrl = setup.ws.readEndpoint();
    assert.notEqual(newUrl, oldUrl);
    operator = operatorOf(setup.ws);
    after(() => operator.close());
    await waitFor('both participants available after the restart', () => allAvailable(operator), 60_000);
    await operator.postJson('/v1/runs', {
      id: 'after-restart',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 2 },
      rounds: 1,
      minParticipants: 2,
      secureAggregation: { protocol: 'none' },
      train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
      evaluate: false,
      seed: 'after-restart',
    });
    const done = await waitFor(
      'the run to complete',
      async () => {
        const v = (
          await operator.getJson<{ status: string; rounds: { contributors: string[] }[] }>(
            '/v1/runs/after-restart',
          )
        ).body!;
        return v.status === 'completed' ? v : undefined;
      },
      120_000,
      200,
    );
    assert.deepEqual(done.rounds[0]!.contributors, ids);
    for (const p of participants) assert.equal(p.child.exitCode, null);
    await stopChild(coordinator);
  });
});

describe('one live process per institution', () => {
  it('a duplicate is refused with CONFLICT; a restart after a crash is accepted; a stalled one is replaced', {
    timeout: 240_000,
  }, async () => {
    const ids = ['alpha', 'beta'];
    const setup = await createTestWorkspace(ids, 'entente-duplicate-');
    after(() => rmSync(setup.dir, { recursive: true, force: true }));
    const dir = setup.dir;
    await startCoordinator(dir);
    const args = (id: string) => participantArgs(dir, id, setup.dataPath(id));
    const first = spawn('alpha-1', args('alpha'));
    spawn('beta', args('beta'));
    const operator = operatorOf(setup.ws);
    after(() => operator.close());
    await waitFor(
      'alpha to be available',
      async () => ((await availability(operator, 'alpha')) ? true : undefined),
      60_000,
    );

    // The mistake: a second process started as alpha while the first runs. It exits, coded, at once.
    const duplicate = spawn('alpha-2', args('alpha'));
    assert.equal(await duplicate.exited, exitCodeOf('CONFLICT'));
    assert.match(
      duplicate.stderr(),
      /entente: CONFLICT: institution: "alpha" is already taking part from another live process/,
    );
    assert.doesNotMatch(duplicate.stderr(), /\n\s+at /);
    assert.equal(first.child.exitCode, null, 'the first alpha carries on');
    const registered = (h: ChildHandle) => (h.stderr().match(/"msg":"registered"/g) ?? []).length;
    assert.equal(registered(duplicate), 0);

    // A crash (kill -9) and a restart right away: accepted without waiting for the liveness window.
    first.child.kill('SIGKILL');
    await first.exited;
    const restarted = spawn('alpha-3', args('alpha'));
    await waitFor(
      'the restarted alpha to register',
      async () => (registered(restarted) > 0 ? true : undefined),
      60_000,
    );
    assert.equal(restarted.child.exitCode, null);
    assert.doesNotMatch(restarted.stderr(), /CONFLICT/);

    // A process that stalls (SIGSTOP: its connections stay open, it is no longer seen) is replaced once
    // the liveness window has passed; when it wakes up it learns it was replaced and exits, coded.
    restarted.child.kill('SIGSTOP');
    try {
      await waitFor(
        'the stalled alpha to drop out',
        async () => ((await availability(operator, 'alpha')) ? undefined : true),
        120_000,
        500,
      );
      const replacement = spawn('alpha-4', args('alpha'));
      await waitFor(
        'the replacement to register',
        async () => (registered(replacement) > 0 ? true : undefined),
        60_000,
      );
      await waitFor(
        'alpha to be available again',
        async () => ((await availability(operator, 'alpha')) ? true : undefined),
        60_000,
      );
    } finally {
      restarted.child.kill('SIGCONT');
    }
    assert.equal(await restarted.exited, exitCodeOf('CONFLICT'));
    assert.match(restarted.stderr(), /entente: CONFLICT: institution: another process registered as "alpha"/);
    assert.equal(await availability(operator, 'alpha'), true, 'the replacement carries on');
  });
});
