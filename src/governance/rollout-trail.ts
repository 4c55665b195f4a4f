/**
 * Staged rollouts in the governance trail (verify-trail.ts calls it): each rollout plan, once an
 * `approve-rollout` proposal approved it, replayed from its log entries. What an auditor requires of a
 * rollout (digest R):
 *
 * - `rollout-stage-started`: R approved before it; the stage is the plan's next one, and the previous
 *   one (if any) advanced; explicit sites are exactly the plan's; canary sites are exactly the draw
 *   (drawCanarySites) recomputed from R, the checkpoint the entry names and the institutions of the
 *   policy in force. The checkpoint must include the approval (size > its index) and precede the entry
 *   (size ≤ its index); its root hash is compared with the log's own root at that size when the caller
 *   can compute it (`rootHashAt`: `audit verify` does), otherwise the draw is recomputed from the
 *   root hash and size the entry carries.
 * - `rollout-gate`: for the running stage, not after a pass or fail of it; its outcome is the one the
 *   plan's rule gives on the logged figures, rows and elapsed time (decideRolloutGate), with the bound
 *   evaluation plan's logged decision.
 * - `rollout-advanced`: from the running stage, after its passed gate, to the plan's next stage.
 * - `rollout-rolled-back`: cause `gate` after the stage's failed gate; `circuit-breaker` by one of the
 *   stage's sites, with its signature (identity key pinned in the log) over its statement; `quorum` naming
 *   an approved rollback proposal for R, used once.
 * - `rollout-completed`: after the last stage's passed gate, for the plan's candidate.
 * - nothing of R after its completion or rollback, except the one `alias-moved` entry (naming the
 *   approve-rollout proposal) that points the plan's alias at the candidate, from the plan's production
 *   version, after the completion.
 *
 * Pure; never throws on bad data.
 */
import { verifyEd25519 } from '../crypto/signatures.ts';
import {
  decideRolloutGate,
  drawCanarySites,
  encodeCircuitBreakerStatement,
  type RolloutFigures,
  type RolloutPlan,
  rolloutAlias,
} from './rollout-plan.ts';

export interface RolloutTrailEntry {
  readonly kind: string;
  readonly index: number;
  readonly [field: string]: unknown;
}

export interface RolloutTrailContext {
  /** The institutions of the policy in force now (canary draws are made from them). */
  readonly institutions: () => readonly string[];
  /** The identity key pinned for a member now (circuit-breaker signatures). */
  readonly keyOf: (member: string) => Uint8Array | undefined;
  /** Whether an evaluation plan (digest) was approved before now. */
  readonly evaluationPlanApproved: (digest: string) => boolean;
  /** The log's root hash (hex) at a tree size, when the caller can compute it. */
  readonly rootHashAt?: ((size: number) => string | undefined) | undefined;
}

export interface RolloutTrail {
  /** An approve-rollout proposal for `plan` (digest `digest`) was approved at `index`. */
  approve(digest: string, plan: RolloutPlan, index: number): void;
  /** A rollback proposal (`proposal`: its id) with `subject` was approved at `index`. */
  approveRollback(proposal: string, subject: unknown, index: number): void;
  /** Checks one entry; false when it is not a rollout entry (an `evaluation-decision` is noted, false). */
  check(entry: RolloutTrailEntry): boolean;
  /** The alias move a completed rollout authorizes, or undefined (reported) when it authorizes none now. */
  aliasMoveOf(
    digest: string,
    index: number,
  ): { alias: string; version: string; previous: string | null } | undefined;
  facts(): string[];
  /** Every approved rollout as the log shows it now. */
  views(): ReadonlyMap<string, RolloutView>;
}

/** An approved rollout as its log entries leave it (what a site checks a rollout task against). */
export interface RolloutView {
  readonly plan: RolloutPlan;
  /** The running stage (or the one to start next), its sites once started, its logged gate outcome. */
  readonly stage: RolloutPlan['stages'][number]['name'];
  readonly sites: readonly string[] | null;
  readonly gate: 'pass' | 'fail' | null;
  /** Stages that started at a site, in order, with their sites (serving follows them). */
  readonly history: readonly { readonly stage: string; readonly sites: readonly string[] }[];
  readonly status: 'approved' | 'running' | 'completed' | 'rolled back';
}

