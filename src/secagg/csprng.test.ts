import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { createUniformSource } from './csprng.ts';

function expectedWords(key: Uint8Array, count: number): Uint32Array {
  const ks = createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(count * 4));
  return Uint32Array.from({ length: count }, (_, i) => ks.readUInt32LE(4 * i));
}

describe('createUniformSource', () => {
  it('with a key, is the AES-256-CTR keystream as little-endian words, across 64 KiB chunks', () => {
    const key = randomBytes(32);
    const out = new Uint32Array(40_000);
    createUniformSource(key).fillUint32(out);
    assert.deepEqual(out, expectedWords(key, 40_000));
  });

  it('continues one stream across calls', () => {
    const key = randomBytes(32);
    const source = createUniformSource(key);
    const a = new Uint32Array(7);
    const b = new Uint32Array(17000);
    source.fillUint32(a);
    source.fillUint32(b);
    const all = expectedWords(key, 17007);
    assert.deepEqual(a, all.subarray(0, 7));
    assert.deepEqual(b, all.subarray(7));
    const backing = new Uint32Array(5);
    createUniformSource(key).fillUint32(backing.subarray(2, 4));
    assert.deepEqual(backing, Uint32Array.from([0, 0, all[0]!, all[1]!, 0]));
  });

  it('unkeyed sources are fresh and look uniform', () => {
    const a = new Uint32Array(100_000);
    const b = new Uint32Array(100_000);
    createUniformSource().fillUint32(a);
    createUniformSource().fillUint32(b);
    assert.notDeepEqual(a.subarray(0, 8), b.subarray(0, 8));
    let mean = 0;
    let high = 0;
    for (const w of a) {
      mean += w / 2 ** 32 / a.length;
      if (w >= 2 ** 31) high++;
    }
    // mean of U[0,1): sd 0.289/sqrt(1e5) ≈ 0.0009; allow > 6 sd.
    assert.ok(Math.abs(mean - 0.5) < 0.006, `mean ${mean}`);
    assert.ok(Math.abs(high / a.length - 0.5) < 0.01, `top bit ${high}`);
  });

  it('refuses keys that are not 32 bytes', () => {
    for (const key of [new Uint8Array(16), new Uint8Array(0), new Uint8Array(33)])
      assert.throws(
        () => createUniformSource(key),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === 'key32',
      );
  });
});
