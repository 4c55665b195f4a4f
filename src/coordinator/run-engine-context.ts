/**
 * What the run engine's modules share: the engine's dependencies (RunEngineDeps), a live run's
 * in-memory state (LiveRun), the JSON kept in a run's row for its model and strategy state, and the
 * context object every module takes (deps, the live runs, and the engine's `step`, `record`,
 * `publishCheckpoint` and `tick`). Also the plain-phase task ids and the schema meta key.
 */
import type { Logger } from 'pino';
import type { Strategy, createWeightedSum } from '../aggregation/index.ts';
import type { Tensor, TensorLayout } from '../core/tensor.ts';
import type { BlobRef, DataShape, RunConfig, RunEvent, RunState } from '../protocol/index.ts';
import type { PinnedKeyResolver } from '../secagg/index.ts';
import type { BlobStore, SqliteStore } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';
import type { SecAggRound } from './secagg-round.ts';
import type { SumPhaseOutcome } from './secure-sum-phase.ts';

/** Meta key under which the data schema a run's tasks name is kept once its first phase opened. */
export function schemaMetaKey(runId: string): string {
  return `run-schema-digest/${runId}`;
}

export interface RunEngineDeps {
  /** True while an incident is open: new rounds and phases wait. */
  readonly isPaused?: () => boolean;
  readonly store: SqliteStore;
  readonly blobs: BlobStore;
  readonly log: Logger;
  readonly now: () => number;
  /** Participants currently reachable (registered and recently seen). */
  readonly available: () => string[];
  /** Called when new tasks exist for a participant (wakes its long poll). */
  readonly notify: (participant: string) => void;
  /** Consortium id: secure aggregation binds it into every signature and key derivation. */
  readonly consortium: string;
  /** Members' identity keys as pinned in the audit log (secure-aggregation adverts are checked against them). */
  readonly pinnedKeyOf: PinnedKeyResolver;
  /** The audit log every step is appended to. */
  readonly audit: AuditLog;
  /** Called after a checkpoint is published (wakes participants so they can cosign it). */
  readonly onCheckpoint: () => void;
  /** A member's refusals are summarized in the audit log per window of this length (default 60 s). */
  readonly refusalWindowMs?: number;
  /** Refusals per member and window appended in full before the rest are only counted (default 3). */
  readonly refusalsInFullPerWindow?: number;
  /**
   * The data schema digest each participant stated at registration. When given, a run's first phase
   * opens only if every available site follows the run's schema (or, when the run names none, one
   * schema shared by all); later phases leave out sites that follow another.
   */
  readonly schemaDigestOf?: (participant: string) => string | undefined;
  /** What each registered site declared about its records (absent: nothing is checked up front). */
  readonly declaredData?: () => ReadonlyArray<{ readonly participant: string; readonly shape: DataShape }>;
  /** Whether the policy in force allows per-site evaluation figures (`exchange.perSiteEvaluation`). */
  readonly perSiteEvaluationAllowed?: () => boolean;
}

export interface LiveRun {
  config: RunConfig;
  state: RunState;
  strategy: Strategy;
  layout: TensorLayout[];
  /** Streaming sum of the current train round; rebuilt from stored updates when absent. */
  sum: ReturnType<typeof createWeightedSum> | undefined;
  folded: Set<string>;
  aggregateMs: number;
  /** The last schema disagreement recorded for this run (recorded again only when it changes). */
  schemaRefusal?: string;
  /** The secure-aggregation attempt of the open train phase, if the run uses it. */
  secagg: SecAggRound | undefined;
  /** The outcome of a finished secure sum of the statistics or evaluate phase, consumed by closePhase. */
  sumResult?: { outcome: SumPhaseOutcome; contributors: string[]; aggregateMs: number } | undefined;
  /** The unmasked result of a finished secure-aggregation attempt, consumed by closePhase. */
  secaggResult:
    | {
        mean: Tensor[];
        totalExamples: number;
        nextClipNorm?: number;
        contributors: string[];
        aggregateMs: number;
      }
    | undefined;
}

export interface StoredModel {
  ref: BlobRef;
  /** Client-level DP with adaptive clipping: the clip the next round applies. */
  clipNorm?: number;
  /** Index of the audit-log entry that records this model (model-initialized or model-released). */
  logIndex?: number;
}

export interface StoredStrategy {
  scalars: Record<string, number>;
  round: number;
  tensors: BlobRef | null;
}

/** A fresh in-memory state for a run (no running sum, no secure-aggregation attempt). */
export function createLiveRun(
  config: RunConfig,
  state: RunState,
  strategy: Strategy,
  layout: TensorLayout[],
): LiveRun {
  return {
    config,
    state,
    strategy,
    layout,
    sum: undefined,
    folded: new Set(),
    aggregateMs: 0,
    secagg: undefined,
    secaggResult: undefined,
  };
}

/** What the engine's modules are given: its dependencies, its live runs and its core operations. */
export interface RunEngineContext {
  readonly deps: RunEngineDeps;
  /** The runs still executing, by id. */
  readonly runs: Map<string, LiveRun>;
  /**
   * One transition: the new state is persisted in the same transaction as `alsoInTransaction`'s
   * writes; `afterCommit` runs before the transition's effects are applied.
   */
  step(runId: string, event: RunEvent, alsoInTransaction?: () => void, afterCommit?: () => void): void;
  /** Records an event (and, for a refusal, an audit-log entry in bounded number per window). */
  record(
    runId: string | null,
    round: number | null,
    kind: string,
    participant: string | null,
    code: string | null,
    message: string,
  ): void;
  /** Signs a checkpoint of the audit log and wakes the participants so they can cosign it. */
  publishCheckpoint(): void;
  /** Advances every live run. */
  tick(): void;
}

/** A plain phase's task id; a phase reopened after a failed attempt gets new ids (`.a<attempt>`). */
export function plainTaskId(
  ctx: RunEngineContext,
  runId: string,
  round: number,
  phase: RunState['phase'],
  participant: string,
): string {
  const attempt = ctx.runs.get(runId)?.state.attempt ?? 0;
  return attempt === 0
    ? `${runId}.r${round}.${phase}.${participant}`
    : `${runId}.r${round}.${phase}.a${attempt}.${participant}`;
}
