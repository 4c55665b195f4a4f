/**
 * Staged rollouts executed on the coordinator: a rollout plan approved by quorum (approve-rollout) is
 * started by an operator and then runs by itself, each step an audit-log entry that `audit verify`
 * re-checks against the approved plan (governance/rollout-trail.ts):
 *
 * 1. a stage starts at its sites (`rollout-stage-started`): listed sites as the plan says; canary sites
 *    drawn (drawCanarySites) from a checkpoint published after the approval and, when the log has
 *    witnesses, cosigned by at least one before the draw is made;
 * 2. once its minimum duration has passed, the stage is measured once: a secure sum of paired outcomes
 *    over its sites (rollout-measure.ts);
 * 3. the gate is decided on those figures (decideRolloutGate) and logged (`rollout-gate`): pass advances
 *    to the next stage (`rollout-advanced`) or, after the last, completes the rollout
 *    (`rollout-completed`) and moves the plan's alias to the candidate (`alias-moved`); fail rolls back
 *    (`rollout-rolled-back`, cause gate); undetermined (too few rows, or a bound evaluation plan without
 *    a decision yet) waits: for the evaluation plan's decision, or for a rollback quorum.
 *
 * A site's circuit breaker (its own threshold on its own rows, enforced on site whatever the coordinator
 * does) rolls the rollout back when the site's signed statement arrives; a rollback proposal approved by
 * quorum does too. Privacy already spent is never refunded. Sites serve what the log says (the
 * candidate only at canary and full stage sites while the rollout runs, everywhere once it completed).
 */
import { EntenteError } from '../core/errors.ts';
import { verifyEd25519 } from '../crypto/signatures.ts';
import { pairedGateFigures } from '../evaluation/index.ts';
import {
  type RolloutFigures,
  type RolloutStageName,
  drawCanarySites,
  encodeCircuitBreakerStatement,
  rolloutAlias,
} from '../governance/index.ts';
import { type TaskResult, rolloutJobId } from '../protocol/index.ts';
import {
  DEFAULT_FULL_COHORT_WAIT_MS,
  MAX_ROLLOUT_ATTEMPTS,
  ROLLOUT_INDEX_KEY,
  type RolloutJobState,
  type RolloutJobView,
  type RolloutJobsDeps,
  rolloutMetaKey,
} from './rollout-job-state.ts';
import { type MeasurementOutcome, openMeasurement, stageRound } from './rollout-measure.ts';
import { logGateDecision } from './rollout-outcomes.ts';
import type { SecAggRound } from './secagg-round.ts';
import { closeSumJobTasks, deliverJobResult, findJobTask } from './sum-job-results.ts';

export type { RolloutJobView, RolloutJobsDeps } from './rollout-job-state.ts';

const hexDigest = (field: string, v: unknown): string => {
  if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v))
    throw new EntenteError('INVALID_ARGUMENT', `${field}: must be a rollout plan digest (64 hex)`, { field });
  return v;
};

export class RolloutJobs {
  private readonly deps: RolloutJobsDeps;
  private readonly jobs = new Map<string, RolloutJobState>();
  private readonly rounds = new Map<string, SecAggRound>();

  constructor(deps: RolloutJobsDeps) {
    this.deps = deps;
    for (const digest of JSON.parse(deps.store.getMeta(ROLLOUT_INDEX_KEY) ?? '[]') as string[]) {
      const raw = deps.store.getMeta(rolloutMetaKey(digest));
      if (!raw) continue;
      const job = JSON.parse(raw) as RolloutJobState;
      this.jobs.set(job.rollout, job);
      // A measurement under way lived in memory only: it is over (retried unless unmasking began).
      const row = this.attemptRow(job);
      if (job.status === 'running' && row?.outcome === 'unmasking')
        this.fail(job, 'the coordinator restarted while a stage measurement was being unmasked');
      else if (job.status === 'running' && row?.outcome === 'running')
        this.retry(job, 'the coordinator restarted during the stage measurement');
    }
  }

  /** Whether `runId` (a task's) belongs to a rollout. */
  owns(runId: string): boolean {
    for (const job of this.jobs.values()) if (job.id === runId) return true;
    return false;
  }

