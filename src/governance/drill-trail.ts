/**
 * Incident drills in the governance trail: a rehearsal of the incident playbook is an ordinary
 * incident (it pauses new rounds and is resolved the normal way) that a `drill-started` entry names,
 * followed by one `drill-step` entry per automatic step and, once the incident is resolved, a
 * `drill-completed` entry with the time to recover. The replay checks that a drill names an incident
 * raised just before and still open, that its steps come before the resolution, that the completion
 * follows the resolution once, and that its time to recover and step counts are exactly what the log's
 * own entries say (the resolution's `at` minus the raising's `at`). Called by verify-trail.ts; the
 * coordinator lists drills with `replayDrills`. Pure: never throws on bad data.
 */

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The playbook's automatic steps, in order. */
export const drillSteps = ['paused', 'rollback-rehearsal'] as const;
export type DrillStep = (typeof drillSteps)[number];

interface TrailEntryLike {
  readonly kind: string;
  readonly index: number;
  readonly [field: string]: unknown;
}

export interface DrillStepView {
  readonly step: string;
  readonly ok: boolean;
  readonly detail: string;
  /** rollback-rehearsal: the alias's current version and the one a rollback would restore. */
  readonly current?: string | null;
  readonly target?: string | null;
  readonly entry: number;
  readonly at: number;
}

export interface DrillView {
  readonly drill: string;
  readonly incident: string;
  readonly alias: string;
  readonly by: string;
  readonly scheduled: boolean;
  /** The drill-started entry, and the incident-raised entry's time (ms since the epoch). */
  readonly entry: number;
  readonly raisedAt: number | null;
  readonly steps: readonly DrillStepView[];
  /** `running` until its incident is resolved; `completed` once drill-completed is logged. */
  readonly status: 'running' | 'resolved' | 'completed';
  readonly resolvedAt: number | null;
  readonly timeToRecoverMs: number | null;
}

interface DrillState {
  drill: string;
  incident: string;
  alias: string;
  by: string;
  scheduled: boolean;
  entry: number;
  raisedAt: number | null;
  steps: DrillStepView[];
  resolvedEntry: number | null;
  resolvedAt: number | null;
  completed: boolean;
  timeToRecoverMs: number | null;
}

export interface DrillTrail {
  /** Takes incident-raised, incident-resolved and drill-* entries; true for a drill-* entry. */
  check(entry: TrailEntryLike): boolean;
  /** Checks what only the end of the entries can show (a resolved drill never completed). */
  finish(): void;
  views(): DrillView[];
  facts(): string[];
}

