/**
 * An append-only, in-memory Merkle tree (RFC 9162 §2.1) over leaf hashes that answers for ANY earlier
 * size: MTH of a prefix (§2.1.1), inclusion proofs PATH(m, D[n]) (§2.1.3.1) and consistency proofs
 * PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (§2.1.4.1).
 *
 * Layout: level k holds the hash of every complete, aligned subtree of 2^k leaves, i.e. node i of level
 * k covers leaves [i·2^k, (i+1)·2^k), in one flat growable Uint8Array (32 bytes per node). Level 0 is
 * the leaf hashes. Appending writes one leaf and hashes the subtrees it completes (amortised one node
 * hash per append). Any prefix range used by the RFC recursions starts at a multiple of a power of two
 * at least its length, so it splits into at most log2(n) stored subtrees: root(size) and each proof
 * cost O(log n) hash operations whatever the size asked for.
 */
import { EntenteError } from '../core/errors.ts';
import { HASH_BYTES, hashChildren, hashEmpty, hashLeaf, writeChildrenHash } from './merkle-hash.ts';

const INITIAL_CAPACITY_NODES = 64;

export class MerkleTree {
  /** #levels[k] stores floor(size / 2^k) node hashes; its length is the capacity (grown by doubling). */
  readonly #levels: Uint8Array[] = [];
  #size = 0;

  /** Rebuild from stored leaf hashes (e.g. loaded from a database). Throws like appendLeafHash. */
  static fromLeafHashes(leafHashes: Iterable<Uint8Array>): MerkleTree {
    const tree = new MerkleTree();
    for (const leafHash of leafHashes) tree.appendLeafHash(leafHash);
    return tree;
  }

  /** Number of leaves. */
  get size(): number {
    return this.#size;
  }

  /** Appends a leaf hash (copied) and returns the new leaf's index. Throws INVALID_ARGUMENT unless 32 bytes. */
  appendLeafHash(leafHash: Uint8Array): number {
    if (!(leafHash instanceof Uint8Array) || leafHash.length !== HASH_BYTES) {
      throw new EntenteError('INVALID_ARGUMENT', `leafHash must be a ${HASH_BYTES}-byte Uint8Array`, {
        field: 'leafHash',
      });
    }
    const index = this.#size;
    this.#reserveNode(0, index).set(leafHash, index * HASH_BYTES);
    // Each odd node index completes a pair; the carry chain is the binary increment of the size.
    let level = 0;
    let nodeIndex = index;
    while (nodeIndex % 2 === 1) {
      const nodes = this.#levels[level]!;
      nodeIndex = (nodeIndex - 1) / 2;
      level += 1;
      const parents = this.#reserveNode(level, nodeIndex);
      writeChildrenHash(nodes, 2 * nodeIndex * HASH_BYTES, parents, nodeIndex * HASH_BYTES);
    }
    this.#size = index + 1;
    return index;
  }

  /** hashLeaf(entry) then appendLeafHash; returns the new leaf's index. */
  appendEntry(entry: Uint8Array): number {
    if (!(entry instanceof Uint8Array)) {
      throw new EntenteError('INVALID_ARGUMENT', 'entry must be a Uint8Array', { field: 'entry' });
    }
    return this.appendLeafHash(hashLeaf(entry));
  }

  /** A copy of the hash of leaf `index`. Throws INVALID_ARGUMENT (field index) unless 0 ≤ index < size. */
  leafHash(index: number): Uint8Array {
    this.#checkRange('index', index, 0, this.#size - 1);
    return this.#node(0, index);
  }

  /** MTH of the first `size` leaves (default all); size 0 gives hashEmpty(). Throws unless 0 ≤ size ≤ this.size. */
  root(size: number = this.#size): Uint8Array {
    this.#checkRange('size', size, 0, this.#size);
    return this.#rangeHash(0, size);
  }