  /** Starts the approved rollout `digest`. Throws INVALID_ARGUMENT, NOT_FOUND, CONFLICT or INVALID_CONFIG. */
  start(digest: unknown, by: string): RolloutJobView {
    const rollout = hexDigest('rollout', digest);
    const approved = this.deps.approvedRollout(rollout);
    if (!approved)
      throw new EntenteError(
        'NOT_FOUND',
        `rollout: ${rollout.slice(0, 12)}… is not an approved rollout plan`,
        {
          field: 'rollout',
        },
      );
    const existing = this.jobs.get(rollout);
    if (existing)
      throw new EntenteError('CONFLICT', `rollout: already ${existing.status}; a plan is rolled out once`, {
        field: 'rollout',
      });
    const { plan } = approved;
    if (plan.production === null)
      throw new EntenteError(
        'INVALID_CONFIG',
        'rollout.production: a staged rollout measures the candidate against a production version; point the alias at a first version with a move-alias proposal',
        { field: 'rollout.production' },
      );
    for (const [field, sha] of [
      ['rollout.candidate', plan.candidate],
      ['rollout.production', plan.production],
    ] as const)
      if (!this.deps.knownModel(sha))
        throw new EntenteError('NOT_FOUND', `${field}: not a model this coordinator holds`, { field });
    const alias = rolloutAlias(plan);
    const current = this.deps.store.getMeta(`alias:${alias}`) ?? null;
    if (current !== plan.production)
      throw new EntenteError(
        'CONFLICT',
        `rollout.production: alias "${alias}" points at ${current ?? 'nothing'}, not at the plan's production version`,
        { field: 'rollout.production' },
      );
    plan.stages.forEach((s, i) => {
      const n = Array.isArray(s.sites) ? s.sites.length : (s.sites as { draw: number }).draw;
      if (n < 3)
        throw new EntenteError(
          'INVALID_CONFIG',
          `rollout.stages.${i}.sites: a stage is measured by a secure sum, which needs at least 3 sites`,
          { field: `rollout.stages.${i}.sites` },
        );
    });
    const job: RolloutJobState = {
      rollout,
      id: rolloutJobId(rollout),
      proposal: approved.proposal,
      startedBy: by,
      startedAt: this.deps.now(),
      status: 'running',
      stage: 0,
      attempt: 0,
      gates: [],
    };
    this.jobs.set(rollout, job);
    this.beginStage(job);
    this.deps.log.info({ rollout: job.id, by }, 'rollout started');
    this.tick();
    return this.describe(rollout)!;
  }

  /** Draws, measures and re-decides what is due; ticks open measurements. */
  tick(): void {
    const now = this.deps.now();
    for (const job of this.jobs.values()) {
      const round = this.rounds.get(job.rollout);
      if (round) {
        round
          .tick(now)
          .catch((err: unknown) => this.aborted(job, `internal error: ${(err as Error).message}`));
        continue;
      }
      if (job.status === 'undetermined') this.redecide(job);
      if (job.status !== 'running') continue;
      if (job.drawFrom !== undefined) {
        this.tryDraw(job);
        continue;
      }
      if (!job.started || this.deps.isPaused?.()) continue;
      this.maybeMeasure(job, now);
    }
  }

  /** A result (or refusal) of one of a rollout's tasks. */
  async acceptResult(participant: string, taskId: string, result: TaskResult): Promise<{ accepted: true }> {
    const task = findJobTask(this.deps.store, participant, taskId);
    const job = [...this.jobs.values()].find((j) => j.id === task.run_id);
    await deliverJobResult({
      store: this.deps.store,
      log: this.deps.log,
      now: this.deps.now(),
      task,
      round: job ? this.rounds.get(job.rollout) : undefined,
      open: job !== undefined && task.round === stageRound(job.stage),
      participant,
      result,
      what: 'rollout',
    });
    return { accepted: true };
  }

