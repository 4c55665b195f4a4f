/**
 * Incident drills: the incident playbook (pause → rollback rehearsal → quorum resume) rehearsed on the
 * live consortium, so that "playbooks are tested" is something the audit log shows with a measured
 * time to recover. A drill raises an ordinary incident (new rounds pause exactly as for a real one;
 * `drill-started` names it in the same transaction), then runs the playbook's automatic steps and logs
 * each (`drill-step`): `paused` (after a tick of the run engine and the evaluation jobs the pause holds
 * and no round or phase opened since the incident) and `rollback-rehearsal` (the alias's current
 * version, the version its previous move started from, and whether the coordinator still holds that
 * model's bytes hashing to it; it never moves the alias, and a target that could not be served is a
 * failed step). The drill ends when its incident is resolved the normal way (a resume-runs quorum, or
 * an operator without a policy): `drill-completed` is logged in the resolving transaction with time to
 * recover = the resolution entry's `at` minus the raising entry's `at`. Optionally on a schedule
 * (`--drill-every`): a drill starts on a tick when none started within the interval and no incident
 * is open. The list of drills is replayed from the log (governance/drill-trail.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { parseLogEntry } from '../audit/index.ts';
import { EntenteError } from '../core/errors.ts';
import { type DrillView, replayDrills } from '../governance/index.ts';
import { isAliasName, type RegistryEntry, type RegistryView } from '../registry/index.ts';
import type { BlobStore, SqliteStore } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';

export const DEFAULT_DRILL_ALIAS = 'production';

export interface IncidentDrillDeps {
  readonly store: SqliteStore;
  readonly blobs: BlobStore;
  readonly audit: AuditLog;
  readonly log: Logger;
  readonly now: () => number;
  readonly isPaused: () => boolean;
  /** Raises an incident; `alongside` runs in its transaction after the incident-raised entry. */
  readonly raise: (by: string, reason: string, alongside: (incident: string) => void) => { incident: string };
  /** One tick of the run engine and the evaluation jobs (where a new round or phase would open). */
  readonly tick: () => void;
  readonly registry: () => { entries: readonly RegistryEntry[]; view: RegistryView };
  /** Publishes a checkpoint and wakes the witnesses. */
  readonly publishCheckpoint: () => void;
  /** Scheduled drills: at most one per this many ms (none when absent). */
  readonly everyMs?: number | undefined;
  /** The alias scheduled drills rehearse a rollback of. */
  readonly scheduledAlias?: string | undefined;
}

/** What the coordinator remembers of a drill's incident until it is resolved (the log is the record). */
interface DrillMeta {
  drill: string;
  raisedEntry: number;
  ok: number;
  failed: number;
  completed: boolean;
}

const LAST_STARTED = 'drill:last-started-at';
const metaKey = (incident: string): string => `drill:incident:${incident}`;
const short = (sha: string): string => `${sha.slice(0, 12)}…`;

/** True when a scheduled drill is due: none started within `everyMs` of `now` and no incident is open. */
export function isDrillDue(now: number, lastStartedAt: number, everyMs: number, paused: boolean): boolean {
  return !paused && now - lastStartedAt >= everyMs;
}

export class IncidentDrills {
  private readonly deps: IncidentDrillDeps;
  /** The schedule counts from the last drill started, or (none yet) from this coordinator's start. */
  private readonly since: number;
  private nextTryAt = 0;

  constructor(deps: IncidentDrillDeps) {
    this.deps = deps;
    this.since = deps.now();
  }

