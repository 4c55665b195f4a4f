/**
 * Executes the run state machine (protocol/run-machine.ts) against the store: opens phases by writing
 * tasks, accepts results after validating them in full, aggregates as updates arrive (a streaming
 * example-weighted sum, so memory stays near two models whatever the number of participants), and
 * records every round. Every state change is persisted in the same SQLite transaction as the writes it
 * depends on, so a coordinator killed at any point restarts and continues without losing a completed
 * round or counting an update twice.
 */
import type { Logger } from 'pino';
import {
  type Strategy,
  type StrategyState,
  createStrategy,
  createWeightedSum,
} from '../aggregation/index.ts';
import { safeCallerText } from '../core/caller-text.ts';
import { EntenteError } from '../core/errors.ts';
import { createSafetensorsReader, decodeSafetensors, encodeSafetensors } from '../core/safetensors.ts';
import type { Tensor, TensorLayout, Weights } from '../core/tensor.ts';
import { countParameters } from '../core/tensor.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import {
  type RegressionSums,
  builtinTrainer,
  combineRegressionEvaluations,
  describeLayout,
  isRegressionSpec,
} from '../models/index.ts';
import {
  type BlobRef,
  type DataShape,
  type RunConfig,
  type RunEffect,
  type RunEvent,
  type PrivacyReport,
  type RunFailure,
  type RunState,
  type SecAggContextWire,
  type Standardization,
  type Task,
  type TaskResult,
  createBlobRef,
  checkModelFitsData,
  computeUpdateNoiseMultiplier,
  describeRefusals,
  createRunState,
  parseRunConfig,
  planSecAggCohort,
  resumeRun,
  stepRun,
} from '../protocol/index.ts';
import type { BlobStore, SqliteStore } from '../storage/index.ts';
import { createHash } from 'node:crypto';
import {
  type RingVector,
  type PinnedKeyResolver,
  type SecAggRoundContext,
  type VectorSegment,
  CLIP_INDICATOR_SEGMENT,
  WEIGHT_SEGMENT,
  dequantizeSum,
  readSignedWord,
} from '../secagg/index.ts';
import { createProvenanceStatement } from '../audit/index.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import type { AuditLog } from './audit-log.ts';
import { RefusalSummarizer } from './refusal-summary.ts';
import { checkSchemaAgreement } from './schema-agreement.ts';
import { SECAGG_TASK_KINDS, SecAggRound } from './secagg-round.ts';
import { type SumPhaseOutcome, finishSumAttempt, planSumAttempt } from './secure-sum-phase.ts';

/** Meta key under which the data schema a run's tasks name is kept once its first phase opened. */
function schemaMetaKey(runId: string): string {
  return `run-schema-digest/${runId}`;
}

/** Recorded in every model's provenance statement. */
const CODE_VERSION = 'entente/0.2.0';

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
}

interface LiveRun {
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

interface StoredModel {
  ref: BlobRef;
  /** Client-level DP with adaptive clipping: the clip the next round applies. */
  clipNorm?: number;
  /** Index of the audit-log entry that records this model (model-initialized or model-released). */
  logIndex?: number;
}

interface StoredStrategy {
  scalars: Record<string, number>;
  round: number;
  tensors: BlobRef | null;
}

export class RunEngine {
  private readonly runs = new Map<string, LiveRun>();
  private readonly deps: RunEngineDeps;
  private readonly refusals: RefusalSummarizer;

  constructor(deps: RunEngineDeps) {
    this.deps = deps;
    this.refusals = new RefusalSummarizer({
      windowMs: deps.refusalWindowMs ?? 60_000,
      fullPerWindow: deps.refusalsInFullPerWindow ?? 3,
    });
    for (const row of deps.store.listRuns()) {
      if (row.status !== 'running') continue;
      const config = parseRunConfig(JSON.parse(row.config_json));
      const live: LiveRun = {
        config,
        state: JSON.parse(row.state_json) as RunState,
        strategy: createStrategy(config.strategy),
        layout: describeLayout(config.model),
        sum: undefined,
        folded: new Set(),
        aggregateMs: 0,
        secagg: undefined,
        secaggResult: undefined,
      };
      if (live.state.status === 'completed') {
        // Killed between the last transition and marking the run: finish marking it.
        deps.store.updateRun(row.id, { status: 'completed', finished_at: deps.now() });
        continue;
      }
      if (live.state.status === 'failed' && live.state.failure) {
        this.markFailed(row.id, live.state.failure);
        continue;
      }
      if (live.state.status === 'cancelled') {
        // Cancelled in the transaction that stored this state; the row is marked with it, but be sure.
        deps.store.updateRun(row.id, { status: 'cancelled', finished_at: deps.now() });
        continue;
      }
      this.runs.set(row.id, live);
      if (
        config.secureAggregation.protocol === 'secagg' &&
        (live.state.status === 'active' || live.state.status === 'closing')
      ) {
        // The attempt's secrets and running sum lived in memory only: abort it cleanly and retry.
        this.abortSecAgg(row.id, live, 'the coordinator restarted during secure aggregation');
        continue;
      }
      const out = resumeRun(live.state);
      live.state = out.state;
      deps.log.info(
        { run: row.id, phase: live.state.phase, round: live.state.round, status: live.state.status },
        'resuming run',
      );
      this.apply(row.id, out.effects);
    }
  }

  /** Creates a run: initial model from the run seed, strategy state, first state; all in one transaction. */
  createRun(input: unknown, approval?: { readonly proposal: string }): { runId: string } {
    const config = parseRunConfig(input);
    this.checkAgainstSites(config);
    const { store, now } = this.deps;
    if (store.getRun(config.id)) {
      throw new EntenteError('CONFLICT', `run "${config.id}" already exists`, { field: 'run.id' });
    }
    const weights = builtinTrainer.initializeWeights(config.model, createSeededRng(`${config.seed}/init`));
    const model = this.storeWeights(weights, { run: config.id, round: '0' });
    const strategy = createStrategy(config.strategy);
    const sstate = strategy.initializeState(weights);
    const state = createRunState({
      runId: config.id,
      totalRounds: config.rounds,
      minParticipants: config.minParticipants,
      evaluate: config.evaluate,
      statistics: config.standardize === 'federated',
    });
    store.transaction(() => {
      store.insertRun({
        id: config.id,
        config_json: JSON.stringify(config),
        state_json: JSON.stringify(state),
        status: 'running',
        model_json: JSON.stringify({ ref: model } satisfies StoredModel),
        strategy_json: JSON.stringify(this.storeStrategyState(sstate)),
        standardization_json: null,
        created_at: now(),
        finished_at: null,
      });
      const audit = this.deps.audit;
      audit.append('run-configured', {
        run: config.id,
        configSha256: createHash('sha256').update(canonicalizeJson(config)).digest('hex'),
        config,
        policyIndex: audit.policyIndex,
        ...(approval ? { proposal: approval.proposal } : {}),
      });
      const logIndex = audit.append('model-initialized', {
        run: config.id,
        round: 0,
        modelSha256: model.sha256,
      });
      store.updateRun(config.id, {
        model_json: JSON.stringify({ ref: model, logIndex } satisfies StoredModel),
      });
    });
    this.publishCheckpoint();
    this.runs.set(config.id, {
      config,
      state,
      strategy,
      layout: describeLayout(config.model),
      sum: undefined,
      folded: new Set(),
      aggregateMs: 0,
      secagg: undefined,
      secaggResult: undefined,
    });
    this.deps.log.info(
      {
        run: config.id,
        rounds: config.rounds,
        strategy: config.strategy.name,
        parameters: countParameters(weights),
      },
      'run created',
    );
    this.tick();
    return { runId: config.id };
  }

  /**
   * Refuses (INVALID_CONFIG naming the field and the site) a run whose model does not fit the records a
   * registered site declared: no round of it could ever be executed there.
   */
  checkAgainstSites(config: RunConfig): void {
    for (const { participant, shape } of this.deps.declaredData?.() ?? [])
      checkModelFitsData(config.model, shape, participant);
  }

  /**
   * Cancels a run for good: its open tasks are withdrawn (a late result is STALE_ROUND), its status is
   * `cancelled` in the same transaction as the audit-log entry, and it never resumes after a restart.
   * Throws NOT_FOUND for an unknown run and CONFLICT for one that already ended.
   */
  cancelRun(
    runId: string,
    by: { readonly by: string; readonly proposal?: string },
  ): { runId: string; status: string } {
    const row = this.deps.store.getRun(runId);
    if (!row) throw new EntenteError('NOT_FOUND', `run "${runId}" does not exist`, { field: 'runId' });
    const live = this.runs.get(runId);
    if (row.status !== 'running' || !live)
      throw new EntenteError('CONFLICT', `runId: run "${runId}" already ended (${row.status})`, {
        field: 'runId',
      });
    this.step(runId, { type: 'cancel', by: by.by, ...(by.proposal ? { proposal: by.proposal } : {}) });
    return { runId, status: 'cancelled' };
  }

