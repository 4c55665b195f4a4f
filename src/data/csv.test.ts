import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { detectDelimiter, parseCsv } from './csv.ts';

function rejects(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseCsv(text),
    (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_DATA' && pattern.test(e.message),
  );
}

/** Quotes every field (always valid RFC 4180). */
function encodeCsv(records: string[][], eol: string): string {
  return records.map((r) => r.map((f) => `"${f.replaceAll('"', '""')}"`).join(',')).join(eol);
}

describe('parseCsv', () => {
  it('reads a header and rows, with or without a trailing newline, LF or CRLF', () => {
    const want = {
      header: ['a', 'b'],
      rows: [
        ['1', '2'],
        ['3', ''],
      ],
    };
    assert.deepEqual(parseCsv('a,b\n1,2\n3,\n'), want);
    assert.deepEqual(parseCsv('a,b\n1,2\n3,'), want);
    assert.deepEqual(parseCsv('a,b\r\n1,2\r\n3,\r\n'), want);
    assert.deepEqual(parseCsv('\uFEFFa,b\r\n1,2\n3,'), want);
    assert.deepEqual(parseCsv('a,b'), { header: ['a', 'b'], rows: [] });
  });

  it('handles quoted fields: commas, newlines, escaped quotes, empty quotes', () => {
    const t = parseCsv('name,note\n"Smith, J","said ""hi""\r\nthen left"\n"",x\n');
    assert.deepEqual(t.rows, [
      ['Smith, J', 'said "hi"\r\nthen left'],
      ['', 'x'],
    ]);
  });

  it('does not trim whitespace', () => {
    assert.deepEqual(parseCsv('a, b\n 1 ,2').rows, [[' 1 ', '2']]);
  });

  it('rejects an empty file', () => {
    rejects('', /empty file/);
    rejects('\uFEFF', /empty file/);
  });

  it('rejects ragged rows naming the data row and its line', () => {
    rejects('a,b\n1,2\n3\n4,5\n', /row 2 \(line 3\) has 1 field, the header has 2/);
    rejects('a,b\n1,2\n3,4,5', /row 2 \(line 3\) has 3 fields/);
    rejects('a,b\n"x\ny",2\n1,2,3\n', /row 2 \(line 4\)/);
    rejects('a,b\n1,2\n\n3,4\n', /row 2 \(line 3\) has 1 field/); // a blank line between rows is ragged
  });

  it('accepts blank lines at the end of the file (they are not records)', () => {
    const want = { header: ['a', 'b'], rows: [['1', '2']] };
    assert.deepEqual(parseCsv('a,b\n1,2\n\n'), want);
    assert.deepEqual(parseCsv('a,b\r\n1,2\r\n\r\n\r\n'), want);
    assert.deepEqual(parseCsv('a,b\n1,2\n\n\n'), want);
    assert.deepEqual(parseCsv('a,b\n\n'), { header: ['a', 'b'], rows: [] });
    // A quoted empty field is a value, not a blank line.
    assert.deepEqual(parseCsv('a\n1\n""\n'), { header: ['a'], rows: [['1'], ['']] });
  });

  it('reads ";" and tab delimited files when told, and guesses the delimiter of a header', () => {
    const want = { header: ['a', 'b'], rows: [['1,5', '2']] };
    assert.deepEqual(parseCsv('a;b\n1,5;2\n', { delimiter: ';' }), want);
    assert.deepEqual(parseCsv('a\tb\n1,5\t2\n', { delimiter: '\t' }), want);
    assert.deepEqual(parseCsv('a;b\n"x;y";2\n', { delimiter: ';' }).rows, [['x;y', '2']]);
    assert.equal(detectDelimiter('a;b;c\n1,2;3;4'), ';');
    assert.equal(detectDelimiter('\uFEFFa\tb\tc\n'), '\t');
    assert.equal(detectDelimiter('a,b;c,d\n'), ',');
    assert.equal(detectDelimiter('"a;b;c",d\n'), ',');
    assert.equal(detectDelimiter('abc\n1;2;3'), undefined);
    assert.throws(
      () => parseCsv('a|b', { delimiter: '|' as ';' }),
      (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === 'delimiter',
    );
  });

  it('rejects malformed quoting and bare CR', () => {
    rejects('a,b\n"1,2\n', /line 2: quoted field is not terminated/);
    rejects('a,b\n"1"x,2\n', /line 2: unexpected character after a closing quote/);
    rejects('a,b\n1"x,2\n', /line 2: quote inside an unquoted field/);
    rejects('a,b\r1,2\n', /line 1: carriage return without line feed/);
  });

  it('round-trips arbitrary fields (property)', () => {
    const field = fc.string({
      unit: fc.constantFrom('a', 'b', ',', '"', '\n', '\r\n', ' ', 'é'),
      maxLength: 6,
    });
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 4 })
          .chain((w) =>
            fc.tuple(
              fc.array(fc.array(field, { minLength: w, maxLength: w }), { minLength: 1, maxLength: 5 }),
            ),
          ),
        fc.constantFrom('\n', '\r\n'),
        fc.boolean(),
        ([records], eol, trailing) => {
          const t = parseCsv(encodeCsv(records, eol) + (trailing ? eol : ''));
          assert.deepEqual([t.header, ...t.rows], records);
        },
      ),
      { numRuns: 200 },
    );
  });
});
