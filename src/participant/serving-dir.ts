/**
 * A site's serving directory (`servingDir`): what it serves and why (`serving.json`, rewritten
 * atomically), the model versions of the rollouts it measured (`models/<sha256>.safetensors`, bytes
 * checked against the digest, with `models/<sha256>.json` describing them), and its own record of each
 * rollout (`rollouts/<digest>.json`: a tripped circuit breaker, written and fsynced before anything
 * leaves, and whether the coordinator has been told). Without a directory the records live in memory
 * only and nothing is written.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { EntenteError } from '../core/errors.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { ensurePrivateDir, writePrivateFile } from '../storage/index.ts';
import type { ServingAssignment } from './serving-assignment.ts';

export interface TripRecord {
  readonly stage: string;
  /** ISO time of the trip. */
  readonly at: string;
  readonly candidateAccuracy: number;
  readonly productionAccuracy: number;
  readonly reason: string;
}

export interface RolloutRecord {
  readonly tripped?: TripRecord;
  /** When the coordinator acknowledged the signed circuit-breaker statement (absent: not yet). */
  readonly reportedAt?: string;
}

/** What `models/<sha256>.json` says about a stored model version. */
export interface StoredModelMeta {
  readonly modelSpec: unknown;
  readonly standardization: { readonly mean: readonly number[]; readonly std: readonly number[] } | null;
  readonly dataSchemaDigest: string | null;
}

export interface ServingDir {
  readonly dir: string | undefined;
  record(digest: string): RolloutRecord | undefined;
  /** Records a trip durably (fsynced file and directory) before anything about it leaves the site. */
  recordTrip(digest: string, trip: TripRecord): void;
  markReported(digest: string, at: string): void;
  /** Rollouts whose breaker tripped here. */
  tripped(): Set<string>;
  /** Tripped rollouts the coordinator has not acknowledged yet. */
  unreported(): { digest: string; stage: string }[];
  writeServing(assignment: ServingAssignment, updatedAt: string): void;
  /** The alias the last `serving.json` written names, if any. */
  servingAlias(): string | undefined;
  /** A stored model's bytes when present and matching their digest. */
  readModel(sha256: string): Buffer | undefined;
  /** Stores a model's bytes (checked against `sha256`) and its description, once. */
  storeModel(sha256: string, bytes: Uint8Array, meta: StoredModelMeta): void;
}

const DIGEST_FILE = /^([0-9a-f]{64})\.json$/;

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function parseRecord(text: string, field: string): RolloutRecord {
  let v: RolloutRecord;
  try {
    v = JSON.parse(text) as RolloutRecord;
  } catch {
    throw new EntenteError('INVALID_DATA', `${field}: not JSON`, { field });
  }
  const t = v?.tripped;
  if (
    typeof v !== 'object' ||
    v === null ||
    (t !== undefined &&
      (typeof t !== 'object' ||
        t === null ||
        typeof t.stage !== 'string' ||
        typeof t.at !== 'string' ||
        typeof t.reason !== 'string')) ||
    (v.reportedAt !== undefined && typeof v.reportedAt !== 'string')
  )
    throw new EntenteError('INVALID_DATA', `${field}: not a rollout record`, { field });
  return v;
}

/**
 * Opens (creating, mode 0700) the serving directory `dir`, reading its rollout records; a record that
 * cannot be read stops the site from starting (a lost trip would let it serve the candidate again).
 */
export function openServingDir(dir: string | undefined): ServingDir {
  const records = new Map<string, RolloutRecord>();
  const rolloutsDir = dir ? join(dir, 'rollouts') : undefined;
  const modelsDir = dir ? join(dir, 'models') : undefined;
  if (dir && rolloutsDir && modelsDir) {
    ensurePrivateDir(dir);
    ensurePrivateDir(rolloutsDir);
    ensurePrivateDir(modelsDir);
    for (const name of readdirSync(rolloutsDir)) {
      const m = DIGEST_FILE.exec(name);
      if (!m) continue;
      const field = `servingDir.rollouts.${m[1]!.slice(0, 12)}`;
      records.set(m[1]!, parseRecord(readFileSync(join(rolloutsDir, name), 'utf8'), field));
    }
  }
  const save = (digest: string, record: RolloutRecord): void => {
    records.set(digest, record);
    if (!rolloutsDir) return;
    writePrivateFile(join(rolloutsDir, `${digest}.json`), `${JSON.stringify(record, null, 2)}\n`);
    fsyncDir(rolloutsDir);
  };
  return {
    dir,
    record: (digest) => records.get(digest),
    recordTrip(digest, trip) {
      save(digest, { ...records.get(digest), tripped: trip });
    },
    markReported(digest, at) {
      save(digest, { ...records.get(digest), reportedAt: at });
    },
    tripped: () => new Set([...records].filter(([, r]) => r.tripped).map(([d]) => d)),
    unreported: () =>
      [...records]
        .filter(([, r]) => r.tripped && r.reportedAt === undefined)
        .map(([digest, r]) => ({ digest, stage: r.tripped!.stage })),
    writeServing(a, updatedAt) {
      if (!dir) return;
      const body = {
        format: 'entente-serving/1',
        alias: a.alias,
        version: a.version,
        rollout: a.rollout,
        stage: a.stage,
        reason: a.reason,
        updatedAt,
      };
      writePrivateFile(join(dir, 'serving.json'), `${JSON.stringify(body, null, 2)}\n`);
    },
    servingAlias() {
      if (!dir || !existsSync(join(dir, 'serving.json'))) return undefined;
      try {
        const alias = (JSON.parse(readFileSync(join(dir, 'serving.json'), 'utf8')) as { alias?: unknown })
          .alias;
        return typeof alias === 'string' && /^[a-z0-9-]{1,40}$/.test(alias) ? alias : undefined;
      } catch {
        return undefined;
      }
    },
    readModel(sha256) {
      if (!modelsDir) return undefined;
      const file = join(modelsDir, `${sha256}.safetensors`);
      if (!existsSync(file)) return undefined;
      const bytes = readFileSync(file);
      return sha256Hex(bytes) === sha256 ? bytes : undefined;
    },
    storeModel(sha256, bytes, meta) {
      if (!modelsDir) return;
      if (sha256Hex(bytes) !== sha256)
        throw new EntenteError('DIGEST_MISMATCH', 'model does not match model.sha256', {
          field: 'model.sha256',
        });
      const file = join(modelsDir, `${sha256}.safetensors`);
      if (!existsSync(file) || sha256Hex(readFileSync(file)) !== sha256) writePrivateFile(file, bytes);
      const description = {
        format: 'entente-site-model/1',
        sha256,
        modelSpec: meta.modelSpec,
        standardization: meta.standardization,
        dataSchemaDigest: meta.dataSchemaDigest,
      };
      writePrivateFile(join(modelsDir, `${sha256}.json`), `${JSON.stringify(description, null, 2)}\n`);
    },
  };
}
