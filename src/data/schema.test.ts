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
