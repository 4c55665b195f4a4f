/**
 * The coordinator's side of one secure-aggregation round (Bonawitz et al. CCS 2017, Fig. 4). It
 * checks and routes what participants send, tracks U1 ⊇ U2 ⊇ U3 ⊇ U4 ⊇ U5, and after Unmasking
 * reconstructs, by Shamir, the self-mask seeds of survivors and the masking keys of dropped
 * participants; each reconstruction is checked against what its owner committed to in its signed
 * advert (seed commitment, public key), so a wrong share cannot silently corrupt the sum. It never
 * sees an individual input: the engine folds masked vectors into one sum and calls `unmaskSum`.
 * Stage closes return a verdict; fewer than t at any stage aborts the attempt with a reason.
 */
import { EntenteError } from '../core/errors.ts';
import { verifyEd25519 } from '../crypto/signatures.ts';
import { computeX25519SharedSecret, deriveX25519PublicKey } from './key-agreement.ts';
import type { RingVector } from './mask-stream.ts';
import {
  type ReleasedShare,
  type SealedShare,
  type UnmaskRequest,
  type UnmaskResponse,
  applyDerivedMasks,
  type MaskSource,
  computeSelfSeedCommitment,
  pairwiseSign,
  verifyAdvert,
} from './participant-session.ts';
import {
  type PinnedKeyResolver,
  type SecAggRoundContext,
  type SignedAdvert,
  checkRoundContext,
  computeSessionId,
  encodeSurvivorPayload,
  encodeUpdateCommitment,
  fromBase64,
} from './round-context.ts';
import { combineShares } from './shamir.ts';
import type { SecAggStage } from './stages.ts';

export type StageVerdict<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: string };

function refuse(field: string, message: string): never {
  throw new EntenteError('PROTOCOL_VIOLATION', `${field}: ${message}`, { field });
}

/** At most this many t-subsets are tried when the shares of one secret do not reconstruct it. */
const MAX_SUBSETS_TRIED = 64;

function* subsetsOf<T>(items: readonly T[], size: number): Generator<T[]> {
  const idx = Array.from({ length: size }, (_, i) => i);
  while (true) {
    yield idx.map((i) => items[i]!);
    let i = size - 1;
    while (i >= 0 && idx[i] === items.length - size + i) i--;
    if (i < 0) return;
    idx[i]!++;
    for (let j = i + 1; j < size; j++) idx[j] = idx[j - 1]! + 1;
  }
}

export class ServerSession {
  readonly context: SecAggRoundContext;
  private readonly pinnedKeyOf: PinnedKeyResolver;
  private stageName: SecAggStage | 'done' | 'aborted' = 'advertise-keys';
  private readonly adverts = new Map<string, { advert: SignedAdvert; identityKey: Uint8Array }>();
  private u1: string[] = [];
  private sessionIdBytes: Uint8Array | undefined;
  private readonly sharesFrom = new Map<string, readonly SealedShare[]>();
  private u2: string[] = [];
  private readonly maskedFrom = new Map<string, { sha256: string; signature: string }>();
  private u3: string[] = [];
  private dropped: string[] = [];
  private readonly survivorSignatures = new Map<string, string>();
  private u4: string[] = [];
  private readonly unmaskFrom = new Map<string, UnmaskResponse>();

  /** `pinnedKeyOf`: each member's identity key as pinned in the audit log (not a CA's certificate). */
  constructor(input: { context: SecAggRoundContext; pinnedKeyOf: PinnedKeyResolver }) {
    checkRoundContext(input.context);
    this.context = input.context;
    this.pinnedKeyOf = input.pinnedKeyOf;
  }

  get stage(): SecAggStage | 'done' | 'aborted' {
    return this.stageName;
  }

  /** Hex session id, once ShareKeys has opened. */
  get sessionId(): string | undefined {
    return this.sessionIdBytes ? Buffer.from(this.sessionIdBytes).toString('hex') : undefined;
  }

