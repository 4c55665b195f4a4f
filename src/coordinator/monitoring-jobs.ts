/**
 * Drift monitoring of a deployed model: the version an alias points at (the registry) is measured as
 * secure sums over the available sites (phase `monitor`, run id `monitor-<sha16>`). The first sum of a
 * model is its reference (round 0: each site scores its own training rows with the model, once per
 * model, kept in the store); each measurement after it is a new round 1, 2, … in which each site adds
 * the monitoring counts its `participant serve|score` recorded for the model. The drift of the summed
 * current counts against the reference (evaluation/monitoring-drift.ts) is logged as a
 * `monitoring-report` entry, and a threshold of the policy's `monitoring` section that is crossed
 * raises an incident naming the metric and its value. With `monitoring.noiseMultiplier` the sums carry
 * discrete Gaussian noise (each site charges its own ledger; the charges are logged) and the noised
 * totals are projected onto consistent counts before the drift is computed. Measurements run on
 * request (`entente monitor run`) or on a schedule (`coordinator start --monitor-every`), also while an
 * incident pauses runs: monitoring is how a paused consortium sees whether the drift persists.
 */
import { EntenteError } from '../core/errors.ts';
import {
  type MonitoringSpec,
  compareMonitoring,
  createMonitoringLayout,
  projectMonitoringSums,
} from '../evaluation/index.ts';
import { countClasses, isRegressionSpec } from '../models/index.ts';
import { type TaskResult, monitoringJobId } from '../protocol/index.ts';
import { parseAliasName } from '../registry/index.ts';
import {
  MONITOR_INDEX_KEY,
  MONITOR_MAX_ATTEMPTS,
  type MonitorJob,
  type MonitorJobView,
  type MonitoringJobsDeps,
  crossedThresholds,
  describeMonitorJob,
  incidentPrefix,
  monitorMetaKey,
  monitoringFigures,
} from './monitoring-job-state.ts';
import { logSumPrivacy } from './privacy-records.ts';
import { finishMonitorAttempt, openMonitorRound } from './monitoring-job-round.ts';
import type { SecAggRound } from './secagg-round.ts';
import { closeSumJobTasks, deliverJobResult, findJobTask } from './sum-job-results.ts';

export type { MonitorJobView, MonitoringJobsDeps, MonitoringSettings } from './monitoring-job-state.ts';

export class MonitoringJobs {
  private readonly deps: MonitoringJobsDeps;
  private readonly jobs = new Map<string, MonitorJob>();
  private readonly rounds = new Map<string, SecAggRound>();
  private nextScheduledAt: number;

  constructor(deps: MonitoringJobsDeps) {
    this.deps = deps;
    this.nextScheduledAt = deps.everyMs === undefined ? Number.POSITIVE_INFINITY : deps.now() + deps.everyMs;
    const index = JSON.parse(deps.store.getMeta(MONITOR_INDEX_KEY) ?? '[]') as string[];
    for (const model of index) {
      const raw = deps.store.getMeta(monitorMetaKey(model));
      if (!raw) continue;
      const job = JSON.parse(raw) as MonitorJob;
      this.jobs.set(job.id, job);
      // An attempt under way lived in memory only: it is over (unmasked: its round is spent at the sites).
      if (job.pending && this.attemptRow(job))
        this.abortRound(job, 'the coordinator restarted during the sum');
    }
  }

  /** Whether `runId` (a task's) belongs to a monitoring job. */
  owns(runId: string): boolean {
    return this.jobs.has(runId);
  }

  /**
   * Measures the version `alias` points at now: its reference first when it has none, then a current
   * window. Throws INVALID_ARGUMENT, NOT_FOUND (no such alias, or weights this coordinator does not
   * hold), INVALID_CONFIG (a regression model) or CONFLICT (a measurement of it is under way).
   */
  measure(aliasInput: unknown, by: string): MonitorJobView {
    const alias = parseAliasName(aliasInput, 'alias');
    const entry = this.deps.registry().aliases.find((a) => a.alias === alias);
    if (!entry)
      throw new EntenteError('NOT_FOUND', `alias: no alias "${alias}" in the registry`, { field: 'alias' });
    const model = entry.version;
    const known = this.deps.knownModel(model);
    if (!known)
      throw new EntenteError(
        'NOT_FOUND',
        `alias: "${alias}" points at ${model.slice(0, 12)}…, a model this coordinator holds no weights of`,
        { field: 'alias' },
      );
    if (isRegressionSpec(known.modelSpec))
      throw new EntenteError(
        'INVALID_CONFIG',
        'alias: monitoring measures a classifier, not a regression model',
        {
          field: 'alias',
        },
      );
    const id = monitoringJobId(model);
    let job = this.jobs.get(id);
    if (!job) {
      const spec: MonitoringSpec = {
        numFeatures: known.modelSpec.inputDim,
        numClasses: countClasses(known.modelSpec),
        featureBins: 16,
        scoreBins: 10,
      };
      job = { model, id, spec, reference: null, lastRound: -1, pending: null, reports: [], failures: [] };
      this.jobs.set(id, job);
    }
    if (job.pending)
      throw new EntenteError('CONFLICT', `alias: a measurement of ${model.slice(0, 12)}… is under way`, {
        field: 'alias',
      });
    if (job.referenceLost)
      throw new EntenteError(
        'CONFLICT',
        `alias: the reference of ${model.slice(0, 12)}… was unmasked but lost (${job.referenceLost}); sites measure it once`,
        { field: 'alias' },
      );
    const noise = this.deps.settings()?.noiseMultiplier;
    const round = job.reference ? job.lastRound + 1 : 0;
    job.pending = {
      window: job.reference ? 'current' : 'reference',
      round,
      // A reference given up before unmasking is measured again in round 0, after its earlier attempts.
      attempt: this.deps.store.listSecAggAttempts(id).filter((a) => a.round === round).length,
      alias,
      by,
      noiseMultiplier: noise ?? null,
      requestedAt: this.deps.now(),
    };
    this.save(job);
    this.deps.log.info({ model, alias, window: job.pending.window, by }, 'monitoring measurement requested');
    this.tick();
    return describeMonitorJob(job);
  }