  /**
   * A stage site's circuit breaker tripped: its Ed25519 signature (identity key pinned in the log) over
   * encodeCircuitBreakerStatement(rollout, stage, site) rolls the rollout back. A statement for a
   * rollout already over changes nothing (`rolledBack` false). Throws NOT_FOUND, CONFLICT (not a site of
   * the running stage) or PROTOCOL_VIOLATION (the signature does not verify).
   */
  circuitBreaker(site: string, digest: unknown, body: unknown): { rolledBack: boolean } {
    const rollout = hexDigest('rollout', digest);
    const job = this.jobs.get(rollout);
    if (!job)
      throw new EntenteError('NOT_FOUND', 'rollout: not a rollout this coordinator runs', {
        field: 'rollout',
      });
    const b = (body ?? {}) as { stage?: unknown; signature?: unknown };
    if (typeof b.stage !== 'string' || typeof b.signature !== 'string' || b.signature.length > 200)
      throw new EntenteError('INVALID_MESSAGE', 'stage, signature: a stage name and a base64 signature', {
        field: 'signature',
      });
    if (job.status !== 'running' && job.status !== 'undetermined') return { rolledBack: false };
    const plan = this.deps.approvedRollout(rollout)!.plan;
    const stage = plan.stages[job.stage]!.name;
    if (b.stage !== stage || !job.started?.sites.includes(site))
      throw new EntenteError('CONFLICT', `stage: ${site} is not a site of the running stage (${stage})`, {
        field: 'stage',
      });
    const key = this.deps.pinnedKeyOf(site);
    const signature = new Uint8Array(Buffer.from(b.signature, 'base64'));
    if (!key || !verifyEd25519(key, encodeCircuitBreakerStatement(rollout, stage, site), signature))
      throw new EntenteError('PROTOCOL_VIOLATION', `signature: not ${site}'s circuit-breaker statement`, {
        field: 'signature',
      });
    this.rollBack(job, stage, { cause: 'circuit-breaker', by: site, signature: b.signature });
    return { rolledBack: true };
  }

  /** After a rollback proposal reached its quorum. */
  rollBackByQuorum(digest: string, proposal: string): void {
    let job = this.jobs.get(digest);
    const approved = this.deps.approvedRollout(digest);
    if (!approved) return;
    if (!job) {
      job = {
        rollout: digest,
        id: rolloutJobId(digest),
        proposal: approved.proposal,
        startedBy: 'quorum',
        startedAt: this.deps.now(),
        status: 'running',
        stage: 0,
        attempt: 0,
        gates: [],
      };
      this.jobs.set(digest, job);
    }
    if (job.status !== 'running' && job.status !== 'undetermined') {
      this.deps.log.warn(
        { rollout: job.id, status: job.status },
        'rollback approved for a rollout already over',
      );
      return;
    }
    this.rollBack(job, approved.plan.stages[job.stage]!.name, { cause: 'quorum', proposal });
  }

  describe(digest: string): RolloutJobView | undefined {
    const job = this.jobs.get(digest);
    const approved = this.deps.approvedRollout(digest);
    if (!job || !approved) return undefined;
    const { plan } = approved;
    const { started, drawFrom: _drawFrom, ...rest } = job;
    return {
      ...rest,
      title: plan.title,
      candidate: plan.candidate,
      production: plan.production,
      alias: rolloutAlias(plan),
      stageName: plan.stages[job.stage]!.name,
      sites: started?.sites ?? null,
      checkpoint: started?.checkpoint ?? null,
      stages: plan.stages.map((s) => s.name),
    };
  }

  list(): RolloutJobView[] {
    return [...this.jobs.keys()].map((d) => this.describe(d)).filter((v) => v !== undefined);
  }

  close(): void {
    for (const r of this.rounds.values()) r.expire();
    this.rounds.clear();
  }

  // ---- steps ------------------------------------------------------------------------------------

  private save(job: RolloutJobState): void {
    const index = new Set(JSON.parse(this.deps.store.getMeta(ROLLOUT_INDEX_KEY) ?? '[]') as string[]);
    if (!index.has(job.rollout)) {
      index.add(job.rollout);
      this.deps.store.setMeta(ROLLOUT_INDEX_KEY, JSON.stringify([...index]));
    }
    this.deps.store.setMeta(rolloutMetaKey(job.rollout), JSON.stringify(job));
  }

  private planOf(job: RolloutJobState) {
    return this.deps.approvedRollout(job.rollout)!.plan;
  }

