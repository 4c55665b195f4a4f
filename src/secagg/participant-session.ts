/**
 * The participant's side of one secure-aggregation round (Bonawitz et al. CCS 2017, Fig. 4, actively
 * secure: signed adverts and a ConsistencyCheck), as a small object holding the round's secrets in
 * memory only. Each method is one stage; it checks everything the (possibly malicious) coordinator
 * sent and throws PROTOCOL_VIOLATION naming the problem instead of answering. In particular it never
 * releases both shares for the same peer: the survivor and dropped lists must be disjoint, cover
 * exactly the peers it masked with, equal the survivor set it signed, and carry at least t valid
 * signatures on that set; an Unmasking request can be answered once only (a repeat must be identical).
 */
import { randomBytes } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { encodeCanonicalFields } from '../crypto/canonical-bytes.ts';
import { signEd25519, verifyEd25519 } from '../crypto/signatures.ts';
import {
  type X25519KeyPair,
  computeX25519SharedSecret,
  deriveHkdfKey,
  generateX25519KeyPair,
} from './key-agreement.ts';
import { type RingVector, applyMaskStreams } from './mask-stream.ts';
import {
  type PinnedKeyResolver,
  type SecAggRoundContext,
  type SignedAdvert,
  checkRoundContext,
  computeConfigDigest,
  computeSessionId,
  countVectorWords,
  encodeAdvertPayload,
  encodeMaskInfo,
  encodeShareAssociatedData,
  encodeShareKeyInfo,
  encodeSharePlaintext,
  encodeSurvivorPayload,
  encodeUpdateCommitment,
  fromBase64,
  sha256,
  toBase64,
} from './round-context.ts';
import { openShares, sealShares } from './share-cipher.ts';
import { splitSecret } from './shamir.ts';
import type { SecAggStage } from './stages.ts';
import { computeMinimumThreshold } from './stages.ts';
import { decodeSharePlaintext } from './share-plaintext.ts';

export interface SealedShare {
  /** Sender (ShareKeys output) or receiver-side view (`from`) depending on direction. */
  readonly peer: string;
  readonly sealed: string;
}

export interface ReleasedShare {
  /** Whose secret this share belongs to. */
  readonly owner: string;
  readonly share: string;
}

export interface UnmaskRequest {
  readonly survivors: readonly string[];
  readonly dropped: readonly string[];
  readonly signatures: readonly { readonly participant: string; readonly signature: string }[];
}

export interface UnmaskResponse {
  /** Shares of b_v for every survivor v (including this participant). */
  readonly selfSeedShares: readonly ReleasedShare[];
  /** Shares of s_v^SK for every dropped v. */
  readonly maskingKeyShares: readonly ReleasedShare[];
}

export interface ParticipantSessionInput {
  readonly context: SecAggRoundContext;
  readonly self: string;
  /** The institution's Ed25519 identity key (secret key PEM). */
  readonly identityKeyPem: string;
  /** Each peer's identity key as pinned in this participant's own verified copy of the audit log. */
  readonly pinnedKeyOf: PinnedKeyResolver;
  /** The quantized input x_u laid out as context.segments (weight channel last). Taken over, not copied. */
  readonly input: RingVector;
}

function violation(field: string, message: string): never {
  throw new EntenteError('PROTOCOL_VIOLATION', `${field}: ${message}`, { field });
}

function isSortedUnique(list: readonly string[]): boolean {
  for (let i = 1; i < list.length; i++) if (!(list[i - 1]! < list[i]!)) return false;
  return true;
}

/** Where one mask comes from: a secret (X25519 shared secret or self-mask seed), the pair, the purpose. */
export interface MaskSource {
  readonly ikm: Uint8Array;
  readonly a: string;
  readonly b: string;
  readonly purpose: 'pairwise-mask' | 'self-mask';
  readonly sign: 1 | -1;
}

/**
 * Applies every source's mask to every segment: per segment, one AES-128-CTR key per source from
 * HKDF-SHA256(ikm, salt = session id, info = (consortium, run, round, attempt, tensor, pair, purpose)),
 * all streams applied in one chunked pass (mask-stream.ts `applyMaskStreams`).
 */
