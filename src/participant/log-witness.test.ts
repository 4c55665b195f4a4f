/**
 * The participant as a witness of the audit log, against an in-memory log served by a fake client:
 * it cosigns checkpoints that extend its view, and detects (and halts on) a split view, a rollback,
 * a fork, a missing update commitment, and a model that is not the logged one.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import pino from 'pino';
import {
  type LogEntry,
  MerkleTree,
  createEd25519NoteSigner,
  encodeLogEntry,
  formatCheckpoint,
  formatVerifierKey,
  parseVerifierKey,
  signNote,
  verifyCosignatures,
} from '../audit/index.ts';
import { EntenteError } from '../core/errors.ts';
import { readEd25519PublicKey } from '../crypto/signatures.ts';
import type { MtlsClient } from '../transport/index.ts';
import { LogWitness } from './log-witness.ts';

const ORIGIN = 'entente/test/log';
const pem = (): string =>
  generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const logKeyPem = pem();
const witnessKeyPem = pem();
const logVkey = formatVerifierKey(ORIGIN, readEd25519PublicKey(logKeyPem), 0x01);
const witnessName = 'entente/test/witness/alpha';
const witnessVkey = formatVerifierKey(witnessName, readEd25519PublicKey(witnessKeyPem), 0x04);
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/** A log the test controls, and a client that serves it (optionally lying). */
function createFakeLog() {
  const signer = createEd25519NoteSigner(ORIGIN, logKeyPem);
  const tree = new MerkleTree();
  const entries: Uint8Array[] = [];
  const checkpoints: { size: number; note: string }[] = [];
  const cosigned: { size: number; line: string }[] = [];
  /** Every size a cosignature was posted for, and the answers the coordinator gives instead of accepting. */
  const posted: number[] = [];
  const refuse = new Map<number, EntenteError>();
  const append = (e: Record<string, unknown>): number => {
    const index = entries.length;
    const prev = index === 0 ? '' : Buffer.from(tree.leafHash(index - 1)).toString('hex');
    const bytes = encodeLogEntry({ ...e, index, at: 1, prev } as unknown as LogEntry);
    entries.push(bytes);
    tree.appendEntry(bytes);
    return index;
  };
  const checkpoint = (size = tree.size, root = tree.root(size)): string => {
    const note = signNote(formatCheckpoint({ origin: ORIGIN, size, rootHash: root, extensions: [] }), [
      signer,
    ]);
    checkpoints.push({ size, note });
    return note;
  };
  const client = {
    async getJson(path: string) {
      const url = new URL(path, 'https://x');
      const q = (k: string): number => Number(url.searchParams.get(k));
      if (url.pathname === '/v1/log/checkpoints')
        return { status: 200, body: { checkpoints: checkpoints.filter((c) => c.size > q('after')) } };
      if (url.pathname === '/v1/log/entries') {
        const out = [];
        for (let i = q('start'); i < Math.min(q('end'), entries.length); i++)
          out.push({ index: i, body: b64(entries[i]!) });
        return { status: 200, body: { entries: out } };
      }
      if (url.pathname === '/v1/log/proof/inclusion')
        return { status: 200, body: { proof: tree.inclusionProof(q('index'), q('size')).map(b64) } };
      if (url.pathname === '/v1/log/proof/consistency')
        return { status: 200, body: { proof: tree.consistencyProof(q('from'), q('to')).map(b64) } };
      throw new Error(`unexpected ${path}`);
    },
    async getBytes(path: string) {
      assert.equal(path, '/v1/log/checkpoint');
      return Buffer.from(checkpoints.at(-1)!.note);
    },
    async postJson(path: string, body: { size: number; line: string }) {
      assert.equal(path, '/v1/log/cosignatures');
      posted.push(body.size);
      const failure = refuse.get(body.size);
      if (failure) throw failure;
      cosigned.push(body);
      return { status: 200, body: { accepted: true } };
    },
  } as unknown as MtlsClient;
  append({
    kind: 'log-created',
    origin: ORIGIN,
    consortium: 'test',
    logKey: logVkey,
    witnesses: [],
    quorum: 1,
  });
  return { tree, entries, checkpoints, cosigned, posted, refuse, append, checkpoint, client };
}