interface RolloutState {
  readonly plan: RolloutPlan;
  readonly approvedAt: number;
  /** Index in plan.stages of the running (or next to start) stage. */
  stage: number;
  started?: { index: number; at: number; sites: readonly string[] };
  gate?: 'pass' | 'fail';
  finished?: { how: 'completed' | 'rolled back'; index: number };
  aliasMoved: boolean;
  history: { stage: string; sites: readonly string[] }[];
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const short = (digest: string): string => `${digest.slice(0, 12)}…`;
const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');

export function createRolloutTrail(
  bad: (index: number, message: string) => void,
  ctx: RolloutTrailContext,
): RolloutTrail {
  const rollouts = new Map<string, RolloutState>();
  const rollbacks = new Map<string, { rollout: string; used: boolean }>();
  const decisions = new Map<string, 'pass' | 'fail' | 'undetermined'>();
  const counts = { gates: 0, completed: 0, rolledBack: 0 };

  const stateOf = (e: RolloutTrailEntry, what: string): RolloutState | undefined => {
    const digest = str(e.rollout);
    const r = rollouts.get(digest);
    if (!r)
      bad(
        e.index,
        `${what} names rollout ${short(digest)}, which no approved approve-rollout proposal before it approved`,
      );
    else if (r.finished) {
      bad(
        e.index,
        `${what} of rollout ${short(digest)} after it was ${r.finished.how} (entry ${r.finished.index})`,
      );
      return undefined;
    }
    return r;
  };

  const checkStart = (e: RolloutTrailEntry, r: RolloutState, digest: string): void => {
    const stage = r.plan.stages[r.stage]!;
    if (r.started) {
      bad(e.index, `rollout ${short(digest)}: stage ${str(e.stage)} started while ${stage.name} is running`);
      return;
    }
    if (e.stage !== stage.name) {
      bad(
        e.index,
        `rollout ${short(digest)}: stage ${str(e.stage)} started out of order (the plan's next stage is ${stage.name})`,
      );
      return;
    }
    const sites = Array.isArray(e.sites) ? e.sites.map(str) : [];
    r.started = { index: e.index, at: typeof e.at === 'number' ? e.at : 0, sites };
    r.gate = undefined;
    r.history.push({ stage: stage.name, sites });
    if (Array.isArray(stage.sites)) {
      if (!sameSet(sites, stage.sites as readonly string[]))
        bad(e.index, `rollout ${short(digest)}: the ${stage.name} sites are not the plan's`);
      return;
    }
    const cp = (e.checkpoint ?? {}) as { size?: unknown; rootHash?: unknown };
    const size = typeof cp.size === 'number' ? cp.size : Number.NaN;
    const rootHash = str(cp.rootHash);
    if (!Number.isInteger(size) || rootHash === '') {
      bad(e.index, `rollout ${short(digest)}: canary sites without the checkpoint they were drawn from`);
      return;
    }
    if (size <= r.approvedAt || size > e.index) {
      bad(
        e.index,
        `rollout ${short(digest)}: the canary draw's checkpoint (size ${size}) must include the plan's approval (entry ${r.approvedAt}) and precede the stage`,
      );
      return;
    }
    const logged = ctx.rootHashAt?.(size);
    if (logged !== undefined && logged !== rootHash) {
      bad(
        e.index,
        `rollout ${short(digest)}: the canary draw's checkpoint is not the log's root at size ${size}`,
      );
      return;
    }
    let drawn: string[];
    try {
      drawn = drawCanarySites({
        planDigest: digest,
        checkpointRootHash: rootHash,
        checkpointSize: size,
        members: ctx.institutions(),
        count: (stage.sites as { draw: number }).draw,
      });
    } catch (err) {
      bad(e.index, `rollout ${short(digest)}: the canary draw cannot be made (${(err as Error).message})`);
      return;
    }
    if (!sameSet(sites, drawn))
      bad(
        e.index,
        `rollout ${short(digest)}: the canary sites are not the draw recomputed from the checkpoint`,
      );
  };

  const checkGate = (e: RolloutTrailEntry, r: RolloutState, digest: string): void => {
    counts.gates++;
    const stage = r.plan.stages[r.stage]!;
    if (!r.started || e.stage !== stage.name) {
      bad(e.index, `rollout ${short(digest)}: a gate of stage ${str(e.stage)}, which is not running`);
      return;
    }
    if (r.gate !== undefined) {
      bad(e.index, `rollout ${short(digest)}: stage ${stage.name} is gated again after its ${r.gate}`);
      return;
    }
    const bound = stage.gate.evaluationPlan;
    const decision = decideRolloutGate(r.plan, r.stage, {
      rows: typeof e.rows === 'number' ? e.rows : 0,
      figures: (e.figures !== null && typeof e.figures === 'object' ? e.figures : {}) as RolloutFigures,
      elapsedMs: (typeof e.at === 'number' ? e.at : 0) - r.started.at,
      evaluationOutcome: bound === undefined ? undefined : decisions.get(bound),
    });
    if (e.outcome !== decision.outcome) {
      bad(
        e.index,
        `rollout ${short(digest)}: the ${stage.name} gate says ${str(e.outcome)}, but the plan's rule gives ${decision.outcome} on the logged figures${decision.reason ? ` (${decision.reason})` : ''}`,
      );
      return;
    }
    if (decision.outcome !== 'undetermined') r.gate = decision.outcome;
  };

  const checkRollback = (e: RolloutTrailEntry, r: RolloutState, digest: string): void => {
    const stage = r.plan.stages[r.stage]!;
    const what = `rollout ${short(digest)}: rollback`;
    if (e.stage !== stage.name) {
      bad(e.index, `${what} during stage ${str(e.stage)}, but ${stage.name} is the current stage`);
      return;
    }
    switch (e.cause) {
      case 'gate':
        if (r.gate !== 'fail')
          bad(e.index, `${what} for a failed gate, but stage ${stage.name} has no failed gate`);
        break;
      case 'circuit-breaker': {
        const site = str(e.by);
        const signature = new Uint8Array(Buffer.from(str(e.signature), 'base64'));
        const key = ctx.keyOf(site);
        if (!r.started?.sites.includes(site))
          bad(
            e.index,
            `${what} by the circuit breaker of ${site.slice(0, 64) || 'no site'}, not a site of stage ${stage.name}`,
          );
        else if (
          !key ||
          signature.length !== 64 ||
          !verifyEd25519(key, encodeCircuitBreakerStatement(digest, stage.name, site), signature)
        )
          bad(
            e.index,
            `${what} by the circuit breaker of ${site}: its statement is not signed by ${site}'s pinned identity key`,
          );
        break;
      }
      case 'quorum': {
        const p = rollbacks.get(str(e.proposal));
        if (!p) bad(e.index, `${what} by quorum names no approved rollback proposal before it`);
        else if (p.rollout !== digest)
          bad(e.index, `${what} by quorum follows a rollback proposal for another rollout`);
        else if (p.used) bad(e.index, `${what} by quorum reuses its rollback proposal`);
        else p.used = true;
        break;
      }
      default:
        bad(e.index, `${what} without a cause (a failed gate, a circuit breaker or a quorum)`);
    }
    r.finished = { how: 'rolled back', index: e.index };
    counts.rolledBack++;
  };

  return {
    approve(digest, plan, index) {
      if (rollouts.has(digest)) return;
      plan.stages.forEach((s, i) => {
        const bound = s.gate.evaluationPlan;
        if (bound !== undefined && !ctx.evaluationPlanApproved(bound))
          bad(
            index,
            `rollout ${short(digest)}: stage ${i} binds evaluation plan ${short(bound)}, which was not approved before the rollout`,
          );
      });
      rollouts.set(digest, { plan, approvedAt: index, stage: 0, aliasMoved: false, history: [] });
    },

    approveRollback(proposal, subject) {
      const rollout = str((subject as { rollout?: unknown } | null)?.rollout);
      rollbacks.set(proposal, { rollout, used: false });
    },

    check(e) {
      if (e.kind === 'evaluation-decision') {
        const plan = str(e.plan);
        const outcome = e.outcome;
        if (!decisions.has(plan) && (outcome === 'pass' || outcome === 'fail' || outcome === 'undetermined'))
          decisions.set(plan, outcome);
        return false;
      }
      const digest = str(e.rollout);
      switch (e.kind) {
        case 'rollout-stage-started': {
          const r = stateOf(e, `a start of stage ${str(e.stage)}`);
          if (r) checkStart(e, r, digest);
          return true;
        }
        case 'rollout-gate': {
          const r = stateOf(e, `a gate of stage ${str(e.stage)}`);
          if (r) checkGate(e, r, digest);
          return true;
        }
        case 'rollout-advanced': {
          const r = stateOf(e, 'an advance');
          if (!r) return true;
          const stage = r.plan.stages[r.stage]!;
          const next = r.plan.stages[r.stage + 1];
          if (e.from !== stage.name || !r.started)
            bad(
              e.index,
              `rollout ${short(digest)}: an advance from ${str(e.from)}, but ${stage.name} is the running stage`,
            );
          else if (r.gate !== 'pass')
            bad(e.index, `rollout ${short(digest)}: an advance from ${stage.name} without its passed gate`);
          else if (!next || e.to !== next.name)
            bad(
              e.index,
              `rollout ${short(digest)}: an advance to ${str(e.to)}, but the plan's next stage is ${next?.name ?? 'none (complete it)'}`,
            );
          else {
            r.stage++;
            r.started = undefined;
            r.gate = undefined;
          }
          return true;
        }
        case 'rollout-rolled-back': {
          const r = stateOf(e, 'a rollback');
          if (r) checkRollback(e, r, digest);
          return true;
        }
        case 'rollout-completed': {
          const r = stateOf(e, 'a completion');
          if (!r) return true;
          const last = r.stage === r.plan.stages.length - 1;
          if (!last || !r.started || r.gate !== 'pass')
            bad(e.index, `rollout ${short(digest)}: completed without the passed gate of its last stage`);
          else if (e.version !== r.plan.candidate)
            bad(
              e.index,
              `rollout ${short(digest)}: completed with a version that is not the plan's candidate`,
            );
          r.finished = { how: 'completed', index: e.index };
          counts.completed++;
          return true;
        }
        default:
          return false;
      }
    },

    aliasMoveOf(digest, index) {
      const r = rollouts.get(digest);
      if (!r) return undefined;
      if (r.finished?.how !== 'completed') {
        bad(index, `an alias moved by rollout ${short(digest)}, which has not completed`);
        return undefined;
      }
      if (r.aliasMoved) {
        bad(index, `an alias moved a second time by rollout ${short(digest)}`);
        return undefined;
      }
      r.aliasMoved = true;
      return { alias: rolloutAlias(r.plan), version: r.plan.candidate, previous: r.plan.production };
    },

    views() {
      const out = new Map<string, RolloutView>();
      for (const [digest, r] of rollouts)
        out.set(digest, {
          plan: r.plan,
          stage: r.plan.stages[r.stage]!.name,
          sites: r.started ? r.started.sites : null,
          gate: r.gate ?? null,
          history: r.history.map((h) => ({ stage: h.stage, sites: [...h.sites] })),
          status: r.finished ? r.finished.how : r.history.length > 0 ? 'running' : 'approved',
        });
      return out;
    },

    facts() {
      if (rollouts.size === 0) return [];
      return [
        `rollouts: ${rollouts.size} plans approved by quorum, ${counts.gates} gates recomputed from their figures, ${counts.completed} completed, ${counts.rolledBack} rolled back`,
      ];
    },
  };
}