  /** Opens sums that wait, enforces stage deadlines, and starts scheduled measurements. */
  tick(): void {
    const now = this.deps.now();
    if (now >= this.nextScheduledAt) {
      this.nextScheduledAt = now + this.deps.everyMs!;
      try {
        this.measure(this.deps.alias ?? 'production', 'schedule');
      } catch (err) {
        this.deps.log.warn({ err: (err as Error).message }, 'scheduled monitoring measurement not started');
      }
    }
    for (const job of this.jobs.values()) {
      if (!job.pending) continue;
      const round = this.rounds.get(job.id);
      if (round)
        round
          .tick(now)
          .catch((err: unknown) => this.abortRound(job, `internal error: ${(err as Error).message}`));
      else this.open(job);
    }
  }

  /** A result (or refusal) of one of a job's tasks, already matched to its open task row. */
  async acceptResult(participant: string, taskId: string, result: TaskResult): Promise<{ accepted: true }> {
    const task = findJobTask(this.deps.store, participant, taskId);
    const job = this.jobs.get(task.run_id);
    await deliverJobResult({
      store: this.deps.store,
      log: this.deps.log,
      now: this.deps.now(),
      task,
      round: job ? this.rounds.get(job.id) : undefined,
      open: job?.pending != null && task.round === job.pending.round,
      participant,
      result,
      what: 'monitoring',
    });
    if (!job) return { accepted: true };
    if (result.kind === 'secagg-sum' && result.privacy)
      logSumPrivacy(this.deps.audit, {
        run: job.id,
        round: task.round,
        attempt: result.attempt,
        phase: 'monitor',
        participant,
        report: result.privacy,
      });
    return { accepted: true };
  }

  /** The job of `model` (a full SHA-256), if it was ever measured. */
  describe(model: string): MonitorJobView | undefined {
    const job = this.jobs.get(monitoringJobId(model));
    return job && job.model === model ? describeMonitorJob(job) : undefined;
  }

  list(): MonitorJobView[] {
    return [...this.jobs.values()].map(describeMonitorJob);
  }

  /** Stops all rounds (shutdown). */
  close(): void {
    for (const r of this.rounds.values()) r.expire();
    this.rounds.clear();
  }

  private save(job: MonitorJob): void {
    const index = new Set(JSON.parse(this.deps.store.getMeta(MONITOR_INDEX_KEY) ?? '[]') as string[]);
    if (!index.has(job.model)) {
      index.add(job.model);
      this.deps.store.setMeta(MONITOR_INDEX_KEY, JSON.stringify([...index]));
    }
    this.deps.store.setMeta(monitorMetaKey(job.model), JSON.stringify(job));
  }

  private attemptRow(job: MonitorJob) {
    const p = job.pending;
    if (!p) return undefined;
    return this.deps.store
      .listSecAggAttempts(job.id)
      .find((a) => a.round === p.round && a.attempt === p.attempt && a.phase === 'monitor');
  }

  /** Opens the pending measurement's secure sum over the available sites (fewer than 3: it waits). */
  private open(job: MonitorJob): void {
    const known = this.deps.knownModel(job.model);
    if (!known) {
      this.giveUp(job, 'the model is no longer held by the coordinator');
      return;
    }
    openMonitorRound(
      {
        deps: this.deps,
        rounds: this.rounds,
        abortRound: (j, reason) => this.abortRound(j, reason),
        finish: (j, values, survivors) => this.finish(j, values, survivors),
      },
      job,
      known,
    );
  }

