/**
 * Tests of shadow scoring's paired outcomes (paired-outcomes.ts) against reference values computed with
 * scipy and numpy (test/vectors/rollout, see its README), against exact rational arithmetic (BigInt
 * binomial coefficients), and for additivity across sites and refusal of hostile sums.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  accumulatePairedOutcomes,
  createPairedOutcomeLayout,
  finalizePairedOutcomes,
  mcnemarChiSquare,
  mcnemarExactP,
  type PairedRow,
  pairedGateFigures,
} from './paired-outcomes.ts';

interface Reference {
  cases: { b: number; c: number; exactP: number; chiSquareCorrected: number | null }[];
  paired: { rows: PairedRow[]; expected: Record<string, number> };
}
const reference = JSON.parse(
  readFileSync(new URL('../../test/vectors/rollout/mcnemar-reference.json', import.meta.url), 'utf8'),
) as Reference;

const close = (actual: number | null, expected: number, rel = 1e-9, what = ''): void => {
  assert.ok(actual !== null, `${what}: null`);
  const tol = rel * Math.max(Math.abs(expected), Number.MIN_VALUE);
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected}`);
};

/** min(1, 2·Σ_{k ≤ min(b,c)} C(n,k) / 2^n) as an exact rational, then rounded to a double. */
function exactRational(b: number, c: number): number {
  const n = BigInt(b + c);
  const m = BigInt(Math.min(b, c));
  let term = 1n;
  let sum = 0n;
  for (let k = 0n; k <= m; k++) {
    sum += term;
    term = (term * (n - k)) / (k + 1n);
  }
  const num = 2n * sum;
  const den = 1n << n;
  if (num >= den) return 1;
  // num/den to ~17 significant digits without overflowing a double.
  const scale = 10n ** 30n;
  const q = (num * scale) / den;
  return Number(q) / 1e30;
}

describe('McNemar exact test', () => {
  it('matches scipy.stats.binomtest on every reference case', () => {
    for (const { b, c, exactP } of reference.cases) {
      const p = mcnemarExactP(b, c);
      if (exactP === 0) assert.ok(p < 1e-300, `b=${b} c=${c}: ${p}`);
      else close(p, exactP, 1e-9, `b=${b} c=${c}`);
    }
  });

  it('matches exact rational arithmetic (BigInt binomial coefficients)', () => {
    for (const [b, c] of [
      [0, 7],
      [2, 9],
      [9, 2],
      [13, 30],
      [60, 80],
      [150, 200],
      [400, 480],
      [10, 10],
    ] as const)
      close(mcnemarExactP(b, c), exactRational(b, c), 1e-10, `b=${b} c=${c}`);
  });

  it('is symmetric in b and c, 1 without discordant rows, and decreases as they part', () => {
    assert.equal(mcnemarExactP(0, 0), 1);
    assert.equal(mcnemarExactP(4, 11), mcnemarExactP(11, 4));
    assert.ok(mcnemarExactP(10, 30) < mcnemarExactP(15, 25));
  });

  it('gives the continuity-corrected chi-square statistic of the references', () => {
    for (const { b, c, chiSquareCorrected } of reference.cases) {
      if (chiSquareCorrected === null) assert.equal(mcnemarChiSquare(b, c), null);
      else close(mcnemarChiSquare(b, c), chiSquareCorrected, 1e-12, `b=${b} c=${c}`);
    }
  });

  it('refuses counts that are not non-negative integers', () => {
    assert.throws(() => mcnemarExactP(-1, 3), { code: 'INVALID_ARGUMENT', field: 'b' });
    assert.throws(() => mcnemarExactP(1, 2.5), { field: 'c' });
  });
});

