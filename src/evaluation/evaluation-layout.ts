/**
 * The vector of additive sums a private evaluation exchanges. Each site fills one from its own rows
 * (accumulate-evaluation.ts); the sites' vectors are added coordinate by coordinate (in the clear or
 * by secure aggregation); every metric is then computed from the total (finalize-evaluation.ts). So
 * the federated figure is exactly the figure on the union of the sites' rows, up to the rounding of
 * the real-valued sums. Every coordinate is a count or a bounded non-negative sum, so a secure sum
 * can encode it with a known range (`kind`, `maxPerRow`).
 *
 * Blocks: `overall` (all rows), then `slices[i]` for each spec slice in order (the rows in it). Each
 * block has, with K = numClasses, B = scoreBins, C = calibrationBins:
 *
 * | segment                       | kind  | length      | each row adds                                   |
 * |-------------------------------|-------|-------------|-------------------------------------------------|
 * | `<block>.confusion`           | count | K·K         | 1 at [true · K + predicted], predicted = argmax  |
 * | `<block>.logLoss`             | sum   | 1           | min(−ln clip(p_true, 1e-15, 1 − 1e-15), clip) with clip = dp.maxRowLogLoss, else 34.6 |
 * | `<block>.brier`               | sum   | 1           | binary (p₁ − y)² ≤ 1; else Σₖ (pₖ − 1[y=k])² ≤ 2 |
 * | `<block>.scoreHistogram`      | count | 2·B or K·2·B | 1 at the bin of each one-vs-rest score (below) |
 * | `<block>.calibrationCount`    | count | C           | 1 at the bin of the confidence                   |
 * | `<block>.calibrationConfidence` | sum | C           | the confidence (≤ 1) at its bin                  |
 * | `<block>.calibrationPositive` | count | C           | 1 at the bin if positive (binary) / correct      |
 *
 * scoreHistogram: binary, the score is p₁ and the segment is [positives' bins (B) | negatives' bins
 * (B)]; multi-class, for each class k in order the score is pₖ and class k's part is
 * [bins of rows with label k (B) | bins of the other rows (B)]. Confidence: binary p₁ (positive =
 * label 1); multi-class the top-label probability max pₖ (positive = the argmax is the label).
 *
 * Fairness (only with spec.sensitive, over all rows whose group is known), one coordinate per group
 * value in order: binary `fairness.positives`, `fairness.negatives`, `fairness.truePositives`,
 * `fairness.falsePositives` (predicted positive = argmax is class 1); multi-class `fairness.rows`,
 * `fairness.correct`. Rows, selection rate and accuracy per group follow from these.
 */
import { EntenteError } from '../core/errors.ts';
import type { EvaluationSpec } from './evaluation-metrics.ts';
import { MAX_ROW_LOG_LOSS, parseEvaluationSpec } from './evaluation-spec.ts';

export interface SumSegment {
  readonly name: string;
  readonly offset: number;
  readonly length: number;
  /** 'count': each row adds an integer 0..maxPerRow to each coordinate; 'sum': each row adds a real in [0, maxPerRow]. */
  readonly kind: 'count' | 'sum';
  readonly maxPerRow: number;
  /** The most one row changes the segment in L2 norm (its sensitivity): 1 for a one-hot count. */
  readonly maxRowL2: number;
}

export interface EvaluationLayout {
  readonly spec: EvaluationSpec;
  readonly length: number;
  readonly segments: readonly SumSegment[];
}

/** Clip of predicted probabilities in the log loss (scikit-learn's classic eps). */
export const LOG_LOSS_EPS = 1e-15;
export { MAX_ROW_LOG_LOSS } from './evaluation-spec.ts';

/** The per-row log-loss clip of a spec: its dp.maxRowLogLoss, else 34.6 (no clip of the exact figure). */
export function rowLogLossClip(spec: EvaluationSpec): number {
  return spec.dp?.maxRowLogLoss ?? MAX_ROW_LOG_LOSS;
}

/** Segment names of one block, in vector order. */
export const blockSegmentNames = [
  'confusion',
  'logLoss',
  'brier',
  'scoreHistogram',
  'calibrationCount',
  'calibrationConfidence',
  'calibrationPositive',
] as const;
export type BlockSegmentName = (typeof blockSegmentNames)[number];

/** `overall`, then `slices[0]`, `slices[1]`, … */
export function blockPrefixes(spec: EvaluationSpec): string[] {
  return ['overall', ...(spec.slices ?? []).map((_, i) => `slices[${i}]`)];
}

/**
 * The layout of the sums vector of a spec. The spec is checked again (parseEvaluationSpec: bounds,
 * INVALID_CONFIG), so a hand-built one cannot ask for an unbounded vector. Pure: the same spec always
 * gives the same layout.
 */
export function createEvaluationLayout(input: EvaluationSpec): EvaluationLayout {
  const spec = parseEvaluationSpec(input);
  const k = spec.numClasses;
  const segments: SumSegment[] = [];
  let offset = 0;
  const add = (
    name: string,
    length: number,
    kind: 'count' | 'sum',
    maxPerRow: number,
    maxRowL2 = maxPerRow,
  ): void => {
    segments.push(Object.freeze({ name, offset, length, kind, maxPerRow, maxRowL2 }));
    offset += length;
  };
  for (const prefix of blockPrefixes(spec)) {
    // Each row adds to one coordinate of every segment (L2 = its per-row bound), except the
    // multi-class score histogram: one bin per class, so √K.
    add(`${prefix}.confusion`, k * k, 'count', 1);
    add(`${prefix}.logLoss`, 1, 'sum', rowLogLossClip(spec));
    add(`${prefix}.brier`, 1, 'sum', k === 2 ? 1 : 2);
    add(
      `${prefix}.scoreHistogram`,
      (k === 2 ? 2 : 2 * k) * spec.scoreBins,
      'count',
      1,
      k === 2 ? 1 : Math.sqrt(k),
    );
    add(`${prefix}.calibrationCount`, spec.calibrationBins, 'count', 1);
    add(`${prefix}.calibrationConfidence`, spec.calibrationBins, 'sum', 1);
    add(`${prefix}.calibrationPositive`, spec.calibrationBins, 'count', 1);
  }
  if (spec.sensitive !== undefined) {
    const g = spec.sensitive.values.length;
    const names =
      k === 2 ? ['positives', 'negatives', 'truePositives', 'falsePositives'] : ['rows', 'correct'];
    for (const name of names) add(`fairness.${name}`, g, 'count', 1);
  }
  return Object.freeze({ spec, length: offset, segments: Object.freeze(segments) });
}

/** The segment called `name`; throws INVALID_ARGUMENT if the layout has none. */
export function findSegment(layout: EvaluationLayout, name: string): SumSegment {
  const segment = layout.segments.find((s) => s.name === name);
  if (segment === undefined)
    throw new EntenteError('INVALID_ARGUMENT', `layout: has no segment ${name}`, { field: 'layout' });
  return segment;
}
