/**
 * Loads a CSV table (csv.ts) into `LabeledData` under a declared `DataSchema` (schema.ts), checking
 * every cell. The header must name every declared feature and the label; any other column must be
 * listed in `schema.ignore`. Values: `number` cells are decimal literals (`-1.5`, `.5`, `2e-3`; no
 * whitespace, hex, `NaN` or `Infinity`) within the float32 range; `integer` cells are such literals with
 * an integral value; `category` and label cells must equal a declared category/class exactly; a
 * regression label (`type: 'number'`) is a `number` cell, kept in `target`.
 * Missing cells (equal to a `missingTokens` entry) follow `schema.missing`: 'reject' throws; 'drop-row'
 * drops the row; 'impute-mean' replaces each missing encoded column by the mean of that column over
 * this table's present values (so a missing category becomes the local category frequencies). A missing
 * label can only be dropped. Rows keep their file order. Standardization is not applied here (the
 * statistics may be federated; see standardize.ts). When the file does not fit and its header line
 * seems to use another delimiter than the one given (`;` or a tab instead of `,`), the error says so.
 *
 * The evaluation fields of a schema are read but never encoded as model input (unless the column is
 * also a feature): the `sensitive` column gives each kept row's group (index into `sensitive.values`,
 * -1 for a missing cell; any other value is refused) and each slice a 0/1 membership per kept row (a
 * missing cell is in no slice; bounds compare the cell's decimal value, so a non-number cell is
 * refused). A missing cell in such a column never drops or rejects a row by itself: the missing policy
 * applies to features and the label only.
 */
import { EntenteError } from '../core/errors.ts';
import { type CsvDelimiter, type CsvTable, describeDelimiter, detectDelimiter, parseCsv } from './csv.ts';
import type { LabeledData } from './labeled-data.ts';
import { type DataSchema, listFeatureColumns } from './schema.ts';

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Parses `text` and encodes it under `schema` (a value returned by `parseDataSchema`). Throws
 * EntenteError('INVALID_DATA') with `field` = the column name and a message naming the column and the
 * 1-based data row (e.g. `row 17, column "mean_radius": "abc" is not a number`); the message quotes at
 * most 40 characters of the offending cell. Also throws when no row remains.
 */
