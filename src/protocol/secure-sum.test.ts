import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { addRingVectors } from '../secagg/index.ts';
import {
  computeSecureSumErrorBound,
  countSecureSumValues,
  declareSecureSum,
  declareStatisticsSum,
  decodeSecureSum,
  encodeSecureSum,
  toVectorSegments,
} from './secure-sum.ts';
import { declareRegressionSum, planSecAggCohort } from './secure-sum-round.ts';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof EntenteError ? `${err.code} ${err.field}` : String(err);
  }
  return undefined;
};

const decl = declareSecureSum({
  purpose: 'evaluation',
  maxRows: 1000,
  cohortSize: 5,
  segments: [
    { name: 'rows', length: 1, kind: 'count', maxPerRow: 1 },
    { name: 'loss', length: 2, kind: 'sum', maxPerRow: 34.6 },
    { name: 'shift', length: 3, kind: 'signed-sum', maxPerRow: 10 },
  ],
});

/** Adds the encodings of `parts` in the ring, as secure aggregation's unmasked sum would be. */
function ringSum(parts: Float64Array[]) {
  const words = toVectorSegments(decl).reduce((n, x) => n + x.lengthWords, 0);
  const total = new BigUint64Array(words);
  for (const p of parts) addRingVectors(total, encodeSecureSum(decl, p));
  return total;
}

