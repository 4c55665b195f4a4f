/**
 * The FedAvg server step (McMahan et al., "Communication-Efficient Learning of Deep Networks from
 * Decentralized Data", AISTATS 2017), also used by FedProx (Li et al., MLSys 2020), whose change is
 * on the participant side only: new global model = example-weighted mean of the returned models.
 */
import type { Weights } from '../core/tensor.ts';
import type { ServerOptimizer } from './server-optimizer.ts';

/** A stateless optimizer whose step returns a copy of `mean`. */
export function createFedAvgOptimizer(): ServerOptimizer {
  return {
    computeStateLayout: () => [],
    initializeStateTensors: () => [],
    applyStep(_current: Weights, mean: Weights) {
      return {
        weights: mean.map((t) => ({ name: t.name, shape: [...t.shape], data: new Float32Array(t.data) })),
        stateTensors: [],
      };
    },
  };
}
