/**
 * The coordinator process: wires the SQLite store, the blob store and the run engine to the mutual-TLS
 * HTTPS server, owns the timers (deadline ticks) and the long-poll waiters. Every endpoint checks the
 * caller's role (from its verified certificate) before doing anything.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { parseEvaluationPlan } from '../governance/index.ts';
import {
  type DataShape,
  MAX_CHUNK_BYTES,
  PROTOCOL_VERSION,
  type RegisterResponse,
  SESSION_HEADER,
  parseMessage,
  parseRunConfig,
  registerRequestSchema,
  sessionIdSchema,
  taskResultSchema,
} from '../protocol/index.ts';
import {
  BlobStore,
  GovernanceStore,
  SqliteStore,
  type Workspace,
  acquireWorkspaceLock,
  computeLogOrigin,
  ensurePrivateDir,
  openWorkspace,
} from '../storage/index.ts';
import { createMtlsServer, readPeerIdentity } from '../transport/index.ts';
import { type RouteName, publicPaths, routeAccess } from './access.ts';
import { AuditLog } from './audit-log.ts';
import { blobNotAvailable, mayReadBlob } from './blob-access.ts';
import { assertPortFree, listenError, readRememberedPort } from './coordinator-port.ts';
import { EvaluationJobs } from './evaluation-jobs.ts';
import { Governance } from './governance.ts';
import { registerGovernanceRoutes } from './governance-routes.ts';
import { ParticipantSessions } from './participant-sessions.ts';
import { checkRunConfigAgainstPolicy } from './run-plan.ts';
import { RunEngine } from './run-engine.ts';

export interface CoordinatorOptions {
  readonly workspaceDir: string;
  readonly host?: string;
  readonly port?: number;
  readonly log: Logger;
  /** A participant counts as available for a new phase when seen within this window. */
  readonly livenessMs?: number;
  readonly heartbeatMs?: number;
  readonly tickMs?: number;
  /** Requests per minute one address may make to the enrollment paths (default 120). */
  readonly publicRequestsPerMinute?: number;
  /** Requests per minute all addresses together may make to the enrollment paths (default 1200). */
  readonly publicRequestsPerMinuteTotal?: number;
  /** Long polls (GET /v1/tasks/next) one member may hold open at once (default 4). */
  readonly maxPollsPerMember?: number;
  /**
   * Bytes of uploaded chunks one member may have stored that are not (yet) part of an accepted result
   * of its own (default 1 GiB).
   */
  readonly memberStorageBytes?: number;
  /** A member's refusals are summarized in the audit log per window of this length (default 60 s). */
  readonly refusalWindowMs?: number;
  /** Unreferenced chunks younger than this are kept (their result may be on its way; default 1 h). */
  readonly chunkGraceMs?: number;
  /** How often unreferenced chunks and stale temporary uploads are removed (default 10 min). */
  readonly gcIntervalMs?: number;
}

export const DEFAULT_MAX_POLLS_PER_MEMBER = 4;
export const DEFAULT_MEMBER_STORAGE_BYTES = 1024 * 1024 * 1024;
/** A temporary upload file older than this belongs to no live request (requests time out at 120 s). */
const TEMPORARY_UPLOAD_MAX_AGE_MS = 10 * 60_000;

export interface RunningCoordinator {
  readonly url: string;
  readonly engine: RunEngine;
  close(): Promise<void>;
}

const sha256Param = z.strictObject({
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 hex digest'),
});
const taskParam = z.strictObject({ taskId: z.string().min(1).max(200) });
const evaluationStartSchema = z.strictObject({
  plan: z.string().regex(/^[0-9a-f]{64}$/, 'must be a plan digest'),
});
const runParam = z.strictObject({ runId: z.string().min(1).max(64) });
const waitQuery = z.object({
  waitMs: z.coerce.number().int().min(0).max(60_000).default(25_000),
  /** The newest checkpoint size the participant has witnessed: a newer one ends a wait without tasks. */
  checkpoint: z.coerce.number().int().min(-1).optional(),
});