  /** Starts a drill: raises its incident, runs the automatic steps, returns the drill as logged. */
  start(by: string, alias: unknown = DEFAULT_DRILL_ALIAS, scheduled = false): DrillView {
    if (!isAliasName(alias))
      throw new EntenteError('INVALID_ARGUMENT', 'alias: must be an alias name ([a-z0-9-]{1,40})', {
        field: 'alias',
      });
    if (this.deps.isPaused())
      throw new EntenteError(
        'CONFLICT',
        'incident: an incident is open (new rounds are already paused); drill the playbook once it is resolved',
        { field: 'incident' },
      );
    const { store, audit } = this.deps;
    const drill = `drill-${new Date(this.deps.now()).toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`;
    let startEntry = 0;
    const { incident } = this.deps.raise(
      by,
      `drill ${drill}: rehearsal of the incident playbook (pause, rollback of "${alias}", quorum resume)`,
      (incident) => {
        const raisedEntry = audit.size - 1;
        startEntry = audit.append('drill-started', { drill, incident, alias, by, scheduled });
        const meta: DrillMeta = { drill, raisedEntry, ok: 0, failed: 0, completed: false };
        store.setMeta(metaKey(incident), JSON.stringify(meta));
        store.setMeta(LAST_STARTED, String(this.deps.now()));
      },
    );
    this.deps.log.warn(
      { drill, incident, by, alias, scheduled },
      'incident drill started: new rounds are paused',
    );
    this.checkPaused(drill, incident, startEntry);
    this.rehearseRollback(drill, incident, alias);
    this.deps.publishCheckpoint();
    return this.find(drill);
  }

  /** Step 1: after a tick of the engines the pause holds and no round or phase opened since the drill began. */
  private checkPaused(drill: string, incident: string, startEntry: number): void {
    let ok: boolean;
    let detail: string;
    try {
      this.deps.tick();
      const opened: string[] = [];
      const size = this.deps.audit.size;
      for (const e of this.deps.audit.entries(startEntry + 1, size)) {
        const entry = parseLogEntry(e.body, `entry ${e.index}`);
        if (entry.kind === 'round-started') opened.push(`${entry.run} round ${entry.round}`);
      }
      const running = this.deps.store.listRuns().filter((r) => r.status === 'running').length;
      const paused = this.deps.isPaused();
      ok = paused && opened.length === 0;
      detail = !paused
        ? 'the pause flag is not set after the incident was raised'
        : opened.length > 0
          ? `rounds opened after the incident: ${opened.slice(0, 5).join(', ')}`
          : `the pause holds: after a tick no round or phase opened (${running} running run${running === 1 ? '' : 's'} held)`;
    } catch (err) {
      ok = false;
      detail = `the pause could not be checked: ${err instanceof Error ? err.message : String(err)}`;
    }
    this.logStep(drill, incident, { step: 'paused', ok, detail });
  }

  /**
   * Step 2: what rolling `alias` back would do (the alias's current version and the one its last move
   * started from) and whether that model's bytes are here and hash to its digest. Moves nothing.
   */
  private rehearseRollback(drill: string, incident: string, alias: string): void {
    let current: string | null = null;
    let target: string | null = null;
    let ok = false;
    let detail: string;
    try {
      const state = this.deps.registry().view.aliases.find((a) => a.alias === alias);
      current = state?.version ?? null;
      target = state?.since.previous ?? null;
      if (!state) detail = `alias "${alias}" points at no model: there is nothing to roll back`;
      else if (target === null)
        detail = `alias "${alias}" was never moved from an earlier version: a rollback of ${short(state.version)} has no target`;
      else {
        const checked = this.checkStoredModel(target);
        ok = checked.ok;
        detail = checked.ok
          ? `a rollback would move "${alias}" from ${short(state.version)} back to ${short(target)}: ${checked.detail}; the alias was not moved`
          : `the rollback target ${short(target)} of "${alias}" cannot be served: ${checked.detail}`;
      }
    } catch (err) {
      detail = `the rollback could not be rehearsed: ${err instanceof Error ? err.message : String(err)}`;
    }
    this.logStep(drill, incident, { step: 'rollback-rehearsal', ok, detail, current, target });
  }

