import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { type CanonicalField, encodeCanonicalFields } from './canonical-bytes.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** A key identifying a field list up to equality (type and value). */
function keyOf(fields: readonly CanonicalField[]): string {
  return JSON.stringify(
    fields.map((f) => (typeof f === 'string' ? ['s', f] : typeof f === 'number' ? ['n', f] : ['b', hex(f)])),
  );
}

const fieldArb: fc.Arbitrary<CanonicalField> = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.uint8Array({ maxLength: 6 }),
  fc.maxSafeNat(),
  fc.constantFrom('', 'a', 'ab', 'b', 'bc', 0, 1, 97),
);

describe('encodeCanonicalFields', () => {
  it('lays out tag, 4-byte big-endian length and bytes per field', () => {
    const bytes = encodeCanonicalFields(['ab', new Uint8Array([1, 2, 3]), 258]);
    assert.equal(
      hex(bytes),
      '01' + '00000002' + '6162' + '02' + '00000003' + '010203' + '03' + '00000008' + '0000000000000102',
    );
    assert.equal(encodeCanonicalFields([]).length, 0);
    assert.equal(hex(encodeCanonicalFields(['é'])), '0100000002c3a9');
    assert.equal(hex(encodeCanonicalFields([Number.MAX_SAFE_INTEGER])), '0300000008001fffffffffffff');
  });

  it('separates field boundaries and types', () => {
    const distinct: CanonicalField[][] = [
      ['ab', 'c'],
      ['a', 'bc'],
      ['abc'],
      [new TextEncoder().encode('abc')],
      [97],
      ['a'],
      [new Uint8Array([97])],
      [],
      [''],
      ['', ''],
      [new Uint8Array(0)],
      [0],
    ];
    const seen = new Set(distinct.map((f) => hex(encodeCanonicalFields(f))));
    assert.equal(seen.size, distinct.length);
  });

  it('is injective: different field lists give different bytes (property)', () => {
    fc.assert(
      fc.property(fc.array(fieldArb, { maxLength: 5 }), fc.array(fieldArb, { maxLength: 5 }), (a, b) => {
        const same = keyOf(a) === keyOf(b);
        assert.equal(hex(encodeCanonicalFields(a)) === hex(encodeCanonicalFields(b)), same);
      }),
      { numRuns: 2000 },
    );
  });

  it('is deterministic', () => {
    fc.assert(
      fc.property(fc.array(fieldArb, { maxLength: 5 }), (a) => {
        assert.deepEqual(encodeCanonicalFields(a), encodeCanonicalFields([...a]));
      }),
    );
  });

  it('throws INVALID_ARGUMENT for numbers that are not non-negative safe integers and other types', () => {
    const bad: unknown[] = [
      -1,
      1.5,
      2 ** 53,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      null,
      undefined,
      {},
      1n,
      true,
    ];
    for (const value of bad) {
      assert.throws(
        () => encodeCanonicalFields(['ok', value as CanonicalField]),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === 'fields[1]',
        String(value),
      );
    }
    assert.throws(
      () => encodeCanonicalFields('ab' as unknown as CanonicalField[]),
      (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT',
    );
  });
});
