/**
 * Randomness is passed in (DESIGN.md §2: bands 0–1 never call Math.random or read clocks). `Rng` is
 * the narrow contract every pure module draws from; `crypto/seeded-rng.ts` implements it from a
 * cryptographic stream, deterministic given a seed.
 */

export interface Rng {
  /** Uniform integer in [0, 2^32). */
  nextUint32(): number;
  /** Uniform float in [0, 1) with 53 bits of randomness. */
  nextFloat64(): number;
}

/** Uniform integer in [0, n) without modulo bias (rejection sampling). n must be in [1, 2^32]. */
export function nextInt(rng: Rng, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 32)
    throw new RangeError('nextInt: n must be an integer in [1, 2^32]');
  const limit = 2 ** 32 - (2 ** 32 % n);
  for (;;) {
    const x = rng.nextUint32();
    if (x < limit) return x % n;
  }
}

/** Standard normal sample (Marsaglia polar method). For model initialisation and simulations only,
 * never for privacy noise (privacy has its own exact samplers). */
export function nextGaussian(rng: Rng): number {
  for (;;) {
    const u = 2 * rng.nextFloat64() - 1;
    const v = 2 * rng.nextFloat64() - 1;
    const s = u * u + v * v;
    if (s > 0 && s < 1) return u * Math.sqrt((-2 * Math.log(s)) / s);
  }
}

/** In-place Fisher–Yates shuffle. */
export function shuffleInPlace<T>(rng: Rng, items: T[] | Int32Array | Uint32Array): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = nextInt(rng, i + 1);
    const tmp = items[i]!;
    items[i] = items[j]!;
    items[j] = tmp;
  }
}
