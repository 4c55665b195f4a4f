import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { createUniformSource } from './csprng.ts';
import { addRingVectors, type RingVector } from './mask-stream.ts';
import {
  checkRingCapacity,
  chooseQuantizationScale,
  computeDequantizationErrorBound,
  dequantizeSum,
  type QuantizationParams,
  quantizeInto,
  readSignedWord,
  writeIntegerWord,
} from './quantize.ts';

type Ring = 32 | 64;
/** Every float32 times 2^149 is an integer: exact rational arithmetic in BigInt. */
const F32_SHIFT = 2n ** 149n;
const emptyVector = (ring: Ring, n: number): RingVector =>
  ring === 32 ? new Uint32Array(n) : new BigUint64Array(n);
const seeded = (seed: number) => createUniformSource(new Uint8Array(32).fill(seed & 0xff));
const isConfigError = (field: string) => (e: unknown) =>
  e instanceof EntenteError && e.code === 'INVALID_CONFIG' && e.field === field;

describe('quantizeInto / dequantizeSum', () => {
  it('the dequantized sum is within the stated bound of the exact sum of clipped inputs (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Ring>(32, 64),
        fc.constantFrom(0.5, 1, 3, 100),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 24 }),
        fc.integer({ min: 0, max: 255 }),
        (ring, clipRange, participants, length, seed) => {
          const maxParticipants = participants + 2;
          const scale = chooseQuantizationScale({
            maxParticipants,
            maxWeight: 1000,
            ringBits: ring,
            clipRange,
          });
          const params: QuantizationParams = { ringBits: ring, clipRange, scale };
          const uniform = seeded(seed);
          const sum = emptyVector(ring, length);
          const exact = new Array<bigint>(length).fill(0n);
          let clippedExpected = 0;
          let clippedReported = 0;
          for (let p = 0; p < participants; p++) {
            const values = Float32Array.from({ length }, () => {
              const w = new Uint32Array(2);
              uniform.fillUint32(w);
              return (w[0]! / 2 ** 32 - 0.5) * 3 * clipRange * (w[1]! % 2 === 0 ? 1 : 2 ** -20);
            });
            const encoded = emptyVector(ring, length);
            clippedReported += quantizeInto(values, encoded, 0, params, uniform).clipped;
            addRingVectors(sum, encoded);
            values.forEach((v, i) => {
              const c = Math.min(clipRange, Math.max(-clipRange, v));
              if (Math.abs(v) > clipRange) clippedExpected++;
              exact[i] = exact[i]! + BigInt(c * 2 ** 149);
            });
          }
          assert.equal(clippedReported, clippedExpected);
          const bound = computeDequantizationErrorBound(participants, params);
          assert.equal(bound, participants / scale);
          const result = dequantizeSum(sum, params);
          result.forEach((d, i) => {
            // |d - exact| < participants / scale  <=>  |d·scale·2^149 - exact·2^149·scale| < participants·2^149
            const lhs = BigInt(d * scale) * F32_SHIFT - exact[i]! * BigInt(scale);
            assert.ok((lhs < 0n ? -lhs : lhs) < BigInt(participants) * F32_SHIFT, `coordinate ${i}`);
            assert.ok(Math.abs(d - Number(exact[i]!) / 2 ** 149) <= bound * (1 + 1e-9));
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  it('rounds stochastically without bias (loose statistical check)', () => {
    const n = 20_000;
    for (const ring of [32, 64] as const) {
      for (const v of [0.3, -0.7, 2.125]) {
        const params: QuantizationParams = { ringBits: ring, clipRange: 4, scale: 1 };
        const out = emptyVector(ring, n);
        quantizeInto(new Float32Array(n).fill(v), out, 0, params, seeded(7));
        let mean = 0;
        const f = Math.fround(v);
        for (let i = 0; i < n; i++) {
          const q = readSignedWord(out, i);
          assert.ok(q === Math.floor(f) || q === Math.floor(f) + 1, `q ${q}`);
          mean += q / n;
        }
        // sd of the mean <= 0.5/sqrt(n) ≈ 0.0035; allow ~6 sd.
        assert.ok(Math.abs(mean - f) < 0.02, `ring ${ring} v ${v} mean ${mean}`);
      }
    }
  });

  it('round-trips exactly representable negative and positive values (both rings, offsets)', () => {
    const values = Float32Array.from([-1.5, -0.25, 0, -0, 0.75, -2, 2]);
    for (const ring of [32, 64] as const) {
      const params: QuantizationParams = { ringBits: ring, clipRange: 2, scale: 2 ** 10 };
      const out = emptyVector(ring, values.length + 3);
      const result = quantizeInto(values, out, 2, params, seeded(1));
      assert.equal(result.clipped, 0);
      assert.deepEqual(
        Array.from(dequantizeSum(out, params, 2, values.length)),
        Array.from(values, (v) => v + 0),
      );
      assert.equal(readSignedWord(out, 2), -1.5 * 1024);
      assert.equal(readSignedWord(out, 0), 0);
      assert.equal(readSignedWord(out, values.length + 2), 0);
      if (ring === 32) assert.equal((out as Uint32Array)[2], 2 ** 32 - 1536);
      else assert.equal((out as BigUint64Array)[2], 2n ** 64n - 1536n);
    }
  });

  it('clips to ±clipRange and counts clipped values', () => {
    const params: QuantizationParams = { ringBits: 32, clipRange: 1, scale: 8 };
    const out = new Uint32Array(5);
    const { clipped } = quantizeInto(Float32Array.from([5, -5, 1, -1, 0.5]), out, 0, params, seeded(2));
    assert.equal(clipped, 2);
    assert.deepEqual(Array.from(dequantizeSum(out, params)), [1, -1, 1, -1, 0.5]);
  });

  it('refuses NaN and Infinity with INVALID_TENSOR naming the index, before writing', () => {
    const params: QuantizationParams = { ringBits: 32, clipRange: 1, scale: 8 };
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const out = new Uint32Array(3);
      assert.throws(
        () => quantizeInto(Float32Array.from([0.5, 0.5, bad]), out, 0, params, seeded(3)),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_TENSOR' && e.field === 'values[2]',
      );
      assert.deepEqual(out, new Uint32Array(3));
    }
  });

  it('refuses a ring that does not match, a segment that does not fit, or a scale that cannot fit', () => {
    const params: QuantizationParams = { ringBits: 64, clipRange: 1, scale: 8 };
    const invalid = (field: string) => (e: unknown) =>
      e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field;
    assert.throws(
      () => quantizeInto(new Float32Array(2), new Uint32Array(2), 0, params, seeded(0)),
      invalid('out'),
    );
    assert.throws(
      () => quantizeInto(new Float32Array(3), new BigUint64Array(2), 0, params, seeded(0)),
      invalid('offset'),
    );
    assert.throws(
      () =>
        quantizeInto(
          new Float32Array(1),
          new Uint32Array(1),
          0,
          { ringBits: 32, clipRange: 1, scale: 2 ** 31 },
          seeded(0),
        ),
      invalid('params.scale'),
    );
    assert.throws(() => dequantizeSum(new Uint32Array(2), params), invalid('sum'));
    assert.throws(() => dequantizeSum(new BigUint64Array(2), params, 1, 2), invalid('length'));
  });
});

describe('integer words', () => {
  it('writeIntegerWord / readSignedWord round-trip exact integers (both rings)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.maxSafeNat(), (small, big) => {
        const a = new Uint32Array(3);
        writeIntegerWord(a, 1, small);
        assert.equal(readSignedWord(a, 1), small);
        const b = new BigUint64Array(3);
        writeIntegerWord(b, 2, big);
        assert.equal(readSignedWord(b, 2), big);
        assert.equal(b[2], BigInt(big));
        assert.equal(readSignedWord(b, 0), 0);
      }),
    );
    assert.equal(readSignedWord(new BigUint64Array([2n ** 64n - 5n]), 0), -5);
    assert.equal(readSignedWord(new Uint32Array([2 ** 32 - 5]), 0), -5);
  });

  it('refuses negative, fractional, out-of-range values and indices', () => {
    const isInvalid = (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT';
    assert.throws(() => writeIntegerWord(new Uint32Array(1), 0, -1), isInvalid);
    assert.throws(() => writeIntegerWord(new Uint32Array(1), 0, 0.5), isInvalid);
    assert.throws(() => writeIntegerWord(new Uint32Array(1), 0, 2 ** 31), isInvalid);
    assert.throws(() => writeIntegerWord(new BigUint64Array(1), 0, 2 ** 53), isInvalid);
    assert.throws(() => writeIntegerWord(new Uint32Array(1), 1, 0), isInvalid);
    assert.throws(() => readSignedWord(new Uint32Array(1), 1), isInvalid);
    assert.throws(() => readSignedWord(new BigUint64Array([2n ** 60n]), 0), isInvalid);
  });
});

