/**
 * The wire protocol between participants and the coordinator: every message as a zod schema, parsed
 * once at the boundary (DESIGN.md §3). Large tensors never travel inside these JSON messages: they are
 * safetensors bodies split into SHA-256-addressed chunks, referenced here by `BlobRef`.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';

export const PROTOCOL_VERSION = 'entente/1';

/** Largest chunk of a blob (model or update) sent in one request. */
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024;
/** Largest model accepted anywhere (float32 parameters). */
export const MAX_MODEL_PARAMETERS = 50_000_000;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters (SHA-256)');
const id = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "_" or "-"');
const finite = z.number().finite();

/**
 * A task id: `<run>.r<round>[.<phase>][.a<attempt>][.<stage>].<participant>`, so longer than any one id
 * (run and participant ids are at most 64 characters each).
 */
const taskIdSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "_" or "-"');

export const institutionIdSchema = id;
export const runIdSchema = id;

export const chunkRefSchema = z.strictObject({
  sha256,
  bytes: z.number().int().min(1).max(MAX_CHUNK_BYTES),
});

/** A blob split into chunks; `sha256` addresses the whole byte string, each chunk addresses its part. */
export const blobRefSchema = z
  .strictObject({
    sha256,
    bytes: z
      .number()
      .int()
      .min(1)
      .max(MAX_MODEL_PARAMETERS * 4 + 1024 * 1024),
    chunks: z.array(chunkRefSchema).min(1).max(4096),
  })
  .superRefine((ref, ctx) => {
    const total = ref.chunks.reduce((s, c) => s + c.bytes, 0);
    if (total !== ref.bytes)
      ctx.addIssue({ code: 'custom', path: ['chunks'], message: 'chunk sizes do not add up to bytes' });
  });
export type BlobRef = z.infer<typeof blobRefSchema>;

export const standardizationSchema = z.strictObject({
  mean: z.array(finite),
  std: z.array(finite.positive()),
});
export type Standardization = z.infer<typeof standardizationSchema>;

/**
 * The header a participant process sends with its registration, polls and heartbeats: a random id it
 * picks at start, so the coordinator can tell two processes of the same institution apart.
 */
export const SESSION_HEADER = 'entente-session';
export const sessionIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{16,64}$/, 'must be 16-64 letters, digits, _ or -');

export const registerRequestSchema = z.strictObject({
  protocol: z.literal(PROTOCOL_VERSION),
  trainers: z.array(z.string().min(1).max(100)).max(20),
  software: z.string().max(100),
  /** SHA-256 of the data schema the institution's records follow (data/schema.ts). */
  dataSchemaDigest: sha256.optional(),
  /** What this site's records look like under its schema: encoded feature count and label classes. */
  data: z
    .strictObject({
      features: z
        .number()
        .int()
        .min(1)
        .max(1 << 20),
      // 0: a regression target (a number label, no classes).
      classes: z
        .number()
        .int()
        .min(0)
        .max(1 << 16),
    })
    .optional(),
  /**
   * This site's own policy lets its evaluation figures be named where the consortium policy allows
   * per-site figures (site `revealEvaluation`): in a plain run's round view, as the worst site or the
   * site left out.
   */
  revealEvaluation: z.literal(true).optional(),
});
export type RegisterRequest = z.infer<typeof registerRequestSchema>;

export const registerResponseSchema = z.strictObject({
  institution: id,
  consortium: id,
  heartbeatMs: z.number().int().positive(),
});
export type RegisterResponse = z.infer<typeof registerResponseSchema>;

const taskBase = {
  taskId: taskIdSchema,
  runId: id,
  round: z.number().int().min(0),
  issuedAt: z.number().int(),
};

export const statisticsTaskSchema = z.strictObject({
  ...taskBase,
  kind: z.literal('statistics'),
  dataSchemaDigest: sha256.optional(),
});

