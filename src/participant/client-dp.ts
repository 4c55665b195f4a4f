/**
 * Client-level DP-FedAvg under secure aggregation with distributed discrete Gaussian noise (Kairouz,
 * Liu, Steinke, "The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure
 * Aggregation", ICML 2021; McMahan et al. 2018 for client-level clipping). Each institution clips its
 * whole update to L2 norm C, quantises it (scale s, stochastic rounding), and adds its share of
 * integer noise N_Z(0, σ²/t) to every coordinate before masking, where σ = z·C·s and t is the round's
 * threshold: any set of ≥ t survivors puts at least σ² of noise on the sum, and fewer than t is never
 * unmasked. Accounting: the sum of independent discrete Gaussians is treated as one N_Z(0, σ²)
 * (Kairouz et al. Thm. 1 bounds the gap; with σ²/t ≫ 1, as here, it is negligible and not added), and
 * one institution changes the sum by at most Δ₂ = C·s + √d (rounding moves each of the d coordinates by
 * less than 1), so a round is ρ = Δ₂² / (2σ²)-zCDP for the institution as a whole (Canonne, Kamath,
 * Steinke 2020). Dropouts only add noise relative to this (t shares is the worst case).
 */
import type { RingVector, SecAggRoundContext } from '../secagg/index.ts';
import { type RandomBits, sampleDiscreteGaussianVector } from '../privacy/index.ts';

export interface ClientNoisePlan {
  /** Per-participant variance σ²/t in quantised units (rounded up: never less noise). */
  readonly shareVariance: { num: bigint; den: bigint };
  /** zCDP ρ of one round for one institution (updates, plus the clip indicator when adaptive). */
  readonly rho: number;
  /** Adaptive clipping: the clip indicator's share of noise, (2σ_b)²/t in ±1 units (Andrew et al. 2021). */
  readonly indicator?: { readonly shareVariance: { num: bigint; den: bigint } };
}

export function planClientNoise(
  dp: { clipNorm: number; noiseMultiplier: number; indicatorNoiseStd?: number | undefined },
  ctx: SecAggRoundContext,
  dimensions: number,
): ClientNoisePlan {
  const scale = ctx.quantization.scale;
  const sigma = dp.noiseMultiplier * dp.clipNorm * scale;
  const share = Math.ceil((sigma * sigma) / ctx.threshold);
  const totalVariance = share * ctx.threshold;
  const sensitivity = dp.clipNorm * scale + Math.sqrt(dimensions);
  let rho = (sensitivity * sensitivity) / (2 * totalVariance);
  if (!dp.indicatorNoiseStd) return { shareVariance: { num: BigInt(share), den: 1n }, rho };
  // The indicator 2b−1 moves by at most 1 per institution; the sum carries noise variance (2σ_b)².
  const PRECISION = 1_000_000;
  const indicatorShare = {
    num: BigInt(Math.ceil(4 * dp.indicatorNoiseStd * dp.indicatorNoiseStd * PRECISION)),
    den: BigInt(ctx.threshold * PRECISION),
  };
  const indicatorVariance = (Number(indicatorShare.num) / Number(indicatorShare.den)) * ctx.threshold;
  rho += 1 / (2 * indicatorVariance);
  return {
    shareVariance: { num: BigInt(share), den: 1n },
    rho,
    indicator: { shareVariance: indicatorShare },
  };
}

/** Scales the concatenation of `tensors` so its L2 norm is at most `clipNorm` (in place); returns the norm before. */
export function clipL2Norm(tensors: readonly Float32Array[], clipNorm: number): number {
  let sq = 0;
  for (const t of tensors) for (let i = 0; i < t.length; i++) sq += t[i]! * t[i]!;
  const norm = Math.sqrt(sq);
  if (norm > clipNorm) {
    const f = clipNorm / norm;
    for (const t of tensors) for (let i = 0; i < t.length; i++) t[i] = t[i]! * f;
  }
  return norm;
}

/** Adds an exact discrete Gaussian N_Z(0, variance) sample to `words` ring words from `offset`. */
export function addDiscreteGaussianShare(
  vector: RingVector,
  words: number,
  variance: { num: bigint; den: bigint },
  bits: RandomBits,
  offset: number,
): void {
  const noise = sampleDiscreteGaussianVector(variance, words, bits);
  if (vector instanceof Uint32Array) {
    for (let i = 0; i < words; i++) vector[offset + i] = (vector[offset + i]! + Number(noise[i]!)) >>> 0;
  } else {
    for (let i = 0; i < words; i++)
      vector[offset + i] = BigInt.asUintN(64, vector[offset + i]! + BigInt(noise[i]!));
  }
}

/** Writes a signed integer (two's complement) into one ring word. */
export function writeSignedWord(vector: RingVector, index: number, value: number): void {
  if (vector instanceof Uint32Array) vector[index] = value >>> 0;
  else vector[index] = BigInt.asUintN(64, BigInt(value));
}
