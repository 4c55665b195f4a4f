/**
 * verifyBundle: a bundle built here from a real small log (MerkleTree, Ed25519 log and witness keys,
 * DSSE-signed provenance) verifies, and each kind of tampering is refused with a reason.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { generateEd25519KeyPem } from '../crypto/signatures.ts';
import { formatCheckpoint } from './checkpoint.ts';
import { createCosignatureLine } from './cosignature.ts';
import { signDsse } from './dsse.ts';
import { encodeLogEntry, type LogEntry } from './log-entry.ts';
import { hashLeaf } from './merkle-hash.ts';
import { MerkleTree } from './merkle-tree.ts';
import { createProvenanceStatement, IN_TOTO_PAYLOAD_TYPE } from './provenance.ts';
import { appendSignatureLines, createEd25519NoteSigner, formatVerifierKey, signNote } from './signed-note.ts';
import { type EvidenceBundle, parseEvidenceBundle, verifyBundle } from './verify-bundle.ts';

const ORIGIN = 'entente/test/log';
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const hex = (s: string): string => sha256Hex(new TextEncoder().encode(s));

function buildFixture() {
  const logKey = generateEd25519KeyPem();
  const logVkey = formatVerifierKey(ORIGIN, logKey.publicKey, 0x01);
  const witnessKeys = ['a', 'b', 'c'].map((id) => {
    const k = generateEd25519KeyPem();
    const name = `entente/test/witness/${id}`;
    return { name, pem: k.privateKeyPem, vkey: formatVerifierKey(name, k.publicKey, 0x04) };
  });
  const policy = { consortium: 'test', institutions: ['a', 'b', 'c'] };
  const policySha256 = sha256Hex(new TextEncoder().encode(canonicalizeJson(policy)));
  const tree = new MerkleTree();
  const entries: Uint8Array[] = [];
  let prev = '';
  const append = (body: Record<string, unknown>): number => {
    const index = entries.length;
    const bytes = encodeLogEntry({ index, at: 1000 + index, prev, ...body } as unknown as LogEntry);
    entries.push(bytes);
    tree.appendEntry(bytes);
    prev = Buffer.from(hashLeaf(bytes)).toString('hex');
    return index;
  };
  append({
    kind: 'log-created',
    origin: ORIGIN,
    consortium: 'test',
    logKey: logVkey,
    witnesses: witnessKeys.map((w, i) => ({ institution: 'abc'[i]!, key: w.vkey })),
    quorum: 2,
  });
  const policyIndex = append({ kind: 'policy-adopted', policySha256, policy });
  append({ kind: 'run-configured', run: 'r1', configSha256: hex('config'), config: {}, policyIndex });
  let model = hex('model-0');
  append({ kind: 'model-initialized', run: 'r1', round: 0, modelSha256: model });
  const models: { index: number; provenance: unknown }[] = [];
  for (let round = 1; round <= 2; round++) {
    const modelSha256 = hex(`model-${round}`);
    const logIndex = entries.length;
    const statement = createProvenanceStatement({
      modelSha256,
      run: 'r1',
      round,
      policySha256,
      dataSchemaSha256: null,
      codeVersion: 'test',
      hyperparameters: { lr: 0.1 },
      contributors: ['a', 'b', 'c'],
      logIndex,
    });
    const provenance = signDsse(IN_TOTO_PAYLOAD_TYPE, statement, {
      keyid: logVkey,
      privateKeyPem: logKey.privateKeyPem,
    });
    append({
      kind: 'model-released',
      run: 'r1',
      round,
      modelIn: model,
      modelSha256,
      provenanceSha256: sha256Hex(statement),
    });
    model = modelSha256;
    models.push({ index: logIndex, provenance });
  }
  append({ kind: 'run-completed', run: 'r1' });
  const text = formatCheckpoint({ origin: ORIGIN, size: tree.size, rootHash: tree.root(), extensions: [] });
  const signed = signNote(text, [createEd25519NoteSigner(ORIGIN, logKey.privateKeyPem)]);
  const checkpoint = appendSignatureLines(
    signed,
    witnessKeys.map((w, i) =>
      createCosignatureLine({
        witnessName: w.name,
        privateKeyPem: w.pem,
        checkpointText: text,
        timestampSeconds: 1700000000 + i,
      }),
    ),
  );
  const item = (index: number) => ({
    index,
    entry: b64(entries[index]!),
    proof: tree.inclusionProof(index).map(b64),
  });
  const bundle: EvidenceBundle = {
    format: 'entente-evidence/v1',
    origin: ORIGIN,
    logKey: logVkey,
    witnesses: witnessKeys.map((w) => w.vkey),
    quorum: 2,
    checkpoint,
    policy: item(policyIndex),
    models: models.map((m) => ({ ...item(m.index), provenance: m.provenance })),
  };
  return { bundle, logVkey, witnessKeys, entries };
}

const fixture = buildFixture();
/** A deep copy of the fixture's bundle as plain JSON, to edit. */
const copy = (): {
  checkpoint: string;
  policy: { index: number; entry: string; proof: string[] };
  models: {
    index: number;
    entry: string;
    proof: string[];
    provenance: { payload: string; signatures: { sig: string }[] };
  }[];
  [k: string]: unknown;
} => JSON.parse(JSON.stringify(fixture.bundle));
const flipBit = (s: string, bit: number): string => {
  const bytes = Buffer.from(s, 'base64');
  bytes[Math.floor(bit / 8) % bytes.length]! ^= 1 << (bit % 8);
  return bytes.toString('base64');
};

