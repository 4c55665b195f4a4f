/**
 * Ed25519 signatures (RFC 8032 §5.1) through node:crypto (OpenSSL), the one verification rule used
 * everywhere (DESIGN.md §4). OpenSSL verifies strictly: it rejects S >= L (RFC 8032 §5.1.7) and
 * non-canonical encodings, and passes the full Wycheproof ed25519 suite (test/vectors/crypto).
 * Public keys travel as 32 raw bytes; private keys stay in PKCS#8 PEM.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { EntenteError } from '../core/errors.ts';

const ED25519_PUBLIC_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;
/** DER SubjectPublicKeyInfo prefix for an Ed25519 key (RFC 8410 §4): SEQUENCE { id-Ed25519 } BIT STRING. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function loadEd25519PrivateKey(privateKeyPem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: privateKeyPem, format: 'pem' });
  } catch {
    throw new EntenteError('INVALID_ARGUMENT', 'privateKeyPem: not a readable private key', {
      field: 'privateKeyPem',
    });
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new EntenteError('INVALID_ARGUMENT', 'privateKeyPem: not an Ed25519 key', {
      field: 'privateKeyPem',
    });
  return key;
}

function rawPublicKeyOf(key: KeyObject): Uint8Array {
  const der = (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - ED25519_PUBLIC_KEY_BYTES));
}

/** Signs `message` (pure Ed25519, no prehash). Returns the 64-byte signature. Throws INVALID_ARGUMENT
 *  (field 'privateKeyPem') when the PEM is not an Ed25519 private key. The PEM is secret. */
export function signEd25519(privateKeyPem: string, message: Uint8Array): Uint8Array {
  const key = loadEd25519PrivateKey(privateKeyPem);
  return new Uint8Array(sign(null, message, key));
}

/** Public KeyObjects by raw key (public data; a KeyObject is immutable): parsing the SPKI costs as
 *  much as a verification, and the same few keys verify many messages. */
const publicKeyCache = new Map<string, KeyObject>();
const MAX_CACHED_KEYS = 4096;

function loadPublicKey(raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw).toString('base64');
  let key = publicKeyCache.get(id);
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
    if (publicKeyCache.size >= MAX_CACHED_KEYS) publicKeyCache.delete(publicKeyCache.keys().next().value!);
    publicKeyCache.set(id, key);
  }
  return key;
}

/** Strict RFC 8032 verification of `signature` over `message` by the 32-byte raw `publicKey`.
 *  Returns false for any wrong length, undecodable key or invalid signature; never throws. */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_BYTES) return false;
    if (!(signature instanceof Uint8Array) || signature.length !== ED25519_SIGNATURE_BYTES) return false;
    if (!(message instanceof Uint8Array)) return false;
    return verify(null, message, loadPublicKey(publicKey), signature);
  } catch {
    return false;
  }
}

/** The 32-byte raw public key of an Ed25519 private key PEM. Throws INVALID_ARGUMENT (field
 *  'privateKeyPem') when it is not one. */
export function readEd25519PublicKey(privateKeyPem: string): Uint8Array {
  return rawPublicKeyOf(loadEd25519PrivateKey(privateKeyPem));
}

/** A fresh Ed25519 key pair from the OpenSSL CSPRNG: PKCS#8 PEM private key (secret) and the 32-byte
 *  raw public key. For tests and tools; institutions generate identity keys on site. */
export function generateEd25519KeyPem(): { privateKeyPem: string; publicKey: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKey: rawPublicKeyOf(publicKey),
  };
}
