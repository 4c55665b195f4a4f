/**
 * The server's secure-aggregation state machine driven in one process by real participant sessions
 * (secagg/participant-session.ts): no store, no clock, no network. Times are numbers passed in; masked
 * inputs are read from an in-memory chunk source.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { sha256Hex } from '../crypto/digest.ts';
import {
  ParticipantSession,
  type RingVector,
  type SecAggRoundContext,
  countVectorWords,
} from '../secagg/index.ts';
import {
  type TestConsortium,
  createRingVector,
  createTestConsortium,
  createTestContext,
} from '../secagg/test-fixtures.ts';
import { createBlobRef } from './blob-ref.ts';
import type { Task, TaskResult } from './messages.ts';
import type { ChunkSource } from './secagg-masked-input.ts';
import type { SecAggOutcome, SecAggServerEffect } from './secagg-server-effects.ts';
import { SecAggServerMachine } from './secagg-server-machine.ts';

const IDS = ['h1', 'h2', 'h3', 'h4', 'h5'];
let consortiumPromise: Promise<TestConsortium> | undefined;
const consortium = (): Promise<TestConsortium> => {
  consortiumPromise ??= createTestConsortium([...IDS, 'intruder']);
  return consortiumPromise;
};

const FIRST_MS = 10_000;
const STAGE_MS = 1_000;

class MemoryChunks implements ChunkSource {
  readonly bytes = new Map<string, Uint8Array>();
  sizeOf(sha256: string): number | undefined {
    return this.bytes.get(sha256)?.length;
  }
  readPieces(sha256s: readonly string[], fn: (piece: Uint8Array) => void): void {
    for (const h of sha256s) fn(this.bytes.get(h)!);
  }
}

/** One attempt: the machine, the participants' sessions and inputs, the tasks each was last given. */
async function createHarness(input: { threshold: number; cohort?: readonly string[]; ringBits?: 32 | 64 }) {
  const tc = await consortium();
  const context: SecAggRoundContext = createTestContext({
    cohort: input.cohort ?? IDS,
    threshold: input.threshold,
    tensorLengths: [40, 3],
    ...(input.ringBits ? { ringBits: input.ringBits } : {}),
  });
  const words = countVectorWords(context);
  const ring = context.quantization.ringBits;
  const sessions = new Map<string, ParticipantSession>();
  const adverts = new Map<string, unknown>();
  const inputs = new Map<string, RingVector>();
  for (const [k, id] of context.cohort.entries()) {
    const fill = (i: number): number => ((k + 1) * 7919 + i * 104729) % 2 ** 31;
    inputs.set(id, createRingVector(ring, words, fill));
    const { session, advert } = ParticipantSession.create({
      context,
      self: id,
      identityKeyPem: tc.identities.get(id)!.keyPem,
      pinnedKeyOf: tc.pinnedKeyOf,
      input: createRingVector(ring, words, fill),
    });
    sessions.set(id, session);
    adverts.set(id, advert);
  }
  const machine = new SecAggServerMachine({
    context,
    pinnedKeyOf: tc.pinnedKeyOf,
    firstStageTimeoutMs: FIRST_MS,
    stageTimeoutMs: STAGE_MS,
    firstTask: (participant, taskId, issuedAt) =>
      ({
        taskId,
        runId: context.runId,
        round: context.round,
        attempt: context.attempt,
        issuedAt,
        kind: 'secagg-train',
        forTest: participant,
      }) as unknown as Task,
  });
  const chunks = new MemoryChunks();
  const tasks = new Map<string, Task>();
  const effects: SecAggServerEffect[] = [];
  const outcomes: SecAggOutcome[] = [];
  const apply = (out: readonly SecAggServerEffect[]): readonly SecAggServerEffect[] => {
    for (const e of out) {
      effects.push(e);
      if (e.type === 'write-tasks') for (const { participant, task } of e.tasks) tasks.set(participant, task);
      if (e.type === 'done') outcomes.push(e.outcome);
    }
    return out;
  };
  /** What `id` answers to the task it was last given (the real participant session computes it). */
  const answer = async (id: string): Promise<TaskResult> => {
    const task = tasks.get(id)!;
    const session = sessions.get(id)!;
    const base = { runId: context.runId, round: context.round, attempt: context.attempt };
    switch (task.kind) {
      case 'secagg-train':
        return { ...base, kind: 'secagg-train', advert: adverts.get(id) } as TaskResult;
      case 'secagg-share-keys':
        return { ...base, kind: 'secagg-share-keys', shares: (await session.shareKeys(task.adverts)).shares };
      case 'secagg-masked-input': {
        const out = session.maskInput(task.shares);
        const bytes = new Uint8Array(out.masked.buffer, out.masked.byteOffset, out.masked.byteLength);
        const made = createBlobRef(bytes, 64);
        for (const c of made.chunks) chunks.bytes.set(sha256Hex(c), c);
        return {
          ...base,
          kind: 'secagg-masked-input',
          maskedInput: made.ref,
          signature: out.sign(made.ref.sha256),
        };
      }
      case 'secagg-consistency-check':
        return {
          ...base,
          kind: 'secagg-consistency-check',
          signature: session.signSurvivors(task.survivors).signature,
        };
      case 'secagg-unmasking': {
        const out = session.unmask(task);
        return {
          ...base,
          kind: 'secagg-unmasking',
          selfSeedShares: [...out.selfSeedShares],
          maskingKeyShares: [...out.maskingKeyShares],
        };
      }
      default:
        throw new Error(`unexpected task ${task.kind}`);
    }
  };
  const deliver = async (id: string, result: TaskResult, now: number) =>
    apply(await machine.accept(id, result, { now, chunks }));
  /** Everyone in `who` answers its current task, in order, at `now`. */
  const round = async (who: readonly string[], now: number): Promise<void> => {
    const results = [];
    for (const id of who) results.push([id, await answer(id)] as const);
    for (const [id, r] of results) await deliver(id, r, now);
  };
  const sumOf = (who: readonly string[]): RingVector => {
    const sum = createRingVector(ring, words, () => 0);
    for (const id of who) {
      const x = inputs.get(id)!;
      for (let i = 0; i < words; i++) {
        if (sum instanceof Uint32Array) sum[i] = (sum[i]! + (x as Uint32Array)[i]!) >>> 0;
        else (sum as BigUint64Array)[i] = BigInt.asUintN(64, sum[i]! + (x as BigUint64Array)[i]!);
      }
    }
    return sum;
  };
  const stageOf = (id: string): string | undefined => tasks.get(id)?.kind;
  return {
    context,
    machine,
    apply,
    answer,
    deliver,
    round,
    sumOf,
    stageOf,
    effects,
    outcomes,
    tasks,
    chunks,
  };
}

