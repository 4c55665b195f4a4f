/**
 * A site's rollout measurement (rollout-sums.ts): rows scored by two tiny logistic models give the
 * agreement counts and loss sums a direct computation gives; each model's own standardization is used;
 * a task the verified log does not show running at this site, or a declaration it does not derive, is
 * refused naming the field.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { LabeledData } from '../data/index.ts';
import { createPairedOutcomeLayout } from '../evaluation/paired-outcomes.ts';
import { type RolloutView, parseRolloutPlan } from '../governance/index.ts';
import { parseModelSpec } from '../models/index.ts';
import {
  type SecAggSumTask,
  buildSecureSumWire,
  declarePairedOutcomeSum,
  rolloutJobId,
} from '../protocol/index.ts';
import {
  type ScoringModel,
  checkRolloutTask,
  computeRolloutValues,
  pairedAccuracies,
  scorePairedRows,
} from './rollout-sums.ts';

const CANDIDATE = 'c'.repeat(64);
const PRODUCTION = 'b'.repeat(64);
const DIGEST = 'd'.repeat(64);
const COHORT = ['a', 'b', 'c'];
const spec = parseModelSpec({ kind: 'logistic', inputDim: 2 });

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof EntenteError ? `${err.code} ${err.field}` : String(err);
  }
  return undefined;
};

/** A logistic model p = σ(w·x + b). */
function logistic(w: [number, number], b: number, standardization?: ScoringModel['standardization']) {
  const weights: Tensor[] = [
    { name: 'dense0.weight', shape: [1, 2], data: Float32Array.from(w) },
    { name: 'dense0.bias', shape: [1], data: Float32Array.from([b]) },
  ];
  return { spec, weights, standardization };
}

const rows: LabeledData = {
  x: Float32Array.from([2, -1, -1, 2, -2, -2, 1, 1, 0.5, 3]),
  y: Int32Array.from([1, 1, 0, 0, 1]),
  count: 5,
  dim: 2,
  featureNames: ['f0', 'f1'],
};

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/** The direct computation: per row, correct flags and clipped log losses of the true class. */
function direct(w: [number, number], b: number, maxRowLoss: number) {
  const out: { correct: boolean; loss: number }[] = [];
  for (let i = 0; i < rows.count; i++) {
    const p1 = sigmoid(w[0] * rows.x[2 * i]! + w[1] * rows.x[2 * i + 1]! + b);
    const y = rows.y[i]!;
    const pt = y === 1 ? p1 : 1 - p1;
    out.push({ correct: (p1 > 0.5 ? 1 : 0) === y, loss: Math.min(maxRowLoss, -Math.log(pt)) });
  }
  return out;
}

function rolloutTask(over: Partial<SecAggSumTask> = {}, maxRowLoss = 5): SecAggSumTask {
  const declaration = declarePairedOutcomeSum({
    layout: createPairedOutcomeLayout({ maxRowLoss }),
    maxRows: 1000,
    cohortSize: 3,
  });
  const ref = (sha256: string) => ({ sha256, bytes: 10, chunks: [{ sha256, bytes: 10 }] });
  return {
    taskId: 't',
    runId: rolloutJobId(DIGEST),
    round: 1,
    attempt: 0,
    issuedAt: 0,
    kind: 'secagg-sum',
    phase: 'rollout',
    secureSum: { ...declaration, segments: [...declaration.segments] },
    model: ref(CANDIDATE),
    modelSpec: { kind: 'logistic', inputDim: 2 },
    rollout: { digest: DIGEST, stage: 'canary' },
    production: { model: ref(PRODUCTION), modelSpec: { kind: 'logistic', inputDim: 2 } },
    paired: { maxRowLoss },
    secagg: buildSecureSumWire({ consortium: 'x', attempt: 0, cohort: COHORT, threshold: 3, declaration }),
    ...over,
  };
}

const plan = parseRolloutPlan({
  consortium: 'x',
  title: 'roll out',
  candidate: CANDIDATE,
  production: PRODUCTION,
  stages: [
    { name: 'canary', sites: { draw: 2 }, minRows: 10, gate: { rule: 'candidate.accuracy >= 0.5' } },
    { name: 'full', sites: ['a', 'b', 'c'], minRows: 10, gate: { rule: 'candidate.accuracy >= 0.5' } },
  ],
  createdAt: '2026-01-31T12:00:00Z',
});

function view(over: Partial<RolloutView> = {}): RolloutView {
  return {
    plan,
    stage: 'canary',
    sites: ['a', 'b'],
    gate: null,
    history: [{ stage: 'canary', sites: ['a', 'b'] }],
    status: 'running',
    ...over,
  };
}

