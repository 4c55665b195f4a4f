/**
 * The state of a staged rollout's execution on the coordinator (rollout-jobs.ts), kept in the store so
 * a restarted coordinator carries on, and what it needs from the rest of the coordinator.
 */
import type { Logger } from 'pino';
import type { RolloutFigures, RolloutPlan } from '../governance/index.ts';
import type { PinnedKeyResolver } from '../secagg/index.ts';
import type { BlobStore, SqliteStore } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';
import type { KnownModel } from './evaluation-job-state.ts';

/** Secure-sum attempts of one stage's measurement before the rollout fails. */
export const MAX_ROLLOUT_ATTEMPTS = 3;
/** Each row's log loss is clipped to this before its paired difference enters the sum. */
export const ROLLOUT_MAX_ROW_LOSS = 10;
/** How long a stage waits for all its sites before it is measured on the ones available (at least 3). */
export const DEFAULT_FULL_COHORT_WAIT_MS = 120_000;

export interface ApprovedRollout {
  readonly plan: RolloutPlan;
  /** The approve-rollout proposal's id (named by the alias move at completion). */
  readonly proposal: string;
}

export interface RolloutJobsDeps {
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
  /** The rollout plan an approved approve-rollout proposal names, by plan digest. */
  readonly approvedRollout: (digest: string) => ApprovedRollout | undefined;
  /** A model this coordinator holds (a completed run's final model), by SHA-256. */
  readonly knownModel: (sha256: string) => KnownModel | undefined;
  /** The institutions of the policy in force (canary draws are made from them). */
  readonly institutions: () => readonly string[];
  /** The logged decision of an evaluation plan (by digest), if any. */
  readonly evaluationOutcome: (plan: string) => 'pass' | 'fail' | 'undetermined' | undefined;
  /** Publishes a checkpoint and wakes the sites (they read the log before they answer). */
  readonly publishCheckpoint: () => void;
  readonly stageTimeoutMs?: number;
  readonly firstStageTimeoutMs?: number;
  readonly fullCohortWaitMs?: number;
}

export interface RolloutGateRecord {
  readonly stage: string;
  readonly outcome: 'pass' | 'fail' | 'undetermined';
  readonly rows: number;
  readonly figures: RolloutFigures;
  readonly contributors: readonly string[];
  readonly logIndex: number;
}

export interface RolloutJobState {
  readonly rollout: string;
  readonly id: string;
  readonly proposal: string;
  readonly startedBy: string;
  readonly startedAt: number;
  /**
   * running: a stage is under way (or about to start); undetermined: the stage's gate could not be
   * decided on its one measurement (fewer rows than the plan's minimum; only a rollback quorum ends it);
   * completed, rolled back; failed: the measurement could not be made (the alias is untouched).
   */
  status: 'running' | 'undetermined' | 'completed' | 'rolled back' | 'failed';
  /** Index in plan.stages of the running stage. */
  stage: number;
  /** Set once the stage's `rollout-stage-started` entry is logged (its `at` and sites). */
  started?: {
    at: number;
    sites: string[];
    logIndex: number;
    checkpoint?: { size: number; rootHash: string };
  };
  /** A canary stage waits for a witness-cosigned checkpoint of this size to draw from. */
  drawFrom?: number;
  attempt: number;
  gates: RolloutGateRecord[];
  rolledBack?: { cause: 'gate' | 'circuit-breaker' | 'quorum'; by?: string; logIndex: number };
  completed?: { logIndex: number; aliasMoved: boolean };
  failure?: string;
  finishedAt?: number;
}

/** What `GET /v1/rollouts/:digest` shows. */
export interface RolloutJobView extends Omit<RolloutJobState, 'started' | 'drawFrom'> {
  readonly title: string;
  readonly candidate: string;
  readonly production: string | null;
  readonly alias: string;
  readonly stageName: string;
  readonly sites: readonly string[] | null;
  readonly checkpoint: { size: number; rootHash: string } | null;
  readonly stages: readonly string[];
}

export const rolloutMetaKey = (digest: string): string => `rollout-job:${digest}`;
export const ROLLOUT_INDEX_KEY = 'rollout-jobs';
