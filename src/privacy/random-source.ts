/**
 * The randomness the privacy samplers draw from (DESIGN.md §4: "noise from node:crypto randomness with
 * exact integer samplers"). `RandomBits` hands out uniform 32-bit words and uniform integers below a
 * bound by rejection sampling (never `x % n` on a raw word, which is biased), plus an exact
 * Bernoulli(p) for rational p that reads only as many random words as it needs (lazy comparison of a
 * uniform [0,1) number with the base-2^32 expansion of p, as in Canonne, Kamath, Steinke 2020 §5).
 *
 * Two sources: `createCryptoRandomBits()` (node:crypto `randomFillSync` into a buffered pool; the one
 * to use for real noise) and `createSeededRandomBits(seed)` (the AES-256-CTR stream of
 * crypto/seeded-rng.ts under its own domain; deterministic, for tests and reproducible simulations
 * only: anyone who knows the seed knows the noise). No floating point, no Math.random.
 */
import { randomFillSync } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';

/** A source of uniform random bits. Implementations must be cryptographically strong for real noise. */
export interface RandomBits {
  /** Uniform integer in [0, 2^32). */
  nextUint32(): number;
  /** Uniform integer in [0, n) by rejection (no modulo bias). Precondition: n an integer in [1, 2^32]. */
  nextIntBelow(n: number): number;
  /** Uniform bigint in [0, n) by rejection on the bit length of n - 1. Precondition: n ≥ 1. */
  nextBigIntBelow(n: bigint): bigint;
}

/** An exact non-negative rational number num/den (den > 0). */
export interface ExactRational {
  readonly num: bigint;
  readonly den: bigint;
}

const TWO_POW_32 = 4294967296;
const POOL_WORDS = 2048;
const SEEDED_DOMAIN = 'entente/privacy/random-bits/v1';

/** Number of bits of x ≥ 0 (0 for x = 0). */
export function computeBitLength(x: bigint): number {
  if (x <= 0n) return 0;
  const hex = x.toString(16);
  return (hex.length - 1) * 4 + (32 - Math.clz32(Number.parseInt(hex[0]!, 16)));
}

function createRandomBitsFromWords(nextUint32: () => number): RandomBits {
  const nextIntBelow = (n: number): number => {
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = nextUint32();
      if (x < limit) return x % n;
    }
  };
  return {
    nextUint32,
    nextIntBelow(n: number): number {
      if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32)
        throw new EntenteError('INVALID_ARGUMENT', 'n must be an integer in [1, 2^32]', { field: 'n' });
      return nextIntBelow(n);
    },
    nextBigIntBelow(n: bigint): bigint {
      if (typeof n !== 'bigint' || n < 1n)
        throw new EntenteError('INVALID_ARGUMENT', 'n must be a bigint ≥ 1', { field: 'n' });
      if (n <= 4294967296n) return BigInt(nextIntBelow(Number(n)));
      const bitLength = computeBitLength(n - 1n);
      const words = Math.ceil(bitLength / 32);
      const topBits = bitLength - 32 * (words - 1);
      const topMask = topBits === 32 ? 0xffffffff : 2 ** topBits - 1;
      for (;;) {
        let x = BigInt((nextUint32() & topMask) >>> 0);
        for (let i = 1; i < words; i++) x = (x << 32n) | BigInt(nextUint32());
        if (x < n) return x;
      }
    },
  };
}

/** Randomness from node:crypto (randomFillSync over a pool of 2048 words, refilled when used up). */
export function createCryptoRandomBits(): RandomBits {
  const pool = new Uint32Array(POOL_WORDS);
  let pos = POOL_WORDS;
  return createRandomBitsFromWords(() => {
    if (pos === POOL_WORDS) {
      randomFillSync(pool);
      pos = 0;
    }
    const word = pool[pos]!;
    pool[pos++] = 0; // a used word is not kept around
    return word;
  });
}

/** Deterministic randomness from a seed (AES-256-CTR, crypto/seeded-rng.ts). Tests and simulations only. */
export function createSeededRandomBits(seed: string): RandomBits {
  if (typeof seed !== 'string')
    throw new EntenteError('INVALID_ARGUMENT', 'seed must be a string', { field: 'seed' });
  const rng = createSeededRng(seed, SEEDED_DOMAIN);
  return createRandomBitsFromWords(() => rng.nextUint32());
}

/** Checks and reduces a rational given as {num, den}: bigints, den > 0, num ≥ 0 (num > 0 unless allowZero). */
export function parseExactRational(value: unknown, field: string, allowZero = false): ExactRational {
  const v = value as { num?: unknown; den?: unknown } | null;
  if (v === null || typeof v !== 'object' || typeof v.num !== 'bigint' || typeof v.den !== 'bigint')
    throw new EntenteError('INVALID_ARGUMENT', `${field} must be {num: bigint, den: bigint}`, { field });
  if (v.den <= 0n) throw new EntenteError('INVALID_ARGUMENT', `${field}.den must be > 0`, { field });
  if (v.num < 0n || (!allowZero && v.num === 0n))
    throw new EntenteError('INVALID_ARGUMENT', `${field} must be ${allowZero ? '≥ 0' : '> 0'}`, { field });
  let a = v.num;
  let b = v.den;
  while (b !== 0n) [a, b] = [b, a % b];
  return a <= 1n ? { num: v.num, den: v.den } : { num: v.num / a, den: v.den / a };
}

/**
 * Bernoulli(num/den), exact, for bigints 0 ≤ num, 0 < den (p ≥ 1 is true). For den ≤ 2^32 one uniform
 * integer below den; otherwise the digits of num/den in base 2^32 are produced by long division and
 * compared with fresh uniform words until they differ (expected ~1 word). Internal: no checks.
 */
export function sampleBernoulliFraction(num: bigint, den: bigint, bits: RandomBits): boolean {
  if (num <= 0n) return false;
  if (num >= den) return true;
  if (den <= 4294967296n) return bits.nextIntBelow(Number(den)) < Number(num);
  let rem = num;
  for (;;) {
    rem <<= 32n;
    const digit = rem / den;
    rem -= digit * den;
    const word = BigInt(bits.nextUint32());
    if (word !== digit) return word < digit;
    // equal digits so far; if p's expansion ended, the uniform number is ≥ p (equality has probability 0)
    if (rem === 0n) return false;
  }
}

/** Bernoulli(p), exact, for a rational p in [0, 1]. Throws INVALID_ARGUMENT (field 'p') otherwise. */
export function sampleBernoulliRational(p: ExactRational, bits: RandomBits): boolean {
  const q = parseExactRational(p, 'p', true);
  if (q.num > q.den) throw new EntenteError('INVALID_ARGUMENT', 'p must be ≤ 1', { field: 'p' });
  return sampleBernoulliFraction(q.num, q.den, bits);
}
