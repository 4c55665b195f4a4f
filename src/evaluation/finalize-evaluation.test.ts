/**
 * finalizeEvaluation on vectors a network peer could send (refused), and the binned AUC against a
 * brute-force Mann–Whitney count on random scores (the bound holds, and equals the pair count).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { nextInt } from '../core/rng.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { accumulateEvaluation } from './accumulate-evaluation.ts';
import { createEvaluationLayout, findSegment } from './evaluation-layout.ts';
import { parseEvaluationSpec } from './evaluation-spec.ts';
import { aucBinningBound, computeAucBinningBound, finalizeEvaluation } from './finalize-evaluation.ts';
import { binIndex, innerBinEdges } from './probability-bins.ts';

/** Exact Mann–Whitney AUC over all (positive, negative) pairs, ties ½. */
function bruteForceAuc(scores: readonly number[], labels: readonly number[]): number {
  let wins = 0;
  let pairs = 0;
  scores.forEach((si, i) => {
    if (labels[i] !== 1) return;
    scores.forEach((sj, j) => {
      if (labels[j] !== 0) return;
      pairs++;
      wins += si > sj ? 1 : si === sj ? 0.5 : 0;
    });
  });
  return wins / pairs;
}

function binaryRows(seed: string, n: number, coarse: boolean) {
  const rng = createSeededRng(seed, 'entente/test/v1');
  const scores: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    // scores on a coarse grid make exact ties too; labels correlated with the score
    const s = coarse ? nextInt(rng, 21) / 20 : rng.nextFloat64();
    scores.push(s);
    labels.push(rng.nextFloat64() < 0.2 + 0.6 * s ? 1 : 0);
  }
  return { scores, labels };
}

describe('binned ROC AUC and its bound', () => {
  for (const [seed, coarse] of [
    ['auc-1', false],
    ['auc-2', true],
    ['auc-3', false],
    ['auc-4', true],
  ] as const) {
    for (const scoreBins of [10, 37, 1000]) {
      it(`seed ${seed}, ${scoreBins} bins: binned = brute force on bin indices, |binned − exact| ≤ bound`, () => {
        const { scores, labels } = binaryRows(seed, 300, coarse);
        const layout = createEvaluationLayout(parseEvaluationSpec({ numClasses: 2, scoreBins }));
        const sums = accumulateEvaluation(layout, {
          count: scores.length,
          probabilities: Float64Array.from(scores.flatMap((s) => [1 - s, s])),
          labels,
        });
        const m = finalizeEvaluation(layout, sums).overall;
        const edges = innerBinEdges(scoreBins);
        const onBins = bruteForceAuc(
          scores.map((s) => binIndex(edges, s)),
          labels,
        );
        assert.ok(Math.abs(m.rocAuc! - onBins) < 1e-12, `${m.rocAuc} vs ${onBins}`);
        const exact = bruteForceAuc(scores, labels);
        const bound = computeAucBinningBound(layout, sums)!;
        assert.equal(bound, m.rocAucBinningBound);
        assert.ok(Math.abs(m.rocAuc! - exact) <= bound + 1e-15, `${Math.abs(m.rocAuc! - exact)} > ${bound}`);
        // the bound is the share of pairs sharing a bin, halved: count it directly
        const binOf = scores.map((s) => binIndex(edges, s));
        let shared = 0;
        let pairs = 0;
        for (let i = 0; i < scores.length; i++)
          for (let j = 0; j < scores.length; j++)
            if (labels[i] === 1 && labels[j] === 0) {
              pairs++;
              if (binOf[i] === binOf[j]) shared++;
            }
        assert.ok(Math.abs(bound - shared / (2 * pairs)) < 1e-15);
      });
    }
  }

  it('aucBinningBound: 0 when no bin is shared, ½ when every pair shares one bin, null when undefined', () => {
    assert.equal(aucBinningBound([0, 2, 0], [3, 0, 1]), 0);
    assert.equal(aucBinningBound([0, 4, 0], [0, 5, 0]), 0.5);
    assert.equal(aucBinningBound([0, 0], [1, 2]), null);
    assert.throws(() => aucBinningBound([1], [1, 2]), EntenteError);
  });
});

