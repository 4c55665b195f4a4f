import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hashChildren, hashEmpty, hashLeaf } from './merkle-hash.ts';
import { computeRootFromInclusion, verifyConsistency, verifyInclusion } from './merkle-proof.ts';
import { MerkleTree } from './merkle-tree.ts';

const readVectors = <T>(name: string): T =>
  JSON.parse(readFileSync(new URL(`../../test/vectors/audit/${name}`, import.meta.url), 'utf8')) as T;
const inclusionVectors = readVectors<{
  vectors: { leaf_index: number; tree_size: number; leaf_hash: string; proof: string[]; root: string }[];
}>('merkle_inclusion_proofs.json').vectors;
const consistencyVectors = readVectors<{
  vectors: { first: number; second: number; proof: string[]; first_root: string; second_root: string }[];
}>('merkle_consistency_proofs.json').vectors;

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const flipBit = (b: Uint8Array, bit: number) => {
  const c = b.slice();
  c[bit >> 3]! ^= 1 << (bit & 7);
  return c;
};

const N = 300;
const TREE = new MerkleTree();
for (let i = 0; i < N; i++) TREE.appendEntry(new TextEncoder().encode(`leaf ${i}`));

const inclusionOf = (m: number, n: number) => ({
  leafIndex: m,
  treeSize: n,
  leafHash: TREE.leafHash(m),
  proof: TREE.inclusionProof(m, n),
  root: TREE.root(n),
});
const consistencyOf = (m: number, n: number) => ({
  size1: m,
  size2: n,
  root1: TREE.root(m),
  root2: TREE.root(n),
  proof: TREE.consistencyProof(m, n),
});

// The "shape" of a proof from the RFC 9162 recursions: the hashing steps a verifier performs for given
// sizes. Two parameter sets with the same shape run the same computation on the same proof.
const split = (n: number) => 2 ** Math.floor(Math.log2(n - 1));
function inclusionShape(m: number, n: number): string {
  if (n <= 1) return '';
  const k = split(n);
  return m < k ? `${inclusionShape(m, k)}R` : `${inclusionShape(m - k, n - k)}L`;
}
function consistencyShape(m: number, n: number, whole = true): string {
  if (m === n) return whole ? 'old-root-seed' : 'proof-seed';
  const k = split(n);
  return m <= k ? `${consistencyShape(m, k, whole)}R` : `${consistencyShape(m - k, n - k, false)}L`;
}

// transparency-dev/merkle proof/verify.go in BigInt: an independent implementation for sizes up to 2^53.
const bitLength = (x: bigint) => (x === 0n ? 0 : x.toString(2).length);
const popCount = (x: bigint) => [...x.toString(2)].filter((c) => c === '1').length;
const trailingZeros = (x: bigint) => x.toString(2).length - 1 - x.toString(2).lastIndexOf('1');
function decompose(index: bigint, size: bigint): [number, number] {
  const inner = bitLength(index ^ (size - 1n));
  return [inner, popCount(index >> BigInt(inner))];
}
function chainInner(seed: Uint8Array, proof: Uint8Array[], index: bigint, rightOnly = false): Uint8Array {
  let h = seed;
  proof.forEach((p, i) => {
    if (((index >> BigInt(i)) & 1n) === 0n) {
      if (!rightOnly) h = hashChildren(h, p);
    } else h = hashChildren(p, h);
  });
  return h;
}
const chainBorder = (seed: Uint8Array, proof: Uint8Array[]) =>
  proof.reduce((h, p) => hashChildren(p, h), seed);

/** A changed index or size: ±1, ±2, anything nearby, or far away (beyond 32-bit arithmetic). */
const OTHER_VALUE = fc.oneof(
  fc.constantFrom(-1, 1, 2, -2),
  fc.integer({ min: -N, max: 2 * N }),
  fc.constantFrom(2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER - 1),
);

