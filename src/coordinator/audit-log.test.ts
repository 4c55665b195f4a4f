/**
 * The coordinator's acceptance rules for witnesses' cosignatures (C2SP tlog-cosignature): each line is
 * verified against the authenticated caller's own witness key and only that, a checkpoint keeps at
 * most one line per known witness key, a repeat changes nothing, and a flood by one member can neither
 * grow a note nor keep the honest witnesses out (a note flooded before these rules is repaired).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import {
  MAX_NOTE_SIGNATURES,
  appendSignatureLines,
  createCosignatureLine,
  formatVerifierKey,
  openNote,
  parseNote,
  parseVerifierKey,
  verifyCosignatures,
} from '../audit/index.ts';
import { EntenteError } from '../core/errors.ts';
import { generateEd25519KeyPem } from '../crypto/signatures.ts';
import { SqliteStore } from '../storage/index.ts';
import { AuditLog } from './audit-log.ts';

const ORIGIN = 'entente/test/log';
const base = mkdtempSync(join(tmpdir(), 'entente-audit-log-'));
after(() => rmSync(base, { recursive: true, force: true }));

const member = (id: string) => {
  const key = generateEd25519KeyPem();
  const name = `entente/test/witness/${id}`;
  return { id, name, pem: key.privateKeyPem, vkey: formatVerifierKey(name, key.publicKey, 0x04) };
};
const alpha = member('alpha');
const beta = member('beta');
const gamma = member('gamma');
const mallory = generateEd25519KeyPem();

let n = 0;
function createLog(witnesses = [alpha, beta, gamma]): { audit: AuditLog; store: SqliteStore } {
  const store = new SqliteStore(join(base, `log-${n++}.db`));
  after(() => store.close());
  const audit = new AuditLog({
    store,
    log: pino({ level: 'silent' }),
    now: () => 1_800_000_000_000,
    origin: ORIGIN,
    consortium: 'test',
    logKeyPem: generateEd25519KeyPem().privateKeyPem,
    witnesses: Object.fromEntries(witnesses.map((w) => [w.id, w.vkey])),
    policy: { consortium: 'test' },
  });
  return { audit, store };
}

const textOf = (note: string) => note.slice(0, note.indexOf('\n\n') + 1);
const lineBy = (w: { name: string; pem: string }, note: string, time = 1_800_000_000) =>
  createCosignatureLine({
    witnessName: w.name,
    privateKeyPem: w.pem,
    checkpointText: textOf(note),
    timestampSeconds: time,
  });
const linesOf = (note: string) => parseNote(note).lines;
const refused = (code: string, field: string) => (e: unknown) =>
  e instanceof EntenteError && e.code === code && e.field === field;

describe('audit log: accepting cosignatures', () => {
  it("accepts a witness's own verified line once; a repeat adds and replaces nothing", () => {
    const { audit } = createLog();
    const cp = audit.latestCheckpoint()!;
    assert.deepEqual(audit.addCosignature('alpha', cp.size, lineBy(alpha, cp.note)), { added: true });
    const once = audit.latestCheckpoint()!.note;
    assert.deepEqual(audit.addCosignature('alpha', cp.size, lineBy(alpha, cp.note)), { added: false });
    assert.deepEqual(audit.addCosignature('alpha', cp.size, lineBy(alpha, cp.note, 1_800_000_999)), {
      added: false,
    });
    assert.equal(audit.latestCheckpoint()!.note, once, 'the stored note is unchanged');
    assert.deepEqual(audit.cosignersOf(once), ['alpha']);
  });

  it("verifies each line against the caller's key only; other keys and junk are refused, naming the field", () => {
    const { audit } = createLog();
    const cp = audit.latestCheckpoint()!;
    audit.addCosignature('alpha', cp.size, lineBy(alpha, cp.note));
    // alpha posting beta's genuine line: not alpha's key, so refused (beta posts its own).
    assert.throws(
      () => audit.addCosignature('alpha', cp.size, lineBy(beta, cp.note)),
      refused('PROTOCOL_VIOLATION', 'line'),
    );
    assert.throws(
      () =>
        audit.addCosignature('alpha', cp.size, lineBy({ name: 'junk', pem: mallory.privateKeyPem }, cp.note)),
      refused('PROTOCOL_VIOLATION', 'line'),
    );
    assert.throws(
      () => audit.addCosignature('alpha', cp.size, 'not a line'),
      refused('INVALID_MESSAGE', 'line'),
    );
    assert.throws(
      () => audit.addCosignature('mallory', cp.size, lineBy(alpha, cp.note)),
      refused('FORBIDDEN', 'institution'),
    );
    assert.throws(
      () => audit.addCosignature('alpha', cp.size + 7, lineBy(alpha, cp.note)),
      refused('NOT_FOUND', 'size'),
    );
    assert.equal(linesOf(audit.latestCheckpoint()!.note).length, 2, 'the log line and alpha only');
  });

  it('a flood by one member leaves at most one line per witness, and the others still cosign (quorum met)', () => {
    const { audit } = createLog();
    const cp = audit.latestCheckpoint()!;
    audit.addCosignature('gamma', cp.size, lineBy(gamma, cp.note));
    let refusals = 0;
    for (let k = 0; k < 2 * MAX_NOTE_SIGNATURES; k++) {
      const lines = [
        lineBy(gamma, cp.note, 1_800_000_000 + k),
        lineBy({ name: `junk.${k}`, pem: mallory.privateKeyPem }, cp.note),
        lineBy({ name: alpha.name, pem: mallory.privateKeyPem }, cp.note), // alpha's name, another key
      ];
      for (const line of lines) {
        try {
          audit.addCosignature('gamma', cp.size, line);
        } catch (e) {
          assert.ok(refused('PROTOCOL_VIOLATION', 'line')(e), String(e));
          refusals++;
        }
      }
    }
    assert.equal(refusals, 4 * MAX_NOTE_SIGNATURES);
    assert.equal(linesOf(audit.latestCheckpoint()!.note).length, 2);
    assert.deepEqual(audit.addCosignature('alpha', cp.size, lineBy(alpha, cp.note)), { added: true });
    assert.deepEqual(audit.addCosignature('beta', cp.size, lineBy(beta, cp.note)), { added: true });
    const note = audit.latestCheckpoint()!.note;
    assert.equal(linesOf(note).length, 4, 'the log line and one line per witness');
    assert.equal(openNote(note, [parseVerifierKey(audit.verifierKey)]).ok, true);
    assert.deepEqual(audit.cosignersOf(note), ['alpha', 'beta', 'gamma']);
    const keys = [alpha, beta, gamma].map((w) => parseVerifierKey(w.vkey));
    assert.equal(verifyCosignatures(note, keys).filter((v) => v.ok).length, 3);
  });

  it('repairs a note flooded to the cap before these rules: junk dropped, the honest witness accepted', () => {
    const { audit, store } = createLog();
    const cp = audit.latestCheckpoint()!;
    const junk = Array.from({ length: MAX_NOTE_SIGNATURES - 2 }, (_, k) =>
      k % 2
        ? lineBy(gamma, cp.note, 1_800_000_000 + k)
        : lineBy({ name: `junk.${k}`, pem: mallory.privateKeyPem }, cp.note),
    );
    store.putCheckpoint(cp.size, appendSignatureLines(cp.note, [lineBy(gamma, cp.note), ...junk]), 0);
    assert.equal(linesOf(audit.latestCheckpoint()!.note).length, MAX_NOTE_SIGNATURES);
    assert.deepEqual(audit.addCosignature('alpha', cp.size, lineBy(alpha, cp.note)), { added: true });
    const note = audit.latestCheckpoint()!.note;
    assert.equal(linesOf(note).length, 3, 'the log line, gamma once, alpha');
    assert.deepEqual(audit.cosignersOf(note), ['alpha', 'gamma']);
  });

  it('accepts a witness added later (an enrolled institution) and only with its key', () => {
    const { audit } = createLog([alpha]);
    const cp = audit.latestCheckpoint()!;
    assert.throws(
      () => audit.addCosignature('beta', cp.size, lineBy(beta, cp.note)),
      refused('FORBIDDEN', 'institution'),
    );
    audit.addWitness('beta', beta.vkey);
    assert.deepEqual(audit.addCosignature('beta', cp.size, lineBy(beta, cp.note)), { added: true });
  });
});
