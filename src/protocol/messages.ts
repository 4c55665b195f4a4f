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

export const registerRequestSchema = z.strictObject({
  protocol: z.literal(PROTOCOL_VERSION),
  trainers: z.array(z.string().min(1).max(100)).max(20),
  software: z.string().max(100),
});
export type RegisterRequest = z.infer<typeof registerRequestSchema>;

export const registerResponseSchema = z.strictObject({
  institution: id,
  consortium: id,
  heartbeatMs: z.number().int().positive(),
});
export type RegisterResponse = z.infer<typeof registerResponseSchema>;

const taskBase = {
  taskId: id,
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
  }),
  standardization: standardizationSchema.optional(),
  seed: z.string().max(200),
  dataSchemaDigest: sha256.optional(),
});
export type TrainTask = z.infer<typeof trainTaskSchema>;

export const evaluateTaskSchema = z.strictObject({
  ...taskBase,
  kind: z.literal('evaluate'),
  model: blobRefSchema,
  modelSpec: z.unknown(),
  standardization: standardizationSchema.optional(),
  dataSchemaDigest: sha256.optional(),
});
export type EvaluateTask = z.infer<typeof evaluateTaskSchema>;

export const taskSchema = z.discriminatedUnion('kind', [
  statisticsTaskSchema,
  trainTaskSchema,
  evaluateTaskSchema,
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

export const trainResultSchema = z.strictObject({
  kind: z.literal('train'),
  runId: id,
  round: z.number().int().min(0),
  update: blobRefSchema,
  numExamples: z.number().int().min(1).max(1e12),
  trainLoss: finite.min(0),
});
export type TrainResult = z.infer<typeof trainResultSchema>;

export const evaluateResultSchema = z.strictObject({
  kind: z.literal('evaluate'),
  runId: id,
  round: z.number().int().min(0),
  numExamples: z.number().int().min(1).max(1e12),
  loss: finite.min(0),
  accuracy: finite.min(0).max(1),
});
export type EvaluateResult = z.infer<typeof evaluateResultSchema>;

export const taskResultSchema = z.discriminatedUnion('kind', [
  statisticsResultSchema,
  trainResultSchema,
  evaluateResultSchema,
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
