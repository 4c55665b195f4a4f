/**
 * Skellam noise (Agarwal, Kairouz, Liu 2021, "The Skellam Mechanism for Differentially Private
 * Federated Learning", NeurIPS 2021): Sk(μ) = P1 - P2 with P1, P2 ~ Poisson(μ) independent, variance
 * 2μ; the noise that google-research/federated `distributed_dp` adds before secure aggregation (there
 * with tf.random.poisson, a floating-point sampler). Here the Poisson sampler is exact and uses integer
 * arithmetic only (no floating point decides any outcome):
 * - μ < 64: Poisson(μ) = Σ_{⌊μ⌋} Poisson(1) + Poisson(μ - ⌊μ⌋), each Poisson(λ ≤ 1) by rejection from
 *   a Geometric(1/2) proposal; target/proposal ∝ (2λ)^k/k! is rational, so acceptance is an exact
 *   Bernoulli of a fraction (the normaliser e^λ cancels).
 * - μ ≥ 64 (constant cost in μ): rejection from a discrete Laplace of scale s = ⌊√⌊μ⌋⌋ centred at the
 *   mode m = ⌊μ⌋ (Canonne, Kamath, Steinke 2020, Algorithm 2). k is kept with probability
 *   exp(-γ(k)), γ(k) = ln C - [ln p(k) - ln p(m)] - |k - m|/s ≥ 0, where
 *   ln p(k) - ln p(m) = (k - m) ln μ - ln(k!/m!). γ is irrational, so Bernoulli(exp(-γ)) runs CKS
 *   Algorithm 1 on γ given as a shrinking interval of fixed-point bigints: ln by the atanh series with
 *   directed rounding, ln(k!/m!) by Robbins' bounds (ln n! = (n+½)ln n - n + ½ln 2π + r_n,
 *   1/(12n+1) < r_n < 1/(12n)) and, when a comparison is still undecided, by the exact sum of ln i at
 *   twice the precision (and so on). ln C is a rigorous upper bound of sup_k [ln p(k)/p(m) + |k-m|/s],
 *   found from the concavity of that function on each side of m. Every decision is made only when the
 *   interval proves it, so the output is exactly Poisson(μ).
 */
import { EntenteError } from '../core/errors.ts';
import {
  type ComputableBounds,
  checkSampleCount,
  computeIntegerSqrt,
  sampleBernoulliExpOfBounds,
  sampleDiscreteLaplaceScaled,
} from './discrete-gaussian.ts';
import {
  computeBitLength,
  type ExactRational,
  parseExactRational,
  type RandomBits,
  sampleBernoulliFraction,
} from './random-source.ts';

/** Largest mean the Poisson and Skellam samplers accept (2^48; a Skellam σ of about 2.4·10^7). */
export const MAX_POISSON_MEAN = 2n ** 48n;
const LARGE_MEAN = 64n;
const EXTRA_PRECISION = 64; // fractional bits of the first intervals beyond the bit length of m
const GUARD_BITS = 20;

/** [lo, hi] bounding a real times 2^precision. */
type Interval = readonly [bigint, bigint];

const floorDiv = (a: bigint, b: bigint): bigint => (a >= 0n ? a / b : -((-a + b - 1n) / b));
const ceilDiv = (a: bigint, b: bigint): bigint => -floorDiv(-a, b);

/** atanh(z) from below, z ≥ zFixed/2^q, by the truncated series with every step rounded down. */
function computeAtanhLower(zFixed: bigint, q: bigint): bigint {
  const z2 = (zFixed * zFixed) >> q;
  let sum = 0n;
  for (let p = zFixed, k = 1n; p > 0n; k += 2n, p = (p * z2) >> q) sum += p / k;
  return sum;
}

/** atanh(z) from above, z ≤ zFixed/2^q ≤ 0.34: every step rounded up, tail bounded by 2·(last power). */
function computeAtanhUpper(zFixed: bigint, q: bigint): bigint {
  const one = 1n << q;
  const z2 = ceilDiv(zFixed * zFixed, one);
  let sum = 0n;
  for (let p = zFixed, k = 1n; ; k += 2n, p = ceilDiv(p * z2, one)) {
    if (p <= 16n) return sum + 2n * p; // Σ_{j≥k} z^(2j+1)/(2j+1) ≤ z^(2k+1)/(1 - z²) ≤ 2·z^(2k+1)
    sum += ceilDiv(p, k);
  }
}

