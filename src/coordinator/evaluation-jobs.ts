/**
 * Evaluation jobs: the execution of a pre-registered evaluation plan on the coordinator. A job may start
 * only for a plan whose approve-evaluation-plan proposal reached its quorum. It first commits, in the
 * audit log, to a random assignment of blinded labels (model-A, model-B, …) to the plan's models; then
 * evaluates each model, under its label, as one secure sum over every available site's evaluation rows
 * (secagg-round.ts runs the stages; a site's own figures are seen only where the plan, the policy and the
 * site consent: evaluation-reveal.ts); logs each result bound to the
 * plan's digest and label; and only when every label has a result logs the unblinding (the openings of
 * the commitments) and the decision the plan's rule gives. A label whose secure sum aborts before
 * unmasking is tried again, at most MAX_ATTEMPTS times; a sum aborted during unmasking fails the job.
 * The job's state (including the salts, secret until the unblinding) is kept in the store, so a restarted
 * coordinator carries on with the next attempt.
 */
import { randomBytes } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { createSecureRng } from '../crypto/secure-rng.ts';
import { assignBlindLabels, buildEvaluationBlindedBody, commitBlinding } from '../governance/index.ts';
import { isRegressionSpec } from '../models/index.ts';
import { type TaskResult, evaluationJobId } from '../protocol/index.ts';
import type { SecAggRound } from './secagg-round.ts';
import { closeSumJobTasks, deliverJobResult, findJobTask } from './sum-job-results.ts';

/** Secure-sum attempts per label before the job fails. */
import {
  type EvaluationJobView,
  type EvaluationJobsDeps,
  INDEX_KEY,
  type JobState,
  type JobsContext,
  MAX_ATTEMPTS,
  metaKey,
} from './evaluation-job-state.ts';
import { logSumPrivacy } from './privacy-records.ts';
import { acceptRevealAnswer, finishRevealIfDone, openJobRound } from './evaluation-job-steps.ts';
export {
  type EvaluationJobView,
  type EvaluationJobsDeps,
  type KnownModel,
  MAX_ATTEMPTS,
} from './evaluation-job-state.ts';

export class EvaluationJobs {
  private readonly deps: EvaluationJobsDeps;
  private readonly jobs = new Map<string, JobState>();
  private readonly rounds = new Map<string, SecAggRound>();
  /** What the round, result and reveal steps (evaluation-job-steps.ts) use of this object. */
  private readonly ctx: JobsContext = {
    deps: undefined as unknown as EvaluationJobsDeps,
    rounds: this.rounds,
    save: (job) => this.save(job),
    fail: (job, reason) => this.fail(job, reason),
    abortRound: (job, reason) => this.abortRound(job, reason),
    tick: () => this.tick(),
  };

  constructor(deps: EvaluationJobsDeps) {
    this.deps = deps;
    (this.ctx as { deps: EvaluationJobsDeps }).deps = deps;
    const index = JSON.parse(deps.store.getMeta(INDEX_KEY) ?? '[]') as string[];
    for (const plan of index) {
      const raw = deps.store.getMeta(metaKey(plan));
      if (!raw) continue;
      const job = JSON.parse(raw) as JobState;
      this.jobs.set(job.id, job);
      // An attempt that was under way lived in memory only: it is over; the next one starts on tick.
      if (job.status === 'running' && this.unmaskingBegan(job))
        this.fail(job, 'the coordinator restarted while a label was being unmasked');
      else if (job.status === 'running' && this.attemptStarted(job))
        this.retry(job, 'the coordinator restarted during the secure sum');
    }
  }

  /** Whether `runId` (a task's) belongs to an evaluation job. */
  owns(runId: string): boolean {
    return this.jobs.has(runId);
  }

