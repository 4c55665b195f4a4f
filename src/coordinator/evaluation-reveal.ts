/**
 * Per-site figures of an evaluation plan, where every party consents: the plan asks for them
 * (`perSite`, approved by its quorum), the policy in force allows them (`exchange.perSiteEvaluation`),
 * and each site's own policy says `revealEvaluation: true` (sites check the first two themselves in
 * their verified log). After a label's secure sum, each survivor is asked for its own sums; every answer
 * is logged as an `evaluation-disclosure` (its digest), and from them come each site's figures, the
 * worst site per metric, and each site's leave-one-site-out figures (the secure total minus its sums).
 * A site that refuses, or does not answer by the deadline, stays inside the secure sum only.
 */
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { type EvaluationLayout, type EvaluationMetrics, finalizeEvaluation } from '../evaluation/index.ts';
import { type EvaluationPlan, headlineFigures } from '../governance/index.ts';
import type { EvaluationRevealTask } from '../protocol/index.ts';

/** Metrics where a smaller value is better: the worst site has the largest. */
const LOWER_IS_BETTER: ReadonlySet<string> = new Set([
  'logLoss',
  'brier',
  'ece',
  'mce',
  'demographicParityDifference',
  'equalizedOddsDifference',
  'equalOpportunityDifference',
]);

export interface PerSiteFigures {
  /** Each revealing site's headline figures (the plan's metrics) and rows. */
  readonly sites: Record<string, { rows: number; metrics: Record<string, number | null> }>;
  /** Per metric: the site with the worst figure among those that revealed. */
  readonly worstSite: Record<string, { site: string; value: number } | null>;
  /** Per revealing site: the headline figures of every other site's rows (secure total minus its sums). */
  readonly leaveOneOut: Record<string, Record<string, number | null> | null>;
  /** Survivors that refused or did not answer (their figures stay inside the secure sum). */
  readonly withheld: string[];
}

export interface RevealState {
  readonly round: number;
  readonly label: string;
  readonly asked: string[];
  readonly deadlineAt: number;
  /** Sums of each site that revealed, as it sent them. */
  readonly revealed: Record<string, number[]>;
  readonly refused: string[];
}

/** The task asking `participant`'s own sums of the label just summed securely. */
export function buildRevealTask(input: {
  jobId: string;
  round: number;
  participant: string;
  planDigest: string;
  label: string;
  base: Pick<
    EvaluationRevealTask,
    'model' | 'modelSpec' | 'evaluation' | 'standardization' | 'dataSchemaDigest'
  >;
  issuedAt: number;
}): EvaluationRevealTask {
  return {
    taskId: `${input.jobId}.r${input.round}.reveal.${input.participant}`,
    runId: input.jobId,
    round: input.round,
    issuedAt: input.issuedAt,
    kind: 'evaluation-reveal',
    plan: { digest: input.planDigest, label: input.label },
    model: input.base.model,
    modelSpec: input.base.modelSpec,
    evaluation: input.base.evaluation,
    ...(input.base.standardization ? { standardization: input.base.standardization } : {}),
    ...(input.base.dataSchemaDigest ? { dataSchemaDigest: input.base.dataSchemaDigest } : {}),
  };
}

/**
 * Checks one site's revealed sums (length, and everything finalizeEvaluation checks: non-negative,
 * integral counts, consistent histograms) and returns what the disclosure entry records. Throws
 * INVALID_MESSAGE naming `sums`.
 */
export function checkRevealedSums(
  layout: EvaluationLayout,
  sums: readonly number[],
  maxRows: number,
): { metrics: EvaluationMetrics; rows: number; sumsSha256: string } {
  if (sums.length !== layout.length)
    throw new EntenteError('INVALID_MESSAGE', `sums: expected ${layout.length} sums for this plan`, {
      field: 'sums',
    });
  const metrics = finalizeEvaluation(layout, Float64Array.from(sums));
  if (metrics.overall.rows > maxRows)
    throw new EntenteError('INVALID_MESSAGE', `sums: more than the ${maxRows} rows a site may hold`, {
      field: 'sums',
    });
  return {
    metrics,
    rows: metrics.overall.rows,
    sumsSha256: sha256Hex(Buffer.from(canonicalizeJson([...sums]), 'utf8')),
  };
}

/** Each site's figures, the worst site per metric and leave-one-site-out figures, from the revealed sums. */
export function summarizePerSite(
  plan: EvaluationPlan,
  layout: EvaluationLayout,
  total: readonly number[],
  reveal: RevealState,
): PerSiteFigures {
  const headline = (m: EvaluationMetrics) =>
    headlineFigures(plan, m as unknown as Parameters<typeof headlineFigures>[1]).metrics;
  const sites: PerSiteFigures['sites'] = {};
  const leaveOneOut: PerSiteFigures['leaveOneOut'] = {};
  for (const [site, sums] of Object.entries(reveal.revealed)) {
    const own = finalizeEvaluation(layout, Float64Array.from(sums));
    sites[site] = { rows: own.overall.rows, metrics: headline(own) };
    const rest = Float64Array.from(total, (v, i) => v - sums[i]!);
    // Real sums carry the secure sum's fixed-point rounding: clamp what rounds below zero.
    for (let i = 0; i < rest.length; i++) if (rest[i]! < 0 && rest[i]! > -1e-6) rest[i] = 0;
    try {
      leaveOneOut[site] = headline(finalizeEvaluation(layout, rest));
    } catch {
      // The site's sums do not fit inside the secure total: it lied in one of them. No figure.
      leaveOneOut[site] = null;
    }
  }
  const worstSite: PerSiteFigures['worstSite'] = {};
  for (const metric of plan.metrics) {
    let worst: { site: string; value: number } | null = null;
    for (const [site, s] of Object.entries(sites)) {
      const v = s.metrics[metric];
      if (typeof v !== 'number') continue;
      const worse = LOWER_IS_BETTER.has(metric) ? (w: number) => v > w : (w: number) => v < w;
      if (!worst || worse(worst.value)) worst = { site, value: v };
    }
    worstSite[metric] = worst;
  }
  const withheld = reveal.asked.filter((s) => !Object.hasOwn(reveal.revealed, s));
  return { sites, worstSite, leaveOneOut, withheld };
}