describe('a site’s rollout measurement', () => {
  it('agreement counts and loss sums match a direct computation on hand-made rows', () => {
    for (const maxRowLoss of [5, 0.5]) {
      const cw: [number, number] = [1, 0];
      const pw: [number, number] = [0, 1];
      const paired = scorePairedRows(logistic(cw, 0), logistic(pw, 0.1), rows, maxRowLoss);
      const values = computeRolloutValues(rolloutTask({}, maxRowLoss), paired);
      const c = direct(cw, 0, maxRowLoss);
      const p = direct(pw, 0.1, maxRowLoss);
      const cells = [0, 0, 0, 0];
      let pos = 0;
      let neg = 0;
      let sq = 0;
      for (let i = 0; i < rows.count; i++) {
        cells[c[i]!.correct ? (p[i]!.correct ? 0 : 1) : p[i]!.correct ? 2 : 3]! += 1;
        const d = c[i]!.loss - p[i]!.loss;
        if (d > 0) pos += d;
        else neg -= d;
        sq += d * d;
      }
      // Rows: both right (2, 4), candidate right only (0), production right only (1), both wrong (3).
      assert.deepEqual(cells, [2, 1, 1, 1]);
      assert.deepEqual([...values.subarray(0, 5)], [5, ...cells]);
      for (const [i, want] of [
        [5, pos],
        [6, neg],
        [7, sq],
      ] as const)
        assert.ok(Math.abs(values[i]! - want) < 1e-5, `coordinate ${i}: ${values[i]} vs ${want}`);
      if (maxRowLoss === 0.5)
        assert.ok(paired.every((r) => r.candidateLoss <= 0.5 && r.productionLoss <= 0.5));
      assert.deepEqual(pairedAccuracies(paired), { candidateAccuracy: 3 / 5, productionAccuracy: 3 / 5 });
    }
  });

  it('scores each model with its own standardization', () => {
    // Shifting the candidate's first feature by its mean flips its answer on row 4 (x0 = 0.5 → −0.5).
    const plain = scorePairedRows(logistic([1, 0], 0), logistic([0, 1], 0), rows, 5);
    const shifted = scorePairedRows(
      logistic([1, 0], 0, { mean: Float64Array.from([1, 0]), std: Float64Array.from([1, 1]) }),
      logistic([0, 1], 0),
      rows,
      5,
    );
    assert.equal(plain[4]!.candidateCorrect, true);
    assert.equal(shifted[4]!.candidateCorrect, false);
    assert.equal(shifted[4]!.productionCorrect, plain[4]!.productionCorrect);
  });

  it('refuses a declaration with a widened bound, and more rows than declared', () => {
    const task = rolloutTask();
    const segments = task.secureSum.segments.map((s) =>
      s.name === 'paired.lossDifferenceSquared' ? { ...s, maxPerRow: s.maxPerRow * 4 } : s,
    );
    const widened = { ...task, secureSum: { ...task.secureSum, segments } };
    const paired = scorePairedRows(logistic([1, 0], 0), logistic([0, 1], 0), rows, 5);
    assert.equal(
      codeOf(() => computeRolloutValues(widened, paired)),
      'PROTOCOL_VIOLATION secureSum',
    );
    // A loss clip the declaration does not follow from.
    assert.equal(
      codeOf(() => computeRolloutValues({ ...task, paired: { maxRowLoss: 50 } }, paired)),
      'PROTOCOL_VIOLATION secureSum',
    );
    const few = rolloutTask();
    const small = { ...few, secureSum: { ...few.secureSum, maxRows: 2 } };
    const wire = declarePairedOutcomeSum({
      layout: createPairedOutcomeLayout({ maxRowLoss: 5 }),
      maxRows: 2,
      cohortSize: 3,
    });
    assert.equal(
      codeOf(() =>
        computeRolloutValues({ ...small, secureSum: { ...wire, segments: [...wire.segments] } }, paired),
      ),
      'INVALID_DATA secureSum.maxRows',
    );
  });

  it('accepts only a measurement of the running stage at one of its sites, with the plan’s models', () => {
    const task = rolloutTask();
    assert.equal(
      codeOf(() => checkRolloutTask(task, view(), 'a')),
      undefined,
    );
    assert.equal(
      codeOf(() => checkRolloutTask(task, view(), 'c')),
      'PROTOCOL_VIOLATION rollout.stage',
    );
    assert.equal(
      codeOf(() => checkRolloutTask(task, view({ stage: 'full' }), 'a')),
      'PROTOCOL_VIOLATION rollout.stage',
    );
    for (const status of ['approved', 'completed', 'rolled back'] as const)
      assert.equal(
        codeOf(() => checkRolloutTask(task, view({ status }), 'a')),
        'PROTOCOL_VIOLATION rollout.digest',
      );
    const other = { ...task.model!, sha256: 'e'.repeat(64) };
    assert.equal(
      codeOf(() => checkRolloutTask({ ...task, model: other }, view(), 'a')),
      'PROTOCOL_VIOLATION model',
    );
    assert.equal(
      codeOf(() =>
        checkRolloutTask({ ...task, production: { ...task.production!, model: other } }, view(), 'a'),
      ),
      'PROTOCOL_VIOLATION production.model',
    );
    assert.equal(
      codeOf(() => checkRolloutTask({ ...task, runId: 'r' }, view(), 'a')),
      'PROTOCOL_VIOLATION runId',
    );
  });
});
