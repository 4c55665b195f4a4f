/**
 * Per-site figures of a plain run's round evaluation (the run view's `evalPerSite`): the worst site and
 * the leave-one-site-out figures, from the sites' (examples, loss, accuracy) results the coordinator
 * received in the clear and aggregated. Given only when the policy in force allows per-site evaluation
 * figures (`exchange.perSiteEvaluation`); a site is named only when it also declared at registration
 * that its own policy lets its figures be named (`revealEvaluation`). Under secure aggregation the
 * coordinator holds only the sum of the sites' evaluation vectors, so there are no per-site figures.
 */
import { computeSiteEvaluationFigures, type SiteEvaluationFigures } from '../aggregation/index.ts';
import type { RunEngineContext } from './run-engine-context.ts';

/** The figures of `round`'s closed plain evaluation, or undefined (not allowed, secure, or not closed). */
export function siteEvaluationFigures(
  ctx: RunEngineContext,
  runId: string,
  round: { readonly round: number; readonly evaluated_at: number | null },
): SiteEvaluationFigures | undefined {
  if (round.evaluated_at === null || ctx.deps.perSiteEvaluationAllowed?.() !== true) return undefined;
  // A failed attempt's results are deleted when the phase reopens: these are the ones aggregated.
  const rows = ctx.deps.store.listEvaluations(runId, round.round);
  if (rows.length === 0) return undefined;
  const named = new Set<string>();
  for (const p of ctx.deps.store.listParticipantInfo()) {
    if (p.info_json === null) continue;
    try {
      if ((JSON.parse(p.info_json) as { revealEvaluation?: unknown }).revealEvaluation === true)
        named.add(p.id);
    } catch {
      // Not readable: not named.
    }
  }
  return computeSiteEvaluationFigures(
    rows.map((e) => ({
      participant: e.participant,
      numExamples: e.num_examples,
      loss: e.loss,
      accuracy: e.accuracy,
    })),
    (p) => named.has(p),
  );
}
