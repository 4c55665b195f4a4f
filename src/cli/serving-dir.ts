/**
 * A site's serving directory as `participant serve|score --follow DIR` read it (the participant writes
 * it): `serving.json` names the model version the site serves (`entente-serving/1`: alias, version,
 * rollout, stage, reason, updatedAt), and `models/<sha256>.safetensors` + `models/<sha256>.json`
 * (`entente-site-model/1`: sha256, modelSpec, standardization, dataSchemaDigest) hold each version.
 * A version is loaded only when its bytes hash to its name, its description names the same digest, its
 * tensors fit the described spec and, when the description and the schema both fix one, the schema's
 * digest is the described one. Every refusal is an EntenteError naming `--follow`.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { safeCallerText } from '../core/caller-text.ts';
import { EntenteError } from '../core/errors.ts';
import { sha256Hex } from '../crypto/index.ts';
import type { DataSchema } from '../data/index.ts';
import { MAX_PARAMETERS } from '../models/index.ts';
import { type ScoringModel, assembleScoringModel } from './scoring-model.ts';

export const SERVING_FORMAT = 'entente-serving/1';
export const SITE_MODEL_FORMAT = 'entente-site-model/1';

const MAX_SERVING_FILE_BYTES = 64 * 1024;
const MAX_MODEL_DESCRIPTION_BYTES = 16 * 1024 * 1024;
const MAX_MODEL_BYTES = MAX_PARAMETERS * 4 + 1024 * 1024;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

const servingFileSchema = z.object({
  format: z.literal(SERVING_FORMAT),
  alias: z.string().min(1).max(40),
  version: hex64.nullable(),
  rollout: hex64.nullable(),
  stage: z.enum(['shadow', 'canary', 'full']).nullable(),
  reason: z.string().max(1000),
  updatedAt: z.string().max(64),
});
/** What `serving.json` says: the version to serve and why. */
export type ServingAssignment = z.infer<typeof servingFileSchema>;

const siteModelSchema = z.object({
  format: z.literal(SITE_MODEL_FORMAT),
  sha256: hex64,
  modelSpec: z.unknown(),
  standardization: z
    .object({ mean: z.array(z.number().finite()), std: z.array(z.number().finite().positive()) })
    .nullable(),
  dataSchemaDigest: hex64.nullable(),
});

export const servingFilePath = (dir: string): string => join(dir, 'serving.json');
export const siteModelPaths = (dir: string, sha256: string) => ({
  bytes: join(dir, 'models', `${sha256}.safetensors`),
  description: join(dir, 'models', `${sha256}.json`),
});

const refuse = (code: 'INVALID_ARGUMENT' | 'INVALID_CONFIG' | 'DIGEST_MISMATCH', message: string) =>
  new EntenteError(code, `--follow: ${message}`, { field: 'follow' });

/** A file of the serving directory, at most `limit` bytes; INVALID_ARGUMENT when missing or unreadable. */
function readBounded(path: string, name: string, limit: number): Buffer {
  let bytes: Buffer;
  try {
    if (statSync(path).size > limit) throw refuse('INVALID_CONFIG', `${name}: larger than ${limit} bytes`);
    bytes = readFileSync(path);
  } catch (err) {
    if (err instanceof EntenteError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw refuse('INVALID_ARGUMENT', `${name}: ${code === 'ENOENT' ? 'no such file' : 'cannot be read'}`);
  }
  if (bytes.length > limit) throw refuse('INVALID_CONFIG', `${name}: larger than ${limit} bytes`);
  return bytes;
}

function parseJson(bytes: Buffer, name: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw refuse('INVALID_CONFIG', `${name}: not JSON`);
  }
}

const firstIssue = (error: z.ZodError): string =>
  safeCallerText(error.issues[0]!.path.join('.') || 'format', 80);

/** The directory named by --follow must exist (a missing serving.json inside it only means: not yet). */
export function checkServingDir(dir: string): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw refuse('INVALID_ARGUMENT', `${dir}: no such directory`);
}

/** `serving.json` parsed (INVALID_ARGUMENT when missing or unreadable, INVALID_CONFIG when malformed). */
export function readServingFile(dir: string): ServingAssignment {
  const value = parseJson(
    readBounded(servingFilePath(dir), 'serving.json', MAX_SERVING_FILE_BYTES),
    'serving.json',
  );
  const parsed = servingFileSchema.safeParse(value);
  if (!parsed.success)
    throw refuse(
      'INVALID_CONFIG',
      `serving.json: not an ${SERVING_FORMAT} file (${firstIssue(parsed.error)})`,
    );
  return parsed.data;
}

/**
 * The version `sha256` of the serving directory as a scoring model under `schema`: DIGEST_MISMATCH when
 * the bytes do not hash to the name or the description names another digest, INVALID_CONFIG when the
 * description is malformed or the schema is not the one it names, INVALID_TENSOR when the tensors do
 * not fit its spec, INVALID_ARGUMENT when a file is missing.
 */
export function loadSiteModel(dir: string, sha256: string, schema: DataSchema): ScoringModel {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw refuse('INVALID_CONFIG', 'version: must be a SHA-256 digest');
  const paths = siteModelPaths(dir, sha256);
  const bytesName = `models/${sha256}.safetensors`;
  const descriptionName = `models/${sha256}.json`;
  const bytes = readBounded(paths.bytes, bytesName, MAX_MODEL_BYTES);
  if (sha256Hex(bytes) !== sha256)
    throw refuse('DIGEST_MISMATCH', `${bytesName}: the bytes do not hash to the version they are named by`);
  const parsed = siteModelSchema.safeParse(
    parseJson(readBounded(paths.description, descriptionName, MAX_MODEL_DESCRIPTION_BYTES), descriptionName),
  );
  if (!parsed.success)
    throw refuse(
      'INVALID_CONFIG',
      `${descriptionName}: not an ${SITE_MODEL_FORMAT} file (${firstIssue(parsed.error)})`,
    );
  if (parsed.data.sha256 !== sha256)
    throw refuse('DIGEST_MISMATCH', `${descriptionName}: describes another version`);
  try {
    return assembleScoringModel({
      bytes,
      sha256,
      description: parsed.data,
      schema,
      schemaFlag: '--schema',
      card: null,
    });
  } catch (err) {
    // The tensors or the spec of a served version: name the file as well as what was wrong.
    if (err instanceof EntenteError && err.field !== 'schema')
      throw new EntenteError(err.code, `--follow: ${bytesName}: ${err.message}`, { field: 'follow' });
    throw err;
  }
}
