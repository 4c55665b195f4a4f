/**
 * Where `entente audit … --log <…>` reads a log from: a workspace directory (its coordinator database,
 * opened read-only), a coordinator database file, an evidence bundle file (detected by content), or a
 * running coordinator's HTTPS API (mutual TLS with an identity from `--workspace`; entries fetched page
 * by page). Everything read here is untrusted: the checks are done by src/audit, offline.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { parseVerifierKey, type TrustedKeys } from '../audit/index.ts';
import { EVIDENCE_BUNDLE_FORMAT } from '../audit/verify-bundle.ts';
import { EntenteError } from '../core/errors.ts';
import { openWorkspace } from '../storage/index.ts';
import { createMtlsClient } from '../transport/index.ts';

/** The coordinator's log, read lazily (a URL source fetches only what a command needs). */
export interface LogReader {
  /** The --log value, for reports. */
  readonly location: string;
  /** The log key the workspace's consortium.json names, when read from a workspace. */
  readonly configuredLogKey: string | undefined;
  /** Every entry's bytes in index order, and the leaf hashes the store recorded (database only). */
  readEntries(): Promise<{ entries: Uint8Array[]; storedLeafHashes?: Uint8Array[] }>;
  /** The first entry's bytes (the log-created entry), or undefined for an empty log. */
  readFirstEntry(): Promise<Uint8Array | undefined>;
  /** Published checkpoint notes (with cosignature lines), smallest size first. */
  readCheckpoints(): Promise<string[]>;
  /** The newest checkpoint note exactly as published. Throws NOT_FOUND when there is none. */
  readNewestCheckpoint(): Promise<string>;
  /** Stored provenance envelopes by statement SHA-256. */
  readProvenance(): Promise<Map<string, unknown>>;
  close(): Promise<void>;
}

export type AuditInput =
  | { readonly kind: 'log'; readonly reader: LogReader }
  | { readonly kind: 'bundle'; readonly location: string; readonly bundle: unknown };

/** Entries asked for per request: the coordinator's limit. */
export const ENTRIES_PER_PAGE = 10_000;
const SQLITE_MAGIC = 'SQLite format 3\u0000';

const usage = (message: string): EntenteError =>
  new EntenteError('INVALID_ARGUMENT', message, { field: 'log' });

/**
 * Opens `--log <location>`: an https URL (needs `workspace` for the client identity, the operator's by
 * default), a workspace directory, a coordinator database file, or an evidence bundle file. Throws
 * INVALID_ARGUMENT (exit 2) naming --log when the location is none of these.
 */
export function openAuditInput(location: string, options: { workspace?: string } = {}): AuditInput {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    if (!/^https:\/\//i.test(location)) throw usage('--log: a coordinator URL must use https');
    if (!options.workspace)
      throw new EntenteError(
        'INVALID_ARGUMENT',
        '--workspace: needed for the client identity with an https --log',
        {
          field: 'workspace',
        },
      );
    return { kind: 'log', reader: openUrlReader(location, options.workspace) };
  }
  if (!existsSync(location)) throw usage(`--log: ${location} does not exist`);
  if (statSync(location).isDirectory()) {
    if (existsSync(join(location, 'consortium.json'))) {
      const ws = openWorkspace(location);
      const db = join(ws.coordinatorStateDir(), 'coordinator.db');
      if (!existsSync(db)) throw usage(`--log: ${location} has no coordinator database yet (${db})`);
      return { kind: 'log', reader: openDatabaseReader(location, db, ws.consortium.log?.key) };
    }
    if (existsSync(join(location, 'coordinator.db')))
      return {
        kind: 'log',
        reader: openDatabaseReader(location, join(location, 'coordinator.db'), undefined),
      };
    throw usage(`--log: ${location} is neither a workspace nor a coordinator state directory`);
  }
  const head = Buffer.alloc(SQLITE_MAGIC.length);
  const fd = openSync(location, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (head.toString('latin1') === SQLITE_MAGIC)
    return { kind: 'log', reader: openDatabaseReader(location, location, undefined) };
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(location, 'utf8'));
  } catch {
    throw usage(`--log: ${location} is neither a workspace, a coordinator database nor an evidence bundle`);
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    (value as { format?: unknown }).format !== EVIDENCE_BUNDLE_FORMAT
  )
    throw usage(`--log: ${location} is JSON but not an evidence bundle (format ${EVIDENCE_BUNDLE_FORMAT})`);
  return { kind: 'bundle', location, bundle: value };
}