const code = (fn: () => Promise<unknown>, expected: string, field: string) =>
  assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof EntenteError, String(err));
    assert.equal(err.code, expected);
    assert.equal(err.field, field);
    return true;
  });

test('happy path, 5 participants: every stage opens for everyone and the unmasked sum is exact', async () => {
  const h = await createHarness({ threshold: 4 });
  const started = h.apply(h.machine.start(100));
  assert.deepEqual(started[0], { type: 'deadline', at: 100 + FIRST_MS });
  const first = started[1];
  assert.ok(first?.type === 'write-tasks');
  assert.deepEqual(
    first.tasks.map((t) => [t.participant, t.task.taskId, t.task.issuedAt]),
    IDS.map((p) => [p, `run-1.r1.a0.advertise-keys.${p}`, 100]),
  );
  const kinds = ['secagg-share-keys', 'secagg-masked-input', 'secagg-consistency-check', 'secagg-unmasking'];
  for (const [k, kind] of ['secagg-train', ...kinds].entries()) {
    for (const id of IDS) assert.equal(h.stageOf(id), kind);
    await h.round(IDS, 200 + k);
  }
  assert.equal(h.outcomes.length, 1);
  const outcome = h.outcomes[0]!;
  assert.ok(outcome.ok);
  assert.deepEqual(outcome.survivors, IDS);
  assert.deepEqual(outcome.dropped, []);
  assert.deepEqual(outcome.sum, h.sumOf(IDS));
  // Audit entries in the order the log verifier expects, one commitment per masked input.
  const audits = h.effects.flatMap((e) => (e.type === 'audit' ? [e.kind] : []));
  assert.deepEqual(audits, ['keys-advertised', ...IDS.map(() => 'update-committed'), 'survivors-fixed']);
  // Survivors release shares only after the durable mark, which precedes the unmasking tasks.
  const mark = h.effects.findIndex((e) => e.type === 'mark-unmasking');
  const unmaskTasks = h.effects.findIndex(
    (e) => e.type === 'write-tasks' && e.tasks[0]?.task.kind === 'secagg-unmasking',
  );
  assert.ok(mark >= 0 && mark < unmaskTasks);
  // Each later stage's tasks carry the time of the event that opened them; its deadline follows.
  const deadlines = h.effects.flatMap((e) => (e.type === 'deadline' ? [e.at] : []));
  assert.deepEqual(deadlines, [
    100 + FIRST_MS,
    200 + STAGE_MS,
    201 + STAGE_MS,
    202 + STAGE_MS,
    203 + STAGE_MS,
  ]);
  assert.equal(h.machine.ended, true);
  await code(
    () => h.deliver('h1', { kind: 'secagg-consistency-check' } as TaskResult, 300),
    'STALE_ROUND',
    'attempt',
  );
});

