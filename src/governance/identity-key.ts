/**
 * Members' identity keys over time: what the audit log pins, and who may change a pin. A member's
 * Ed25519 identity key (made on its own machine) signs its proposal approvals, its log cosignatures and
 * its secure-aggregation adverts; peers check those against the key pinned for the member in their own
 * verified copy of the log, never against a certificate authority (whoever holds the CA key could
 * certify any key under any member's name).
 *
 * Rules, replayed by `verify-trail.ts` and enforced by the coordinator and every participant:
 *  - the first identity key recorded for a member (its first enrollment, or the key `entente init`
 *    made) is pinned; the same key again is a renewal and changes nothing;
 *  - a different key recorded later is only *presented*: it counts for nothing until an
 *    `identity-key-changed` entry authorizes it, either by a rotation statement signed with the
 *    member's current pinned key (below), or by an approved `replace-identity-key` proposal (recovery of
 *    a lost key by the quorum the policy names for admissions);
 *  - history keeps verifying: a signature made before a change is checked under the key pinned then.
 *
 * Signatures are Ed25519 (RFC 8032) over canonical length-prefixed fields (crypto/canonical-bytes.ts).
 */
import { encodeCanonicalFields } from '../crypto/canonical-bytes.ts';
import { verifyEd25519 } from '../crypto/signatures.ts';

/** Domain-separation tag, the first signed field of a rotation statement. */
export const KEY_ROTATION_CONTEXT = 'entente/governance/identity-key-rotation/v1';

export interface KeyRotation {
  readonly consortium: string;
  readonly member: string;
  /** The pinned key being replaced and its successor, base64 of the raw 32-byte Ed25519 keys. */
  readonly previousKey: string;
  readonly key: string;
}

/** The bytes a rotation statement's signature covers (by the previous, still pinned, key). */
export function encodeKeyRotation(rotation: KeyRotation): Uint8Array {
  return encodeCanonicalFields([
    KEY_ROTATION_CONTEXT,
    rotation.consortium,
    rotation.member,
    rotation.previousKey,
    rotation.key,
  ]);
}

/** True when `signature` is the previous key's signature over the rotation statement. Never throws. */
export function verifyKeyRotation(rotation: KeyRotation, signature: Uint8Array): boolean {
  const previous = decodeRawKey(rotation.previousKey);
  if (!previous || !decodeRawKey(rotation.key)) return false;
  return verifyEd25519(previous, encodeKeyRotation(rotation), signature);
}

/** The raw 32-byte key of a base64 string, or undefined when it is not one. */
export function decodeRawKey(b64: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(b64)) return undefined;
  const bytes = Buffer.from(b64, 'base64');
  return bytes.length === 32 ? new Uint8Array(bytes) : undefined;
}

/**
 * The raw Ed25519 key of a C2SP signed-note verifier key `<name>+<hash>+<base64(type || key)>` (type
 * 0x01 Ed25519, 0x04 cosignature/v1), or undefined for anything else.
 */
export function readVerifierKeyBytes(vkey: string): Uint8Array | undefined {
  // The name holds no '+' and the key hash is hex; the base64 key itself may contain '+'.
  const first = vkey.indexOf('+');
  const second = first < 0 ? -1 : vkey.indexOf('+', first + 1);
  if (second < 0) return undefined;
  const b64 = vkey.slice(second + 1);
  if (!/^[A-Za-z0-9+/]{44}$/.test(b64)) return undefined;
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length !== 33 || (bytes[0] !== 0x01 && bytes[0] !== 0x04)) return undefined;
  return new Uint8Array(bytes.subarray(1));
}

const same = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

/** A member's pinned key as of one point in the log, and a presented key awaiting authorization. */
export interface IdentityKeyState {
  /** member → pinned raw key. */
  readonly pinned: Map<string, Uint8Array>;
  /** member → a different key it presented (re-enrollment) that is not authorized (yet). */
  readonly presented: Map<string, Uint8Array>;
}

export function createIdentityKeyState(): IdentityKeyState {
  return { pinned: new Map(), presented: new Map() };
}

/**
 * Records that `member` presented `key` (an enrollment entry). Returns what it did: 'pinned' (first key),
 * 'renewed' (the pinned key again) or 'presented' (a different key, counting for nothing yet).
 */
export function recordPresentedKey(
  state: IdentityKeyState,
  member: string,
  key: Uint8Array,
): 'pinned' | 'renewed' | 'presented' {
  const current = state.pinned.get(member);
  if (current === undefined) {
    state.pinned.set(member, key);
    return 'pinned';
  }
  if (same(current, key)) {
    state.presented.delete(member);
    return 'renewed';
  }
  state.presented.set(member, key);
  return 'presented';
}

/** True when the two raw keys are equal. */
export function isSameKey(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return same(a, b);
}