  /** The final model (SHA-256) of a completed run, or undefined. */
  finalModelOf(runId: string): string | undefined {
    const row = this.deps.store.getRun(runId);
    if (row?.status !== 'completed') return undefined;
    return (JSON.parse(row.model_json) as StoredModel).ref.sha256;
  }

  /** The final model's blob reference of a completed run, or undefined. */
  finalModelRef(runId: string): BlobRef | undefined {
    const row = this.deps.store.getRun(runId);
    if (row?.status !== 'completed') return undefined;
    return (JSON.parse(row.model_json) as StoredModel).ref;
  }

  /** Advances every live run (opens phases when enough participants are available, enforces deadlines). */
  tick(): void {
    // While an incident is open no new phase opens (the run machine opens one only when enough
    // participants are available); work already under way finishes.
    const available = this.deps.isPaused?.() ? [] : this.deps.available();
    for (const [runId, live] of this.runs) {
      this.step(runId, { type: 'tick', now: this.deps.now(), available });
      live.secagg?.tick(this.deps.now()).catch((err: unknown) => this.failSecAgg(runId, err));
    }
  }

  private failSecAgg(runId: string, err: unknown): void {
    const live = this.runs.get(runId);
    if (!live) return;
    this.deps.log.error({ run: runId, err }, 'secure aggregation failed');
    this.abortSecAgg(runId, live, `internal error: ${(err as Error).message}`);
  }

  /**
   * Ends the open secure-aggregation attempt without a result. The phase reopens as attempt + 1 only
   * when the attempt never reached its unmasking stage and the run's maxAttemptsPerRound allows another;
   * otherwise the run fails with a coded reason (a round is unmasked at most once, and every attempt
   * costs every site a training and possibly privacy).
   */
  private abortSecAgg(runId: string, live: LiveRun, reason: string): void {
    const d = live.secagg?.session.describe();
    const current = live.state.attempt ?? 0;
    const phase = live.state.phase;
    const unmaskingBegan = this.deps.store
      .listSecAggAttempts(runId)
      .some(
        (a) =>
          a.round === live.state.round &&
          (a.phase ?? 'train') === phase &&
          a.attempt === current &&
          a.outcome === 'unmasking',
      );
    this.deps.store.finishSecAggAttempt(
      { run_id: runId, round: live.state.round, attempt: live.state.attempt ?? 0, phase },
      {
        session_id: live.secagg?.session.sessionId ?? null,
        survivors_json: d ? JSON.stringify(d.survivors) : null,
        dropped_json: d ? JSON.stringify(d.dropped) : null,
        outcome: 'aborted',
        reason,
        finished_at: this.deps.now(),
      },
    );
    live.secagg?.expire();
    live.secagg = undefined;
    live.secaggResult = undefined;
    live.sumResult = undefined;
    const { round } = live.state;
    const attempt = live.state.attempt ?? 0;
    this.record(
      runId,
      round,
      'secagg-aborted',
      null,
      null,
      unmaskingBegan
        ? `round ${round} attempt ${attempt} aborted during unmasking: ${reason}; no sum was computed`
        : `round ${round} attempt ${attempt} aborted: ${reason}; nothing was unmasked`,
    );
    const at = this.deps.now();
    const event = {
      type: 'phase-aborted',
      unmaskingBegan,
      maxAttempts: live.config.maxAttemptsPerRound,
      reason: reason.slice(0, 1000),
    } as const;
    this.step(runId, event, () => {
      for (const kind of SECAGG_TASK_KINDS) this.deps.store.closeOpenTasks(runId, round, kind, 'expired', at);
      this.deps.audit.append('round-aborted', {
        run: runId,
        round,
        attempt,
        ...(phase === 'train' ? {} : { phase }),
        reason: reason.slice(0, 2000),
      });
    });
  }

  /**
   * One transition: the new state is persisted in the same transaction as `alsoInTransaction`'s
   * writes; `afterCommit` runs before the transition's effects are applied.
   */
  private step(
    runId: string,
    event: RunEvent,
    alsoInTransaction?: () => void,
    afterCommit?: () => void,
  ): void {
    const live = this.runs.get(runId);
    if (!live) return;
    const out = stepRun(live.state, event);
    if (out.state !== live.state || alsoInTransaction) {
      this.deps.store.transaction(() => {
        alsoInTransaction?.();
        this.deps.store.updateRun(runId, { state_json: JSON.stringify(out.state) });
        this.writeEffects(runId, live, out.effects);
      });
      live.state = out.state;
    }
    afterCommit?.();
    this.apply(runId, out.effects);
  }

  /**
   * The writes of effects that must commit with the state that caused them: a failed attempt's open
   * tasks are withdrawn, and a cancelled run is marked and logged, so a restart sees either all or none.
   */
  private writeEffects(runId: string, live: LiveRun, effects: readonly RunEffect[]): void {
    const { store, audit } = this.deps;
    const at = this.deps.now();
    for (const effect of effects) {
      if (effect.type === 'phase-failed') {
        store.closeOpenTasks(runId, effect.round, effect.phase, 'expired', at);
        store.deletePhaseResults(runId, effect.round, effect.phase);
        if (effect.phase === 'train') {
          live.sum = undefined;
          live.folded = new Set();
        }
        audit.append('round-aborted', {
          run: runId,
          round: effect.round,
          attempt: effect.attempt,
          reason: `${effect.phase}: too few participants left: ${describeRefusals(effect.refused)}`.slice(
            0,
            2000,
          ),
        });
      } else if (effect.type === 'run-cancelled') {
        store.closeOpenTasksOfRun(runId, 'expired', at);
        if (live.secagg)
          store.finishSecAggAttempt(
            {
              run_id: runId,
              round: live.state.round,
              attempt: live.state.attempt ?? 0,
              phase: live.state.phase,
            },
            {
              session_id: live.secagg.session.sessionId ?? null,
              survivors_json: null,
              dropped_json: null,
              outcome: 'aborted',
              reason: 'run cancelled',
              finished_at: at,
            },
          );
        store.updateRun(runId, { status: 'cancelled', finished_at: at });
        audit.append('run-cancelled', {
          run: runId,
          by: effect.by,
          ...(effect.proposal ? { proposal: effect.proposal } : {}),
        });
      }
    }
  }

  private apply(runId: string, effects: readonly RunEffect[]): void {
    for (const effect of effects) {
      switch (effect.type) {
        case 'phase-failed':
          this.record(
            runId,
            effect.round,
            'phase-failed',
            null,
            null,
            `${effect.phase} round ${effect.round} attempt ${effect.attempt}: too few participants left: ${describeRefusals(effect.refused)}`,
          );
          this.publishCheckpoint();
          break;
        case 'run-cancelled': {
          const live = this.runs.get(runId);
          live?.secagg?.expire();
          this.runs.delete(runId);
          this.record(
            runId,
            null,
            'run-cancelled',
            null,
            'RUN_CANCELLED',
            `run ${runId} cancelled by ${effect.by}`,
          );
          this.publishCheckpoint();
          this.deps.log.info({ run: runId, by: effect.by }, 'run cancelled');
          break;
        }
        case 'open-phase':
          this.openPhase(runId, effect.phase, effect.round, effect.available);
          break;
        case 'close-phase':
          this.closePhase(runId);
          break;
        case 'phase-overdue':
          this.record(
            runId,
            effect.round,
            'phase-overdue',
            null,
            null,
            `${effect.phase} round ${effect.round}: waiting for ${effect.missing.join(', ')}`,
          );
          break;
        case 'run-failed':
          this.markFailed(runId, effect.failure);
          break;
        case 'run-completed': {
          this.deps.store.transaction(() => {
            this.deps.store.updateRun(runId, { status: 'completed', finished_at: this.deps.now() });
            this.deps.audit.append('run-completed', { run: runId });
          });
          this.publishCheckpoint();
          this.runs.delete(runId);
          this.deps.log.info({ run: runId }, 'run completed');
          break;
        }
      }
    }
  }

  /**
   * The data schema the phase's tasks name, and the sites that may take part. Before the run's first
   * phase every available site must follow the run's schema (or, without one, the same schema): if not,
   * the disagreement is recorded once (naming sites and digests) and undefined is returned. Afterwards
   * the schema is fixed and sites that follow another are left out of the phase.
   */
  private agreeOnSchema(
    runId: string,
    live: LiveRun,
    round: number,
    available: readonly string[],
  ): { digest: string | undefined; available: readonly string[] } | undefined {
    const digestOf = this.deps.schemaDigestOf;
    if (!digestOf) return { digest: live.config.dataSchemaDigest, available };
    const fixed = this.deps.store.getMeta(schemaMetaKey(runId));
    if (fixed !== undefined) {
      const digest = fixed === '' ? undefined : fixed;
      const kept = available.filter((id) => digestOf(id) === digest);
      if (kept.length < available.length) {
        const left = available.filter((id) => digestOf(id) !== digest);
        this.noteSchemaRefusal(
          runId,
          live,
          round,
          `the run's data schema is ${digest ?? '(none stated)'}; left out of this phase: ${left
            .map((id) => `${id} follows ${digestOf(id) ?? '(none stated)'}`)
            .join(', ')}`,
        );
      }
      return { digest, available: kept };
    }
    const sites = new Map(available.map((id) => [id, digestOf(id)] as const));
    const agreement = checkSchemaAgreement(live.config.dataSchemaDigest, sites);
    if (!agreement.ok) {
      this.noteSchemaRefusal(runId, live, round, `the first phase does not open: ${agreement.message}`);
      return undefined;
    }
    return { digest: agreement.digest, available };
  }

