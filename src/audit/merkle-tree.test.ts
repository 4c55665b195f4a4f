import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { hashChildren, hashEmpty, hashLeaf } from './merkle-hash.ts';
import { MerkleTree } from './merkle-tree.ts';

const readVectors = <T>(name: string): T =>
  JSON.parse(readFileSync(new URL(`../../test/vectors/audit/${name}`, import.meta.url), 'utf8')) as T;
const ct8 = readVectors<{ leaves_hex: string[]; roots_by_tree_size: Record<string, string> }>(
  'merkle_roots_ct8.json',
);
const inclusion = readVectors<{
  vectors: { leaf_index: number; tree_size: number; leaf_hash: string; proof: string[]; root: string }[];
}>('merkle_inclusion_proofs.json');
const consistency = readVectors<{
  vectors: { first: number; second: number; proof: string[]; first_root: string; second_root: string }[];
}>('merkle_consistency_proofs.json');

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const hexList = (l: readonly Uint8Array[]) => l.map(toHex);
const leafOf = (i: number) => hashLeaf(new TextEncoder().encode(`entry ${i}`));

// Naive references straight from RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 (recursive, over a leaf-hash list).
const largestPow2Below = (n: number) => 2 ** Math.floor(Math.log2(n - 1));
function referenceMth(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return hashEmpty();
  if (leaves.length === 1) return leaves[0]!;
  const k = largestPow2Below(leaves.length);
  return hashChildren(referenceMth(leaves.slice(0, k)), referenceMth(leaves.slice(k)));
}
function referencePath(m: number, leaves: readonly Uint8Array[]): Uint8Array[] {
  if (leaves.length <= 1) return [];
  const k = largestPow2Below(leaves.length);
  return m < k
    ? [...referencePath(m, leaves.slice(0, k)), referenceMth(leaves.slice(k))]
    : [...referencePath(m - k, leaves.slice(k)), referenceMth(leaves.slice(0, k))];
}
function referenceSubproof(m: number, leaves: readonly Uint8Array[], b: boolean): Uint8Array[] {
  const n = leaves.length;
  if (m === n) return b ? [] : [referenceMth(leaves)];
  const k = largestPow2Below(n);
  return m <= k
    ? [...referenceSubproof(m, leaves.slice(0, k), b), referenceMth(leaves.slice(k))]
    : [...referenceSubproof(m - k, leaves.slice(k), false), referenceMth(leaves.slice(0, k))];
}

const LEAVES_300 = Array.from({ length: 300 }, (_, i) => leafOf(i));
const TREE_300 = MerkleTree.fromLeafHashes(LEAVES_300);

const throwsInvalid = (fn: () => unknown, field: string) =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
  );

