import type { Logger } from 'pino';
import type { EvaluationMetrics } from '../evaluation/index.ts';
import type { BlindOpening, EvaluationPlan } from '../governance/index.ts';
import type { ModelSpec } from '../models/index.ts';
import type { BlobRef, Standardization } from '../protocol/index.ts';
import type { PinnedKeyResolver } from '../secagg/index.ts';
import type { BlobStore, SqliteStore } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';
import type { PerSiteFigures, RevealState } from './evaluation-reveal.ts';

/** Secure-sum attempts per label before the job fails. */
import type { SecAggRound } from './secagg-round.ts';
export const MAX_ATTEMPTS = 3;

/** A model the coordinator can hand out: its blob, its spec and the standardization it was trained with. */
export interface KnownModel {
  readonly ref: BlobRef;
  readonly modelSpec: ModelSpec;
  readonly standardization?: Standardization | undefined;
  /** The data schema the model was trained under (its run's), when the run named one. */
  readonly dataSchemaDigest?: string | undefined;
}

export interface EvaluationJobsDeps {
  readonly store: SqliteStore;
  readonly blobs: BlobStore;
  readonly log: Logger;
  readonly audit: AuditLog;
  readonly now: () => number;
  readonly notify: (participant: string) => void;
  readonly available: () => readonly string[];
  readonly isPaused?: () => boolean;
  readonly consortium: string;
  readonly pinnedKeyOf: PinnedKeyResolver;
  /** The plan an approved approve-evaluation-plan proposal pre-registered, by digest. */
  readonly approvedPlan: (digest: string) => EvaluationPlan | undefined;
  /** A model this coordinator holds (a completed run's final model), by SHA-256. */
  readonly knownModel: (sha256: string) => KnownModel | undefined;
  readonly publishCheckpoint: () => void;
  /** Whether the policy in force lets a plan ask sites for their own figures (exchange.perSiteEvaluation). */
  readonly perSiteAllowed?: () => boolean;
  readonly stageTimeoutMs?: number;
  readonly firstStageTimeoutMs?: number;
}

export interface JobState {
  readonly plan: string;
  readonly id: string;
  readonly startedBy: string;
  readonly startedAt: number;
  status: 'running' | 'completed' | 'failed';
  /** The blinded assignment with salts (secret until the unblinding). */
  readonly openings: BlindOpening[];
  /** Index into openings of the label being evaluated. */
  next: number;
  attempt: number;
  results: {
    label: string;
    rows: number;
    contributors: string[];
    metrics: EvaluationMetrics;
    logIndex: number;
    /** The unmasked total (kept for leave-one-site-out figures). */
    values?: number[];
    /** Per-site figures, where the plan, the policy and each site consented. */
    perSite?: PerSiteFigures;
  }[];
  /** The per-site reveal under way for the label just summed. */
  reveal?: RevealState;
  unblindedAt?: number;
  decision?: { outcome: string; clauses: unknown[]; logIndex: number };
  failure?: string;
  finishedAt?: number;
}

/** What `GET /v1/evaluations/:plan` shows: blinded until the unblinding is logged. */
export interface EvaluationJobView {
  readonly plan: string;
  readonly id: string;
  readonly title: string;
  readonly status: JobState['status'];
  readonly startedAt: number;
  readonly labels: string[];
  readonly results: JobState['results'];
  readonly unblinding: { label: string; name: string; sha256: string; salt: string }[] | null;
  readonly unblindedLogIndex: number | null;
  readonly decision: JobState['decision'] | null;
  readonly failure: string | null;
}

export const metaKey = (plan: string): string => `evaluation-job:${plan}`;
export const INDEX_KEY = 'evaluation-jobs';

/** What the round, result and reveal steps use of the jobs object (evaluation-job-steps.ts). */
export interface JobsContext {
  readonly deps: EvaluationJobsDeps;
  readonly rounds: Map<string, SecAggRound>;
  save(job: JobState): void;
  fail(job: JobState, reason: string): void;
  abortRound(job: JobState, reason: string): void;
  tick(): void;
}
