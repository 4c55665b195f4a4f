/**
 * The adaptive server steps of Reddi et al., "Adaptive Federated Optimization", ICLR 2021,
 * Algorithm 2 (FedOpt), exactly as written there (no Adam bias correction):
 *   Δ_t = mean − x_t
 *   m_t = β1·m_{t−1} + (1 − β1)·Δ_t                          (m_{−1} = 0)
 *   v_t = v_{t−1} + Δ_t²                                      FedAdagrad
 *   v_t = β2·v_{t−1} + (1 − β2)·Δ_t²                          FedAdam
 *   v_t = v_{t−1} − (1 − β2)·Δ_t²·sign(v_{t−1} − Δ_t²)        FedYogi
 *   x_{t+1} = x_t + η·m_t / (√v_t + τ)
 * with v_{−1} = τ² (the paper requires v_{−1} ≥ τ²). Flower differs here: it starts v at 0, and its
 * newer FedAdam also applies Adam's bias correction to η; results therefore differ in early rounds.
 * sign(0) = 0, as in the paper's Yogi and numpy. m_t and v_t are used at float64 precision for the
 * step of round t and stored as float32 state.
 */
import type { Weights } from '../core/tensor.ts';
import {
  createEmptyLike,
  createSlotLayout,
  createSlotTensors,
  type ServerOptimizer,
} from './server-optimizer.ts';

export type AdaptiveRule = 'adagrad' | 'adam' | 'yogi';

export interface FedOptParameters {
  readonly rule: AdaptiveRule;
  /** η, the server learning rate. */
  readonly serverLearningRate: number;
  readonly beta1: number;
  /** Unused by the Adagrad rule. */
  readonly beta2: number;
  readonly tau: number;
}

export function createFedOptOptimizer(params: FedOptParameters): ServerOptimizer {
  const { rule, serverLearningRate: eta, beta1, beta2, tau } = params;
  const slots = [
    { slot: 'm', initialValue: 0 },
    { slot: 'v', initialValue: tau * tau },
  ] as const;
  return {
    computeStateLayout: (layout) => createSlotLayout(slots, layout),
    initializeStateTensors: (layout) => createSlotTensors(slots, layout),
    applyStep(current: Weights, mean: Weights, stateTensors: Weights) {
      const n = current.length;
      const weights = current.map((t) => createEmptyLike(t));
      const next = stateTensors.map((t) => createEmptyLike(t));
      for (let k = 0; k < n; k++) {
        const x = current[k]!.data;
        const avg = mean[k]!.data;
        const mOld = stateTensors[k]!.data;
        const vOld = stateTensors[n + k]!.data;
        const out = weights[k]!.data;
        const mNew = next[k]!.data;
        const vNew = next[n + k]!.data;
        for (let i = 0; i < x.length; i++) {
          const delta = avg[i]! - x[i]!;
          const delta2 = delta * delta;
          const m = beta1 * mOld[i]! + (1 - beta1) * delta;
          const vPrev = vOld[i]!;
          let v: number;
          if (rule === 'adam') v = beta2 * vPrev + (1 - beta2) * delta2;
          else if (rule === 'yogi') v = vPrev - (1 - beta2) * delta2 * Math.sign(vPrev - delta2);
          else v = vPrev + delta2;
          mNew[i] = m;
          vNew[i] = v;
          out[i] = x[i]! + (eta * m) / (Math.sqrt(v) + tau);
        }
      }
      return { weights, stateTensors: next };
    },
  };
}
