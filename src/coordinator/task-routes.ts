/**
 * The participants' endpoints: registration and heartbeats (one live process per institution), the
 * long poll for tasks (a few per member; a newer checkpoint ends a wait so sites can witness it), chunk
 * uploads (streamed, hashed, within the member's quota) and downloads (object-level access), and task
 * results (to the run engine, the dry-run planner or an evaluation job). Each checks the caller's role
 * first (access.ts).
 */
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import {
  MAX_CHUNK_BYTES,
  PROTOCOL_VERSION,
  type RegisterResponse,
  parseMessage,
  registerRequestSchema,
  taskResultSchema,
} from '../protocol/index.ts';
import type { BlobStore, SqliteStore, Workspace } from '../storage/index.ts';
import type { RouteName } from './access.ts';
import type { AuditLog } from './audit-log.ts';
import { blobNotAvailable, mayReadBlob } from './blob-access.ts';
import type { EvaluationJobs } from './evaluation-jobs.ts';
import type { RolloutJobs } from './rollout-jobs.ts';
import type { MonitoringJobs } from './monitoring-jobs.ts';
import type { Governance } from './governance.ts';
import type { ParticipantSessions } from './participant-sessions.ts';
import type { RunPlanner } from './run-plan.ts';
import type { RunEngine } from './run-engine.ts';

const sha256Param = z.strictObject({
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 hex digest'),
});
const taskParam = z.strictObject({ taskId: z.string().min(1).max(200) });
const waitQuery = z.object({
  waitMs: z.coerce.number().int().min(0).max(60_000).default(25_000),
  /** The newest checkpoint size the participant has witnessed: a newer one ends a wait without tasks. */
  checkpoint: z.coerce.number().int().min(-1).optional(),
});

export interface TaskRouteDeps {
  readonly guard: (request: FastifyRequest, route: RouteName) => string;
  readonly sessions: ParticipantSessions;
  readonly sessionOf: (request: FastifyRequest) => string | undefined;
  readonly store: SqliteStore;
  readonly blobs: BlobStore;
  readonly audit: AuditLog;
  readonly engine: RunEngine;
  readonly evaluations: EvaluationJobs;
  readonly rollouts: RolloutJobs;
  readonly monitoring: MonitoringJobs;
  readonly governance: Governance;
  readonly planner: () => RunPlanner;
  readonly ws: Workspace;
  readonly log: Logger;
  readonly tick: () => void;
  readonly isClosing: () => boolean;
  readonly heartbeatMs: number;
  readonly maxPolls: number;
  readonly quota: number;
  /** Long polls each member holds open now. */
  readonly openPolls: Map<string, number>;
  /** Bytes of uploads in progress per member. */
  readonly uploading: Map<string, number>;
  readonly waiters: Map<string, Set<() => void>>;
}

export function registerTaskRoutes(app: FastifyInstance, deps: TaskRouteDeps): void {
  const {
    guard,
    sessions,
    sessionOf,
    store,
    blobs,
    audit,
    engine,
    evaluations,
    monitoring,
    governance,
    planner,
    ws,
    log,
    tick,
    isClosing,
    heartbeatMs,
    maxPolls,
    quota,
    openPolls,
    uploading,
    waiters,
  } = deps;
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
      if (isClosing()) return reply.status(204).send();
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
    if (result.kind === 'plan') return planner().accept(id, taskId, result);
    const owner = store.getTask(taskId)?.run_id;
    if (owner !== undefined && evaluations.owns(owner)) return evaluations.acceptResult(id, taskId, result);
    if (owner !== undefined && deps.rollouts.owns(owner))
      return deps.rollouts.acceptResult(id, taskId, result);
    if (owner !== undefined && monitoring.owns(owner)) return monitoring.acceptResult(id, taskId, result);
    return engine.acceptResult(id, taskId, result);
  });
}
