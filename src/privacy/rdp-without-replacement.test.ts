import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { computeSampledWithoutReplacementGaussianRdp as computeWor } from './rdp-without-replacement.ts';

const rateArb = fc.double({ min: 1e-4, max: 0.5, noNaN: true });
const noiseArb = fc.double({ min: 0.6, max: 8, noNaN: true });
const leq = (a: number, b: number) => a <= b + 1e-12 * Math.max(1, Math.abs(b));

describe('computeSampledWithoutReplacementGaussianRdp (WBK19 Thm 27)', () => {
  it('at α = 2 is log(1 + q²·min(4(e^{1/z²} - 1), 2e^{1/z²}))', () => {
    fc.assert(
      fc.property(rateArb, noiseArb, (q, z) => {
        const [r] = computeWor({ samplingRate: q, noiseMultiplier: z, orders: [2] });
        const e2 = 1 / (z * z);
        const exact = Math.log1p(q * q * Math.min(4 * Math.expm1(e2), 2 * Math.exp(e2)));
        assert.ok(Math.abs(r! - exact) <= 1e-9 * exact + 1e-15, `${r} vs ${exact}`);
      }),
    );
  });

  it('interpolates (α-1)·RDP linearly between integer orders (Corollary 10)', () => {
    const [r3, r35, r4] = computeWor({ samplingRate: 0.01, noiseMultiplier: 1.2, orders: [3, 3.5, 4] });
    assert.ok(Math.abs(r35! * 2.5 - (0.5 * r3! * 2 + 0.5 * r4! * 3)) < 1e-15);
  });

  it('is monotone: more noise never raises it, a higher sampling proportion never lowers it', () => {
    const orders = [2, 3, 5, 12, 40, 300];
    fc.assert(
      fc.property(rateArb, rateArb, noiseArb, noiseArb, (q1, q2, z1, z2) => {
        const [qLo, qHi] = q1 <= q2 ? [q1, q2] : [q2, q1];
        const [zLo, zHi] = z1 <= z2 ? [z1, z2] : [z2, z1];
        const base = computeWor({ samplingRate: qLo, noiseMultiplier: zLo, orders });
        const moreNoise = computeWor({ samplingRate: qLo, noiseMultiplier: zHi, orders });
        const moreRate = computeWor({ samplingRate: qHi, noiseMultiplier: zLo, orders });
        orders.forEach((_, k) => {
          assert.ok(leq(moreNoise[k]!, base[k]!));
          assert.ok(leq(base[k]!, moreRate[k]!));
        });
      }),
      { numRuns: 25 },
    );
  });

  it('has the closed forms at the edges and rejects invalid input', () => {
    assert.deepEqual(computeWor({ samplingRate: 1, noiseMultiplier: 2, orders: [3] }), [3 / 8]);
    assert.deepEqual(computeWor({ samplingRate: 0, noiseMultiplier: 2, orders: [3, Infinity] }), [0, 0]);
    assert.deepEqual(computeWor({ samplingRate: 0.1, noiseMultiplier: 2, orders: [Infinity] }), [Infinity]);
    assert.deepEqual(computeWor({ samplingRate: 0.1, noiseMultiplier: 0, orders: [2] }), [Infinity]);
    const invalid = (field: string) => (e: unknown) => e instanceof EntenteError && e.field === field;
    assert.throws(
      () => computeWor({ samplingRate: 2, noiseMultiplier: 1, orders: [2] }),
      invalid('samplingRate'),
    );
    assert.throws(
      () => computeWor({ samplingRate: 0.1, noiseMultiplier: -1, orders: [2] }),
      invalid('noiseMultiplier'),
    );
    assert.throws(
      () => computeWor({ samplingRate: 0.1, noiseMultiplier: 1, orders: [0.9] }),
      invalid('orders'),
    );
  });
});
