/**
 * One secure-aggregation attempt on the server side as a sans-I/O state machine (Bonawitz et al. 2017:
 * advertise-keys → share-keys → masked-input → consistency-check → unmasking). Events come in (start,
 * a stage result from a participant, a participant's refusal, a deadline tick), each with the current
 * time as a number; what the caller must do comes out as an ordered list of effects (tasks to write,
 * tasks done or expired, audit entries, the next deadline, the outcome). No store, clock or logger
 * inside: the coordinator's `secagg-round.ts` performs the effects. Masked inputs are checked in full
 * and folded into one running sum (secagg-masked-input.ts) read through the `ChunkSource` the event
 * carries; the pure `ServerSession` unmasks the sum at the end. A stage closes early when everyone
 * expected answered or refused, or at its deadline when at least t did; fewer than t aborts with a
 * reason, never a partial sum.
 */
import { createHash } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import {
  type PinnedKeyResolver,
  type RingVector,
  type SecAggRoundContext,
  type SecAggStage,
  ServerSession,
  countVectorWords,
} from '../secagg/index.ts';
import type { Task, TaskResult } from './messages.ts';
import { type ChunkSource, checkMaskedInput, foldMaskedInput } from './secagg-masked-input.ts';
import type { FirstTaskBuilder, SecAggServerEffect, SumPhase } from './secagg-server-effects.ts';

export class SecAggServerMachine {
  readonly session: ServerSession;
  readonly context: SecAggRoundContext;
  readonly phase: SumPhase | undefined;
  private readonly firstStageTimeoutMs: number;
  private readonly stageTimeoutMs: number;
  private readonly firstTask: FirstTaskBuilder;
  private deadlineAt = Number.POSITIVE_INFINITY;
  private busy = false;
  private finished = false;
  private readonly sum: RingVector;
  private readonly folded = new Set<string>();
  /** `${stage}/${participant}` of participants that refused their task in that stage. */
  private readonly refused = new Set<string>();
  /** Who refused in this attempt and why (`beta (PRIVACY_BUDGET_EXCEEDED: …)`), named when it aborts. */
  private readonly refusalReasons: string[] = [];

  constructor(input: {
    context: SecAggRoundContext;
    /** A secure sum of this phase instead of a training delta (first-stage task kind 'secagg-sum'). */
    phase?: SumPhase | undefined;
    /** Members' identity keys as pinned in the audit log (adverts are verified against them). */
    pinnedKeyOf: PinnedKeyResolver;
    firstStageTimeoutMs: number;
    stageTimeoutMs: number;
    firstTask: FirstTaskBuilder;
  }) {
    this.context = input.context;
    this.phase = input.phase;
    this.session = new ServerSession({ context: input.context, pinnedKeyOf: input.pinnedKeyOf });
    this.firstStageTimeoutMs = input.firstStageTimeoutMs;
    this.stageTimeoutMs = input.stageTimeoutMs;
    this.firstTask = input.firstTask;
    const words = countVectorWords(input.context);
    this.sum =
      input.context.quantization.ringBits === 32 ? new Uint32Array(words) : new BigUint64Array(words);
  }

  /** Whether the attempt has ended (an outcome was emitted, or it was abandoned). */
  get ended(): boolean {
    return this.finished;
  }

  /** The current stage's deadline (infinite before start). */
  get deadline(): number {
    return this.deadlineAt;
  }

  /** The id of a participant's task in a stage: run, round, phase, attempt, stage, participant. */
  taskId(stage: SecAggStage, participant: string): string {
    const ctx = this.context;
    const phase = this.phase ? `${this.phase}.` : '';
    return `${ctx.runId}.r${ctx.round}.${phase}a${ctx.attempt}.${stage}.${participant}`;
  }

  /** Opens the attempt: the first stage's tasks for the whole cohort and its deadline. */
  start(now: number): SecAggServerEffect[] {
    this.deadlineAt = now + this.firstStageTimeoutMs;
    return [
      { type: 'deadline', at: this.deadlineAt },
      {
        type: 'write-tasks',
        tasks: this.context.cohort.map((p) => ({
          participant: p,
          task: this.firstTask(p, this.taskId('advertise-keys', p), now),
        })),
      },
    ];
  }