const ln2Cache = new Map<number, Interval>();
function computeLn2(q: number): Interval {
  let cached = ln2Cache.get(q);
  if (cached === undefined) {
    const third = (1n << BigInt(q)) / 3n; // ln 2 = 2 atanh(1/3)
    cached = [2n * computeAtanhLower(third, BigInt(q)), 2n * computeAtanhUpper(third + 1n, BigInt(q))];
    ln2Cache.set(q, cached);
  }
  return cached;
}

/** ln(a) for an integer a ≥ 1: a = 2^e·y, y ∈ [1, 2), ln y = 2 atanh((y-1)/(y+1)) with z < 1/3. */
function computeLnInterval(a: bigint, precision: number): Interval {
  if (a === 1n) return [0n, 0n];
  const q = precision + GUARD_BITS;
  const e = BigInt(computeBitLength(a) - 1);
  const pow = 1n << e;
  const zNum = (a - pow) << BigInt(q);
  const zLo = zNum / (a + pow);
  const [l2lo, l2hi] = computeLn2(q);
  const lo = e * l2lo + 2n * computeAtanhLower(zLo, BigInt(q));
  const hi = e * l2hi + 2n * computeAtanhUpper(zLo + 1n, BigInt(q));
  return [lo >> BigInt(GUARD_BITS), ceilDiv(hi, 1n << BigInt(GUARD_BITS))];
}

const addIntervals = (a: Interval, b: Interval): Interval => [a[0] + b[0], a[1] + b[1]];
const subIntervals = (a: Interval, b: Interval): Interval => [a[0] - b[1], a[1] - b[0]];
/** Interval times the rational num/den (den > 0). */
function scaleInterval(x: Interval, num: bigint, den: bigint): Interval {
  return num >= 0n
    ? [floorDiv(x[0] * num, den), ceilDiv(x[1] * num, den)]
    : [floorDiv(x[1] * num, den), ceilDiv(x[0] * num, den)];
}
const rationalInterval = (num: bigint, den: bigint, precision: number): Interval => [
  floorDiv(num << BigInt(precision), den),
  ceilDiv(num << BigInt(precision), den),
];

/** The constants of the μ ≥ 64 sampler (built once per μ). */
interface LargeMeanPlan {
  readonly mu: ExactRational;
  readonly m: bigint;
  readonly s: bigint;
  readonly lnMu: Map<number, Interval>;
  readonly lnM: Map<number, Interval>;
  /** Fractional bits of the first intervals: 64 + bit length of m, so (k+½)·ln k is still 2^-60-tight. */
  readonly basePrecision: number;
  lnC: bigint; // at basePrecision
}

function computeLnMu(plan: LargeMeanPlan, precision: number): Interval {
  let x = plan.lnMu.get(precision);
  if (x === undefined) {
    x = subIntervals(computeLnInterval(plan.mu.num, precision), computeLnInterval(plan.mu.den, precision));
    plan.lnMu.set(precision, x);
  }
  return x;
}

function computeLnM(plan: LargeMeanPlan, precision: number): Interval {
  let x = plan.lnM.get(precision);
  if (x === undefined) {
    x = computeLnInterval(plan.m, precision);
    plan.lnM.set(precision, x);
  }
  return x;
}

/** ln(k!/m!): Robbins' bounds when exact = false (k, m ≥ 1), else Σ ln i at this precision. */
function computeLnFactorialRatio(
  plan: LargeMeanPlan,
  k: bigint,
  precision: number,
  exact: boolean,
): Interval {
  const m = plan.m;
  if (k === m) return [0n, 0n];
  if (exact || k === 0n) {
    let sum: Interval = [0n, 0n];
    for (let i = (k < m ? k : m) + 1n; i <= (k < m ? m : k); i++)
      sum = addIntervals(sum, computeLnInterval(i, precision));
    return k > m ? sum : [-sum[1], -sum[0]];
  }
  const one = 1n << BigInt(precision);
  const main = subIntervals(
    scaleInterval(computeLnInterval(k, precision), 2n * k + 1n, 2n),
    scaleInterval(computeLnM(plan, precision), 2n * m + 1n, 2n),
  );
  const robbins: Interval = [
    floorDiv((12n * m - 12n * k - 1n) * one, (12n * k + 1n) * 12n * m),
    ceilDiv((12n * m + 1n - 12n * k) * one, 12n * k * (12n * m + 1n)),
  ];
  return addIntervals(addIntervals(main, robbins), [(m - k) * one, (m - k) * one]);
}