describe('MerkleTree', () => {
  it('reproduces the CT roots for every size 0..8 and indexes appends from 0', () => {
    const tree = new MerkleTree();
    assert.equal(toHex(tree.root()), ct8.roots_by_tree_size['0']);
    ct8.leaves_hex.forEach((leaf, i) => {
      assert.equal(tree.appendEntry(hex(leaf)), i);
      assert.equal(tree.size, i + 1);
      assert.equal(toHex(tree.root()), ct8.roots_by_tree_size[String(i + 1)]);
    });
    for (let size = 0; size <= 8; size++) {
      assert.equal(toHex(tree.root(size)), ct8.roots_by_tree_size[String(size)], `size ${size}`);
    }
  });

  it('generates exactly the inclusion and consistency proofs of the vectors', () => {
    const tree = new MerkleTree();
    for (const leaf of ct8.leaves_hex) tree.appendEntry(hex(leaf));
    assert.equal(inclusion.vectors.length, 5);
    for (const v of inclusion.vectors) {
      assert.equal(toHex(tree.leafHash(v.leaf_index)), v.leaf_hash);
      assert.deepEqual(hexList(tree.inclusionProof(v.leaf_index, v.tree_size)), v.proof);
      assert.equal(toHex(tree.root(v.tree_size)), v.root);
    }
    assert.equal(consistency.vectors.length, 5);
    for (const v of consistency.vectors) {
      assert.deepEqual(hexList(tree.consistencyProof(v.first, v.second)), v.proof);
      assert.equal(toHex(tree.root(v.first)), v.first_root);
      assert.equal(toHex(tree.root(v.second)), v.second_root);
    }
  });

  it('agrees with the naive recursive MTH for every size 0..100 (and 300)', () => {
    for (let size = 0; size <= 100; size++) {
      assert.equal(
        toHex(TREE_300.root(size)),
        toHex(referenceMth(LEAVES_300.slice(0, size))),
        `size ${size}`,
      );
    }
    assert.equal(toHex(TREE_300.root()), toHex(referenceMth(LEAVES_300)));
  });

  it('agrees with the naive PATH and PROOF for every (m, n) with n <= 40', () => {
    for (let n = 1; n <= 40; n++) {
      const leaves = LEAVES_300.slice(0, n);
      for (let m = 0; m < n; m++) {
        assert.deepEqual(
          hexList(TREE_300.inclusionProof(m, n)),
          hexList(referencePath(m, leaves)),
          `${m}/${n}`,
        );
      }
      for (let m = 1; m <= n; m++) {
        const want = referenceSubproof(m, leaves, true);
        assert.deepEqual(hexList(TREE_300.consistencyProof(m, n)), hexList(want), `${m}->${n}`);
      }
    }
  });

  it('agrees with the naive references on sampled sizes up to 300', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), (n, a, b) => {
        const leaves = LEAVES_300.slice(0, n);
        const m = a % n;
        const m1 = 1 + (b % n);
        assert.deepEqual(hexList(TREE_300.inclusionProof(m, n)), hexList(referencePath(m, leaves)));
        assert.deepEqual(
          hexList(TREE_300.consistencyProof(m1, n)),
          hexList(referenceSubproof(m1, leaves, true)),
        );
      }),
      { numRuns: 60 },
    );
  });

  it('fromLeafHashes (from any iterable) gives the same leaves, roots and proofs as appending', () => {
    const appended = new MerkleTree();
    for (let i = 0; i < 150; i++) appended.appendEntry(new TextEncoder().encode(`entry ${i}`));
    function* stored() {
      for (let i = 0; i < 150; i++) yield leafOf(i);
    }
    const rebuilt = MerkleTree.fromLeafHashes(stored());
    assert.equal(rebuilt.size, 150);
    for (let size = 0; size <= 150; size++)
      assert.equal(toHex(rebuilt.root(size)), toHex(appended.root(size)));
    assert.equal(toHex(rebuilt.leafHash(149)), toHex(LEAVES_300[149]!));
    assert.deepEqual(hexList(rebuilt.inclusionProof(77, 131)), hexList(appended.inclusionProof(77, 131)));
    assert.deepEqual(hexList(rebuilt.consistencyProof(13, 150)), hexList(appended.consistencyProof(13, 150)));
  });

  it('keeps answering for old sizes while growing past buffer capacities', () => {
    const tree = new MerkleTree();
    const roots: string[] = [toHex(tree.root())];
    for (let i = 0; i < 1100; i++) {
      tree.appendLeafHash(leafOf(i));
      roots.push(toHex(tree.root()));
    }
    for (let size = 0; size <= 1100; size += 7) assert.equal(toHex(tree.root(size)), roots[size]);
    assert.equal(roots[1100], toHex(referenceMth(Array.from({ length: 1100 }, (_, i) => leafOf(i)))));
  });

  it('returns copies: mutating inputs or outputs never changes the tree', () => {
    const tree = new MerkleTree();
    const input = leafOf(0);
    tree.appendLeafHash(input);
    tree.appendLeafHash(leafOf(1));
    const root = toHex(tree.root());
    input.fill(0);
    tree.leafHash(0).fill(0);
    tree.root().fill(0);
    tree.root(1).fill(0);
    for (const p of tree.inclusionProof(0)) p.fill(0);
    for (const p of tree.consistencyProof(1)) p.fill(0);
    assert.equal(toHex(tree.root()), root);
    assert.equal(toHex(tree.leafHash(0)), toHex(leafOf(0)));
    assert.equal(toHex(tree.root(1)), toHex(leafOf(0)));
  });

  it('handles the equal-size and empty cases of consistency proofs', () => {
    assert.deepEqual(TREE_300.consistencyProof(300), []);
    assert.deepEqual(TREE_300.consistencyProof(5, 5), []);
    assert.deepEqual(new MerkleTree().consistencyProof(0), []);
    assert.deepEqual(TREE_300.inclusionProof(0, 1), []);
  });

  it('throws INVALID_ARGUMENT naming the field for anything out of range', () => {
    const tree = MerkleTree.fromLeafHashes(LEAVES_300.slice(0, 5));
    throwsInvalid(() => tree.appendLeafHash(new Uint8Array(31)), 'leafHash');
    throwsInvalid(() => tree.appendLeafHash(new Uint8Array(33)), 'leafHash');
    throwsInvalid(() => tree.appendLeafHash([1, 2] as unknown as Uint8Array), 'leafHash');
    throwsInvalid(() => tree.appendEntry('x' as unknown as Uint8Array), 'entry');
    throwsInvalid(() => MerkleTree.fromLeafHashes([leafOf(0), new Uint8Array(0)]), 'leafHash');
    assert.equal(tree.size, 5, 'failed appends leave the tree unchanged');
    for (const bad of [-1, 5, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      throwsInvalid(() => tree.leafHash(bad), 'index');
    }
    for (const bad of [-1, 6, 2.5, Number.NaN]) throwsInvalid(() => tree.root(bad), 'size');
    throwsInvalid(() => tree.inclusionProof(0, 0), 'size');
    throwsInvalid(() => tree.inclusionProof(0, 6), 'size');
    throwsInvalid(() => tree.inclusionProof(3, 3), 'leafIndex');
    throwsInvalid(() => tree.inclusionProof(-1, 3), 'leafIndex');
    throwsInvalid(() => tree.inclusionProof(0.5, 3), 'leafIndex');
    throwsInvalid(() => new MerkleTree().inclusionProof(0), 'size');
    throwsInvalid(() => new MerkleTree().leafHash(0), 'index');
    throwsInvalid(() => tree.consistencyProof(1, 6), 'size2');
    throwsInvalid(() => tree.consistencyProof(4, 3), 'size1');
    throwsInvalid(() => tree.consistencyProof(0, 3), 'size1');
    throwsInvalid(() => tree.consistencyProof(-1), 'size1');
    assert.equal(toHex(tree.root()), toHex(referenceMth(LEAVES_300.slice(0, 5))));
  });
});
