/**
 * The run view (GET /v1/runs/:runId): a run's state, configuration, model, per-round metrics and
 * cohorts (with per-site evaluation figures where allowed, run-site-evaluation.ts), secure-aggregation attempts with what each cost every site, and the privacy reported.
 */
import { EntenteError } from '../core/errors.ts';
import type { PrivacyReport, RunState } from '../protocol/index.ts';
import type { RunEngineContext, StoredModel } from './run-engine-context.ts';
import { siteEvaluationFigures } from './run-site-evaluation.ts';

/** The run view of one run (NOT_FOUND for an unknown run). */
export function describeRun(ctx: RunEngineContext, runId: string): unknown {
  const row = ctx.deps.store.getRun(runId);
  if (!row) throw new EntenteError('NOT_FOUND', `run "${runId}" does not exist`, { field: 'runId' });
  const state = JSON.parse(row.state_json) as RunState;
  const cohorts = ctx.deps.store.countTaskParticipants(runId);
  const cohortOf = (round: number, kind: string): number =>
    cohorts.find((c) => c.round === round && c.kind === kind)?.participants ?? 0;
  // The largest ε (for this run) any institution reported after each round, when DP is on.
  const epsilonByRound = new Map<number, number>();
  for (const r of ctx.deps.store.listPrivacyReports(runId)) {
    const e = (JSON.parse(r.report_json) as PrivacyReport).epsilonRun;
    if (e !== null && Number.isFinite(e))
      epsilonByRound.set(r.round, Math.max(e, epsilonByRound.get(r.round) ?? 0));
  }
  const rounds = ctx.deps.store.listRounds(runId).map((r) => ({
    round: r.round,
    /** Participants given a train (or secure-aggregation train) and an evaluate task this round. */
    trainCohort: cohortOf(r.round, 'train') || cohortOf(r.round, 'secagg-train'),
    evalCohort: cohortOf(r.round, 'evaluate'),
    evaluators: ctx.deps.store.listEvaluations(runId, r.round).length,
    epsilon: epsilonByRound.get(r.round) ?? null,
    contributors: r.contributors_json ? (JSON.parse(r.contributors_json) as string[]) : [],
    trainExamples: r.train_examples,
    trainLoss: r.train_loss,
    evalExamples: r.eval_examples,
    evalLoss: r.eval_loss,
    evalAccuracy: r.eval_accuracy,
    ...(() => {
      const metrics = ctx.deps.store.getRoundMetrics(runId, r.round);
      return metrics ? { evalMetrics: JSON.parse(metrics) as Record<string, number | null> } : {};
    })(),
    ...(() => {
      // Plain runs where the policy allows per-site figures: the worst site, each site left out.
      const perSite = siteEvaluationFigures(ctx, runId, r);
      return perSite ? { evalPerSite: perSite } : {};
    })(),
    modelIn: r.model_in,
    modelOut: r.model_out,
    aggregateMs: r.aggregate_ms,
    startedAt: r.started_at,
    trainedAt: r.trained_at,
    evaluatedAt: r.evaluated_at,
  }));
  const charges = ctx.deps.store.listPrivacyCharges(runId);
  const secureAggregation = ctx.deps.store.listSecAggAttempts(runId).map((a) => ({
    round: a.round,
    /** train, or the secure sum of the statistics or evaluate phase. */
    phase: a.phase ?? 'train',
    attempt: a.attempt,
    cohort: JSON.parse(a.cohort_json) as string[],
    threshold: a.threshold,
    ringBits: a.ring_bits,
    sessionId: a.session_id,
    survivors: a.survivors_json ? (JSON.parse(a.survivors_json) as string[]) : null,
    dropped: a.dropped_json ? (JSON.parse(a.dropped_json) as string[]) : null,
    outcome: a.outcome,
    reason: a.reason,
    /** What each site reported this attempt cost it: charged (it trained) or reused (nothing new). */
    charges: charges
      .filter((c) => (a.phase ?? 'train') === 'train' && c.round === a.round && c.attempt === a.attempt)
      .map((c) => {
        const report = JSON.parse(c.report_json) as PrivacyReport;
        const charged = report.chargedAttempt === undefined || report.chargedAttempt === a.attempt;
        return {
          participant: c.participant,
          charged,
          ...(charged ? {} : { reusedFrom: report.chargedAttempt }),
          event: report.event,
          epsilonRun: report.epsilonRun,
        };
      }),
  }));
  const attemptsPerRound = [...new Set(secureAggregation.map((a) => a.round))].map((round) => {
    const of = secureAggregation.filter((a) => a.round === round);
    return {
      round,
      attempts: of.length,
      aborted: of.filter((a) => a.outcome === 'aborted').length,
      charged: of.reduce((n, a) => n + a.charges.filter((c) => c.charged).length, 0),
    };
  });
  const privacy: Record<
    string,
    { round: number; epsilonRun: number | null; epsilonTotal: number | null; delta: number }
  > = {};
  for (const r of ctx.deps.store.listPrivacyReports(runId)) {
    const report = JSON.parse(r.report_json) as PrivacyReport;
    privacy[r.participant] = {
      round: r.round,
      epsilonRun: report.epsilonRun,
      epsilonTotal: report.epsilonTotal,
      delta: report.delta,
    };
  }
  return {
    id: row.id,
    status: row.status,
    phase: state.phase,
    privacy,
    /** Client-level DP: the clip the next round applies (moves with adaptive clipping). */
    clientDpClipNorm: (() => {
      const cdp = (JSON.parse(row.config_json) as { clientDp?: { clipNorm: number } }).clientDp;
      return cdp ? ((JSON.parse(row.model_json) as StoredModel).clipNorm ?? cdp.clipNorm) : null;
    })(),
    attempt: state.attempt ?? 0,
    maxAttemptsPerRound:
      (JSON.parse(row.config_json) as { maxAttemptsPerRound?: number }).maxAttemptsPerRound ?? 3,
    /** Why the run failed (status 'failed'): code, round, attempt, message. */
    failure: state.failure ?? null,
    /** Who cancelled the run (status 'cancelled'). */
    cancellation: state.cancellation ?? null,
    /** Participants out of the open plain phase (refused or could not execute), with code and message. */
    refused: state.refused ?? [],
    failedAttempts: state.failures ?? 0,
    maxFailuresPerPhase:
      (JSON.parse(row.config_json) as { maxFailuresPerPhase?: number }).maxFailuresPerPhase ?? 3,
    attemptsPerRound,
    secureAggregation,
    round: state.round,
    totalRounds: state.totalRounds,
    cohort: state.cohort,
    received: state.received,
    config: JSON.parse(row.config_json) as unknown,
    model: (JSON.parse(row.model_json) as StoredModel).ref,
    standardization: row.standardization_json ? (JSON.parse(row.standardization_json) as unknown) : null,
    rounds,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
  };
}
