/**
 * Text escaped for the reports' two markups (the evaluation report and the governance report share
 * these): HTML text with & < > " ' as entities, and Markdown inline text with raw HTML and entities
 * neutralised and inline syntax and table pipes backslash-escaped. Line breaks become <br> (or what the
 * caller asks for where markup cannot go, e.g. inside <title>).
 */

const LINE_BREAK = /\r\n|\r|\n/;

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** HTML text: & < > " ' escaped, line breaks as `lineBreak` (default <br>; a space where markup cannot go). */
export function escapeHtml(value: string, lineBreak = '<br>'): string {
  return value
    .split(LINE_BREAK)
    .map((line) => line.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!))
    .join(lineBreak);
}

/** Markdown inline text: raw HTML and entities neutralised, inline syntax and table pipes escaped,
 *  line breaks as <br>. */
export function escapeMarkdown(value: string): string {
  return value
    .split(LINE_BREAK)
    .map((line) =>
      line
        .replace(/&/g, '&amp;')
        .replace(/</g, '&lt;')
        .replace(/>/g, '&gt;')
        .replace(/[\\`*_[\]|~!#]/g, (c) => `\\${c}`),
    )
    .join('<br>');
}
