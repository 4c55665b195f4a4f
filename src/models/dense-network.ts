/**
 * Forward and backward passes of the built-in models (model-spec.ts) on a flat Float32Array of
 * parameters, one example at a time, into buffers preallocated once per workspace: no allocation per
 * example. Logistic and softmax regression are the zero-hidden-layer case of the same dense network.
 *
 * Losses (per example, natural log):
 *   logistic  binary cross-entropy with logits, computed as max(z,0) − y·z + log1p(exp(−|z|))
 *             (stable log-sigmoid); dL/dz = sigmoid(z) − y
 *   softmax   cross-entropy via log-sum-exp with the max subtracted; dL/dz_k = softmax(z)_k − [k = y]
 *   linear    squared error (z − t)² against the row's continuous target t; dL/dz = 2(z − t)
 * Backpropagation is the textbook chain rule (Rumelhart, Hinton & Williams 1986). Per-example gradients
 * are what DP-SGD clips (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016), so they
 * are exported as a primitive: `computeExampleGradient` writes one example's gradient in layout order.
 */
import { EntenteError } from '../core/errors.ts';
import type { LabeledData } from './labeled-data.ts';
import { computeLayerSizes, countClasses, type ModelSpec, parseModelSpec } from './model-spec.ts';

/**
 * Preallocated scratch for one model spec. Not shareable between concurrent computations; the
 * buffers are internal (read `spec` and `parameterCount` only).
 */
export interface ModelWorkspace {
  readonly spec: ModelSpec;
  /** Length of the flat parameter (and gradient) vector. */
  readonly parameterCount: number;
  readonly layerSizes: readonly number[];
  readonly weightOffsets: readonly number[];
  readonly biasOffsets: readonly number[];
  /** activations[0] is the input row, activations[L] the logits. */
  readonly activations: readonly Float64Array[];
  /** deltas[l] = dLoss/d(pre-activation of layer l); deltas[0] is unused. */
  readonly deltas: readonly Float64Array[];
  readonly relu: boolean;
  readonly binary: boolean;
  /** Linear regression: squared loss against `data.target`. */
  readonly regression: boolean;
  readonly numClasses: number;
}

/** Validates `spec` (INVALID_CONFIG naming the field) and allocates the scratch buffers for it. */
export function createModelWorkspace(spec: ModelSpec): ModelWorkspace {
  const parsed = parseModelSpec(spec);
  const layerSizes = computeLayerSizes(parsed);
  const weightOffsets: number[] = [];
  const biasOffsets: number[] = [];
  let offset = 0;
  for (let l = 0; l + 1 < layerSizes.length; l++) {
    weightOffsets.push(offset);
    offset += layerSizes[l]! * layerSizes[l + 1]!;
    biasOffsets.push(offset);
    offset += layerSizes[l + 1]!;
  }
  return {
    spec: parsed,
    parameterCount: offset,
    layerSizes,
    weightOffsets,
    biasOffsets,
    activations: layerSizes.map((n) => new Float64Array(n)),
    deltas: layerSizes.map((n, l) => new Float64Array(l === 0 ? 0 : n)),
    relu: parsed.kind === 'mlp' && parsed.activation === 'relu',
    binary: parsed.kind === 'logistic',
    regression: parsed.kind === 'linear',
    numClasses: countClasses(parsed),
  };
}

/**
 * Loss of example `row` of `data` at `params`. Throws EntenteError on a params/data mismatch or a
 * label out of range (INVALID_DATA naming the row).
 */
export function computeExampleLoss(
  workspace: ModelWorkspace,
  params: Float32Array,
  data: LabeledData,
  row: number,
): number {
  checkCall(workspace, params, data, undefined);
  checkRow(data, row);
  forwardExample(workspace, params, data.x, row * data.dim);
  return computeOutputLoss(workspace, labelOf(workspace, data, row), row);
}

/**
 * Writes the gradient of the loss of the single example `row` into `gradientOut` (flat, layout
 * order, length parameterCount; overwritten) and returns that example's loss. No regularization term.
 */
export function computeExampleGradient(
  workspace: ModelWorkspace,
  params: Float32Array,
  data: LabeledData,
  row: number,
  gradientOut: Float32Array,
): number {
  checkCall(workspace, params, data, gradientOut);
  checkRow(data, row);
  gradientOut.fill(0);
  forwardExample(workspace, params, data.x, row * data.dim);
  const loss = computeOutputLoss(workspace, labelOf(workspace, data, row), row);
  backwardExample(workspace, params, 1, gradientOut);
  return loss;
}