export function applyDerivedMasks(
  ctx: SecAggRoundContext,
  target: RingVector,
  sessionId: Uint8Array,
  sources: readonly MaskSource[],
): void {
  for (const seg of ctx.segments) {
    const streams = sources.map((s) => ({
      key16: deriveHkdfKey(s.ikm, sessionId, encodeMaskInfo(ctx, seg.name, s.a, s.b, s.purpose), 16),
      sign: s.sign,
    }));
    applyMaskStreams(target, streams, seg.offsetWords, seg.lengthWords);
  }
}

/** Sign of the pairwise mask participant `self` adds for peer `peer`: the lower id adds, the higher subtracts. */
export function pairwiseSign(self: string, peer: string): 1 | -1 {
  return self < peer ? 1 : -1;
}

/**
 * Verifies one advert against the context and the identity key pinned for its sender (the caller's
 * verified view of the audit log): cohort membership, the config digest, and the Ed25519 signature.
 * Returns the signer's raw public key. Throws PROTOCOL_VIOLATION naming `field`. No certificate is
 * consulted: whoever holds the CA key (the coordinator's host, in the enrollment flow) could mint one.
 */
export function verifyAdvert(
  ctx: SecAggRoundContext,
  advert: SignedAdvert,
  pinnedKeyOf: PinnedKeyResolver,
  field: string,
): Uint8Array {
  if (!ctx.cohort.includes(advert.participant)) violation(`${field}.participant`, 'is not in the cohort');
  if (advert.configDigest !== computeConfigDigest(ctx))
    violation(`${field}.configDigest`, 'differs from this round (different model, cohort or settings)');
  const pinned = pinnedKeyOf(advert.participant);
  if (pinned?.length !== 32)
    violation(
      `${field}.participant`,
      `${advert.participant} has no identity key pinned in the audit log (not an admitted member)`,
    );
  fromBase64(advert.encryptionKey, `${field}.encryptionKey`, 32);
  fromBase64(advert.maskingKey, `${field}.maskingKey`, 32);
  if (!/^[0-9a-f]{64}$/.test(advert.selfSeedCommitment))
    violation(`${field}.selfSeedCommitment`, 'must be SHA-256 hex');
  const signature = fromBase64(advert.signature, `${field}.signature`, 64);
  if (!verifyEd25519(pinned, encodeAdvertPayload(ctx, advert), signature))
    violation(
      `${field}.signature`,
      `does not verify with the identity key pinned for ${advert.participant} in the audit log`,
    );
  return pinned;
}

/** Commitment to a self-mask seed, bound to its owner and round (SHA-256 over canonical fields). */
export function computeSelfSeedCommitment(ctx: SecAggRoundContext, owner: string, seed: Uint8Array): string {
  const bytes = encodeCanonicalFields([
    'entente/secagg/self-seed/v1',
    ctx.consortium,
    ctx.runId,
    ctx.round,
    ctx.attempt,
    owner,
    seed,
  ]);
  return Buffer.from(sha256(bytes)).toString('hex');
}

export class ParticipantSession {
  readonly context: SecAggRoundContext;
  readonly self: string;
  private stage: SecAggStage | 'done' = 'advertise-keys';
  private readonly identityKeyPem: string;
  private readonly pinnedKeyOf: PinnedKeyResolver;
  private input: RingVector | undefined;
  private readonly encryptionPair: X25519KeyPair;
  private readonly maskingPair: X25519KeyPair;
  private readonly selfSeed: Uint8Array;
  private advert: SignedAdvert | undefined;
  private sessionId: Uint8Array | undefined;
  /** U1 with each member's verified identity key and adverts. */
  private readonly peers = new Map<string, { advert: SignedAdvert; identityKey: Uint8Array }>();
  /** Shares this participant holds, by owner (from U2, including its own). */
  private readonly held = new Map<string, { maskingKeyShare: Uint8Array; selfSeedShare: Uint8Array }>();
  private maskedWith: string[] = [];
  private signedSurvivors: string[] | undefined;
  private unmaskAnswer: { key: string; response: UnmaskResponse } | undefined;

