/**
 * The server step of a strategy: given the current global model and the example-weighted mean of
 * the returned models, produce the next global model. Every strategy here is expressible from the
 * mean alone, because pseudo-gradient Δ = mean − current is the example-weighted mean of the
 * participants' own Δ_i (Reddi et al., ICLR 2021, Algorithm 2, line "Δ_t = 1/|S| Σ Δ_i^t", with
 * example weights as in FedAvg). Under secure aggregation only the sum is known: mean = sum / total.
 *
 * Per-parameter optimizer state (momentum, second moments) is kept as named float32 tensors
 * "<slot>/<tensor name>", slot-major (all of slot 0, then all of slot 1), so it persists like a model.
 */
import type { Tensor, TensorLayout, Weights } from '../core/tensor.ts';
import { countElements } from '../core/tensor.ts';

export interface ServerStepResult {
  readonly weights: Tensor[];
  readonly stateTensors: Tensor[];
}

export interface ServerOptimizer {
  /** Layout of the state tensors for a model of `layout` (empty when the step is stateless). */
  computeStateLayout(layout: readonly TensorLayout[]): TensorLayout[];
  /** Fresh state tensors for a model of `layout`. */
  initializeStateTensors(layout: readonly TensorLayout[]): Tensor[];
  /**
   * One server step. Preconditions (checked by the caller): `current` and `mean` share one layout
   * and are finite; `stateTensors` has `computeStateLayout(layout)`. Inputs are never mutated;
   * arithmetic is float64, results are rounded to float32.
   */
  applyStep(current: Weights, mean: Weights, stateTensors: Weights): ServerStepResult;
}

/** One named slot of per-parameter state and the value it starts at. */
export interface StateSlot {
  readonly slot: string;
  readonly initialValue: number;
}

/** Layout "<slot>/<name>" for every slot and tensor, slot-major. */
export function createSlotLayout(
  slots: readonly StateSlot[],
  layout: readonly TensorLayout[],
): TensorLayout[] {
  return slots.flatMap(({ slot }) => layout.map((t) => ({ name: `${slot}/${t.name}`, shape: [...t.shape] })));
}

/** State tensors for `slots`, each filled with its slot's initial value. */
export function createSlotTensors(slots: readonly StateSlot[], layout: readonly TensorLayout[]): Tensor[] {
  return slots.flatMap(({ slot, initialValue }) =>
    layout.map((t) => ({
      name: `${slot}/${t.name}`,
      shape: [...t.shape],
      data: new Float32Array(countElements(t.shape)).fill(initialValue),
    })),
  );
}

/** A zero-filled tensor with the name and shape of `like`. */
export function createEmptyLike(like: Tensor, name = like.name): Tensor {
  return { name, shape: [...like.shape], data: new Float32Array(like.data.length) };
}
