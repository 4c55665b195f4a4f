/**
 * Predictions of a built-in model for feature rows: class probabilities (sigmoid for logistic,
 * softmax otherwise, computed stably) and predicted classes (argmax, lowest index on ties; logistic:
 * 1 exactly when the logit is > 0, i.e. probability > 0.5).
 */
import { EntenteError } from '../core/errors.ts';
import type { Weights } from '../core/tensor.ts';
import { computeLogits, createModelWorkspace } from './dense-network.ts';
import { flattenWeights } from './flat-parameters.ts';
import { countOutputs, isRegressionSpec, type ModelSpec } from './model-spec.ts';

/**
 * Probabilities for each row of the row-major `x` (a multiple of inputDim elements): logistic gives
 * one value per row, P(y = 1); softmax and mlp give numClasses values per row, summing to 1.
 * Throws EntenteError: INVALID_TENSOR (weights), INVALID_DATA (x length or a non-finite feature).
 */
export function predictProbabilities(spec: ModelSpec, weights: Weights, x: Float32Array): Float32Array {
  if (isRegressionSpec(spec)) refuseKind('a linear model predicts values (predictValues), not probabilities');
  const { workspace, params, rows } = prepare(spec, weights, x);
  const outputs = countOutputs(workspace.spec);
  const out = new Float32Array(rows * outputs);
  for (let row = 0; row < rows; row++) {
    const z = computeLogits(workspace, params, x, row);
    const base = row * outputs;
    if (outputs === 1) {
      const logit = z[0]!;
      const e = Math.exp(-Math.abs(logit));
      out[base] = logit >= 0 ? 1 / (1 + e) : e / (1 + e);
      continue;
    }
    let max = z[0]!;
    for (let k = 1; k < outputs; k++) if (z[k]! > max) max = z[k]!;
    let sum = 0;
    for (let k = 0; k < outputs; k++) sum += Math.exp(z[k]! - max);
    for (let k = 0; k < outputs; k++) out[base + k] = Math.exp(z[k]! - max) / sum;
  }
  return out;
}

/** Predicted value of each row of `x` under a linear (regression) model. Throws as predictProbabilities. */
export function predictValues(spec: ModelSpec, weights: Weights, x: Float32Array): Float32Array {
  if (!isRegressionSpec(spec)) refuseKind('predictValues needs a linear model');
  const { workspace, params, rows } = prepare(spec, weights, x);
  const out = new Float32Array(rows);
  for (let row = 0; row < rows; row++) out[row] = computeLogits(workspace, params, x, row)[0]!;
  return out;
}

function refuseKind(message: string): never {
  throw new EntenteError('INVALID_CONFIG', `modelSpec.kind: ${message}`, { field: 'modelSpec.kind' });
}

/** Predicted class of each row of `x`. Throws as predictProbabilities. */
export function predictClasses(spec: ModelSpec, weights: Weights, x: Float32Array): Int32Array {
  if (isRegressionSpec(spec)) refuseKind('a linear model predicts values (predictValues), not classes');
  const { workspace, params, rows } = prepare(spec, weights, x);
  const out = new Int32Array(rows);
  for (let row = 0; row < rows; row++) out[row] = selectClass(computeLogits(workspace, params, x, row));
  return out;
}

/** The class a vector of logits predicts: argmax (lowest index on ties), or [logit > 0] for one logit. */
export function selectClass(logits: Float64Array): number {
  if (logits.length === 1) return logits[0]! > 0 ? 1 : 0;
  let best = 0;
  for (let k = 1; k < logits.length; k++) if (logits[k]! > logits[best]!) best = k;
  return best;
}

function prepare(spec: ModelSpec, weights: Weights, x: Float32Array) {
  const workspace = createModelWorkspace(spec);
  const params = flattenWeights(workspace.spec, weights);
  const dim = workspace.spec.inputDim;
  if (!(x instanceof Float32Array) || x.length % dim !== 0) {
    throw new EntenteError('INVALID_DATA', `x: must be a Float32Array of rows × ${dim} features`, {
      field: 'x',
    });
  }
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v - v !== 0) {
      const row = Math.floor(i / dim);
      throw new EntenteError('INVALID_DATA', `x[${row}]: row ${row} has a non-finite feature`, {
        field: `x[${row}]`,
      });
    }
  }
  return { workspace, params, rows: x.length / dim };
}
