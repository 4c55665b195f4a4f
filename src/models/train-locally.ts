/**
 * Local training of a built-in model: minibatch SGD or Adam over the participant's data, the order of
 * examples reshuffled from the given Rng every epoch, with optional L2 decay and the FedProx proximal
 * term anchored at the weights the call started from (Li et al., "Federated Optimization in
 * Heterogeneous Networks", MLSys 2020). With `options.dp`, each step's gradient is instead a DP-SGD
 * gradient (dp-sgd.ts: Poisson batches, per-example clipping, injected Gaussian noise); its batches
 * are drawn from the injected `sources.sampling`, never from the seeded Rng, because the subsampling
 * amplification a ledger counts holds only if no other party can know which rows were sampled.
 * Deterministic given the inputs and the Rng's seed (with dp: and the sampling and noise sources); the
 * input weights are never mutated.
 */
import { EntenteError } from '../core/errors.ts';
import { type Rng, shuffleInPlace } from '../core/rng.ts';
import { indexOfNonFinite, type Tensor, type Weights } from '../core/tensor.ts';
import { computeMinibatchGradient, createModelWorkspace } from './dense-network.ts';
import { computeDpSgdGradient, createDpSgdState, type DpNoiseSource, type DpSgdReport } from './dp-sgd.ts';
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
  /** Number of optimizer steps taken: epochs × ⌈count / batchSize⌉ (with dp: epochs × round(1/q)). */
  readonly steps: number;
  /** With options.dp: the privacy event to record (Poisson-subsampled Gaussian, `steps` times, q, z). */
  readonly dp?: DpSgdReport;
}

/** Injected sources a training call may need besides its Rng. */
export interface TrainSources {
  /** Gaussian noise for DP-SGD; required when options.dp is set (there is no default). */
  readonly noise?: DpNoiseSource;
  /**
   * The Poisson batches of DP-SGD; required when options.dp is set (there is no default). Must be a
   * CSPRNG no other party can seed (crypto/secure-rng.ts) outside tests.
   */
  readonly sampling?: Rng;
  /** Test instrumentation only: sees the rows of every DP-SGD batch drawn (a view, valid during the call). */
  readonly onDpBatch?: (rows: Int32Array) => void;
}

/**
 * Trains `weights` on `data` and returns new weights.
 * Throws EntenteError: INVALID_CONFIG (spec or options, naming the field), INVALID_TENSOR (weights do
 * not match the spec's layout), INVALID_DATA (data does not fit the spec, naming the row), and
 * INVALID_CONFIG naming `options.learningRate` if the loss becomes non-finite (divergence), and
 * INVALID_ARGUMENT 'dp noise source required' / 'dp sampling source required' when options.dp is set
 * without `sources.noise` / `sources.sampling`.
 * With dp, meanLoss is over the examples sampled in the last epoch (0 if none) and is not privatised.
 */
export function trainLocally(
  spec: ModelSpec,
  weights: Weights,
  data: LabeledData,
  options: TrainOptions,
  rng: Rng,
  sources: TrainSources = {},
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
  const dp =
    opts.dp === undefined ? undefined : createDpSgdState(workspace, data.count, opts.dp, sources.noise);
  const sampling = sources.sampling;
  if (dp !== undefined && (typeof sampling !== 'object' || typeof sampling?.nextFloat64 !== 'function')) {
    throw new EntenteError('INVALID_ARGUMENT', 'sampling: dp sampling source required', {
      field: 'sampling',
    });
  }
  const order = new Int32Array(dp === undefined ? data.count : 0);
  for (let i = 0; i < order.length; i++) order[i] = i;

  let steps = 0;
  let epochLoss = 0;
  let epochExamples = 0;
  /** Regularises and applies the gradient just computed into `gradient` from `examples` rows. */
  const takeStep = (epoch: number, lossSum: number, examples: number): void => {
    if (!Number.isFinite(lossSum)) throw diverged(epoch);
    epochLoss += lossSum;
    epochExamples += examples;
    if (regularize) applyRegularization(params, terms, gradient);
    applyOptimizerStep(optimizer, params, gradient);
    steps++;
  };
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    epochLoss = 0;
    epochExamples = 0;
    if (dp !== undefined) {
      for (let s = 0; s < dp.stepsPerEpoch; s++) {
        const batch = computeDpSgdGradient(workspace, dp, params, data, sampling!, gradient);
        sources.onDpBatch?.(dp.rows.subarray(0, batch.batchSize));
        takeStep(epoch, batch.lossSum, batch.batchSize);
      }
      continue;
    }
    shuffleInPlace(rng, order);
    for (let start = 0; start < data.count; start += opts.batchSize) {
      const rows = order.subarray(start, Math.min(data.count, start + opts.batchSize));
      const loss = computeMinibatchGradient(workspace, params, data, rows, gradient);
      takeStep(epoch, loss * rows.length, rows.length);
    }
  }
  if (indexOfNonFinite(params) >= 0) throw diverged(opts.epochs - 1);
  return {
    weights: unflattenWeights(workspace.spec, params),
    numExamples: data.count,
    meanLoss: epochExamples > 0 ? epochLoss / epochExamples : 0,
    steps,
    ...(opts.dp === undefined ? {} : { dp: { steps, ...opts.dp } }),
  };
}

function diverged(epoch: number): EntenteError {
  return new EntenteError(
    'INVALID_CONFIG',
    `options.learningRate: training diverged (non-finite loss or weights in epoch ${epoch}); lower the learning rate`,
    { field: 'options.learningRate' },
  );
}
