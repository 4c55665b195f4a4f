/** Tests of the random sources: determinism, ranges, uniformity without modulo bias, input checks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import {
  computeBitLength,
  createCryptoRandomBits,
  createSeededRandomBits,
  parseExactRational,
  sampleBernoulliRational,
} from './random-source.ts';

/** Chi-square statistic of counts against equal expected counts. */
function computeUniformChiSquare(counts: number[]): number {
  const n = counts.reduce((a, b) => a + b, 0);
  const e = n / counts.length;
  return counts.reduce((s, c) => s + (c - e) ** 2 / e, 0);
}

const throwsField = (fn: () => unknown, field: string): void =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
  );

describe('createSeededRandomBits', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = createSeededRandomBits('seed-1');
    const b = createSeededRandomBits('seed-1');
    const c = createSeededRandomBits('seed-2');
    const wa = Array.from({ length: 64 }, () => a.nextUint32());
    assert.deepEqual(
      wa,
      Array.from({ length: 64 }, () => b.nextUint32()),
    );
    assert.notDeepEqual(
      wa,
      Array.from({ length: 64 }, () => c.nextUint32()),
    );
    assert.ok(wa.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32));
  });

  it('rejects a non-string seed', () => {
    throwsField(() => createSeededRandomBits(42 as unknown as string), 'seed');
  });
});

describe('nextIntBelow / nextBigIntBelow', () => {
  it('is uniform below 6 and below 3·2^32 (multi-word rejection)', () => {
    const bits = createSeededRandomBits('uniform');
    const small = [0, 0, 0, 0, 0, 0];
    for (let i = 0; i < 60000; i++) small[bits.nextIntBelow(6)]!++;
    assert.ok(computeUniformChiSquare(small) < 30, `chi-square ${computeUniformChiSquare(small)} on 5 df`);
    const big = [0, 0, 0];
    const n = 3n * 2n ** 32n;
    for (let i = 0; i < 30000; i++) big[Number(bits.nextBigIntBelow(n) >> 32n)]!++;
    assert.ok(computeUniformChiSquare(big) < 25, `chi-square ${computeUniformChiSquare(big)} on 2 df`);
  });

  it('stays in [0, n) for any n (property)', () => {
    const bits = createSeededRandomBits('range');
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 2n ** 200n }), (n) => {
        for (let i = 0; i < 8; i++) {
          const x = bits.nextBigIntBelow(n);
          if (x < 0n || x >= n) return false;
        }
        return true;
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 32 }), (n) => {
        const x = bits.nextIntBelow(n);
        return Number.isInteger(x) && x >= 0 && x < n;
      }),
    );
  });

  it('rejects bounds outside their range', () => {
    const bits = createSeededRandomBits('bad');
    for (const n of [0, -1, 1.5, 2 ** 32 + 1, Number.NaN]) throwsField(() => bits.nextIntBelow(n), 'n');
    for (const n of [0n, -5n]) throwsField(() => bits.nextBigIntBelow(n), 'n');
  });
});

describe('createCryptoRandomBits', () => {
  it('refills its pool (words past the first 2048 are fresh, not zero or repeated blocks)', () => {
    const bits = createCryptoRandomBits();
    const words = Array.from({ length: 8192 }, () => bits.nextUint32());
    assert.ok(words.slice(2048).some((w) => w !== 0));
    assert.notDeepEqual(words.slice(0, 2048), words.slice(2048, 4096));
    assert.ok(new Set(words).size > 8180);
  });
});

describe('sampleBernoulliRational', () => {
  it('is exact at 0 and 1 and has the right frequency for small and huge denominators', () => {
    const bits = createSeededRandomBits('bernoulli');
    for (let i = 0; i < 200; i++) {
      assert.equal(sampleBernoulliRational({ num: 0n, den: 7n }, bits), false);
      assert.equal(sampleBernoulliRational({ num: 7n, den: 7n }, bits), true);
    }
    const n = 30000;
    for (const p of [
      { num: 1n, den: 3n },
      { num: 10n ** 30n, den: 3n * 10n ** 30n + 1n },
      { num: 2n ** 80n - 1n, den: 2n ** 81n }, // terminating expansion in base 2^32
    ]) {
      let hits = 0;
      for (let i = 0; i < n; i++) if (sampleBernoulliRational(p, bits)) hits++;
      const q = Number(p.num) / Number(p.den);
      const z = (hits - n * q) / Math.sqrt(n * q * (1 - q));
      assert.ok(Math.abs(z) < 5, `p = ${q}: z = ${z}`);
    }
  });

  it('rejects p outside [0, 1] or malformed', () => {
    const bits = createSeededRandomBits('x');
    throwsField(() => sampleBernoulliRational({ num: 4n, den: 3n }, bits), 'p');
    throwsField(() => sampleBernoulliRational({ num: -1n, den: 3n }, bits), 'p');
    throwsField(() => sampleBernoulliRational({ num: 1n, den: 0n }, bits), 'p');
    throwsField(
      () => sampleBernoulliRational({ num: 1, den: 2 } as unknown as { num: bigint; den: bigint }, bits),
      'p',
    );
  });
});

describe('helpers', () => {
  it('computeBitLength matches the binary representation', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 300n }),
        (x) => computeBitLength(x) === (x === 0n ? 0 : x.toString(2).length),
      ),
    );
  });

  it('parseExactRational reduces and checks sign', () => {
    assert.deepEqual(parseExactRational({ num: 6n, den: 4n }, 'f'), { num: 3n, den: 2n });
    assert.deepEqual(parseExactRational({ num: 0n, den: 4n }, 'f', true), { num: 0n, den: 1n });
    throwsField(() => parseExactRational({ num: 0n, den: 4n }, 'f'), 'f');
    throwsField(() => parseExactRational(null, 'f'), 'f');
  });
});
