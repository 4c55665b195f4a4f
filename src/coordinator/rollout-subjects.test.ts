/**
 * Tests of the approve-rollout and rollback subject checks (rollout-subjects.ts) with stand-in stores:
 * consortium, sites and draw against the policy, candidate and production against the registry, bound
 * evaluation plans approved, one proposal per plan, a rollback only of an approved rollout.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeRolloutPlanDigest, type Policy, parsePolicy, parseRolloutPlan } from '../governance/index.ts';
import type { SubjectDeps } from './proposal-subjects.ts';
import { checkRollback, checkRolloutPlan } from './rollout-subjects.ts';

const CANDIDATE = 'c'.repeat(64);
const PRODUCTION = 'b'.repeat(64);
const EVAL = 'e'.repeat(64);

const policy: Policy = parsePolicy({
  version: 1,
  consortium: 'demo',
  members: {
    'hospital-a': { roles: ['institution'] },
    'hospital-b': { roles: ['institution'] },
    'clinic-c': { roles: ['institution'] },
    operator: { roles: ['coordinator-operator'] },
  },
  exchange: {
    tensors: 'model-deltas',
    metrics: ['loss'],
    maxRounds: 10,
    minParticipantsPerRound: 3,
    secureAggregation: 'required',
    differentialPrivacy: { required: false },
    clipping: {},
    dataSchemaDigests: ['d'.repeat(64)],
  },
  agreements: [],
  approvals: {
    adoptPolicy: { member: 'hospital-a' },
    admitMember: { member: 'hospital-a' },
    startRun: { member: 'hospital-a' },
    releaseModel: { member: 'hospital-a' },
  },
});

// biome-ignore lint/suspicious/noExplicitAny: plan inputs are mutated freely as JSON
function plan(): any {
  return {
    consortium: 'demo',
    title: 'Roll out',
    candidate: CANDIDATE,
    production: PRODUCTION,
    stages: [
      { name: 'canary', sites: { draw: 1 }, minRows: 10, gate: { rule: 'candidate.accuracy >= 0.8' } },
      {
        name: 'full',
        sites: ['hospital-a', 'hospital-b', 'clinic-c'],
        minRows: 10,
        gate: { rule: 'candidate.accuracy >= 0.8' },
      },
    ],
    createdAt: '2026-01-31T12:00:00Z',
  };
}

interface Row {
  id: string;
  kind: string;
  status: string;
  subjectSha256: string;
  subject?: unknown;
}

function deps(rows: Row[] = [], production: string | null = PRODUCTION, registry = true): SubjectDeps {
  return {
    gov: {
      listProposals: () =>
        rows.map((r) => ({
          id: r.id,
          kind: r.kind,
          status: r.status,
          proposal_json: JSON.stringify({ kind: r.kind, subjectSha256: r.subjectSha256 }),
          subject_json: JSON.stringify(r.subject ?? {}),
        })),
    },
    ...(registry
      ? {
          registryView: () => ({
            versions: [{ id: CANDIDATE }, { id: PRODUCTION }],
            aliases: production === null ? [] : [{ alias: 'production', version: production }],
          }),
        }
      : {}),
  } as unknown as SubjectDeps;
}

const refusedWith = (f: () => unknown, code: string, field: string): void => {
  assert.throws(f, (err: { code?: string; field?: string }) => {
    assert.equal(err.code, code);
    assert.equal(err.field, field);
    return true;
  });
};

describe('approve-rollout subject', () => {
  it('accepts a plan for this consortium, its institutions and the registry’s versions', () => {
    const subject = checkRolloutPlan(deps(), policy, plan());
    assert.deepEqual(subject, plan());
  });

  it('refuses another consortium, a site that is not an institution, a draw larger than them', () => {
    refusedWith(
      () => checkRolloutPlan(deps(), policy, { ...plan(), consortium: 'other' }),
      'POLICY_REFUSED',
      'rollout.consortium',
    );
    const p = plan();
    p.stages[1].sites = ['hospital-a', 'operator'];
    refusedWith(() => checkRolloutPlan(deps(), policy, p), 'POLICY_REFUSED', 'rollout.stages.1.sites.1');
    const q = plan();
    q.stages[0].sites = { draw: 4 };
    refusedWith(() => checkRolloutPlan(deps(), policy, q), 'POLICY_REFUSED', 'rollout.stages.0.sites.draw');
  });

  it('refuses an unknown candidate and a production that is not the alias’s version', () => {
    refusedWith(
      () => checkRolloutPlan(deps(), policy, { ...plan(), candidate: 'f'.repeat(64) }),
      'NOT_FOUND',
      'rollout.candidate',
    );
    refusedWith(() => checkRolloutPlan(deps([], null), policy, plan()), 'CONFLICT', 'rollout.production');
    assert.ok(checkRolloutPlan(deps([], null), policy, { ...plan(), production: null }));
    refusedWith(
      () => checkRolloutPlan(deps([], PRODUCTION, false), policy, plan()),
      'UNAVAILABLE',
      'rollout',
    );
  });

  it('needs a bound evaluation plan approved first, and proposes a plan once', () => {
    const p = plan();
    p.stages[0].gate.evaluationPlan = EVAL;
    refusedWith(
      () => checkRolloutPlan(deps(), policy, p),
      'CONFLICT',
      'rollout.stages.0.gate.evaluationPlan',
    );
    const approvedEval = {
      id: 'x1',
      kind: 'approve-evaluation-plan',
      status: 'approved',
      subjectSha256: EVAL,
    };
    assert.ok(checkRolloutPlan(deps([approvedEval]), policy, p));
    const digest = computeRolloutPlanDigest(parseRolloutPlan(plan()));
    const open = { id: 'x2', kind: 'approve-rollout', status: 'open', subjectSha256: digest };
    refusedWith(() => checkRolloutPlan(deps([open]), policy, plan()), 'CONFLICT', 'rollout');
  });
});

describe('rollback subject', () => {
  const digest = computeRolloutPlanDigest(parseRolloutPlan(plan()));
  const approved = { id: 'r1', kind: 'approve-rollout', status: 'approved', subjectSha256: digest };
  it('names an approved rollout and a reason', () => {
    assert.deepEqual(checkRollback(deps([approved]), { rollout: digest, reason: 'alarms at a site' }), {
      rollout: digest,
      reason: 'alarms at a site',
    });
    refusedWith(
      () => checkRollback(deps([]), { rollout: digest, reason: 'x' }),
      'NOT_FOUND',
      'subject.rollout',
    );
    refusedWith(
      () => checkRollback(deps([approved]), { rollout: 'nope', reason: 'x' }),
      'INVALID_ARGUMENT',
      'subject.rollout',
    );
    refusedWith(
      () => checkRollback(deps([approved]), { rollout: digest, reason: ' ' }),
      'INVALID_ARGUMENT',
      'subject.reason',
    );
  });
  it('is proposed once per rollout', () => {
    const pending = {
      id: 'r2',
      kind: 'rollback',
      status: 'open',
      subjectSha256: '1'.repeat(64),
      subject: { rollout: digest },
    };
    refusedWith(
      () => checkRollback(deps([approved, pending]), { rollout: digest, reason: 'again' }),
      'CONFLICT',
      'subject.rollout',
    );
  });
});
