/**
 * Rényi-DP (Mironov 2017, arXiv:1702.07476) of the mechanisms Entente composes, one value per order α:
 * the Poisson-subsampled Gaussian (Mironov, Talwar, Zhang 2019, arXiv:1908.10530 — "MTZ19"), the plain
 * Gaussian (q = 1: α/(2z²)), any ρ-zCDP mechanism such as the discrete Gaussian (Bun & Steinke 2016;
 * Canonne, Kamath, Steinke 2020: α·ρ), and single-epoch tree aggregation for DP-FTRL (Kairouz et al.
 * 2021). Reproduces Google dp_accounting `rdp/rdp_privacy_accountant.py`
 * (`_compute_rdp_poisson_subsampled_gaussian`, `_compute_log_a_int`, `_compute_log_a_frac`,
 * `_compute_rdp_single_epoch_tree_aggregation`) and, on request, Opacus `opacus/accountants/analysis/rdp.py`.
 *
 * Fractional orders — where the libraries differ. A_α = E_{z~μ0}[(μ(z)/μ0(z))^α] is split at
 * z0 = σ²·log(1/q - 1) + 1/2 into two series of binomial terms C(α,i)·…·erfc(…) (MTZ19 §3.3). For
 * fractional α, C(α,i) changes sign for i > ⌈α⌉. dp_accounting computes log C(α,i) with scipy `gammaln`,
 * which returns log|Γ|, so it adds |C(α,i)|·… : an upper bound on A_α, ~3% above the exact RDP at α = 1.5
 * for q = 0.01, z = 2.5. Opacus (and the older TF Privacy) adds the terms with their signs: the exact
 * value. By default (`fractionalSeries: 'absolute'`) we match dp_accounting, because it is the reference
 * for most shared vectors (dp_accounting, TF Privacy and FL4Health numbers) and because the bound is
 * still a valid, conservative RDP bound; `'signed'` reproduces Opacus (v19). Integer orders use the
 * finite binomial expansion and agree across libraries to ~1e-14.
 */
import { EntenteError } from '../core/errors.ts';
import { computeLog1mExp, computeLogAdd, computeLogErfc, computeLogSub } from './log-math.ts';

/** dp_accounting `RdpAccountant` DEFAULT_RDP_ORDERS: [1 + x/10 for x in 1..99] + 11..63 + [128, 256, 512, 1024]
 *  (rdp_privacy_accountant.py; the list TF Privacy's compute_dp_sgd_privacy_lib gets from RdpAccountant()). */
export const DEFAULT_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 53 }, (_, i) => 11 + i),
  128,
  256,
  512,
  1024,
]);

/** Opacus `RDPAccountant.DEFAULT_ALPHAS`: [1 + x/10 for x in 1..99] + 12..63. */
export const OPACUS_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
]);

/** The older TF Privacy / FL4Health list: [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5] + 5..63 +
 *  [128, 256, 512] (compute_dp_sgd_privacy, FL4Health moments accountant). */
export const TF_PRIVACY_RDP_ORDERS: readonly number[] = Object.freeze([
  1.25,
  1.5,
  1.75,
  2,
  2.25,
  2.5,
  3,
  3.5,
  4,
  4.5,
  ...Array.from({ length: 59 }, (_, i) => 5 + i),
  128,
  256,
  512,
]);

/** How fractional-order series are summed: 'absolute' = dp_accounting (|C(α,i)|, upper bound),
 *  'signed' = Opacus (exact). */
export type FractionalSeries = 'absolute' | 'signed';

function fail(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

/** Checks that orders is a non-empty list of numbers > 1 (Infinity allowed). */
export function checkOrders(orders: readonly number[], field = 'orders'): void {
  if (!Array.isArray(orders) || orders.length === 0) fail(field, 'must be a non-empty list of orders > 1');
  for (const a of orders) if (typeof a !== 'number' || !(a > 1)) fail(field, 'every order must be > 1');
}

function checkRate(samplingRate: number): void {
  if (typeof samplingRate !== 'number' || !(samplingRate >= 0 && samplingRate <= 1))
    fail('samplingRate', 'must be in [0, 1]');
}

function checkNoise(noiseMultiplier: number): void {
  if (typeof noiseMultiplier !== 'number' || !(noiseMultiplier >= 0) || !Number.isFinite(noiseMultiplier))
    fail('noiseMultiplier', 'must be a finite number ≥ 0');
}

function checkSteps(steps: number): void {
  if (!Number.isSafeInteger(steps) || steps < 0) fail('steps', 'must be an integer ≥ 0');
}

/** log A_α for integer α: Σ_i C(α,i) q^i (1-q)^{α-i} e^{(i²-i)/(2σ²)} (MTZ19 §3.3, finite sum). */
function computeLogAInt(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  let logA = Number.NEGATIVE_INFINITY;
  let logCoef = 0; // log C(α, 0)
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logCoef += Math.log(alpha - i + 1) - Math.log(i);
    logA = computeLogAdd(logA, logCoef + i * logQ + (alpha - i) * log1mQ + (i * i - i) / twoSigma2);
  }
  return logA;
}

const MAX_STEPS_LOG_A_FRAC = 1000;

/** log A_α for fractional α: the two erfc-weighted series of MTZ19 §3.3, stopped (as dp_accounting does)
 *  once both terms decrease and are below e^-30 times the running total; Infinity (the order is then
 *  useless, never optimistic) if that takes more than 1000 terms. */
