/**
 * Test fixtures for secure aggregation: Ed25519 identity keys, the pinned-key view a participant reads
 * from its audit log, and a round context. Used only by tests (and the benchmark); kept here so both
 * sides' tests build rounds the same way.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { RingVector } from './mask-stream.ts';
import {
  type PinnedKeyResolver,
  type SecAggRoundContext,
  type VectorSegment,
  WEIGHT_SEGMENT,
} from './round-context.ts';

export interface TestIdentity {
  readonly id: string;
  /** Ed25519 secret key, PKCS#8 PEM. */
  readonly keyPem: string;
  /** The raw 32-byte public key (what the audit log pins). */
  readonly publicKey: Uint8Array;
}

export interface TestConsortium {
  readonly identities: ReadonlyMap<string, TestIdentity>;
  /** The identity keys as pinned in the (test) audit log: exactly the ids given. */
  readonly pinnedKeyOf: PinnedKeyResolver;
}

/** A fresh Ed25519 identity key per id, all of them pinned. */
export async function createTestConsortium(ids: readonly string[]): Promise<TestConsortium> {
  const identities = new Map<string, TestIdentity>();
  for (const id of ids) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
    identities.set(id, {
      id,
      keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      publicKey: new Uint8Array(raw),
    });
  }
  return { identities, pinnedKeyOf: (member) => identities.get(member)?.publicKey };
}

/** A round context over `tensorLengths` (named t0, t1, …) plus the weight channel. */
export function createTestContext(input: {
  cohort: readonly string[];
  threshold: number;
  tensorLengths: readonly number[];
  ringBits?: 32 | 64;
  round?: number;
  attempt?: number;
  baseModelSha256?: string;
}): SecAggRoundContext {
  const segments: VectorSegment[] = [];
  let offset = 0;
  for (const [i, n] of input.tensorLengths.entries()) {
    segments.push({ name: `t${i}`, offsetWords: offset, lengthWords: n });
    offset += n;
  }
  segments.push({ name: WEIGHT_SEGMENT, offsetWords: offset, lengthWords: 1 });
  return {
    consortium: 'test-consortium',
    runId: 'run-1',
    round: input.round ?? 1,
    attempt: input.attempt ?? 0,
    cohort: [...input.cohort].sort(),
    threshold: input.threshold,
    quantization: { ringBits: input.ringBits ?? 32, clipRange: 1, scale: 2 ** 20 },
    maxWeight: 1000,
    segments,
    baseModelSha256: input.baseModelSha256 ?? 'ab'.repeat(32),
    options: { learningRate: 0.1 },
  };
}

/** A fresh ring vector of `words` words filled from `fill(i)`. */
export function createRingVector(ringBits: 32 | 64, words: number, fill: (i: number) => number): RingVector {
  if (ringBits === 32) return Uint32Array.from({ length: words }, (_, i) => fill(i) >>> 0);
  return BigUint64Array.from({ length: words }, (_, i) => BigInt.asUintN(64, BigInt(fill(i))));
}