  private noteSchemaRefusal(runId: string, live: LiveRun, round: number, message: string): void {
    if (live.schemaRefusal === message) return;
    live.schemaRefusal = message;
    this.record(runId, round, 'schema-mismatch', null, 'SCHEMA_MISMATCH', message);
  }

  /** A run that cannot go on: stored as failed with its coded reason, logged, and dropped from the live runs. */
  private markFailed(runId: string, failure: RunFailure): void {
    this.deps.store.transaction(() => {
      this.deps.store.updateRun(runId, { status: 'failed', finished_at: this.deps.now() });
      this.deps.audit.append('run-failed', {
        run: runId,
        round: failure.round,
        attempt: failure.attempt,
        code: failure.code,
        reason: failure.message.slice(0, 2000),
      });
    });
    this.record(runId, failure.round, 'run-failed', null, failure.code, failure.message);
    this.publishCheckpoint();
    const live = this.runs.get(runId);
    live?.secagg?.expire();
    this.runs.delete(runId);
    this.deps.log.error({ run: runId, code: failure.code }, `run failed: ${failure.message}`);
  }

  private openPhase(
    runId: string,
    phase: RunState['phase'],
    round: number,
    available: readonly string[],
  ): void {
    const live = this.runs.get(runId)!;
    const { store, now } = this.deps;
    const agreed = this.agreeOnSchema(runId, live, round, available);
    if (!agreed) {
      // Sites disagree on the data schema before the first phase: keep waiting, nothing is written.
      live.state = { ...live.state, status: 'waiting' };
      return;
    }
    available = agreed.available;
    const schemaDigest = agreed.digest;
    const row = store.getRun(runId)!;
    const rng = createSeededRng(`${live.config.seed}/select/${phase}/${round}`);
    const sstate = this.loadStrategyState(row.strategy_json);
    let cohort: string[];
    let proximalMu = 0;
    if (phase === 'train') {
      const c = live.strategy.configureTrain({ round, available, state: sstate, rng });
      cohort = c.participants;
      proximalMu = c.config.proximalMu;
    } else if (phase === 'evaluate') {
      cohort = live.strategy.configureEvaluate({ round, available, state: sstate, rng }).participants;
    } else {
      cohort = [...available];
    }
    if (cohort.length < live.config.minParticipants) {
      // Not enough participants selected: go back to waiting without writing anything.
      live.state = { ...live.state, status: 'waiting' };
      return;
    }
    // From the first phase on, the run's tasks name this schema (every site refuses another one).
    if (this.deps.schemaDigestOf && store.getMeta(schemaMetaKey(runId)) === undefined)
      store.setMeta(schemaMetaKey(runId), schemaDigest ?? '');
    const stored = JSON.parse(row.model_json) as StoredModel;
    const model = stored.ref;
    const modelLog = stored.logIndex === undefined ? {} : { modelLog: { index: stored.logIndex } };
    const standardization = row.standardization_json
      ? (JSON.parse(row.standardization_json) as Standardization)
      : undefined;
    const issuedAt = now();
    if (phase !== 'train' && live.config.secureAggregation.protocol === 'secagg') {
      this.openSumAttempt(runId, live, phase, cohort, {
        model,
        modelLogIndex: stored.logIndex,
        standardization,
        schemaDigest,
      });
      return;
    }
    if (phase === 'train' && live.config.secureAggregation.protocol === 'secagg') {
      this.openSecAggAttempt(
        runId,
        live,
        cohort,
        model,
        standardization,
        proximalMu,
        stored.logIndex,
        stored.clipNorm,
        schemaDigest,
      );
      return;
    }
    const deadlineAt = issuedAt + live.config.roundTimeoutMs;
    const tasks: Task[] = cohort.map((participant) => {
      const base = { taskId: this.plainTaskId(runId, round, phase, participant), runId, round, issuedAt };
      const schema = schemaDigest ? { dataSchemaDigest: schemaDigest } : {};
      if (phase === 'statistics') return { ...base, kind: 'statistics', ...schema };
      if (phase === 'evaluate') {
        return {
          ...base,
          kind: 'evaluate',
          model,
          modelSpec: live.config.model,
          ...schema,
          ...(standardization ? { standardization } : {}),
          ...modelLog,
        };
      }
      return {
        ...base,
        kind: 'train',
        model,
        modelSpec: live.config.model,
        train: { ...live.config.train, proximalMu },
        seed: `${live.config.seed}/train/${round}/${participant}`,
        ...schema,
        ...(standardization ? { standardization } : {}),
        ...modelLog,
      };
    });
    this.step(runId, { type: 'phase-opened', cohort, deadlineAt }, () => {
      for (const t of tasks) {
        store.insertTask({
          id: t.taskId,
          run_id: runId,
          round,
          kind: t.kind,
          participant: t.taskId.slice(t.taskId.lastIndexOf('.') + 1),
          status: 'open',
          task_json: JSON.stringify(t),
          created_at: issuedAt,
          completed_at: null,
        });
      }
      if (phase === 'train') {
        store.upsertRound({ run_id: runId, round, started_at: issuedAt, model_in: model.sha256 });
        this.deps.audit.append('round-started', {
          run: runId,
          round,
          attempt: live.state.attempt ?? 0,
          modelIn: model.sha256,
          cohort,
          protocol: 'none',
          threshold: null,
        });
      }
    });
    if (phase === 'train') {
      live.sum = createWeightedSum(live.layout);
      live.folded = new Set();
      live.aggregateMs = 0;
    }
    this.deps.log.info({ run: runId, phase, round, cohort }, 'phase opened');
    for (const p of cohort) this.deps.notify(p);
  }

  /** A plain phase's task id; a phase reopened after a failed attempt gets new ids (`.a<attempt>`). */
  private plainTaskId(runId: string, round: number, phase: RunState['phase'], participant: string): string {
    const attempt = this.runs.get(runId)?.state.attempt ?? 0;
    return attempt === 0
      ? `${runId}.r${round}.${phase}.${participant}`
      : `${runId}.r${round}.${phase}.a${attempt}.${participant}`;
  }

