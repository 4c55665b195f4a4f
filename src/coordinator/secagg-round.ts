/**
 * Drives one secure-aggregation attempt of a train round on the coordinator: writes one task per stage
 * for the participants still in, enforces each stage's deadline (a stage closes early when everyone
 * expected answered, or at its deadline when at least t did), validates masked inputs in full before
 * folding them into a single running sum (secagg-masked-input.ts; memory is one vector whatever n),
 * and at the end asks the pure `ServerSession` (secagg/server-session.ts) to unmask the sum. It never holds an individual
 * unmasked update: it has none. Aborts (fewer than t at some stage) are reported, never partial sums.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { EntenteError } from '../core/errors.ts';
import type { BlobRef, Task, TaskResult } from '../protocol/index.ts';
import {
  type PinnedKeyResolver,
  type RingVector,
  type SecAggRoundContext,
  type SecAggStage,
  ServerSession,
  countVectorWords,
} from '../secagg/index.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import type { BlobStore, SqliteStore } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';
import { checkMaskedInput, foldMaskedInput } from './secagg-masked-input.ts';

export interface SecAggRoundDeps {
  readonly store: SqliteStore;
  readonly blobs: BlobStore;
  readonly log: Logger;
  readonly now: () => number;
  readonly notify: (participant: string) => void;
  readonly record: (kind: string, participant: string | null, code: string | null, message: string) => void;
  readonly audit: AuditLog;
}

export type SecAggOutcome =
  | { readonly ok: true; readonly survivors: string[]; readonly dropped: string[]; readonly sum: RingVector }
  | { readonly ok: false; readonly reason: string };

const STAGE_KIND: Record<SecAggStage, Task['kind']> = {
  'advertise-keys': 'secagg-train',
  'share-keys': 'secagg-share-keys',
  'masked-input': 'secagg-masked-input',
  'consistency-check': 'secagg-consistency-check',
  unmasking: 'secagg-unmasking',
};

export const SECAGG_TASK_KINDS: readonly string[] = [...Object.values(STAGE_KIND), 'secagg-sum'];

/** The secure sum of a run's statistics or evaluate phase (absent: a training round's delta). */
export type SumPhase = 'statistics' | 'evaluate';

export class SecAggRound {
  readonly session: ServerSession;
  private readonly deps: SecAggRoundDeps;
  private readonly ctx: SecAggRoundContext;
  private readonly stageTimeoutMs: number;
  private deadlineAt: number;
  private busy = false;
  private finished = false;
  private sum: RingVector;
  private readonly folded = new Set<string>();
  /** `${stage}/${participant}` of participants that refused their task in that stage. */
  private readonly refused = new Set<string>();
  /** Who refused in this attempt and why (`beta (PRIVACY_BUDGET_EXCEEDED: …)`), named when it aborts. */
  private readonly refusalReasons: string[] = [];
  private readonly onDone: (outcome: SecAggOutcome) => void;
  private readonly firstTask: (participant: string) => Task;
  readonly phase: SumPhase | undefined;

  constructor(input: {
    deps: SecAggRoundDeps;
    context: SecAggRoundContext;
    /** A secure sum of this phase instead of a training delta (first-stage task kind 'secagg-sum'). */
    phase?: SumPhase;
    /** Members' identity keys as pinned in the audit log (adverts are verified against them). */
    pinnedKeyOf: PinnedKeyResolver;
    firstStageTimeoutMs: number;
    stageTimeoutMs: number;
    firstTask: (participant: string) => Task;
    onDone: (outcome: SecAggOutcome) => void;
  }) {
    this.deps = input.deps;
    this.ctx = input.context;
    this.phase = input.phase;
    this.session = new ServerSession({
      context: input.context,
      pinnedKeyOf: input.pinnedKeyOf,
    });
    this.stageTimeoutMs = input.stageTimeoutMs;
    this.deadlineAt = input.deps.now() + input.firstStageTimeoutMs;
    this.onDone = input.onDone;
    this.firstTask = input.firstTask;
    const words = countVectorWords(input.context);
    this.sum =
      input.context.quantization.ringBits === 32 ? new Uint32Array(words) : new BigUint64Array(words);
  }

  /** Writes the stage-1 tasks (secagg-train) for the cohort. */
  start(): void {
    this.writeTasks(this.ctx.cohort, (p) => this.firstTask(p));
  }

  taskId(stage: SecAggStage, participant: string): string {
    const phase = this.phase ? `${this.phase}.` : '';
    return `${this.ctx.runId}.r${this.ctx.round}.${phase}a${this.ctx.attempt}.${stage}.${participant}`;
  }

  /** What every log entry of this attempt names: run, round, attempt and (for a secure sum) its phase. */
  private where() {
    return {
      run: this.ctx.runId,
      round: this.ctx.round,
      attempt: this.ctx.attempt,
      ...(this.phase ? { phase: this.phase } : {}),
    };
  }

