/**
 * A site's side of a private evaluation: the additive sums (evaluation-layout.ts) of its own rows.
 * The vectors of several sites add up (addEvaluationSums, or a secure sum) to the vector of the
 * union of their rows, from which finalize-evaluation.ts computes every metric.
 *
 * Inputs are checked before anything is summed: shapes are INVALID_ARGUMENT, values INVALID_DATA,
 * each naming the field (`rows.labels[12]`, `rows.probabilities[3][1]`). Probabilities must be
 * finite, within 1e-6 of [0, 1] (then clamped to it) and each row must sum to 1 within 1e-3 (a
 * Float32 softmax over 1000 classes is well inside that); this keeps every per-row contribution
 * inside its segment's declared range (a row's multi-class Brier term is capped at 2, which only
 * rows summing to slightly more than 1 could exceed).
 */
import { EntenteError } from '../core/errors.ts';
import {
  blockPrefixes,
  type EvaluationLayout,
  findSegment,
  LOG_LOSS_EPS,
  rowLogLossClip,
  type SumSegment,
} from './evaluation-layout.ts';
import { binIndex, innerBinEdges } from './probability-bins.ts';

export interface EvaluationRows {
  readonly count: number;
  /** count × numClasses, row-major; each row sums to 1 (within 1e-3). */
  readonly probabilities: Float64Array | Float32Array;
  /** Class index of each row. */
  readonly labels: Int32Array | Uint8Array | number[];
  /** Index into spec.sensitive.values, or −1 (row counted overall and in slices only). Required with spec.sensitive. */
  readonly groups?: Int32Array;
  /** One membership array (0/1 per row) per spec.slices entry, in order. Required with spec.slices. */
  readonly slices?: readonly Uint8Array[];
}

const PROBABILITY_SLACK = 1e-6;
const ROW_SUM_SLACK = 1e-3;

