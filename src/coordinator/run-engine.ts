/**
 * Executes the run state machine (protocol/run-machine.ts) against the store: opens phases by writing
 * tasks, accepts results after validating them in full, aggregates as updates arrive (a streaming
 * example-weighted sum, so memory stays near two models whatever the number of participants), and
 * records every round. Every state change is persisted in the same SQLite transaction as the writes it
 * depends on, so a coordinator killed at any point restarts and continues without losing a completed
 * round or counting an update twice.
 *
 * This class is the engine's public face and keeps its events and refusals; the work is done by
 * modules given a shared context (run-engine-context.ts): run-lifecycle.ts (create, resume),
 * run-transitions.ts (step, effects), phase-opening.ts, secagg-attempt.ts, secure-sum-attempt.ts,
 * result-acceptance.ts, phase-closing.ts, model-storage.ts, privacy-records.ts, run-description.ts.
 */
import { safeCallerText } from '../core/caller-text.ts';
import { EntenteError } from '../core/errors.ts';
import type { BlobRef, RunConfig, RunEvent, TaskResult } from '../protocol/index.ts';
import { RefusalSummarizer } from './refusal-summary.ts';
import { acceptResult } from './result-acceptance.ts';
import { describeRun } from './run-description.ts';
import type { LiveRun, RunEngineContext, RunEngineDeps, StoredModel } from './run-engine-context.ts';
import { checkAgainstSites, createRun, resumeRuns } from './run-lifecycle.ts';
import { step } from './run-transitions.ts';
import { failSecAgg } from './secagg-attempt.ts';

export type { RunEngineDeps } from './run-engine-context.ts';

export class RunEngine {
  private readonly runs = new Map<string, LiveRun>();
  private readonly deps: RunEngineDeps;
  private readonly refusals: RefusalSummarizer;
  private readonly ctx: RunEngineContext;

  constructor(deps: RunEngineDeps) {
    this.deps = deps;
    this.refusals = new RefusalSummarizer({
      windowMs: deps.refusalWindowMs ?? 60_000,
      fullPerWindow: deps.refusalsInFullPerWindow ?? 3,
    });
    this.ctx = {
      deps,
      runs: this.runs,
      step: (runId: string, event: RunEvent, alsoInTransaction?: () => void, afterCommit?: () => void) =>
        step(this.ctx, runId, event, alsoInTransaction, afterCommit),
      record: (runId, round, kind, participant, code, message) =>
        this.record(runId, round, kind, participant, code, message),
      publishCheckpoint: () => this.publishCheckpoint(),
      tick: () => this.tick(),
    };
    resumeRuns(this.ctx);
  }

  /** Creates a run: initial model from the run seed, strategy state, first state; all in one transaction. */
  createRun(input: unknown, approval?: { readonly proposal: string }): { runId: string } {
    return createRun(this.ctx, input, approval);
  }

  /**
   * Refuses (INVALID_CONFIG naming the field and the site) a run whose model does not fit the records a
   * registered site declared: no round of it could ever be executed there.
   */
  checkAgainstSites(config: RunConfig): void {
    checkAgainstSites(this.ctx, config);
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
    this.ctx.step(runId, { type: 'cancel', by: by.by, ...(by.proposal ? { proposal: by.proposal } : {}) });
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
      this.ctx.step(runId, { type: 'tick', now: this.deps.now(), available });
      live.secagg?.tick(this.deps.now()).catch((err: unknown) => failSecAgg(this.ctx, runId, err));
    }
  }

  /**
   * Validates and accepts one result. Throws an EntenteError naming the problem (and records it) when
   * the result is refused; nothing is written for a refused result.
   */
  acceptResult(participant: string, taskId: string, result: TaskResult): Promise<{ accepted: true }> {
    return acceptResult(this.ctx, participant, taskId, result);
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

  private publishCheckpoint(): void {
    this.deps.audit.publishCheckpoint();
    this.deps.onCheckpoint();
  }

  describeRun(runId: string): unknown {
    return describeRun(this.ctx, runId);
  }
}