function createWitness(log: ReturnType<typeof createFakeLog>): LogWitness {
  return new LogWitness({
    client: () => log.client,
    institution: 'alpha',
    logKey: logVkey,
    origin: ORIGIN,
    witnessName,
    witnessKeyPem,
    log: pino({ level: 'silent' }),
    now: () => 1_800_000_000_000,
  });
}

const isViolation = (pattern: RegExp) => (err: unknown) =>
  err instanceof EntenteError && err.code === 'PROTOCOL_VIOLATION' && pattern.test(err.message);

describe('the participant as a witness of the audit log', () => {
  it('cosigns every checkpoint that extends its view, in order, with valid cosignature/v1 lines', async () => {
    const log = createFakeLog();
    const w = createWitness(log);
    log.checkpoint();
    log.append({ kind: 'run-completed', run: 'r1' });
    log.checkpoint();
    assert.equal(await w.cosignPending(), 2);
    assert.deepEqual(
      log.cosigned.map((c) => c.size),
      [1, 2],
    );
    for (const c of log.cosigned) {
      const note = `${log.checkpoints.find((k) => k.size === c.size)!.note}${c.line}\n`;
      const verdicts = verifyCosignatures(note, [parseVerifierKey(witnessVkey)]);
      assert.ok(
        verdicts.some((v) => v.ok),
        'the line verifies with the witness key',
      );
    }
    assert.equal(await w.cosignPending(), 0, 'nothing new: nothing cosigned');
  });

  it('moves on when the coordinator refuses a cosignature, and is not sent back to that checkpoint', async () => {
    const log = createFakeLog();
    const w = createWitness(log);
    log.checkpoint(); // size 1
    log.append({ kind: 'run-completed', run: 'r1' });
    log.checkpoint(); // size 2
    log.append({ kind: 'run-completed', run: 'r2' });
    log.checkpoint(); // size 3
    // Checkpoint 1's note cannot take the line (e.g. flooded before the one-line-per-witness rule).
    log.refuse.set(
      1,
      new EntenteError('CONFLICT', 'note: would hold more than 100 signatures', { field: 'note' }),
    );
    assert.equal(await w.cosignPending(), 2, 'checkpoints 2 and 3 cosigned after 1 was refused');
    assert.deepEqual(
      log.cosigned.map((c) => c.size),
      [2, 3],
    );
    assert.equal(w.cosignedSize, 3);
    assert.equal(w.witnessedSize, 3, 'the long poll is told 3: only a newer checkpoint wakes the site');
    assert.equal(await w.cosignPending(), 0);
    assert.deepEqual(log.posted, [1, 2, 3], 'the refused checkpoint was tried once, never again');

    // The newest refused: given up too, so the site is not woken for it again and again.
    log.append({ kind: 'run-completed', run: 'r3' });
    log.checkpoint(); // size 4
    log.refuse.set(4, new EntenteError('PROTOCOL_VIOLATION', 'line: does not verify', { field: 'line' }));
    assert.equal(await w.cosignPending(), 0);
    assert.equal(w.cosignedSize, 3);
    assert.equal(w.witnessedSize, 4);
    assert.equal(await w.cosignPending(), 0);
    assert.deepEqual(log.posted, [1, 2, 3, 4]);
  });

  it('retries a checkpoint after a network failure or overload (not a refusal)', async () => {
    const log = createFakeLog();
    const w = createWitness(log);
    log.checkpoint();
    for (const code of ['UNAVAILABLE', 'RATE_LIMITED'] as const) {
      log.refuse.set(1, new EntenteError(code, 'coordinator unreachable'));
      await assert.rejects(w.cosignPending(), (e: unknown) => e instanceof EntenteError && e.code === code);
      assert.equal(w.witnessedSize, -1);
    }
    log.refuse.clear();
    assert.equal(await w.cosignPending(), 1);
    assert.equal(w.witnessedSize, 1);
  });

  it('detects a split view: a second, different checkpoint for a size it already saw, and halts', async () => {
    const log = createFakeLog();
    const w = createWitness(log);
    log.append({ kind: 'run-completed', run: 'r1' });
    log.checkpoint();
    await w.cosignPending();
    // The coordinator signs another checkpoint of the same size with a different root.
    log.checkpoints.push({
      size: 2,
      note: signNote(
        formatCheckpoint({ origin: ORIGIN, size: 2, rootHash: new Uint8Array(32).fill(7), extensions: [] }),
        [createEd25519NoteSigner(ORIGIN, logKeyPem)],
      ),
    });
    await assert.rejects(w.observe(log.checkpoints.at(-1)!.note), isViolation(/split view/));
    assert.match(w.halted ?? '', /split view/);
    await assert.rejects(w.cosignPending(), isViolation(/stopped witnessing/));
  });

  it('detects a fork: a bigger checkpoint not consistent with its view', async () => {
    const log = createFakeLog();
    const w = createWitness(log);
    log.checkpoint();
    await w.cosignPending();
    // A different history of size 3 (the first entry replaced) served with honest proofs of that history.
    const other = createFakeLog();
    other.entries.length = 0;
    const forked = new MerkleTree();
    for (const bytes of [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])])
      forked.appendEntry(bytes);
    log.checkpoint(3, forked.root());
    log.append({ kind: 'run-completed', run: 'a' });
    log.append({ kind: 'run-completed', run: 'b' });
    await assert.rejects(w.cosignPending(), isViolation(/not consistent/));
    assert.ok(w.halted);
  });

  it('refuses a rollback to a smaller checkpoint', async () => {
    const log = createFakeLog();
    const w = createWitness(log);
    const small = log.checkpoint();
    log.append({ kind: 'run-completed', run: 'r1' });
    log.checkpoint();
    await w.cosignPending();
    await assert.rejects(w.observe(small), isViolation(/rollback/));
  });

  it('refuses a checkpoint not signed by the consortium log key', async () => {
    const log = createFakeLog();
    const w = createWitness(log);
    const forged = signNote(
      formatCheckpoint({ origin: ORIGIN, size: 1, rootHash: log.tree.root(), extensions: [] }),
      [createEd25519NoteSigner(ORIGIN, pem())],
    );
    await assert.rejects(w.observe(forged), isViolation(/not signed by the consortium's log key/));
    assert.equal(w.halted, null, 'a bad signature is refused, not a reason to halt');
  });

  it("halts when the log closes a round without this site's accepted update commitment", async () => {
    const log = createFakeLog();
    const w = createWitness(log);
    const sha = 'ab'.repeat(32);
    w.recordCommitment({ run: 'r1', round: 1, attempt: 0, sha256: sha });
    const base = {
      run: 'r1',
      round: 1,
      attempt: 0,
      participant: 'alpha',
      modelIn: 'cd'.repeat(32),
      sessionId: 's',
      signature: '',
    };
    log.append({ kind: 'update-committed', ...base, sha256: sha });
    log.append({
      kind: 'model-released',
      run: 'r1',
      round: 1,
      modelIn: 'cd'.repeat(32),
      modelSha256: 'ef'.repeat(32),
      provenanceSha256: '01'.repeat(32),
    });
    log.checkpoint();
    assert.equal(await w.cosignPending(), 1, 'its commitment is there: cosigned');
    w.recordCommitment({ run: 'r1', round: 2, attempt: 0, sha256: '11'.repeat(32) });
    log.append({ kind: 'update-committed', ...base, round: 2, sha256: '22'.repeat(32) }); // not the one it made
    log.append({
      kind: 'model-released',
      run: 'r1',
      round: 2,
      modelIn: 'ef'.repeat(32),
      modelSha256: '12'.repeat(32),
      provenanceSha256: '01'.repeat(32),
    });
    log.checkpoint();
    await assert.rejects(w.cosignPending(), isViolation(/without this site's accepted update commitment/));
  });

  it('checks before training that the model is the one the log records', async () => {
    const log = createFakeLog();
    const w = createWitness(log);
    const index = log.append({
      kind: 'model-initialized',
      run: 'r1',
      round: 0,
      modelSha256: 'aa'.repeat(32),
    });
    log.checkpoint();
    await w.checkModel({ index, run: 'r1', modelSha256: 'aa'.repeat(32) });
    await assert.rejects(
      w.checkModel({ index, run: 'r1', modelSha256: 'bb'.repeat(32) }),
      isViolation(/not the one the log records/),
    );
    await assert.rejects(
      w.checkModel({ index, run: 'r2', modelSha256: 'aa'.repeat(32) }),
      isViolation(/not the one/),
    );
    await assert.rejects(
      w.checkModel({ index: 5, run: 'r1', modelSha256: 'aa'.repeat(32) }),
      isViolation(/beyond the newest checkpoint/),
    );
  });
});
