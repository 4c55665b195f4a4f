/**
 * What every party of one secure-aggregation round must agree on, and the exact bytes each signature
 * covers. The round configuration digest binds consortium, run, round, attempt, cohort, threshold,
 * quantisation, vector layout and training options; every advert carries it (signed), so a coordinator
 * that tells participants different things is caught at ShareKeys. The session id is SHA-256 over the
 * signed key list, the base-model hash and that digest (DESIGN.md §4); it salts every HKDF and is bound
 * into every later signature and AEAD, so nothing from one round or attempt verifies in another.
 * All encodings are length-prefixed canonical fields (crypto/canonical-bytes.ts), never JSON.stringify.
 */
import { createHash } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { type CanonicalField, encodeCanonicalFields } from '../crypto/canonical-bytes.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import type { QuantizationParams } from './quantize.ts';

/** One named segment of the masked vector (a tensor, or an integer channel such as the weight). */
export interface VectorSegment {
  readonly name: string;
  readonly offsetWords: number;
  readonly lengthWords: number;
}

/** The name of the integer weight channel (examples, capped at maxWeight) appended after the tensors. */
export const WEIGHT_SEGMENT = '__weight__';

/** Adaptive clipping's one-word channel: Σ(2b−1) over survivors plus noise (b: update was not clipped). */
export const CLIP_INDICATOR_SEGMENT = '__clip_indicator__';

export interface SecAggRoundContext {
  readonly consortium: string;
  readonly runId: string;
  readonly round: number;
  readonly attempt: number;
  /** Sorted, unique institution ids asked to take part (U0). */
  readonly cohort: readonly string[];
  readonly threshold: number;
  readonly quantization: QuantizationParams;
  readonly maxWeight: number;
  /** Segments in order, contiguous from word 0; the last one is the weight channel. */
  readonly segments: readonly VectorSegment[];
  readonly baseModelSha256: string;
  /** Any further round options that must be agreed (training hyper-parameters), canonicalised as JSON. */
  readonly options: unknown;
}

/** An advert (Round 0) as it travels: raw keys base64, signature by the institution's identity key. */
export interface SignedAdvert {
  readonly participant: string;
  /** X25519 public key used to encrypt shares (c_u^PK). */
  readonly encryptionKey: string;
  /** X25519 public key whose secret is Shamir-shared and used for pairwise masks (s_u^PK). */
  readonly maskingKey: string;
  /** SHA-256 commitment to the self-mask seed b_u (lets the coordinator check the reconstruction). */
  readonly selfSeedCommitment: string;
  readonly configDigest: string;
  /**
   * Ed25519 signature by the institution's identity key. Peers verify it with the key pinned for that
   * institution in their own verified copy of the audit log, never with a certificate: a certificate
   * authority run next to the coordinator could mint any member.
   */
  readonly signature: string;
}

/**
 * The identity key (32-byte Ed25519 public key) pinned for `member` in the caller's verified view of
 * the consortium (its audit log), or undefined when none is pinned.
 */
export type PinnedKeyResolver = (member: string) => Uint8Array | undefined;

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Decodes strict base64 of an exact length; throws INVALID_MESSAGE naming `field`. */
export function fromBase64(text: string, field: string, lengthBytes?: number): Uint8Array {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new EntenteError('INVALID_MESSAGE', `${field}: not base64`, { field });
  }
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  if (lengthBytes !== undefined && bytes.length !== lengthBytes) {
    throw new EntenteError('INVALID_MESSAGE', `${field}: expected ${lengthBytes} bytes`, { field });
  }
  return bytes;
}

/** Throws INVALID_ARGUMENT unless the context is internally consistent (checked by both sides). */
export function checkRoundContext(ctx: SecAggRoundContext): void {
  const bad = (field: string, message: string): never => {
    throw new EntenteError('INVALID_MESSAGE', `secagg.${field}: ${message}`, { field: `secagg.${field}` });
  };
  const sorted = [...new Set(ctx.cohort)].sort();
  if (sorted.length !== ctx.cohort.length || sorted.some((p, i) => p !== ctx.cohort[i]))
    bad('cohort', 'must be sorted and unique');
  if (!Number.isInteger(ctx.threshold) || ctx.threshold < 3 || ctx.threshold > ctx.cohort.length)
    bad('threshold', `must be an integer between 3 and the cohort size (${ctx.cohort.length})`);
  if (!/^[0-9a-f]{64}$/.test(ctx.baseModelSha256)) bad('baseModelSha256', 'must be SHA-256 hex');
  let offset = 0;
  for (const [i, s] of ctx.segments.entries()) {
    if (s.offsetWords !== offset || !Number.isInteger(s.lengthWords) || s.lengthWords < 1)
      bad(`segments.${i}`, 'segments must be contiguous and non-empty');
    offset += s.lengthWords;
  }
  const last = ctx.segments.at(-1);
  if (!last || last.name !== WEIGHT_SEGMENT || last.lengthWords !== 1)
    bad('segments', `the last segment must be the one-word ${WEIGHT_SEGMENT} channel`);
  if (new Set(ctx.segments.map((s) => s.name)).size !== ctx.segments.length)
    bad('segments', 'segment names must be unique');
}