  /** Starts the job of approved plan `plan` (its digest). Throws NOT_FOUND, CONFLICT or INVALID_CONFIG. */
  start(plan: string, by: string): EvaluationJobView {
    if (!/^[0-9a-f]{64}$/.test(plan))
      throw new EntenteError('INVALID_ARGUMENT', 'plan: must be a plan digest (64 hex)', { field: 'plan' });
    const approved = this.deps.approvedPlan(plan);
    if (!approved)
      throw new EntenteError('NOT_FOUND', `plan: ${plan.slice(0, 12)}… is not an approved evaluation plan`, {
        field: 'plan',
      });
    const id = evaluationJobId(plan);
    const existing = this.jobs.get(id);
    if (existing && existing.status !== 'failed')
      throw new EntenteError('CONFLICT', `plan: its evaluation is already ${existing.status}`, {
        field: 'plan',
      });
    if (existing?.status === 'failed' && existing.results.length > 0)
      throw new EntenteError(
        'CONFLICT',
        'plan: its evaluation failed after results were logged; a plan is evaluated once (pre-register a new plan)',
        { field: 'plan' },
      );
    for (const [i, m] of approved.models.entries()) {
      const known = this.deps.knownModel(m.sha256);
      if (!known)
        throw new EntenteError('NOT_FOUND', `plan.models.${i}.sha256: not a model this coordinator holds`, {
          field: `plan.models.${i}.sha256`,
        });
      if (isRegressionSpec(known.modelSpec))
        throw new EntenteError(
          'INVALID_CONFIG',
          `plan.models.${i}: a regression model has no classification metrics`,
          {
            field: `plan.models.${i}`,
          },
        );
    }
    // The blinding: a uniformly random assignment of labels, salts from node:crypto.
    const { commitments, openings } = commitBlinding({
      planDigest: plan,
      assignments: assignBlindLabels(approved, createSecureRng()),
      salts: approved.models.map(() => new Uint8Array(randomBytes(32))),
    });
    const job: JobState = {
      plan,
      id,
      startedBy: by,
      startedAt: this.deps.now(),
      status: 'running',
      openings: openings.slice().sort((a, b) => a.label.localeCompare(b.label)),
      next: 0,
      attempt: 0,
      results: [],
    };
    this.deps.store.transaction(() => {
      this.deps.audit.append('evaluation-blinded', buildEvaluationBlindedBody(plan, commitments));
      this.save(job);
    });
    this.jobs.set(id, job);
    this.deps.publishCheckpoint();
    this.deps.log.info(
      { plan, job: id, models: openings.length },
      'evaluation job started (labels committed)',
    );
    this.tick();
    return this.describe(plan)!;
  }

  /** Opens the next secure sum when none is under way; enforces stage deadlines. */
  tick(): void {
    for (const job of this.jobs.values()) {
      if (job.status !== 'running') continue;
      const round = this.rounds.get(job.id);
      if (round) {
        round
          .tick(this.deps.now())
          .catch((err: unknown) => this.abortRound(job, `internal error: ${(err as Error).message}`));
        continue;
      }
      if (job.reveal) {
        this.finishRevealIfDone(job, this.deps.now());
        continue;
      }
      if (this.deps.isPaused?.()) continue;
      this.open(job);
    }
  }

  /** A result (or refusal) of one of a job's tasks, already matched to its open task row. */
  async acceptResult(participant: string, taskId: string, result: TaskResult): Promise<{ accepted: true }> {
    const task = findJobTask(this.deps.store, participant, taskId);
    const job = this.jobs.get(task.run_id);
    if (job && task.kind === 'evaluation-reveal') {
      this.acceptReveal(job, participant, taskId, result);
      return { accepted: true };
    }
    await deliverJobResult({
      store: this.deps.store,
      log: this.deps.log,
      now: this.deps.now(),
      task,
      round: job ? this.rounds.get(job.id) : undefined,
      open: job !== undefined && task.round === job.next + 1,
      participant,
      result,
      what: 'evaluation',
    });
    if (!job) return { accepted: true };
    if (result.kind === 'secagg-sum' && result.privacy)
      logSumPrivacy(this.deps.audit, {
        run: job.id,
        round: task.round,
        attempt: result.attempt,
        phase: 'evaluate',
        participant,
        report: result.privacy,
      });
    return { accepted: true };
  }

