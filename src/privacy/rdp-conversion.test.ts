import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { computeZcdpRdp, DEFAULT_RDP_ORDERS } from './rdp.ts';
import {
  convertApproxDpToZcdp,
  convertRdpToDelta,
  convertRdpToEpsilon,
  convertZcdpToDelta,
  convertZcdpToEpsilon,
} from './rdp-conversion.ts';

const invalid = (field: string) => (e: unknown) =>
  e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field;
const ORDERS = [1.005, 1.5, 2, 4, 8, 16, 32, 64];

describe('convertRdpToEpsilon / convertRdpToDelta', () => {
  it('is the improved bound r + log1p(-1/α) - log(δα)/(α-1) at the best order (α ≤ 1.01 ignored)', () => {
    const rdp = ORDERS.map((a) => a * 0.01);
    const { epsilon, order } = convertRdpToEpsilon({ orders: ORDERS, rdp, delta: 1e-5 });
    const candidates = ORDERS.map((a, k) =>
      a > 1.01 ? rdp[k]! + Math.log1p(-1 / a) - Math.log(1e-5 * a) / (a - 1) : Infinity,
    );
    assert.equal(epsilon, Math.min(...candidates));
    assert.equal(order, ORDERS[candidates.indexOf(epsilon)]);
  });

  it('round-trips: δ(ε(δ)) ≤ δ, and both are monotone', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e-4, max: 0.5, noNaN: true }),
        fc.double({ min: 1e-12, max: 1e-2, noNaN: true }),
        (rho, delta) => {
          const rdp = computeZcdpRdp(rho, DEFAULT_RDP_ORDERS);
          const { epsilon } = convertRdpToEpsilon({ orders: DEFAULT_RDP_ORDERS, rdp, delta });
          const back = convertRdpToDelta({ orders: DEFAULT_RDP_ORDERS, rdp, epsilon });
          assert.ok(back.delta <= delta * (1 + 1e-9), `${back.delta} > ${delta}`);
          const looser = convertRdpToEpsilon({ orders: DEFAULT_RDP_ORDERS, rdp, delta: delta * 10 });
          assert.ok(looser.epsilon <= epsilon);
        },
      ),
    );
  });

  it('handles the edges: KL shortcut → ε = 0, δ = 0 (pure DP at α = ∞), infinite RDP, δ capped at 1', () => {
    assert.deepEqual(convertRdpToEpsilon({ orders: [2, 4], rdp: [1e-12, 2e-12], delta: 0.1 }), {
      epsilon: 0,
      order: 2,
    });
    assert.deepEqual(convertRdpToEpsilon({ orders: [2, Infinity], rdp: [0.1, 0.7], delta: 0 }), {
      epsilon: 0.7,
      order: Infinity,
    });
    assert.equal(convertRdpToEpsilon({ orders: [2, 4], rdp: [0.1, 0.2], delta: 0 }).epsilon, Infinity);
    assert.equal(convertRdpToEpsilon({ orders: [2, 4], rdp: [0, 0], delta: 0 }).epsilon, 0);
    assert.equal(
      convertRdpToEpsilon({ orders: [2, 4], rdp: [Infinity, Infinity], delta: 1e-5 }).epsilon,
      Infinity,
    );
    assert.equal(convertRdpToDelta({ orders: [2, 4], rdp: [50, 60], epsilon: 0.1 }).delta, 1);
    assert.equal(convertRdpToDelta({ orders: [2, 4], rdp: [0, 0], epsilon: 0.1 }).delta, 0);
    assert.equal(convertRdpToDelta({ orders: [Infinity], rdp: [0.5], epsilon: 0.5 }).delta, 0);
  });

  it('rejects invalid input naming the field', () => {
    assert.throws(() => convertRdpToEpsilon({ orders: [2], rdp: [0.1], delta: -1 }), invalid('delta'));
    assert.throws(() => convertRdpToEpsilon({ orders: [2], rdp: [0.1], delta: 2 }), invalid('delta'));
    assert.throws(() => convertRdpToEpsilon({ orders: [2, 3], rdp: [0.1], delta: 1e-5 }), invalid('rdp'));
    assert.throws(() => convertRdpToEpsilon({ orders: [2], rdp: [-0.1], delta: 1e-5 }), invalid('rdp'));
    assert.throws(() => convertRdpToEpsilon({ orders: [0.5], rdp: [0.1], delta: 1e-5 }), invalid('orders'));
    assert.throws(() => convertRdpToDelta({ orders: [2], rdp: [0.1], epsilon: -1 }), invalid('epsilon'));
  });
});

describe('zCDP conversions (cdp2adp)', () => {
  it('are mutually consistent and never worse than the discrete order grid', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e-3, max: 2, noNaN: true }),
        fc.double({ min: 1e-10, max: 1e-3, noNaN: true }),
        (rho, delta) => {
          const epsilon = convertZcdpToEpsilon({ rho, delta });
          assert.ok(convertZcdpToDelta({ rho, epsilon }) <= delta);
          const grid = convertRdpToEpsilon({
            orders: DEFAULT_RDP_ORDERS,
            rdp: computeZcdpRdp(rho, DEFAULT_RDP_ORDERS),
            delta,
          });
          assert.ok(epsilon <= grid.epsilon + 1e-12, `${epsilon} > ${grid.epsilon}`);
          const back = convertApproxDpToZcdp({ epsilon, delta });
          assert.ok(Math.abs(back - rho) <= 1e-6 * rho, `${back} vs ${rho}`);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('handles ρ = 0 and δ = 1, and rejects invalid input', () => {
    assert.equal(convertZcdpToDelta({ rho: 0, epsilon: 1 }), 0);
    assert.equal(convertZcdpToEpsilon({ rho: 0, delta: 1e-6 }), 0);
    assert.equal(convertZcdpToEpsilon({ rho: 1, delta: 1 }), 0);
    assert.equal(convertApproxDpToZcdp({ epsilon: 1, delta: 1 }), 0);
    assert.throws(() => convertZcdpToEpsilon({ rho: -1, delta: 1e-6 }), invalid('rho'));
    assert.throws(() => convertZcdpToEpsilon({ rho: 1, delta: 0 }), invalid('delta'));
    assert.throws(() => convertZcdpToDelta({ rho: 1, epsilon: Number.NaN }), invalid('epsilon'));
    assert.throws(() => convertApproxDpToZcdp({ epsilon: -1, delta: 1e-6 }), invalid('epsilon'));
  });
});
