import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { safeCallerText } from './caller-text.ts';

describe('safeCallerText', () => {
  it('keeps ordinary text, including non-Latin letters and emoji', () => {
    assert.equal(safeCallerText('hôpital 病院 ✓ 🙂'), 'hôpital 病院 ✓ 🙂');
  });

  it('escapes control, line-breaking and bidirectional characters, and backslashes', () => {
    const hostile = 'a\nb\r\u0000\u001b[31m\u2028\u202eevil\u2066\u200b\\';
    const out = safeCallerText(hostile);
    assert.equal(out, 'a\\u000ab\\u000d\\u0000\\u001b[31m\\u2028\\u202eevil\\u2066\\u200b\\\\');
    assert.ok([...out].every((c) => c.charCodeAt(0) >= 0x20 && c !== '\u2028' && c !== '\u202e'));
  });

  it('escapes lone surrogates', () => {
    assert.equal(safeCallerText('x\ud800y\udc00'), 'x\\ud800y\\udc00');
  });

  it('bounds the length and says how much was cut', () => {
    const out = safeCallerText('z'.repeat(100_000), 40);
    assert.equal(out, `${'z'.repeat(40)}… (99960 more characters)`);
  });

  it('bounds the escaped text, not only the input', () => {
    const out = safeCallerText('\n'.repeat(1000), 20);
    assert.equal(out, `${'\\u000a'.repeat(3)}… (997 more characters)`);
  });

  it('does not cut a surrogate pair in half', () => {
    const out = safeCallerText('ab🙂', 3);
    assert.equal(out, 'ab… (2 more characters)');
  });
});
