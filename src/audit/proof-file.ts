/**
 * Checks one Merkle proof file in the JSON layout of transparency-dev/merkle `testdata/` (used by
 * `entente audit check-proof FILE.json`), verifying it with RFC 9162 §2.1.3.2 / §2.1.4.2:
 *   inclusion:   { leafIdx, treeSize, root, leafHash, proof: [] }
 *   consistency: { size1, size2, root1, root2, proof: [] }
 * Hashes are standard padded base64; other keys (desc, wantErr, ...) are ignored.
 *
 * malformed vs invalid — "malformed" means the text is not a proof file in this layout, so no claim
 * can be read from it: not JSON, not an object, neither or both layouts, a missing field, a size that is
 * not a non-negative safe integer, a hash that is not a string of canonical standard base64, a proof
 * that is not an array of such strings. "invalid" means the file states a claim and the claim is false:
 * the proof does not verify, the sizes contradict each other (leafIdx ≥ treeSize, size1 > size2, ...),
 * or a decoded hash is not 32 bytes (the layout does not fix hash lengths; verify.go too rejects a
 * 9-byte leafHash as a failed verification, and our verifier requires 32-byte hashes everywhere).
 * So every probe with wantErr:true is 'invalid', and every wantErr:false probe is 'valid'.
 * As in Go's encoding/json, `null` for a hash or the proof decodes to empty bytes / an empty proof.
 */
import { verifyConsistency, verifyInclusion } from './merkle-proof.ts';

export type ProofFileVerdict =
  | { readonly status: 'valid'; readonly kind: 'inclusion' | 'consistency' }
  | { readonly status: 'invalid'; readonly kind: 'inclusion' | 'consistency'; readonly reason: string }
  | { readonly status: 'malformed'; readonly reason: string };

const INCLUSION_FIELDS = ['leafIdx', 'treeSize', 'root', 'leafHash', 'proof'] as const;
const CONSISTENCY_FIELDS = ['size1', 'size2', 'root1', 'root2', 'proof'] as const;
const STANDARD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Thrown and caught inside this module only: carries the 'malformed' reason. */
class MalformedFile extends Error {}

/** Parses and verifies a proof file's text. Never throws; see the header for the three outcomes. */
export function checkProofFile(text: string): ProofFileVerdict {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { status: 'malformed', reason: 'file is not JSON' };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return { status: 'malformed', reason: 'file must hold a JSON object' };
  }
  const fields = doc as Record<string, unknown>;
  const hasAny = (names: readonly string[]) =>
    names.some((name) => name !== 'proof' && Object.hasOwn(fields, name));
  const isInclusion = hasAny(INCLUSION_FIELDS);
  const isConsistency = hasAny(CONSISTENCY_FIELDS);
  if (isInclusion === isConsistency) {
    return {
      status: 'malformed',
      reason: isInclusion
        ? 'file mixes inclusion and consistency fields'
        : `file has neither the inclusion fields (${INCLUSION_FIELDS.join(', ')}) nor the consistency fields (${CONSISTENCY_FIELDS.join(', ')})`,
    };
  }
  try {
    if (isInclusion) {
      const verdict = verifyInclusion({
        leafIndex: readSize(fields, 'leafIdx'),
        treeSize: readSize(fields, 'treeSize'),
        root: readHash(fields, 'root'),
        leafHash: readHash(fields, 'leafHash'),
        proof: readProof(fields),
      });
      return verdict.ok
        ? { status: 'valid', kind: 'inclusion' }
        : { status: 'invalid', kind: 'inclusion', reason: verdict.reason };
    }
    const verdict = verifyConsistency({
      size1: readSize(fields, 'size1'),
      size2: readSize(fields, 'size2'),
      root1: readHash(fields, 'root1'),
      root2: readHash(fields, 'root2'),
      proof: readProof(fields),
    });
    return verdict.ok
      ? { status: 'valid', kind: 'consistency' }
      : { status: 'invalid', kind: 'consistency', reason: verdict.reason };
  } catch (error) {
    if (error instanceof MalformedFile) return { status: 'malformed', reason: error.message };
    throw error;
  }
}

function readField(fields: Record<string, unknown>, name: string): unknown {
  if (!Object.hasOwn(fields, name)) throw new MalformedFile(`missing field ${name}`);
  return fields[name];
}

function readSize(fields: Record<string, unknown>, name: string): number {
  const value = readField(fields, name);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new MalformedFile(`${name} must be a non-negative integer below 2^53`);
  }
  return value;
}

function readHash(fields: Record<string, unknown>, name: string): Uint8Array {
  return decodeBase64(readField(fields, name), name);
}

function readProof(fields: Record<string, unknown>): Uint8Array[] {
  const value = readField(fields, 'proof');
  if (value === null) return [];
  if (!Array.isArray(value)) throw new MalformedFile('proof must be an array of base64 strings');
  return value.map((element, i) => decodeBase64(element, `proof[${i}]`));
}

/** Canonical standard base64 with padding (RFC 4648 §4); null decodes to empty bytes as in Go. */
function decodeBase64(value: unknown, name: string): Uint8Array {
  if (value === null) return new Uint8Array(0);
  if (typeof value !== 'string' || !STANDARD_BASE64.test(value)) {
    throw new MalformedFile(`${name} must be a standard padded base64 string`);
  }
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) {
    throw new MalformedFile(`${name} is not canonical base64 (non-zero padding bits)`);
  }
  return bytes;
}
