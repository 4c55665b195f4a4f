/**
 * Differential privacy on a secure sum (statistics, evaluation sums): the distributed discrete Gaussian
 * mechanism of Kairouz, Liu, Steinke ("The Distributed Discrete Gaussian Mechanism for Federated
 * Learning with Secure Aggregation", ICML 2021), as for client-level DP on training deltas, here with
 * record-level sensitivity.
 *
 * Sensitivity. Adding or removing one record of a site changes segment s of its vector by at most
 * Δ_s = maxRowL2 in L2 norm (the declaration says it: 1 for a one-hot count, the per-row clip of a
 * real sum). A declaration with noise multiplier z puts noise of standard deviation
 * σ_s = z·√S·Δ_s on each of its S segments, so every segment is a Gaussian mechanism with
 * Δ_s/σ_s = 1/(z√S) and the S segments compose (zCDP adds, Bun and Steinke 2016) to ρ ≈ 1/(2z²).
 *
 * Lattice. Counts are integers and take integer noise. A real sum travels in fixed point (2^-32);
 * its noise lives on the grid 2^-e with σ_s·2^e ∈ [2^24, 2^25) (the "snapping" construction of
 * privacy/secure-gaussian.ts: fine enough to cost nothing, coarse enough for the exact sampler), so
 * the site rounds its own sum to that grid first: rounding moves each of the segment's L coordinates
 * by at most ½ grid unit per neighbour, so the sensitivity accounted on the grid is Δ_s·2^e + √L.
 *
 * Shares. Each site adds N_Z(0, v_s) with v_s = ⌈(σ_s·2^e)²/t⌉ (rounded up: never less noise) to
 * every coordinate of segment s; any set of ≥ t contributors — a sum is never unmasked with fewer —
 * carries at least t·v_s. The sum of independent discrete Gaussians is treated as one (Kairouz et al.
 * Thm. 1 bounds the gap; with v_s ≥ 1 it is below e^-9 per coordinate and is not added, as in
 * participant/client-dp.ts). Hence the charge, for one record of the site:
 *   ρ = Σ_s (Δ_s·2^e_s + [real] √L_s)² / (2·t·v_s).
 * As with any distributed noise, sites colluding with the coordinator can subtract their own shares:
 * the guarantee is for the noise of the other contributors, at least t − (colluders) shares.
 */
import { EntenteError } from '../core/errors.ts';
import { type RandomBits, sampleDiscreteGaussianVector } from '../privacy/index.ts';
import type { SecureSumDeclaration, SecureSumSegment } from './secure-sum.ts';

/** σ·2^e lies in [2^GRID_BITS, 2^(GRID_BITS+1)) for a real sum's noise grid. */
const GRID_BITS = 24;

export interface SegmentNoisePlan {
  readonly name: string;
  /** The noise grid is 2^-gridBits (0 for counts: integers). */
  readonly gridBits: number;
  /** Each site's noise variance per coordinate, in grid units. */
  readonly shareVariance: bigint;
  /** Standard deviation of the noise on the total of `threshold` shares, in the segment's own units. */
  readonly std: number;
  readonly rho: number;
}

export interface SecureSumNoisePlan {
  readonly threshold: number;
  readonly segments: readonly SegmentNoisePlan[];
  /** zCDP ρ of the whole sum for one record of a site (what each site charges its ledger). */
  readonly rho: number;
}

/**
 * The noise each site adds to each segment of a noised declaration, for a round of threshold t, and
 * what that costs one record of a site (ρ-zCDP). Pure: the coordinator and every site compute the same
 * plan from the declaration and the round's threshold. Throws INVALID_CONFIG for a declaration without
 * noise or a bad threshold.
 */
export function planSecureSumNoise(decl: SecureSumDeclaration, threshold: number): SecureSumNoisePlan {
  const z = decl.noise?.noiseMultiplier;
  if (z === undefined)
    throw new EntenteError('INVALID_CONFIG', 'secureSum.noise: the declaration adds no noise', {
      field: 'secureSum.noise',
    });
  if (!(Number.isSafeInteger(threshold) && threshold >= 1))
    throw new EntenteError('INVALID_CONFIG', 'threshold: must be a positive integer', { field: 'threshold' });
  const spread = z * Math.sqrt(decl.segments.length);
  let rho = 0;
  const segments = decl.segments.map((s): SegmentNoisePlan => {
    const sigma = spread * s.maxRowL2;
    const gridBits =
      s.kind === 'count' ? 0 : Math.min(s.fractionBits, GRID_BITS - Math.floor(Math.log2(sigma)));
    const sigmaUnits = sigma * 2 ** gridBits;
    // ⌈σ²/t⌉, at least 1. ρ below is computed from the share actually drawn, so float64 rounding of
    // σ² can only move the noise by an ulp, never the accounting.
    const share = Math.max(1, Math.ceil((sigmaUnits * sigmaUnits) / threshold));
    if (share > 1e30)
      throw new EntenteError(
        'INVALID_CONFIG',
        `secureSum.noise.noiseMultiplier: the noise of ${s.name} is too large to sample`,
        { field: 'secureSum.noise.noiseMultiplier' },
      );
    const sensitivity = s.maxRowL2 * 2 ** gridBits + (s.kind === 'count' ? 0 : Math.sqrt(s.length));
    const segmentRho = (sensitivity * sensitivity) / (2 * threshold * share);
    rho += segmentRho;
    return {
      name: s.name,
      gridBits,
      shareVariance: BigInt(share),
      std: Math.sqrt(threshold * share) * 2 ** -gridBits,
      rho: segmentRho,
    };
  });
  return { threshold, segments, rho };
}

/**
 * One site's share of noise for segment `s`, added to its fixed-point values `scaled` (the exact
 * round(v·2^fractionBits) integers, counts as they are): each value is rounded to the noise grid, the
 * share drawn from `bits` (node:crypto for real noise) added, and the result put back on the
 * fixed-point scale.
 */
export function addSegmentNoise(
  s: SecureSumSegment,
  plan: SegmentNoisePlan,
  values: Float64Array,
  bits: RandomBits,
): bigint[] {
  const noise = sampleDiscreteGaussianVector({ num: plan.shareVariance, den: 1n }, values.length, bits);
  const out: bigint[] = new Array(values.length);
  const up = BigInt(s.fractionBits - plan.gridBits);
  for (let j = 0; j < values.length; j++) {
    // v·2^gridBits is exact in float64 (a power-of-two scale), then rounded to the grid.
    const onGrid = BigInt(Math.round(values[j]! * 2 ** plan.gridBits)) + BigInt(noise[j]!);
    out[j] = onGrid << up;
  }
  return out;
}
