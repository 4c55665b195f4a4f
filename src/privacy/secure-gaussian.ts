/**
 * Gaussian noise that resists floating-point attacks. Mironov 2012 ("On Significance of the Least
 * Significant Bits for Differential Privacy", CCS 2012) showed that textbook floating-point noise
 * (Box–Muller, inverse-CDF Laplace) leaks: the set of doubles x + noise can reach depends on x, so
 * low-order bits of the output identify the input. The fix used here is the lattice ("snapping")
 * construction of Google's differential-privacy library (`SecureNoiseMath` / secure Gaussian, "Secure
 * Noise Generation" whitepaper) with an exact sampler in place of its binomial approximation: round
 * the input to a grid gZ, add g·Z with Z ~ N_Z(0, (σ/g)²) drawn by the exact discrete Gaussian
 * sampler (Canonne, Kamath, Steinke 2020), so every output is a multiple of g whatever x was.
 *
 * Granularity: g = 2^(⌊log2 σ⌋ - 24), the power of two with σ/g ∈ [2^24, 2^25). σ/g is then an exact
 * double (so (σ/g)² is an exact rational), |Z| stays below 2^31 (64σ/g) except with probability
 * < e^-2048, and the grid is as fine as a float32 ulp at σ (finer buys nothing for float32 models).
 *
 * Privacy cost of the discretisation: the discrete Gaussian on gZ^d with scale σ satisfies the same
 * bound as the continuous one for a given lattice sensitivity, ρ = Δ_g²/(2σ²) zCDP (CKS 2020; RDP α·ρ),
 * but rounding each coordinate to gZ moves it by ≤ g/2, so the sensitivity to account is
 * Δ_g ≤ Δ2 + g·√d, i.e. the noise multiplier becomes σ/(Δ2 + g√d): a relative loss of at most
 * 2^-24·√d·σ/Δ2 (6·10^-5 at d = 10^6 and σ = Δ2). `sampleSecureGaussian` alone does not round the
 * input: add its output to values already on gZ, or use `applySecureGaussianNoise`.
 */
import { EntenteError } from '../core/errors.ts';
import { checkSampleCount, sampleDiscreteGaussianVector } from './discrete-gaussian.ts';
import type { ExactRational, RandomBits } from './random-source.ts';

/** σ/g lies in [2^GRID_BITS, 2^(GRID_BITS+1)). */
export const SECURE_GAUSSIAN_GRID_BITS = 24;
const MIN_SIGMA = 2 ** -960;
const MAX_SIGMA = 2 ** 960;

function checkSigma(sigma: number): void {
  if (typeof sigma !== 'number' || !Number.isFinite(sigma) || sigma < MIN_SIGMA || sigma > MAX_SIGMA)
    throw new EntenteError('INVALID_ARGUMENT', 'sigma must be a finite number in [2^-960, 2^960]', {
      field: 'sigma',
    });
}

/** ⌊log2 x⌋ exactly, for a positive normal double. */
function computeFloorLog2(x: number): number {
  let e = Math.floor(Math.log2(x));
  while (2 ** e > x) e--;
  while (2 ** (e + 1) <= x) e++;
  return e;
}

/** The grid step g = 2^(⌊log2 σ⌋ - 24) of the secure Gaussian with standard deviation σ. */
export function computeSecureGaussianGranularity(sigma: number): number {
  checkSigma(sigma);
  return 2 ** (computeFloorLog2(sigma) - SECURE_GAUSSIAN_GRID_BITS);
}

/** (σ/g)² as an exact rational: σ/g ∈ [2^24, 2^25) is a double, so (σ/g)·2^28 is an integer < 2^53. */
function computeLatticeVariance(sigma: number, granularity: number): ExactRational {
  const scaled = BigInt((sigma / granularity) * 2 ** 28);
  return { num: scaled * scaled, den: 2n ** 56n };
}

/**
 * n samples of Gaussian noise with standard deviation σ, each an exact multiple of
 * g = computeSecureGaussianGranularity(σ) (discrete Gaussian on gZ). Throws INVALID_ARGUMENT for
 * σ outside [2^-960, 2^960] or a bad n.
 */
export function sampleSecureGaussian(sigma: number, bits: RandomBits, n: number): Float64Array {
  const granularity = computeSecureGaussianGranularity(sigma);
  checkSampleCount(n);
  const lattice = sampleDiscreteGaussianVector(computeLatticeVariance(sigma, granularity), n, bits);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Number(lattice[i]!) * granularity; // exact: |Z| < 2^53, g = 2^k
  return out;
}

/**
 * values rounded to gZ (nearest, ties up), plus secure Gaussian noise of standard deviation σ: a new
 * array, every entry a multiple of g. The only floating-point step after rounding is one correctly
 * rounded addition of two multiples of g, a function of their exact sum (post-processing). Throws
 * INVALID_ARGUMENT for a non-finite value (field 'values') or a bad σ. Account with sensitivity
 * Δ2 + g·√d (see the header).
 */
export function applySecureGaussianNoise(
  values: Float64Array,
  sigma: number,
  bits: RandomBits,
): Float64Array {
  const granularity = computeSecureGaussianGranularity(sigma);
  if (!(values instanceof Float64Array))
    throw new EntenteError('INVALID_ARGUMENT', 'values must be a Float64Array', { field: 'values' });
  const noise = sampleSecureGaussian(sigma, bits, values.length);
  const exactLimit = 2 ** 53 * granularity; // beyond it a double is already a multiple of g
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (!Number.isFinite(x))
      throw new EntenteError('INVALID_ARGUMENT', `values[${i}] must be finite`, { field: 'values' });
    const snapped = Math.abs(x) >= exactLimit ? x : Math.round(x / granularity) * granularity;
    out[i] = snapped + noise[i]!;
  }
  return out;
}
