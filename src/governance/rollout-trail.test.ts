/**
 * Tests of staged rollouts in the governance trail (rollout-trail.ts through verifyGovernanceTrail): a
 * valid rollout (shadow → canary drawn from a checkpoint → full → completed → alias moved) is accepted,
 * and each forgery an auditor must catch is reported at the entry it breaks: an advance without a
 * passed gate, a gate outcome the figures do not give, wrong canary sites or checkpoint, a stage out of
 * order, a rollback without its cause, a completion without the last gate, anything after the end.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { logEntryBodies } from '../audit/log-entry.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { generateEd25519KeyPem, readEd25519PublicKey, signEd25519 } from '../crypto/signatures.ts';
import { computePolicyDigest, parsePolicy } from './policy.ts';
import { computeProposalDigest, type Proposal, type ProposalKind, signProposal } from './proposal.ts';
import {
  computeRolloutPlanDigest,
  drawCanarySites,
  encodeCircuitBreakerStatement,
  parseRolloutPlan,
} from './rollout-plan.ts';
import { type TrailOptions, verifyGovernanceTrail } from './verify-trail.ts';

type Entry = { kind: string; index: number; at: number; [field: string]: unknown };
// biome-ignore lint/suspicious/noExplicitAny: plan inputs are mutated freely as JSON
type Json = any;

const INSTITUTIONS = ['hospital-a', 'hospital-b', 'hospital-c', 'hospital-d'];
const pems = new Map([...INSTITUTIONS, 'operator'].map((m) => [m, generateEd25519KeyPem().privateKeyPem]));
const encode = (v: unknown): Uint8Array => new TextEncoder().encode(canonicalizeJson(v));
const digestOf = (v: unknown): string => sha256Hex(encode(v));
const CANDIDATE = 'c1'.repeat(32);
const PRODUCTION = 'b1'.repeat(32);
const HOUR = 3_600_000;

const policy = JSON.parse(
  JSON.stringify(
    parsePolicy({
      version: 1,
      consortium: 'hospitals-eu',
      members: {
        operator: { roles: ['coordinator-operator'] },
        ...Object.fromEntries(INSTITUTIONS.map((m) => [m, { roles: ['institution'] }])),
      },
      exchange: {
        tensors: 'model-deltas',
        metrics: ['accuracy'],
        maxRounds: 10,
        minParticipantsPerRound: 3,
        secureAggregation: 'required',
        differentialPrivacy: { required: false },
        clipping: {},
        dataSchemaDigests: ['d'.repeat(64)],
      },
      agreements: [],
      approvals: {
        adoptPolicy: { of: 2, members: INSTITUTIONS },
        admitMember: { of: 2, members: INSTITUTIONS },
        startRun: { of: 2, members: INSTITUTIONS },
        releaseModel: { of: 2, members: INSTITUTIONS },
      },
    }),
  ),
);
const policySha256 = computePolicyDigest(parsePolicy(policy));

function planInput(): Json {
  return {
    consortium: 'hospitals-eu',
    title: 'Roll out the retrained model',
    candidate: CANDIDATE,
    production: PRODUCTION,
    stages: [
      {
        name: 'shadow',
        sites: ['hospital-a', 'hospital-b', 'hospital-c'],
        minRows: 100,
        gate: { rule: 'paired.accuracyDifference >= -0.01 and paired.mcnemarP >= 0.05' },
      },
      {
        name: 'canary',
        sites: { draw: 2 },
        minDurationHours: 1,
        gate: { rule: 'candidate.accuracy >= production.accuracy - 0.02' },
      },
      { name: 'full', sites: INSTITUTIONS, minRows: 10, gate: { rule: 'candidate.accuracy >= 0.8' } },
    ],
    createdAt: '2026-01-31T12:00:00Z',
  };
}

class Builder {
  readonly entries: Entry[] = [];
  private readonly proposals = new Map<string, Proposal>();
  private clock = 1_736_000_000_000;

  add(kind: string, body: Record<string, unknown>, advanceMs = 60_000): number {
    this.clock += advanceMs;
    const index = this.entries.length;
    this.entries.push({ kind, index, at: this.clock, prev: '', ...body });
    return index;
  }

  propose(kind: ProposalKind, subject: unknown): string {
    const proposal: Proposal = {
      kind,
      subjectSha256: digestOf(subject),
      policySha256,
      createdAt: `2025-01-31T12:${String(this.proposals.size).padStart(2, '0')}:00Z`,
    };
    const id = computeProposalDigest(proposal);
    this.proposals.set(id, proposal);
    this.add('proposal-created', {
      proposal: id,
      proposalKind: kind,
      subjectSha256: proposal.subjectSha256,
      policySha256,
      createdAt: proposal.createdAt,
      proposer: 'operator',
      subject,
    });
    return id;
  }

  approve(id: string, signers: readonly string[]): number {
    for (const s of signers) {
      const { signature } = signProposal(this.proposals.get(id)!, s, pems.get(s)!);
      this.add('proposal-signed', {
        proposal: id,
        signer: s,
        signature: Buffer.from(signature).toString('base64'),
      });
    }
    return this.add('proposal-decided', {
      proposal: id,
      outcome: 'approved',
      signers: [...signers].sort(),
      missing: '',
    });
  }
}

const shadowPass = { paired: { rows: 200, accuracyDifference: 0.01, mcnemarP: 0.4 } };
const canaryPass = { candidate: { accuracy: 0.91, rows: 80 }, production: { accuracy: 0.9, rows: 900 } };
const fullPass = { candidate: { accuracy: 0.9, rows: 1000 } };

interface Rollout {
  b: Builder;
  digest: string;
  proposal: string;
  at: Record<string, number>;
}

/** The consortium founded, both versions recorded, production pointed at, and the rollout approved. */
function approvedRollout(plan: Json = planInput()): Rollout {
  const b = new Builder();
  const at: Record<string, number> = {};
  b.add('log-created', { origin: 'o', consortium: 'hospitals-eu', logKey: 'k', witnesses: [], quorum: 0 });
  for (const m of [...INSTITUTIONS, 'operator'])
    b.add('member-enrolled', {
      member: m,
      roles: [],
      tlsCertSha256: digestOf(`tls:${m}`),
      identityCertSha256: digestOf(`id:${m}`),
      identityKey: Buffer.from(readEd25519PublicKey(pems.get(m)!)).toString('base64'),
      notAfter: '2027-01-01T00:00:00Z',
      renewal: false,
    });
  const adopt = b.propose('adopt-policy', policy);
  b.approve(adopt, [...INSTITUTIONS, 'operator']);
  b.add('policy-adopted', { policySha256, policy, version: 1, proposal: adopt });
  b.add('model-released', {
    run: 'r0',
    round: 1,
    modelIn: PRODUCTION,
    modelSha256: PRODUCTION,
    provenanceSha256: 'e'.repeat(64),
  });
  const move = b.propose('move-alias', { alias: 'production', version: PRODUCTION, previous: null });
  b.approve(move, ['hospital-a', 'hospital-b']);
  b.add('alias-moved', { alias: 'production', version: PRODUCTION, previous: null, proposal: move });
  b.add('model-released', {
    run: 'r1',
    round: 1,
    modelIn: PRODUCTION,
    modelSha256: CANDIDATE,
    provenanceSha256: 'e'.repeat(64),
  });
  const proposal = b.propose('approve-rollout', plan);
  at.approved = b.approve(proposal, ['hospital-a', 'hospital-c']);
  return { b, digest: computeRolloutPlanDigest(parseRolloutPlan(plan)), proposal, at };
}

