/**
 * The auditor's verifier over a small but complete log (3 witnesses, quorum 2): an honest log passes;
 * each kind of tampering behind the coordinator's back is caught and the first bad entry named.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { readEd25519PublicKey } from '../crypto/signatures.ts';
import { formatCheckpoint } from './checkpoint.ts';
import { createCosignatureLine } from './cosignature.ts';
import { type LogEntry, encodeLogEntry } from './log-entry.ts';
import { hashLeaf } from './merkle-hash.ts';
import { MerkleTree } from './merkle-tree.ts';
import { appendSignatureLines, createEd25519NoteSigner, formatVerifierKey, signNote } from './signed-note.ts';
import { type LogSource, verifyLog } from './verify-log.ts';

const ORIGIN = 'entente/test/log';
const pem = (): string =>
  generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const logKey = pem();
const logVkey = formatVerifierKey(ORIGIN, readEd25519PublicKey(logKey), 0x01);
const witnesses = ['a', 'b', 'c'].map((id) => {
  const key = pem();
  const name = `entente/test/witness/${id}`;
  return { id, name, key, vkey: formatVerifierKey(name, readEd25519PublicKey(key), 0x04) };
});
const h = (c: string): string => c.repeat(64);

/** Entry bodies of a one-run, two-round log. */
function honestBodies(): Record<string, unknown>[] {
  return [
    {
      kind: 'log-created',
      origin: ORIGIN,
      consortium: 'test',
      logKey: logVkey,
      witnesses: witnesses.map((w) => ({ institution: w.id, key: w.vkey })),
      quorum: 2,
    },
    { kind: 'policy-adopted', policySha256: h('1'), policy: { members: ['a', 'b', 'c'] } },
    { kind: 'run-configured', run: 'r', configSha256: h('2'), config: { rounds: 2 }, policyIndex: 1 },
    { kind: 'model-initialized', run: 'r', round: 0, modelSha256: h('a') },
    {
      kind: 'keys-advertised',
      run: 'r',
      round: 1,
      attempt: 0,
      sessionId: h('3'),
      adverts: [
        { participant: 'a', advertSha256: h('4'), encryptionKeySha256: h('5'), maskingKeySha256: h('6') },
      ],
    },
    {
      kind: 'model-released',
      run: 'r',
      round: 1,
      modelIn: h('a'),
      modelSha256: h('b'),
      provenanceSha256: h('7'),
    },
    {
      kind: 'keys-advertised',
      run: 'r',
      round: 2,
      attempt: 0,
      sessionId: h('8'),
      adverts: [
        { participant: 'a', advertSha256: h('9'), encryptionKeySha256: h('c'), maskingKeySha256: h('d') },
      ],
    },
    {
      kind: 'model-released',
      run: 'r',
      round: 2,
      modelIn: h('b'),
      modelSha256: h('e'),
      provenanceSha256: h('f'),
    },
    { kind: 'run-completed', run: 'r' },
  ];
}

/** Encodes bodies as a chained log; checkpoints after `cuts` entries, cosigned by `cosigners` witnesses. */
function buildLog(
  bodies: Record<string, unknown>[],
  cuts: number[],
  cosigners = 3,
  signKey = logKey,
): LogSource & { tree: MerkleTree } {
  const tree = new MerkleTree();
  const entries: Uint8Array[] = [];
  for (const [index, body] of bodies.entries()) {
    const prev = index === 0 ? '' : Buffer.from(tree.leafHash(index - 1)).toString('hex');
    const bytes = encodeLogEntry({ ...body, index, at: 1000 + index, prev } as unknown as LogEntry);
    entries.push(bytes);
    tree.appendEntry(bytes);
  }
  const signer = createEd25519NoteSigner(ORIGIN, signKey);
  const checkpoints = cuts.map((size) => {
    const text = formatCheckpoint({ origin: ORIGIN, size, rootHash: tree.root(size), extensions: [] });
    const lines = witnesses.slice(0, cosigners).map((w) =>
      createCosignatureLine({
        witnessName: w.name,
        privateKeyPem: w.key,
        checkpointText: text,
        timestampSeconds: 1_800_000_000,
      }),
    );
    return appendSignatureLines(signNote(text, [signer]), lines);
  });
  return { entries, storedLeafHashes: entries.map((e) => hashLeaf(e)), checkpoints, tree };
}