  /** The stored bytes of model `sha256` (any blob reference of the store naming it), re-hashed. */
  private checkStoredModel(sha256: string): { ok: boolean; detail: string } {
    const ref = this.deps.store
      .listBlobReferences()
      .flatMap((r) => (r.kind !== 'upload' && r.blob.sha256 === sha256 ? [r.blob] : []))[0];
    if (!ref) return { ok: false, detail: 'the coordinator holds no stored blob for it' };
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      this.deps.blobs.readPieces(
        ref.chunks.map((c) => c.sha256),
        (piece) => {
          hash.update(piece);
          bytes += piece.length;
        },
      );
    } catch (err) {
      return { ok: false, detail: err instanceof Error ? err.message : String(err) };
    }
    if (hash.digest('hex') !== sha256)
      return { ok: false, detail: `its ${ref.chunks.length} stored chunks do not hash to it` };
    return { ok: true, detail: `its ${bytes} bytes (${ref.chunks.length} chunks) are stored and hash to it` };
  }

  private logStep(
    drill: string,
    incident: string,
    step: {
      step: 'paused' | 'rollback-rehearsal';
      ok: boolean;
      detail: string;
      current?: string | null;
      target?: string | null;
    },
  ): void {
    const { store, audit } = this.deps;
    store.transaction(() => {
      audit.append('drill-step', { drill, ...step, detail: step.detail.slice(0, 2000) });
      const meta = this.metaOf(incident);
      if (meta) {
        if (step.ok) meta.ok++;
        else meta.failed++;
        store.setMeta(metaKey(incident), JSON.stringify(meta));
      }
    });
    this.deps.log[step.ok ? 'info' : 'warn']({ drill, step: step.step, ok: step.ok }, step.detail);
  }

  private metaOf(incident: string): DrillMeta | undefined {
    const raw = this.deps.store.getMeta(metaKey(incident));
    return raw === undefined ? undefined : (JSON.parse(raw) as DrillMeta);
  }

  /**
   * In the resolving transaction, right after `incident`'s incident-resolved entry (`entry`): a drill's
   * incident logs drill-completed with the time to recover from the two entries' own times.
   */
  onIncidentResolved(incident: string, entry: number): void {
    const meta = this.metaOf(incident);
    if (!meta || meta.completed) return;
    const atOf = (index: number): number => {
      const [e] = this.deps.audit.entries(index, index + 1);
      if (!e) throw new EntenteError('INTERNAL', `log entry ${index} is missing`);
      return parseLogEntry(e.body, `entry ${index}`).at;
    };
    const timeToRecoverMs = atOf(entry) - atOf(meta.raisedEntry);
    this.deps.audit.append('drill-completed', {
      drill: meta.drill,
      incident,
      timeToRecoverMs,
      stepsOk: meta.ok,
      stepsFailed: meta.failed,
    });
    this.deps.store.setMeta(metaKey(incident), JSON.stringify({ ...meta, completed: true }));
    this.deps.log.info(
      { drill: meta.drill, incident, timeToRecoverMs, stepsOk: meta.ok, stepsFailed: meta.failed },
      'incident drill completed',
    );
  }

  /** Every drill replayed from the log, newest last. */
  list(): DrillView[] {
    return replayDrills(this.deps.registry().entries).drills;
  }

  private find(drill: string): DrillView {
    const view = this.list().find((d) => d.drill === drill);
    if (!view) throw new EntenteError('INTERNAL', `drill ${drill} is not in the log`);
    return view;
  }

  /** On the coordinator's tick: starts a scheduled drill when one is due. */
  tickSchedule(): void {
    const everyMs = this.deps.everyMs;
    if (everyMs === undefined) return;
    const now = this.deps.now();
    if (now < this.nextTryAt) return;
    const last = Number(this.deps.store.getMeta(LAST_STARTED) ?? this.since);
    if (!isDrillDue(now, last, everyMs, this.deps.isPaused())) return;
    try {
      this.start('coordinator', this.deps.scheduledAlias ?? DEFAULT_DRILL_ALIAS, true);
    } catch (err) {
      // Tried again a minute later (or at the next interval when shorter), not on every tick.
      this.nextTryAt = now + Math.min(everyMs, 60_000);
      this.deps.log.error({ err }, 'the scheduled incident drill could not start');
    }
  }
}