export async function startCoordinator(options: CoordinatorOptions): Promise<RunningCoordinator> {
  const ws = openWorkspace(options.workspaceDir);
  // One coordinator per workspace: a second one is refused here, before it touches anything (the
  // endpoint file, the store, temporary uploads). A lock left by a coordinator that died is taken over.
  const lock = acquireWorkspaceLock(ws.coordinatorLockFile(), { now: Date.now() });
  if (lock.tookOver)
    options.log.warn(
      { stalePid: lock.tookOver.pid, lockedAt: lock.tookOver.lockedAt },
      `took over a stale workspace lock: coordinator pid ${lock.tookOver.pid} is no longer running`,
    );
  // Released at exit whatever the path (process.exit after an uncaught error included).
  const releaseAtExit = (): void => lock.release();
  process.on('exit', releaseAtExit);
  try {
    return await serve(options, ws, () => {
      process.off('exit', releaseAtExit);
      lock.release();
    });
  } catch (err) {
    process.off('exit', releaseAtExit);
    lock.release();
    throw err;
  }
}

async function serve(
  options: CoordinatorOptions,
  ws: Workspace,
  releaseLock: () => void,
): Promise<RunningCoordinator> {
  const log = options.log;
  const stateDir = ws.coordinatorStateDir();
  ensurePrivateDir(stateDir);
  // Enrolled sites keep the URL they enrolled with: without an explicit port the coordinator comes
  // back on the port it was served on before (kept in the state directory), or fails naming it. The
  // port is checked before the state is opened (a coordinator that cannot serve changes nothing).
  const host = options.host ?? '127.0.0.1';
  const portFile = join(stateDir, 'port.json');
  const remembered = options.port === undefined ? readRememberedPort(portFile) : undefined;
  const port = options.port ?? remembered ?? 0;
  if (port !== 0) await assertPortFree(host, port, remembered !== undefined);
  const store = new SqliteStore(join(stateDir, 'coordinator.db'));
  // A damaged database is found here, before anything reads or extends it: refuse to start.
  try {
    store.assertSound();
  } catch (err) {
    store.close();
    log.error({ code: (err as EntenteError).code }, (err as Error).message);
    throw err;
  }
  const blobs = new BlobStore(join(stateDir, 'blobs'), {
    onCorrupt: (sha256, path) => {
      const message = `stored chunk ${sha256} does not hash to its address (${path}): refused, not served`;
      log.error({ sha256, path, code: 'STORE_CORRUPT' }, message);
      try {
        store.recordEvent({
          at: Date.now(),
          kind: 'store-corrupt',
          participant: null,
          run_id: null,
          round: null,
          code: 'STORE_CORRUPT',
          message,
        });
      } catch (err) {
        log.error({ err }, 'could not record the store-corrupt event');
      }
    },
  });
  if (blobs.removedAtOpen > 0)
    log.warn({ removed: blobs.removedAtOpen }, 'removed temporary upload files left by an earlier crash');
  store.setMeta('consortium', ws.consortium.consortium);
  const livenessMs = options.livenessMs ?? 15_000;
  const heartbeatMs = options.heartbeatMs ?? 5_000;
  const traffic = { bytesReceived: 0, bytesSent: 0, unauthenticatedRefusals: 0 };

  /** One live process per institution (the session id its participant sends). */
  const sessions = new ParticipantSessions({ livenessMs, now: () => Date.now() });
  const sessionOf = (request: FastifyRequest): string | undefined => {
    const raw = request.headers[SESSION_HEADER];
    if (raw === undefined) return undefined;
    return parseMessage(sessionIdSchema, raw, SESSION_HEADER);
  };
  const waiters = new Map<string, Set<() => void>>();
  let closing = false;
  const notify = (participant: string): void => {
    const set = waiters.get(participant);
    if (!set) return;
    waiters.delete(participant);
    for (const wake of set) wake();
  };
  // Set once governance is constructed (it needs the audit log, which needs the store).
  let institutions = (): string[] => [...ws.consortium.institutions];
  const available = (): string[] => {
    const now = Date.now();
    const members = institutions();
    return store
      .listParticipants()
      .filter((p) => members.includes(p.id) && p.last_seen_at !== null && now - p.last_seen_at <= livenessMs)
      .map((p) => p.id);
  };
  const audit = new AuditLog({
    store,
    log: log.child({ component: 'audit' }),
    now: () => Date.now(),
    origin: ws.consortium.log?.origin ?? computeLogOrigin(ws.consortium.consortium),
    consortium: ws.consortium.consortium,
    logKeyPem: ws.logSigningKey(),
    witnesses: ws.consortium.witnesses ?? {},
    policy: {
      consortium: ws.consortium.consortium,
      institutions: ws.consortium.institutions,
      operators: ws.consortium.operators,
      log: ws.consortium.log ?? null,
      witnesses: ws.consortium.witnesses ?? {},
    },
  });
  const gov = new GovernanceStore(store.db);
  let engineRef: RunEngine | undefined;
  const governance = new Governance({
    ws,
    store,
    gov,
    audit,
    log: log.child({ component: 'governance' }),
    now: () => Date.now(),
    ca: ws.certificateAuthority(),
    certificateDays: ws.consortium.certificateDays ?? 7,
    startRun: (config, proposal) => engineRef!.createRun(config, { proposal }),
    checkRun: (config, policy) => {
      checkRunConfigAgainstPolicy(config, policy);
      // A run no declared site could execute is refused before anyone signs it.
      engineRef?.checkAgainstSites(parseRunConfig(config));
    },
    cancelRun: (runId, proposal) => engineRef?.cancelRun(runId, { by: 'quorum', proposal }),
    finalModelOf: (runId) => engineRef?.finalModelOf(runId),
    onMembershipChange: () => engineRef?.tick(),
  });
  institutions = () => governance.institutions();
  for (const [id, key] of Object.entries(governance.enrollment.enrolledWitnesses()))
    audit.addWitness(id, key);
  const engine = new RunEngine({
    audit,
    isPaused: () => governance.isPaused(),
    onCheckpoint: () => {
      for (const id of institutions()) notify(id);
    },
    store,
    blobs,
    log,
    now: () => Date.now(),
    available,
    notify,
    consortium: ws.consortium.consortium,
    pinnedKeyOf: (member) => governance.enrollment.pinnedKeyOf(member),
    schemaDigestOf: (participant) => store.getParticipantSchemaDigest(participant),
    declaredData: () => {
      const members = new Set(institutions());
      const out: { participant: string; shape: DataShape }[] = [];
      for (const row of store.listParticipantInfo()) {
        if (!members.has(row.id) || row.info_json === null) continue;
        const info = JSON.parse(row.info_json) as { data?: DataShape };
        if (info.data) out.push({ participant: row.id, shape: info.data });
      }
      return out;
    },
    ...(options.refusalWindowMs ? { refusalWindowMs: options.refusalWindowMs } : {}),
  });
  const evaluations = new EvaluationJobs({
    store,
    blobs,
    log: log.child({ component: 'evaluation' }),
    audit,
    now: () => Date.now(),
    notify,
    available,
    isPaused: () => governance.isPaused(),
    consortium: ws.consortium.consortium,
    pinnedKeyOf: (member) => governance.enrollment.pinnedKeyOf(member),
    approvedPlan: (digest) => {
      for (const row of gov.listProposals()) {
        if (row.kind !== 'approve-evaluation-plan' || row.status !== 'approved') continue;
        if ((JSON.parse(row.proposal_json) as { subjectSha256: string }).subjectSha256 !== digest) continue;
        return parseEvaluationPlan(JSON.parse(row.subject_json));
      }
      return undefined;
    },
    knownModel: (sha256) => {
      for (const row of store.listRuns()) {
        if (row.status !== 'completed' || engine.finalModelOf(row.id) !== sha256) continue;
        const ref = engine.finalModelRef(row.id);
        if (!ref) continue;
        return {
          ref,
          modelSpec: parseRunConfig(JSON.parse(row.config_json)).model,
          ...(row.standardization_json ? { standardization: JSON.parse(row.standardization_json) } : {}),
        };
      }
      return undefined;
    },
    publishCheckpoint: () => {
      audit.publishCheckpoint();
      for (const id of institutions()) notify(id);
    },
    perSiteAllowed: () => governance.policy?.exchange.perSiteEvaluation === true,
  });
  /** Every engine's deadlines and next steps: runs, then evaluation jobs. */
  const tick = (): void => {
    engine.tick();
    evaluations.tick();
  };
  const maxPolls = options.maxPollsPerMember ?? DEFAULT_MAX_POLLS_PER_MEMBER;
  const quota = options.memberStorageBytes ?? DEFAULT_MEMBER_STORAGE_BYTES;
  const openPolls = new Map<string, number>();
  /** Bytes of uploads in progress per member (counted against its quota until they end). */
  const uploading = new Map<string, number>();

  /**
   * Removes temporary upload files no request can still own and the chunks nothing in the store
   * refers to (never one younger than the grace period: its result may still be on its way).
   */
  const collectGarbage = (): void => {
    const now = Date.now();
    const stale = blobs.removeTemporaryFiles(TEMPORARY_UPLOAD_MAX_AGE_MS, now);
    const referenced = store.referencedDigests();
    const { removed, bytes } = blobs.collectGarbage(
      (sha) => referenced.has(sha),
      options.chunkGraceMs ?? 3_600_000,
      now,
    );
    store.forgetChunkUploads(removed);
    if (stale > 0 || removed.length > 0)
      log.info({ temporaryFiles: stale, chunks: removed.length, bytes }, 'removed unreferenced blobs');
  };
  collectGarbage();

  engineRef = engine;
  const identity = ws.coordinatorIdentity();
  const app = createMtlsServer({
    ...identity,
    logger: log.child({ component: 'http' }, { level: 'warn' }),
    publicPaths,
    ...(options.publicRequestsPerMinute ? { publicRequestsPerMinute: options.publicRequestsPerMinute } : {}),
    ...(options.publicRequestsPerMinuteTotal
      ? { publicRequestsPerMinuteTotal: options.publicRequestsPerMinuteTotal }
      : {}),
    revocationReason: (serial) => governance.enrollment.revocationReason(serial),
  });

  /** The caller's member id, after checking that one of its roles may call `route` (least privilege). */
  const guard = (request: FastifyRequest, route: RouteName): string => {
    const id = readPeerIdentity(request);
    const roles = governance.rolesOf(id);
    if (roles.length === 0) {
      engine.recordRefusal(
        id,
        'UNKNOWN_PARTICIPANT',
        `certificate "${id}" is not a member of the consortium`,
      );
      throw new EntenteError(
        'UNKNOWN_PARTICIPANT',
        'the certificate does not belong to a member of this consortium',
      );
    }
    const allowed: readonly string[] = routeAccess[route];
    if (!roles.some((r) => allowed.includes(r)))
      throw new EntenteError('FORBIDDEN', `${route} is for the roles: ${allowed.join(', ')}`);
    return id;
  };

  app.addHook('onResponse', async (request, reply) => {
    traffic.bytesReceived += Number(request.headers['content-length'] ?? 0) || 0;
    traffic.bytesSent += Number(reply.getHeader('content-length') ?? 0) || 0;
  });
  app.addHook('onError', async (request, _reply, err) => {
    // STORE_CORRUPT is the coordinator's own fault, logged where it is found: not the caller's refusal.
    if (err instanceof EntenteError && err.code !== 'UNKNOWN_PARTICIPANT' && err.code !== 'STORE_CORRUPT') {
      let who: string | null = null;
      try {
        who = readPeerIdentity(request);
      } catch {
        who = null;
      }
      // Only refusals of verified members are recorded (events and the audit log): a caller without a
      // valid certificate could otherwise grow the log at will. Those are only counted.
      if (who === null) traffic.unauthenticatedRefusals++;
      else if (!request.url.includes('/result'))
        engine.recordRefusal(
          who,
          err.code,
          `${request.method} ${request.routeOptions.url ?? ''}: ${err.message}`,
        );
    }
  });

  app.post('/v1/participants/register', async (request) => {
    const id = guard(request, 'POST /v1/participants/register');
    const body = parseMessage(registerRequestSchema, request.body, 'register');
    // A second live process of the same institution is refused before it is seen.
    sessions.register(id, sessionOf(request), request.raw.socket);
    store.touchParticipant(id, Date.now(), JSON.stringify(body));
    log.info({ participant: id }, 'participant registered');
    tick();
    const res: RegisterResponse = { institution: id, consortium: ws.consortium.consortium, heartbeatMs };
    return res;
  });

  app.post('/v1/heartbeat', async (request) => {
    const id = guard(request, 'POST /v1/heartbeat');
    sessions.see(id, sessionOf(request), request.raw.socket);
    store.touchParticipant(id, Date.now());
    tick();
    return { ok: true, protocol: PROTOCOL_VERSION };
  });

  app.get('/v1/tasks/next', async (request, reply) => {
    const id = guard(request, 'GET /v1/tasks/next');
    sessions.see(id, sessionOf(request), request.raw.socket);
    // Each open poll holds a socket, a timer and a wake-up: one member may only hold a few.
    const polls = openPolls.get(id) ?? 0;
    if (polls >= maxPolls)
      throw new EntenteError(
        'RATE_LIMITED',
        `more than ${maxPolls} open polls of GET /v1/tasks/next from this member: wait for one to return`,
        { field: 'waitMs' },
      );
    openPolls.set(id, polls + 1);
    try {
      return await poll(request, reply, id);
    } finally {
      const left = (openPolls.get(id) ?? 1) - 1;
      if (left > 0) openPolls.set(id, left);
      else openPolls.delete(id);
    }
  });

  const poll = async (request: FastifyRequest, reply: FastifyReply, id: string): Promise<unknown> => {
    const { waitMs, checkpoint } = parseMessage(waitQuery, request.query, 'query');
    store.touchParticipant(id, Date.now());
    tick();
    const deadline = Date.now() + waitMs;
    const checkpointAtStart = checkpoint ?? audit.checkpointSize;
    // A participant that died mid-poll must not go on being "seen": stop as soon as its socket closes.
    const socket = request.raw.socket;
    const gone = (): boolean => request.raw.destroyed || socket.destroyed;
    for (;;) {
      if (closing) return reply.status(204).send();
      // Tasks first: witnessing never starves a site's work (it cosigns before its next poll anyway).
      const open = store.openTasksFor(id);
      if (open.length > 0) return JSON.parse(open[0]!.task_json) as unknown;
      // A checkpoint newer than the newest one the participant has witnessed (cosigned or given up
      // on): return so it can witness it. Only a newer one: a site is not woken again for the same one.
      if (audit.checkpointSize > checkpointAtStart) return reply.status(204).send();
      const left = deadline - Date.now();
      if (left <= 0 || gone()) return reply.status(204).send();
      await new Promise<void>((resolve) => {
        const set = waiters.get(id) ?? new Set();
        const wake = (): void => {
          clearTimeout(timer);
          socket.off('close', wake);
          set.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 5_000));
        socket.once('close', wake);
        set.add(wake);
        waiters.set(id, set);
      });
      if (gone()) return reply.status(204).send();
      store.touchParticipant(id, Date.now());
    }
  };

  app.put('/v1/blobs/:sha256', async (request) => {
    const id = guard(request, 'PUT /v1/blobs/:sha256');
    const { sha256 } = parseMessage(sha256Param, request.params, 'path');
    const declared = request.headers['content-length'];
    if (declared !== undefined && Number(declared) > MAX_CHUNK_BYTES) {
      throw new EntenteError('BODY_TOO_LARGE', `chunk of ${declared} bytes exceeds ${MAX_CHUNK_BYTES}`, {
        field: 'body',
      });
    }
    const body = request.body as Readable | undefined;
    if (!body || typeof (body as Readable).pipe !== 'function') {
      throw new EntenteError('MALFORMED_BODY', 'chunk body must be application/octet-stream', {
        field: 'body',
      });
    }
    // The quota is checked before anything is received, whether or not the address is stored already
    // (the answer must not tell which chunks exist): bytes of this member's uploads that no accepted
    // result of its own uses yet, plus those in progress, plus this one.
    const incoming = declared !== undefined ? Number(declared) : MAX_CHUNK_BYTES;
    const inFlight = uploading.get(id) ?? 0;
    const used = store.chunkUploadBytes(id) + inFlight;
    if (used + incoming > quota)
      throw new EntenteError(
        'QUOTA_EXCEEDED',
        `memberStorageBytes: this member has ${used} bytes of uploaded chunks that are not part of an accepted result; another ${incoming} would exceed its quota of ${quota} bytes`,
        { field: 'memberStorageBytes' },
      );
    uploading.set(id, inFlight + incoming);
    try {
      // Received and checked even when the address is stored already: a caller learns nothing about
      // which chunks exist, and only one who holds the bytes becomes their uploader.
      await blobs.putStream(
        sha256,
        body,
        MAX_CHUNK_BYTES,
        declared !== undefined ? Number(declared) : undefined,
      );
      const at = Date.now();
      store.recordUpload(sha256, id, at);
      // Charged to the first member that stored it (a chunk is stored once).
      store.recordChunkUpload(sha256, id, blobs.sizeOf(sha256) ?? incoming, at);
    } finally {
      const left = (uploading.get(id) ?? incoming) - incoming;
      if (left > 0) uploading.set(id, left);
      else uploading.delete(id);
    }
    return { stored: true, sha256 };
  });

  // A chunk is served only to a caller entitled by a row that refers to it (blob-access.ts), and only
  // after its bytes hashed to its address again; any other caller gets the answer for an unknown chunk.
  app.get('/v1/blobs/:sha256', async (request, reply) => {
    const id = guard(request, 'GET /v1/blobs/:sha256');
    const { sha256 } = parseMessage(sha256Param, request.params, 'path');
    const reader = { id, roles: governance.rolesOf(id) };
    const context = {
      governed: governance.policy !== undefined,
      releasedModelOf: (runId: string) => governance.releasedModel(runId),
    };
    if (!mayReadBlob(reader, store.blobReferences(sha256, { participant: id }), context))
      throw blobNotAvailable(sha256);
    let bytes: Buffer;
    try {
      bytes = blobs.read(sha256);
    } catch (err) {
      if (err instanceof EntenteError && err.code === 'NOT_FOUND') throw blobNotAvailable(sha256);
      throw err;
    }
    return reply.type('application/octet-stream').header('content-length', bytes.length).send(bytes);
  });

  app.post('/v1/tasks/:taskId/result', async (request) => {
    const id = guard(request, 'POST /v1/tasks/:taskId/result');
    // A process replaced by another one of its institution does not answer for it any more.
    sessions.see(id, sessionOf(request), request.raw.socket);
    const { taskId } = parseMessage(taskParam, request.params, 'path');
    let result: ReturnType<typeof taskResultSchema.parse>;
    try {
      result = parseMessage(taskResultSchema, request.body, 'result');
    } catch (err) {
      if (err instanceof EntenteError)
        engine.recordRefusal(id, err.code, `result for ${taskId}: ${err.message}`);
      throw err;
    }
    store.touchParticipant(id, Date.now());
    if (result.kind === 'plan') return planner.accept(id, taskId, result);
    const owner = store.getTask(taskId)?.run_id;
    if (owner !== undefined && evaluations.owns(owner)) return evaluations.acceptResult(id, taskId, result);
    return engine.acceptResult(id, taskId, result);
  });

  app.post('/v1/runs', async (request, reply) => {
    const id = guard(request, 'POST /v1/runs');
    // Under a policy, a run starts only when the start-run quorum approves it: this makes the proposal.
    if (governance.policy) {
      const view = governance.propose(id, 'start-run', request.body);
      return reply.status(202).send({ proposal: view.id, status: view.status, missing: view.missing });
    }
    // A consortium whose members enroll is governed: no run before its policy is adopted.
    if (ws.consortium.enrollment)
      throw new EntenteError(
        'CONFLICT',
        'no policy is in force yet: adopt one (entente proposal create --kind adopt-policy) before starting runs',
        {
          field: 'policy',
        },
      );
    const out = engine.createRun(request.body);
    return reply.status(201).send(out);
  });

  app.post('/v1/runs/:runId/cancel', async (request, reply) => {
    const id = guard(request, 'POST /v1/runs/:runId/cancel');
    const { runId } = request.params as { runId: string };
    // Under a policy, a run stops only when the cancel-run quorum approves it: this makes the proposal.
    if (governance.policy) {
      const view = governance.propose(id, 'cancel-run', { run: runId });
      return reply.status(202).send({ proposal: view.id, status: view.status, missing: view.missing });
    }
    return reply.status(200).send(engine.cancelRun(runId, { by: id }));
  });

  app.get('/v1/runs', async (request) => {
    guard(request, 'GET /v1/runs');
    return {
      runs: store
        .listRuns()
        .map((r) => ({ id: r.id, status: r.status, createdAt: r.created_at, finishedAt: r.finished_at })),
    };
  });

  // ---- Evaluation jobs: an approved evaluation plan evaluated under secure aggregation. ----
  app.post('/v1/evaluations', async (request, reply) => {
    const id = guard(request, 'POST /v1/evaluations');
    const { plan } = parseMessage(evaluationStartSchema, request.body, 'evaluation');
    return reply.status(201).send(evaluations.start(plan, id));
  });
  app.get('/v1/evaluations', async (request) => {
    guard(request, 'GET /v1/evaluations');
    return { evaluations: evaluations.list() };
  });
  app.get('/v1/evaluations/:plan', async (request) => {
    guard(request, 'GET /v1/evaluations/:plan');
    const { plan } = parseMessage(evaluationStartSchema, request.params, 'path');
    const view = evaluations.describe(plan);
    if (!view)
      throw new EntenteError('NOT_FOUND', `plan ${plan.slice(0, 12)}… has no evaluation job`, {
        field: 'plan',
      });
    return view;
  });

  // ---- The audit log: members read it and its proofs; institutions (its witnesses) cosign it. ----
  const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
  app.get('/v1/log/checkpoint', async (request, reply) => {
    guard(request, 'GET /v1/log/checkpoint');
    const cp = audit.latestCheckpoint();
    if (!cp) throw new EntenteError('NOT_FOUND', 'no checkpoint yet', { field: 'checkpoint' });
    return reply.type('text/plain; charset=utf-8').send(cp.note);
  });
  app.get('/v1/log/vkey', async (request, reply) => {
    guard(request, 'GET /v1/log/vkey');
    return reply.type('text/plain; charset=utf-8').send(`${audit.verifierKey}\n`);
  });
  const afterQuery = z.strictObject({ after: z.coerce.number().int().min(-1).default(-1) });
  app.get('/v1/log/checkpoints', async (request) => {
    guard(request, 'GET /v1/log/checkpoints');
    const { after } = parseMessage(afterQuery, request.query, 'query');
    return { checkpoints: audit.checkpoints().filter((c) => c.size > after) };
  });
  const rangeQuery = z.strictObject({
    start: z.coerce.number().int().min(0),
    end: z.coerce.number().int().min(0),
  });
  app.get('/v1/log/entries', async (request) => {
    guard(request, 'GET /v1/log/entries');
    const { start, end } = parseMessage(rangeQuery, request.query, 'query');
    if (end < start || end - start > 10_000)
      throw new EntenteError('INVALID_ARGUMENT', 'end: must be within 10000 entries after start', {
        field: 'end',
      });
    return { entries: audit.entries(start, end).map((e) => ({ index: e.index, body: b64(e.body) })) };
  });
  const inclusionQuery = z.strictObject({
    index: z.coerce.number().int().min(0),
    size: z.coerce.number().int().min(1),
  });
  app.get('/v1/log/proof/inclusion', async (request) => {
    guard(request, 'GET /v1/log/proof/inclusion');
    const { index, size } = parseMessage(inclusionQuery, request.query, 'query');
    return { index, size, proof: audit.inclusionProof(index, size).map(b64) };
  });
  const consistencyQuery = z.strictObject({
    from: z.coerce.number().int().min(0),
    to: z.coerce.number().int().min(0),
  });
  app.get('/v1/log/proof/consistency', async (request) => {
    guard(request, 'GET /v1/log/proof/consistency');
    const { from, to } = parseMessage(consistencyQuery, request.query, 'query');
    return { from, to, proof: audit.consistencyProof(from, to).map(b64) };
  });
  app.get('/v1/log/provenance', async (request) => {
    guard(request, 'GET /v1/log/provenance');
    return { provenance: audit.provenance() };
  });
  const cosignBody = z.strictObject({ size: z.number().int().min(0), line: z.string().min(1).max(1000) });
  app.post('/v1/log/cosignatures', async (request) => {
    const id = guard(request, 'POST /v1/log/cosignatures');
    const { size, line } = parseMessage(cosignBody, request.body, 'cosignature');
    // Verified against the caller's own witness key only; a repeat is accepted and changes nothing.
    const { added } = audit.addCosignature(id, size, line);
    return { accepted: true, added };
  });

  app.get('/v1/runs/:runId', async (request) => {
    guard(request, 'GET /v1/runs/:runId');
    const { runId } = parseMessage(runParam, request.params, 'path');
    return engine.describeRun(runId);
  });

  app.get('/v1/status', async (request) => {
    guard(request, 'GET /v1/status');
    const now = Date.now();
    return {
      consortium: ws.consortium.consortium,
      paused: governance.isPaused(),
      participants: institutions().map((id) => {
        const p = store.listParticipants().find((x) => x.id === id);
        return {
          id,
          registered: p !== undefined,
          lastSeenMsAgo: p?.last_seen_at ? now - p.last_seen_at : null,
          available: available().includes(id),
        };
      }),
      runs: store.listRuns().map((r) => ({ id: r.id, status: r.status })),
      traffic,
      /** Long polls each member holds open now. */
      openPolls: Object.fromEntries(openPolls),
      events: store.listEvents(50),
    };
  });

  const planner = registerGovernanceRoutes(app, {
    guard,
    governance,
    engine,
    store,
    blobs,
    audit,
    ws,
    institutions: () => institutions(),
    available,
    notify,
  });

  let address: string;
  try {
    address = await app.listen({ host, port });
  } catch (err) {
    await app.close().catch(() => {});
    store.close();
    throw listenError(err, port, remembered !== undefined);
  }
  const url = address.replace('0.0.0.0', '127.0.0.1').replace('[::1]', '127.0.0.1');
  const bound = Number(new URL(url).port);
  writeFileSync(portFile, `${JSON.stringify({ port: bound })}\n`);
  ws.writeEndpoint(url, process.pid);
  log.info({ url }, 'coordinator listening');
  const collector = setInterval(
    () => {
      try {
        collectGarbage();
      } catch (err) {
        log.error({ err }, 'garbage collection failed');
      }
    },
    options.gcIntervalMs ?? 10 * 60_000,
  );
  const ticker = setInterval(() => {
    try {
      tick();
      engine.flushRefusalSummaries();
    } catch (err) {
      log.error({ err }, 'tick failed');
    }
  }, options.tickMs ?? 500);

  return {
    url,
    engine,
    async close() {
      if (closing) return;
      clearInterval(ticker);
      clearInterval(collector);
      closing = true;
      evaluations.close();
      try {
        for (const p of [...waiters.keys()]) notify(p);
        await app.close();
        engine.flushRefusalSummaries(Date.now(), true);
        store.close();
        ws.removeEndpoint(process.pid);
      } finally {
        releaseLock();
      }
    },
  };
}
