/**
 * A verified member turned hostile, against real coordinator and participant processes over loopback
 * mutual TLS: it floods long polls, floods refused requests, uploads past its storage quota and leaves
 * half-written uploads behind a kill -9; and an enrolled site must find a restarted coordinator. Each
 * attack is refused with its code while the honest run still completes.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pino from 'pino';
import { startCoordinator } from '../../src/coordinator/index.ts';
import { EntenteError } from '../../src/core/index.ts';
import { computeSchemaDigest, parseDataSchema } from '../../src/data/index.ts';
import {
  type ChildHandle,
  type ProcessFederation,
  demoRunConfig,
  spawnEntente,
  stopChild,
  waitForUrl,
} from '../../src/simulation/index.ts';
import type { TlsIdentity } from '../../src/storage/index.ts';
import { type MtlsClient, createMtlsClient } from '../../src/transport/index.ts';
import {
  SCHEMA_PATH,
  startTestFederation,
  waitFor,
  waitForAllAvailable,
  waitForRunCompleted,
} from './fixtures.ts';
import {
  type GovernedConsortium,
  OPERATOR,
  startGovernedConsortium,
  startSite,
  writeSiteData,
} from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;
const MAX_POLLS = 4;
const QUOTA_MIB = 1;

interface RawAnswer {
  status: number;
  body: string;
}

/** One request on its own TLS connection (no pooling), so a flood really holds many sockets. */
function rawRequest(
  port: number,
  identity: TlsIdentity,
  method: string,
  path: string,
  options: { headers?: Record<string, string | number>; body?: Buffer; hold?: boolean } = {},
): { answer: Promise<RawAnswer>; destroy: () => void; write: (b: Buffer) => void } {
  const req = httpsRequest({
    host: '127.0.0.1',
    port,
    method,
    path,
    agent: false,
    ca: identity.caPem,
    cert: identity.certPem,
    key: identity.keyPem,
    minVersion: 'TLSv1.3',
    headers: options.headers ?? {},
  });
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  answer.catch(() => {});
  if (options.body) req.write(options.body);
  if (!options.hold) req.end();
  return { answer, destroy: () => req.destroy(), write: (b) => req.write(b) };
}

function plainRun(id: string): Record<string, unknown> {
  return {
    id,
    model: { kind: 'logistic', inputDim: 30 },
    strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
    rounds: 2,
    minParticipants: 3,
    secureAggregation: { protocol: 'none' },
    train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
    standardize: 'federated',
    evaluate: true,
    roundTimeoutMs: 120_000,
    seed: id,
  };
}

interface Entry {
  kind: string;
  participant?: string | null;
  code?: string;
  message?: string;
  counts?: Record<string, number>;
  recordedInFull?: number;
}

