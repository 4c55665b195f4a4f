import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { type Checkpoint, formatCheckpoint, parseCheckpoint } from './checkpoint.ts';

const ROOT_B64 = 'XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=';
const ROOT = new Uint8Array(Buffer.from(ROOT_B64, 'base64'));
const ORIGIN = 'example.com/secagg-audit-test';

function refusedAs(text: string, field: string): void {
  assert.throws(
    () => parseCheckpoint(text),
    (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_MESSAGE' && e.field === field,
    JSON.stringify(text),
  );
}

describe('checkpoint', () => {
  it('formats the C2SP layout and parses it back', () => {
    const text = formatCheckpoint({ origin: ORIGIN, size: 8, rootHash: ROOT, extensions: [] });
    assert.equal(text, `${ORIGIN}\n8\n${ROOT_B64}\n`);
    assert.deepEqual(parseCheckpoint(text), { origin: ORIGIN, size: 8, rootHash: ROOT, extensions: [] });
    const withExt = `${ORIGIN}\n0\n${ROOT_B64}\nextension one\n\u2014 not a signature\n`;
    assert.deepEqual(parseCheckpoint(withExt).extensions, ['extension one', '\u2014 not a signature']);
    assert.equal(parseCheckpoint(withExt).size, 0);
  });

  it('round-trips any valid checkpoint', () => {
    const line = fc.stringMatching(/^[ -~\u00e9\u4e2d]{1,30}$/).filter((s) => s.trim().length > 0);
    fc.assert(
      fc.property(
        line,
        fc.maxSafeNat(),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(line, { maxLength: 3 }),
        (origin, size, rootHash, extensions) => {
          const c: Checkpoint = { origin, size, rootHash, extensions };
          const text = formatCheckpoint(c);
          assert.deepEqual(parseCheckpoint(text), c);
          assert.equal(formatCheckpoint(parseCheckpoint(text)), text);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses each malformed case naming the field', () => {
    refusedAs(`${ORIGIN}\n08\n${ROOT_B64}\n`, 'checkpoint.size');
    refusedAs(`${ORIGIN}\n00\n${ROOT_B64}\n`, 'checkpoint.size');
    refusedAs(`${ORIGIN}\n+8\n${ROOT_B64}\n`, 'checkpoint.size');
    refusedAs(`${ORIGIN}\n-1\n${ROOT_B64}\n`, 'checkpoint.size');
    refusedAs(`${ORIGIN}\n\n${ROOT_B64}\n`, 'checkpoint.size');
    refusedAs(`${ORIGIN}\n9007199254740992\n${ROOT_B64}\n`, 'checkpoint.size');
    refusedAs(`${ORIGIN}\n8\n${ROOT_B64}`, 'checkpoint');
    refusedAs(`${ORIGIN}\n8\n`, 'checkpoint');
    refusedAs(`${ORIGIN}\n8\n${ROOT_B64.slice(0, -1)}\n`, 'checkpoint.rootHash');
    refusedAs(`${ORIGIN}\n8\n${ROOT_B64.replace('+', '-')}\n`, 'checkpoint.rootHash');
    refusedAs(`${ORIGIN}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=\n`, 'checkpoint.rootHash');
    refusedAs(
      `${ORIGIN}\n8\n${Buffer.from(ROOT.subarray(0, 31)).toString('base64')}\n`,
      'checkpoint.rootHash',
    );
    refusedAs(
      `${ORIGIN}\n8\n${Buffer.concat([ROOT, Buffer.of(0)]).toString('base64')}\n`,
      'checkpoint.rootHash',
    );
    refusedAs(`\n8\n${ROOT_B64}\n`, 'checkpoint.origin');
    refusedAs(` \t \n8\n${ROOT_B64}\n`, 'checkpoint.origin');
    refusedAs(`${ORIGIN}\n8\n${ROOT_B64}\n\n`, 'checkpoint.extensions');
    refusedAs(`${ORIGIN}\n8\n${ROOT_B64}\next\n\nmore\n`, 'checkpoint.extensions');
  });

  it('refuses to format invalid fields with INVALID_ARGUMENT', () => {
    const base: Checkpoint = { origin: ORIGIN, size: 8, rootHash: ROOT, extensions: [] };
    const bad = (c: Checkpoint, field: string) =>
      assert.throws(
        () => formatCheckpoint(c),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
      );
    bad({ ...base, origin: '' }, 'checkpoint.origin');
    bad({ ...base, origin: 'two\nlines' }, 'checkpoint.origin');
    bad({ ...base, size: -1 }, 'checkpoint.size');
    bad({ ...base, size: 1.5 }, 'checkpoint.size');
    bad({ ...base, rootHash: ROOT.subarray(0, 31) }, 'checkpoint.rootHash');
    bad({ ...base, extensions: [''] }, 'checkpoint.extensions');
    bad({ ...base, extensions: ['a\nb'] }, 'checkpoint.extensions');
  });
});