/**
 * Writes the gradient of the mean loss over the examples `rows` (indices into `data`, at least one)
 * into `gradientOut` (overwritten) and returns that mean loss. No regularization term.
 */
export function computeMinibatchGradient(
  workspace: ModelWorkspace,
  params: Float32Array,
  data: LabeledData,
  rows: Int32Array,
  gradientOut: Float32Array,
): number {
  checkCall(workspace, params, data, gradientOut);
  if (rows.length === 0)
    throw new EntenteError('INVALID_ARGUMENT', 'rows: must not be empty', { field: 'rows' });
  gradientOut.fill(0);
  const scale = 1 / rows.length;
  const { x, dim } = data;
  let lossSum = 0;
  for (let k = 0; k < rows.length; k++) {
    const row = rows[k]!;
    checkRow(data, row);
    forwardExample(workspace, params, x, row * dim);
    lossSum += computeOutputLoss(workspace, labelOf(workspace, data, row), row);
    backwardExample(workspace, params, scale, gradientOut);
  }
  return lossSum * scale;
}

/**
 * Logits of row `row` of the row-major feature matrix `x` (inputDim columns). Returns the workspace's
 * own buffer, overwritten by the next call on this workspace.
 */
export function computeLogits(
  workspace: ModelWorkspace,
  params: Float32Array,
  x: Float32Array,
  row: number,
): Float64Array {
  const dim = workspace.spec.inputDim;
  checkParams(workspace, params);
  if (!Number.isInteger(row) || row < 0 || (row + 1) * dim > x.length) {
    throw new EntenteError('INVALID_ARGUMENT', `row: ${row} is outside x`, { field: 'row' });
  }
  forwardExample(workspace, params, x, row * dim);
  return workspace.activations[workspace.layerSizes.length - 1]!;
}

function checkParams(ws: ModelWorkspace, params: Float32Array): void {
  if (params.length !== ws.parameterCount) {
    throw new EntenteError('INVALID_ARGUMENT', `params: expected ${ws.parameterCount} elements`, {
      field: 'params',
    });
  }
}

function checkCall(
  ws: ModelWorkspace,
  params: Float32Array,
  data: LabeledData,
  gradientOut: Float32Array | undefined,
): void {
  checkParams(ws, params);
  if (gradientOut !== undefined && gradientOut.length !== ws.parameterCount) {
    throw new EntenteError('INVALID_ARGUMENT', `gradientOut: expected ${ws.parameterCount} elements`, {
      field: 'gradientOut',
    });
  }
  if (data.dim !== ws.spec.inputDim) {
    throw new EntenteError('INVALID_DATA', `data.dim: must equal inputDim (${ws.spec.inputDim})`, {
      field: 'data.dim',
    });
  }
  if (data.x.length < data.count * data.dim || data.y.length < data.count) {
    throw new EntenteError('INVALID_DATA', 'data: x or y is shorter than count rows', { field: 'data' });
  }
  if (ws.regression && !(data.target instanceof Float32Array && data.target.length >= data.count)) {
    throw new EntenteError('INVALID_DATA', 'data.target: a linear model needs one target per row', {
      field: 'data.target',
    });
  }
}

/** The row's class label, or its continuous target for a regression model. */
function labelOf(ws: ModelWorkspace, data: LabeledData, row: number): number {
  return ws.regression ? data.target![row]! : data.y[row]!;
}

function checkRow(data: LabeledData, row: number): void {
  if (!(Number.isInteger(row) && row >= 0 && row < data.count)) {
    throw new EntenteError('INVALID_ARGUMENT', `row: ${row} is outside [0, ${data.count})`, { field: 'row' });
  }
}