  private constructor(input: ParticipantSessionInput) {
    checkRoundContext(input.context);
    if (!input.context.cohort.includes(input.self))
      violation('secagg.cohort', 'does not include this participant');
    if (input.context.threshold < computeMinimumThreshold(input.context.cohort.length)) {
      violation(
        'secagg.threshold',
        `${input.context.threshold} is below the minimum ${computeMinimumThreshold(input.context.cohort.length)} for a cohort of ${input.context.cohort.length}`,
      );
    }
    if (input.input.length !== countVectorWords(input.context))
      throw new EntenteError('INVALID_ARGUMENT', 'input: length does not match the segments', {
        field: 'input',
      });
    this.context = input.context;
    this.self = input.self;
    this.identityKeyPem = input.identityKeyPem;
    this.pinnedKeyOf = input.pinnedKeyOf;
    this.input = input.input;
    this.encryptionPair = generateX25519KeyPair();
    this.maskingPair = generateX25519KeyPair();
    this.selfSeed = new Uint8Array(randomBytes(32));
  }

  /** Round 0, AdvertiseKeys: fresh key pairs and self-mask seed, the advert signed with the identity key. */
  static create(input: ParticipantSessionInput): { session: ParticipantSession; advert: SignedAdvert } {
    const session = new ParticipantSession(input);
    const ctx = session.context;
    const unsigned = {
      participant: session.self,
      encryptionKey: toBase64(session.encryptionPair.publicKey),
      maskingKey: toBase64(session.maskingPair.publicKey),
      selfSeedCommitment: computeSelfSeedCommitment(ctx, session.self, session.selfSeed),
      configDigest: computeConfigDigest(ctx),
    };
    const signature = signEd25519(session.identityKeyPem, encodeAdvertPayload(ctx, unsigned));
    session.advert = { ...unsigned, signature: toBase64(signature) };
    session.stage = 'share-keys';
    return { session, advert: session.advert };
  }

  get currentStage(): SecAggStage | 'done' {
    return this.stage;
  }

  private expect(stage: SecAggStage): void {
    if (this.stage !== stage)
      violation('stage', `expected ${this.stage}, the coordinator asked for ${stage}`);
  }

  /** Round 1, ShareKeys: verifies every advert of U1, then sends each peer its encrypted shares. */
  async shareKeys(adverts: readonly SignedAdvert[]): Promise<{ sessionId: string; shares: SealedShare[] }> {
    this.expect('share-keys');
    const ctx = this.context;
    const ids = adverts.map((a) => a.participant);
    if (!isSortedUnique(ids)) violation('adverts', 'must be sorted by participant without duplicates');
    if (adverts.length < ctx.threshold)
      violation('adverts', `${adverts.length} adverts is fewer than the threshold ${ctx.threshold}`);
    const own = adverts.find((a) => a.participant === this.self);
    if (
      !own ||
      own.signature !== this.advert!.signature ||
      own.encryptionKey !== this.advert!.encryptionKey ||
      own.maskingKey !== this.advert!.maskingKey ||
      own.selfSeedCommitment !== this.advert!.selfSeedCommitment
    ) {
      violation('adverts', "this participant's own advert is missing or was altered");
    }
    const keys = new Set<string>();
    for (const [i, advert] of adverts.entries()) {
      const identityKey = verifyAdvert(ctx, advert, this.pinnedKeyOf, `adverts.${i}`);
      for (const k of [advert.encryptionKey, advert.maskingKey]) {
        if (keys.has(k)) violation(`adverts.${i}`, 'reuses a public key already used in this round');
        keys.add(k);
      }
      this.peers.set(advert.participant, { advert, identityKey });
    }
    const sessionId = computeSessionId(ctx, adverts);
    this.sessionId = sessionId;
    const n = adverts.length;
    const maskingShares = await splitSecret(this.maskingPair.privateKey, n, ctx.threshold);
    const seedShares = await splitSecret(this.selfSeed, n, ctx.threshold);
    const out: SealedShare[] = [];
    for (const [i, advert] of adverts.entries()) {
      const peer = advert.participant;
      if (peer === this.self) {
        this.held.set(peer, { maskingKeyShare: maskingShares[i]!, selfSeedShare: seedShares[i]! });
        continue;
      }
      const key = this.deriveShareKey(peer);
      const plaintext = encodeSharePlaintext(this.self, peer, maskingShares[i]!, seedShares[i]!);
      const sealed = sealShares(key, encodeShareAssociatedData(ctx, sessionId, this.self, peer), plaintext);
      plaintext.fill(0);
      out.push({ peer, sealed: toBase64(sealed) });
    }
    this.stage = 'masked-input';
    return { sessionId: Buffer.from(sessionId).toString('hex'), shares: out };
  }

