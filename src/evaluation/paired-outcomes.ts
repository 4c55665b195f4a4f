/**
 * Paired outcomes of shadow scoring: each site scores the candidate model beside the production model on
 * the same rows (without acting on the candidate's answers) and adds up a short vector of additive sums;
 * the sites' vectors are added (in the clear or by secure aggregation) and the figures below follow from
 * the total, exactly as on the union of the sites' rows.
 *
 * The vector (every coordinate a count or a bounded non-negative sum, so a secure sum can encode it;
 * segments in the shape of evaluation-layout.ts, with `kind`, `maxPerRow` and `maxRowL2`):
 *
 * | segment                          | kind  | length | each row adds                                        |
 * |----------------------------------|-------|--------|------------------------------------------------------|
 * | `paired.rows`                    | count | 1      | 1 (n)                                                |
 * | `paired.agreement`               | count | 4      | 1 at [both correct, candidate only correct (c), production only correct (b), both wrong] |
 * | `paired.lossDifferencePositive`  | sum   | 1      | max(d, 0), d = loss_candidate − loss_production      |
 * | `paired.lossDifferenceNegative`  | sum   | 1      | max(−d, 0)                                           |
 * | `paired.lossDifferenceSquared`   | sum   | 1      | d²                                                   |
 *
 * Σd is the positive part minus the negative part (a secure sum's segments are non-negative). Each
 * row's losses are clipped to [0, maxRowLoss] first, so |d| ≤ maxRowLoss and d² ≤ maxRowLoss².
 *
 * Figures: each model's accuracy, their difference, McNemar's exact test (two-sided, from the
 * discordant counts b and c under Binomial(b + c, 1/2): p = min(1, 2·Σ_{k ≤ min(b,c)} C(b+c, k)/2^(b+c)),
 * computed in log space so it stays exact to rounding for counts in the millions; McNemar 1947,
 * Psychometrika 12:153), the continuity-corrected chi-square statistic (|b − c| − 1)²/(b + c) for
 * reference (Edwards 1948), the mean loss difference and its standard error. Pure.
 */
import { EntenteError } from '../core/errors.ts';
import type { SumSegment } from './evaluation-layout.ts';

export interface PairedOutcomeSpec {
  /** Each row's loss is clipped to [0, maxRowLoss] (e.g. a log loss clip). */
  readonly maxRowLoss: number;
}

export interface PairedOutcomeLayout {
  readonly spec: PairedOutcomeSpec;
  readonly length: number;
  readonly segments: readonly SumSegment[];
}

/** One row scored by both models. */
export interface PairedRow {
  readonly candidateCorrect: boolean;
  readonly productionCorrect: boolean;
  /** Non-negative per-row losses (clipped to maxRowLoss). */
  readonly candidateLoss: number;
  readonly productionLoss: number;
}

export const MAX_PAIRED_ROW_LOSS = 1e6;

/** Offsets in the vector. */
const ROWS = 0;
const BOTH_CORRECT = 1;
const CANDIDATE_ONLY = 2;
const PRODUCTION_ONLY = 3;
const BOTH_WRONG = 4;
const DIFF_POSITIVE = 5;
const DIFF_NEGATIVE = 6;
const DIFF_SQUARED = 7;
export const PAIRED_OUTCOME_LENGTH = 8;

function checkSpec(spec: PairedOutcomeSpec): PairedOutcomeSpec {
  const m = spec?.maxRowLoss;
  if (typeof m !== 'number' || !Number.isFinite(m) || m <= 0 || m > MAX_PAIRED_ROW_LOSS)
    throw new EntenteError(
      'INVALID_CONFIG',
      `spec.maxRowLoss: must be a number in (0, ${MAX_PAIRED_ROW_LOSS}]`,
      {
        field: 'spec.maxRowLoss',
      },
    );
  return Object.freeze({ maxRowLoss: m });
}

/** The layout of the paired-outcome vector: the segments a secure sum declares. */
export function createPairedOutcomeLayout(input: PairedOutcomeSpec): PairedOutcomeLayout {
  const spec = checkSpec(input);
  const l = spec.maxRowLoss;
  const segments: SumSegment[] = [
    { name: 'paired.rows', offset: ROWS, length: 1, kind: 'count', maxPerRow: 1, maxRowL2: 1 },
    // One row adds 1 to exactly one of the four cells.
    { name: 'paired.agreement', offset: BOTH_CORRECT, length: 4, kind: 'count', maxPerRow: 1, maxRowL2: 1 },
    {
      name: 'paired.lossDifferencePositive',
      offset: DIFF_POSITIVE,
      length: 1,
      kind: 'sum',
      maxPerRow: l,
      maxRowL2: l,
    },
    {
      name: 'paired.lossDifferenceNegative',
      offset: DIFF_NEGATIVE,
      length: 1,
      kind: 'sum',
      maxPerRow: l,
      maxRowL2: l,
    },
    {
      name: 'paired.lossDifferenceSquared',
      offset: DIFF_SQUARED,
      length: 1,
      kind: 'sum',
      maxPerRow: l * l,
      maxRowL2: l * l,
    },
  ].map((s) => Object.freeze(s as SumSegment));
  return Object.freeze({ spec, length: PAIRED_OUTCOME_LENGTH, segments: Object.freeze(segments) });
}

