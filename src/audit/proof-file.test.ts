import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MerkleTree } from './merkle-tree.ts';
import { checkProofFile } from './proof-file.ts';

const VECTORS = new URL('../../test/vectors/audit/', import.meta.url);
const PROBES = new URL('probes/', VECTORS);
const readJson = <T>(url: URL): T => JSON.parse(readFileSync(url, 'utf8')) as T;
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const hexToB64 = (h: string) => Buffer.from(h, 'hex').toString('base64');

const tree = new MerkleTree();
for (let i = 0; i < 40; i++) tree.appendEntry(new TextEncoder().encode(`entry ${i}`));
const inclusionFile = (m: number, n: number) => ({
  leafIdx: m,
  treeSize: n,
  root: b64(tree.root(n)),
  leafHash: b64(tree.leafHash(m)),
  proof: tree.inclusionProof(m, n).map(b64),
});
const consistencyFile = (m: number, n: number) => ({
  size1: m,
  size2: n,
  root1: b64(tree.root(m)),
  root2: b64(tree.root(n)),
  proof: tree.consistencyProof(m, n).map(b64),
});
const check = (doc: unknown) => checkProofFile(JSON.stringify(doc));
const assertMalformed = (text: string, pattern: RegExp) => {
  const v = checkProofFile(text);
  assert.equal(v.status, 'malformed', text);
  assert.match(v.status === 'malformed' ? v.reason : '', pattern);
};

