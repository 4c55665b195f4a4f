/**
 * A secure sum of a declared vector: what the sites add up under secure aggregation when the vector is
 * not a training delta (the standardization statistics, evaluation sufficient statistics, histograms).
 *
 * A declaration lists the vector's segments in order, each with what one row may add to each of its
 * coordinates (`maxPerRow`) and whether that is an integer count or a real sum, plus the most rows one
 * site may hold (`maxRows`). From those bounds, the cohort size and the ring (2^64), `declareSecureSum`
 * chooses a fixed-point scale per segment (2^fractionBits; 0 for counts) such that the sum over the
 * whole cohort fits the exact integer range the ring is read back with (2^53, `readSignedWord`), and
 * refuses a declaration that cannot fit. Each site encodes its own sums (the sum of its rows) rounded
 * to the nearest multiple of 2^-fractionBits, so the decoded total is within cohort·2^-(fractionBits+1)
 * of the exact one per coordinate; counts are exact.
 *
 * Honest sites stay inside the bounds by construction (clipping where a value could exceed them);
 * a site can still put any value inside its bounds into its share of the sum, as with training deltas:
 * secure aggregation hides each contribution, it does not prove it. A decoded total outside what the
 * bounds allow for the survivors is refused (`decodeSecureSum`), never published.
 */
import { EntenteError } from '../core/errors.ts';
import { type RingVector, type VectorSegment, WEIGHT_SEGMENT } from '../secagg/index.ts';

/** What a secure sum carries, bound into the round's configuration digest. */
export type SecureSumPurpose = 'statistics' | 'evaluation' | 'regression-evaluation';

export interface SumSegmentBound {
  readonly name: string;
  readonly length: number;
  /** count: integers 0..maxPerRow per row; sum: reals in [0, maxPerRow]; signed-sum: reals in [−maxPerRow, maxPerRow]. */
  readonly kind: 'count' | 'sum' | 'signed-sum';
  readonly maxPerRow: number;
}

export interface SecureSumSegment extends SumSegmentBound {
  /** Fixed-point fraction bits: a value v travels as round(v · 2^fractionBits). 0 for counts. */
  readonly fractionBits: number;
}

export interface SecureSumDeclaration {
  readonly purpose: SecureSumPurpose;
  /** Most rows one site may contribute (its sums are bounded by maxRows · maxPerRow). */
  readonly maxRows: number;
  readonly segments: readonly SecureSumSegment[];
}

/** The exact integer range the unmasked ring words are read back with (readSignedWord). */
const EXACT_LIMIT = 2 ** 52;
/** Finest scale used for sums: 2^-24 per site is far below any figure's meaning. */
const MAX_FRACTION_BITS = 24;
/** A sum with fewer fraction bits than this is too coarse: refuse the declaration instead. */
const MIN_FRACTION_BITS = 2;

function invalid(field: string, message: string): never {
  throw new EntenteError('INVALID_CONFIG', `${field}: ${message}`, { field });
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
}): SecureSumDeclaration {
  const { maxRows, cohortSize } = input;
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
    const total = cohortSize * maxRows * s.maxPerRow;
    if (s.kind === 'count') {
      if (total > EXACT_LIMIT)
        invalid(
          field,
          `a cohort of ${cohortSize} sites × ${maxRows} rows × ${s.maxPerRow} exceeds the ring's exact range 2^52`,
        );
      return { ...s, fractionBits: 0 };
    }
    const fractionBits = Math.min(MAX_FRACTION_BITS, Math.floor(Math.log2(EXACT_LIMIT / total)));
    if (!(fractionBits >= MIN_FRACTION_BITS))
      invalid(
        field,
        `a cohort of ${cohortSize} sites × ${maxRows} rows × ${s.maxPerRow} leaves under ${MIN_FRACTION_BITS} fraction bits in the ring's exact range 2^52: lower maxRows or the bound`,
      );
    return { ...s, fractionBits };
  });
  if (segments.length === 0) invalid('secureSum.segments', 'at least one segment');
  return { purpose: input.purpose, maxRows, segments };
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
    out.push({ name: s.name, offsetWords: offset, lengthWords: s.length });
    offset += s.length;
  }
  out.push({ name: WEIGHT_SEGMENT, offsetWords: offset, lengthWords: 1 });
  return out;
}

