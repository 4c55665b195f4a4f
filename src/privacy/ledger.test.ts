import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { type PrivacyEvent, checkPrivacyBudget, computeLedgerEpsilon } from './ledger.ts';
import { convertRdpToEpsilon } from './rdp-conversion.ts';
import { DEFAULT_RDP_ORDERS, computeRdp } from './rdp.ts';

const round = (run: string, r: number, steps = 100): PrivacyEvent => ({
  run,
  round: r,
  mechanism: 'subsampled-gaussian',
  noiseMultiplier: 1.1,
  samplingRate: 0.01,
  steps,
  neighbouring: 'add-remove-record',
});

describe('privacy ledger', () => {
  it('composes events exactly as one accountant call over all their steps', () => {
    const ledger = [round('a', 1, 300), round('a', 2, 700)];
    const direct = convertRdpToEpsilon({
      orders: DEFAULT_RDP_ORDERS,
      rdp: computeRdp({ samplingRate: 0.01, noiseMultiplier: 1.1, steps: 1000, orders: DEFAULT_RDP_ORDERS }),
      delta: 1e-5,
    });
    const viaLedger = computeLedgerEpsilon(ledger, 1e-5);
    assert.ok(Math.abs(viaLedger.epsilon - direct.epsilon) < 1e-12);
    assert.equal(computeLedgerEpsilon([], 1e-5).epsilon, 0);
  });

  it('ε never decreases as events are added (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            z: fc.double({ min: 0.5, max: 5, noNaN: true }),
            q: fc.double({ min: 0.001, max: 1, noNaN: true }),
            steps: fc.integer({ min: 1, max: 500 }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        (specs) => {
          let previous = 0;
          const events: PrivacyEvent[] = [];
          for (const [i, s] of specs.entries()) {
            events.push({ ...round('r', i), noiseMultiplier: s.z, samplingRate: s.q, steps: s.steps });
            const eps = computeLedgerEpsilon(events, 1e-5).epsilon;
            assert.ok(eps >= previous - 1e-12, `${eps} < ${previous}`);
            previous = eps;
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refuses a round that would exceed the per-run or the total budget, and says which', () => {
    const ledger = [round('a', 1), round('a', 2), round('b', 1)];
    const budget = { perRun: { epsilon: 10, delta: 1e-5 }, total: { epsilon: 10, delta: 1e-5 } };
    assert.ok(checkPrivacyBudget({ ledger, proposed: round('a', 3), budget }).ok);
    const spentRun = computeLedgerEpsilon([round('a', 1), round('a', 2), round('a', 3)], 1e-5).epsilon;
    const tight = { perRun: { epsilon: spentRun * 0.99, delta: 1e-5 } };
    const v = checkPrivacyBudget({ ledger, proposed: round('a', 3), budget: tight });
    assert.equal(v.ok, false);
    assert.match(v.ok ? '' : v.reason, /per-run budget/);
    const spentAll = computeLedgerEpsilon([...ledger, round('a', 3)], 1e-5).epsilon;
    const v2 = checkPrivacyBudget({
      ledger,
      proposed: round('a', 3),
      budget: { total: { epsilon: spentAll * 0.99, delta: 1e-5 } },
    });
    assert.equal(v2.ok, false);
    assert.match(v2.ok ? '' : v2.reason, /total budget/);
    // Another run's events do not count against this run's budget.
    assert.ok(
      checkPrivacyBudget({ ledger: [round('b', 1, 5000)], proposed: round('a', 1), budget: tight }).ok,
    );
  });

  it('refuses malformed events naming the field', () => {
    assert.throws(
      () => computeLedgerEpsilon([{ ...round('a', 1), samplingRate: 2 }], 1e-5),
      (e: unknown) => e instanceof EntenteError && e.field === 'events.0.samplingRate',
    );
  });
});