const ROOT = '5e'.repeat(32);
function canaryStart(r: Rollout, rootHash = ROOT): number {
  const size = r.b.entries.length;
  const sites = drawCanarySites({
    planDigest: r.digest,
    checkpointRootHash: rootHash,
    checkpointSize: size,
    members: INSTITUTIONS,
    count: 2,
  });
  return r.b.add('rollout-stage-started', {
    rollout: r.digest,
    stage: 'canary',
    sites,
    checkpoint: { size, rootHash },
  });
}

/** The whole rollout, valid. */
function validRollout(): Rollout {
  const r = approvedRollout();
  const { b, digest, at } = r;
  at.shadowStarted = b.add('rollout-stage-started', {
    rollout: digest,
    stage: 'shadow',
    sites: ['hospital-c', 'hospital-a', 'hospital-b'],
  });
  at.shadowGate = b.add('rollout-gate', {
    rollout: digest,
    stage: 'shadow',
    outcome: 'pass',
    rows: 200,
    figures: shadowPass,
  });
  at.shadowAdvanced = b.add('rollout-advanced', { rollout: digest, from: 'shadow', to: 'canary' });
  at.canaryStarted = canaryStart(r);
  at.canaryEarly = b.add('rollout-gate', {
    rollout: digest,
    stage: 'canary',
    outcome: 'undetermined',
    rows: 80,
    figures: canaryPass,
  });
  at.canaryGate = b.add(
    'rollout-gate',
    { rollout: digest, stage: 'canary', outcome: 'pass', rows: 80, figures: canaryPass },
    HOUR,
  );
  at.canaryAdvanced = b.add('rollout-advanced', { rollout: digest, from: 'canary', to: 'full' });
  at.fullStarted = b.add('rollout-stage-started', { rollout: digest, stage: 'full', sites: INSTITUTIONS });
  at.fullGate = b.add('rollout-gate', {
    rollout: digest,
    stage: 'full',
    outcome: 'pass',
    rows: 1000,
    figures: fullPass,
  });
  at.completed = b.add('rollout-completed', { rollout: digest, version: CANDIDATE });
  at.aliasMoved = b.add('alias-moved', {
    alias: 'production',
    version: CANDIDATE,
    previous: PRODUCTION,
    proposal: r.proposal,
  });
  return r;
}

