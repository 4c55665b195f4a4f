/**
 * `entente doctor`: checks the coordinator's state at rest against itself, offline and read-only. The
 * SQLite file (PRAGMA quick_check); every stored chunk against its address; every blob a row refers to
 * (task models, updates, uploads, run models, strategy state): its chunks present, of the recorded size,
 * and the whole hashing to its SHA-256; the audit log: each entry against its stored leaf hash, the
 * tree against every stored checkpoint, every checkpoint's signature with the workspace's log key, the
 * chain and entry semantics (src/audit verifyLog, without the cosignature quorum, which is the
 * auditor's question); and every model the log names present as a blob that hashes right. It reports
 * every mismatch it finds (code and message); it never repairs anything.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type LogEntry, collectWitnesses, parseLogEntry, verifyLog } from '../audit/index.ts';
import { EntenteError, type ErrorCode } from '../core/errors.ts';
import {
  BlobStore,
  type BlobReference,
  SqliteStore,
  type StoredBlobRef,
  openWorkspace,
} from '../storage/index.ts';

export interface DoctorProblem {
  readonly code: ErrorCode;
  readonly message: string;
}

export interface DoctorReport {
  readonly ok: boolean;
  readonly workspace: string;
  /** 'absent' when the coordinator never ran in this workspace. */
  readonly database: 'ok' | 'damaged' | 'absent';
  readonly chunks: { readonly stored: number; readonly bytes: number; readonly corrupt: number };
  /** Distinct blobs rows refer to, and how many of them are whole and hash right. */
  readonly blobs: { readonly referenced: number; readonly verified: number };
  readonly log: { readonly entries: number; readonly checkpoints: number; readonly models: number };
  readonly problems: readonly DoctorProblem[];
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const CORRUPT: ErrorCode = 'STORE_CORRUPT';

function describe(ref: BlobReference): string {
  switch (ref.kind) {
    case 'task-model':
      return `the model of task ${ref.task}`;
    case 'update':
      return `the update of task ${ref.task} (${ref.participant})`;
    case 'upload':
      return `an upload by ${ref.participant}`;
    case 'run-model':
      return `the ${ref.status === 'completed' ? 'final' : 'current'} model of run ${ref.runId}`;
    case 'strategy-state':
      return `the strategy state of run ${ref.runId}`;
  }
}