  /** An unmasked sum: the reference is kept (then the current window follows), a current one reported. */
  private finish(job: MonitorJob, values: Float64Array, survivors: string[]): void {
    const p = job.pending!;
    const now = this.deps.now();
    const layout = createMonitoringLayout(job.spec);
    const noised = p.noiseMultiplier !== null;
    if (p.window === 'reference') {
      this.deps.store.transaction(() => {
        finishMonitorAttempt(this.deps, job, 'completed', null, survivors);
        job.reference = {
          values: Array.from(values),
          rows: Math.max(0, Math.round(values[0]!)),
          contributors: survivors,
          noised,
          at: now,
        };
        job.lastRound = 0;
        job.pending = { ...p, window: 'current', round: 1, attempt: 0 };
        this.save(job);
      });
      this.deps.log.info({ job: job.id, rows: values[0] }, 'monitoring reference summed');
      this.tick();
      return;
    }
    const reference = job.reference!;
    const consistent = (v: ArrayLike<number>, noisy: boolean) =>
      noisy ? projectMonitoringSums(layout, v) : Float64Array.from(v);
    let drift: ReturnType<typeof compareMonitoring>;
    try {
      drift = compareMonitoring(
        layout,
        consistent(reference.values, reference.noised),
        consistent(values, noised),
      );
    } catch (err) {
      this.deps.store.transaction(() => {
        finishMonitorAttempt(this.deps, job, 'completed', null, survivors);
        this.giveUp(job, `no drift: ${(err as Error).message}`);
      });
      return;
    }
    const figures = monitoringFigures(drift);
    const crossed = crossedThresholds(drift, this.deps.settings());
    const prefix = incidentPrefix(job.model);
    const raise = crossed.length > 0 && !this.deps.openIncidentReasons().some((r) => r.startsWith(prefix));
    this.deps.store.transaction(() => {
      finishMonitorAttempt(this.deps, job, 'completed', null, survivors);
      const logIndex = this.deps.audit.append('monitoring-report', {
        model: job.model,
        alias: p.alias,
        measurement: p.round,
        ...figures,
        noised: noised || reference.noised,
      });
      job.reports.push({
        measurement: p.round,
        alias: p.alias,
        noised: noised || reference.noised,
        contributors: survivors,
        logIndex,
        at: now,
        ...figures,
        crossed,
        incident: null,
        features: drift.features.map((f) => ({ psi: f.psi, jsDistance: f.jsDistance, ks: f.ks })),
      });
      job.lastRound = p.round;
      job.pending = null;
      this.save(job);
    });
    this.deps.publishCheckpoint();
    this.deps.log.info(
      { job: job.id, measurement: p.round, ...figures, crossed },
      'monitoring report logged',
    );
    if (raise) {
      const incident = this.deps.raiseIncident(
        `${prefix} (alias ${p.alias}), measurement ${p.round}: ${crossed.join('; ')}`,
      );
      const last = job.reports.at(-1)!;
      job.reports[job.reports.length - 1] = { ...last, incident };
      this.save(job);
    }
  }

  /**
   * An attempt that ended without a usable sum. Before unmasking it is tried again (at most
   * MONITOR_MAX_ATTEMPTS); once unmasked, the round is spent at the sites: a current measurement is
   * given up (the next one takes the next round), a reference is lost for good.
   */
  private abortRound(job: MonitorJob, reason: string): void {
    const round = this.rounds.get(job.id);
    round?.expire();
    this.rounds.delete(job.id);
    const p = job.pending;
    if (!p) return;
    const unmasked = this.attemptRow(job)?.outcome === 'unmasking';
    const now = this.deps.now();
    this.deps.store.transaction(() => {
      finishMonitorAttempt(this.deps, job, 'aborted', reason, null);
      closeSumJobTasks(this.deps.store, job.id, p.round, now);
      if (unmasked && p.window === 'reference') {
        job.referenceLost = reason.slice(0, 500);
        this.giveUp(job, `the reference was aborted during unmasking: ${reason}`);
      } else if (unmasked || p.attempt + 1 >= MONITOR_MAX_ATTEMPTS)
        this.giveUp(
          job,
          unmasked
            ? `aborted during unmasking: ${reason}`
            : `${MONITOR_MAX_ATTEMPTS} attempts aborted; last: ${reason}`,
        );
      else {
        p.attempt += 1;
        this.save(job);
      }
    });
    this.deps.log.warn({ job: job.id, round: p.round, reason }, 'monitoring sum aborted');
  }

  /** Ends the pending measurement without a report; its round is not used again. */
  private giveUp(job: MonitorJob, reason: string): void {
    const p = job.pending!;
    job.failures = [
      ...job.failures,
      { round: p.round, window: p.window, reason: reason.slice(0, 1000), at: this.deps.now() },
    ].slice(-20);
    job.lastRound = Math.max(job.lastRound, p.round);
    job.pending = null;
    this.save(job);
    this.deps.log.error({ job: job.id, round: p.round, reason }, 'monitoring measurement failed');
  }
}
