/**
 * The whole protocol in one process: participants' sessions and the server session exchanging the real
 * messages, with dropouts at every stage, and a malicious coordinator (this test acting as one) whose
 * every trick must be refused by the participants without revealing an individual input.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { signEd25519 } from '../crypto/signatures.ts';
import type { RingVector } from './mask-stream.ts';
import { ParticipantSession, type SealedShare } from './participant-session.ts';
import {
  type SecAggRoundContext,
  type SignedAdvert,
  countVectorWords,
  encodeAdvertPayload,
  toBase64,
} from './round-context.ts';
import { ServerSession } from './server-session.ts';
import {
  type TestConsortium,
  createRingVector,
  createTestConsortium,
  createTestContext,
} from './test-fixtures.ts';

const IDS = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7'];
let consortiumPromise: Promise<TestConsortium> | undefined;
const consortium = (): Promise<TestConsortium> => {
  consortiumPromise ??= createTestConsortium([...IDS, 'intruder']);
  return consortiumPromise;
};

function createParticipants(tc: TestConsortium, ctx: SecAggRoundContext, seedOf: (id: string) => number) {
  const words = countVectorWords(ctx);
  const sessions = new Map<string, ParticipantSession>();
  const adverts = new Map<string, SignedAdvert>();
  const inputs = new Map<string, RingVector>();
  for (const id of ctx.cohort) {
    const input = createRingVector(
      ctx.quantization.ringBits,
      words,
      (i) => (seedOf(id) * 2654435761 + i * 40503) % 2 ** 32,
    );
    inputs.set(
      id,
      createRingVector(ctx.quantization.ringBits, words, (i) => Number(input[i]!)),
    );
    const ident = tc.identities.get(id)!;
    const { session, advert } = ParticipantSession.create({
      context: ctx,
      self: id,
      identityKeyPem: ident.keyPem,
      pinnedKeyOf: tc.pinnedKeyOf,
      input,
    });
    sessions.set(id, session);
    adverts.set(id, advert);
  }
  return { sessions, adverts, inputs };
}

interface Drops {
  afterAdvertise?: readonly string[];
  afterShareKeys?: readonly string[];
  afterMaskedInput?: readonly string[];
  duringUnmasking?: readonly string[];
}

/** Runs an honest coordinator over the real sessions; returns the unmasked sum or the abort reason. */
async function runRound(ctx: SecAggRoundContext, drops: Drops) {
  const tc = await consortium();
  const { sessions, adverts, inputs } = createParticipants(tc, ctx, (id) => IDS.indexOf(id) + 1);
  const server = new ServerSession({ context: ctx, pinnedKeyOf: tc.pinnedKeyOf });
  for (const [id, a] of adverts) await server.acceptAdvert(id, a);
  const v1 = server.closeAdvertiseKeys();
  if (!v1.ok) return { ok: false as const, reason: v1.reason };
  const alive = (list: readonly string[], dropped: readonly string[] = []) =>
    list.filter((p) => !dropped.includes(p));
  for (const id of alive(
    v1.value.adverts.map((a) => a.participant),
    drops.afterAdvertise,
  )) {
    const out = await sessions.get(id)!.shareKeys(v1.value.adverts);
    server.acceptShares(id, out.shares);
  }
  const v2 = server.closeShareKeys();
  if (!v2.ok) return { ok: false as const, reason: v2.reason };
  const words = countVectorWords(ctx);
  const sum = createRingVector(ctx.quantization.ringBits, words, () => 0);
  for (const id of alive([...v2.value.routed.keys()], drops.afterShareKeys)) {
    const out = sessions.get(id)!.maskInput(v2.value.routed.get(id)!);
    const digest = 'cd'.repeat(32);
    server.acceptMaskedInput(id, digest, out.sign(digest));
    for (let i = 0; i < words; i++) {
      if (sum instanceof Uint32Array) sum[i] = (sum[i]! + (out.masked as Uint32Array)[i]!) >>> 0;
      else (sum as BigUint64Array)[i] = BigInt.asUintN(64, sum[i]! + (out.masked as BigUint64Array)[i]!);
    }
  }
  const v3 = server.closeMaskedInput();
  if (!v3.ok) return { ok: false as const, reason: v3.reason };
  for (const id of alive(v3.value.survivors, drops.afterMaskedInput)) {
    server.acceptSurvivorSignature(id, sessions.get(id)!.signSurvivors(v3.value.survivors).signature);
  }
  const v4 = server.closeConsistencyCheck();
  if (!v4.ok) return { ok: false as const, reason: v4.reason };
  for (const id of alive(
    v4.value.signatures.map((s) => s.participant),
    drops.duringUnmasking,
  )) {
    server.acceptUnmaskShares(id, sessions.get(id)!.unmask(v4.value));
  }
  const v5 = await server.closeUnmasking();
  if (!v5.ok) return { ok: false as const, reason: v5.reason };
  v5.value.unmaskSum(sum);
  const expected = createRingVector(ctx.quantization.ringBits, words, () => 0);
  for (const id of v5.value.survivors) {
    const x = inputs.get(id)!;
    for (let i = 0; i < words; i++) {
      if (expected instanceof Uint32Array) expected[i] = (expected[i]! + (x as Uint32Array)[i]!) >>> 0;
      else (expected as BigUint64Array)[i] = BigInt.asUintN(64, expected[i]! + (x as BigUint64Array)[i]!);
    }
  }
  return { ok: true as const, survivors: v5.value.survivors, sum, expected };
}

