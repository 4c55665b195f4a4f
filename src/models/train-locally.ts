/**
 * Local training of a built-in model: minibatch SGD or Adam over the participant's data, the order of
 * examples reshuffled from the given Rng every epoch, with optional L2 decay and the FedProx proximal
 * term anchored at the weights the call started from (Li et al., "Federated Optimization in
 * Heterogeneous Networks", MLSys 2020). Deterministic given the inputs and the Rng's seed; the input
 * weights are never mutated.
 */
import { EntenteError } from '../core/errors.ts';
import { type Rng, shuffleInPlace } from '../core/rng.ts';
import { indexOfNonFinite, type Tensor, type Weights } from '../core/tensor.ts';
import { computeMinibatchGradient, createModelWorkspace } from './dense-network.ts';
import { flattenWeights, unflattenWeights } from './flat-parameters.ts';
import { assertValidLabeledData, type LabeledData } from './labeled-data.ts';
import type { ModelSpec } from './model-spec.ts';
import { applyOptimizerStep, createOptimizerState } from './optimizer.ts';
import { applyRegularization } from './regularization.ts';
import { parseTrainOptions, type TrainOptions } from './train-options.ts';

export interface TrainResult {
  /** The trained weights (fresh tensors, layout order). */
  readonly weights: Tensor[];
  /** Number of local examples (data.count), the FedAvg weight of this update. */
  readonly numExamples: number;
  /** Mean data loss (without the l2/proximal terms) of the last epoch's minibatches, each taken before its step. */
  readonly meanLoss: number;
  /** Number of optimizer steps taken: epochs × ⌈count / batchSize⌉. */
  readonly steps: number;
}

/**
 * Trains `weights` on `data` and returns new weights.
 * Throws EntenteError: INVALID_CONFIG (spec or options, naming the field), INVALID_TENSOR (weights do
 * not match the spec's layout), INVALID_DATA (data does not fit the spec, naming the row), and
 * INVALID_CONFIG naming `options.learningRate` if the loss becomes non-finite (divergence).
 */
export function trainLocally(
  spec: ModelSpec,
  weights: Weights,
  data: LabeledData,
  options: TrainOptions,
  rng: Rng,
): TrainResult {
  const workspace = createModelWorkspace(spec);
  const opts = parseTrainOptions(options);
  const anchor = flattenWeights(workspace.spec, weights);
  assertValidLabeledData(workspace.spec, data);

  const params = anchor.slice();
  const gradient = new Float32Array(workspace.parameterCount);
  const optimizer = createOptimizerState(opts, workspace.parameterCount);
  const terms = { l2: opts.l2 ?? 0, proximalMu: opts.proximalMu ?? 0, anchor };
  const regularize = terms.l2 > 0 || terms.proximalMu > 0;
  const order = new Int32Array(data.count);
  for (let i = 0; i < order.length; i++) order[i] = i;

  let steps = 0;
  let epochLoss = 0;
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    shuffleInPlace(rng, order);
    epochLoss = 0;
    for (let start = 0; start < data.count; start += opts.batchSize) {
      const rows = order.subarray(start, Math.min(data.count, start + opts.batchSize));
      const loss = computeMinibatchGradient(workspace, params, data, rows, gradient);
      if (!Number.isFinite(loss)) throw diverged(epoch);
      epochLoss += loss * rows.length;
      if (regularize) applyRegularization(params, terms, gradient);
      applyOptimizerStep(optimizer, params, gradient);
      steps++;
    }
  }
  if (indexOfNonFinite(params) >= 0) throw diverged(opts.epochs - 1);
  return {
    weights: unflattenWeights(workspace.spec, params),
    numExamples: data.count,
    meanLoss: epochLoss / data.count,
    steps,
  };
}

function diverged(epoch: number): EntenteError {
  return new EntenteError(
    'INVALID_CONFIG',
    `options.learningRate: training diverged (non-finite loss or weights in epoch ${epoch}); lower the learning rate`,
    { field: 'options.learningRate' },
  );
}