  /** What every log entry of this attempt names: run, round, attempt and (for a secure sum) its phase. */
  private where() {
    return {
      run: this.context.runId,
      round: this.context.round,
      attempt: this.context.attempt,
      ...(this.phase ? { phase: this.phase } : {}),
    };
  }

  private base(stage: SecAggStage, participant: string, now: number) {
    return {
      taskId: this.taskId(stage, participant),
      runId: this.context.runId,
      round: this.context.round,
      attempt: this.context.attempt,
      ...(this.phase ? { phase: this.phase } : {}),
      issuedAt: now,
    };
  }

  /**
   * A stage result from `participant` (already matched to its open task). Throws a coded error naming
   * the field when refused (ended attempt, other attempt, wrong kind, stage not open, not expected,
   * duplicate, bad masked input); nothing is emitted then.
   */
  async accept(
    participant: string,
    result: TaskResult,
    env: { readonly now: number; readonly chunks: ChunkSource },
  ): Promise<SecAggServerEffect[]> {
    if (this.finished)
      throw new EntenteError('STALE_ROUND', 'this secure-aggregation attempt has ended', {
        field: 'attempt',
      });
    if (!('attempt' in result) || result.attempt !== this.context.attempt)
      throw new EntenteError('STALE_ROUND', 'attempt does not match the open attempt', { field: 'attempt' });
    const s = this.session;
    const out: SecAggServerEffect[] = [];
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
      case 'secagg-masked-input': {
        const ref = result.maskedInput;
        checkMaskedInput(env.chunks, this.context, ref);
        s.acceptMaskedInput(participant, ref.sha256, result.signature);
        out.push(
          { type: 'release-chunks', participant, chunks: ref.chunks.map((c) => c.sha256) },
          {
            type: 'audit',
            kind: 'update-committed',
            body: {
              ...this.where(),
              participant,
              modelIn: this.context.baseModelSha256,
              sha256: ref.sha256,
              sessionId: s.sessionId!,
              signature: result.signature,
            },
          },
        );
        if (!this.folded.has(participant)) {
          foldMaskedInput(env.chunks, this.context.quantization.ringBits, this.sum, ref);
          this.folded.add(participant);
        }
        break;
      }
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
    out.push({ type: 'task-done', taskId: this.taskId(s.stage as SecAggStage, participant) });
    out.push(...(await this.closeIfComplete(env.now)));
    return out;
  }

  /**
   * A participant refused its task of the current stage (it will not answer): the stage closes as soon
   * as everyone else has answered, instead of waiting for the deadline. Ignored for another stage's task.
   */
  async noteRefusal(
    participant: string,
    taskId: string,
    reason: string,
    now: number,
  ): Promise<SecAggServerEffect[]> {
    const s = this.session;
    if (this.finished || s.stage === 'done' || s.stage === 'aborted') return [];
    if (taskId !== this.taskId(s.stage, participant)) return [];
    this.refused.add(`${s.stage}/${participant}`);
    if (this.refusalReasons.length < 20) this.refusalReasons.push(`${participant} (${reason.slice(0, 200)})`);
    return this.closeIfComplete(now);
  }

  /** The deadline: at or after it, the stage closes with whoever answered (and the others are named). */
  async tick(now: number): Promise<SecAggServerEffect[]> {
    if (this.finished || this.busy || now < this.deadlineAt) return [];
    const s = this.session;
    const missing = s.expected.filter((p) => !s.answered.includes(p));
    const out: SecAggServerEffect[] = [];
    if (missing.length > 0)
      out.push({
        type: 'dropped',
        message: `${s.stage}: no answer by the deadline from ${missing.join(', ')}`,
      });
    out.push(...(await this.closeStage(now)));
    return out;
  }

  /** Abandons the attempt (run stopped, coordinator shutting down): later events are refused or ignored. */
  expire(): void {
    this.finished = true;
  }

