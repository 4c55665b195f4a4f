/**
 * The coordinator's durable state in SQLite (better-sqlite3, WAL, synchronous=FULL): participants,
 * runs with their persisted state machine and strategy state, rounds with their metrics, tasks,
 * accepted updates (unique per task and per participant and round, so nothing counts twice),
 * evaluations, statistics and an event record of every rejection. Large tensors live in the blob
 * store; rows hold their SHA-256 references, and `blobReferences` answers which rows refer to a chunk
 * (the coordinator decides from them who may read it). A damaged file is reported as STORE_CORRUPT
 * (SQLite's own corruption errors at open, and `quickCheck`, SQLite's `PRAGMA quick_check`).
 */
import { chmodSync, closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { EntenteError } from '../core/errors.ts';

/** Rows the events table keeps (the newest). */
export const MAX_EVENTS = 100_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
  id TEXT PRIMARY KEY, registered_at INTEGER, last_seen_at INTEGER, info_json TEXT
);
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, config_json TEXT NOT NULL, state_json TEXT NOT NULL, status TEXT NOT NULL,
  model_json TEXT NOT NULL, strategy_json TEXT NOT NULL, standardization_json TEXT,
  created_at INTEGER NOT NULL, finished_at INTEGER
);
CREATE TABLE IF NOT EXISTS rounds (
  run_id TEXT NOT NULL, round INTEGER NOT NULL, started_at INTEGER, trained_at INTEGER, evaluated_at INTEGER,
  model_in TEXT, model_out TEXT, contributors_json TEXT, train_examples INTEGER, train_loss REAL,
  eval_examples INTEGER, eval_loss REAL, eval_accuracy REAL, aggregate_ms REAL,
  PRIMARY KEY (run_id, round)
);
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY, run_id TEXT NOT NULL, round INTEGER NOT NULL, kind TEXT NOT NULL,
  participant TEXT NOT NULL, status TEXT NOT NULL, task_json TEXT NOT NULL, created_at INTEGER NOT NULL,
  completed_at INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (participant, status);
