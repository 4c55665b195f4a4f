/**
 * A masked input of a secure-aggregation attempt as the server sees it: its bytes checked before
 * anything is accepted (exact size for the round's vector and ring, whole ring elements per chunk, every
 * chunk uploaded, the digest), and its ring elements added into the attempt's one running sum, streamed
 * chunk by chunk so memory stays one vector and a scratch buffer. The chunks are read through a
 * `ChunkSource` the caller passes in (the coordinator's blob store); nothing here opens a file.
 */
import { createHash } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import type { BlobRef } from './messages.ts';
import {
  type RingVector,
  type SecAggRoundContext,
  addRingVectors,
  countVectorWords,
} from '../secagg/index.ts';

/** Where a masked input's uploaded chunks are read from (the coordinator's blob store satisfies it). */
export interface ChunkSource {
  /** The stored size of a chunk, undefined when absent. */
  sizeOf(sha256: string): number | undefined;
  /** Calls `fn` with the chunks' bytes in order, piece by piece. */
  readPieces(sha256s: readonly string[], fn: (piece: Uint8Array) => void): void;
}

/** Checks a masked input's size, chunks and digest against the round (a coded error names the field). */
export function checkMaskedInput(blobs: ChunkSource, context: SecAggRoundContext, ref: BlobRef): void {
  const wordBytes = context.quantization.ringBits / 8;
  const expected = countVectorWords(context) * wordBytes;
  if (ref.bytes !== expected) {
    throw new EntenteError('INVALID_TENSOR', `maskedInput.bytes must be ${expected} for this round`, {
      field: 'maskedInput.bytes',
    });
  }
  for (const [i, c] of ref.chunks.entries()) {
    if (c.bytes % wordBytes !== 0)
      throw new EntenteError('MALFORMED_BODY', `maskedInput.chunks.${i} splits a ring element`, {
        field: `maskedInput.chunks.${i}`,
      });
    if (blobs.sizeOf(c.sha256) !== c.bytes)
      throw new EntenteError('MALFORMED_BODY', `maskedInput.chunks.${i} was not uploaded completely`, {
        field: `maskedInput.chunks.${i}`,
      });
  }
  const h = createHash('sha256');
  blobs.readPieces(
    ref.chunks.map((c) => c.sha256),
    (piece) => h.update(piece),
  );
  if (h.digest('hex') !== ref.sha256)
    throw new EntenteError('DIGEST_MISMATCH', 'maskedInput.sha256 does not match the uploaded chunks', {
      field: 'maskedInput.sha256',
    });
}

/** Adds the masked input's ring elements (32- or 64-bit words) into `sum`, modulo the ring. */
export function foldMaskedInput(blobs: ChunkSource, ringBits: number, sum: RingVector, ref: BlobRef): void {
  const wordBytes = ringBits / 8;
  const scratch = new Uint8Array(1024 * 1024 + 8);
  let carry = 0;
  let word = 0;
  blobs.readPieces(
    ref.chunks.map((c) => c.sha256),
    (piece) => {
      let at = 0;
      while (at < piece.length) {
        const take = Math.min(piece.length - at, scratch.length - 8 - carry);
        scratch.set(piece.subarray(at, at + take), carry);
        const total = carry + take;
        const words = Math.floor(total / wordBytes);
        if (words > 0) {
          const target = sum.subarray(word, word + words);
          const source =
            wordBytes === 4
              ? new Uint32Array(scratch.buffer, 0, words)
              : new BigUint64Array(scratch.buffer, 0, words);
          addRingVectors(target as RingVector, source as RingVector);
          word += words;
        }
        carry = total - words * wordBytes;
        scratch.copyWithin(0, words * wordBytes, total);
        at += take;
      }
    },
  );
}
