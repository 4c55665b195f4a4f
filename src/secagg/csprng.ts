/**
 * The cryptographically secure uniform source for stochastic rounding (DESIGN.md §4: quantization
 * randomness must come from a CSPRNG, never Math.random). It is the AES-256-CTR keystream (NIST
 * SP 800-38A §6.5, zero initial counter block) under a fresh key from node:crypto randomBytes(32),
 * read as little-endian uint32 words. A given 32-byte key makes it deterministic: tests only.
 */
import { type Cipher, createCipheriv, randomBytes } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';

/** Uniform 32-bit words; successive calls continue one stream. */
export interface UniformSource {
  /** Fills `out` with independent uniform integers in [0, 2^32). */
  fillUint32(out: Uint32Array): void;
}

const CHUNK_BYTES = 64 * 1024;
const ZEROS = new Uint8Array(CHUNK_BYTES);
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * A uniform source keyed by `key32` (32 bytes, secret; for reproducible tests only) or, by default,
 * by a fresh key from the OpenSSL CSPRNG. Throws INVALID_ARGUMENT (field 'key32') for a key that is
 * not 32 bytes.
 */
export function createUniformSource(key32?: Uint8Array): UniformSource {
  if (key32 !== undefined && (!(key32 instanceof Uint8Array) || key32.length !== 32))
    throw new EntenteError('INVALID_ARGUMENT', 'key32: must be 32 bytes', { field: 'key32' });
  const cipher: Cipher = createCipheriv('aes-256-ctr', key32 ?? randomBytes(32), new Uint8Array(16));
  return {
    fillUint32(out: Uint32Array): void {
      if (!(out instanceof Uint32Array))
        throw new EntenteError('INVALID_ARGUMENT', 'out: must be a Uint32Array', { field: 'out' });
      const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      for (let pos = 0; pos < bytes.length; pos += CHUNK_BYTES) {
        const n = Math.min(CHUNK_BYTES, bytes.length - pos);
        const block = cipher.update(n === CHUNK_BYTES ? ZEROS : ZEROS.subarray(0, n));
        if (!LITTLE_ENDIAN_HOST) block.swap32();
        bytes.set(block, pos);
      }
    },
  };
}