  private writeTasks(participants: readonly string[], build: (p: string) => Task): void {
    const { store, now } = this.deps;
    const at = now();
    store.transaction(() => {
      for (const p of participants) {
        const task = build(p);
        store.insertTask({
          id: task.taskId,
          run_id: this.ctx.runId,
          round: this.ctx.round,
          kind: task.kind,
          participant: p,
          status: 'open',
          task_json: JSON.stringify(task),
          created_at: at,
          completed_at: null,
        });
      }
    });
    for (const p of participants) this.deps.notify(p);
  }

  private base(stage: SecAggStage, participant: string) {
    return {
      taskId: this.taskId(stage, participant),
      runId: this.ctx.runId,
      round: this.ctx.round,
      attempt: this.ctx.attempt,
      ...(this.phase ? { phase: this.phase } : {}),
      issuedAt: this.deps.now(),
    };
  }

  /** Accepts one stage result (already matched to its open task). Throws a coded error when refused. */
  async accept(participant: string, result: TaskResult): Promise<void> {
    if (this.finished)
      throw new EntenteError('STALE_ROUND', 'this secure-aggregation attempt has ended', {
        field: 'attempt',
      });
    if (!('attempt' in result) || result.attempt !== this.ctx.attempt)
      throw new EntenteError('STALE_ROUND', 'attempt does not match the open attempt', { field: 'attempt' });
    const s = this.session;
    switch (result.kind) {
      case 'secagg-train':
      case 'secagg-sum':
        if ((result.kind === 'secagg-sum') !== (this.phase !== undefined))
          throw new EntenteError('INVALID_MESSAGE', `kind "${result.kind}" does not match the task`, {
            field: 'kind',
          });
        await s.acceptAdvert(participant, result.advert);
        break;
      case 'secagg-share-keys':
        s.acceptShares(participant, result.shares);
        break;
      case 'secagg-masked-input':
        this.acceptMaskedInput(participant, result.maskedInput, result.signature);
        break;
      case 'secagg-consistency-check':
        s.acceptSurvivorSignature(participant, result.signature);
        break;
      case 'secagg-unmasking':
        s.acceptUnmaskShares(participant, result);
        break;
      default:
        throw new EntenteError('INVALID_MESSAGE', 'kind is not a secure-aggregation result', {
          field: 'kind',
        });
    }
    this.deps.store.setTaskStatus(this.taskId(s.stage as SecAggStage, participant), 'done', this.deps.now());
    await this.closeIfComplete();
  }

  /** Checks size, chunk presence, digest and the signed commitment, and only then folds into the sum. */
  private acceptMaskedInput(participant: string, ref: BlobRef, signature: string): void {
    checkMaskedInput(this.deps.blobs, this.ctx, ref);
    this.session.acceptMaskedInput(participant, ref.sha256, signature);
    // Folded into the sum: its chunks no longer count against the member's upload quota.
    this.deps.store.releaseChunkUploads(
      participant,
      ref.chunks.map((c) => c.sha256),
    );
    this.deps.audit.append('update-committed', {
      ...this.where(),
      participant,
      modelIn: this.ctx.baseModelSha256,
      sha256: ref.sha256,
      sessionId: this.session.sessionId!,
      signature,
    });
    if (this.folded.has(participant)) return;
    foldMaskedInput(this.deps.blobs, this.ctx.quantization.ringBits, this.sum, ref);
    this.folded.add(participant);
  }

  /**
   * A participant refused its task of the current stage (it will not answer): the stage closes as soon
   * as everyone else has answered, instead of waiting for the deadline.
   */
  async noteRefusal(participant: string, taskId: string, reason: string): Promise<void> {
    const s = this.session;
    if (this.finished || s.stage === 'done' || s.stage === 'aborted') return;
    if (taskId !== this.taskId(s.stage, participant)) return;
    this.refused.add(`${s.stage}/${participant}`);
    if (this.refusalReasons.length < 20) this.refusalReasons.push(`${participant} (${reason.slice(0, 200)})`);
    await this.closeIfComplete();
  }

  private async closeIfComplete(): Promise<void> {
    const s = this.session;
    if (s.stage === 'done' || s.stage === 'aborted') return;
    const stage = s.stage;
    const pending = s.expected.filter((p) => !s.answered.includes(p) && !this.refused.has(`${stage}/${p}`));
    if (pending.length === 0) await this.closeStage();
  }

  /** Enforces the stage deadline. */
  async tick(now: number): Promise<void> {
    if (this.finished || this.busy || now < this.deadlineAt) return;
    const s = this.session;
    const missing = s.expected.filter((p) => !s.answered.includes(p));
    if (missing.length > 0)
      this.deps.record(
        'secagg-dropped',
        null,
        null,
        `${s.stage}: no answer by the deadline from ${missing.join(', ')}`,
      );
    await this.closeStage();
  }

