/**
 * Evaluation of a built-in model on labelled data. Classifiers: mean loss (the training loss, without
 * regularization) and accuracy, where the predicted class is the argmax of the logits (lowest index
 * on ties) or, for logistic regression, 1 when sigmoid(logit) > 0.5. Regression (linear): MSE (the
 * training loss), MAE, RMSE and R² = 1 − SS_res/SS_tot, each site reporting additive sums so the
 * metrics over every site's rows are exact (`combineRegressionEvaluations`), not a mean of R²s.
 */
import type { Weights } from '../core/tensor.ts';
import { computeExampleLoss, createModelWorkspace } from './dense-network.ts';
import { flattenWeights } from './flat-parameters.ts';
import { assertValidLabeledData, type LabeledData } from './labeled-data.ts';
import { EntenteError } from '../core/errors.ts';
import { isRegressionSpec, type ModelSpec } from './model-spec.ts';
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
  if (isRegressionSpec(spec))
    throw new EntenteError(
      'INVALID_CONFIG',
      'modelSpec.kind: a linear (regression) model has no accuracy; evaluate it with evaluateRegression',
      { field: 'modelSpec.kind' },
    );
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

/** Additive sums of one site's regression evaluation: they combine across sites by adding. */
export interface RegressionSums {
  readonly numExamples: number;
  /** Σ (prediction − target)². */
  readonly sumSquaredError: number;
  /** Σ |prediction − target|. */
  readonly sumAbsoluteError: number;
  /** Σ target. */
  readonly sumTarget: number;
  /** Σ target². */
  readonly sumTargetSquared: number;
}

export interface RegressionMetrics {
  readonly numExamples: number;
  /** Mean squared error (the training loss of a linear model). */
  readonly mse: number;
  readonly mae: number;
  readonly rmse: number;
  /**
   * Coefficient of determination 1 − SS_res/SS_tot, SS_tot around the mean of these targets (as
   * scikit-learn's r2_score); null when every target is the same (SS_tot = 0).
   */
  readonly r2: number | null;
}

/**
 * Evaluates a linear model's `weights` on `data` (features and `data.target`): the metrics and the sums
 * they come from. Throws EntenteError as evaluateModel; INVALID_CONFIG for a classifier spec.
 */
export function evaluateRegression(
  spec: ModelSpec,
  weights: Weights,
  data: LabeledData,
): RegressionMetrics & { readonly sums: RegressionSums } {
  if (!isRegressionSpec(spec))
    throw new EntenteError('INVALID_CONFIG', 'modelSpec.kind: evaluateRegression needs a linear model', {
      field: 'modelSpec.kind',
    });
  const workspace = createModelWorkspace(spec);
  const params = flattenWeights(workspace.spec, weights);
  assertValidLabeledData(workspace.spec, data);
  const output = workspace.activations[workspace.layerSizes.length - 1]!;
  const target = data.target!;
  let sse = 0;
  let sae = 0;
  let sumTarget = 0;
  let sumTargetSquared = 0;
  for (let row = 0; row < data.count; row++) {
    sse += computeExampleLoss(workspace, params, data, row);
    const t = target[row]!;
    sae += Math.abs(output[0]! - t);
    sumTarget += t;
    sumTargetSquared += t * t;
  }
  const sums: RegressionSums = {
    numExamples: data.count,
    sumSquaredError: sse,
    sumAbsoluteError: sae,
    sumTarget,
    sumTargetSquared,
  };
  return { ...combineRegressionEvaluations([sums]), sums };
}

/**
 * The regression metrics over the union of every site's evaluation rows, from their sums:
 * MSE = ΣSSE/N, MAE = ΣSAE/N, RMSE = √MSE, R² = 1 − ΣSSE / (Σt² − (Σt)²/N). Throws INVALID_ARGUMENT
 * for no parts, a part with no examples or a non-finite or negative sum.
 */
export function combineRegressionEvaluations(parts: readonly RegressionSums[]): RegressionMetrics {
  if (parts.length === 0)
    throw new EntenteError('INVALID_ARGUMENT', 'parts: at least one evaluation is needed', {
      field: 'parts',
    });
  let n = 0;
  let sse = 0;
  let sae = 0;
  let st = 0;
  let stt = 0;
  parts.forEach((p, i) => {
    const ok =
      Number.isSafeInteger(p.numExamples) &&
      p.numExamples >= 1 &&
      [p.sumSquaredError, p.sumAbsoluteError, p.sumTargetSquared].every(
        (v) => Number.isFinite(v) && v >= 0,
      ) &&
      Number.isFinite(p.sumTarget);
    if (!ok)
      throw new EntenteError(
        'INVALID_ARGUMENT',
        `parts[${i}]: counts and sums must be finite (and non-negative)`,
        {
          field: `parts[${i}]`,
        },
      );
    n += p.numExamples;
    sse += p.sumSquaredError;
    sae += p.sumAbsoluteError;
    st += p.sumTarget;
    stt += p.sumTargetSquared;
  });
  const mse = sse / n;
  const ssTot = stt - (st * st) / n;
  // Σt² − (Σt)²/N loses precision when the targets' spread is tiny next to their mean: treat a total
  // sum of squares within rounding of 0 as "every target is the same".
  const constant = !(ssTot > 1e-12 * Math.max(stt, 1e-300));
  return { numExamples: n, mse, mae: sae / n, rmse: Math.sqrt(mse), r2: constant ? null : 1 - sse / ssTot };
}
