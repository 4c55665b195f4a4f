/**
 * Authenticated encryption of Shamir shares between participants (Bonawitz et al., CCS 2017, §4
 * ShareKeys: shares travel through the server encrypted under the pairwise key): AES-256-GCM (NIST
 * SP 800-38D) with a random 96-bit nonce. Callers bind the ciphertext to its context by passing
 * canonical bytes of (session, round, sender, receiver) as associated data (DESIGN.md §4).
 * Layout: sealed = nonce (12) || ciphertext || tag (16).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

function checkKey(key32: Uint8Array): void {
  if (!(key32 instanceof Uint8Array) || key32.length !== KEY_BYTES)
    throw new EntenteError('INVALID_ARGUMENT', 'key32: must be 32 bytes', { field: 'key32' });
}

function checkBytes(field: string, value: Uint8Array): void {
  if (!(value instanceof Uint8Array))
    throw new EntenteError('INVALID_ARGUMENT', `${field}: must be a Uint8Array`, { field });
}

/** Encrypts and authenticates `plaintext` (secret) under `key32` (secret) bound to `associatedData`.
 *  A random nonce per call: a key may seal at most 2^32 messages (SP 800-38D §8.3). Throws
 *  INVALID_ARGUMENT for a key that is not 32 bytes. */
export function sealShares(key32: Uint8Array, associatedData: Uint8Array, plaintext: Uint8Array): Uint8Array {
  checkKey(key32);
  checkBytes('associatedData', associatedData);
  checkBytes('plaintext', plaintext);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key32, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData);
  const body = cipher.update(plaintext);
  const tail = cipher.final();
  const tag = cipher.getAuthTag();
  const sealed = new Uint8Array(NONCE_BYTES + body.length + tail.length + TAG_BYTES);
  sealed.set(nonce, 0);
  sealed.set(body, NONCE_BYTES);
  sealed.set(tail, NONCE_BYTES + body.length);
  sealed.set(tag, sealed.length - TAG_BYTES);
  return sealed;
}

/** Decrypts `sealed` (nonce || ciphertext || tag). Throws INVALID_MESSAGE (field 'sealed') when it
 *  is shorter than nonce + tag or does not authenticate under this key and associated data; the
 *  message never echoes any bytes. Throws INVALID_ARGUMENT for a key that is not 32 bytes. */
export function openShares(key32: Uint8Array, associatedData: Uint8Array, sealed: Uint8Array): Uint8Array {
  checkKey(key32);
  checkBytes('associatedData', associatedData);
  if (!(sealed instanceof Uint8Array) || sealed.length < NONCE_BYTES + TAG_BYTES)
    throw new EntenteError('INVALID_MESSAGE', 'sealed: too short to hold a nonce and a tag', {
      field: 'sealed',
    });
  const nonce = sealed.subarray(0, NONCE_BYTES);
  const ciphertext = sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key32, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(associatedData);
    decipher.setAuthTag(tag);
    const body = decipher.update(ciphertext);
    const tail = decipher.final();
    const plaintext = new Uint8Array(body.length + tail.length);
    plaintext.set(body, 0);
    plaintext.set(tail, body.length);
    return plaintext;
  } catch {
    throw new EntenteError('INVALID_MESSAGE', 'sealed: does not authenticate', { field: 'sealed' });
  }
}