const trusted = { log: logVkey, witnesses: witnesses.map((w) => w.vkey), quorum: 2 };

describe('audit verify', () => {
  it('accepts an honest log and reports what it established', () => {
    const r = verifyLog(buildLog(honestBodies(), [2, 4, 6, 9]), trusted);
    assert.deepEqual(r.problems, []);
    assert.ok(r.ok);
    assert.equal(r.entries, 9);
    assert.equal(r.checkpoints, 4);
    assert.deepEqual(r.runs, [{ run: 'r', rounds: 2, models: 2, completed: true }]);
    assert.equal(r.keysFrom, 'trusted-keys');
    const tofu = verifyLog(buildLog(honestBodies(), [9]));
    assert.ok(tofu.ok);
    assert.equal(tofu.keysFrom, 'log');
  });

  it('names an edited entry (its bytes no longer hash to the recorded leaf)', () => {
    const log = buildLog(honestBodies(), [4, 9]);
    const edited = [...log.entries];
    edited[5] = new TextEncoder().encode(new TextDecoder().decode(edited[5]).replace(h('b'), h('0')));
    const r = verifyLog({ ...log, entries: edited }, trusted);
    assert.equal(r.ok, false);
    assert.equal(r.firstBadEntry, 5);
  });

  it('names a deleted row, and rows swapped', () => {
    const log = buildLog(honestBodies(), [9]);
    const deleted = log.entries.filter((_, i) => i !== 3);
    const r1 = verifyLog(
      { ...log, entries: deleted, storedLeafHashes: log.storedLeafHashes!.filter((_, i) => i !== 3) },
      trusted,
    );
    assert.equal(r1.ok, false);
    assert.equal(r1.firstBadEntry, 3);
    const swapped = [...log.entries];
    [swapped[4], swapped[6]] = [swapped[6]!, swapped[4]!];
    const r2 = verifyLog({ entries: swapped, checkpoints: log.checkpoints }, trusted);
    assert.equal(r2.ok, false);
    assert.equal(r2.firstBadEntry, 4);
  });

  it('names where a truncated log ends', () => {
    const log = buildLog(honestBodies(), [4, 9]);
    const r = verifyLog(
      { ...log, entries: log.entries.slice(0, 6), storedLeafHashes: log.storedLeafHashes!.slice(0, 6) },
      trusted,
    );
    assert.equal(r.ok, false);
    assert.equal(r.firstBadEntry, 6);
    assert.match(r.problems.join('\n'), /truncated/);
  });

  it('catches a history rewritten consistently and re-signed with the log key: the cosigned checkpoint no longer matches', () => {
    const honest = buildLog(honestBodies(), [4, 9]);
    const bodies = honestBodies();
    bodies[5] = { ...bodies[5]!, modelSha256: h('0') };
    bodies[7] = { ...bodies[7]!, modelIn: h('0') };
    const rewritten = buildLog(bodies, [4, 9], 0); // re-signed by the log key, but no witness will cosign it
    const r = verifyLog(
      { ...rewritten, checkpoints: [...honest.checkpoints, rewritten.checkpoints[1]!] },
      trusted,
    );
    assert.equal(r.ok, false);
    assert.match(
      r.problems.join('\n'),
      /two different checkpoints for size 9|do not match the checkpoint of size 9/,
    );
    assert.equal(r.firstBadEntry, 4, 'the first entry after the last checkpoint that still matches');
  });

  it('requires a cosignature quorum on every checkpoint but the newest (all of them with strict)', () => {
    const two = buildLog(honestBodies(), [4, 9], 1);
    const r = verifyLog(two, trusted);
    assert.equal(r.ok, false);
    assert.match(r.problems.join('\n'), /size 4 has 1 cosignatures, quorum is 2/);
    const pending = buildLog(honestBodies(), [9], 1);
    assert.ok(verifyLog(pending, trusted).ok, 'the newest may still be gathering cosignatures');
    assert.equal(verifyLog(pending, trusted, { strict: true }).ok, false);
  });

  it('refuses checkpoints signed by another key, and a log whose first entry names another log key', () => {
    const log = buildLog(honestBodies(), [9], 3, pem());
    const r = verifyLog(log, trusted);
    assert.equal(r.ok, false);
    assert.match(r.problems.join('\n'), /does not verify with the log key/);
  });

  it('checks semantics: lineage, policy reference, key reuse', () => {
    const lineage = honestBodies();
    lineage[7] = { ...lineage[7]!, modelIn: h('a') };
    const r1 = verifyLog(buildLog(lineage, [9]), trusted);
    assert.equal(r1.firstBadEntry, 7);
    assert.match(r1.problems.join('\n'), /does not descend/);
    const policy = honestBodies();
    policy[2] = { ...policy[2]!, policyIndex: 0 };
    assert.equal(verifyLog(buildLog(policy, [9]), trusted).firstBadEntry, 2);
    const reuse = honestBodies();
    reuse[6] = {
      ...reuse[6]!,
      adverts: [
        { participant: 'a', advertSha256: h('9'), encryptionKeySha256: h('5'), maskingKeySha256: h('d') },
      ],
    };
    const r3 = verifyLog(buildLog(reuse, [9]), trusted);
    assert.equal(r3.firstBadEntry, 6);
    assert.match(r3.problems.join('\n'), /already used in entry 4/);
  });
});

