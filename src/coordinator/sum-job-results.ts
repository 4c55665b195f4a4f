/**
 * What the coordinator's secure-sum jobs outside runs (evaluation plans, rollout stages, monitoring)
 * do alike with their tasks: a result matched to its open task row (or refused as unknown, duplicate or
 * stale), a refusal noted by the round, and the open tasks of an attempt closed when it ends.
 */
import type { Logger } from 'pino';
import { EntenteError } from '../core/errors.ts';
import type { TaskResult } from '../protocol/index.ts';
import type { SqliteStore } from '../storage/index.ts';
import type { SecAggRound } from './secagg-round.ts';

/** The task kinds of one secure-sum attempt outside a training round. */
export const SUM_JOB_TASK_KINDS = [
  'secagg-sum',
  'secagg-share-keys',
  'secagg-masked-input',
  'secagg-consistency-check',
  'secagg-unmasking',
] as const;

/** Closes the open tasks of round `round` of `runId` (its attempt ended). */
export function closeSumJobTasks(store: SqliteStore, runId: string, round: number, now: number): void {
  for (const kind of SUM_JOB_TASK_KINDS) store.closeOpenTasks(runId, round, kind, 'expired', now);
}

/** The task row of `taskId` for `participant`; throws NOT_FOUND or DUPLICATE_RESULT. */
export function findJobTask(store: SqliteStore, participant: string, taskId: string) {
  const task = store.getTask(taskId);
  if (!task || task.participant !== participant)
    throw new EntenteError('NOT_FOUND', `task "${taskId}" is not assigned to ${participant}`, {
      field: 'taskId',
    });
  if (task.status === 'done')
    throw new EntenteError('DUPLICATE_RESULT', `a result for task "${taskId}" was already accepted`, {
      field: 'taskId',
    });
  return task;
}

/**
 * Hands a result to the job's open round: a refusal marks the task refused and is noted by the round;
 * anything else must name the task's run and round. `round` undefined (or `open` false): STALE_ROUND.
 */
export async function deliverJobResult(input: {
  store: SqliteStore;
  log: Logger;
  now: number;
  task: NonNullable<ReturnType<SqliteStore['getTask']>>;
  round: SecAggRound | undefined;
  open: boolean;
  participant: string;
  result: TaskResult;
  what: string;
}): Promise<void> {
  const { task, round, participant, result } = input;
  if (!round || !input.open || task.status !== 'open')
    throw new EntenteError('STALE_ROUND', `task "${task.id}" is for a stage that is no longer open`, {
      field: 'round',
    });
  if (result.kind === 'refusal') {
    input.store.setTaskStatus(task.id, 'refused', input.now);
    input.log.warn({ job: task.run_id, participant, code: result.code }, `${input.what} task refused`);
    await round.noteRefusal(participant, task.id, `${result.code}: ${result.message.slice(0, 300)}`);
    return;
  }
  if (result.runId !== task.run_id || result.round !== task.round)
    throw new EntenteError('STALE_ROUND', 'runId or round does not match the task', { field: 'round' });
  await round.accept(participant, result);
}
