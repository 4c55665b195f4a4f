/**
 * The secure-aggregation round driver the benchmarks share (bench/secagg.ts, bench/eval.ts): one whole
 * round of Bonawitz et al. (CCS 2017) in-process through the real ParticipantSession / ServerSession,
 * every stage in order, the server folding each masked input and unmasking the sum. Members in
 * `dropped` advertise and share keys but never mask (they are in U2 \ U3). What each benchmark measures
 * comes back through hooks: the time of every site and server stage, the bytes of each body a site
 * would post, and each masking step's time next to the raw AES-128-CTR time for the same keystream
 * bytes, measured right before it. Also the raw AES-128-CTR keystream speed both benchmarks use as
 * their bound.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { createBlobRef } from '../src/protocol/index.ts';
import {
  addRingVectors,
  ParticipantSession,
  type RingVector,
  type SecAggRoundContext,
  ServerSession,
} from '../src/secagg/index.ts';
import type { TestConsortium } from '../src/secagg/test-fixtures.ts';

const CHUNK_BYTES = 64 * 1024;

/** Raw AES-128-CTR keystream speed: update() on one reused 64 KiB zero buffer for >= minMs. */
export function measureAesCtrBytesPerSecond(minMs: number): number {
  const cipher = createCipheriv('aes-128-ctr', randomBytes(16), new Uint8Array(16));
  const zeros = new Uint8Array(CHUNK_BYTES);
  let bytes = 0;
  let sink = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < minMs) {
    for (let i = 0; i < 64; i++) sink ^= cipher.update(zeros)[i]!;
    bytes += 64 * CHUNK_BYTES;
    elapsed = performance.now() - t0;
  }
  if (sink === 256) console.error('unreachable');
  return bytes / (elapsed / 1000);
}

/** Time (ms) to generate `bytes` of raw AES-128-CTR keystream the same way: the paired bound of one
 *  measured operation, taken right before it so both see the same load on a shared machine. */
export function timeRawAesCtrMs(bytes: number): number {
  const cipher = createCipheriv('aes-128-ctr', randomBytes(16), new Uint8Array(16));
  const zeros = new Uint8Array(CHUNK_BYTES);
  let sink = 0;
  const t0 = performance.now();
  for (let done = 0; done < bytes; done += CHUNK_BYTES)
    sink ^= cipher.update(done + CHUNK_BYTES <= bytes ? zeros : zeros.subarray(0, bytes - done))[0]!;
  const ms = performance.now() - t0;
  if (sink === 256) console.error('unreachable');
  return ms;
}

/** A site's stages (`site` set) or the server's (`site` null). */
export type SiteStage = 'create' | 'shareKeys' | 'mask' | 'commit' | 'signSurvivors' | 'unmask';
export type ServerStage = 'accept' | 'close' | 'fold' | 'closeUnmasking' | 'unmaskSum';

export interface SecAggRoundHooks {
  /** Members that share keys and then drop before masking (default: none). */
  readonly dropped?: ReadonlySet<string>;
  /** The vector `id`'s session is created with (it masks it in place). */
  readonly inputOf: (id: string) => RingVector;
  /** Called for each survivor just before it masks (e.g. to quantize into a shared input buffer). */
  readonly beforeMask?: (id: string) => void;
  /** The time of one stage of a site (`site` its id) or of the server (`site` null). */
  readonly onStage: (site: string | null, stage: SiteStage | ServerStage, ms: number) => void;
  /** Whether to count the bytes of `id`'s bodies (serializing them costs time). */
  readonly countsUploadsOf: (id: string) => boolean;
  /** The bytes of one body `id` posts (JSON bodies, and `maskedInputBlob`). */
  readonly onUpload: (id: string, what: string, bytes: number) => void;
  /** One masking step's time and the raw AES-128-CTR time for the same keystream bytes. */
  readonly onMask: (id: string, maskMs: number, pairedAesMs: number) => void;
  /** Called right before the server closes the unmasking stage (e.g. for its own paired bound). */
  readonly beforeUnmasking?: (survivors: readonly string[]) => void;
}

export interface SecAggRoundOutcome {
  /** The unmasked sum of the survivors' inputs. */
  readonly sum: RingVector;
  readonly survivors: readonly string[];
  /** Members that shared keys (U2). */
  readonly u2: number;
  /** Words of each input vector. */
  readonly words: number;
  /** Keystream bytes each masking step generates (one stream per member of U2). */
  readonly maskStreamBytes: number;
  /** Wall time spent on the paired AES measurements (to leave out of a round's wall time). */
  readonly pairedAesMs: number;
}

