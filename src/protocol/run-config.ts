/**
 * The run configuration: one schema, parsed once, cross-field rules checked, then frozen
 * (DESIGN.md §5). It composes the model spec (models) and the strategy config (aggregation).
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { type StrategyConfig, parseStrategyConfig } from '../aggregation/index.ts';
import {
  type ModelSpec,
  countOutputs,
  dpSgdOptionsSchema,
  isRegressionSpec,
  parseModelSpec,
  parseTrainOptions,
} from '../models/index.ts';
import { checkRingCapacity, chooseQuantizationScale } from '../secagg/index.ts';
import { type EvaluationSpec, createEvaluationLayout, parseEvaluationSpec } from '../evaluation/index.ts';
import { parseMessage } from './messages.ts';
import { type SecureSumDeclaration, type SecureSumNoise, declareStatisticsSum } from './secure-sum.ts';
import { SECURE_SUM_DEFAULTS, declareEvaluationSum, declareRegressionSum } from './secure-sum-round.ts';

const runConfigInputSchema = z.strictObject({
  id: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "_" or "-"'),
  model: z.unknown(),
  strategy: z.unknown(),
  rounds: z.number().int().min(1).max(100_000),
  minParticipants: z.number().int().min(1).max(10_000).default(3),
  train: z
    .strictObject({
      epochs: z.number().int().min(1).max(1000).default(1),
      batchSize: z.number().int().min(1).max(1_000_000).default(32),
      learningRate: z.number().finite().positive().default(0.05),
      optimizer: z.enum(['sgd', 'adam']).default('sgd'),
      momentum: z.number().finite().min(0).max(1).optional(),
      l2: z.number().finite().min(0).optional(),
      /** Sample-level DP-SGD inside each institution (Abadi et al. 2016). */
      dp: dpSgdOptionsSchema.optional(),
    })
    // `train:` may be omitted: every option then takes its default (epochs 1, batchSize 32,
    // learningRate 0.05, optimizer sgd), exactly as an empty `train: {}` does.
    .prefault({}),
  standardize: z.enum(['federated', 'none']).default('none'),
  evaluate: z.boolean().default(true),
  roundTimeoutMs: z.number().int().min(100).max(86_400_000).default(120_000),
  /**
   * Secure-aggregation attempts of one round (the first and its retries, each after an abort before
   * unmasking); when the last aborts the run fails (ATTEMPTS_EXHAUSTED). Every attempt trains and may
   * spend privacy at every site, so a member that keeps dropping out cannot burn budgets without bound.
   */
  maxAttemptsPerRound: z.number().int().min(1).max(100).default(3),
  /**
   * Failed attempts of one plain phase (too few participants left after refusals or tasks a site cannot
   * execute) before the run fails (PHASE_FAILED), naming each site and its reason.
   */
  maxFailuresPerPhase: z.number().int().min(1).max(100).default(3),
  seed: z
    .string()
    .min(1)
    .max(200)
    // Echoed in the audit log and in messages: no control or direction-changing characters.
    .regex(/^[^\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]*$/u, 'must not contain control characters')
    .default('entente'),
  dataSchemaDigest: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /**
   * What the trained model is for (and not for), as the consortium approves it with the run; the model
   * registry's card states it. Echoed in the audit log: no control or direction-changing characters.
   */
  intendedUse: z
    .string()
    .min(1)
    .max(2000)
    .regex(/^[^\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]*$/u, 'must not contain control characters')
    .optional(),
  /**
   * Client-level DP-FedAvg under secure aggregation with distributed discrete Gaussian noise (Kairouz,
   * Liu, Steinke 2021): each institution clips its update to L2 norm clipNorm and adds its share of the
   * noise before masking; the sum carries noise std noiseMultiplier·clipNorm once ≥ t survive.
   */
  clientDp: z
    .strictObject({
      clipNorm: z.number().finite().positive().max(1e6),
      noiseMultiplier: z.number().finite().positive().max(1e3),
      /**
       * Adaptive clipping (Andrew et al. 2021): each round the clip moves towards the targetQuantile of
       * the update norms, estimated from clip indicators summed under secure aggregation with their own
       * noise (std countNoiseStd on the count); the update noise is then z_Δ = (z⁻² − (2σ_b)⁻²)^(-1/2).
       */
      adaptive: z
        .strictObject({
          targetQuantile: z.number().finite().gt(0).lt(1).default(0.5),
          learningRate: z.number().finite().positive().max(10).default(0.2),
          countNoiseStd: z.number().finite().positive().max(1e6),
          /** The clip stays within [clipNorm/maxGrowth, clipNorm·maxGrowth]; the ring is sized for the top. */
          maxGrowth: z.number().finite().min(1).max(1000).default(4),
        })
        .optional(),
    })
    .optional(),
  /**
   * What each round's evaluation measures beyond loss and accuracy (evaluation/evaluation-spec.ts):
   * histogram and calibration bins, the sensitive attribute and slices the sites' data schema declares.
   */
  evaluation: z
    .strictObject({
      scoreBins: z.number().int().min(10).max(100_000).optional(),
      calibrationBins: z.number().int().min(2).max(1000).optional(),
      sensitive: z
        .strictObject({ attribute: z.string().min(1).max(128), values: z.array(z.string()).min(2).max(64) })
        .optional(),
      slices: z.array(z.string()).max(32).optional(),
    })
    .optional(),
  /**
   * Bounds of the secure sums of the statistics and evaluation phases (protocol/secure-sum.ts): the most
   * rows one site contributes, and the clip of feature values and regression targets.
   */
  secureSums: z
    .strictObject({
      maxRowsPerSite: z.number().int().min(1).max(1e9).optional(),
      maxAbsFeature: z.number().finite().positive().max(1e12).optional(),
      maxAbsTarget: z.number().finite().positive().max(1e12).optional(),
      /**
       * Differential privacy on these sums: each site adds discrete Gaussian noise (ρ ≈ 1/(2z²) per sum
       * for one of its records, charged to its ledger). Also the evaluation's dp unless it sets its own.
       */
      noiseMultiplier: z.number().min(0.01).max(1e6).optional(),
    })
    .optional(),
  secureAggregation: z
    .strictObject({
      /** 'secagg': Bonawitz et al. 2017 (the coordinator sees only the sum); 'none': plain updates. */
      protocol: z.enum(['secagg', 'none']).default('secagg'),
      /** Absolute threshold t; default floor(2n/3)+1 of each round's cohort. */
      threshold: z.number().int().min(3).max(1000).optional(),
      ringBits: z.union([z.literal(32), z.literal(64)]).default(32),
      /** Per-coordinate clip of each (weight-scaled) model delta. */
      clipRange: z.number().finite().positive().max(1e6).default(1),
      /** Fixed-point scale; default: the largest power of two for which the ring cannot wrap. */
      scale: z.number().finite().positive().optional(),
      /** Example counts are capped at this in the weight channel (and deltas scaled by count/maxWeight). */
      maxWeight: z.number().int().min(1).max(1_000_000_000).default(10_000),
      /** Largest cohort of a round; the ring is sized for it. */
      maxParticipants: z.number().int().min(3).max(1000).default(100),
      /** Deadline of every stage after the first (the first uses roundTimeoutMs, it includes training). */
      stageTimeoutMs: z.number().int().min(100).max(3_600_000).default(30_000),
    })
    // Secure by default: a run config that says nothing gets secure aggregation.
    .default({
      protocol: 'secagg',
      ringBits: 32,
      clipRange: 1,
      maxWeight: 10_000,
      maxParticipants: 100,
      stageTimeoutMs: 30_000,
    }),
});

