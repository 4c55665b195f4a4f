import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import {
  addRingVectors,
  applyMaskStream,
  applyMaskStreams,
  type RingVector,
  subtractRingVectors,
} from './mask-stream.ts';

type Ring = 32 | 64;
const MOD64 = 2n ** 64n;
/** Words per 64 KiB chunk: lengths beyond these cross a keystream chunk boundary. */
const CHUNK_WORDS = { 32: 16384, 64: 8192 } as const;

function keystream(key: Uint8Array, bytes: number): Buffer {
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(bytes));
}

function randomVector(ring: Ring, length: number): RingVector {
  const bytes = randomBytes(length * (ring / 8));
  return ring === 32
    ? new Uint32Array(bytes.buffer, bytes.byteOffset, length).slice()
    : new BigUint64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

function emptyVector(ring: Ring, length: number): RingVector {
  return ring === 32 ? new Uint32Array(length) : new BigUint64Array(length);
}

function toBigInts(v: RingVector): bigint[] {
  return Array.from(v as ArrayLike<number | bigint>, (x) => BigInt(x));
}

const ringArb = fc.constantFrom<Ring>(32, 64);
const keyArb = fc.uint8Array({ minLength: 16, maxLength: 16 });
const isInvalid = (field: string) => (e: unknown) =>
  e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field;

describe('applyMaskStream', () => {
  it('equals the AES-128-CTR keystream read as little-endian words (both rings, across chunks)', () => {
    for (const ring of [32, 64] as const) {
      for (const length of [1, 5, CHUNK_WORDS[ring] + 3]) {
        const key = randomBytes(16);
        const target = emptyVector(ring, length);
        applyMaskStream(target, key, 1);
        const ks = keystream(key, length * (ring / 8));
        const expected = Array.from({ length }, (_, i) =>
          ring === 32 ? BigInt(ks.readUInt32LE(4 * i)) : ks.readBigUInt64LE(8 * i),
        );
        assert.deepEqual(toBigInts(target), expected, `ring ${ring} length ${length}`);
      }
    }
  });

  it('matches a BigInt reference for +/- on random targets, including 64-bit carries and borrows', () => {
    fc.assert(
      fc.property(
        ringArb,
        keyArb,
        fc.integer({ min: 1, max: 40 }),
        fc.constantFrom<1 | -1>(1, -1),
        (ring, key, n, sign) => {
          const target = randomVector(ring, n);
          const before = toBigInts(target);
          applyMaskStream(target, key, sign);
          const ks = keystream(key, n * (ring / 8));
          const mod = ring === 32 ? 2n ** 32n : MOD64;
          const expected = before.map((x, i) => {
            const k = ring === 32 ? BigInt(ks.readUInt32LE(4 * i)) : ks.readBigUInt64LE(8 * i);
            return (((x + BigInt(sign) * k) % mod) + mod) % mod;
          });
          assert.deepEqual(toBigInts(target), expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('+mask then -mask restores the original (property, both rings)', () => {
    fc.assert(
      fc.property(ringArb, keyArb, fc.integer({ min: 0, max: 300 }), (ring, key, n) => {
        const target = randomVector(ring, n);
        const original = target.slice();
        applyMaskStream(target, key, 1);
        if (n > 4) assert.notDeepEqual(target, original);
        applyMaskStream(target, key, -1);
        assert.deepEqual(target, original);
      }),
      { numRuns: 200 },
    );
  });

  it('pairwise masks of a random participant set cancel in the sum (property, both rings)', () => {
    fc.assert(
      fc.property(
        ringArb,
        fc.integer({ min: 2, max: 7 }),
        fc.integer({ min: 1, max: 64 }),
        (ring, parties, n) => {
          const inputs = Array.from({ length: parties }, () => randomVector(ring, n));
          const masked = inputs.map((x) => x.slice());
          for (let i = 0; i < parties; i++)
            for (let j = i + 1; j < parties; j++) {
              const key = randomBytes(16); // stands for the agreed key s_ij
              applyMaskStream(masked[i]!, key, 1);
              applyMaskStream(masked[j]!, key, -1);
            }
          const sumInputs = emptyVector(ring, n);
          const sumMasked = emptyVector(ring, n);
          for (let i = 0; i < parties; i++) {
            addRingVectors(sumInputs, inputs[i]!);
            addRingVectors(sumMasked, masked[i]!);
            assert.notDeepEqual(masked[i], inputs[i]);
          }
          assert.deepEqual(sumMasked, sumInputs);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('different keys give different streams; the stream is a prefix independent of length', () => {
    const key = randomBytes(16);
    const other = Uint8Array.from(key);
    other[15]! ^= 1;
    const a = new Uint32Array(64);
    const b = new Uint32Array(64);
    applyMaskStream(a, key, 1);
    applyMaskStream(b, other, 1);
    assert.notDeepEqual(a, b);
    const long = new Uint32Array(CHUNK_WORDS[32] * 2 + 1);
    applyMaskStream(long, key, 1);
    assert.deepEqual(long.subarray(0, 64), a);
  });

  it('masks only the segment [offsetWords, offsetWords + lengthWords), stream from counter 0', () => {
    fc.assert(
      fc.property(
        ringArb,
        keyArb,
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 0, max: 50 }),
        (ring, key, before, length, after) => {
          const target = randomVector(ring, before + length + after);
          const original = target.slice();
          applyMaskStream(target, key, 1, before, length);
          const alone = original.slice(before, before + length);
          applyMaskStream(alone, key, 1);
          assert.deepEqual(target.slice(before, before + length), alone);
          assert.deepEqual(target.slice(0, before), original.slice(0, before));
          assert.deepEqual(target.slice(before + length), original.slice(before + length));
        },
      ),
      { numRuns: 200 },
    );
    // offset only: mask runs to the end
    const v = new Uint32Array(10);
    applyMaskStream(v, new Uint8Array(16), 1, 7);
    assert.deepEqual(v.subarray(0, 7), new Uint32Array(7));
    assert.equal(v[7], keystream(new Uint8Array(16), 4).readUInt32LE(0));
  });

  it('works on views with a byte offset', () => {
    const key = randomBytes(16);
    const backing = new BigUint64Array(10);
    const view = backing.subarray(3, 8);
    applyMaskStream(view, key, 1);
    const alone = new BigUint64Array(5);
    applyMaskStream(alone, key, 1);
    assert.deepEqual(view, alone);
    assert.deepEqual(backing.subarray(0, 3), new BigUint64Array(3));
    assert.deepEqual(backing.subarray(8), new BigUint64Array(2));
  });

  it('refuses bad keys, signs and segments with INVALID_ARGUMENT', () => {
    const v = new Uint32Array(8);
    const key = new Uint8Array(16);
    assert.throws(() => applyMaskStream(v, new Uint8Array(15), 1), isInvalid('key16'));
    assert.throws(() => applyMaskStream(v, new Uint8Array(32), 1), isInvalid('key16'));
    assert.throws(() => applyMaskStream(v, key, 0 as 1), isInvalid('sign'));
    assert.throws(() => applyMaskStream(v, key, 1, -1), isInvalid('offsetWords'));
    assert.throws(() => applyMaskStream(v, key, 1, 9), isInvalid('offsetWords'));
    assert.throws(() => applyMaskStream(v, key, 1, 4, 5), isInvalid('lengthWords'));
    assert.throws(() => applyMaskStream(v, key, 1, 0, 1.5), isInvalid('lengthWords'));
    assert.throws(
      () => applyMaskStream(new Int32Array(4) as unknown as Uint32Array, key, 1),
      isInvalid('target'),
    );
    assert.deepEqual(v, new Uint32Array(8));
  });
});

describe('addRingVectors / subtractRingVectors', () => {
  it('add and subtract elementwise modulo the ring (property vs BigInt)', () => {
    fc.assert(
      fc.property(ringArb, fc.integer({ min: 0, max: 40 }), (ring, n) => {
        const a = randomVector(ring, n);
        const b = randomVector(ring, n);
        const mod = ring === 32 ? 2n ** 32n : MOD64;
        const sum = a.slice();
        addRingVectors(sum, b);
        const ea = toBigInts(a);
        const eb = toBigInts(b);
        assert.deepEqual(
          toBigInts(sum),
          ea.map((x, i) => (x + eb[i]!) % mod),
        );
        const diff = a.slice();
        subtractRingVectors(diff, b);
        assert.deepEqual(
          toBigInts(diff),
          ea.map((x, i) => (x - eb[i]! + mod) % mod),
        );
        subtractRingVectors(sum, b);
        assert.deepEqual(sum, a);
      }),
      { numRuns: 200 },
    );
    const max = new BigUint64Array([MOD64 - 1n, 0n]);
    addRingVectors(max, new BigUint64Array([1n, 0n]));
    assert.deepEqual(max, new BigUint64Array([0n, 0n]));
    subtractRingVectors(max, new BigUint64Array([1n, 1n]));
    assert.deepEqual(max, new BigUint64Array([MOD64 - 1n, MOD64 - 1n]));
  });

  it('refuses different lengths or rings with INVALID_ARGUMENT', () => {
    assert.throws(() => addRingVectors(new Uint32Array(2), new Uint32Array(3)), isInvalid('source'));
    assert.throws(() => addRingVectors(new Uint32Array(2), new BigUint64Array(2)), isInvalid('source'));
    assert.throws(() => subtractRingVectors(new BigUint64Array(2), new Uint32Array(2)), isInvalid('source'));
  });
});

it('applyMaskStreams equals applying each stream in turn (any mix of signs, segments, both rings)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean()), {
        minLength: 0,
        maxLength: 11,
      }),
      fc.integer({ min: 0, max: 40_000 }),
      fc.integer({ min: 0, max: 50 }),
      fc.boolean(),
      (specs, length, offset, wide) => {
        const streams = specs.map(([key16, plus]) => ({ key16, sign: (plus ? 1 : -1) as 1 | -1 }));
        const words = offset + length + 3;
        const make = () =>
          wide
            ? BigUint64Array.from(
                { length: words },
                (_, i) => (BigInt(i) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn,
              )
            : Uint32Array.from({ length: words }, (_, i) => (i * 2654435761) >>> 0);
        const one = make();
        for (const s of streams) applyMaskStream(one, s.key16, s.sign, offset, length);
        const all = make();
        applyMaskStreams(all, streams, offset, length);
        assert.deepEqual(all, one);
      },
    ),
    { numRuns: 40 },
  );
});
