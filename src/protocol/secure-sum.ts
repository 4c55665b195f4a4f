/**
 * A secure sum of a declared vector: what the sites add up under secure aggregation when the vector is
 * not a training delta (the standardization statistics, evaluation sufficient statistics, histograms).
 *
 * A declaration lists the vector's segments in order, each with what one row may add to each of its
 * coordinates (`maxPerRow`) and whether that is an integer count or a real sum, plus the most rows one
 * site may hold (`maxRows`). Counts travel as one 2^64 ring word each and are exact while the cohort's
 * total stays below 2^52. Real sums travel in fixed point, v → N = round(v · 2^fractionBits), split over
 * two ring words N = hi · 2^40 + lo with 0 ≤ lo < 2^40: the lo words of up to 2^23 sites add without
 * wrapping, and the hi words hold ±2^63, so the cohort's total is exact up to 2^103 and real sums keep
 * 2^-32 resolution even for squares of large values. (One word would leave a few fraction bits for
 * Σx² and ruin a variance computed as Σx²/n − mean².) Each site rounds its own sum, so the decoded total
 * is within cohort·2^-(fractionBits+1) of the exact one; counts are exact.
 *
 * Honest sites stay inside the bounds by construction (clipping where a value could exceed them);
 * a site can still put any value inside its bounds into its share of the sum, as with training deltas:
 * secure aggregation hides each contribution, it does not prove it. A decoded total outside what the
 * bounds allow for the survivors is refused (`decodeSecureSum`), never published.
 *
 * A declaration may ask for differential privacy (`noise`): each site then adds its share of discrete
 * Gaussian noise before masking (secure-sum-noise.ts), the decoder allows for the noise in its range
 * check and publishes the noised totals as drawn.
 */
import { EntenteError } from '../core/errors.ts';
import type { RandomBits } from '../privacy/index.ts';
import { type RingVector, type VectorSegment, WEIGHT_SEGMENT } from '../secagg/index.ts';
import { type SecureSumNoisePlan, addSegmentNoise, planSecureSumNoise } from './secure-sum-noise.ts';

/** What a secure sum carries, bound into the round's configuration digest. */
export type SecureSumPurpose =
  | 'statistics'
  | 'evaluation'
  | 'regression-evaluation'
  | 'monitoring'
  | 'paired-outcomes';

export interface SumSegmentBound {
  readonly name: string;
  readonly length: number;
  /** count: integers 0..maxPerRow per row; sum: reals in [0, maxPerRow]; signed-sum: reals in [−maxPerRow, maxPerRow]. */
  readonly kind: 'count' | 'sum' | 'signed-sum';
  readonly maxPerRow: number;
  /**
   * The most one row changes the whole segment in L2 norm (its sensitivity under differential privacy).
   * Default maxPerRow · √length; a one-hot count (a row adds 1 to one coordinate) says 1.
   */
  readonly maxRowL2?: number;
}

export interface SecureSumSegment extends SumSegmentBound {
  readonly maxRowL2: number;
  /** Fixed-point fraction bits: a value v travels as round(v · 2^fractionBits). 0 for counts. */
  readonly fractionBits: number;
}

/** Differential privacy on the sum (secure-sum-noise.ts): each site adds its share of discrete Gaussian noise. */
export interface SecureSumNoise {
  /** z: the sum is ρ = 1/(2z²)-zCDP for one record (plus rounding slack; see planSecureSumNoise). */
  readonly noiseMultiplier: number;
}

export interface SecureSumDeclaration {
  readonly purpose: SecureSumPurpose;
  /** Most rows one site may contribute (its sums are bounded by maxRows · maxPerRow). */
  readonly maxRows: number;
  readonly segments: readonly SecureSumSegment[];
  /** Absent: the sum is exact. */
  readonly noise?: SecureSumNoise;
}

/** The exact integer range of a count word (read back as a float64 integer). */
const COUNT_LIMIT = 2 ** 52;
/** Real sums: fraction bits, the lo word's width and the exact range of the two-word total. */
const FRACTION_BITS = 32;
const LO_BITS = 40n;
const LO_MOD = 1n << LO_BITS;
const WIDE_LIMIT = 2 ** 102;
/** The lo words of this many sites add below 2^63. */
const MAX_WIDE_SITES = 2 ** 22;

function invalid(field: string, message: string): never {
  throw new EntenteError('INVALID_CONFIG', `${field}: ${message}`, { field });
}