/**
 * One site's sums from its rows. Throws INVALID_DATA naming the row and field for a correctness flag
 * that is not a boolean or a loss that is not a finite non-negative number.
 */
export function accumulatePairedOutcomes(spec: PairedOutcomeSpec, rows: readonly PairedRow[]): Float64Array {
  const { maxRowLoss } = checkSpec(spec);
  const v = new Float64Array(PAIRED_OUTCOME_LENGTH);
  rows.forEach((r, i) => {
    const bad = (field: string, message: string): never => {
      throw new EntenteError('INVALID_DATA', `rows.${i}.${field}: ${message}`, {
        field: `rows.${i}.${field}`,
      });
    };
    if (typeof r?.candidateCorrect !== 'boolean') bad('candidateCorrect', 'must be true or false');
    if (typeof r.productionCorrect !== 'boolean') bad('productionCorrect', 'must be true or false');
    for (const f of ['candidateLoss', 'productionLoss'] as const) {
      const x = r[f];
      if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) bad(f, 'must be a finite number ≥ 0');
    }
    v[ROWS]! += 1;
    const cell = r.candidateCorrect
      ? r.productionCorrect
        ? BOTH_CORRECT
        : CANDIDATE_ONLY
      : r.productionCorrect
        ? PRODUCTION_ONLY
        : BOTH_WRONG;
    v[cell]! += 1;
    const d = Math.min(r.candidateLoss, maxRowLoss) - Math.min(r.productionLoss, maxRowLoss);
    if (d > 0) v[DIFF_POSITIVE]! += d;
    else v[DIFF_NEGATIVE]! -= d;
    v[DIFF_SQUARED]! += d * d;
  });
  return v;
}

export interface PairedOutcomeFigures {
  readonly rows: number;
  readonly bothCorrect: number;
  /** c: rows only the candidate gets right. */
  readonly candidateOnlyCorrect: number;
  /** b: rows only the production model gets right. */
  readonly productionOnlyCorrect: number;
  readonly bothWrong: number;
  readonly discordant: number;
  readonly candidateAccuracy: number | null;
  readonly productionAccuracy: number | null;
  /** Candidate − production accuracy = (c − b)/n. */
  readonly accuracyDifference: number | null;
  /** McNemar's exact two-sided p-value (1 when there is no discordant row). */
  readonly mcnemarP: number;
  /** (|b − c| − 1)²/(b + c); null when b + c = 0. */
  readonly mcnemarChiSquare: number | null;
  readonly meanLossDifference: number | null;
  /** Sample standard deviation of d over √n; null when n < 2. */
  readonly lossDifferenceStdError: number | null;
}

/**
 * ln C(n, k) for k = 0..m, by the recurrence C(n, k+1) = C(n, k)·(n − k)/(k + 1), the logs added with
 * Neumaier's compensated summation (the running value reaches ~n ln 2, so plain addition would lose
 * about √m ulps of it).
 */
function logBinomialTerms(n: number, m: number): number[] {
  const out = [0];
  let sum = 0;
  let compensation = 0;
  for (let k = 0; k < m; k++) {
    const x = Math.log(n - k) - Math.log(k + 1);
    const t = sum + x;
    compensation += Math.abs(sum) >= Math.abs(x) ? sum - t + x : x - t + sum;
    sum = t;
    out.push(sum + compensation);
  }
  return out;
}

/**
 * McNemar's exact two-sided p-value from the discordant counts: under the null each discordant row is
 * the candidate's with probability 1/2, so min(b, c) ~ Binomial(b + c, 1/2) and p = min(1, 2·P(X ≤
 * min(b, c))). The tail is summed as exp(log-sum-exp of ln C(n, k) − n ln 2), never forming 2^n.
 * Throws INVALID_ARGUMENT for counts that are not non-negative safe integers.
 */
