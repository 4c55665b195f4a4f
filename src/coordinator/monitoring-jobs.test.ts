/**
 * The monitoring jobs' bookkeeping without sites: a measurement is refused for an unknown alias, a
 * model without weights and a regression model; the first measurement of a model waits for its
 * reference (round 0) while fewer than 3 sites are available; a second request meanwhile is CONFLICT;
 * the schedule starts a measurement of the alias's version once per interval (and skips, logged, when
 * one is under way); a restarted coordinator finds the pending measurement in the store. The thresholds
 * crossed name the metric, where, the value and the bound.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { EntenteError } from '../core/errors.ts';
import type { MonitoringDrift } from '../evaluation/index.ts';
import type { RegistryView } from '../registry/index.ts';
import { SqliteStore } from '../storage/index.ts';
import type { KnownModel } from './evaluation-job-state.ts';
import { crossedThresholds, monitoringFigures } from './monitoring-job-state.ts';
import { MonitoringJobs, type MonitoringJobsDeps } from './monitoring-jobs.ts';

const base = mkdtempSync(join(tmpdir(), 'entente-monitoring-jobs-'));
after(() => rmSync(base, { recursive: true, force: true }));

const MODEL = 'ab'.repeat(32);
const LINEAR = 'cd'.repeat(32);
const ORPHAN = 'ef'.repeat(32);
const ref = (sha256: string) => ({ sha256, bytes: 1, chunks: [{ sha256, bytes: 1 }] });
const known = new Map<string, KnownModel>([
  [MODEL, { ref: ref(MODEL), modelSpec: { kind: 'logistic', inputDim: 30 } }],
  [LINEAR, { ref: ref(LINEAR), modelSpec: { kind: 'linear', inputDim: 30 } }],
]);
const registry = {
  versions: [],
  aliases: [
    { alias: 'production', version: MODEL },
    { alias: 'regression', version: LINEAR },
    { alias: 'orphan', version: ORPHAN },
  ],
} as unknown as RegistryView;

function createJobs(store: SqliteStore, clock: { now: number }, over: Partial<MonitoringJobsDeps> = {}) {
  const deps: MonitoringJobsDeps = {
    store,
    blobs: undefined as never,
    log: pino({ level: 'silent' }),
    audit: undefined as never,
    now: () => clock.now,
    notify: () => {},
    available: () => ['alpha', 'beta'],
    consortium: 'test',
    pinnedKeyOf: () => undefined,
    registry: () => registry,
    knownModel: (sha) => known.get(sha),
    settings: () => undefined,
    raiseIncident: () => 'inc',
    openIncidentReasons: () => [],
    publishCheckpoint: () => {},
    ...over,
  };
  return new MonitoringJobs(deps);
}

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof EntenteError ? `${err.code} ${err.field}` : String(err);
  }
  return undefined;
};

describe('monitoring jobs', () => {
  it('refuses unknown aliases, models without weights, regression models; waits for 3 sites', () => {
    const store = new SqliteStore(join(base, 'a.db'));
    const clock = { now: 1_000 };
    const jobs = createJobs(store, clock);
    assert.equal(
      codeOf(() => jobs.measure('canary', 'op')),
      'NOT_FOUND alias',
    );
    assert.equal(
      codeOf(() => jobs.measure('Prod!', 'op')),
      'INVALID_ARGUMENT alias',
    );
    assert.equal(
      codeOf(() => jobs.measure('orphan', 'op')),
      'NOT_FOUND alias',
    );
    assert.equal(
      codeOf(() => jobs.measure('regression', 'op')),
      'INVALID_CONFIG alias',
    );
    const view = jobs.measure('production', 'op');
    assert.equal(view.model, MODEL);
    assert.equal(view.id, `monitor-${MODEL.slice(0, 16)}`);
    assert.deepEqual(view.spec, { numFeatures: 30, numClasses: 2, featureBins: 16, scoreBins: 10 });
    assert.equal(view.pending?.window, 'reference');
    assert.equal(view.pending?.round, 0);
    // Two sites available: no attempt opened; a second request is CONFLICT.
    assert.deepEqual(store.listSecAggAttempts(view.id), []);
    assert.equal(
      codeOf(() => jobs.measure('production', 'op')),
      'CONFLICT alias',
    );
    assert.ok(jobs.owns(view.id));
    assert.equal(jobs.describe(MODEL)?.pending?.round, 0);
    assert.equal(jobs.describe(LINEAR), undefined);
    // A restarted coordinator finds the pending measurement.
    const again = createJobs(store, clock);
    assert.equal(again.list().length, 1);
    assert.equal(again.describe(MODEL)?.pending?.window, 'reference');
    store.close();
  });

  it('the schedule measures the alias once per interval', () => {
    const store = new SqliteStore(join(base, 'b.db'));
    const clock = { now: 10_000 };
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
    const jobs = createJobs(store, clock, { everyMs: 60_000, alias: 'production', log });
    jobs.tick();
    assert.equal(jobs.list().length, 0);
    clock.now += 59_999;
    jobs.tick();
    assert.equal(jobs.list().length, 0);
    clock.now += 1;
    jobs.tick();
    const [job] = jobs.list();
    assert.equal(job?.pending?.by, 'schedule');
    assert.equal(job?.pending?.alias, 'production');
    // The next interval finds it still under way: not started, logged.
    clock.now += 60_000;
    jobs.tick();
    assert.equal(jobs.list().length, 1);
    assert.ok(warnings.some((w) => /scheduled monitoring measurement not started/.test(w)));
    store.close();
  });

  it('thresholds crossed name the metric, where, the value and the bound', () => {
    const f = (psi: number, jsDistance: number, ks: number) => ({ psi, jsDistance, ks });
    const drift = {
      referenceRows: 100,
      currentRows: 50,
      features: [f(0.1, 0.1, 0.1), f(2.5, 0.6, 0.7), f(0.3, 0.2, 0.1)],
      score: f(0.4, 0.1, 0.2),
      predictedClass: { psi: 0.05, jsDistance: 0.05 },
      labelShiftEstimate: null,
      observedLabelShift: null,
      latencyMs: { p50: 1, p90: Number.POSITIVE_INFINITY, p99: Number.POSITIVE_INFINITY },
    } as MonitoringDrift;
    assert.deepEqual(crossedThresholds(drift, undefined), []);
    assert.deepEqual(crossedThresholds(drift, { noiseMultiplier: 1 }), []);
    assert.deepEqual(crossedThresholds(drift, { maxPsi: 0.35, maxKs: 0.65 }), [
      'feature 1 PSI 2.500 > maxPsi 0.35',
      'score PSI 0.4000 > maxPsi 0.35',
      'feature 1 KS 0.7000 > maxKs 0.65',
    ]);
    assert.deepEqual(crossedThresholds(drift, { maxJsDistance: 0.5 }), [
      'feature 1 Jensen-Shannon distance 0.6000 > maxJsDistance 0.5',
    ]);
    const figures = monitoringFigures(drift);
    assert.deepEqual(figures, {
      referenceRows: 100,
      currentRows: 50,
      maxFeaturePsi: 2.5,
      maxFeatureJs: 0.6,
      maxFeatureKs: 0.7,
      scorePsi: 0.4,
      predictedClassPsi: 0.05,
      latencyP90Ms: null,
    });
  });
});