/** Fills activations[1..L] from the input row x[base .. base+inputDim). */
function forwardExample(ws: ModelWorkspace, params: Float32Array, x: Float32Array, base: number): void {
  const { layerSizes, activations, weightOffsets, biasOffsets, relu } = ws;
  const last = layerSizes.length - 1;
  const a0 = activations[0]!;
  const n0 = layerSizes[0]!;
  for (let i = 0; i < n0; i++) a0[i] = x[base + i]!;
  for (let l = 1; l <= last; l++) {
    const input = activations[l - 1]!;
    const out = activations[l]!;
    const nIn = layerSizes[l - 1]!;
    const nOut = layerSizes[l]!;
    const wo = weightOffsets[l - 1]!;
    const bo = biasOffsets[l - 1]!;
    const hidden = l < last;
    for (let j = 0; j < nOut; j++) {
      const rowStart = wo + j * nIn;
      let s = params[bo + j]!;
      for (let i = 0; i < nIn; i++) s += params[rowStart + i]! * input[i]!;
      out[j] = !hidden ? s : relu ? Math.max(s, 0) : Math.tanh(s);
    }
  }
}

/** Loss of the logits in activations[L] against `label`; also writes deltas[L] = dLoss/dLogits. */
function computeOutputLoss(ws: ModelWorkspace, label: number, row: number): number {
  const last = ws.layerSizes.length - 1;
  if (ws.regression) {
    if (label - label !== 0) {
      throw new EntenteError('INVALID_DATA', `data.target[${row}]: the target at row ${row} is not finite`, {
        field: `data.target[${row}]`,
      });
    }
    const residual = ws.activations[last]![0]! - label;
    ws.deltas[last]![0] = 2 * residual;
    return residual * residual;
  }
  if (!(label >= 0 && label < ws.numClasses)) {
    throw new EntenteError(
      'INVALID_DATA',
      `data.y[${row}]: the label at row ${row} is outside [0, ${ws.numClasses})`,
      {
        field: `data.y[${row}]`,
      },
    );
  }
  const z = ws.activations[last]!;
  const delta = ws.deltas[last]!;
  if (ws.binary) {
    const logit = z[0]!;
    const e = Math.exp(-Math.abs(logit)); // in (0, 1]: never overflows
    delta[0] = (logit >= 0 ? 1 / (1 + e) : e / (1 + e)) - label;
    return Math.max(logit, 0) - label * logit + Math.log1p(e);
  }
  const n = z.length;
  let max = z[0]!;
  for (let k = 1; k < n; k++) if (z[k]! > max) max = z[k]!;
  let sum = 0;
  for (let k = 0; k < n; k++) {
    const e = Math.exp(z[k]! - max);
    delta[k] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let k = 0; k < n; k++) delta[k] = delta[k]! * inv;
  delta[label] = delta[label]! - 1;
  return max + Math.log(sum) - z[label]!;
}

/** Adds scale × (gradient of this example's loss) into g, from deltas[L] back to the input layer. */
function backwardExample(ws: ModelWorkspace, params: Float32Array, scale: number, g: Float32Array): void {
  const { layerSizes, activations, deltas, weightOffsets, biasOffsets, relu } = ws;
  for (let l = layerSizes.length - 1; l >= 1; l--) {
    const nIn = layerSizes[l - 1]!;
    const nOut = layerSizes[l]!;
    const input = activations[l - 1]!;
    const delta = deltas[l]!;
    const prev = deltas[l - 1]!;
    const wo = weightOffsets[l - 1]!;
    const bo = biasOffsets[l - 1]!;
    const propagate = l > 1;
    if (propagate) prev.fill(0);
    for (let j = 0; j < nOut; j++) {
      const d = delta[j]!;
      if (d === 0) continue; // inactive ReLU unit: contributes nothing
      const ds = d * scale;
      const rowStart = wo + j * nIn;
      g[bo + j] = g[bo + j]! + ds;
      if (propagate) {
        for (let i = 0; i < nIn; i++) {
          g[rowStart + i] = g[rowStart + i]! + ds * input[i]!;
          prev[i] = prev[i]! + params[rowStart + i]! * d;
        }
      } else {
        for (let i = 0; i < nIn; i++) g[rowStart + i] = g[rowStart + i]! + ds * input[i]!;
      }
    }
    if (propagate) {
      // input holds post-activation values: relu' = [a > 0], tanh' = 1 − a².
      if (relu) {
        for (let i = 0; i < nIn; i++) if (!(input[i]! > 0)) prev[i] = 0;
      } else {
        for (let i = 0; i < nIn; i++) prev[i] = prev[i]! * (1 - input[i]! * input[i]!);
      }
    }
  }
}