  /** Who is expected to answer in the current stage. */
  get expected(): readonly string[] {
    switch (this.stageName) {
      case 'advertise-keys':
        return this.context.cohort;
      case 'share-keys':
        return this.u1;
      case 'masked-input':
        return this.u2;
      case 'consistency-check':
        return this.u3;
      case 'unmasking':
        return this.u4;
      default:
        return [];
    }
  }

  /** Who has answered in the current stage. */
  get answered(): readonly string[] {
    const m = {
      'advertise-keys': this.adverts,
      'share-keys': this.sharesFrom,
      'masked-input': this.maskedFrom,
      'consistency-check': this.survivorSignatures,
      unmasking: this.unmaskFrom,
    } as const;
    if (this.stageName === 'done' || this.stageName === 'aborted') return [];
    return [...m[this.stageName].keys()].sort();
  }

  private expectStage(stage: SecAggStage, participant: string): void {
    if (this.stageName !== stage)
      throw new EntenteError('STALE_ROUND', `${stage} is not open (stage is ${this.stageName})`, {
        field: 'stage',
      });
    if (!this.expected.includes(participant))
      throw new EntenteError('STALE_ROUND', `${participant} is not expected in ${stage} (dropped earlier?)`, {
        field: 'participant',
      });
    const answered = this.answered.includes(participant);
    if (answered)
      throw new EntenteError('DUPLICATE_RESULT', `${participant} already answered ${stage}`, {
        field: 'participant',
      });
  }

  private abort(reason: string): { ok: false; reason: string } {
    this.stageName = 'aborted';
    return { ok: false, reason };
  }

  async acceptAdvert(participant: string, advert: SignedAdvert): Promise<void> {
    this.expectStage('advertise-keys', participant);
    if (advert.participant !== participant) refuse('advert.participant', 'is not the sender');
    const identityKey = verifyAdvert(this.context, advert, this.pinnedKeyOf, 'advert');
    for (const { advert: other } of this.adverts.values()) {
      for (const k of [other.encryptionKey, other.maskingKey]) {
        if (k === advert.encryptionKey || k === advert.maskingKey)
          refuse('advert', 'reuses a public key already advertised');
      }
    }
    this.adverts.set(participant, { advert, identityKey });
  }

  /** Closes AdvertiseKeys: U1 = who advertised; the adverts every member of U1 receives. */
  closeAdvertiseKeys(): StageVerdict<{ adverts: SignedAdvert[] }> {
    this.u1 = [...this.adverts.keys()].sort();
    if (this.u1.length < this.context.threshold)
      return this.abort(`AdvertiseKeys: ${this.u1.length} adverts, threshold ${this.context.threshold}`);
    const adverts = this.u1.map((p) => this.adverts.get(p)!.advert);
    this.sessionIdBytes = computeSessionId(this.context, adverts);
    this.stageName = 'share-keys';
    return { ok: true, value: { adverts } };
  }

  acceptShares(participant: string, shares: readonly SealedShare[]): void {
    this.expectStage('share-keys', participant);
    const others = this.u1.filter((p) => p !== participant);
    if (shares.length !== others.length || shares.some((s, i) => s.peer !== others[i]))
      refuse('shares', 'must hold exactly one ciphertext for every other member of U1, sorted by receiver');
    for (const [i, s] of shares.entries()) fromBase64(s.sealed, `shares.${i}.sealed`);
    this.sharesFrom.set(participant, shares);
  }

  /** Closes ShareKeys: U2 = who sent shares; for each member, the ciphertexts addressed to it. */
  closeShareKeys(): StageVerdict<{ routed: Map<string, SealedShare[]> }> {
    this.u2 = [...this.sharesFrom.keys()].sort();
    if (this.u2.length < this.context.threshold)
      return this.abort(
        `ShareKeys: ${this.u2.length} participants sent shares, threshold ${this.context.threshold}`,
      );
    const routed = new Map<string, SealedShare[]>();
    for (const receiver of this.u2) {
      const list: SealedShare[] = [];
      for (const sender of this.u2) {
        if (sender === receiver) continue;
        const s = this.sharesFrom.get(sender)!.find((x) => x.peer === receiver)!;
        list.push({ peer: sender, sealed: s.sealed });
      }
      routed.set(receiver, list);
    }
    this.stageName = 'masked-input';
    return { ok: true, value: { routed } };
  }