describe('finalizeEvaluation refuses hostile sums', () => {
  const layout = createEvaluationLayout(
    parseEvaluationSpec({
      numClasses: 2,
      scoreBins: 10,
      calibrationBins: 5,
      sensitive: { attribute: 's', values: ['x', 'y'] },
      slices: ['a'],
    }),
  );
  const valid = accumulateEvaluation(layout, {
    count: 6,
    probabilities: Float64Array.from([0.9, 0.1, 0.2, 0.8, 0.6, 0.4, 0.3, 0.7, 0.5, 0.5, 0.05, 0.95]),
    labels: [0, 1, 1, 0, 1, 1],
    groups: Int32Array.from([0, 1, 0, 1, -1, 0]),
    slices: [Uint8Array.from([1, 1, 0, 0, 1, 0])],
  });
  const at = (name: string, i = 0): number => findSegment(layout, name).offset + i;
  const refused = (sums: Float64Array, pattern: RegExp): void => {
    assert.throws(
      () => finalizeEvaluation(layout, sums),
      (e: unknown) =>
        e instanceof EntenteError &&
        e.code === 'INVALID_MESSAGE' &&
        e.field === 'sums' &&
        e.message.startsWith('sums: ') &&
        pattern.test(e.message),
      pattern.source,
    );
    assert.throws(() => computeAucBinningBound(layout, sums), EntenteError);
  };
  const edited = (edits: [number, number][]): Float64Array => {
    const sums = valid.slice();
    for (const [i, delta] of edits) sums[i]! += delta;
    return sums;
  };

  it('accepts the honest vector', () => {
    const m = finalizeEvaluation(layout, valid);
    assert.equal(m.overall.rows, 6);
    assert.equal(m.slices.a!.rows, 3);
  });

  it('refuses a wrong length or type', () => {
    refused(valid.subarray(1), /coordinates/);
    refused(new Float64Array(layout.length + 1), /coordinates/);
    refused(Array.from(valid) as unknown as Float64Array, /Float64Array/);
  });

  it('refuses negative, non-finite and fractional coordinates', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const sums = valid.slice();
      sums[at('overall.logLoss')] = bad;
      refused(sums, /overall\.logLoss/);
      const sums2 = valid.slice();
      sums2[at('fairness.negatives', 1)] = bad;
      refused(sums2, /fairness\.negatives/);
    }
    refused(edited([[at('overall.confusion', 1), 0.5]]), /whole number/);
    refused(edited([[at('overall.confusion', 1), 2 ** 53]]), /whole number/);
  });

  it('refuses counts that contradict each other', () => {
    // one more row in the confusion matrix only
    refused(edited([[at('overall.confusion', 0), 1]]), /scoreHistogram/);
    // histogram moved from positives to negatives
    const hist = at('overall.scoreHistogram');
    const p = valid.subarray(hist, hist + 10).findIndex((x) => x > 0);
    refused(
      edited([
        [hist + p, -1],
        [hist + 10 + p, 1],
      ]),
      /scoreHistogram/,
    );
    // a row added everywhere but the calibration bins
    const row = edited([
      [at('overall.confusion', 0), 1],
      [at('overall.scoreHistogram', 10), 1],
    ]);
    refused(row, /calibrationCount/);
    const sums = valid.slice();
    const b = sums
      .subarray(at('overall.calibrationCount'), at('overall.calibrationCount') + 5)
      .findIndex((x) => x > 0);
    sums[at('overall.calibrationPositive', b)] = sums[at('overall.calibrationCount', b)]! + 1;
    refused(sums, /calibrationPositive/);
    refused(edited([[at('overall.calibrationConfidence', b), 10]]), /calibrationConfidence/);
    refused(edited([[at('overall.logLoss'), 35 * 6]]), /logLoss/);
    refused(edited([[at('overall.brier'), 7]]), /brier/);
    // a slice with more rows in a cell than all rows, consistent in itself
    const slice = edited([
      [at('slices[0].confusion', 0), 5],
      [at('slices[0].scoreHistogram', 10), 5],
      [at('slices[0].calibrationCount', 0), 5],
    ]);
    refused(slice, /slices\[0\]\.confusion/);
  });

  it('refuses fairness counts beyond the groups or all rows', () => {
    refused(edited([[at('fairness.truePositives', 0), 5]]), /truePositives/);
    refused(edited([[at('fairness.falsePositives', 1), 5]]), /falsePositives/);
    refused(edited([[at('fairness.positives', 0), 10]]), /more rows than overall/);
  });
});

describe('finalizeEvaluation fairness edge cases', () => {
  const layout = createEvaluationLayout(
    parseEvaluationSpec({
      numClasses: 2,
      scoreBins: 10,
      sensitive: { attribute: 's', values: ['x', 'y', 'z'] },
    }),
  );
  it('leaves out groups without positives from TPR differences and groups without rows from all', () => {
    const m = finalizeEvaluation(
      layout,
      accumulateEvaluation(layout, {
        count: 5,
        // x: one true positive, one true negative; y: one false positive; z: no rows
        probabilities: Float64Array.from([0.2, 0.8, 0.7, 0.3, 0.4, 0.6, 0.1, 0.9, 0.6, 0.4]),
        labels: [1, 0, 0, 1, 1],
        groups: Int32Array.from([0, 0, 1, -1, -1]),
      }),
    ).fairness!;
    assert.equal(m.groups.y!.truePositiveRate, null);
    assert.equal(m.groups.z!.rows, 0);
    assert.equal(m.groups.z!.selectionRate, null);
    assert.equal(m.equalOpportunityDifference, 0); // only x defines a TPR
    assert.equal(m.demographicParityDifference, 0.5); // x 1/2, y 1/1
    assert.equal(m.demographicParityRatio, 0.5);
    assert.equal(m.equalizedOddsDifference, 1); // FPR x 0, y 1
  });

  it('gives null differences when nothing defines them', () => {
    const m = finalizeEvaluation(
      layout,
      accumulateEvaluation(layout, {
        count: 2,
        probabilities: Float64Array.from([0.9, 0.1, 0.8, 0.2]),
        labels: [0, 0],
        groups: Int32Array.from([0, 1]),
      }),
    ).fairness!;
    assert.equal(m.equalOpportunityDifference, null);
    assert.equal(m.equalizedOddsDifference, null);
    assert.equal(m.demographicParityDifference, 0);
    assert.equal(m.demographicParityRatio, null); // every selection rate is 0
  });
});

