/**
 * One code path from an exported model to class probabilities, shared by `entente model predict`,
 * `entente participant score` and `entente participant serve`: the model file checked against its card
 * (SHA-256), its tensors against the card's model spec, the schema against the card's schema digest
 * and class count; rows parsed by the schema's own CSV loader and standardized with the card's
 * standardization (the training reference, also what fixes the monitoring bins).
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { decodeSafetensors } from '../core/safetensors.ts';
import type { Weights } from '../core/tensor.ts';
import { sha256Hex } from '../crypto/index.ts';
import {
  type DataSchema,
  type LabeledData,
  type StandardizationParams,
  applyStandardization,
  computeSchemaDigest,
  listFeatureColumns,
  loadTable,
  parseCsv,
  parseDataSchema,
} from '../data/index.ts';
import {
  type ModelSpec,
  countClasses,
  describeLayout,
  parseModelSpec,
  predictClasses,
  predictProbabilities,
} from '../models/index.ts';
import { readBinaryFile } from './parse-options.ts';
import { readStructuredFile } from './read-file.ts';

export const MODEL_CARD_FORMAT = 'entente-model-card/1';

export const modelCardSchema = z.object({
  format: z.literal(MODEL_CARD_FORMAT),
  run: z.string(),
  rounds: z.number().int().min(0),
  modelSpec: z.unknown(),
  model: z.object({ file: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int() }),
  standardization: z.object({ mean: z.array(z.number()), std: z.array(z.number().positive()) }).nullable(),
  dataSchemaDigest: z.string().nullable(),
  finalMetrics: z.unknown(),
  auditLog: z.object({ entry: z.number().int().min(0), round: z.number().int(), modelSha256: z.string() }),
  exportedAt: z.string(),
  /** The model registry's section (registry/model-card.ts): lineage, evaluations with their plans,
   *  privacy spent, intended use, aliases; null when the registry could not be read. */
  registry: z.unknown().optional(),
});
export type ModelCard = z.infer<typeof modelCardSchema>;

/** The card's path for a model file: `model.safetensors` → `model.card.json`. */
export function modelCardPath(modelFile: string): string {
  return `${modelFile.replace(/\.safetensors$/i, '')}.card.json`;
}