  /** Logs the start of a stage with listed sites; a canary stage first publishes the checkpoint to draw from. */
  private beginStage(job: RolloutJobState): void {
    const stage = this.planOf(job).stages[job.stage]!;
    job.started = undefined;
    job.attempt = 0;
    if (!Array.isArray(stage.sites)) {
      this.deps.publishCheckpoint();
      job.drawFrom = this.deps.audit.size;
      this.save(job);
      return;
    }
    const sites = [...(stage.sites as readonly string[])];
    this.logStart(job, sites);
  }

  private logStart(
    job: RolloutJobState,
    sites: string[],
    checkpoint?: { size: number; rootHash: string },
  ): void {
    const stage = this.planOf(job).stages[job.stage]!.name;
    const at = this.deps.now();
    this.deps.store.transaction(() => {
      const logIndex = this.deps.audit.append(
        'rollout-stage-started',
        { rollout: job.rollout, stage, sites, ...(checkpoint ? { checkpoint } : {}) },
        at,
      );
      job.started = { at, sites, logIndex, ...(checkpoint ? { checkpoint } : {}) };
      job.drawFrom = undefined;
      this.save(job);
    });
    this.deps.publishCheckpoint();
    this.deps.log.info({ rollout: job.id, stage, sites }, 'rollout stage started');
  }

  /** Draws the canary sites once the checkpoint is cosigned by a witness (when the log has witnesses). */
  private tryDraw(job: RolloutJobState): void {
    const size = job.drawFrom!;
    const cp = this.deps.audit.checkpoints().find((c) => c.size === size);
    if (!cp) return;
    const witnessed = Object.keys(this.deps.audit.witnessSnapshot()).length > 0;
    if (witnessed && this.deps.audit.cosignersOf(cp.note).length === 0) return;
    const stage = this.planOf(job).stages[job.stage]!;
    const rootHash = Buffer.from(this.deps.audit.root(size)).toString('hex');
    const sites = drawCanarySites({
      planDigest: job.rollout,
      checkpointRootHash: rootHash,
      checkpointSize: size,
      members: this.deps.institutions(),
      count: (stage.sites as { draw: number }).draw,
    });
    this.logStart(job, sites, { size, rootHash });
  }

  private maybeMeasure(job: RolloutJobState, now: number): void {
    const started = job.started!;
    const plan = this.planOf(job);
    const stage = plan.stages[job.stage]!;
    if (stage.minDurationHours !== undefined && now - started.at < stage.minDurationHours * 3_600_000) return;
    const live = new Set(this.deps.available());
    const cohortSites = started.sites.filter((s) => live.has(s));
    const waited = now - started.at >= (this.deps.fullCohortWaitMs ?? DEFAULT_FULL_COHORT_WAIT_MS);
    if (cohortSites.length < started.sites.length && !waited) return;
    const candidate = this.deps.knownModel(plan.candidate);
    const production = plan.production === null ? undefined : this.deps.knownModel(plan.production);
    if (!candidate || !production) {
      this.fail(job, 'the candidate or production model is no longer held by the coordinator');
      return;
    }
    const round = openMeasurement({
      deps: this.deps,
      job,
      plan,
      candidate,
      production,
      cohortSites,
      onDone: (outcome) => {
        if (this.rounds.get(job.rollout) !== round) return;
        this.rounds.delete(job.rollout);
        this.measured(job, outcome);
      },
    });
    if (round) this.rounds.set(job.rollout, round);
  }

  private measured(job: RolloutJobState, outcome: MeasurementOutcome): void {
    if (!outcome.ok) {
      this.aborted(job, outcome.reason);
      return;
    }
    const plan = this.planOf(job);
    const stage = plan.stages[job.stage]!;
    this.deps.store.finishSecAggAttempt(
      { run_id: job.id, round: stageRound(job.stage), attempt: job.attempt, phase: 'rollout' },
      {
        session_id: null,
        survivors_json: JSON.stringify(outcome.contributors),
        dropped_json: null,
        outcome: 'completed',
        reason: null,
        finished_at: this.deps.now(),
      },
    );
    const figures = pairedGateFigures(outcome.figures) as RolloutFigures;
    this.decide(job, stage.name, outcome.figures.rows, figures, [...outcome.contributors]);
  }