  /** Opens one secure-aggregation attempt of a train round (stage advertise-keys: train, then advertise). */
  private openSecAggAttempt(
    runId: string,
    live: LiveRun,
    selected: string[],
    model: BlobRef,
    standardization: Standardization | undefined,
    proximalMu: number,
    modelLogIndex: number | undefined,
    clipNormIn: number | undefined,
    schemaDigest: string | undefined,
  ): void {
    const sa = live.config.secureAggregation;
    const planned = planSecAggCohort({
      selected,
      maxParticipants: sa.maxParticipants,
      threshold: sa.threshold,
    });
    if (!planned) {
      live.state = { ...live.state, status: 'waiting' };
      return;
    }
    const { cohort, threshold } = planned;
    const round = live.state.round;
    const attempt = live.state.attempt ?? 0;
    const segments: VectorSegment[] = [];
    let offset = 0;
    for (const t of live.layout) {
      const n = countParameters([t]);
      segments.push({ name: t.name, offsetWords: offset, lengthWords: n });
      offset += n;
    }
    const cdp = live.config.clientDp;
    if (cdp?.adaptive) {
      segments.push({ name: CLIP_INDICATOR_SEGMENT, offsetWords: offset, lengthWords: 1 });
      offset += 1;
    }
    segments.push({ name: WEIGHT_SEGMENT, offsetWords: offset, lengthWords: 1 });
    const clipNorm = clipNormIn ?? cdp?.clipNorm;
    const taskClientDp = cdp
      ? {
          clipNorm: clipNorm!,
          noiseMultiplier: computeUpdateNoiseMultiplier(cdp),
          ...(cdp.adaptive ? { indicatorNoiseStd: cdp.adaptive.countNoiseStd } : {}),
        }
      : undefined;
    const train = { ...live.config.train, proximalMu };
    const wire: SecAggContextWire = {
      consortium: this.deps.consortium,
      attempt,
      cohort,
      threshold,
      quantization: { ringBits: sa.ringBits, clipRange: sa.clipRange, scale: sa.scale },
      maxWeight: sa.maxWeight,
      segments,
    };
    const context: SecAggRoundContext = {
      ...wire,
      runId,
      round,
      baseModelSha256: model.sha256,
      options: taskClientDp ? { ...train, clientDp: taskClientDp } : train,
    };
    const started = performance.now();
    const secagg = new SecAggRound({
      deps: {
        store: this.deps.store,
        blobs: this.deps.blobs,
        log: this.deps.log,
        now: this.deps.now,
        notify: this.deps.notify,
        record: (kind, participant, code, message) =>
          this.record(runId, round, kind, participant, code, message),
        audit: this.deps.audit,
      },
      context,
      pinnedKeyOf: this.deps.pinnedKeyOf,
      firstStageTimeoutMs: live.config.roundTimeoutMs,
      stageTimeoutMs: sa.stageTimeoutMs,
      firstTask: (participant) => ({
        taskId: secagg.taskId('advertise-keys', participant),
        runId,
        round,
        attempt,
        issuedAt: this.deps.now(),
        kind: 'secagg-train',
        model,
        modelSpec: live.config.model,
        train,
        seed: `${live.config.seed}/train/${round}/${attempt}/${participant}`,
        ...(schemaDigest ? { dataSchemaDigest: schemaDigest } : {}),
        ...(standardization ? { standardization } : {}),
        ...(modelLogIndex === undefined ? {} : { modelLog: { index: modelLogIndex } }),
        ...(taskClientDp ? { clientDp: taskClientDp } : {}),
        secagg: wire,
      }),
      onDone: (outcome) => {
        if (live.secagg !== secagg) return;
        if (!outcome.ok) {
          this.abortSecAgg(runId, live, outcome.reason);
          return;
        }
        const mean = this.computeSecAggMean(live, context, outcome.sum);
        live.secagg = undefined;
        this.deps.store.finishSecAggAttempt(
          { run_id: runId, round, attempt },
          {
            session_id: secagg.session.sessionId ?? null,
            survivors_json: JSON.stringify(outcome.survivors),
            dropped_json: JSON.stringify(outcome.dropped),
            outcome: 'completed',
            reason: null,
            finished_at: this.deps.now(),
          },
        );
        live.secaggResult = {
          ...mean,
          contributors: outcome.survivors,
          aggregateMs: performance.now() - started,
        };
        this.record(
          runId,
          round,
          'secagg-completed',
          null,
          null,
          `round ${round} attempt ${attempt}: sum of ${outcome.survivors.length} unmasked (threshold ${threshold}; dropped after ShareKeys: ${outcome.dropped.join(', ') || 'none'})`,
        );
        this.step(runId, { type: 'close-requested', contributors: outcome.survivors });
      },
    });
    live.secagg = secagg;
    this.step(runId, { type: 'phase-opened', cohort, deadlineAt: null }, () => {
      if (attempt === 0)
        this.deps.store.upsertRound({
          run_id: runId,
          round,
          started_at: this.deps.now(),
          model_in: model.sha256,
        });
      this.deps.store.insertSecAggAttempt({
        run_id: runId,
        round,
        attempt,
        started_at: this.deps.now(),
        cohort_json: JSON.stringify(cohort),
        threshold,
        ring_bits: sa.ringBits,
        session_id: null,
        survivors_json: null,
        dropped_json: null,
        outcome: 'running',
        reason: null,
        finished_at: null,
      });
      this.deps.audit.append('round-started', {
        run: runId,
        round,
        attempt,
        modelIn: model.sha256,
        cohort,
        protocol: 'secagg',
        threshold,
      });
    });
    this.record(
      runId,
      round,
      'secagg-started',
      null,
      null,
      `round ${round} attempt ${attempt}: secure aggregation (Bonawitz et al. 2017) with ${cohort.length} participants, threshold ${threshold}, ring 2^${sa.ringBits}`,
    );
    secagg.start();
  }

  /** Opens one secure-sum attempt of a statistics or evaluate phase (first stage: compute the sums, advertise). */
  private openSumAttempt(
    runId: string,
    live: LiveRun,
    phase: 'statistics' | 'evaluate',
    selected: readonly string[],
    input: {
      model: BlobRef;
      modelLogIndex: number | undefined;
      standardization: Standardization | undefined;
      schemaDigest: string | undefined;
    },
  ): void {
    const sa = live.config.secureAggregation;
    const planned = planSecAggCohort({
      selected,
      maxParticipants: sa.maxParticipants,
      threshold: sa.threshold,
    });
    if (!planned) {
      live.state = { ...live.state, status: 'waiting' };
      return;
    }
    const { cohort, threshold } = planned;
    const round = live.state.round;
    const attempt = live.state.attempt ?? 0;
    const plan = planSumAttempt({
      runId,
      round,
      attempt,
      phase,
      config: live.config,
      consortium: this.deps.consortium,
      cohort,
      threshold,
      features: live.layout[0]?.shape[1] ?? 0,
      model: phase === 'evaluate' ? input.model : undefined,
      modelLogIndex: input.modelLogIndex,
      standardization: phase === 'evaluate' ? input.standardization : undefined,
      schemaDigest: input.schemaDigest,
    });
    const started = performance.now();
    const secagg: SecAggRound = new SecAggRound({
      deps: {
        store: this.deps.store,
        blobs: this.deps.blobs,
        log: this.deps.log,
        now: this.deps.now,
        notify: this.deps.notify,
        record: (kind, participant, code, message) =>
          this.record(runId, round, kind, participant, code, message),
        audit: this.deps.audit,
      },
      context: plan.context,
      phase,
      pinnedKeyOf: this.deps.pinnedKeyOf,
      firstStageTimeoutMs: live.config.roundTimeoutMs,
      stageTimeoutMs: sa.stageTimeoutMs,
      firstTask: (participant) => plan.task(secagg.taskId('advertise-keys', participant), this.deps.now()),
      onDone: (outcome) => {
        if (live.secagg !== secagg) return;
        if (!outcome.ok) {
          this.abortSecAgg(runId, live, outcome.reason);
          return;
        }
        let result: SumPhaseOutcome;
        try {
          result = finishSumAttempt(plan, live.config, outcome.sum, outcome.survivors.length);
        } catch (err) {
          this.abortSecAgg(runId, live, `the unmasked sum was refused: ${(err as Error).message}`);
          return;
        }
        live.secagg = undefined;
        this.deps.store.finishSecAggAttempt(
          { run_id: runId, round, attempt, phase },
          {
            session_id: secagg.session.sessionId ?? null,
            survivors_json: JSON.stringify(outcome.survivors),
            dropped_json: JSON.stringify(outcome.dropped),
            outcome: 'completed',
            reason: null,
            finished_at: this.deps.now(),
          },
        );
        live.sumResult = {
          outcome: result,
          contributors: outcome.survivors,
          aggregateMs: performance.now() - started,
        };
        this.record(
          runId,
          round,
          'secagg-completed',
          null,
          null,
          `${phase} round ${round} attempt ${attempt}: secure sum of ${outcome.survivors.length} sites unmasked (threshold ${threshold})`,
        );
        this.step(runId, { type: 'close-requested', contributors: outcome.survivors });
      },
    });
    live.secagg = secagg;
    this.step(runId, { type: 'phase-opened', cohort, deadlineAt: null }, () => {
      this.deps.store.insertSecAggAttempt({
        run_id: runId,
        round,
        attempt,
        phase,
        started_at: this.deps.now(),
        cohort_json: JSON.stringify(cohort),
        threshold,
        ring_bits: 64,
        session_id: null,
        survivors_json: null,
        dropped_json: null,
        outcome: 'running',
        reason: null,
        finished_at: null,
      });
      this.deps.audit.append('round-started', {
        run: runId,
        round,
        attempt,
        phase,
        modelIn: plan.context.baseModelSha256,
        cohort,
        protocol: 'secagg',
        threshold,
      });
    });
    this.record(
      runId,
      round,
      'secagg-started',
      null,
      null,
      `${phase} round ${round} attempt ${attempt}: secure sum with ${cohort.length} participants, threshold ${threshold}`,
    );
    secagg.start();
  }

