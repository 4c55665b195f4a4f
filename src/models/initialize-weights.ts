/**
 * Deterministic initial weights from a given Rng. Weights are uniform in [−limit, limit):
 *   Glorot/Xavier uniform, limit = √(6 / (fanIn + fanOut))  (Glorot & Bengio, AISTATS 2010), for
 *     layers feeding tanh, the sigmoid or the softmax;
 *   He/Kaiming uniform, limit = √(6 / fanIn)  (He et al., ICCV 2015), for layers feeding a ReLU.
 * Biases are zero. Draws happen in layout order, row-major, one nextFloat64 per weight, so the same
 * seed gives the same bytes.
 */
import type { Rng } from '../core/rng.ts';
import type { Tensor } from '../core/tensor.ts';
import { computeLayerSizes, describeLayout, type ModelSpec, parseModelSpec } from './model-spec.ts';

/** Fresh weights for `spec` in layout order. Throws EntenteError('INVALID_CONFIG') on an invalid spec. */
export function initializeWeights(spec: ModelSpec, rng: Rng): Tensor[] {
  const parsed = parseModelSpec(spec);
  const sizes = computeLayerSizes(parsed);
  const layout = describeLayout(parsed);
  const relu = parsed.kind === 'mlp' && parsed.activation === 'relu';
  const tensors: Tensor[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const fanIn = sizes[l]!;
    const fanOut = sizes[l + 1]!;
    const feedsRelu = relu && l + 2 < sizes.length;
    const limit = feedsRelu ? Math.sqrt(6 / fanIn) : Math.sqrt(6 / (fanIn + fanOut));
    const weight = new Float32Array(fanIn * fanOut);
    for (let k = 0; k < weight.length; k++) weight[k] = (2 * rng.nextFloat64() - 1) * limit;
    const weightLayout = layout[2 * l]!;
    const biasLayout = layout[2 * l + 1]!;
    tensors.push({ name: weightLayout.name, shape: [...weightLayout.shape], data: weight });
    tensors.push({ name: biasLayout.name, shape: [...biasLayout.shape], data: new Float32Array(fanOut) });
  }
  return tensors;
}
