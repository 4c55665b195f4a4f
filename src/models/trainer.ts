/**
 * The narrow contract through which a participant trains and evaluates a model, so that trainers
 * other than the built-in one (e.g. an external process) can be added without touching the caller.
 * Implementations validate their inputs (spec, weights against the layout, data against the spec).
 */
import type { Rng } from '../core/rng.ts';
import type { Tensor, TensorLayout, Weights } from '../core/tensor.ts';
import type { EvaluationResult } from './evaluate-model.ts';
import type { LabeledData } from './labeled-data.ts';
import type { ModelSpec } from './model-spec.ts';
import type { TrainOptions } from './train-options.ts';
import type { TrainResult, TrainSources } from './train-locally.ts';

export interface Trainer {
  /** Stable identifier, logged with every update (e.g. 'builtin/float32@1'). */
  readonly id: string;
  /** Tensor names and shapes of `spec`, in exchange order. */
  describeLayout(spec: ModelSpec): TensorLayout[];
  /** Fresh initial weights, deterministic given the Rng's seed. */
  initializeWeights(spec: ModelSpec, rng: Rng): Tensor[];
  /**
   * Local training; never mutates `weights`; deterministic given the Rng's seed (and, with
   * differential privacy, the `sources`: DP-SGD batches come from `sources.sampling`, not from `rng`).
   */
  train(
    spec: ModelSpec,
    weights: Weights,
    data: LabeledData,
    options: TrainOptions,
    rng: Rng,
    sources?: TrainSources,
  ): TrainResult;
  /** Mean loss and accuracy of `weights` on `data`. */
  evaluate(spec: ModelSpec, weights: Weights, data: LabeledData): EvaluationResult;
}
