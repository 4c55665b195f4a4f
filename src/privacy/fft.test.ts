/**
 * Tests of fft.ts against the O(N²) definitions: the DFT, linear convolution, and the n-fold circular
 * self-convolution (by repeated naive circular convolution), on random inputs from fast-check.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import {
  applyFft,
  computeCircularSelfConvolution,
  computeConvolution,
  computeNextPowerOfTwo,
  isPowerOfTwo,
} from './fft.ts';

function computeNaiveDft(re: number[], im: number[], inverse: boolean): [number[], number[]] {
  const n = re.length;
  const sign = inverse ? 1 : -1;
  const outRe: number[] = [];
  const outIm: number[] = [];
  for (let k = 0; k < n; k++) {
    let sr = 0;
    let si = 0;
    for (let j = 0; j < n; j++) {
      const angle = (sign * 2 * Math.PI * ((j * k) % n)) / n;
      sr += re[j]! * Math.cos(angle) - im[j]! * Math.sin(angle);
      si += re[j]! * Math.sin(angle) + im[j]! * Math.cos(angle);
    }
    outRe.push(inverse ? sr / n : sr);
    outIm.push(inverse ? si / n : si);
  }
  return [outRe, outIm];
}

const probabilityVector = (maxLength: number) =>
  fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength }).map((xs) => {
    const total = xs.reduce((a, b) => a + b, 0);
    // All zeros is not a probability vector: put the whole mass on the first point instead.
    if (!(total > 0)) return Float64Array.from(xs, (_, i) => (i === 0 ? 1 : 0));
    return Float64Array.from(xs, (x) => x / total);
  });

describe('fft', () => {
  it('matches the naive DFT, forward and inverse, for every power-of-two length up to 64', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 6 }),
        fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 128, maxLength: 128 }),
        fc.boolean(),
        (log2, values, inverse) => {
          const n = 2 ** log2;
          const re = values.slice(0, n);
          const im = values.slice(64, 64 + n);
          const [expectedRe, expectedIm] = computeNaiveDft(re, im, inverse);
          const actualRe = Float64Array.from(re);
          const actualIm = Float64Array.from(im);
          applyFft(actualRe, actualIm, inverse);
          for (let k = 0; k < n; k++) {
            assert.ok(Math.abs(actualRe[k]! - expectedRe[k]!) < 1e-12);
            assert.ok(Math.abs(actualIm[k]! - expectedIm[k]!) < 1e-12);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('round-trips a 2^16-point signal to ~1e-15', () => {
    const n = 2 ** 16;
    const re = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) ** 2);
    const im = new Float64Array(n);
    const original = re.slice();
    applyFft(re, im);
    applyFft(re, im, true);
    for (let i = 0; i < n; i++)
      assert.ok(Math.abs(re[i]! - original[i]!) < 1e-14 && Math.abs(im[i]!) < 1e-14);
  });

  it('linear convolution equals the naive sum and keeps total mass', () => {
    fc.assert(
      fc.property(probabilityVector(40), probabilityVector(40), (a, b) => {
        const c = computeConvolution(a, b);
        assert.equal(c.length, a.length + b.length - 1);
        let total = 0;
        for (let k = 0; k < c.length; k++) {
          let expected = 0;
          for (let i = Math.max(0, k - b.length + 1); i <= Math.min(k, a.length - 1); i++)
            expected += a[i]! * b[k - i]!;
          assert.ok(Math.abs(c[k]! - expected) < 1e-15, `c[${k}]`);
          assert.ok(c[k]! >= 0);
          total += c[k]!;
        }
        assert.ok(Math.abs(total - 1) < 1e-13);
      }),
      { numRuns: 50 },
    );
  });

  it('circular n-fold self-convolution equals repeated naive circular convolution', () => {
    fc.assert(
      fc.property(
        probabilityVector(16),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 4, max: 6 }),
        (x, times, log2) => {
          const size = 2 ** log2;
          let expected = new Float64Array(size);
          expected[0] = 1;
          for (let t = 0; t < times; t++) {
            const next = new Float64Array(size);
            for (let i = 0; i < size; i++)
              for (let j = 0; j < x.length; j++) next[(i + j) % size]! += expected[i]! * x[j]!;
            expected = next;
          }
          const actual = computeCircularSelfConvolution(x, times, size);
          for (let i = 0; i < size; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) < 1e-14, `entry ${i}`);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('power-of-two helpers and argument checks', () => {
    assert.equal(computeNextPowerOfTwo(1), 1);
    assert.equal(computeNextPowerOfTwo(5), 8);
    assert.equal(computeNextPowerOfTwo(1024), 1024);
    assert.ok(isPowerOfTwo(1) && isPowerOfTwo(4096) && !isPowerOfTwo(0) && !isPowerOfTwo(12));
    const invalid = (field: string) => (e: unknown) => e instanceof EntenteError && e.field === field;
    assert.throws(() => applyFft(new Float64Array(6), new Float64Array(6)), invalid('re'));
    assert.throws(() => computeConvolution(new Float64Array(0), Float64Array.of(1)), invalid('a'));
    assert.throws(() => computeCircularSelfConvolution(new Float64Array(9), 2, 8), invalid('size'));
    assert.throws(() => computeCircularSelfConvolution(Float64Array.of(1), 0, 8), invalid('times'));
    assert.throws(() => computeNextPowerOfTwo(0), invalid('n'));
  });
});
