/**
 * An `Rng` nobody else can reproduce: words from the OpenSSL CSPRNG (node:crypto `randomFillSync`),
 * read from a buffered pool of 2048 words that is refilled when used up and wiped as it is read. For
 * every draw whose secrecy a privacy guarantee relies on (DP-SGD's Poisson batches, the training order
 * of a run with differential privacy); seeded streams (seeded-rng.ts) are for reproducible runs only.
 */
import { randomFillSync } from 'node:crypto';
import type { Rng } from '../core/rng.ts';

const POOL_WORDS = 2048;

/** A fresh CSPRNG-backed `Rng`; its draws cannot be replayed from any seed. */
export function createSecureRng(): Rng {
  const pool = new Uint32Array(POOL_WORDS);
  let pos = POOL_WORDS;
  const nextUint32 = (): number => {
    if (pos === POOL_WORDS) {
      randomFillSync(pool);
      pos = 0;
    }
    const word = pool[pos]!;
    pool[pos++] = 0; // a used word is not kept around
    return word;
  };
  return {
    nextUint32,
    nextFloat64(): number {
      const hi = nextUint32() >>> 5; // 27 bits
      const lo = nextUint32() >>> 6; // 26 bits
      return (hi * 67108864 + lo) / 9007199254740992;
    },
  };
}
