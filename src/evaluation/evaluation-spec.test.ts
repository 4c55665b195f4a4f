import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { createEvaluationLayout } from './evaluation-layout.ts';
import { evaluationSumCount, MAX_EVALUATION_SUMS, parseEvaluationSpec } from './evaluation-spec.ts';

function refused(input: unknown, field: string): void {
  assert.throws(
    () => parseEvaluationSpec(input),
    (e: unknown) =>
      e instanceof EntenteError &&
      e.code === 'INVALID_CONFIG' &&
      e.field === field &&
      e.message.startsWith(`${field}: `),
    `expected INVALID_CONFIG on ${field} for ${JSON.stringify(input)?.slice(0, 200)}`,
  );
}

describe('parseEvaluationSpec', () => {
  it('fills defaults and freezes', () => {
    const spec = parseEvaluationSpec({ numClasses: 2 });
    assert.deepEqual(spec, { numClasses: 2, scoreBins: 1000, calibrationBins: 10 });
    assert.ok(Object.isFrozen(spec));
    const full = parseEvaluationSpec({
      numClasses: 3,
      scoreBins: 10,
      calibrationBins: 2,
      sensitive: { attribute: 'site', values: ['a', 'b'] },
      slices: ['age>=65', 'Ward 3.b_x<y-z'],
    });
    assert.ok(Object.isFrozen(full.sensitive) && Object.isFrozen(full.sensitive?.values));
    assert.ok(Object.isFrozen(full.slices));
  });

  it('accepts the bounds themselves', () => {
    parseEvaluationSpec({ numClasses: 1000, scoreBins: 10, calibrationBins: 1000 });
    parseEvaluationSpec({ numClasses: 2, scoreBins: 100_000, calibrationBins: 2 });
    parseEvaluationSpec({
      numClasses: 2,
      sensitive: {
        attribute: 'x'.repeat(128),
        values: Array.from({ length: 64 }, (_, i) => `v${i}`.padEnd(64, '.')),
      },
      slices: Array.from({ length: 32 }, (_, i) => `s${i}`.padEnd(64, '=')),
    });
  });

  it('refuses out-of-range fields, naming them', () => {
    refused({ numClasses: 1 }, 'evaluation.numClasses');
    refused({ numClasses: 1001 }, 'evaluation.numClasses');
    refused({ numClasses: 2.5 }, 'evaluation.numClasses');
    refused({ numClasses: '2' }, 'evaluation.numClasses');
    refused({}, 'evaluation.numClasses');
    refused({ numClasses: 2, scoreBins: 9 }, 'evaluation.scoreBins');
    refused({ numClasses: 2, scoreBins: 100_001 }, 'evaluation.scoreBins');
    refused({ numClasses: 2, calibrationBins: 1 }, 'evaluation.calibrationBins');
    refused({ numClasses: 2, calibrationBins: 1001 }, 'evaluation.calibrationBins');
    refused({ numClasses: 2, calibrationBins: Number.NaN }, 'evaluation.calibrationBins');
    refused({ numClasses: 2, extra: 1 }, 'evaluation.extra');
    refused(null, 'evaluation');
  });

  it('refuses a bad sensitive attribute', () => {
    const sensitive = (s: unknown) => ({ numClasses: 2, sensitive: s });
    refused(sensitive({ attribute: 'a', values: ['x'] }), 'evaluation.sensitive.values');
    refused(sensitive({ attribute: 'a', values: ['x', 'x'] }), 'evaluation.sensitive.values');
    refused(sensitive({ attribute: 'a', values: ['x', ''] }), 'evaluation.sensitive.values.1');
    refused(sensitive({ attribute: 'a', values: ['x', 'y'.repeat(65)] }), 'evaluation.sensitive.values.1');
    refused(
      sensitive({ attribute: 'a', values: Array.from({ length: 65 }, (_, i) => `v${i}`) }),
      'evaluation.sensitive.values',
    );
    refused(sensitive({ attribute: '', values: ['x', 'y'] }), 'evaluation.sensitive.attribute');
    refused(sensitive({ attribute: 'a'.repeat(129), values: ['x', 'y'] }), 'evaluation.sensitive.attribute');
    refused(sensitive({ attribute: 'a', values: ['x', 'y'], column: 3 }), 'evaluation.sensitive.column');
  });

  it('refuses bad slices', () => {
    refused({ numClasses: 2, slices: ['a', 'a'] }, 'evaluation.slices');
    refused({ numClasses: 2, slices: ['-a'] }, 'evaluation.slices.0');
    refused({ numClasses: 2, slices: ['ok', 'bad/slash'] }, 'evaluation.slices.1');
    refused({ numClasses: 2, slices: [''] }, 'evaluation.slices.0');
    refused({ numClasses: 2, slices: ['x'.repeat(65)] }, 'evaluation.slices.0');
    refused({ numClasses: 2, slices: Array.from({ length: 33 }, (_, i) => `s${i}`) }, 'evaluation.slices');
  });

  it('refuses a spec whose sums vector would be too long', () => {
    const big = { numClasses: 1000, scoreBins: 1000, slices: ['a', 'b', 'c', 'd', 'e'] };
    refused(big, 'evaluation.scoreBins');
    const ok = parseEvaluationSpec({ ...big, slices: ['a', 'b', 'c', 'd'] });
    assert.ok(evaluationSumCount(ok) <= MAX_EVALUATION_SUMS);
  });
});