test('no dropouts: the unmasked sum equals the exact sum of the inputs (ring 2^32)', async () => {
  const ctx = createTestContext({ cohort: IDS.slice(0, 5), threshold: 4, tensorLengths: [300, 7] });
  const r = await runRound(ctx, {});
  assert.ok(r.ok);
  assert.deepEqual(r.survivors, IDS.slice(0, 5));
  assert.deepEqual(r.sum, r.expected);
});

test("dropouts at every stage still unmask exactly the survivors' sum (ring 2^64)", async () => {
  const ctx = createTestContext({ cohort: IDS, threshold: 4, tensorLengths: [50], ringBits: 64 });
  // h7 never sends shares; h6 never sends its masked input (its pairwise masks must be removed from
  // the others'); h5 masks but drops during Unmasking: 4 answers = t.
  const r = await runRound(ctx, { afterAdvertise: ['h7'], afterShareKeys: ['h6'], duringUnmasking: ['h5'] });
  assert.ok(r.ok);
  assert.deepEqual(r.survivors, ['h1', 'h2', 'h3', 'h4', 'h5']);
  assert.deepEqual(r.sum, r.expected);
  // One more dropout (h4 does not sign the survivor set): 3 < t, the round aborts and reveals nothing.
  const aborted = await runRound(ctx, {
    afterAdvertise: ['h7'],
    afterShareKeys: ['h6'],
    afterMaskedInput: ['h4'],
    duringUnmasking: ['h5'],
  });
  assert.equal(aborted.ok, false);
  assert.match(aborted.ok ? '' : aborted.reason, /Unmasking: 3 answers, threshold 4/);
});

test('property: for any dropout pattern leaving >= t at each stage, masks cancel exactly', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 3, max: 6 }),
      fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 7, maxLength: 7 }),
      async (n, stageOfDrop) => {
        const cohort = IDS.slice(0, n);
        const t = Math.max(3, Math.floor(n / 2) + 1);
        const drops: Required<Drops> = {
          afterAdvertise: [],
          afterShareKeys: [],
          afterMaskedInput: [],
          duringUnmasking: [],
        };
        const keys = ['afterAdvertise', 'afterShareKeys', 'afterMaskedInput', 'duringUnmasking'] as const;
        cohort.forEach((id, i) => {
          const s = stageOfDrop[i]!;
          if (s > 0) (drops[keys[s - 1]!] as string[]).push(id);
        });
        const r = await runRound(createTestContext({ cohort, threshold: t, tensorLengths: [33, 5] }), drops);
        const remaining = n - Object.values(drops).flat().length;
        if (remaining >= t) {
          assert.ok(r.ok, `expected success with ${remaining} >= ${t}`);
          assert.deepEqual(r.sum, r.expected);
        } else {
          assert.equal(r.ok, false);
        }
      },
    ),
    { numRuns: 25 },
  );
});

