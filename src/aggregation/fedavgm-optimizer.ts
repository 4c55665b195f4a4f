/**
 * The FedAvgM server step (Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution
 * for Federated Visual Classification", 2019): server momentum on the pseudo-gradient.
 *   Δ = mean − current;  v ← momentum·v + Δ;  new = current + serverLearningRate·v   (v starts at 0)
 * Flower writes the same rule with the opposite sign (pseudo-gradient current − mean, minus the step).
 */
import type { Weights } from '../core/tensor.ts';
import {
  createEmptyLike,
  createSlotLayout,
  createSlotTensors,
  type ServerOptimizer,
} from './server-optimizer.ts';

export interface FedAvgMParameters {
  readonly serverLearningRate: number;
  readonly serverMomentum: number;
}

const SLOTS = [{ slot: 'momentum', initialValue: 0 }] as const;

export function createFedAvgMOptimizer({
  serverLearningRate,
  serverMomentum,
}: FedAvgMParameters): ServerOptimizer {
  return {
    computeStateLayout: (layout) => createSlotLayout(SLOTS, layout),
    initializeStateTensors: (layout) => createSlotTensors(SLOTS, layout),
    applyStep(current: Weights, mean: Weights, stateTensors: Weights) {
      const weights = current.map((t) => createEmptyLike(t));
      const velocities = stateTensors.map((t) => createEmptyLike(t));
      for (let k = 0; k < current.length; k++) {
        const x = current[k]!.data;
        const avg = mean[k]!.data;
        const vOld = stateTensors[k]!.data;
        const out = weights[k]!.data;
        const vNew = velocities[k]!.data;
        for (let i = 0; i < x.length; i++) {
          const v = serverMomentum * vOld[i]! + (avg[i]! - x[i]!);
          vNew[i] = v;
          out[i] = x[i]! + serverLearningRate * v;
        }
      }
      return { weights, stateTensors: velocities };
    },
  };
}
