import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { escapeHtml, escapeMarkdown } from './markup-escape.ts';

describe('escapeHtml', () => {
  it('escapes & < > " and \'', () => {
    assert.equal(escapeHtml(`a&b<c>d"e'f`), 'a&amp;b&lt;c&gt;d&quot;e&#39;f');
    assert.equal(
      escapeHtml('<script>alert("x")</script>'),
      '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;',
    );
  });

  it('escapes an existing entity again rather than trusting it', () => {
    assert.equal(escapeHtml('&lt;'), '&amp;lt;');
  });

  it('turns each kind of line break into <br>, or into what the caller asks for', () => {
    assert.equal(escapeHtml('a\nb\r\nc\rd'), 'a<br>b<br>c<br>d');
    assert.equal(escapeHtml('a\nb', ' '), 'a b');
  });

  it('never leaves a raw < > " or \' in its output (property)', () => {
    const markup = fc.constantFrom('<', '>', '"', "'", '&', '\n', '\r', 'a', ' ', '<br>', '&amp;');
    const text = fc.oneof(
      fc.string(),
      fc.array(markup).map((parts) => parts.join('')),
    );
    fc.assert(
      fc.property(text, (value) => {
        assert.doesNotMatch(escapeHtml(value, ' '), /[<>"']/);
        // With the default line break the only markup is <br> itself.
        assert.doesNotMatch(escapeHtml(value).replaceAll('<br>', ''), /[<>"']/);
      }),
    );
  });
});

describe('escapeMarkdown', () => {
  it('neutralises raw HTML and escapes inline syntax and table pipes', () => {
    assert.equal(escapeMarkdown('<b>*x*</b> | `y`'), '&lt;b&gt;\\*x\\*&lt;/b&gt; \\| \\`y\\`');
    assert.equal(escapeMarkdown('a\nb'), 'a<br>b');
  });
});
