/**
 * Evaluation jobs: the execution of a pre-registered evaluation plan on the coordinator. A job may start
 * only for a plan whose approve-evaluation-plan proposal reached its quorum. It first commits, in the
 * audit log, to a random assignment of blinded labels (model-A, model-B, …) to the plan's models; then
 * evaluates each model, under its label, as one secure sum over every available site's evaluation rows
 * (secagg-round.ts runs the stages; no site's own figures are ever seen); logs each result bound to the
 * plan's digest and label; and only when every label has a result logs the unblinding (the openings of
 * the commitments) and the decision the plan's rule gives. A label whose secure sum aborts before
 * unmasking is tried again, at most MAX_ATTEMPTS times; a sum aborted during unmasking fails the job.
 * The job's state (including the salts, secret until the unblinding) is kept in the store, so a restarted
 * coordinator carries on with the next attempt.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { createSecureRng } from '../crypto/secure-rng.ts';
import {
  type EvaluationMetrics,
  createEvaluationLayout,
  finalizeEvaluation,
  parseEvaluationSpec,
} from '../evaluation/index.ts';
import {
  type BlindOpening,
  type EvaluationPlan,
  assignBlindLabels,
  buildEvaluationBlindedBody,
  buildEvaluationDecisionBody,
  buildEvaluationResultBody,
  buildEvaluationUnblindedBody,
  commitBlinding,
  decisionValuesOf,
  headlineFigures,
} from '../governance/index.ts';
import { isRegressionSpec, type ModelSpec } from '../models/index.ts';
import {
  type BlobRef,
  type SecAggSumTask,
  type Standardization,
  type TaskResult,
  SECURE_SUM_DEFAULTS,
  buildSecureSumContext,
  buildSecureSumWire,
  decodeSecureSum,
  declareEvaluationSum,
  evaluationJobId,
  planSecAggCohort,
} from '../protocol/index.ts';
import type { PinnedKeyResolver } from '../secagg/index.ts';
import type { BlobStore, SqliteStore } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';
import {
  type PerSiteFigures,
  type RevealState,
  buildRevealTask,
  checkRevealedSums,
  summarizePerSite,
} from './evaluation-reveal.ts';
import { SecAggRound } from './secagg-round.ts';

/** Secure-sum attempts per label before the job fails. */
export const MAX_ATTEMPTS = 3;

/** A model the coordinator can hand out: its blob, its spec and the standardization it was trained with. */
export interface KnownModel {
  readonly ref: BlobRef;
  readonly modelSpec: ModelSpec;
  readonly standardization?: Standardization | undefined;
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

interface JobState {
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

const metaKey = (plan: string): string => `evaluation-job:${plan}`;
const INDEX_KEY = 'evaluation-jobs';

export class EvaluationJobs {
  private readonly deps: EvaluationJobsDeps;
  private readonly jobs = new Map<string, JobState>();
  private readonly rounds = new Map<string, SecAggRound>();

