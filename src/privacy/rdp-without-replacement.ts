/**
 * RDP of the Gaussian mechanism on a uniformly random fixed-size subset (sampling without replacement,
 * m = q·n records or participants per step) under the "replace one" neighbouring relation (n public):
 * Wang, Balle, Kasiviswanathan 2019, "Subsampled Rényi Differential Privacy and Analytical Moments
 * Accountant" (AISTATS, arXiv:1808.00087), Theorem 27 with the forward differences of e^{(j-1)·ε(j)}
 * kept in (log-magnitude, sign) form, and Corollary 10 (linear interpolation of the CGF) at fractional
 * orders. Reproduces Google dp_accounting `rdp/rdp_privacy_accountant.py`
 * (`_compute_rdp_sample_wor_gaussian_scalar`, `_compute_rdp_sample_wor_gaussian_int`,
 * `_get_forward_diffs`, `_stable_inplace_diff_in_log`), including its switch to the simpler bound above
 * order 256. Used for client-level DP-FedAvg with a fixed number of participants per round (Andrew et
 * al. 2021, Table 1).
 *
 * Caveat carried over from dp_accounting (google/differential-privacy issue #378, open): the noise
 * multiplier is taken as σ/C as for add/remove, although replacing one record moves a clipped sum by up
 * to 2C; callers that want the conservative reading pass noiseMultiplier/2.
 */
import { EntenteError } from '../core/errors.ts';
import { computeLogAdd } from './log-math.ts';
import { checkOrders } from './rdp.ts';

const MAX_EXACT_ORDER = 256;

function fail(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

/** log(|e^logX - e^logY|) and whether e^logX ≥ e^logY (dp_accounting `_log_sub_sign`). */
function computeLogSubSign(logX: number, logY: number): [boolean, number] {
  if (logX > logY) return [true, logX + Math.log1p(-Math.exp(logY - logX))];
  if (logX < logY) return [false, logY + Math.log1p(-Math.exp(logX - logY))];
  return [true, Number.NEGATIVE_INFINITY];
}

/** log|Δ^k f(0)| for k = 1..n+2 (index k-1) of f(j) = e^{cgf(j-1)}, f(0) = 1 (`_get_forward_diffs`). */
function computeLogForwardDiffs(cgf: (x: number) => number, n: number): Float64Array {
  const values = new Float64Array(n + 3);
  const signs: boolean[] = new Array<boolean>(n + 3).fill(true);
  for (let i = 1; i < n + 3; i++) values[i] = cgf(i - 1);
  const deltas = new Float64Array(n + 2);
  for (let i = 0; i < n + 2; i++) {
    const count = n + 2 - i;
    for (let j = 0; j < count; j++) {
      if (signs[j] === signs[j + 1]) {
        const [sign, mag] = computeLogSubSign(values[j + 1]!, values[j]!);
        values[j] = mag;
        signs[j] = signs[j + 1] ? sign : !sign;
      } else {
        values[j] = computeLogAdd(values[j]!, values[j + 1]!);
        signs[j] = signs[j + 1]!;
      }
    }
    deltas[i] = values[0]!;
  }
  return deltas;
}

/** log C(n, k) for integers 0 ≤ k ≤ n, as a running sum (no Γ needed). */
function computeLogBinomials(n: number): Float64Array {
  const out = new Float64Array(n + 1);
  for (let k = 1; k <= n; k++) out[k] = out[k - 1]! + Math.log(n - k + 1) - Math.log(k);
  return out;
}

/** log A_α of WBK19 Theorem 27 for an integer order α ≥ 1 (α - 1 times the RDP). */
function computeLogAWithoutReplacementInt(q: number, sigma: number, alpha: number): number {
  if (alpha === 1) return 0;
  const twoSigma2 = 2 * sigma * sigma;
  const cgf = (x: number) => (x * (x + 1)) / twoSigma2;
  const eps2 = 2 / twoSigma2;
  const logF2m1 = eps2 + Math.log1p(-Math.exp(-eps2));
  const logQ = Math.log(q);
  const logC = computeLogBinomials(alpha);
  let logA = 0;
  const first = 2 * logQ + logC[2]! + Math.min(Math.log(4) + logF2m1, eps2 + Math.log(2));
  logA = computeLogAdd(logA, first);
  const deltas = alpha <= MAX_EXACT_ORDER ? computeLogForwardDiffs(cgf, alpha) : undefined;
  for (let i = 3; i <= alpha; i++) {
    let s = Math.log(2) + cgf(i - 1);
    if (deltas) {
      const lo = deltas[2 * Math.floor(i / 2) - 1]!;
      const hi = deltas[2 * Math.ceil(i / 2) - 1]!;
      s = Math.min(Math.log(4) + 0.5 * (lo + hi), s);
    }
    logA = computeLogAdd(logA, s + i * logQ + logC[i]!);
  }
  return logA;
}

/**
 * RDP at each order of one Gaussian step on a uniformly sampled fixed-size subset, sampling proportion
 * q = m/n (REPLACE_ONE). q = 0 → 0; q = 1 → α/(2z²); z = 0 or α = ∞ → Infinity. Fractional orders
 * interpolate the integer bounds (upper bound). Throws INVALID_ARGUMENT naming the field.
 */
export function computeSampledWithoutReplacementGaussianRdp(input: {
  samplingRate: number;
  noiseMultiplier: number;
  orders: readonly number[];
}): number[] {
  const { samplingRate: q, noiseMultiplier: z, orders } = input;
  if (typeof q !== 'number' || !(q >= 0 && q <= 1)) fail('samplingRate', 'must be in [0, 1]');
  if (typeof z !== 'number' || !(z >= 0) || !Number.isFinite(z))
    fail('noiseMultiplier', 'must be a finite number ≥ 0');
  checkOrders(orders);
  return orders.map((alpha) => {
    if (q === 0) return 0;
    if (alpha === Number.POSITIVE_INFINITY || z === 0) return Number.POSITIVE_INFINITY;
    if (q === 1) return alpha / (2 * z * z);
    if (Number.isInteger(alpha)) return computeLogAWithoutReplacementInt(q, z, alpha) / (alpha - 1);
    const floor = Math.floor(alpha);
    const t = alpha - floor;
    const x = computeLogAWithoutReplacementInt(q, z, floor);
    const y = computeLogAWithoutReplacementInt(q, z, floor + 1);
    return ((1 - t) * x + t * y) / (alpha - 1);
  });
}
