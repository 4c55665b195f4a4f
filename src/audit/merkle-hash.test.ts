import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HASH_BYTES, hashChildren, hashEmpty, hashLeaf, writeChildrenHash } from './merkle-hash.ts';

interface HashingVector {
  desc: string;
  kind: 'empty_root' | 'leaf' | 'node';
  input_hex?: string;
  left_hex?: string;
  right_hex?: string;
  want: string;
}

const readVectors = <T>(name: string): T =>
  JSON.parse(readFileSync(new URL(`../../test/vectors/audit/${name}`, import.meta.url), 'utf8')) as T;
const hashing = readVectors<{ vectors: HashingVector[] }>('rfc6962_hashing.json');
const ct8 = readVectors<{ leaves_hex: string[]; leaf_hashes: string[] }>('merkle_roots_ct8.json');

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return Uint8Array.from(h.digest());
};

describe('RFC 6962 / 9162 hashing', () => {
  it('matches every rfc6962_test.go vector', () => {
    assert.equal(hashing.vectors.length, 4);
    for (const v of hashing.vectors) {
      const got =
        v.kind === 'empty_root'
          ? hashEmpty()
          : v.kind === 'leaf'
            ? hashLeaf(hex(v.input_hex!))
            : hashChildren(hex(v.left_hex!), hex(v.right_hex!));
      assert.equal(toHex(got), v.want, v.desc);
    }
  });

  it('gives the CT test leaf hashes of the 8 CT leaves', () => {
    assert.equal(ct8.leaves_hex.length, 8);
    ct8.leaves_hex.forEach((leaf, i) => {
      assert.equal(toHex(hashLeaf(hex(leaf))), ct8.leaf_hashes[i]);
    });
  });

  it('agrees with a direct SHA-256 over the prefixed input, for any lengths', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 70 }), (a, b) => {
        assert.deepEqual(Uint8Array.from(hashLeaf(a)), sha256(Uint8Array.of(0), a));
        assert.deepEqual(Uint8Array.from(hashChildren(a, b)), sha256(Uint8Array.of(1), a, b));
      }),
      { numRuns: 200 },
    );
  });

  it('separates leaves from nodes (0x00 vs 0x01 prefix)', () => {
    const l = hashLeaf(new Uint8Array(64));
    const n = hashChildren(new Uint8Array(32), new Uint8Array(32));
    assert.notEqual(toHex(l), toHex(n));
  });

  it('returns fresh 32-byte arrays that later calls do not overwrite', () => {
    const a = hashChildren(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
    const copy = toHex(a);
    hashChildren(new Uint8Array(32).fill(3), new Uint8Array(32).fill(4));
    assert.equal(toHex(a), copy);
    assert.equal(a.length, HASH_BYTES);
    const e1 = hashEmpty();
    e1.fill(0);
    assert.equal(toHex(hashEmpty()), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('writeChildrenHash equals hashChildren of the adjacent pair, written at the offset', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 96, maxLength: 96 }),
        fc.integer({ min: 0, max: 32 }),
        (nodes, pairOffset) => {
          const out = new Uint8Array(48).fill(7);
          writeChildrenHash(nodes, pairOffset, out, 8);
          const want = hashChildren(
            nodes.subarray(pairOffset, pairOffset + 32),
            nodes.subarray(pairOffset + 32, pairOffset + 64),
          );
          assert.equal(toHex(out.subarray(8, 40)), toHex(want));
          assert.ok(out.subarray(0, 8).every((b) => b === 7) && out.subarray(40).every((b) => b === 7));
        },
      ),
      { numRuns: 100 },
    );
  });
});