  constructor(deps: EvaluationJobsDeps) {
    this.deps = deps;
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
    const task = this.deps.store.getTask(taskId);
    if (!task || task.participant !== participant)
      throw new EntenteError('NOT_FOUND', `task "${taskId}" is not assigned to ${participant}`, {
        field: 'taskId',
      });
    if (task.status === 'done')
      throw new EntenteError('DUPLICATE_RESULT', `a result for task "${taskId}" was already accepted`, {
        field: 'taskId',
      });
    const job = this.jobs.get(task.run_id);
    if (job && task.kind === 'evaluation-reveal') {
      this.acceptReveal(job, participant, taskId, result);
      return { accepted: true };
    }
    const round = job ? this.rounds.get(job.id) : undefined;
    if (!job || !round || task.status !== 'open' || task.round !== job.next + 1)
      throw new EntenteError('STALE_ROUND', `task "${taskId}" is for a stage that is no longer open`, {
        field: 'round',
      });
    if (result.kind === 'refusal') {
      this.deps.store.setTaskStatus(taskId, 'refused', this.deps.now());
      this.deps.log.warn({ job: job.id, participant, code: result.code }, 'evaluation task refused');
      await round.noteRefusal(participant, taskId, `${result.code}: ${result.message.slice(0, 300)}`);
      return { accepted: true };
    }
    if (result.runId !== task.run_id || result.round !== task.round)
      throw new EntenteError('STALE_ROUND', 'runId or round does not match the task', { field: 'round' });
    await round.accept(participant, result);
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

  /** Opens the secure sum of the next label over the available sites. */
  private open(job: JobState): void {
    const plan = this.deps.approvedPlan(job.plan);
    const opening = job.openings[job.next];
    if (!plan || !opening) {
      this.fail(job, 'the plan is no longer approved or has no such label');
      return;
    }
    const model = this.deps.knownModel(opening.sha256);
    if (!model) {
      this.fail(job, `model ${opening.label} is no longer held by the coordinator`);
      return;
    }
    const planned = planSecAggCohort({ selected: this.deps.available(), maxParticipants: 1000 });
    if (!planned) return; // fewer than 3 sites: wait
    const { cohort, threshold } = planned;
    const spec = parseEvaluationSpec(plan.evaluation);
    const declaration = declareEvaluationSum({
      layout: createEvaluationLayout(spec),
      maxRows: SECURE_SUM_DEFAULTS.maxRowsPerSite,
      cohortSize: cohort.length,
    });
    const round = job.next + 1;
    const attempt = job.attempt;
    const secagg = buildSecureSumWire({
      consortium: this.deps.consortium,
      attempt,
      cohort,
      threshold,
      declaration,
    });
    const task = (taskId: string, issuedAt: number): SecAggSumTask => ({
      taskId,
      runId: job.id,
      round,
      attempt,
      issuedAt,
      kind: 'secagg-sum',
      phase: 'evaluate',
      secureSum: { ...declaration, segments: [...declaration.segments] },
      model: model.ref,
      modelSpec: model.modelSpec,
      evaluation: spec,
      plan: { digest: job.plan, label: opening.label },
      ...(model.standardization ? { standardization: model.standardization } : {}),
      ...(plan.dataSchemaDigest ? { dataSchemaDigest: plan.dataSchemaDigest } : {}),
      secagg,
    });
    const context = buildSecureSumContext(task('context', 0));
    const sumRound: SecAggRound = new SecAggRound({
      deps: {
        store: this.deps.store,
        blobs: this.deps.blobs,
        log: this.deps.log,
        now: this.deps.now,
        notify: this.deps.notify,
        record: (kind, participant, code, message) =>
          this.deps.log.info({ job: job.id, kind, participant, code }, message),
        audit: this.deps.audit,
      },
      context,
      phase: 'evaluate',
      pinnedKeyOf: this.deps.pinnedKeyOf,
      firstStageTimeoutMs: this.deps.firstStageTimeoutMs ?? 120_000,
      stageTimeoutMs: this.deps.stageTimeoutMs ?? 30_000,
      firstTask: (participant) => task(sumRound.taskId('advertise-keys', participant), this.deps.now()),
      onDone: (outcome) => {
        if (this.rounds.get(job.id) !== sumRound) return;
        this.rounds.delete(job.id);
        if (!outcome.ok) {
          this.abortRound(job, outcome.reason);
          return;
        }
        let metrics: EvaluationMetrics;
        let values: Float64Array;
        try {
          values = decodeSecureSum(declaration, outcome.sum, outcome.survivors.length);
          metrics = finalizeEvaluation(createEvaluationLayout(spec), values);
        } catch (err) {
          this.abortRound(job, `the unmasked sum was refused: ${(err as Error).message}`);
          return;
        }
        this.record(job, plan, opening, metrics, outcome.survivors, values, {
          model: model.ref,
          modelSpec: model.modelSpec,
          evaluation: spec,
          ...(model.standardization ? { standardization: model.standardization } : {}),
          ...(plan.dataSchemaDigest ? { dataSchemaDigest: plan.dataSchemaDigest } : {}),
        });
      },
    });
    this.rounds.set(job.id, sumRound);
    this.deps.store.insertSecAggAttempt({
      run_id: job.id,
      round,
      attempt,
      phase: 'evaluate',
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
    this.deps.log.info(
      { job: job.id, label: opening.label, attempt, cohort },
      'secure evaluation of a blinded model opened',
    );
    sumRound.start();
  }

  /** Logs one label's result; after the last, the unblinding and the decision. */
  private record(
    job: JobState,
    plan: EvaluationPlan,
    opening: BlindOpening,
    metrics: EvaluationMetrics,
    survivors: string[],
    values: Float64Array,
    revealBase: Parameters<typeof buildRevealTask>[0]['base'],
  ): void {
    const figures = headlineFigures(plan, metrics as unknown as Parameters<typeof headlineFigures>[1]);
    const reveal = plan.perSite === true && this.deps.perSiteAllowed?.() === true;
    const now = this.deps.now();
    this.deps.store.transaction(() => {
      this.deps.store.finishSecAggAttempt(
        { run_id: job.id, round: job.next + 1, attempt: job.attempt, phase: 'evaluate' },
        {
          session_id: null,
          survivors_json: JSON.stringify(survivors),
          dropped_json: null,
          outcome: 'completed',
          reason: null,
          finished_at: now,
        },
      );
      const logIndex = this.deps.audit.append(
        'evaluation-result',
        buildEvaluationResultBody({
          planDigest: job.plan,
          label: opening.label,
          metrics: figures.metrics,
          sliceMetrics: figures.sliceMetrics,
          metricsSha256: sha256Hex(Buffer.from(canonicalizeJson(metrics as unknown), 'utf8')),
          rows: metrics.overall.rows,
          protocol: 'secagg',
        }),
      );
      job.results.push({
        label: opening.label,
        rows: metrics.overall.rows,
        contributors: survivors,
        metrics,
        logIndex,
        ...(reveal ? { values: Array.from(values) } : {}),
      });
      if (reveal) {
        // The plan, the policy and (each answering) site consent: ask the survivors for their own sums.
        job.reveal = {
          round: job.next + 1,
          label: opening.label,
          asked: [...survivors],
          deadlineAt: now + (this.deps.stageTimeoutMs ?? 30_000),
          revealed: {},
          refused: [],
        };
        for (const p of survivors) {
          const task = buildRevealTask({
            jobId: job.id,
            round: job.next + 1,
            participant: p,
            planDigest: job.plan,
            label: opening.label,
            base: revealBase,
            issuedAt: now,
          });
          this.deps.store.insertTask({
            id: task.taskId,
            run_id: job.id,
            round: task.round,
            kind: task.kind,
            participant: p,
            status: 'open',
            task_json: JSON.stringify(task),
            created_at: now,
            completed_at: null,
          });
        }
      } else this.advance(job, plan, now);
      this.save(job);
    });
    if (reveal) for (const p of survivors) this.deps.notify(p);
    this.deps.publishCheckpoint();
    this.deps.log.info(
      { job: job.id, label: opening.label, rows: metrics.overall.rows, status: job.status },
      'blinded model evaluated under secure aggregation',
    );
    if (job.status === 'running') this.tick();
  }

  /** The next label; after the last, the unblinding and the decision (in the caller's transaction). */
  private advance(job: JobState, plan: EvaluationPlan, now: number): void {
    job.next += 1;
    job.attempt = 0;
    if (job.next === job.openings.length) {
      job.unblindedAt = this.deps.audit.append(
        'evaluation-unblinded',
        buildEvaluationUnblindedBody(job.plan, job.openings),
      );
      const logged = new Map(
        job.results.map((r) => [
          r.label,
          headlineFigures(plan, r.metrics as unknown as Parameters<typeof headlineFigures>[1]),
        ]),
      );
      const body = buildEvaluationDecisionBody(job.plan, plan, decisionValuesOf(job.openings, logged));
      const decisionIndex = this.deps.audit.append('evaluation-decision', body);
      job.decision = { outcome: body.outcome, clauses: body.clauses, logIndex: decisionIndex };
      job.status = 'completed';
      job.finishedAt = now;
    }
  }

  /** One site's answer to a reveal task: its sums (checked and logged as a disclosure) or its refusal. */
  private acceptReveal(job: JobState, participant: string, taskId: string, result: TaskResult): void {
    const reveal = job.reveal;
    const task = this.deps.store.getTask(taskId)!;
    if (!reveal || task.round !== reveal.round || task.status !== 'open')
      throw new EntenteError('STALE_ROUND', `task "${taskId}" is for a reveal that is no longer open`, {
        field: 'round',
      });
    const now = this.deps.now();
    if (result.kind === 'refusal') {
      this.deps.store.transaction(() => {
        this.deps.store.setTaskStatus(taskId, 'refused', now);
        reveal.refused.push(participant);
        this.save(job);
      });
    } else {
      if (result.kind !== 'evaluation-reveal' || result.runId !== job.id || result.round !== reveal.round)
        throw new EntenteError('INVALID_MESSAGE', "kind: the task asks for this site's evaluation sums", {
          field: 'kind',
        });
      const plan = this.deps.approvedPlan(job.plan)!;
      const layout = createEvaluationLayout(parseEvaluationSpec(plan.evaluation));
      const checked = checkRevealedSums(layout, result.sums, SECURE_SUM_DEFAULTS.maxRowsPerSite);
      this.deps.store.transaction(() => {
        this.deps.audit.append('evaluation-disclosure', {
          plan: job.plan,
          label: reveal.label,
          site: participant,
          rows: checked.rows,
          sumsSha256: checked.sumsSha256,
        });
        this.deps.store.setTaskStatus(taskId, 'done', now);
        reveal.revealed[participant] = [...result.sums];
        this.save(job);
      });
      this.deps.log.warn(
        { job: job.id, label: reveal.label, site: participant },
        'a site revealed its own figures (logged as a disclosure)',
      );
    }
    this.finishRevealIfDone(job, now);
  }

  /** Ends the reveal when every survivor answered or refused, or at its deadline; then the next label. */
  private finishRevealIfDone(job: JobState, now: number): void {
    const reveal = job.reveal;
    if (!reveal) return;
    const answered = reveal.refused.length + Object.keys(reveal.revealed).length;
    if (answered < reveal.asked.length && now < reveal.deadlineAt) return;
    const plan = this.deps.approvedPlan(job.plan);
    if (!plan) {
      this.fail(job, 'the plan is no longer approved');
      return;
    }
    const layout = createEvaluationLayout(parseEvaluationSpec(plan.evaluation));
    const result = job.results.find((r) => r.label === reveal.label)!;
    this.deps.store.transaction(() => {
      result.perSite = summarizePerSite(plan, layout, result.values ?? [], reveal);
      this.deps.store.closeOpenTasks(job.id, reveal.round, 'evaluation-reveal', 'expired', now);
      job.reveal = undefined;
      this.advance(job, plan, now);
      this.save(job);
    });
    this.deps.publishCheckpoint();
    if (job.status === 'running') this.tick();
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
    for (const kind of [
      'secagg-sum',
      'secagg-share-keys',
      'secagg-masked-input',
      'secagg-consistency-check',
      'secagg-unmasking',
    ])
      this.deps.store.closeOpenTasks(job.id, job.next + 1, kind, 'expired', now);
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
    for (const kind of [
      'secagg-sum',
      'secagg-share-keys',
      'secagg-masked-input',
      'secagg-consistency-check',
      'secagg-unmasking',
    ])
      this.deps.store.closeOpenTasks(job.id, job.next + 1, kind, 'expired', now);
    this.save(job);
    this.deps.log.error({ job: job.id, reason }, 'evaluation job failed');
  }

  /** Stops all rounds (shutdown). */
  close(): void {
    for (const r of this.rounds.values()) r.expire();
    this.rounds.clear();
  }
}
