/**
 * What a participant's task handlers share: its options, and the state created once when it starts
 * (its rows split into training and evaluation rows, its ledger, its unmasked rounds, its live
 * secure-aggregation sessions, the log witness, the run-approval check, the coordinator connection, its
 * serving directory and the refusal journal). The handlers in the other modules of this folder are plain functions of it.
 */
import type { Logger } from 'pino';
import type { LabeledData } from '../data/index.ts';
import type { DpNoiseSource, Trainer } from '../models/index.ts';
import type { DataShape, PrivacyReport, Standardization, TaskResult } from '../protocol/index.ts';
import type { ParticipantSession, RingVector } from '../secagg/index.ts';
import type { RandomBits, SiteBudget } from '../privacy/index.ts';
import type { TlsIdentity } from '../storage/index.ts';
import type { CoordinatorConnection } from './coordinator-connection.ts';
import type { LogWitness } from './log-witness.ts';
import type { PrivacyLedgerFile } from './privacy-ledger-file.ts';
import type { Refusal } from './refusals.ts';
import type { RunApprovalCheck } from './run-approval.ts';
import type { EvaluationAnnotations, EvaluationRowsSource } from './secure-sum-vector.ts';
import type { ServingDir } from './serving-dir.ts';
import type { SiteConfig } from './site-config.ts';
import type { UnmaskedRounds } from './unmasked-rounds.ts';

export interface ParticipantOptions {
  readonly institution: string;
  readonly coordinatorUrl: string | (() => string);
  /** Its mTLS identity, or a function returning the current one (re-read after a renewal). */
  readonly identity: TlsIdentity | (() => TlsIdentity);
  /** All of this institution's records; a held-out part is kept for federated evaluation. */
  readonly data: LabeledData;
  /**
   * What its data schema declares for private evaluation (the sensitive attribute, slice names); the
   * rows' groups and slice memberships travel with the loaded data.
   */
  readonly evaluationAnnotations?: EvaluationAnnotations;
  /**
   * The rows this site evaluates on (`--eval-data`); it then trains on all of `data`. Default: a
   * held-out share of `data` (holdoutFraction).
   */
  readonly evaluationData?: LabeledData;
  /** Label classes of its data schema (declared at registration; default: the largest label + 1). */
  readonly dataClasses?: number;
  readonly holdoutFraction?: number;
  readonly log: Logger;
  readonly trainer?: Trainer;
  /**
   * Simulation only: wait this long before uploading each result (a slow institution); either one
   * delay for every task, or a delay per task kind (e.g. { 'secagg-masked-input': 4000 }).
   */
  readonly slowMs?: number | Readonly<Record<string, number>>;
  readonly pollWaitMs?: number;
  readonly maxBackoffMs?: number;
  /** The institution's Ed25519 identity (secure aggregation signs with it) and the consortium CA it trusts. */
  readonly signing?: { readonly certPem: string; readonly keyPem: string; readonly caPem: string };
  /** Append-only JSON-lines file where this site records every task it refused and why. */
  readonly journalFile?: string;
  /**
   * Witness the consortium's audit log (needs `signing`): the log's key and origin from the
   * consortium file, this site's cosigner name, and where its verified view is kept.
   */
  /** This site's own limits (site policy); tasks that break one are refused and recorded. */
  readonly site?: SiteConfig;
  /** This site's own privacy budget (per run and in total); the consortium cannot raise it. */
  readonly privacyBudget?: SiteBudget;
  /** Where this site's privacy ledger is kept (absent: memory only). */
  readonly privacyLedgerFile?: string;
  /**
   * Where this site records each (run, round) it released unmasking shares for (absent: memory only);
   * it then refuses every other attempt of that round, across restarts (unmasked-rounds.ts).
   */
  readonly unmaskedRoundsFile?: string;
  /**
   * Governed consortium (an enrolled site): take part in a run only when the audit log, which this site
   * verifies itself, shows it approved by the start-run quorum of the policy in force.
   */
  readonly requireApprovedRuns?: boolean;
  /**
   * This site's serving directory: `serving.json` (the model version it serves, from the verified log's
   * staged rollouts and its own circuit breaker), the rollouts' models, its rollout records (absent:
   * records in memory only, no files).
   */
  readonly servingDir?: string;
  /**
   * Where `participant serve|score` keep this site's monitoring counts (`<dir>/<model sha256>.json`):
   * a monitoring measurement's current window adds the counts of the monitored model's file (none: zeros).
   */
  readonly monitoringDir?: string;
  /** SHA-256 of the data schema this site's records follow (answers dry runs). */
  readonly dataSchemaDigest?: string;
  /**
   * Test instrumentation only: append the rows of every DP-SGD batch this site draws to this JSON-lines
   * file. It reveals which records were sampled, which is exactly what DP-SGD keeps secret: never set
   * it for real data.
   */
  readonly batchJournalFile?: string;
  readonly witness?: {
    readonly logKey: string;
    readonly origin: string;
    readonly witnessName: string;
    readonly stateFile?: string;
  };
}

/** What a task handler produces: the result to post, and the blob chunks to upload before it. */
export interface TaskOutput {
  result: TaskResult;
  chunks: Uint8Array[];
}

/**
 * The noised update this site built for each secure-aggregation round still open, by `run/round`: a
 * retried attempt (the earlier one aborted before unmasking) sends it again instead of training and
 * spending privacy again, when nothing that shapes it changed (secagg-train.ts computeUpdateKey). Memory
 * only: after a restart the site trains again and charges the ledger again. Reuse is safe only because
 * this site contributes to at most one unmasked sum per round (unmasked-rounds.ts).
 */
export type UpdateCache = Map<
  string,
  { key: string; vector: RingVector; privacy: PrivacyReport | undefined; attempt: number }
>;

export interface ParticipantContext {
  readonly options: ParticipantOptions;
  readonly log: Logger;
  readonly trainer: Trainer;
  /** Its rows, split once: training rows and the rows it evaluates on. */
  readonly split: { readonly train: LabeledData; readonly test: LabeledData };
  /** What this site's records look like (declared at registration; every task's model must fit it). */
  readonly dataShape: DataShape;
  readonly evaluationRows: EvaluationRowsSource;
  readonly ledger: PrivacyLedgerFile;
  readonly unmasked: UnmaskedRounds;
  /** Live secure-aggregation sessions, by sessionKey. */
  readonly sessions: Map<string, ParticipantSession>;
  readonly updateCache: UpdateCache;
  readonly witness: LogWitness | undefined;
  readonly checkRunApproved: RunApprovalCheck | undefined;
  readonly connection: CoordinatorConnection;
  /** Its serving directory (or the in-memory records when it has none). */
  readonly serving: ServingDir;
  /** Randomness of this site alone (node:crypto), for DP noise. */
  readonly noiseBits: RandomBits;
  readonly secureNoise: DpNoiseSource;
  /** Tasks refused so far. */
  readonly refusals: Refusal[];
  /** Governance findings already raised as incidents (once per finding). */
  readonly raisedIncidents: Set<string>;
  /** The consortium this site joined (set at registration). */
  consortium: string;
  /** Appends one event to the site's journal file, when it has one. */
  journal(event: string, fields: Record<string, unknown>): void;
}

export const sessionKey = (runId: string, round: number, attempt: number, phase = 'train'): string =>
  `${runId}/${round}/${attempt}/${phase}`;

export function toParams(s: Standardization): { mean: Float64Array; std: Float64Array } {
  return { mean: Float64Array.from(s.mean), std: Float64Array.from(s.std) };
}