describe('checkProofFile (transparency-dev testdata layout)', () => {
  it('follows every probe: wantErr false is valid, wantErr true is invalid', () => {
    const names = readdirSync(PROBES).filter((n) => n.endsWith('.json'));
    assert.equal(names.length, 10);
    for (const name of names) {
      const text = readFileSync(new URL(name, PROBES), 'utf8');
      const probe = JSON.parse(text) as { wantErr: boolean };
      const kind = name.startsWith('inclusion') ? 'inclusion' : 'consistency';
      const verdict = checkProofFile(text);
      if (probe.wantErr) {
        assert.equal(verdict.status, 'invalid', name);
        assert.equal(verdict.status === 'invalid' && verdict.kind, kind, name);
      } else {
        assert.deepEqual(verdict, { status: 'valid', kind }, name);
      }
    }
  });

  it('gives the reasons a reader expects for the negative probes', () => {
    const reason = (name: string) => {
      const v = checkProofFile(readFileSync(new URL(name, PROBES), 'utf8'));
      return v.status === 'invalid' ? v.reason : `not invalid: ${v.status}`;
    };
    assert.match(reason('inclusion_1_wrong-leaf.json'), /leafHash must be 32 bytes/);
    assert.match(reason('inclusion_1_treeSize-mul-@2.json'), /too short/);
    assert.match(reason('inclusion_1_modified-proof[1]-bit-@3.json'), /does not match root/);
    assert.match(reason('consistency_1_truncated-proof.json'), /too short/);
    assert.match(reason('consistency_1_swapped-roots.json'), /does not match/);
    assert.match(
      reason('consistency_additional_size1-is-zero-and-size2-is-not-zero.json'),
      /root2 must be 32 bytes/,
    );
  });

  it('accepts the inclusion and consistency vectors converted to the file layout', () => {
    const inc = readJson<{
      vectors: { leaf_index: number; tree_size: number; leaf_hash: string; proof: string[]; root: string }[];
    }>(new URL('merkle_inclusion_proofs.json', VECTORS));
    for (const v of inc.vectors) {
      const doc = {
        leafIdx: v.leaf_index,
        treeSize: v.tree_size,
        root: hexToB64(v.root),
        leafHash: hexToB64(v.leaf_hash),
        proof: v.proof.map(hexToB64),
      };
      assert.deepEqual(check(doc), { status: 'valid', kind: 'inclusion' });
    }
    const con = readJson<{
      vectors: { first: number; second: number; proof: string[]; first_root: string; second_root: string }[];
    }>(new URL('merkle_consistency_proofs.json', VECTORS));
    for (const v of con.vectors) {
      const doc = {
        size1: v.first,
        size2: v.second,
        root1: hexToB64(v.first_root),
        root2: hexToB64(v.second_root),
        proof: v.proof.map(hexToB64),
      };
      assert.deepEqual(check(doc), { status: 'valid', kind: 'consistency' });
    }
  });

  it('round-trips tree proofs as files, and a changed base64 character makes them invalid', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.nat(),
        fc.boolean(),
        fc.nat(),
        (n, a, inclusion, pos) => {
          const doc = inclusion ? inclusionFile(a % n, n) : consistencyFile(1 + (a % n), n);
          const text = JSON.stringify(doc);
          assert.equal(checkProofFile(text).status, 'valid');
          const hashField = inclusion ? 'root' : 'root2';
          const value = (doc as Record<string, unknown>)[hashField] as string;
          const i = pos % 42; // character 42 (before the '=') also carries the 2 padding bits
          const changed = value.slice(0, i) + (value[i] === 'A' ? 'B' : 'A') + value.slice(i + 1);
          assert.equal(check({ ...doc, [hashField]: changed }).status, 'invalid');
        },
      ),
      { numRuns: 150 },
    );
  });

  it('ignores extra keys and decodes null like Go (empty proof, empty hash)', () => {
    const doc = { ...inclusionFile(0, 1), desc: 'single entry', wantErr: false, note: { any: [1] } };
    assert.deepEqual(check(doc), { status: 'valid', kind: 'inclusion' });
    assert.deepEqual(check({ ...doc, proof: null }), { status: 'valid', kind: 'inclusion' });
    const equalSizes = { ...consistencyFile(5, 5), proof: null };
    assert.deepEqual(check(equalSizes), { status: 'valid', kind: 'consistency' });
    const nullRoot = check({ ...doc, root: null });
    assert.equal(nullRoot.status, 'invalid');
    assert.match(nullRoot.status === 'invalid' ? nullRoot.reason : '', /root must be 32 bytes/);
  });

  it('reports contradictory sizes as invalid (a claim that is false), naming the rule', () => {
    const cases: [unknown, RegExp][] = [
      [{ ...inclusionFile(3, 10), leafIdx: 10 }, /leafIndex must be less than treeSize/],
      [{ ...inclusionFile(3, 10), treeSize: 0 }, /leafIndex must be less than treeSize/],
      [{ ...consistencyFile(3, 10), size1: 11 }, /must not exceed/],
      [{ ...consistencyFile(3, 10), size1: 0, proof: [] }, /empty tree/],
      [{ ...consistencyFile(3, 10), proof: [] }, /proof is empty/],
      [{ ...consistencyFile(10, 10), root2: b64(tree.root(11)) }, /differ/],
      [{ ...inclusionFile(3, 10), proof: [''] }, /proof\[0\] must be 32 bytes/],
    ];
    for (const [doc, pattern] of cases) {
      const v = check(doc);
      assert.equal(v.status, 'invalid', JSON.stringify(doc));
      assert.match(v.status === 'invalid' ? v.reason : '', pattern);
    }
  });

  it('reports files that are not in the layout as malformed, naming the problem', () => {
    const inc = inclusionFile(2, 7);
    const con = consistencyFile(2, 7);
    const text = (doc: unknown) => JSON.stringify(doc);
    assertMalformed('', /not JSON/);
    assertMalformed('{"leafIdx": 1,', /not JSON/);
    assertMalformed('[1, 2]', /JSON object/);
    assertMalformed('null', /JSON object/);
    assertMalformed('"x"', /JSON object/);
    assertMalformed('{}', /neither/);
    assertMalformed(text({ proof: [], desc: 'x' }), /neither/);
    assertMalformed(text({ ...inc, size1: 1 }), /mixes/);
    const { leafHash: _dropped, ...noLeafHash } = inc;
    assertMalformed(text(noLeafHash), /missing field leafHash/);
    const { proof: _noProof, ...noProof } = con;
    assertMalformed(text(noProof), /missing field proof/);
    assertMalformed(text({ ...inc, treeSize: '7' }), /treeSize must be a non-negative integer/);
    assertMalformed(text({ ...inc, leafIdx: -1 }), /leafIdx/);
    assertMalformed(text({ ...inc, leafIdx: 1.5 }), /leafIdx/);
    assertMalformed(
      '{"leafIdx":0,"treeSize":18446744073709551615,"root":"","leafHash":"","proof":[]}',
      /treeSize/,
    );
    assertMalformed(text({ ...con, size2: null }), /size2/);
    assertMalformed(text({ ...inc, root: 42 }), /root must be a standard padded base64/);
    assertMalformed(
      text({ ...inc, root: inc.root.replace(/=$/, '') }),
      /root must be a standard padded base64/,
    );
    assertMalformed(
      text({ ...inc, root: inc.root.replace(/.(.)$/, '-$1') }),
      /root must be a standard padded base64/,
    );
    assertMalformed(text({ ...inc, root: ` ${inc.root}` }), /root must be a standard padded base64/);
    assertMalformed(
      text({ ...inc, leafHash: `${inc.leafHash.slice(0, 42)}B=` }),
      /leafHash is not canonical/,
    );
    assertMalformed(text({ ...con, proof: 'AAAA' }), /proof must be an array/);
    assertMalformed(
      text({ ...con, proof: [con.proof[0], 7] }),
      /proof\[1\] must be a standard padded base64/,
    );
    assertMalformed(text({ ...con, root1: 'Zg=' }), /root1/);
  });

  it('never throws, whatever the text', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify({ ...inclusionFile(0, 2), leafIdx: v })),
        ),
        (text) => {
          const v = checkProofFile(text);
          assert.ok(['valid', 'invalid', 'malformed'].includes(v.status));
        },
      ),
      { numRuns: 300 },
    );
  });
});
