import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import {
  composeRdp,
  computeRdp,
  computeSubsampledGaussianRdp,
  computeTreeAggregationRdp,
  computeZcdpRdp,
  DEFAULT_RDP_ORDERS,
  OPACUS_RDP_ORDERS,
  TF_PRIVACY_RDP_ORDERS,
} from './rdp.ts';
import { convertRdpToEpsilon } from './rdp-conversion.ts';

const ORDERS = [1.5, 2, 2.5, 3.7, 6, 16, 48];
const rateArb = fc.double({ min: 1e-4, max: 0.5, noNaN: true });
const noiseArb = fc.double({ min: 0.5, max: 8, noNaN: true });
const stepsArb = fc.integer({ min: 1, max: 5000 });
const epsilonOf = (samplingRate: number, noiseMultiplier: number, steps: number, delta = 1e-5) =>
  convertRdpToEpsilon({
    orders: ORDERS,
    rdp: computeRdp({ samplingRate, noiseMultiplier, steps, orders: ORDERS }),
    delta,
  }).epsilon;
/** ≤ up to floating-point rounding of sums of ~100 terms. */
const leq = (a: number, b: number) => a <= b + 1e-12 * Math.max(1, Math.abs(b));
const invalid = (field: string) => (e: unknown) =>
  e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field;

describe('order lists', () => {
  it('match the libraries: dp_accounting 99 + 53 + 4, Opacus 99 + 52, TF Privacy 10 + 59 + 3', () => {
    assert.equal(DEFAULT_RDP_ORDERS.length, 156);
    assert.deepEqual(DEFAULT_RDP_ORDERS.slice(0, 3), [1.1, 1.2, 1.3]);
    assert.deepEqual(DEFAULT_RDP_ORDERS.slice(97, 101), [10.8, 10.9, 11, 12]);
    assert.deepEqual(DEFAULT_RDP_ORDERS.slice(-5), [63, 128, 256, 512, 1024]);
    assert.equal(OPACUS_RDP_ORDERS.length, 151);
    assert.deepEqual(OPACUS_RDP_ORDERS.slice(98, 100), [10.9, 12]);
    assert.equal(TF_PRIVACY_RDP_ORDERS.length, 72);
    assert.ok(Object.isFrozen(DEFAULT_RDP_ORDERS));
  });
});

