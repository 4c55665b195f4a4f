/**
 * C2SP tlog-checkpoint (C2SP/C2SP tlog-checkpoint.md): the text of a signed note that commits to a log
 * state, "<origin>\n<tree size>\n<base64 root hash>\n" then optional non-empty extension lines. The
 * size is decimal without leading zeros; the root is an RFC 6962/9162 SHA-256 tree head (32 bytes).
 */
import { EntenteError } from '../core/errors.ts';

export interface Checkpoint {
  /** Unique log identity (e.g. a schema-less URL); non-empty, not only whitespace, one line. */
  readonly origin: string;
  /** Number of entries in the tree (a non-negative safe integer). */
  readonly size: number;
  /** The 32-byte Merkle tree head. */
  readonly rootHash: Uint8Array;
  /** Optional extension lines, each non-empty, without their "\n". */
  readonly extensions: readonly string[];
}

const ROOT_HASH_BYTES = 32;
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Any ASCII control character (newline included: a field is one line) or a lone surrogate. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the spec forbids exactly these characters
const FORBIDDEN_LINE_CHAR = /[\u0000-\u001f]|\p{Cs}/u;

function decodeStrictBase64(s: string): Uint8Array | null {
  if (!STRICT_BASE64.test(s)) return null;
  const bytes = Buffer.from(s, 'base64');
  return bytes.toString('base64') === s ? new Uint8Array(bytes) : null;
}

/** Returns why `origin` is not a valid origin line, or null. */
function originProblem(origin: unknown): string | null {
  if (typeof origin !== 'string' || origin.trim().length === 0) return 'must be non-empty';
  if (FORBIDDEN_LINE_CHAR.test(origin)) return 'must be one line without control characters';
  return null;
}

function extensionProblem(line: unknown): string | null {
  if (typeof line !== 'string' || line.length === 0) return 'lines must be non-empty';
  if (FORBIDDEN_LINE_CHAR.test(line)) return 'lines must not hold control characters';
  return null;
}

/** The note text of `c` (ends in "\n"). Throws INVALID_ARGUMENT naming the field (origin, size,
 *  rootHash, extensions) when a field is invalid. */
export function formatCheckpoint(c: Checkpoint): string {
  const fail = (field: string, message: string) =>
    new EntenteError('INVALID_ARGUMENT', `checkpoint.${field}: ${message}`, { field: `checkpoint.${field}` });
  const origin = originProblem(c.origin);
  if (origin !== null) throw fail('origin', origin);
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw fail('size', 'must be a non-negative safe integer');
  if (!(c.rootHash instanceof Uint8Array) || c.rootHash.length !== ROOT_HASH_BYTES)
    throw fail('rootHash', 'must be 32 bytes');
  for (const line of c.extensions) {
    const problem = extensionProblem(line);
    if (problem !== null) throw fail('extensions', problem);
  }
  const body = [c.origin, String(c.size), Buffer.from(c.rootHash).toString('base64'), ...c.extensions];
  return `${body.join('\n')}\n`;
}

/** Parses checkpoint note text (as returned by openNote). Throws INVALID_MESSAGE naming the field:
 *  'checkpoint' (not ending in "\n", fewer than three lines), 'checkpoint.origin', 'checkpoint.size'
 *  (not decimal, leading zero, above 2^53-1), 'checkpoint.rootHash' (not base64 of 32 bytes),
 *  'checkpoint.extensions' (an empty line). */
export function parseCheckpoint(text: string): Checkpoint {
  const fail = (field: string, message: string) =>
    new EntenteError('INVALID_MESSAGE', `${field}: ${message}`, { field });
  if (typeof text !== 'string' || !text.endsWith('\n')) throw fail('checkpoint', 'must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw fail('checkpoint', 'needs origin, size and root hash lines');
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  const originError = originProblem(origin);
  if (originError !== null) throw fail('checkpoint.origin', originError);
  if (!DECIMAL.test(sizeText)) throw fail('checkpoint.size', 'must be decimal without leading zeros');
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw fail('checkpoint.size', 'exceeds 2^53-1');
  const rootHash = decodeStrictBase64(rootText);
  if (rootHash === null || rootHash.length !== ROOT_HASH_BYTES)
    throw fail('checkpoint.rootHash', 'must be base64 of 32 bytes');
  for (const line of extensions) {
    const problem = extensionProblem(line);
    if (problem !== null) throw fail('checkpoint.extensions', problem);
  }
  return { origin, size, rootHash, extensions };
}
