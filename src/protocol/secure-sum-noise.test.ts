import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { createEvaluationLayout } from '../evaluation/index.ts';
import { createSeededRandomBits } from '../privacy/index.ts';
import { addRingVectors } from '../secagg/index.ts';
import {
  declareSecureSum,
  declareStatisticsSum,
  decodeSecureSum,
  encodeSecureSum,
  toVectorSegments,
} from './secure-sum.ts';
import { planSecureSumNoise } from './secure-sum-noise.ts';
import { declareEvaluationSum } from './secure-sum-round.ts';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof EntenteError ? `${err.code} ${err.field}` : String(err);
  }
  return undefined;
};

const noised = (z: number) =>
  declareSecureSum({
    purpose: 'evaluation',
    maxRows: 1000,
    cohortSize: 5,
    noise: { noiseMultiplier: z },
    segments: [
      { name: 'rows', length: 1, kind: 'count', maxPerRow: 1 },
      { name: 'histogram', length: 20, kind: 'count', maxPerRow: 1, maxRowL2: 1 },
      { name: 'loss', length: 2, kind: 'sum', maxPerRow: 5 },
      { name: 'shift', length: 3, kind: 'signed-sum', maxPerRow: 10 },
    ],
  });

/** The unmasked sum of the sites' encodings, as secure aggregation would hand it out. */
function ringSum(decl: ReturnType<typeof noised>, parts: Float64Array[], threshold: number, seed: string) {
  const words = toVectorSegments(decl).reduce((n, x) => n + x.lengthWords, 0);
  const total = new BigUint64Array(words);
  const plan = planSecureSumNoise(decl, threshold);
  parts.forEach((p, i) => {
    addRingVectors(total, encodeSecureSum(decl, p, { plan, bits: createSeededRandomBits(`${seed}/${i}`) }));
  });
  return total;
}

const site = (rows: number) => {
  const v = new Float64Array(1 + 20 + 2 + 3);
  v[0] = rows;
  v[1 + (rows % 20)] = rows;
  v[21] = rows * 0.7;
  v[22] = rows * 1.1;
  v[23] = -rows * 0.5;
  v[24] = rows * 0.25;
  v[25] = 3;
  return v;
};

