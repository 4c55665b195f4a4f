import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { sampleDirichlet, sampleGamma, sampleLogGamma } from './dirichlet.ts';

describe('sampleGamma (Marsaglia–Tsang)', () => {
  for (const shape of [0.3, 1, 4.5]) {
    it(`has mean and variance ~ ${shape} for shape ${shape}`, () => {
      const rng = createSeededRng(`gamma-${shape}`);
      const n = 20000;
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < n; i++) {
        const g = sampleGamma(rng, shape);
        assert.ok(g >= 0);
        s += g;
        s2 += g * g;
      }
      const mean = s / n;
      const variance = s2 / n - mean * mean;
      // Gamma(k, 1): mean k, variance k; 5 standard errors of the mean.
      assert.ok(Math.abs(mean - shape) < 5 * Math.sqrt(shape / n), `mean ${mean}`);
      assert.ok(Math.abs(variance - shape) < 0.1 * shape, `variance ${variance}`);
    });
  }

  it('stays finite in log space for tiny shapes', () => {
    const rng = createSeededRng('tiny');
    for (let i = 0; i < 100; i++) assert.ok(Number.isFinite(sampleLogGamma(rng, 1e-4)));
  });

  it('rejects a non-positive shape', () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(
        () => sampleGamma(createSeededRng('x'), bad),
        (e: unknown) => e instanceof EntenteError && e.field === 'shape',
      );
    }
  });
});

describe('sampleDirichlet', () => {
  it('returns a probability vector, deterministic per seed (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.double({ min: 1e-3, max: 1e3, noNaN: true }),
        fc.string(),
        (k, alpha, seed) => {
          const p = sampleDirichlet(createSeededRng(seed), k, alpha);
          assert.equal(p.length, k);
          assert.ok(p.every((v) => v >= 0 && v <= 1));
          assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
          assert.deepEqual(sampleDirichlet(createSeededRng(seed), k, alpha), p);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('has mean 1/k per component', () => {
    const rng = createSeededRng('dirichlet-mean');
    const k = 4;
    const sums = new Float64Array(k);
    for (let i = 0; i < 5000; i++) {
      const p = sampleDirichlet(rng, k, 0.5);
      for (let j = 0; j < k; j++) sums[j] = sums[j]! + p[j]!;
    }
    for (const s of sums) assert.ok(Math.abs(s / 5000 - 1 / k) < 0.02, `mean ${s / 5000}`);
  });

  it('validates k and alpha', () => {
    const rng = createSeededRng('x');
    assert.throws(
      () => sampleDirichlet(rng, 0, 1),
      (e: unknown) => e instanceof EntenteError && e.field === 'k',
    );
    assert.throws(
      () => sampleDirichlet(rng, 3, 0),
      (e: unknown) => e instanceof EntenteError && e.field === 'alpha',
    );
  });
});
