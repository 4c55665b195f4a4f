/**
 * Decoder for the share plaintext written by `encodeSharePlaintext` (round-context.ts): four canonical
 * fields (tag byte, 4-byte big-endian length, bytes). Strict: any other layout is refused.
 */
import { EntenteError } from '../core/errors.ts';

export interface SharePlaintext {
  readonly sender: string;
  readonly receiver: string;
  readonly maskingKeyShare: Uint8Array;
  readonly selfSeedShare: Uint8Array;
}

const TAG_STRING = 0x01;
const TAG_BYTES = 0x02;
const DOMAIN = 'entente/secagg/share-plaintext/v1';

function bad(): never {
  throw new EntenteError('PROTOCOL_VIOLATION', 'shares: the decrypted share message is malformed', {
    field: 'shares',
  });
}

/** Parses the plaintext; throws PROTOCOL_VIOLATION for anything malformed (never echoes bytes). */
export function decodeSharePlaintext(bytes: Uint8Array): SharePlaintext {
  const fields: { tag: number; value: Uint8Array }[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.length) {
    if (at + 5 > bytes.length) bad();
    const tag = bytes[at]!;
    const length = view.getUint32(at + 1, false);
    if (at + 5 + length > bytes.length) bad();
    fields.push({ tag, value: bytes.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  const text = (i: number): string => {
    const f = fields[i];
    if (!f || f.tag !== TAG_STRING) bad();
    return new TextDecoder('utf-8', { fatal: true }).decode(f.value);
  };
  const raw = (i: number): Uint8Array => {
    const f = fields[i];
    if (!f || f.tag !== TAG_BYTES || f.value.length === 0) bad();
    return new Uint8Array(f.value);
  };
  if (fields.length !== 5 || text(0) !== DOMAIN) bad();
  return { sender: text(1), receiver: text(2), maskingKeyShare: raw(3), selfSeedShare: raw(4) };
}
