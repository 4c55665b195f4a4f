/**
 * Tests of the CKS 2020 samplers: Bernoulli(exp(-γ)) frequencies (rational γ, and computable γ given by
 * deliberately loose bounds so that the refinement path runs), integer square root, determinism,
 * output types and integrality, input checks. Goodness of fit is in sampler-stats.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import {
  computeIntegerSqrt,
  sampleBernoulliExp,
  sampleBernoulliExpOfBounds,
  sampleDiscreteGaussian,
  sampleDiscreteGaussianVector,
  sampleDiscreteLaplace,
} from './discrete-gaussian.ts';
import { createSeededRandomBits, type RandomBits } from './random-source.ts';

const throwsField = (fn: () => unknown, field: string): void =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
  );

function checkFrequency(label: string, draw: () => boolean, p: number, n: number): void {
  let hits = 0;
  for (let i = 0; i < n; i++) if (draw()) hits++;
  const z = (hits - n * p) / Math.sqrt(n * p * (1 - p));
  assert.ok(Math.abs(z) < 5, `${label}: ${hits}/${n} vs p = ${p} (z = ${z.toFixed(2)})`);
}

describe('sampleBernoulliExp', () => {
  it('has frequency exp(-γ) for rational γ, including γ = 0 and γ > 1', () => {
    const bits = createSeededRandomBits('bexp');
    for (let i = 0; i < 100; i++) assert.equal(sampleBernoulliExp({ num: 0n, den: 5n }, bits), true);
    for (const [num, den] of [
      [1n, 2n],
      [1n, 1n],
      [5n, 2n],
      [10n ** 40n + 1n, 3n * 10n ** 39n], // γ ≈ 3.33 with a 130-bit denominator (lazy long division)
    ] as const) {
      const p = Math.exp(-Number(num) / Number(den));
      checkFrequency(`γ = ${num}/${den}`, () => sampleBernoulliExp({ num, den }, bits), p, 20000);
    }
  });

  it('rejects negative or malformed γ', () => {
    const bits = createSeededRandomBits('x');
    throwsField(() => sampleBernoulliExp({ num: -1n, den: 2n }, bits), 'gamma');
    throwsField(() => sampleBernoulliExp({ num: 1n, den: 0n }, bits), 'gamma');
  });
});

describe('sampleBernoulliExpOfBounds', () => {
  // ln 2 to 40 digits; bounds of width 2^-(p/2) around it, so early comparisons are often undecided
  const LN2 = 6931471805599453094172321214581765680755n;
  const LN2_SCALE = 10n ** 40n;
  const createLooseLn2 = (calls: number[]) => (p: number) => {
    calls.push(p);
    const centre = (LN2 << BigInt(p)) / LN2_SCALE;
    const slack = 1n << BigInt(Math.floor(p / 2));
    return [centre - slack, centre + slack + 1n] as const;
  };

  it('has frequency exp(-ln 2) = 1/2 for loose bounds, refining them when needed', () => {
    const bits = createSeededRandomBits('bounds');
    const calls: number[] = [];
    checkFrequency('γ = ln 2', () => sampleBernoulliExpOfBounds(createLooseLn2(calls), bits, 8), 0.5, 20000);
    assert.ok(
      calls.some((p) => p > 8),
      'the loose bounds were refined at least once',
    );
  });

  it('matches the rational sampler for exact bounds (γ = 7/3)', () => {
    const bits = createSeededRandomBits('exact-bounds');
    const bounds = (p: number) => {
      const v = (7n << BigInt(p)) / 3n;
      return [v, v + 1n] as const;
    };
    checkFrequency('γ = 7/3', () => sampleBernoulliExpOfBounds(bounds, bits), Math.exp(-7 / 3), 20000);
    assert.equal(
      sampleBernoulliExpOfBounds(() => [0n, 0n], bits),
      true,
    );
    throwsField(() => sampleBernoulliExpOfBounds(() => [-5n, -3n], bits), 'gamma');
  });
});

describe('computeIntegerSqrt', () => {
  it('returns ⌊√x⌋ (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 400n }), (x) => {
        const r = computeIntegerSqrt(x);
        return r * r <= x && (r + 1n) * (r + 1n) > x;
      }),
    );
    throwsField(() => computeIntegerSqrt(-1n), 'x');
  });
});

describe('discrete Gaussian and Laplace samplers', () => {
  it('are deterministic given the seed and return integers', () => {
    const draw = (bits: RandomBits) => sampleDiscreteGaussianVector({ num: 7n, den: 3n }, 500, bits);
    const a = draw(createSeededRandomBits('det'));
    assert.deepEqual(a, draw(createSeededRandomBits('det')));
    assert.notDeepEqual(a, draw(createSeededRandomBits('det2')));
    assert.ok(a instanceof Int32Array && a.some((x) => x !== 0));
  });

  it('always return bigints, symmetric in sign, for any rational parameter (property)', () => {
    const bits = createSeededRandomBits('prop');
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n ** 15n }),
        fc.bigInt({ min: 1n, max: 10n ** 6n }),
        (num, den) => {
          const g = sampleDiscreteGaussian({ num, den }, bits);
          const l = sampleDiscreteLaplace({ num, den }, bits);
          return typeof g === 'bigint' && typeof l === 'bigint';
        },
      ),
      { numRuns: 200 },
    );
    let positive = 0;
    let negative = 0;
    for (let i = 0; i < 4000; i++) {
      const y = sampleDiscreteGaussian({ num: 4n, den: 1n }, bits);
      if (y > 0n) positive++;
      if (y < 0n) negative++;
    }
    assert.ok(
      Math.abs(positive - negative) < 5 * Math.sqrt(positive + negative),
      `${positive} vs ${negative}`,
    );
  });

  it('chooses the vector type from σ and keeps huge σ exact', () => {
    const bits = createSeededRandomBits('types');
    assert.ok(sampleDiscreteGaussianVector({ num: 10n ** 12n, den: 1n }, 4, bits) instanceof Int32Array);
    const wide = sampleDiscreteGaussianVector({ num: 10n ** 20n, den: 1n }, 200, bits);
    assert.ok(wide instanceof BigInt64Array);
    let spread = 0n;
    for (const x of wide) if ((x < 0n ? -x : x) > spread) spread = x < 0n ? -x : x;
    assert.ok(spread > 10n ** 9n && spread < 10n ** 12n, `max |x| = ${spread} for σ = 1e10`);
    assert.equal(sampleDiscreteGaussianVector({ num: 1n, den: 1n }, 0, bits).length, 0);
  });

  it('rejects bad parameters', () => {
    const bits = createSeededRandomBits('bad');
    throwsField(() => sampleDiscreteGaussian({ num: 0n, den: 1n }, bits), 'sigmaSquared');
    throwsField(() => sampleDiscreteGaussian({ num: 1n, den: -1n }, bits), 'sigmaSquared');
    throwsField(() => sampleDiscreteLaplace({ num: 0n, den: 1n }, bits), 't');
    throwsField(() => sampleDiscreteGaussianVector({ num: 1n, den: 1n }, -1, bits), 'n');
    throwsField(() => sampleDiscreteGaussianVector({ num: 1n, den: 1n }, 1.5, bits), 'n');
    throwsField(() => sampleDiscreteGaussianVector({ num: 10n ** 31n, den: 1n }, 1, bits), 'sigmaSquared');
  });
});
