/**
 * Every metric of a private evaluation, computed from a total vector of additive sums (the sum of
 * the sites' accumulateEvaluation vectors). The vector may come off the network, so it is checked
 * first (INVALID_MESSAGE, field `sums`): its length, every coordinate finite and ≥ 0, counts whole,
 * real sums within their per-row bounds, and the counts consistent with each other (histograms and
 * calibration bins hold as many rows as the confusion matrix, slices and groups no more than all
 * rows).
 *
 * Definitions (N rows of a block; all "null" means undefined, never a substituted 0 unless said):
 * - accuracy = trace(confusion)/N; logLoss, brier = their sums / N (scikit-learn's log_loss with
 *   eps 1e-15, brier_score_loss; multi-class Brier is the mean of Σₖ (pₖ − 1[y=k])²).
 * - Per class (scikit-learn precision_recall_fscore_support): precision = tp/predicted (null when
 *   nothing was predicted as the class), recall = tp/support (null when the class has no rows),
 *   F1 = 2tp/(2tp + fp + fn) (null when the class is neither true nor predicted; this equals
 *   2PR/(P + R) with a null P or R read as 0, as scikit-learn does). Macro = the unweighted mean
 *   over all classes with nulls counted as 0, exactly scikit-learn's macro average with
 *   zero_division=0 (its default behaviour, with a warning). Micro precision = recall = F1 =
 *   accuracy (single-label: every row is one prediction and one true label).
 * - ROC AUC from the score histograms: every row in a bin gets the bin's index as its score, ties
 *   count ½ (Mann–Whitney): AUC = Σ_b pos_b·(neg_{<b} + ½·neg_b) / (P·N). This is scikit-learn's
 *   roc_auc_score on the bin indices. Error against the exact AUC on the raw scores (see
 *   aucBinningBound): pairs (positive, negative) in different bins compare the same way under both
 *   scores, because the bins are ordered intervals; a pair in the same bin counts ½ binned and 0, ½
 *   or 1 exactly, a difference of at most ½. Hence |AUC_binned − AUC_exact| ≤ Σ_b pos_b·neg_b / (2PN).
 *   Multi-class: the unweighted mean over classes of one-vs-rest AUCs (scikit-learn multi_class="ovr",
 *   average="macro"), bound = the mean of the classes' bounds; null when any class has no rows or
 *   only rows (scikit-learn refuses to compute it then).
 * - Average precision: scikit-learn's average_precision_score on the bin indices: thresholds are the
 *   non-empty bins from the top, AP = Σₙ (Rₙ − Rₙ₋₁)·Pₙ. Multi-class: macro mean of one-vs-rest,
 *   null when any class has no rows.
 * - ROC curve (binary only): (0, 0), then (FPR, TPR) at each non-empty bin from the top, ending at
 *   (1, 1): scikit-learn's roc_curve(drop_intermediate=False) on the bin indices.
 * - Calibration: ECE = Σ_b (n_b/N)·|positives_b/n_b − confidence_b/n_b| over non-empty bins, MCE the
 *   largest of those gaps (Naeini et al., AAAI 2015; Guo et al., ICML 2017); binary over p₁ and y = 1,
 *   multi-class over the top-label confidence and whether the top label is right.
 * - Fairness, Fairlearn's definitions (binary; predicted positive = class 1), over groups with rows:
 *   selection rate = predicted positive / rows; demographic parity difference = max − min and ratio =
 *   min / max of selection rates; TPR = tp / positives, FPR = fp / negatives; equal opportunity
 *   difference = max − min TPR; equalized odds difference = max(TPR difference, FPR difference).
 *   A group with no positives has a null TPR and is left out of the TPR difference (likewise FPR);
 *   Fairlearn would yield NaN for the whole difference instead. A difference is null when no group
 *   defines it; the ratio is null when every selection rate is 0; equalized odds is null when either
 *   of its two differences is. Multi-class: per-group rows and accuracy only, differences null.
 */
