/**
 * The vocabulary of the server's secure-aggregation state machine (secagg-server-machine.ts): the task
 * kind of each stage, the outcome of an attempt, and the effects it asks its caller to perform, in order.
 */
import type { LogEntryBody } from '../audit/index.ts';
import type { RingVector, SecAggStage } from '../secagg/index.ts';
import type { Task } from './messages.ts';

/** The task kind of each stage (a secure sum's first stage is 'secagg-sum' instead of 'secagg-train'). */
export const SECAGG_STAGE_KIND: Record<SecAggStage, Task['kind']> = {
  'advertise-keys': 'secagg-train',
  'share-keys': 'secagg-share-keys',
  'masked-input': 'secagg-masked-input',
  'consistency-check': 'secagg-consistency-check',
  unmasking: 'secagg-unmasking',
};

export const SECAGG_TASK_KINDS: readonly string[] = [...Object.values(SECAGG_STAGE_KIND), 'secagg-sum'];

/**
 * The secure sum of a run's statistics or evaluate phase, a rollout's measurement or a deployed model's
 * monitoring measurement (absent: a training round's delta).
 */
export type SumPhase = 'statistics' | 'evaluate' | 'rollout' | 'monitor';

export type SecAggOutcome =
  | { readonly ok: true; readonly survivors: string[]; readonly dropped: string[]; readonly sum: RingVector }
  | { readonly ok: false; readonly reason: string };

/** The audit-log entries an attempt appends, in the order it appends them. */
export type SecAggAuditKind = 'update-committed' | 'keys-advertised' | 'survivors-fixed';

/** What the caller must do, in order. */
export type SecAggServerEffect =
  /** Insert these open tasks (one transaction), then wake each participant. */
  | {
      readonly type: 'write-tasks';
      readonly tasks: readonly { readonly participant: string; readonly task: Task }[];
    }
  /** Mark this task done (its result was accepted). */
  | { readonly type: 'task-done'; readonly taskId: string }
  /** Expire whichever of these tasks are still open (their stage closed). */
  | { readonly type: 'expire-open-tasks'; readonly taskIds: readonly string[] }
  /** A masked input was folded: its chunks no longer count against the member's upload quota. */
  | { readonly type: 'release-chunks'; readonly participant: string; readonly chunks: readonly string[] }
  | {
      [K in SecAggAuditKind]: { readonly type: 'audit'; readonly kind: K; readonly body: LogEntryBody<K> };
    }[SecAggAuditKind]
  /** Some expected participants did not answer by the deadline (an event record, 'secagg-dropped'). */
  | { readonly type: 'dropped'; readonly message: string }
  /** A stage opened (for the operator's log). */
  | { readonly type: 'stage-opened'; readonly stage: SecAggStage; readonly participants: number }
  /** Survivors are about to release shares: note durably, before the unmasking tasks are written. */
  | { readonly type: 'mark-unmasking' }
  | { readonly type: 'deadline'; readonly at: number }
  | { readonly type: 'done'; readonly outcome: SecAggOutcome };

/** Builds the first stage's task for a participant (the caller knows the model, data and settings). */
export type FirstTaskBuilder = (participant: string, taskId: string, issuedAt: number) => Task;