export function loadTable(
  text: string,
  schema: DataSchema,
  options: { readonly delimiter?: CsvDelimiter } = {},
): LabeledData {
  const delimiter = options.delimiter ?? ',';
  let table: CsvTable;
  let columnOf: Map<string, number>;
  try {
    table = parseCsv(text, { delimiter });
    columnOf = indexHeader(table.header, schema);
  } catch (err) {
    throw withDelimiterHint(err, text, delimiter);
  }
  const { rows } = table;
  const featureNames = listFeatureColumns(schema);
  const dim = featureNames.length;
  const classIndex = new Map(schema.label.classes.map((c, k) => [c, k]));
  const categoryIndex = schema.features.map((f) => new Map((f.categories ?? []).map((c, k) => [c, k])));
  const missingTokens = new Set(schema.missingTokens);
  const labelColumn = columnOf.get(schema.label.name)!;
  const featureColumns = schema.features.map((f) => columnOf.get(f.name)!);
  const sensitive = schema.sensitive;
  const sensitiveColumn = sensitive ? columnOf.get(sensitive.name)! : -1;
  const groupIndex = new Map((sensitive?.values ?? []).map((v, k) => [v, k]));
  const groups = sensitive ? new Int32Array(rows.length) : undefined;
  const sliceSpecs = schema.slices ?? [];
  const sliceColumns = sliceSpecs.map((s) => columnOf.get(s.column)!);
  const sliceValues = sliceSpecs.map((s) => (s.in ? new Set(s.in) : undefined));
  const slices = schema.slices ? sliceSpecs.map(() => new Uint8Array(rows.length)) : undefined;

  const x = new Float32Array(rows.length * dim);
  const y = new Int32Array(rows.length);
  const regression = schema.label.type === 'number';
  const target = regression ? new Float32Array(rows.length) : undefined;
  let count = 0;
  let imputed = false;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    const rowNo = r + 1;
    let dropRow = false;
    let offset = count * dim;
    for (let f = 0; f < schema.features.length; f++) {
      const spec = schema.features[f]!;
      const cell = row[featureColumns[f]!]!;
      const width = spec.type === 'category' ? spec.categories!.length : 1;
      if (missingTokens.has(cell)) {
        if (schema.missing === 'reject')
          fail(rowNo, spec.name, `missing value (the schema's missing policy is 'reject')`);
        if (schema.missing === 'drop-row') dropRow = true;
        else imputed = true;
        x.fill(Number.NaN, offset, offset + width);
      } else if (spec.type === 'category') {
        const k = categoryIndex[f]!.get(cell);
        if (k === undefined) fail(rowNo, spec.name, `${quote(cell)} is not a declared category`);
        x.fill(0, offset, offset + width);
        x[offset + k] = 1;
      } else {
        x[offset] = parseNumberCell(cell, spec.type === 'integer', rowNo, spec.name);
      }
      offset += width;
    }
    const labelCell = row[labelColumn]!;
    if (missingTokens.has(labelCell)) {
      if (schema.missing !== 'drop-row') {
        fail(
          rowNo,
          schema.label.name,
          `missing label (rows without a label can only be dropped, missing: 'drop-row')`,
        );
      }
      dropRow = true;
    } else if (target) {
      target[count] = parseNumberCell(labelCell, false, rowNo, schema.label.name);
    } else {
      const k = classIndex.get(labelCell);
      if (k === undefined) fail(rowNo, schema.label.name, `${quote(labelCell)} is not a declared class`);
      y[count] = k;
    }
    if (groups) {
      const cell = row[sensitiveColumn]!;
      const k = missingTokens.has(cell) ? -1 : groupIndex.get(cell);
      if (k === undefined)
        fail(rowNo, sensitive!.name, `${quote(cell)} is not a declared value of the sensitive attribute`);
      groups[count] = k;
    }
    if (slices) {
      for (let s = 0; s < sliceSpecs.length; s++) {
        const spec = sliceSpecs[s]!;
        const cell = row[sliceColumns[s]!]!;
        const values = sliceValues[s];
        slices[s]![count] = missingTokens.has(cell)
          ? 0
          : values
            ? Number(values.has(cell))
            : Number(inRange(parseSliceCell(cell, rowNo, spec.column), spec.min, spec.max));
      }
    }
    if (!dropRow) count++;
  }
  if (count === 0) {
    throw new EntenteError(
      'INVALID_DATA',
      rows.length === 0 ? 'table has no data rows' : 'every data row has a missing value (all were dropped)',
    );
  }
  const data: LabeledData = {
    x: count === rows.length ? x : x.slice(0, count * dim),
    y: count === rows.length ? y : y.slice(0, count),
    ...(target ? { target: count === rows.length ? target : target.slice(0, count) } : {}),
    count,
    dim,
    featureNames,
    ...(groups ? { groups: count === rows.length ? groups : groups.slice(0, count) } : {}),
    ...(slices ? { slices: slices.map((m) => (count === rows.length ? m : m.slice(0, count))) } : {}),
  };
  if (imputed) {
    const sourceColumns = schema.features.flatMap((f) => (f.categories ?? [f.name]).map(() => f.name));
    imputeColumnMeans(data, sourceColumns);
  }
  return data;
}