CREATE TABLE IF NOT EXISTS updates (
  task_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, round INTEGER NOT NULL, participant TEXT NOT NULL,
  blob_json TEXT NOT NULL, num_examples INTEGER NOT NULL, train_loss REAL NOT NULL, received_at INTEGER NOT NULL,
  UNIQUE (run_id, round, participant)
);
CREATE TABLE IF NOT EXISTS evaluations (
  task_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, round INTEGER NOT NULL, participant TEXT NOT NULL,
  num_examples INTEGER NOT NULL, loss REAL NOT NULL, accuracy REAL NOT NULL, received_at INTEGER NOT NULL,
  UNIQUE (run_id, round, participant)
);
CREATE TABLE IF NOT EXISTS regression_evaluations (
  task_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, round INTEGER NOT NULL, participant TEXT NOT NULL,
  num_examples INTEGER NOT NULL, sums_json TEXT NOT NULL, received_at INTEGER NOT NULL,
  UNIQUE (run_id, round, participant)
);
CREATE TABLE IF NOT EXISTS round_metrics (
  run_id TEXT NOT NULL, round INTEGER NOT NULL, metrics_json TEXT NOT NULL, PRIMARY KEY (run_id, round)
);
CREATE TABLE IF NOT EXISTS statistics (
  task_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, participant TEXT NOT NULL, stats_json TEXT NOT NULL,
  received_at INTEGER NOT NULL, UNIQUE (run_id, participant)
);
CREATE TABLE IF NOT EXISTS secagg_attempts (
  run_id TEXT NOT NULL, round INTEGER NOT NULL, attempt INTEGER NOT NULL, started_at INTEGER NOT NULL,
  cohort_json TEXT NOT NULL, threshold INTEGER NOT NULL, ring_bits INTEGER NOT NULL, session_id TEXT,
  survivors_json TEXT, dropped_json TEXT, outcome TEXT NOT NULL, reason TEXT, finished_at INTEGER,
  phase TEXT NOT NULL DEFAULT 'train',
  PRIMARY KEY (run_id, round, phase, attempt)
);
CREATE TABLE IF NOT EXISTS log_entries (
  idx INTEGER PRIMARY KEY, body BLOB NOT NULL, leaf_hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS log_checkpoints (
  size INTEGER PRIMARY KEY, note TEXT NOT NULL, created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log_artifacts (
  sha256 TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS privacy_reports (
  run_id TEXT NOT NULL, round INTEGER NOT NULL, participant TEXT NOT NULL, report_json TEXT NOT NULL,
  received_at INTEGER NOT NULL, PRIMARY KEY (run_id, round, participant)
);
CREATE TABLE IF NOT EXISTS chunk_uploads (
  sha256 TEXT PRIMARY KEY, member TEXT NOT NULL, bytes INTEGER NOT NULL, at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_uploads_member ON chunk_uploads (member);
CREATE TABLE IF NOT EXISTS privacy_charges (
  run_id TEXT NOT NULL, round INTEGER NOT NULL, attempt INTEGER NOT NULL, participant TEXT NOT NULL,
  report_json TEXT NOT NULL, received_at INTEGER NOT NULL, PRIMARY KEY (run_id, round, attempt, participant)
);
CREATE TABLE IF NOT EXISTS blob_uploads (
  sha256 TEXT NOT NULL, participant TEXT NOT NULL, uploaded_at INTEGER NOT NULL, PRIMARY KEY (sha256, participant)
);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, kind TEXT NOT NULL, participant TEXT,
  run_id TEXT, round INTEGER, code TEXT, message TEXT NOT NULL
);
`;

/** One secure-aggregation attempt of a train round: who, which threshold, and how it ended (no secrets). */
export interface SecAggAttemptRow {
  run_id: string;
  round: number;
  attempt: number;
  /** train, or the secure sum of a statistics or evaluate phase. */
  phase?: string;
  started_at: number;
  cohort_json: string;
  threshold: number;
  ring_bits: number;
  session_id: string | null;
  survivors_json: string | null;
  dropped_json: string | null;
  /** running | completed | aborted */
  outcome: string;
  reason: string | null;
  finished_at: number | null;
}

export interface RunRow {
  id: string;
  config_json: string;
  state_json: string;
  status: string;
  model_json: string;
  strategy_json: string;
  standardization_json: string | null;
  created_at: number;
  finished_at: number | null;
}

export interface TaskRow {
  id: string;
  run_id: string;
  round: number;
  kind: string;
  participant: string;
  status: string;
  task_json: string;
  created_at: number;
  completed_at: number | null;
}

export interface RoundRow {
  run_id: string;
  round: number;
  started_at: number | null;
  trained_at: number | null;
  evaluated_at: number | null;
  model_in: string | null;
  model_out: string | null;
  contributors_json: string | null;
  train_examples: number | null;
  train_loss: number | null;
  eval_examples: number | null;
  eval_loss: number | null;
  eval_accuracy: number | null;
  aggregate_ms: number | null;
}

export interface UpdateRow {
  task_id: string;
  run_id: string;
  round: number;
  participant: string;
  blob_json: string;
  num_examples: number;
  train_loss: number;
  received_at: number;
}

export interface EvaluationRow {
  task_id: string;
  participant: string;
  num_examples: number;
  loss: number;
  accuracy: number;
}

export interface EventRow {
  id: number;
  at: number;
  kind: string;
  participant: string | null;
  run_id: string | null;
  round: number | null;
  code: string | null;
  message: string;
}

/** A blob as rows record it: the whole blob's SHA-256 and size, and its chunks. */
export interface StoredBlobRef {
  sha256: string;
  bytes: number;
  chunks: { sha256: string; bytes: number }[];
}

/** A row that refers to blob chunks: what it is, for which run and round, and whose. */
export type BlobReference =
  /** The model a task gave its participant (train, evaluate, secure-aggregation train). */
  | {
      kind: 'task-model';
      task: string;
      runId: string;
      round: number;
      participant: string;
      blob: StoredBlobRef;
    }
  /** An accepted (plain) update, by its uploader. */
  | { kind: 'update'; task: string; runId: string; round: number; participant: string; blob: StoredBlobRef }
  /** A chunk a participant uploaded (masked inputs are referenced only this way and by the log). */
  | { kind: 'upload'; participant: string; chunk: string }
  /** A run's current global model; the final model once the run is completed. */
  | { kind: 'run-model'; runId: string; status: string; blob: StoredBlobRef }
  /** A run's strategy state tensors (server momentum, moments): the coordinator's own. */
  | { kind: 'strategy-state'; runId: string; blob: StoredBlobRef };

const MODEL_TASK_KINDS = "('train', 'evaluate', 'secagg-train', 'secagg-sum')";

/** SQLite's result codes for a damaged or foreign file. */
const CORRUPTION_CODES = new Set([
  'SQLITE_CORRUPT',
  'SQLITE_NOTADB',
  'SQLITE_CORRUPT_INDEX',
  'SQLITE_CORRUPT_VTAB',
]);

function storeCorrupt(path: string, detail: string, cause?: unknown): EntenteError {
  return new EntenteError('STORE_CORRUPT', `${path}: the coordinator database is damaged (${detail})`, {
    field: 'database',
    ...(cause === undefined ? {} : { cause }),
  });
}

export class SqliteStore {
  readonly db: Database.Database;
  readonly path: string;

  /**
   * Opens (or creates, mode 0600) the database at `path`. `readonly` opens an existing file without
   * writing anything (no schema, no pragmas): for `entente doctor` and offline readers. SQLite's
   * corruption errors at open become STORE_CORRUPT.
   */
  constructor(path: string, options: { readonly?: boolean } = {}) {
    this.path = path;
    const readonly = options.readonly === true;
    if (!readonly && path !== ':memory:') {
      // Create the file ourselves at 0600 so SQLite's -wal and -shm files inherit those bits.
      closeSync(openSync(path, 'a', 0o600));
      for (const suffix of ['', '-wal', '-shm']) {
        try {
          chmodSync(path + suffix, 0o600);
        } catch {
          // -wal / -shm exist only while (or after) a connection used them
        }
      }
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(path, readonly ? { readonly: true, fileMustExist: true } : {});
      if (!readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        db.pragma('foreign_keys = ON');
        db.exec(SCHEMA);
      } else {
        db.prepare('SELECT COUNT(*) FROM sqlite_master').get();
      }
    } catch (err) {
      db?.close();
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && CORRUPTION_CODES.has(code))
        throw storeCorrupt(path, (err as Error).message, err);
      throw err;
    }
    this.db = db;
  }

  /**
   * SQLite's `PRAGMA quick_check` (every page and b-tree checked, without the index cross-check of
   * integrity_check): the problems it names, [] when the file is sound. Corruption errors raised while
   * checking are returned as problems too.
   */
  quickCheck(): string[] {
    try {
      const rows = this.db.pragma('quick_check') as { quick_check: string }[];
      const out = rows.map((r) => r.quick_check);
      return out.length === 1 && out[0] === 'ok' ? [] : out;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && CORRUPTION_CODES.has(code)) return [(err as Error).message];
      throw err;
    }
  }

  /** Throws STORE_CORRUPT naming the first problem `quickCheck` finds (the coordinator refuses to start). */
  assertSound(): void {
    const problems = this.quickCheck();
    if (problems.length > 0)
      throw storeCorrupt(
        this.path,
        `quick_check: ${problems.length} problem${problems.length === 1 ? '' : 's'}, first: ${problems[0]}`,
      );
  }

  close(): void {
    this.db.close();
  }

  /** Runs `fn` in one transaction: all its writes land, or none. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  getMeta(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.db
      .prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      )
      .run(key, value);
  }

  touchParticipant(id: string, now: number, infoJson?: string): void {
    this.db
      .prepare(
        `INSERT INTO participants (id, registered_at, last_seen_at, info_json) VALUES (@id, @now, @now, @info)
         ON CONFLICT(id) DO UPDATE SET last_seen_at = @now, info_json = COALESCE(@info, info_json),
         registered_at = COALESCE(registered_at, @now)`,
      )
      .run({ id, now, info: infoJson ?? null });
  }

  /** The data schema digest a participant stated when it last registered (undefined: none). */
  getParticipantSchemaDigest(id: string): string | undefined {
    const row = this.db.prepare('SELECT info_json FROM participants WHERE id = ?').get(id) as
      | { info_json: string | null }
      | undefined;
    if (!row?.info_json) return undefined;
    try {
      const digest = (JSON.parse(row.info_json) as { dataSchemaDigest?: unknown }).dataSchemaDigest;
      return typeof digest === 'string' ? digest : undefined;
    } catch {
      return undefined;
    }
  }

  listParticipants(): { id: string; registered_at: number | null; last_seen_at: number | null }[] {
    return this.db.prepare('SELECT id, registered_at, last_seen_at FROM participants ORDER BY id').all() as {
      id: string;
      registered_at: number | null;
      last_seen_at: number | null;
    }[];
  }

  insertRun(row: RunRow): void {
    this.db
      .prepare(
        `INSERT INTO runs (id, config_json, state_json, status, model_json, strategy_json, standardization_json, created_at, finished_at)
         VALUES (@id, @config_json, @state_json, @status, @model_json, @strategy_json, @standardization_json, @created_at, @finished_at)`,
      )
      .run(row);
  }

  getRun(id: string): RunRow | undefined {
    return this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as RunRow | undefined;
  }

  listRuns(): RunRow[] {
    return this.db.prepare('SELECT * FROM runs ORDER BY created_at').all() as RunRow[];
  }

  updateRun(id: string, fields: Partial<Omit<RunRow, 'id'>>): void {
    const keys = Object.keys(fields);
    if (keys.length === 0) return;
    const sets = keys.map((k) => `${k} = @${k}`).join(', ');
    this.db.prepare(`UPDATE runs SET ${sets} WHERE id = @id`).run({ ...fields, id });
  }

  upsertRound(row: Partial<RoundRow> & { run_id: string; round: number }): void {
    const cols = Object.keys(row);
    const updates = cols.filter((c) => c !== 'run_id' && c !== 'round');
    const sql =
      `INSERT INTO rounds (${cols.join(', ')}) VALUES (${cols.map((c) => '@' + c).join(', ')}) ` +
      (updates.length > 0
        ? `ON CONFLICT(run_id, round) DO UPDATE SET ${updates.map((c) => `${c} = excluded.${c}`).join(', ')}`
        : 'ON CONFLICT(run_id, round) DO NOTHING');
    this.db.prepare(sql).run(row);
  }

  listRounds(runId: string): RoundRow[] {
    return this.db.prepare('SELECT * FROM rounds WHERE run_id = ? ORDER BY round').all(runId) as RoundRow[];
  }

  insertTask(row: TaskRow): void {
    this.db
      .prepare(
        `INSERT INTO tasks (id, run_id, round, kind, participant, status, task_json, created_at, completed_at)
         VALUES (@id, @run_id, @round, @kind, @participant, @status, @task_json, @created_at, @completed_at)`,
      )
      .run(row);
  }

  getTask(id: string): TaskRow | undefined {
    return this.db.prepare('SELECT * FROM tasks WHERE id = ?').get(id) as TaskRow | undefined;
  }

  openTasksFor(participant: string): TaskRow[] {
    return this.db
      .prepare("SELECT * FROM tasks WHERE participant = ? AND status = 'open' ORDER BY created_at, id")
      .all(participant) as TaskRow[];
  }

  setTaskStatus(id: string, status: string, completedAt: number | null): void {
    this.db
      .prepare('UPDATE tasks SET status = ?, completed_at = ? WHERE id = ?')
      .run(status, completedAt, id);
  }

  closeOpenTasks(runId: string, round: number, kind: string, status: string, now: number): void {
    this.db
      .prepare(
        "UPDATE tasks SET status = ?, completed_at = ? WHERE run_id = ? AND round = ? AND kind = ? AND status = 'open'",
      )
      .run(status, now, runId, round, kind);
  }

  /** Withdraws every open task of a run (cancelled): later results for them are stale. */
  closeOpenTasksOfRun(runId: string, status: string, now: number): number {
    return this.db
      .prepare("UPDATE tasks SET status = ?, completed_at = ? WHERE run_id = ? AND status = 'open'")
      .run(status, now, runId).changes;
  }

  /**
   * Forgets the results of a failed attempt of a plain phase (the phase reopens and every site answers
   * again); what they cost stays in the privacy charges and the audit log.
   */
  deletePhaseResults(runId: string, round: number, phase: string): void {
    if (phase === 'train')
      this.db.prepare('DELETE FROM updates WHERE run_id = ? AND round = ?').run(runId, round);
    else if (phase === 'evaluate')
      this.db.prepare('DELETE FROM evaluations WHERE run_id = ? AND round = ?').run(runId, round);
    else if (phase === 'statistics') this.db.prepare('DELETE FROM statistics WHERE run_id = ?').run(runId);
  }

  /** What each registered participant said about itself when it last registered (JSON), by id. */
  listParticipantInfo(): { id: string; info_json: string | null }[] {
    return this.db.prepare('SELECT id, info_json FROM participants ORDER BY id').all() as {
      id: string;
      info_json: string | null;
    }[];
  }

  insertUpdate(row: UpdateRow): void {
    this.db
      .prepare(
        `INSERT INTO updates (task_id, run_id, round, participant, blob_json, num_examples, train_loss, received_at)
         VALUES (@task_id, @run_id, @round, @participant, @blob_json, @num_examples, @train_loss, @received_at)`,
      )
      .run(row);
  }

  listUpdates(runId: string, round: number): UpdateRow[] {
    return this.db
      .prepare('SELECT * FROM updates WHERE run_id = ? AND round = ? ORDER BY participant')
      .all(runId, round) as UpdateRow[];
  }

  insertEvaluation(row: EvaluationRow & { run_id: string; round: number; received_at: number }): void {
    this.db
      .prepare(
        `INSERT INTO evaluations (task_id, run_id, round, participant, num_examples, loss, accuracy, received_at)
         VALUES (@task_id, @run_id, @round, @participant, @num_examples, @loss, @accuracy, @received_at)`,
      )
      .run(row);
  }

  /** How many participants were given a task of each kind in each round of a run (the cohorts). */
  countTaskParticipants(runId: string): { round: number; kind: string; participants: number }[] {
    return this.db
      .prepare(
        'SELECT round, kind, COUNT(DISTINCT participant) AS participants FROM tasks WHERE run_id = ? GROUP BY round, kind ORDER BY round, kind',
      )
      .all(runId) as { round: number; kind: string; participants: number }[];
  }

  /** A regression evaluation: the site's example count and its additive sums (JSON). */
  insertRegressionEvaluation(row: {
    task_id: string;
    run_id: string;
    round: number;
    participant: string;
    num_examples: number;
    sums_json: string;
    received_at: number;
  }): void {
    this.db
      .prepare(
        `INSERT INTO regression_evaluations (task_id, run_id, round, participant, num_examples, sums_json, received_at)
         VALUES (@task_id, @run_id, @round, @participant, @num_examples, @sums_json, @received_at)`,
      )
      .run(row);
  }

  listRegressionEvaluations(
    runId: string,
    round: number,
  ): { participant: string; num_examples: number; sums_json: string }[] {
    return this.db
      .prepare(
        'SELECT participant, num_examples, sums_json FROM regression_evaluations WHERE run_id = ? AND round = ? ORDER BY participant',
      )
      .all(runId, round) as { participant: string; num_examples: number; sums_json: string }[];
  }

  /** Metrics of a round beyond loss and accuracy (a regression run's MSE, MAE, RMSE, R²), as JSON. */
  setRoundMetrics(runId: string, round: number, metricsJson: string): void {
    this.db
      .prepare(
        `INSERT INTO round_metrics (run_id, round, metrics_json) VALUES (?, ?, ?)
         ON CONFLICT(run_id, round) DO UPDATE SET metrics_json = excluded.metrics_json`,
      )
      .run(runId, round, metricsJson);
  }

  getRoundMetrics(runId: string, round: number): string | undefined {
    const row = this.db
      .prepare('SELECT metrics_json FROM round_metrics WHERE run_id = ? AND round = ?')
      .get(runId, round) as { metrics_json: string } | undefined;
    return row?.metrics_json;
  }

  listEvaluations(runId: string, round: number): EvaluationRow[] {
    return this.db
      .prepare(
        'SELECT task_id, participant, num_examples, loss, accuracy FROM evaluations WHERE run_id = ? AND round = ? ORDER BY participant',
      )
      .all(runId, round) as EvaluationRow[];
  }

  insertStatistics(row: {
    task_id: string;
    run_id: string;
    participant: string;
    stats_json: string;
    received_at: number;
  }): void {
    this.db
      .prepare(
        `INSERT INTO statistics (task_id, run_id, participant, stats_json, received_at)
         VALUES (@task_id, @run_id, @participant, @stats_json, @received_at)`,
      )
      .run(row);
  }

  listStatistics(runId: string): { task_id: string; participant: string; stats_json: string }[] {
    return this.db
      .prepare(
        'SELECT task_id, participant, stats_json FROM statistics WHERE run_id = ? ORDER BY participant',
      )
      .all(runId) as { task_id: string; participant: string; stats_json: string }[];
  }

  /**
   * Records an event. The events table is the operator's recent history, not the audit log: only the
   * newest `MAX_EVENTS` rows are kept, so no caller can grow it without bound.
   */
  recordEvent(e: Omit<EventRow, 'id'>): void {
    const { lastInsertRowid } = this.db
      .prepare(
        `INSERT INTO events (at, kind, participant, run_id, round, code, message)
         VALUES (@at, @kind, @participant, @run_id, @round, @code, @message)`,
      )
      .run(e);
    const oldest = Number(lastInsertRowid) - MAX_EVENTS;
    if (oldest > 0) this.db.prepare('DELETE FROM events WHERE id <= ?').run(oldest);
  }

  // ---- Uploaded chunks: who stored them, for each member's quota ----------------------------------

  /** Records that `member` stored a new chunk (a chunk already stored is not charged again). */
  recordChunkUpload(sha256: string, member: string, bytes: number, at: number): void {
    this.db
      .prepare('INSERT OR IGNORE INTO chunk_uploads (sha256, member, bytes, at) VALUES (?, ?, ?, ?)')
      .run(sha256, member, bytes, at);
  }

  /** Bytes of the chunks `member` uploaded that still count against its quota. */
  chunkUploadBytes(member: string): number {
    const row = this.db
      .prepare('SELECT COALESCE(SUM(bytes), 0) AS n FROM chunk_uploads WHERE member = ?')
      .get(member) as { n: number };
    return row.n;
  }

  /** The chunks of an accepted result of `member`: they no longer count against its quota. */
  releaseChunkUploads(member: string, sha256s: readonly string[]): void {
    const del = this.db.prepare('DELETE FROM chunk_uploads WHERE member = ? AND sha256 = ?');
    for (const sha of sha256s) del.run(member, sha);
  }

  /** Chunks removed from the blob store: nobody is charged for them, nor may read them, any more. */
  forgetChunkUploads(sha256s: readonly string[]): void {
    const del = this.db.prepare('DELETE FROM chunk_uploads WHERE sha256 = ?');
    const delAccess = this.db.prepare('DELETE FROM blob_uploads WHERE sha256 = ?');
    this.transaction(() => {
      for (const sha of sha256s) {
        del.run(sha);
        delAccess.run(sha);
      }
    });
  }

  /**
   * Every SHA-256 hex digest that appears anywhere in the store (any table, any column, text or
   * bytes), except the two upload ledgers (quota and access): the chunks the garbage collector must keep. Deliberately
   * conservative: a digest quoted in any row keeps its chunk.
   */
  referencedDigests(): Set<string> {
    const out = new Set<string>();
    // Maximal runs of hex digits: a digest is a run of 64; in a longer run (up to 1024) every window
    // counts, so a digest glued to other hex digits is still seen.
    const hex = /[0-9a-f]{64,}/g;
    const tables = this.db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('chunk_uploads', 'blob_uploads', 'sqlite_sequence')",
      )
      .all() as { name: string }[];
    for (const { name } of tables) {
      const rows = this.db
        .prepare(`SELECT * FROM "${name.replaceAll('"', '""')}"`)
        .raw()
        .iterate() as Iterable<unknown[]>;
      for (const row of rows)
        for (const v of row) {
          const text = typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('latin1') : null;
          if (text === null || text.length < 64) continue;
          for (const m of text.matchAll(hex)) {
            const run = m[0];
            if (run.length > 1024) continue;
            for (let i = 0; i + 64 <= run.length; i++) out.add(run.slice(i, i + 64));
          }
        }
    }
    return out;
  }

  insertSecAggAttempt(row: SecAggAttemptRow): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO secagg_attempts (run_id, round, attempt, started_at, cohort_json, threshold, ring_bits,
           session_id, survivors_json, dropped_json, outcome, reason, finished_at, phase)
         VALUES (@run_id, @round, @attempt, @started_at, @cohort_json, @threshold, @ring_bits, @session_id,
           @survivors_json, @dropped_json, @outcome, @reason, @finished_at, @phase)`,
      )
      .run({ ...row, phase: row.phase ?? 'train' });
  }

  finishSecAggAttempt(
    key: { run_id: string; round: number; attempt: number; phase?: string },
    end: Pick<
      SecAggAttemptRow,
      'session_id' | 'survivors_json' | 'dropped_json' | 'outcome' | 'reason' | 'finished_at'
    >,
  ): void {
    this.db
      .prepare(
        `UPDATE secagg_attempts SET session_id = @session_id, survivors_json = @survivors_json,
           dropped_json = @dropped_json, outcome = @outcome, reason = @reason, finished_at = @finished_at
         WHERE run_id = @run_id AND round = @round AND attempt = @attempt AND phase = @phase`,
      )
      .run({ ...key, phase: key.phase ?? 'train', ...end });
  }

  /** The attempt reached its unmasking stage (shares of secrets were asked for): it will not be retried. */
  markSecAggAttemptUnmasking(key: { run_id: string; round: number; attempt: number; phase?: string }): void {
    this.db
      .prepare(
        "UPDATE secagg_attempts SET outcome = 'unmasking' WHERE run_id = @run_id AND round = @round AND attempt = @attempt AND phase = @phase",
      )
      .run({ ...key, phase: key.phase ?? 'train' });
  }

  listSecAggAttempts(runId: string): SecAggAttemptRow[] {
    return this.db
      .prepare(
        "SELECT * FROM secagg_attempts WHERE run_id = ? ORDER BY round, CASE phase WHEN 'statistics' THEN 0 WHEN 'train' THEN 1 ELSE 2 END, attempt",
      )
      .all(runId) as SecAggAttemptRow[];
  }

  // ---- audit log (coordinator/audit-log.ts): entry bytes, their leaf hashes, signed checkpoints ----

  appendLogEntries(rows: readonly { idx: number; body: Uint8Array; leaf_hash: Uint8Array }[]): void {
    const insert = this.db.prepare(
      'INSERT INTO log_entries (idx, body, leaf_hash) VALUES (@idx, @body, @leaf_hash)',
    );
    this.db.transaction(() => {
      for (const r of rows)
        insert.run({ idx: r.idx, body: Buffer.from(r.body), leaf_hash: Buffer.from(r.leaf_hash) });
    })();
  }

  countLogEntries(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM log_entries').get() as { n: number }).n;
  }

  /** Entries [start, end) in index order (as stored: a tampered table is the auditor's problem to find). */
  listLogEntries(
    start = 0,
    end = Number.MAX_SAFE_INTEGER,
  ): { idx: number; body: Buffer; leaf_hash: Buffer }[] {
    return this.db
      .prepare('SELECT idx, body, leaf_hash FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx')
      .all(start, end) as { idx: number; body: Buffer; leaf_hash: Buffer }[];
  }

  /** Every leaf hash in index order (to rebuild the in-memory tree at start). */
  listLeafHashes(): Buffer[] {
    return (this.db.prepare('SELECT leaf_hash FROM log_entries ORDER BY idx').raw().all() as [Buffer][]).map(
      (r) => r[0],
    );
  }

  putCheckpoint(size: number, note: string, createdAt: number): void {
    this.db
      .prepare(
        'INSERT INTO log_checkpoints (size, note, created_at) VALUES (?, ?, ?) ON CONFLICT(size) DO UPDATE SET note = excluded.note',
      )
      .run(size, note, createdAt);
  }

  /** The stored checkpoint of `size`, if any. */
  checkpointOf(size: number): { size: number; note: string; created_at: number } | undefined {
    return this.db.prepare('SELECT size, note, created_at FROM log_checkpoints WHERE size = ?').get(size) as
      | { size: number; note: string; created_at: number }
      | undefined;
  }

  listCheckpoints(): { size: number; note: string; created_at: number }[] {
    return this.db.prepare('SELECT size, note, created_at FROM log_checkpoints ORDER BY size').all() as {
      size: number;
      note: string;
      created_at: number;
    }[];
  }

  putLogArtifact(sha256: string, kind: string, body: string): void {
    this.db
      .prepare('INSERT OR IGNORE INTO log_artifacts (sha256, kind, body) VALUES (?, ?, ?)')
      .run(sha256, kind, body);
  }

  listLogArtifacts(kind?: string): { sha256: string; kind: string; body: string }[] {
    return (
      kind
        ? this.db.prepare('SELECT * FROM log_artifacts WHERE kind = ? ORDER BY sha256').all(kind)
        : this.db.prepare('SELECT * FROM log_artifacts ORDER BY sha256').all()
    ) as { sha256: string; kind: string; body: string }[];
  }

  /** What a round cost a participant's records, as its own ledger reported it (latest per round wins). */
  putPrivacyReport(row: {
    run_id: string;
    round: number;
    participant: string;
    report_json: string;
    received_at: number;
  }): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO privacy_reports (run_id, round, participant, report_json, received_at)
         VALUES (@run_id, @round, @participant, @report_json, @received_at)`,
      )
      .run(row);
  }

  listPrivacyReports(runId: string): { round: number; participant: string; report_json: string }[] {
    return this.db
      .prepare(
        'SELECT round, participant, report_json FROM privacy_reports WHERE run_id = ? ORDER BY round, participant',
      )
      .all(runId) as { round: number; participant: string; report_json: string }[];
  }

  /** Each privacy charge a participant reported, per secure-aggregation attempt (attempt 0 without it). */
  putPrivacyCharge(row: {
    run_id: string;
    round: number;
    attempt: number;
    participant: string;
    report_json: string;
    received_at: number;
  }): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO privacy_charges (run_id, round, attempt, participant, report_json, received_at)
         VALUES (@run_id, @round, @attempt, @participant, @report_json, @received_at)`,
      )
      .run(row);
  }

  listPrivacyCharges(
    runId: string,
  ): { round: number; attempt: number; participant: string; report_json: string }[] {
    return this.db
      .prepare(
        'SELECT round, attempt, participant, report_json FROM privacy_charges WHERE run_id = ? ORDER BY round, attempt, participant',
      )
      .all(runId) as { round: number; attempt: number; participant: string; report_json: string }[];
  }

  // ---- blob references: which rows refer to which chunks ----

  /** Records that `participant` uploaded chunk `sha256` (after the bytes were checked against it). */
  recordUpload(sha256: string, participant: string, at: number): void {
    this.db
      .prepare('INSERT OR IGNORE INTO blob_uploads (sha256, participant, uploaded_at) VALUES (?, ?, ?)')
      .run(sha256, participant, at);
  }

  /**
   * Every row that refers to chunk `chunk`; with `participant`, only the rows of that participant's
   * tasks, updates and uploads (plus the runs' models and strategy state), which is all an access
   * decision for that participant needs and keeps the lookup to its own tasks (indexed).
   */
  blobReferences(chunk: string, options: { participant?: string } = {}): BlobReference[] {
    const hasChunk = (col: string, path: string): string =>
      `EXISTS (SELECT 1 FROM json_each(${col}, '${path}') c WHERE json_extract(c.value, '$.sha256') = @chunk)`;
    const mine = options.participant === undefined ? '' : 'participant = @participant AND ';
    return this.collectReferences(
      `AND ${mine}${hasChunk('task_json', '$.model.chunks')}`,
      `WHERE ${mine}${hasChunk('blob_json', '$.chunks')}`,
      `WHERE ${hasChunk('model_json', '$.ref.chunks')} OR ${hasChunk('strategy_json', '$.tensors.chunks')}`,
      `WHERE ${mine}sha256 = @chunk`,
      options.participant === undefined ? { chunk } : { chunk, participant: options.participant },
    );
  }

  /** Every blob reference the store holds (for `entente doctor`). */
  listBlobReferences(): BlobReference[] {
    return this.collectReferences('', '', '', '', {});
  }

  private collectReferences(
    taskWhere: string,
    updateWhere: string,
    runWhere: string,
    uploadWhere: string,
    params: Record<string, string>,
  ): BlobReference[] {
    const out: BlobReference[] = [];
    const tasks = this.db
      .prepare(
        `SELECT id, run_id, round, participant, json_extract(task_json, '$.model') AS blob FROM tasks
         WHERE kind IN ${MODEL_TASK_KINDS} ${taskWhere} ORDER BY created_at, id`,
      )
      .all(params) as {
      id: string;
      run_id: string;
      round: number;
      participant: string;
      blob: string | null;
    }[];
    for (const t of tasks)
      if (t.blob)
        out.push({
          kind: 'task-model',
          task: t.id,
          runId: t.run_id,
          round: t.round,
          participant: t.participant,
          blob: JSON.parse(t.blob) as StoredBlobRef,
        });
    const updates = this.db
      .prepare(
        `SELECT task_id, run_id, round, participant, blob_json FROM updates ${updateWhere} ORDER BY task_id`,
      )
      .all(params) as {
      task_id: string;
      run_id: string;
      round: number;
      participant: string;
      blob_json: string;
    }[];
    for (const u of updates)
      out.push({
        kind: 'update',
        task: u.task_id,
        runId: u.run_id,
        round: u.round,
        participant: u.participant,
        blob: JSON.parse(u.blob_json) as StoredBlobRef,
      });
    const runs = this.db
      .prepare(`SELECT id, status, model_json, strategy_json FROM runs ${runWhere} ORDER BY created_at`)
      .all(params) as { id: string; status: string; model_json: string; strategy_json: string }[];
    for (const r of runs) {
      const model = (JSON.parse(r.model_json) as { ref?: StoredBlobRef }).ref;
      if (model) out.push({ kind: 'run-model', runId: r.id, status: r.status, blob: model });
      const tensors = (JSON.parse(r.strategy_json) as { tensors?: StoredBlobRef | null }).tensors;
      if (tensors) out.push({ kind: 'strategy-state', runId: r.id, blob: tensors });
    }
    const uploads = this.db
      .prepare(`SELECT sha256, participant FROM blob_uploads ${uploadWhere} ORDER BY sha256, participant`)
      .all(params) as { sha256: string; participant: string }[];
    for (const u of uploads) out.push({ kind: 'upload', participant: u.participant, chunk: u.sha256 });
    const chunk = params.chunk;
    if (chunk === undefined) return out;
    // A run row matches when its model or its strategy state has the chunk: keep only the one that has.
    return out.filter((r) =>
      r.kind === 'upload' ? r.chunk === chunk : r.blob.chunks.some((c) => c.sha256 === chunk),
    );
  }

  listEvents(limit = 1000): EventRow[] {
    return this.db.prepare('SELECT * FROM events ORDER BY id DESC LIMIT ?').all(limit) as EventRow[];
  }
}
