/**
 * A coordinator double for end-to-end tests: a real mutual-TLS server (the workspace's coordinator
 * certificate, the consortium CA) that speaks exactly the participant-facing routes of the real
 * coordinator (src/coordinator/coordinator-server.ts): register, heartbeat, long-poll for the next task,
 * content-addressed blob chunks, and task results. It runs no engine: the test decides which task each
 * participant gets (honest or crafted, as an actively malicious coordinator would in the threat model
 * of DESIGN.md §4 / Bonawitz et al. CCS 2017) and reads back every result posted, in order.
 * `createSecAggScript` drives whole secure-aggregation attempts with it: one real participant process,
 * the other members simulated with genuine `ParticipantSession`s, the sum unmasked with a real
 * `ServerSession`, and any attempt number and cohort the test chooses (e.g. a second attempt of a round
 * already unmasked, with another cohort).
 */
import { createHash, createPublicKey } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EntenteError } from '../../src/core/index.ts';
import {
  type BlobRef,
  MAX_CHUNK_BYTES,
  type SecAggContextWire,
  PROTOCOL_VERSION,
  type Task,
  type TaskResult,
  createBlobRef,
  parseMessage,
  registerRequestSchema,
  taskResultSchema,
  taskSchema,
} from '../../src/protocol/index.ts';
import {
  type LogEntry,
  MerkleTree,
  createEd25519NoteSigner,
  encodeLogEntry,
  formatCheckpoint,
  signNote,
} from '../../src/audit/index.ts';
import {
  ParticipantSession,
  type SecAggRoundContext,
  ServerSession,
  type SignedAdvert,
} from '../../src/secagg/index.ts';
import type { Workspace } from '../../src/storage/index.ts';
import { createMtlsServer, readPeerIdentity } from '../../src/transport/index.ts';

/** One result a participant posted, as received (parsed with the protocol schema). */
export interface RecordedResult {
  readonly participant: string;
  readonly taskId: string;
  readonly result: TaskResult;
}

export interface CoordinatorDouble {
  readonly url: string;
  /** Every result posted so far, in arrival order. */
  readonly results: readonly RecordedResult[];
  /** Institutions that registered (in order, repeats included). */
  readonly registrations: readonly string[];
  /** Stores `bytes` as chunks (of at most `chunkBytes`) and returns its reference. */
  putBlob(bytes: Uint8Array, chunkBytes?: number): BlobRef;
  /** The bytes of a blob whose chunks are stored (e.g. a participant's masked input). Throws NOT_FOUND. */
  readBlob(ref: BlobRef): Uint8Array;
  /**
   * Records a model in the double's audit log (a real RFC 6962 log signed with the workspace's log
   * key) and publishes a new checkpoint; returns the entry index tasks carry as `modelLog.index`.
   */
  logModel(run: string, modelSha256: string): number;
  /** Publishes a second, different checkpoint for the current size (a split view). */
  forkCheckpoint(): void;
  /** Appends any entry (kind and body) to the double's log and publishes a checkpoint; returns its index. */
  appendLogEntry(entry: Record<string, unknown>): number;
  /** Cosignature lines posted by witnesses. */
  readonly cosignatures: readonly { participant: string; size: number; line: string }[];
  /** Queues `task` for `participant`; it is served until that participant posts a result for it. */
  assign(participant: string, task: Task): void;
  /** Resolves with the first result posted for `taskId`; rejects after `timeoutMs`. */
  waitForResult(taskId: string, timeoutMs: number): Promise<RecordedResult>;
  close(): Promise<void>;
}

const sha256Param = z.strictObject({ sha256: z.string().regex(/^[0-9a-f]{64}$/) });
const taskParam = z.strictObject({ taskId: z.string().min(1).max(200) });
const waitQuery = z.object({ waitMs: z.coerce.number().int().min(0).max(60_000).default(25_000) });

const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Starts the double on 127.0.0.1 (any free port). Only certificates of the workspace's institutions
 * are served; a task is checked against the protocol schema when assigned, so a test cannot hand out
 * a task the participant would drop as malformed instead of refusing.
 */
