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
  /**
   * The sensitive attribute a private evaluation reports fairness over: a column of the table (a
   * feature, an ignored column or an extra column that is read but never encoded) whose cell must be
   * one of `values` (exact match) or a missing token (then the row is in no group).
   */
  readonly sensitive?: SensitiveSpec;
  /** Named subsets of rows every evaluation metric is also reported for, in declaration order. */
  readonly slices?: readonly SliceSpec[];
}

export interface SensitiveSpec {
  readonly name: string;
  /** The groups, 2 to 64 distinct values; a row's group is the index of its cell here. */
  readonly values: readonly string[];
}

/**
 * A slice: the rows whose `column` cell is in `in` (exact match, any column), or, on a number or
 * integer column, whose value is within `[min, max)` (either bound may be absent, not both). A
 * missing cell is in no slice.
 */
export interface SliceSpec {
  readonly name: string;
  readonly column: string;
  readonly min?: number;
  readonly max?: number;
  readonly in?: readonly string[];
}

/** Limits of the optional evaluation fields. */
export const MAX_SENSITIVE_VALUES = 64;
export const MAX_SLICES = 32;
const SLICE_NAME = /^[A-Za-z0-9][A-Za-z0-9 _.<>=-]{0,63}$/;

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
  sensitive: z
    .strictObject({
      name,
      values: z
        .array(name)
        .min(2, 'must declare at least two values')
        .max(MAX_SENSITIVE_VALUES, `must declare at most ${MAX_SENSITIVE_VALUES} values`),
    })
    .optional(),
  slices: z
    .array(
      z.strictObject({
        name: z
          .string()
          .regex(
            SLICE_NAME,
            'must be 1 to 64 characters: letters, digits, space, _ . < > = -, starting with a letter or digit',
          ),
        column: name,
        min: z.number().optional(),
        max: z.number().optional(),
        in: z
          .array(z.string())
          .min(1, 'must list at least one value')
          .max(1024, 'must list at most 1024 values')
          .optional(),
      }),
    )
    .min(1, 'must declare at least one slice (omit the field otherwise)')
    .max(MAX_SLICES, `must declare at most ${MAX_SLICES} slices`)
    .optional(),
});

/**
 * Validates an untrusted value (e.g. parsed schema.json) and returns a frozen `DataSchema` with
 * defaults filled in. Unknown keys are rejected. Cross-field rules: feature, label and ignored column
 * names are distinct; `categories` is given exactly for category features and has no duplicates;
 * classes have no duplicates; no category or class equals a missing token. The optional evaluation
 * fields: `sensitive.name` is any column but the label, its values distinct and not missing tokens;
 * slice names are distinct, each slice has `in` (distinct values, none a missing token) or bounds
 * (`min` < `max` when both) on a column that holds numbers.
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
  const sensitive =
    input.sensitive === undefined ? undefined : checkSensitive(input.sensitive, input, missingTokens);
  const slices = input.slices === undefined ? undefined : checkSlices(input.slices, input, missingTokens);

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
    ...(sensitive ? { sensitive } : {}),
    ...(slices ? { slices } : {}),
  });
}

type ParsedInput = z.infer<typeof dataSchemaSchema>;

/** The sensitive column is any column but the label; its values are distinct and none is a missing token. */
function checkSensitive(
  input: NonNullable<ParsedInput['sensitive']>,
  schema: ParsedInput,
  missingTokens: readonly string[],
): SensitiveSpec {
  if (input.name === schema.label.name)
    fail(
      'sensitive.name',
      `column "${input.name}" is the label; the sensitive attribute must be another column`,
    );
  assertUnique(input.values, 'sensitive.values');
  assertNotMissingToken(input.values, missingTokens, 'sensitive.values');
  return Object.freeze({ name: input.name, values: Object.freeze([...input.values]) });
}

/**
 * Slice names are distinct; a slice has either `in` or at least one of `min`/`max` (min < max when
 * both); bounds need a column that holds numbers (a number or integer feature, a regression label, or
 * a column that is neither a feature nor the label, whose cells are then read as numbers).
 */
function checkSlices(
  input: NonNullable<ParsedInput['slices']>,
  schema: ParsedInput,
  missingTokens: readonly string[],
): readonly SliceSpec[] {
  const names = new Map<string, number>();
  const out = input.map((slice, i): SliceSpec => {
    const field = `slices[${i}]`;
    const previous = names.get(slice.name);
    if (previous !== undefined)
      fail(`${field}.name`, `"${slice.name}" is already the name of slices[${previous}]`);
    names.set(slice.name, i);
    const bounded = slice.min !== undefined || slice.max !== undefined;
    if (slice.in !== undefined) {
      if (bounded)
        fail(
          `${field}.${slice.min !== undefined ? 'min' : 'max'}`,
          'is not allowed with "in" (a slice is either a list of values or a range)',
        );
      assertUnique(slice.in, `${field}.in`);
      assertNotMissingToken(slice.in, missingTokens, `${field}.in`);
      return Object.freeze({ name: slice.name, column: slice.column, in: Object.freeze([...slice.in]) });
    }
    if (!bounded) fail(`${field}.min`, 'a slice needs "in", or "min" and/or "max"');
    if (slice.min !== undefined && slice.max !== undefined && !(slice.min < slice.max))
      fail(`${field}.max`, `must be greater than min (${slice.min}); min is inclusive, max exclusive`);
    const feature = schema.features.find((f) => f.name === slice.column);
    const nonNumeric =
      feature?.type === 'category'
        ? 'a category feature'
        : slice.column === schema.label.name && schema.label.type !== 'number'
          ? 'a class label'
          : undefined;
    if (nonNumeric !== undefined)
      fail(
        `${field}.${slice.min !== undefined ? 'min' : 'max'}`,
        `column "${slice.column}" is ${nonNumeric}; bounds need a number column (use "in" to list values)`,
      );
    return Object.freeze({
      name: slice.name,
      column: slice.column,
      ...(slice.min !== undefined ? { min: slice.min } : {}),
      ...(slice.max !== undefined ? { max: slice.max } : {}),
    });
  });
  return Object.freeze(out);
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
 * columns and does not change the encoded data. `sensitive` and `slices` are covered when declared
 * and absent from the canonical JSON otherwise, so a schema without them keeps the digest it had. Defaults are part of a parsed schema, so a schema
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
    // The evaluation fields are covered only when declared, so a schema without them keeps its digest.
    ...(schema.sensitive
      ? { sensitive: { name: schema.sensitive.name, values: [...schema.sensitive.values] } }
      : {}),
    ...(schema.slices
      ? {
          slices: schema.slices.map((slice): JsonValue => {
            const out: { [key: string]: JsonValue } = { name: slice.name, column: slice.column };
            if (slice.in !== undefined) out.in = [...slice.in];
            if (slice.min !== undefined) out.min = slice.min;
            if (slice.max !== undefined) out.max = slice.max;
            return out;
          }),
        }
      : {}),
  };
  return sha256Hex(new TextEncoder().encode(encodeCanonicalJson(covered)));
}

type JsonValue =
  | string
  | number
  | boolean
  | null
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** RFC 8785 for the values a schema contains: strings and finite numbers as ECMAScript
 * JSON.stringify (RFC 8785 section 3.2.2.3 is the ECMAScript Number-to-String algorithm, so `-0` is
 * `0` and `1e21` is `1e+21`), object keys sorted by UTF-16 code units, no whitespace. */
function encodeCanonicalJson(value: JsonValue): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError('canonical JSON has no non-finite numbers');
    return JSON.stringify(value);
  }
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
