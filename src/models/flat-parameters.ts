/**
 * Conversion between `Tensor[]` (how weights travel) and one flat Float32Array (how the built-in
 * trainers compute). The flat vector is the concatenation of the tensors in `describeLayout` order,
 * each row-major; per-example gradients use the same order.
 */
import {
  assertMatchesLayout,
  countElements,
  countParameters,
  type Tensor,
  type Weights,
} from '../core/tensor.ts';
import { describeLayout, type ModelSpec } from './model-spec.ts';

/**
 * Copies `weights` into a new flat vector in layout order. Throws EntenteError('INVALID_TENSOR')
 * (from assertMatchesLayout) naming the tensor when `weights` does not match the layout of `spec` or
 * holds a non-finite value. Never aliases or mutates `weights`.
 */
export function flattenWeights(spec: ModelSpec, weights: Weights, what = 'weights'): Float32Array {
  const layout = describeLayout(spec);
  assertMatchesLayout(weights, layout, what);
  const params = new Float32Array(countParameters(layout));
  let offset = 0;
  for (const t of weights) {
    params.set(t.data, offset);
    offset += t.data.length;
  }
  return params;
}

/**
 * Splits a flat vector back into named tensors (fresh copies) in layout order.
 * Throws RangeError if `params` does not have exactly the parameter count of `spec` (a programming error).
 */
export function unflattenWeights(spec: ModelSpec, params: Float32Array): Tensor[] {
  const layout = describeLayout(spec);
  if (params.length !== countParameters(layout)) {
    throw new RangeError(`unflattenWeights: expected ${countParameters(layout)} parameters`);
  }
  let offset = 0;
  return layout.map((l) => {
    const n = countElements(l.shape);
    const data = params.slice(offset, offset + n);
    offset += n;
    return { name: l.name, shape: [...l.shape], data };
  });
}