function invalidArgument(field: string, message: string): EntenteError {
  return new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

function invalidData(field: string, message: string): EntenteError {
  return new EntenteError('INVALID_DATA', `${field}: ${message}`, { field });
}

function checkRows(layout: EvaluationLayout, rows: EvaluationRows): void {
  const { spec } = layout;
  const k = spec.numClasses;
  const n = rows.count;
  if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument('rows.count', 'must be an integer ≥ 0');
  if (!(rows.probabilities instanceof Float64Array || rows.probabilities instanceof Float32Array))
    throw invalidArgument('rows.probabilities', 'must be a Float64Array or Float32Array');
  if (rows.probabilities.length !== n * k)
    throw invalidArgument(
      'rows.probabilities',
      `has ${rows.probabilities.length} values, expected count × numClasses = ${n * k}`,
    );
  if (!(rows.labels instanceof Int32Array || rows.labels instanceof Uint8Array || Array.isArray(rows.labels)))
    throw invalidArgument('rows.labels', 'must be an Int32Array, Uint8Array or array of numbers');
  if (rows.labels.length !== n)
    throw invalidArgument('rows.labels', `has ${rows.labels.length} values, expected count = ${n}`);
  if (spec.sensitive !== undefined) {
    if (!(rows.groups instanceof Int32Array))
      throw invalidArgument(
        'rows.groups',
        'is required (an Int32Array) when the spec declares a sensitive attribute',
      );
    if (rows.groups.length !== n)
      throw invalidArgument('rows.groups', `has ${rows.groups.length} values, expected count = ${n}`);
  } else if (rows.groups !== undefined) {
    throw invalidArgument('rows.groups', 'given but the spec declares no sensitive attribute');
  }
  const sliceCount = spec.slices?.length ?? 0;
  if (sliceCount > 0 || rows.slices !== undefined) {
    if (!Array.isArray(rows.slices) || rows.slices.length !== sliceCount)
      throw invalidArgument('rows.slices', `must be ${sliceCount} membership arrays, one per spec slice`);
    rows.slices.forEach((member, s) => {
      if (!(member instanceof Uint8Array)) throw invalidArgument(`rows.slices[${s}]`, 'must be a Uint8Array');
      if (member.length !== n)
        throw invalidArgument(`rows.slices[${s}]`, `has ${member.length} values, expected count = ${n}`);
    });
  }

  const groupCount = spec.sensitive?.values.length ?? 0;
  for (let i = 0; i < n; i++) {
    const label = rows.labels[i]!;
    if (!Number.isInteger(label) || label < 0 || label >= k)
      throw invalidData(`rows.labels[${i}]`, `must be a class index in 0..${k - 1}`);
    let sum = 0;
    for (let c = 0; c < k; c++) {
      const p = rows.probabilities[i * k + c]!;
      if (!Number.isFinite(p) || p < -PROBABILITY_SLACK || p > 1 + PROBABILITY_SLACK)
        throw invalidData(`rows.probabilities[${i}][${c}]`, 'must be a finite probability in [0, 1]');
      sum += p;
    }
    if (Math.abs(sum - 1) > ROW_SUM_SLACK)
      throw invalidData(`rows.probabilities[${i}]`, `sums to ${sum}, not 1 (within ${ROW_SUM_SLACK})`);
    if (rows.groups !== undefined) {
      const g = rows.groups[i]!;
      if (g < -1 || g >= groupCount)
        throw invalidData(`rows.groups[${i}]`, `must be −1 or a value index in 0..${groupCount - 1}`);
    }
    if (rows.slices !== undefined) {
      for (let s = 0; s < rows.slices.length; s++) {
        const m = rows.slices[s]![i]!;
        if (m !== 0 && m !== 1) throw invalidData(`rows.slices[${s}][${i}]`, 'must be 0 or 1');
      }
    }
  }
}

interface BlockOffsets {
  readonly confusion: number;
  readonly logLoss: number;
  readonly brier: number;
  readonly scoreHistogram: number;
  readonly calibrationCount: number;
  readonly calibrationConfidence: number;
  readonly calibrationPositive: number;
}

function blockOffsets(layout: EvaluationLayout, prefix: string): BlockOffsets {
  const at = (name: string): number => findSegment(layout, `${prefix}.${name}`).offset;
  return {
    confusion: at('confusion'),
    logLoss: at('logLoss'),
    brier: at('brier'),
    scoreHistogram: at('scoreHistogram'),
    calibrationCount: at('calibrationCount'),
    calibrationConfidence: at('calibrationConfidence'),
    calibrationPositive: at('calibrationPositive'),
  };
}

const clamp01 = (p: number): number => Math.min(Math.max(p, 0), 1);

/**
 * The sums of `rows` (a new vector of length layout.length, every coordinate ≥ 0, counts integral).
 * Zero rows give the zero vector, the identity of addEvaluationSums.
 */
export function accumulateEvaluation(layout: EvaluationLayout, rows: EvaluationRows): Float64Array {
  checkRows(layout, rows);
  const { spec } = layout;
  const k = spec.numClasses;
  const scoreBins = spec.scoreBins;
  const binary = k === 2;
  const scoreEdges = innerBinEdges(scoreBins);
  const calibrationEdges = innerBinEdges(spec.calibrationBins);
  const blocks = blockPrefixes(spec).map((prefix) => blockOffsets(layout, prefix));
  const fairness: SumSegment[] =
    spec.sensitive === undefined
      ? []
      : (binary ? ['positives', 'negatives', 'truePositives', 'falsePositives'] : ['rows', 'correct']).map(
          (name) => findSegment(layout, `fairness.${name}`),
        );
  const maxBrier = binary ? 1 : 2;
  const maxLogLoss = rowLogLossClip(spec);

  const sums = new Float64Array(layout.length);
  const p = new Float64Array(k);
  const scoreBinOf = new Int32Array(k);
  const memberOf: BlockOffsets[] = [];
  for (let i = 0; i < rows.count; i++) {
    const label = rows.labels[i]!;
    let predicted = 0;
    for (let c = 0; c < k; c++) {
      p[c] = clamp01(rows.probabilities[i * k + c]!);
      if (p[c]! > p[predicted]!) predicted = c; // strict: the lowest index wins ties
    }
    const pTrue = Math.min(Math.max(p[label]!, LOG_LOSS_EPS), 1 - LOG_LOSS_EPS);
    const logLoss = Math.min(-Math.log(pTrue), maxLogLoss);
    let brier: number;
    let confidence: number;
    let positive: boolean;
    if (binary) {
      brier = (p[1]! - label) ** 2;
      confidence = p[1]!;
      positive = label === 1;
      scoreBinOf[0] = (label === 1 ? 0 : scoreBins) + binIndex(scoreEdges, p[1]!);
    } else {
      brier = 0;
      for (let c = 0; c < k; c++) {
        brier += (p[c]! - (c === label ? 1 : 0)) ** 2;
        scoreBinOf[c] = c * 2 * scoreBins + (c === label ? 0 : scoreBins) + binIndex(scoreEdges, p[c]!);
      }
      brier = Math.min(brier, maxBrier);
      confidence = p[predicted]!;
      positive = predicted === label;
    }
    const calibrationBin = binIndex(calibrationEdges, confidence);

    memberOf.length = 0;
    memberOf.push(blocks[0]!);
    if (rows.slices !== undefined)
      for (let s = 0; s < rows.slices.length; s++)
        if (rows.slices[s]![i] === 1) memberOf.push(blocks[s + 1]!);
    for (const block of memberOf) {
      sums[block.confusion + label * k + predicted]! += 1;
      sums[block.logLoss]! += logLoss;
      sums[block.brier]! += brier;
      if (binary) sums[block.scoreHistogram + scoreBinOf[0]!]! += 1;
      else for (let c = 0; c < k; c++) sums[block.scoreHistogram + scoreBinOf[c]!]! += 1;
      sums[block.calibrationCount + calibrationBin]! += 1;
      sums[block.calibrationConfidence + calibrationBin]! += confidence;
      if (positive) sums[block.calibrationPositive + calibrationBin]! += 1;
    }

    const g = rows.groups?.[i] ?? -1;
    if (g >= 0) {
      if (binary) {
        const [positives, negatives, truePositives, falsePositives] = fairness;
        if (label === 1) {
          sums[positives!.offset + g]! += 1;
          if (predicted === 1) sums[truePositives!.offset + g]! += 1;
        } else {
          sums[negatives!.offset + g]! += 1;
          if (predicted === 1) sums[falsePositives!.offset + g]! += 1;
        }
      } else {
        const [groupRows, correct] = fairness;
        sums[groupRows!.offset + g]! += 1;
        if (predicted === label) sums[correct!.offset + g]! += 1;
      }
    }
  }
  return sums;
}

/** a + b coordinate by coordinate (a new vector); the vectors must have the same length. */
export function addEvaluationSums(a: Float64Array, b: Float64Array): Float64Array {
  if (!(a instanceof Float64Array) || !(b instanceof Float64Array))
    throw invalidArgument('sums', 'must be Float64Arrays');
  if (a.length !== b.length)
    throw invalidArgument(
      'sums',
      `lengths differ (${a.length} and ${b.length}); are they from the same spec?`,
    );
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  return out;
}
