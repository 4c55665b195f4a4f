import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { SHA256_HEX } from '../crypto/digest.ts';
import { computeSchemaDigest, listFeatureColumns, parseDataSchema } from './schema.ts';

const base = () => ({
  features: [
    { name: 'age', type: 'integer' },
    { name: 'sex', type: 'category', categories: ['F', 'M'] },
    { name: 'bmi', type: 'number' },
  ],
  label: { name: 'outcome', classes: ['no', 'yes'] },
  missing: 'reject',
  standardize: true,
});

function rejects(value: unknown, field: string): void {
  assert.throws(
    () => parseDataSchema(value),
    (e: unknown) =>
      e instanceof EntenteError &&
      e.code === 'INVALID_CONFIG' &&
      e.field === field &&
      e.message.includes(field),
  );
}

describe('parseDataSchema', () => {
  it('fills defaults and freezes', () => {
    const s = parseDataSchema(base());
    assert.deepEqual(s.missingTokens, ['']);
    assert.deepEqual(s.ignore, []);
    assert.ok(Object.isFrozen(s) && Object.isFrozen(s.features) && Object.isFrozen(s.features[1]));
    assert.deepEqual(listFeatureColumns(s), ['age', 'sex=F', 'sex=M', 'bmi']);
  });

  it('names the offending field', () => {
    rejects(null, 'schema');
    rejects({ ...base(), features: [] }, 'features');
    rejects({ ...base(), features: [{ name: 'a', type: 'text' }] }, 'features[0].type');
    rejects({ ...base(), features: [{ name: '', type: 'number' }] }, 'features[0].name');
    rejects({ ...base(), label: { name: 'y', classes: ['only'] } }, 'label.classes');
    rejects({ ...base(), missing: 'ignore' }, 'missing');
    rejects({ ...base(), standardize: 'yes' }, 'standardize');
    rejects({ ...base(), standardise: true }, 'standardise');
    rejects({ ...base(), features: [{ name: 'a', type: 'number', extra: 1 }] }, 'features[0].extra');
  });

  it('checks cross-field rules', () => {
    rejects({ ...base(), features: [{ name: 'c', type: 'category' }] }, 'features[0].categories');
    rejects(
      { ...base(), features: [{ name: 'n', type: 'number', categories: ['a'] }] },
      'features[0].categories',
    );
    rejects(
      { ...base(), features: [{ name: 'c', type: 'category', categories: ['a', 'b', 'a'] }] },
      'features[0].categories[2]',
    );
    rejects({ ...base(), label: { name: 'y', classes: ['a', 'b', 'a'] } }, 'label.classes[2]');
    rejects({ ...base(), label: { name: 'bmi', classes: ['a', 'b'] } }, 'label.name');
    rejects(
      { ...base(), features: [...base().features, { name: 'age', type: 'number' }] },
      'features[3].name',
    );
    rejects({ ...base(), ignore: ['id', 'sex'] }, 'ignore[1]');
    rejects({ ...base(), missingTokens: ['', 'NA', ''] }, 'missingTokens[2]');
    rejects({ ...base(), missingTokens: ['M'] }, 'features[1].categories[1]');
    rejects({ ...base(), missingTokens: ['no'] }, 'label.classes[0]');
  });
});

describe('computeSchemaDigest', () => {
  it('is the SHA-256 of the canonical JSON and ignores spelled-out defaults and key order', () => {
    const d = computeSchemaDigest(parseDataSchema(base()));
    assert.match(d, SHA256_HEX);
    const reordered = {
      standardize: true,
      missing: 'reject',
      label: base().label,
      features: base().features,
    };
    assert.equal(
      computeSchemaDigest(parseDataSchema({ ...reordered, missingTokens: [''], ignore: ['id'] })),
      d,
    );
    const canonical =
      '{"features":[{"name":"age","type":"integer"},{"categories":["F","M"],"name":"sex","type":"category"},' +
      '{"name":"bmi","type":"number"}],"label":{"classes":["no","yes"],"name":"outcome"},"missing":"reject",' +
      '"missingTokens":[""],"standardize":true}';
    assert.equal(d, createHash('sha256').update(canonical).digest('hex'));
  });

  it('changes with anything that changes the encoding', () => {
    const d = computeSchemaDigest(parseDataSchema(base()));
    const variants = [
      { ...base(), standardize: false },
      { ...base(), missing: 'drop-row' },
      { ...base(), missingTokens: ['NA'] },
      { ...base(), label: { name: 'outcome', classes: ['yes', 'no'] } },
      { ...base(), features: [...base().features].reverse() },
      { ...base(), features: [{ name: 'sex', type: 'category', categories: ['M', 'F'] }] },
    ];
    const digests = new Set(variants.map((v) => computeSchemaDigest(parseDataSchema(v))));
    assert.equal(digests.size, variants.length);
    assert.ok(!digests.has(d));
  });

  it('the vendored breast-cancer schema parses', () => {
    const path = new URL('../../datasets/breast-cancer/schema.json', import.meta.url);
    const s = parseDataSchema(JSON.parse(readFileSync(path, 'utf8')));
    assert.equal(s.features.length, 30);
    assert.deepEqual(s.label.classes, ['malignant', 'benign']);
  });
});