  private deriveShareKey(peer: string): Uint8Array {
    const peerKey = fromBase64(this.peers.get(peer)!.advert.encryptionKey, 'encryptionKey', 32);
    const shared = computeX25519SharedSecret(this.encryptionPair.privateKey, peerKey);
    return deriveHkdfKey(shared, this.sessionId!, encodeShareKeyInfo(this.context, this.self, peer), 32);
  }

  /**
   * Round 2, MaskedInputCollection: opens the shares addressed to this participant (U2 = their senders
   * plus itself) and returns y_u = x_u + PRG(b_u) + sum over v in U2 of ±PRG(s_uv), with the signed
   * commitment to its bytes. The unmasked input is dropped afterwards.
   */
  maskInput(received: readonly SealedShare[]): {
    masked: RingVector;
    maskedWith: string[];
    sign: (maskedInputSha256: string) => string;
  } {
    this.expect('masked-input');
    const ctx = this.context;
    const sessionId = this.sessionId!;
    const from = received.map((s) => s.peer);
    if (!isSortedUnique(from)) violation('shares', 'must be sorted by sender without duplicates');
    for (const [i, s] of received.entries()) {
      if (!this.peers.has(s.peer) || s.peer === this.self)
        violation(`shares.${i}.peer`, 'is not another member of this round');
      const key = this.deriveShareKey(s.peer);
      let plaintext: Uint8Array;
      try {
        plaintext = openShares(
          key,
          encodeShareAssociatedData(ctx, sessionId, s.peer, this.self),
          fromBase64(s.sealed, `shares.${i}.sealed`),
        );
      } catch {
        violation(`shares.${i}.sealed`, `the shares from ${s.peer} do not authenticate for this session`);
      }
      const decoded = decodeSharePlaintext(plaintext);
      if (decoded.sender !== s.peer || decoded.receiver !== this.self)
        violation(`shares.${i}`, 'names a different sender or receiver');
      this.held.set(s.peer, {
        maskingKeyShare: decoded.maskingKeyShare,
        selfSeedShare: decoded.selfSeedShare,
      });
    }
    const maskedWith = [...this.held.keys()].sort();
    if (maskedWith.length < ctx.threshold)
      violation(
        'shares',
        `${maskedWith.length} participants left is fewer than the threshold ${ctx.threshold}`,
      );
    const masked = this.input!;
    this.input = undefined;
    const sources: MaskSource[] = [
      { ikm: this.selfSeed, a: this.self, b: this.self, purpose: 'self-mask', sign: 1 },
    ];
    for (const peer of maskedWith) {
      if (peer === this.self) continue;
      const peerKey = fromBase64(this.peers.get(peer)!.advert.maskingKey, 'maskingKey', 32);
      const ikm = computeX25519SharedSecret(this.maskingPair.privateKey, peerKey);
      sources.push({
        ikm,
        a: this.self,
        b: peer,
        purpose: 'pairwise-mask',
        sign: pairwiseSign(this.self, peer),
      });
    }
    applyDerivedMasks(ctx, masked, sessionId, sources);

    this.maskedWith = maskedWith;
    this.stage = 'consistency-check';
    return {
      masked,
      maskedWith,
      sign: (digest) =>
        toBase64(signEd25519(this.identityKeyPem, encodeUpdateCommitment(ctx, sessionId, this.self, digest))),
    };
  }

