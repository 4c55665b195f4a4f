/**
 * The standard normal distribution in float64 with full relative accuracy in the tails: erfc, the
 * scaled erfcx(x) = e^{x²}·erfc(x), Φ, log Φ and Φ⁻¹. These feed the PLD accountant (pld.ts), whose
 * connect-the-dots discretisation takes second differences of hockey-stick values, so Φ must be
 * accurate to a few ulps everywhere (scipy `ndtr`, `log_ndtr`, `ndtri` play this role in Google
 * dp_accounting `pld/privacy_loss_mechanism.py`).
 *
 * erfc and erfcx are W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev
 * approximations for the error function", Math. Comp. 23 (1969) 631–637; the CALERF routine of
 * SPECFUN), with its three intervals |x| ≤ 0.46875, ≤ 4, > 4 and its split of e^{-x²} into
 * e^{-⌊16x⌋²/256}·e^{-(x-x₁)(x+x₁)} that keeps the relative error near 1e-16 down to the underflow.
 * log Φ works from erfcx, so it stays finite and accurate far below the point where Φ underflows.
 * Φ⁻¹ is the Abramowitz & Stegun 26.2.23 start refined by Newton steps on log Φ.
 */
import { EntenteError } from '../core/errors.ts';

// Cody (1969), erf on |x| ≤ 0.46875.
const A = [3.1611237438705655, 113.86415415105016, 377.485237685302, 3209.3775891384694, 0.18577770618460315];
const B = [23.601290952344122, 244.02463793444417, 1282.6165260773723, 2844.236833439171];
// Cody (1969), erfcx on 0.46875 < x ≤ 4.
const C = [
  0.5641884969886701, 8.883149794388377, 66.11919063714163, 298.6351381974001, 881.952221241769,
  1712.0476126340707, 2051.0783778260716, 1230.3393547979972, 2.1531153547440383e-8,
];
const D = [
  15.744926110709835, 117.6939508913125, 537.1811018620099, 1621.3895745666903, 3290.7992357334597,
  4362.619090143247, 3439.3676741437216, 1230.3393548037495,
];
// Cody (1969), erfcx on x > 4 (in powers of 1/x²).
const P = [
  0.30532663496123236, 0.36034489994980445, 0.12578172611122926, 0.016083785148742275, 0.0006587491615298378,
  0.016315387137302097,
];
const Q = [
  2.568520192289822, 1.8729528499234604, 0.5279051029514285, 0.06051834131244132, 0.0023352049762686918,
];

const INV_SQRT_PI = 0.5641895835477563;
const SQRT1_2 = Math.SQRT1_2;
const LOG_SQRT_2PI = 0.9189385332046728;
const THRESHOLD = 0.46875;

/** erf(x) for |x| ≤ 0.46875 (Cody's first interval). */
function computeErfSmall(x: number): number {
  const z = x * x;
  let num = A[4]! * z;
  let den = z;
  for (let i = 0; i < 3; i++) {
    num = (num + A[i]!) * z;
    den = (den + B[i]!) * z;
  }
  return (x * (num + A[3]!)) / (den + B[3]!);
}

/** erfcx(y) = e^{y²}·erfc(y) for y > 0.46875 (Cody's second and third intervals). */
function computeErfcxLarge(y: number): number {
  if (y <= 4) {
    let num = C[8]! * y;
    let den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + C[i]!) * y;
      den = (den + D[i]!) * y;
    }
    return (num + C[7]!) / (den + D[7]!);
  }
  if (y >= 6.71e7) return INV_SQRT_PI / y;
  const z = 1 / (y * y);
  let num = P[5]! * z;
  let den = z;
  for (let i = 0; i < 4; i++) {
    num = (num + P[i]!) * z;
    den = (den + Q[i]!) * z;
  }
  return (INV_SQRT_PI - (z * (num + P[4]!)) / (den + Q[4]!)) / y;
}

/** e^{-y²} as e^{-y₁²}·e^{-(y-y₁)(y+y₁)} with y₁ = ⌊16y⌋/16, so y² is never rounded as a whole. */
function computeExpMinusSquare(y: number): number {
  const y1 = Math.trunc(y * 16) / 16;
  return Math.exp(-y1 * y1) * Math.exp(-(y - y1) * (y + y1));
}