describe('secure sums of declared vectors', () => {
  it('counts take one exact word; real sums two words with 32 fraction bits', () => {
    assert.deepEqual(
      decl.segments.map((s) => s.fractionBits),
      [0, 32, 32],
    );
    const segs = toVectorSegments(decl);
    assert.deepEqual(
      segs.map((s) => [s.name, s.offsetWords, s.lengthWords]),
      [
        ['rows', 0, 1],
        ['loss', 1, 4],
        ['shift', 5, 6],
        ['__weight__', 11, 1],
      ],
    );
    assert.equal(countSecureSumValues(decl), 6);
  });

  it('keeps a variance computed as Σx²/n − mean² accurate for features with a small spread', () => {
    // 3 sites, values near 0.1 with std 0.007 (a texture feature): one-word fixed point lost this.
    const stats = declareStatisticsSum({
      features: 1,
      maxRows: 100_000,
      maxAbsFeature: 10_000,
      cohortSize: 3,
    });
    const rng = createSeededRng('secure-sum/variance');
    const parts: Float64Array[] = [];
    let n = 0;
    let sx = 0;
    let sxx = 0;
    for (let site = 0; site < 3; site++) {
      const v = new Float64Array(3);
      for (let r = 0; r < 150; r++) {
        const x = 0.1 + (rng.nextFloat64() - 0.5) * 0.024;
        v[0]! += 1;
        v[1]! += x;
        v[2]! += x * x;
      }
      n += v[0]!;
      sx += v[1]!;
      sxx += v[2]!;
      parts.push(v);
    }
    const total = new BigUint64Array(toVectorSegments(stats).reduce((w, x) => w + x.lengthWords, 0));
    for (const p of parts) addRingVectors(total, encodeSecureSum(stats, p));
    const out = decodeSecureSum(stats, total, 3);
    const exactVar = sxx / n - (sx / n) ** 2;
    const securedVar = out[2]! / out[0]! - (out[1]! / out[0]!) ** 2;
    assert.equal(out[0], 450);
    assert.ok(Math.abs(securedVar - exactVar) / exactVar < 1e-6, `variance ${securedVar} vs ${exactVar}`);
  });

  it('sums of random site vectors decode to the float sum within the stated bound (signed values too)', () => {
    const rng = createSeededRng('secure-sum/property');
    for (let trial = 0; trial < 50; trial++) {
      const sites = 3 + Math.floor(rng.nextFloat64() * 3);
      const parts: Float64Array[] = [];
      const exact = new Float64Array(6);
      for (let s = 0; s < sites; s++) {
        const rows = Math.floor(rng.nextFloat64() * 1000);
        const v = Float64Array.from([
          rows,
          rng.nextFloat64() * rows * 34.6,
          rng.nextFloat64() * rows * 34.6,
          (rng.nextFloat64() * 2 - 1) * rows * 10,
          (rng.nextFloat64() * 2 - 1) * rows * 10,
          -rows * 10,
        ]);
        parts.push(v);
        for (let i = 0; i < 6; i++) exact[i]! += v[i]!;
      }
      const out = decodeSecureSum(decl, ringSum(parts), sites);
      const bound = computeSecureSumErrorBound(decl, sites);
      assert.equal(out[0], exact[0], 'counts are exact');
      for (let i = 1; i < 3; i++) assert.ok(Math.abs(out[i]! - exact[i]!) <= bound.loss!, `loss[${i}]`);
      for (let i = 3; i < 6; i++) assert.ok(Math.abs(out[i]! - exact[i]!) <= bound.shift!, `shift[${i}]`);
    }
  });

  it('refuses values outside the declared bounds before they are encoded, naming the segment', () => {
    assert.equal(
      codeOf(() => encodeSecureSum(decl, Float64Array.from([1001, 0, 0, 0, 0, 0]))),
      'INVALID_DATA values.rows',
    );
    assert.equal(
      codeOf(() => encodeSecureSum(decl, Float64Array.from([1.5, 0, 0, 0, 0, 0]))),
      'INVALID_DATA values.rows',
    );
    assert.equal(
      codeOf(() => encodeSecureSum(decl, Float64Array.from([1, -0.1, 0, 0, 0, 0]))),
      'INVALID_DATA values.loss',
    );
    assert.equal(
      codeOf(() => encodeSecureSum(decl, Float64Array.from([1, 0, 0, 0, -10_001, 0]))),
      'INVALID_DATA values.shift',
    );
    assert.equal(
      codeOf(() => encodeSecureSum(decl, Float64Array.from([1, Number.NaN, 0, 0, 0, 0]))),
      'INVALID_DATA values.loss',
    );
    assert.equal(
      codeOf(() => encodeSecureSum(decl, new Float64Array(5))),
      'INVALID_DATA values',
    );
  });

  it('refuses an unmasked sum a cohort of honest sites could not produce, or a wrong contributor count', () => {
    const good = ringSum([Float64Array.from([10, 1, 1, 0, 0, 0])]);
    assert.equal(
      codeOf(() => decodeSecureSum(decl, good, 2)),
      'PROTOCOL_VIOLATION sum',
    );
    // A word pushed past what 3 sites × 1000 rows may add (one site cheating inside the ring).
    const forged = ringSum([
      Float64Array.from([1000, 0, 0, 0, 0, 0]),
      Float64Array.from([1000, 0, 0, 0, 0, 0]),
      Float64Array.from([1000, 0, 0, 0, 0, 0]),
    ]);
    forged[0] = forged[0]! + 1n;
    assert.equal(
      codeOf(() => decodeSecureSum(decl, forged, 3)),
      'PROTOCOL_VIOLATION sum.rows',
    );
    const negative = ringSum([Float64Array.from([0, 0, 0, 0, 0, 0])]);
    negative[1] = BigInt.asUintN(64, -(2n ** 30n));
    assert.equal(
      codeOf(() => decodeSecureSum(decl, negative, 1)),
      'PROTOCOL_VIOLATION sum.loss',
    );
    assert.equal(
      codeOf(() => decodeSecureSum(decl, new Uint32Array(7), 1)),
      'PROTOCOL_VIOLATION sum',
    );
    // A lo word no honest cohort could produce (each site's lo word is below 2^40).
    const lo = ringSum([Float64Array.from([0, 0, 0, 0, 0, 0])]);
    lo[3] = 1n << 41n;
    assert.equal(
      codeOf(() => decodeSecureSum(decl, lo, 1)),
      'PROTOCOL_VIOLATION sum.loss',
    );
  });

  it('refuses a declaration the ring cannot hold, naming the segment', () => {
    assert.equal(
      codeOf(() =>
        declareSecureSum({
          purpose: 'statistics',
          maxRows: 1e12,
          cohortSize: 100,
          segments: [{ name: 'sq', length: 1, kind: 'sum', maxPerRow: 1e8 }],
        }),
      ),
      'INVALID_CONFIG secureSum.segments.sq',
    );
    assert.equal(
      codeOf(() =>
        declareSecureSum({
          purpose: 'statistics',
          maxRows: 1e12,
          cohortSize: 10_000,
          segments: [{ name: 'n', length: 1, kind: 'count', maxPerRow: 1 }],
        }),
      ),
      'INVALID_CONFIG secureSum.segments.n',
    );
    assert.equal(
      codeOf(() =>
        declareSecureSum({
          purpose: 'statistics',
          maxRows: 10,
          cohortSize: 3,
          segments: [{ name: '__weight__', length: 1, kind: 'count', maxPerRow: 1 }],
        }),
      ),
      'INVALID_CONFIG secureSum.segments.__weight__',
    );
  });

  it('statistics and regression declarations have the documented layout', () => {
    const s = declareStatisticsSum({ features: 4, maxRows: 100_000, maxAbsFeature: 10_000, cohortSize: 10 });
    assert.deepEqual(
      s.segments.map((x) => [x.name, x.length, x.kind]),
      [
        ['count', 1, 'count'],
        ['sum', 4, 'signed-sum'],
        ['sumSquares', 4, 'sum'],
      ],
    );
    assert.equal(s.segments[2]!.fractionBits, 32);
    const r = declareRegressionSum({ maxRows: 100_000, maxAbsTarget: 1000, cohortSize: 10 });
    assert.deepEqual(
      r.segments.map((x) => x.name),
      ['count', 'sumSquaredError', 'sumAbsoluteError', 'sumTarget', 'sumTargetSquared'],
    );
  });

  it('plans a cohort: sorted, capped, default threshold floor(2n/3)+1, null when it cannot be reached', () => {
    assert.deepEqual(planSecAggCohort({ selected: ['c', 'a', 'b', 'd'], maxParticipants: 10 }), {
      cohort: ['a', 'b', 'c', 'd'],
      threshold: 3,
    });
    assert.deepEqual(planSecAggCohort({ selected: ['c', 'a', 'b', 'd'], maxParticipants: 3 }), {
      cohort: ['a', 'b', 'c'],
      threshold: 3,
    });
    assert.equal(planSecAggCohort({ selected: ['a', 'b'], maxParticipants: 10 }), null);
    assert.equal(planSecAggCohort({ selected: ['a', 'b', 'c'], maxParticipants: 10, threshold: 4 }), null);
  });
});
