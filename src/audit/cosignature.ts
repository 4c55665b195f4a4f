/**
 * C2SP tlog-cosignature, cosignature/v1 (C2SP/C2SP tlog-cosignature.md): a witness states that it saw a
 * checkpoint, consistent with all it saw before, at a time. It signs with Ed25519
 * "cosignature/v1\ntime <unix seconds>\n" + <checkpoint note text>, and the note line is
 * "— <witness> <base64(key id || 8-byte big-endian time || 64-byte signature)>", where the key id uses
 * algorithm byte 0x04 (signed-note.ts computeNoteKeyId). A log that collects cosignatures keeps at most
 * one verified line per known witness key on each checkpoint (addCosignatureLine).
 */
import { EntenteError } from '../core/errors.ts';
import { readEd25519PublicKey, signEd25519, verifyEd25519 } from '../crypto/signatures.ts';
import { parseCheckpoint } from './checkpoint.ts';
import {
  MAX_NOTE_SIGNATURES,
  type NoteSignature,
  type NoteVerifierKey,
  computeNoteKeyId,
  parseNote,
  parseNoteSignatureLine,
} from './signed-note.ts';

export type CosignatureVerdict =
  | { ok: true; witness: string; timestampSeconds: number }
  | { ok: false; reason: string };

const COSIGNATURE_ALGORITHM = 0x04;
const TIMESTAMP_BYTES = 8;
const ED25519_SIGNATURE_BYTES = 64;
const encoder = new TextEncoder();

/** The exact bytes a cosignature/v1 witness signs. */
function encodeCosignedMessage(checkpointText: string, timestampSeconds: number): Uint8Array {
  return encoder.encode(`cosignature/v1\ntime ${timestampSeconds}\n${checkpointText}`);
}

/**
 * One cosignature line (without its final "\n") by `witnessName` over the checkpoint note text, for
 * appendSignatureLines. `privateKeyPem` (secret) is the witness's Ed25519 key. Throws INVALID_ARGUMENT
 * for a bad name or key (fields 'name', 'privateKeyPem'), a timestamp that is not a non-negative safe
 * integer ('timestampSeconds'); INVALID_MESSAGE when `checkpointText` is not a checkpoint.
 */
export function createCosignatureLine(input: {
  witnessName: string;
  privateKeyPem: string;
  checkpointText: string;
  timestampSeconds: number;
}): string {
  const { witnessName, privateKeyPem, checkpointText, timestampSeconds } = input;
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0)
    throw new EntenteError('INVALID_ARGUMENT', 'timestampSeconds: must be a non-negative safe integer', {
      field: 'timestampSeconds',
    });
  parseCheckpoint(checkpointText);
  const keyId = computeNoteKeyId(witnessName, readEd25519PublicKey(privateKeyPem), COSIGNATURE_ALGORITHM);
  const signature = signEd25519(privateKeyPem, encodeCosignedMessage(checkpointText, timestampSeconds));
  const time = Buffer.alloc(TIMESTAMP_BYTES);
  time.writeBigUInt64BE(BigInt(timestampSeconds));
  return `\u2014 ${witnessName} ${Buffer.concat([keyId, time, signature]).toString('base64')}`;
}

/** Verifies one cosignature line's bytes; returns the timestamp or the reason it fails. */
function verifyCosignatureLine(
  key: NoteVerifierKey,
  text: string,
  sig: NoteSignature,
): { timestampSeconds: number } | { reason: string } {
  if (sig.signature.length !== TIMESTAMP_BYTES + ED25519_SIGNATURE_BYTES)
    return { reason: `cosignature by ${key.name}: wrong length` };
  const view = new DataView(sig.signature.buffer, sig.signature.byteOffset, TIMESTAMP_BYTES);
  const time = view.getBigUint64(0, false);
  if (time > BigInt(Number.MAX_SAFE_INTEGER))
    return { reason: `cosignature by ${key.name}: timestamp too large` };
  const timestampSeconds = Number(time);
  const message = encodeCosignedMessage(text, timestampSeconds);
  if (!verifyEd25519(key.publicKey, message, sig.signature.subarray(TIMESTAMP_BYTES)))
    return { reason: `cosignature by ${key.name}: does not verify` };
  return { timestampSeconds };
}

/**
 * Verifies every cosignature line of `note` from the known witnesses; returns one verdict per known
 * witness found, in the order of `witnesses` (witnesses with no line get no verdict; keys whose
 * algorithm is not 0x04 are ignored). A line matches a witness by name and key id. When a witness has
 * several lines, all must verify and the verdict carries the latest timestamp. When the note is
 * malformed or its text is not a checkpoint the result is a single failing verdict. Never throws.
 * Callers count `ok` verdicts for their quorum.
 */