test('a participant dropping after its shares (no masked input) is recovered at unmasking (ring 2^64)', async () => {
  const h = await createHarness({ threshold: 3, ringBits: 64 });
  h.apply(h.machine.start(0));
  await h.round(IDS, 1); // adverts
  await h.round(IDS, 2); // shares
  const alive = IDS.filter((p) => p !== 'h2');
  await h.round(alive, 3); // masked inputs, h2 silent
  assert.equal(h.stageOf('h1'), 'secagg-masked-input');
  assert.deepEqual(h.apply(await h.machine.tick(2 + STAGE_MS - 1)), []);
  const closed = h.apply(await h.machine.tick(2 + STAGE_MS));
  assert.deepEqual(closed[0], {
    type: 'dropped',
    message: 'masked-input: no answer by the deadline from h2',
  });
  const fixed = closed.find((e) => e.type === 'audit' && e.kind === 'survivors-fixed');
  assert.ok(fixed?.type === 'audit' && fixed.kind === 'survivors-fixed');
  assert.deepEqual(fixed.body.dropped, ['h2']);
  await h.round(alive, 2000);
  await h.round(alive, 2001);
  const outcome = h.outcomes[0];
  assert.ok(outcome?.ok);
  assert.deepEqual(outcome.survivors, alive);
  assert.deepEqual(outcome.dropped, ['h2']);
  assert.deepEqual(outcome.sum, h.sumOf(alive));
});

test('fewer than t at a stage aborts with a reason and no sum, naming who refused', async () => {
  const h = await createHarness({ threshold: 4 });
  h.apply(h.machine.start(0));
  await h.round(IDS, 1);
  await h.round(['h1', 'h2', 'h3'], 2); // three shares, t = 4
  h.apply(
    await h.machine.noteRefusal('h4', 'run-1.r1.a0.share-keys.h4', 'PRIVACY_BUDGET_EXCEEDED: spent', 3),
  );
  // A refusal of another stage's task changes nothing.
  assert.deepEqual(await h.machine.noteRefusal('h5', 'run-1.r1.a0.advertise-keys.h5', 'late', 3), []);
  assert.equal(h.outcomes.length, 0);
  const out = h.apply(await h.machine.tick(2 + STAGE_MS));
  const done = out.at(-1);
  assert.ok(done?.type === 'done' && !done.outcome.ok);
  assert.match(done.outcome.reason, /ShareKeys|share/i);
  assert.match(done.outcome.reason, /refused: h4 \(PRIVACY_BUDGET_EXCEEDED: spent\)/);
  assert.ok(!out.some((e) => e.type === 'write-tasks' || e.type === 'mark-unmasking'));
  assert.ok(!h.effects.some((e) => e.type === 'done' && e.outcome.ok));
  assert.deepEqual(await h.machine.tick(1e9), []);
});

test('everyone expected answered or refused: the stage closes before its deadline', async () => {
  const h = await createHarness({ threshold: 4 });
  h.apply(h.machine.start(0));
  await h.round(IDS.slice(0, 4), 1);
  assert.equal(h.stageOf('h1'), 'secagg-train');
  h.apply(await h.machine.noteRefusal('h5', 'run-1.r1.a0.advertise-keys.h5', 'DATA_SCHEMA_MISMATCH', 2));
  for (const id of IDS.slice(0, 4)) assert.equal(h.stageOf(id), 'secagg-share-keys');
  assert.equal(h.tasks.get('h5')?.kind, 'secagg-train');
  assert.equal(h.machine.deadline, 2 + STAGE_MS);
});

