/**
 * Command-line values checked at the edge: numbers, ports, fractions, URLs and readable files. Each
 * parser takes the text as typed and either returns the value or throws EntenteError INVALID_ARGUMENT
 * naming the flag (never echoing the value), so no malformed number reaches an app as NaN and no
 * out-of-range port reaches `listen`. They fit commander's `argParser` signature (value, previous).
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { EntenteError } from '../core/errors.ts';

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

function invalid(flag: string, rule: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${flag}: must be ${rule}`, { field: flag.replace(/^--/, '') });
}

/** A decimal number (no hex, no `Infinity`, no empty text) within [min, max]. */
export function parseDecimal(
  text: string,
  flag: string,
  min: number,
  max = Number.POSITIVE_INFINITY,
): number {
  const value = Number(text);
  if (!DECIMAL.test(text.trim()) || !Number.isFinite(value) || value < min || value > max)
    invalid(flag, max === Number.POSITIVE_INFINITY ? `a number ≥ ${min}` : `a number in [${min}, ${max}]`);
  return value;
}

/** An integer within [min, max], digits only. */
export function parseInteger(text: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max)
    invalid(flag, max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer in [${min}, ${max}]`);
  return value;
}

/** A TCP port: 0 (any free port) to 65535. */
export function parsePort(text: string, flag = '--port'): number {
  return parseInteger(text, flag, 0, 65535);
}

/** A fraction strictly between 0 and 1 (e.g. a holdout share). */
export function parseOpenFraction(text: string, flag: string): number {
  const value = Number(text);
  if (!DECIMAL.test(text.trim()) || !(value > 0 && value < 1)) invalid(flag, 'a number in (0, 1)');
  return value;
}

/** An https URL with a host (a coordinator address). */
export function parseHttpsUrl(text: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    invalid(flag, 'an https URL such as https://host:port');
  }
  if (url.protocol !== 'https:' || url.hostname === '')
    invalid(flag, 'an https URL such as https://host:port');
  return text;
}

/** The text of a file named on the command line; INVALID_ARGUMENT naming the flag when it cannot be read. */
export function readTextFile(path: string, flag: string): string {
  return readFile(path, flag).toString('utf8');
}

/** The bytes of a file named on the command line; INVALID_ARGUMENT naming the flag when it cannot be read. */
export function readBinaryFile(path: string, flag: string): Buffer {
  return readFile(path, flag);
}

/** Writes a file named on the command line; INVALID_ARGUMENT naming the flag when it cannot be written. */
export function writeOutputFile(path: string, data: string | Uint8Array, flag: string): void {
  try {
    writeFileSync(path, data);
  } catch (err) {
    throw cannotWrite(path, flag, err);
  }
}

/** Creates a directory named on the command line (and its parents); INVALID_ARGUMENT when it cannot. */
export function makeOutputDir(path: string, flag: string): void {
  try {
    mkdirSync(path, { recursive: true });
  } catch (err) {
    throw cannotWrite(path, flag, err);
  }
}

function cannotWrite(path: string, flag: string, err: unknown): EntenteError {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOENT'
      ? 'its directory does not exist'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'ENOSPC'
            ? 'the disk is full'
            : 'cannot be written';
  return new EntenteError('INVALID_ARGUMENT', `${flag}: ${path}: ${why}`, { field: flag.replace(/^--/, '') });
}

function readFile(path: string, flag: string): Buffer {
  const field = flag.replace(/^--/, '');
  try {
    if (statSync(path).isDirectory())
      throw new EntenteError('INVALID_ARGUMENT', `${flag}: ${path} is a directory, not a file`, { field });
    return readFileSync(path);
  } catch (err) {
    if (err instanceof EntenteError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : 'cannot be read';
    throw new EntenteError('INVALID_ARGUMENT', `${flag}: ${path}: ${why}`, { field });
  }
}