function openDatabaseReader(location: string, file: string, configuredLogKey: string | undefined): LogReader {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.prepare('SELECT idx, body, leaf_hash FROM log_entries LIMIT 0').all();
    db.prepare('SELECT size, note FROM log_checkpoints LIMIT 0').all();
    db.prepare('SELECT sha256, kind, body FROM log_artifacts LIMIT 0').all();
  } catch (err) {
    throw usage(`--log: ${file} is not a readable coordinator database (${(err as Error).message})`);
  }
  const bytes = (b: unknown): Uint8Array => new Uint8Array(b as Buffer);
  const checkpoints = (): string[] =>
    (db.prepare('SELECT note FROM log_checkpoints ORDER BY size').raw().all() as [string][]).map((r) => r[0]);
  return {
    location,
    configuredLogKey,
    readEntries: async () => {
      const rows = db.prepare('SELECT body, leaf_hash FROM log_entries ORDER BY idx').raw().all() as [
        Buffer,
        Buffer,
      ][];
      return { entries: rows.map((r) => bytes(r[0])), storedLeafHashes: rows.map((r) => bytes(r[1])) };
    },
    readFirstEntry: async () => {
      const row = db.prepare('SELECT body FROM log_entries ORDER BY idx LIMIT 1').raw().get() as
        | [Buffer]
        | undefined;
      return row ? bytes(row[0]) : undefined;
    },
    readCheckpoints: async () => checkpoints(),
    readNewestCheckpoint: async () => {
      const newest = checkpoints().at(-1);
      if (newest === undefined)
        throw new EntenteError('NOT_FOUND', 'the log has no checkpoint yet', { field: 'log' });
      return newest;
    },
    readProvenance: async () => {
      const rows = db
        .prepare("SELECT sha256, body FROM log_artifacts WHERE kind = 'provenance'")
        .raw()
        .all() as [string, string][];
      const out = new Map<string, unknown>();
      for (const [sha256, body] of rows) {
        try {
          out.set(sha256, JSON.parse(body));
        } catch {
          out.set(sha256, body); // kept as text: the envelope check will refuse it
        }
      }
      return out;
    },
    close: async () => {
      db.close();
    },
  };
}

const checkpointsReply = z.object({
  checkpoints: z.array(z.object({ size: z.number().int().min(0), note: z.string() })),
});
const entriesReply = z.object({
  entries: z.array(z.object({ index: z.number().int().min(0), body: z.string() })),
});
const provenanceReply = z.object({
  provenance: z.array(z.object({ sha256: z.string(), envelope: z.unknown() })),
});

function parseReply<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success)
    throw new EntenteError('INVALID_MESSAGE', `coordinator reply to ${what} is malformed`, { field: what });
  return parsed.data;
}

function openUrlReader(url: string, workspace: string): LogReader {
  const ws = openWorkspace(workspace);
  const client = createMtlsClient({
    baseUrl: url,
    ...ws.operatorIdentity(),
    maxResponseBytes: 512 * 1024 * 1024,
  });
  const decode = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
  const page = async (start: number, end: number): Promise<Uint8Array[]> => {
    const r = await client.getJson(`/v1/log/entries?start=${start}&end=${end}`, 120_000);
    return parseReply(entriesReply, r.body, '/v1/log/entries').entries.map((e) => decode(e.body));
  };
  const readCheckpoints = async (): Promise<string[]> => {
    const r = await client.getJson('/v1/log/checkpoints');
    return parseReply(checkpointsReply, r.body, '/v1/log/checkpoints')
      .checkpoints.sort((a, b) => a.size - b.size)
      .map((c) => c.note);
  };
  return {
    location: url,
    configuredLogKey: ws.consortium.log?.key,
    readEntries: async () => {
      // Pages until one comes back empty past the newest checkpoint's size, so a gap in the
      // coordinator's table is not mistaken for the end of the log.
      const notes = await readCheckpoints();
      const covered = notes.length > 0 ? sizeOfNote(notes.at(-1)!) : 0;
      const entries: Uint8Array[] = [];
      for (let start = 0; ; start += ENTRIES_PER_PAGE) {
        const got = await page(start, start + ENTRIES_PER_PAGE);
        entries.push(...got);
        if (got.length === 0 && start >= covered) break;
      }
      return { entries };
    },
    readFirstEntry: async () => (await page(0, 1))[0],
    readCheckpoints,
    readNewestCheckpoint: async () =>
      (await client.getBytes('/v1/log/checkpoint', 1024 * 1024)).toString('utf8'),
    readProvenance: async () => {
      const r = await client.getJson('/v1/log/provenance');
      return new Map(
        parseReply(provenanceReply, r.body, '/v1/log/provenance').provenance.map((p) => [
          p.sha256,
          p.envelope,
        ]),
      );
    },
    close: () => client.close(),
  };
}

/** The size line of a checkpoint note (0 when unreadable; the note is checked later, offline). */
function sizeOfNote(note: string): number {
  const size = Number(note.split('\n')[1]);
  return Number.isSafeInteger(size) && size >= 0 ? size : 0;
}

const trustedKeysFile = z.strictObject({
  log: z.string().min(1),
  witnesses: z.array(z.string().min(1)).max(1000),
  quorum: z.number().int().min(0),
});

/**
 * Reads `--trusted-keys FILE`: JSON { "log": vkey, "witnesses": [vkey…], "quorum": n }. Throws
 * INVALID_CONFIG (exit 2) naming the file when it cannot be read or a key does not parse.
 */
export function readTrustedKeys(path: string): TrustedKeys {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new EntenteError('INVALID_CONFIG', `--trusted-keys: ${path} is missing or not JSON`, {
      field: 'trusted-keys',
    });
  }
  const parsed = trustedKeysFile.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = ['trusted-keys', ...issue.path.map(String)].join('.');
    throw new EntenteError('INVALID_CONFIG', `${field}: ${issue.message}`, { field });
  }
  for (const [i, key] of [parsed.data.log, ...parsed.data.witnesses].entries()) {
    try {
      parseVerifierKey(key);
    } catch (err) {
      const field = i === 0 ? 'trusted-keys.log' : `trusted-keys.witnesses.${i - 1}`;
      throw new EntenteError('INVALID_CONFIG', `${field}: ${(err as Error).message}`, { field });
    }
  }
  return parsed.data;
}