/** How many standard deviations of noise a decoded total may stray (an honest draw beyond: p < 10^-30). */
export const NOISE_TAIL = 12;

/** A noise multiplier is a finite number in [0.01, 10^6]. */
export function checkNoiseMultiplier(z: unknown, field = 'secureSum.noise.noiseMultiplier'): void {
  if (!(typeof z === 'number' && Number.isFinite(z) && z >= 0.01 && z <= 1e6))
    invalid(field, 'must be a number in [0.01, 1e6]');
}

/**
 * Chooses each segment's fixed-point scale for a cohort of `cohortSize` sites holding at most `maxRows`
 * rows each. Throws INVALID_CONFIG naming the segment (`secureSum.segments.<name>`) when even a coarse
 * scale cannot hold the cohort's total: lower maxRows or the bound.
 */
export function declareSecureSum(input: {
  readonly purpose: SecureSumPurpose;
  readonly maxRows: number;
  readonly cohortSize: number;
  readonly segments: readonly SumSegmentBound[];
  readonly noise?: SecureSumNoise | undefined;
}): SecureSumDeclaration {
  const { maxRows, cohortSize, noise } = input;
  if (noise !== undefined) checkNoiseMultiplier(noise.noiseMultiplier);
  const segmentCount = input.segments.length;
  if (!Number.isSafeInteger(maxRows) || maxRows < 1)
    invalid('secureSum.maxRows', 'must be a positive integer');
  if (!Number.isSafeInteger(cohortSize) || cohortSize < 1)
    invalid('secureSum.cohortSize', 'must be a positive integer');
  const names = new Set<string>();
  const segments = input.segments.map((s): SecureSumSegment => {
    const field = `secureSum.segments.${s.name}`;
    if (names.has(s.name) || s.name === WEIGHT_SEGMENT) invalid(field, 'segment names must be unique');
    names.add(s.name);
    if (!Number.isSafeInteger(s.length) || s.length < 1)
      invalid(`${field}.length`, 'must be a positive integer');
    if (!(Number.isFinite(s.maxPerRow) && s.maxPerRow > 0)) invalid(`${field}.maxPerRow`, 'must be positive');
    if (s.kind === 'count' && !Number.isInteger(s.maxPerRow))
      invalid(`${field}.maxPerRow`, 'a count adds an integer per row');
    const widest = s.maxPerRow * Math.sqrt(s.length);
    const maxRowL2 = s.maxRowL2 ?? widest;
    if (!(Number.isFinite(maxRowL2) && maxRowL2 > 0 && maxRowL2 <= widest * (1 + 1e-12)))
      invalid(`${field}.maxRowL2`, 'must be positive and at most maxPerRow · √length');
    // With noise, room for the cohort's noise too (far beyond any honest draw; see secure-sum-noise.ts).
    const noiseMargin =
      noise === undefined
        ? 0
        : NOISE_TAIL *
          Math.sqrt(cohortSize) *
          (noise.noiseMultiplier * Math.sqrt(segmentCount) * maxRowL2 + 1);
    const total = cohortSize * maxRows * s.maxPerRow + noiseMargin;
    if (s.kind === 'count') {
      if (total > COUNT_LIMIT)
        invalid(
          field,
          `a cohort of ${cohortSize} sites × ${maxRows} rows × ${s.maxPerRow} exceeds a count word's exact range 2^52`,
        );
      return { ...s, maxRowL2, fractionBits: 0 };
    }
    if (total * 2 ** FRACTION_BITS > WIDE_LIMIT || cohortSize > MAX_WIDE_SITES)
      invalid(
        field,
        `a cohort of ${cohortSize} sites × ${maxRows} rows × ${s.maxPerRow} exceeds a real sum's exact range 2^70: lower maxRows or the bound`,
      );
    return { ...s, maxRowL2, fractionBits: FRACTION_BITS };
  });
  if (segments.length === 0) invalid('secureSum.segments', 'at least one segment');
  return {
    purpose: input.purpose,
    maxRows,
    segments,
    ...(noise === undefined ? {} : { noise: { noiseMultiplier: noise.noiseMultiplier } }),
  };
}

/** Ring words of one segment: one per count, two per real sum (hi words, then lo words). */
function wordsOf(s: SecureSumSegment): number {
  return s.kind === 'count' ? s.length : 2 * s.length;
}

