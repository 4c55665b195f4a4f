/**
 * RFC 8785 JSON Canonicalization Scheme (JCS) for the plain values we sign or hash: objects with keys
 * sorted by UTF-16 code units, no whitespace, strings and numbers serialised as ECMAScript does
 * (RFC 8785 §3.2.2 defines both by ECMA-262, so JSON.stringify of a primitive is exactly right).
 */
import { EntenteError } from '../core/errors.ts';

/**
 * Canonical JSON text of `value`. Throws INVALID_ARGUMENT (naming the path) for values JSON cannot
 * represent exactly: non-finite numbers, undefined, functions, bigints, symbols.
 */
export function canonicalizeJson(value: unknown, path = '$'): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value))
      throw new EntenteError('INVALID_ARGUMENT', `${path}: not a finite number`, { field: path });
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v, i) => canonicalizeJson(v, `${path}[${i}]`)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalizeJson(v, `${path}.${k}`)}`).join(',')}}`;
  }
  throw new EntenteError('INVALID_ARGUMENT', `${path}: ${typeof value} cannot be canonicalised`, {
    field: path,
  });
}