  private async closeStage(): Promise<void> {
    if (this.busy || this.finished) return;
    this.busy = true;
    try {
      const s = this.session;
      const stage = s.stage as SecAggStage;
      const closeTasks = (): void => {
        const at = this.deps.now();
        for (const p of s.expected) {
          const id = this.taskId(stage, p);
          if (this.deps.store.getTask(id)?.status === 'open')
            this.deps.store.setTaskStatus(id, 'expired', at);
        }
      };
      let next: { stage: SecAggStage; who: string[]; build: (p: string) => Task } | null = null;
      let failure: string | null = null;
      if (stage === 'advertise-keys') {
        const v = s.closeAdvertiseKeys();
        if (!v.ok) failure = v.reason;
        else {
          const digest = (text: string): string => createHash('sha256').update(text).digest('hex');
          this.deps.audit.append('keys-advertised', {
            ...this.where(),
            sessionId: s.sessionId!,
            adverts: v.value.adverts.map((a) => ({
              participant: a.participant,
              advertSha256: digest(canonicalizeJson(a)),
              encryptionKeySha256: digest(a.encryptionKey),
              maskingKeySha256: digest(a.maskingKey),
            })),
          });
          next = {
            stage: 'share-keys',
            who: v.value.adverts.map((a) => a.participant),
            build: (p) => ({
              ...this.base('share-keys', p),
              kind: 'secagg-share-keys',
              adverts: v.value.adverts,
            }),
          };
        }
      } else if (stage === 'share-keys') {
        const v = s.closeShareKeys();
        if (!v.ok) failure = v.reason;
        else
          next = {
            stage: 'masked-input',
            who: [...v.value.routed.keys()],
            build: (p) => ({
              ...this.base('masked-input', p),
              kind: 'secagg-masked-input',
              shares: v.value.routed.get(p)!,
            }),
          };
      } else if (stage === 'masked-input') {
        const v = s.closeMaskedInput();
        if (!v.ok) failure = v.reason;
        else {
          this.deps.audit.append('survivors-fixed', {
            ...this.where(),
            sessionId: s.sessionId!,
            sharedKeys: s.describe().u2,
            survivors: v.value.survivors,
            dropped: v.value.dropped,
          });
          next = {
            stage: 'consistency-check',
            who: v.value.survivors,
            build: (p) => ({
              ...this.base('consistency-check', p),
              kind: 'secagg-consistency-check',
              survivors: v.value.survivors,
            }),
          };
        }
      } else if (stage === 'consistency-check') {
        const v = s.closeConsistencyCheck();
        if (!v.ok) failure = v.reason;
        else
          next = {
            stage: 'unmasking',
            who: v.value.signatures.map((x) => x.participant),
            build: (p) => ({
              ...this.base('unmasking', p),
              kind: 'secagg-unmasking',
              survivors: [...v.value.survivors],
              dropped: [...v.value.dropped],
              signatures: [...v.value.signatures],
            }),
          };
      } else {
        const v = await s.closeUnmasking();
        closeTasks();
        this.finished = true;
        if (!v.ok) {
          this.onDone({ ok: false, reason: v.reason });
          return;
        }
        v.value.unmaskSum(this.sum);
        const d = s.describe();
        this.onDone({ ok: true, survivors: v.value.survivors, dropped: d.dropped, sum: this.sum });
        return;
      }
      closeTasks();
      if (failure !== null) {
        this.finished = true;
        const refusals = this.refusalReasons.length > 0 ? `; refused: ${this.refusalReasons.join('; ')}` : '';
        this.onDone({ ok: false, reason: `${failure}${refusals}` });
        return;
      }
      this.deps.log.info(
        {
          run: this.ctx.runId,
          round: this.ctx.round,
          attempt: this.ctx.attempt,
          stage: next!.stage,
          participants: next!.who.length,
        },
        'secure aggregation stage opened',
      );
      if (next!.stage === 'unmasking') {
        // From here on survivors release shares of their secrets: durably noted first, so that an abort
        // (even across a restart) is never retried as another attempt of this round.
        this.deps.store.markSecAggAttemptUnmasking({
          run_id: this.ctx.runId,
          round: this.ctx.round,
          attempt: this.ctx.attempt,
          ...(this.phase ? { phase: this.phase } : {}),
        });
      }
      this.deadlineAt = this.deps.now() + this.stageTimeoutMs;
      this.writeTasks(next!.who, next!.build);
    } finally {
      this.busy = false;
    }
  }

  /** Abandons the attempt (run stopped, coordinator shutting down): expires its open tasks. */
  expire(): void {
    this.finished = true;
  }
}