import { EntenteError } from '../core/errors.ts';
import { blockPrefixes, type EvaluationLayout, findSegment, type SumSegment } from './evaluation-layout.ts';
import type {
  ClassificationMetrics,
  ClassMetrics,
  EvaluationMetrics,
  FairnessMetrics,
  GroupMetrics,
  ReliabilityBin,
} from './evaluation-metrics.ts';
import { binBounds } from './probability-bins.ts';

/** Relative slack on real-valued sums (rounding in a secure sum's fixed-point encoding). */
const SUM_SLACK = 1e-6;

function refuse(message: string): EntenteError {
  return new EntenteError('INVALID_MESSAGE', `sums: ${message}`, { field: 'sums' });
}

/** The coordinates of one segment (a view, no copy). */
function view(sums: Float64Array, segment: SumSegment): Float64Array {
  return sums.subarray(segment.offset, segment.offset + segment.length);
}

const total = (xs: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s;
};

function checkCoordinates(layout: EvaluationLayout, sums: Float64Array): void {
  if (!(sums instanceof Float64Array)) throw refuse('must be a Float64Array');
  if (sums.length !== layout.length)
    throw refuse(`has ${sums.length} coordinates, the evaluation's layout has ${layout.length}`);
  for (const segment of layout.segments) {
    for (let i = segment.offset; i < segment.offset + segment.length; i++) {
      const x = sums[i]!;
      if (!Number.isFinite(x) || x < 0)
        throw refuse(`coordinate ${i} (${segment.name}) must be a finite number ≥ 0`);
      if (segment.kind === 'count' && !(Number.isInteger(x) && x <= Number.MAX_SAFE_INTEGER))
        throw refuse(`coordinate ${i} (${segment.name}) is a count and must be a whole number`);
    }
  }
}

interface Block {
  readonly prefix: string;
  readonly confusion: Float64Array;
  readonly logLoss: number;
  readonly brier: number;
  readonly scoreHistogram: Float64Array;
  readonly calibrationCount: Float64Array;
  readonly calibrationConfidence: Float64Array;
  readonly calibrationPositive: Float64Array;
}

function readBlock(layout: EvaluationLayout, sums: Float64Array, prefix: string): Block {
  const seg = (name: string): Float64Array => view(sums, findSegment(layout, `${prefix}.${name}`));
  return {
    prefix,
    confusion: seg('confusion'),
    logLoss: seg('logLoss')[0]!,
    brier: seg('brier')[0]!,
    scoreHistogram: seg('scoreHistogram'),
    calibrationCount: seg('calibrationCount'),
    calibrationConfidence: seg('calibrationConfidence'),
    calibrationPositive: seg('calibrationPositive'),
  };
}

/** Row sums of the confusion matrix: rows per true class. */
function supports(confusion: Float64Array, k: number): number[] {
  const out: number[] = [];
  for (let t = 0; t < k; t++) out.push(total(confusion.subarray(t * k, t * k + k)));
  return out;
}

function trace(confusion: Float64Array, k: number): number {
  let s = 0;
  for (let c = 0; c < k; c++) s += confusion[c * k + c]!;
  return s;
}

/** [positives' histogram, negatives' histogram] of one-vs-rest class `c` (binary: the positive class). */
function histograms(block: Block, k: number, bins: number, c: number): [Float64Array, Float64Array] {
  const base = k === 2 ? 0 : c * 2 * bins;
  return [
    block.scoreHistogram.subarray(base, base + bins),
    block.scoreHistogram.subarray(base + bins, base + 2 * bins),
  ];
}