export const trainTaskSchema = z.strictObject({
  ...taskBase,
  kind: z.literal('train'),
  model: blobRefSchema,
  modelSpec: z.unknown(),
  train: z.strictObject({
    epochs: z.number().int().min(1).max(1000),
    batchSize: z.number().int().min(1).max(1_000_000),
    learningRate: finite.positive(),
    optimizer: z.enum(['sgd', 'adam']),
    momentum: finite.min(0).max(1).optional(),
    l2: finite.min(0).optional(),
    proximalMu: finite.min(0),
    dp: z
      .strictObject({
        clipNorm: finite.positive(),
        noiseMultiplier: finite.min(0),
        samplingRate: finite.positive().max(1),
      })
      .optional(),
  }),
  standardization: standardizationSchema.optional(),
  seed: z.string().max(200),
  dataSchemaDigest: sha256.optional(),
  /** Where the audit log records this model: the participant checks it before training. */
  modelLog: z.strictObject({ index: z.number().int().min(0) }).optional(),
});
export type TrainTask = z.infer<typeof trainTaskSchema>;

export const evaluateTaskSchema = z.strictObject({
  ...taskBase,
  kind: z.literal('evaluate'),
  model: blobRefSchema,
  modelSpec: z.unknown(),
  standardization: standardizationSchema.optional(),
  dataSchemaDigest: sha256.optional(),
  modelLog: z.strictObject({ index: z.number().int().min(0) }).optional(),
});
export type EvaluateTask = z.infer<typeof evaluateTaskSchema>;

// ---- Secure aggregation (Bonawitz et al. 2017), one task kind per stage (secagg/stages.ts) ----

const b64 = (maxChars: number) =>
  z
    .string()
    .max(maxChars)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const hex64 = sha256;

export const secAggContextSchema = z.strictObject({
  consortium: id,
  attempt: z.number().int().min(0).max(1_000_000),
  cohort: z.array(id).min(3).max(1000),
  threshold: z.number().int().min(3).max(1000),
  quantization: z.strictObject({
    ringBits: z.union([z.literal(32), z.literal(64)]),
    clipRange: finite.positive(),
    scale: finite.positive(),
  }),
  maxWeight: z
    .number()
    .int()
    .min(1)
    .max(2 ** 31),
  segments: z
    .array(
      z.strictObject({
        name: z.string().min(1).max(200),
        offsetWords: z.number().int().min(0),
        lengthWords: z.number().int().min(1),
      }),
    )
    .min(2)
    .max(1000),
});
export type SecAggContextWire = z.infer<typeof secAggContextSchema>;

export const signedAdvertSchema = z.strictObject({
  participant: id,
  encryptionKey: b64(44),
  maskingKey: b64(44),
  selfSeedCommitment: hex64,
  configDigest: hex64,
  signature: b64(88),
});

const sealedShareSchema = z.strictObject({ peer: id, sealed: b64(1024) });
const releasedShareSchema = z.strictObject({ owner: id, share: b64(256) });
const secAggBase = {
  ...taskBase,
  attempt: z.number().int().min(0).max(1_000_000),
  /**
   * The run phase a secure sum belongs to (`rollout`: a staged rollout's paired outcomes; `monitor`: a
   * deployed model's monitoring counts); absent for a training round.
   */
  phase: z.enum(['statistics', 'evaluate', 'rollout', 'monitor']).optional(),
};

/** A secure sum's declaration (protocol/secure-sum.ts): segments, their bounds and fixed-point scales. */
export const secureSumDeclarationSchema = z.strictObject({
  purpose: z.enum(['statistics', 'evaluation', 'regression-evaluation', 'monitoring', 'paired-outcomes']),
  maxRows: z
    .number()
    .int()
    .min(1)
    .max(2 ** 40),
  segments: z
    .array(
      z.strictObject({
        name: z.string().min(1).max(200),
        length: z.number().int().min(1).max(10_000_000),
        kind: z.enum(['count', 'sum', 'signed-sum']),
        maxPerRow: finite.positive(),
        maxRowL2: finite.positive(),
        fractionBits: z.number().int().min(0).max(52),
      }),
    )
    .min(1)
    .max(1000),
  noise: z.strictObject({ noiseMultiplier: finite.min(0.01).max(1e6) }).optional(),
});