describe('ring capacity', () => {
  it('refuses a configuration whose sum could wrap', () => {
    const params: QuantizationParams = { ringBits: 32, clipRange: 1, scale: 2 ** 28 };
    assert.throws(
      () => checkRingCapacity({ maxParticipants: 10, maxWeight: 1, params }),
      isConfigError('secureAggregation.scale'),
    );
    checkRingCapacity({ maxParticipants: 7, maxWeight: 1, params }); // 7·(2^28+1) < 2^31
    assert.throws(
      () => checkRingCapacity({ maxParticipants: 8, maxWeight: 1, params }), // 8·(2^28+1) >= 2^31
      isConfigError('secureAggregation.scale'),
    );
    assert.throws(
      () => checkRingCapacity({ maxParticipants: 4, maxWeight: 2 ** 29, params: { ...params, scale: 1 } }),
      isConfigError('secureAggregation.maxWeight'),
    );
    assert.throws(
      () =>
        checkRingCapacity({
          maxParticipants: 4,
          maxWeight: 2 ** 51,
          params: { ringBits: 64, clipRange: 1, scale: 1 },
        }),
      isConfigError('secureAggregation.maxWeight'),
    );
    assert.throws(
      () => checkRingCapacity({ maxParticipants: 0, maxWeight: 1, params }),
      isConfigError('secureAggregation.maxParticipants'),
    );
  });

  it('accepts the chosen scale, a power of two, and refuses twice it (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Ring>(32, 64),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.double({ min: 1e-3, max: 1e3, noNaN: true }),
        (ringBits, maxParticipants, maxWeight, clipRange) => {
          const input = { maxParticipants, maxWeight, ringBits, clipRange };
          let atOne: unknown = null;
          try {
            checkRingCapacity({ maxParticipants, maxWeight, params: { ringBits, clipRange, scale: 1 } });
          } catch (e) {
            atOne = e;
          }
          if (atOne instanceof EntenteError) {
            assert.throws(() => chooseQuantizationScale(input), isConfigError(atOne.field!));
            return;
          }
          const scale = chooseQuantizationScale(input);
          assert.ok(scale >= 1 && Number.isInteger(Math.log2(scale)));
          checkRingCapacity({ maxParticipants, maxWeight, params: { ringBits, clipRange, scale } });
          assert.throws(
            () =>
              checkRingCapacity({
                maxParticipants,
                maxWeight,
                params: { ringBits, clipRange, scale: scale * 2 },
              }),
            isConfigError('secureAggregation.scale'),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('chooseQuantizationScale throws INVALID_CONFIG when not even scale 1 fits', () => {
    assert.throws(
      () =>
        chooseQuantizationScale({ maxParticipants: 2 ** 20, maxWeight: 1, ringBits: 32, clipRange: 4096 }),
      isConfigError('secureAggregation.scale'),
    );
    assert.throws(
      () =>
        chooseQuantizationScale({ maxParticipants: 2 ** 20, maxWeight: 2 ** 12, ringBits: 32, clipRange: 1 }),
      isConfigError('secureAggregation.maxWeight'),
    );
  });
});