function checkBlock(layout: EvaluationLayout, block: Block, overall: Block | null): void {
  const { numClasses: k, scoreBins } = layout.spec;
  const name = block.prefix;
  const support = supports(block.confusion, k);
  const n = total(support);
  const correct = trace(block.confusion, k);
  if (n > Number.MAX_SAFE_INTEGER) throw refuse(`${name} counts more rows than can be represented exactly`);
  if (overall !== null) {
    for (let i = 0; i < k * k; i++)
      if (block.confusion[i]! > overall.confusion[i]!)
        throw refuse(`${name}.confusion has more rows in cell ${i} than overall.confusion`);
  }
  const classes = k === 2 ? [1] : Array.from({ length: k }, (_, c) => c);
  for (const c of classes) {
    const [pos, neg] = histograms(block, k, scoreBins, c);
    if (total(pos) !== support[c]! || total(neg) !== n - support[c]!)
      throw refuse(`${name}.scoreHistogram of class ${c} does not hold the rows of ${name}.confusion`);
  }
  if (total(block.calibrationCount) !== n)
    throw refuse(
      `${name}.calibrationCount holds ${total(block.calibrationCount)} rows, ${name}.confusion ${n}`,
    );
  const expectedPositive = k === 2 ? support[1]! : correct;
  if (total(block.calibrationPositive) !== expectedPositive)
    throw refuse(`${name}.calibrationPositive does not match ${name}.confusion`);
  for (let b = 0; b < block.calibrationCount.length; b++) {
    const count = block.calibrationCount[b]!;
    if (block.calibrationPositive[b]! > count)
      throw refuse(`${name}.calibrationPositive[${b}] exceeds the rows in the bin`);
    if (block.calibrationConfidence[b]! > count * (1 + SUM_SLACK) + SUM_SLACK)
      throw refuse(`${name}.calibrationConfidence[${b}] exceeds the rows in the bin`);
  }
  const maxLogLoss = findSegment(layout, `${name}.logLoss`).maxPerRow;
  if (block.logLoss > maxLogLoss * n * (1 + SUM_SLACK) + SUM_SLACK)
    throw refuse(`${name}.logLoss exceeds ${maxLogLoss} per row`);
  const maxBrier = k === 2 ? 1 : 2;
  if (block.brier > maxBrier * n * (1 + SUM_SLACK) + SUM_SLACK)
    throw refuse(`${name}.brier exceeds ${maxBrier} per row`);
}

const ratio = (a: number, b: number): number | null => (b === 0 ? null : a / b);

/** Mann–Whitney AUC of one histogram pair (ties within a bin count ½); null without positives or negatives. */
function binnedAuc(pos: Float64Array, neg: Float64Array): number | null {
  const p = total(pos);
  const n = total(neg);
  if (p === 0 || n === 0) return null;
  let below = 0;
  let wins = 0;
  for (let b = 0; b < pos.length; b++) {
    wins += pos[b]! * (below + neg[b]! / 2);
    below += neg[b]!;
  }
  return wins / (p * n);
}

/**
 * Upper bound on |AUC_binned − AUC_exact| for one pair of score histograms: Σ_b pos_b·neg_b / (2PN),
 * the share of (positive, negative) pairs that share a bin, halved (proof in the header comment).
 * Null when the AUC is undefined (no positives or no negatives).
 */
export function aucBinningBound(positives: ArrayLike<number>, negatives: ArrayLike<number>): number | null {
  if (positives.length !== negatives.length)
    throw new EntenteError('INVALID_ARGUMENT', 'negatives: must have as many bins as positives', {
      field: 'negatives',
    });
  const p = total(positives);
  const n = total(negatives);
  if (p === 0 || n === 0) return null;
  let shared = 0;
  for (let b = 0; b < positives.length; b++) shared += positives[b]! * negatives[b]!;
  return shared / (2 * p * n);
}