const problemsOf = (entries: Entry[], options?: TrailOptions) =>
  verifyGovernanceTrail(entries, options).problems.map((p) => `${p.index}: ${p.message}`);

function expectProblem(entries: Entry[], index: number, pattern: RegExp, options?: TrailOptions): void {
  const problems = problemsOf(entries, options);
  assert.ok(
    problems.some((p) => p.startsWith(`${index}: `) && pattern.test(p)),
    `expected ${pattern} at ${index}, got ${JSON.stringify(problems)}`,
  );
}

/** Replaces an entry by one the trail ignores (indices stay). */
const erase = (entries: Entry[], index: number): void => {
  entries[index] = { kind: 'refusals-summarized', index, at: entries[index]!.at };
};

describe('rollout trail: a valid rollout', () => {
  it('is accepted, counted, and moves the alias to the candidate', () => {
    const r = validRollout();
    assert.deepEqual(problemsOf(r.b.entries), []);
    const report = verifyGovernanceTrail(r.b.entries);
    assert.ok(
      report.facts.some((f) =>
        /rollouts: 1 plans approved by quorum, 4 gates recomputed.*1 completed, 0 rolled back/.test(f),
      ),
      report.facts.join('\n'),
    );
    assert.equal(report.aliases.get('production'), CANDIDATE);
  });

  it('each entry body is a valid log entry of its kind', () => {
    for (const e of validRollout().b.entries.filter((x) => x.kind.startsWith('rollout-'))) {
      const { kind, index: _i, at: _a, prev: _p, ...body } = e;
      const r = (logEntryBodies as Record<string, { safeParse(v: unknown): { success: boolean } }>)[
        kind
      ]!.safeParse(body);
      assert.ok(r.success, kind);
    }
  });

  it('checks the canary checkpoint against the log’s root when the caller can compute it', () => {
    const r = validRollout();
    const size = (r.b.entries[r.at.canaryStarted!]!.checkpoint as { size: number }).size;
    assert.deepEqual(problemsOf(r.b.entries, { rootHashAt: (s) => (s === size ? ROOT : undefined) }), []);
    expectProblem(r.b.entries, r.at.canaryStarted!, /not the log's root at size/, {
      rootHashAt: () => 'ff'.repeat(32),
    });
  });
});