export interface SecureAggregationConfig {
  readonly protocol: 'secagg' | 'none';
  readonly threshold?: number | undefined;
  readonly ringBits: 32 | 64;
  readonly clipRange: number;
  /** Always set after parsing (chosen when not given). */
  readonly scale: number;
  readonly maxWeight: number;
  readonly maxParticipants: number;
  readonly stageTimeoutMs: number;
}

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
  readonly maxAttemptsPerRound: number;
  readonly maxFailuresPerPhase: number;
  readonly seed: string;
  readonly dataSchemaDigest?: string | undefined;
  readonly intendedUse?: string | undefined;
  readonly secureAggregation: SecureAggregationConfig;
  readonly evaluation?: z.infer<typeof runConfigInputSchema>['evaluation'];
  readonly secureSums?: z.infer<typeof runConfigInputSchema>['secureSums'];
  readonly clientDp?:
    | {
        readonly clipNorm: number;
        readonly noiseMultiplier: number;
        readonly adaptive?:
          | {
              readonly targetQuantile: number;
              readonly learningRate: number;
              readonly countNoiseStd: number;
              readonly maxGrowth: number;
            }
          | undefined;
      }
    | undefined;
}

/**
 * The noise multiplier applied to the clipped updates: z itself, or with adaptive clipping the part left
 * after the clip-indicator count takes its share (Andrew et al. 2021, §3: z_Δ = (z⁻² − (2σ_b)⁻²)^(-1/2)).
 */