/** scikit-learn's average_precision_score with the bin indices as scores; null without positives. */
function binnedAveragePrecision(pos: Float64Array, neg: Float64Array): number | null {
  const p = total(pos);
  if (p === 0) return null;
  let tp = 0;
  let fp = 0;
  let ap = 0;
  for (let b = pos.length - 1; b >= 0; b--) {
    tp += pos[b]!;
    fp += neg[b]!;
    if (pos[b]! > 0) ap += (pos[b]! / p) * (tp / (tp + fp));
  }
  return ap;
}

function rocCurve(pos: Float64Array, neg: Float64Array): { fpr: number[]; tpr: number[] } | null {
  const p = total(pos);
  const n = total(neg);
  if (p === 0 || n === 0) return null;
  const fpr = [0];
  const tpr = [0];
  let tp = 0;
  let fp = 0;
  for (let b = pos.length - 1; b >= 0; b--) {
    if (pos[b]! + neg[b]! === 0) continue;
    tp += pos[b]!;
    fp += neg[b]!;
    fpr.push(fp / n);
    tpr.push(tp / p);
  }
  return { fpr, tpr };
}

/** Mean over classes, or null if any class's value is null. */
function meanOrNull(values: readonly (number | null)[]): number | null {
  let s = 0;
  for (const v of values) {
    if (v === null) return null;
    s += v;
  }
  return values.length === 0 ? null : s / values.length;
}

function classificationMetrics(layout: EvaluationLayout, block: Block, noisy = false): ClassificationMetrics {
  const { numClasses: k, scoreBins, calibrationBins } = layout.spec;
  const support = supports(block.confusion, k);
  const n = total(support);
  const correct = trace(block.confusion, k);

  const confusion: number[][] = [];
  for (let t = 0; t < k; t++) confusion.push(Array.from(block.confusion.subarray(t * k, t * k + k)));
  const perClass: ClassMetrics[] = [];
  for (let c = 0; c < k; c++) {
    const tp = block.confusion[c * k + c]!;
    let predicted = 0;
    for (let t = 0; t < k; t++) predicted += block.confusion[t * k + c]!;
    const fp = predicted - tp;
    const fn = support[c]! - tp;
    perClass.push({
      precision: ratio(tp, predicted),
      recall: ratio(tp, support[c]!),
      f1: ratio(2 * tp, 2 * tp + fp + fn),
      support: support[c]!,
    });
  }
  const macroOf = (key: 'precision' | 'recall' | 'f1'): number | null =>
    n === 0 ? null : perClass.reduce((s, m) => s + (m[key] ?? 0), 0) / k;
  const accuracy = ratio(correct, n);

  const classes = k === 2 ? [1] : Array.from({ length: k }, (_, c) => c);
  const pairs = classes.map((c) => histograms(block, k, scoreBins, c));
  const rocAuc = meanOrNull(pairs.map(([pos, neg]) => binnedAuc(pos, neg)));
  const rocAucBinningBound = meanOrNull(pairs.map(([pos, neg]) => aucBinningBound(pos, neg)));
  const averagePrecision = meanOrNull(pairs.map(([pos, neg]) => binnedAveragePrecision(pos, neg)));
  const curve = k === 2 ? rocCurve(pairs[0]![0], pairs[0]![1]) : null;

  const reliability: ReliabilityBin[] = [];
  let ece = 0;
  let mce = 0;
  // Noised counts: the calibration bins weigh by their own total (it differs from the confusion's).
  const calibrated = noisy ? total(block.calibrationCount) : n;
  for (let b = 0; b < calibrationBins; b++) {
    const count = block.calibrationCount[b]!;
    const { lower, upper } = binBounds(calibrationBins, b);
    const meanPredicted = ratio(block.calibrationConfidence[b]!, count);
    const fractionPositive = ratio(block.calibrationPositive[b]!, count);
    reliability.push({ lower, upper, count, meanPredicted, fractionPositive });
    if (meanPredicted !== null && fractionPositive !== null) {
      const gap = Math.abs(fractionPositive - meanPredicted);
      ece += (count / calibrated) * gap;
      if (gap > mce) mce = gap;
    }
  }

  return {
    rows: n,
    accuracy,
    logLoss: ratio(block.logLoss, n),
    brier: ratio(block.brier, n),
    confusion,
    perClass,
    macro: { precision: macroOf('precision'), recall: macroOf('recall'), f1: macroOf('f1') },
    micro: { precision: accuracy, recall: accuracy, f1: accuracy },
    rocAuc,
    rocAucBinningBound,
    averagePrecision,
    rocCurve: curve,
    ece: n === 0 || calibrated === 0 ? null : ece,
    mce: n === 0 || calibrated === 0 ? null : mce,
    reliability,
  };
}

