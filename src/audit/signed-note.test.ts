import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { generateEd25519KeyPem } from '../crypto/signatures.ts';
import { formatCheckpoint, parseCheckpoint } from './checkpoint.ts';
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

interface NoteVector {
  id: string;
  vkey: string;
  skey_TEST_ONLY?: string;
  note?: string;
  signed_text?: string;
  signature_line?: string;
  checkpoint?: { origin: string; tree_size: number; root_hash_b64: string; root_hash_hex: string };
}

const file = JSON.parse(
  readFileSync(new URL('../../test/vectors/audit/signed_note_checkpoint.json', import.meta.url), 'utf8'),
) as { vectors: NoteVector[] };
const vector = (id: string): NoteVector => file.vectors.find((v) => v.id === id)!;

/** PKCS#8 PEM (RFC 8410) of a 32-byte Ed25519 seed. */
function pemFromSeed(seed: Uint8Array): string {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64')}\n-----END PRIVATE KEY-----\n`;
}

/** The Go note package's "PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>" test key as a PEM. */
function pemFromGoSkey(skey: string): string {
  const raw = Buffer.from(skey.split('+').slice(4).join('+'), 'base64');
  assert.equal(raw[0], 0x01);
  return pemFromSeed(raw.subarray(1));
}

const c2sp = vector('c2sp-example');
const peter = vector('golang-peterneumann');
const enoch = vector('golang-enochroot-second-sig');
const derived = vector('derived-tlog-checkpoint');
const peterKey = parseVerifierKey(peter.vkey);
const enochKey = parseVerifierKey(enoch.vkey);
const peterSigner = createEd25519NoteSigner('PeterNeumann', pemFromGoSkey(peter.skey_TEST_ONLY!));
const peterNote = peter.note!;
const peterText = parseNote(peterNote).text;
const peterLine = peterNote.slice(peterText.length + 1, -1);

function refused(note: string, known = [peterKey]): string {
  const verdict = openNote(note, known);
  assert.equal(verdict.ok, false);
  assert.ok(!verdict.ok && verdict.reason.length > 0);
  return verdict.ok ? '' : verdict.reason;
}

describe('signed note vectors', () => {
  it('verifies the C2SP example', () => {
    const key = parseVerifierKey(c2sp.vkey);
    assert.deepEqual(openNote(c2sp.note!, [key]), {
      ok: true,
      text: c2sp.signed_text,
      verifiedBy: ['example.com/foo'],
    });
  });

  it('verifies the Go PeterNeumann note and reproduces it from the published test key', () => {
    const verdict = openNote(peterNote, [peterKey]);
    assert.ok(verdict.ok);
    assert.equal(verdict.text.startsWith('If you think cryptography'), true);
    assert.equal(signNote(peterText, [peterSigner]), peterNote);
    assert.equal(Buffer.from(peterSigner.keyId).toString('hex'), 'c74f20a3');
  });

  it('handles the EnochRoot second signature as known or unknown', () => {
    const both = `${peterNote}${enoch.signature_line}\n`;
    assert.deepEqual(openNote(both, [peterKey, enochKey]), {
      ok: true,
      text: peterText,
      verifiedBy: ['PeterNeumann', 'EnochRoot'],
    });
    assert.deepEqual(openNote(both, [enochKey]), { ok: true, text: peterText, verifiedBy: ['EnochRoot'] });
    assert.deepEqual(openNote(both, [peterKey]), { ok: true, text: peterText, verifiedBy: ['PeterNeumann'] });
    assert.match(refused(both, []), /no signature from a known key/);
  });

  it('verifies the derived checkpoint note and reproduces it', () => {
    const verdict = openNote(derived.note!, [peterKey]);
    assert.ok(verdict.ok);
    const cp = parseCheckpoint(verdict.text);
    assert.equal(cp.origin, derived.checkpoint!.origin);
    assert.equal(cp.size, derived.checkpoint!.tree_size);
    assert.equal(Buffer.from(cp.rootHash).toString('hex'), derived.checkpoint!.root_hash_hex);
    assert.equal(signNote(formatCheckpoint(cp), [peterSigner]), derived.note);
  });
});

