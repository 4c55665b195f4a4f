/** The examples of docs/data-schema.md: every schema parses, every table loads under the schema before it. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import type { LabeledData } from './labeled-data.ts';
import { loadTable } from './load-table.ts';
import { computeSchemaDigest, parseDataSchema } from './schema.ts';

const DOC = readFileSync(resolve(import.meta.dirname, '..', '..', 'docs', 'data-schema.md'), 'utf8');

/** The fenced blocks tagged `json schema` and `csv`, in document order. */
function blocks(): { kind: 'schema' | 'csv'; text: string }[] {
  const out: { kind: 'schema' | 'csv'; text: string }[] = [];
  for (const m of DOC.matchAll(/^```(json schema|csv)\n([\s\S]*?)^```$/gm))
    out.push({ kind: m[1] === 'csv' ? 'csv' : 'schema', text: m[2]! });
  return out;
}

/** Each example's schema with the table that follows it, loaded. */
function examples(): LabeledData[] {
  const out: LabeledData[] = [];
  let schema: ReturnType<typeof parseDataSchema> | undefined;
  for (const b of blocks()) {
    if (b.kind === 'schema') schema = parseDataSchema(JSON.parse(b.text));
    else {
      assert.ok(schema, 'a table must follow a schema');
      out.push(loadTable(b.text, schema));
    }
  }
  return out;
}

describe('docs/data-schema.md', () => {
  it('has five schemas, each followed by a table, covering every type, label kind and missing policy', () => {
    const kinds = blocks().map((b) => b.kind);
    assert.deepEqual(kinds, [
      'schema',
      'csv',
      'schema',
      'csv',
      'schema',
      'csv',
      'schema',
      'csv',
      'schema',
      'csv',
    ]);
    const schemas = blocks()
      .filter((b) => b.kind === 'schema')
      .map((b) => parseDataSchema(JSON.parse(b.text)));
    assert.deepEqual([...new Set(schemas.flatMap((s) => s.features.map((f) => f.type)))].sort(), [
      'category',
      'integer',
      'number',
    ]);
    assert.deepEqual([...new Set(schemas.map((s) => s.missing))].sort(), [
      'drop-row',
      'impute-mean',
      'reject',
    ]);
    assert.deepEqual(
      schemas.map((s) => s.label.type ?? 'classes'),
      ['classes', 'number', 'classes', 'classes', 'classes'],
    );
  });

  it('encodes the examples as the page says', () => {
    const [types, regression, imputed, ignored, evaluation] = examples();
    // A regression target: kept as a number, no class labels.
    assert.deepEqual([...regression!.target!], [151, 75]);
    assert.deepEqual([...regression!.x], [59, 32.1, 48, 21.6].map(Math.fround));
    // age, sex=F, sex=M, bmi; labels by class index.
    assert.deepEqual(types!.featureNames, ['age', 'sex=F', 'sex=M', 'bmi']);
    assert.deepEqual([...types!.x], [40, 0, 1, 22.5, 57, 1, 0, 31]);
    assert.deepEqual([...types!.y], [1, 0]);
    // The missing glucose is the mean of 5 and 7; the missing smoker the site's frequencies.
    assert.deepEqual([...imputed!.x], [5, 1, 0, 6, 0, 1, 7, 0.5, 0.5]);
    assert.deepEqual([...imputed!.y], [1, 0, 0]);
    // record_id ignored; the row with a missing x dropped.
    assert.equal(ignored!.count, 2);
    assert.deepEqual([...ignored!.x], [0.5, 2]);
    // The second row dropped; groups F, M, F; age>=50 holds rows 1 and 2, site-type-a row 1 only.
    assert.equal(evaluation!.count, 3);
    assert.deepEqual(evaluation!.featureNames, ['age', 'sex=F', 'sex=M', 'bmi']);
    assert.deepEqual([...evaluation!.groups!], [0, 1, 0]);
    assert.deepEqual(
      evaluation!.slices!.map((m) => [...m]),
      [
        [1, 1, 0],
        [1, 0, 0],
      ],
    );
  });

  it('is right that the evaluation fields are in the digest only when declared', () => {
    const schemas = blocks().filter((b) => b.kind === 'schema');
    const withFields = JSON.parse(schemas[4]!.text) as Record<string, unknown>;
    const { sensitive: _s, slices: _l, ...without } = withFields;
    const digest = computeSchemaDigest(parseDataSchema(without));
    assert.notEqual(computeSchemaDigest(parseDataSchema(withFields)), digest);
    assert.notEqual(
      computeSchemaDigest(parseDataSchema({ ...without, sensitive: withFields.sensitive })),
      digest,
    );
    assert.notEqual(computeSchemaDigest(parseDataSchema({ ...without, slices: withFields.slices })), digest);
    assert.equal(computeSchemaDigest(parseDataSchema({ ...without, ignore: ['site_type'] })), digest);
  });

  it('is right that class order and defaults are part of the digest and ignore is not', () => {
    const first = JSON.parse(blocks()[0]!.text) as Record<string, unknown> & {
      label: { name: string; classes: string[] };
    };
    const digest = computeSchemaDigest(parseDataSchema(first));
    const reordered = { ...first, label: { ...first.label, classes: [...first.label.classes].reverse() } };
    assert.notEqual(computeSchemaDigest(parseDataSchema(reordered)), digest);
    assert.equal(computeSchemaDigest(parseDataSchema({ ...first, missingTokens: [''] })), digest);
    assert.equal(computeSchemaDigest(parseDataSchema({ ...first, ignore: ['extra'] })), digest);
  });

  it('is right that a label with neither classes nor type, or with both, is refused saying so', () => {
    const first = JSON.parse(blocks()[0]!.text) as Record<string, unknown>;
    for (const [label, pattern] of [
      [{ name: 'outcome' }, /declare the label's classes, or "type": "number" for a regression target/],
      [{ name: 'outcome', type: 'number', classes: ['a', 'b'] }, /not allowed for a number label/],
    ] as const)
      assert.throws(
        () => parseDataSchema({ ...first, label }),
        (e: unknown) =>
          e instanceof EntenteError &&
          e.code === 'INVALID_CONFIG' &&
          e.field === 'label.classes' &&
          pattern.test(e.message),
      );
  });

  it('keeps classification digests as they were and gives a regression label its own', () => {
    // The breast-cancer schema's digest, as policies and runs already name it.
    const bc = parseDataSchema(
      JSON.parse(
        readFileSync(
          resolve(import.meta.dirname, '..', '..', 'datasets', 'breast-cancer', 'schema.json'),
          'utf8',
        ),
      ),
    );
    assert.equal(computeSchemaDigest(bc), '9dea1638af0c3d0255809f8b0ea2f63ad5cb27c92413f981384e16a778b65cca');
    const reg = JSON.parse(blocks()[2]!.text) as Record<string, unknown>;
    const asClasses = { ...reg, label: { name: 'progression', classes: ['low', 'high'] } };
    assert.notEqual(
      computeSchemaDigest(parseDataSchema(reg)),
      computeSchemaDigest(parseDataSchema(asClasses)),
    );
  });
});