describe('computeSubsampledGaussianRdp', () => {
  it('has the closed forms at the edges: q = 1 → α/(2z²), q = 0 → 0, z = 0 or α = ∞ → ∞', () => {
    assert.deepEqual(
      computeSubsampledGaussianRdp({ samplingRate: 1, noiseMultiplier: 2, orders: [1.5, 4] }),
      [1.5 / 8, 4 / 8],
    );
    assert.deepEqual(
      computeSubsampledGaussianRdp({ samplingRate: 0, noiseMultiplier: 0, orders: [2, Infinity] }),
      [0, 0],
    );
    assert.deepEqual(computeSubsampledGaussianRdp({ samplingRate: 0.1, noiseMultiplier: 0, orders: [2] }), [
      Infinity,
    ]);
    assert.deepEqual(
      computeSubsampledGaussianRdp({ samplingRate: 0.1, noiseMultiplier: 1, orders: [Infinity] }),
      [Infinity],
    );
  });

  it('integer orders equal the exact binomial sum; α = 2 has the closed form log(1 + q²(e^{1/z²} - 1))', () => {
    fc.assert(
      fc.property(rateArb, noiseArb, (q, z) => {
        const [r2] = computeSubsampledGaussianRdp({ samplingRate: q, noiseMultiplier: z, orders: [2] });
        const exact = Math.log1p(q * q * Math.expm1(1 / (z * z)));
        // Log-space sums lose ~1e-16 absolute on log A ≈ q²/z² (as in dp_accounting): relative 1e-7 at q = 1e-4.
        assert.ok(Math.abs(r2! - exact) <= 1e-10 * exact + 1e-15, `${r2} vs ${exact}`);
      }),
    );
  });

  it('is non-negative, and subsampling never hurts: RDP(q) ≤ RDP(1) (exact values: integer orders, signed series)', () => {
    // dp_accounting's |C| series at fractional orders is only an upper bound and can exceed α/(2z²)
    // (e.g. q = 0.29, z = 8, α = 1.5); we keep it identical to dp_accounting rather than clamp it.
    fc.assert(
      fc.property(rateArb, noiseArb, (q, z) => {
        const sub = computeSubsampledGaussianRdp({
          samplingRate: q,
          noiseMultiplier: z,
          orders: ORDERS,
          fractionalSeries: 'signed',
        });
        ORDERS.forEach((a, k) => {
          assert.ok(sub[k]! >= 0);
          // A fractional series that has not converged after 1000 terms excludes its order (Infinity).
          if (sub[k] === Infinity && !Number.isInteger(a)) return;
          assert.ok(leq(sub[k]!, a / (2 * z * z)), `α=${a}: ${sub[k]} > ${a / (2 * z * z)}`);
        });
      }),
    );
  });

  it('excludes a fractional order whose series does not converge in 1000 terms (Infinity, as dp_accounting)', () => {
    const rdp = computeSubsampledGaussianRdp({
      samplingRate: 0.0424,
      noiseMultiplier: 0.5,
      orders: [1.5, 2, 2.5],
    });
    assert.equal(rdp[0], Infinity);
    assert.ok(Number.isFinite(rdp[1]!) && Number.isFinite(rdp[2]!));
  });

  it("the signed (Opacus) series is never a finite value above dp_accounting's |C| series, and equal at integer orders", () => {
    // Where the signed series does not converge (low noise, e.g. q = 0.042, z = 0.5, order 1.5) it gives
    // Infinity: a conservative non-answer, never an understatement.
    fc.assert(
      fc.property(rateArb, noiseArb, (q, z) => {
        const base = { samplingRate: q, noiseMultiplier: z, orders: ORDERS };
        const abs = computeSubsampledGaussianRdp(base);
        const signed = computeSubsampledGaussianRdp({ ...base, fractionalSeries: 'signed' });
        ORDERS.forEach((a, k) => {
          if (Number.isInteger(a)) assert.equal(signed[k], abs[k]);
          else if (abs[k] !== Infinity && signed[k] !== Infinity)
            assert.ok(leq(signed[k]!, abs[k]!) && signed[k]! >= 0);
        });
      }),
    );
    const known = { samplingRate: 0.042332971388992675, noiseMultiplier: 0.5, orders: [1.5] };
    assert.equal(computeSubsampledGaussianRdp({ ...known, fractionalSeries: 'signed' })[0], Infinity);
    assert.ok(Number.isFinite(computeSubsampledGaussianRdp(known)[0]));
  });

  it('rejects invalid input naming the field', () => {
    const ok = { samplingRate: 0.1, noiseMultiplier: 1, orders: [2] };
    assert.throws(() => computeSubsampledGaussianRdp({ ...ok, samplingRate: 1.5 }), invalid('samplingRate'));
    assert.throws(
      () => computeSubsampledGaussianRdp({ ...ok, samplingRate: Number.NaN }),
      invalid('samplingRate'),
    );
    assert.throws(
      () => computeSubsampledGaussianRdp({ ...ok, noiseMultiplier: -1 }),
      invalid('noiseMultiplier'),
    );
    assert.throws(() => computeSubsampledGaussianRdp({ ...ok, orders: [] }), invalid('orders'));
    assert.throws(() => computeSubsampledGaussianRdp({ ...ok, orders: [1] }), invalid('orders'));
    assert.throws(() => computeRdp({ ...ok, steps: 1.5 }), invalid('steps'));
    assert.throws(() => computeRdp({ ...ok, steps: -1 }), invalid('steps'));
    const bad = { ...ok, fractionalSeries: 'exact' as unknown as 'signed' };
    assert.throws(() => computeSubsampledGaussianRdp(bad), invalid('fractionalSeries'));
  });
});

