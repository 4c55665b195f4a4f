/**
 * From Rényi-DP curves (and ρ-zCDP) to (ε, δ)-DP.
 *
 * `convertRdpToEpsilon` / `convertRdpToDelta` reproduce Google dp_accounting `compute_epsilon` /
 * `compute_delta` (rdp/rdp_privacy_accountant.py): the improved conversion of Canonne, Kamath, Steinke 2020
 * (arXiv:2004.00010, Prop. 12) and Asoodeh et al. 2020 (arXiv:2001.05990, Eq. 20),
 *   ε = r_α + log1p(-1/α) - log(δ·α)/(α-1),  minimised over the orders (α > 1.01 only),
 * with the KL shortcut δ ≥ √(1 - e^{-r_α}) ⇒ ε = 0 and, for δ, the KL bound δ ≤ √(1 - e^{-r_α}).
 * Opacus `get_privacy_spent` uses the same formula. The first minimising order wins ties (np.argmin).
 * One deliberate difference: an infinite order α = ∞ is treated by its limit (ε = r_∞, pure DP)
 * where dp_accounting would produce NaN.
 *
 * `convertZcdpToDelta` / `convertZcdpToEpsilon` / `convertApproxDpToZcdp` reproduce `cdp_delta`,
 * `cdp_eps`, `cdp_rho` of Canonne–Kamath–Steinke's `cdp2adp.py` (IBM/discrete-gaussian-differential-
 * privacy): the same conversion optimised over a continuous α by bisection (1000 halvings, stopped early
 * once the bracket no longer changes, which gives the same result), so they are tighter than converting
 * α·ρ on a discrete order grid (~1e-4 in ε at ρ = 0.025).
 */
import { EntenteError } from '../core/errors.ts';
import { checkOrders } from './rdp.ts';

function fail(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

function checkCurve(orders: readonly number[], rdp: readonly number[]): void {
  checkOrders(orders);
  if (!Array.isArray(rdp) || rdp.length !== orders.length) fail('rdp', 'must have one value per order');
  for (const r of rdp) if (typeof r !== 'number' || !(r >= 0)) fail('rdp', 'every value must be ≥ 0');
}

/**
 * Smallest ε such that the RDP curve implies (ε, δ)-DP, and the order that achieves it.
 * δ must be in [0, 1]; δ = 0 gives the pure-DP value at α = ∞ if present (else Infinity, or 0 when
 * every r is 0). Throws INVALID_ARGUMENT naming orders, rdp or delta.
 */
export function convertRdpToEpsilon(input: {
  orders: readonly number[];
  rdp: readonly number[];
  delta: number;
}): {
  epsilon: number;
  order: number;
} {
  const { orders, rdp, delta } = input;
  checkCurve(orders, rdp);
  if (typeof delta !== 'number' || !(delta >= 0 && delta <= 1)) fail('delta', 'must be in [0, 1]');
  let best = Number.POSITIVE_INFINITY;
  let bestIndex = 0;
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k]!;
    const r = rdp[k]!;
    let eps: number;
    if (delta === 0) eps = rdp.every((x) => x === 0) ? 0 : a === Number.POSITIVE_INFINITY ? r : Infinity;
    else if (delta * delta + Math.expm1(-r) > 0) eps = 0;
    else if (a === Number.POSITIVE_INFINITY) eps = r;
    else if (a > 1.01) eps = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    else eps = Number.POSITIVE_INFINITY;
    if (eps < best) {
      best = eps;
      bestIndex = k;
    }
  }
  return { epsilon: Math.max(0, best), order: orders[bestIndex]! };
}

/**
 * Smallest δ such that the RDP curve implies (ε, δ)-DP, and the order that achieves it (capped at 1).
 * ε must be ≥ 0. Throws INVALID_ARGUMENT naming orders, rdp or epsilon.
 */