describe('a hostile member against per-member limits', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  let port = 0;
  let operator: MtlsClient;
  let ws: Awaited<ReturnType<typeof startTestFederation>>['setup']['ws'];
  const stateDir = (): string => join(dir, 'coordinator', 'state');
  const logEntries = (): Entry[] => {
    const db = new Database(join(stateDir(), 'coordinator.db'), { readonly: true });
    try {
      return (db.prepare('SELECT body FROM log_entries ORDER BY idx').all() as { body: Buffer }[]).map(
        (r) => JSON.parse(Buffer.from(r.body).toString('utf8')) as Entry,
      );
    } finally {
      db.close();
    }
  };
  const completes = async (runId: string): Promise<void> => {
    const created = await operator.postJson('/v1/runs', plainRun(runId));
    assert.equal(created.status, 201);
    const done = await waitForRunCompleted<{ status: string; rounds: { modelOut: string | null }[] }>(
      operator,
      runId,
      150_000,
    );
    assert.equal(done.rounds.filter((r) => r.modelOut !== null).length, 2, 'both rounds produced a model');
  };

  before(async () => {
    const started = await startTestFederation({
      institutions: INSTITUTIONS,
      prefix: 'entente-member-limits-',
      coordinatorArgs: [
        '--max-polls-per-member',
        String(MAX_POLLS),
        '--member-storage-mb',
        String(QUOTA_MIB),
        '--refusal-window-ms',
        '2000',
      ],
    });
    federation = started.federation;
    dir = started.setup.dir;
    port = started.port;
    operator = started.client;
    ws = started.setup.ws;
  });
  after(async () => {
    await operator?.close();
    await federation?.stop();
  });

  it('a long-poll flood from one member does not slow others', { timeout: 240_000 }, async () => {
    // gamma's certificate opens 200 long polls at once, each on its own connection.
    const FLOOD = 200;
    const flood = Array.from({ length: FLOOD }, () =>
      rawRequest(port, ws.institutionIdentity('gamma'), 'GET', '/v1/tasks/next?waitMs=60000'),
    );
    const answered: RawAnswer[] = [];
    for (const f of flood)
      void f.answer.then(
        (a) => answered.push(a),
        () => {},
      );
    // All but a few are refused with RATE_LIMITED without waiting for anything (the accepted ones wait
    // for a task; an honest gamma's own poll may take one of the slots).
    await waitFor(
      'the extra polls to be refused',
      async () => (answered.length >= FLOOD - MAX_POLLS ? true : undefined),
      120_000,
    );
    const refused = answered.filter((a) => a.status === 429);
    for (const r of refused) {
      const e = (JSON.parse(r.body) as { error: { code: string; message: string } }).error;
      assert.equal(e.code, 'RATE_LIMITED');
      assert.match(e.message, /open polls of GET \/v1\/tasks\/next/);
    }
    assert.ok(refused.length >= FLOOD - 2 * MAX_POLLS, `${refused.length} of ${FLOOD} polls refused`);
    // While the flood's sockets are open, the operator is answered, and sees at most a few held.
    const status = await operator.getJson<{
      participants: { id: string }[];
      openPolls: Record<string, number>;
    }>('/v1/status');
    assert.equal(status.status, 200);
    assert.deepEqual(status.body!.participants.map((p) => p.id).sort(), [...INSTITUTIONS]);
    assert.ok((status.body!.openPolls.gamma ?? 0) <= MAX_POLLS, JSON.stringify(status.body!.openPolls));
    // ...and another member's poll is served too.
    const beta = createMtlsClient({
      baseUrl: `https://127.0.0.1:${port}`,
      ...ws.institutionIdentity('beta'),
    });
    const betaPoll = await beta.getJson('/v1/tasks/next?waitMs=0');
    assert.equal(betaPoll.status, 204);
    await beta.close();
    for (const f of flood) f.destroy();
    await completes('after-poll-flood');
  });

  it('a flood of refused requests adds a bounded number of log entries', { timeout: 240_000 }, async () => {
    const before = logEntries().length;
    const alpha = createMtlsClient({
      baseUrl: `https://127.0.0.1:${port}`,
      ...ws.institutionIdentity('alpha'),
    });
    const REFUSED = 1000;
    for (let i = 0; i < REFUSED; i += 50)
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const r = await alpha.getJson('/v1/status').then(
            () => null,
            (err: unknown) => err,
          );
          assert.ok(r instanceof EntenteError && r.code === 'FORBIDDEN');
        }),
      );
    // Every refusal is accounted for: in full (a few per window) or counted in a window's summary.
    const mine = await waitFor(
      'the refusal summaries',
      async () => {
        const entries = logEntries()
          .slice(before)
          .filter((e) => e.participant === 'alpha');
        const full = entries.filter((e) => e.kind === 'refused' && e.code === 'FORBIDDEN').length;
        const counted = entries
          .filter((e) => e.kind === 'refusals-summarized')
          .reduce((s, e) => s + (e.counts?.FORBIDDEN ?? 0) - (e.recordedInFull ?? 0), 0);
        return full + counted === REFUSED ? entries : undefined;
      },
      120_000,
      250,
    );
    const summaries = mine.filter((e) => e.kind === 'refusals-summarized');
    assert.ok(summaries.length >= 1);
    assert.ok(
      mine.length <= 4 * (summaries.length + 1),
      `${mine.length} entries for ${REFUSED} refusals in ${summaries.length} windows`,
    );
    // However slow the machine (more windows), far fewer entries than refusals.
    assert.ok(mine.length <= REFUSED / 10, `${mine.length} entries, not one per refused request`);
    await alpha.close();

    // Caller text comes back escaped and bounded: a run id with control characters in an error message.
    const hostileId = encodeURIComponent(`x\u001b[2J\n\u202e${'y'.repeat(50)}`);
    const echoed = rawRequest(port, ws.operatorIdentity(), 'GET', `/v1/runs/${hostileId}`);
    const answer = await echoed.answer;
    assert.ok(answer.status >= 400);
    const message = (JSON.parse(answer.body) as { error: { message: string } }).error.message;
    assert.ok(
      [...message].every((c) => c.charCodeAt(0) >= 0x20 && c !== '\u202e'),
      `no control character in ${JSON.stringify(message)}`,
    );
    assert.ok(message.includes('x\\u001b[2J\\u000a\\u202e'), message);
    await completes('after-refusal-flood');
  });

  it('uploads over the quota are refused', { timeout: 240_000 }, async () => {
    const put = (who: string, bytes: Buffer): Promise<RawAnswer> => {
      const sha = createHash('sha256').update(bytes).digest('hex');
      return rawRequest(port, ws.institutionIdentity(who), 'PUT', `/v1/blobs/${sha}`, {
        headers: { 'content-type': 'application/octet-stream', 'content-length': bytes.length },
        body: bytes,
      }).answer;
    };
    // alpha stores chunks nothing refers to: 3 × 300 KiB fit in its 1 MiB quota, the 4th does not.
    const piece = 300 * 1024;
    for (let i = 0; i < 3; i++) assert.equal((await put('alpha', randomBytes(piece))).status, 200);
    const over = await put('alpha', randomBytes(piece));
    assert.equal(over.status, 507);
    const err = (JSON.parse(over.body) as { error: { code: string; field: string; message: string } }).error;
    assert.equal(err.code, 'QUOTA_EXCEEDED');
    assert.equal(err.field, 'memberStorageBytes');
    assert.match(err.message, /quota of 1048576 bytes/);
    // Another member's quota is its own.
    assert.equal((await put('beta', randomBytes(piece))).status, 200);
    // alpha's honest updates (accepted results no longer count) still fit: the run completes.
    await completes('after-quota');
  });

  it('temporary uploads left by a kill -9 are removed at start-up', { timeout: 240_000 }, async () => {
    const tmp = join(stateDir(), 'blobs', 'tmp');
    // Five uploads that announce 150 KiB (within gamma's quota), send 64 KiB and stall.
    const stalled = Array.from({ length: 5 }, () => {
      const bytes = randomBytes(150 * 1024);
      const sha = createHash('sha256').update(bytes).digest('hex');
      const r = rawRequest(port, ws.institutionIdentity('gamma'), 'PUT', `/v1/blobs/${sha}`, {
        headers: { 'content-type': 'application/octet-stream', 'content-length': bytes.length },
        body: bytes.subarray(0, 64 * 1024),
        hold: true,
      });
      return r;
    });
    await waitFor(
      '5 temporary upload files',
      async () => (readdirSync(tmp).length >= 5 ? true : undefined),
      60_000,
    );
    federation!.coordinator.child.kill('SIGKILL');
    await federation!.coordinator.exited;
    for (const s of stalled) s.destroy();
    assert.ok(readdirSync(tmp).length >= 5, 'the kill -9 left the partial uploads behind');
    await federation!.startCoordinator(port);
    assert.deepEqual(readdirSync(tmp), [], 'removed when the coordinator started');
    assert.match(federation!.coordinator.stderr(), /removed temporary upload files left by an earlier crash/);
    await operator.close();
    operator = createMtlsClient({ baseUrl: `https://127.0.0.1:${port}`, ...ws.operatorIdentity() });
    await waitForAllAvailable(operator, 120_000);
    await completes('after-kill');
  });
});