describe('composition and ε laws', () => {
  it('steps compose by multiplication; 0 steps → 0 even for an infinite RDP', () => {
    const one = computeSubsampledGaussianRdp({ samplingRate: 0.02, noiseMultiplier: 1.1, orders: ORDERS });
    const many = computeRdp({ samplingRate: 0.02, noiseMultiplier: 1.1, steps: 250, orders: ORDERS });
    for (const [k, r] of many.entries()) assert.equal(r, one[k]! * 250);
    assert.deepEqual(composeRdp([Infinity, 1], 0), [0, 0]);
  });

  it('ε never decreases with more steps', () => {
    fc.assert(
      fc.property(rateArb, noiseArb, stepsArb, fc.integer({ min: 1, max: 5000 }), (q, z, t, extra) => {
        assert.ok(leq(epsilonOf(q, z, t), epsilonOf(q, z, t + extra)));
      }),
      { numRuns: 40 },
    );
  });

  it('ε never decreases with a higher sampling rate', () => {
    fc.assert(
      fc.property(rateArb, rateArb, noiseArb, stepsArb, (q1, q2, z, t) => {
        const [lo, hi] = q1 <= q2 ? [q1, q2] : [q2, q1];
        assert.ok(leq(epsilonOf(lo, z, t), epsilonOf(hi, z, t)));
      }),
      { numRuns: 40 },
    );
  });

  it('ε never increases with more noise', () => {
    fc.assert(
      fc.property(rateArb, noiseArb, noiseArb, stepsArb, (q, z1, z2, t) => {
        const [lo, hi] = z1 <= z2 ? [z1, z2] : [z2, z1];
        assert.ok(leq(epsilonOf(q, hi, t), epsilonOf(q, lo, t)));
      }),
      { numRuns: 40 },
    );
  });
});

describe('computeZcdpRdp and computeTreeAggregationRdp', () => {
  it('ρ-zCDP is α·ρ; a discrete Gaussian with σ = z is the Gaussian curve α/(2z²)', () => {
    assert.deepEqual(computeZcdpRdp(0.25, [2, 10]), [0.5, 2.5]);
    assert.deepEqual(computeZcdpRdp(0, [2, Infinity]), [0, 0]);
    const z = 1.7;
    const dg = computeZcdpRdp(1 / (2 * z * z), ORDERS);
    const g = computeSubsampledGaussianRdp({ samplingRate: 1, noiseMultiplier: z, orders: ORDERS });
    for (const [k, r] of dg.entries()) assert.ok(Math.abs(r - g[k]!) < 1e-15);
    assert.throws(() => computeZcdpRdp(-1, [2]), invalid('rho'));
  });

  it('tree aggregation is α·⌈log2(T+1)⌉/(2z²) with the largest epoch', () => {
    const rdp = computeTreeAggregationRdp({ noiseMultiplier: 2, stepCounts: [7, 1600], orders: [2, 3] });
    assert.deepEqual(rdp, [(2 * 11) / 8, (3 * 11) / 8]);
    assert.deepEqual(computeTreeAggregationRdp({ noiseMultiplier: 2, stepCounts: 7, orders: [2] }), [
      (2 * 3) / 8,
    ]);
    assert.deepEqual(computeTreeAggregationRdp({ noiseMultiplier: 0, stepCounts: 7, orders: [2] }), [
      Infinity,
    ]);
    assert.throws(
      () => computeTreeAggregationRdp({ noiseMultiplier: 1, stepCounts: [], orders: [2] }),
      invalid('stepCounts'),
    );
    assert.throws(
      () => computeTreeAggregationRdp({ noiseMultiplier: 1, stepCounts: 0, orders: [2] }),
      invalid('stepCounts'),
    );
  });
});