  private async closeIfComplete(now: number): Promise<SecAggServerEffect[]> {
    const s = this.session;
    if (s.stage === 'done' || s.stage === 'aborted') return [];
    const stage = s.stage;
    const pending = s.expected.filter((p) => !s.answered.includes(p) && !this.refused.has(`${stage}/${p}`));
    return pending.length === 0 ? this.closeStage(now) : [];
  }

  private async closeStage(now: number): Promise<SecAggServerEffect[]> {
    if (this.busy || this.finished) return [];
    this.busy = true;
    try {
      const s = this.session;
      const stage = s.stage as SecAggStage;
      const out: SecAggServerEffect[] = [];
      const expire = (): SecAggServerEffect => ({
        type: 'expire-open-tasks',
        taskIds: s.expected.map((p) => this.taskId(stage, p)),
      });
      let next: { stage: SecAggStage; who: string[]; build: (p: string) => Task } | null = null;
      let failure: string | null = null;
      if (stage === 'advertise-keys') {
        const v = s.closeAdvertiseKeys();
        if (!v.ok) failure = v.reason;
        else {
          const digest = (text: string): string => createHash('sha256').update(text).digest('hex');
          out.push({
            type: 'audit',
            kind: 'keys-advertised',
            body: {
              ...this.where(),
              sessionId: s.sessionId!,
              adverts: v.value.adverts.map((a) => ({
                participant: a.participant,
                advertSha256: digest(canonicalizeJson(a)),
                encryptionKeySha256: digest(a.encryptionKey),
                maskingKeySha256: digest(a.maskingKey),
              })),
            },
          });
          next = {
            stage: 'share-keys',
            who: v.value.adverts.map((a) => a.participant),
            build: (p) => ({
              ...this.base('share-keys', p, now),
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
              ...this.base('masked-input', p, now),
              kind: 'secagg-masked-input',
              shares: v.value.routed.get(p)!,
            }),
          };
      } else if (stage === 'masked-input') {
        const v = s.closeMaskedInput();
        if (!v.ok) failure = v.reason;
        else {
          out.push({
            type: 'audit',
            kind: 'survivors-fixed',
            body: {
              ...this.where(),
              sessionId: s.sessionId!,
              sharedKeys: s.describe().u2,
              survivors: v.value.survivors,
              dropped: v.value.dropped,
            },
          });
          next = {
            stage: 'consistency-check',
            who: v.value.survivors,
            build: (p) => ({
              ...this.base('consistency-check', p, now),
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
              ...this.base('unmasking', p, now),
              kind: 'secagg-unmasking',
              survivors: [...v.value.survivors],
              dropped: [...v.value.dropped],
              signatures: [...v.value.signatures],
            }),
          };
      } else {
        const v = await s.closeUnmasking();
        out.push(expire());
        this.finished = true;
        if (!v.ok) {
          out.push({ type: 'done', outcome: { ok: false, reason: v.reason } });
          return out;
        }
        v.value.unmaskSum(this.sum);
        const d = s.describe();
        out.push({
          type: 'done',
          outcome: { ok: true, survivors: v.value.survivors, dropped: d.dropped, sum: this.sum },
        });
        return out;
      }
      out.push(expire());
      if (failure !== null || next === null) {
        this.finished = true;
        const refusals = this.refusalReasons.length > 0 ? `; refused: ${this.refusalReasons.join('; ')}` : '';
        out.push({ type: 'done', outcome: { ok: false, reason: `${failure}${refusals}` } });
        return out;
      }
      const opened = next;
      out.push({ type: 'stage-opened', stage: opened.stage, participants: opened.who.length });
      // From here on survivors release shares of their secrets: durably noted first, so that an abort
      // (even across a restart) is never retried as another attempt of this round.
      if (opened.stage === 'unmasking') out.push({ type: 'mark-unmasking' });
      this.deadlineAt = now + this.stageTimeoutMs;
      out.push({ type: 'deadline', at: this.deadlineAt });
      out.push({
        type: 'write-tasks',
        tasks: opened.who.map((p) => ({ participant: p, task: opened.build(p) })),
      });
      return out;
    } finally {
      this.busy = false;
    }
  }
}