/** Total coordinates of the declared values (without the weight word). */
export function countSecureSumValues(decl: SecureSumDeclaration): number {
  return decl.segments.reduce((n, s) => n + s.length, 0);
}

/** The masked vector's segments: the declared ones in order, then the one-word weight channel (1 per site). */
export function toVectorSegments(decl: SecureSumDeclaration): VectorSegment[] {
  const out: VectorSegment[] = [];
  let offset = 0;
  for (const s of decl.segments) {
    out.push({ name: s.name, offsetWords: offset, lengthWords: wordsOf(s) });
    offset += wordsOf(s);
  }
  out.push({ name: WEIGHT_SEGMENT, offsetWords: offset, lengthWords: 1 });
  return out;
}

/** Reads a 2^64 ring word as a signed integer; throws PROTOCOL_VIOLATION outside ±2^53. */
function readSignedWord64(sum: BigUint64Array, index: number): number {
  const v = BigInt.asIntN(64, sum[index]!);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER))
    throw new EntenteError('PROTOCOL_VIOLATION', `sum: word ${index} is outside the declared bounds`, {
      field: 'sum',
    });
  return Number(v);
}

/**
 * One site's vector for the ring: its sums (`values`, in declaration order) checked against the bounds
 * and encoded, then the weight word 1. Throws INVALID_DATA naming the segment and coordinate when a value
 * is outside what `maxRows` rows may add (the caller clips first; this is the last check).
 */
export function encodeSecureSum(
  decl: SecureSumDeclaration,
  values: Float64Array,
  noise?: { readonly plan: SecureSumNoisePlan; readonly bits: RandomBits },
): BigUint64Array {
  if ((decl.noise === undefined) !== (noise === undefined))
    throw new EntenteError(
      'INVALID_ARGUMENT',
      decl.noise
        ? 'noise: the declaration asks for noise and none was given'
        : 'noise: the declaration adds no noise',
      { field: 'noise' },
    );
  const n = countSecureSumValues(decl);
  if (values.length !== n)
    throw new EntenteError('INVALID_DATA', `values: expected ${n} sums, got ${values.length}`, {
      field: 'values',
    });
  const out = new BigUint64Array(decl.segments.reduce((w, s) => w + wordsOf(s), 0) + 1);
  let i = 0;
  let word = 0;
  decl.segments.forEach((s, index) => {
    const max = decl.maxRows * s.maxPerRow;
    const min = s.kind === 'signed-sum' ? -max : 0;
    const own = values.subarray(i, i + s.length);
    for (let j = 0; j < s.length; j++) {
      const v = own[j]!;
      if (!(Number.isFinite(v) && v >= min && v <= max) || (s.kind === 'count' && !Number.isInteger(v)))
        throw new EntenteError(
          'INVALID_DATA',
          `values.${s.name}[${j}]: ${v} is outside the declared bounds [${min}, ${max}]${s.kind === 'count' ? ' or not an integer' : ''}`,
          { field: `values.${s.name}` },
        );
    }
    // N = round(v · 2^f) exactly: v · 2^f is exact in float64 (a power-of-two scale), then rounded;
    // with noise, the site's share is added on the noise grid (secure-sum-noise.ts).
    const scaled = noise
      ? addSegmentNoise(s, noise.plan.segments[index]!, own, noise.bits)
      : Array.from(own, (v) => BigInt(Math.round(v * 2 ** s.fractionBits)));
    for (let j = 0; j < s.length; j++) {
      const big = scaled[j]!;
      if (s.kind === 'count') {
        out[word + j] = BigInt.asUintN(64, big);
        continue;
      }
      const hi = big >> LO_BITS; // floor division, also for negative N
      out[word + j] = BigInt.asUintN(64, hi);
      out[word + s.length + j] = big - (hi << LO_BITS);
    }
    i += s.length;
    word += wordsOf(s);
  });
  out[word] = 1n;
  return out;
}

/**
 * The unmasked sum decoded: the declared values' totals, and how many sites contributed (the weight word).
 * Throws PROTOCOL_VIOLATION when the contributors do not match `contributors`, or a total lies outside what
 * that many sites may add: such a sum is refused, never published.
 */