function computeLogAFrac(q: number, sigma: number, alpha: number, series: FractionalSeries): number {
  let logA0 = Number.NEGATIVE_INFINITY;
  let logA1 = Number.NEGATIVE_INFINITY;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const logQ = Math.log(q);
  const log1mQ = computeLog1mExp(logQ);
  const twoSigma2 = 2 * sigma * sigma;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  let logCoef = 0; // log|C(α, i)|
  let positive = true; // sign of C(α, i)
  let lastS0 = Number.NEGATIVE_INFINITY;
  let lastS1 = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < MAX_STEPS_LOG_A_FRAC; i++) {
    if (i > 0) {
      const factor = (alpha - i + 1) / i;
      logCoef += Math.log(Math.abs(factor));
      if (factor < 0) positive = !positive;
    }
    const j = alpha - i;
    const logT0 = logCoef + i * logQ + j * log1mQ;
    const logT1 = logCoef + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + computeLogErfc((i - z0) / sqrt2Sigma);
    const logE1 = Math.log(0.5) + computeLogErfc((z0 - j) / sqrt2Sigma);
    const logS0 = logT0 + (i * i - i) / twoSigma2 + logE0;
    const logS1 = logT1 + (j * j - j) / twoSigma2 + logE1;
    if (series === 'absolute' || positive) {
      logA0 = computeLogAdd(logA0, logS0);
      logA1 = computeLogAdd(logA1, logS1);
    } else {
      logA0 = computeLogSub(logA0, logS0);
      logA1 = computeLogSub(logA1, logS1);
    }
    const total = computeLogAdd(logA0, logA1);
    if (logS0 < lastS0 && logS1 < lastS1 && Math.max(logS0, logS1) < total - 30) return total;
    lastS0 = logS0;
    lastS1 = logS1;
  }
  return Number.POSITIVE_INFINITY;
}

/**
 * RDP of the Poisson-subsampled Gaussian at each order, for one step (MTZ19), computed in log space.
 * q = 0 → 0; otherwise z = 0 or α = ∞ → Infinity; q = 1 → α/(2z²) (no sampling). Orders must be > 1.
 * Throws INVALID_ARGUMENT naming samplingRate, noiseMultiplier or orders.
 */
export function computeSubsampledGaussianRdp(input: {
  samplingRate: number;
  noiseMultiplier: number;
  orders: readonly number[];
  fractionalSeries?: FractionalSeries;
}): number[] {
  const { samplingRate: q, noiseMultiplier: z, orders } = input;
  checkRate(q);
  checkNoise(z);
  checkOrders(orders);
  const series = input.fractionalSeries ?? 'absolute';
  if (series !== 'absolute' && series !== 'signed')
    fail('fractionalSeries', "must be 'absolute' or 'signed'");
  return orders.map((alpha) => {
    if (q === 0) return 0;
    if (alpha === Number.POSITIVE_INFINITY || z === 0) return Number.POSITIVE_INFINITY;
    if (q === 1) return alpha / (2 * z * z);
    const logA = Number.isInteger(alpha) ? computeLogAInt(q, z, alpha) : computeLogAFrac(q, z, alpha, series);
    // A_α ≥ 1 in exact arithmetic; clamp rounding noise so a curve is never negative.
    return Math.max(0, logA / (alpha - 1));
  });
}

/** Multiplies per-step RDP by a number of steps (RDP composes additively); 0 steps → 0. */
export function composeRdp(rdp: readonly number[], steps: number): number[] {
  checkSteps(steps);
  return rdp.map((r) => (steps === 0 ? 0 : r * steps));
}

/** RDP of `steps` Poisson-subsampled Gaussian steps: steps compose by multiplication. */
export function computeRdp(input: {
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
  orders: readonly number[];
  fractionalSeries?: FractionalSeries;
}): number[] {
  checkSteps(input.steps);
  return composeRdp(computeSubsampledGaussianRdp(input), input.steps);
}

/** Discrete Gaussian / any ρ-zCDP mechanism: RDP α·ρ at every order (α = ∞ → ∞ unless ρ = 0). */
export function computeZcdpRdp(rho: number, orders: readonly number[]): number[] {
  if (typeof rho !== 'number' || !(rho >= 0) || !Number.isFinite(rho))
    fail('rho', 'must be a finite number ≥ 0');
  checkOrders(orders);
  return orders.map((alpha) => (rho === 0 ? 0 : alpha * rho));
}

/**
 * Single-epoch tree aggregation (DP-FTRL, Kairouz et al. 2021, no sampling; dp_accounting
 * `_compute_rdp_single_epoch_tree_aggregation`, REPLACE_SPECIAL): one record touches at most
 * ⌈log2(T+1)⌉ tree nodes, so the RDP is α·⌈log2(max T + 1)⌉/(2z²). z = 0 → Infinity.
 */
export function computeTreeAggregationRdp(input: {
  noiseMultiplier: number;
  stepCounts: number | readonly number[];
  orders: readonly number[];
}): number[] {
  checkNoise(input.noiseMultiplier);
  checkOrders(input.orders);
  const counts = typeof input.stepCounts === 'number' ? [input.stepCounts] : input.stepCounts;
  if (!Array.isArray(counts) || counts.length === 0) fail('stepCounts', 'must be a non-empty list');
  for (const t of counts) if (!Number.isSafeInteger(t) || t <= 0) fail('stepCounts', 'must be integers > 0');
  const z = input.noiseMultiplier;
  if (z === 0) return input.orders.map(() => Number.POSITIVE_INFINITY);
  const maxDepth = Math.ceil(Math.log2(Math.max(...counts) + 1));
  return input.orders.map((alpha) => (alpha * maxDepth) / (2 * z * z));
}
