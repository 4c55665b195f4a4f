/**
 * A coordinator that unmasks one round twice. Secure aggregation (Bonawitz et al. CCS 2017) shows the
 * coordinator sums only; but two unmasked sums of the same round over different cohorts differ by the
 * updates of the members in one and not the other. The double (malicious-coordinator-double.ts) runs a
 * complete attempt of a round with a real participant process and three simulated members, then opens
 * another attempt of the same round without gamma and asks the real participant to take part and to
 * unmask: S₀ − S₁ would be gamma's update. The honest participant refuses every stage of the second
 * attempt (PROTOCOL_VIOLATION, journaled), also after a restart, since it recorded the unmasked round on
 * disk before its shares left. An attempt aborted before its Unmasking stage may be retried: that
 * round completes, with the site reusing its update instead of training again.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeSafetensors } from '../../src/core/index.ts';
import { createSeededRng } from '../../src/crypto/index.ts';
import {
  computeFeatureStats,
  deriveStandardization,
  loadTable,
  computeSchemaDigest,
  parseDataSchema,
} from '../../src/data/index.ts';
import { describeLayout, initializeWeights, parseModelSpec } from '../../src/models/index.ts';
import type { TaskResult } from '../../src/protocol/index.ts';
import { WEIGHT_SEGMENT } from '../../src/secagg/index.ts';
import { type ChildHandle, DATASET_DIR, spawnEntente, stopChild } from '../../src/simulation/index.ts';
import { SCHEMA_PATH, createTestWorkspace, waitFor } from './fixtures.ts';
import {
  type CoordinatorDouble,
  type SecAggScript,
  createSecAggScript,
  startCoordinatorDouble,
} from './malicious-coordinator-double.ts';

const REAL = 'alpha';
const COHORT = ['alpha', 'beta', 'delta', 'gamma'];
const RUN = 'twice';
const spec = parseModelSpec({ kind: 'logistic', inputDim: 30 });
const layout = describeLayout(spec);
const WEIGHTS: Record<string, number> = { beta: 100, delta: 200, gamma: 300 };

const SEGMENTS = (() => {
  const out: { name: string; offsetWords: number; lengthWords: number }[] = [];
  let offset = 0;
  for (const t of layout) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    out.push({ name: t.name, offsetWords: offset, lengthWords: n });
    offset += n;
  }
  out.push({ name: WEIGHT_SEGMENT, offsetWords: offset, lengthWords: 1 });
  return out;
})();
const WORDS = SEGMENTS.at(-1)!.offsetWords + 1;

function simInput(id: string): Uint32Array {
  const k = COHORT.indexOf(id) + 1;
  const v = Uint32Array.from({ length: WORDS }, (_, i) => (((k * 41 + i * 13) % 97) - 48) >>> 0);
  v[WORDS - 1] = WEIGHTS[id]!;
  return v;
}

describe('a coordinator that unmasks one round twice', () => {
  let dir = '';
  let double: CoordinatorDouble;
  let participant: ChildHandle | undefined;
  let script: SecAggScript;
  let startParticipant: () => Promise<void>;

  before(async () => {
    const setup = await createTestWorkspace(COHORT, 'entente-double-unmask-');
    dir = setup.dir;
    double = await startCoordinatorDouble({ workspace: setup.ws });
    const model = initializeWeights(spec, createSeededRng('twice/model'));
    const modelRef = double.putBlob(encodeSafetensors(model));
    const schema = parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
    const all = loadTable(readFileSync(join(DATASET_DIR, 'breast-cancer.csv'), 'utf8'), schema);
    const std = deriveStandardization(computeFeatureStats(all));
    script = createSecAggScript({
      double,
      workspace: setup.ws,
      real: REAL,
      run: RUN,
      model: modelRef,
      modelLogIndex: double.logModel(RUN, modelRef.sha256),
      modelSpec: { kind: 'logistic', inputDim: 30 },
      train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd', proximalMu: 0 },
      standardization: { mean: [...std.mean], std: [...std.std] },
      dataSchemaDigest: computeSchemaDigest(schema),
      quantization: { ringBits: 32, clipRange: 1, scale: 2 ** 16 },
      maxWeight: 1000,
      segments: SEGMENTS,
      simInput,
      resultTimeoutMs: 30_000,
      describeFailure: () => participant?.stderr().slice(-3000) ?? '',
    });
    startParticipant = async () => {
      const before = double.registrations.length;
      participant = spawnEntente(REAL, [
        'participant',
        'start',
        '--workspace',
        dir,
        '--institution',
        REAL,
        '--coordinator',
        double.url,
        '--data',
        setup.dataPath(REAL),
        '--schema',
        SCHEMA_PATH,
      ]);
      await waitFor(
        `${REAL} to register`,
        async () => (double.registrations.slice(before).includes(REAL) ? true : undefined),
        60_000,
      );
    };
    await startParticipant();
  });

  after(async () => {
    if (participant) await stopChild(participant);
    await double?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const journalPath = (): string => join(dir, 'institutions', REAL, 'journal.jsonl');
  const journal = (): { event: string; taskId?: string; code?: string; message?: string; round?: number }[] =>
    readFileSync(journalPath(), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  const postedBy = (round: number, attempt: number): TaskResult[] =>
    double.results
      .filter((x) => x.participant === REAL && x.taskId.startsWith(`${RUN}.r${round}.a${attempt}.`))
      .map((x) => x.result);

  function assertRefusedAsUnmasked(result: TaskResult, taskId: string): void {
    assert.equal(result.kind, 'refusal', JSON.stringify(result).slice(0, 300));
    const refusal = result as Extract<TaskResult, { kind: 'refusal' }>;
    assert.equal(refusal.code, 'PROTOCOL_VIOLATION');
    assert.match(refusal.message, /round 1 of run twice was already unmasked in attempt 0/);
    const line = journal().find((e) => e.taskId === taskId);
    assert.ok(line, `journal has a line for ${taskId}`);
    assert.equal(line.event, 'task-refused');
    assert.equal(line.code, 'PROTOCOL_VIOLATION');
  }

  it('a second unmasking of the same round is refused', { timeout: 180_000 }, async () => {
    // Attempt 0 of round 1: all four, complete; the double unmasks S₀ = alpha + beta + delta + gamma.
    const first = await script.openAttempt({ round: 1, attempt: 0, cohort: COHORT });
    assert.equal(first.answer.kind, 'secagg-train', JSON.stringify(first.answer).slice(0, 400));
    const s0 = await script.completeAttempt(first);
    assert.deepEqual([...s0.survivors].sort(), COHORT);
    assert.ok(
      s0.sum[WORDS - 1]! > WEIGHTS.beta! + WEIGHTS.delta! + WEIGHTS.gamma!,
      'the weight channel has alpha',
    );
    const record = readFileSync(join(dir, 'institutions', REAL, 'unmasked-rounds.jsonl'), 'utf8');
    assert.deepEqual(
      record
        .trim()
        .split('\n')
        .map((l) => {
          const { run, round, attempt } = JSON.parse(l) as { run: string; round: number; attempt: number };
          return { run, round, attempt };
        }),
      [{ run: RUN, round: 1, attempt: 0 }],
      'recorded on disk before the shares left',
    );

    // Attempt 1 of the same round without gamma: S₀ − S₁ would be gamma's update.
    const second = await script.openAttempt({ round: 1, attempt: 1, cohort: [REAL, 'beta', 'delta'] });
    assertRefusedAsUnmasked(second.answer, second.trainTask.taskId);
    // A coordinator that skips ahead: ShareKeys, then Unmasking of attempt 1 (signed by the others).
    const shareKeys = script.shareKeysTask(second, second.adverts);
    assertRefusedAsUnmasked(await script.ask(shareKeys), shareKeys.taskId);
    const unmask = script.unmaskingTask(second, {
      survivors: [REAL, 'beta', 'delta'],
      dropped: [],
      signatures: [],
    });
    assertRefusedAsUnmasked(await script.ask(unmask), unmask.taskId);
    assert.deepEqual(
      postedBy(1, 1).map((r) => r.kind),
      ['refusal', 'refusal', 'refusal'],
      'nothing of attempt 1 was released: no advert, no shares, no unmasking shares',
    );
    assert.equal(postedBy(1, 0).filter((r) => r.kind === 'secagg-unmasking').length, 1);

    // The record survives a restart: attempt 2 of round 1 is refused by the new process as well.
    await stopChild(participant!);
    await startParticipant();
    const third = await script.openAttempt({ round: 1, attempt: 2, cohort: [REAL, 'beta', 'gamma'] });
    assertRefusedAsUnmasked(third.answer, third.trainTask.taskId);

    // The honest counterpart: round 2 attempt 0 aborts before Unmasking (the double gives up after the
    // masked inputs); attempt 1, with another cohort, is served and completes.
    const aborted = await script.openAttempt({ round: 2, attempt: 0, cohort: COHORT });
    assert.equal(aborted.answer.kind, 'secagg-train');
    await script.runToMaskedInput(aborted);
    const retry = await script.openAttempt({ round: 2, attempt: 1, cohort: [REAL, 'beta', 'delta'] });
    assert.equal(retry.answer.kind, 'secagg-train', JSON.stringify(retry.answer).slice(0, 300));
    const s1 = await script.completeAttempt(retry);
    assert.deepEqual([...s1.survivors].sort(), [REAL, 'beta', 'delta']);
    // It sent the update it built for attempt 0 again rather than training anew.
    assert.ok(
      journal().some((e) => e.event === 'update-reused' && e.round === 2),
      'the retried attempt reused the update of attempt 0',
    );
    // No refusal in round 2.
    assert.ok(!double.results.some((x) => x.result.round === 2 && x.result.kind === 'refusal'));
  });
});
