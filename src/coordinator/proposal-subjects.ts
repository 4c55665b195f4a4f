/**
 * The subject of a governance proposal checked for its kind under the policy in force, and returned in
 * the form that is hashed and recorded: a next policy (version and consortium), an admission, a run
 * configuration (against the policy's rules), a cancellation or a release of an existing run, a
 * replacement identity key the member presented, an evaluation plan, a model alias move, a staged
 * rollout plan or its manual rollback (rollout-subjects.ts), or the incidents a resumption closes. Every refusal is a coded error naming the field.
 */
import { EntenteError } from '../core/errors.ts';
import {
  type Policy,
  type Proposal,
  type ProposalKind,
  computeEvaluationPlanDigest,
  parseEvaluationPlan,
  parsePolicy,
} from '../governance/index.ts';
import { checkRollback, checkRolloutPlan } from './rollout-subjects.ts';
import { parseAliasName, resolveVersion } from '../registry/index.ts';
import type { GovernanceDeps } from './governance.ts';

/** What the checks read: the workspace, the stores, the run check, the runs' final models, the registry. */
export type SubjectDeps = Pick<
  GovernanceDeps,
  'ws' | 'store' | 'gov' | 'checkRun' | 'finalModelOf' | 'registryView'
>;

/** Validates a subject for its kind and returns it in the form that is hashed and recorded. */
export function checkProposalSubject(
  deps: SubjectDeps,
  policy: Policy | undefined,
  presentedKeyOf: (member: string) => string | undefined,
  kind: ProposalKind,
  subject: unknown,
): unknown {
  if (kind !== 'adopt-policy' && policy === undefined)
    throw new EntenteError('CONFLICT', `kind: no policy is in force yet; a ${kind} proposal needs one`, {
      field: 'kind',
    });
  const obj = (subject ?? {}) as Record<string, unknown>;
  switch (kind) {
    case 'adopt-policy': {
      const next = parsePolicy(subject);
      const version = policy ? policy.version + 1 : 1;
      if (next.version !== version)
        throw new EntenteError('INVALID_CONFIG', `policy.version: must be ${version}`, {
          field: 'policy.version',
        });
      if (next.consortium !== deps.ws.consortium.consortium)
        throw new EntenteError(
          'INVALID_CONFIG',
          `policy.consortium: must be "${deps.ws.consortium.consortium}"`,
          {
            field: 'policy.consortium',
          },
        );
      return JSON.parse(JSON.stringify(next)) as unknown;
    }
    case 'admit-member': {
      const member = obj.member;
      if (typeof member !== 'string' || !/^[a-z0-9][a-z0-9._-]*$/.test(member) || member.length > 64)
        throw new EntenteError('INVALID_ARGUMENT', 'subject.member: must be a member id', {
          field: 'subject.member',
        });
      if (policy!.members[member])
        throw new EntenteError('CONFLICT', `subject.member: "${member}" is already a member`, {
          field: 'subject.member',
        });
      const next = admittedPolicy(policy!, member, obj.roles);
      return { member, roles: next.members[member]!.roles };
    }
    case 'start-run': {
      deps.checkRun(subject, policy!);
      return JSON.parse(JSON.stringify(subject)) as unknown;
    }
    case 'cancel-run': {
      const run = obj.run;
      if (typeof run !== 'string')
        throw new EntenteError('INVALID_ARGUMENT', 'subject.run: must be a run id', {
          field: 'subject.run',
        });
      const row = deps.store.getRun(run);
      if (!row)
        throw new EntenteError('NOT_FOUND', `subject.run: run "${run.slice(0, 64)}" does not exist`, {
          field: 'subject.run',
        });
      if (row.status !== 'running')
        throw new EntenteError('CONFLICT', `subject.run: run "${run}" already ended (${row.status})`, {
          field: 'subject.run',
        });
      return { run };
    }
    case 'release-model': {
      const run = obj.run;
      if (typeof run !== 'string')
        throw new EntenteError('INVALID_ARGUMENT', 'subject.run: must be a run id', {
          field: 'subject.run',
        });
      const model = deps.finalModelOf(run);
      if (!model)
        throw new EntenteError('CONFLICT', `subject.run: run "${run}" has not completed`, {
          field: 'subject.run',
        });
      return { run, modelSha256: model };
    }
    case 'replace-identity-key': {
      const member = obj.member;
      if (typeof member !== 'string' || !policy!.members[member])
        throw new EntenteError(
          'INVALID_ARGUMENT',
          'subject.member: must be a member of the policy in force',
          {
            field: 'subject.member',
          },
        );
      const identityKey = presentedKeyOf(member);
      if (identityKey === undefined)
        throw new EntenteError(
          'CONFLICT',
          `subject.member: "${member}" has presented no new identity key (it re-enrolls first)`,
          { field: 'subject.member' },
        );
      if (obj.identityKey !== undefined && obj.identityKey !== identityKey)
        throw new EntenteError('CONFLICT', `subject.identityKey: not the key "${member}" presented`, {
          field: 'subject.identityKey',
        });
      return { member, identityKey };
    }
    case 'approve-evaluation-plan': {
      // The plan must parse (its decision rule too), be for this consortium, and use a data schema the
      // policy allows. Its model digests are not looked up: a compared model may come from outside
      // the consortium's runs (e.g. a baseline trained elsewhere); the evaluation round fetches them.
      const plan = parseEvaluationPlan(subject);
      if (plan.consortium !== policy!.consortium)
        throw new EntenteError(
          'POLICY_REFUSED',
          `plan.consortium: the plan is for "${plan.consortium}", not for "${policy!.consortium}"`,
          { field: 'plan.consortium' },
        );
      if (
        plan.dataSchemaDigest !== undefined &&
        !policy!.exchange.dataSchemaDigests.includes(plan.dataSchemaDigest)
      )
        throw new EntenteError(
          'POLICY_REFUSED',
          'plan.dataSchemaDigest: not among the data schemas the policy allows (exchange.dataSchemaDigests)',
          { field: 'plan.dataSchemaDigest' },
        );
      // One plan, one approval: a plan already approved or awaiting signatures is not proposed again.
      const digest = computeEvaluationPlanDigest(plan);
      for (const row of deps.gov.listProposals()) {
        if (row.kind !== kind || (row.status !== 'open' && row.status !== 'approved')) continue;
        if ((JSON.parse(row.proposal_json) as Proposal).subjectSha256 === digest)
          throw new EntenteError(
            'CONFLICT',
            `plan: this plan is already ${row.status === 'open' ? 'proposed' : 'approved'} (proposal ${row.id.slice(0, 16)}…)`,
            { field: 'plan' },
          );
      }
      return JSON.parse(JSON.stringify(plan)) as unknown;
    }
    case 'move-alias':
      return checkAliasMove(deps, obj);
    case 'approve-rollout':
      return checkRolloutPlan(deps, policy!, subject);
    case 'rollback':
      return checkRollback(deps, obj);
    case 'resume-runs': {
      const open = deps.gov.openIncidents().map((i) => i.id);
      if (open.length === 0)
        throw new EntenteError('CONFLICT', 'subject: no incident is open', { field: 'subject' });
      return { incidents: open };
    }
  }
}