  /** Decides and logs the stage's gate on its figures, then advances, completes or rolls back. */
  private decide(
    job: RolloutJobState,
    stageName: string,
    rows: number,
    figures: RolloutFigures,
    contributors: string[],
  ): void {
    const plan = this.planOf(job);
    const { outcome, last } = logGateDecision(
      this.deps,
      job,
      plan,
      { stageName, rows, figures, contributors },
      () => this.save(job),
    );
    if (outcome === 'pass' && !last) this.beginStage(job);
    else this.deps.publishCheckpoint();
  }

  /** A stage still undetermined because its bound evaluation plan had no decision: decided again once it has. */
  private redecide(job: RolloutJobState): void {
    const stage = this.planOf(job).stages[job.stage]!;
    const last = job.gates.at(-1);
    if (!last || last.stage !== stage.name || stage.gate.evaluationPlan === undefined) return;
    if (this.deps.evaluationOutcome(stage.gate.evaluationPlan) === undefined) return;
    job.status = 'running';
    this.decide(job, stage.name, last.rows, last.figures, [...last.contributors]);
  }

  private rollBack(
    job: RolloutJobState,
    stage: RolloutStageName,
    why: { cause: 'circuit-breaker' | 'quorum'; by?: string; signature?: string; proposal?: string },
  ): void {
    const round = this.rounds.get(job.rollout);
    round?.expire();
    this.rounds.delete(job.rollout);
    const now = this.deps.now();
    this.deps.store.transaction(() => {
      if (this.attemptRow(job)?.outcome === 'running' || this.attemptRow(job)?.outcome === 'unmasking')
        this.finishAttempt(job, `rolled back (${why.cause})`);
      closeSumJobTasks(this.deps.store, job.id, stageRound(job.stage), now);
      const logIndex = this.deps.audit.append('rollout-rolled-back', { rollout: job.rollout, stage, ...why });
      job.status = 'rolled back';
      job.rolledBack = { cause: why.cause, ...(why.by ? { by: why.by } : {}), logIndex };
      job.finishedAt = now;
      this.save(job);
    });
    this.deps.publishCheckpoint();
    this.deps.log.warn({ rollout: job.id, stage, cause: why.cause, by: why.by }, 'rollout rolled back');
  }

  private attemptRow(job: RolloutJobState) {
    return this.deps.store
      .listSecAggAttempts(job.id)
      .find((a) => a.round === stageRound(job.stage) && a.attempt === job.attempt && a.phase === 'rollout');
  }

  private finishAttempt(job: RolloutJobState, reason: string): void {
    this.deps.store.finishSecAggAttempt(
      { run_id: job.id, round: stageRound(job.stage), attempt: job.attempt, phase: 'rollout' },
      {
        session_id: null,
        survivors_json: null,
        dropped_json: null,
        outcome: 'aborted',
        reason,
        finished_at: this.deps.now(),
      },
    );
  }

  private aborted(job: RolloutJobState, reason: string): void {
    this.rounds.get(job.rollout)?.expire();
    this.rounds.delete(job.rollout);
    if (this.attemptRow(job)?.outcome === 'unmasking') {
      this.fail(job, `aborted during unmasking: ${reason}`);
      return;
    }
    this.retry(job, reason);
  }

  private retry(job: RolloutJobState, reason: string): void {
    this.finishAttempt(job, reason);
    closeSumJobTasks(this.deps.store, job.id, stageRound(job.stage), this.deps.now());
    if (job.attempt + 1 >= MAX_ROLLOUT_ATTEMPTS) {
      this.fail(job, `${MAX_ROLLOUT_ATTEMPTS} attempts of the stage measurement aborted; last: ${reason}`);
      return;
    }
    job.attempt += 1;
    this.save(job);
    this.deps.log.warn(
      { rollout: job.id, attempt: job.attempt, reason },
      'rollout measurement aborted; trying again',
    );
  }

  private fail(job: RolloutJobState, reason: string): void {
    const now = this.deps.now();
    job.status = 'failed';
    job.failure = reason.slice(0, 1000);
    job.finishedAt = now;
    closeSumJobTasks(this.deps.store, job.id, stageRound(job.stage), now);
    this.save(job);
    this.deps.log.error({ rollout: job.id, reason }, 'rollout failed (the alias is untouched)');
  }
}