function spread(values: readonly (number | null)[]): number | null {
  const defined = values.filter((v): v is number => v !== null);
  return defined.length === 0 ? null : Math.max(...defined) - Math.min(...defined);
}

/** Group counts within each group and within all rows (the overall block is already checked). */
function checkFairness(layout: EvaluationLayout, sums: Float64Array, overall: Block): void {
  const { spec } = layout;
  if (spec.sensitive === undefined) return;
  const seg = (name: string): Float64Array => view(sums, findSegment(layout, `fairness.${name}`));
  const k = spec.numClasses;
  const support = supports(overall.confusion, k);
  const groupCount = spec.sensitive.values.length;
  if (k !== 2) {
    const rows = seg('rows');
    const correct = seg('correct');
    for (let g = 0; g < groupCount; g++)
      if (correct[g]! > rows[g]!) throw refuse(`fairness.correct[${g}] exceeds fairness.rows[${g}]`);
    if (total(rows) > total(support) || total(correct) > trace(overall.confusion, k))
      throw refuse('fairness counts more rows than overall.confusion');
    return;
  }
  const positives = seg('positives');
  const negatives = seg('negatives');
  const truePositives = seg('truePositives');
  const falsePositives = seg('falsePositives');
  for (let g = 0; g < groupCount; g++) {
    if (truePositives[g]! > positives[g]!)
      throw refuse(`fairness.truePositives[${g}] exceeds fairness.positives[${g}]`);
    if (falsePositives[g]! > negatives[g]!)
      throw refuse(`fairness.falsePositives[${g}] exceeds fairness.negatives[${g}]`);
  }
  // confusion[t·2 + p]: [1] = false positives, [3] = true positives
  if (
    total(positives) > support[1]! ||
    total(negatives) > support[0]! ||
    total(truePositives) > overall.confusion[3]! ||
    total(falsePositives) > overall.confusion[1]!
  )
    throw refuse('fairness counts more rows than overall.confusion');
}

function fairnessMetrics(layout: EvaluationLayout, sums: Float64Array): FairnessMetrics | null {
  const { spec } = layout;
  if (spec.sensitive === undefined) return null;
  const values = spec.sensitive.values;
  const seg = (name: string): Float64Array => view(sums, findSegment(layout, `fairness.${name}`));
  const groups: Record<string, GroupMetrics> = {};
  const k = spec.numClasses;
  if (k !== 2) {
    const rows = seg('rows');
    const correct = seg('correct');
    values.forEach((value, g) => {
      groups[value] = {
        rows: rows[g]!,
        selectionRate: null,
        truePositiveRate: null,
        falsePositiveRate: null,
        accuracy: ratio(correct[g]!, rows[g]!),
      };
    });
    return {
      attribute: spec.sensitive.attribute,
      groups,
      demographicParityDifference: null,
      demographicParityRatio: null,
      equalizedOddsDifference: null,
      equalOpportunityDifference: null,
    };
  }
  const positives = seg('positives');
  const negatives = seg('negatives');
  const truePositives = seg('truePositives');
  const falsePositives = seg('falsePositives');
  const selection: (number | null)[] = [];
  const tprs: (number | null)[] = [];
  const fprs: (number | null)[] = [];
  values.forEach((value, g) => {
    const rows = positives[g]! + negatives[g]!;
    const m: GroupMetrics = {
      rows,
      selectionRate: ratio(truePositives[g]! + falsePositives[g]!, rows),
      truePositiveRate: ratio(truePositives[g]!, positives[g]!),
      falsePositiveRate: ratio(falsePositives[g]!, negatives[g]!),
      accuracy: ratio(truePositives[g]! + negatives[g]! - falsePositives[g]!, rows),
    };
    groups[value] = m;
    selection.push(m.selectionRate);
    tprs.push(m.truePositiveRate);
    fprs.push(m.falsePositiveRate);
  });
  const definedSelection = selection.filter((v): v is number => v !== null);
  const maxSelection = definedSelection.length === 0 ? 0 : Math.max(...definedSelection);
  const tprDifference = spread(tprs);
  const fprDifference = spread(fprs);
  return {
    attribute: spec.sensitive.attribute,
    groups,
    demographicParityDifference: spread(selection),
    demographicParityRatio: maxSelection === 0 ? null : Math.min(...definedSelection) / maxSelection,
    equalizedOddsDifference:
      tprDifference === null || fprDifference === null ? null : Math.max(tprDifference, fprDifference),
    equalOpportunityDifference: tprDifference,
  };
}

