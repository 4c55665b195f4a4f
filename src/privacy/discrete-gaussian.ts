/**
 * Exact samplers of Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential Privacy"
 * (NeurIPS 2020, arXiv:2004.00010), §5, with integer (BigInt) arithmetic only:
 * - Algorithm 1: Bernoulli(exp(-γ)) for rational γ ≥ 0 (the series trick for γ ≤ 1: draw
 *   Bernoulli(γ/k) for k = 1, 2, … until one fails and return whether the failing k is odd; for γ > 1,
 *   ⌊γ⌋ draws of Bernoulli(exp(-1)) and one of Bernoulli(exp(-(γ-⌊γ⌋))));
 * - Algorithm 1 also for a computable irrational γ ≥ 0 given by shrinking rational bounds (each
 *   Bernoulli(γ/k) decided by lazy comparison only once the bounds prove the outcome; used by the
 *   exact Poisson sampler of skellam.ts);
 * - Algorithm 2: discrete Laplace P[Y = y] ∝ exp(-|y|/t) for rational t > 0;
 * - Algorithm 3: discrete Gaussian N_Z(0, σ²), P[Y = y] ∝ exp(-y²/(2σ²)), for rational σ² > 0, by
 *   rejection from the discrete Laplace with t = ⌊σ⌋ + 1.
 * The authors' reference code is IBM/discrete-gaussian-differential-privacy `discretegauss.py`
 * (sample_bernoulli_exp, sample_dlaplace, sample_dgauss); these are the same algorithms, with the
 * randomness from a `RandomBits` (node:crypto or a seeded AES-CTR stream) instead of Python's `random`.
 * Privacy: adding N_Z(0, σ²)^d to an integer vector of L2 sensitivity Δ is Δ²/(2σ²)-zCDP (CKS 2020,
 * multivariate discrete Gaussian mechanism), the same bound as the continuous Gaussian.
 */
import { EntenteError } from '../core/errors.ts';
import {
  computeBitLength,
  type ExactRational,
  parseExactRational,
  type RandomBits,
  sampleBernoulliFraction,
} from './random-source.ts';

/** Largest vector length the vector samplers accept. */
export const MAX_SAMPLE_COUNT = 2 ** 31 - 1;

/** Bernoulli(exp(-1)) (Algorithm 1 with γ = 1: Bernoulli(1/k) is "a uniform integer below k is 0"). */
export function sampleBernoulliExpMinusOne(bits: RandomBits): boolean {
  let k = 1;
  while (bits.nextIntBelow(k) === 0) k++;
  return k % 2 === 1;
}

/** Bernoulli(exp(-num/den)) for 0 ≤ num ≤ den (Algorithm 1, γ ≤ 1). Internal: no checks. */
function sampleBernoulliExpAtMostOne(num: bigint, den: bigint, bits: RandomBits): boolean {
  let k = 1n;
  while (sampleBernoulliFraction(num, den * k, bits)) k++;
  return k % 2n === 1n;
}

/** Bernoulli(exp(-num/den)) for num ≥ 0, den > 0 (Algorithm 1). Internal: no checks. */
export function sampleBernoulliExpFraction(num: bigint, den: bigint, bits: RandomBits): boolean {
  for (let whole = num / den; whole > 0n; whole--) if (!sampleBernoulliExpMinusOne(bits)) return false;
  return sampleBernoulliExpAtMostOne(num % den, den, bits);
}

/** Bernoulli(exp(-γ)) for a rational γ ≥ 0. Throws INVALID_ARGUMENT (field 'gamma') on a bad γ. */
export function sampleBernoulliExp(gamma: ExactRational, bits: RandomBits): boolean {
  const g = parseExactRational(gamma, 'gamma', true);
  return sampleBernoulliExpFraction(g.num, g.den, bits);
}

/**
 * Algorithm 2 with integer parameters: P[Y = y] ∝ exp(-|y|·s/t), i.e. discrete Laplace of scale t/s.
 * U uniform in [0, t) kept with probability exp(-U/t), V geometric (P[V ≥ v] = e^{-v}), X = U + tV
 * (so P[X = x] ∝ e^{-x/t}), Y = ⌊X/s⌋ with a random sign, rejecting (-, 0) so zero is not counted twice.
 */
