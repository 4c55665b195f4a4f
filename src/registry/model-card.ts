/**
 * The registry's part of a model card: the version's lineage, the pre-registered evaluations that
 * compared it (each with its plan in full, its headline figures and the plan's decision), the privacy
 * the run spent as each site's ledger reported it to the log, the intended use the run configuration
 * states, and the aliases pointing at it. Pure: built from the log's entries and the registry's replay.
 */
import type { AliasState } from './alias-table.ts';
import type { ModelVersion, RegistryEntry } from './model-versions.ts';

export interface SitePrivacy {
  readonly participant: string;
  /** The largest ε the site's ledger reported for this run (null: the ledger could not bound it). */
  readonly epsilonRun: number | null;
  /** The site's total ε across runs, as last reported. */
  readonly epsilonTotal: number | null;
  readonly delta: number;
  readonly mechanisms: readonly string[];
  /** Privacy events recorded (one per round and attempt trained for). */
  readonly events: number;
}

export interface PrivacySpent {
  readonly run: string;
  /** Sites in id order. */
  readonly sites: readonly SitePrivacy[];
  /** The largest per-site ε for the run (null when no site reported, or one reported no bound). */
  readonly maxEpsilonRun: number | null;
}

export interface RegistryCardSection {
  readonly version: string;
  readonly lineage: Omit<ModelVersion, 'evaluations'>;
  readonly evaluations: ReadonlyArray<
    ModelVersion['evaluations'][number] & { readonly planDocument: unknown }
  >;
  readonly privacy: PrivacySpent;
  readonly intendedUse: string | null;
  readonly aliases: readonly string[];
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The privacy-spent entries of `run`, per site. Pure; skips malformed entries. */
export function collectPrivacySpent(entries: readonly RegistryEntry[], run: string): PrivacySpent {
  const bySite = new Map<
    string,
    {
      epsilonRun: number | null;
      epsilonTotal: number | null;
      delta: number;
      mechanisms: Set<string>;
      events: number;
      unbounded: boolean;
    }
  >();
  for (const e of entries) {
    if (e.kind !== 'privacy-spent' || e.run !== run) continue;
    const site = str(e.participant);
    const s = bySite.get(site) ?? {
      epsilonRun: null,
      epsilonTotal: null,
      delta: 0,
      mechanisms: new Set<string>(),
      events: 0,
      unbounded: false,
    };
    const eps = num(e.epsilonRun);
    if (eps === null) s.unbounded = true;
    else s.epsilonRun = Math.max(s.epsilonRun ?? 0, eps);
    s.epsilonTotal = num(e.epsilonTotal);
    s.delta = Math.max(s.delta, num(e.delta) ?? 0);
    s.mechanisms.add(str(e.mechanism));
    s.events++;
    bySite.set(site, s);
  }
  const sites = [...bySite.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([participant, s]) => ({
      participant,
      epsilonRun: s.unbounded ? null : s.epsilonRun,
      epsilonTotal: s.epsilonTotal,
      delta: s.delta,
      mechanisms: [...s.mechanisms].sort(),
      events: s.events,
    }));
  const bounded = sites.every((s) => s.epsilonRun !== null);
  const maxEpsilonRun =
    sites.length > 0 && bounded ? Math.max(...sites.map((s) => s.epsilonRun as number)) : null;
  return { run, sites, maxEpsilonRun };
}

/** The intended use a run configuration states (its `intendedUse`), or null. */
export function intendedUseOf(config: Readonly<Record<string, unknown>> | undefined): string | null {
  const v = config?.intendedUse;
  return typeof v === 'string' && v.length > 0 ? v : null;
}

/**
 * The registry section of `version`'s model card. `plans`: approved evaluation plans by digest;
 * `runConfig`: the run's logged configuration; `aliases`: the current alias table.
 */
export function buildRegistryCardSection(input: {
  readonly version: ModelVersion;
  readonly entries: readonly RegistryEntry[];
  readonly plans: ReadonlyMap<string, unknown>;
  readonly runConfig: Readonly<Record<string, unknown>> | undefined;
  readonly aliases: readonly AliasState[];
}): RegistryCardSection {
  const { version, entries, plans, runConfig, aliases } = input;
  const { evaluations, ...lineage } = version;
  return {
    version: version.id,
    lineage,
    evaluations: evaluations.map((r) => ({ ...r, planDocument: plans.get(r.plan) ?? null })),
    privacy: collectPrivacySpent(entries, version.run),
    intendedUse: intendedUseOf(runConfig),
    aliases: aliases.filter((a) => a.version === version.id).map((a) => a.alias),
  };
}