// ---------- the malicious coordinator ----------

function assertViolation(fn: () => unknown, pattern: RegExp): void {
  assert.throws(
    fn,
    (err: unknown) =>
      err instanceof EntenteError && err.code === 'PROTOCOL_VIOLATION' && pattern.test(err.message),
  );
}
async function assertViolationAsync(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(
    fn,
    (err: unknown) =>
      err instanceof EntenteError && err.code === 'PROTOCOL_VIOLATION' && pattern.test(err.message),
  );
}

/** Brings five participants to the Unmasking stage with h5 dropped after ShareKeys. */
async function toUnmasking() {
  const tc = await consortium();
  const ctx = createTestContext({ cohort: IDS.slice(0, 5), threshold: 3, tensorLengths: [20] });
  const { sessions, adverts } = createParticipants(tc, ctx, (id) => IDS.indexOf(id) + 1);
  const list = [...adverts.values()];
  const shares = new Map<string, SealedShare[]>();
  for (const [id, s] of sessions) shares.set(id, (await s.shareKeys(list)).shares);
  const routed = (to: string) =>
    [...shares.entries()]
      .filter(([from]) => from !== to)
      .map(([from, l]) => ({ peer: from, sealed: l.find((x) => x.peer === to)!.sealed }));
  for (const id of ['h1', 'h2', 'h3', 'h4']) sessions.get(id)!.maskInput(routed(id));
  return { tc, ctx, sessions, adverts, routed };
}

test('malicious coordinator: asking for both shares of one peer (overlapping lists) is refused', async () => {
  const { sessions } = await toUnmasking();
  const survivors = ['h1', 'h2', 'h3', 'h4'];
  const p = sessions.get('h1')!;
  const signatures = survivors.map((id) => ({
    participant: id,
    signature: sessions.get(id)!.signSurvivors(survivors).signature,
  }));
  // h4 listed as survivor (b share) and as dropped (key share).
  assertViolation(
    () => p.unmask({ survivors, dropped: ['h4', 'h5'], signatures }),
    /both survivor and dropped/,
  );
  // h5 claimed as survivor to obtain its b share although h1 signed a set without it.
  assertViolation(
    () => p.unmask({ survivors: [...survivors, 'h5'], dropped: [], signatures }),
    /differs from the survivor set/,
  );
  // The honest request still works once, and a later different request is refused.
  const ok = p.unmask({ survivors, dropped: ['h5'], signatures });
  assert.deepEqual(
    ok.selfSeedShares.map((s) => s.owner),
    survivors,
  );
  assert.deepEqual(
    ok.maskingKeyShares.map((s) => s.owner),
    ['h5'],
  );
  assertViolation(
    () => p.unmask({ survivors: ['h1', 'h2', 'h3'], dropped: ['h4', 'h5'], signatures }),
    /already answered/,
  );
  const released = new Set([...ok.selfSeedShares, ...ok.maskingKeyShares].map((s) => s.owner));
  assert.equal(
    released.size,
    ok.selfSeedShares.length + ok.maskingKeyShares.length,
    'no peer got both shares',
  );
});

test('malicious coordinator: different survivor sets to different participants cannot gather t signatures', async () => {
  const { sessions } = await toUnmasking();
  const setA = ['h1', 'h2', 'h3'];
  const setB = ['h1', 'h2', 'h3', 'h4'];
  const sigA = sessions.get('h1')!.signSurvivors(setA).signature; // h1 was shown A
  const sigsB = ['h2', 'h3', 'h4'].map((id) => ({
    participant: id,
    signature: sessions.get(id)!.signSurvivors(setB).signature,
  }));
  // h1 is shown B with the others' signatures: differs from what it signed.
  assertViolation(
    () => sessions.get('h1')!.unmask({ survivors: setB, dropped: ['h5'], signatures: sigsB }),
    /differs from the survivor set/,
  );
  // h2 is shown B with h1's signature on A passed off as one on B: it does not verify.
  assertViolation(
    () =>
      sessions.get('h2')!.unmask({
        survivors: setB,
        dropped: ['h5'],
        signatures: [{ participant: 'h1', signature: sigA }, ...sigsB.slice(0, 1)],
      }),
    /not h1's signature on this survivor set/,
  );
  // Fewer than t valid signatures.
  assertViolation(
    () => sessions.get('h3')!.unmask({ survivors: setB, dropped: ['h5'], signatures: sigsB.slice(0, 2) }),
    /fewer than the threshold/,
  );
});