function readChecked(layout: EvaluationLayout, sums: Float64Array): Block[] {
  checkCoordinates(layout, sums);
  const blocks = blockPrefixes(layout.spec).map((prefix) => readBlock(layout, sums, prefix));
  blocks.forEach((block, i) => {
    checkBlock(layout, block, i === 0 ? null : blocks[0]!);
  });
  checkFairness(layout, sums, blocks[0]!);
  return blocks;
}

/**
 * Every metric from a total sums vector (see the header for the definitions); for a spec with `dp`,
 * finalizeNoisyEvaluation's post-processing instead of the checks. Otherwise throws
 * INVALID_MESSAGE (field `sums`) for a vector of the wrong length, with a negative, non-finite or
 * fractional count, or with counts that contradict each other.
 */
export function finalizeEvaluation(layout: EvaluationLayout, sums: Float64Array): EvaluationMetrics {
  // A spec with differential privacy is always read as noised (its totals carry noise).
  if (layout.spec.dp !== undefined) return finalizeNoisyEvaluation(layout, sums);
  const blocks = readChecked(layout, sums);
  const overall = blocks[0]!;
  const slices: Record<string, ClassificationMetrics> = {};
  (layout.spec.slices ?? []).forEach((name, i) => {
    slices[name] = classificationMetrics(layout, blocks[i + 1]!);
  });
  return {
    overall: classificationMetrics(layout, overall),
    fairness: fairnessMetrics(layout, sums),
    slices,
  };
}

/**
 * Every metric from a total vector whose sums carry differential-privacy noise (a spec with `dp`): the
 * noised totals are post-processed into a vector metrics can read, then finalized as above. Counts are
 * rounded and clamped at 0; real sums clamped to [0, their per-row bound × the block's rows]; a bin's
 * confidence and positives clamped to its count, a group's true and false positives to its positives
 * and negatives. Post-processing costs no privacy. The figures are noisy estimates: the counts no
 * longer agree with each other exactly, so ECE weighs bins by their own total, and the consistency
 * checks of finalizeEvaluation are not made. Throws INVALID_MESSAGE (field `sums`) for a vector of the
 * wrong length or with a non-finite coordinate.
 */