export function convertRdpToDelta(input: {
  orders: readonly number[];
  rdp: readonly number[];
  epsilon: number;
}): {
  delta: number;
  order: number;
} {
  const { orders, rdp, epsilon } = input;
  checkCurve(orders, rdp);
  if (typeof epsilon !== 'number' || !(epsilon >= 0)) fail('epsilon', 'must be ≥ 0');
  let best = Number.POSITIVE_INFINITY;
  let bestIndex = 0;
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k]!;
    const r = rdp[k]!;
    let logDelta = r === 0 ? Number.NEGATIVE_INFINITY : 0.5 * Math.log1p(-Math.exp(-r));
    if (a === Number.POSITIVE_INFINITY) {
      if (r <= epsilon) logDelta = Number.NEGATIVE_INFINITY;
    } else if (a > 1.01) {
      logDelta = Math.min(logDelta, (a - 1) * (r - epsilon + Math.log1p(-1 / a)) - Math.log(a));
    }
    if (logDelta < best) {
      best = logDelta;
      bestIndex = k;
    }
  }
  return { delta: Math.min(Math.exp(best), 1), order: orders[bestIndex]! };
}

function checkRho(rho: number): void {
  if (typeof rho !== 'number' || !(rho >= 0) || !Number.isFinite(rho))
    fail('rho', 'must be a finite number ≥ 0');
}

/** Runs cdp2adp's 1000-step bisection; stops once (lo, hi) is a fixed point (identical result). */
function bisect(
  lo: number,
  hi: number,
  goLower: (mid: number) => boolean,
): { lo: number; hi: number; mid: number } {
  let mid = (lo + hi) / 2;
  for (let i = 0; i < 1000; i++) {
    mid = (lo + hi) / 2;
    const prevLo = lo;
    const prevHi = hi;
    if (goLower(mid)) hi = mid;
    else lo = mid;
    if (lo === prevLo && hi === prevHi) break;
  }
  return { lo, hi, mid };
}

/** δ such that ρ-zCDP implies (ε, δ)-DP (cdp2adp `cdp_delta`, CKS 2020 Prop. 12 over continuous α). */
export function convertZcdpToDelta(input: { rho: number; epsilon: number }): number {
  const { rho, epsilon } = input;
  checkRho(rho);
  if (typeof epsilon !== 'number' || !(epsilon >= 0) || !Number.isFinite(epsilon))
    fail('epsilon', 'must be a finite number ≥ 0');
  if (rho === 0) return 0;
  // Minimise over α ≥ 1.01; the derivative of the exponent is (2α-1)ρ - ε + log1p(-1/α).
  const { mid: alpha } = bisect(
    1.01,
    (epsilon + 1) / (2 * rho) + 2,
    (a) => (2 * a - 1) * rho - epsilon + Math.log1p(-1 / a) >= 0,
  );
  const delta =
    Math.exp((alpha - 1) * (alpha * rho - epsilon) + alpha * Math.log1p(-1 / alpha)) / (alpha - 1);
  return Math.min(delta, 1);
}

/** Smallest ε such that ρ-zCDP implies (ε, δ)-DP (cdp2adp `cdp_eps`). δ in (0, 1]. */
export function convertZcdpToEpsilon(input: { rho: number; delta: number }): number {
  const { rho, delta } = input;
  checkRho(rho);
  if (typeof delta !== 'number' || !(delta > 0 && delta <= 1)) fail('delta', 'must be in (0, 1]');
  if (delta >= 1 || rho === 0) return 0;
  const { hi } = bisect(
    0,
    rho + 2 * Math.sqrt(rho * Math.log(1 / delta)),
    (eps) => convertZcdpToDelta({ rho, epsilon: eps }) <= delta,
  );
  return hi;
}

/** Largest ρ such that ρ-zCDP implies (ε, δ)-DP (cdp2adp `cdp_rho`). ε ≥ 0, δ in (0, 1]. */
export function convertApproxDpToZcdp(input: { epsilon: number; delta: number }): number {
  const { epsilon, delta } = input;
  if (typeof epsilon !== 'number' || !(epsilon >= 0) || !Number.isFinite(epsilon))
    fail('epsilon', 'must be a finite number ≥ 0');
  if (typeof delta !== 'number' || !(delta > 0 && delta <= 1)) fail('delta', 'must be in (0, 1]');
  if (delta >= 1) return 0;
  const { lo } = bisect(0, epsilon + 1, (rho) => convertZcdpToDelta({ rho, epsilon }) > delta);
  return lo;
}