describe('verifyBundle', () => {
  it('accepts a bundle built from a real log, with the keys it names or the trusted ones', () => {
    const r = verifyBundle(fixture.bundle);
    assert.deepEqual(r.problems, []);
    assert.equal(r.ok, true);
    assert.equal(r.keysFrom, 'log');
    assert.equal(r.entries, 3);
    assert.deepEqual(r.runs, [{ run: 'r1', rounds: 2, models: 2, completed: false }]);
    const trusted = verifyBundle(fixture.bundle, {
      log: fixture.logVkey,
      witnesses: fixture.witnessKeys.map((w) => w.vkey),
      quorum: 3,
    });
    assert.equal(trusted.ok, true, trusted.problems.join('; '));
    assert.equal(trusted.keysFrom, 'trusted-keys');
  });

  it('refuses a checkpoint whose text was changed (signature)', () => {
    const b = copy();
    b.checkpoint = b.checkpoint.replace(`\n${fixture.entries.length}\n`, `\n${fixture.entries.length - 1}\n`);
    const r = verifyBundle(b);
    assert.equal(r.ok, false);
    assert.match(r.problems.join('\n'), /checkpoint: signature does not verify/);
  });

  it('refuses a log key other than the trusted one', () => {
    const other = buildFixture();
    const r = verifyBundle(fixture.bundle, { log: other.logVkey, witnesses: [], quorum: 0 });
    assert.equal(r.ok, false);
    assert.match(r.problems.join('\n'), /different log key|signature does not verify/);
  });

  it('refuses every single-bit change to an inclusion proof, naming the entry', () => {
    const model = fixture.bundle.models[1]!;
    const bits = model.proof.length * 256;
    fc.assert(
      fc.property(fc.nat({ max: bits - 1 }), (bit) => {
        const b = copy();
        const node = Math.floor(bit / 256);
        b.models[1]!.proof[node] = flipBit(b.models[1]!.proof[node]!, bit % 256);
        const r = verifyBundle(b);
        return !r.ok && r.firstBadEntry === model.index && /inclusion proof/.test(r.problems.join());
      }),
      { numRuns: 64 },
    );
  });

  it('refuses an edited entry (its proof no longer fits; its provenance no longer matches)', () => {
    const b = copy();
    const bytes = Buffer.from(b.models[0]!.entry, 'base64').toString('utf8');
    b.models[0]!.entry = Buffer.from(bytes.replace('"round":1', '"round":3')).toString('base64');
    const r = verifyBundle(b);
    assert.equal(r.ok, false);
    assert.equal(r.firstBadEntry, fixture.bundle.models[0]!.index);
    assert.match(r.problems.join('\n'), /inclusion proof does not verify/);
    assert.match(r.problems.join('\n'), /different run or round/);
  });

  it('refuses a policy entry that is not a policy', () => {
    const b = copy();
    b.policy = { ...b.models[0]!, provenance: undefined } as never;
    delete (b.policy as { provenance?: unknown }).provenance;
    const r = verifyBundle(b);
    assert.equal(r.ok, false);
    assert.match(r.problems.join('\n'), /not policy-adopted/);
  });

  it('refuses a tampered provenance envelope (signature, payload)', () => {
    const sig = copy();
    sig.models[0]!.provenance.signatures[0]!.sig = flipBit(sig.models[0]!.provenance.signatures[0]!.sig, 3);
    const r1 = verifyBundle(sig);
    assert.equal(r1.ok, false);
    assert.equal(r1.firstBadEntry, fixture.bundle.models[0]!.index);
    assert.match(r1.problems.join('\n'), /provenance envelope does not verify/);
    // A swapped envelope is validly signed but is not the statement the entry commits to.
    const swapped = copy();
    const p0 = swapped.models[0]!.provenance;
    swapped.models[0]!.provenance = swapped.models[1]!.provenance;
    swapped.models[1]!.provenance = p0;
    const r2 = verifyBundle(swapped);
    assert.equal(r2.ok, false);
    assert.match(r2.problems.join('\n'), /not the one the entry commits to/);
  });

  it('refuses a checkpoint whose cosignatures fall below the quorum', () => {
    const b = copy();
    const lines = b.checkpoint.split('\n');
    // Keep the log's signature line and one cosignature: 1 < quorum 2.
    const blank = lines.indexOf('');
    b.checkpoint = `${lines.slice(0, blank + 3).join('\n')}\n`;
    const r = verifyBundle(b);
    assert.equal(r.ok, false);
    assert.match(r.problems.join('\n'), /1 cosignatures, quorum is 2/);
    // A forged cosignature (a flipped bit) does not count either.
    const forged = copy();
    const fl = forged.checkpoint.split('\n');
    const at = fl.indexOf('') + 2;
    const [dash, name, sigText] = fl[at]!.split(' ') as [string, string, string];
    fl[at] = `${dash} ${name} ${flipBit(sigText, 100)}`;
    const otherDropped = [...fl.slice(0, at + 1), ...fl.slice(at + 2)];
    forged.checkpoint = otherDropped.join('\n');
    const r2 = verifyBundle(forged);
    assert.equal(r2.ok, false);
    assert.match(r2.problems.join('\n'), /quorum is 2/);
  });

  it('reports a malformed bundle as a problem, and parseEvidenceBundle names the field', () => {
    assert.equal(verifyBundle({ format: 'other' }).ok, false);
    assert.equal(verifyBundle(null).ok, false);
    const b = copy();
    b.models[0]!.proof = ['not base64!'];
    assert.throws(() => parseEvidenceBundle(b), /bundle\.models\.0\.proof\.0/);
    assert.throws(() => parseEvidenceBundle({ ...copy(), extra: 1 }), /bundle/);
  });
});