/** Stage advertise-keys: train on the model, quantize the update, then advertise signed keys. */
export const secAggTrainTaskSchema = z.strictObject({
  ...secAggBase,
  kind: z.literal('secagg-train'),
  model: blobRefSchema,
  modelSpec: z.unknown(),
  train: trainTaskSchema.shape.train,
  standardization: standardizationSchema.optional(),
  seed: z.string().max(200),
  dataSchemaDigest: sha256.optional(),
  modelLog: z.strictObject({ index: z.number().int().min(0) }).optional(),
  /** Client-level DP: clip the whole update to clipNorm and add this site's share of discrete Gaussian noise. */
  clientDp: z
    .strictObject({
      /** The clip this round applies, and the noise multiplier on the clipped updates (z_Δ). */
      clipNorm: finite.positive(),
      noiseMultiplier: finite.positive(),
      /** Adaptive clipping: std of the noise on the count of unclipped updates (σ_b); adds the indicator segment. */
      indicatorNoiseStd: finite.positive().optional(),
    })
    .optional(),
  secagg: secAggContextSchema,
});
export type SecAggTrainTask = z.infer<typeof secAggTrainTaskSchema>;

/**
 * Stage advertise-keys of a secure sum that is not a training delta: compute the declared vector (the
 * standardization statistics, or the evaluation sums of `model` on the site's evaluation rows), encode
 * it, then advertise signed keys.
 */
export const secAggSumTaskSchema = z.strictObject({
  ...secAggBase,
  kind: z.literal('secagg-sum'),
  phase: z.enum(['statistics', 'evaluate', 'rollout', 'monitor']),
  secureSum: secureSumDeclarationSchema,
  /** Statistics: the bound every feature value is clipped to before it is added. */
  maxAbsFeature: finite.positive().optional(),
  /** Evaluation: the model, its spec and what is measured (evaluation/evaluation-spec.ts). */
  model: blobRefSchema.optional(),
  modelSpec: z.unknown().optional(),
  evaluation: z.unknown().optional(),
  /** Regression evaluation: the bound targets and predictions are clipped to. */
  maxAbsTarget: finite.positive().optional(),
  /** An evaluation plan's job: the plan's digest and the blinded label the model travels under. */
  plan: z.strictObject({ digest: sha256, label: z.string().min(1).max(32) }).optional(),
  /**
   * A staged rollout's measurement (phase `rollout`): the approved rollout plan's digest and the running
   * stage; `model` is the plan's candidate, `production` the version it would replace, and each row adds
   * its paired outcomes (evaluation/paired-outcomes.ts) with losses clipped to `paired.maxRowLoss`.
   */
  rollout: z.strictObject({ digest: sha256, stage: z.enum(['shadow', 'canary', 'full']) }).optional(),
  production: z
    .strictObject({
      model: blobRefSchema,
      modelSpec: z.unknown(),
      standardization: standardizationSchema.optional(),
    })
    .optional(),
  paired: z.strictObject({ maxRowLoss: finite.positive().max(1e6) }).optional(),
  /**
   * A deployed model's monitoring measurement (phase `monitor`): `model` (also the task's `model`) and
   * the monitoring spec (evaluation/monitoring-layout.ts). Window `reference`: each site scores its
   * training rows with the model; `current`: each site adds the counts its monitoring file holds for
   * the model (what it served and scored), never a row.
   */
  monitoring: z
    .strictObject({
      model: sha256,
      window: z.enum(['reference', 'current']),
      spec: z.strictObject({
        numFeatures: z.number().int().min(1).max(10_000),
        numClasses: z.number().int().min(2).max(1_000),
        featureBins: z.number().int().min(1).max(1_000),
        scoreBins: z.number().int().min(1).max(1_000),
      }),
    })
    .optional(),
  standardization: standardizationSchema.optional(),
  dataSchemaDigest: sha256.optional(),
  modelLog: z.strictObject({ index: z.number().int().min(0) }).optional(),
  secagg: secAggContextSchema,
});
export type SecAggSumTask = z.infer<typeof secAggSumTaskSchema>;

/**
 * After an evaluation plan's secure sum of one label, a plan that asks for per-site figures asks each
 * site for its own sums in the clear: only where the policy and the site's own policy allow it, and
 * every answer is logged as a disclosure. The task names what the secure sum measured.
 */
export const evaluationRevealTaskSchema = z.strictObject({
  ...taskBase,
  kind: z.literal('evaluation-reveal'),
  plan: z.strictObject({ digest: sha256, label: z.string().min(1).max(32) }),
  model: blobRefSchema,
  modelSpec: z.unknown(),
  evaluation: z.unknown(),
  standardization: standardizationSchema.optional(),
  dataSchemaDigest: sha256.optional(),
});
export type EvaluationRevealTask = z.infer<typeof evaluationRevealTaskSchema>;

