/**
 * C2SP signed notes (C2SP/C2SP signed-note.md; reference: golang.org/x/mod/sumdb/note): a UTF-8 text
 * ending in "\n", one blank line, then signature lines "— <name> <base64(key id || signature)>\n".
 * Ed25519 keys (algorithm 0x01) sign the text bytes exactly; key id = SHA-256(name || "\n" || alg ||
 * public key)[:4]. Witness cosignature keys (0x04, C2SP tlog-cosignature) share the line and vkey
 * formats; they are verified by cosignature.ts, not here.
 */
import { createHash } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { readEd25519PublicKey, signEd25519, verifyEd25519 } from '../crypto/signatures.ts';

/** Algorithm byte of a note key: 0x01 Ed25519 signed note, 0x04 Ed25519 cosignature/v1. */
export type NoteKeyAlgorithm = 0x01 | 0x04;

export interface NoteSigner {
  readonly name: string;
  readonly keyId: Uint8Array;
  sign(text: Uint8Array): Uint8Array;
}

export interface NoteVerifierKey {
  readonly name: string;
  readonly keyId: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly algorithm: NoteKeyAlgorithm;
}

export interface NoteSignature {
  readonly name: string;
  /** The 4-byte key id that prefixes the decoded signature. */
  readonly keyId: Uint8Array;
  /** The decoded bytes after the key id (64 for Ed25519; 72 = timestamp || signature for cosignatures). */
  readonly signature: Uint8Array;
}

export type NoteVerdict = { ok: true; text: string; verifiedBy: string[] } | { ok: false; reason: string };

/** At most this many signature lines are read (the Go reference limit; C2SP requires accepting >= 16). */
export const MAX_NOTE_SIGNATURES = 100;

const SIGNATURE_PREFIX = '\u2014 ';
const KEY_ID_BYTES = 4;
const ED25519_PUBLIC_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** ASCII control characters other than newline, or a lone surrogate (not encodable as UTF-8). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the spec forbids exactly these characters
const FORBIDDEN_TEXT_CHAR = /[\u0000-\u0009\u000b-\u001f]|\p{Cs}/u;
const encoder = new TextEncoder();

function invalid(field: string, message: string): EntenteError {
  return new EntenteError('INVALID_MESSAGE', `${field}: ${message}`, { field });
}

function decodeStrictBase64(s: string): Uint8Array | null {
  if (!STRICT_BASE64.test(s)) return null;
  const bytes = Buffer.from(s, 'base64');
  // Reject non-zero padding bits so that every byte string has exactly one accepted encoding.
  return bytes.toString('base64') === s ? new Uint8Array(bytes) : null;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** True when `name` is a valid key name: non-empty, no whitespace, no '+', encodable as UTF-8. */
export function isValidNoteKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]|\p{Cs}/u.test(name);
}

function checkKeyName(name: unknown, field: string, code: 'INVALID_ARGUMENT' | 'INVALID_MESSAGE'): string {
  if (typeof name !== 'string' || !isValidNoteKeyName(name))
    throw new EntenteError(code, `${field}: key name must be non-empty with no whitespace or '+'`, { field });
  return name;
}

/** The 4-byte key id SHA-256(name || "\n" || algorithm || publicKey)[:4]. Throws INVALID_ARGUMENT
 *  (field 'name' or 'publicKey') for an invalid name or a public key that is not 32 bytes. */
export function computeNoteKeyId(
  name: string,
  publicKey: Uint8Array,
  algorithm: NoteKeyAlgorithm,
): Uint8Array {
  checkKeyName(name, 'name', 'INVALID_ARGUMENT');
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_BYTES)
    throw new EntenteError('INVALID_ARGUMENT', 'publicKey: must be 32 bytes', { field: 'publicKey' });
  const digest = createHash('sha256')
    .update(encoder.encode(name))
    .update(Uint8Array.of(0x0a, algorithm))
    .update(publicKey)
    .digest();
  return new Uint8Array(digest.subarray(0, KEY_ID_BYTES));
}

/** A signer for note texts with the Ed25519 key `privateKeyPem` (secret, PKCS#8 PEM) under `name`.
 *  Throws INVALID_ARGUMENT for an invalid name (field 'name') or a non-Ed25519 key ('privateKeyPem'). */
export function createEd25519NoteSigner(name: string, privateKeyPem: string): NoteSigner {
  checkKeyName(name, 'name', 'INVALID_ARGUMENT');
  const keyId = computeNoteKeyId(name, readEd25519PublicKey(privateKeyPem), 0x01);
  return { name, keyId, sign: (text) => signEd25519(privateKeyPem, text) };
}