describe('differential privacy on secure sums (distributed discrete Gaussian)', () => {
  it('charges ρ ≈ 1/(2z²) per sum: each of the S segments gets σ = z·√S·Δ', () => {
    for (const z of [0.05, 0.5, 1, 2, 8]) {
      for (const t of [3, 4, 7]) {
        const plan = planSecureSumNoise(noised(z), t);
        const target = 1 / (2 * z * z);
        // Shares are rounded up (less ρ; at least 1 each, so small σ gives much less) and real sums pay
        // their rounding slack √L (more ρ, tiny): never more than the target beyond that slack, and
        // equal to it when every share is large.
        assert.ok(plan.rho <= target * (1 + 1e-3), `z=${z} t=${t}: ρ ${plan.rho} above ${target}`);
        if (plan.segments.every((s) => s.shareVariance >= 1000n))
          assert.ok(Math.abs(plan.rho - target) / target < 1e-3, `z=${z} t=${t}: ρ ${plan.rho} vs ${target}`);
        for (const s of plan.segments) assert.ok(s.shareVariance >= 1n);
      }
    }
  });

  it('never plans less total noise than σ² on t shares, and ρ falls as z grows', () => {
    let previous = Number.POSITIVE_INFINITY;
    for (const z of [0.05, 0.3, 1, 3, 30, 1000]) {
      const decl = noised(z);
      const plan = planSecureSumNoise(decl, 4);
      decl.segments.forEach((s, i) => {
        const sigma = z * Math.sqrt(decl.segments.length) * s.maxRowL2;
        const g = plan.segments[i]!;
        // t·v ≥ (σ·2^e)²: the std on t shares, back in the segment's units, is at least σ.
        assert.ok(g.std >= sigma * (1 - 1e-9), `${s.name}: std ${g.std} < σ ${sigma}`);
        // At most σ (plus the rounding up of each share, at least one grid unit each).
        const floor = Math.sqrt(4) * 2 ** -g.gridBits;
        assert.ok(g.std <= Math.max(sigma * 1.01, floor), `${s.name}: std ${g.std} far above σ ${sigma}`);
      });
      assert.ok(plan.rho < previous);
      previous = plan.rho;
    }
  });

  it('a noised sum decodes near the exact total, with the planned spread', () => {
    const decl = noised(1);
    const parts = [site(100), site(250), site(400), site(77)];
    const exact = parts.reduce((acc, p) => acc.map((x, i) => x + p[i]!), new Float64Array(26));
    const plan = planSecureSumNoise(decl, 3);
    const trials = 300;
    const errors: number[][] = plan.segments.map(() => []);
    for (let trial = 0; trial < trials; trial++) {
      const out = decodeSecureSum(decl, ringSum(decl, parts, 3, `trial-${trial}`), 4, 3);
      let i = 0;
      decl.segments.forEach((s, k) => {
        for (let j = 0; j < s.length; j++, i++) errors[k]!.push(out[i]! - exact[i]!);
      });
    }
    plan.segments.forEach((g, k) => {
      const e = errors[k]!;
      const mean = e.reduce((a, b) => a + b, 0) / e.length;
      const sd = Math.sqrt(e.reduce((a, b) => a + (b - mean) ** 2, 0) / (e.length - 1));
      // Four contributors each add a share of variance v: the sum's std is √(4/3) that of t = 3 shares.
      const expected = g.std * Math.sqrt(4 / 3);
      assert.ok(Math.abs(sd / expected - 1) < 0.2, `${g.name}: sd ${sd} vs ${expected}`);
      assert.ok(Math.abs(mean) < (4 * expected) / Math.sqrt(e.length), `${g.name}: biased, mean ${mean}`);
    });
    // Counts stay whole numbers; a noised count may be drawn below zero and is published as drawn.
    const one = decodeSecureSum(decl, ringSum(decl, parts, 3, 'whole'), 4, 3);
    for (let i = 0; i < 21; i++) assert.ok(Number.isInteger(one[i]!));
  });

  it('the same seeds give the same noise; other seeds other noise (sampling is not a constant)', () => {
    const decl = noised(1);
    const parts = [site(10), site(20), site(30)];
    const a = decodeSecureSum(decl, ringSum(decl, parts, 3, 's'), 3, 3);
    const b = decodeSecureSum(decl, ringSum(decl, parts, 3, 's'), 3, 3);
    const c = decodeSecureSum(decl, ringSum(decl, parts, 3, 'other'), 3, 3);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('refuses to encode without the noise the declaration asks for, or with noise it does not', () => {
    const decl = noised(1);
    assert.equal(
      codeOf(() => encodeSecureSum(decl, site(5))),
      'INVALID_ARGUMENT noise',
    );
    const exact = declareStatisticsSum({ features: 2, maxRows: 10, maxAbsFeature: 1, cohortSize: 3 });
    const plan = planSecureSumNoise(decl, 3);
    assert.equal(
      codeOf(() => encodeSecureSum(exact, new Float64Array(5), { plan, bits: createSeededRandomBits('x') })),
      'INVALID_ARGUMENT noise',
    );
    assert.equal(
      codeOf(() => decodeSecureSum(decl, new BigUint64Array(31), 3)),
      'INVALID_ARGUMENT threshold',
    );
  });

  it('still refuses a total beyond the bounds plus the noise tail', () => {
    const decl = noised(1);
    const sum = ringSum(decl, [site(10), site(20), site(30)], 3, 'bound');
    sum[0] = BigInt(3 * 1000 + 10_000); // rows: 3 sites × 1000 rows, far beyond 12σ of noise
    assert.equal(
      codeOf(() => decodeSecureSum(decl, sum, 3, 3)),
      'PROTOCOL_VIOLATION sum.rows',
    );
  });

  it('checks the noise multiplier and the per-row L2 bound', () => {
    assert.equal(
      codeOf(() => noised(0)),
      'INVALID_CONFIG secureSum.noise.noiseMultiplier',
    );
    assert.equal(
      codeOf(() => noised(Number.NaN)),
      'INVALID_CONFIG secureSum.noise.noiseMultiplier',
    );
    assert.equal(
      codeOf(() =>
        declareSecureSum({
          purpose: 'evaluation',
          maxRows: 10,
          cohortSize: 3,
          segments: [{ name: 'h', length: 4, kind: 'count', maxPerRow: 1, maxRowL2: 3 }],
        }),
      ),
      'INVALID_CONFIG secureSum.segments.h.maxRowL2',
    );
  });

  it("an evaluation's segments declare one-hot sensitivities; a lower log-loss clip means less noise", () => {
    const spec = (maxRowLogLoss?: number) =>
      createEvaluationLayout({
        numClasses: 3,
        scoreBins: 100,
        calibrationBins: 10,
        dp: { noiseMultiplier: 1, ...(maxRowLogLoss ? { maxRowLogLoss } : {}) },
      } as never);
    const decl = declareEvaluationSum({ layout: spec(), maxRows: 1000, cohortSize: 3 });
    const l2 = Object.fromEntries(decl.segments.map((s) => [s.name, s.maxRowL2]));
    assert.equal(l2['overall.confusion'], 1);
    assert.equal(l2['overall.scoreHistogram'], Math.sqrt(3));
    assert.equal(l2['overall.logLoss'], 34.6);
    assert.deepEqual(decl.noise, { noiseMultiplier: 1 });
    const clipped = declareEvaluationSum({ layout: spec(5), maxRows: 1000, cohortSize: 3 });
    const std = (d: typeof decl) =>
      planSecureSumNoise(d, 3).segments.find((s) => s.name === 'overall.logLoss')!.std;
    assert.ok(std(clipped) < std(decl) / 6);
  });
});
