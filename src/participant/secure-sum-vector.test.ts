/**
 * What a site adds to a secure sum, and what it refuses: a declaration it does not derive itself, a
 * plan task that is not what the approved plan pre-registered, rows beyond the declared bound.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import type { LabeledData } from '../data/index.ts';
import { type EvaluationSpec, parseEvaluationSpec } from '../evaluation/index.ts';
import { type EvaluationPlan, parseEvaluationPlan } from '../governance/index.ts';
import { builtinTrainer, parseModelSpec } from '../models/index.ts';
import {
  type SecAggSumTask,
  buildSecureSumWire,
  declareEvaluationSum,
  declareStatisticsSum,
  decodeSecureSum,
  encodeSecureSum,
} from '../protocol/index.ts';
import { createEvaluationLayout } from '../evaluation/index.ts';
import { addRingVectors } from '../secagg/index.ts';
import {
  checkPlanTask,
  computeEvaluationValues,
  computeStatisticsValues,
  toEvaluationRows,
} from './secure-sum-vector.ts';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof EntenteError ? `${err.code} ${err.field}` : String(err);
  }
  return undefined;
};

const COHORT = ['a', 'b', 'c'];
const spec: EvaluationSpec = parseEvaluationSpec({
  numClasses: 2,
  scoreBins: 100,
  sensitive: { attribute: 'group', values: ['A', 'B'] },
  slices: ['big'],
});
const model = parseModelSpec({ kind: 'logistic', inputDim: 3 });
const modelRef = { sha256: 'ab'.repeat(32), bytes: 10, chunks: [{ sha256: 'ab'.repeat(32), bytes: 10 }] };

function rows(n: number, seed: string): LabeledData {
  const rng = createSeededRng(seed);
  const x = Float32Array.from({ length: n * 3 }, () => rng.nextFloat64() * 4 - 2);
  const y = Int32Array.from({ length: n }, (_, i) => (x[i * 3]! > 0 ? 1 : 0));
  return {
    x,
    y,
    count: n,
    dim: 3,
    featureNames: ['f0', 'f1', 'f2'],
    groups: Int32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 1 : 0)),
    slices: [Uint8Array.from({ length: n }, (_, i) => (x[i * 3 + 1]! > 1 ? 1 : 0))],
  };
}

function evaluationTask(over: Partial<SecAggSumTask> = {}): SecAggSumTask {
  const declaration = declareEvaluationSum({
    layout: createEvaluationLayout(spec),
    maxRows: 1000,
    cohortSize: 3,
  });
  return {
    taskId: 't',
    runId: 'r',
    round: 1,
    attempt: 0,
    issuedAt: 0,
    kind: 'secagg-sum',
    phase: 'evaluate',
    secureSum: { ...declaration, segments: [...declaration.segments] },
    model: modelRef,
    modelSpec: { kind: 'logistic', inputDim: 3 },
    evaluation: spec,
    secagg: buildSecureSumWire({ consortium: 'x', attempt: 0, cohort: COHORT, threshold: 3, declaration }),
    ...over,
  };
}

const annotations = { sensitive: { attribute: 'group', values: ['A', 'B'] }, slices: ['big'] };
const weights = builtinTrainer.initializeWeights(model, createSeededRng('w'));

describe('a site’s secure-sum vector', () => {
  it('evaluation sums of three sites add up (through the ring) to the sums of their union', () => {
    const parts = [rows(50, 's1'), rows(70, 's2'), rows(30, 's3')];
    const task = evaluationTask();
    const ring = new BigUint64Array(task.secagg.segments.reduce((n, s) => n + s.lengthWords, 0));
    const plain: Float64Array[] = [];
    for (const p of parts) {
      const v = computeEvaluationValues(task, model, weights, toEvaluationRows(p, annotations), undefined);
      plain.push(v);
      addRingVectors(ring, encodeSecureSum(task.secureSum, v));
    }
    const decoded = decodeSecureSum(task.secureSum, ring, 3);
    const exact = plain.reduce((a, b) => a.map((x, i) => x + b[i]!));
    for (let i = 0; i < exact.length; i++)
      assert.ok(Math.abs(decoded[i]! - exact[i]!) <= 1e-8, `coordinate ${i}`);
  });

  it('refuses a declaration it does not derive itself (a widened per-row bound, a bound another clip implies)', () => {
    const task = evaluationTask();
    const segments = task.secureSum.segments.map((x, i) =>
      i === 1 ? { ...x, maxPerRow: x.maxPerRow * 2 } : x,
    );
    const widened = { ...task, secureSum: { ...task.secureSum, segments } };
    assert.equal(
      codeOf(() =>
        computeEvaluationValues(
          widened,
          model,
          weights,
          toEvaluationRows(rows(10, 'x'), annotations),
          undefined,
        ),
      ),
      'PROTOCOL_VIOLATION secureSum',
    );
    // A declaration whose squares' bound does not follow from the clip the task names.
    const stats = declareStatisticsSum({ features: 3, maxRows: 1000, maxAbsFeature: 100, cohortSize: 3 });
    const statsTask = evaluationTask({
      phase: 'statistics',
      secureSum: { ...stats, segments: [...stats.segments] },
      maxAbsFeature: 10,
    });
    assert.equal(
      codeOf(() => computeStatisticsValues(statsTask, rows(10, 'y'))),
      'PROTOCOL_VIOLATION secureSum',
    );
  });

  it('clips feature values to the declared bound in the statistics sum and counts the clipped cells', () => {
    const stats = declareStatisticsSum({ features: 3, maxRows: 1000, maxAbsFeature: 1, cohortSize: 3 });
    const task = evaluationTask({
      phase: 'statistics',
      secureSum: { ...stats, segments: [...stats.segments] },
      maxAbsFeature: 1,
    });
    const data = rows(40, 'z');
    const { values, clipped } = computeStatisticsValues(task, data);
    assert.ok(clipped > 0);
    assert.equal(values[0], 40);
    for (let j = 0; j < 3; j++) assert.ok(Math.abs(values[1 + j]!) <= 40 && values[4 + j]! <= 40);
    encodeSecureSum(task.secureSum, values);
  });

  it('refuses more rows than declared, and a sensitive attribute or slice its schema does not declare', () => {
    const task = evaluationTask();
    const few = { ...task, secureSum: { ...task.secureSum } };
    assert.equal(
      codeOf(() =>
        computeEvaluationValues(
          few,
          model,
          weights,
          toEvaluationRows(rows(1001, 'big'), annotations),
          undefined,
        ),
      ),
      'INVALID_DATA secureSum.maxRows',
    );
    assert.equal(
      codeOf(() =>
        computeEvaluationValues(
          task,
          model,
          weights,
          toEvaluationRows(rows(10, 'n'), { slices: ['big'] }),
          undefined,
        ),
      ),
      'INVALID_DATA evaluation.sensitive',
    );
    assert.equal(
      codeOf(() =>
        computeEvaluationValues(
          task,
          model,
          weights,
          toEvaluationRows(rows(10, 'n'), { sensitive: annotations.sensitive }),
          undefined,
        ),
      ),
      'INVALID_DATA evaluation.slices',
    );
  });
});

describe('an evaluation plan’s task at a site', () => {
  const plan: EvaluationPlan = parseEvaluationPlan({
    consortium: 'x',
    title: 't',
    models: [
      { name: 'candidate', sha256: modelRef.sha256 },
      { name: 'baseline', sha256: 'cd'.repeat(32) },
    ],
    metrics: ['rocAuc'],
    evaluation: spec,
    hypothesis: 'h',
    decisionRule: 'candidate.rocAuc >= baseline.rocAuc',
    dataSchemaDigest: 'ef'.repeat(32),
    createdAt: '2026-12-08T00:00:00Z',
  });
  const ok = evaluationTask({
    runId: 'eval-0000000000000000',
    round: 1,
    plan: { digest: '00'.repeat(32), label: 'model-A' },
  });

  it('passes when it is exactly what the approved plan pre-registered', () => {
    assert.equal(
      codeOf(() => checkPlanTask(ok, plan, 'ef'.repeat(32))),
      undefined,
    );
  });

  it('refuses another model, another measurement, an unblinded label, another schema, a statistics sum', () => {
    assert.equal(
      codeOf(() =>
        checkPlanTask({ ...ok, model: { ...modelRef, sha256: '12'.repeat(32) } }, plan, 'ef'.repeat(32)),
      ),
      'PROTOCOL_VIOLATION model',
    );
    assert.equal(
      codeOf(() => checkPlanTask({ ...ok, evaluation: { ...spec, scoreBins: 10 } }, plan, 'ef'.repeat(32))),
      'PROTOCOL_VIOLATION evaluation',
    );
    assert.equal(
      codeOf(() =>
        checkPlanTask(
          { ...ok, plan: { digest: '00'.repeat(32), label: 'candidate' } },
          plan,
          'ef'.repeat(32),
        ),
      ),
      'PROTOCOL_VIOLATION plan.label',
    );
    assert.equal(
      codeOf(() => checkPlanTask(ok, plan, 'aa'.repeat(32))),
      'PROTOCOL_VIOLATION plan.dataSchemaDigest',
    );
    // The same label under another run id or round (a second sum to difference), or a label past the plan.
    assert.equal(
      codeOf(() => checkPlanTask({ ...ok, runId: 'eval-other' }, plan, 'ef'.repeat(32))),
      'PROTOCOL_VIOLATION runId',
    );
    assert.equal(
      codeOf(() => checkPlanTask({ ...ok, round: 2 }, plan, 'ef'.repeat(32))),
      'PROTOCOL_VIOLATION runId',
    );
    assert.equal(
      codeOf(() =>
        checkPlanTask(
          { ...ok, round: 3, plan: { digest: '00'.repeat(32), label: 'model-C' } },
          plan,
          'ef'.repeat(32),
        ),
      ),
      'PROTOCOL_VIOLATION plan.label',
    );
    assert.equal(
      codeOf(() => checkPlanTask({ ...ok, phase: 'statistics' }, plan, 'ef'.repeat(32))),
      'PROTOCOL_VIOLATION phase',
    );
  });
});