test('malicious coordinator: substituted, unsigned, wrongly signed and replayed adverts are refused', async () => {
  const tc = await consortium();
  const ctx = createTestContext({ cohort: IDS.slice(0, 4), threshold: 3, tensorLengths: [10] });
  const fresh = () => createParticipants(tc, ctx, (id) => IDS.indexOf(id) + 1);
  const tamper = async (edit: (a: SignedAdvert) => SignedAdvert, pattern: RegExp) => {
    const { sessions, adverts } = fresh();
    const list = [...adverts.values()].map((a) => (a.participant === 'h2' ? edit(a) : a));
    await assertViolationAsync(() => sessions.get('h1')!.shareKeys(list), pattern);
  };
  const other = fresh().adverts.get('h2')!;
  await tamper((a) => ({ ...a, maskingKey: other.maskingKey }), /adverts\.1\.signature: does not verify/);
  await tamper((a) => ({ ...a, signature: toBase64(new Uint8Array(64)) }), /adverts\.1\.signature/);
  // Signed by the intruder's (pinned, but for another member) key while claiming to be h2.
  const intruder = tc.identities.get('intruder')!;
  await tamper((a) => {
    const { signature: _s, ...unsigned } = a;
    return {
      ...a,
      signature: toBase64(signEd25519(intruder.keyPem, encodeAdvertPayload(ctx, unsigned))),
    };
  }, /adverts\.1\.signature: does not verify with the identity key pinned for h2/);
  // Signed by a fresh key for h2 (what a CA next to the coordinator could certify): not the pinned one.
  const minted = (await createTestConsortium(['h2'])).identities.get('h2')!;
  await tamper((a) => {
    const { signature: _s, ...unsigned } = a;
    return { ...a, signature: toBase64(signEd25519(minted.keyPem, encodeAdvertPayload(ctx, unsigned))) };
  }, /adverts\.1\.signature: does not verify with the identity key pinned for h2/);
  // Replayed from the previous round.
  const previous = createParticipants(
    tc,
    createTestContext({ cohort: IDS.slice(0, 4), threshold: 3, tensorLengths: [10], round: 0 }),
    () => 1,
  );
  await tamper(() => previous.adverts.get('h2')!, /configDigest|signature/);
  // The participant's own advert altered.
  const { sessions, adverts } = fresh();
  const list = [...adverts.values()].map((a) =>
    a.participant === 'h1' ? { ...a, maskingKey: other.maskingKey } : a,
  );
  await assertViolationAsync(() => sessions.get('h1')!.shareKeys(list), /own advert/);
});

test('malicious coordinator: a different base model for one participant is caught at ShareKeys', async () => {
  const tc = await consortium();
  const cohort = IDS.slice(0, 4);
  const honest = createParticipants(
    tc,
    createTestContext({ cohort, threshold: 3, tensorLengths: [10] }),
    () => 1,
  );
  const fooled = createParticipants(
    tc,
    createTestContext({ cohort, threshold: 3, tensorLengths: [10], baseModelSha256: 'ef'.repeat(32) }),
    () => 1,
  );
  const list = [...honest.adverts.values()].map((a) =>
    a.participant === 'h4' ? fooled.adverts.get('h4')! : a,
  );
  await assertViolationAsync(() => honest.sessions.get('h1')!.shareKeys(list), /adverts\.3\.configDigest/);
  await assertViolationAsync(() => fooled.sessions.get('h4')!.shareKeys(list), /configDigest/);
});

