/**
 * A strict CSV reader (RFC 4180, "Common Format and MIME Type for CSV Files") for tables with a header
 * row: comma separators (or a `;` or tab delimiter when the caller says so); fields optionally enclosed in double quotes, inside which commas, line breaks
 * and doubled quotes (`""` = one `"`) are literal; records end with CRLF or LF; the last record may or
 * may not end with a line break. A leading UTF-8 byte-order mark is skipped. Everything else is an
 * error rather than a guess: a quote inside an unquoted field, text after a closing quote, a bare CR,
 * an unterminated quote, a record whose field count differs from the header (a "ragged" row, which
 * includes blank lines between records). Blank lines at the end of the file are not records (editors
 * and exports often leave one). One linear pass; fields are never trimmed. `detectDelimiter` guesses
 * the delimiter of a header line so a caller can say which one a file seems to use.
 */
import { EntenteError } from '../core/errors.ts';

export interface CsvTable {
  /** The first record. */
  readonly header: string[];
  /** The data records, each with exactly `header.length` fields. Data row k (1-based) is `rows[k - 1]`. */
  readonly rows: string[][];
}

/** The delimiters a table may use: comma (RFC 4180), semicolon, tab. */
export type CsvDelimiter = ',' | ';' | '\t';

export const CSV_DELIMITERS: readonly CsvDelimiter[] = [',', ';', '\t'];

/** How a delimiter is written on the command line and in messages. */
export function describeDelimiter(d: CsvDelimiter): string {
  return d === '\t' ? 'tab' : `"${d}"`;
}

export interface CsvOptions {
  /** Field separator, default ','. */
  readonly delimiter?: CsvDelimiter;
}

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

/**
 * Parses CSV text whose first record is a header. Throws EntenteError('INVALID_DATA') naming the line
 * (syntax errors) or the 1-based data row and its line (ragged rows); an empty text is rejected
 * ("empty file").
 */
export function parseCsv(text: string, options: CsvOptions = {}): CsvTable {
  const delimiter = options.delimiter ?? ',';
  if (!CSV_DELIMITERS.includes(delimiter))
    throw new EntenteError('INVALID_ARGUMENT', 'csv: delimiter must be ",", ";" or a tab', {
      field: 'delimiter',
    });
  const SEPARATOR = delimiter.charCodeAt(0);
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  if (i >= n) fail('empty file: no header row');
  const records: string[][] = [];
  const recordLines: number[] = [];
  /** Per record: true when it is one unquoted empty field, i.e. a blank line. */
  const blank: boolean[] = [];
  let record: string[] = [];
  let quotedFirst = false;
  let line = 1;
  let recordLine = 1;
  for (;;) {
    let field: string;
    if (record.length === 0) quotedFirst = text.charCodeAt(i) === QUOTE;
    if (text.charCodeAt(i) === QUOTE) {
      const startLine = line;
      let start = i + 1;
      field = '';
      for (;;) {
        const q = text.indexOf('"', start);
        if (q < 0) fail(`line ${startLine}: quoted field is not terminated`);
        line += countLineFeeds(text, start, q);
        if (text.charCodeAt(q + 1) === QUOTE) {
          field += text.slice(start, q + 1);
          start = q + 2;
          continue;
        }
        field += text.slice(start, q);
        i = q + 1;
        break;
      }
      const c = text.charCodeAt(i);
      if (i < n && c !== SEPARATOR && c !== LF && c !== CR)
        fail(`line ${line}: unexpected character after a closing quote (a field must be fully quoted)`);
    } else {
      let j = i;
      while (j < n) {
        const c = text.charCodeAt(j);
        if (c === SEPARATOR || c === LF || c === CR) break;
        if (c === QUOTE) fail(`line ${line}: quote inside an unquoted field (quote the whole field)`);
        j++;
      }
      field = text.slice(i, j);
      i = j;
    }
    record.push(field);
    if (i >= n) {
      records.push(record);
      recordLines.push(recordLine);
      blank.push(record.length === 1 && field === '' && !quotedFirst);
      break;
    }
    const c = text.charCodeAt(i);
    if (c === SEPARATOR) {
      i++;
      continue;
    }
    if (c === CR) {
      if (text.charCodeAt(i + 1) !== LF) fail(`line ${line}: carriage return without line feed`);
      i += 2;
    } else {
      i += 1;
    }
    records.push(record);
    recordLines.push(recordLine);
    blank.push(record.length === 1 && field === '' && !quotedFirst);
    record = [];
    line++;
    recordLine = line;
    if (i >= n) break; // the optional line break after the last record
  }

  // Blank lines after the last record are not records.
  while (records.length > 1 && blank[records.length - 1]) {
    records.pop();
    blank.pop();
  }
  const header = records[0]!;
  for (let r = 1; r < records.length; r++) {
    const got = records[r]!.length;
    if (got !== header.length) {
      fail(
        `row ${r} (line ${recordLines[r]!}) has ${got} field${got === 1 ? '' : 's'}, the header has ${header.length}`,
      );
    }
  }
  return { header, rows: records.slice(1) };
}

/**
 * The delimiter a header line seems to use: the one of `,`, `;` and tab that occurs most often outside
 * quotes in the first line (undefined when none occurs).
 */
export function detectDelimiter(text: string): CsvDelimiter | undefined {
  let best: CsvDelimiter | undefined;
  let bestCount = 0;
  const counts = new Map<string, number>();
  let quoted = false;
  for (let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') quoted = !quoted;
    else if (!quoted && (c === '\n' || c === '\r')) break;
    else if (!quoted && (c === ',' || c === ';' || c === '\t')) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  for (const d of CSV_DELIMITERS) {
    const k = counts.get(d) ?? 0;
    if (k > bestCount) {
      best = d;
      bestCount = k;
    }
  }
  return best;
}

function countLineFeeds(text: string, from: number, to: number): number {
  let count = 0;
  for (let k = text.indexOf('\n', from); k >= 0 && k < to; k = text.indexOf('\n', k + 1)) count++;
  return count;
}

function fail(message: string): never {
  throw new EntenteError('INVALID_DATA', `csv: ${message}`);
}