export const quoteCsv = (cell: string): string =>
  /[",\r\n]/.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell;

/**
 * Rows of `text` under `schema`. A file without the label column (rows to predict, not to evaluate) gets
 * a placeholder label so the schema's checks of every feature still apply; `labelled` says which.
 */
export function loadRows(text: string, schema: DataSchema): { data: LabeledData; labelled: boolean } {
  const table = parseCsv(text);
  if (table.header.includes(schema.label.name)) return { data: loadTable(text, schema), labelled: true };
  const placeholder = schema.label.type === 'number' ? '0' : schema.label.classes[0]!;
  const lines = [
    [...table.header, schema.label.name].map(quoteCsv).join(','),
    ...table.rows.map((row) => [...row, placeholder].map(quoteCsv).join(',')),
  ];
  return { data: loadTable(`${lines.join('\n')}\n`, schema), labelled: false };
}

export interface ScoringModel {
  readonly spec: ModelSpec;
  readonly weights: Weights;
  readonly schema: DataSchema;
  /** The model card it was loaded with (null for a model from a site's serving directory). */
  readonly card: ModelCard | null;
  /** SHA-256 of the model file, as its card and the audit log name it. */
  readonly sha256: string;
  /** The schema's class names (empty for a regression model). */
  readonly classNames: readonly string[];
  readonly standardization: StandardizationParams | null;
}

/** What a model file comes with: its spec, standardization and data-schema digest (a card's or a site model file's). */
export interface ModelDescription {
  readonly modelSpec: unknown;
  readonly standardization: { readonly mean: readonly number[]; readonly std: readonly number[] } | null;
  readonly dataSchemaDigest: string | null;
}

/**
 * A scoring model from checked bytes (their SHA-256 already compared with what names them): the tensors
 * against the described spec (INVALID_TENSOR), the schema against the described digest and the model's
 * class count (INVALID_CONFIG naming `schemaFlag`), the standardization against the model's inputs.
 */
export function assembleScoringModel(input: {
  bytes: Uint8Array;
  sha256: string;
  description: ModelDescription;
  schema: DataSchema;
  schemaFlag: string;
  card: ModelCard | null;
}): ScoringModel {
  const { description, schema, schemaFlag } = input;
  const spec = parseModelSpec(description.modelSpec);
  const { weights } = decodeSafetensors(input.bytes, { expected: describeLayout(spec) });
  const field = schemaFlag.replace(/^--/, '');
  if (description.dataSchemaDigest !== null && computeSchemaDigest(schema) !== description.dataSchemaDigest)
    throw new EntenteError('INVALID_CONFIG', `${schemaFlag}: not the data schema the run was trained with`, {
      field,
    });
  const names = schema.label.classes;
  const k = countClasses(spec);
  if (names.length !== k)
    throw new EntenteError(
      'INVALID_CONFIG',
      `${schemaFlag}: declares ${names.length} classes, the model has ${k}`,
      { field },
    );
  const s = description.standardization;
  const dim = listFeatureColumns(schema).length;
  if (s && (s.mean.length !== dim || s.std.length !== dim))
    throw new EntenteError(
      'INVALID_CONFIG',
      `${schemaFlag}: has ${dim} input columns, the model's standardization ${s.mean.length}`,
      { field },
    );
  const standardization = s ? { mean: Float64Array.from(s.mean), std: Float64Array.from(s.std) } : null;
  return {
    spec,
    weights,
    schema,
    card: input.card,
    sha256: input.sha256,
    classNames: names,
    standardization,
  };
}

/**
 * Loads `--model`, its card (`--card`, default next to the model) and `--schema`. Throws INVALID_CONFIG
 * (card or schema that do not fit), DIGEST_MISMATCH (a model file its card does not describe),
 * INVALID_ARGUMENT (unreadable files), INVALID_TENSOR (tensors that do not fit the spec).
 */
export function loadScoringModel(opts: {
  model: string;
  schema: string;
  card?: string | undefined;
}): ScoringModel {
  const bytes = readBinaryFile(opts.model, '--model');
  const cardFile = opts.card ?? modelCardPath(opts.model);
  const parsed = modelCardSchema.safeParse(readStructuredFile(cardFile, 'card'));
  if (!parsed.success)
    throw new EntenteError(
      'INVALID_CONFIG',
      `card: ${cardFile} is not an entente model card (${parsed.error.issues[0]!.path.join('.') || 'format'})`,
      { field: 'card' },
    );
  const card = parsed.data;
  const sha256 = sha256Hex(bytes);
  if (sha256 !== card.model.sha256)
    throw new EntenteError(
      'DIGEST_MISMATCH',
      `--model: the file is not the model its card ${cardFile} describes`,
      {
        field: 'model',
      },
    );
  const schema = parseDataSchema(readStructuredFile(opts.schema, 'schema'));
  return assembleScoringModel({ bytes, sha256, description: card, schema, schemaFlag: '--schema', card });
}

/** The model's input: `raw` standardized with the card's standardization (unchanged without one). */
export function standardizeForModel(model: ScoringModel, raw: LabeledData): LabeledData {
  return model.standardization ? applyStandardization(raw, model.standardization) : raw;
}

/** Class probabilities (one array of K per row, in row order) and predicted classes of a classifier. */
export function scoreClasses(
  model: ScoringModel,
  data: LabeledData,
): { probabilities: number[][]; classes: Int32Array } {
  const k = countClasses(model.spec);
  const classes = predictClasses(model.spec, model.weights, data.x);
  const flat = predictProbabilities(model.spec, model.weights, data.x);
  const probabilities: number[][] = [];
  for (let i = 0; i < data.count; i++)
    probabilities.push(
      k === 2 && flat.length === data.count
        ? [1 - flat[i]!, flat[i]!]
        : Array.from(flat.subarray(i * k, (i + 1) * k)),
    );
  return { probabilities, classes };
}

const referenceSchema = z
  .object({ mean: z.array(z.number().finite()), std: z.array(z.number().finite().positive()) })
  .strict();

/**
 * The training reference that fixes the monitoring bins: the card's standardization; for a card
 * without one (a run that did not standardize), `referenceFile`, a JSON or YAML {mean, std} with one
 * entry per model input column. INVALID_ARGUMENT naming --reference when it is missing, given as well
 * as the card's, or does not fit.
 */
export function resolveMonitoringReference(
  model: ScoringModel,
  referenceFile: string | undefined,
): StandardizationParams {
  if (model.standardization !== null) {
    if (referenceFile !== undefined)
      throw new EntenteError(
        'INVALID_ARGUMENT',
        '--reference: the model card carries the training standardization; --reference is only for cards without one',
        { field: 'reference' },
      );
    return model.standardization;
  }
  if (referenceFile === undefined)
    throw new EntenteError(
      'INVALID_ARGUMENT',
      '--reference: required: the model card has no standardization, the training reference that fixes the monitoring bins ({"mean": [...], "std": [...]})',
      { field: 'reference' },
    );
  return readMonitoringReference(model, referenceFile);
}

/** `referenceFile` as the training reference of `model`'s inputs (INVALID_ARGUMENT naming --reference). */
export function readMonitoringReference(model: ScoringModel, referenceFile: string): StandardizationParams {
  const parsed = referenceSchema.safeParse(readStructuredFile(referenceFile, 'reference'));
  const dim = listFeatureColumns(model.schema).length;
  if (!parsed.success || parsed.data.mean.length !== dim || parsed.data.std.length !== dim)
    throw new EntenteError(
      'INVALID_ARGUMENT',
      `--reference: must be {"mean": [...], "std": [...]} with ${dim} finite numbers each (std > 0)`,
      { field: 'reference' },
    );
  return { mean: Float64Array.from(parsed.data.mean), std: Float64Array.from(parsed.data.std) };
}

/** What the monitoring bins see: the raw rows as z-scores against the training reference. */
export function monitoringInput(reference: StandardizationParams, raw: LabeledData): Float32Array {
  return applyStandardization(raw, reference).x;
}
