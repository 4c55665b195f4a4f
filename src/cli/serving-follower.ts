/**
 * `participant serve --follow DIR`: the model in service follows the site's serving directory
 * (serving-dir.ts). `check()` stats `serving.json` (and the named version's two files) and reloads
 * only when one changed: every scoring request calls it before scoring, and serve calls it on a short
 * timer too. A good assignment to another version swaps the model and its monitoring recorder (the
 * previous one flushed and closed first, so each request's counts land in the file of the version that
 * scored it). A missing or malformed `serving.json`, or a version whose files fail a check, changes
 * nothing: the last good model keeps serving and one warning is logged per state; before any good
 * assignment, scoring is refused with UNAVAILABLE.
 */
import { statSync } from 'node:fs';
import { EntenteError } from '../core/errors.ts';
import type { StandardizationParams } from '../data/index.ts';
import { MonitoringRecorder } from './monitoring-file.ts';
import type { ScoringModel } from './scoring-model.ts';
import { type ServingAssignment, readServingFile, servingFilePath, siteModelPaths } from './serving-dir.ts';

/** One model in service: the model, the reference that fixes its monitoring bins, its recorder. */
export interface ServedModel {
  readonly model: ScoringModel;
  readonly reference: StandardizationParams;
  readonly recorder: MonitoringRecorder;
}

export interface FollowerLog {
  info(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
  error(details: Record<string, unknown>, message: string): void;
}

export interface ServingFollowerOptions {
  readonly dir: string;
  /** Monitoring sums go to `<site>/monitoring/<sha256>.json`. */
  readonly site: string;
  /** Loads and checks a version of the directory (serving-dir.ts loadSiteModel plus serve's own rules). */
  readonly load: (sha256: string) => ScoringModel;
  /** The training reference of a loaded model's monitoring bins. */
  readonly reference: (model: ScoringModel) => StandardizationParams;
  readonly log: FollowerLog;
  readonly now: () => number;
}

/** What GET /v1/health says about a followed directory. */
export interface FollowHealth {
  readonly status: 'ok' | 'waiting';
  /** The version in service (null before any good assignment). */
  readonly model: string | null;
  readonly rows: number;
  /** The assignment of the version in service, as serving.json gave it. */
  readonly alias: string | null;
  readonly rollout: string | null;
  readonly stage: string | null;
  readonly reason: string | null;
  readonly updatedAt: string | null;
  /** Why the newest serving.json is not what is served (null when it is). */
  readonly warning: string | null;
}

function statKey(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch (err) {
    return `absent:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

const asEntente = (err: unknown): EntenteError =>
  err instanceof EntenteError ? err : new EntenteError('INTERNAL', `--follow: ${(err as Error).message}`);

export class ServingFollower {
  private current: { served: ServedModel; assignment: ServingAssignment } | null = null;
  private servingKey: string | null = null;
  private latest: ServingAssignment | EntenteError | null = null;
  /** The version and file states whose load failed: not retried until one of them changes. */
  private failedKey: string | null = null;
  private problem: string | null = null;
  private logged: string | null = null;

  constructor(private readonly options: ServingFollowerOptions) {}

  /** Re-reads serving.json and the named version when their files changed; applies a good assignment. */
  check(): void {
    const { dir } = this.options;
    const key = statKey(servingFilePath(dir));
    if (key !== this.servingKey) {
      this.servingKey = key;
      try {
        this.latest = readServingFile(dir);
      } catch (err) {
        this.latest = asEntente(err);
      }
    }
    const latest = this.latest;
    if (latest === null) return;
    if (latest instanceof EntenteError) {
      this.report(`${latest.code}: ${latest.message}`);
      return;
    }
    if (latest.version === null) {
      this.report(`serving.json names no version to serve (${latest.reason.slice(0, 200)})`);
      return;
    }
    if (this.current && latest.version === this.current.served.model.sha256) {
      this.current.assignment = latest;
      this.report(null);
      return;
    }
    const paths = siteModelPaths(dir, latest.version);
    const modelKey = `${latest.version}|${statKey(paths.bytes)}|${statKey(paths.description)}`;
    if (modelKey === this.failedKey) return;
    let served: ServedModel;
    try {
      const model = this.options.load(latest.version);
      const reference = this.options.reference(model);
      served = {
        model,
        reference,
        recorder: new MonitoringRecorder(model, this.options.site, this.options.now()),
      };
    } catch (err) {
      const e = asEntente(err);
      // Another process holding the version's monitoring lock may let go: retried at the next check.
      if (e.code !== 'WORKSPACE_LOCKED') this.failedKey = modelKey;
      this.report(`version ${latest.version} refused: ${e.code}: ${e.message}`);
      return;
    }
    const previous = this.current;
    if (previous) this.retire(previous.served);
    this.current = { served, assignment: latest };
    this.failedKey = null;
    this.report(null);
    this.options.log.info(
      {
        model: latest.version,
        previous: previous?.served.model.sha256 ?? null,
        rollout: latest.rollout,
        stage: latest.stage,
        monitoring: served.recorder.path,
      },
      'serving model',
    );
  }

  /** The model to score a request with (after a check); UNAVAILABLE before any good assignment. */
  served(): ServedModel {
    this.check();
    if (this.current) return this.current.served;
    throw new EntenteError(
      'UNAVAILABLE',
      `model: no model to serve yet (${this.problem ?? 'waiting for serving.json'})`,
      { field: 'model' },
    );
  }

  health(): FollowHealth {
    this.check();
    const a = this.current?.assignment;
    return {
      status: this.current ? 'ok' : 'waiting',
      model: this.current?.served.model.sha256 ?? null,
      rows: this.current?.served.recorder.rows ?? 0,
      alias: a?.alias ?? null,
      rollout: a?.rollout ?? null,
      stage: a?.stage ?? null,
      reason: a?.reason ?? null,
      updatedAt: a?.updatedAt ?? null,
      warning: this.problem,
    };
  }

  /** The recorder of the version in service (null before one). */
  get recorder(): MonitoringRecorder | null {
    return this.current?.served.recorder ?? null;
  }

  /** Flushes the monitoring sums of the version in service; true when something was written. */
  flush(now: Date): boolean {
    return this.current?.served.recorder.flush(now) ?? false;
  }

  /** Flushes and releases the version in service's recorder (on shutdown). */
  close(): void {
    if (this.current) this.retire(this.current.served);
    this.current = null;
  }

  private retire(served: ServedModel): void {
    try {
      served.recorder.flush(new Date(this.options.now()));
    } catch (err) {
      this.options.log.error(
        { err, model: served.model.sha256 },
        'monitoring sums of the previous model could not be written',
      );
    } finally {
      served.recorder.close();
    }
  }

  /** Records why the newest assignment is not applied (null: it is); logs each new reason once. */
  private report(problem: string | null): void {
    this.problem = problem;
    if (problem === null || problem === this.logged) {
      if (problem === null) this.logged = null;
      return;
    }
    this.logged = problem;
    this.options.log.warn(
      { model: this.current?.served.model.sha256 ?? null, follow: this.options.dir, problem },
      this.current ? 'serving.json not applied: keeping the model in service' : 'no model to serve yet',
    );
  }
}