/** Complementary error function erfc(x) = (2/√π)∫ₓ^∞ e^{-t²}dt, relative error ~1e-16 (Cody 1969). */
export function computeErfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const y = Math.abs(x);
  if (y <= THRESHOLD) return 1 - computeErfSmall(x);
  const tail = y >= 26.6 ? 0 : computeExpMinusSquare(y) * computeErfcxLarge(y);
  return x < 0 ? 2 - tail : tail;
}

/** Scaled complementary error function e^{x²}·erfc(x) for x ≥ 0 (throws INVALID_ARGUMENT for x < 0). */
export function computeErfcx(x: number): number {
  if (!(x >= 0)) throw new EntenteError('INVALID_ARGUMENT', 'x: erfcx needs x ≥ 0', { field: 'x' });
  if (x <= THRESHOLD) return Math.exp(x * x) * (1 - computeErfSmall(x));
  return computeErfcxLarge(x);
}

/** Φ(x) for x < -0.46875·√2 as e^{-x₁²/2}·e^{-(x-x₁)(x+x₁)/2}·erfcx(-x/√2)/2 with x₁ = ⌊16x⌋/16, so
 *  x²/2 is formed from x itself and the rounding of x/√2 only enters the slowly varying erfcx. */
function computeLowerTailParts(x: number): [scaled: number, exponent1: number, exponent2: number] {
  const x1 = Math.trunc(x * 16) / 16;
  return [0.5 * computeErfcxLarge(-x * SQRT1_2), -0.5 * x1 * x1, -0.5 * (x - x1) * (x + x1)];
}

function computeLowerTail(x: number): number {
  if (x <= -37.7) return 0;
  const [scaled, e1, e2] = computeLowerTailParts(x);
  return scaled * Math.exp(e1) * Math.exp(e2);
}

/** Φ(x), the standard normal CDF, with relative accuracy ~1e-16 in the lower tail. */
export function computeNormalCdf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const y = -x * SQRT1_2;
  if (Math.abs(y) <= THRESHOLD) return 0.5 * (1 - computeErfSmall(y));
  return y > 0 ? computeLowerTail(x) : 1 - computeLowerTail(-x);
}

/** log Φ(x); finite for every finite x (≈ −x²/2 − log(−x√(2π)) far left), → 0 as x → ∞. */
export function computeNormalLogCdf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x === Number.NEGATIVE_INFINITY) return Number.NEGATIVE_INFINITY;
  const y = -x * SQRT1_2;
  if (Math.abs(y) <= THRESHOLD) return Math.log(0.5 * (1 - computeErfSmall(y)));
  if (y < 0) return Math.log1p(-computeLowerTail(-x));
  const [scaled, e1, e2] = computeLowerTailParts(x);
  return Math.log(scaled) + e1 + e2;
}

/** log φ(x), the log density of the standard normal. */
function computeNormalLogPdf(x: number): number {
  return -0.5 * x * x - LOG_SQRT_2PI;
}

/**
 * Φ⁻¹(p) for 0 < p < 1 (0 ↦ -∞, 1 ↦ +∞); Newton on log Φ from the A&S 26.2.23 start, so the lower
 * tail is exact to a few ulps even for p near the smallest double. Throws INVALID_ARGUMENT outside [0, 1].
 */
export function computeNormalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) {
    throw new EntenteError('INVALID_ARGUMENT', 'p: a probability in [0, 1] is required', { field: 'p' });
  }
  if (p === 0) return Number.NEGATIVE_INFINITY;
  if (p === 1) return Number.POSITIVE_INFINITY;
  if (p > 0.5) return -computeNormalQuantile(1 - p);
  const logP = Math.log(p);
  const t = Math.sqrt(-2 * logP);
  let x = -(
    t -
    (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + t * (1.432788 + t * (0.189269 + 0.001308 * t)))
  );
  for (let i = 0; i < 60; i++) {
    const logCdf = computeNormalLogCdf(x);
    const step = (logCdf - logP) / Math.exp(computeNormalLogPdf(x) - logCdf);
    x -= step;
    if (Math.abs(step) <= 1e-15 * Math.max(1, Math.abs(x))) break;
  }
  return x;
}
