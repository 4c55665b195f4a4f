/**
 * The metric engine against figures computed independently with scikit-learn 1.2 and numpy
 * (test/vectors/evaluation/generate.py): UCI breast cancer (binary, logistic regression), UCI wine
 * (3 classes, multinomial logistic regression) and two synthetic sets of edge cases (scores on bin
 * edges, ties, a class never predicted, a class without rows, a group without positives or rows).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { accumulateEvaluation } from './accumulate-evaluation.ts';
import { createEvaluationLayout } from './evaluation-layout.ts';
import type { ClassificationMetrics, EvaluationMetrics, GroupMetrics } from './evaluation-metrics.ts';
import { parseEvaluationSpec } from './evaluation-spec.ts';
import { computeAucBinningBound, finalizeEvaluation } from './finalize-evaluation.ts';

type Nullable = number | null;

interface ReferenceBlock {
  rows: number;
  accuracy: Nullable;
  logLoss: Nullable;
  logLossNoRenormalise: number;
  brier: number;
  confusion: number[][];
  perClass: { precision: Nullable; recall: Nullable; f1: Nullable; support: number }[];
  macro: { precision: number; recall: number; f1: number };
  micro: { precision: number; recall: number; f1: number };
  rocAucExact: Nullable;
  averagePrecisionExact: Nullable;
  binned: Record<
    string,
    {
      rocAuc: Nullable;
      averagePrecision: Nullable;
      bound: Nullable;
      rocCurve?: { fpr: number[]; tpr: number[] } | null;
    }
  >;
  calibration: Record<
    string,
    {
      bins: number;
      counts: number[];
      positives: number[];
      sklearnProbTrue: number[];
      sklearnProbPred: number[];
      ece: Nullable;
      mce: Nullable;
    }
  >;
}

interface ReferenceGroup {
  rows: number;
  accuracy: Nullable;
  selectionRate?: Nullable;
  truePositiveRate?: Nullable;
  falsePositiveRate?: Nullable;
}

interface Reference {
  name: string;
  spec: { numClasses: number; sensitive: { attribute: string; values: string[] }; slices: string[] };
  scoreBins: number[];
  calibrationBins: number[];
  rows: { probabilities: number[][]; labels: number[]; groups: number[]; slice: number[] };
  overall: ReferenceBlock;
  fairness: {
    groups: Record<string, ReferenceGroup>;
    demographicParityDifference?: Nullable;
    demographicParityRatio?: Nullable;
    equalOpportunityDifference?: Nullable;
    equalizedOddsDifference?: Nullable;
  };
  slices: Record<string, ReferenceBlock>;
}

const load = (name: string): Reference =>
  JSON.parse(
    readFileSync(new URL(`../../test/vectors/evaluation/${name}`, import.meta.url), 'utf8'),
  ) as Reference;

const references = [
  load('breast-cancer-reference.json'),
  load('wine-reference.json'),
  load('synthetic-binary-reference.json'),
  load('synthetic-multiclass-reference.json'),
];

/** |actual − expected| ≤ tol · max(1, |expected|), or both null. */
function close(
  actual: Nullable | undefined,
  expected: Nullable | undefined,
  tol: number,
  what: string,
): void {
  if (expected === null || expected === undefined) {
    assert.equal(actual, null, `${what}: expected null, got ${actual}`);
    return;
  }
  assert.equal(typeof actual, 'number', `${what}: expected ${expected}, got ${actual}`);
  const err = Math.abs((actual as number) - expected);
  assert.ok(err <= tol * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected} (error ${err})`);
}

function relClose(actual: Nullable, expected: Nullable, rel: number, what: string): void {
  if (expected === null) {
    assert.equal(actual, null, what);
    return;
  }
  assert.ok(actual !== null, `${what}: null`);
  const err = Math.abs(actual - expected);
  assert.ok(
    err <= rel * Math.abs(expected),
    `${what}: ${actual} vs ${expected} (relative ${err / expected})`,
  );
}

function evaluate(ref: Reference, scoreBins: number, calibrationBins: number) {
  const spec = parseEvaluationSpec({ ...ref.spec, scoreBins, calibrationBins });
  const layout = createEvaluationLayout(spec);
  const sums = accumulateEvaluation(layout, {
    count: ref.rows.labels.length,
    probabilities: Float64Array.from(ref.rows.probabilities.flat()),
    labels: ref.rows.labels,
    groups: Int32Array.from(ref.rows.groups),
    slices: [Uint8Array.from(ref.rows.slice)],
  });
  return { layout, sums, metrics: finalizeEvaluation(layout, sums) };
}

function checkBlock(
  m: ClassificationMetrics,
  r: ReferenceBlock,
  scoreBins: number,
  calibrationBins: number,
  what: string,
): void {
  assert.equal(m.rows, r.rows, `${what}.rows`);
  assert.deepEqual(m.confusion, r.confusion, `${what}.confusion`);
  close(m.accuracy, r.accuracy, 1e-15, `${what}.accuracy`);
  relClose(m.logLoss, r.logLoss, 1e-9, `${what}.logLoss`);
  relClose(m.logLoss, r.logLossNoRenormalise, 1e-12, `${what}.logLoss (no renormalisation)`);
  relClose(m.brier, r.brier, 1e-9, `${what}.brier`);
  assert.equal(m.perClass.length, r.perClass.length);
  m.perClass.forEach((c, i) => {
    const e = r.perClass[i]!;
    assert.equal(c.support, e.support, `${what}.perClass[${i}].support`);
    close(c.precision, e.precision, 1e-15, `${what}.perClass[${i}].precision`);
    close(c.recall, e.recall, 1e-15, `${what}.perClass[${i}].recall`);
    close(c.f1, e.f1, 1e-15, `${what}.perClass[${i}].f1`);
  });
  for (const key of ['precision', 'recall', 'f1'] as const) {
    close(m.macro[key], r.macro[key], 1e-15, `${what}.macro.${key}`);
    close(m.micro[key], r.micro[key], 1e-15, `${what}.micro.${key}`);
  }

  const binned = r.binned[String(scoreBins)]!;
  close(m.rocAuc, binned.rocAuc, 1e-12, `${what}.rocAuc (sklearn on bin indices)`);
  close(
    m.averagePrecision,
    binned.averagePrecision,
    1e-12,
    `${what}.averagePrecision (sklearn on bin indices)`,
  );
  close(m.rocAucBinningBound, binned.bound, 1e-12, `${what}.rocAucBinningBound`);
  if (r.rocAucExact !== null) {
    assert.ok(m.rocAuc !== null && m.rocAucBinningBound != null);
    const err = Math.abs(m.rocAuc - r.rocAucExact);
    assert.ok(err <= m.rocAucBinningBound + 1e-12, `${what}: |binned − exact| = ${err} > bound`);
    if (scoreBins === 1000) assert.ok(err <= 1e-3, `${what}: exact AUC off by ${err} with 1000 bins`);
  }
  if (binned.rocCurve === undefined || binned.rocCurve === null) assert.equal(m.rocCurve, null);
  else {
    assert.ok(m.rocCurve !== null);
    assert.equal(m.rocCurve.fpr.length, binned.rocCurve.fpr.length, `${what}.rocCurve length`);
    for (const [i, x] of m.rocCurve.fpr.entries())
      close(x, binned.rocCurve.fpr[i]!, 1e-15, `${what}.fpr[${i}]`);
    for (const [i, x] of m.rocCurve.tpr.entries())
      close(x, binned.rocCurve.tpr[i]!, 1e-15, `${what}.tpr[${i}]`);
    assert.deepEqual([m.rocCurve.fpr.at(-1), m.rocCurve.tpr.at(-1)], [1, 1]);
  }

  const cal = r.calibration[String(calibrationBins)]!;
  assert.equal(m.reliability.length, calibrationBins);
  assert.deepEqual(
    m.reliability.map((b) => b.count),
    cal.counts,
    `${what}.reliability counts`,
  );
  const nonEmpty = m.reliability.filter((b) => b.count > 0);
  assert.equal(nonEmpty.length, cal.sklearnProbTrue.length);
  nonEmpty.forEach((b, i) => {
    close(b.fractionPositive, cal.sklearnProbTrue[i]!, 1e-12, `${what}.reliability fractionPositive`);
    close(b.meanPredicted, cal.sklearnProbPred[i]!, 1e-12, `${what}.reliability meanPredicted`);
  });
  m.reliability.forEach((b, i) => {
    if (b.count === 0) assert.deepEqual([b.meanPredicted, b.fractionPositive], [null, null]);
    else assert.equal(Math.round(b.fractionPositive! * b.count), cal.positives[i]);
  });
  close(m.ece, cal.ece, 1e-12, `${what}.ece`);
  close(m.mce, cal.mce, 1e-12, `${what}.mce`);
}

function checkFairness(m: EvaluationMetrics, ref: Reference): void {
  assert.ok(m.fairness !== null);
  assert.equal(m.fairness.attribute, ref.spec.sensitive.attribute);
  assert.deepEqual(Object.keys(m.fairness.groups), ref.spec.sensitive.values);
  for (const [name, e] of Object.entries(ref.fairness.groups)) {
    const g: GroupMetrics = m.fairness.groups[name]!;
    assert.equal(g.rows, e.rows, `fairness.${name}.rows`);
    close(g.accuracy, e.accuracy, 1e-15, `fairness.${name}.accuracy`);
    close(g.selectionRate, e.selectionRate ?? null, 1e-15, `fairness.${name}.selectionRate`);
    close(g.truePositiveRate, e.truePositiveRate ?? null, 1e-15, `fairness.${name}.truePositiveRate`);
    close(g.falsePositiveRate, e.falsePositiveRate ?? null, 1e-15, `fairness.${name}.falsePositiveRate`);
  }
  const f = m.fairness;
  close(
    f.demographicParityDifference,
    ref.fairness.demographicParityDifference ?? null,
    1e-15,
    'dp difference',
  );
  close(f.demographicParityRatio, ref.fairness.demographicParityRatio ?? null, 1e-15, 'dp ratio');
  close(
    f.equalOpportunityDifference,
    ref.fairness.equalOpportunityDifference ?? null,
    1e-15,
    'eq opportunity',
  );
  close(f.equalizedOddsDifference, ref.fairness.equalizedOddsDifference ?? null, 1e-15, 'eq odds');
}

for (const ref of references) {
  describe(`evaluation reference: ${ref.name}`, () => {
    for (const scoreBins of ref.scoreBins) {
      for (const calibrationBins of ref.calibrationBins) {
        it(`matches scikit-learn with ${scoreBins} score bins, ${calibrationBins} calibration bins`, () => {
          const { metrics, layout, sums } = evaluate(ref, scoreBins, calibrationBins);
          checkBlock(metrics.overall, ref.overall, scoreBins, calibrationBins, 'overall');
          const sliceName = ref.spec.slices[0]!;
          checkBlock(
            metrics.slices[sliceName]!,
            ref.slices[sliceName]!,
            scoreBins,
            calibrationBins,
            sliceName,
          );
          checkFairness(metrics, ref);
          assert.equal(computeAucBinningBound(layout, sums), metrics.overall.rocAucBinningBound);
          assert.equal(
            computeAucBinningBound(layout, sums, { slice: sliceName }),
            metrics.slices[sliceName]!.rocAucBinningBound,
          );
        });
      }
    }
  });
}

describe('evaluation reference: sanity of the references themselves', () => {
  it('covers binary and multi-class, null cases and bins that change the AUC', () => {
    const [cancer, wine, synBinary, synMulti] = references;
    assert.equal(cancer!.spec.numClasses, 2);
    assert.equal(wine!.spec.numClasses, 3);
    // coarse bins really do tie pairs (the bound is exercised, not vacuous)
    assert.ok(cancer!.overall.binned['10']!.bound! > 0);
    assert.notEqual(cancer!.overall.binned['10']!.rocAuc, cancer!.overall.rocAucExact);
    assert.ok(wine!.overall.binned['100']!.bound! > 0);
    assert.equal(synMulti!.overall.rocAucExact, null);
    assert.ok(synMulti!.overall.perClass.some((c) => c.precision === null));
    assert.ok(synMulti!.overall.perClass.some((c) => c.recall === null));
    assert.ok(
      Object.values(synBinary!.fairness.groups).some((g) => g.truePositiveRate === null && g.rows > 0),
    );
  });

  it('a Float32 copy of the probabilities gives the same counts and nearly the same losses', () => {
    const ref = references[0]!;
    const spec = parseEvaluationSpec({ ...ref.spec, scoreBins: 100 });
    const layout = createEvaluationLayout(spec);
    const m = finalizeEvaluation(
      layout,
      accumulateEvaluation(layout, {
        count: ref.rows.labels.length,
        probabilities: Float32Array.from(ref.rows.probabilities.flat()),
        labels: Int32Array.from(ref.rows.labels),
        groups: Int32Array.from(ref.rows.groups),
        slices: [Uint8Array.from(ref.rows.slice)],
      }),
    );
    assert.deepEqual(m.overall.confusion, ref.overall.confusion);
    relClose(m.overall.logLoss, ref.overall.logLoss, 1e-5, 'float32 logLoss');
    relClose(m.overall.brier, ref.overall.brier, 1e-5, 'float32 brier');
  });
});
