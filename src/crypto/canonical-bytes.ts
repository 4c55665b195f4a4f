/**
 * Canonical bytes: an unambiguous, length-prefixed binary encoding for everything that is signed,
 * hashed, or used as HKDF info / AEAD associated data (DESIGN.md §4: never ad-hoc JSON.stringify).
 * Each field is encoded as 1 tag byte (0x01 UTF-8 string, 0x02 raw bytes, 0x03 uint64 big-endian),
 * a 4-byte big-endian length, then the field bytes. Because every field carries its type and exact
 * length, distinct field lists always give distinct byte strings (the encoding is injective), the
 * property the domain separation of HKDF (RFC 5869 §3.2) and of signatures (RFC 8032) relies on.
 */
import { EntenteError } from '../core/errors.ts';

/** A string (UTF-8), raw bytes, or a non-negative safe integer (encoded as uint64 big-endian). */
export type CanonicalField = string | Uint8Array | number;

const TAG_STRING = 0x01;
const TAG_BYTES = 0x02;
const TAG_UINT64 = 0x03;
const HEADER_BYTES = 5;
const MAX_FIELD_BYTES = 0xffffffff;

const utf8 = new TextEncoder();

function invalidField(index: number, message: string): never {
  const field = `fields[${index}]`;
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

/**
 * Encodes `fields` in order as tag || uint32be length || bytes. Pure and deterministic.
 * Throws INVALID_ARGUMENT (field `fields[i]`) for a number that is negative, non-integer or above
 * Number.MAX_SAFE_INTEGER, for any other value type, or for a field longer than 2^32-1 bytes.
 */
export function encodeCanonicalFields(fields: readonly CanonicalField[]): Uint8Array {
  if (!Array.isArray(fields))
    throw new EntenteError('INVALID_ARGUMENT', 'fields: must be an array', { field: 'fields' });
  const parts: Array<{ tag: number; bytes: Uint8Array }> = [];
  let total = 0;
  fields.forEach((value, index) => {
    let tag: number;
    let bytes: Uint8Array;
    if (typeof value === 'string') {
      tag = TAG_STRING;
      bytes = utf8.encode(value);
    } else if (value instanceof Uint8Array) {
      tag = TAG_BYTES;
      bytes = value;
    } else if (typeof value === 'number') {
      if (!Number.isSafeInteger(value) || value < 0)
        invalidField(index, 'a number must be a non-negative safe integer');
      tag = TAG_UINT64;
      bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(value), false);
    } else {
      invalidField(index, 'must be a string, a Uint8Array or a non-negative integer');
    }
    if (bytes.length > MAX_FIELD_BYTES) invalidField(index, 'longer than 2^32-1 bytes');
    parts.push({ tag, bytes });
    total += HEADER_BYTES + bytes.length;
  });
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let pos = 0;
  for (const { tag, bytes } of parts) {
    out[pos] = tag;
    view.setUint32(pos + 1, bytes.length, false);
    out.set(bytes, pos + HEADER_BYTES);
    pos += HEADER_BYTES + bytes.length;
  }
  return out;
}