export async function startCoordinatorDouble(input: {
  readonly workspace: Workspace;
  readonly heartbeatMs?: number;
}): Promise<CoordinatorDouble> {
  const ws = input.workspace;
  const blobs = new Map<string, Uint8Array>();
  const open = new Map<string, Task[]>();
  const results: RecordedResult[] = [];
  const registrations: string[] = [];
  const pollWaiters = new Map<string, Set<() => void>>();
  const resultWaiters = new Map<string, Set<(r: RecordedResult) => void>>();
  let closing = false;
  // The double's audit log: honest bookkeeping (the attacks here are on secure aggregation).
  const origin = ws.consortium.log?.origin ?? 'entente/test/log';
  const signer = createEd25519NoteSigner(origin, ws.logSigningKey());
  const tree = new MerkleTree();
  const entries: Uint8Array[] = [];
  let checkpointNote = '';
  const published: { size: number; note: string }[] = [];
  /** Bumped with every new checkpoint: a waiting long poll then returns (as the real coordinator does). */
  let checkpointVersion = 0;
  const cosignatures: { participant: string; size: number; line: string }[] = [];
  const appendEntry = (entry: Record<string, unknown>): number => {
    const index = entries.length;
    const prev = index === 0 ? '' : Buffer.from(tree.leafHash(index - 1)).toString('hex');
    const bytes = encodeLogEntry({ ...entry, index, at: Date.now(), prev } as unknown as LogEntry);
    entries.push(bytes);
    tree.appendEntry(bytes);
    checkpointNote = signNote(
      formatCheckpoint({ origin, size: tree.size, rootHash: tree.root(), extensions: [] }),
      [signer],
    );
    published.push({ size: tree.size, note: checkpointNote });
    checkpointVersion++;
    return index;
  };
  appendEntry({
    kind: 'log-created',
    origin,
    consortium: ws.consortium.consortium,
    logKey: ws.consortium.log?.key ?? '',
    // As the real coordinator does: the workspace's institutions, their identity keys pinned from the start.
    witnesses: Object.entries(ws.consortium.witnesses ?? {}).map(([institution, key]) => ({
      institution,
      key,
    })),
    quorum: 0,
  });

  const wake = (participant: string): void => {
    const set = pollWaiters.get(participant);
    if (!set) return;
    pollWaiters.delete(participant);
    for (const w of set) w();
  };
  const institutionOf = (request: FastifyRequest): string => {
    const id = readPeerIdentity(request);
    if (!ws.consortium.institutions.includes(id))
      throw new EntenteError('UNKNOWN_PARTICIPANT', 'the certificate does not belong to an institution');
    return id;
  };

  const app = createMtlsServer(ws.coordinatorIdentity());

  app.post('/v1/participants/register', async (request) => {
    const id = institutionOf(request);
    parseMessage(registerRequestSchema, request.body, 'register');
    registrations.push(id);
    return { institution: id, consortium: ws.consortium.consortium, heartbeatMs: input.heartbeatMs ?? 1_000 };
  });

  app.post('/v1/heartbeat', async (request) => {
    institutionOf(request);
    return { ok: true, protocol: PROTOCOL_VERSION };
  });

  app.get('/v1/tasks/next', async (request, reply) => {
    const id = institutionOf(request);
    const { waitMs } = parseMessage(waitQuery, request.query, 'query');
    const deadline = Date.now() + waitMs;
    const versionAtStart = checkpointVersion;
    for (;;) {
      if (closing || checkpointVersion !== versionAtStart) return reply.status(204).send();
      const next = open.get(id)?.[0];
      if (next) return next;
      const left = deadline - Date.now();
      if (left <= 0 || request.raw.destroyed) return reply.status(204).send();
      await new Promise<void>((resolve) => {
        const set = pollWaiters.get(id) ?? new Set();
        const done = (): void => {
          clearTimeout(timer);
          set.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 2_000));
        set.add(done);
        pollWaiters.set(id, set);
      });
    }
  });

  app.put('/v1/blobs/:sha256', async (request) => {
    institutionOf(request);
    const { sha256 } = parseMessage(sha256Param, request.params, 'path');
    const body = request.body as Readable | undefined;
    if (!body || typeof body.pipe !== 'function')
      throw new EntenteError('MALFORMED_BODY', 'chunk body must be application/octet-stream', {
        field: 'body',
      });
    const parts: Buffer[] = [];
    let total = 0;
    for await (const piece of body) {
      total += (piece as Buffer).length;
      if (total > MAX_CHUNK_BYTES)
        throw new EntenteError('BODY_TOO_LARGE', `chunk exceeds ${MAX_CHUNK_BYTES} bytes`, { field: 'body' });
      parts.push(piece as Buffer);
    }
    const bytes = new Uint8Array(Buffer.concat(parts));
    if (sha256Hex(bytes) !== sha256)
      throw new EntenteError('DIGEST_MISMATCH', 'chunk does not match its address', { field: 'body' });
    blobs.set(sha256, bytes);
    return { stored: true, sha256 };
  });

  app.get('/v1/log/checkpoints', async (request) => {
    institutionOf(request);
    const after = Number((request.query as { after?: string }).after ?? -1);
    return { checkpoints: published.filter((c) => c.size > after) };
  });
  app.get('/v1/log/checkpoint', async (request, reply) => {
    institutionOf(request);
    return reply.type('text/plain; charset=utf-8').send(checkpointNote);
  });
  const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
  app.get('/v1/log/entries', async (request) => {
    institutionOf(request);
    const q = request.query as { start: string; end: string };
    const start = Number(q.start);
    const end = Math.min(entries.length, Number(q.end));
    const out = [];
    for (let i = start; i < end; i++) out.push({ index: i, body: b64(entries[i]!) });
    return { entries: out };
  });
  app.get('/v1/log/proof/inclusion', async (request) => {
    institutionOf(request);
    const q = request.query as { index: string; size: string };
    return { proof: tree.inclusionProof(Number(q.index), Number(q.size)).map(b64) };
  });
  app.get('/v1/log/proof/consistency', async (request) => {
    institutionOf(request);
    const q = request.query as { from: string; to: string };
    return { proof: tree.consistencyProof(Number(q.from), Number(q.to)).map(b64) };
  });
  app.post('/v1/log/cosignatures', async (request) => {
    const id = institutionOf(request);
    const body = request.body as { size: number; line: string };
    cosignatures.push({ participant: id, size: body.size, line: body.line });
    return { accepted: true };
  });

  app.get('/v1/blobs/:sha256', async (request, reply) => {
    institutionOf(request);
    const { sha256 } = parseMessage(sha256Param, request.params, 'path');
    const bytes = blobs.get(sha256);
    if (!bytes) throw new EntenteError('NOT_FOUND', 'no such blob', { field: 'sha256' });
    return reply.type('application/octet-stream').send(Buffer.from(bytes));
  });

  app.post('/v1/tasks/:taskId/result', async (request) => {
    const id = institutionOf(request);
    const { taskId } = parseMessage(taskParam, request.params, 'path');
    const result = parseMessage(taskResultSchema, request.body, 'result');
    const recorded: RecordedResult = { participant: id, taskId, result };
    results.push(recorded);
    const queue = open.get(id);
    if (queue)
      open.set(
        id,
        queue.filter((t) => t.taskId !== taskId),
      );
    const waiters = resultWaiters.get(taskId);
    resultWaiters.delete(taskId);
    for (const w of waiters ?? []) w(recorded);
    return { accepted: true };
  });

  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  const url = address.replace('[::1]', '127.0.0.1');

  return {
    url,
    results,
    registrations,
    cosignatures,
    appendLogEntry(entry) {
      return appendEntry(entry);
    },
    forkCheckpoint() {
      // Same size, another root, genuinely signed by the log key: a split view.
      const size = tree.size;
      checkpointNote = signNote(
        formatCheckpoint({ origin, size, rootHash: new Uint8Array(32).fill(0x5a), extensions: [] }),
        [signer],
      );
      published.length = 0;
      published.push({ size, note: checkpointNote });
      checkpointVersion++;
      for (const id of ws.consortium.institutions) wake(id);
    },
    logModel(run, modelSha256) {
      return appendEntry({ kind: 'model-initialized', run, round: 0, modelSha256 });
    },
    putBlob(bytes, chunkBytes) {
      const { ref, chunks } = createBlobRef(bytes, chunkBytes);
      for (const c of chunks) blobs.set(sha256Hex(c), new Uint8Array(c));
      return ref;
    },
    readBlob(ref) {
      const parts = ref.chunks.map((c) => {
        const b = blobs.get(c.sha256);
        if (!b)
          throw new EntenteError('NOT_FOUND', `chunk ${c.sha256} was not uploaded`, { field: 'chunks' });
        return b;
      });
      const all = new Uint8Array(Buffer.concat(parts));
      if (sha256Hex(all) !== ref.sha256)
        throw new EntenteError('DIGEST_MISMATCH', 'blob does not match its address', { field: 'sha256' });
      return all;
    },
    assign(participant, task) {
      parseMessage(taskSchema, task, 'task');
      open.set(participant, [...(open.get(participant) ?? []), task]);
      wake(participant);
    },
    waitForResult(taskId, timeoutMs) {
      const already = results.find((r) => r.taskId === taskId);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const set = resultWaiters.get(taskId) ?? new Set();
        const timer = setTimeout(() => {
          set.delete(done);
          reject(new Error(`no result for task ${taskId} within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = (r: RecordedResult): void => {
          clearTimeout(timer);
          resolve(r);
        };
        set.add(done);
        resultWaiters.set(taskId, set);
      });
    },
    async close() {
      closing = true;
      for (const p of [...pollWaiters.keys()]) wake(p);
      await app.close();
    },
  };
}

/** One secure-aggregation attempt the script opened: its context, the simulated members' sessions. */
export interface ScriptedAttempt {
  readonly round: number;
  readonly attempt: number;
  readonly cohort: readonly string[];
  readonly ctx: SecAggRoundContext;
  readonly sims: Map<string, ParticipantSession>;
  /** The secagg-train task handed to the real participant. */
  readonly trainTask: Extract<Task, { kind: 'secagg-train' }>;
  /** What the real participant answered it (an advert, or a refusal). */
  readonly answer: TaskResult;
  /** Every advert, sorted by participant (only when the real participant advertised). */
  readonly adverts: SignedAdvert[];
}

export interface SecAggScript {
  /** Hands `task` to the real participant and waits for what it posts. */
  ask(task: Task): Promise<TaskResult>;
  /** Stage advertise-keys of attempt `attempt` of `round` with `cohort` (the real participant included). */
  openAttempt(o: { round: number; attempt: number; cohort: readonly string[] }): Promise<ScriptedAttempt>;
  /** ShareKeys and MaskedInputCollection for everyone; the attempt can then be abandoned before Unmasking. */
  runToMaskedInput(a: ScriptedAttempt): Promise<ServerSession>;
  /** All five stages (nobody drops) and the unmasking of the sum by a real ServerSession; returns it. */
  completeAttempt(a: ScriptedAttempt): Promise<{ sum: Uint32Array; survivors: readonly string[] }>;
  /** An Unmasking task of attempt `a` (as a coordinator that skipped the earlier stages would send it). */
  unmaskingTask(
    a: { round: number; attempt: number },
    request: {
      survivors: readonly string[];
      dropped: readonly string[];
      signatures: readonly { participant: string; signature: string }[];
    },
  ): Task;
  /** A ShareKeys task of attempt `a` carrying `adverts`. */
  shareKeysTask(a: { round: number; attempt: number }, adverts: readonly SignedAdvert[]): Task;
}

/**
 * Scripts secure aggregation against one real participant `real` (its process polls `double`) with the
 * other institutions simulated from the workspace's identity keys. Threshold 3, 32-bit ring; each
 * simulated member's input is `simInput(id)` (the weight channel last).
 */
export function createSecAggScript(input: {
  readonly double: CoordinatorDouble;
  readonly workspace: Workspace;
  readonly real: string;
  readonly run: string;
  readonly model: BlobRef;
  readonly modelLogIndex: number;
  readonly modelSpec: Record<string, unknown>;
  readonly train: Extract<Task, { kind: 'secagg-train' }>['train'];
  readonly standardization: { mean: number[]; std: number[] };
  /** The data schema digest the tasks name (sites refuse a task naming none or another). */
  readonly dataSchemaDigest: string;
  readonly quantization: SecAggContextWire['quantization'];
  readonly maxWeight: number;
  readonly segments: SecAggContextWire['segments'];
  readonly simInput: (id: string) => Uint32Array;
  readonly resultTimeoutMs: number;
  readonly describeFailure?: () => string;
}): SecAggScript {
  const { double, workspace: ws, real } = input;
  /** The workspace institutions' identity keys: what the double's log pins (as the real log does). */
  const pinnedKeyOf = (member: string): Uint8Array | undefined => {
    if (!ws.consortium.institutions.includes(member)) return undefined;
    const spki = createPublicKey(ws.institutionSigningIdentity(member).keyPem).export({
      format: 'der',
      type: 'spki',
    });
    return new Uint8Array(spki.subarray(12));
  };
  const words = input.segments.at(-1)!.offsetWords + 1;
  let next = 0;
  const base = (a: { round: number; attempt: number }, stage: string) => ({
    taskId: `${input.run}.r${a.round}.a${a.attempt}.${stage}.script${next++}`,
    runId: input.run,
    round: a.round,
    attempt: a.attempt,
    issuedAt: Date.now(),
  });
  const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
  const kindOf = <K extends TaskResult['kind']>(r: TaskResult, kind: K): Extract<TaskResult, { kind: K }> => {
    if (r.kind !== kind) throw new Error(`expected a ${kind} result, got ${JSON.stringify(r).slice(0, 400)}`);
    return r as Extract<TaskResult, { kind: K }>;
  };
  const ask = async (task: Task): Promise<TaskResult> => {
    double.assign(real, task);
    try {
      return (await double.waitForResult(task.taskId, input.resultTimeoutMs)).result;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${input.describeFailure?.() ?? ''}`);
    }
  };
  const shareKeysTask = (a: { round: number; attempt: number }, adverts: readonly SignedAdvert[]): Task => ({
    ...base(a, 'share-keys'),
    kind: 'secagg-share-keys',
    adverts: [...adverts],
  });
  const unmaskingTask: SecAggScript['unmaskingTask'] = (a, request) => ({
    ...base(a, 'unmasking'),
    kind: 'secagg-unmasking',
    survivors: [...request.survivors],
    dropped: [...request.dropped],
    signatures: request.signatures.map((x) => ({ ...x })),
  });

  async function runToMaskedInput(a: ScriptedAttempt): Promise<ServerSession> {
    if (a.answer.kind !== 'secagg-train') throw new Error('the real participant did not advertise');
    const server = new ServerSession({ context: a.ctx, pinnedKeyOf });
    for (const ad of a.adverts) await server.acceptAdvert(ad.participant, ad);
    const v1 = server.closeAdvertiseKeys();
    if (!v1.ok) throw new Error(v1.reason);
    server.acceptShares(
      real,
      kindOf(await ask(shareKeysTask(a, v1.value.adverts)), 'secagg-share-keys').shares,
    );
    for (const [id, sim] of a.sims) server.acceptShares(id, (await sim.shareKeys(v1.value.adverts)).shares);
    const v2 = server.closeShareKeys();
    if (!v2.ok) throw new Error(v2.reason);
    const masked = kindOf(
      await ask({
        ...base(a, 'masked-input'),
        kind: 'secagg-masked-input',
        shares: v2.value.routed.get(real)!,
      }),
      'secagg-masked-input',
    );
    server.acceptMaskedInput(real, masked.maskedInput.sha256, masked.signature);
    const sum = new Uint32Array(words);
    const fold = (v: Uint32Array): void => {
      for (let i = 0; i < words; i++) sum[i] = (sum[i]! + v[i]!) >>> 0;
    };
    fold(new Uint32Array(new Uint8Array(double.readBlob(masked.maskedInput)).buffer, 0, words));
    for (const [id, sim] of a.sims) {
      const out = sim.maskInput(v2.value.routed.get(id)!);
      const v = out.masked as Uint32Array;
      const digest = sha256(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      server.acceptMaskedInput(id, digest, out.sign(digest));
      fold(v);
    }
    sums.set(server, sum);
    return server;
  }
  const sums = new WeakMap<ServerSession, Uint32Array>();

  return {
    ask,
    shareKeysTask,
    unmaskingTask,
    async openAttempt({ round, attempt, cohort }) {
      const sorted = [...cohort].sort();
      const wire: SecAggContextWire = {
        consortium: ws.consortium.consortium,
        attempt,
        cohort: sorted,
        threshold: 3,
        quantization: input.quantization,
        maxWeight: input.maxWeight,
        segments: input.segments,
      };
      const ctx: SecAggRoundContext = {
        ...wire,
        runId: input.run,
        round,
        baseModelSha256: input.model.sha256,
        options: input.train,
      };
      const trainTask = {
        ...base({ round, attempt }, 'advertise-keys'),
        kind: 'secagg-train' as const,
        model: input.model,
        modelSpec: input.modelSpec,
        train: input.train,
        standardization: input.standardization,
        dataSchemaDigest: input.dataSchemaDigest,
        seed: `${input.run}/train/${round}/${attempt}/${real}`,
        modelLog: { index: input.modelLogIndex },
        secagg: wire,
      };
      const answer = await ask(trainTask);
      const sims = new Map<string, ParticipantSession>();
      const adverts: SignedAdvert[] = [];
      if (answer.kind === 'secagg-train') adverts.push(answer.advert);
      for (const id of sorted.filter((p) => p !== real)) {
        const signing = ws.institutionSigningIdentity(id);
        const created = ParticipantSession.create({
          context: ctx,
          self: id,
          identityKeyPem: signing.keyPem,
          pinnedKeyOf,
          input: input.simInput(id),
        });
        sims.set(id, created.session);
        adverts.push(created.advert);
      }
      adverts.sort((x, y) => (x.participant < y.participant ? -1 : 1));
      return { round, attempt, cohort: sorted, ctx, sims, trainTask, answer, adverts };
    },
    runToMaskedInput,
    async completeAttempt(a) {
      const server = await runToMaskedInput(a);
      const v3 = server.closeMaskedInput();
      if (!v3.ok) throw new Error(v3.reason);
      const cc = kindOf(
        await ask({
          ...base(a, 'consistency-check'),
          kind: 'secagg-consistency-check',
          survivors: [...v3.value.survivors],
        }),
        'secagg-consistency-check',
      );
      server.acceptSurvivorSignature(real, cc.signature);
      for (const [id, sim] of a.sims)
        server.acceptSurvivorSignature(id, sim.signSurvivors(v3.value.survivors).signature);
      const v4 = server.closeConsistencyCheck();
      if (!v4.ok) throw new Error(v4.reason);
      server.acceptUnmaskShares(real, kindOf(await ask(unmaskingTask(a, v4.value)), 'secagg-unmasking'));
      for (const [id, sim] of a.sims) server.acceptUnmaskShares(id, sim.unmask(v4.value));
      const v5 = await server.closeUnmasking();
      if (!v5.ok) throw new Error(v5.reason);
      const sum = sums.get(server)!;
      v5.value.unmaskSum(sum);
      return { sum, survivors: v5.value.survivors };
    },
  };
}