export const secAggShareKeysTaskSchema = z.strictObject({
  ...secAggBase,
  kind: z.literal('secagg-share-keys'),
  adverts: z.array(signedAdvertSchema).min(1).max(1000),
});
export const secAggMaskedInputTaskSchema = z.strictObject({
  ...secAggBase,
  kind: z.literal('secagg-masked-input'),
  shares: z.array(sealedShareSchema).max(1000),
});
export const secAggConsistencyTaskSchema = z.strictObject({
  ...secAggBase,
  kind: z.literal('secagg-consistency-check'),
  survivors: z.array(id).max(1000),
});
export const secAggUnmaskingTaskSchema = z.strictObject({
  ...secAggBase,
  kind: z.literal('secagg-unmasking'),
  survivors: z.array(id).max(1000),
  dropped: z.array(id).max(1000),
  signatures: z.array(z.strictObject({ participant: id, signature: b64(88) })).max(1000),
});

/**
 * A dry run (`entente run plan`): the proposed run configuration, for the site to check against its own
 * policy, budget and data schema without touching any data. `cohortSize`: institutions in the consortium.
 */
export const planTaskSchema = z.strictObject({
  ...taskBase,
  kind: z.literal('plan'),
  config: z.unknown(),
  cohortSize: z.number().int().min(0).max(10_000),
});

export const taskSchema = z.discriminatedUnion('kind', [
  planTaskSchema,
  statisticsTaskSchema,
  trainTaskSchema,
  evaluateTaskSchema,
  secAggTrainTaskSchema,
  secAggSumTaskSchema,
  evaluationRevealTaskSchema,
  secAggShareKeysTaskSchema,
  secAggMaskedInputTaskSchema,
  secAggConsistencyTaskSchema,
  secAggUnmaskingTaskSchema,
]);
export type Task = z.infer<typeof taskSchema>;
export type StatisticsTask = z.infer<typeof statisticsTaskSchema>;

export const statisticsResultSchema = z.strictObject({
  kind: z.literal('statistics'),
  runId: id,
  round: z.number().int().min(0),
  count: z.number().int().min(1),
  sum: z.array(finite).max(100_000),
  sumSquares: z.array(finite.min(0)).max(100_000),
});

/** What a round cost the institution's records, as the institution's own ledger computes it. */
export const privacyReportSchema = z.strictObject({
  event: z.discriminatedUnion('mechanism', [
    z.strictObject({
      mechanism: z.literal('subsampled-gaussian'),
      noiseMultiplier: finite.min(0),
      samplingRate: finite.positive().max(1),
      steps: z.number().int().min(0),
      neighbouring: z.enum(['add-remove-record', 'add-remove-institution']),
    }),
    z.strictObject({
      mechanism: z.literal('zcdp'),
      rho: finite.min(0),
      neighbouring: z.enum(['add-remove-record', 'add-remove-institution']),
    }),
  ]),
  /** ε spent in this run and over all runs at `delta` (null when the site set no budget of that kind). */
  epsilonRun: finite.min(0).nullable(),
  epsilonTotal: finite.min(0).nullable(),
  delta: finite.positive().max(1),
  /**
   * Secure aggregation: the attempt whose training this event was charged for. A retried attempt that
   * reuses the update of an earlier attempt of the round names that attempt: nothing new was spent.
   */
  chargedAttempt: z.number().int().min(0).max(1_000_000).optional(),
});
export type PrivacyReport = z.infer<typeof privacyReportSchema>;

export const trainResultSchema = z.strictObject({
  kind: z.literal('train'),
  runId: id,
  round: z.number().int().min(0),
  update: blobRefSchema,
  numExamples: z.number().int().min(1).max(1e12),
  trainLoss: finite.min(0),
  privacy: privacyReportSchema.optional(),
});
export type TrainResult = z.infer<typeof trainResultSchema>;

export const evaluateResultSchema = z
  .strictObject({
    kind: z.literal('evaluate'),
    runId: id,
    round: z.number().int().min(0),
    numExamples: z.number().int().min(1).max(1e12),
    loss: finite.min(0),
    /** A classifier's fraction correct. */
    accuracy: finite.min(0).max(1).optional(),
    /** A regression model's additive sums (models/evaluate-model.ts), instead of accuracy. */
    regression: z
      .strictObject({
        sumSquaredError: finite.min(0),
        sumAbsoluteError: finite.min(0),
        sumTarget: finite,
        sumTargetSquared: finite.min(0),
      })
      .optional(),
  })
  .superRefine((r, ctx) => {
    if ((r.accuracy === undefined) === (r.regression === undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['accuracy'],
        message: 'exactly one of accuracy (a classifier) and regression (a linear model) is required',
      });
  });
