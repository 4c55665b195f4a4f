/**
 * The declared data schema: which columns a participant's table must have, how each is encoded as
 * model input, the label and its classes, and what to do with missing values. Every participant of a
 * run validates its local data against the same schema; `computeSchemaDigest` names that schema
 * (SHA-256 of its RFC 8785 canonical JSON) so a run can state which one it requires.
 *
 * Feature encoding, in declaration order: a `number` or `integer` feature is one column; a `category`
 * feature becomes one one-hot column per declared category, in the order of `categories`, named
 * `<feature>=<category>`. The label is encoded as the index of its class in `label.classes`, or, for
 * a regression target (`label.type: 'number'`), as its value.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { sha256Hex } from '../crypto/digest.ts';

export type FeatureType = 'number' | 'integer' | 'category';

/** What to do with a missing value (a cell equal to one of `missingTokens`). */
export type MissingPolicy = 'reject' | 'drop-row' | 'impute-mean';

export interface FeatureSpec {
  readonly name: string;
  readonly type: FeatureType;
  /** Present exactly when `type` is 'category': the allowed values, in one-hot column order. */
  readonly categories?: readonly string[];
}

export interface DataSchema {
  readonly features: readonly FeatureSpec[];
  /**
   * The label column: a class label (`classes`, encoded as the index of its class) or, with
   * `type: 'number'`, a continuous regression target (then `classes` is empty).
   */
  readonly label: { readonly name: string; readonly classes: readonly string[]; readonly type?: 'number' };
  readonly missing: MissingPolicy;
  /** Cell values that mean "missing" (exact match). Default `['']`. */
  readonly missingTokens: readonly string[];
  /** Whether the run standardizes features (with statistics derived from the data, see standardize.ts). */
  readonly standardize: boolean;
  /** Columns present in the file that are deliberately not used. Default `[]`. Not covered by the digest. */
  readonly ignore: readonly string[];
}

const name = z.string().min(1, 'must be a non-empty string');

const featureSchema = z.strictObject({
  name,
  type: z.enum(['number', 'integer', 'category']),
  categories: z.array(name).min(1).optional(),
});

const dataSchemaSchema = z.strictObject({
  features: z.array(featureSchema).min(1, 'must declare at least one feature'),
  label: z.strictObject({
    name,
    classes: z.array(name).min(2, 'must declare at least two classes').optional(),
    type: z.enum(['number']).optional(),
  }),
  missing: z.enum(['reject', 'drop-row', 'impute-mean']),
  missingTokens: z.array(z.string()).optional(),
  standardize: z.boolean(),
  ignore: z.array(name).optional(),
});

/**
 * Validates an untrusted value (e.g. parsed schema.json) and returns a frozen `DataSchema` with
 * defaults filled in. Unknown keys are rejected. Cross-field rules: feature, label and ignored column
 * names are distinct; `categories` is given exactly for category features and has no duplicates;
 * classes have no duplicates; no category or class equals a missing token.
 * Throws EntenteError('INVALID_CONFIG') whose message and `field` name the offending path
 * (e.g. `features[3].type`).
 */
