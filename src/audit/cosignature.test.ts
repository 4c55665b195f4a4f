import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { generateEd25519KeyPem, verifyEd25519 } from '../crypto/signatures.ts';
import { formatCheckpoint } from './checkpoint.ts';
import { addCosignatureLine, createCosignatureLine, verifyCosignatures } from './cosignature.ts';
import {
  appendSignatureLines,
  computeNoteKeyId,
  createEd25519NoteSigner,
  formatVerifierKey,
  MAX_NOTE_SIGNATURES,
  openNote,
  parseNote,
  parseVerifierKey,
  signNote,
} from './signed-note.ts';

const log = generateEd25519KeyPem();
const logSigner = createEd25519NoteSigner('log.example', log.privateKeyPem);
const logKey = parseVerifierKey(formatVerifierKey('log.example', log.publicKey));
const alice = generateEd25519KeyPem();
const aliceKey = parseVerifierKey(formatVerifierKey('witness.alice', alice.publicKey, 0x04));
const bob = generateEd25519KeyPem();
const bobKey = parseVerifierKey(formatVerifierKey('witness.bob', bob.publicKey, 0x04));
const TIME = 1_700_000_000;

const checkpointText = (size: number) =>
  formatCheckpoint({
    origin: 'log.example/run-1',
    size,
    rootHash: new Uint8Array(32).fill(size),
    extensions: [],
  });
const text8 = checkpointText(8);
const note8 = signNote(text8, [logSigner]);
const aliceLine = createCosignatureLine({
  witnessName: 'witness.alice',
  privateKeyPem: alice.privateKeyPem,
  checkpointText: text8,
  timestampSeconds: TIME,
});

describe('cosignature/v1', () => {
  it('encodes key id || big-endian time || signature over the cosignature/v1 message', () => {
    assert.ok(aliceLine.startsWith('\u2014 witness.alice '));
    const raw = Buffer.from(aliceLine.split(' ')[2]!, 'base64');
    assert.equal(raw.length, 76);
    assert.deepEqual(
      new Uint8Array(raw.subarray(0, 4)),
      computeNoteKeyId('witness.alice', alice.publicKey, 0x04),
    );
    assert.equal(raw.readBigUInt64BE(4), BigInt(TIME));
    const message = new TextEncoder().encode(`cosignature/v1\ntime ${TIME}\n${text8}`);
    assert.equal(verifyEd25519(alice.publicKey, message, raw.subarray(12)), true);
  });

  it('round-trips through a note, leaving the log signature valid', () => {
    const bobLine = createCosignatureLine({
      witnessName: 'witness.bob',
      privateKeyPem: bob.privateKeyPem,
      checkpointText: text8,
      timestampSeconds: TIME + 5,
    });
    const note = appendSignatureLines(note8, [aliceLine, bobLine]);
    assert.deepEqual(verifyCosignatures(note, [aliceKey, bobKey, logKey]), [
      { ok: true, witness: 'witness.alice', timestampSeconds: TIME },
      { ok: true, witness: 'witness.bob', timestampSeconds: TIME + 5 },
    ]);
    assert.deepEqual(openNote(note, [logKey, aliceKey]), {
      ok: true,
      text: text8,
      verifiedBy: ['log.example'],
    });
    assert.deepEqual(verifyCosignatures(note8, [aliceKey]), []);
  });

  it('takes the latest time when a witness cosigned twice, and fails if either line is bad', () => {
    const later = createCosignatureLine({
      witnessName: 'witness.alice',
      privateKeyPem: alice.privateKeyPem,
      checkpointText: text8,
      timestampSeconds: TIME + 60,
    });
    const note = appendSignatureLines(note8, [aliceLine, later]);
    assert.deepEqual(verifyCosignatures(note, [aliceKey]), [
      { ok: true, witness: 'witness.alice', timestampSeconds: TIME + 60 },
    ]);
    const raw = Buffer.from(later.split(' ')[2]!, 'base64');
    raw[40]! ^= 0x01;
    const bad = appendSignatureLines(note8, [aliceLine, `\u2014 witness.alice ${raw.toString('base64')}`]);
    assert.equal(verifyCosignatures(bad, [aliceKey])[0]!.ok, false);
  });

  it('refuses a cosignature moved to another checkpoint', () => {
    const note9 = appendSignatureLines(signNote(checkpointText(9), [logSigner]), [aliceLine]);
    const [verdict] = verifyCosignatures(note9, [aliceKey]);
    assert.ok(verdict && !verdict.ok && /does not verify/.test(verdict.reason));
  });

  it('refuses a changed timestamp', () => {
    const raw = Buffer.from(aliceLine.split(' ')[2]!, 'base64');
    raw.writeBigUInt64BE(BigInt(TIME + 1), 4);
    const note = appendSignatureLines(note8, [`\u2014 witness.alice ${raw.toString('base64')}`]);
    assert.equal(verifyCosignatures(note, [aliceKey])[0]!.ok, false);
    raw.writeBigUInt64BE(2n ** 63n, 4);
    const huge = appendSignatureLines(note8, [`\u2014 witness.alice ${raw.toString('base64')}`]);
    const [verdict] = verifyCosignatures(huge, [aliceKey]);
    assert.ok(verdict && !verdict.ok && /timestamp/.test(verdict.reason));
  });

  it('refuses another witness key', () => {
    const note = appendSignatureLines(note8, [aliceLine]);
    // Same name, other key: the key id differs, so no line belongs to it.
    const impostor = parseVerifierKey(formatVerifierKey('witness.alice', bob.publicKey, 0x04));
    assert.deepEqual(verifyCosignatures(note, [impostor]), []);
    // Same name and key id but another public key: the signature fails.
    const forged = { ...aliceKey, publicKey: bob.publicKey };
    assert.equal(verifyCosignatures(note, [forged])[0]!.ok, false);
    // The same key used as a 0x01 note key is not a witness.
    assert.deepEqual(verifyCosignatures(note, [{ ...aliceKey, algorithm: 0x01 }]), []);
    // A cosignature is not a note signature: openNote refuses the witness key as a log key.
    assert.equal(openNote(note, [{ ...aliceKey, algorithm: 0x01 }]).ok, false);
  });

  it('returns a single failing verdict for a malformed note or a non-checkpoint text', () => {
    const [malformed] = verifyCosignatures('not a note', [aliceKey]);
    assert.ok(malformed && !malformed.ok);
    const plain = appendSignatureLines(signNote('hello\n', [logSigner]), [aliceLine]);
    const [notCheckpoint] = verifyCosignatures(plain, [aliceKey]);
    assert.ok(notCheckpoint && !notCheckpoint.ok && /checkpoint/.test(notCheckpoint.reason));
  });

  it('refuses bad inputs when creating a line', () => {
    const input = {
      witnessName: 'w',
      privateKeyPem: alice.privateKeyPem,
      checkpointText: text8,
      timestampSeconds: 1,
    };
    const bad = (patch: Partial<typeof input>, code: string, field: string) =>
      assert.throws(
        () => createCosignatureLine({ ...input, ...patch }),
        (e: unknown) => e instanceof EntenteError && e.code === code && e.field === field,
      );
    bad({ timestampSeconds: -1 }, 'INVALID_ARGUMENT', 'timestampSeconds');
    bad({ timestampSeconds: 1.5 }, 'INVALID_ARGUMENT', 'timestampSeconds');
    bad({ witnessName: 'a b' }, 'INVALID_ARGUMENT', 'name');
    bad({ privateKeyPem: 'x' }, 'INVALID_ARGUMENT', 'privateKeyPem');
    bad({ checkpointText: 'hello\n' }, 'INVALID_MESSAGE', 'checkpoint');
  });

  it('refuses any single-bit flip of the cosignature bytes', () => {
    const raw = Buffer.from(aliceLine.split(' ')[2]!, 'base64');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: raw.length * 8 - 1 }), (bit) => {
        const flipped = Buffer.from(raw);
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        const note = appendSignatureLines(note8, [`\u2014 witness.alice ${flipped.toString('base64')}`]);
        assert.equal(
          verifyCosignatures(note, [aliceKey]).some((v) => v.ok),
          false,
        );
      }),
      { numRuns: 200 },
    );
  });
});

