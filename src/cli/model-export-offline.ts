/**
 * `entente model export --workspace DIR` when no coordinator runs in that workspace: the coordinator's
 * own files are read (read-only, as `entente doctor` and `audit verify --log` do) by whoever holds the
 * workspace, that is the operator. The same rules as the model route apply: a completed run's final
 * model only, and under a policy only once a release-model quorum approved exactly that model; its
 * chunks are checked against their addresses and the whole against the run's digest; the card names the
 * audit-log entry that records it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseLogEntry } from '../audit/index.ts';
import { EntenteError } from '../core/errors.ts';
import { sha256Hex } from '../crypto/index.ts';
import { GovernanceStore, SqliteStore, openWorkspace } from '../storage/index.ts';

export interface OfflineModel {
  readonly bytes: Buffer;
  readonly sha256: string;
  readonly config: { model: unknown; dataSchemaDigest?: string };
  readonly standardization: { mean: number[]; std: number[] } | null;
  readonly rounds: number;
  readonly finalMetrics: {
    round: number;
    trainLoss: number | null;
    evaluation: {
      round: number;
      examples: number | null;
      loss: number | null;
      accuracy: number | null;
    } | null;
  };
  readonly auditLog: { entry: number; round: number; modelSha256: string };
}

export function readModelOffline(workspaceDir: string, runId: string): OfflineModel {
  const ws = openWorkspace(workspaceDir);
  const stateDir = ws.coordinatorStateDir();
  const dbPath = join(stateDir, 'coordinator.db');
  // A workspace whose coordinator never started has no run at all (not an internal error).
  if (!existsSync(dbPath))
    throw new EntenteError(
      'NOT_FOUND',
      `--run: run "${runId.slice(0, 64)}" does not exist in this workspace (its coordinator has never run)`,
      { field: 'run' },
    );
  const store = new SqliteStore(dbPath, { readonly: true });
  try {
    const row = store.getRun(runId);
    if (!row)
      throw new EntenteError(
        'NOT_FOUND',
        `--run: run "${runId.slice(0, 64)}" does not exist in this workspace`,
        {
          field: 'run',
        },
      );
    if (row.status !== 'completed')
      throw new EntenteError('CONFLICT', `--run: run "${runId}" has not completed (${row.status})`, {
        field: 'run',
      });
    const stored = JSON.parse(row.model_json) as {
      ref: { sha256: string; chunks: { sha256: string; bytes: number }[] };
    };
    const gov = new GovernanceStore(store.db);
    const proposals = gov.listProposals();
    const governed = proposals.some((p) => p.kind === 'adopt-policy' && p.status === 'approved');
    if (governed) {
      const released = proposals.some(
        (p) =>
          p.kind === 'release-model' &&
          p.status === 'approved' &&
          (JSON.parse(p.subject_json) as { run?: string; modelSha256?: string }).run === runId &&
          (JSON.parse(p.subject_json) as { modelSha256?: string }).modelSha256 === stored.ref.sha256,
      );
      if (!released)
        throw new EntenteError(
          'FORBIDDEN',
          `--run: the final model of run "${runId}" was not released by the policy's release-model quorum`,
          { field: 'run' },
        );
    }
    const parts = stored.ref.chunks.map((c, i) => {
      let piece: Buffer;
      try {
        piece = readFileSync(join(stateDir, 'blobs', c.sha256.slice(0, 2), c.sha256));
      } catch {
        throw new EntenteError('STORE_CORRUPT', `model.chunks.${i}: missing from the blob store`, {
          field: `model.chunks.${i}`,
        });
      }
      if (piece.length !== c.bytes || sha256Hex(piece) !== c.sha256)
        throw new EntenteError('STORE_CORRUPT', `model.chunks.${i}: does not match its address`, {
          field: `model.chunks.${i}`,
        });
      return piece;
    });
    const bytes = Buffer.concat(parts);
    const sha256 = sha256Hex(bytes);
    if (sha256 !== stored.ref.sha256)
      throw new EntenteError('STORE_CORRUPT', "model: the chunks do not make the run's final model", {
        field: 'model',
      });
    let auditLog: OfflineModel['auditLog'] | undefined;
    for (const e of store.listLogEntries()) {
      const entry = parseLogEntry(new Uint8Array(e.body), `entry ${e.idx}`);
      if (entry.kind === 'model-released' && entry.run === runId && entry.modelSha256 === sha256)
        auditLog = { entry: entry.index, round: entry.round, modelSha256: sha256 };
    }
    if (!auditLog)
      throw new EntenteError(
        'DIGEST_MISMATCH',
        `run "${runId}": no model-released entry of the audit log names the model`,
        {
          field: 'model',
        },
      );
    const rounds = store.listRounds(runId);
    const last = rounds.at(-1);
    const lastEval = rounds.filter((r) => r.eval_accuracy !== null || r.eval_loss !== null).at(-1);
    const config = JSON.parse(row.config_json) as OfflineModel['config'];
    return {
      bytes,
      sha256,
      config,
      standardization: row.standardization_json ? JSON.parse(row.standardization_json) : null,
      rounds: rounds.length,
      finalMetrics: {
        round: last?.round ?? 0,
        trainLoss: last?.train_loss ?? null,
        evaluation: lastEval
          ? {
              round: lastEval.round,
              examples: lastEval.eval_examples ?? null,
              loss: lastEval.eval_loss ?? null,
              accuracy: lastEval.eval_accuracy ?? null,
            }
          : null,
      },
      auditLog,
    };
  } finally {
    store.close();
  }
}