/** G(k) = ln p(k) - ln p(m) + |k - m|/s, as an interval. */
function computeLogRatio(plan: LargeMeanPlan, k: bigint, precision: number, exact: boolean): Interval {
  const d = k - plan.m;
  const linear = scaleInterval(computeLnMu(plan, precision), d, 1n);
  const slope = rationalInterval(d < 0n ? -d : d, plan.s, precision);
  return addIntervals(subIntervals(linear, computeLnFactorialRatio(plan, k, precision, exact)), slope);
}

/** Upper bound of sup G over one side of m, from the window where the increments of G change sign. */
function computeSideSupremum(plan: LargeMeanPlan, sign: 1n | -1n): bigint {
  const P = plan.basePrecision;
  const { m, s } = plan;
  const invS = rationalInterval(1n, s, P);
  const limit = sign > 0n ? MAX_POISSON_MEAN * 4n : m; // G decreases long before the right limit
  // increment into step j ≥ 1 away from m: right ln μ - ln(m+j) + 1/s, left ln(m-j+1) - ln μ + 1/s
  const increment = (j: bigint): Interval =>
    sign > 0n
      ? addIntervals(subIntervals(computeLnMu(plan, P), computeLnInterval(m + j, P)), invS)
      : addIntervals(subIntervals(computeLnInterval(m - j + 1n, P), computeLnMu(plan, P)), invS);
  let j = m / s < limit ? m / s : limit;
  while (j > 0n && increment(j)[0] < 0n) j--;
  while (j < limit && increment(j + 1n)[0] >= 0n) j++;
  let end = j + 1n;
  while (end <= limit && increment(end)[1] > 0n) end++;
  let best = 0n;
  for (let i = j; i < end && i <= limit; i++) {
    const hi = computeLogRatio(plan, m + sign * i, P, false)[1];
    if (hi > best) best = hi;
  }
  return best;
}

function createLargeMeanPlan(mu: ExactRational): LargeMeanPlan {
  const m = mu.num / mu.den;
  const plan: LargeMeanPlan = {
    mu,
    m,
    s: computeIntegerSqrt(m),
    lnMu: new Map(),
    lnM: new Map(),
    basePrecision: EXTRA_PRECISION + computeBitLength(m),
    lnC: 0n,
  };
  plan.lnC = computeSideSupremum(plan, 1n);
  const left = computeSideSupremum(plan, -1n);
  if (left > plan.lnC) plan.lnC = left;
  return plan;
}

/** γ(k) = ln C - G(k) ≥ 0: Robbins' bounds at the base precision, exact sums of ln i beyond. */
function createGammaBounds(plan: LargeMeanPlan, k: bigint): ComputableBounds {
  return (precision) => {
    const lnC = plan.lnC << BigInt(precision - plan.basePrecision);
    const g = computeLogRatio(plan, k, precision, precision > plan.basePrecision);
    return [lnC - g[1], lnC - g[0]];
  };
}

function sampleLargeMeanPoisson(plan: LargeMeanPlan, bits: RandomBits): bigint {
  for (;;) {
    const k = plan.m + sampleDiscreteLaplaceScaled(1n, plan.s, bits);
    if (k >= 0n && sampleBernoulliExpOfBounds(createGammaBounds(plan, k), bits, plan.basePrecision)) return k;
  }
}

/** Number of 1 bits before the first 0 bit: P[K = k] = 2^-(k+1). */
function sampleGeometricHalf(bits: RandomBits): bigint {
  let count = 0;
  for (;;) {
    const word = bits.nextUint32();
    if (word !== 0xffffffff) return BigInt(count + 31 - Math.clz32(~word & (word + 1)));
    count += 32;
  }
}