describe('noised sums (an evaluation spec with dp)', () => {
  const base = { numClasses: 2, scoreBins: 50, sensitive: { attribute: 'g', values: ['a', 'b'] } };
  const data = () => {
    const { scores, labels } = binaryRows('noisy', 400, false);
    return {
      count: scores.length,
      probabilities: Float64Array.from(scores.flatMap((s) => [1 - s, s])),
      labels,
      groups: Int32Array.from(scores, (_, i) => i % 2),
    };
  };

  it('without noise drawn, the post-processing changes no figure', () => {
    const exactLayout = createEvaluationLayout(parseEvaluationSpec(base));
    const dpLayout = createEvaluationLayout(parseEvaluationSpec({ ...base, dp: { noiseMultiplier: 1 } }));
    const exact = finalizeEvaluation(exactLayout, accumulateEvaluation(exactLayout, data()));
    const post = finalizeEvaluation(dpLayout, accumulateEvaluation(dpLayout, data()));
    assert.deepEqual(post, exact);
  });

  it('reads noised totals (negative and inconsistent counts) into figures that can exist', () => {
    const layout = createEvaluationLayout(parseEvaluationSpec({ ...base, dp: { noiseMultiplier: 1 } }));
    const sums = accumulateEvaluation(layout, data());
    const rng = createSeededRng('noise', 'entente/test/v1');
    for (const s of layout.segments)
      for (let i = s.offset; i < s.offset + s.length; i++) {
        const e = (rng.nextFloat64() - 0.5) * 20;
        sums[i] = s.kind === 'count' ? sums[i]! + Math.round(e) : sums[i]! + e;
      }
    // The strict reader of exact sums refuses such a vector; the noised reader does not.
    const strict = createEvaluationLayout(parseEvaluationSpec(base));
    assert.throws(() => finalizeEvaluation(strict, sums), { code: 'INVALID_MESSAGE' });
    const m = finalizeEvaluation(layout, sums);
    const unit = (v: number | null) => v === null || (v >= 0 && v <= 1);
    for (const v of [
      m.overall.accuracy,
      m.overall.rocAuc,
      m.overall.averagePrecision,
      m.overall.ece,
      m.overall.brier,
    ])
      assert.ok(unit(v), `figure ${v} outside [0, 1]`);
    assert.ok(m.overall.logLoss !== null && m.overall.logLoss >= 0 && m.overall.logLoss <= 34.6);
    for (const g of Object.values(m.fairness!.groups))
      for (const v of [g.selectionRate, g.truePositiveRate, g.falsePositiveRate, g.accuracy])
        assert.ok(unit(v), `group figure ${v} outside [0, 1]`);
    assert.ok(m.overall.rows > 300);
    assert.throws(() => finalizeEvaluation(layout, sums.subarray(1)), { code: 'INVALID_MESSAGE' });
    const bad = sums.slice();
    bad[3] = Number.NaN;
    assert.throws(() => finalizeEvaluation(layout, bad), { code: 'INVALID_MESSAGE', field: 'sums' });
  });

  it('a per-row log-loss clip bounds each row and the segment', () => {
    const layout = createEvaluationLayout(
      parseEvaluationSpec({ numClasses: 2, dp: { noiseMultiplier: 1, maxRowLogLoss: 2 } }),
    );
    assert.equal(findSegment(layout, 'overall.logLoss').maxPerRow, 2);
    const sums = accumulateEvaluation(layout, {
      count: 2,
      probabilities: Float64Array.from([1, 0, 0.5, 0.5]),
      labels: [1, 1],
    });
    // Row 1: −ln(1e-15) clipped to 2; row 2: ln 2.
    assert.ok(Math.abs(sums[findSegment(layout, 'overall.logLoss').offset]! - (2 + Math.LN2)) < 1e-12);
    assert.throws(
      () => parseEvaluationSpec({ numClasses: 2, dp: { noiseMultiplier: 1, maxRowLogLoss: 40 } }),
      {
        field: 'evaluation.dp.maxRowLogLoss',
      },
    );
  });
});