export function computeUpdateNoiseMultiplier(dp: NonNullable<RunConfig['clientDp']>): number {
  if (!dp.adaptive) return dp.noiseMultiplier;
  return (dp.noiseMultiplier ** -2 - (2 * dp.adaptive.countNoiseStd) ** -2) ** -0.5;
}

/** How many noise standard deviations the ring leaves room for, per participant share, with client-level DP. */
export const CLIENT_DP_NOISE_TAIL = 12;
/** Largest per-participant noise std in quantised units (keeps exact samples in 64-bit integers). */
export const CLIENT_DP_MAX_SHARE_STD = 2 ** 24;

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
  let sa = base.secureAggregation;
  if (base.clientDp) {
    const { clipNorm, adaptive } = base.clientDp;
    if (adaptive && !(2 * adaptive.countNoiseStd > base.clientDp.noiseMultiplier)) {
      throw new EntenteError(
        'INVALID_CONFIG',
        'clientDp.adaptive.countNoiseStd: must exceed noiseMultiplier/2, or nothing is left for the updates (Andrew et al. 2021 noise split)',
        { field: 'clientDp.adaptive.countNoiseStd' },
      );
    }
    const noiseMultiplier = computeUpdateNoiseMultiplier(base.clientDp);
    const topClip = clipNorm * (adaptive?.maxGrowth ?? 1);
    if (sa.protocol !== 'secagg') {
      throw new EntenteError(
        'INVALID_CONFIG',
        'clientDp: needs secureAggregation.protocol secagg (the noise is distributed)',
        {
          field: 'clientDp',
        },
      );
    }
    if (base.train.dp) {
      throw new EntenteError(
        'INVALID_CONFIG',
        'clientDp: choose client-level DP or train.dp (sample-level), not both',
        {
          field: 'clientDp',
        },
      );
    }
    // Every coordinate of a clipped update is within ±clipNorm; the ring must also hold the noise tails.
    // Each update counts once (weight 1): client-level DP bounds a whole institution's influence.
    const range = topClip * (1 + CLIENT_DP_NOISE_TAIL * noiseMultiplier);
    let scale = chooseQuantizationScale({
      maxParticipants: sa.maxParticipants,
      maxWeight: 1,
      ringBits: sa.ringBits,
      clipRange: range,
    });
    const minShare = Math.sqrt(3); // the smallest cohort's threshold is 3
    while (scale > 1 && (noiseMultiplier * topClip * scale) / minShare > CLIENT_DP_MAX_SHARE_STD) scale /= 2;
    sa = { ...sa, clipRange: range, maxWeight: 1, scale };
  }
  // Unused without secure aggregation, but kept positive so a stored config parses again.
  let scale = sa.scale ?? 1;
  if (sa.protocol === 'secagg') {
    if (base.minParticipants < 3) {
      throw new EntenteError(
        'INVALID_CONFIG',
        `run.minParticipants must be at least 3 with secure aggregation (with 2, each learns the other's update)`,
        { field: 'minParticipants' },
      );
    }
    if (sa.threshold !== undefined && sa.threshold > base.minParticipants) {
      throw new EntenteError(
        'INVALID_CONFIG',
        `secureAggregation.threshold (${sa.threshold}) exceeds run.minParticipants (${base.minParticipants}): a minimal round could never finish`,
        { field: 'secureAggregation.threshold' },
      );
    }
    if (sa.maxParticipants < base.minParticipants) {
      throw new EntenteError(
        'INVALID_CONFIG',
        `secureAggregation.maxParticipants (${sa.maxParticipants}) is below run.minParticipants`,
        { field: 'secureAggregation.maxParticipants' },
      );
    }
    if (sa.scale === undefined) {
      scale = chooseQuantizationScale({
        maxParticipants: sa.maxParticipants,
        maxWeight: sa.maxWeight,
        ringBits: sa.ringBits,
        clipRange: sa.clipRange,
      });
    } else {
      checkRingCapacity({
        maxParticipants: sa.maxParticipants,
        maxWeight: sa.maxWeight,
        params: { ringBits: sa.ringBits, clipRange: sa.clipRange, scale: sa.scale },
      });
    }
  }
  const config: RunConfig = {
    ...base,
    model,
    strategy,
    secureAggregation: { ...sa, scale: base.clientDp ? sa.scale! : scale },
  };
  // The secure sums of statistics and evaluation must fit the ring for the largest cohort: checked now.
  if (sa.protocol === 'secagg') {
    try {
      if (base.standardize === 'federated') declareRunStatisticsSum(config, 1, sa.maxParticipants);
      if (base.evaluate) declareRunEvaluationSum(config, sa.maxParticipants);
    } catch (err) {
      if (err instanceof EntenteError && err.field?.startsWith('secureSum'))
        throw new EntenteError(
          'INVALID_CONFIG',
          `secureSums: ${err.message} (secureAggregation.maxParticipants ${sa.maxParticipants}, secureSums.maxRowsPerSite, maxAbsFeature and maxAbsTarget set the bounds)`,
          { field: 'secureSums' },
        );
      throw err;
    }
  }
  return deepFreeze(config);
}