export function decodeSecureSum(
  decl: SecureSumDeclaration,
  sum: RingVector,
  contributors: number,
  threshold?: number,
): Float64Array {
  if (decl.noise !== undefined && threshold === undefined)
    throw new EntenteError('INVALID_ARGUMENT', 'threshold: a noised sum is decoded with its threshold', {
      field: 'threshold',
    });
  const noise = decl.noise === undefined ? undefined : planSecureSumNoise(decl, threshold!);
  if (!(sum instanceof BigUint64Array))
    throw new EntenteError('PROTOCOL_VIOLATION', 'sum: secure sums use the 2^64 ring', { field: 'sum' });
  const words = decl.segments.reduce((w, s) => w + wordsOf(s), 0);
  if (sum.length !== words + 1)
    throw new EntenteError('PROTOCOL_VIOLATION', `sum: expected ${words + 1} words`, { field: 'sum' });
  const weight = readSignedWord64(sum, words);
  if (weight !== contributors)
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      `sum: the weight channel says ${weight} sites contributed, not ${contributors}`,
      { field: 'sum' },
    );
  const out = new Float64Array(countSecureSumValues(decl));
  let i = 0;
  let word = 0;
  for (const [index, s] of decl.segments.entries()) {
    const max = contributors * decl.maxRows * s.maxPerRow;
    const min = s.kind === 'signed-sum' ? -max : 0;
    // Rounding at each site moves a real total by at most contributors/2 units of its grid; noise by
    // NOISE_TAIL standard deviations of the contributors' shares.
    const grid = noise ? noise.segments[index]! : undefined;
    const slack =
      (s.kind === 'count' ? 0 : contributors * 2 ** -((grid?.gridBits ?? s.fractionBits) + 1)) +
      (grid ? NOISE_TAIL * Math.sqrt(contributors * Number(grid.shareVariance)) * 2 ** -grid.gridBits : 0);
    for (let j = 0; j < s.length; j++, i++) {
      let v: number;
      if (s.kind === 'count') v = readSignedWord64(sum, word + j);
      else {
        const lo = sum[word + s.length + j]!;
        // Honest lo words add to less than contributors · 2^40: anything else is refused.
        if (lo >= BigInt(contributors) * LO_MOD)
          throw new EntenteError(
            'PROTOCOL_VIOLATION',
            `sum.${s.name}[${j}]: is outside the declared bounds`,
            {
              field: `sum.${s.name}`,
            },
          );
        const total = (BigInt.asIntN(64, sum[word + j]!) << LO_BITS) + lo;
        v = Number(total) * 2 ** -s.fractionBits;
      }
      if (v < min - slack || v > max + slack)
        throw new EntenteError(
          'PROTOCOL_VIOLATION',
          `sum.${s.name}[${j}]: ${v} is outside what ${contributors} sites may add`,
          { field: `sum.${s.name}` },
        );
      // A noised total is published as drawn (it may be negative); metrics clamp where they need to.
      out[i] = s.kind === 'signed-sum' || noise ? v : Math.max(0, v);
    }
    word += wordsOf(s);
  }
  return out;
}

/** The largest absolute error of a decoded total per segment, from each site's rounding. */
export function computeSecureSumErrorBound(
  decl: SecureSumDeclaration,
  contributors: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of decl.segments)
    out[s.name] = s.fractionBits === 0 ? 0 : contributors * 2 ** -(s.fractionBits + 1);
  return out;
}

/**
 * The standardization statistics as a secure sum: the row count, then per input column Σx and Σx², each
 * value clipped by the site to |x| ≤ maxAbsFeature (the declared bound; a clipped value is reported to
 * that site only).
 */
export function declareStatisticsSum(input: {
  readonly features: number;
  readonly maxRows: number;
  readonly maxAbsFeature: number;
  readonly cohortSize: number;
  readonly noise?: SecureSumNoise | undefined;
}): SecureSumDeclaration {
  if (!(Number.isFinite(input.maxAbsFeature) && input.maxAbsFeature > 0))
    invalid('secureSum.maxAbsFeature', 'must be positive');
  return declareSecureSum({
    purpose: 'statistics',
    maxRows: input.maxRows,
    cohortSize: input.cohortSize,
    noise: input.noise,
    segments: [
      { name: 'count', length: 1, kind: 'count', maxPerRow: 1 },
      { name: 'sum', length: input.features, kind: 'signed-sum', maxPerRow: input.maxAbsFeature },
      { name: 'sumSquares', length: input.features, kind: 'sum', maxPerRow: input.maxAbsFeature ** 2 },
    ],
  });
}
