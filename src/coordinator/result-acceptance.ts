/**
 * Result acceptance: a task's result checked in full before anything is written (assignee, status,
 * run and round, kind, open phase; an update streamed through the safetensors reader against the
 * model's layout and its digest; statistics' dimensions), then accepted in one transition with its
 * rows; a plain train update is folded into the running sum after the commit. Refusals from
 * participants, and secure-aggregation stage results, are routed to the phase or the attempt.
 */
import { safeCallerText } from '../core/caller-text.ts';
import { EntenteError } from '../core/errors.ts';
import { countParameters } from '../core/tensor.ts';
import { isRegressionSpec } from '../models/index.ts';
import type { BlobRef, TaskResult } from '../protocol/index.ts';
import { streamBlob } from './model-storage.ts';
import { logSumPrivacy, recordPrivacy } from './privacy-records.ts';
import { type LiveRun, type RunEngineContext, plainTaskId } from './run-engine-context.ts';
import { SECAGG_TASK_KINDS } from './secagg-round.ts';

/**
 * Validates and accepts one result. Throws an EntenteError naming the problem (and records it) when
 * the result is refused; nothing is written for a refused result.
 */
export async function acceptResult(
  ctx: RunEngineContext,
  participant: string,
  taskId: string,
  result: TaskResult,
): Promise<{ accepted: true }> {
  try {
    return await acceptResultUnrecorded(ctx, participant, taskId, result);
  } catch (err) {
    if (err instanceof EntenteError) {
      ctx.record(result.runId, result.round, 'result-refused', participant, err.code, err.message);
    }
    throw err;
  }
}

async function acceptResultUnrecorded(
  ctx: RunEngineContext,
  participant: string,
  taskId: string,
  result: TaskResult,
): Promise<{ accepted: true }> {
  const { store, now } = ctx.deps;
  const task = store.getTask(taskId);
  if (!task || task.participant !== participant) {
    throw new EntenteError('NOT_FOUND', `task "${taskId}" is not assigned to ${participant}`, {
      field: 'taskId',
    });
  }
  if (task.status === 'done') {
    throw new EntenteError('DUPLICATE_RESULT', `a result for task "${taskId}" was already accepted`, {
      field: 'taskId',
    });
  }
  if (result.runId !== task.run_id)
    throw new EntenteError('STALE_ROUND', 'runId does not match the task', { field: 'runId' });
  if (result.round !== task.round) {
    throw new EntenteError(
      'STALE_ROUND',
      `round ${result.round} does not match the task's round ${task.round}`,
      { field: 'round' },
    );
  }
  if (result.kind === 'refusal') {
    ctx.deps.store.setTaskStatus(taskId, 'refused', now());
    ctx.record(
      task.run_id,
      task.round,
      'participant-refused',
      participant,
      result.code,
      `${participant} refused ${task.kind}: ${result.message}`,
    );
    const live = ctx.runs.get(task.run_id);
    if (live?.secagg && SECAGG_TASK_KINDS.includes(task.kind) && live.state.round === task.round)
      await live.secagg.noteRefusal(participant, taskId, `${result.code}: ${result.message}`);
    else if (
      live &&
      task.status === 'open' &&
      live.state.status === 'active' &&
      live.state.phase === task.kind &&
      live.state.round === task.round &&
      taskId === plainTaskId(ctx, task.run_id, task.round, live.state.phase, participant)
    )
      // It takes no further part in this attempt of the phase: the phase goes on without it, or fails.
      ctx.step(task.run_id, {
        type: 'participant-refused',
        participant,
        code: safeCallerText(result.code, 64),
        message: safeCallerText(result.message, 300),
        maxFailures: live.config.maxFailuresPerPhase,
      });
    return { accepted: true };
  }
  if (result.kind !== task.kind)
    throw new EntenteError('INVALID_MESSAGE', `kind "${result.kind}" does not match the task`, {
      field: 'kind',
    });
  const live = ctx.runs.get(task.run_id);
  if (SECAGG_TASK_KINDS.includes(task.kind)) {
    const attempt = (JSON.parse(task.task_json) as { attempt?: number }).attempt ?? 0;
    const taskPhase = (JSON.parse(task.task_json) as { phase?: string }).phase ?? 'train';
    if (
      task.status !== 'open' ||
      !live?.secagg ||
      live.state.phase !== taskPhase ||
      live.state.round !== task.round
    ) {
      // Too late for the attempt, but the site trained for it: what that cost its records is kept.
      if (task.status !== 'done' && result.kind === 'secagg-train' && result.privacy)
        recordPrivacy(ctx, task.run_id, task.round, participant, result.privacy, attempt);
      throw new EntenteError('STALE_ROUND', `task "${taskId}" is for a stage that is no longer open`, {
        field: 'round',
      });
    }
    await live.secagg.accept(participant, result);
    if (result.kind === 'secagg-train' && result.privacy)
      recordPrivacy(ctx, task.run_id, task.round, participant, result.privacy, attempt);
    if (result.kind === 'secagg-sum' && result.privacy && taskPhase !== 'train')
      logSumPrivacy(ctx.deps.audit, {
        run: task.run_id,
        round: task.round,
        attempt,
        phase: taskPhase as 'statistics' | 'evaluate',
        participant,
        report: result.privacy,
      });
    return { accepted: true };
  }
  if (
    task.status !== 'open' ||
    !live ||
    live.state.status !== 'active' ||
    live.state.round !== task.round ||
    live.state.phase !== task.kind ||
    taskId !== plainTaskId(ctx, task.run_id, task.round, live.state.phase, participant)
  ) {
    throw new EntenteError('STALE_ROUND', `task "${taskId}" is for a phase that is no longer open`, {
      field: 'round',
    });
  }
  const at = now();
  if (result.kind === 'train') {
    validateUpdate(ctx, live, result.update);
    ctx.step(
      task.run_id,
      { type: 'result-accepted', participant },
      () => {
        store.insertUpdate({
          task_id: taskId,
          run_id: task.run_id,
          round: task.round,
          participant,
          blob_json: JSON.stringify(result.update),
          num_examples: result.numExamples,
          train_loss: result.trainLoss,
          received_at: at,
        });
        // Its chunks are now the run's: they no longer count against the member's upload quota.
        store.releaseChunkUploads(
          participant,
          result.update.chunks.map((c) => c.sha256),
        );
        // Plain updates are not signed (only secure aggregation signs commitments): signature ''.
        ctx.deps.audit.append('update-committed', {
          run: task.run_id,
          round: task.round,
          attempt: 0,
          participant,
          modelIn: (JSON.parse(task.task_json) as { model: BlobRef }).model.sha256,
          sha256: result.update.sha256,
          sessionId: taskId,
          signature: '',
        });
        store.setTaskStatus(taskId, 'done', at);
        // A reopened phase (after a failed attempt) is charged per attempt, like secure aggregation.
        const attempt = live.state.attempt ?? 0;
        if (result.privacy)
          recordPrivacy(
            ctx,
            task.run_id,
            task.round,
            participant,
            result.privacy,
            attempt > 0 ? attempt : undefined,
          );
      },
      // Fold after the commit; if we crash here the sum is rebuilt from the stored updates.
      () => {
        if (live.sum && !live.folded.has(participant))
          foldUpdate(ctx, live, participant, result.update, result.numExamples);
      },
    );
  } else if (result.kind === 'evaluate') {
    const regression = isRegressionSpec(live.config.model);
    if (regression !== (result.regression !== undefined))
      throw new EntenteError(
        'INVALID_MESSAGE',
        regression
          ? 'regression: a linear model is evaluated with regression sums, not accuracy'
          : 'accuracy: a classifier is evaluated with accuracy, not regression sums',
        { field: regression ? 'regression' : 'accuracy' },
      );
    if (result.regression) {
      const sums = result.regression;
      ctx.step(task.run_id, { type: 'result-accepted', participant }, () => {
        store.insertRegressionEvaluation({
          task_id: taskId,
          run_id: task.run_id,
          round: task.round,
          participant,
          num_examples: result.numExamples,
          sums_json: JSON.stringify(sums),
          received_at: at,
        });
        store.setTaskStatus(taskId, 'done', at);
      });
      return { accepted: true };
    }
    const accuracy = result.accuracy!;
    ctx.step(task.run_id, { type: 'result-accepted', participant }, () => {
      store.insertEvaluation({
        task_id: taskId,
        run_id: task.run_id,
        round: task.round,
        participant,
        num_examples: result.numExamples,
        loss: result.loss,
        accuracy,
        received_at: at,
      });
      store.setTaskStatus(taskId, 'done', at);
    });
  } else if (result.kind === 'statistics') {
    const dim = live.layout[0]?.shape[1] ?? 0;
    if (result.sum.length !== dim)
      throw new EntenteError('INVALID_MESSAGE', `sum: expected ${dim} features`, { field: 'sum' });
    if (result.sumSquares.length !== dim) {
      throw new EntenteError('INVALID_MESSAGE', `sumSquares: expected ${dim} features`, {
        field: 'sumSquares',
      });
    }
    ctx.step(task.run_id, { type: 'result-accepted', participant }, () => {
      store.insertStatistics({
        task_id: taskId,
        run_id: task.run_id,
        participant,
        stats_json: JSON.stringify(result),
        received_at: at,
      });
      store.setTaskStatus(taskId, 'done', at);
    });
  }
  return { accepted: true };
}