/** Writes the signed integer `value` (|value| ≤ 2^53) into a 2^64 ring word, two's complement. */
function writeSignedWord64(out: BigUint64Array, index: number, value: number): void {
  out[index] = BigInt.asUintN(64, BigInt(value));
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
export function encodeSecureSum(decl: SecureSumDeclaration, values: Float64Array): BigUint64Array {
  const n = countSecureSumValues(decl);
  if (values.length !== n)
    throw new EntenteError('INVALID_DATA', `values: expected ${n} sums, got ${values.length}`, {
      field: 'values',
    });
  const out = new BigUint64Array(n + 1);
  let i = 0;
  for (const s of decl.segments) {
    const max = decl.maxRows * s.maxPerRow;
    const min = s.kind === 'signed-sum' ? -max : 0;
    const scale = 2 ** s.fractionBits;
    for (let j = 0; j < s.length; j++, i++) {
      const v = values[i]!;
      if (!(Number.isFinite(v) && v >= min && v <= max) || (s.kind === 'count' && !Number.isInteger(v)))
        throw new EntenteError(
          'INVALID_DATA',
          `values.${s.name}[${j}]: ${v} is outside the declared bounds [${min}, ${max}]${s.kind === 'count' ? ' or not an integer' : ''}`,
          { field: `values.${s.name}` },
        );
      writeSignedWord64(out, i, Math.round(v * scale));
    }
  }
  out[n] = 1n;
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
): Float64Array {
  if (!(sum instanceof BigUint64Array))
    throw new EntenteError('PROTOCOL_VIOLATION', 'sum: secure sums use the 2^64 ring', { field: 'sum' });
  const n = countSecureSumValues(decl);
  if (sum.length !== n + 1)
    throw new EntenteError('PROTOCOL_VIOLATION', `sum: expected ${n + 1} words`, { field: 'sum' });
  const weight = readSignedWord64(sum, n);
  if (weight !== contributors)
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      `sum: the weight channel says ${weight} sites contributed, not ${contributors}`,
      { field: 'sum' },
    );
  const out = new Float64Array(n);
  let i = 0;
  for (const s of decl.segments) {
    const max = contributors * decl.maxRows * s.maxPerRow;
    const min = s.kind === 'signed-sum' ? -max : 0;
    // Rounding at each site moves the total by at most contributors/2 units of 2^-fractionBits.
    const slack = s.kind === 'count' ? 0 : contributors * 2 ** -(s.fractionBits + 1);
    const scale = 2 ** -s.fractionBits;
    for (let j = 0; j < s.length; j++, i++) {
      const v = readSignedWord64(sum, i) * scale;
      if (v < min - slack || v > max + slack)
        throw new EntenteError(
          'PROTOCOL_VIOLATION',
          `sum.${s.name}[${j}]: ${v} is outside what ${contributors} sites may add`,
          { field: `sum.${s.name}` },
        );
      out[i] = s.kind === 'signed-sum' ? v : Math.max(0, v);
    }
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
}): SecureSumDeclaration {
  if (!(Number.isFinite(input.maxAbsFeature) && input.maxAbsFeature > 0))
    invalid('secureSum.maxAbsFeature', 'must be positive');
  return declareSecureSum({
    purpose: 'statistics',
    maxRows: input.maxRows,
    cohortSize: input.cohortSize,
    segments: [
      { name: 'count', length: 1, kind: 'count', maxPerRow: 1 },
      { name: 'sum', length: input.features, kind: 'signed-sum', maxPerRow: input.maxAbsFeature },
      { name: 'sumSquares', length: input.features, kind: 'sum', maxPerRow: input.maxAbsFeature ** 2 },
    ],
  });
}
