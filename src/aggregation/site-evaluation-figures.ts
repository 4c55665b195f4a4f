/**
 * Per-site figures of a plain run's federated evaluation, from the sites' (examples, loss, accuracy)
 * reports: the worst site (highest loss, lowest accuracy) and, for each site, the figures over all the
 * other sites (leave one site out). Everything comes from the additive sums the round's figures are
 * made of (Σ examples, Σ examples·loss, Σ examples·accuracy), so a leave-one-site-out figure is exactly
 * the example-weighted mean over the union of the other sites' rows. A site is named only when
 * `named(participant)` says it agreed to be; the figures of a site not named are still given, without
 * its name, after the named ones in an order that does not depend on it (by loss, then accuracy).
 */
import { EntenteError } from '../core/errors.ts';
import type { EvaluationResult } from './evaluation-aggregation.ts';

export interface WorstSite {
  /** The site's loss (worstLoss) or accuracy (worstAccuracy). */
  readonly value: number;
  /** Only when that site agreed to be named; otherwise null. */
  readonly participant: string | null;
}

export interface LeaveOneSiteOut {
  /** The site left out, only when it agreed to be named; otherwise null. */
  readonly participant: string | null;
  /** Examples of all the other sites. */
  readonly numExamples: number;
  readonly loss: number;
  readonly accuracy: number;
}

export interface SiteEvaluationFigures {
  readonly sites: number;
  /** The highest loss any site reported. */
  readonly worstLoss: WorstSite;
  /** The lowest accuracy any site reported. */
  readonly worstAccuracy: WorstSite;
  /** One entry per site: the figures over all the others (empty with fewer than 2 sites). */
  readonly leaveOneSiteOut: readonly LeaveOneSiteOut[];
}

/**
 * The worst site and the leave-one-site-out figures. Throws INVALID_ARGUMENT (field `results`) without
 * a result, or for an entry with non-positive examples, a non-finite loss or an accuracy outside [0, 1].
 */
export function computeSiteEvaluationFigures(
  results: readonly EvaluationResult[],
  named: (participant: string) => boolean,
): SiteEvaluationFigures {
  if (results.length === 0)
    throw new EntenteError('INVALID_ARGUMENT', 'results: no evaluation results', { field: 'results' });
  results.forEach((r, i) => {
    if (
      !Number.isSafeInteger(r.numExamples) ||
      r.numExamples <= 0 ||
      !Number.isFinite(r.loss) ||
      !(r.accuracy >= 0 && r.accuracy <= 1)
    )
      throw new EntenteError(
        'INVALID_ARGUMENT',
        `results[${i}]: examples must be a positive integer, loss finite and accuracy in [0, 1]`,
        { field: `results[${i}]` },
      );
  });
  let examples = 0;
  let lossSum = 0;
  let accuracySum = 0;
  for (const r of results) {
    examples += r.numExamples;
    lossSum += r.numExamples * r.loss;
    accuracySum += r.numExamples * r.accuracy;
  }
  const nameOf = (p: string): string | null => (named(p) ? p : null);
  const worstLoss = results.reduce((a, b) => (b.loss > a.loss ? b : a));
  const worstAccuracy = results.reduce((a, b) => (b.accuracy < a.accuracy ? b : a));
  const leaveOneSiteOut: LeaveOneSiteOut[] =
    results.length < 2
      ? []
      : results.map((r) => {
          const rest = examples - r.numExamples;
          return {
            participant: nameOf(r.participant),
            numExamples: rest,
            loss: (lossSum - r.numExamples * r.loss) / rest,
            accuracy: Math.min(1, Math.max(0, (accuracySum - r.numExamples * r.accuracy) / rest)),
          };
        });
  // Named entries by name; the others after them by their figures only.
  leaveOneSiteOut.sort((a, b) => {
    if (a.participant !== null && b.participant !== null) return a.participant < b.participant ? -1 : 1;
    if (a.participant !== null || b.participant !== null) return a.participant !== null ? -1 : 1;
    return b.loss - a.loss || a.accuracy - b.accuracy || a.numExamples - b.numExamples;
  });
  return {
    sites: results.length,
    worstLoss: { value: worstLoss.loss, participant: nameOf(worstLoss.participant) },
    worstAccuracy: { value: worstAccuracy.accuracy, participant: nameOf(worstAccuracy.participant) },
    leaveOneSiteOut,
  };
}