  /** Closes a statistics or evaluate phase from its unmasked secure sum. */
  private closeSumPhase(runId: string, live: LiveRun): void {
    const { store, now } = this.deps;
    const { phase, round } = live.state;
    const result = live.sumResult;
    if (!result) {
      this.abortSecAgg(runId, live, 'no unmasked sum is available');
      return;
    }
    live.sumResult = undefined;
    const at = now();
    const o = result.outcome;
    this.step(runId, { type: 'phase-closed' }, () => {
      if (o.kind === 'statistics') {
        store.updateRun(runId, { standardization_json: JSON.stringify({ mean: o.mean, std: o.std }) });
        return;
      }
      const headline =
        o.kind === 'regression'
          ? { examples: o.metrics.numExamples, loss: o.metrics.mse, accuracy: null }
          : {
              examples: o.metrics.overall.rows,
              loss: o.metrics.overall.logLoss,
              accuracy: o.metrics.overall.accuracy,
            };
      store.upsertRound({
        run_id: runId,
        round,
        evaluated_at: at,
        eval_examples: headline.examples,
        eval_loss: headline.loss,
        eval_accuracy: headline.accuracy,
      });
      store.setRoundMetrics(
        runId,
        round,
        JSON.stringify(
          o.kind === 'regression'
            ? { mse: o.metrics.mse, mae: o.metrics.mae, rmse: o.metrics.rmse, r2: o.metrics.r2, secure: true }
            : { ...o.metrics, secure: true },
        ),
      );
      this.deps.audit.append('evaluated', {
        run: runId,
        round,
        examples: headline.examples,
        loss: headline.loss !== null && Number.isFinite(headline.loss) ? headline.loss : null,
        accuracy: headline.accuracy,
      });
    });
    this.deps.log.info(
      {
        run: runId,
        phase,
        round,
        contributors: result.contributors.length,
        ms: Math.round(result.aggregateMs),
      },
      phase === 'statistics'
        ? 'federated feature statistics summed securely'
        : 'round evaluated under secure aggregation',
    );
  }

  /** Dequantizes the unmasked sum: mean delta = (Σ (w/W)·Δ) · W / Σ w, added to the current model. */
  private computeSecAggMean(
    live: LiveRun,
    context: SecAggRoundContext,
    sum: RingVector,
  ): { mean: Tensor[]; totalExamples: number; nextClipNorm?: number } {
    const row = this.deps.store.getRun(context.runId)!;
    const current = this.loadWeights((JSON.parse(row.model_json) as StoredModel).ref, live.layout);
    const weightSegment = context.segments.at(-1)!;
    const totalWeight = readSignedWord(sum, weightSegment.offsetWords);
    if (!(totalWeight > 0)) throw new EntenteError('INTERNAL', 'the unmasked weight channel is not positive');
    // Client-level DP: a fixed denominator (McMahan et al. 2018), the cohort size chosen before any data.
    const factor = live.config.clientDp ? 1 / context.cohort.length : context.maxWeight / totalWeight;
    const mean = current.map((t, i) => {
      const seg = context.segments[i]!;
      const delta = dequantizeSum(sum, context.quantization, seg.offsetWords, seg.lengthWords);
      const data = new Float32Array(t.data.length);
      for (let j = 0; j < data.length; j++) data[j] = t.data[j]! + delta[j]! * factor;
      return { name: t.name, shape: [...t.shape], data };
    });
    const cdp = live.config.clientDp;
    const indicator = context.segments.find((s) => s.name === CLIP_INDICATOR_SEGMENT);
    if (cdp?.adaptive && indicator) {
      // Σ(2b−1) + noise over the survivors → the noisy fraction of unclipped updates (Andrew et al. 2021, Alg. 1).
      const applied = (context.options as { clientDp: { clipNorm: number } }).clientDp.clipNorm;
      const survivors = totalWeight;
      const unclipped = Math.min(
        1,
        Math.max(0, (readSignedWord(sum, indicator.offsetWords) + survivors) / (2 * survivors)),
      );
      const next = applied * Math.exp(-cdp.adaptive.learningRate * (unclipped - cdp.adaptive.targetQuantile));
      const nextClipNorm = Math.min(
        cdp.clipNorm * cdp.adaptive.maxGrowth,
        Math.max(cdp.clipNorm / cdp.adaptive.maxGrowth, next),
      );
      this.record(
        context.runId,
        context.round,
        'clip-updated',
        null,
        null,
        `adaptive clipping: noisy unclipped fraction ${unclipped.toFixed(3)} (target ${cdp.adaptive.targetQuantile}), clip ${applied.toPrecision(4)} → ${nextClipNorm.toPrecision(4)}`,
      );
      return { mean, totalExamples: totalWeight, nextClipNorm };
    }
    return { mean, totalExamples: totalWeight };
  }

  /**
   * Validates and accepts one result. Throws an EntenteError naming the problem (and records it) when
   * the result is refused; nothing is written for a refused result.
   */
  async acceptResult(participant: string, taskId: string, result: TaskResult): Promise<{ accepted: true }> {
    try {
      return await this.acceptResultUnrecorded(participant, taskId, result);
    } catch (err) {
      if (err instanceof EntenteError) {
        this.record(result.runId, result.round, 'result-refused', participant, err.code, err.message);
      }
      throw err;
    }
  }

  private async acceptResultUnrecorded(
    participant: string,
    taskId: string,
    result: TaskResult,
  ): Promise<{ accepted: true }> {
    const { store, now } = this.deps;
    const task = store.getTask(taskId);
    if (!task || task.participant !== participant) {
      throw new EntenteError('NOT_FOUND', `task "${taskId}" is not assigned to ${participant}`, {
        field: 'taskId',
      });
    }
    if (task.status === 'done') {
      throw new EntenteError('DUPLICATE_RESULT', `a result for task "${taskId}" was already accepted`, {
        field: 'taskId',
      });
    }
    if (result.runId !== task.run_id)
      throw new EntenteError('STALE_ROUND', 'runId does not match the task', { field: 'runId' });
    if (result.round !== task.round) {
      throw new EntenteError(
        'STALE_ROUND',
        `round ${result.round} does not match the task's round ${task.round}`,
        { field: 'round' },
      );
    }
    if (result.kind === 'refusal') {
      this.deps.store.setTaskStatus(taskId, 'refused', now());
      this.record(
        task.run_id,
        task.round,
        'participant-refused',
        participant,
        result.code,
        `${participant} refused ${task.kind}: ${result.message}`,
      );
      const live = this.runs.get(task.run_id);
      if (live?.secagg && SECAGG_TASK_KINDS.includes(task.kind) && live.state.round === task.round)
        await live.secagg.noteRefusal(participant, taskId, `${result.code}: ${result.message}`);
      else if (
        live &&
        task.status === 'open' &&
        live.state.status === 'active' &&
        live.state.phase === task.kind &&
        live.state.round === task.round &&
        taskId === this.plainTaskId(task.run_id, task.round, live.state.phase, participant)
      )
        // It takes no further part in this attempt of the phase: the phase goes on without it, or fails.
        this.step(task.run_id, {
          type: 'participant-refused',
          participant,
          code: safeCallerText(result.code, 64),
          message: safeCallerText(result.message, 300),
          maxFailures: live.config.maxFailuresPerPhase,
        });
      return { accepted: true };
    }
    if (result.kind !== task.kind)
      throw new EntenteError('INVALID_MESSAGE', `kind "${result.kind}" does not match the task`, {
        field: 'kind',
      });
    const live = this.runs.get(task.run_id);
    if (SECAGG_TASK_KINDS.includes(task.kind)) {
      const attempt = (JSON.parse(task.task_json) as { attempt?: number }).attempt ?? 0;
      const taskPhase = (JSON.parse(task.task_json) as { phase?: string }).phase ?? 'train';
      if (
        task.status !== 'open' ||
        !live?.secagg ||
        live.state.phase !== taskPhase ||
        live.state.round !== task.round
      ) {
        // Too late for the attempt, but the site trained for it: what that cost its records is kept.
        if (task.status !== 'done' && result.kind === 'secagg-train' && result.privacy)
          this.recordPrivacy(task.run_id, task.round, participant, result.privacy, attempt);
        throw new EntenteError('STALE_ROUND', `task "${taskId}" is for a stage that is no longer open`, {
          field: 'round',
        });
      }
      await live.secagg.accept(participant, result);
      if (result.kind === 'secagg-train' && result.privacy)
        this.recordPrivacy(task.run_id, task.round, participant, result.privacy, attempt);
      return { accepted: true };
    }
    if (
      task.status !== 'open' ||
      !live ||
      live.state.status !== 'active' ||
      live.state.round !== task.round ||
      live.state.phase !== task.kind ||
      taskId !== this.plainTaskId(task.run_id, task.round, live.state.phase, participant)
    ) {
      throw new EntenteError('STALE_ROUND', `task "${taskId}" is for a phase that is no longer open`, {
        field: 'round',
      });
    }
    const at = now();
    if (result.kind === 'train') {
      this.validateUpdate(live, result.update);
      this.step(
        task.run_id,
        { type: 'result-accepted', participant },
        () => {
          store.insertUpdate({
            task_id: taskId,
            run_id: task.run_id,
            round: task.round,
            participant,
            blob_json: JSON.stringify(result.update),
            num_examples: result.numExamples,
            train_loss: result.trainLoss,
            received_at: at,
          });
          // Its chunks are now the run's: they no longer count against the member's upload quota.
          store.releaseChunkUploads(
            participant,
            result.update.chunks.map((c) => c.sha256),
          );
          // Plain updates are not signed (only secure aggregation signs commitments): signature ''.
          this.deps.audit.append('update-committed', {
            run: task.run_id,
            round: task.round,
            attempt: 0,
            participant,
            modelIn: (JSON.parse(task.task_json) as { model: BlobRef }).model.sha256,
            sha256: result.update.sha256,
            sessionId: taskId,
            signature: '',
          });
          store.setTaskStatus(taskId, 'done', at);
          // A reopened phase (after a failed attempt) is charged per attempt, like secure aggregation.
          const attempt = live.state.attempt ?? 0;
          if (result.privacy)
            this.recordPrivacy(
              task.run_id,
              task.round,
              participant,
              result.privacy,
              attempt > 0 ? attempt : undefined,
            );
        },
        // Fold after the commit; if we crash here the sum is rebuilt from the stored updates.
        () => {
          if (live.sum && !live.folded.has(participant))
            this.foldUpdate(live, participant, result.update, result.numExamples);
        },
      );
    } else if (result.kind === 'evaluate') {
      const regression = isRegressionSpec(live.config.model);
      if (regression !== (result.regression !== undefined))
        throw new EntenteError(
          'INVALID_MESSAGE',
          regression
            ? 'regression: a linear model is evaluated with regression sums, not accuracy'
            : 'accuracy: a classifier is evaluated with accuracy, not regression sums',
          { field: regression ? 'regression' : 'accuracy' },
        );
      if (result.regression) {
        const sums = result.regression;
        this.step(task.run_id, { type: 'result-accepted', participant }, () => {
          store.insertRegressionEvaluation({
            task_id: taskId,
            run_id: task.run_id,
            round: task.round,
            participant,
            num_examples: result.numExamples,
            sums_json: JSON.stringify(sums),
            received_at: at,
          });
          store.setTaskStatus(taskId, 'done', at);
        });
        return { accepted: true };
      }
      const accuracy = result.accuracy!;
      this.step(task.run_id, { type: 'result-accepted', participant }, () => {
        store.insertEvaluation({
          task_id: taskId,
          run_id: task.run_id,
          round: task.round,
          participant,
          num_examples: result.numExamples,
          loss: result.loss,
          accuracy,
          received_at: at,
        });
        store.setTaskStatus(taskId, 'done', at);
      });
    } else if (result.kind === 'statistics') {
      const dim = live.layout[0]?.shape[1] ?? 0;
      if (result.sum.length !== dim)
        throw new EntenteError('INVALID_MESSAGE', `sum: expected ${dim} features`, { field: 'sum' });
      if (result.sumSquares.length !== dim) {
        throw new EntenteError('INVALID_MESSAGE', `sumSquares: expected ${dim} features`, {
          field: 'sumSquares',
        });
      }
      this.step(task.run_id, { type: 'result-accepted', participant }, () => {
        store.insertStatistics({
          task_id: taskId,
          run_id: task.run_id,
          participant,
          stats_json: JSON.stringify(result),
          received_at: at,
        });
        store.setTaskStatus(taskId, 'done', at);
      });
    }
    return { accepted: true };
  }

