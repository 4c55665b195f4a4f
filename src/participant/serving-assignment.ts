/**
 * Which model version a site serves under an alias: a pure function of the approved rollouts and alias
 * table its verified audit log shows, and of its own circuit-breaker records. The last approved rollout
 * of the alias (log order) that started a stage decides: completed → its candidate; running, with the
 * latest started stage canary or full, this site among that stage's sites and its breaker not tripped
 * for it → the candidate; otherwise (shadow, not a stage site, rolled back, tripped) → the plan's
 * production version. No rollout of the alias started → the alias's version in the log (or none).
 */
import { type RolloutView, rolloutAlias } from '../governance/index.ts';

export interface ServingAssignment {
  readonly alias: string;
  /** SHA-256 of the model version served, or null (nothing to serve). */
  readonly version: string | null;
  /** The rollout that decided it, or null. */
  readonly rollout: string | null;
  /** That rollout's latest started stage, or null. */
  readonly stage: 'shadow' | 'canary' | 'full' | null;
  /** One sentence: why this version. */
  readonly reason: string;
}

const short = (digest: string): string => `${digest.slice(0, 12)}…`;

export function decideServing(
  views: ReadonlyMap<string, RolloutView>,
  aliases: ReadonlyMap<string, string>,
  institution: string,
  tripped: ReadonlySet<string>,
  alias: string,
): ServingAssignment {
  let last: [string, RolloutView] | undefined;
  for (const [digest, view] of views)
    if (rolloutAlias(view.plan) === alias && view.history.length > 0) last = [digest, view];
  if (!last)
    return {
      alias,
      version: aliases.get(alias) ?? null,
      rollout: null,
      stage: null,
      reason: aliases.has(alias)
        ? `no rollout of ${alias} started: the alias's version in the verified log`
        : `no rollout of ${alias} started and the verified log names no version for it`,
    };
  const [digest, view] = last;
  const started = view.history[view.history.length - 1]!;
  const stage = started.stage as ServingAssignment['stage'];
  const serve = (candidate: boolean, why: string): ServingAssignment => ({
    alias,
    version: candidate ? view.plan.candidate : view.plan.production,
    rollout: digest,
    stage,
    reason: `rollout ${short(digest)} ${why}`,
  });
  if (view.status === 'completed') return serve(true, 'completed: its candidate is the version');
  if (view.status === 'rolled back') return serve(false, 'was rolled back: its production version');
  if (tripped.has(digest))
    return serve(false, "tripped this site's circuit breaker: its production version, never the candidate");
  if (stage === 'shadow') return serve(false, 'is in shadow: the candidate is scored, not served');
  if (!started.sites.includes(institution))
    return serve(false, `is in ${stage}, without this site: its production version`);
  return serve(true, `is in ${stage} at this site: its candidate`);
}