/** What each evaluation of `config` measures (numClasses from its model). Throws INVALID_CONFIG. */
export function selectRunEvaluationSpec(config: RunConfig): EvaluationSpec {
  const e: Record<string, unknown> = { ...(config.evaluation ?? {}) };
  const z = config.secureSums?.noiseMultiplier;
  if (e.dp === undefined && z !== undefined) e.dp = { noiseMultiplier: z };
  try {
    return parseEvaluationSpec({ numClasses: Math.max(2, countOutputs(config.model)), ...e });
  } catch (err) {
    if (err instanceof EntenteError)
      throw new EntenteError('INVALID_CONFIG', err.message.replace(/^evaluation/, 'run.evaluation'), {
        field: `run.${err.field ?? 'evaluation'}`,
      });
    throw err;
  }
}

/** The run's noise on its secure sums (`secureSums.noiseMultiplier`), if any. */
function runSumNoise(config: RunConfig): SecureSumNoise | undefined {
  const z = config.secureSums?.noiseMultiplier;
  return z === undefined ? undefined : { noiseMultiplier: z };
}

/** The statistics phase's secure sum for `features` input columns and a cohort of `cohortSize`. */
export function declareRunStatisticsSum(
  config: RunConfig,
  features: number,
  cohortSize: number,
): SecureSumDeclaration {
  return declareStatisticsSum({
    features,
    maxRows: config.secureSums?.maxRowsPerSite ?? SECURE_SUM_DEFAULTS.maxRowsPerSite,
    maxAbsFeature: config.secureSums?.maxAbsFeature ?? SECURE_SUM_DEFAULTS.maxAbsFeature,
    cohortSize,
    noise: runSumNoise(config),
  });
}

/** An evaluate phase's secure sum: the evaluation layout, or a regression model's five sums. */
export function declareRunEvaluationSum(config: RunConfig, cohortSize: number): SecureSumDeclaration {
  const maxRows = config.secureSums?.maxRowsPerSite ?? SECURE_SUM_DEFAULTS.maxRowsPerSite;
  if (isRegressionSpec(config.model))
    return declareRegressionSum({
      maxRows,
      maxAbsTarget: config.secureSums?.maxAbsTarget ?? SECURE_SUM_DEFAULTS.maxAbsTarget,
      cohortSize,
      noise: runSumNoise(config),
    });
  return declareEvaluationSum({
    layout: createEvaluationLayout(selectRunEvaluationSpec(config)),
    maxRows,
    cohortSize,
  });
}
