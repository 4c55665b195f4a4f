/**
 * One monitoring measurement's secure sum: the `secagg-sum` task of phase `monitor` (the model, its
 * spec and training standardization, the window and the monitoring spec, the declaration with the
 * policy's noise if any) written for the available sites, run by a SecAggRound; the unmasked total,
 * decoded, goes back to the jobs object (monitoring-jobs.ts); each attempt's row in secagg_attempts is
 * ended here too.
 */
import { createMonitoringLayout } from '../evaluation/index.ts';
import {
  type SecAggSumTask,
  buildSecureSumContext,
  buildSecureSumWire,
  decodeSecureSum,
  declareMonitoringSum,
  planSecAggCohort,
} from '../protocol/index.ts';
import type { KnownModel } from './evaluation-job-state.ts';
import {
  MONITORING_MAX_ROWS_PER_SITE,
  type MonitorJob,
  type MonitoringJobsDeps,
} from './monitoring-job-state.ts';
import { SecAggRound, createSecAggRoundDeps } from './secagg-round.ts';

/** What opening a round uses of the jobs object. */
export interface MonitorRoundContext {
  readonly deps: MonitoringJobsDeps;
  readonly rounds: Map<string, SecAggRound>;
  abortRound(job: MonitorJob, reason: string): void;
  finish(job: MonitorJob, values: Float64Array, survivors: string[]): void;
}

/** Opens `job`'s pending measurement over the available sites; fewer than 3: nothing (it waits). */
export function openMonitorRound(ctx: MonitorRoundContext, job: MonitorJob, known: KnownModel): void {
  const p = job.pending!;
  const planned = planSecAggCohort({ selected: ctx.deps.available(), maxParticipants: 1000 });
  if (!planned) return;
  const { cohort, threshold } = planned;
  const layout = createMonitoringLayout(job.spec);
  const declaration = declareMonitoringSum({
    layout,
    maxRows: MONITORING_MAX_ROWS_PER_SITE,
    cohortSize: cohort.length,
    noise: p.noiseMultiplier === null ? undefined : { noiseMultiplier: p.noiseMultiplier },
  });
  const secagg = buildSecureSumWire({
    consortium: ctx.deps.consortium,
    attempt: p.attempt,
    cohort,
    threshold,
    declaration,
  });
  const task = (taskId: string, issuedAt: number): SecAggSumTask => ({
    taskId,
    runId: job.id,
    round: p.round,
    attempt: p.attempt,
    issuedAt,
    kind: 'secagg-sum',
    phase: 'monitor',
    secureSum: { ...declaration, segments: [...declaration.segments] },
    model: known.ref,
    modelSpec: known.modelSpec,
    monitoring: { model: job.model, window: p.window, spec: { ...job.spec } },
    ...(known.standardization ? { standardization: known.standardization } : {}),
    secagg,
  });
  const sumRound: SecAggRound = new SecAggRound({
    deps: createSecAggRoundDeps(ctx.deps, (kind, participant, code, message) =>
      ctx.deps.log.info({ job: job.id, kind, participant, code }, message),
    ),
    context: buildSecureSumContext(task('context', 0)),
    phase: 'monitor',
    pinnedKeyOf: ctx.deps.pinnedKeyOf,
    firstStageTimeoutMs: ctx.deps.firstStageTimeoutMs ?? 120_000,
    stageTimeoutMs: ctx.deps.stageTimeoutMs ?? 30_000,
    firstTask: (_participant, taskId, issuedAt) => task(taskId, issuedAt),
    onDone: (outcome) => {
      if (ctx.rounds.get(job.id) !== sumRound) return;
      ctx.rounds.delete(job.id);
      if (!outcome.ok) {
        ctx.abortRound(job, outcome.reason);
        return;
      }
      let values: Float64Array;
      try {
        values = decodeSecureSum(declaration, outcome.sum, outcome.survivors.length, threshold);
      } catch (err) {
        ctx.abortRound(job, `the unmasked sum was refused: ${(err as Error).message}`);
        return;
      }
      ctx.finish(job, values, outcome.survivors);
    },
  });
  ctx.rounds.set(job.id, sumRound);
  ctx.deps.store.insertSecAggAttempt({
    run_id: job.id,
    round: p.round,
    attempt: p.attempt,
    phase: 'monitor',
    started_at: ctx.deps.now(),
    cohort_json: JSON.stringify(cohort),
    threshold,
    ring_bits: 64,
    session_id: null,
    survivors_json: null,
    dropped_json: null,
    outcome: 'running',
    reason: null,
    finished_at: null,
  });
  ctx.deps.log.info(
    { job: job.id, window: p.window, round: p.round, attempt: p.attempt, cohort },
    'monitoring sum opened',
  );
  sumRound.start();
}

/** Ends the pending measurement's attempt row (completed with its survivors, or aborted with why). */
export function finishMonitorAttempt(
  deps: Pick<MonitoringJobsDeps, 'store' | 'now'>,
  job: MonitorJob,
  outcome: 'completed' | 'aborted',
  reason: string | null,
  survivors: string[] | null,
): void {
  const p = job.pending!;
  deps.store.finishSecAggAttempt(
    { run_id: job.id, round: p.round, attempt: p.attempt, phase: 'monitor' },
    {
      session_id: null,
      survivors_json: survivors ? JSON.stringify(survivors) : null,
      dropped_json: null,
      outcome,
      reason,
      finished_at: deps.now(),
    },
  );
}