test('malicious coordinator: replayed share ciphertexts from another session do not authenticate', async () => {
  const a = await toUnmasking();
  const b = await toUnmasking();
  // Fresh sessions at the masked-input stage, fed round A's ciphertexts.
  const tc = await consortium();
  const ctx = a.ctx;
  const { sessions, adverts } = createParticipants(tc, ctx, () => 3);
  const s1 = sessions.get('h1')!;
  await s1.shareKeys([...adverts.values()]);
  assertViolation(() => s1.maskInput(b.routed('h1')), /do not authenticate/);
});

test('a threshold below a strict majority, or a cohort of fewer than 3, is refused before any key is made', async () => {
  const tc = await consortium();
  const ident = tc.identities.get('h1')!;
  const make = (ctx: SecAggRoundContext) => () =>
    ParticipantSession.create({
      context: ctx,
      self: 'h1',
      identityKeyPem: ident.keyPem,
      pinnedKeyOf: tc.pinnedKeyOf,
      input: new Uint32Array(countVectorWords(ctx)),
    });
  assertViolation(
    make(createTestContext({ cohort: IDS, threshold: 3, tensorLengths: [4] })),
    /below the minimum 4/,
  );
  assert.throws(
    make(createTestContext({ cohort: ['h1', 'h2'], threshold: 2, tensorLengths: [4] })),
    /threshold/,
  );
});

test('the server refuses a wrong masked-input signature and a stage answered twice', async () => {
  const tc = await consortium();
  const ctx = createTestContext({ cohort: IDS.slice(0, 3), threshold: 3, tensorLengths: [4] });
  const { sessions, adverts } = createParticipants(tc, ctx, () => 1);
  const server = new ServerSession({ context: ctx, pinnedKeyOf: tc.pinnedKeyOf });
  for (const [id, a] of adverts) await server.acceptAdvert(id, a);
  await assert.rejects(() => server.acceptAdvert('h1', adverts.get('h1')!), /DUPLICATE|already answered/);
  const v1 = server.closeAdvertiseKeys();
  assert.ok(v1.ok);
  for (const [id, s] of sessions) server.acceptShares(id, (await s.shareKeys(v1.value.adverts)).shares);
  const v2 = server.closeShareKeys();
  assert.ok(v2.ok);
  const out = sessions.get('h1')!.maskInput(v2.value.routed.get('h1')!);
  assertViolation(
    () => server.acceptMaskedInput('h1', '00'.repeat(32), out.sign('11'.repeat(32))),
    /signature/,
  );
  server.acceptMaskedInput('h1', '11'.repeat(32), out.sign('11'.repeat(32)));
});

test('a cohort member with no identity key pinned in the log is refused at ShareKeys (a member minted by the coordinator)', async () => {
  const tc = await consortium();
  const ctx = createTestContext({ cohort: IDS.slice(0, 4), threshold: 3, tensorLengths: [6] });
  const ident = tc.identities.get('h1')!;
  const honest = createParticipants(tc, ctx, () => 1);
  const list = [...honest.adverts.values()];
  // h1's own advert in the list must be its new session's: rebuild the list around it.
  const own = ParticipantSession.create({
    context: ctx,
    self: 'h1',
    identityKeyPem: ident.keyPem,
    // h1's verified log pins every member but h3.
    pinnedKeyOf: (member) => (member === 'h3' ? undefined : tc.pinnedKeyOf(member)),
    input: new Uint32Array(countVectorWords(ctx)),
  });
  const withOwn = list.map((a) => (a.participant === 'h1' ? own.advert : a));
  await assertViolationAsync(
    () => own.session.shareKeys(withOwn),
    /adverts\.2\.participant: h3 has no identity key pinned in the audit log/,
  );
  // With h3 pinned the same adverts are accepted.
  const plain = createParticipants(tc, ctx, () => 1);
  const out = await plain.sessions.get('h1')!.shareKeys([...plain.adverts.values()]);
  assert.ok(out.shares.length > 0);
});