describe('negative ideas from the Go tests', () => {
  it('refuses a note without the blank line', () => {
    assert.match(refused(peterNote.replace('\n\n\u2014', '\n\u2014')), /blank line/);
  });
  it('refuses a signature line missing its final newline', () => {
    assert.match(refused(peterNote.slice(0, -1)), /newline/);
  });
  it('refuses control characters and text that is not UTF-8', () => {
    assert.match(refused(`\u0001${peterNote}`), /control/);
    assert.match(refused(`\ud800${peterNote}`), /UTF-8/);
    assert.match(refused(peterNote.replace('problem,', 'problem,\t')), /control/);
  });
  it("refuses key names with a space or '+'", () => {
    const b64 = peterLine.split(' ')[2]!;
    refused(`${peterText}\n\u2014 Peter Neumann ${b64}\n`);
    refused(`${peterText}\n\u2014 Peter+Neumann ${b64}\n`);
    for (const name of ['Peter Neumann', 'Peter+Neumann', '', 'tab\tname'])
      assert.throws(
        () => formatVerifierKey(name, peterKey.publicKey),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === 'name',
      );
  });
  it('refuses an unexpected line after the signatures', () => {
    assert.match(refused(`${peterNote}Unexpected line.\n`), /must start with/);
  });
  it(`refuses more than ${MAX_NOTE_SIGNATURES} signatures and accepts exactly that many`, () => {
    const stranger = createEd25519NoteSigner('stranger', generateEd25519KeyPem().privateKeyPem);
    const filler = signNote(peterText, [stranger]).slice(peterText.length + 1);
    const at = (n: number) => `${peterText}\n${peterLine}\n${filler.repeat(n - 1)}`;
    assert.equal(openNote(at(MAX_NOTE_SIGNATURES), [peterKey]).ok, true);
    assert.match(refused(at(MAX_NOTE_SIGNATURES + 1)), /more than 100/);
  });
  it('rejects the whole note when a known key does not verify, even beside a good one', () => {
    const sig = Buffer.from(peterLine.split(' ')[2]!, 'base64');
    sig[10]! ^= 0x01;
    const enochSig = Buffer.from(enoch.signature_line!.split(' ')[2]!, 'base64');
    enochSig[20]! ^= 0x80;
    const bad = `\u2014 EnochRoot ${enochSig.toString('base64')}`;
    assert.match(refused(`${peterText}\n\u2014 PeterNeumann ${sig.toString('base64')}\n`), /does not verify/);
    assert.match(refused(`${peterNote}${bad}\n`, [peterKey, enochKey]), /EnochRoot does not verify/);
  });
  it('ignores unknown keys but requires one verified known key', () => {
    const other = createEd25519NoteSigner('other', generateEd25519KeyPem().privateKeyPem);
    const note = signNote(peterText, [other, peterSigner]);
    assert.deepEqual(openNote(note, [peterKey]), { ok: true, text: peterText, verifiedBy: ['PeterNeumann'] });
    assert.match(refused(signNote(peterText, [other])), /no signature from a known key/);
  });
  it('does not use witness (0x04) keys to open a note', () => {
    const witness = { ...peterKey, algorithm: 0x04 as const };
    assert.match(refused(peterNote, [witness]), /no signature from a known key/);
  });
});

describe('keys', () => {
  it('derives key ids as SHA-256(name || LF || alg || key)[:4]', () => {
    assert.equal(
      Buffer.from(computeNoteKeyId('PeterNeumann', peterKey.publicKey, 0x01)).toString('hex'),
      'c74f20a3',
    );
    assert.equal(Buffer.from(enochKey.keyId).toString('hex'), 'af0cfe78');
    const witnessId = computeNoteKeyId('PeterNeumann', peterKey.publicKey, 0x04);
    assert.notDeepEqual(witnessId, peterKey.keyId);
  });

  it('round-trips verifier keys for both algorithms', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.constantFrom(0x01 as const, 0x04 as const),
        fc.stringMatching(/^[a-z0-9./-]{1,20}$/),
        (publicKey, algorithm, name) => {
          const vkey = formatVerifierKey(name, publicKey, algorithm);
          const key = parseVerifierKey(vkey);
          assert.deepEqual(key.publicKey, publicKey);
          assert.equal(key.algorithm, algorithm);
          assert.equal(key.name, name);
          assert.equal(formatVerifierKey(key.name, key.publicKey, key.algorithm), vkey);
        },
      ),
      { numRuns: 100 },
    );
    assert.equal(formatVerifierKey('PeterNeumann', peterKey.publicKey), peter.vkey);
  });

  it('refuses malformed verifier keys with INVALID_MESSAGE', () => {
    const [name, id, b64] = peter.vkey.split('+') as [string, string, string];
    const raw = Buffer.from(b64, 'base64');
    const cases = [
      `${name}+00000000+${b64}`,
      `${name}+${id}`,
      `${name}+${id}+${b64}+x`,
      `${name}+c74f20a+${b64}`,
      `${name}+${id}+${Buffer.concat([Buffer.of(0x02), raw.subarray(1)]).toString('base64')}`,
      `${name}+${id}+${raw.subarray(0, 32).toString('base64')}`,
      `${name}+${id}+${b64.slice(0, -1)}`,
      `+${id}+${b64}`,
    ];
    for (const vkey of cases)
      assert.throws(
        () => parseVerifierKey(vkey),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_MESSAGE' && e.field === 'vkey',
        vkey,
      );
  });
});