/** The verifier key text "<name>+<8 hex key id>+<base64(algorithm || publicKey)>". Throws
 *  INVALID_ARGUMENT for an invalid name or a public key that is not 32 bytes. */
export function formatVerifierKey(
  name: string,
  publicKey: Uint8Array,
  algorithm: NoteKeyAlgorithm = 0x01,
): string {
  const keyId = computeNoteKeyId(name, publicKey, algorithm);
  const encoded = Buffer.concat([Uint8Array.of(algorithm), publicKey]).toString('base64');
  return `${name}+${Buffer.from(keyId).toString('hex')}+${encoded}`;
}

/** Parses a verifier key text. Throws INVALID_MESSAGE (field 'vkey') for a wrong shape, an unknown
 *  algorithm (only 0x01 and 0x04 are supported), a key that is not 32 bytes, or a key id that does not
 *  match the name and key. */
export function parseVerifierKey(vkey: string): NoteVerifierKey {
  if (typeof vkey !== 'string') throw invalid('vkey', 'must be a string');
  // The base64 key may itself hold '+': split at the first two only (names have none).
  const first = vkey.indexOf('+');
  const second = vkey.indexOf('+', first + 1);
  if (first < 0 || second < 0) throw invalid('vkey', "must be '<name>+<key id>+<key>'");
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  const encoded = vkey.slice(second + 1);
  checkKeyName(name, 'vkey', 'INVALID_MESSAGE');
  if (!/^[0-9a-fA-F]{8}$/.test(hexId)) throw invalid('vkey', 'key id must be 8 hex digits');
  const keyBytes = decodeStrictBase64(encoded);
  if (keyBytes === null || keyBytes.length === 0) throw invalid('vkey', 'key is not base64');
  const algorithm = keyBytes[0]!;
  if (algorithm !== 0x01 && algorithm !== 0x04) throw invalid('vkey', 'unsupported key algorithm');
  const publicKey = keyBytes.slice(1);
  if (publicKey.length !== ED25519_PUBLIC_KEY_BYTES) throw invalid('vkey', 'Ed25519 key must be 32 bytes');
  const keyId = computeNoteKeyId(name, publicKey, algorithm);
  if (!equalBytes(keyId, Uint8Array.from(Buffer.from(hexId, 'hex'))))
    throw invalid('vkey', 'key id does not match the name and key');
  return { name, keyId, publicKey, algorithm };
}

function checkNoteText(text: string, field: string, code: 'INVALID_ARGUMENT' | 'INVALID_MESSAGE'): void {
  if (typeof text !== 'string' || !text.endsWith('\n'))
    throw new EntenteError(code, `${field}: note text must end with a newline`, { field });
  if (FORBIDDEN_TEXT_CHAR.test(text))
    throw new EntenteError(code, `${field}: control character or invalid UTF-8 in note`, { field });
}

function formatSignatureLine(name: string, keyId: Uint8Array, signature: Uint8Array): string {
  return `${SIGNATURE_PREFIX}${name} ${Buffer.concat([keyId, signature]).toString('base64')}\n`;
}

/** Signs `text` with every signer and returns the whole note. Throws INVALID_ARGUMENT when the text
 *  does not end in "\n" or holds a control character (field 'text'), or when there are no or more than
 *  MAX_NOTE_SIGNATURES signers, or a signer has an invalid name or a key id not of 4 bytes ('signers'). */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  checkNoteText(text, 'text', 'INVALID_ARGUMENT');
  if (signers.length === 0 || signers.length > MAX_NOTE_SIGNATURES)
    throw new EntenteError('INVALID_ARGUMENT', `signers: need 1 to ${MAX_NOTE_SIGNATURES}`, {
      field: 'signers',
    });
  const bytes = encoder.encode(text);
  let note = `${text}\n`;
  for (const signer of signers) {
    checkKeyName(signer.name, 'signers', 'INVALID_ARGUMENT');
    if (signer.keyId.length !== KEY_ID_BYTES)
      throw new EntenteError('INVALID_ARGUMENT', 'signers: key id must be 4 bytes', { field: 'signers' });
    note += formatSignatureLine(signer.name, signer.keyId, signer.sign(bytes));
  }
  return note;
}