export function createDrillTrail(bad: (index: number, message: string) => void): DrillTrail {
  /** Each incident's raising and resolution: entry index and time. */
  const raised = new Map<string, { entry: number; at: number | null }>();
  const resolved = new Map<string, { entry: number; at: number | null }>();
  const drills = new Map<string, DrillState>();
  const byIncident = new Map<string, DrillState>();
  let last: TrailEntryLike | undefined;

  const check = (e: TrailEntryLike): boolean => {
    const previous = last;
    last = e;
    switch (e.kind) {
      case 'incident-raised':
        raised.set(str(e.incident), { entry: e.index, at: num(e.at) ?? null });
        return false;
      case 'incident-resolved':
        if (!resolved.has(str(e.incident)))
          resolved.set(str(e.incident), { entry: e.index, at: num(e.at) ?? null });
        return false;
      case 'drill-started': {
        const drill = str(e.drill);
        const incident = str(e.incident);
        if (drills.has(drill)) {
          bad(e.index, `drill ${drill} was already started`);
          return true;
        }
        // Raised in the same transaction, just before: a drill cannot adopt an incident raised by someone else.
        if (previous?.kind !== 'incident-raised' || str(previous.incident) !== incident)
          bad(e.index, `drill ${drill} does not follow the raising of its incident ${incident}`);
        else if (resolved.has(incident) || byIncident.has(incident))
          bad(e.index, `drill ${drill} names incident ${incident}, which is resolved or drilled already`);
        const state: DrillState = {
          drill,
          incident,
          alias: str(e.alias),
          by: str(e.by),
          scheduled: e.scheduled === true,
          entry: e.index,
          raisedAt: raised.get(incident)?.at ?? null,
          steps: [],
          resolvedEntry: null,
          resolvedAt: null,
          completed: false,
          timeToRecoverMs: null,
        };
        drills.set(drill, state);
        if (!byIncident.has(incident)) byIncident.set(incident, state);
        return true;
      }
      case 'drill-step': {
        const d = drills.get(str(e.drill));
        const step = str(e.step);
        if (!d) {
          bad(e.index, `a step of drill ${str(e.drill)}, which was not started before it`);
          return true;
        }
        if (!(drillSteps as readonly string[]).includes(step))
          bad(e.index, `drill step "${step}" is unknown`);
        else if (d.steps.some((s) => s.step === step))
          bad(e.index, `drill ${d.drill}: step ${step} was already logged`);
        else if (resolved.has(d.incident) || d.completed)
          bad(e.index, `drill ${d.drill}: step ${step} logged after its incident was resolved`);
        d.steps.push({
          step,
          ok: e.ok === true,
          detail: str(e.detail),
          ...(e.current !== undefined ? { current: typeof e.current === 'string' ? e.current : null } : {}),
          ...(e.target !== undefined ? { target: typeof e.target === 'string' ? e.target : null } : {}),
          entry: e.index,
          at: num(e.at) ?? 0,
        });
        return true;
      }
      case 'drill-completed': {
        const d = drills.get(str(e.drill));
        if (!d) {
          bad(e.index, `drill ${str(e.drill)} completed but was not started before`);
          return true;
        }
        if (d.completed) {
          bad(e.index, `drill ${d.drill} was already completed`);
          return true;
        }
        d.completed = true;
        if (str(e.incident) !== d.incident) {
          bad(
            e.index,
            `drill ${d.drill} completed naming incident ${str(e.incident)}, not its own ${d.incident}`,
          );
          return true;
        }
        const r = resolved.get(d.incident);
        if (!r || r.entry < d.entry) {
          bad(e.index, `drill ${d.drill} completed before its incident ${d.incident} was resolved`);
          return true;
        }
        const expected = r.at !== null && d.raisedAt !== null ? r.at - d.raisedAt : null;
        if (expected === null || num(e.timeToRecoverMs) !== expected)
          bad(
            e.index,
            `drill ${d.drill}: timeToRecoverMs ${String(e.timeToRecoverMs)} is not the logged resolution time minus the raising time (${expected ?? 'unknown'})`,
          );
        const ok = d.steps.filter((s) => s.ok).length;
        const failed = d.steps.length - ok;
        if (e.stepsOk !== ok || e.stepsFailed !== failed)
          bad(
            e.index,
            `drill ${d.drill}: ${String(e.stepsOk)} steps ok and ${String(e.stepsFailed)} failed, but the log holds ${ok} ok and ${failed} failed`,
          );
        d.timeToRecoverMs = expected;
        return true;
      }
      default:
        return false;
    }
  };

  const finish = (): void => {
    for (const d of drills.values()) {
      const r = resolved.get(d.incident);
      if (r && r.entry > d.entry) {
        d.resolvedEntry = r.entry;
        d.resolvedAt = r.at;
        // The completion is logged in the resolution's own transaction: its absence is not a delay.
        if (!d.completed)
          bad(r.entry, `drill ${d.drill}: its incident was resolved but no drill-completed follows`);
      }
    }
  };

  const views = (): DrillView[] =>
    [...drills.values()].map((d) => ({
      drill: d.drill,
      incident: d.incident,
      alias: d.alias,
      by: d.by,
      scheduled: d.scheduled,
      entry: d.entry,
      raisedAt: d.raisedAt,
      steps: d.steps,
      status: d.completed ? 'completed' : d.resolvedEntry !== null ? 'resolved' : 'running',
      resolvedAt: d.resolvedAt,
      timeToRecoverMs: d.timeToRecoverMs,
    }));

  const facts = (): string[] => {
    if (drills.size === 0) return [];
    const all = [...drills.values()];
    const times = all.flatMap((d) => (d.completed && d.timeToRecoverMs !== null ? [d.timeToRecoverMs] : []));
    const failed = all.reduce((n, d) => n + d.steps.filter((s) => !s.ok).length, 0);
    const completed = all.filter((d) => d.completed).length;
    const median = medianOf(times);
    return [
      `drills: ${drills.size} started, ${completed} completed, ${median === undefined ? 'no time to recover yet' : `median time to recover ${(median / 1000).toFixed(1)} s`}; ${failed} failed steps`,
    ];
  };

  return { check, finish, views, facts };
}

/** The median of `values` (the mean of the two middle ones for an even count); undefined when empty. */
export function medianOf(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Every drill of `entries` (log order) with its steps and time to recover, and the problems found. */
export function replayDrills(entries: readonly TrailEntryLike[]): {
  drills: DrillView[];
  problems: { index: number; message: string }[];
  facts: string[];
} {
  const problems: { index: number; message: string }[] = [];
  const trail = createDrillTrail((index, message) => problems.push({ index, message }));
  for (const e of entries) trail.check(e);
  trail.finish();
  return { drills: trail.views(), problems, facts: trail.facts() };
}
