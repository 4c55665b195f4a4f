/**
 * Transitions of the run state machine (protocol/run-machine.ts): each new state persisted with the
 * writes of its cause and of its effects in one transaction, then the effects applied (phases opened
 * and closed, failures, cancellation and completion recorded and logged).
 */
import {
  type RunEffect,
  type RunEvent,
  type RunFailure,
  describeRefusals,
  stepRun,
} from '../protocol/index.ts';
import { closePhase } from './phase-closing.ts';
import { openPhase } from './phase-opening.ts';
import type { LiveRun, RunEngineContext } from './run-engine-context.ts';

/**
 * One transition: the new state is persisted in the same transaction as `alsoInTransaction`'s
 * writes; `afterCommit` runs before the transition's effects are applied.
 */
export function step(
  ctx: RunEngineContext,
  runId: string,
  event: RunEvent,
  alsoInTransaction?: () => void,
  afterCommit?: () => void,
): void {
  const live = ctx.runs.get(runId);
  if (!live) return;
  const out = stepRun(live.state, event);
  if (out.state !== live.state || alsoInTransaction) {
    ctx.deps.store.transaction(() => {
      alsoInTransaction?.();
      ctx.deps.store.updateRun(runId, { state_json: JSON.stringify(out.state) });
      writeEffects(ctx, runId, live, out.effects);
    });
    live.state = out.state;
  }
  afterCommit?.();
  applyEffects(ctx, runId, out.effects);
}

/**
 * The writes of effects that must commit with the state that caused them: a failed attempt's open
 * tasks are withdrawn, and a cancelled run is marked and logged, so a restart sees either all or none.
 */
function writeEffects(
  ctx: RunEngineContext,
  runId: string,
  live: LiveRun,
  effects: readonly RunEffect[],
): void {
  const { store, audit } = ctx.deps;
  const at = ctx.deps.now();
  for (const effect of effects) {
    if (effect.type === 'phase-failed') {
      store.closeOpenTasks(runId, effect.round, effect.phase, 'expired', at);
      store.deletePhaseResults(runId, effect.round, effect.phase);
      if (effect.phase === 'train') {
        live.sum = undefined;
        live.folded = new Set();
      }
      audit.append('round-aborted', {
        run: runId,
        round: effect.round,
        attempt: effect.attempt,
        reason: `${effect.phase}: too few participants left: ${describeRefusals(effect.refused)}`.slice(
          0,
          2000,
        ),
      });
    } else if (effect.type === 'run-cancelled') {
      store.closeOpenTasksOfRun(runId, 'expired', at);
      if (live.secagg)
        store.finishSecAggAttempt(
          {
            run_id: runId,
            round: live.state.round,
            attempt: live.state.attempt ?? 0,
            phase: live.state.phase,
          },
          {
            session_id: live.secagg.session.sessionId ?? null,
            survivors_json: null,
            dropped_json: null,
            outcome: 'aborted',
            reason: 'run cancelled',
            finished_at: at,
          },
        );
      store.updateRun(runId, { status: 'cancelled', finished_at: at });
      audit.append('run-cancelled', {
        run: runId,
        by: effect.by,
        ...(effect.proposal ? { proposal: effect.proposal } : {}),
      });
    }
  }
}

/** Applies a committed transition's effects: phases opened and closed, failures and endings recorded. */
export function applyEffects(ctx: RunEngineContext, runId: string, effects: readonly RunEffect[]): void {
  for (const effect of effects) {
    switch (effect.type) {
      case 'phase-failed':
        ctx.record(
          runId,
          effect.round,
          'phase-failed',
          null,
          null,
          `${effect.phase} round ${effect.round} attempt ${effect.attempt}: too few participants left: ${describeRefusals(effect.refused)}`,
        );
        ctx.publishCheckpoint();
        break;
      case 'run-cancelled': {
        const live = ctx.runs.get(runId);
        live?.secagg?.expire();
        ctx.runs.delete(runId);
        ctx.record(
          runId,
          null,
          'run-cancelled',
          null,
          'RUN_CANCELLED',
          `run ${runId} cancelled by ${effect.by}`,
        );
        ctx.publishCheckpoint();
        ctx.deps.log.info({ run: runId, by: effect.by }, 'run cancelled');
        break;
      }
      case 'open-phase':
        openPhase(ctx, runId, effect.phase, effect.round, effect.available);
        break;
      case 'close-phase':
        closePhase(ctx, runId);
        break;
      case 'phase-overdue':
        ctx.record(
          runId,
          effect.round,
          'phase-overdue',
          null,
          null,
          `${effect.phase} round ${effect.round}: waiting for ${effect.missing.join(', ')}`,
        );
        break;
      case 'run-failed':
        markFailed(ctx, runId, effect.failure);
        break;
      case 'run-completed': {
        ctx.deps.store.transaction(() => {
          ctx.deps.store.updateRun(runId, { status: 'completed', finished_at: ctx.deps.now() });
          ctx.deps.audit.append('run-completed', { run: runId });
        });
        ctx.publishCheckpoint();
        ctx.runs.delete(runId);
        ctx.deps.log.info({ run: runId }, 'run completed');
        break;
      }
    }
  }
}

/** A run that cannot go on: stored as failed with its coded reason, logged, and dropped from the live runs. */
export function markFailed(ctx: RunEngineContext, runId: string, failure: RunFailure): void {
  ctx.deps.store.transaction(() => {
    ctx.deps.store.updateRun(runId, { status: 'failed', finished_at: ctx.deps.now() });
    ctx.deps.audit.append('run-failed', {
      run: runId,
      round: failure.round,
      attempt: failure.attempt,
      code: failure.code,
      reason: failure.message.slice(0, 2000),
    });
  });
  ctx.record(runId, failure.round, 'run-failed', null, failure.code, failure.message);
  ctx.publishCheckpoint();
  const live = ctx.runs.get(runId);
  live?.secagg?.expire();
  ctx.runs.delete(runId);
  ctx.deps.log.error({ run: runId, code: failure.code }, `run failed: ${failure.message}`);
}