  /** Streams an uploaded update through the safetensors reader: names, shapes, dtype, finiteness, digest. */
  private validateUpdate(live: LiveRun, ref: BlobRef): void {
    const maxBytes = countParameters(live.layout) * 4 + 64 * 1024;
    if (ref.bytes > maxBytes) {
      throw new EntenteError(
        'BODY_TOO_LARGE',
        `update.bytes ${ref.bytes} exceeds ${maxBytes} for this model`,
        { field: 'update.bytes' },
      );
    }
    for (const [i, c] of ref.chunks.entries()) {
      if (this.deps.blobs.sizeOf(c.sha256) !== c.bytes) {
        throw new EntenteError('MALFORMED_BODY', `update.chunks.${i} was not uploaded completely`, {
          field: `update.chunks.${i}`,
        });
      }
    }
    const digest = this.streamBlob(ref, live.layout, () => {}, true);
    if (digest !== ref.sha256) {
      throw new EntenteError('DIGEST_MISMATCH', 'update.sha256 does not match the uploaded chunks', {
        field: 'update.sha256',
      });
    }
  }

  private foldUpdate(live: LiveRun, participant: string, ref: BlobRef, numExamples: number): void {
    const started = performance.now();
    const sum = live.sum!;
    this.streamBlob(
      ref,
      live.layout,
      (tensorIndex, offset, values) => sum.addSlice(tensorIndex, offset, values, numExamples),
      false,
    );
    sum.addWeight(numExamples);
    live.folded.add(participant);
    live.aggregateMs += performance.now() - started;
  }

  private closePhase(runId: string): void {
    const live = this.runs.get(runId)!;
    const { store, now } = this.deps;
    const { phase, round } = live.state;
    const row = store.getRun(runId)!;
    const at = now();
    if (phase !== 'train' && live.config.secureAggregation.protocol === 'secagg') {
      this.closeSumPhase(runId, live);
    } else if (phase === 'train' && live.config.secureAggregation.protocol === 'secagg') {
      const result = live.secaggResult;
      if (!result) {
        this.abortSecAgg(runId, live, 'no unmasked sum is available');
        return;
      }
      const currentRef = (JSON.parse(row.model_json) as StoredModel).ref;
      const current = this.loadWeights(currentRef, live.layout);
      const sstate = this.loadStrategyState(row.strategy_json);
      const out = live.strategy.aggregateTrain({
        round,
        current,
        mean: result.mean,
        totalExamples: result.totalExamples,
        contributions: result.contributors.length,
        state: sstate,
      });
      // A full disk (STORAGE_FULL) throws here, before anything changed: the next tick tries again.
      const newRef = this.storeWeights(out.weights, { run: runId, round: String(round) });
      const strategyJson = JSON.stringify(this.storeStrategyState(out.state));
      live.secaggResult = undefined;
      this.step(runId, { type: 'phase-closed' }, () => {
        store.updateRun(runId, {
          strategy_json: strategyJson,
        });
        store.upsertRound({
          run_id: runId,
          round,
          trained_at: at,
          model_out: newRef.sha256,
          contributors_json: JSON.stringify(result.contributors),
          train_examples: result.totalExamples,
          aggregate_ms: result.aggregateMs,
        });
        const logIndex = this.logModelRelease(live, {
          round,
          attempt: live.state.attempt ?? 0,
          modelIn: currentRef.sha256,
          model: newRef,
          mean: result.mean,
          contributors: result.contributors,
          examples: result.totalExamples,
        });
        store.updateRun(runId, {
          model_json: JSON.stringify({
            ref: newRef,
            logIndex,
            ...(result.nextClipNorm === undefined ? {} : { clipNorm: result.nextClipNorm }),
          } satisfies StoredModel),
        });
      });
      this.publishCheckpoint();
      this.deps.log.info(
        {
          run: runId,
          round,
          contributors: result.contributors.length,
          aggregateMs: Math.round(result.aggregateMs),
        },
        'round aggregated (secure aggregation)',
      );
    } else if (phase === 'train') {
      const started = performance.now();
      const updates = store
        .listUpdates(runId, round)
        .filter(
          (u) =>
            live.state.received.includes(u.participant) &&
            u.task_id === this.plainTaskId(runId, round, phase, u.participant),
        );
      if (
        !live.sum ||
        updates.some((u) => !live.folded.has(u.participant)) ||
        live.folded.size !== updates.length
      ) {
        // After a restart (or any doubt) rebuild the sum from the stored updates: each counted exactly once.
        live.sum = createWeightedSum(live.layout);
        live.folded = new Set();
        live.aggregateMs = 0;
        for (const u of updates)
          this.foldUpdate(live, u.participant, JSON.parse(u.blob_json) as BlobRef, u.num_examples);
      }
      const mean = live.sum.computeMean();
      // Release the float64 sum before loading the current model: peak memory stays near 4 models.
      live.sum = undefined;
      const currentRef = (JSON.parse(row.model_json) as StoredModel).ref;
      const current = this.loadWeights(currentRef, live.layout);
      const sstate = this.loadStrategyState(row.strategy_json);
      const totalExamples = updates.reduce((s, u) => s + u.num_examples, 0);
      const out = live.strategy.aggregateTrain({
        round,
        current,
        mean,
        totalExamples,
        contributions: updates.length,
        state: sstate,
      });
      const newRef = this.storeWeights(out.weights, { run: runId, round: String(round) });
      const strategyJson = JSON.stringify(this.storeStrategyState(out.state));
      const trainLoss = updates.reduce((s, u) => s + u.train_loss * u.num_examples, 0) / totalExamples;
      const aggregateMs = live.aggregateMs + (performance.now() - started);
      this.step(runId, { type: 'phase-closed' }, () => {
        store.updateRun(runId, {
          strategy_json: strategyJson,
        });
        store.upsertRound({
          run_id: runId,
          round,
          trained_at: at,
          model_out: newRef.sha256,
          contributors_json: JSON.stringify(updates.map((u) => u.participant)),
          train_examples: totalExamples,
          train_loss: trainLoss,
          aggregate_ms: aggregateMs,
        });
        store.closeOpenTasks(runId, round, 'train', 'expired', at);
        const logIndex = this.logModelRelease(live, {
          round,
          attempt: 0,
          modelIn: currentRef.sha256,
          model: newRef,
          mean,
          contributors: updates.map((u) => u.participant),
          examples: totalExamples,
        });
        store.updateRun(runId, {
          model_json: JSON.stringify({ ref: newRef, logIndex } satisfies StoredModel),
        });
      });
      this.publishCheckpoint();
      live.sum = undefined;
      live.folded = new Set();
      this.deps.log.info(
        { run: runId, round, contributors: updates.length, trainLoss, aggregateMs: Math.round(aggregateMs) },
        'round aggregated',
      );
    } else if (phase === 'evaluate' && isRegressionSpec(live.config.model)) {
      // Regression: the metrics over every site's holdout rows, from their additive sums.
      const parts: RegressionSums[] = store
        .listRegressionEvaluations(runId, round)
        .filter((e) => live.state.received.includes(e.participant))
        .map((e) => ({
          numExamples: e.num_examples,
          ...(JSON.parse(e.sums_json) as Omit<RegressionSums, 'numExamples'>),
        }));
      const m = combineRegressionEvaluations(parts);
      this.step(runId, { type: 'phase-closed' }, () => {
        store.upsertRound({
          run_id: runId,
          round,
          evaluated_at: at,
          eval_examples: m.numExamples,
          eval_loss: m.mse,
          eval_accuracy: null,
        });
        store.setRoundMetrics(
          runId,
          round,
          JSON.stringify({ mse: m.mse, mae: m.mae, rmse: m.rmse, r2: m.r2 }),
        );
        store.closeOpenTasks(runId, round, 'evaluate', 'expired', at);
        this.deps.audit.append('evaluated', {
          run: runId,
          round,
          examples: m.numExamples,
          loss: Number.isFinite(m.mse) ? m.mse : null,
          accuracy: null,
        });
      });
      this.deps.log.info({ run: runId, round, mse: m.mse, r2: m.r2 }, 'round evaluated');
    } else if (phase === 'evaluate') {
      const results = store
        .listEvaluations(runId, round)
        .filter(
          (e) =>
            live.state.received.includes(e.participant) &&
            e.task_id === this.plainTaskId(runId, round, phase, e.participant),
        )
        .map((e) => ({
          participant: e.participant,
          numExamples: e.num_examples,
          loss: e.loss,
          accuracy: e.accuracy,
        }));
      const agg = live.strategy.aggregateEvaluate({ round, results });
      this.step(runId, { type: 'phase-closed' }, () => {
        store.upsertRound({
          run_id: runId,
          round,
          evaluated_at: at,
          eval_examples: agg.numExamples,
          eval_loss: agg.loss,
          eval_accuracy: agg.accuracy,
        });
        store.closeOpenTasks(runId, round, 'evaluate', 'expired', at);
        this.deps.audit.append('evaluated', {
          run: runId,
          round,
          examples: agg.numExamples,
          loss: Number.isFinite(agg.loss) ? agg.loss : null,
          accuracy: Number.isFinite(agg.accuracy) ? agg.accuracy : null,
        });
      });
      this.deps.log.info({ run: runId, round, loss: agg.loss, accuracy: agg.accuracy }, 'round evaluated');
    } else {
      const stats = store
        .listStatistics(runId)
        .filter(
          (s) =>
            live.state.received.includes(s.participant) &&
            s.task_id === this.plainTaskId(runId, round, phase, s.participant),
        );
      const dim = live.layout[0]?.shape[1] ?? 0;
      const sum = new Float64Array(dim);
      const sq = new Float64Array(dim);
      let count = 0;
      for (const s of stats) {
        const r = JSON.parse(s.stats_json) as { count: number; sum: number[]; sumSquares: number[] };
        count += r.count;
        for (let j = 0; j < dim; j++) {
          sum[j]! += r.sum[j]!;
          sq[j]! += r.sumSquares[j]!;
        }
      }
      const mean = Array.from(sum, (v) => v / count);
      const std = Array.from(sq, (v, j) => Math.max(1e-6, Math.sqrt(Math.max(0, v / count - mean[j]! ** 2))));
      const standardization: Standardization = { mean, std };
      this.step(runId, { type: 'phase-closed' }, () => {
        store.updateRun(runId, { standardization_json: JSON.stringify(standardization) });
        store.closeOpenTasks(runId, round, 'statistics', 'expired', at);
      });
      this.deps.log.info(
        { run: runId, contributors: stats.length, examples: count },
        'federated feature statistics merged',
      );
    }
    this.tick();
  }