/** Total words of the masked vector. */
export function countVectorWords(ctx: SecAggRoundContext): number {
  const last = ctx.segments.at(-1)!;
  return last.offsetWords + last.lengthWords;
}

/** SHA-256 (hex) of everything a round must agree on, apart from keys and the base model. */
export function computeConfigDigest(ctx: SecAggRoundContext): string {
  const fields: CanonicalField[] = [
    'entente/secagg/config/v1',
    ctx.consortium,
    ctx.runId,
    ctx.round,
    ctx.attempt,
    ctx.cohort.join('\n'),
    ctx.threshold,
    ctx.quantization.ringBits,
    canonicalizeJson(ctx.quantization.clipRange),
    canonicalizeJson(ctx.quantization.scale),
    ctx.maxWeight,
    canonicalizeJson(ctx.segments),
    ctx.baseModelSha256,
    canonicalizeJson(ctx.options ?? null),
  ];
  return Buffer.from(sha256(encodeCanonicalFields(fields))).toString('hex');
}

/** The bytes an advert's signature covers. */
export function encodeAdvertPayload(
  ctx: SecAggRoundContext,
  advert: Omit<SignedAdvert, 'signature'>,
): Uint8Array {
  return encodeCanonicalFields([
    'entente/secagg/advertise-keys/v1',
    ctx.consortium,
    ctx.runId,
    ctx.round,
    ctx.attempt,
    advert.participant,
    advert.encryptionKey,
    advert.maskingKey,
    advert.selfSeedCommitment,
    advert.configDigest,
    ctx.baseModelSha256,
  ]);
}

/** Session id: SHA-256 over the signed key list (sorted by participant), base model and config digest. */
export function computeSessionId(ctx: SecAggRoundContext, adverts: readonly SignedAdvert[]): Uint8Array {
  const fields: CanonicalField[] = [
    'entente/secagg/session/v1',
    computeConfigDigest(ctx),
    ctx.baseModelSha256,
  ];
  for (const a of [...adverts].sort((x, y) => (x.participant < y.participant ? -1 : 1))) {
    fields.push(a.participant, a.encryptionKey, a.maskingKey, a.selfSeedCommitment, a.signature);
  }
  return sha256(encodeCanonicalFields(fields));
}

/** Associated data of the share ciphertext from `sender` to `receiver` (AES-256-GCM). */
export function encodeShareAssociatedData(
  ctx: SecAggRoundContext,
  sessionId: Uint8Array,
  sender: string,
  receiver: string,
): Uint8Array {
  return encodeCanonicalFields([
    'entente/secagg/shares/v1',
    sessionId,
    ctx.round,
    ctx.attempt,
    sender,
    receiver,
  ]);
}

/** HKDF info for the share-encryption key between two participants (symmetric in the pair). */
export function encodeShareKeyInfo(ctx: SecAggRoundContext, a: string, b: string): readonly CanonicalField[] {
  const [lo, hi] = a < b ? [a, b] : [b, a];
  return ['entente/secagg/share-key/v1', ctx.consortium, ctx.runId, ctx.round, ctx.attempt, lo, hi];
}

/**
 * HKDF info for one mask stream: (consortium, run, round, attempt, tensor, sender, receiver, purpose).
 * Pairwise masks use the ordered pair (lower id, higher id): the lower adds, the higher subtracts.
 */
export function encodeMaskInfo(
  ctx: SecAggRoundContext,
  segment: string,
  a: string,
  b: string,
  purpose: 'pairwise-mask' | 'self-mask',
): readonly CanonicalField[] {
  const [lo, hi] = a < b ? [a, b] : [b, a];
  return [
    'entente/secagg/mask/v1',
    ctx.consortium,
    ctx.runId,
    ctx.round,
    ctx.attempt,
    segment,
    lo,
    hi,
    purpose,
  ];
}

/** The bytes of a participant's signed update commitment (run, round, base model, masked-input hash, session). */
export function encodeUpdateCommitment(
  ctx: SecAggRoundContext,
  sessionId: Uint8Array,
  participant: string,
  maskedInputSha256: string,
): Uint8Array {
  return encodeCanonicalFields([
    'entente/secagg/masked-input/v1',
    ctx.runId,
    ctx.round,
    ctx.attempt,
    ctx.baseModelSha256,
    participant,
    maskedInputSha256,
    sessionId,
  ]);
}

/** The bytes of a ConsistencyCheck signature over the survivor set U3. */
export function encodeSurvivorPayload(sessionId: Uint8Array, survivors: readonly string[]): Uint8Array {
  return encodeCanonicalFields(['entente/secagg/survivors/v1', sessionId, survivors.join('\n')]);
}

/** The plaintext inside one share ciphertext: (sender, receiver, share of s_u^SK, share of b_u). */
export function encodeSharePlaintext(
  sender: string,
  receiver: string,
  maskingKeyShare: Uint8Array,
  selfSeedShare: Uint8Array,
): Uint8Array {
  return encodeCanonicalFields([
    'entente/secagg/share-plaintext/v1',
    sender,
    receiver,
    maskingKeyShare,
    selfSeedShare,
  ]);
}