export function parseDataSchema(value: unknown): DataSchema {
  const parsed = dataSchemaSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = [...issue.path];
    if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) path.push(issue.keys[0]!);
    const field = formatPath(path);
    fail(field, issue.message);
  }
  const input = parsed.data;
  const regression = input.label.type === 'number';
  if (regression && input.label.classes !== undefined)
    fail('label.classes', 'is not allowed for a number label (a regression target has no classes)');
  if (!regression && input.label.classes === undefined)
    fail(
      'label.classes',
      'is required: declare the label\'s classes, or "type": "number" for a regression target (a continuous value)',
    );
  const classes = input.label.classes ?? [];
  const missingTokens = input.missingTokens ?? [''];
  const ignore = input.ignore ?? [];
  assertUnique(missingTokens, 'missingTokens');

  const columns = new Map<string, string>();
  const claim = (column: string, field: string): void => {
    const previous = columns.get(column);
    if (previous !== undefined) fail(field, `column "${column}" is already declared at ${previous}`);
    columns.set(column, field);
  };
  const features: FeatureSpec[] = input.features.map((f, i) => {
    const field = `features[${i}]`;
    claim(f.name, `${field}.name`);
    if (f.type === 'category') {
      if (f.categories === undefined) fail(`${field}.categories`, 'is required for a category feature');
      assertUnique(f.categories, `${field}.categories`);
      assertNotMissingToken(f.categories, missingTokens, `${field}.categories`);
      return Object.freeze({ name: f.name, type: f.type, categories: Object.freeze([...f.categories]) });
    }
    if (f.categories !== undefined) fail(`${field}.categories`, `is only allowed for a category feature`);
    return Object.freeze({ name: f.name, type: f.type });
  });
  claim(input.label.name, 'label.name');
  assertUnique(classes, 'label.classes');
  assertNotMissingToken(classes, missingTokens, 'label.classes');
  ignore.forEach((column, i) => {
    claim(column, `ignore[${i}]`);
  });

  return Object.freeze({
    features: Object.freeze(features),
    label: Object.freeze({
      name: input.label.name,
      classes: Object.freeze([...classes]),
      ...(regression ? { type: 'number' as const } : {}),
    }),
    missing: input.missing,
    missingTokens: Object.freeze([...missingTokens]),
    standardize: input.standardize,
    ignore: Object.freeze([...ignore]),
  });
}

/** The encoded feature column names, in order (one-hot columns as `<feature>=<category>`). */
export function listFeatureColumns(schema: DataSchema): string[] {
  const out: string[] = [];
  for (const f of schema.features) {
    if (f.type === 'category') for (const c of f.categories ?? []) out.push(`${f.name}=${c}`);
    else out.push(f.name);
  }
  return out;
}

/**
 * Stable identifier of a schema: lower-case hex SHA-256 of the UTF-8 canonical JSON (RFC 8785: sorted
 * keys, no whitespace) of every field except `ignore`, which only describes a site's extra file
 * columns and does not change the encoded data. Defaults are part of a parsed schema, so a schema
 * that spells out a default has the same digest as one that omits it.
 */
export function computeSchemaDigest(schema: DataSchema): string {
  const covered: JsonValue = {
    features: schema.features.map((f): JsonValue => {
      if (f.type !== 'category') return { name: f.name, type: f.type };
      return { name: f.name, type: f.type, categories: [...(f.categories ?? [])] };
    }),
    // A regression label has no classes; classification labels keep the form they always had.
    label:
      schema.label.type === 'number'
        ? { name: schema.label.name, type: 'number' }
        : { name: schema.label.name, classes: [...schema.label.classes] },
    missing: schema.missing,
    missingTokens: [...schema.missingTokens],
    standardize: schema.standardize,
  };
  return sha256Hex(new TextEncoder().encode(encodeCanonicalJson(covered)));
}

type JsonValue = string | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** RFC 8785 for the values a schema contains (no numbers): strings as ECMAScript JSON.stringify,
 * object keys sorted by UTF-16 code units, no whitespace. */
function encodeCanonicalJson(value: JsonValue): string {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(encodeCanonicalJson).join(',')}]`;
  const record = value as { readonly [key: string]: JsonValue };
  const keys = Object.keys(record).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${encodeCanonicalJson(record[k]!)}`).join(',')}}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out === '' ? '' : '.'}${String(p)}`;
  return out === '' ? 'schema' : out;
}

function assertUnique(values: readonly string[], field: string): void {
  const seen = new Set<string>();
  values.forEach((v, i) => {
    if (seen.has(v)) fail(`${field}[${i}]`, `duplicate value ${JSON.stringify(v)}`);
    seen.add(v);
  });
}

function assertNotMissingToken(values: readonly string[], tokens: readonly string[], field: string): void {
  values.forEach((v, i) => {
    if (tokens.includes(v)) fail(`${field}[${i}]`, `${JSON.stringify(v)} is also a missing token`);
  });
}

function fail(field: string, problem: string): never {
  throw new EntenteError('INVALID_CONFIG', `data schema: ${field}: ${problem}`, { field });
}