  /** Checks the signed commitment of a masked input (its SHA-256); the engine stores and folds the vector. */
  acceptMaskedInput(participant: string, maskedInputSha256: string, signature: string): void {
    this.expectStage('masked-input', participant);
    const sig = fromBase64(signature, 'signature', 64);
    const payload = encodeUpdateCommitment(
      this.context,
      this.sessionIdBytes!,
      participant,
      maskedInputSha256,
    );
    if (!verifyEd25519(this.adverts.get(participant)!.identityKey, payload, sig))
      refuse('signature', 'does not verify over (run, round, base model, masked input, session)');
    this.maskedFrom.set(participant, { sha256: maskedInputSha256, signature });
  }

  /** Closes MaskedInputCollection: U3 (survivors) and the dropped list U2 \ U3. */
  closeMaskedInput(): StageVerdict<{ survivors: string[]; dropped: string[] }> {
    this.u3 = [...this.maskedFrom.keys()].sort();
    this.dropped = this.u2.filter((p) => !this.maskedFrom.has(p));
    if (this.u3.length < this.context.threshold)
      return this.abort(
        `MaskedInputCollection: ${this.u3.length} masked inputs, threshold ${this.context.threshold}`,
      );
    this.stageName = 'consistency-check';
    return { ok: true, value: { survivors: this.u3, dropped: this.dropped } };
  }

  /** The signed commitments of the survivors' masked inputs (for the audit record). */
  get commitments(): ReadonlyMap<string, { sha256: string; signature: string }> {
    return this.maskedFrom;
  }

  acceptSurvivorSignature(participant: string, signature: string): void {
    this.expectStage('consistency-check', participant);
    const sig = fromBase64(signature, 'signature', 64);
    if (
      !verifyEd25519(
        this.adverts.get(participant)!.identityKey,
        encodeSurvivorPayload(this.sessionIdBytes!, this.u3),
        sig,
      )
    )
      refuse('signature', "is not a signature on this round's survivor set");
    this.survivorSignatures.set(participant, signature);
  }

  /** Closes ConsistencyCheck: the Unmasking request (survivors, dropped, ≥ t signatures). */
  closeConsistencyCheck(): StageVerdict<UnmaskRequest> {
    this.u4 = [...this.survivorSignatures.keys()].sort();
    if (this.u4.length < this.context.threshold)
      return this.abort(
        `ConsistencyCheck: ${this.u4.length} signatures, threshold ${this.context.threshold}`,
      );
    this.stageName = 'unmasking';
    return {
      ok: true,
      value: {
        survivors: this.u3,
        dropped: this.dropped,
        signatures: this.u4.map((participant) => ({
          participant,
          signature: this.survivorSignatures.get(participant)!,
        })),
      },
    };
  }

  acceptUnmaskShares(participant: string, response: UnmaskResponse): void {
    this.expectStage('unmasking', participant);
    const owners = (list: readonly ReleasedShare[]): string[] => list.map((s) => s.owner);
    const same = (a: string[], b: string[]): boolean =>
      a.length === b.length && a.every((x, i) => x === b[i]);
    if (!same(owners(response.selfSeedShares), this.u3))
      refuse('selfSeedShares', 'must hold one share for every survivor, sorted');
    if (!same(owners(response.maskingKeyShares), this.dropped))
      refuse('maskingKeyShares', 'must hold one share for every dropped participant, sorted');
    for (const [i, s] of [...response.selfSeedShares, ...response.maskingKeyShares].entries())
      fromBase64(s.share, `shares.${i}.share`);
    this.unmaskFrom.set(participant, response);
  }

