/**
 * Client-level DP-FedAvg under secure aggregation with distributed discrete Gaussian noise (Kairouz,
 * Liu, Steinke, "The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure
 * Aggregation", ICML 2021; McMahan et al. 2018 for client-level clipping): how much integer noise each
 * institution adds and what one round costs it, in one place for the site that charges its ledger and
 * for the run's projection. Each institution adds N_Z(0, ⌈σ²/t⌉) to every coordinate, σ = z·C·s (clip
 * C, scale s, threshold t): rounded up, never less noise, and any t survivors put ⌈σ²/t⌉·t ≥ σ² on the
 * sum. The sum of independent discrete Gaussians is treated as one N_Z(0, ⌈σ²/t⌉·t) (Kairouz et al.
 * Thm. 1 bounds the gap; with σ²/t ≫ 1 it is negligible and not added), and one institution changes the
 * sum by at most Δ₂ = C·s + √d (rounding moves each of the d coordinates by less than 1), so a round is
 * ρ = Δ₂² / (2·⌈σ²/t⌉·t)-zCDP for the institution as a whole (Canonne, Kamath, Steinke 2020).
 * Dropouts only add noise relative to this (t shares is the worst case).
 */

export interface ClientNoisePlan {
  /** Per-participant variance ⌈σ²/t⌉ in quantised units (rounded up: never less noise). */
  readonly shareVariance: { num: bigint; den: bigint };
  /** zCDP ρ of one round for one institution (updates, plus the clip indicator when adaptive). */
  readonly rho: number;
  /** Adaptive clipping: the clip indicator's share of noise, (2σ_b)²/t in ±1 units (Andrew et al. 2021). */
  readonly indicator?: { readonly shareVariance: { num: bigint; den: bigint } };
}

/** The indicator's variance is rounded up to this many parts of one before it is split in t shares. */
const INDICATOR_PRECISION = 1_000_000;

export function computeClientNoisePlan(input: {
  /** The round's clip C (L2 norm of a whole update). */
  readonly clipNorm: number;
  /** The noise multiplier z of the updates. */
  readonly noiseMultiplier: number;
  /** Adaptive clipping: the clip indicator's noise standard deviation σ_b. */
  readonly indicatorNoiseStd?: number | undefined;
  /** The quantization scale s. */
  readonly scale: number;
  /** The round's threshold t. */
  readonly threshold: number;
  /** The number d of quantized coordinates of an update. */
  readonly dimensions: number;
}): ClientNoisePlan {
  const t = input.threshold;
  const sigma = input.noiseMultiplier * input.clipNorm * input.scale;
  const share = Math.ceil((sigma * sigma) / t);
  const sensitivity = input.clipNorm * input.scale + Math.sqrt(input.dimensions);
  let rho = (sensitivity * sensitivity) / (2 * share * t);
  const shareVariance = { num: BigInt(share), den: 1n };
  if (!input.indicatorNoiseStd) return { shareVariance, rho };
  // The indicator 2b−1 moves by at most 1 per institution; the sum carries noise variance (2σ_b)².
  const std = input.indicatorNoiseStd;
  const indicatorShare = {
    num: BigInt(Math.ceil(4 * std * std * INDICATOR_PRECISION)),
    den: BigInt(t * INDICATOR_PRECISION),
  };
  const indicatorVariance = (Number(indicatorShare.num) / Number(indicatorShare.den)) * t;
  rho += 1 / (2 * indicatorVariance);
  return { shareVariance, rho, indicator: { shareVariance: indicatorShare } };
}
