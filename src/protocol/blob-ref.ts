/**
 * Content addressing of blobs on the wire: a blob (safetensors bytes of a model or an update) is cut
 * into fixed-size chunks, each addressed by its SHA-256, and the whole by the SHA-256 of all bytes.
 */
import { sha256Hex } from '../crypto/digest.ts';
import { type BlobRef, MAX_CHUNK_BYTES } from './messages.ts';

/** Describes `bytes` as a BlobRef; chunk views are returned alongside so callers can send them. */
export function createBlobRef(
  bytes: Uint8Array,
  chunkBytes = MAX_CHUNK_BYTES,
): { ref: BlobRef; chunks: Uint8Array[] } {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new RangeError(`chunkBytes must be an integer in [1, ${MAX_CHUNK_BYTES}]`);
  }
  const chunks: Uint8Array[] = [];
  for (let off = 0; off < bytes.length; off += chunkBytes) {
    chunks.push(bytes.subarray(off, Math.min(bytes.length, off + chunkBytes)));
  }
  return {
    ref: {
      sha256: sha256Hex(bytes),
      bytes: bytes.length,
      chunks: chunks.map((c) => ({ sha256: sha256Hex(c), bytes: c.length })),
    },
    chunks,
  };
}
