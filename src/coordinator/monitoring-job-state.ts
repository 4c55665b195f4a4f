/**
 * What a deployed model's monitoring keeps in the store (one meta row per model): the reference sum
 * (the sites' training rows scored, measured once), the measurement under way, each logged report, and
 * the thresholds a report is held against (the policy's `monitoring`). Pure helpers: the report's
 * figures from a drift and the thresholds it crosses.
 */
import type { Logger } from 'pino';
import type { MonitoringDrift, MonitoringSpec } from '../evaluation/index.ts';
import type { RegistryView } from '../registry/index.ts';
import type { PinnedKeyResolver } from '../secagg/index.ts';
import type { BlobStore, SqliteStore } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';
import type { KnownModel } from './evaluation-job-state.ts';

/** Secure-sum attempts per measurement before it is given up. */
export const MONITOR_MAX_ATTEMPTS = 3;
/** Rows one site may add to one monitoring sum (serving sites count every scored row since they began). */
export const MONITORING_MAX_ROWS_PER_SITE = 10_000_000;
export const MONITOR_INDEX_KEY = 'monitoring-jobs';
export const monitorMetaKey = (model: string): string => `monitoring-job:${model}`;

/** The policy's `monitoring` section: thresholds (absent: report only) and noise on the sums. */
export interface MonitoringSettings {
  readonly maxPsi?: number | undefined;
  readonly maxJsDistance?: number | undefined;
  readonly maxKs?: number | undefined;
  readonly noiseMultiplier?: number | undefined;
}

export interface MonitoringJobsDeps {
  readonly store: SqliteStore;
  readonly blobs: BlobStore;
  readonly log: Logger;
  readonly audit: AuditLog;
  readonly now: () => number;
  readonly notify: (participant: string) => void;
  readonly available: () => readonly string[];
  readonly consortium: string;
  readonly pinnedKeyOf: PinnedKeyResolver;
  /** The model registry replayed from the coordinator's log (aliases → versions). */
  readonly registry: () => RegistryView;
  /** A model this coordinator holds (a completed run's final model), by SHA-256. */
  readonly knownModel: (sha256: string) => KnownModel | undefined;
  /** The policy in force's `monitoring` section, if any. */
  readonly settings: () => MonitoringSettings | undefined;
  /** Raises an incident (logged; pauses new rounds); returns its id. */
  readonly raiseIncident: (reason: string) => string;
  /** Reasons of the incidents open now (a threshold already raised for a model is not raised again). */
  readonly openIncidentReasons: () => readonly string[];
  readonly publishCheckpoint: () => void;
  /** Measure the model `alias` points at this often (absent: only on request). */
  readonly everyMs?: number | undefined;
  /** The alias scheduled measurements follow (default `production`). */
  readonly alias?: string | undefined;
  readonly stageTimeoutMs?: number;
  readonly firstStageTimeoutMs?: number;
}

/** The figures a `monitoring-report` entry logs. */
export interface MonitoringFigures {
  readonly referenceRows: number;
  readonly currentRows: number;
  readonly maxFeaturePsi: number;
  readonly maxFeatureJs: number;
  readonly maxFeatureKs: number;
  readonly scorePsi: number;
  readonly predictedClassPsi: number;
  readonly latencyP90Ms: number | null;
}

export interface MonitoringReport extends MonitoringFigures {
  readonly measurement: number;
  readonly alias: string;
  readonly noised: boolean;
  readonly contributors: string[];
  readonly logIndex: number;
  readonly at: number;
  /** Thresholds crossed, as one sentence each. */
  readonly crossed: string[];
  /** The incident raised for them (null: none crossed, or one for this model was open already). */
  readonly incident: string | null;
  /** Per feature (layout order): PSI, JS distance, binned KS. */
  readonly features: { psi: number; jsDistance: number; ks: number }[];
}