describe('the evaluation fields: sensitive and slices', () => {
  const evaluation = () => ({
    ...base(),
    ignore: ['site_type'],
    sensitive: { name: 'sex', values: ['F', 'M'] },
    slices: [
      { name: 'age>=50', column: 'age', min: 50 },
      { name: 'site-type-a', column: 'site_type', in: ['a'] },
    ],
  });

  it('parses, freezes and leaves schemas without them unchanged', () => {
    const s = parseDataSchema(evaluation());
    assert.deepEqual(s.sensitive, { name: 'sex', values: ['F', 'M'] });
    assert.deepEqual(s.slices, [
      { name: 'age>=50', column: 'age', min: 50 },
      { name: 'site-type-a', column: 'site_type', in: ['a'] },
    ]);
    assert.ok(Object.isFrozen(s.sensitive) && Object.isFrozen(s.slices) && Object.isFrozen(s.slices![1]!.in));
    const plain = parseDataSchema(base());
    assert.ok(!('sensitive' in plain) && !('slices' in plain));
    // An extra column that is neither a feature nor ignored, and a range on a regression label.
    const extra = parseDataSchema({
      ...base(),
      label: { name: 'score', type: 'number' },
      sensitive: { name: 'ethnicity', values: ['x', 'y', 'z'] },
      slices: [
        { name: 'low score', column: 'score', max: 0.5 },
        { name: 'mid', column: 'bmi', min: -1, max: 1.5 },
      ],
    });
    assert.equal(extra.sensitive!.name, 'ethnicity');
    assert.deepEqual(extra.slices![1], { name: 'mid', column: 'bmi', min: -1, max: 1.5 });
  });

  it('names the offending field', () => {
    const e = evaluation();
    rejects({ ...e, sensitive: { name: 'sex', values: ['F'] } }, 'sensitive.values');
    rejects(
      { ...e, sensitive: { name: 'sex', values: Array.from({ length: 65 }, (_, i) => `v${i}`) } },
      'sensitive.values',
    );
    rejects({ ...e, sensitive: { name: 'sex', values: ['F', 'M', 'F'] } }, 'sensitive.values[2]');
    rejects({ ...e, sensitive: { name: 'sex', values: ['F', ''] } }, 'sensitive.values[1]');
    rejects(
      { ...e, missingTokens: ['', 'NA'], sensitive: { name: 'race', values: ['a', 'NA'] } },
      'sensitive.values[1]',
    );
    rejects({ ...e, sensitive: { name: 'outcome', values: ['no', 'yes'] } }, 'sensitive.name');
    rejects({ ...e, sensitive: { name: 'sex', values: ['F', 'M'], kind: 'x' } }, 'sensitive.kind');
    rejects({ ...e, slices: [] }, 'slices');
    rejects(
      { ...e, slices: Array.from({ length: 33 }, (_, i) => ({ name: `s${i}`, column: 'age', min: i })) },
      'slices',
    );
    rejects({ ...e, slices: [{ name: '<script>', column: 'age', min: 1 }] }, 'slices[0].name');
    rejects({ ...e, slices: [{ name: ' lead', column: 'age', min: 1 }] }, 'slices[0].name');
    rejects({ ...e, slices: [{ name: 'x'.repeat(65), column: 'age', min: 1 }] }, 'slices[0].name');
    rejects(
      {
        ...e,
        slices: [
          { name: 'a', column: 'age', min: 1 },
          { name: 'a', column: 'bmi', max: 1 },
        ],
      },
      'slices[1].name',
    );
    rejects({ ...e, slices: [e.slices[0], { name: 'b', column: 'age' }] }, 'slices[1].min');
    rejects({ ...e, slices: [e.slices[0], { name: 'b', column: 'age', min: 'x' }] }, 'slices[1].min');
    rejects({ ...e, slices: [e.slices[0], { name: 'b', column: 'age', min: 5, max: 5 }] }, 'slices[1].max');
    rejects({ ...e, slices: [e.slices[0], { name: 'b', column: 'sex', min: 1 }] }, 'slices[1].min');
    rejects({ ...e, slices: [e.slices[0], { name: 'b', column: 'outcome', max: 1 }] }, 'slices[1].max');
    rejects(
      { ...e, slices: [e.slices[0], { name: 'b', column: 'age', min: 1, in: ['3'] }] },
      'slices[1].min',
    );
    rejects({ ...e, slices: [e.slices[0], { name: 'b', column: 'age', in: [] }] }, 'slices[1].in');
    rejects({ ...e, slices: [e.slices[0], { name: 'b', column: 'age', in: ['3', '3'] }] }, 'slices[1].in[1]');
    rejects({ ...e, slices: [e.slices[0], { name: 'b', column: 'age', in: [''] }] }, 'slices[1].in[0]');
    rejects({ ...e, slices: [e.slices[0], { name: 'b', column: '', in: ['a'] }] }, 'slices[1].column');
    rejects(
      { ...e, slices: [e.slices[0], { name: 'b', column: 'age', in: ['a'], step: 1 }] },
      'slices[1].step',
    );
  });

  it('keeps the digest of a schema without them and covers them when declared', () => {
    const plain = computeSchemaDigest(parseDataSchema(base()));
    const withIgnore = computeSchemaDigest(parseDataSchema({ ...base(), ignore: ['site_type'] }));
    assert.equal(withIgnore, plain);
    const d = computeSchemaDigest(parseDataSchema(evaluation()));
    assert.notEqual(d, plain);
    const e = evaluation();
    const canonical =
      '{"features":[{"name":"age","type":"integer"},{"categories":["F","M"],"name":"sex","type":"category"},' +
      '{"name":"bmi","type":"number"}],"label":{"classes":["no","yes"],"name":"outcome"},"missing":"reject",' +
      '"missingTokens":[""],"sensitive":{"name":"sex","values":["F","M"]},"slices":[{"column":"age","min":50,' +
      '"name":"age>=50"},{"column":"site_type","in":["a"],"name":"site-type-a"}],"standardize":true}';
    assert.equal(d, createHash('sha256').update(canonical).digest('hex'));
    // Key order inside the new fields does not matter; every value does.
    const reordered = {
      ...e,
      sensitive: { values: ['F', 'M'], name: 'sex' },
      slices: [{ min: 50, column: 'age', name: 'age>=50' }, e.slices[1]],
    };
    assert.equal(computeSchemaDigest(parseDataSchema(reordered)), d);
    const variants = [
      { ...e, sensitive: undefined },
      { ...e, slices: undefined },
      { ...e, sensitive: { name: 'sex', values: ['M', 'F'] } },
      { ...e, sensitive: { name: 'site_type', values: ['F', 'M'] } },
      { ...e, slices: [...e.slices].reverse() },
      { ...e, slices: [{ name: 'age>=50', column: 'age', min: 50.5 }, e.slices[1]] },
      { ...e, slices: [{ name: 'age>=50', column: 'age', max: 50 }, e.slices[1]] },
      { ...e, slices: [{ name: 'age>=51', column: 'age', min: 50 }, e.slices[1]] },
      { ...e, slices: [e.slices[0], { name: 'site-type-a', column: 'site_type', in: ['a', 'b'] }] },
      { ...e, slices: [e.slices[0]] },
    ];
    const digests = new Set(variants.map((v) => computeSchemaDigest(parseDataSchema(v))));
    assert.equal(digests.size, variants.length);
    assert.ok(!digests.has(d) && !digests.has(plain));
  });

  it('writes numbers in canonical JSON as ECMAScript does (RFC 8785)', () => {
    const digestOf = (min: number) =>
      computeSchemaDigest(parseDataSchema({ ...base(), slices: [{ name: 's', column: 'bmi', min }] }));
    const expected = (text: string) =>
      createHash('sha256')
        .update(
          '{"features":[{"name":"age","type":"integer"},{"categories":["F","M"],"name":"sex","type":"category"},' +
            '{"name":"bmi","type":"number"}],"label":{"classes":["no","yes"],"name":"outcome"},"missing":"reject",' +
            `"missingTokens":[""],"slices":[{"column":"bmi","min":${text},"name":"s"}],"standardize":true}`,
        )
        .digest('hex');
    assert.equal(digestOf(-0), expected('0'));
    assert.equal(digestOf(1e21), expected('1e+21'));
    assert.equal(digestOf(0.1), expected('0.1'));
    assert.equal(digestOf(1e-7), expected('1e-7'));
    assert.equal(digestOf(18.5), expected('18.5'));
  });
});
