/**
 * Privacy loss distribution (PLD) accountant for the (Poisson-subsampled) Gaussian mechanism, as in
 * Google dp_accounting `pld/` (privacy_loss_mechanism.py `GaussianPrivacyLoss`, pld_pmf.py,
 * common.py `self_convolve`, pld_privacy_accountant.py): Meiser & Mohammadi 2018, Koskela et al.
 * 2020, and the pessimistic connect-the-dots discretisation of Doroshenko, Ghazi, Kamath, Kumar,
 * Manurangsi 2022 ("Connect the Dots", Algorithm 1, fixed-gap form). Each direction of add/remove
 * neighbouring is one PMF on the grid {k·d} plus a mass at +∞; composition convolves PMFs by FFT, with
 * Chernoff-bounded windows whose dropped tails are added to the infinity mass (pessimistic).
 * δ(ε) = m_∞ + Σ_{ℓ>ε} p(ℓ)(1 − e^{ε−ℓ}) (hockey stick); ε(δ) inverts it exactly on the grid; for
 * subsampled mechanisms both are the max over the add and remove directions, as dp_accounting does.
 * Also: the exact single-step hockey stick of the Gaussian mechanism (Balle & Wang 2018, with the
 * subsampled mixtures of dp_accounting), and of the discrete Gaussian (Canonne, Kamath, Steinke 2020).
 */
import { EntenteError } from '../core/errors.ts';
import { computeCircularSelfConvolution, computeConvolution, computeNextPowerOfTwo } from './fft.ts';
import { computeNormalCdf, computeNormalLogCdf, computeNormalQuantile } from './normal.ts';

/** One direction of a discretised PLD: probabilities[i] is the mass of loss (lowerIndex + i)·interval. */
export interface PrivacyLossPmf {
  readonly lowerIndex: number;
  readonly probabilities: Float64Array;
  readonly infinityMass: number;
}

/** A discretised PLD; `add` is null when both neighbouring directions have the same PMF (q = 1). */
export interface PrivacyLossDistribution {
  readonly valueDiscretizationInterval: number;
  /** Always true here: every rounding is toward larger δ (an upper bound on the true δ(ε)). */
  readonly pessimistic: boolean;
  readonly remove: PrivacyLossPmf;
  readonly add: PrivacyLossPmf | null;
}

export type NeighbouringDirection = 'add' | 'remove';

const DEFAULT_INTERVAL = 1e-4;
const LOG_MASS_TRUNCATION_BOUND = -50;
const TAIL_MASS_TRUNCATION = 1e-15;
/** Largest grid (points of one PMF, or FFT length) this module builds; beyond it callers coarsen. */
const MAX_GRID_POINTS = 2 ** 22;