  /**
   * Streams a stored blob through a safetensors reader checking it against `layout` (names, shapes,
   * dtype, finiteness); returns its SHA-256 when `hash` is set. Memory stays O(piece).
   */
  private streamBlob(
    ref: BlobRef,
    layout: readonly TensorLayout[],
    onSlice: (tensorIndex: number, offset: number, values: Float32Array) => void,
    hash: boolean,
  ): string | undefined {
    const h = hash ? createHash('sha256') : undefined;
    const reader = createSafetensorsReader({ expected: layout, onSlice });
    this.deps.blobs.readPieces(
      ref.chunks.map((c) => c.sha256),
      (piece) => {
        h?.update(piece);
        reader.push(piece);
      },
    );
    reader.end();
    return h?.digest('hex');
  }

  private storeWeights(weights: Weights, metadata: Record<string, string>): BlobRef {
    const bytes = encodeSafetensors(weights, metadata);
    const { ref, chunks } = createBlobRef(bytes);
    for (const c of chunks) this.deps.blobs.put(c);
    return ref;
  }

  /** Streams a stored model into fresh tensors, checking its digest, without a whole-blob copy. */
  private loadWeights(ref: BlobRef, layout: readonly TensorLayout[]): Tensor[] {
    const weights = layout.map((t) => ({
      name: t.name,
      shape: [...t.shape],
      data: new Float32Array(countParameters([t])),
    }));
    const digest = this.streamBlob(
      ref,
      layout,
      (i, offset, values) => weights[i]!.data.set(values, offset),
      true,
    );
    if (digest !== ref.sha256) throw new EntenteError('INTERNAL', 'a stored model does not match its digest');
    return weights;
  }

  private storeStrategyState(state: StrategyState): StoredStrategy {
    return {
      round: state.round,
      scalars: state.scalars,
      tensors: state.tensors.length > 0 ? this.storeWeights(state.tensors, { kind: 'strategy-state' }) : null,
    };
  }

  private loadStrategyState(json: string): StrategyState {
    const s = JSON.parse(json) as StoredStrategy;
    let tensors: Tensor[] = [];
    if (s.tensors) {
      const bytes = Buffer.concat(s.tensors.chunks.map((c) => this.deps.blobs.read(c.sha256)));
      tensors = decodeSafetensors(bytes).weights;
    }
    return { round: s.round, scalars: s.scalars, tensors };
  }

  private record(
    runId: string | null,
    round: number | null,
    kind: string,
    participant: string | null,
    code: string | null,
    message: string,
  ): void {
    // Messages quote what callers sent: bounded and with control characters escaped everywhere.
    const safe = safeCallerText(message, 1000);
    const now = this.deps.now();
    // The audit log is permanent: a member's refusals enter it in bounded number per window.
    if (kind.endsWith('-refused') && code !== null) {
      this.flushRefusalSummaries(now);
      const inFull = participant === null || this.refusals.note(participant, code, now);
      if (inFull) this.deps.audit.append('refused', { run: runId, round, participant, code, message: safe });
    }
    this.deps.store.recordEvent({
      at: now,
      kind,
      participant,
      run_id: runId,
      round,
      code,
      message: safe,
    });
    this.deps.log.warn({ run: runId, round, participant, code }, safe);
  }

  /**
   * Appends one `refusals-summarized` entry per member whose refusal window ended by `now` (every open
   * window when `all`, e.g. on shutdown) and had more refusals than were recorded in full.
   */
  flushRefusalSummaries(now = this.deps.now(), all = false): void {
    const due = this.refusals.due(now, all);
    if (due.length === 0) return;
    this.deps.store.transaction(() => {
      for (const s of due)
        this.deps.audit.append('refusals-summarized', {
          participant: s.participant,
          from: s.from,
          to: s.to,
          counts: { ...s.counts },
          recordedInFull: s.recordedInFull,
        });
    });
    // No checkpoint of its own: like every refusal, a summary is covered by the next checkpoint (a
    // flood of refusals must not wake every member's poll either).
  }

  /** Records a refusal that happened before a result reached the engine (transport, validation). */
  recordRefusal(participant: string | null, code: string, message: string): void {
    this.record(null, null, 'request-refused', participant, code, message);
  }

