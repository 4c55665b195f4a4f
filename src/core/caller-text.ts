/**
 * Caller-chosen text (reasons, member names, field values quoted in messages) as it may be echoed in
 * an error message, a log entry or an operator's terminal: control and invisible formatting characters
 * (C0, DEL, C1, line/paragraph separators, bidirectional overrides and isolates, zero-width marks,
 * lone surrogates) are escaped as \uXXXX, and the text is cut to a bound with a note of what was cut.
 */

const UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters being escaped.
  /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\\]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * `text` with unsafe characters escaped, cut so that the escaped text has at most `maxChars`
 * characters (default 500) before a note of how many input characters were left out.
 */
export function safeCallerText(text: string, maxChars = 500): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const code = text.codePointAt(i)!;
    const width = code > 0xffff ? 2 : 1;
    const c = text.slice(i, i + width);
    const piece = UNSAFE.test(c)
      ? c === '\\'
        ? '\\\\'
        : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
      : c;
    if (out.length + piece.length > maxChars) break;
    out += piece;
    i += width;
  }
  return i < text.length ? `${out}… (${text.length - i} more characters)` : out;
}
