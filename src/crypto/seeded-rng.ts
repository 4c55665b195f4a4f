/**
 * A deterministic, cryptographically strong random stream: AES-256-CTR keystream (NIST SP 800-38A)
 * keyed by SHA-256(domain || 0x00 || seed), zero IV, drawn in 64 KiB chunks. Used wherever a result
 * must be reproducible from a seed (model initialisation, minibatch order, data partitioning). Not a
 * source of secrets: anyone who knows the seed knows the stream.
 */
import { createCipheriv, createHash } from 'node:crypto';
import type { Rng } from '../core/rng.ts';

const CHUNK_BYTES = 64 * 1024;

export function createSeededRng(seed: string | Uint8Array, domain = 'entente/seeded-rng/v1'): Rng {
  const key = createHash('sha256')
    .update(domain)
    .update(new Uint8Array([0]))
    .update(typeof seed === 'string' ? Buffer.from(seed, 'utf8') : seed)
    .digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK_BYTES);
  let words = new Uint32Array(0);
  let pos = 0;
  const refill = (): void => {
    const block = cipher.update(zeros);
    words = new Uint32Array(block.buffer, block.byteOffset, block.byteLength >>> 2);
    pos = 0;
  };
  const nextUint32 = (): number => {
    if (pos >= words.length) refill();
    return words[pos++]!;
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