export function verifyCosignatures(
  note: string,
  witnesses: readonly NoteVerifierKey[],
): CosignatureVerdict[] {
  let text: string;
  let signatures: NoteSignature[];
  try {
    ({ text, signatures } = parseNote(note));
    parseCheckpoint(text);
  } catch (error) {
    return [{ ok: false, reason: error instanceof Error ? error.message : 'note: malformed' }];
  }
  const verdicts: CosignatureVerdict[] = [];
  const done = new Set<string>();
  for (const key of witnesses) {
    if (key.algorithm !== COSIGNATURE_ALGORITHM) continue;
    const id = `${key.name} ${Buffer.from(key.keyId).toString('hex')}`;
    if (done.has(id)) continue;
    done.add(id);
    const lines = signatures.filter(
      (s) =>
        s.name === key.name &&
        s.keyId.length === key.keyId.length &&
        s.keyId.every((b, i) => b === key.keyId[i]),
    );
    if (lines.length === 0) continue;
    let latest = -1;
    let failure: string | null = null;
    for (const line of lines) {
      const result = verifyCosignatureLine(key, text, line);
      if ('reason' in result) {
        failure = result.reason;
        break;
      }
      latest = Math.max(latest, result.timestampSeconds);
    }
    verdicts.push(
      failure === null
        ? { ok: true, witness: key.name, timestampSeconds: latest }
        : { ok: false, reason: failure },
    );
  }
  return verdicts;
}

const sameKey = (key: NoteVerifierKey, sig: NoteSignature): boolean =>
  sig.name === key.name &&
  sig.keyId.length === key.keyId.length &&
  sig.keyId.every((b, i) => b === key.keyId[i]);

/**
 * Adds `witness`'s cosignature `line` to a checkpoint `note` the log stores, under the rule that a
 * checkpoint carries at most one cosignature per known witness key, each verified. The posted line must
 * be a single line by `witness` (its name and key id) that verifies over the note's checkpoint text.
 * The returned note holds the note's first line by `logKey` (its own signature, as stored) and, for each
 * key of `witnesses`, the first of its lines that verifies; every other line (unknown keys, lines that
 * do not verify, repeats) is dropped. A witness that already has a line keeps it: `added` is false and
 * the posted line replaces nothing and adds nothing. Throws INVALID_MESSAGE (field 'line') for a
 * malformed line; PROTOCOL_VIOLATION (field 'line') for a line by another key or one that does not
 * verify; INVALID_ARGUMENT (field 'witness') for a key that is not a cosignature/v1 key; CONFLICT (field
 * 'note') if the note would exceed MAX_NOTE_SIGNATURES lines; INVALID_MESSAGE (field 'note') for a
 * malformed stored note.
 */
export function addCosignatureLine(input: {
  note: string;
  line: string;
  witness: NoteVerifierKey;
  witnesses: readonly NoteVerifierKey[];
  logKey: NoteVerifierKey;
}): { note: string; added: boolean } {
  const { witness, logKey } = input;
  if (witness.algorithm !== COSIGNATURE_ALGORITHM)
    throw new EntenteError('INVALID_ARGUMENT', 'witness: not a cosignature/v1 key', { field: 'witness' });
  const { text, signatures, lines } = parseNote(input.note);
  parseCheckpoint(text);
  const line = typeof input.line === 'string' ? input.line.replace(/\n$/, '') : input.line;
  const posted = parseNoteSignatureLine(line, 'line');
  if (!sameKey(witness, posted))
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      `line: not a cosignature by the caller's witness key ${witness.name}`,
      { field: 'line' },
    );
  const check = verifyCosignatureLine(witness, text, posted);
  if ('reason' in check)
    throw new EntenteError('PROTOCOL_VIOLATION', `line: ${check.reason} over this checkpoint`, {
      field: 'line',
    });
  // One slot per distinct witness key (name and key id); the caller's key is always one of them.
  const keyIdOf = (k: { name: string; keyId: Uint8Array }): string =>
    `${k.name} ${Buffer.from(k.keyId).toString('hex')}`;
  const known = new Map<string, NoteVerifierKey>([[keyIdOf(witness), witness]]);
  for (const k of input.witnesses)
    if (k.algorithm === COSIGNATURE_ALGORITHM && !known.has(keyIdOf(k))) known.set(keyIdOf(k), k);
  const kept: string[] = [];
  const done = new Set<string>();
  let logLine = false;
  for (const [k, sig] of signatures.entries()) {
    if (!logLine && logKey.algorithm === 0x01 && sameKey(logKey, sig)) {
      logLine = true;
      kept.push(lines[k]!);
      continue;
    }
    const id = keyIdOf(sig);
    const key = known.get(id);
    if (key === undefined || done.has(id) || 'reason' in verifyCosignatureLine(key, text, sig)) continue;
    done.add(id);
    kept.push(lines[k]!);
  }
  const already = done.has(keyIdOf(witness));
  if (!already) kept.push(line);
  if (kept.length > MAX_NOTE_SIGNATURES)
    throw new EntenteError('CONFLICT', `note: would hold more than ${MAX_NOTE_SIGNATURES} signatures`, {
      field: 'note',
    });
  return { note: `${text}\n${kept.map((l) => `${l}\n`).join('')}`, added: !already };
}
