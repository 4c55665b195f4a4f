/**
 * Options of one local training call (part of a run's config, so validated with one zod schema).
 *   epochs, batchSize   passes over the local data and examples per step (last batch may be smaller)
 *   learningRate        step size, finite and > 0
 *   optimizer           'sgd' (with optional heavy-ball `momentum` in [0, 1)) or 'adam'
 *   l2                  L2 weight-decay coefficient (objective += l2/2·||w||²), default 0
 *   proximalMu          FedProx mu (objective += mu/2·||w − w_global||², Li et al. MLSys 2020), default 0
 *   dp                  optional sample-level DP-SGD (dp-sgd.ts): { clipNorm > 0, noiseMultiplier >= 0,
 *                       samplingRate in (0, 1] (at least MIN_DP_SAMPLING_RATE) }; when set, batches are
 *                       Poisson-sampled and batchSize is not used
 */
import { z } from 'zod';
import { MIN_DP_SAMPLING_RATE } from './dp-sgd.ts';
import { parseWithSchema } from './parse-with-schema.ts';

export const MAX_EPOCHS = 10_000;
export const MAX_BATCH_SIZE = 1 << 24;

export const dpSgdOptionsSchema = z.strictObject({
  clipNorm: z.number().gt(0),
  noiseMultiplier: z.number().min(0),
  samplingRate: z.number().min(MIN_DP_SAMPLING_RATE).max(1),
});

export const trainOptionsSchema = z
  .strictObject({
    epochs: z.number().int().min(1).max(MAX_EPOCHS),
    batchSize: z.number().int().min(1).max(MAX_BATCH_SIZE),
    learningRate: z.number().gt(0),
    optimizer: z.enum(['sgd', 'adam']),
    momentum: z.number().min(0).lt(1).optional(),
    l2: z.number().min(0).optional(),
    proximalMu: z.number().min(0).optional(),
    dp: dpSgdOptionsSchema.optional(),
  })
  .superRefine((o, ctx) => {
    if (o.optimizer === 'adam' && o.momentum !== undefined && o.momentum > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['momentum'],
        message: "applies only to optimizer 'sgd' (Adam uses its own first-moment estimate)",
      });
    }
  });

export type TrainOptions = Readonly<z.infer<typeof trainOptionsSchema>>;

/**
 * Validates untrusted training options and returns a frozen copy. Throws EntenteError('INVALID_CONFIG')
 * whose `field` names the offending option (e.g. `options.learningRate`).
 */
export function parseTrainOptions(input: unknown): TrainOptions {
  const options = parseWithSchema(trainOptionsSchema, input, 'INVALID_CONFIG', 'options');
  if (options.dp !== undefined) Object.freeze(options.dp);
  return Object.freeze(options);
}
