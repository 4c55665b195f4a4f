/**
 * DSSE, Dead Simple Signing Envelope v1 (secure-systems-lab/dsse protocol.md, envelope.md): signatures
 * are over PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN the ASCII decimal
 * byte length, so the payload type is authenticated and the payload is never re-serialised. Our
 * envelopes are signed with Ed25519; the verifier accepts standard or URL-safe base64, as envelope.md
 * allows.
 */
import { EntenteError } from '../core/errors.ts';
import { signEd25519, verifyEd25519 } from '../crypto/signatures.ts';

export interface DsseEnvelope {
  readonly payload: string;
  readonly payloadType: string;
  readonly signatures: readonly { readonly keyid: string; readonly sig: string }[];
}

export type DsseVerdict =
  | { ok: true; payload: Uint8Array; payloadType: string; keyids: string[] }
  | { ok: false; reason: string };

/** Envelopes with more signatures than this are refused before any verification. */
export const MAX_DSSE_SIGNATURES = 100;

const encoder = new TextEncoder();
const BASE64_ANY = /^[A-Za-z0-9+/\-_]*={0,2}$/;

/** PAE(payloadType, payload): the exact bytes a DSSE signature covers. */
export function encodePae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = encoder.encode(payloadType);
  const head = encoder.encode(`DSSEv1 ${type.length} ${payloadType} ${payload.length} `);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/** Decodes standard or URL-safe base64, padded or not; null when malformed, mixed or non-canonical. */
function decodeBase64(s: string): Uint8Array | null {
  if (!BASE64_ANY.test(s)) return null;
  if (/[+/]/.test(s) && /[-_]/.test(s)) return null;
  const bare = s.replace(/=+$/, '');
  if (bare.length % 4 === 1) return null;
  if (s.length !== bare.length && s.length % 4 !== 0) return null;
  const bytes = Buffer.from(bare.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  const canonical = bytes.toString('base64').replace(/=+$/, '');
  return canonical === bare.replace(/-/g, '+').replace(/_/g, '/') ? new Uint8Array(bytes) : null;
}

/** Signs `payload` under `payloadType` with the Ed25519 key `privateKeyPem` (secret) and returns the
 *  envelope with one signature labelled `keyid`. Throws INVALID_ARGUMENT for an empty payloadType
 *  (field 'payloadType'), a non-string keyid ('keyid') or a non-Ed25519 key ('privateKeyPem'). */
export function signDsse(
  payloadType: string,
  payload: Uint8Array,
  signer: { keyid: string; privateKeyPem: string },
): DsseEnvelope {
  if (typeof payloadType !== 'string' || payloadType.length === 0)
    throw new EntenteError('INVALID_ARGUMENT', 'payloadType: must be a non-empty string', {
      field: 'payloadType',
    });
  if (!(payload instanceof Uint8Array))
    throw new EntenteError('INVALID_ARGUMENT', 'payload: must be bytes', { field: 'payload' });
  if (typeof signer.keyid !== 'string')
    throw new EntenteError('INVALID_ARGUMENT', 'keyid: must be a string', { field: 'keyid' });
  const sig = signEd25519(signer.privateKeyPem, encodePae(payloadType, payload));
  return {
    payload: Buffer.from(payload).toString('base64'),
    payloadType,
    signatures: [{ keyid: signer.keyid, sig: Buffer.from(sig).toString('base64') }],
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Verifies a DSSE envelope (untrusted JSON value) against Ed25519 keys by keyid. A signature whose keyid
 * is in `keys` is checked with that key; one with no or an empty keyid is tried against every key; one
 * with an unknown keyid is ignored. Accepted when at least one signature verifies; `keyids` lists the
 * distinct keys that verified. A malformed envelope or no verifying signature is a failing verdict;
 * never throws.
 */
export function verifyDsse(envelope: unknown, keys: ReadonlyMap<string, Uint8Array>): DsseVerdict {
  if (!isRecord(envelope)) return { ok: false, reason: 'envelope: must be an object' };
  const { payload, payloadType, signatures } = envelope;
  if (typeof payloadType !== 'string' || payloadType.length === 0)
    return { ok: false, reason: 'envelope.payloadType: must be a non-empty string' };
  if (typeof payload !== 'string') return { ok: false, reason: 'envelope.payload: must be a string' };
  const body = decodeBase64(payload);
  if (body === null) return { ok: false, reason: 'envelope.payload: not base64' };
  if (!Array.isArray(signatures) || signatures.length === 0)
    return { ok: false, reason: 'envelope.signatures: must be a non-empty array' };
  if (signatures.length > MAX_DSSE_SIGNATURES)
    return { ok: false, reason: `envelope.signatures: more than ${MAX_DSSE_SIGNATURES}` };
  const pae = encodePae(payloadType, body);
  const verified = new Set<string>();
  for (const entry of signatures) {
    if (!isRecord(entry) || typeof entry.sig !== 'string')
      return { ok: false, reason: 'envelope.signatures: each needs a string sig' };
    if (entry.keyid !== undefined && typeof entry.keyid !== 'string')
      return { ok: false, reason: 'envelope.signatures: keyid must be a string' };
    const sig = decodeBase64(entry.sig);
    if (sig === null) return { ok: false, reason: 'envelope.signatures: sig is not base64' };
    const candidates: [string, Uint8Array][] =
      entry.keyid === undefined || entry.keyid === ''
        ? [...keys]
        : keys.has(entry.keyid)
          ? [[entry.keyid, keys.get(entry.keyid)!]]
          : [];
    for (const [keyid, publicKey] of candidates)
      if (!verified.has(keyid) && verifyEd25519(publicKey, pae, sig)) verified.add(keyid);
  }
  if (verified.size === 0) return { ok: false, reason: 'envelope: no signature verifies with a known key' };
  return { ok: true, payload: body, payloadType, keyids: [...verified] };
}