/** Drives one round over `ctx.cohort`; throws if a stage of the server refuses to close. */
export async function driveSecAggRound(
  tc: TestConsortium,
  ctx: SecAggRoundContext,
  hooks: SecAggRoundHooks,
): Promise<SecAggRoundOutcome> {
  const { dropped = new Set<string>(), onStage } = hooks;
  const time = <R>(site: string | null, stage: SiteStage | ServerStage, f: () => R): R => {
    const t0 = performance.now();
    const out = f();
    onStage(site, stage, performance.now() - t0);
    return out;
  };
  const timeAsync = async <R>(
    site: string | null,
    stage: SiteStage | ServerStage,
    f: () => R | Promise<R>,
  ): Promise<R> => {
    const t0 = performance.now();
    const out = await f();
    onStage(site, stage, performance.now() - t0);
    return out;
  };
  const count = (id: string, what: string, body: unknown) => {
    if (hooks.countsUploadsOf(id)) hooks.onUpload(id, what, JSON.stringify(body).length);
  };
  const base = { runId: ctx.runId, round: ctx.round, attempt: ctx.attempt };
  const server = new ServerSession({ context: ctx, pinnedKeyOf: tc.pinnedKeyOf });
  const sessions = new Map<string, ParticipantSession>();
  let words = 0;
  let pairedAesMs = 0;
  let sum: RingVector | undefined;

  // Round 0: AdvertiseKeys.
  for (const id of ctx.cohort) {
    const input = hooks.inputOf(id);
    words = input.length;
    const ident = tc.identities.get(id)!;
    const { session, advert } = time(id, 'create', () =>
      ParticipantSession.create({
        context: ctx,
        self: id,
        identityKeyPem: ident.keyPem,
        pinnedKeyOf: tc.pinnedKeyOf,
        input,
      }),
    );
    sessions.set(id, session);
    count(id, 'advert', { kind: 'secagg-train', ...base, advert });
    await timeAsync(null, 'accept', () => server.acceptAdvert(id, advert));
  }
  const v1 = await timeAsync(null, 'close', () => server.closeAdvertiseKeys());
  if (!v1.ok) throw new Error(v1.reason);

  // Round 1: ShareKeys (everyone, including the members that drop afterwards).
  for (const id of ctx.cohort) {
    const out = await timeAsync(id, 'shareKeys', () => sessions.get(id)!.shareKeys(v1.value.adverts));
    count(id, 'shares', { kind: 'secagg-share-keys', ...base, shares: out.shares });
    await timeAsync(null, 'accept', () => server.acceptShares(id, out.shares));
  }
  const v2 = await timeAsync(null, 'close', () => server.closeShareKeys());
  if (!v2.ok) throw new Error(v2.reason);

  // Round 2: MaskedInputCollection (survivors only); the server folds each masked input.
  const maskStreamBytes = v2.value.routed.size * words * (ctx.quantization.ringBits / 8);
  for (const id of ctx.cohort) {
    if (dropped.has(id)) continue;
    hooks.beforeMask?.(id);
    const tPaired = performance.now();
    const pairedMs = timeRawAesCtrMs(maskStreamBytes);
    pairedAesMs += performance.now() - tPaired;
    const t0 = performance.now();
    const out = sessions.get(id)!.maskInput(v2.value.routed.get(id)!);
    const maskMs = performance.now() - t0;
    onStage(id, 'mask', maskMs);
    hooks.onMask(id, maskMs, pairedMs);
    const result = time(id, 'commit', () => {
      const m = out.masked;
      const { ref } = createBlobRef(new Uint8Array(m.buffer, m.byteOffset, m.byteLength));
      return { kind: 'secagg-masked-input', ...base, maskedInput: ref, signature: out.sign(ref.sha256) };
    });
    count(id, 'maskedInputJson', result);
    if (hooks.countsUploadsOf(id)) hooks.onUpload(id, 'maskedInputBlob', out.masked.byteLength);
    await timeAsync(null, 'accept', () =>
      server.acceptMaskedInput(id, result.maskedInput.sha256, result.signature),
    );
    time(null, 'fold', () => {
      if (sum === undefined) sum = out.masked.slice();
      else addRingVectors(sum, out.masked);
    });
  }
  const v3 = await timeAsync(null, 'close', () => server.closeMaskedInput());
  if (!v3.ok) throw new Error(v3.reason);
  const survivors = v3.value.survivors;

  // Round 3: ConsistencyCheck; Round 4: Unmasking.
  for (const id of survivors) {
    const { signature } = time(id, 'signSurvivors', () => sessions.get(id)!.signSurvivors(survivors));
    count(id, 'consistency', { kind: 'secagg-consistency-check', ...base, signature });
    await timeAsync(null, 'accept', () => server.acceptSurvivorSignature(id, signature));
  }
  const v4 = await timeAsync(null, 'close', () => server.closeConsistencyCheck());
  if (!v4.ok) throw new Error(v4.reason);
  for (const id of survivors) {
    const out = time(id, 'unmask', () => sessions.get(id)!.unmask(v4.value));
    count(id, 'unmasking', {
      kind: 'secagg-unmasking',
      ...base,
      selfSeedShares: [...out.selfSeedShares],
      maskingKeyShares: [...out.maskingKeyShares],
    });
    await timeAsync(null, 'accept', () => server.acceptUnmaskShares(id, out));
  }
  hooks.beforeUnmasking?.(survivors);
  const v5 = await timeAsync(null, 'closeUnmasking', () => server.closeUnmasking());
  if (!v5.ok) throw new Error(v5.reason);
  time(null, 'unmaskSum', () => v5.value.unmaskSum(sum!));
  return { sum: sum!, survivors, u2: v2.value.routed.size, words, maskStreamBytes, pairedAesMs };
}
