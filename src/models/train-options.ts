/**
 * Options of one local training call (part of a run's config, so validated with one zod schema).
 *   epochs, batchSize   passes over the local data and examples per step (last batch may be smaller)
 *   learningRate        step size, finite and > 0
 *   optimizer           'sgd' (with optional heavy-ball `momentum` in [0, 1)) or 'adam'
 *   l2                  L2 weight-decay coefficient (objective += l2/2·||w||²), default 0
 *   proximalMu          FedProx mu (objective += mu/2·||w − w_global||², Li et al. MLSys 2020), default 0
 */
import { z } from 'zod';
import { parseWithSchema } from './parse-with-schema.ts';

export const MAX_EPOCHS = 10_000;
export const MAX_BATCH_SIZE = 1 << 24;

export const trainOptionsSchema = z
  .strictObject({
    epochs: z.number().int().min(1).max(MAX_EPOCHS),
    batchSize: z.number().int().min(1).max(MAX_BATCH_SIZE),
    learningRate: z.number().gt(0),
    optimizer: z.enum(['sgd', 'adam']),
    momentum: z.number().min(0).lt(1).optional(),
    l2: z.number().min(0).optional(),
    proximalMu: z.number().min(0).optional(),
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
  return Object.freeze(parseWithSchema(trainOptionsSchema, input, 'INVALID_CONFIG', 'options'));
}
