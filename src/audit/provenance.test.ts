import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { generateEd25519KeyPem } from '../crypto/signatures.ts';
import { signDsse, verifyDsse } from './dsse.ts';
import {
  createProvenanceStatement,
  IN_TOTO_PAYLOAD_TYPE,
  type ModelProvenance,
  PROVENANCE_PREDICATE_TYPE,
  parseProvenanceStatement,
} from './provenance.ts';

const HASH = (c: string) => c.repeat(64);
const sample: ModelProvenance = {
  modelSha256: HASH('a'),
  run: 'run-1',
  round: 3,
  policySha256: HASH('b'),
  dataSchemaSha256: null,
  codeVersion: '0.1.0+abc',
  hyperparameters: { learningRate: 0.05, layers: [8, 4], optimizer: { name: 'fedadam', beta1: 0.9 } },
  contributors: ['hospital-b', 'hospital-a', 'bank-c'],
  logIndex: 41,
};

function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, reversedKeys(v)]),
  );
}

const decode = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe('model provenance statement', () => {
  it('is an in-toto Statement v1 in canonical JSON', () => {
    const bytes = createProvenanceStatement(sample);
    const statement = decode(bytes);
    assert.equal(statement._type, 'https://in-toto.io/Statement/v1');
    assert.equal(statement.predicateType, PROVENANCE_PREDICATE_TYPE);
    assert.deepEqual(statement.subject, [
      { name: 'entente-model:run-1:round-3', digest: { sha256: HASH('a') } },
    ]);
    assert.equal(new TextDecoder().decode(bytes), canonicalizeJson(statement));
    assert.ok(new TextDecoder().decode(bytes).startsWith('{"_type":'));
  });

  it('round-trips, including through a DSSE envelope', () => {
    assert.deepEqual(parseProvenanceStatement(createProvenanceStatement(sample)), sample);
    const key = generateEd25519KeyPem();
    const envelope = signDsse(IN_TOTO_PAYLOAD_TYPE, createProvenanceStatement(sample), {
      keyid: 'coordinator',
      privateKeyPem: key.privateKeyPem,
    });
    const verdict = verifyDsse(envelope, new Map([['coordinator', key.publicKey]]));
    assert.ok(verdict.ok);
    assert.deepEqual(parseProvenanceStatement(verdict.payload), sample);
  });

  it('is byte-identical for key-order-permuted input', () => {
    const permuted = reversedKeys(sample) as ModelProvenance;
    assert.notEqual(JSON.stringify(permuted), JSON.stringify(sample));
    assert.deepEqual(createProvenanceStatement(permuted), createProvenanceStatement(sample));
  });

  it('round-trips and is order-independent for any valid provenance', () => {
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
    const provenance = fc.record({
      modelSha256: hex,
      run: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/\p{Cs}/u.test(s)),
      round: fc.maxSafeNat(),
      policySha256: fc.option(hex, { nil: null }),
      dataSchemaSha256: fc.option(hex, { nil: null }),
      codeVersion: fc.string({ minLength: 1, maxLength: 10 }).filter((s) => !/\p{Cs}/u.test(s)),
      hyperparameters: fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown),
      contributors: fc.uniqueArray(
        fc.string({ minLength: 1, maxLength: 8 }).filter((s) => !/\p{Cs}/u.test(s)),
        {
          maxLength: 5,
        },
      ),
      logIndex: fc.maxSafeNat(),
    });
    fc.assert(
      fc.property(provenance, (generated) => {
        const p: ModelProvenance = { ...generated }; // fast-check records have a null prototype
        const bytes = createProvenanceStatement(p);
        assert.deepEqual(parseProvenanceStatement(bytes), p);
        assert.deepEqual(createProvenanceStatement(reversedKeys(p) as ModelProvenance), bytes);
      }),
      { numRuns: 100 },
    );
  });

  it('refuses invalid fields with INVALID_ARGUMENT naming the field', () => {
    const bad = (patch: Partial<Record<keyof ModelProvenance, unknown>>, field: string) =>
      assert.throws(
        () => createProvenanceStatement({ ...sample, ...patch } as ModelProvenance),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
        field,
      );
    bad({ modelSha256: HASH('A') }, 'modelSha256');
    bad({ policySha256: 'abc' }, 'policySha256');
    bad({ dataSchemaSha256: undefined }, 'dataSchemaSha256');
    bad({ run: '' }, 'run');
    bad({ round: -1 }, 'round');
    bad({ round: 1.5 }, 'round');
    bad({ codeVersion: 7 }, 'codeVersion');
    bad({ logIndex: Number.MAX_SAFE_INTEGER + 1 }, 'logIndex');
    bad({ hyperparameters: undefined }, 'hyperparameters');
    bad({ hyperparameters: { lr: Number.NaN } }, 'hyperparameters.lr');
    bad({ contributors: ['a', 'a'] }, 'contributors');
    bad({ contributors: ['a', ''] }, 'contributors');
  });

  it('refuses malformed statements with INVALID_MESSAGE naming the field', () => {
    const statement = decode(createProvenanceStatement(sample));
    const predicate = statement.predicate as Record<string, unknown>;
    const bad = (bytes: Uint8Array, field: string) =>
      assert.throws(
        () => parseProvenanceStatement(bytes),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_MESSAGE' && e.field === field,
        field,
      );
    bad(Uint8Array.of(0xff, 0x7b, 0x7d), 'statement');
    bad(encode('x').subarray(1), 'statement');
    bad(encode([statement]), 'statement');
    bad(encode({ ...statement, _type: 'https://in-toto.io/Statement/v0.1' }), 'statement._type');
    bad(encode({ ...statement, predicateType: 'https://slsa.dev/provenance/v1' }), 'statement.predicateType');
    bad(encode({ ...statement, subject: [] }), 'statement.subject');
    bad(
      encode({
        ...statement,
        subject: [...(statement.subject as unknown[]), ...(statement.subject as unknown[])],
      }),
      'statement.subject',
    );
    bad(
      encode({
        ...statement,
        subject: [{ name: 'entente-model:run-1:round-3', digest: { sha512: HASH('a') } }],
      }),
      'statement.subject[0].digest.sha256',
    );
    bad(
      encode({
        ...statement,
        subject: [{ name: 'entente-model:run-1:round-4', digest: { sha256: HASH('a') } }],
      }),
      'statement.subject[0].name',
    );
    bad(encode({ ...statement, predicate: null }), 'statement.predicate');
    bad(encode({ ...statement, predicate: { ...predicate, round: '3' } }), 'statement.predicate.round');
    bad(
      encode({ ...statement, predicate: { ...predicate, contributors: 'a' } }),
      'statement.predicate.contributors',
    );
    bad(
      new TextEncoder().encode(JSON.stringify(statement).replace('0.05', '1e999')),
      'statement.predicate.hyperparameters.learningRate',
    );
  });
});