  describe(plan: string): EvaluationJobView | undefined {
    const job = this.jobs.get(evaluationJobId(plan));
    if (!job || job.plan !== plan) return undefined;
    const approved = this.deps.approvedPlan(plan);
    const unblinded = job.unblindedAt !== undefined;
    return {
      plan,
      id: job.id,
      title: approved?.title ?? '',
      status: job.status,
      startedAt: job.startedAt,
      labels: job.openings.map((o) => o.label),
      results: job.results,
      unblinding: unblinded ? job.openings.map((o) => ({ ...o })) : null,
      unblindedLogIndex: job.unblindedAt ?? null,
      decision: job.decision ?? null,
      failure: job.failure ?? null,
    };
  }

  list(): EvaluationJobView[] {
    return [...this.jobs.values()].map((j) => this.describe(j.plan)!);
  }

  private save(job: JobState): void {
    const index = new Set(JSON.parse(this.deps.store.getMeta(INDEX_KEY) ?? '[]') as string[]);
    if (!index.has(job.plan)) {
      index.add(job.plan);
      this.deps.store.setMeta(INDEX_KEY, JSON.stringify([...index]));
    }
    this.deps.store.setMeta(metaKey(job.plan), JSON.stringify(job));
  }

  private attemptRow(job: JobState) {
    return this.deps.store
      .listSecAggAttempts(job.id)
      .find((a) => a.round === job.next + 1 && a.attempt === job.attempt);
  }

  private attemptStarted(job: JobState): boolean {
    return this.attemptRow(job) !== undefined;
  }

  private unmaskingBegan(job: JobState): boolean {
    return this.attemptRow(job)?.outcome === 'unmasking';
  }

  private open(job: JobState): void {
    openJobRound(this.ctx, job);
  }

  private acceptReveal(job: JobState, participant: string, taskId: string, result: TaskResult): void {
    acceptRevealAnswer(this.ctx, job, participant, taskId, result);
  }

  private finishRevealIfDone(job: JobState, now: number): void {
    finishRevealIfDone(this.ctx, job, now);
  }

  private abortRound(job: JobState, reason: string): void {
    const round = this.rounds.get(job.id);
    round?.expire();
    this.rounds.delete(job.id);
    if (this.unmaskingBegan(job)) {
      this.fail(job, `aborted during unmasking: ${reason}`);
      return;
    }
    this.retry(job, reason);
  }

  private retry(job: JobState, reason: string): void {
    const now = this.deps.now();
    this.deps.store.finishSecAggAttempt(
      { run_id: job.id, round: job.next + 1, attempt: job.attempt, phase: 'evaluate' },
      {
        session_id: null,
        survivors_json: null,
        dropped_json: null,
        outcome: 'aborted',
        reason,
        finished_at: now,
      },
    );
    closeSumJobTasks(this.deps.store, job.id, job.next + 1, now);
    if (job.attempt + 1 >= MAX_ATTEMPTS) {
      this.fail(job, `${MAX_ATTEMPTS} attempts aborted; last: ${reason}`);
      return;
    }
    job.attempt += 1;
    this.save(job);
    this.deps.log.warn(
      { job: job.id, attempt: job.attempt, reason },
      'secure evaluation attempt aborted; trying again',
    );
  }

  private fail(job: JobState, reason: string): void {
    const now = this.deps.now();
    job.status = 'failed';
    job.failure = reason.slice(0, 1000);
    job.finishedAt = now;
    closeSumJobTasks(this.deps.store, job.id, job.next + 1, now);
    this.save(job);
    this.deps.log.error({ job: job.id, reason }, 'evaluation job failed');
  }

  /** Stops all rounds (shutdown). */
  close(): void {
    for (const r of this.rounds.values()) r.expire();
    this.rounds.clear();
  }
}
