/**
 * The built-in trainer: hand-written Float32Array models (logistic, softmax, MLP) trained in-process.
 * Its id names the number format and the version of the training semantics, so a change that alters
 * results for the same seed must bump it.
 */
import { evaluateModel } from './evaluate-model.ts';
import { initializeWeights } from './initialize-weights.ts';
import { describeLayout, parseModelSpec } from './model-spec.ts';
import { trainLocally } from './train-locally.ts';
import type { Trainer } from './trainer.ts';

export const BUILTIN_TRAINER_ID = 'builtin/float32@1';

/** Trainer backed by trainLocally / evaluateModel; every method validates its inputs (see those). */
export const builtinTrainer: Trainer = Object.freeze<Trainer>({
  id: BUILTIN_TRAINER_ID,
  describeLayout: (spec) => describeLayout(parseModelSpec(spec)),
  initializeWeights,
  train: trainLocally,
  evaluate: evaluateModel,
});