/**
 * {alias, version, previous}: the alias (validated), the version it will point at (named by digest, a
 * unique prefix or another alias: recorded as the full digest of a model version the log holds) and the
 * version it points at now (null for a new alias; when the proposer states it, it must be that one).
 */
function checkAliasMove(deps: SubjectDeps, obj: Record<string, unknown>): unknown {
  const alias = parseAliasName(obj.alias, 'subject.alias');
  if (typeof obj.version !== 'string')
    throw new EntenteError(
      'INVALID_ARGUMENT',
      'subject.version: must be a model version digest or an alias',
      {
        field: 'subject.version',
      },
    );
  if (!deps.registryView)
    throw new EntenteError('UNAVAILABLE', 'subject: this coordinator keeps no model registry', {
      field: 'subject',
    });
  const view = deps.registryView();
  const version = resolveVersion(view, obj.version, 'subject.version').id;
  const previous = view.aliases.find((a) => a.alias === alias)?.version ?? null;
  if (obj.previous !== undefined && obj.previous !== previous)
    throw new EntenteError(
      'CONFLICT',
      `subject.previous: alias "${alias}" points at ${previous ?? 'nothing'}, not at ${String(obj.previous).slice(0, 64)}`,
      { field: 'subject.previous' },
    );
  if (previous === version)
    throw new EntenteError('CONFLICT', `subject.version: alias "${alias}" already points at ${version}`, {
      field: 'subject.version',
    });
  return { alias, version, previous };
}

/** The policy with `member` added in `roles` (validated), one version up. */
export function admittedPolicy(policy: Policy, member: string, roles: unknown): Policy {
  return parsePolicy({
    ...JSON.parse(JSON.stringify(policy)),
    version: policy.version + 1,
    members: { ...policy.members, [member]: { roles } },
  });
}
