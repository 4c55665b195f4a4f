import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { aggregateEvaluationResults, type EvaluationResult } from './evaluation-aggregation.ts';
import { computeSiteEvaluationFigures } from './site-evaluation-figures.ts';

const SITES: EvaluationResult[] = [
  { participant: 'a', numExamples: 100, loss: 0.5, accuracy: 0.8 },
  { participant: 'b', numExamples: 300, loss: 0.2, accuracy: 0.95 },
  { participant: 'c', numExamples: 50, loss: 0.9, accuracy: 0.6 },
];
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b));

const resultsArb = fc
  .uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 2, maxLength: 8 })
  .chain((names) =>
    fc.tuple(
      ...names.map((participant) =>
        fc.record({
          participant: fc.constant(participant),
          numExamples: fc.integer({ min: 1, max: 100_000 }),
          loss: fc.double({ min: 0, max: 50, noNaN: true }),
          accuracy: fc.double({ min: 0, max: 1, noNaN: true }),
        }),
      ),
    ),
  );

describe('computeSiteEvaluationFigures', () => {
  it('gives the worst site by loss and by accuracy, named when it agreed', () => {
    const all = computeSiteEvaluationFigures(SITES, () => true);
    assert.equal(all.sites, 3);
    assert.deepEqual(all.worstLoss, { value: 0.9, participant: 'c' });
    assert.deepEqual(all.worstAccuracy, { value: 0.6, participant: 'c' });
    const none = computeSiteEvaluationFigures(SITES, () => false);
    assert.deepEqual(none.worstLoss, { value: 0.9, participant: null });
    assert.deepEqual(none.worstAccuracy, { value: 0.6, participant: null });
  });

  it('leaves each site out in turn: the example-weighted figures of the others', () => {
    const f = computeSiteEvaluationFigures(SITES, () => true);
    assert.deepEqual(
      f.leaveOneSiteOut.map((e) => e.participant),
      ['a', 'b', 'c'],
    );
    const withoutC = f.leaveOneSiteOut.find((e) => e.participant === 'c')!;
    assert.equal(withoutC.numExamples, 400);
    assert.ok(close(withoutC.loss, (100 * 0.5 + 300 * 0.2) / 400));
    assert.ok(close(withoutC.accuracy, (100 * 0.8 + 300 * 0.95) / 400));
  });

  it('names only the sites that agreed; the others follow, ordered by their figures only', () => {
    const f = computeSiteEvaluationFigures(SITES, (p) => p === 'b');
    assert.deepEqual(
      f.leaveOneSiteOut.map((e) => e.participant),
      ['b', null, null],
    );
    // Leaving c out gives the lower loss: the unnamed entries are by loss, highest first.
    assert.ok(f.leaveOneSiteOut[1]!.loss >= f.leaveOneSiteOut[2]!.loss);
  });

  it('has no leave-one-site-out figures with one site', () => {
    assert.deepEqual(computeSiteEvaluationFigures([SITES[0]!], () => true).leaveOneSiteOut, []);
  });

  it('refuses no result and an impossible report, naming the field', () => {
    assert.throws(() => computeSiteEvaluationFigures([], () => true), { code: 'INVALID_ARGUMENT' });
    for (const bad of [
      { ...SITES[0]!, numExamples: 0 },
      { ...SITES[0]!, loss: Number.NaN },
      { ...SITES[0]!, accuracy: 1.5 },
    ])
      assert.throws(
        () => computeSiteEvaluationFigures([SITES[1]!, bad], () => true),
        (err: unknown) => {
          assert.equal((err as { code: string }).code, 'INVALID_ARGUMENT');
          assert.equal((err as { field: string }).field, 'results[1]');
          return true;
        },
      );
  });

  it('leave-one-site-out equals the figures recomputed over the union minus that site (property)', () => {
    fc.assert(
      fc.property(resultsArb, (results) => {
        const f = computeSiteEvaluationFigures(results, () => true);
        assert.equal(f.leaveOneSiteOut.length, results.length);
        for (const r of results) {
          const loso = f.leaveOneSiteOut.find((e) => e.participant === r.participant)!;
          const rest = aggregateEvaluationResults(results.filter((x) => x !== r));
          assert.equal(loso.numExamples, rest.numExamples);
          assert.ok(Math.abs(loso.loss - rest.loss) <= 1e-9 * Math.max(1, rest.loss), 'loss');
          assert.ok(Math.abs(loso.accuracy - rest.accuracy) <= 1e-9, 'accuracy');
        }
      }),
    );
  });

  it('the worst site has the highest loss and the lowest accuracy of all (property)', () => {
    fc.assert(
      fc.property(resultsArb, (results) => {
        const f = computeSiteEvaluationFigures(results, () => true);
        assert.equal(f.worstLoss.value, Math.max(...results.map((r) => r.loss)));
        assert.equal(f.worstAccuracy.value, Math.min(...results.map((r) => r.accuracy)));
        const worst = results.find((r) => r.participant === f.worstLoss.participant)!;
        assert.equal(worst.loss, f.worstLoss.value);
        // Every leave-one-site-out accuracy lies between the lowest and highest site accuracy.
        const accs = results.map((r) => r.accuracy);
        for (const e of f.leaveOneSiteOut) {
          assert.ok(e.accuracy >= Math.min(...accs) - 1e-12 && e.accuracy <= Math.max(...accs) + 1e-12);
        }
      }),
    );
  });
});