describe('verifyInclusion / computeRootFromInclusion (RFC 9162 §2.1.3.2)', () => {
  it('accepts every vector and computes its root', () => {
    for (const v of inclusionVectors) {
      const input = {
        leafIndex: v.leaf_index,
        treeSize: v.tree_size,
        leafHash: hex(v.leaf_hash),
        proof: v.proof.map(hex),
        root: hex(v.root),
      };
      assert.deepEqual(verifyInclusion(input), { ok: true });
      const root = computeRootFromInclusion(v.leaf_index, v.tree_size, input.leafHash, input.proof);
      assert.equal(root === null ? null : toHex(root), v.root);
    }
  });

  it('accepts the tree proof of every leaf in every tree of size <= 64', () => {
    for (let n = 1; n <= 64; n++) {
      for (let m = 0; m < n; m++)
        assert.deepEqual(verifyInclusion(inclusionOf(m, n)), { ok: true }, `${m}/${n}`);
    }
  });

  it('accepts sampled tree proofs up to size 300', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: N }), fc.nat(), (n, a) => {
        assert.deepEqual(verifyInclusion(inclusionOf(a % n, n)), { ok: true });
      }),
      { numRuns: 300 },
    );
  });

  it('rejects any single-bit change of a proof node, the root or the leaf hash', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: N }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        (n, a, which, bit) => {
          const good = inclusionOf(a % n, n);
          const slots = good.proof.length + 2;
          const slot = which % slots;
          const bad =
            slot === 0
              ? { ...good, root: flipBit(good.root, bit) }
              : slot === 1
                ? { ...good, leafHash: flipBit(good.leafHash, bit) }
                : { ...good, proof: good.proof.map((p, i) => (i === slot - 2 ? flipBit(p, bit) : p)) };
          assert.equal(verifyInclusion(bad).ok, false);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('rejects another leaf index (always) and another treeSize (unless the shape is equal)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: N }),
        fc.nat(),
        OTHER_VALUE,
        fc.boolean(),
        (n, a, delta, changeSize) => {
          const m = a % n;
          const good = inclusionOf(m, n);
          const [m2, n2] = changeSize ? [m, n + delta] : [m + delta, n];
          fc.pre((m2 !== m || n2 !== n) && Number.isSafeInteger(m2 + n2));
          const sameShape =
            m2 >= 0 && m2 < n2 && n2 <= 2 * N && inclusionShape(m2, n2) === inclusionShape(m, n);
          assert.equal(
            verifyInclusion({ ...good, leafIndex: m2, treeSize: n2 }).ok,
            sameShape,
            `(${m},${n})->(${m2},${n2})`,
          );
          if (!changeSize) assert.equal(sameShape, false, 'a leaf index change always changes the shape');
          // Against the root of the size it now claims, the proof never verifies.
          if (changeSize && n2 >= 1 && n2 <= N) {
            assert.equal(verifyInclusion({ ...good, treeSize: n2, root: TREE.root(n2) }).ok, false);
          }
        },
      ),
      { numRuns: 600 },
    );
  });

  // RFC 9162 proofs carry no size: (m, n) and (m, n') with the same path shape run the same hashing, so
  // the size is bound by the signed checkpoint (size, root), not by the proof. verify.go behaves the same.
  it('binds the root, not the size: a (0, 3) proof also verifies as (0, 4); (1, 3) consistency as (1, 4)', () => {
    const good = inclusionOf(0, 3);
    assert.deepEqual(verifyInclusion({ ...good, treeSize: 4 }), { ok: true });
    assert.equal(verifyInclusion({ ...good, treeSize: 4, root: TREE.root(4) }).ok, false);
    assert.equal(verifyInclusion({ ...good, treeSize: 6 }).ok, false);
    const c = consistencyOf(1, 3);
    assert.deepEqual(verifyConsistency({ ...c, size2: 4 }), { ok: true });
    assert.equal(verifyConsistency({ ...c, size2: 4, root2: TREE.root(4) }).ok, false);
  });

  it('rejects truncated, extended, reordered proofs and a wrong leaf', () => {
    const good = inclusionOf(37, 200);
    assert.equal(good.proof.length, 8);
    assert.equal(verifyInclusion({ ...good, proof: good.proof.slice(1) }).ok, false);
    assert.equal(verifyInclusion({ ...good, proof: good.proof.slice(0, -1) }).ok, false);
    assert.equal(verifyInclusion({ ...good, proof: [...good.proof, good.root] }).ok, false);
    assert.equal(
      verifyInclusion({ ...good, proof: [good.proof[1]!, good.proof[0]!, ...good.proof.slice(2)] }).ok,
      false,
    );
    assert.equal(verifyInclusion({ ...good, leafHash: TREE.leafHash(38) }).ok, false);
    assert.equal(computeRootFromInclusion(37, 200, good.leafHash, good.proof.slice(1)), null);
    assert.equal(computeRootFromInclusion(37, 200, good.leafHash, [...good.proof, good.root]), null);
  });

  it('handles edge cases as values, never throwing', () => {
    const leaf = hashLeaf(new Uint8Array(0));
    assert.deepEqual(verifyInclusion({ leafIndex: 0, treeSize: 1, leafHash: leaf, proof: [], root: leaf }), {
      ok: true,
    });
    const reasonOf = (input: Parameters<typeof verifyInclusion>[0]) => {
      const v = verifyInclusion(input);
      assert.equal(v.ok, false);
      return v.ok ? '' : v.reason;
    };
    const base = { leafIndex: 0, treeSize: 1, leafHash: leaf, proof: [] as Uint8Array[], root: leaf };
    assert.match(reasonOf({ ...base, leafIndex: 1 }), /leafIndex must be less than treeSize/);
    assert.match(reasonOf({ ...base, treeSize: 0 }), /leafIndex must be less than treeSize/);
    assert.match(reasonOf({ ...base, proof: [leaf] }), /too long/);
    assert.match(reasonOf({ ...base, leafIndex: -1 }), /leafIndex/);
    assert.match(reasonOf({ ...base, treeSize: 1.5 }), /treeSize/);
    assert.match(reasonOf({ ...base, treeSize: 2 ** 53 }), /treeSize/);
    assert.match(reasonOf({ ...base, leafHash: leaf.subarray(1) }), /leafHash must be 32 bytes/);
    assert.match(reasonOf({ ...base, root: new Uint8Array(33) }), /root must be 32 bytes/);
    assert.match(
      reasonOf({ ...base, treeSize: 2, proof: [new Uint8Array(31)] }),
      /proof\[0\] must be 32 bytes/,
    );
    assert.match(reasonOf({ ...base, proof: 'x' as unknown as Uint8Array[] }), /proof must be an array/);
    assert.match(reasonOf({ ...base, leafHash: 'x' as unknown as Uint8Array }), /leafHash/);
    assert.equal(computeRootFromInclusion(5, 5, leaf, []), null);
    assert.equal(computeRootFromInclusion(0, 1, new Uint8Array(12), []), null);
    const root = computeRootFromInclusion(0, 1, leaf, []);
    assert.ok(root !== null && toHex(root) === toHex(leaf) && root !== leaf, 'a copy of the leaf hash');
  });

  it('agrees with a BigInt port of verify.go for sizes up to 2^53 - 1', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (n, r) => {
          const m = Math.min(n - 1, Math.floor(r * n));
          const [inner, border] = decompose(BigInt(m), BigInt(n));
          const proof = Array.from({ length: inner + border }, () => randomBytes(32));
          const leafHash = randomBytes(32);
          const want = chainBorder(
            chainInner(leafHash, proof.slice(0, inner), BigInt(m)),
            proof.slice(inner),
          );
          const got = computeRootFromInclusion(m, n, leafHash, proof);
          assert.equal(got === null ? null : toHex(got), toHex(want));
          assert.deepEqual(verifyInclusion({ leafIndex: m, treeSize: n, leafHash, proof, root: want }), {
            ok: true,
          });
          assert.equal(computeRootFromInclusion(m, n, leafHash, [...proof, leafHash]), null);
          if (proof.length > 0) assert.equal(computeRootFromInclusion(m, n, leafHash, proof.slice(1)), null);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('verifyConsistency (RFC 9162 §2.1.4.2)', () => {
  it('accepts every vector', () => {
    for (const v of consistencyVectors) {
      const input = {
        size1: v.first,
        size2: v.second,
        root1: hex(v.first_root),
        root2: hex(v.second_root),
        proof: v.proof.map(hex),
      };
      assert.deepEqual(verifyConsistency(input), { ok: true }, `${v.first}->${v.second}`);
    }
  });

  it('accepts the tree proof for every 1 <= size1 <= size2 <= 64, and sampled pairs up to 300', () => {
    for (let n = 1; n <= 64; n++) {
      for (let m = 1; m <= n; m++)
        assert.deepEqual(verifyConsistency(consistencyOf(m, n)), { ok: true }, `${m}->${n}`);
    }
    fc.assert(
      fc.property(fc.integer({ min: 1, max: N }), fc.nat(), (n, a) => {
        assert.deepEqual(verifyConsistency(consistencyOf(1 + (a % n), n)), { ok: true });
      }),
      { numRuns: 300 },
    );
  });

  it('rejects any single-bit change of a proof node or either root', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: N }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        (n, a, which, bit) => {
          const good = consistencyOf(1 + (a % n), n);
          const slot = which % (good.proof.length + 2);
          const bad =
            slot === 0
              ? { ...good, root1: flipBit(good.root1, bit) }
              : slot === 1
                ? { ...good, root2: flipBit(good.root2, bit) }
                : { ...good, proof: good.proof.map((p, i) => (i === slot - 2 ? flipBit(p, bit) : p)) };
          assert.equal(verifyConsistency(bad).ok, false);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('rejects another size1 (always) and another size2 (unless the shape is equal)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: N }),
        fc.nat(),
        OTHER_VALUE,
        fc.boolean(),
        (n, a, delta, changeFirst) => {
          const m = 1 + (a % (n - 1));
          const good = consistencyOf(m, n);
          const [m2, n2] = changeFirst ? [m + delta, n] : [m, n + delta];
          fc.pre((m2 !== m || n2 !== n) && Number.isSafeInteger(m2 + n2));
          const sameShape =
            m2 >= 1 && m2 < n2 && n2 <= 2 * N && consistencyShape(m2, n2) === consistencyShape(m, n);
          assert.equal(
            verifyConsistency({ ...good, size1: m2, size2: n2 }).ok,
            sameShape,
            `(${m},${n})->(${m2},${n2})`,
          );
          if (changeFirst) assert.equal(sameShape, false, 'a size1 change always changes the shape');
          if (!changeFirst && n2 >= 1 && n2 <= N) {
            assert.equal(verifyConsistency({ ...good, size2: n2, root2: TREE.root(n2) }).ok, false);
          }
        },
      ),
      { numRuns: 600 },
    );
  });

  it('applies the verify.go edge cases', () => {
    const r = (m: number) => TREE.root(m);
    const reasonOf = (input: Parameters<typeof verifyConsistency>[0]) => {
      const v = verifyConsistency(input);
      assert.equal(v.ok, false);
      return v.ok ? '' : v.reason;
    };
    const ok = { ok: true };
    assert.deepEqual(verifyConsistency({ size1: 7, size2: 7, root1: r(7), root2: r(7), proof: [] }), ok);
    assert.deepEqual(
      verifyConsistency({ size1: 0, size2: 0, root1: hashEmpty(), root2: hashEmpty(), proof: [] }),
      ok,
    );
    assert.match(reasonOf({ size1: 7, size2: 7, root1: r(7), root2: r(8), proof: [] }), /differ/);
    assert.match(reasonOf({ size1: 7, size2: 7, root1: r(7), root2: r(7), proof: [r(1)] }), /must be empty/);
    assert.match(reasonOf({ size1: 0, size2: 1, root1: hashEmpty(), root2: r(1), proof: [] }), /empty tree/);
    assert.match(
      reasonOf({ size1: 0, size2: 1, root1: hashEmpty(), root2: r(1), proof: [r(1)] }),
      /empty tree/,
    );
    assert.match(reasonOf({ size1: 8, size2: 7, root1: r(8), root2: r(7), proof: [] }), /must not exceed/);
    const good = consistencyOf(8, 16);
    assert.match(reasonOf({ ...good, proof: TREE.consistencyProof(7, 16) }), /too|match/);
    assert.match(reasonOf({ ...consistencyOf(3, 9), proof: [] }), /proof is empty/);
    assert.match(
      reasonOf({ ...consistencyOf(3, 9), proof: consistencyOf(3, 9).proof.slice(1) }),
      /too short|match/,
    );
    assert.match(
      reasonOf({ ...consistencyOf(3, 9), proof: [...consistencyOf(3, 9).proof, r(1)] }),
      /too long/,
    );
    assert.match(reasonOf({ ...good, root1: r(8).subarray(4) }), /root1 must be 32 bytes/);
    assert.match(reasonOf({ ...good, proof: [new Uint8Array(32), new Uint8Array(2)] }), /proof\[1\]/);
    assert.match(reasonOf({ ...good, size1: 1.5 }), /size1/);
    assert.match(reasonOf({ ...good, size2: -4 }), /size2/);
    assert.match(reasonOf({ ...good, size2: Number.NaN }), /size2/);
  });

  it('agrees with a BigInt port of verify.go for sizes up to 2^53 - 1', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: Number.MAX_SAFE_INTEGER }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (n, r) => {
          const m = Math.max(1, Math.min(n - 1, Math.ceil(r * n)));
          const [inner0, border] = decompose(BigInt(m - 1), BigInt(n));
          const shift = trailingZeros(BigInt(m));
          const inner = inner0 - shift;
          const oldRootIsSeed = BigInt(m) === 1n << BigInt(shift);
          const proof = Array.from({ length: (oldRootIsSeed ? 0 : 1) + inner + border }, () =>
            randomBytes(32),
          );
          const seed = oldRootIsSeed ? randomBytes(32) : proof[0]!;
          const rest = oldRootIsSeed ? proof : proof.slice(1);
          const mask = BigInt(m - 1) >> BigInt(shift);
          const root1 = chainBorder(chainInner(seed, rest.slice(0, inner), mask, true), rest.slice(inner));
          const root2 = chainBorder(chainInner(seed, rest.slice(0, inner), mask), rest.slice(inner));
          assert.deepEqual(
            verifyConsistency({ size1: m, size2: n, root1, root2, proof }),
            { ok: true },
            `${m}->${n}`,
          );
          assert.equal(
            verifyConsistency({ size1: m, size2: n, root1, root2, proof: [...proof, seed] }).ok,
            false,
          );
        },
      ),
      { numRuns: 200 },
    );
  });
});