function parseSignatureLine(line: string, field: string): NoteSignature {
  if (!line.startsWith(SIGNATURE_PREFIX)) throw invalid(field, "signature line must start with '\u2014 '");
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(' ');
  if (space < 0) throw invalid(field, 'signature line needs a name and a signature');
  const name = checkKeyName(rest.slice(0, space), field, 'INVALID_MESSAGE');
  const decoded = decodeStrictBase64(rest.slice(space + 1));
  if (decoded === null || decoded.length <= KEY_ID_BYTES) throw invalid(field, 'signature is not base64');
  return { name, keyId: decoded.slice(0, KEY_ID_BYTES), signature: decoded.slice(KEY_ID_BYTES) };
}

/** Parses one signature line (without its final "\n") without verifying it. Throws INVALID_MESSAGE
 *  (field `field`) when it is not a single well-formed line "— <name> <base64(key id || signature)>". */
export function parseNoteSignatureLine(line: string, field = 'line'): NoteSignature {
  if (typeof line !== 'string' || line.includes('\n') || FORBIDDEN_TEXT_CHAR.test(line))
    throw invalid(field, 'must be a single signature line');
  return parseSignatureLine(line, field);
}

/** Splits a note into its text and signature lines without verifying anything; `lines` are the raw
 *  signature lines (without "\n"), in the same order as `signatures`. Throws INVALID_MESSAGE
 *  (field 'note') for a control character or lone surrogate, a missing blank line, no signature line, a
 *  malformed line (including a missing final "\n"), or more than MAX_NOTE_SIGNATURES signatures. */
export function parseNote(note: string): { text: string; signatures: NoteSignature[]; lines: string[] } {
  if (typeof note !== 'string') throw invalid('note', 'must be a string');
  if (FORBIDDEN_TEXT_CHAR.test(note)) throw invalid('note', 'control character or invalid UTF-8 in note');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw invalid('note', 'missing blank line before the signatures');
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (block.length === 0) throw invalid('note', 'no signature lines');
  if (!block.endsWith('\n')) throw invalid('note', 'signature block must end with a newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES)
    throw invalid('note', `more than ${MAX_NOTE_SIGNATURES} signatures`);
  return { text, signatures: lines.map((line) => parseSignatureLine(line, 'note')), lines };
}

/**
 * Opens a note against the `known` Ed25519 (0x01) keys; keys of other algorithms are ignored. A line is
 * from a known key when both its name and key id match. Lines from unknown keys are ignored; a line
 * from a known key that does not verify rejects the whole note; at least one known key must verify.
 * Repeated lines from one key count once (the first is checked), as in the Go reference. Never throws.
 */
export function openNote(note: string, known: readonly NoteVerifierKey[]): NoteVerdict {
  let parsed: { text: string; signatures: NoteSignature[] };
  try {
    parsed = parseNote(note);
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : 'note: malformed' };
  }
  const textBytes = encoder.encode(parsed.text);
  const seen = new Set<string>();
  const verifiedBy: string[] = [];
  for (const sig of parsed.signatures) {
    const key = known.find(
      (k) => k.algorithm === 0x01 && k.name === sig.name && equalBytes(k.keyId, sig.keyId),
    );
    const id = `${sig.name} ${Buffer.from(sig.keyId).toString('hex')}`;
    if (key === undefined || seen.has(id)) continue;
    seen.add(id);
    if (
      sig.signature.length !== ED25519_SIGNATURE_BYTES ||
      !verifyEd25519(key.publicKey, textBytes, sig.signature)
    )
      return { ok: false, reason: `note: signature by ${sig.name} does not verify` };
    verifiedBy.push(sig.name);
  }
  if (verifiedBy.length === 0) return { ok: false, reason: 'note: no signature from a known key' };
  return { ok: true, text: parsed.text, verifiedBy };
}

/** Appends signature lines (with or without their final "\n") to a note, skipping lines the note
 *  already holds. Verifies nothing. Throws INVALID_MESSAGE when the note or a line is malformed (field
 *  'note' or 'lines') or the result would exceed MAX_NOTE_SIGNATURES. */
export function appendSignatureLines(note: string, lines: readonly string[]): string {
  parseNote(note);
  const present = new Set(note.slice(note.lastIndexOf('\n\n') + 2).split('\n'));
  let out = note;
  for (const raw of lines) {
    if (typeof raw !== 'string') throw invalid('lines', 'must be strings');
    const line = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    if (line.includes('\n') || FORBIDDEN_TEXT_CHAR.test(line)) throw invalid('lines', 'must be single lines');
    parseSignatureLine(line, 'lines');
    if (present.has(line)) continue;
    present.add(line);
    out += `${line}\n`;
  }
  parseNote(out);
  return out;
}
