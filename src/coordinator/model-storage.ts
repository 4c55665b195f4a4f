/**
 * The run engine's tensors in the blob store: models and strategy-state tensors written as
 * safetensors chunks, read back by streaming them through the checking reader (names, shapes, dtype,
 * finiteness, digest) without a whole-blob copy.
 */
import type { StrategyState } from '../aggregation/index.ts';
import { EntenteError } from '../core/errors.ts';
import { createSafetensorsReader, decodeSafetensors, encodeSafetensors } from '../core/safetensors.ts';
import type { Tensor, TensorLayout, Weights } from '../core/tensor.ts';
import { countParameters } from '../core/tensor.ts';
import { type BlobRef, createBlobRef } from '../protocol/index.ts';
import type { BlobStore } from '../storage/index.ts';
import { createHash } from 'node:crypto';
import type { StoredStrategy } from './run-engine-context.ts';

/**
 * Streams a stored blob through a safetensors reader checking it against `layout` (names, shapes,
 * dtype, finiteness); returns its SHA-256 when `hash` is set. Memory stays O(piece).
 */
export function streamBlob(
  blobs: BlobStore,
  ref: BlobRef,
  layout: readonly TensorLayout[],
  onSlice: (tensorIndex: number, offset: number, values: Float32Array) => void,
  hash: boolean,
): string | undefined {
  const h = hash ? createHash('sha256') : undefined;
  const reader = createSafetensorsReader({ expected: layout, onSlice });
  blobs.readPieces(
    ref.chunks.map((c) => c.sha256),
    (piece) => {
      h?.update(piece);
      reader.push(piece);
    },
  );
  reader.end();
  return h?.digest('hex');
}

export function storeWeights(blobs: BlobStore, weights: Weights, metadata: Record<string, string>): BlobRef {
  const bytes = encodeSafetensors(weights, metadata);
  const { ref, chunks } = createBlobRef(bytes);
  for (const c of chunks) blobs.put(c);
  return ref;
}

/** Streams a stored model into fresh tensors, checking its digest, without a whole-blob copy. */
export function loadWeights(blobs: BlobStore, ref: BlobRef, layout: readonly TensorLayout[]): Tensor[] {
  const weights = layout.map((t) => ({
    name: t.name,
    shape: [...t.shape],
    data: new Float32Array(countParameters([t])),
  }));
  const digest = streamBlob(
    blobs,
    ref,
    layout,
    (i, offset, values) => weights[i]!.data.set(values, offset),
    true,
  );
  if (digest !== ref.sha256) throw new EntenteError('INTERNAL', 'a stored model does not match its digest');
  return weights;
}

export function storeStrategyState(blobs: BlobStore, state: StrategyState): StoredStrategy {
  return {
    round: state.round,
    scalars: state.scalars,
    tensors: state.tensors.length > 0 ? storeWeights(blobs, state.tensors, { kind: 'strategy-state' }) : null,
  };
}

export function loadStrategyState(blobs: BlobStore, json: string): StrategyState {
  const s = JSON.parse(json) as StoredStrategy;
  let tensors: Tensor[] = [];
  if (s.tensors) {
    const bytes = Buffer.concat(s.tensors.chunks.map((c) => blobs.read(c.sha256)));
    tensors = decodeSafetensors(bytes).weights;
  }
  return { round: s.round, scalars: s.scalars, tensors };
}