  /**
   * PATH(leafIndex, D[0:size]) (RFC 9162 §2.1.3.1), siblings from the leaf up. Throws INVALID_ARGUMENT
   * unless 1 ≤ size ≤ this.size (field size) and 0 ≤ leafIndex < size (field leafIndex).
   */
  inclusionProof(leafIndex: number, size: number = this.#size): Uint8Array[] {
    this.#checkRange('size', size, 1, this.#size);
    this.#checkRange('leafIndex', leafIndex, 0, size - 1);
    const topDown: Uint8Array[] = [];
    let lo = 0;
    let hi = size;
    while (hi - lo > 1) {
      const k = largestPowerOfTwoBelow(hi - lo);
      if (leafIndex < lo + k) {
        topDown.push(this.#rangeHash(lo + k, hi));
        hi = lo + k;
      } else {
        topDown.push(this.#rangeHash(lo, lo + k));
        lo += k;
      }
    }
    return topDown.reverse();
  }

  /**
   * PROOF(size1, D[0:size2]) (RFC 9162 §2.1.4.1), from the bottom up. Only proofs a verifier can accept
   * are generated: size1 === size2 (empty proof) or 1 ≤ size1 < size2 ≤ this.size (a proof from the
   * empty tree is meaningless). Throws INVALID_ARGUMENT otherwise (field size2 or size1).
   */
  consistencyProof(size1: number, size2: number = this.#size): Uint8Array[] {
    this.#checkRange('size2', size2, 0, this.#size);
    this.#checkRange('size1', size1, size2 === 0 ? 0 : 1, size2);
    const topDown: Uint8Array[] = [];
    let m = size1;
    let lo = 0;
    let hi = size2;
    let isWholeOldTree = true; // the `b` flag of SUBPROOF: still on the path of the old tree's root
    while (m !== hi - lo) {
      const k = largestPowerOfTwoBelow(hi - lo);
      if (m <= k) {
        topDown.push(this.#rangeHash(lo + k, hi));
        hi = lo + k;
      } else {
        topDown.push(this.#rangeHash(lo, lo + k));
        m -= k;
        lo += k;
        isWholeOldTree = false;
      }
    }
    if (!isWholeOldTree) topDown.push(this.#rangeHash(lo, hi));
    return topDown.reverse();
  }

  /**
   * MTH of leaves [lo, hi). Precondition: lo is a multiple of a power of two ≥ hi − lo (true of every
   * range in the RFC recursions), so the range is complete aligned subtrees of decreasing size.
   */
  #rangeHash(lo: number, hi: number): Uint8Array {
    if (hi === lo) return hashEmpty();
    let acc: Uint8Array | undefined;
    let end = hi;
    let remaining = hi - lo;
    let level = 0;
    let width = 1;
    while (remaining > 0) {
      if (remaining % 2 === 1) {
        const start = end - width;
        const node = this.#levels[level]!.subarray(
          (start / width) * HASH_BYTES,
          (start / width + 1) * HASH_BYTES,
        );
        acc = acc === undefined ? node.slice() : hashChildren(node, acc);
        end = start;
      }
      remaining = Math.floor(remaining / 2);
      level += 1;
      width *= 2;
    }
    return acc!;
  }

  #node(level: number, index: number): Uint8Array {
    return this.#levels[level]!.slice(index * HASH_BYTES, (index + 1) * HASH_BYTES);
  }

  /** The array of `level`, grown (by doubling) so that node `index` fits. */
  #reserveNode(level: number, index: number): Uint8Array {
    const end = (index + 1) * HASH_BYTES;
    let nodes = this.#levels[level];
    if (nodes === undefined) {
      nodes = new Uint8Array(Math.max(INITIAL_CAPACITY_NODES * HASH_BYTES, end));
      this.#levels[level] = nodes;
    } else if (end > nodes.length) {
      const grown = new Uint8Array(Math.max(nodes.length * 2, end));
      grown.set(nodes);
      nodes = grown;
      this.#levels[level] = nodes;
    }
    return nodes;
  }

  #checkRange(field: string, value: number, min: number, max: number): void {
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      const range = max < min ? 'no valid value (the tree is empty)' : `an integer in [${min}, ${max}]`;
      throw new EntenteError('INVALID_ARGUMENT', `${field} must be ${range}`, { field });
    }
  }
}

/** The largest power of two strictly below n (n ≥ 2): the split point k of the RFC recursions. */
function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
