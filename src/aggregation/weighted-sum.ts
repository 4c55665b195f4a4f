/**
 * A streaming example-weighted sum of models, for the coordinator to fold updates in as their
 * chunks arrive: it holds one float64 accumulator per parameter (8 bytes each), so peak memory is
 * about twice the float32 model whatever the number of participants, and no update is kept whole.
 * The mean it yields is what a strategy's aggregateTrain takes (FedAvg's weighting, McMahan et al.
 * 2017: Σ n_k·w_k / Σ n_k).
 */
import { EntenteError } from '../core/errors.ts';
import {
  assertMatchesLayout,
  countElements,
  indexOfNonFinite,
  type Tensor,
  type TensorLayout,
  type Weights,
} from '../core/tensor.ts';

export interface WeightedSum {
  readonly layout: readonly TensorLayout[];
  /** Σ of the weights passed to addWeight. */
  readonly totalWeight: number;
  /** Number of addWeight calls (one per contribution). */
  readonly contributions: number;
  /**
   * Adds weight·values into tensor `tensorIndex` from element `elementOffset` on. Throws
   * INVALID_ARGUMENT when the slice is out of bounds or the weight is not finite > 0, and
   * INVALID_TENSOR on a non-finite value (nothing is added then).
   */
  addSlice(tensorIndex: number, elementOffset: number, values: Float32Array, weight: number): void;
  /** Counts one contribution of `weight` (its number of examples, finite > 0). */
  addWeight(weight: number): void;
  /** addSlice for every tensor of a whole model, then addWeight. Throws INVALID_TENSOR on a layout mismatch. */
  addWeights(weights: Weights, weight: number): void;
  /** Σ weight·values / totalWeight as float32 tensors. Throws CONFLICT before any contribution. */
  computeMean(): Tensor[];
}

function assertWeight(weight: number, field: string): void {
  if (!(typeof weight === 'number' && Number.isFinite(weight) && weight > 0)) {
    throw new EntenteError('INVALID_ARGUMENT', `${field} must be a finite number > 0`, { field });
  }
}

/** An empty accumulator for models of `layout`. Throws INVALID_ARGUMENT on a malformed layout. */
export function createWeightedSum(layout: readonly TensorLayout[]): WeightedSum {
  const names = new Set<string>();
  for (const t of layout) {
    if (names.has(t.name)) {
      throw new EntenteError('INVALID_ARGUMENT', `layout: tensor "${t.name}" appears twice`, {
        field: 'layout',
      });
    }
    names.add(t.name);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new EntenteError('INVALID_ARGUMENT', `layout: tensor "${t.name}" has an invalid shape`, {
        field: 'layout',
      });
    }
  }
  const ownLayout = layout.map((t) => ({ name: t.name, shape: [...t.shape] }));
  const sums = ownLayout.map((t) => new Float64Array(countElements(t.shape)));
  let totalWeight = 0;
  let contributions = 0;

  const addSlice = (
    tensorIndex: number,
    elementOffset: number,
    values: Float32Array,
    weight: number,
  ): void => {
    const sum = sums[tensorIndex];
    if (!Number.isInteger(tensorIndex) || sum === undefined) {
      throw new EntenteError('INVALID_ARGUMENT', `tensorIndex ${tensorIndex} is not in [0, ${sums.length})`, {
        field: 'tensorIndex',
      });
    }
    const name = ownLayout[tensorIndex]!.name;
    if (
      !Number.isSafeInteger(elementOffset) ||
      elementOffset < 0 ||
      elementOffset + values.length > sum.length
    ) {
      throw new EntenteError(
        'INVALID_ARGUMENT',
        `slice [${elementOffset}, ${elementOffset}+${values.length}) is outside tensor "${name}" of ${sum.length} elements`,
        { field: 'elementOffset' },
      );
    }
    assertWeight(weight, 'weight');
    const bad = indexOfNonFinite(values);
    if (bad >= 0) {
      throw new EntenteError(
        'INVALID_TENSOR',
        `tensor "${name}" has a non-finite value at element ${elementOffset + bad}`,
        { field: `values.${name}` },
      );
    }
    for (let i = 0, j = elementOffset; i < values.length; i++, j++) sum[j]! += weight * values[i]!;
  };

  const addWeight = (weight: number): void => {
    assertWeight(weight, 'weight');
    totalWeight += weight;
    contributions += 1;
  };

  return {
    layout: ownLayout,
    get totalWeight() {
      return totalWeight;
    },
    get contributions() {
      return contributions;
    },
    addSlice,
    addWeight,
    addWeights(weights, weight) {
      assertWeight(weight, 'weight');
      assertMatchesLayout(weights, ownLayout, 'weights');
      for (let k = 0; k < weights.length; k++) addSlice(k, 0, weights[k]!.data, weight);
      addWeight(weight);
    },
    computeMean() {
      if (contributions === 0) {
        throw new EntenteError('CONFLICT', 'computeMean: no contribution has been added', {
          field: 'contributions',
        });
      }
      return ownLayout.map((t, k) => {
        const sum = sums[k]!;
        const data = new Float32Array(sum.length);
        for (let i = 0; i < sum.length; i++) data[i] = sum[i]! / totalWeight;
        if (indexOfNonFinite(data) >= 0) {
          throw new EntenteError('INVALID_TENSOR', `the mean of tensor "${t.name}" overflows float32`, {
            field: `mean.${t.name}`,
          });
        }
        return { name: t.name, shape: [...t.shape], data };
      });
    },
  };
}
