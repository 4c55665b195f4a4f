/**
 * Evaluation of a built-in model on labelled data: mean loss (the training loss, without
 * regularization) and accuracy, where the predicted class is the argmax of the logits (lowest index
 * on ties) or, for logistic regression, 1 when sigmoid(logit) > 0.5.
 */
import type { Weights } from '../core/tensor.ts';
import { computeExampleLoss, createModelWorkspace } from './dense-network.ts';
import { flattenWeights } from './flat-parameters.ts';
import { assertValidLabeledData, type LabeledData } from './labeled-data.ts';
import type { ModelSpec } from './model-spec.ts';
import { selectClass } from './predict.ts';

export interface EvaluationResult {
  /** Mean per-example loss (binary or categorical cross-entropy, nats). */
  readonly loss: number;
  /** Fraction of examples whose predicted class equals the label, in [0, 1]. */
  readonly accuracy: number;
  readonly numExamples: number;
}

/**
 * Evaluates `weights` on `data`. Throws EntenteError: INVALID_CONFIG (spec), INVALID_TENSOR (weights
 * do not match the layout), INVALID_DATA (data does not fit the spec, naming the row).
 */
export function evaluateModel(spec: ModelSpec, weights: Weights, data: LabeledData): EvaluationResult {
  const workspace = createModelWorkspace(spec);
  const params = flattenWeights(workspace.spec, weights);
  assertValidLabeledData(workspace.spec, data);
  const logits = workspace.activations[workspace.layerSizes.length - 1]!;
  let lossSum = 0;
  let correct = 0;
  for (let row = 0; row < data.count; row++) {
    // computeExampleLoss leaves the example's logits in the workspace's output buffer.
    lossSum += computeExampleLoss(workspace, params, data, row);
    if (selectClass(logits) === data.y[row]!) correct++;
  }
  return { loss: lossSum / data.count, accuracy: correct / data.count, numExamples: data.count };
}
