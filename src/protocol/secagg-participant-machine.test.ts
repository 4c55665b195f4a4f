/**
 * The participant's side without I/O: the answers of later stages computed through real sessions and
 * delivered to the server's state machine give the exact sum; only the unmasking answer asks to be
 * noted durably first; first-stage tasks are refused with the field named.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { ParticipantSession, countVectorWords } from '../secagg/index.ts';
import { createRingVector, createTestConsortium, createTestContext } from '../secagg/test-fixtures.ts';
import type { SecAggTrainTask, Task, TaskResult } from './messages.ts';
import type { ChunkSource } from './secagg-masked-input.ts';
import {
  type SecAggStageTask,
  answerSecAggStage,
  buildTrainRoundContext,
  checkSecAggFirstTask,
  computeUpdateKey,
} from './secagg-participant-machine.ts';
import type { SecAggOutcome } from './secagg-server-effects.ts';
import { SecAggServerMachine } from './secagg-server-machine.ts';
import { describeTrainSegments } from './secure-sum-round.ts';

const refusedField = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof EntenteError, String(err));
    return err.field;
  }
};

test('stage answers through real sessions, delivered to the server machine, unmask the exact sum', async () => {
  const ids = ['a', 'b', 'c', 'd'];
  const tc = await createTestConsortium(ids);
  const context = createTestContext({ cohort: ids, threshold: 3, tensorLengths: [25] });
  const words = countVectorWords(context);
  const sessions = new Map<string, ParticipantSession>();
  const firstResults = new Map<string, TaskResult>();
  const expected = createRingVector(32, words, () => 0) as Uint32Array;
  for (const [k, id] of ids.entries()) {
    const input = createRingVector(32, words, (i) => (k + 1) * 1000 + i) as Uint32Array;
    for (let i = 0; i < words; i++) expected[i] = (expected[i]! + input[i]!) >>> 0;
    const { session, advert } = ParticipantSession.create({
      context,
      self: id,
      identityKeyPem: tc.identities.get(id)!.keyPem,
      pinnedKeyOf: tc.pinnedKeyOf,
      input,
    });
    sessions.set(id, session);
    firstResults.set(id, { kind: 'secagg-train', runId: 'run-1', round: 1, attempt: 0, advert });
  }
  const machine = new SecAggServerMachine({
    context,
    pinnedKeyOf: tc.pinnedKeyOf,
    firstStageTimeoutMs: 1000,
    stageTimeoutMs: 1000,
    firstTask: (_p, taskId, issuedAt) => ({ taskId, issuedAt, kind: 'secagg-train' }) as unknown as Task,
  });
  const stored = new Map<string, Uint8Array>();
  const chunks: ChunkSource = {
    sizeOf: (h) => stored.get(h)?.length,
    readPieces: (hs, fn) => {
      for (const h of hs) fn(stored.get(h)!);
    },
  };
  let open: { participant: string; task: Task }[] = [];
  let outcome: SecAggOutcome | undefined;
  const perform = (effects: Awaited<ReturnType<typeof machine.tick>>): void => {
    for (const e of effects) {
      if (e.type === 'write-tasks') open = [...e.tasks];
      if (e.type === 'done') outcome = e.outcome;
    }
  };
  perform(machine.start(0));
  for (const id of ids) perform(await machine.accept(id, firstResults.get(id)!, { now: 1, chunks }));
  const released: string[] = [];
  for (let stage = 0; stage < 4; stage++) {
    const tasks = open;
    for (const { participant, task } of tasks) {
      const answer = await answerSecAggStage(sessions.get(participant)!, task as SecAggStageTask);
      if (answer.releasesShares) released.push(`${participant}:${task.kind}`);
      for (const c of answer.chunks) stored.set(sha256Hex(c), c);
      if (answer.result.kind === 'secagg-masked-input')
        assert.equal(
          answer.chunks.reduce((n, c) => n + c.length, 0),
          words * 4,
        );
      perform(await machine.accept(participant, answer.result, { now: 2 + stage, chunks }));
    }
  }
  assert.deepEqual(
    released,
    ids.map((id) => `${id}:secagg-unmasking`),
  );
  assert.ok(outcome?.ok);
  assert.deepEqual(outcome.sum, expected);
});

const LAYOUT = [
  { name: 'w', shape: [3, 2] },
  { name: 'b', shape: [2] },
];

function trainTask(change: (t: Record<string, unknown>) => void = () => {}): SecAggTrainTask {
  const t: Record<string, unknown> = {
    kind: 'secagg-train',
    taskId: 't',
    runId: 'run-1',
    round: 2,
    attempt: 1,
    issuedAt: 0,
    model: { sha256: 'ab'.repeat(32), bytes: 1, chunks: [] },
    modelSpec: { kind: 'logistic', inputDim: 3 },
    train: { epochs: 1, batchSize: 8, learningRate: 0.1, optimizer: 'sgd' },
    seed: 's',
    secagg: {
      consortium: 'c1',
      attempt: 1,
      cohort: ['a', 'b', 'c'],
      threshold: 3,
      quantization: { ringBits: 32, clipRange: 1, scale: 1024 },
      maxWeight: 100,
      segments: describeTrainSegments(LAYOUT, false),
    },
  };
  change(t);
  return t as unknown as SecAggTrainTask;
}

test('a first-stage task: a signing key, this consortium, segments of the model and a sound context', () => {
  const site = { consortium: 'c1', canSign: true };
  assert.equal(
    refusedField(() => checkSecAggFirstTask(trainTask(), site)),
    undefined,
  );
  assert.equal(
    refusedField(() => checkSecAggFirstTask(trainTask(), { ...site, canSign: false })),
    'secagg',
  );
  assert.equal(
    refusedField(() => checkSecAggFirstTask(trainTask(), { ...site, consortium: 'c2' })),
    'secagg.consortium',
  );
  const context = buildTrainRoundContext(trainTask(), LAYOUT);
  assert.equal(context.runId, 'run-1');
  assert.equal(context.round, 2);
  assert.equal(context.baseModelSha256, 'ab'.repeat(32));
  const other = [{ name: 'w', shape: [3, 3] }, LAYOUT[1]!];
  assert.equal(
    refusedField(() => buildTrainRoundContext(trainTask(), other)),
    'secagg.segments',
  );
  const lowThreshold = trainTask((t) => (t.secagg = { ...(t.secagg as object), threshold: 2 }));
  assert.equal(
    refusedField(() => buildTrainRoundContext(lowThreshold, LAYOUT)),
    'secagg.threshold',
  );
});

test('the update key changes with what shapes the update, and with the threshold only under client DP', () => {
  const key = (t: SecAggTrainTask) => computeUpdateKey(t, buildTrainRoundContext(t, LAYOUT));
  const base = key(trainTask());
  assert.equal(key(trainTask((t) => (t.attempt = 2))), base);
  assert.notEqual(key(trainTask((t) => (t.train = { ...(t.train as object), epochs: 2 }))), base);
  const threshold4 = (t: Record<string, unknown>) =>
    (t.secagg = { ...(t.secagg as object), cohort: ['a', 'b', 'c', 'd'], threshold: 4 });
  assert.equal(key(trainTask(threshold4)), base);
  const dp = (t: Record<string, unknown>) => (t.clientDp = { clipNorm: 1, noiseMultiplier: 1 });
  assert.notEqual(
    key(
      trainTask((t) => {
        dp(t);
        threshold4(t);
      }),
    ),
    key(trainTask(dp)),
  );
});