describe('signNote, parseNote and appendSignatureLines', () => {
  it('signs with several keys and parses the lines back', () => {
    const pem = generateEd25519KeyPem();
    const second = createEd25519NoteSigner('second.example', pem.privateKeyPem);
    const note = signNote('hello\n', [peterSigner, second]);
    const parsed = parseNote(note);
    assert.equal(parsed.text, 'hello\n');
    assert.deepEqual(
      parsed.signatures.map((s) => [s.name, s.signature.length]),
      [
        ['PeterNeumann', 64],
        ['second.example', 64],
      ],
    );
    const secondKey = parseVerifierKey(formatVerifierKey('second.example', pem.publicKey));
    assert.deepEqual(openNote(note, [secondKey, peterKey]), {
      ok: true,
      text: 'hello\n',
      verifiedBy: ['PeterNeumann', 'second.example'],
    });
  });

  it('refuses bad text or signers with INVALID_ARGUMENT', () => {
    const bad = (f: () => unknown, field: string) =>
      assert.throws(
        f,
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
      );
    bad(() => signNote('no newline', [peterSigner]), 'text');
    bad(() => signNote('bell\u0007\n', [peterSigner]), 'text');
    bad(() => signNote('ok\n', []), 'signers');
    bad(() => createEd25519NoteSigner('a b', generateEd25519KeyPem().privateKeyPem), 'name');
    bad(() => createEd25519NoteSigner('ok', 'not a pem'), 'privateKeyPem');
  });

  it('appends new lines once and refuses malformed ones', () => {
    const extra = enoch.signature_line!;
    const once = appendSignatureLines(peterNote, [extra, `${extra}\n`, peterLine]);
    assert.equal(once, `${peterNote}${extra}\n`);
    assert.deepEqual(openNote(once, [peterKey, enochKey]).ok, true);
    for (const line of ['Unexpected line.', `${extra}\nmore`, '\u2014 x !!!'])
      assert.throws(
        () => appendSignatureLines(peterNote, [line]),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_MESSAGE' && e.field === 'lines',
      );
    assert.throws(() => appendSignatureLines('no signatures\n', [extra]), EntenteError);
  });
});

describe('properties', () => {
  it('any single-bit flip of a signature line payload is refused', () => {
    const raw = Buffer.from(peterLine.split(' ')[2]!, 'base64');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: raw.length * 8 - 1 }), (bit) => {
        const flipped = Buffer.from(raw);
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        const note = `${peterText}\n\u2014 PeterNeumann ${flipped.toString('base64')}\n`;
        assert.equal(openNote(note, [peterKey]).ok, false);
      }),
      { numRuns: 200 },
    );
  });

  it('any single-bit flip of an ASCII text byte is refused', () => {
    fc.assert(
      fc.property(fc.nat({ max: peterText.length - 1 }), fc.nat({ max: 6 }), (index, bit) => {
        const code = peterText.charCodeAt(index) ^ (1 << bit);
        const text = peterText.slice(0, index) + String.fromCharCode(code) + peterText.slice(index + 1);
        assert.equal(openNote(`${text}\n${peterLine}\n`, [peterKey]).ok, false);
      }),
      { numRuns: 200 },
    );
  });
});
