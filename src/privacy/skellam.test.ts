/**
 * Tests of the exact Poisson and Skellam samplers: integrality and sign laws (fast-check over rational
 * means on both sides of the μ = 64 switch), determinism, the small/large switch giving the same
 * distribution, vector types, input checks. Goodness of fit is in sampler-stats.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { createSeededRandomBits } from './random-source.ts';
import { MAX_POISSON_MEAN, samplePoisson, sampleSkellam, sampleSkellamVector } from './skellam.ts';

const throwsField = (fn: () => unknown, field: string): void =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
  );

describe('samplePoisson', () => {
  it('returns non-negative integers for any rational mean up to 2^48 (property)', () => {
    const bits = createSeededRandomBits('poisson-prop');
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 2n ** 40n }),
        fc.bigInt({ min: 1n, max: 2n ** 20n }),
        (num, den) => {
          const k = samplePoisson({ num, den }, bits);
          const mu = Number(num) / Number(den);
          // every draw lies within 40 standard deviations (+ 40) of μ; failure probability < 1e-300
          return typeof k === 'bigint' && k >= 0n && Math.abs(Number(k) - mu) < 40 * Math.sqrt(mu) + 40;
        },
      ),
      { numRuns: 150 },
    );
    const top = samplePoisson({ num: MAX_POISSON_MEAN, den: 1n }, bits);
    assert.ok(top > MAX_POISSON_MEAN - 2n ** 28n && top < MAX_POISSON_MEAN + 2n ** 28n);
  });

  it('gives the same mean just below and above the μ = 64 switch', () => {
    const bits = createSeededRandomBits('switch');
    const n = 4000;
    for (const [num, den] of [
      [6399n, 100n],
      [6401n, 100n],
    ] as const) {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += Number(samplePoisson({ num, den }, bits));
      const mu = Number(num) / Number(den);
      assert.ok(Math.abs(sum / n - mu) < 5 * Math.sqrt(mu / n), `μ = ${mu}: mean ${sum / n}`);
    }
  });

  it('rejects a mean that is not a positive rational ≤ 2^48', () => {
    const bits = createSeededRandomBits('bad');
    throwsField(() => samplePoisson({ num: 0n, den: 1n }, bits), 'mu');
    throwsField(() => samplePoisson({ num: -3n, den: 1n }, bits), 'mu');
    throwsField(() => samplePoisson({ num: 1n, den: 0n }, bits), 'mu');
    throwsField(() => samplePoisson({ num: MAX_POISSON_MEAN + 1n, den: 1n }, bits), 'mu');
    throwsField(() => samplePoisson(undefined as unknown as { num: bigint; den: bigint }, bits), 'mu');
  });
});

describe('sampleSkellam', () => {
  it('returns integers, deterministic given the seed, with both signs', () => {
    const draw = (seed: string) =>
      sampleSkellamVector({ num: 1000n, den: 3n }, 400, createSeededRandomBits(seed));
    const a = draw('sk');
    assert.ok(a instanceof Int32Array);
    assert.deepEqual(a, draw('sk'));
    assert.notDeepEqual(a, draw('sk2'));
    assert.ok(a.some((x) => x > 0) && a.some((x) => x < 0));
    const bits = createSeededRandomBits('scalar');
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 10n ** 9n }), fc.bigInt({ min: 1n, max: 1000n }), (num, den) => {
        const y = sampleSkellam({ num, den }, bits);
        return typeof y === 'bigint';
      }),
      { numRuns: 100 },
    );
  });

  it('switches to BigInt64Array above μ = 5·10^11 and rejects bad n', () => {
    const bits = createSeededRandomBits('types');
    const wide = sampleSkellamVector({ num: 10n ** 12n, den: 1n }, 3, bits);
    assert.ok(wide instanceof BigInt64Array);
    assert.ok(wide.every((x) => x > -(10n ** 8n) && x < 10n ** 8n));
    assert.equal(sampleSkellamVector({ num: 1n, den: 1n }, 0, bits).length, 0);
    throwsField(() => sampleSkellamVector({ num: 1n, den: 1n }, -2, bits), 'n');
    throwsField(() => sampleSkellamVector({ num: 0n, den: 1n }, 2, bits), 'mu');
  });
});
