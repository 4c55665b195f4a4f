/**
 * The typed configuration of a federated strategy (no untyped dicts, unlike Flower's config records):
 * one zod schema discriminated on `name`, parsed once and frozen.
 *
 * - fedavg, fedprox: McMahan et al. 2017; Li et al., "Federated Optimization in Heterogeneous
 *   Networks", MLSys 2020 (`proximalMu` is sent to participants; the server step is FedAvg's).
 * - fedavgm: Hsu et al., "Measuring the Effects of Non-Identical Data Distribution", 2019.
 * - fedadagrad, fedadam, fedyogi: Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Alg. 2.
 *
 * Defaults of the adaptive strategies (Algorithm 2 itself fixes none; these follow the paper's
 * experiments):
 * - beta1 = 0.9, beta2 = 0.99 for FedAdam and FedYogi (the paper's values for all experiments; Flower's too);
 * - beta1 = 0 for FedAdagrad (no server momentum, as in classic Adagrad and Flower's FedAdagrad);
 *   Adagrad's v rule has no beta2, so it has no such field;
 * - tau = 1e-3: the adaptivity floor used in the paper's experiments (its ablation finds results
 *   robust for small τ). Coordinates whose pseudo-gradient is far below τ move in proportion to it
 *   instead of by a full η-sized step, which damps noise (e.g. DP noise). v starts at τ² as the
 *   paper requires (v_{-1} ≥ τ²); Flower starts v at 0 (and its older default τ = 1e-9);
 * - serverLearningRate (η) = 1e-2: the best FedAdam server rate on the paper's CIFAR-100 task (and
 *   Flower's FedYogi default); an adaptive step moves a coordinate by roughly η per round, so a
 *   larger default (Flower uses 1e-1 for FedAdam) is a risky choice for a model we know nothing about.
 * The client learning rate η_l belongs to the participant's trainer, not to the server strategy.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';

const fraction = z.number().gt(0).max(1);
const participantCount = z.number().int().min(1);

const common = {
  /** Fraction of the available participants asked to train each round, in (0, 1]. */
  fractionTrain: fraction.default(1),
  /** At least this many participants train each round (fewer only if fewer are available). */
  minTrainParticipants: participantCount.default(2),
  /** Fraction asked to evaluate, in [0, 1]; 0 disables federated evaluation. */
  fractionEvaluate: z.number().min(0).max(1).default(1),
  /** At least this many participants evaluate (when fractionEvaluate > 0). */
  minEvaluateParticipants: participantCount.default(2),
};

const serverLearningRate = z.number().gt(0);
const decay = z.number().min(0).lt(1);
const tau = z.number().gt(0);

export const fedAvgConfigSchema = z.strictObject({ name: z.literal('fedavg'), ...common });

export const fedProxConfigSchema = z.strictObject({
  name: z.literal('fedprox'),
  ...common,
  /** Weight μ of the proximal term (μ/2)·||w − w_global||² each participant adds to its loss. */
  proximalMu: z.number().min(0),
});

export const fedAvgMConfigSchema = z.strictObject({
  name: z.literal('fedavgm'),
  ...common,
  serverLearningRate: serverLearningRate.default(1),
  serverMomentum: decay.default(0.9),
});

export const fedAdagradConfigSchema = z.strictObject({
  name: z.literal('fedadagrad'),
  ...common,
  serverLearningRate: serverLearningRate.default(1e-2),
  beta1: decay.default(0),
  tau: tau.default(1e-3),
});

export const fedAdamConfigSchema = z.strictObject({
  name: z.literal('fedadam'),
  ...common,
  serverLearningRate: serverLearningRate.default(1e-2),
  beta1: decay.default(0.9),
  beta2: decay.default(0.99),
  tau: tau.default(1e-3),
});

export const fedYogiConfigSchema = z.strictObject({
  name: z.literal('fedyogi'),
  ...common,
  serverLearningRate: serverLearningRate.default(1e-2),
  beta1: decay.default(0.9),
  beta2: decay.default(0.99),
  tau: tau.default(1e-3),
});

export const strategyConfigSchema = z.discriminatedUnion('name', [
  fedAvgConfigSchema,
  fedProxConfigSchema,
  fedAvgMConfigSchema,
  fedAdagradConfigSchema,
  fedAdamConfigSchema,
  fedYogiConfigSchema,
]);

/** A parsed strategy configuration, every default filled in. */
export type StrategyConfig = z.output<typeof strategyConfigSchema>;
/** What a run file may say (defaults may be omitted). */
export type StrategyConfigInput = z.input<typeof strategyConfigSchema>;
export type StrategyName = StrategyConfig['name'];

/**
 * Parses and freezes a strategy configuration. Unknown fields are rejected (a typo such as
 * `serverMomentun` must not silently fall back to a default).
 * Throws EntenteError('INVALID_CONFIG') whose message and `field` name the first offending field.
 */
export function parseStrategyConfig(input: unknown): StrategyConfig {
  const result = strategyConfigSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    let path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      path = [path, issue.keys[0]].filter((s) => s !== undefined && s !== '').join('.');
    }
    const field = path === '' ? 'strategy' : `strategy.${path}`;
    const what = issue.code === 'unrecognized_keys' ? 'is not a field of this strategy' : issue.message;
    throw new EntenteError('INVALID_CONFIG', `${field}: ${what}`, { field });
  }
  return Object.freeze(result.data);
}
