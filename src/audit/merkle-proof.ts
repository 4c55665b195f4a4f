/**
 * Verification of Merkle inclusion and consistency proofs: RFC 9162 §2.1.3.2 and §2.1.4.2, with the
 * edge-case rules of transparency-dev/merkle `proof/verify.go`:
 * - inclusion: leafIndex ≥ treeSize is invalid; the proof length must match (leafIndex, treeSize);
 * - consistency: size1 > size2 is invalid; size1 === size2 needs an empty proof and equal roots;
 *   size1 === 0 < size2 is invalid ("a proof from the empty tree is meaningless"); otherwise the proof
 *   must be non-empty and of exactly the right length.
 * Stricter than verify.go: every hash (leaf hash, roots, proof nodes) must be exactly 32 bytes.
 *
 * Sizes and indices are plain numbers up to 2^53 − 1; the bit arithmetic of the RFC uses division by
 * two, never 32-bit operators. Bad proofs and nonsensical inputs give `{ ok: false, reason }`; these
 * functions never throw (DESIGN.md §5), so they can be fed straight from the network.
 */
import { HASH_BYTES, hashChildren } from './merkle-hash.ts';

export type ProofVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const OK: ProofVerdict = Object.freeze({ ok: true });
const fail = (reason: string): ProofVerdict => ({ ok: false, reason });

/**
 * Checks that `leafHash` is leaf `leafIndex` of the tree of `treeSize` leaves whose MTH is `root`,
 * given the audit path `proof` (siblings from the leaf up). Never throws.
 */
export function verifyInclusion(input: {
  leafIndex: number;
  treeSize: number;
  leafHash: Uint8Array;
  proof: readonly Uint8Array[];
  root: Uint8Array;
}): ProofVerdict {
  const rootProblem = checkHash('root', input.root);
  if (rootProblem !== undefined) return fail(rootProblem);
  const computed = chainInclusion(input.leafIndex, input.treeSize, input.leafHash, input.proof);
  if (typeof computed === 'string') return fail(computed);
  return bytesEqual(computed, input.root) ? OK : fail('computed root does not match root');
}

/**
 * The root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1–5 without the final comparison).
 * Null when no root can be derived: leafIndex/treeSize not safe integers, leafIndex ≥ treeSize, a hash
 * that is not 32 bytes, or a proof of the wrong length for (leafIndex, treeSize). Never throws.
 */
export function computeRootFromInclusion(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array | null {
  const computed = chainInclusion(leafIndex, treeSize, leafHash, proof);
  return typeof computed === 'string' ? null : computed;
}

/**
 * Checks that the tree of `size2` leaves with MTH `root2` extends the tree of `size1` leaves with MTH
 * `root1`, given the consistency proof (RFC 9162 §2.1.4). Never throws.
 */
export function verifyConsistency(input: {
  size1: number;
  size2: number;
  root1: Uint8Array;
  root2: Uint8Array;
  proof: readonly Uint8Array[];
}): ProofVerdict {
  const { size1, size2, root1, root2, proof } = input;
  const problem =
    checkSize('size1', size1) ??
    checkSize('size2', size2) ??
    checkHash('root1', root1) ??
    checkHash('root2', root2) ??
    checkProofNodes(proof);
  if (problem !== undefined) return fail(problem);
  if (size1 > size2) return fail('size1 must not exceed size2');
  if (size1 === size2) {
    if (proof.length !== 0) return fail('proof must be empty when size1 equals size2');
    return bytesEqual(root1, root2) ? OK : fail('root1 and root2 differ for equal sizes');
  }
  if (size1 === 0) return fail('a consistency proof from the empty tree is meaningless');
  if (proof.length === 0) return fail('proof is empty');

  // §2.1.4.2 step 2: when size1 is a power of two the old root is the seed, not sent in the proof.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return fail('proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = hashChildren(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) return fail('proof is too short');
  if (!bytesEqual(fr, root1)) return fail('computed root1 does not match root1');
  if (!bytesEqual(sr, root2)) return fail('computed root2 does not match root2');
  return OK;
}

/** §2.1.3.2 steps 1–4 and the sn === 0 check of step 5: the implied root, or why there is none. */
function chainInclusion(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array | string {
  const problem =
    checkSize('leafIndex', leafIndex) ??
    checkSize('treeSize', treeSize) ??
    checkHash('leafHash', leafHash) ??
    checkProofNodes(proof);
  if (problem !== undefined) return problem;
  if (leafIndex >= treeSize) return 'leafIndex must be less than treeSize';
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) return 'proof is too long';
    if (fn % 2 === 1 || fn === sn) {
      r = hashChildren(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = hashChildren(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) return 'proof is too short';
  return r === leafHash ? leafHash.slice() : r;
}

function checkSize(field: string, value: unknown): string | undefined {
  return Number.isSafeInteger(value) && (value as number) >= 0
    ? undefined
    : `${field} must be a non-negative safe integer`;
}

function checkHash(field: string, value: unknown): string | undefined {
  return value instanceof Uint8Array && value.length === HASH_BYTES
    ? undefined
    : `${field} must be ${HASH_BYTES} bytes`;
}

function checkProofNodes(proof: unknown): string | undefined {
  if (!Array.isArray(proof)) return 'proof must be an array';
  for (let i = 0; i < proof.length; i++) {
    const problem = checkHash(`proof[${i}]`, proof[i]);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function half(n: number): number {
  return Math.floor(n / 2);
}

function isPowerOfTwo(n: number): boolean {
  let x = n;
  while (x > 1 && x % 2 === 0) x /= 2;
  return x === 1;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