export interface MonitorJob {
  readonly model: string;
  readonly id: string;
  readonly spec: MonitoringSpec;
  /** The reference sum (decoded; noisy when `noised`), null until measured. */
  reference: {
    values: number[];
    rows: number;
    contributors: string[];
    noised: boolean;
    at: number;
  } | null;
  /** The reference was unmasked but could not be used: no other reference may be measured. */
  referenceLost?: string;
  /** The last round used (0: the reference); −1 before any. */
  lastRound: number;
  /** The measurement under way. */
  pending: {
    window: 'reference' | 'current';
    round: number;
    attempt: number;
    alias: string;
    by: string;
    noiseMultiplier: number | null;
    requestedAt: number;
  } | null;
  reports: MonitoringReport[];
  /** The latest failures (bounded). */
  failures: { round: number; window: string; reason: string; at: number }[];
}

/** What `GET /v1/monitoring/:model` shows. */
export interface MonitorJobView {
  readonly model: string;
  readonly id: string;
  readonly spec: MonitoringSpec;
  readonly reference: { rows: number; contributors: string[]; noised: boolean; at: number } | null;
  readonly referenceLost: string | null;
  readonly pending: MonitorJob['pending'];
  readonly reports: MonitoringReport[];
  readonly failures: MonitorJob['failures'];
}

export function describeMonitorJob(job: MonitorJob): MonitorJobView {
  return {
    model: job.model,
    id: job.id,
    spec: job.spec,
    reference: job.reference
      ? {
          rows: job.reference.rows,
          contributors: job.reference.contributors,
          noised: job.reference.noised,
          at: job.reference.at,
        }
      : null,
    referenceLost: job.referenceLost ?? null,
    pending: job.pending,
    reports: job.reports,
    failures: job.failures,
  };
}

/** The figures of a drift: the largest over features, the score and predicted-class PSI, latency p90. */
export function monitoringFigures(drift: MonitoringDrift): MonitoringFigures {
  const max = (f: (x: MonitoringDrift['features'][number]) => number) =>
    drift.features.reduce((m, x) => Math.max(m, f(x)), 0);
  const p90 = drift.latencyMs?.p90;
  return {
    referenceRows: drift.referenceRows,
    currentRows: drift.currentRows,
    maxFeaturePsi: max((x) => x.psi),
    maxFeatureJs: max((x) => x.jsDistance),
    maxFeatureKs: max((x) => x.ks),
    scorePsi: drift.score.psi,
    predictedClassPsi: drift.predictedClass.psi,
    latencyP90Ms: p90 === undefined || !Number.isFinite(p90) ? null : p90,
  };
}

/** Each threshold the drift crosses, as a sentence naming the metric, where, its value and the bound. */
export function crossedThresholds(
  drift: MonitoringDrift,
  settings: MonitoringSettings | undefined,
): string[] {
  if (!settings) return [];
  const out: string[] = [];
  const check = (bound: number | undefined, name: string, metric: string, where: string, value: number) => {
    if (bound !== undefined && value > bound)
      out.push(`${where} ${metric} ${value.toPrecision(4)} > ${name} ${bound}`);
  };
  const worst = (f: (x: MonitoringDrift['features'][number]) => number) => {
    let at = 0;
    drift.features.forEach((x, j) => {
      if (f(x) > f(drift.features[at]!)) at = j;
    });
    return { at, value: drift.features.length ? f(drift.features[at]!) : 0 };
  };
  const psi = worst((x) => x.psi);
  const js = worst((x) => x.jsDistance);
  const ks = worst((x) => x.ks);
  check(settings.maxPsi, 'maxPsi', 'PSI', `feature ${psi.at}`, psi.value);
  check(settings.maxPsi, 'maxPsi', 'PSI', 'score', drift.score.psi);
  check(settings.maxPsi, 'maxPsi', 'PSI', 'predicted class', drift.predictedClass.psi);
  check(settings.maxJsDistance, 'maxJsDistance', 'Jensen-Shannon distance', `feature ${js.at}`, js.value);
  check(settings.maxJsDistance, 'maxJsDistance', 'Jensen-Shannon distance', 'score', drift.score.jsDistance);
  check(settings.maxKs, 'maxKs', 'KS', `feature ${ks.at}`, ks.value);
  check(settings.maxKs, 'maxKs', 'KS', 'score', drift.score.ks);
  return out;
}

/** The start of every incident reason raised for `model` (so an open one is not raised again). */
export const incidentPrefix = (model: string): string => `monitoring: model ${model.slice(0, 16)}`;