describe('audit verify: witness keys over time', () => {
  /** Witness a's key replaced (rotation) at entry 4; checkpoints before it cosigned with the old key. */
  function rotatedLog(newKeyCosignsOld: boolean, oldKeyCosignsNew: boolean) {
    const next = pem();
    const a = witnesses[0]!;
    const nextVkey = formatVerifierKey(a.name, readEd25519PublicKey(next), 0x04);
    const bodies = honestBodies();
    bodies.splice(4, 0, { kind: 'witness-added', institution: 'a', key: nextVkey, quorum: 2 });
    const log = buildLog(bodies, [2, 4, 10], 0);
    const signer = createEd25519NoteSigner(ORIGIN, logKey);
    const checkpoints = [2, 4, 10].map((size) => {
      const text = formatCheckpoint({ origin: ORIGIN, size, rootHash: log.tree.root(size), extensions: [] });
      const before = size <= 4;
      const aKey = before ? (newKeyCosignsOld ? next : a.key) : oldKeyCosignsNew ? a.key : next;
      const lines = [
        { name: a.name, key: aKey },
        { name: witnesses[1]!.name, key: before ? witnesses[1]!.key : pem() },
      ].map((w) =>
        createCosignatureLine({
          witnessName: w.name,
          privateKeyPem: w.key,
          checkpointText: text,
          timestampSeconds: 1_800_000_000,
        }),
      );
      return appendSignatureLines(signNote(text, [signer]), lines);
    });
    return { ...log, checkpoints };
  }

  it('a rotation does not invalidate cosignatures made before it with the old key', () => {
    // Checkpoints 2 and 4: a (old key) and b; checkpoint 10: only a's new key verifies (b's line is junk),
    // and it is the newest, still gathering cosignatures.
    const r = verifyLog(rotatedLog(false, false));
    assert.deepEqual(r.problems, []);
  });

  it('a replaced key cosigns nothing newer than its replacement, and the new key nothing older', () => {
    const stale = verifyLog(rotatedLog(false, true), undefined, { strict: true });
    assert.ok(
      stale.problems.some((p) => /checkpoint of size 10 has 0 cosignatures/.test(p)),
      stale.problems.join('; '),
    );
    // The new key may cosign older checkpoints (a witness catching up attests what it verified later).
    assert.deepEqual(verifyLog(rotatedLog(true, false)).problems, []);
  });
});
