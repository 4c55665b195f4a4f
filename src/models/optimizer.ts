/**
 * First-order optimizers over a flat Float32Array of parameters, with state preallocated once:
 *   sgd   w ← w − lr·v,  v ← momentum·v + g   (heavy-ball momentum, PyTorch convention; momentum 0 = plain SGD)
 *   adam  Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Algorithm 1, with bias
 *         correction: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², w ← w − lr·m̂/(√v̂ + ε),
 *         m̂ = m/(1−β1^t), v̂ = v/(1−β2^t); β1 = 0.9, β2 = 0.999, ε = 1e-8 (the paper's defaults).
 * State lives for one local training call (a fresh optimizer per round, as in FedAvg / FedProx).
 */
import { EntenteError } from '../core/errors.ts';

export type OptimizerKind = 'sgd' | 'adam';

export const ADAM_BETA1 = 0.9;
export const ADAM_BETA2 = 0.999;
export const ADAM_EPSILON = 1e-8;

export interface OptimizerState {
  readonly kind: OptimizerKind;
  readonly learningRate: number;
  readonly momentum: number;
  /** sgd: velocity (empty when momentum is 0); adam: first moment m. */
  readonly first: Float32Array;
  /** adam: second moment v; sgd: empty. */
  readonly second: Float32Array;
  /** Number of steps taken so far. */
  step: number;
}

/**
 * Creates zeroed optimizer state for `parameterCount` parameters. Throws EntenteError('INVALID_ARGUMENT')
 * naming the field for a learning rate that is not finite and > 0, or momentum outside [0, 1).
 */
export function createOptimizerState(
  options: { readonly optimizer: OptimizerKind; readonly learningRate: number; readonly momentum?: number },
  parameterCount: number,
): OptimizerState {
  const { optimizer, learningRate } = options;
  const momentum = options.momentum ?? 0;
  if (optimizer !== 'sgd' && optimizer !== 'adam') throw invalid('optimizer', "must be 'sgd' or 'adam'");
  if (!(learningRate > 0 && Number.isFinite(learningRate)))
    throw invalid('learningRate', 'must be finite and > 0');
  if (!(momentum >= 0 && momentum < 1)) throw invalid('momentum', 'must be in [0, 1)');
  if (!Number.isSafeInteger(parameterCount) || parameterCount < 0) {
    throw invalid('parameterCount', 'must be a non-negative integer');
  }
  const adam = optimizer === 'adam';
  return {
    kind: optimizer,
    learningRate,
    momentum,
    first: new Float32Array(adam || momentum > 0 ? parameterCount : 0),
    second: new Float32Array(adam ? parameterCount : 0),
    step: 0,
  };
}

/** Takes one step: updates `params` in place from `gradient` (same length) and advances `state`. */
export function applyOptimizerStep(
  state: OptimizerState,
  params: Float32Array,
  gradient: Float32Array,
): void {
  const n = params.length;
  if (gradient.length !== n) throw invalid('gradient', 'must have the length of params');
  if (state.kind === 'adam' ? state.first.length !== n : state.momentum > 0 && state.first.length !== n) {
    throw invalid('params', 'length does not match the optimizer state');
  }
  state.step += 1;
  const lr = state.learningRate;
  if (state.kind === 'adam') {
    const m = state.first;
    const v = state.second;
    const correction1 = 1 - ADAM_BETA1 ** state.step;
    const correction2 = 1 - ADAM_BETA2 ** state.step;
    for (let k = 0; k < n; k++) {
      const g = gradient[k]!;
      const mk = ADAM_BETA1 * m[k]! + (1 - ADAM_BETA1) * g;
      const vk = ADAM_BETA2 * v[k]! + (1 - ADAM_BETA2) * g * g;
      m[k] = mk;
      v[k] = vk;
      params[k] = params[k]! - (lr * (mk / correction1)) / (Math.sqrt(vk / correction2) + ADAM_EPSILON);
    }
  } else if (state.momentum > 0) {
    const velocity = state.first;
    const mu = state.momentum;
    for (let k = 0; k < n; k++) {
      const vk = mu * velocity[k]! + gradient[k]!;
      velocity[k] = vk;
      params[k] = params[k]! - lr * vk;
    }
  } else {
    for (let k = 0; k < n; k++) params[k] = params[k]! - lr * gradient[k]!;
  }
}

function invalid(field: string, message: string): EntenteError {
  return new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}
