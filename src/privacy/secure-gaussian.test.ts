/**
 * Tests of the lattice (snapping) Gaussian: the granularity law σ/g ∈ [2^24, 2^25), every output an
 * exact multiple of g (fast-check over σ), the Mironov property (inputs that round to the same grid
 * point give bit-identical outputs for the same randomness), input checks. The Kolmogorov–Smirnov
 * test against Φ is in sampler-stats.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { createSeededRandomBits } from './random-source.ts';
import {
  applySecureGaussianNoise,
  computeSecureGaussianGranularity,
  SECURE_GAUSSIAN_GRID_BITS,
  sampleSecureGaussian,
} from './secure-gaussian.ts';

const throwsField = (fn: () => unknown, field: string): void =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
  );

const sigmaArbitrary = fc.double({ min: 2 ** -40, max: 2 ** 40, noNaN: true, noDefaultInfinity: true });

describe('computeSecureGaussianGranularity', () => {
  it('is the power of two with σ/g in [2^24, 2^25)', () => {
    assert.equal(computeSecureGaussianGranularity(1), 2 ** -24);
    assert.equal(computeSecureGaussianGranularity(3), 2 ** -23);
    assert.equal(computeSecureGaussianGranularity(0.75), 2 ** -25);
    assert.equal(computeSecureGaussianGranularity(2 - 2 ** -52), 2 ** -24);
    fc.assert(
      fc.property(sigmaArbitrary, (sigma) => {
        const g = computeSecureGaussianGranularity(sigma);
        const ratio = sigma / g;
        return Math.log2(g) % 1 === 0 && ratio >= 2 ** SECURE_GAUSSIAN_GRID_BITS && ratio < 2 ** 25;
      }),
    );
  });
});

describe('sampleSecureGaussian', () => {
  it('returns exact multiples of the grid step, with spread σ (property)', () => {
    const bits = createSeededRandomBits('grid');
    fc.assert(
      fc.property(sigmaArbitrary, (sigma) => {
        const g = computeSecureGaussianGranularity(sigma);
        const x = sampleSecureGaussian(sigma, bits, 64);
        const rms = Math.sqrt(x.reduce((a, b) => a + b * b, 0) / x.length);
        return x.every((v) => Number.isInteger(v / g)) && rms > sigma / 2 && rms < sigma * 2;
      }),
      { numRuns: 60 },
    );
  });

  it('rejects a bad σ or n', () => {
    const bits = createSeededRandomBits('bad');
    for (const sigma of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** -1000, 2 ** 1000])
      throwsField(() => sampleSecureGaussian(sigma, bits, 1), 'sigma');
    throwsField(() => sampleSecureGaussian(1, bits, -1), 'n');
  });
});

describe('applySecureGaussianNoise', () => {
  it('depends on the input only through its grid point (no low-order-bit leak)', () => {
    const sigma = 0.5;
    const g = computeSecureGaussianGranularity(sigma);
    const base = Float64Array.from([0.1, -3.25, 1e6 + 0.3, 1e-9, 0]);
    const nudged = base.map((x) => x + g / 4); // same nearest grid point
    const a = applySecureGaussianNoise(base, sigma, createSeededRandomBits('leak'));
    const b = applySecureGaussianNoise(nudged, sigma, createSeededRandomBits('leak'));
    assert.deepEqual(a, b);
    assert.ok(a.every((v) => Number.isInteger(v / g)));
    const noise = a.map((v, i) => v - Math.round(base[i]! / g) * g);
    assert.ok(noise.every((v) => Math.abs(v) < 10 * sigma) && noise.some((v) => v !== 0));
  });

  it('keeps huge values (already on the grid) and rejects non-finite ones', () => {
    const bits = createSeededRandomBits('huge');
    const g = computeSecureGaussianGranularity(1);
    const out = applySecureGaussianNoise(Float64Array.from([2 ** 80]), 1, bits);
    assert.ok(Number.isInteger(out[0]! / g) && Math.abs(out[0]! - 2 ** 80) <= 2 ** 28);
    throwsField(() => applySecureGaussianNoise(Float64Array.from([Number.NaN]), 1, bits), 'values');
    throwsField(() => applySecureGaussianNoise([1] as unknown as Float64Array, 1, bits), 'values');
  });
});
