/**
 * Test fixtures for secure aggregation: a CA, Ed25519 identity certificates and a round context.
 * Used only by tests (and the benchmark); kept here so both sides' tests build rounds the same way.
 */
import { createCertificateAuthority, issueIdentityCertificate } from '../crypto/pki.ts';
import type { RingVector } from './mask-stream.ts';
import { type SecAggRoundContext, type VectorSegment, WEIGHT_SEGMENT } from './round-context.ts';

export interface TestIdentity {
  readonly id: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface TestConsortium {
  readonly caCertPem: string;
  readonly identities: ReadonlyMap<string, TestIdentity>;
}

/** A CA and one identity certificate per id (valid from 2026-01-01 for 10 years). */
export async function createTestConsortium(ids: readonly string[]): Promise<TestConsortium> {
  const notBefore = new Date(Date.UTC(2026, 0, 1));
  const ca = await createCertificateAuthority({ commonName: 'test-ca', notBefore, validityDays: 3650 });
  const identities = new Map<string, TestIdentity>();
  for (const id of ids) {
    const c = await issueIdentityCertificate(ca, { commonName: id, notBefore, validityDays: 3650 });
    identities.set(id, { id, certPem: c.certPem, keyPem: c.keyPem });
  }
  return { caCertPem: ca.certPem, identities };
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

/** Fixed "now" inside the test certificates' validity. */
export const TEST_NOW = (): Date => new Date(Date.UTC(2026, 10, 27));