describe('createEvaluationLayout', () => {
  it('lays segments end to end, with the length the spec parser bounds', () => {
    for (const input of [
      { numClasses: 2, scoreBins: 10 },
      { numClasses: 5, scoreBins: 20, calibrationBins: 7, slices: ['a', 'b'] },
      { numClasses: 2, sensitive: { attribute: 's', values: ['x', 'y', 'z'] }, slices: ['a'] },
      { numClasses: 3, scoreBins: 10, sensitive: { attribute: 's', values: ['x', 'y'] } },
    ]) {
      const spec = parseEvaluationSpec(input);
      const layout = createEvaluationLayout(spec);
      let offset = 0;
      for (const s of layout.segments) {
        assert.equal(s.offset, offset, s.name);
        assert.ok(s.length > 0 && s.maxPerRow > 0);
        offset += s.length;
      }
      assert.equal(layout.length, offset);
      assert.equal(layout.length, evaluationSumCount(spec));
      assert.equal(new Set(layout.segments.map((s) => s.name)).size, layout.segments.length);
      assert.ok(Object.isFrozen(layout) && Object.isFrozen(layout.segments));
    }
  });

  it('names blocks and the fairness counts', () => {
    const layout = createEvaluationLayout(
      parseEvaluationSpec({
        numClasses: 2,
        scoreBins: 10,
        sensitive: { attribute: 's', values: ['x', 'y'] },
        slices: ['a'],
      }),
    );
    const names = layout.segments.map((s) => s.name);
    assert.ok(names.includes('overall.confusion') && names.includes('slices[0].scoreHistogram'));
    assert.deepEqual(
      names.filter((n) => n.startsWith('fairness.')),
      ['fairness.positives', 'fairness.negatives', 'fairness.truePositives', 'fairness.falsePositives'],
    );
    assert.equal(layout.segments.find((s) => s.name === 'overall.scoreHistogram')!.length, 20);
    assert.deepEqual(
      layout.segments.filter((s) => s.kind === 'sum').map((s) => [s.name, s.maxPerRow]),
      [
        ['overall.logLoss', 34.6],
        ['overall.brier', 1],
        ['overall.calibrationConfidence', 1],
        ['slices[0].logLoss', 34.6],
        ['slices[0].brier', 1],
        ['slices[0].calibrationConfidence', 1],
      ],
    );
  });

  it('checks a hand-built spec again', () => {
    assert.throws(
      () => createEvaluationLayout({ numClasses: 2, scoreBins: 10 ** 9, calibrationBins: 10 }),
      (e: unknown) => e instanceof EntenteError && e.field === 'evaluation.scoreBins',
    );
  });
});