test('late, duplicate, foreign and mismatched results are refused with a named field', async () => {
  const h = await createHarness({ threshold: 3 });
  h.apply(h.machine.start(0));
  const advert = await h.answer('h1');
  await h.deliver('h1', advert, 1);
  await code(() => h.deliver('h1', advert, 2), 'DUPLICATE_RESULT', 'participant');
  await code(() => h.deliver('h2', { ...advert, attempt: 1 } as TaskResult, 2), 'STALE_ROUND', 'attempt');
  await code(
    () => h.deliver('h2', { ...advert, kind: 'secagg-sum' } as TaskResult, 2),
    'INVALID_MESSAGE',
    'kind',
  );
  const h2Advert = await h.answer('h2');
  await code(() => h.deliver('intruder', h2Advert, 2), 'STALE_ROUND', 'participant');
  await code(
    () => h.deliver('h2', { kind: 'secagg-share-keys', runId: 'run-1', round: 1, attempt: 0, shares: [] }, 2),
    'STALE_ROUND',
    'stage',
  );
  // Nothing was emitted for the refused ones: only h1's task is done.
  const done = h.effects.flatMap((e) => (e.type === 'task-done' ? [e.taskId] : []));
  assert.deepEqual(done, ['run-1.r1.a0.advertise-keys.h1']);
  await h.round(['h2', 'h3', 'h4', 'h5'], 3);
  await h.round(IDS, 4);
  // A masked input whose chunks were not all uploaded, or whose size is wrong, is refused before folding.
  const masked = await h.answer('h1');
  assert.ok(masked.kind === 'secagg-masked-input');
  const missing = masked.maskedInput.chunks[1]!.sha256;
  const kept = h.chunks.bytes.get(missing)!;
  h.chunks.bytes.delete(missing);
  await code(() => h.deliver('h1', masked, 5), 'MALFORMED_BODY', 'maskedInput.chunks.1');
  h.chunks.bytes.set(missing, kept);
  await code(
    () => h.deliver('h1', { ...masked, maskedInput: { ...masked.maskedInput, bytes: 8 } }, 5),
    'INVALID_TENSOR',
    'maskedInput.bytes',
  );
  await code(
    () => h.deliver('h1', { ...masked, maskedInput: { ...masked.maskedInput, sha256: 'ee'.repeat(32) } }, 5),
    'DIGEST_MISMATCH',
    'maskedInput.sha256',
  );
  assert.ok(!h.effects.some((e) => e.type === 'audit' && e.kind === 'update-committed'));
  await h.deliver('h1', masked, 5);
  assert.equal(h.effects.filter((e) => e.type === 'audit' && e.kind === 'update-committed').length, 1);
});

test('the first stage waits for its own deadline; an abandoned attempt ignores ticks', async () => {
  const h = await createHarness({ threshold: 3 });
  assert.equal(h.machine.deadline, Number.POSITIVE_INFINITY);
  h.apply(h.machine.start(50));
  await h.round(['h1', 'h2', 'h3'], 60);
  assert.deepEqual(await h.machine.tick(50 + FIRST_MS - 1), []);
  const opened = h.apply(await h.machine.tick(50 + FIRST_MS));
  assert.deepEqual(opened[0], {
    type: 'dropped',
    message: 'advertise-keys: no answer by the deadline from h4, h5',
  });
  const written = opened.find((e) => e.type === 'write-tasks');
  assert.ok(written?.type === 'write-tasks');
  assert.deepEqual(
    written.tasks.map((t) => t.participant),
    ['h1', 'h2', 'h3'],
  );
  assert.equal(written.tasks[0]!.task.issuedAt, 50 + FIRST_MS);
  h.machine.expire();
  assert.deepEqual(await h.machine.tick(1e12), []);
  await code(() => h.deliver('h1', { kind: 'secagg-share-keys' } as TaskResult, 1), 'STALE_ROUND', 'attempt');
});