/** Poisson(a/b) for 0 < a ≤ b: Geometric(1/2) proposal k kept with probability (2λ)^k/(k!·M). */
function sampleSmallPoisson(a: bigint, b: bigint, bits: RandomBits): bigint {
  const top = (2n * a) / b; // argmax of (2λ)^k/k! is ⌊2λ⌋ ∈ {0, 1, 2}
  const topFactorial = top === 2n ? 2n : 1n;
  for (;;) {
    const k = sampleGeometricHalf(bits);
    let factorial = 1n;
    for (let i = 2n; i <= k; i++) factorial *= i;
    const num = (2n * a) ** k * b ** top * topFactorial;
    const den = b ** k * factorial * (2n * a) ** top;
    if (sampleBernoulliFraction(num, den, bits)) return k;
  }
}

type PoissonPlan = { kind: 'small'; mu: ExactRational } | { kind: 'large'; plan: LargeMeanPlan };

function createPoissonPlan(mu: ExactRational, field: string): PoissonPlan {
  const x = parseExactRational(mu, field);
  if (x.num > MAX_POISSON_MEAN * x.den)
    throw new EntenteError('INVALID_ARGUMENT', `${field} must be ≤ 2^48`, { field });
  return x.num >= LARGE_MEAN * x.den
    ? { kind: 'large', plan: createLargeMeanPlan(x) }
    : { kind: 'small', mu: x };
}

function sampleWithPoissonPlan(plan: PoissonPlan, bits: RandomBits): bigint {
  if (plan.kind === 'large') return sampleLargeMeanPoisson(plan.plan, bits);
  const { num, den } = plan.mu;
  let total = 0n;
  for (let i = num / den; i > 0n; i--) total += sampleSmallPoisson(1n, 1n, bits);
  const rest = num % den;
  return rest === 0n ? total : total + sampleSmallPoisson(rest, den, bits);
}

const planCache = new Map<string, PoissonPlan>();
function lookUpPoissonPlan(mu: ExactRational, field: string): PoissonPlan {
  const key = typeof mu?.num === 'bigint' && typeof mu.den === 'bigint' ? `${mu.num}/${mu.den}` : '';
  const cached = planCache.get(key);
  if (cached !== undefined) return cached;
  const plan = createPoissonPlan(mu, field);
  if (planCache.size >= 32) planCache.clear();
  planCache.set(key, plan);
  return plan;
}

/** One exact Poisson(μ) sample for a rational 0 < μ ≤ 2^48. Throws INVALID_ARGUMENT (field 'mu'). */
export function samplePoisson(mu: ExactRational, bits: RandomBits): bigint {
  return sampleWithPoissonPlan(lookUpPoissonPlan(mu, 'mu'), bits);
}

/** One Skellam sample P1 - P2, P1, P2 ~ Poisson(μ) (variance 2μ), for a rational 0 < μ ≤ 2^48. */
export function sampleSkellam(mu: ExactRational, bits: RandomBits): bigint {
  const plan = lookUpPoissonPlan(mu, 'mu');
  return sampleWithPoissonPlan(plan, bits) - sampleWithPoissonPlan(plan, bits);
}

/**
 * n independent Skellam(μ) samples: an Int32Array when μ ≤ 5·10^11 (σ = √(2μ) ≤ 10^6; a value beyond
 * 2^31 - 1 is then more than 2147σ out), else a BigInt64Array. Throws INVALID_ARGUMENT for a bad μ or
 * n, INTERNAL if a value ever does not fit (never in practice; noise is not clipped silently).
 */
export function sampleSkellamVector(
  mu: ExactRational,
  n: number,
  bits: RandomBits,
): Int32Array | BigInt64Array {
  const plan = createPoissonPlan(mu, 'mu');
  checkSampleCount(n);
  const x = parseExactRational(mu, 'mu');
  const out = x.num <= 5n * 10n ** 11n * x.den ? new Int32Array(n) : new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    const y = sampleWithPoissonPlan(plan, bits) - sampleWithPoissonPlan(plan, bits);
    if (out instanceof Int32Array) {
      if (y > 2147483647n || y < -2147483648n)
        throw new EntenteError('INTERNAL', 'a Skellam sample does not fit int32');
      out[i] = Number(y);
    } else out[i] = y;
  }
  return out;
}
