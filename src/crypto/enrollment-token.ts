/**
 * One-time enrollment tokens: the invitation an operator hands to a new member out of band, in the
 * manner of kubeadm's bootstrap token + CA certificate hash. The token names the member, carries a
 * 256-bit secret from the CSPRNG (base64url, RFC 4648 §5, no padding) and pins the consortium CA by the
 * SHA-256 fingerprint of its DER certificate (FIPS 180-4), so the newcomer can authenticate the
 * coordinator before it trusts anything the coordinator says. The coordinator stores only the
 * token's SHA-256 and compares digests in constant time; the token itself is secret and is never
 * stored, logged or echoed in an error message.
 *
 * Text form: `entente-enroll.v1.<member>.<secret>.<caFingerprintSha256>`. The member id may contain
 * '.', so the token is parsed from both ends: the fixed prefix `entente-enroll.v1.` on the left, then
 * from the right the 64 lower-case hex digits of the fingerprint and the 43 base64url characters of
 * the secret (neither can contain '.'), each preceded by '.'; what remains in the middle is the member.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { SHA256_HEX } from './digest.ts';

const TOKEN_PREFIX = 'entente-enroll.v1.';
const SECRET_BYTES = 32;
/** base64url of 32 bytes without padding: ceil(32 * 8 / 6) = 43 characters. */
const SECRET_CHARS = 43;
const MAX_MEMBER_CHARS = 64;
const MEMBER_ID = /^[a-z0-9][a-z0-9._-]*$/;
/** prefix . member . secret (SECRET_CHARS) . fingerprint — see the header for why this is unambiguous. */
const TOKEN_SHAPE = /^entente-enroll\.v1\.([a-z0-9][a-z0-9._-]*)\.([A-Za-z0-9_-]{43})\.([0-9a-f]{64})$/;
/** A bound on the work done on hostile input; a valid token is at most 18 + 64 + 1 + 43 + 1 + 64 = 191. */
const MAX_TOKEN_CHARS = 1024;

export interface CreateEnrollmentTokenParams {
  /** The member (institution) id: /^[a-z0-9][a-z0-9._-]*$/, at most 64 characters. */
  readonly member: string;
  /** SHA-256 of the consortium CA's DER certificate, 64 lower-case hex digits. */
  readonly caFingerprintSha256: string;
}

export interface EnrollmentToken {
  /** The whole token text: SECRET, hand it over out of band; never store or log it. */
  readonly token: string;
  /** SHA-256 of the token's UTF-8 bytes, lower-case hex: what the coordinator stores. */
  readonly tokenSha256: string;
}

export interface ParsedEnrollmentToken {
  readonly member: string;
  /** The 43-character base64url secret: SECRET. */
  readonly secret: string;
  readonly caFingerprintSha256: string;
  readonly tokenSha256: string;
}

function computeTokenSha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function checkMember(member: unknown): string {
  if (typeof member !== 'string' || member.length < 1 || member.length > MAX_MEMBER_CHARS) {
    throw new EntenteError(
      'INVALID_ARGUMENT',
      `member: must be a string of 1 to ${MAX_MEMBER_CHARS} characters`,
      {
        field: 'member',
      },
    );
  }
  if (!MEMBER_ID.test(member)) {
    throw new EntenteError('INVALID_ARGUMENT', 'member: must match /^[a-z0-9][a-z0-9._-]*$/', {
      field: 'member',
    });
  }
  return member;
}

/**
 * Creates a fresh one-time token for `member` pinned to the CA fingerprint. The secret is 32 bytes
 * from node's CSPRNG. Throws INVALID_ARGUMENT (field 'member' or 'caFingerprintSha256') for a member
 * id outside /^[a-z0-9][a-z0-9._-]*$/ or longer than 64, or a fingerprint that is not 64 lower-case hex
 * digits. The returned `token` is SECRET; `tokenSha256` is what the coordinator keeps.
 */
export function createEnrollmentToken(params: CreateEnrollmentTokenParams): EnrollmentToken {
  const member = checkMember(params?.member);
  const caFingerprintSha256 = params.caFingerprintSha256;
  if (typeof caFingerprintSha256 !== 'string' || !SHA256_HEX.test(caFingerprintSha256)) {
    throw new EntenteError('INVALID_ARGUMENT', 'caFingerprintSha256: must be 64 lower-case hex digits', {
      field: 'caFingerprintSha256',
    });
  }
  const secret = randomBytes(SECRET_BYTES).toString('base64url');
  const token = `${TOKEN_PREFIX}${member}.${secret}.${caFingerprintSha256}`;
  return { token, tokenSha256: computeTokenSha256(token) };
}

function refuseToken(reason: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `token: ${reason}`, { field: 'token' });
}

/**
 * Parses a token as described in the header (no whitespace is trimmed: trim at the edge that read
 * it). Throws INVALID_ARGUMENT (field 'token') for anything else — not a string, too long, wrong
 * prefix or version, a member id that is invalid or over 64 characters, a secret that is not the
 * canonical base64url of 32 bytes, a fingerprint that is not 64 lower-case hex digits. The message
 * says which part is wrong but never echoes the token or the secret. The result's `secret` is SECRET.
 */
export function parseEnrollmentToken(token: unknown): ParsedEnrollmentToken {
  if (typeof token !== 'string') refuseToken('must be a string');
  if (token.length === 0) refuseToken('is empty');
  if (token.length > MAX_TOKEN_CHARS) refuseToken(`is longer than ${MAX_TOKEN_CHARS} characters`);
  if (!token.startsWith(TOKEN_PREFIX)) refuseToken(`must start with ${TOKEN_PREFIX}`);
  const match = TOKEN_SHAPE.exec(token);
  if (match === null) {
    const parts = token.split('.');
    const fingerprint = parts.at(-1) ?? '';
    const secret = parts.at(-2) ?? '';
    if (!SHA256_HEX.test(fingerprint)) refuseToken('the CA fingerprint must be 64 lower-case hex digits');
    if (!/^[A-Za-z0-9_-]+$/.test(secret) || secret.length !== SECRET_CHARS) {
      refuseToken(`the secret must be ${SECRET_CHARS} base64url characters`);
    }
    return refuseToken('the member id must match /^[a-z0-9][a-z0-9._-]*$/');
  }
  const member = match[1]!;
  const secret = match[2]!;
  const caFingerprintSha256 = match[3]!;
  if (member.length > MAX_MEMBER_CHARS)
    refuseToken(`the member id is longer than ${MAX_MEMBER_CHARS} characters`);
  // 43 characters carry 258 bits: the last two must be zero for the canonical encoding of 32 bytes.
  if (Buffer.from(secret, 'base64url').toString('base64url') !== secret) {
    refuseToken('the secret is not the canonical base64url of 32 bytes');
  }
  return { member, secret, caFingerprintSha256, tokenSha256: computeTokenSha256(token) };
}

/**
 * True when SHA-256(UTF-8 of `token`) equals `storedSha256` (64 hex digits, either case), compared
 * in constant time (crypto.timingSafeEqual over the 32 digest bytes). Returns false, never throws,
 * for a non-string token or a stored digest of the wrong shape. Does not check the token's format.
 */
export function verifyTokenDigest(token: string, storedSha256: string): boolean {
  if (typeof token !== 'string' || typeof storedSha256 !== 'string') return false;
  if (!/^[0-9a-fA-F]{64}$/.test(storedSha256)) return false;
  const actual = createHash('sha256').update(token, 'utf8').digest();
  return timingSafeEqual(actual, Buffer.from(storedSha256, 'hex'));
}