export function mcnemarExactP(b: number, c: number): number {
  for (const [name, x] of [
    ['b', b],
    ['c', c],
  ] as const)
    if (!Number.isSafeInteger(x) || x < 0)
      throw new EntenteError('INVALID_ARGUMENT', `${name}: must be a non-negative integer`, { field: name });
  const n = b + c;
  if (n === 0) return 1;
  const m = Math.min(b, c);
  if (2 * m >= n) return 1;
  const terms = logBinomialTerms(n, m);
  const top = terms[m]!; // the largest: C(n, k) grows for k < n/2
  let s = 0;
  for (const t of terms) s += Math.exp(t - top);
  const logTail = top + Math.log(s) - n * Math.LN2;
  return Math.min(1, Math.exp(Math.LN2 + logTail));
}

/** (|b − c| − 1)²/(b + c), McNemar's statistic with Edwards's continuity correction; null when b + c = 0. */
export function mcnemarChiSquare(b: number, c: number): number | null {
  const n = b + c;
  return n === 0 ? null : (Math.abs(b - c) - 1) ** 2 / n;
}

/**
 * The figures from a summed vector. Counts must be non-negative whole numbers (a decoded secure sum's
 * counts are; up to 1e-6 of rounding is tolerated) whose four cells add up to the rows, and the loss sums
 * finite and non-negative: otherwise INVALID_DATA naming the segment (hostile or corrupted sums).
 */
export function finalizePairedOutcomes(
  spec: PairedOutcomeSpec,
  sums: ArrayLike<number>,
): PairedOutcomeFigures {
  checkSpec(spec);
  const bad = (field: string, message: string): never => {
    throw new EntenteError('INVALID_DATA', `sums.${field}: ${message}`, { field: `sums.${field}` });
  };
  if (!sums || sums.length !== PAIRED_OUTCOME_LENGTH)
    bad('length', `must be ${PAIRED_OUTCOME_LENGTH} values`);
  const count = (i: number, field: string): number => {
    const x = sums[i]!;
    const r = Math.round(x);
    if (!Number.isFinite(x) || r < 0 || Math.abs(x - r) > 1e-6 || !Number.isSafeInteger(r))
      bad(field, 'must be a non-negative whole number');
    return r;
  };
  const n = count(ROWS, 'paired.rows');
  const both = count(BOTH_CORRECT, 'paired.agreement.0');
  const c = count(CANDIDATE_ONLY, 'paired.agreement.1');
  const b = count(PRODUCTION_ONLY, 'paired.agreement.2');
  const none = count(BOTH_WRONG, 'paired.agreement.3');
  if (both + c + b + none !== n) bad('paired.agreement', 'the four cells must add up to paired.rows');
  const pos = sums[DIFF_POSITIVE]!;
  const neg = sums[DIFF_NEGATIVE]!;
  const sq = sums[DIFF_SQUARED]!;
  for (const [x, field] of [
    [pos, 'paired.lossDifferencePositive'],
    [neg, 'paired.lossDifferenceNegative'],
    [sq, 'paired.lossDifferenceSquared'],
  ] as const)
    if (!Number.isFinite(x) || x < 0) bad(field, 'must be a finite number ≥ 0');
  const sum = pos - neg;
  const mean = n === 0 ? null : sum / n;
  const variance = n < 2 ? null : Math.max(0, (sq - (sum * sum) / n) / (n - 1));
  const candidateAccuracy = n === 0 ? null : (both + c) / n;
  const productionAccuracy = n === 0 ? null : (both + b) / n;
  return {
    rows: n,
    bothCorrect: both,
    candidateOnlyCorrect: c,
    productionOnlyCorrect: b,
    bothWrong: none,
    discordant: b + c,
    candidateAccuracy,
    productionAccuracy,
    accuracyDifference: n === 0 ? null : (c - b) / n,
    mcnemarP: mcnemarExactP(b, c),
    mcnemarChiSquare: mcnemarChiSquare(b, c),
    meanLossDifference: mean,
    lossDifferenceStdError: variance === null ? null : Math.sqrt(variance / n),
  };
}

/**
 * The figures under the names a rollout gate's rule reads (governance/rollout-plan.ts
 * rolloutGateMetrics): `candidate.accuracy`, `production.accuracy`, `paired.mcnemarP`, …
 */
export function pairedGateFigures(f: PairedOutcomeFigures): {
  candidate: Record<string, number | null>;
  production: Record<string, number | null>;
  paired: Record<string, number | null>;
} {
  return {
    candidate: { accuracy: f.candidateAccuracy, rows: f.rows },
    production: { accuracy: f.productionAccuracy, rows: f.rows },
    paired: {
      rows: f.rows,
      discordant: f.discordant,
      accuracyDifference: f.accuracyDifference,
      mcnemarP: f.mcnemarP,
      mcnemarChiSquare: f.mcnemarChiSquare,
      meanLossDifference: f.meanLossDifference,
      lossDifferenceStdError: f.lossDifferenceStdError,
    },
  };
}