export function sampleDiscreteLaplaceScaled(s: bigint, t: bigint, bits: RandomBits): bigint {
  for (;;) {
    const u = bits.nextBigIntBelow(t);
    if (!sampleBernoulliExpAtMostOne(u, t, bits)) continue;
    let v = 0n;
    while (sampleBernoulliExpMinusOne(bits)) v++;
    const y = (u + t * v) / s;
    const negative = (bits.nextUint32() & 1) === 1;
    if (negative && y === 0n) continue;
    return negative ? -y : y;
  }
}

/** Discrete Laplace: P[Y = y] ∝ exp(-|y|/t) on the integers, for a rational scale t > 0. */
export function sampleDiscreteLaplace(t: ExactRational, bits: RandomBits): bigint {
  const scale = parseExactRational(t, 't');
  return sampleDiscreteLaplaceScaled(scale.den, scale.num, bits);
}

/**
 * Bounds of a computable real γ ≥ 0: for a precision p returns [lo, hi] with lo ≤ γ·2^p ≤ hi, the
 * width (hi - lo)·2^-p shrinking to 0 as p grows (p doubles on each refinement).
 */
export type ComputableBounds = (precisionBits: number) => readonly [bigint, bigint];

interface BoundsState {
  precision: number;
  lo: bigint;
  hi: bigint;
  readonly bounds: ComputableBounds;
}

function refineBounds(state: BoundsState): void {
  state.precision *= 2;
  [state.lo, state.hi] = state.bounds(state.precision);
}

/** Bernoulli(γ/divisor) with γ ∈ [lo, hi]·2^-precision, by lazy comparison with a uniform number. */
function sampleBernoulliOfBounds(state: BoundsState, divisor: bigint, bits: RandomBits): boolean {
  let u = 0n;
  let uBits = 0n;
  for (;;) {
    u = (u << 32n) | BigInt(bits.nextUint32());
    uBits += 32n;
    const scale = divisor << BigInt(state.precision);
    if ((u + 1n) * scale <= state.lo << uBits) return true; // U < lower bound of γ/divisor
    if (u * scale >= state.hi << uBits) return false; // U ≥ upper bound
    if ((state.hi - state.lo) << uBits > scale) refineBounds(state); // γ is the wider of the two
  }
}

/**
 * Bernoulli(exp(-γ)) for a computable γ ≥ 0 (CKS Algorithm 1 on J = ⌈γ_hi⌉ factors exp(-γ/J)), exact:
 * each Bernoulli(γ/(J·k)) is decided only when the bounds prove it. Precondition: γ ≥ 0 (throws
 * INVALID_ARGUMENT, field 'gamma', when the bounds prove γ < 0). startPrecision: first p asked for.
 */
export function sampleBernoulliExpOfBounds(
  bounds: ComputableBounds,
  bits: RandomBits,
  startPrecision = 64,
): boolean {
  if (!Number.isInteger(startPrecision) || startPrecision < 1 || startPrecision > 4096)
    throw new EntenteError('INVALID_ARGUMENT', 'startPrecision must be an integer in [1, 4096]', {
      field: 'startPrecision',
    });
  const [lo, hi] = bounds(startPrecision);
  const state: BoundsState = { precision: startPrecision, lo, hi, bounds };
  if (hi < 0n) throw new EntenteError('INVALID_ARGUMENT', 'gamma must be ≥ 0', { field: 'gamma' });
  if (hi === 0n) return true; // 0 ≤ γ ≤ 0
  const one = 1n << BigInt(startPrecision);
  const pieces = (hi + one - 1n) / one; // ⌈γ_hi⌉ ≥ 1
  for (let j = 0n; j < pieces; j++) {
    let k = 1n;
    while (sampleBernoulliOfBounds(state, pieces * k, bits)) k++;
    if (k % 2n === 0n) return false;
  }
  return true;
}

