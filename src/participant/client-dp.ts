/**
 * A site's side of client-level DP under secure aggregation: its whole update clipped to L2 norm C, and
 * its share of discrete Gaussian noise added before masking, sampled from its own randomness. How much
 * noise and what a round costs are computed in privacy/client-noise.ts (`computeClientNoisePlan`), the
 * same function the run's projection uses.
 */
import { type RandomBits, sampleDiscreteGaussianVector } from '../privacy/index.ts';
import type { RingVector } from '../secagg/index.ts';

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