/** Streams an uploaded update through the safetensors reader: names, shapes, dtype, finiteness, digest. */
function validateUpdate(ctx: RunEngineContext, live: LiveRun, ref: BlobRef): void {
  const maxBytes = countParameters(live.layout) * 4 + 64 * 1024;
  if (ref.bytes > maxBytes) {
    throw new EntenteError('BODY_TOO_LARGE', `update.bytes ${ref.bytes} exceeds ${maxBytes} for this model`, {
      field: 'update.bytes',
    });
  }
  for (const [i, c] of ref.chunks.entries()) {
    if (ctx.deps.blobs.sizeOf(c.sha256) !== c.bytes) {
      throw new EntenteError('MALFORMED_BODY', `update.chunks.${i} was not uploaded completely`, {
        field: `update.chunks.${i}`,
      });
    }
  }
  const digest = streamBlob(ctx.deps.blobs, ref, live.layout, () => {}, true);
  if (digest !== ref.sha256) {
    throw new EntenteError('DIGEST_MISMATCH', 'update.sha256 does not match the uploaded chunks', {
      field: 'update.sha256',
    });
  }
}

/** Folds one accepted update into the running example-weighted sum of the train round. */
export function foldUpdate(
  ctx: RunEngineContext,
  live: LiveRun,
  participant: string,
  ref: BlobRef,
  numExamples: number,
): void {
  const started = performance.now();
  const sum = live.sum!;
  streamBlob(
    ctx.deps.blobs,
    ref,
    live.layout,
    (tensorIndex, offset, values) => sum.addSlice(tensorIndex, offset, values, numExamples),
    false,
  );
  sum.addWeight(numExamples);
  live.folded.add(participant);
  live.aggregateMs += performance.now() - started;
}
