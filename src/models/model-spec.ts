/**
 * The built-in model family and its tensor layout. A model spec is data (it travels in the run config
 * and is logged), so it has one zod schema; `describeLayout` fixes the names, shapes and order of the
 * tensors every participant exchanges.
 *
 *   logistic  binary logistic regression: one logit, sigmoid + binary cross-entropy, labels 0/1
 *   softmax   multinomial logistic regression: numClasses logits, softmax + cross-entropy
 *   mlp       1 or 2 hidden dense layers (ReLU or tanh), softmax + cross-entropy output
 *   linear    linear regression: one output, squared loss (z − t)² against a continuous target t
 *
 * Every layer is dense: `dense{l}.weight` has shape [out, in] (row-major, one row per output unit) and
 * `dense{l}.bias` has shape [out], for l = 0, 1, ... from the input to the output.
 */
import { z } from 'zod';
import type { TensorLayout } from '../core/tensor.ts';
import { parseWithSchema } from './parse-with-schema.ts';

/** Largest accepted feature count, class count, hidden width and total parameter count. */
export const MAX_INPUT_DIM = 1 << 20;
export const MAX_NUM_CLASSES = 1 << 16;
export const MAX_HIDDEN_UNITS = 1 << 16;
export const MAX_PARAMETERS = 1 << 26;

export type HiddenActivation = 'relu' | 'tanh';

export interface LinearSpec {
  readonly kind: 'linear';
  readonly inputDim: number;
}

export interface LogisticSpec {
  readonly kind: 'logistic';
  readonly inputDim: number;
}

export interface SoftmaxSpec {
  readonly kind: 'softmax';
  readonly inputDim: number;
  readonly numClasses: number;
}

export interface MlpSpec {
  readonly kind: 'mlp';
  readonly inputDim: number;
  readonly numClasses: number;
  readonly hidden: readonly [number] | readonly [number, number];
  readonly activation: HiddenActivation;
}

export type ModelSpec = LogisticSpec | SoftmaxSpec | MlpSpec | LinearSpec;

const inputDimSchema = z.number().int().min(1).max(MAX_INPUT_DIM);
const numClassesSchema = z.number().int().min(2).max(MAX_NUM_CLASSES);

/** Schema of a model spec (unknown keys rejected; total parameter count at most MAX_PARAMETERS). */
export const modelSpecSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('logistic'), inputDim: inputDimSchema }),
    z.strictObject({ kind: z.literal('linear'), inputDim: inputDimSchema }),
    z.strictObject({ kind: z.literal('softmax'), inputDim: inputDimSchema, numClasses: numClassesSchema }),
    z.strictObject({
      kind: z.literal('mlp'),
      inputDim: inputDimSchema,
      numClasses: numClassesSchema,
      hidden: z.array(z.number().int().min(1).max(MAX_HIDDEN_UNITS)).min(1).max(2),
      activation: z.enum(['relu', 'tanh']),
    }),
  ])
  .superRefine((spec, ctx) => {
    if (countSpecParameters(spec as ModelSpec) > MAX_PARAMETERS) {
      ctx.addIssue({
        code: 'custom',
        path: spec.kind === 'mlp' ? ['hidden'] : ['inputDim'],
        message: `the model would have more than ${MAX_PARAMETERS} parameters`,
      });
    }
  });

/**
 * Validates an untrusted model spec and returns a frozen copy.
 * Throws EntenteError('INVALID_CONFIG') whose `field` names the offending field (e.g. `modelSpec.hidden.1`).
 */
export function parseModelSpec(input: unknown): ModelSpec {
  const parsed = parseWithSchema(modelSpecSchema, input, 'INVALID_CONFIG', 'modelSpec');
  if (parsed.kind === 'mlp') Object.freeze(parsed.hidden);
  // The schema checked hidden has 1 or 2 entries, so the tuple type holds.
  return Object.freeze(parsed) as ModelSpec;
}

/** Number of outputs of the last layer: 1 for logistic (a logit) and linear (the prediction), numClasses otherwise. */
export function countOutputs(spec: ModelSpec): number {
  return spec.kind === 'logistic' || spec.kind === 'linear' ? 1 : spec.numClasses;
}

/** Number of label values: 2 for logistic (labels 0/1), numClasses for softmax and mlp, 0 for linear (no classes). */
export function countClasses(spec: ModelSpec): number {
  if (spec.kind === 'linear') return 0;
  return spec.kind === 'logistic' ? 2 : spec.numClasses;
}

/** True for a regression model (continuous targets, `LabeledData.target`), false for a classifier. */
export function isRegressionSpec(spec: ModelSpec): spec is LinearSpec {
  return spec.kind === 'linear';
}

/** Widths of every layer from the input to the output, e.g. [inputDim, h1, numClasses]. */
export function computeLayerSizes(spec: ModelSpec): number[] {
  const hidden = spec.kind === 'mlp' ? [...spec.hidden] : [];
  return [spec.inputDim, ...hidden, countOutputs(spec)];
}

/** The tensors of `spec` in their fixed order: dense0.weight [out,in], dense0.bias [out], dense1... */
export function describeLayout(spec: ModelSpec): TensorLayout[] {
  const sizes = computeLayerSizes(spec);
  const layout: TensorLayout[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    layout.push({ name: `dense${l}.weight`, shape: [sizes[l + 1]!, sizes[l]!] });
    layout.push({ name: `dense${l}.bias`, shape: [sizes[l + 1]!] });
  }
  return layout;
}

function countSpecParameters(spec: ModelSpec): number {
  const sizes = computeLayerSizes(spec);
  let n = 0;
  for (let l = 0; l + 1 < sizes.length; l++) n += (sizes[l]! + 1) * sizes[l + 1]!;
  return n;
}