/** Adds to a CSV or header error which delimiter the file seems to use, when it is not `delimiter`. */
function withDelimiterHint(err: unknown, text: string, delimiter: CsvDelimiter): unknown {
  const seen = detectDelimiter(text);
  if (
    !(err instanceof EntenteError) ||
    err.code !== 'INVALID_DATA' ||
    seen === undefined ||
    seen === delimiter
  )
    return err;
  const hint =
    `; the file seems to use ${describeDelimiter(seen)} as its delimiter, not ${describeDelimiter(delimiter)}` +
    ` (say so with --delimiter ${seen === '\t' ? 'tab' : seen})`;
  return new EntenteError(
    'INVALID_DATA',
    `${err.message}${hint}`,
    err.field === undefined ? {} : { field: err.field },
  );
}

function indexHeader(header: readonly string[], schema: DataSchema): Map<string, number> {
  const columnOf = new Map<string, number>();
  header.forEach((name, c) => {
    if (name === '') {
      throw new EntenteError('INVALID_DATA', `header: column ${c + 1} has an empty name`, {
        field: 'header',
      });
    }
    if (columnOf.has(name)) fail(undefined, name, 'appears more than once in the header');
    columnOf.set(name, c);
  });
  const declared = [
    ...new Set([
      ...schema.features.map((f) => f.name),
      schema.label.name,
      ...(schema.sensitive ? [schema.sensitive.name] : []),
      ...(schema.slices ?? []).map((s) => s.column),
    ]),
  ];
  const absent = declared.filter((name) => !columnOf.has(name));
  if (absent.length > 0) {
    fail(
      undefined,
      absent[0]!,
      `is declared but not in the header (missing: ${absent.map(quote).join(', ')})`,
    );
  }
  const known = new Set([...declared, ...schema.ignore]);
  const extra = header.filter((name) => !known.has(name));
  if (extra.length > 0) {
    fail(
      undefined,
      extra[0]!,
      `is not declared in the schema (undeclared: ${extra.map(quote).join(', ')}; list them in "ignore" to skip them)`,
    );
  }
  return columnOf;
}

function parseNumberCell(cell: string, integer: boolean, rowNo: number, column: string): number {
  if (!DECIMAL.test(cell)) fail(rowNo, column, `${quote(cell)} is not a number`);
  const value = Number(cell);
  if (!Number.isFinite(Math.fround(value)))
    fail(rowNo, column, `${quote(cell)} is outside the float32 range`);
  if (integer && !Number.isInteger(value)) fail(rowNo, column, `${quote(cell)} is not an integer`);
  return value;
}

/** A slice's bounded cell: a decimal literal, compared as its (double) value. */
function parseSliceCell(cell: string, rowNo: number, column: string): number {
  const value = Number(cell);
  if (!DECIMAL.test(cell) || !Number.isFinite(value))
    fail(rowNo, column, `${quote(cell)} is not a number (a slice bounds this column)`);
  return value;
}

/** min inclusive, max exclusive; an absent bound does not limit. */
function inRange(value: number, min: number | undefined, max: number | undefined): boolean {
  return (min === undefined || value >= min) && (max === undefined || value < max);
}

/** Replaces NaN (missing) entries of each column by the mean of the column's present entries. */
function imputeColumnMeans(data: LabeledData, sourceColumns: readonly string[]): void {
  const { x, count, dim } = data;
  for (let j = 0; j < dim; j++) {
    let sum = 0;
    let present = 0;
    for (let i = j; i < x.length; i += dim) {
      const v = x[i]!;
      if (!Number.isNaN(v)) {
        sum += v;
        present++;
      }
    }
    if (present === 0) fail(undefined, sourceColumns[j]!, `every value is missing, no mean to impute`);
    if (present === count) continue;
    const mean = sum / present;
    for (let i = j; i < x.length; i += dim) if (Number.isNaN(x[i]!)) x[i] = mean;
  }
}

function quote(cell: string): string {
  return JSON.stringify(cell.length > 40 ? `${cell.slice(0, 40)}…` : cell);
}

function fail(rowNo: number | undefined, column: string, problem: string): never {
  const where = rowNo === undefined ? `column "${column}"` : `row ${rowNo}, column "${column}"`;
  throw new EntenteError('INVALID_DATA', `${where}: ${problem}`, { field: column });
}
