/**
 * The evaluation part of the governance trail (verify-trail.ts calls it): pre-registered plans and what
 * follows them, replayed from the log. Order an auditor requires for each plan digest: an approved
 * `approve-evaluation-plan` proposal, then one `evaluation-blinded` (a commitment per model, labels
 * model-A…), then one `evaluation-result` per committed label, then `evaluation-unblinded` (openings that
 * match the commitments and are exactly the plan's models), then `evaluation-decision` (the outcome the
 * plan's rule gives on the logged figures). Anything out of order, for another plan, or that does not
 * recompute is a problem. Pure; never throws on bad data.
 */
import {
  type BlindCommitment,
  type BlindOpening,
  blindLabels,
  buildEvaluationDecisionBody,
  decisionValuesOf,
  type EvaluationPlan,
  verifyUnblinding,
} from './evaluation-plan.ts';

interface PlanState {
  readonly plan: EvaluationPlan;
  readonly approvedAt: number;
  commitments?: BlindCommitment[];
  readonly results: Map<
    string,
    { index: number; metrics: Record<string, unknown>; sliceMetrics?: Record<string, unknown> }
  >;
  openings?: BlindOpening[];
  unblindedAt?: number;
  decided?: { index: number; outcome: string };
}

export interface EvaluationTrailEntry {
  readonly kind: string;
  readonly index: number;
  readonly [field: string]: unknown;
}