function fail(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

function checkNoiseAndRate(noiseMultiplier: number, samplingRate: number): void {
  if (!(Number.isFinite(noiseMultiplier) && noiseMultiplier >= 0)) fail('noiseMultiplier', 'must be ≥ 0');
  if (!(samplingRate >= 0 && samplingRate <= 1)) fail('samplingRate', 'must be in [0, 1]');
}

function checkInterval(interval: number): void {
  if (!(Number.isFinite(interval) && interval > 0 && interval <= 1)) {
    fail('valueDiscretizationInterval', 'must be in (0, 1]');
  }
}

/** log(e^a + e^b). */
function logAddExp(a: number, b: number): number {
  const hi = Math.max(a, b);
  if (hi === Number.NEGATIVE_INFINITY) return hi;
  return hi + Math.log1p(Math.exp(Math.min(a, b) - hi));
}

/** Isclose with Python's default rel_tol = 1e-9 (dp_accounting's guard at the loss limits). */
function isClose(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}

/**
 * The Gaussian mechanism with sensitivity 1, noise std z, Poisson rate q, in one direction: its
 * privacy loss ℓ(x) (decreasing in the output x), the inverse, and the hockey stick δ(ε) (dp_accounting
 * `AdditiveNoisePrivacyLoss`). remove: μ_upper = (1−q)N(0,z²) + qN(−1,z²), μ_lower = N(0,z²);
 * add: μ_upper = N(0,z²), μ_lower = (1−q)N(0,z²) + qN(1,z²).
 */
function createGaussianLoss(z: number, q: number, direction: NeighbouringDirection) {
  const z2 = z * z;
  const log1mq = Math.log(1 - q); // as dp_accounting's privacy_loss; its mixture CDF uses log1p(−q)
  const log1pNegQ = Math.log1p(-q);
  const logq = Math.log(q);
  const isAdd = direction === 'add';
  const lossWithoutSampling = (x: number) => (isAdd ? (0.5 - x) / z2 : (-0.5 - x) / z2);
  const inverseWithoutSampling = (loss: number) => (isAdd ? 0.5 - loss * z2 : -0.5 - loss * z2);
  const privacyLoss = (x: number): number => {
    const l = lossWithoutSampling(x);
    if (q === 1) return l;
    return isAdd ? -logAddExp(logq - l, log1mq) : logAddExp(logq + l, log1mq);
  };
  const inverseLoss = (epsilon: number): number => {
    if (q === 1) return inverseWithoutSampling(epsilon);
    const limit = isAdd ? -log1mq : log1mq;
    if (isClose(epsilon, limit)) return isAdd ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
    // log(e^{±ε}/q − (1/q − 1)), the loss before subsampling that subsamples to ε.
    const e = isAdd ? -epsilon : epsilon;
    const d = e - logq;
    const unsampled = d + Math.log1p(-Math.exp(Math.log(1 / q - 1) - d));
    return inverseWithoutSampling(isAdd ? -unsampled : unsampled);
  };
  const delta = (epsilon: number): number => {
    let value: number;
    if (isAdd && q < 1 && !(epsilon < -log1pNegQ)) return 0;
    if (!isAdd && q < 1 && !(epsilon > log1pNegQ)) {
      value = -Math.expm1(epsilon);
    } else {
      const x = inverseLoss(epsilon);
      if (isAdd) {
        const logLower =
          q === 1
            ? computeNormalLogCdf((x - 1) / z)
            : logAddExp(log1pNegQ + computeNormalLogCdf(x / z), logq + computeNormalLogCdf((x - 1) / z));
        value = computeNormalCdf(x / z) - Math.exp(epsilon + logLower);
      } else {
        const upper =
          q === 1
            ? computeNormalCdf((x + 1) / z)
            : (1 - q) * computeNormalCdf(x / z) + q * computeNormalCdf((x + 1) / z);
        value = upper - Math.exp(epsilon + computeNormalLogCdf(x / z));
      }
    }
    return Math.min(1, Math.max(0, value));
  };
  return { privacyLoss, delta };
}

/** Pessimistic connect-the-dots PMF on the fixed grid kLow..kHigh from δ at each grid point. */
function createConnectDotsPmf(interval: number, kLow: number, deltas: Float64Array): PrivacyLossPmf {
  const n = deltas.length;
  for (let i = 1; i < n; i++) deltas[i] = Math.min(deltas[i]!, deltas[i - 1]!);
  const probabilities = new Float64Array(n);
  if (n === 1) {
    probabilities[0] = 1 - deltas[0]!;
    return { lowerIndex: kLow, probabilities, infinityMass: deltas[0]! };
  }
  const expm1D = Math.expm1(interval);
  const expD = Math.exp(interval);
  probabilities[0] = 1 - deltas[0]! + (deltas[1]! - deltas[0]!) / expm1D;
  for (let i = 1; i < n - 1; i++) {
    const diffAfter = deltas[i + 1]! - deltas[i]!;
    const diffBefore = deltas[i]! - deltas[i - 1]!;
    probabilities[i] = (diffAfter - diffBefore * expD) / expm1D;
  }
  probabilities[n - 1] = (deltas[n - 1]! - deltas[n - 2]!) / Math.expm1(-interval);
  for (let i = 0; i < n; i++) probabilities[i] = Math.max(0, probabilities[i]!);
  return { lowerIndex: kLow, probabilities, infinityMass: deltas[n - 1]! };
}

function createGaussianPmf(z: number, q: number, direction: NeighbouringDirection, interval: number) {
  const loss = createGaussianLoss(z, q, direction);
  let lowerX = z * computeNormalQuantile(0.5 * Math.exp(LOG_MASS_TRUNCATION_BOUND));
  let upperX = -lowerX;
  if (direction === 'add') upperX += 1;
  else lowerX -= 1;
  const kHigh = Math.ceil(loss.privacyLoss(lowerX) / interval);
  const kLow = Math.floor(loss.privacyLoss(upperX) / interval);
  if (kHigh - kLow + 1 > MAX_GRID_POINTS) {
    fail('noiseMultiplier', 'too small for this valueDiscretizationInterval (grid too large)');
  }
  const deltas = new Float64Array(kHigh - kLow + 1);
  for (let k = kLow; k <= kHigh; k++) deltas[k - kLow] = loss.delta(k * interval);
  return createConnectDotsPmf(interval, kLow, deltas);
}

/**
 * PLD of the Gaussian mechanism (L2 sensitivity 1, noise std = noiseMultiplier) with Poisson sampling
 * rate samplingRate (1 = no sampling), pessimistic connect-the-dots discretisation (dp_accounting
 * `from_gaussian_mechanism` defaults: interval 1e-4, log mass truncation −50). samplingRate = 0 gives
 * the identity PLD, noiseMultiplier = 0 all mass at +∞. Throws INVALID_ARGUMENT naming the field.
 */
export function createGaussianPld(input: {
  noiseMultiplier: number;
  samplingRate: number;
  valueDiscretizationInterval?: number;
}): PrivacyLossDistribution {
  const { noiseMultiplier: z, samplingRate: q } = input;
  const interval = input.valueDiscretizationInterval ?? DEFAULT_INTERVAL;
  checkNoiseAndRate(z, q);
  checkInterval(interval);
  const base = { valueDiscretizationInterval: interval, pessimistic: true, add: null };
  if (q === 0)
    return { ...base, remove: { lowerIndex: 0, probabilities: Float64Array.of(1), infinityMass: 0 } };
  if (z === 0)
    return { ...base, remove: { lowerIndex: 0, probabilities: Float64Array.of(0), infinityMass: 1 } };
  const remove = createGaussianPmf(z, q, 'remove', interval);
  if (q === 1) return { ...base, remove };
  return { ...base, remove, add: createGaussianPmf(z, q, 'add', interval) };
}

/** Chernoff bounds [lower, upper] on the index sum of `times` draws outside which ≤ tail mass lies. */
function computeSelfCompositionWindow(probabilities: Float64Array, times: number): [number, number] {
  const n = probabilities.length;
  let lower = 0;
  let upper = (n - 1) * times;
  const logTwoOverTail = Math.log(2 / TAIL_MASS_TRUNCATION);
  for (let j = -20; j <= 20; j++) {
    if (j === 0) continue;
    const order = j / n;
    const shift = order > 0 ? (n - 1) * order : 0;
    // Σ p_i e^{i·order − shift}, the exponential re-anchored every 32 terms (error ≤ ~32 ulps).
    const ratio = Math.exp(order);
    let sum = 0;
    for (let start = 0; start < n; start += 32) {
      let weight = Math.exp(start * order - shift);
      const end = Math.min(n, start + 32);
      for (let i = start; i < end; i++, weight *= ratio) sum += probabilities[i]! * weight;
    }
    const bound = (times * (shift + Math.log(sum)) + logTwoOverTail) / order;
    if (!Number.isFinite(bound)) continue;
    if (order > 0) upper = Math.min(upper, Math.ceil(bound));
    else lower = Math.max(lower, Math.floor(bound));
  }
  return [lower, upper];
}

function selfComposePmf(pmf: PrivacyLossPmf, times: number): PrivacyLossPmf {
  const [lower, upper] = computeSelfCompositionWindow(pmf.probabilities, times);
  const outLength = upper - lower + 1;
  const size = computeNextPowerOfTwo(Math.max(outLength, pmf.probabilities.length));
  if (size > MAX_GRID_POINTS)
    fail('times', 'the composed PLD needs too large a grid; use a coarser interval');
  const ring = computeCircularSelfConvolution(pmf.probabilities, times, size);
  const probabilities = new Float64Array(outLength);
  for (let i = 0; i < outLength; i++) probabilities[i] = ring[(((i + lower) % size) + size) % size]!;
  const infinityMass = TAIL_MASS_TRUNCATION - Math.expm1(times * Math.log1p(-pmf.infinityMass));
  return {
    lowerIndex: pmf.lowerIndex * times + lower,
    probabilities,
    infinityMass: Math.min(1, infinityMass),
  };
}

/** n-fold self-composition (n ≥ 1) by FFT; tails beyond the Chernoff window (≤ 1e-15) go to +∞. */
export function composePld(pld: PrivacyLossDistribution, times: number): PrivacyLossDistribution {
  if (!(Number.isSafeInteger(times) && times >= 1)) fail('times', 'must be a positive integer');
  return {
    ...pld,
    remove: selfComposePmf(pld.remove, times),
    add: pld.add === null ? null : selfComposePmf(pld.add, times),
  };
}

/** Convolution of two PMFs, then prefix/suffix of mass ≤ 5e-16 each folded into the first point / +∞. */
function composePmfs(a: PrivacyLossPmf, b: PrivacyLossPmf): PrivacyLossPmf {
  const full = computeConvolution(a.probabilities, b.probabilities);
  const half = TAIL_MASS_TRUNCATION / 2;
  let left = 0;
  for (let mass = full[0]!; left < full.length && mass <= half; ) {
    left++;
    mass += full[left] ?? 0;
  }
  let fromRight = 0;
  for (let mass = full[full.length - 1]!; fromRight < full.length && mass <= half; ) {
    fromRight++;
    mass += full[full.length - 1 - fromRight] ?? 0;
  }
  const right = Math.max(full.length - fromRight, left + 1);
  let leftMass = 0;
  for (let i = 0; i < left; i++) leftMass += full[i]!;
  let rightMass = 0;
  for (let i = right; i < full.length; i++) rightMass += full[i]!;
  const probabilities = full.slice(left, right);
  probabilities[0] = probabilities[0]! + leftMass;
  const infinityMass = a.infinityMass + b.infinityMass - a.infinityMass * b.infinityMass + rightMass;
  return {
    lowerIndex: a.lowerIndex + b.lowerIndex + left,
    probabilities,
    infinityMass: Math.min(1, infinityMass),
  };
}

/** Composition of two PLDs with the same interval (INVALID_ARGUMENT otherwise), direction by direction. */
export function composePlds(a: PrivacyLossDistribution, b: PrivacyLossDistribution): PrivacyLossDistribution {
  if (a.valueDiscretizationInterval !== b.valueDiscretizationInterval || a.pessimistic !== b.pessimistic) {
    fail('b', 'PLDs must share valueDiscretizationInterval and estimate type');
  }
  const remove = composePmfs(a.remove, b.remove);
  const add = a.add === null && b.add === null ? null : composePmfs(a.add ?? a.remove, b.add ?? b.remove);
  return { ...a, remove, add };
}

function computePmfDelta(pmf: PrivacyLossPmf, interval: number, epsilon: number): number {
  const p = pmf.probabilities;
  let delta = pmf.infinityMass;
  for (let i = p.length - 1; i >= 0; i--) {
    const loss = (pmf.lowerIndex + i) * interval;
    if (!(loss > epsilon)) break;
    delta += -Math.expm1(epsilon - loss) * p[i]!;
  }
  return delta;
}

/** Hockey-stick divergence δ(ε), the max over the two directions. */
export function computePldDelta(pld: PrivacyLossDistribution, epsilon: number): number {
  if (Number.isNaN(epsilon)) fail('epsilon', 'must be a number');
  const interval = pld.valueDiscretizationInterval;
  const remove = computePmfDelta(pld.remove, interval, epsilon);
  return pld.add === null ? remove : Math.max(remove, computePmfDelta(pld.add, interval, epsilon));
}

/** Smallest ε ≥ 0 with δ(ε) ≤ delta for one PMF (dp_accounting `_get_epsilon_for_delta`), ∞ if none. */
function computePmfEpsilon(pmf: PrivacyLossPmf, interval: number, delta: number): number {
  if (pmf.infinityMass > delta) return Number.POSITIVE_INFINITY;
  const p = pmf.probabilities;
  let massUpper = pmf.infinityMass;
  let massLower = 0;
  for (let i = p.length - 1; i >= 0; i--) {
    const loss = (pmf.lowerIndex + i) * interval;
    if (massUpper > delta && massLower > 0 && Math.log((massUpper - delta) / massLower) >= loss) break;
    massUpper += p[i]!;
    massLower += Math.exp(-loss) * p[i]!;
    if (massUpper >= delta && massLower === 0) return Math.max(0, loss);
  }
  if (massUpper <= massLower + delta) return 0;
  return Math.log((massUpper - delta) / massLower);
}

/** Smallest ε ≥ 0 with δ(ε) ≤ delta (delta in [0, 1]); +∞ when the infinity mass exceeds delta. */
export function computePldEpsilonFromPld(pld: PrivacyLossDistribution, delta: number): number {
  if (!(delta >= 0 && delta <= 1)) fail('delta', 'must be in [0, 1]');
  const interval = pld.valueDiscretizationInterval;
  const remove = computePmfEpsilon(pld.remove, interval, delta);
  return pld.add === null ? remove : Math.max(remove, computePmfEpsilon(pld.add, interval, delta));
}

/**
 * ε after `steps` Poisson-subsampled Gaussian steps at `delta` (dp_accounting PLDAccountant). When the
 * grid would exceed 2^22 points the interval is doubled until it fits: the result stays an upper bound.
 */
export function computePldEpsilon(input: {
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
  delta: number;
  valueDiscretizationInterval?: number;
}): number {
  const { samplingRate, noiseMultiplier, steps, delta } = input;
  checkNoiseAndRate(noiseMultiplier, samplingRate);
  if (!(Number.isSafeInteger(steps) && steps >= 0)) fail('steps', 'must be a non-negative integer');
  if (!(delta > 0 && delta < 1)) fail('delta', 'must be in (0, 1)');
  if (steps === 0 || samplingRate === 0) return 0;
  if (noiseMultiplier === 0) return Number.POSITIVE_INFINITY;
  let interval = input.valueDiscretizationInterval ?? DEFAULT_INTERVAL;
  checkInterval(interval);
  for (;;) {
    try {
      const pld = createGaussianPld({ noiseMultiplier, samplingRate, valueDiscretizationInterval: interval });
      return computePldEpsilonFromPld(composePld(pld, steps), delta);
    } catch (error) {
      const tooLarge =
        error instanceof EntenteError && (error.field === 'times' || error.field === 'noiseMultiplier');
      if (!tooLarge || interval >= 1) throw error;
      interval = Math.min(1, interval * 2);
    }
  }
}

/**
 * Exact δ(ε) of one release of the Gaussian mechanism with noise std = noiseMultiplier × sensitivity
 * (Balle & Wang 2018: Φ(1/2z − εz) − e^ε Φ(−1/2z − εz)), optionally Poisson-subsampled at samplingRate;
 * `direction` picks one neighbouring direction, default the max of both.
 */
export function computeGaussianDelta(input: {
  noiseMultiplier: number;
  epsilon: number;
  samplingRate?: number;
  direction?: NeighbouringDirection;
}): number {
  const { noiseMultiplier: z, epsilon } = input;
  const q = input.samplingRate ?? 1;
  checkNoiseAndRate(z, q);
  if (Number.isNaN(epsilon)) fail('epsilon', 'must be a number');
  if (q === 0) return 0;
  if (z === 0) return 1;
  if (input.direction !== undefined) return createGaussianLoss(z, q, input.direction).delta(epsilon);
  const remove = createGaussianLoss(z, q, 'remove').delta(epsilon);
  return q === 1 ? remove : Math.max(remove, createGaussianLoss(z, q, 'add').delta(epsilon));
}

/**
 * Exact δ(ε) = Σ_x [P(x) − e^ε P(x − Δ)]₊ for the discrete Gaussian P(x) ∝ e^{−x²/2σ²} on ℤ (Canonne,
 * Kamath, Steinke 2020), or on [−T, T] when truncationBound T is given (dp_accounting
 * `DiscreteGaussianPrivacyLoss`). Integer sensitivity ≥ 1; σ ≤ 1e6 (the sum has O(σ) terms).
 */
export function computeDiscreteGaussianDelta(input: {
  sigma: number;
  sensitivity: number;
  epsilon: number;
  truncationBound?: number;
}): number {
  const { sigma, sensitivity, epsilon, truncationBound } = input;
  if (!(sigma > 0 && sigma <= 1e6)) fail('sigma', 'must be in (0, 1e6]');
  if (!(Number.isSafeInteger(sensitivity) && sensitivity >= 1))
    fail('sensitivity', 'must be a positive integer');
  if (Number.isNaN(epsilon)) fail('epsilon', 'must be a number');
  if (
    truncationBound !== undefined &&
    !(Number.isSafeInteger(truncationBound) && 2 * truncationBound >= sensitivity)
  ) {
    fail('truncationBound', 'must be an integer ≥ sensitivity / 2');
  }
  const bound = truncationBound ?? Math.ceil(40 * sigma) + sensitivity;
  const weight = (x: number) => (Math.abs(x) > bound ? 0 : Math.exp(-(x * x) / (2 * sigma * sigma)));
  let normaliser = 0;
  for (let x = -bound; x <= bound; x++) normaliser += weight(x);
  const factor = Math.exp(epsilon);
  let delta = 0;
  for (let x = -bound; x <= bound; x++) {
    const gap = weight(x) - factor * weight(x - sensitivity);
    if (gap > 0) delta += gap;
  }
  return Math.min(1, delta / normaliser);
}