describe('enrolled sites and a restarted coordinator', () => {
  const INST = ['alpha', 'beta', 'gamma'] as const;
  const SCHEMA_DIGEST = computeSchemaDigest(parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))));
  let gov: GovernedConsortium;
  let coordinator: ChildHandle | undefined;
  let blocker: Server | undefined;
  const sites: ChildHandle[] = [];
  before(async () => {
    gov = await startGovernedConsortium({ institutions: INST, dataSchemaDigest: SCHEMA_DIGEST });
  });
  after(async () => {
    blocker?.close();
    await Promise.all(sites.map((c) => stopChild(c)));
    if (coordinator) await stopChild(coordinator);
    await gov?.close();
  });
  const startProcess = async (): Promise<string> => {
    // No --port: the coordinator comes back where the sites enrolled.
    coordinator = spawnEntente('coordinator', ['coordinator', 'start', '--workspace', gov.dir]);
    return waitForUrl(coordinator);
  };

  it('enrolled sites find a restarted coordinator', { timeout: 300_000 }, async () => {
    // The in-process coordinator the sites enrolled with stops; a coordinator process takes over.
    await gov.coordinator.close();
    assert.equal(await startProcess(), gov.url, 'the same URL after a restart');
    const data = writeSiteData(gov.sites, INST);
    for (const id of INST) sites.push(startSite(gov.sites.get(id)!, data.get(id)!));
    await waitForAllAvailable(gov.operator, 120_000);
    const posted = await gov.operator.postJson<{ proposal: string }>('/v1/runs', {
      ...demoRunConfig(3, 'restart-sites'),
      id: 'restart-sites',
      dataSchemaDigest: SCHEMA_DIGEST,
    });
    assert.equal(posted.status, 202);
    await gov.sign(OPERATOR, posted.body.proposal);
    await gov.sign('alpha', posted.body.proposal);
    assert.equal((await gov.sign('beta', posted.body.proposal)).status, 'approved');
    await waitFor(
      'round 1 to start',
      async () => {
        const v = (await gov.operator.getJson<{ round: number; status: string }>('/v1/runs/restart-sites'))
          .body!;
        return v.round >= 1 ? true : undefined;
      },
      120_000,
    );
    // kill -9; while it is down its port is taken by someone else: the restart fails naming the port.
    coordinator!.child.kill('SIGKILL');
    await coordinator!.exited;
    const port = Number(new URL(gov.url).port);
    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(port, '127.0.0.1', resolve));
    await assert.rejects(
      startCoordinator({ workspaceDir: gov.dir, log: pino({ level: 'silent' }) }),
      (err: unknown) =>
        err instanceof EntenteError && err.code === 'PORT_IN_USE' && err.message.includes(String(port)),
    );
    await new Promise<void>((resolve) => blocker!.close(() => resolve()));
    blocker = undefined;
    // Restarted on the same port: the sites (which read the URL once) reconnect and the run completes.
    assert.equal(await startProcess(), gov.url);
    const done = await waitForRunCompleted<{ status: string; rounds: { modelOut: string | null }[] }>(
      gov.operator,
      'restart-sites',
      240_000,
    );
    assert.equal(done.rounds.filter((r) => r.modelOut !== null).length, 3);
    for (const s of sites) assert.equal(s.child.exitCode, null, `${s.name} is still running`);
  });
});
