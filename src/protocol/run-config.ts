/**
 * The run configuration: one schema, parsed once, cross-field rules checked, then frozen
 * (DESIGN.md §5). It composes the model spec (models) and the strategy config (aggregation).
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { type StrategyConfig, parseStrategyConfig } from '../aggregation/index.ts';
import { type ModelSpec, parseModelSpec, parseTrainOptions } from '../models/index.ts';
import { parseMessage } from './messages.ts';

const runConfigInputSchema = z.strictObject({
  id: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "_" or "-"'),
  model: z.unknown(),
  strategy: z.unknown(),
  rounds: z.number().int().min(1).max(100_000),
  minParticipants: z.number().int().min(1).max(10_000).default(2),
  train: z.strictObject({
    epochs: z.number().int().min(1).max(1000).default(1),
    batchSize: z.number().int().min(1).max(1_000_000).default(32),
    learningRate: z.number().finite().positive().default(0.05),
    optimizer: z.enum(['sgd', 'adam']).default('sgd'),
    momentum: z.number().finite().min(0).max(1).optional(),
    l2: z.number().finite().min(0).optional(),
  }),
  standardize: z.enum(['federated', 'none']).default('none'),
  evaluate: z.boolean().default(true),
  roundTimeoutMs: z.number().int().min(100).max(86_400_000).default(120_000),
  seed: z.string().min(1).max(200).default('entente'),
  dataSchemaDigest: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

export interface RunConfig {
  readonly id: string;
  readonly model: ModelSpec;
  readonly strategy: StrategyConfig;
  readonly rounds: number;
  readonly minParticipants: number;
  readonly train: z.infer<typeof runConfigInputSchema>['train'];
  readonly standardize: 'federated' | 'none';
  readonly evaluate: boolean;
  readonly roundTimeoutMs: number;
  readonly seed: string;
  readonly dataSchemaDigest?: string | undefined;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Parses and freezes a run configuration; throws INVALID_CONFIG naming the field. */
export function parseRunConfig(input: unknown): RunConfig {
  let base: z.infer<typeof runConfigInputSchema>;
  try {
    base = parseMessage(runConfigInputSchema, input, 'run');
  } catch (err) {
    if (err instanceof EntenteError)
      throw new EntenteError('INVALID_CONFIG', err.message, { field: err.field ?? 'run' });
    throw err;
  }
  const model = parseModelSpec(base.model);
  const strategy = parseStrategyConfig(base.strategy);
  // Cross-field rules: a run that could never make progress is refused up front.
  parseTrainOptions({ ...base.train, proximalMu: 0 });
  if (strategy.minTrainParticipants < base.minParticipants) {
    throw new EntenteError(
      'INVALID_CONFIG',
      `strategy.minTrainParticipants (${strategy.minTrainParticipants}) must be at least run.minParticipants (${base.minParticipants})`,
      { field: 'strategy.minTrainParticipants' },
    );
  }
  if (base.evaluate && strategy.fractionEvaluate === 0) {
    throw new EntenteError('INVALID_CONFIG', 'strategy.fractionEvaluate is 0 but run.evaluate is true', {
      field: 'strategy.fractionEvaluate',
    });
  }
  if (base.evaluate && strategy.minEvaluateParticipants < base.minParticipants) {
    throw new EntenteError(
      'INVALID_CONFIG',
      `strategy.minEvaluateParticipants (${strategy.minEvaluateParticipants}) must be at least run.minParticipants (${base.minParticipants})`,
      { field: 'strategy.minEvaluateParticipants' },
    );
  }
  return deepFreeze({ ...base, model, strategy });
}