  /** Round 3, ConsistencyCheck: signs the survivor set U3 (must be within U2, contain itself, reach t). */
  signSurvivors(survivors: readonly string[]): { signature: string } {
    this.expect('consistency-check');
    if (!isSortedUnique(survivors)) violation('survivors', 'must be sorted without duplicates');
    for (const p of survivors)
      if (!this.maskedWith.includes(p))
        violation('survivors', `${p} did not take part in ShareKeys with this participant`);
    if (!survivors.includes(this.self)) violation('survivors', 'does not include this participant');
    if (survivors.length < this.context.threshold)
      violation(
        'survivors',
        `${survivors.length} survivors is fewer than the threshold ${this.context.threshold}`,
      );
    this.signedSurvivors = [...survivors];
    this.stage = 'unmasking';
    const signature = signEd25519(this.identityKeyPem, encodeSurvivorPayload(this.sessionId!, survivors));
    return { signature: toBase64(signature) };
  }

  /**
   * Round 4, Unmasking: releases b-shares of survivors and s^SK-shares of dropped peers, never both
   * for one peer. Refuses lists that overlap, that do not partition U2, that differ from the signed
   * survivor set, or that come with fewer than t valid survivor signatures.
   */
  unmask(request: UnmaskRequest): UnmaskResponse {
    const requestKey = JSON.stringify([request.survivors, request.dropped]);
    if (this.stage === 'done') {
      if (this.unmaskAnswer && this.unmaskAnswer.key === requestKey) return this.unmaskAnswer.response;
      violation('survivors', 'Unmasking was already answered for different survivor and dropped lists');
    }
    this.expect('unmasking');
    const ctx = this.context;
    const { survivors, dropped } = request;
    if (!isSortedUnique(survivors)) violation('survivors', 'must be sorted without duplicates');
    if (!isSortedUnique(dropped)) violation('dropped', 'must be sorted without duplicates');
    for (const p of dropped)
      if (survivors.includes(p)) violation('dropped', `${p} is listed as both survivor and dropped`);
    const signed = this.signedSurvivors!;
    if (survivors.length !== signed.length || survivors.some((p, i) => p !== signed[i]))
      violation('survivors', 'differs from the survivor set this participant signed');
    const union = [...survivors, ...dropped].sort();
    if (union.length !== this.maskedWith.length || union.some((p, i) => p !== this.maskedWith[i]))
      violation('dropped', 'survivors and dropped together must be exactly the participants of ShareKeys');
    const payload = encodeSurvivorPayload(this.sessionId!, survivors);
    const signers = new Set<string>();
    for (const [i, s] of request.signatures.entries()) {
      if (!survivors.includes(s.participant)) violation(`signatures.${i}.participant`, 'is not a survivor');
      if (signers.has(s.participant)) violation(`signatures.${i}.participant`, 'signed twice');
      const sig = fromBase64(s.signature, `signatures.${i}.signature`, 64);
      if (!verifyEd25519(this.peers.get(s.participant)!.identityKey, payload, sig))
        violation(`signatures.${i}.signature`, `is not ${s.participant}'s signature on this survivor set`);
      signers.add(s.participant);
    }
    if (signers.size < ctx.threshold)
      violation(
        'signatures',
        `${signers.size} valid signatures is fewer than the threshold ${ctx.threshold}`,
      );
    const response: UnmaskResponse = {
      selfSeedShares: survivors.map((owner) => ({
        owner,
        share: toBase64(this.held.get(owner)!.selfSeedShare),
      })),
      maskingKeyShares: dropped.map((owner) => ({
        owner,
        share: toBase64(this.held.get(owner)!.maskingKeyShare),
      })),
    };
    this.stage = 'done';
    this.unmaskAnswer = { key: requestKey, response };
    return response;
  }
}