/** ⌊√x⌋ for a bigint x ≥ 0 (Newton's method from above, integers only). */
export function computeIntegerSqrt(x: bigint): bigint {
  if (x < 0n) throw new EntenteError('INVALID_ARGUMENT', 'x must be ≥ 0', { field: 'x' });
  if (x < 2n) return x;
  let r = 1n << BigInt(Math.ceil(computeBitLength(x) / 2)); // r ≥ √x
  for (;;) {
    const next = (r + x / r) >> 1n;
    if (next >= r) return r;
    r = next;
  }
}

/** A prepared discrete Gaussian sampler for one σ² = num/den (the constants of Algorithm 3). */
interface DiscreteGaussianPlan {
  readonly num: bigint;
  readonly den: bigint;
  readonly t: bigint;
  readonly denTimesT: bigint;
  readonly gammaDen: bigint;
}

function createPlan(sigmaSquared: ExactRational): DiscreteGaussianPlan {
  const { num, den } = parseExactRational(sigmaSquared, 'sigmaSquared');
  const t = computeIntegerSqrt(num / den) + 1n; // ⌊σ⌋ + 1, as ⌊√⌊σ²⌋⌋ = ⌊σ⌋
  return { num, den, t, denTimesT: den * t, gammaDen: 2n * num * den * t * t };
}

/**
 * Algorithm 3: Y ~ DLap(t) accepted with probability exp(-(|Y| - σ²/t)²/(2σ²)); with σ² = n/d that is
 * exp(-(|Y|·d·t - n)² / (2·n·d·t²)), an exact rational exponent.
 */
function sampleWithPlan(plan: DiscreteGaussianPlan, bits: RandomBits): bigint {
  for (;;) {
    const y = sampleDiscreteLaplaceScaled(1n, plan.t, bits);
    const diff = (y < 0n ? -y : y) * plan.denTimesT - plan.num;
    if (sampleBernoulliExpFraction(diff * diff, plan.gammaDen, bits)) return y;
  }
}

/** One sample of N_Z(0, σ²) for a rational σ² > 0. Throws INVALID_ARGUMENT (field 'sigmaSquared'). */
export function sampleDiscreteGaussian(sigmaSquared: ExactRational, bits: RandomBits): bigint {
  return sampleWithPlan(createPlan(sigmaSquared), bits);
}

/** Checks a vector length. */
export function checkSampleCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_SAMPLE_COUNT)
    throw new EntenteError('INVALID_ARGUMENT', `n must be an integer in [0, ${MAX_SAMPLE_COUNT}]`, {
      field: 'n',
    });
}

/**
 * n independent samples of N_Z(0, σ²). Returns an Int32Array when σ² ≤ 10^12 (σ ≤ 10^6: a value
 * beyond 2^31 - 1 is more than 2147σ out, probability below e^-(2·10^6)), otherwise a BigInt64Array
 * (σ² ≤ 10^30). Throws INVALID_ARGUMENT for σ² > 10^30 (use the scalar sampler) or a bad n, and
 * INTERNAL if a value ever does not fit (never in practice; the noise is not clipped silently).
 */
export function sampleDiscreteGaussianVector(
  sigmaSquared: ExactRational,
  n: number,
  bits: RandomBits,
): Int32Array | BigInt64Array {
  const plan = createPlan(sigmaSquared);
  checkSampleCount(n);
  const { num, den } = plan;
  if (num <= 10n ** 12n * den) {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const y = sampleWithPlan(plan, bits);
      if (y > 2147483647n || y < -2147483648n)
        throw new EntenteError('INTERNAL', 'a discrete Gaussian sample does not fit int32');
      out[i] = Number(y);
    }
    return out;
  }
  if (num > 10n ** 30n * den)
    throw new EntenteError('INVALID_ARGUMENT', 'sigmaSquared must be ≤ 1e30 for the vector form', {
      field: 'sigmaSquared',
    });
  const out = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    const y = sampleWithPlan(plan, bits);
    if (y > 9223372036854775807n || y < -9223372036854775808n)
      throw new EntenteError('INTERNAL', 'a discrete Gaussian sample does not fit int64');
    out[i] = y;
  }
  return out;
}
