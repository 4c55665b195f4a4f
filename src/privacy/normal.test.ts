/**
 * Tests of normal.ts: Cody's erfc/erfcx and Φ, log Φ, Φ⁻¹ against values computed with mpmath 1.3 at
 * 40 significant digits (rounded to the nearest double), plus identities checked by fast-check.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import {
  computeErfc,
  computeErfcx,
  computeNormalCdf,
  computeNormalLogCdf,
  computeNormalQuantile,
} from './normal.ts';

function assertRelative(actual: number, expected: number, tolerance: number, label: string): void {
  const error = expected === 0 ? Math.abs(actual) : Math.abs(actual - expected) / Math.abs(expected);
  assert.ok(error <= tolerance, `${label}: got ${actual}, expected ${expected} (relative error ${error})`);
}

describe('normal distribution (mpmath references)', () => {
  it('erfc to ~1e-15 relative, into the far tail', () => {
    const cases: Array<[number, number]> = [
      [-2, 1.9953222650189528],
      [-0.3, 1.3286267594591274],
      [0.1, 0.887537083981715],
      [0.46875, 0.507386526782062],
      [0.5, 0.4795001221869535],
      [2, 0.004677734981047266],
      [4, 1.541725790028002e-8],
      [4.5, 1.9661604415428876e-10],
      [10, 2.088487583762545e-45],
      [26, 5.663192408856143e-296],
    ];
    for (const [x, expected] of cases) assertRelative(computeErfc(x), expected, 2e-15, `erfc(${x})`);
  });

  it('Φ to ~1e-15 relative in the lower tail, down to 1e-308', () => {
    const cases: Array<[number, number]> = [
      [-37.5, 4.605353009581955e-308],
      [-30, 4.906713927148187e-198],
      [-20, 2.7536241186062337e-89],
      [-10, 7.619853024160525e-24],
      [-5, 2.866515718791939e-7],
      [-1.5, 0.06680720126885807],
      [-0.5, 0.3085375387259869],
      [0, 0.5],
      [0.5, 0.6914624612740131],
      [2, 0.9772498680518208],
      [6, 0.9999999990134123],
    ];
    for (const [x, expected] of cases) assertRelative(computeNormalCdf(x), expected, 4e-15, `Φ(${x})`);
  });

  it('log Φ stays accurate where Φ underflows', () => {
    const cases: Array<[number, number]> = [
      [-1000, -500007.82669481216],
      [-45, -1017.2260942419524],
      [-30, -454.3212439563432],
      [-8, -35.01343715991455],
      [-1, -1.8410216450092636],
      [-0.2, -0.8657395226815953],
      [0.2, -0.5460043537227741],
      [3, -0.0013508099647481938],
      [9, -1.1285884059538405e-19],
    ];
    for (const [x, expected] of cases) assertRelative(computeNormalLogCdf(x), expected, 2e-15, `log Φ(${x})`);
    assert.equal(computeNormalLogCdf(Number.NEGATIVE_INFINITY), Number.NEGATIVE_INFINITY);
  });

  it('Φ⁻¹ at central and tail probabilities (the PLD truncation point p = e^{-50}/2 included)', () => {
    assertRelative(computeNormalQuantile(0.025), -1.9599639845400543, 2e-15, 'Φ⁻¹(0.025)');
    assertRelative(computeNormalQuantile(0.1), -1.2815515655446004, 2e-15, 'Φ⁻¹(0.1)');
    assertRelative(computeNormalQuantile(0.9), 1.2815515655446004, 2e-15, 'Φ⁻¹(0.9)');
    assert.ok(Math.abs(computeNormalQuantile(0.5)) < 1e-15);
    assertRelative(computeNormalQuantile(0.5 * Math.exp(-50)), -9.745474864965935, 2e-15, 'Φ⁻¹(e^-50/2)');
    assert.equal(computeNormalQuantile(0), Number.NEGATIVE_INFINITY);
    assert.equal(computeNormalQuantile(1), Number.POSITIVE_INFINITY);
  });

  it('μ-GDP trade-off of the vector v07 (μ = 1): TPR at FPR 0.1 is 0.38914', () => {
    const tpr = 1 - computeNormalCdf(computeNormalQuantile(0.9) - 1);
    assert.ok(Math.abs(tpr - 0.38914) < 1e-5);
  });

  it('rejects arguments outside the domain with INVALID_ARGUMENT naming the field', () => {
    for (const [call, field] of [
      [() => computeNormalQuantile(1.5), 'p'],
      [() => computeNormalQuantile(Number.NaN), 'p'],
      [() => computeErfcx(-1), 'x'],
    ] as const) {
      assert.throws(
        call,
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
      );
    }
  });
});

describe('normal distribution (properties)', () => {
  it('erfc(x) + erfc(-x) = 2, Φ(x) + Φ(-x) = 1 and erfcx(x)·e^{-x²} = erfc(x)', () => {
    fc.assert(
      fc.property(fc.double({ min: -6, max: 6, noNaN: true }), (x) => {
        assert.ok(Math.abs(computeErfc(x) + computeErfc(-x) - 2) < 4e-16 * 4);
        assert.ok(Math.abs(computeNormalCdf(x) + computeNormalCdf(-x) - 1) < 4e-16 * 4);
        const y = Math.abs(x);
        assertRelative(computeErfcx(y) * Math.exp(-y * y), computeErfc(y), 1e-13, `erfcx(${y})`);
      }),
    );
  });

  it('Φ⁻¹ inverts Φ to ~1e-14, and log Φ = log(Φ) where Φ does not underflow', () => {
    fc.assert(
      fc.property(fc.double({ min: -35, max: 8, noNaN: true }), (x) => {
        const p = computeNormalCdf(x);
        if (x <= 1) assert.ok(Math.abs(computeNormalQuantile(p) - x) <= 1e-14 * Math.max(1, Math.abs(x)));
        const reference = x <= 0 ? Math.log(p) : Math.log1p(-computeNormalCdf(-x));
        assertRelative(computeNormalLogCdf(x), reference, 1e-13, `log Φ(${x})`);
      }),
    );
  });

  it('Φ is non-decreasing', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -40, max: 10, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (x, h) => {
          assert.ok(computeNormalCdf(x + h) >= computeNormalCdf(x));
          assert.ok(computeNormalLogCdf(x + h) >= computeNormalLogCdf(x));
        },
      ),
    );
  });
});
