/**
 * The subjects of the two staged-rollout proposal kinds, checked before they are proposed:
 * `approve-rollout` (a rollout plan for this consortium whose listed sites are institutions of the
 * policy in force, whose canary draw fits their number, whose candidate is a model version the log
 * recorded, whose `production` is the version the alias points at now, and whose bound evaluation plans
 * are approved) and `rollback` ({rollout, reason}: an approved rollout). Executing a rollout (stages,
 * shadow scoring, canary serving, automatic rollback) is not built; these only gate the proposals.
 */
import { EntenteError } from '../core/errors.ts';
import {
  computeRolloutPlanDigest,
  type Policy,
  type Proposal,
  parseRolloutPlan,
  rolloutAlias,
} from '../governance/index.ts';
import type { SubjectDeps } from './proposal-subjects.ts';

const refuse = (code: 'POLICY_REFUSED' | 'CONFLICT' | 'NOT_FOUND', field: string, message: string): never => {
  throw new EntenteError(code, `${field}: ${message}`, { field });
};

/** Approved (or open, with `open`) proposals of `kind` whose subject digest is `digest`. */
function proposalsFor(deps: SubjectDeps, kind: string, digest: string, open: boolean) {
  return deps.gov
    .listProposals()
    .filter(
      (row) =>
        row.kind === kind &&
        (row.status === 'approved' || (open && row.status === 'open')) &&
        (JSON.parse(row.proposal_json) as Proposal).subjectSha256 === digest,
    );
}

/** Validates a rollout plan against the policy in force, the registry and the approved evaluation plans. */
export function checkRolloutPlan(deps: SubjectDeps, policy: Policy, subject: unknown): unknown {
  const plan = parseRolloutPlan(subject);
  if (plan.consortium !== policy.consortium)
    refuse(
      'POLICY_REFUSED',
      'rollout.consortium',
      `the plan is for "${plan.consortium}", not for "${policy.consortium}"`,
    );
  const institutions = Object.entries(policy.members)
    .filter(([, m]) => m.roles.includes('institution'))
    .map(([id]) => id);
  plan.stages.forEach((stage, i) => {
    if (Array.isArray(stage.sites)) {
      (stage.sites as readonly string[]).forEach((site, j) => {
        if (!institutions.includes(site))
          refuse(
            'POLICY_REFUSED',
            `rollout.stages.${i}.sites.${j}`,
            `"${site}" is not an institution of the policy in force`,
          );
      });
    } else {
      const { draw } = stage.sites as { draw: number };
      if (draw > institutions.length)
        refuse(
          'POLICY_REFUSED',
          `rollout.stages.${i}.sites.draw`,
          `draws ${draw} sites, but the policy has ${institutions.length} institutions`,
        );
    }
    const bound = stage.gate.evaluationPlan;
    if (bound !== undefined && proposalsFor(deps, 'approve-evaluation-plan', bound, false).length === 0)
      refuse(
        'CONFLICT',
        `rollout.stages.${i}.gate.evaluationPlan`,
        'names no approved evaluation plan (approve it first: the gate is pre-registered)',
      );
  });
  if (!deps.registryView)
    throw new EntenteError('UNAVAILABLE', 'rollout: this coordinator keeps no model registry', {
      field: 'rollout',
    });
  const view = deps.registryView();
  if (!view.versions.some((v) => v.id === plan.candidate))
    refuse('NOT_FOUND', 'rollout.candidate', 'is not a model version the log recorded');
  const alias = rolloutAlias(plan);
  const current = view.aliases.find((a) => a.alias === alias)?.version ?? null;
  if (current !== plan.production)
    refuse(
      'CONFLICT',
      'rollout.production',
      `alias "${alias}" points at ${current ?? 'nothing'}, not at the plan's production version`,
    );
  const digest = computeRolloutPlanDigest(plan);
  const existing = proposalsFor(deps, 'approve-rollout', digest, true)[0];
  if (existing)
    refuse(
      'CONFLICT',
      'rollout',
      `this plan is already ${existing.status === 'open' ? 'proposed' : 'approved'} (proposal ${existing.id.slice(0, 16)}…)`,
    );
  return JSON.parse(JSON.stringify(plan)) as unknown;
}

/** {rollout, reason}: the digest of an approved rollout plan and why it is rolled back by hand. */
export function checkRollback(deps: SubjectDeps, obj: Record<string, unknown>): unknown {
  const rollout = obj.rollout;
  if (typeof rollout !== 'string' || !/^[0-9a-f]{64}$/.test(rollout))
    throw new EntenteError('INVALID_ARGUMENT', 'subject.rollout: must be a rollout plan digest', {
      field: 'subject.rollout',
    });
  const reason = obj.reason;
  if (typeof reason !== 'string' || reason.trim().length === 0 || reason.length > 2000)
    throw new EntenteError('INVALID_ARGUMENT', 'subject.reason: must be 1-2000 characters', {
      field: 'subject.reason',
    });
  if (proposalsFor(deps, 'approve-rollout', rollout, false).length === 0)
    refuse('NOT_FOUND', 'subject.rollout', 'names no approved rollout plan');
  const pending = deps.gov
    .listProposals()
    .find(
      (row) =>
        row.kind === 'rollback' &&
        (row.status === 'open' || row.status === 'approved') &&
        (JSON.parse(row.subject_json) as { rollout?: unknown }).rollout === rollout,
    );
  if (pending)
    refuse(
      'CONFLICT',
      'subject.rollout',
      `a rollback of this rollout is already ${pending.status === 'open' ? 'proposed' : 'approved'}`,
    );
  return { rollout, reason };
}
