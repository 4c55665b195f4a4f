import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { computeLog1mExp, computeLogAdd, computeLogErfc, computeLogSub } from './log-math.ts';

/** log(erfc(x)) from mpmath (50 digits), rounded to double. */
const LOG_ERFC_REFERENCE: ReadonlyArray<[number, number]> = [
  [-30, Math.LN2],
  [-5, 0.6931471805591766],
  [-2.0000001, 0.6908055746823593],
  [-2, 0.6908055736465877],
  [-1.9999, 0.6908045376670718],
  [-1, 0.6112323176780705],
  [-0.3, 0.28414589714140825],
  [0, 0],
  [1e-8, -1.1283791734617103e-8],
  [0.1, -0.11930497373739561],
  [0.5, -0.7350111298370844],
  [1, -1.8496055099332482],
  [1.5, -3.3844920895515527],
  [1.99999, -5.364897083100953],
  [2, -5.364941264616638],
  [2.0001, -5.365383089934763],
  [2.5, -7.806815272727264],
  [3, -10.720363041981113],
  [4, -17.987778312103007],
  [6, -38.37756117322339],
  [10, -102.87988902484489],
  [27, -732.8688865078974],
  [100, -10005.177585122665],
  [100000, -10000000012.08529],
];

const closeRel = (a: number, b: number, rtol: number) =>
  Math.abs(a - b) <= rtol * Math.max(Math.abs(b), 1e-300);

describe('computeLogErfc', () => {
  it('matches mpmath to 1e-13 relative, including far tails that erfc itself underflows', () => {
    for (const [x, expected] of LOG_ERFC_REFERENCE)
      assert.ok(closeRel(computeLogErfc(x), expected, 1e-13), `x=${x}: ${computeLogErfc(x)} vs ${expected}`);
  });
  it('is decreasing and continuous across the series/continued-fraction switch at ±2', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -8, max: 8, noNaN: true }),
        fc.double({ min: 1e-9, max: 1, noNaN: true }),
        (x, h) => {
          assert.ok(computeLogErfc(x + h) < computeLogErfc(x) + 1e-15);
        },
      ),
    );
    for (const edge of [-2, 2]) {
      const below = computeLogErfc(edge - 1e-12);
      const above = computeLogErfc(edge + 1e-12);
      assert.ok(Math.abs(below - above) < 1e-10, `jump at ${edge}`);
    }
    assert.ok(Number.isNaN(computeLogErfc(Number.NaN)));
  });
});

describe('log-space add/sub', () => {
  it('computeLogAdd/computeLogSub agree with direct arithmetic and are inverse', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -50, max: 50, noNaN: true }),
        fc.double({ min: -50, max: 50, noNaN: true }),
        (a, b) => {
          const sum = computeLogAdd(a, b);
          assert.ok(closeRel(Math.exp(sum), Math.exp(a) + Math.exp(b), 1e-12));
          const hi = Math.max(a, b);
          const lo = Math.min(a, b);
          if (hi - lo > 1e-6)
            assert.ok(Math.abs(computeLogSub(sum, lo) - hi) <= 1e-9 * Math.max(1, Math.abs(hi)));
        },
      ),
    );
    assert.equal(computeLogAdd(Number.NEGATIVE_INFINITY, 3), 3);
    assert.equal(computeLogSub(3, Number.NEGATIVE_INFINITY), 3);
    assert.equal(computeLogSub(3, 3), Number.NEGATIVE_INFINITY);
    assert.equal(computeLogAdd(1000, 1000), 1000 + Math.LN2);
  });
  it('computeLogSub rejects a negative difference; computeLog1mExp rejects x > 0', () => {
    assert.throws(
      () => computeLogSub(1, 2),
      (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT',
    );
    assert.throws(
      () => computeLog1mExp(0.1),
      (e: unknown) => e instanceof EntenteError && e.field === 'x',
    );
  });
  it('computeLog1mExp is accurate on both sides of -log 2', () => {
    assert.equal(computeLog1mExp(0), Number.NEGATIVE_INFINITY);
    assert.ok(closeRel(computeLog1mExp(-1e-20), Math.log(1e-20), 1e-15));
    assert.ok(closeRel(computeLog1mExp(-50), -Math.exp(-50), 1e-15));
    assert.ok(closeRel(computeLog1mExp(-0.5), Math.log(1 - Math.exp(-0.5)), 1e-14));
  });
});
