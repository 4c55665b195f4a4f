/**
 * Key agreement for secure aggregation (Bonawitz et al., CCS 2017, §4: each pair of participants
 * agrees a key from their round-ephemeral Diffie–Hellman keys): X25519 (RFC 7748 §5, §6.1) through
 * node:crypto, and HKDF-SHA256 (RFC 5869) for domain-separated key derivation. The HKDF info is
 * always canonical bytes (crypto/canonical-bytes.ts) of the caller's context fields, e.g.
 * (consortium, run, round, tensor, sender, receiver, purpose) as DESIGN.md §4 requires.
 */
import {
  type KeyObject,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
} from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { type CanonicalField, encodeCanonicalFields } from '../crypto/canonical-bytes.ts';

/** A round-ephemeral X25519 key pair, both 32 raw bytes (RFC 7748 §5). `privateKey` is secret. */
export interface X25519KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

const X25519_KEY_BYTES = 32;
const HKDF_SHA256_MAX_BYTES = 255 * 32;
/** DER prefixes (RFC 8410 §7 PKCS#8, §4 SubjectPublicKeyInfo) for id-X25519 (1.3.101.110). */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

function checkPrivateKey(privateKey: Uint8Array): void {
  if (!(privateKey instanceof Uint8Array) || privateKey.length !== X25519_KEY_BYTES)
    throw new EntenteError('INVALID_ARGUMENT', 'privateKey: must be 32 bytes', { field: 'privateKey' });
}

/**
 * Imported private keys, per key array (importing PKCS#8 costs ~10x the X25519 operation itself, and a
 * masking key is used once per peer). Weak: the KeyObject goes when the caller drops the array. The
 * cache assumes the array is not mutated after first use (the sessions never mutate their keys).
 */
const importedPrivateKeys = new WeakMap<Uint8Array, KeyObject>();

function importPrivateKey(privateKey: Uint8Array): KeyObject {
  checkPrivateKey(privateKey);
  const cached = importedPrivateKeys.get(privateKey);
  if (cached) return cached;
  const key = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]),
    format: 'der',
    type: 'pkcs8',
  });
  importedPrivateKeys.set(privateKey, key);
  return key;
}

function exportRawPublicKey(key: ReturnType<typeof createPublicKey>): Uint8Array {
  const der = key.export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - X25519_KEY_BYTES));
}

/** A fresh X25519 key pair from the OpenSSL CSPRNG. */
export function generateX25519KeyPair(): X25519KeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const raw = new Uint8Array(der.subarray(der.length - X25519_KEY_BYTES));
  return { privateKey: raw, publicKey: exportRawPublicKey(createPublicKey(privateKey)) };
}

/** X25519(privateKey, 9): the public key of a 32-byte private key. Throws INVALID_ARGUMENT
 *  (field 'privateKey') when it is not 32 bytes. */
export function deriveX25519PublicKey(privateKey: Uint8Array): Uint8Array {
  return exportRawPublicKey(createPublicKey(importPrivateKey(privateKey)));
}

/**
 * RFC 7748 X25519 shared secret (32 bytes, secret). Throws INVALID_MESSAGE (field 'publicKey') if
 * the peer key is not 32 bytes or the result is all-zero (a low-order point, RFC 7748 §6.1), and
 * INVALID_ARGUMENT (field 'privateKey') if the own key is not 32 bytes.
 */
export function computeX25519SharedSecret(privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
  const own = importPrivateKey(privateKey);
  const lowOrder = (): never => {
    throw new EntenteError(
      'INVALID_MESSAGE',
      'publicKey: gives an all-zero shared secret (low-order point)',
      {
        field: 'publicKey',
      },
    );
  };
  if (!(peerPublicKey instanceof Uint8Array) || peerPublicKey.length !== X25519_KEY_BYTES)
    throw new EntenteError('INVALID_MESSAGE', 'publicKey: must be 32 bytes', { field: 'publicKey' });
  let shared: Uint8Array;
  try {
    const peer = createPublicKey({
      key: Buffer.concat([X25519_SPKI_PREFIX, peerPublicKey]),
      format: 'der',
      type: 'spki',
    });
    shared = new Uint8Array(diffieHellman({ privateKey: own, publicKey: peer }));
  } catch {
    // OpenSSL refuses to derive an all-zero secret; any other failure is also the peer key's fault.
    return lowOrder();
  }
  let acc = 0;
  for (let i = 0; i < shared.length; i++) acc |= shared[i]!;
  if (shared.length !== X25519_KEY_BYTES || acc === 0) lowOrder();
  return shared;
}

/** Raw RFC 5869 HKDF-SHA256 (extract then expand). lengthBytes must be an integer in [1, 8160];
 *  throws INVALID_ARGUMENT (field 'lengthBytes') otherwise. */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  lengthBytes: number,
): Uint8Array {
  if (!Number.isInteger(lengthBytes) || lengthBytes < 1 || lengthBytes > HKDF_SHA256_MAX_BYTES)
    throw new EntenteError(
      'INVALID_ARGUMENT',
      `lengthBytes: must be an integer in [1, ${HKDF_SHA256_MAX_BYTES}]`,
      {
        field: 'lengthBytes',
      },
    );
  for (const [field, value] of [
    ['ikm', ikm],
    ['salt', salt],
    ['info', info],
  ] as const) {
    if (!(value instanceof Uint8Array))
      throw new EntenteError('INVALID_ARGUMENT', `${field}: must be a Uint8Array`, { field });
  }
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, lengthBytes));
}

/** HKDF-SHA256 with info = encodeCanonicalFields(infoFields): domain-separated key material of
 *  `lengthBytes` bytes (secret when `ikm` is). Throws INVALID_ARGUMENT as hkdfSha256 and
 *  encodeCanonicalFields do. */
export function deriveHkdfKey(
  ikm: Uint8Array,
  salt: Uint8Array,
  infoFields: readonly CanonicalField[],
  lengthBytes: number,
): Uint8Array {
  return hkdfSha256(ikm, salt, encodeCanonicalFields(infoFields), lengthBytes);
}