export function finalizeNoisyEvaluation(layout: EvaluationLayout, noisy: Float64Array): EvaluationMetrics {
  if (!(noisy instanceof Float64Array)) throw refuse('must be a Float64Array');
  if (noisy.length !== layout.length)
    throw refuse(`has ${noisy.length} coordinates, the evaluation's layout has ${layout.length}`);
  const sums = new Float64Array(noisy.length);
  for (const segment of layout.segments)
    for (let i = segment.offset; i < segment.offset + segment.length; i++) {
      const x = noisy[i]!;
      if (!Number.isFinite(x)) throw refuse(`coordinate ${i} (${segment.name}) must be finite`);
      sums[i] = segment.kind === 'count' ? Math.max(0, Math.round(x)) : Math.max(0, x);
    }
  const k = layout.spec.numClasses;
  const blocks = blockPrefixes(layout.spec).map((prefix) => readBlock(layout, sums, prefix));
  for (const block of blocks) {
    const n = total(block.confusion);
    const clampSum = (name: string, perRow: number): void => {
      const at = findSegment(layout, `${block.prefix}.${name}`).offset;
      sums[at] = Math.min(sums[at]!, perRow * n);
    };
    clampSum('logLoss', findSegment(layout, `${block.prefix}.logLoss`).maxPerRow);
    clampSum('brier', k === 2 ? 1 : 2);
    for (let b = 0; b < block.calibrationCount.length; b++) {
      const count = block.calibrationCount[b]!;
      block.calibrationConfidence[b] = Math.min(block.calibrationConfidence[b]!, count);
      block.calibrationPositive[b] = Math.min(block.calibrationPositive[b]!, count);
    }
  }
  if (layout.spec.sensitive !== undefined && k === 2) {
    const seg = (name: string): Float64Array => view(sums, findSegment(layout, `fairness.${name}`));
    const [positives, negatives, tp, fp] = ['positives', 'negatives', 'truePositives', 'falsePositives'].map(
      seg,
    );
    for (let g = 0; g < positives!.length; g++) {
      tp![g] = Math.min(tp![g]!, positives![g]!);
      fp![g] = Math.min(fp![g]!, negatives![g]!);
    }
  } else if (layout.spec.sensitive !== undefined) {
    const rows = view(sums, findSegment(layout, 'fairness.rows'));
    const correct = view(sums, findSegment(layout, 'fairness.correct'));
    for (let g = 0; g < rows.length; g++) correct[g] = Math.min(correct[g]!, rows[g]!);
  }
  const read = blockPrefixes(layout.spec).map((prefix) => readBlock(layout, sums, prefix));
  const slices: Record<string, ClassificationMetrics> = {};
  (layout.spec.slices ?? []).forEach((name, i) => {
    slices[name] = classificationMetrics(layout, read[i + 1]!, true);
  });
  return {
    overall: classificationMetrics(layout, read[0]!, true),
    fairness: fairnessMetrics(layout, sums),
    slices,
  };
}

/**
 * The bound on |ROC AUC from the histograms − exact ROC AUC| of the overall block (or of the slice
 * `options.slice`) of a total sums vector: Σ_b pos_b·neg_b / (2PN), averaged over classes for
 * multi-class (macro one-vs-rest). Null when the AUC itself is undefined. The same figure as
 * `rocAucBinningBound` in the finalized metrics; the vector is checked as by finalizeEvaluation.
 */
export function computeAucBinningBound(
  layout: EvaluationLayout,
  sums: Float64Array,
  options: { readonly slice?: string } = {},
): number | null {
  const blocks = readChecked(layout, sums);
  let index = 0;
  if (options.slice !== undefined) {
    index = (layout.spec.slices ?? []).indexOf(options.slice) + 1;
    if (index === 0)
      throw new EntenteError(
        'INVALID_ARGUMENT',
        `options.slice: ${options.slice} is not a slice of the spec`,
        {
          field: 'options.slice',
        },
      );
  }
  const { numClasses: k, scoreBins } = layout.spec;
  const classes = k === 2 ? [1] : Array.from({ length: k }, (_, c) => c);
  return meanOrNull(
    classes.map((c) => {
      const [pos, neg] = histograms(blocks[index]!, k, scoreBins, c);
      return aucBinningBound(pos, neg);
    }),
  );
}