describe('a log accepting cosignatures (addCosignatureLine)', () => {
  const carol = generateEd25519KeyPem();
  const carolKey = parseVerifierKey(formatVerifierKey('witness.carol', carol.publicKey, 0x04));
  const witnesses = [aliceKey, bobKey, carolKey];
  const lineBy = (name: string, pem: string, time = TIME, text = text8) =>
    createCosignatureLine({
      witnessName: name,
      privateKeyPem: pem,
      checkpointText: text,
      timestampSeconds: time,
    });
  const add = (note: string, line: string, witness = aliceKey) =>
    addCosignatureLine({ note, line, witness, witnesses, logKey });
  const refused = (code: string, pattern: RegExp) => (e: unknown) =>
    e instanceof EntenteError && e.code === code && e.field === 'line' && pattern.test(e.message);
  const lineCount = (note: string) => parseNote(note).signatures.length;

  it("keeps one verified line per witness; the log's signature and the quorum stay valid", () => {
    const a = add(note8, aliceLine);
    assert.equal(a.added, true);
    const b = add(a.note, lineBy('witness.bob', bob.privateKeyPem), bobKey);
    assert.equal(b.added, true);
    assert.equal(lineCount(b.note), 3);
    assert.equal(openNote(b.note, [logKey]).ok, true);
    assert.equal(verifyCosignatures(b.note, witnesses).filter((v) => v.ok).length, 2);
  });

  it('a repeated cosignature by the same witness (same or another time) adds and replaces nothing', () => {
    const once = add(note8, aliceLine).note;
    for (const line of [
      aliceLine,
      `${aliceLine}\n`,
      lineBy('witness.alice', alice.privateKeyPem, TIME + 60),
    ]) {
      const again = add(once, line);
      assert.equal(again.added, false);
      assert.equal(again.note, once, 'the note is byte for byte the same');
    }
  });

  it("refuses a line by any key but the caller's, and lines that do not verify, naming the field", () => {
    const once = add(note8, aliceLine).note;
    // Another witness's valid line posted by alice.
    assert.throws(
      () => add(once, lineBy('witness.bob', bob.privateKeyPem)),
      refused('PROTOCOL_VIOLATION', /witness\.alice/),
    );
    // An unknown key.
    const mallory = generateEd25519KeyPem();
    assert.throws(
      () => add(once, lineBy('junk.1', mallory.privateKeyPem)),
      refused('PROTOCOL_VIOLATION', /not a cosignature by/),
    );
    // Alice's name and key id, a flipped signature bit.
    const raw = Buffer.from(aliceLine.split(' ')[2]!, 'base64');
    raw[50]! ^= 1;
    assert.throws(
      () => add(note8, `\u2014 witness.alice ${raw.toString('base64')}`),
      refused('PROTOCOL_VIOLATION', /does not verify/),
    );
    // Alice's valid cosignature of another checkpoint.
    assert.throws(
      () => add(note8, lineBy('witness.alice', alice.privateKeyPem, TIME, checkpointText(9))),
      refused('PROTOCOL_VIOLATION', /does not verify/),
    );
    // The log's own signature line, and malformed or multi-line input.
    const logLine = note8.slice(note8.indexOf('\n\n') + 2, -1);
    assert.throws(() => add(note8, logLine), refused('PROTOCOL_VIOLATION', /not a cosignature by/));
    for (const junk of [
      '',
      'hello',
      '\u2014 witness.alice !!!',
      `${aliceLine}\n${aliceLine}`,
      `${aliceLine}\u0007`,
    ])
      assert.throws(() => add(note8, junk), refused('INVALID_MESSAGE', /line/));
    assert.throws(
      () =>
        addCosignatureLine({
          note: note8,
          line: aliceLine,
          witness: { ...aliceKey, algorithm: 0x01 },
          witnesses,
          logKey,
        }),
      (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === 'witness',
    );
  });

  it('a flood of lines never grows the note past one line per witness (1 + 3 lines here)', () => {
    let note = note8;
    const mallory = generateEd25519KeyPem();
    for (let k = 0; k < 150; k++) {
      for (const line of [
        lineBy('witness.alice', alice.privateKeyPem, TIME + k),
        lineBy(`junk.${k}`, mallory.privateKeyPem),
      ]) {
        try {
          note = add(note, line).note;
        } catch (e) {
          assert.ok(e instanceof EntenteError && e.field === 'line');
        }
      }
    }
    assert.equal(lineCount(note), 2);
    note = add(note, lineBy('witness.bob', bob.privateKeyPem), bobKey).note;
    note = add(note, lineBy('witness.carol', carol.privateKeyPem), carolKey).note;
    assert.equal(lineCount(note), 4);
    assert.equal(verifyCosignatures(note, witnesses).filter((v) => v.ok).length, 3);
  });

  it('repairs a note flooded to its cap before: junk dropped, honest witnesses accepted again', () => {
    const mallory = generateEd25519KeyPem();
    const junk = Array.from({ length: MAX_NOTE_SIGNATURES - 2 }, (_, k) =>
      k % 2 === 0
        ? lineBy(`junk.${k}`, mallory.privateKeyPem)
        : lineBy('witness.alice', alice.privateKeyPem, TIME + k),
    );
    const flooded = appendSignatureLines(note8, [aliceLine, ...junk]);
    assert.equal(lineCount(flooded), MAX_NOTE_SIGNATURES);
    assert.throws(
      () => appendSignatureLines(flooded, [lineBy('witness.bob', bob.privateKeyPem)]),
      /more than 100/,
    );
    const repaired = add(flooded, lineBy('witness.bob', bob.privateKeyPem), bobKey);
    assert.equal(repaired.added, true);
    assert.equal(lineCount(repaired.note), 3, 'the log line, one line by alice, one by bob');
    assert.equal(openNote(repaired.note, [logKey]).ok, true);
    assert.deepEqual(
      verifyCosignatures(repaired.note, witnesses).map((v) => v.ok),
      [true, true],
    );
    // A forged line under bob's name and key id (the poisoning a flood could add) is dropped too.
    const raw = Buffer.from(lineBy('witness.bob', bob.privateKeyPem).split(' ')[2]!, 'base64');
    raw[60]! ^= 1;
    const poisoned = appendSignatureLines(add(note8, aliceLine).note, [
      `\u2014 witness.bob ${raw.toString('base64')}`,
    ]);
    assert.equal(verifyCosignatures(poisoned, [bobKey])[0]!.ok, false);
    const fixed = add(poisoned, lineBy('witness.bob', bob.privateKeyPem), bobKey);
    assert.equal(fixed.added, true);
    assert.equal(verifyCosignatures(fixed.note, [bobKey])[0]!.ok, true);
  });
});
