/**
 * The privacy records of a run: what each round (and, under secure aggregation, each attempt) cost a
 * participant's records, as its own ledger reports it; kept in the store and logged as privacy-spent.
 */
import type { PrivacyReport } from '../protocol/index.ts';
import type { AuditLog } from './audit-log.ts';
import type { RunEngineContext } from './run-engine-context.ts';

/**
 * Keeps and logs what a round cost a participant's records, as its own ledger reports it. With secure
 * aggregation, per attempt: a charge is kept for every attempt the site trained for (aborted or not);
 * an attempt that reused an earlier attempt's update (report.chargedAttempt names that one) is kept
 * as such, without a new privacy-spent entry: nothing new was spent.
 */
export function recordPrivacy(
  ctx: RunEngineContext,
  runId: string,
  round: number,
  participant: string,
  report: PrivacyReport,
  attempt?: number,
): void {
  // Idempotent: a result posted twice (a retry after a lost answer) is one charge.
  const key = attempt ?? 0;
  if (
    ctx.deps.store
      .listPrivacyCharges(runId)
      .some((c) => c.round === round && c.attempt === key && c.participant === participant)
  )
    return;
  ctx.deps.store.putPrivacyCharge({
    run_id: runId,
    round,
    attempt: attempt ?? 0,
    participant,
    report_json: JSON.stringify(report),
    received_at: ctx.deps.now(),
  });
  if (attempt !== undefined && report.chargedAttempt !== undefined && report.chargedAttempt !== attempt)
    return;
  ctx.deps.store.putPrivacyReport({
    run_id: runId,
    round,
    participant,
    report_json: JSON.stringify(report),
    received_at: ctx.deps.now(),
  });
  ctx.deps.audit.append('privacy-spent', {
    run: runId,
    round,
    ...(attempt === undefined ? {} : { attempt }),
    participant,
    ...report.event,
    epsilonRun: report.epsilonRun,
    epsilonTotal: report.epsilonTotal,
    delta: report.delta,
  });
}

/**
 * Logs what a noised secure sum (a run's statistics or evaluate phase, or an evaluation plan's label)
 * cost a participant's records, as its own ledger reports it. A retried attempt that sent the same
 * noised sum again (report.chargedAttempt names an earlier attempt) spent nothing new: not logged.
 */
export function logSumPrivacy(
  audit: AuditLog,
  input: {
    readonly run: string;
    readonly round: number;
    readonly attempt: number;
    readonly phase: 'statistics' | 'evaluate' | 'monitor';
    readonly participant: string;
    readonly report: PrivacyReport;
  },
): void {
  const { report } = input;
  if (report.chargedAttempt !== undefined && report.chargedAttempt !== input.attempt) return;
  audit.append('privacy-spent', {
    run: input.run,
    round: input.round,
    attempt: input.attempt,
    phase: input.phase,
    participant: input.participant,
    ...report.event,
    epsilonRun: report.epsilonRun,
    epsilonTotal: report.epsilonTotal,
    delta: report.delta,
  });
}