export type EvaluateResult = z.infer<typeof evaluateResultSchema>;

const secAggResultBase = {
  runId: id,
  round: z.number().int().min(0),
  attempt: z.number().int().min(0).max(1_000_000),
};
export const secAggTrainResultSchema = z.strictObject({
  ...secAggResultBase,
  kind: z.literal('secagg-train'),
  advert: signedAdvertSchema,
  privacy: privacyReportSchema.optional(),
});
/** A site's own evaluation sums, revealed with its consent (logged as a disclosure). */
export const evaluationRevealResultSchema = z.strictObject({
  kind: z.literal('evaluation-reveal'),
  runId: id,
  round: z.number().int().min(0),
  sums: z.array(finite.min(0)).max(16_777_216),
});
export type EvaluationRevealResult = z.infer<typeof evaluationRevealResultSchema>;

export const secAggSumResultSchema = z.strictObject({
  ...secAggResultBase,
  kind: z.literal('secagg-sum'),
  advert: signedAdvertSchema,
  privacy: privacyReportSchema.optional(),
});
export const secAggShareKeysResultSchema = z.strictObject({
  ...secAggResultBase,
  kind: z.literal('secagg-share-keys'),
  shares: z.array(sealedShareSchema).max(1000),
});
export const secAggMaskedInputResultSchema = z.strictObject({
  ...secAggResultBase,
  kind: z.literal('secagg-masked-input'),
  maskedInput: blobRefSchema,
  signature: b64(88),
});
export const secAggConsistencyResultSchema = z.strictObject({
  ...secAggResultBase,
  kind: z.literal('secagg-consistency-check'),
  signature: b64(88),
});
export const secAggUnmaskingResultSchema = z.strictObject({
  ...secAggResultBase,
  kind: z.literal('secagg-unmasking'),
  selfSeedShares: z.array(releasedShareSchema).max(1000),
  maskingKeyShares: z.array(releasedShareSchema).max(1000),
});
/** A participant refusing a task (site policy, protocol violation): recorded, never retried. */
export const refusalResultSchema = z.strictObject({
  kind: z.literal('refusal'),
  runId: id,
  round: z.number().int().min(0),
  code: z.string().max(64),
  field: z.string().max(200).optional(),
  message: z.string().max(1000),
});

/** A site's answer to a dry run: go or no-go, each check it made with a sentence. */
export const planResultSchema = z.strictObject({
  kind: z.literal('plan'),
  runId: id,
  round: z.number().int().min(0),
  go: z.boolean(),
  reasons: z
    .array(z.strictObject({ check: z.string().max(100), ok: z.boolean(), message: z.string().max(1000) }))
    .max(100),
});
export type PlanResult = z.infer<typeof planResultSchema>;

export const taskResultSchema = z.discriminatedUnion('kind', [
  planResultSchema,
  statisticsResultSchema,
  trainResultSchema,
  evaluateResultSchema,
  secAggTrainResultSchema,
  secAggSumResultSchema,
  evaluationRevealResultSchema,
  secAggShareKeysResultSchema,
  secAggMaskedInputResultSchema,
  secAggConsistencyResultSchema,
  secAggUnmaskingResultSchema,
  refusalResultSchema,
]);
export type TaskResult = z.infer<typeof taskResultSchema>;
export type StatisticsResult = z.infer<typeof statisticsResultSchema>;

export const errorBodySchema = z.strictObject({
  error: z.strictObject({ code: z.string(), message: z.string(), field: z.string().optional() }),
});

/**
 * Parses `value` with `schema`; on failure throws INVALID_MESSAGE naming the first offending field
 * (as a dotted path inside `what`). Never echoes the offending value.
 */
export function parseMessage<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.length > 0 ? `${what}.${issue.path.map(String).join('.')}` : what;
  throw new EntenteError('INVALID_MESSAGE', `${path}: ${issue.message}`, { field: path });
}