  /**
   * Closes Unmasking: reconstructs every needed secret and checks it against its owner's commitment.
   * On success returns `unmaskSum(sum)`, which removes the survivors' self masks and the dropped
   * participants' pairwise masks from the sum of the survivors' masked inputs, in place.
   */
  async closeUnmasking(): Promise<
    StageVerdict<{ survivors: string[]; unmaskSum: (sum: RingVector) => void }>
  > {
    const u5 = [...this.unmaskFrom.keys()].sort();
    const t = this.context.threshold;
    if (u5.length < t) return this.abort(`Unmasking: ${u5.length} answers, threshold ${t}`);
    const collect = (owner: string, kind: 'self' | 'key'): Uint8Array[] =>
      u5.map((p) => {
        const r = this.unmaskFrom.get(p)!;
        const list = kind === 'self' ? r.selfSeedShares : r.maskingKeyShares;
        return fromBase64(list.find((s) => s.owner === owner)!.share, 'share');
      });
    const reconstruct = async (
      shares: Uint8Array[],
      check: (secret: Uint8Array) => boolean,
    ): Promise<Uint8Array | null> => {
      try {
        const all = await combineShares(shares);
        if (check(all)) return all;
      } catch {
        // fall through to subsets
      }
      let tried = 0;
      for (const subset of subsetsOf(shares, t)) {
        if (++tried > MAX_SUBSETS_TRIED) break;
        try {
          const s = await combineShares(subset);
          if (check(s)) return s;
        } catch {
          // a malformed share: try the next subset
        }
      }
      return null;
    };
    const seeds = new Map<string, Uint8Array>();
    for (const owner of this.u3) {
      const commitment = this.adverts.get(owner)!.advert.selfSeedCommitment;
      const seed = await reconstruct(
        collect(owner, 'self'),
        (s) => computeSelfSeedCommitment(this.context, owner, s) === commitment,
      );
      if (!seed)
        return this.abort(
          `Unmasking: the self-mask seed of ${owner} could not be reconstructed from the shares`,
        );
      seeds.set(owner, seed);
    }
    const keys = new Map<string, Uint8Array>();
    for (const owner of this.dropped) {
      const publicKey = this.adverts.get(owner)!.advert.maskingKey;
      const key = await reconstruct(
        collect(owner, 'key'),
        (s) => s.length === 32 && Buffer.from(deriveX25519PublicKey(s)).toString('base64') === publicKey,
      );
      if (!key)
        return this.abort(
          `Unmasking: the masking key of ${owner} could not be reconstructed from the shares`,
        );
      keys.set(owner, key);
    }
    this.stageName = 'done';
    const ctx = this.context;
    const sessionId = this.sessionIdBytes!;
    const survivors = this.u3;
    const dropped = this.dropped;
    return {
      ok: true,
      value: {
        survivors,
        unmaskSum: (sum) => {
          const sources: MaskSource[] = survivors.map((u) => ({
            ikm: seeds.get(u)!,
            a: u,
            b: u,
            purpose: 'self-mask',
            sign: -1,
          }));
          for (const u of survivors) {
            const uPublic = fromBase64(this.adverts.get(u)!.advert.maskingKey, 'maskingKey', 32);
            for (const v of dropped) {
              // u added pairwiseSign(u, v) · PRG(s_uv); take it back out.
              const ikm = computeX25519SharedSecret(keys.get(v)!, uPublic);
              sources.push({
                ikm,
                a: u,
                b: v,
                purpose: 'pairwise-mask',
                sign: pairwiseSign(u, v) === 1 ? -1 : 1,
              });
            }
          }
          applyDerivedMasks(ctx, sum, sessionId, sources);
        },
      },
    };
  }

  /** The stage reached so far and the sets, for records (no secrets). */
  describe(): { stage: string; u1: string[]; u2: string[]; survivors: string[]; dropped: string[] } {
    return { stage: this.stageName, u1: this.u1, u2: this.u2, survivors: this.u3, dropped: this.dropped };
  }
}