  /**
   * Appends the aggregate's hash and the new model version with its provenance (an in-toto Statement
   * in a DSSE envelope signed with the log key). Called inside the transaction that stores the model.
   */
  private logModelRelease(
    live: LiveRun,
    r: {
      round: number;
      attempt: number;
      modelIn: string;
      model: BlobRef;
      mean: readonly Tensor[];
      contributors: string[];
      examples: number;
    },
  ): number {
    const audit = this.deps.audit;
    const runId = live.config.id;
    const h = createHash('sha256');
    for (const t of r.mean) h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    audit.append('aggregate-computed', {
      run: runId,
      round: r.round,
      attempt: r.attempt,
      sha256: h.digest('hex'),
      contributors: r.contributors,
      examples: r.examples,
    });
    const statement = createProvenanceStatement({
      modelSha256: r.model.sha256,
      run: runId,
      round: r.round,
      policySha256: audit.policySha256,
      dataSchemaSha256: live.config.dataSchemaDigest ?? null,
      codeVersion: CODE_VERSION,
      hyperparameters: {
        model: live.config.model,
        strategy: live.config.strategy,
        train: live.config.train,
        secureAggregation: live.config.secureAggregation,
      },
      contributors: r.contributors,
      logIndex: audit.size,
    });
    const provenanceSha256 = audit.storeProvenance(statement);
    return audit.append('model-released', {
      run: runId,
      round: r.round,
      modelIn: r.modelIn,
      modelSha256: r.model.sha256,
      provenanceSha256,
    });
  }

  /**
   * Keeps and logs what a round cost a participant's records, as its own ledger reports it. With secure
   * aggregation, per attempt: a charge is kept for every attempt the site trained for (aborted or not);
   * an attempt that reused an earlier attempt's update (report.chargedAttempt names that one) is kept
   * as such, without a new privacy-spent entry: nothing new was spent.
   */
  private recordPrivacy(
    runId: string,
    round: number,
    participant: string,
    report: PrivacyReport,
    attempt?: number,
  ): void {
    // Idempotent: a result posted twice (a retry after a lost answer) is one charge.
    const key = attempt ?? 0;
    if (
      this.deps.store
        .listPrivacyCharges(runId)
        .some((c) => c.round === round && c.attempt === key && c.participant === participant)
    )
      return;
    this.deps.store.putPrivacyCharge({
      run_id: runId,
      round,
      attempt: attempt ?? 0,
      participant,
      report_json: JSON.stringify(report),
      received_at: this.deps.now(),
    });
    if (attempt !== undefined && report.chargedAttempt !== undefined && report.chargedAttempt !== attempt)
      return;
    this.deps.store.putPrivacyReport({
      run_id: runId,
      round,
      participant,
      report_json: JSON.stringify(report),
      received_at: this.deps.now(),
    });
    this.deps.audit.append('privacy-spent', {
      run: runId,
      round,
      ...(attempt === undefined ? {} : { attempt }),
      participant,
      ...report.event,
      epsilonRun: report.epsilonRun,
      epsilonTotal: report.epsilonTotal,
      delta: report.delta,
    });
  }

  private publishCheckpoint(): void {
    this.deps.audit.publishCheckpoint();
    this.deps.onCheckpoint();
  }

  describeRun(runId: string): unknown {
    const row = this.deps.store.getRun(runId);
    if (!row) throw new EntenteError('NOT_FOUND', `run "${runId}" does not exist`, { field: 'runId' });
    const state = JSON.parse(row.state_json) as RunState;
    const cohorts = this.deps.store.countTaskParticipants(runId);
    const cohortOf = (round: number, kind: string): number =>
      cohorts.find((c) => c.round === round && c.kind === kind)?.participants ?? 0;
    // The largest ε (for this run) any institution reported after each round, when DP is on.
    const epsilonByRound = new Map<number, number>();
    for (const r of this.deps.store.listPrivacyReports(runId)) {
      const e = (JSON.parse(r.report_json) as PrivacyReport).epsilonRun;
      if (e !== null && Number.isFinite(e))
        epsilonByRound.set(r.round, Math.max(e, epsilonByRound.get(r.round) ?? 0));
    }
    const rounds = this.deps.store.listRounds(runId).map((r) => ({
      round: r.round,
      /** Participants given a train (or secure-aggregation train) and an evaluate task this round. */
      trainCohort: cohortOf(r.round, 'train') || cohortOf(r.round, 'secagg-train'),
      evalCohort: cohortOf(r.round, 'evaluate'),
      evaluators: this.deps.store.listEvaluations(runId, r.round).length,
      epsilon: epsilonByRound.get(r.round) ?? null,
      contributors: r.contributors_json ? (JSON.parse(r.contributors_json) as string[]) : [],
      trainExamples: r.train_examples,
      trainLoss: r.train_loss,
      evalExamples: r.eval_examples,
      evalLoss: r.eval_loss,
      evalAccuracy: r.eval_accuracy,
      ...(() => {
        const metrics = this.deps.store.getRoundMetrics(runId, r.round);
        return metrics ? { evalMetrics: JSON.parse(metrics) as Record<string, number | null> } : {};
      })(),
      modelIn: r.model_in,
      modelOut: r.model_out,
      aggregateMs: r.aggregate_ms,
      startedAt: r.started_at,
      trainedAt: r.trained_at,
      evaluatedAt: r.evaluated_at,
    }));
    const charges = this.deps.store.listPrivacyCharges(runId);
    const secureAggregation = this.deps.store.listSecAggAttempts(runId).map((a) => ({
      round: a.round,
      /** train, or the secure sum of the statistics or evaluate phase. */
      phase: a.phase ?? 'train',
      attempt: a.attempt,
      cohort: JSON.parse(a.cohort_json) as string[],
      threshold: a.threshold,
      ringBits: a.ring_bits,
      sessionId: a.session_id,
      survivors: a.survivors_json ? (JSON.parse(a.survivors_json) as string[]) : null,
      dropped: a.dropped_json ? (JSON.parse(a.dropped_json) as string[]) : null,
      outcome: a.outcome,
      reason: a.reason,
      /** What each site reported this attempt cost it: charged (it trained) or reused (nothing new). */
      charges: charges
        .filter((c) => (a.phase ?? 'train') === 'train' && c.round === a.round && c.attempt === a.attempt)
        .map((c) => {
          const report = JSON.parse(c.report_json) as PrivacyReport;
          const charged = report.chargedAttempt === undefined || report.chargedAttempt === a.attempt;
          return {
            participant: c.participant,
            charged,
            ...(charged ? {} : { reusedFrom: report.chargedAttempt }),
            event: report.event,
            epsilonRun: report.epsilonRun,
          };
        }),
    }));
    const attemptsPerRound = [...new Set(secureAggregation.map((a) => a.round))].map((round) => {
      const of = secureAggregation.filter((a) => a.round === round);
      return {
        round,
        attempts: of.length,
        aborted: of.filter((a) => a.outcome === 'aborted').length,
        charged: of.reduce((n, a) => n + a.charges.filter((c) => c.charged).length, 0),
      };
    });
    const privacy: Record<
      string,
      { round: number; epsilonRun: number | null; epsilonTotal: number | null; delta: number }
    > = {};
    for (const r of this.deps.store.listPrivacyReports(runId)) {
      const report = JSON.parse(r.report_json) as PrivacyReport;
      privacy[r.participant] = {
        round: r.round,
        epsilonRun: report.epsilonRun,
        epsilonTotal: report.epsilonTotal,
        delta: report.delta,
      };
    }
    return {
      id: row.id,
      status: row.status,
      phase: state.phase,
      privacy,
      /** Client-level DP: the clip the next round applies (moves with adaptive clipping). */
      clientDpClipNorm: (() => {
        const cdp = (JSON.parse(row.config_json) as { clientDp?: { clipNorm: number } }).clientDp;
        return cdp ? ((JSON.parse(row.model_json) as StoredModel).clipNorm ?? cdp.clipNorm) : null;
      })(),
      attempt: state.attempt ?? 0,
      maxAttemptsPerRound:
        (JSON.parse(row.config_json) as { maxAttemptsPerRound?: number }).maxAttemptsPerRound ?? 3,
      /** Why the run failed (status 'failed'): code, round, attempt, message. */
      failure: state.failure ?? null,
      /** Who cancelled the run (status 'cancelled'). */
      cancellation: state.cancellation ?? null,
      /** Participants out of the open plain phase (refused or could not execute), with code and message. */
      refused: state.refused ?? [],
      failedAttempts: state.failures ?? 0,
      maxFailuresPerPhase:
        (JSON.parse(row.config_json) as { maxFailuresPerPhase?: number }).maxFailuresPerPhase ?? 3,
      attemptsPerRound,
      secureAggregation,
      round: state.round,
      totalRounds: state.totalRounds,
      cohort: state.cohort,
      received: state.received,
      config: JSON.parse(row.config_json) as unknown,
      model: (JSON.parse(row.model_json) as StoredModel).ref,
      standardization: row.standardization_json ? (JSON.parse(row.standardization_json) as unknown) : null,
      rounds,
      createdAt: row.created_at,
      finishedAt: row.finished_at,
    };
  }
}
