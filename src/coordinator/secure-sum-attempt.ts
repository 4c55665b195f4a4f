/**
 * Secure-sum attempts of the statistics and evaluate phases: opening one over the phase's cohort
 * (secure-sum-phase.ts plans its context and tasks and decodes the sum) and closing the phase from the
 * unmasked sum (the standardization, or the round's evaluation metrics).
 */
import type { BlobRef, Standardization } from '../protocol/index.ts';
import type { LiveRun, RunEngineContext } from './run-engine-context.ts';
import {
  abortSecAgg,
  finishCompletedAttempt,
  insertRunningAttempt,
  planLiveCohort,
} from './secagg-attempt.ts';
import { SecAggRound, createSecAggRoundDeps } from './secagg-round.ts';
import { type SumPhaseOutcome, finishSumAttempt, planSumAttempt } from './secure-sum-phase.ts';

/** Opens one secure-sum attempt of a statistics or evaluate phase (first stage: compute the sums, advertise). */
export function openSumAttempt(
  ctx: RunEngineContext,
  runId: string,
  live: LiveRun,
  phase: 'statistics' | 'evaluate',
  selected: readonly string[],
  input: {
    model: BlobRef;
    modelLogIndex: number | undefined;
    standardization: Standardization | undefined;
    schemaDigest: string | undefined;
  },
): void {
  const sa = live.config.secureAggregation;
  const planned = planLiveCohort(live, selected);
  if (!planned) return;
  const { cohort, threshold, round, attempt } = planned;
  const plan = planSumAttempt({
    runId,
    round,
    attempt,
    phase,
    config: live.config,
    consortium: ctx.deps.consortium,
    cohort,
    threshold,
    features: live.layout[0]?.shape[1] ?? 0,
    model: phase === 'evaluate' ? input.model : undefined,
    modelLogIndex: input.modelLogIndex,
    standardization: phase === 'evaluate' ? input.standardization : undefined,
    schemaDigest: input.schemaDigest,
  });
  const started = performance.now();
  const secagg: SecAggRound = new SecAggRound({
    deps: createSecAggRoundDeps(ctx.deps, (kind, participant, code, message) =>
      ctx.record(runId, round, kind, participant, code, message),
    ),
    context: plan.context,
    phase,
    pinnedKeyOf: ctx.deps.pinnedKeyOf,
    firstStageTimeoutMs: live.config.roundTimeoutMs,
    stageTimeoutMs: sa.stageTimeoutMs,
    firstTask: (_participant, taskId, issuedAt) => plan.task(taskId, issuedAt),
    onDone: (outcome) => {
      if (live.secagg !== secagg) return;
      if (!outcome.ok) {
        abortSecAgg(ctx, runId, live, outcome.reason);
        return;
      }
      let result: SumPhaseOutcome;
      try {
        result = finishSumAttempt(plan, live.config, outcome.sum, outcome.survivors.length);
      } catch (err) {
        abortSecAgg(ctx, runId, live, `the unmasked sum was refused: ${(err as Error).message}`);
        return;
      }
      live.secagg = undefined;
      finishCompletedAttempt(ctx, { runId, round, attempt, phase }, secagg, outcome);
      live.sumResult = {
        outcome: result,
        contributors: outcome.survivors,
        aggregateMs: performance.now() - started,
      };
      ctx.record(
        runId,
        round,
        'secagg-completed',
        null,
        null,
        `${phase} round ${round} attempt ${attempt}: secure sum of ${outcome.survivors.length} sites unmasked (threshold ${threshold})`,
      );
      ctx.step(runId, { type: 'close-requested', contributors: outcome.survivors });
    },
  });
  live.secagg = secagg;
  ctx.step(runId, { type: 'phase-opened', cohort, deadlineAt: null }, () => {
    insertRunningAttempt(ctx, { runId, round, attempt, phase }, cohort, threshold, 64);
    ctx.deps.audit.append('round-started', {
      run: runId,
      round,
      attempt,
      phase,
      modelIn: plan.context.baseModelSha256,
      cohort,
      protocol: 'secagg',
      threshold,
    });
  });
  ctx.record(
    runId,
    round,
    'secagg-started',
    null,
    null,
    `${phase} round ${round} attempt ${attempt}: secure sum with ${cohort.length} participants, threshold ${threshold}`,
  );
  secagg.start();
}

/** Closes a statistics or evaluate phase from its unmasked secure sum. */
export function closeSumPhase(ctx: RunEngineContext, runId: string, live: LiveRun): void {
  const { store, now } = ctx.deps;
  const { phase, round } = live.state;
  const result = live.sumResult;
  if (!result) {
    abortSecAgg(ctx, runId, live, 'no unmasked sum is available');
    return;
  }
  live.sumResult = undefined;
  const at = now();
  const o = result.outcome;
  ctx.step(runId, { type: 'phase-closed' }, () => {
    if (o.kind === 'statistics') {
      store.updateRun(runId, { standardization_json: JSON.stringify({ mean: o.mean, std: o.std }) });
      return;
    }
    const headline =
      o.kind === 'regression'
        ? { examples: o.metrics.numExamples, loss: o.metrics.mse, accuracy: null }
        : {
            examples: o.metrics.overall.rows,
            loss: o.metrics.overall.logLoss,
            accuracy: o.metrics.overall.accuracy,
          };
    store.upsertRound({
      run_id: runId,
      round,
      evaluated_at: at,
      eval_examples: headline.examples,
      eval_loss: headline.loss,
      eval_accuracy: headline.accuracy,
    });
    store.setRoundMetrics(
      runId,
      round,
      JSON.stringify(
        o.kind === 'regression'
          ? { mse: o.metrics.mse, mae: o.metrics.mae, rmse: o.metrics.rmse, r2: o.metrics.r2, secure: true }
          : { ...o.metrics, secure: true },
      ),
    );
    ctx.deps.audit.append('evaluated', {
      run: runId,
      round,
      examples: headline.examples,
      loss: headline.loss !== null && Number.isFinite(headline.loss) ? headline.loss : null,
      accuracy: headline.accuracy,
    });
  });
  ctx.deps.log.info(
    {
      run: runId,
      phase,
      round,
      contributors: result.contributors.length,
      ms: Math.round(result.aggregateMs),
    },
    phase === 'statistics'
      ? 'federated feature statistics summed securely'
      : 'round evaluated under secure aggregation',
  );
}
