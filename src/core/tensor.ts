/**
 * Named float32 tensors: the unit in which models and updates travel. A `Weights` value is an ordered
 * list of tensors; order and names are part of the model spec.
 */
import { EntenteError } from './errors.ts';

export interface Tensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export type Weights = readonly Tensor[];

/** The layout of a model: names and shapes, in order, without data. */
export interface TensorLayout {
  readonly name: string;
  readonly shape: readonly number[];
}

export function countElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function layoutOf(weights: Weights): TensorLayout[] {
  return weights.map((t) => ({ name: t.name, shape: [...t.shape] }));
}

export function countParameters(weights: Weights | readonly TensorLayout[]): number {
  let n = 0;
  for (const t of weights) n += countElements(t.shape);
  return n;
}

/** Deep copy of weights (new Float32Arrays). */
export function cloneWeights(weights: Weights): Tensor[] {
  return weights.map((t) => ({ name: t.name, shape: [...t.shape], data: new Float32Array(t.data) }));
}

/**
 * Checks that `weights` has exactly `layout` (same names, order, shapes) and only finite values.
 * Throws INVALID_TENSOR naming the tensor and problem.
 */
export function assertMatchesLayout(
  weights: Weights,
  layout: readonly TensorLayout[],
  what = 'weights',
): void {
  if (weights.length !== layout.length) {
    throw new EntenteError(
      'INVALID_TENSOR',
      `${what}: expected ${layout.length} tensors, got ${weights.length}`,
      { field: what },
    );
  }
  for (let i = 0; i < layout.length; i++) {
    const want = layout[i]!;
    const got = weights[i]!;
    if (got.name !== want.name) {
      throw new EntenteError(
        'INVALID_TENSOR',
        `${what}: tensor ${i} is named "${got.name}", expected "${want.name}"`,
        { field: `${what}.${want.name}` },
      );
    }
    if (got.shape.length !== want.shape.length || got.shape.some((d, j) => d !== want.shape[j])) {
      throw new EntenteError(
        'INVALID_TENSOR',
        `${what}: tensor "${want.name}" has shape [${got.shape.join(',')}], expected [${want.shape.join(',')}]`,
        { field: `${what}.${want.name}` },
      );
    }
    if (got.data.length !== countElements(want.shape)) {
      throw new EntenteError('INVALID_TENSOR', `${what}: tensor "${want.name}" has the wrong element count`, {
        field: `${what}.${want.name}`,
      });
    }
    const bad = indexOfNonFinite(got.data);
    if (bad >= 0) {
      throw new EntenteError(
        'INVALID_TENSOR',
        `${what}: tensor "${want.name}" has a non-finite value (NaN or Infinity) at element ${bad}`,
        { field: `${what}.${want.name}` },
      );
    }
  }
}

/** Index of the first NaN or ±Infinity in `data`, or -1. */
export function indexOfNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    // v - v is NaN exactly when v is NaN or ±Infinity.
    if (v - v !== 0) return i;
  }
  return -1;
}