describe('paired outcomes', () => {
  const spec = { maxRowLoss: 3 };

  it('declares a layout usable as a secure sum: non-negative counts and bounded sums', () => {
    const layout = createPairedOutcomeLayout(spec);
    assert.equal(layout.length, 8);
    assert.deepEqual(
      layout.segments.map((s) => [s.name, s.offset, s.length, s.kind, s.maxPerRow, s.maxRowL2]),
      [
        ['paired.rows', 0, 1, 'count', 1, 1],
        ['paired.agreement', 1, 4, 'count', 1, 1],
        ['paired.lossDifferencePositive', 5, 1, 'sum', 3, 3],
        ['paired.lossDifferenceNegative', 6, 1, 'sum', 3, 3],
        ['paired.lossDifferenceSquared', 7, 1, 'sum', 9, 9],
      ],
    );
    assert.throws(() => createPairedOutcomeLayout({ maxRowLoss: 0 }), { field: 'spec.maxRowLoss' });
  });

  it('gives the figures numpy and scipy give on the reference sample', () => {
    const f = finalizePairedOutcomes(spec, accumulatePairedOutcomes(spec, reference.paired.rows));
    const e = reference.paired.expected;
    for (const k of ['rows', 'bothCorrect', 'candidateOnlyCorrect', 'productionOnlyCorrect', 'bothWrong'])
      assert.equal(f[k as keyof typeof f], e[k], k);
    for (const k of [
      'candidateAccuracy',
      'productionAccuracy',
      'accuracyDifference',
      'mcnemarP',
      'mcnemarChiSquare',
      'meanLossDifference',
      'lossDifferenceStdError',
    ])
      close(f[k as keyof typeof f] as number, e[k]!, 1e-9, k);
  });

  it('adds up across sites: the sum of the sites’ vectors gives the pooled figures', () => {
    const rows = reference.paired.rows;
    const parts = [rows.slice(0, 70), rows.slice(70, 71), rows.slice(71, 200), rows.slice(200)];
    const total = new Float64Array(8);
    for (const part of parts) {
      const v = accumulatePairedOutcomes(spec, part);
      for (let i = 0; i < v.length; i++) total[i]! += v[i]!;
    }
    const pooled = finalizePairedOutcomes(spec, accumulatePairedOutcomes(spec, rows));
    const split = finalizePairedOutcomes(spec, total);
    assert.equal(split.mcnemarP, pooled.mcnemarP);
    close(split.meanLossDifference, pooled.meanLossDifference!, 1e-12, 'mean');
    close(split.lossDifferenceStdError, pooled.lossDifferenceStdError!, 1e-9, 'se');
  });

  it('clips each loss to maxRowLoss', () => {
    const v = accumulatePairedOutcomes({ maxRowLoss: 1 }, [
      { candidateCorrect: false, productionCorrect: true, candidateLoss: 50, productionLoss: 0.25 },
    ]);
    assert.deepEqual([...v], [1, 0, 0, 1, 0, 0.75, 0, 0.5625]);
  });

  it('maps to the names rollout gates read', () => {
    const f = finalizePairedOutcomes(spec, accumulatePairedOutcomes(spec, reference.paired.rows));
    const g = pairedGateFigures(f);
    assert.equal(g.paired.mcnemarP, f.mcnemarP);
    assert.equal(g.candidate.accuracy, f.candidateAccuracy);
    assert.equal(g.production.rows, 300);
  });

  it('has no figures on no rows, and p = 1', () => {
    const f = finalizePairedOutcomes(spec, new Float64Array(8));
    assert.equal(f.candidateAccuracy, null);
    assert.equal(f.meanLossDifference, null);
    assert.equal(f.mcnemarP, 1);
  });

  it('refuses bad rows and hostile sums, naming the field', () => {
    assert.throws(
      () =>
        accumulatePairedOutcomes(spec, [
          { candidateCorrect: true, productionCorrect: true, candidateLoss: Number.NaN, productionLoss: 0 },
        ]),
      { code: 'INVALID_DATA', field: 'rows.0.candidateLoss' },
    );
    assert.throws(() => finalizePairedOutcomes(spec, [3, 1, 1, 1, 1, 0, 0, 0]), {
      field: 'sums.paired.agreement',
    });
    assert.throws(() => finalizePairedOutcomes(spec, [2, 1.5, 0.5, 0, 0, 0, 0, 0]), {
      field: 'sums.paired.agreement.0',
    });
    assert.throws(() => finalizePairedOutcomes(spec, [1, 1, 0, 0, 0, -1, 0, 0]), {
      field: 'sums.paired.lossDifferencePositive',
    });
    assert.throws(() => finalizePairedOutcomes(spec, [1, 1, 0, 0]), { field: 'sums.length' });
  });
});