/** Checks the workspace's coordinator state; returns every problem found (an empty list: all is well). */
export function runDoctor(workspaceDir: string): DoctorReport {
  const ws = openWorkspace(workspaceDir);
  const stateDir = ws.coordinatorStateDir();
  const dbPath = join(stateDir, 'coordinator.db');
  const problems: DoctorProblem[] = [];
  const problem = (message: string, code: ErrorCode = CORRUPT): void => {
    problems.push({ code, message });
  };
  const chunks = { stored: 0, bytes: 0, corrupt: 0 };
  const blobs = { referenced: 0, verified: 0 };
  const log = { entries: 0, checkpoints: 0, models: 0 };
  const report = (database: DoctorReport['database']): DoctorReport => ({
    ok: problems.length === 0,
    workspace: ws.dir,
    database,
    chunks,
    blobs,
    log,
    problems,
  });
  if (!existsSync(dbPath)) return report('absent');

  let store: SqliteStore;
  try {
    store = new SqliteStore(dbPath, { readonly: true });
  } catch (err) {
    if (err instanceof EntenteError) {
      problem(`database: ${err.message}`, err.code);
      return report('damaged');
    }
    throw err;
  }
  let database: DoctorReport['database'] = 'ok';
  try {
    for (const p of store.quickCheck()) {
      database = 'damaged';
      problem(`database: ${dbPath}: quick_check: ${p}`);
    }
    const db = store;
    const guarded = <T>(what: string, fn: () => T): T | undefined => {
      try {
        return fn();
      } catch (err) {
        database = 'damaged';
        problem(`database: ${what} could not be read: ${(err as Error).message}`);
        return undefined;
      }
    };

    // Every chunk on disk against its address.
    const blobRoot = join(stateDir, 'blobs');
    const chunkStore = existsSync(blobRoot) ? new BlobStore(blobRoot) : undefined;
    const good = new Set<string>();
    const sizes = new Map<string, number>();
    for (const c of chunkStore?.list() ?? []) {
      chunks.stored++;
      chunks.bytes += c.bytes;
      if (!SHA256_HEX.test(c.sha256)) {
        problem(`blob store: ${c.sha256} is not a chunk address (a stray file in ${blobRoot})`);
        continue;
      }
      sizes.set(c.sha256, c.bytes);
      try {
        chunkStore!.verify(c.sha256);
        good.add(c.sha256);
      } catch (err) {
        if (!(err instanceof EntenteError)) throw err;
        chunks.corrupt++;
        problem(`blob ${c.sha256}: its bytes do not hash to its address (${chunkStore!.pathOf(c.sha256)})`);
      }
    }

    // Every blob a row refers to: present, the recorded sizes, the whole hashing to its SHA-256.
    const references = guarded('the blob references', () => db.listBlobReferences()) ?? [];
    const wholes = new Map<string, { ref: StoredBlobRef; by: string; ok: boolean }>();
    for (const r of references) {
      if (r.kind === 'upload') {
        if (!sizes.has(r.chunk)) problem(`blob ${r.chunk}: ${describe(r)} is missing from the blob store`);
        continue;
      }
      const key = `${r.blob.sha256}/${r.blob.chunks.map((c) => c.sha256).join(',')}`;
      if (wholes.has(key)) continue;
      const entry = { ref: r.blob, by: describe(r), ok: false };
      wholes.set(key, entry);
      let whole = true;
      let total = 0;
      for (const [i, c] of r.blob.chunks.entries()) {
        total += c.bytes;
        const size = sizes.get(c.sha256);
        if (size === undefined) {
          whole = false;
          problem(
            `blob ${r.blob.sha256}: chunk ${i} (${c.sha256}) of ${entry.by} is missing from the blob store`,
          );
        } else if (size !== c.bytes) {
          whole = false;
          problem(
            `blob ${r.blob.sha256}: chunk ${i} (${c.sha256}) of ${entry.by} has ${size} bytes, recorded ${c.bytes}`,
          );
        } else if (!good.has(c.sha256)) {
          whole = false;
          problem(`blob ${r.blob.sha256}: chunk ${i} (${c.sha256}) of ${entry.by} is damaged`);
        }
      }
      if (whole && total !== r.blob.bytes) {
        whole = false;
        problem(
          `blob ${r.blob.sha256}: ${entry.by} records ${r.blob.bytes} bytes but its chunks hold ${total}`,
        );
      }
      if (whole) {
        const h = createHash('sha256');
        chunkStore!.readPieces(
          r.blob.chunks.map((c) => c.sha256),
          (piece) => h.update(piece),
        );
        if (h.digest('hex') !== r.blob.sha256) {
          whole = false;
          problem(`blob ${r.blob.sha256}: the chunks of ${entry.by} do not hash to its SHA-256`);
        }
      }
      entry.ok = whole;
    }
    blobs.referenced = wholes.size;
    blobs.verified = [...wholes.values()].filter((w) => w.ok).length;

    // The audit log: entries, leaf hashes, checkpoints and their signatures, the chain.
    const rows = guarded('the log entries', () => db.listLogEntries()) ?? [];
    const notes = (guarded('the log checkpoints', () => db.listCheckpoints()) ?? []).map((c) => c.note);
    log.entries = rows.length;
    log.checkpoints = notes.length;
    const parsed: LogEntry[] = [];
    for (const [i, row] of rows.entries()) {
      try {
        parsed.push(parseLogEntry(new Uint8Array(row.body), `entry ${i}`));
      } catch {
        // verifyLog names it
      }
    }
    if (rows.length > 0) {
      const stated = collectWitnesses(parsed);
      const audit = verifyLog(
        {
          entries: rows.map((r) => new Uint8Array(r.body)),
          storedLeafHashes: rows.map((r) => new Uint8Array(r.leaf_hash)),
          checkpoints: notes,
        },
        ws.consortium.log ? { log: ws.consortium.log.key, witnesses: stated.keys, quorum: 0 } : undefined,
      );
      for (const p of audit.problems) problem(`log: ${p}`);
    }

    // Every model the log names is a stored blob that hashes right.
    const byWhole = new Map<string, boolean>();
    for (const w of wholes.values()) byWhole.set(w.ref.sha256, (byWhole.get(w.ref.sha256) ?? false) || w.ok);
    const models = new Map<string, number>();
    for (const e of parsed) {
      const named =
        e.kind === 'model-initialized' || e.kind === 'release-approved'
          ? [e.modelSha256]
          : e.kind === 'model-released'
            ? [e.modelIn, e.modelSha256]
            : e.kind === 'round-started' && e.phase !== 'statistics'
              ? // A statistics sum's modelIn is the digest of its declaration, not a model.
                [e.modelIn]
              : [];
      for (const sha of named) if (!models.has(sha)) models.set(sha, e.index);
    }
    log.models = models.size;
    for (const [sha, index] of models) {
      const known = byWhole.get(sha);
      if (known === true) continue;
      if (known === false) {
        problem(`log: entry ${index} names model ${sha}, whose stored blob is damaged or incomplete`);
        continue;
      }
      // A one-chunk model no row describes any more is still its own chunk address.
      if (good.has(sha)) continue;
      problem(`log: entry ${index} names model ${sha}, which is not in the blob store`);
    }
  } finally {
    store.close();
  }
  return report(database);
}

/** The one-line summary of a sound workspace. */
export function formatDoctorSummary(r: DoctorReport): string {
  if (r.database === 'absent') return `doctor: ${r.workspace}: no coordinator state yet; nothing to check`;
  return (
    `doctor: ${r.workspace} is consistent: database ok; ${r.chunks.stored} chunks (${r.chunks.bytes} bytes) ` +
    `hash to their addresses; ${r.blobs.verified}/${r.blobs.referenced} referenced blobs whole; ` +
    `log of ${r.log.entries} entries matches its ${r.log.checkpoints} checkpoints; ` +
    `${r.log.models} models it names are stored`
  );
}