export interface EvaluationTrail {
  /** An approve-evaluation-plan proposal for `plan` (digest `digest`) was approved at `index`. */
  approve(digest: string, plan: EvaluationPlan, index: number): void;
  /** Checks one entry; false when it is not an evaluation entry. */
  check(entry: EvaluationTrailEntry): boolean;
  facts(): string[];
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const short = (digest: string): string => `${digest.slice(0, 12)}…`;
const records = (v: unknown): Record<string, unknown>[] =>
  Array.isArray(v)
    ? v.map((x) => (x !== null && typeof x === 'object' ? (x as Record<string, unknown>) : {}))
    : [];

export function createEvaluationTrail(bad: (index: number, message: string) => void): EvaluationTrail {
  const plans = new Map<string, PlanState>();
  const counts = { results: 0, decisions: 0 };

  /** The approved plan an entry names, or undefined (reported). */
  const planOf = (e: EvaluationTrailEntry, what: string): PlanState | undefined => {
    const digest = str(e.plan);
    const p = plans.get(digest);
    if (!p)
      bad(
        e.index,
        `${what} names plan ${short(digest)}, which no approved approve-evaluation-plan proposal before it pre-registered`,
      );
    return p;
  };

  return {
    approve(digest, plan, index) {
      if (!plans.has(digest)) plans.set(digest, { plan, approvedAt: index, results: new Map() });
    },

    check(e) {
      switch (e.kind) {
        case 'evaluation-blinded': {
          const p = planOf(e, 'a blinding');
          if (!p) return true;
          if (p.commitments) {
            bad(e.index, `plan ${short(str(e.plan))} is blinded twice`);
            return true;
          }
          const commitments = records(e.commitments).map((c) => ({
            label: str(c.label),
            commitment: str(c.commitment),
          }));
          const expected = blindLabels(p.plan.models.length).join(',');
          if (commitments.map((c) => c.label).join(',') !== expected)
            bad(
              e.index,
              `the blinding of plan ${short(str(e.plan))} must commit to labels ${expected}, one per model`,
            );
          p.commitments = commitments;
          return true;
        }
        case 'evaluation-result': {
          counts.results++;
          const p = planOf(e, `the result for ${str(e.label)}`);
          if (!p) return true;
          const label = str(e.label);
          if (!p.commitments) {
            bad(e.index, `a result for plan ${short(str(e.plan))}, whose labels are not committed yet`);
            return true;
          }
          if (!p.commitments.some((c) => c.label === label)) {
            bad(
              e.index,
              `label ${label} is not among the blinding commitments of plan ${short(str(e.plan))}`,
            );
            return true;
          }
          if (p.unblindedAt !== undefined) {
            bad(e.index, `a result for ${label} logged after plan ${short(str(e.plan))} was unblinded`);
            return true;
          }
          const first = p.results.get(label);
          if (first) {
            bad(
              e.index,
              `a second result for ${label} of plan ${short(str(e.plan))} (first: entry ${first.index})`,
            );
            return true;
          }
          const metrics = (e.metrics ?? {}) as Record<string, unknown>;
          const sliceMetrics = e.sliceMetrics as Record<string, unknown> | undefined;
          p.results.set(label, { index: e.index, metrics, ...(sliceMetrics ? { sliceMetrics } : {}) });
          return true;
        }
        case 'evaluation-disclosure': {
          const p = planOf(e, `the disclosure of ${str(e.site)}'s figures`);
          if (!p) return true;
          const label = str(e.label);
          if (p.plan.perSite !== true)
            bad(
              e.index,
              `plan ${short(str(e.plan))} asks for no per-site figures, yet ${str(e.site)}'s were disclosed`,
            );
          else if (!p.results.has(label))
            bad(e.index, `a disclosure for ${label} of plan ${short(str(e.plan))} before its secure result`);
          else if (p.unblindedAt !== undefined)
            bad(e.index, `a disclosure for ${label} logged after plan ${short(str(e.plan))} was unblinded`);
          return true;
        }
        case 'evaluation-unblinded': {
          const p = planOf(e, 'an unblinding');
          if (!p) return true;
          const digest = str(e.plan);
          if (p.unblindedAt !== undefined) {
            bad(e.index, `plan ${short(digest)} is unblinded twice`);
            return true;
          }
          if (!p.commitments) {
            bad(e.index, `an unblinding of plan ${short(digest)}, whose labels were never committed`);
            return true;
          }
          const missing = p.commitments.filter((c) => !p.results.has(c.label)).map((c) => c.label);
          if (missing.length > 0)
            bad(e.index, `plan ${short(digest)} is unblinded before the results of ${missing.join(', ')}`);
          const openings = records(e.openings).map((o) => ({
            label: str(o.label),
            name: str(o.name),
            sha256: str(o.sha256),
            salt: str(o.salt),
          }));
          const verdict = verifyUnblinding(digest, p.commitments, openings, p.plan);
          for (const problem of verdict.problems.slice(0, 8))
            bad(e.index, `unblinding of plan ${short(digest)}: ${problem}`);
          p.openings = openings;
          p.unblindedAt = e.index;
          return true;
        }
        case 'evaluation-decision': {
          counts.decisions++;
          const p = planOf(e, 'a decision');
          if (!p) return true;
          const digest = str(e.plan);
          if (p.decided) {
            bad(e.index, `plan ${short(digest)} is decided twice (first: entry ${p.decided.index})`);
            return true;
          }
          p.decided = { index: e.index, outcome: str(e.outcome) };
          if (p.unblindedAt === undefined || !p.openings) {
            bad(e.index, `a decision on plan ${short(digest)} before its unblinding`);
            return true;
          }
          let expected: ReturnType<typeof buildEvaluationDecisionBody>;
          try {
            expected = buildEvaluationDecisionBody(digest, p.plan, decisionValuesOf(p.openings, p.results));
          } catch {
            bad(e.index, `the decision rule of plan ${short(digest)} does not parse`);
            return true;
          }
          const logged = records(e.clauses).map((c) => ({
            text: c.text,
            left: c.left,
            right: c.right,
            holds: c.holds,
          }));
          if (e.outcome !== expected.outcome)
            bad(
              e.index,
              `the decision on plan ${short(digest)} says ${str(e.outcome)}, but its rule gives ${expected.outcome} on the logged results`,
            );
          else if (JSON.stringify(logged) !== JSON.stringify(expected.clauses))
            bad(
              e.index,
              `the clauses of the decision on plan ${short(digest)} are not those its rule gives on the logged results`,
            );
          return true;
        }
        default:
          return false;
      }
    },

    facts() {
      if (plans.size === 0 && counts.results === 0) return [];
      const decided = [...plans.values()].filter((p) => p.decided).length;
      return [
        `evaluation: ${plans.size} plans pre-registered by quorum, ${counts.results} blinded results, ${decided} decisions recomputed from the plan's rule`,
      ];
    },
  };
}