describe('rollout trail: refusals', () => {
  it('an advance without a passed gate (forged)', () => {
    const r = validRollout();
    erase(r.b.entries, r.at.shadowGate!);
    expectProblem(r.b.entries, r.at.shadowAdvanced!, /advance from shadow without its passed gate/);
  });

  it('a gate outcome the plan’s rule does not give on the logged figures', () => {
    const r = validRollout();
    const gate = r.b.entries[r.at.shadowGate!]!;
    gate.figures = { paired: { rows: 200, accuracyDifference: 0.01, mcnemarP: 0.01 } };
    expectProblem(r.b.entries, r.at.shadowGate!, /says pass, but the plan's rule gives fail/);
    gate.figures = shadowPass;
    gate.rows = 99;
    expectProblem(r.b.entries, r.at.shadowGate!, /gives undetermined.*fewer than 100 rows/);
  });

  it('a canary gate passed before the stage’s minimum duration', () => {
    const r = validRollout();
    r.b.entries[r.at.canaryEarly!]!.outcome = 'pass';
    expectProblem(r.b.entries, r.at.canaryEarly!, /gives undetermined.*less than 1 h/);
  });

  it('canary sites that are not the draw, or a checkpoint before the approval', () => {
    const r = validRollout();
    const start = r.b.entries[r.at.canaryStarted!]!;
    const drawn = start.sites as string[];
    start.sites = INSTITUTIONS.filter((s) => !drawn.includes(s));
    expectProblem(r.b.entries, r.at.canaryStarted!, /canary sites are not the draw recomputed/);
    start.sites = drawn;
    start.checkpoint = { size: r.at.approved, rootHash: ROOT };
    expectProblem(r.b.entries, r.at.canaryStarted!, /must include the plan's approval/);
    delete start.checkpoint;
    expectProblem(r.b.entries, r.at.canaryStarted!, /without the checkpoint/);
  });

  it('explicit sites that are not the plan’s', () => {
    const r = validRollout();
    r.b.entries[r.at.fullStarted!]!.sites = ['hospital-a'];
    expectProblem(r.b.entries, r.at.fullStarted!, /the full sites are not the plan's/);
  });

  it('a stage out of order', () => {
    const r = approvedRollout();
    const i = canaryStart(r);
    expectProblem(r.b.entries, i, /stage canary started out of order \(the plan's next stage is shadow\)/);
    const s = validRollout();
    s.b.entries[s.at.shadowAdvanced!]!.to = 'full';
    expectProblem(s.b.entries, s.at.shadowAdvanced!, /advance to full, but the plan's next stage is canary/);
  });

  it('a rollback without its cause', () => {
    const r = approvedRollout();
    r.b.add('rollout-stage-started', {
      rollout: r.digest,
      stage: 'shadow',
      sites: ['hospital-a', 'hospital-b', 'hospital-c'],
    });
    r.b.add('rollout-gate', {
      rollout: r.digest,
      stage: 'shadow',
      outcome: 'pass',
      rows: 200,
      figures: shadowPass,
    });
    const entries = r.b.entries;
    const at = r.b.add('rollout-rolled-back', { rollout: r.digest, stage: 'shadow', cause: 'gate' });
    expectProblem(entries, at, /for a failed gate, but stage shadow has no failed gate/);
    entries[at] = { ...entries[at]!, cause: 'quorum', proposal: 'ab'.repeat(32) };
    expectProblem(entries, at, /by quorum names no approved rollback proposal/);
    entries[at] = { ...entries[at]!, cause: 'circuit-breaker', by: 'hospital-d', proposal: undefined };
    expectProblem(entries, at, /circuit breaker of hospital-d, not a site of stage shadow/);
  });

  it('a completion without the last stage’s passed gate, an alias moved before completion', () => {
    const r = validRollout();
    erase(r.b.entries, r.at.fullGate!);
    expectProblem(r.b.entries, r.at.completed!, /completed without the passed gate of its last stage/);
    const s = validRollout();
    erase(s.b.entries, s.at.completed!);
    expectProblem(s.b.entries, s.at.aliasMoved!, /alias moved by rollout .* which has not completed/);
  });

  it('a step of a rollout no quorum approved', () => {
    const r = approvedRollout();
    const other = 'ee'.repeat(32);
    const i = r.b.add('rollout-stage-started', { rollout: other, stage: 'shadow', sites: ['hospital-a'] });
    expectProblem(r.b.entries, i, /no approved approve-rollout proposal before it approved/);
  });

  it('a stage bound to an evaluation plan that was not approved before the rollout', () => {
    const plan = planInput();
    plan.stages[0].gate.evaluationPlan = '7a'.repeat(32);
    const r = approvedRollout(plan);
    expectProblem(r.b.entries, r.at.approved!, /binds evaluation plan 7a7a.*not approved before the rollout/);
  });
});

describe('rollout trail: rollbacks', () => {
  it('after a failed gate; nothing after it', () => {
    const r = approvedRollout();
    const { b, digest } = r;
    b.add('rollout-stage-started', {
      rollout: digest,
      stage: 'shadow',
      sites: ['hospital-a', 'hospital-b', 'hospital-c'],
    });
    const worse = { paired: { rows: 500, accuracyDifference: -0.05, mcnemarP: 0.001 } };
    b.add('rollout-gate', { rollout: digest, stage: 'shadow', outcome: 'fail', rows: 500, figures: worse });
    const advance = b.add('rollout-advanced', { rollout: digest, from: 'shadow', to: 'canary' });
    expectProblem(b.entries, advance, /advance from shadow without its passed gate/);
    erase(b.entries, advance);
    b.add('rollout-rolled-back', { rollout: digest, stage: 'shadow', cause: 'gate' });
    assert.deepEqual(problemsOf(b.entries), []);
    const late = canaryStart(r);
    expectProblem(b.entries, late, /after it was rolled back/);
  });

  it('by a site’s circuit breaker, signed with its pinned identity key', () => {
    const r = approvedRollout();
    const { b, digest } = r;
    b.add('rollout-stage-started', {
      rollout: digest,
      stage: 'shadow',
      sites: ['hospital-a', 'hospital-b', 'hospital-c'],
    });
    const statement = encodeCircuitBreakerStatement(digest, 'shadow', 'hospital-b');
    const signedBy = (m: string) => Buffer.from(signEd25519(pems.get(m)!, statement)).toString('base64');
    const at = b.add('rollout-rolled-back', {
      rollout: digest,
      stage: 'shadow',
      cause: 'circuit-breaker',
      by: 'hospital-b',
      signature: signedBy('hospital-b'),
    });
    assert.deepEqual(problemsOf(b.entries), []);
    b.entries[at]!.signature = signedBy('hospital-a');
    expectProblem(b.entries, at, /not signed by hospital-b's pinned identity key/);
  });

  it('by an approved rollback quorum, once', () => {
    const r = approvedRollout();
    const { b, digest } = r;
    b.add('rollout-stage-started', {
      rollout: digest,
      stage: 'shadow',
      sites: ['hospital-a', 'hospital-b', 'hospital-c'],
    });
    const rollback = b.propose('rollback', { rollout: digest, reason: 'unexpected alerts' });
    b.approve(rollback, ['hospital-b', 'hospital-d']);
    b.add('rollout-rolled-back', { rollout: digest, stage: 'shadow', cause: 'quorum', proposal: rollback });
    assert.deepEqual(problemsOf(b.entries), []);
    const again = b.add('rollout-rolled-back', {
      rollout: digest,
      stage: 'shadow',
      cause: 'quorum',
      proposal: rollback,
    });
    expectProblem(b.entries, again, /after it was rolled back/);
  });
});
