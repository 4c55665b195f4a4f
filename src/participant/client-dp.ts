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
  readonly shareVariance: bigint;
  /** zCDP ρ of one round for one institution. */
  readonly rho: number;
}

export function planClientNoise(
  dp: { clipNorm: number; noiseMultiplier: number },
  ctx: SecAggRoundContext,
  dimensions: number,
): ClientNoisePlan {
  const scale = ctx.quantization.scale;
  const sigma = dp.noiseMultiplier * dp.clipNorm * scale;
  const shareVariance = BigInt(Math.ceil((sigma * sigma) / ctx.threshold));
  const totalVariance = Number(shareVariance) * ctx.threshold;
  const sensitivity = dp.clipNorm * scale + Math.sqrt(dimensions);
  return { shareVariance, rho: (sensitivity * sensitivity) / (2 * totalVariance) };
}

/** Scales the concatenation of `tensors` so its L2 norm is at most `clipNorm` (in place). */
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

/** Adds an exact discrete Gaussian N_Z(0, variance) sample to each of the first `words` ring words. */
export function addDiscreteGaussianShare(
  vector: RingVector,
  words: number,
  variance: bigint,
  bits: RandomBits,
): void {
  const noise = sampleDiscreteGaussianVector({ num: variance, den: 1n }, words, bits);
  if (vector instanceof Uint32Array) {
    for (let i = 0; i < words; i++) vector[i] = (vector[i]! + Number(noise[i]!)) >>> 0;
  } else {
    for (let i = 0; i < words; i++) vector[i] = BigInt.asUintN(64, vector[i]! + BigInt(noise[i]!));
  }
}
