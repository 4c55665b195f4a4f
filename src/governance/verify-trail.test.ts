/**
 * Tests of the governance-trail verifier (verify-trail.ts, issue 6): a realistic trail built from real
 * Ed25519 identity keys and proposal signatures (RFC 8032) is accepted, and each single mutation an
 * auditor must catch (missing quorum, forged or misplaced signature, edited subject, an effect without
 * its approval, a proposal under another policy, a policy rollback) is reported at the entry it breaks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { generateEd25519KeyPem, readEd25519PublicKey, signEd25519 } from '../crypto/signatures.ts';
import { logEntryBodies } from '../audit/log-entry.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import {
  assignBlindLabels,
  type BlindOpening,
  buildEvaluationBlindedBody,
  buildEvaluationDecisionBody,
  buildEvaluationResultBody,
  buildEvaluationUnblindedBody,
  commitBlinding,
  computeEvaluationPlanDigest,
  decisionValuesOf,
  type EvaluationPlan,
  parseEvaluationPlan,
} from './evaluation-plan.ts';
import { encodeKeyRotation } from './identity-key.ts';
import { computePolicyDigest, parsePolicy } from './policy.ts';
import { computeProposalDigest, type Proposal, type ProposalKind, signProposal } from './proposal.ts';
import { type TrailReport, verifyGovernanceTrail } from './verify-trail.ts';

/** A mutable entry: {kind, index, at, prev, ...body}. */
type Entry = { kind: string; index: number; [field: string]: unknown };
// biome-ignore lint/suspicious/noExplicitAny: policy inputs are mutated freely as JSON
type Json = any;

const INSTITUTIONS = ['hospital-a', 'hospital-b', 'hospital-c'] as const;
const pems = new Map(
  [...INSTITUTIONS, 'operator', 'hospital-d'].map((m) => [m, generateEd25519KeyPem().privateKeyPem]),
);
const pemOf = (member: string): string => pems.get(member)!;
const encode = (value: unknown): Uint8Array => new TextEncoder().encode(canonicalizeJson(value));
const digestOf = (value: unknown): string => sha256Hex(encode(value));
const MODEL_SHA256 = 'ab'.repeat(32);

function createPolicyInput(version: number): Json {
  const institution = { roles: ['institution'] };
  return {
    version,
    consortium: 'hospitals-eu',
    members: {
      operator: { roles: ['coordinator-operator'] },
      'hospital-a': institution,
      'hospital-b': institution,
      'hospital-c': institution,
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
      adoptPolicy: { of: 2, members: [...INSTITUTIONS] },
      admitMember: { of: 2, members: [...INSTITUTIONS] },
      startRun: { all: [{ member: 'operator' }, { of: 2, members: [...INSTITUTIONS] }] },
      releaseModel: { of: 2, members: [...INSTITUTIONS] },
    },
  };
}

/** A policy as the coordinator records it: parsed, then plain JSON. */
const normalizePolicy = (input: unknown): Json => JSON.parse(JSON.stringify(parsePolicy(input)));

/** Appends entries the way the coordinator does ({kind, index, at, prev, ...body}), signing for real. */
class TrailBuilder {
  readonly entries: Entry[] = [];
  private readonly proposals = new Map<string, Proposal>();
  private readonly signers = new Map<string, string[]>();

  add(kind: string, body: Record<string, unknown>): number {
    const index = this.entries.length;
    const before = this.entries[index - 1];
    // prev: the RFC 6962 leaf hash of the entry before (the verifier does not rely on it).
    const prev = before ? sha256Hex(new Uint8Array([0]), encode(before)) : '';
    this.entries.push({ kind, index, at: 1_736_000_000_000 + index * 60_000, prev, ...body });
    return index;
  }

  enroll(member: string, roles: string[]): number {
    return this.add('member-enrolled', {
      member,
      roles,
      tlsCertSha256: digestOf(`tls:${member}`),
      identityCertSha256: digestOf(`id:${member}`),
      identityKey: Buffer.from(readEd25519PublicKey(pemOf(member))).toString('base64'),
      notAfter: '2026-01-01T00:00:00Z',
      renewal: false,
    });
  }

  /** Records a proposal and returns its id. */
  propose(kind: ProposalKind, subject: unknown, policySha256: string, proposer = 'operator'): string {
    const minute = String(this.proposals.size).padStart(2, '0');
    const proposal: Proposal = {
      kind,
      subjectSha256: digestOf(subject),
      policySha256,
      createdAt: `2025-01-31T12:${minute}:00Z`,
    };
    const id = computeProposalDigest(proposal);
    this.proposals.set(id, proposal);
    this.signers.set(id, []);
    this.add('proposal-created', {
      proposal: id,
      proposalKind: kind,
      subjectSha256: proposal.subjectSha256,
      policySha256,
      createdAt: proposal.createdAt,
      proposer,
      subject,
    });
    return id;
  }

  /** `signer`'s base64 Ed25519 signature over the signing bytes of proposal `id`. */
  signatureOf(id: string, signer: string): string {
    const { signature } = signProposal(this.proposals.get(id)!, signer, pemOf(signer));
    return Buffer.from(signature).toString('base64');
  }

  sign(id: string, signer: string): number {
    this.signers.get(id)!.push(signer);
    return this.add('proposal-signed', { proposal: id, signer, signature: this.signatureOf(id, signer) });
  }

  decide(id: string, outcome: 'approved' | 'rejected' = 'approved'): number {
    return this.add('proposal-decided', {
      proposal: id,
      outcome,
      signers: [...this.signers.get(id)!].sort(),
      missing: '',
    });
  }

  adopt(policy: Json, id: string): number {
    return this.add('policy-adopted', {
      policySha256: computePolicyDigest(parsePolicy(policy)),
      policy,
      version: policy.version,
      proposal: id,
    });
  }
}

interface ValidTrail {
  readonly builder: TrailBuilder;
  readonly entries: Entry[];
  /** Named entry indices, e.g. 'run.sign.hospital-c', 'release.decided'. */
  readonly at: Record<string, number>;
  readonly ids: { policy: string; run: string; release: string; resume: string };
  readonly policyV1: Json;
}

/**
 * The trail of a small consortium: 3 institutions and an operator enroll; policy v1 (quorum 2 of 3) is
 * proposed, signed by two, approved and adopted; run-1 (operator + 2 institutions) is proposed, signed,
 * approved and configured; its model release gets one signature more than it needs; an incident is
 * resolved by a resume-runs proposal. `startRunPolicySha256` overrides the policy the run proposal names.
 */
function buildValidTrail(options: { startRunPolicySha256?: string } = {}): ValidTrail {
  const b = new TrailBuilder();
  const at: Record<string, number> = {};
  b.add('log-created', {
    origin: 'entente.example/log',
    consortium: 'hospitals-eu',
    logKey: 'log+01020304+AQIDBA==',
    witnesses: [],
    quorum: 0,
  });
  for (const m of INSTITUTIONS) at[`enrolled.${m}`] = b.enroll(m, ['institution']);
  at['enrolled.operator'] = b.enroll('operator', ['coordinator-operator']);

  const policyV1 = normalizePolicy(createPolicyInput(1));
  const v1Sha256 = computePolicyDigest(parsePolicy(policyV1));
  const policy = b.propose('adopt-policy', policyV1, v1Sha256);
  at['policy.created'] = b.entries.length - 1;
  // The founding policy needs every member it lists (its own quorum is 2 of 3 institutions).
  for (const s of ['hospital-a', 'hospital-b', 'hospital-c', 'operator'])
    at[`policy.sign.${s}`] = b.sign(policy, s);
  at['policy.decided'] = b.decide(policy);
  at['policy.adopted'] = b.adopt(policyV1, policy);

  const runSubject = {
    id: 'run-1',
    rounds: 5,
    model: { kind: 'logistic', features: 12 },
    strategy: 'fedavg',
  };
  const run = b.propose('start-run', runSubject, options.startRunPolicySha256 ?? v1Sha256);
  at['run.created'] = b.entries.length - 1;
  for (const s of ['operator', 'hospital-a', 'hospital-c']) at[`run.sign.${s}`] = b.sign(run, s);
  at['run.decided'] = b.decide(run);
  at['run.configured'] = b.add('run-configured', {
    run: 'run-1',
    configSha256: digestOf(runSubject),
    config: runSubject,
    policyIndex: at['policy.adopted'],
    proposal: run,
  });

  const release = b.propose('release-model', { run: 'run-1', modelSha256: MODEL_SHA256 }, v1Sha256);
  at['release.created'] = b.entries.length - 1;
  for (const s of INSTITUTIONS) at[`release.sign.${s}`] = b.sign(release, s); // one more than needed
  at['release.decided'] = b.decide(release);
  at['release.approved'] = b.add('release-approved', {
    run: 'run-1',
    modelSha256: MODEL_SHA256,
    proposal: release,
  });

  at['incident.raised'] = b.add('incident-raised', {
    incident: 'inc-1',
    raisedBy: 'hospital-b',
    reason: 'unexpected update norm',
  });
  const resume = b.propose('resume-runs', { incidents: ['inc-1'] }, v1Sha256, 'hospital-b');
  at['resume.created'] = b.entries.length - 1;
  for (const s of ['hospital-a', 'hospital-b']) at[`resume.sign.${s}`] = b.sign(resume, s);
  at['resume.decided'] = b.decide(resume);
  at['incident.resolved'] = b.add('incident-resolved', {
    incident: 'inc-1',
    proposal: resume,
    resolvedBy: ['hospital-a', 'hospital-b'],
  });
  return { builder: b, entries: b.entries, at, ids: { policy, run, release, resume }, policyV1 };
}

const at = (t: ValidTrail, name: string): number => {
  const index = t.at[name];
  assert.ok(index !== undefined, `no entry named ${name}`);
  return index;
};
const entryAt = (t: ValidTrail, name: string): Entry => t.entries[at(t, name)]!;

/** Asserts the report lists exactly these problems, in this order. */
function assertProblems(report: TrailReport, expected: ReadonlyArray<readonly [number, RegExp]>): void {
  const got = report.problems.map((p) => `${p.index}: ${p.message}`).join('\n');
  assert.equal(report.problems.length, expected.length, got);
  expected.forEach(([index, pattern], i) => {
    const p = report.problems[i]!;
    assert.equal(p.index, index, got);
    assert.match(p.message, pattern, got);
  });
}

const flipFirstBit = (base64: unknown): string => {
  const bytes = Buffer.from(String(base64), 'base64');
  bytes[0] = bytes[0]! ^ 1;
  return bytes.toString('base64');
};

describe('verifyGovernanceTrail: a valid trail', () => {
  it('has no problems and counts proposals, signatures and approvals', () => {
    const t = buildValidTrail();
    const report = verifyGovernanceTrail(t.entries);
    assertProblems(report, []);
    assert.equal(report.facts.length, 2);
    assert.match(report.facts[0]!, /4 proposals, 12 signatures, 4 approvals/);
    assert.equal(report.facts[1], 'identity keys: 4 pinned, 0 changed by rotation or recovery');
    assert.match(report.facts[0]!, /1 policy versions, 1 runs under a policy/);
  });

  it('accepts an admission adopted as the policy in force plus the member, one version up', () => {
    const t = buildValidTrail();
    const b = t.builder;
    b.enroll('hospital-d', ['institution']);
    const subject = { member: 'hospital-d', roles: ['institution'] };
    const id = b.propose('admit-member', subject, computePolicyDigest(parsePolicy(t.policyV1)));
    b.sign(id, 'hospital-b');
    b.sign(id, 'hospital-c');
    b.decide(id);
    const v2 = structuredClone(t.policyV1);
    v2.version = 2;
    v2.members['hospital-d'] = { roles: ['institution'] };
    const adopted = b.adopt(normalizePolicy(v2), id);
    assertProblems(verifyGovernanceTrail(b.entries), []);

    // The same admission used to slip in another change (a start-run quorum of the operator alone).
    const widened = structuredClone(v2);
    widened.approvals.startRun = { member: 'operator' };
    b.entries[adopted] = { ...b.entries[adopted]!, ...bodyOfAdoption(normalizePolicy(widened), id) };
    assertProblems(verifyGovernanceTrail(b.entries), [
      [adopted, /not the one in force with hospital-d admitted in the approved roles/],
    ]);
  });
});

function bodyOfAdoption(policy: Json, proposal: string): Record<string, unknown> {
  return {
    policySha256: computePolicyDigest(parsePolicy(policy)),
    policy,
    version: policy.version,
    proposal,
  };
}

describe('verifyGovernanceTrail: signatures and quorums', () => {
  it('reports a founding policy approved without every founding member (its own quorum met)', () => {
    const t = buildValidTrail();
    const entries = t.entries.filter((e) => e.index !== at(t, 'policy.sign.hospital-c'));
    assertProblems(verifyGovernanceTrail(entries), [
      [
        at(t, 'policy.decided'),
        /approved without its quorum: still needs the signature of every founding member \(missing: hospital-c\)/,
      ],
    ]);
  });

  it('reports an approval with only 1 of the 2 signatures it needs', () => {
    const t = buildValidTrail();
    const entries = t.entries.filter((e) => e.index !== at(t, 'run.sign.hospital-c'));
    assertProblems(verifyGovernanceTrail(entries), [
      [at(t, 'run.decided'), /approved without its quorum: still needs 1 more of \{hospital-b, hospital-c\}/],
    ]);
  });

  it('reports a start-run approval without the operator', () => {
    const t = buildValidTrail();
    const entries = t.entries.filter((e) => e.index !== at(t, 'run.sign.operator'));
    assertProblems(verifyGovernanceTrail(entries), [
      [at(t, 'run.decided'), /without its quorum: still needs operator/],
    ]);
  });

  it('reports a signature whose bytes were flipped', () => {
    const t = buildValidTrail();
    const e = entryAt(t, 'release.sign.hospital-b'); // the extra one: the quorum still holds
    e.signature = flipFirstBit(e.signature);
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'release.sign.hospital-b'), /hospital-b does not verify/],
    ]);
  });

  it('reports a flipped signature that was needed, and the approval that relied on it', () => {
    const t = buildValidTrail();
    const e = entryAt(t, 'resume.sign.hospital-a');
    e.signature = flipFirstBit(e.signature);
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'resume.sign.hospital-a'), /does not verify/],
      [at(t, 'resume.decided'), /without its quorum/],
    ]);
  });

  it('reports signatures by a member whose enrollment is missing', () => {
    const t = buildValidTrail();
    const entries = t.entries.filter((e) => e.index !== at(t, 'enrolled.hospital-c'));
    assertProblems(verifyGovernanceTrail(entries), [
      [at(t, 'policy.sign.hospital-c'), /hospital-c .*no public key is known/],
      [at(t, 'policy.decided'), /every founding member \(missing: hospital-c\)/],
      [at(t, 'run.sign.hospital-c'), /hospital-c .*no public key is known/],
      [at(t, 'run.decided'), /without its quorum: still needs 1 more of \{hospital-b, hospital-c\}/],
      [at(t, 'release.sign.hospital-c'), /hospital-c .*no public key is known/],
    ]);
  });

  it('reports a signature over another proposal', () => {
    const t = buildValidTrail();
    // hospital-a's valid signature on the run proposal, recorded under the release proposal.
    entryAt(t, 'release.sign.hospital-a').signature = t.builder.signatureOf(t.ids.run, 'hospital-a');
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'release.sign.hospital-a'), /hospital-a does not verify .*for this proposal/],
    ]);
  });

  it('reports a signature by someone enrolled but not a member of the policy in force', () => {
    const t = buildValidTrail();
    t.builder.enroll('hospital-d', ['observer']);
    const index = t.builder.sign(t.ids.release, 'hospital-d');
    // Appended after the release was decided, so that is reported too.
    assertProblems(verifyGovernanceTrail(t.entries), [
      [index, /recorded after the proposal was decided/],
      [index, /hospital-d .*not a member of the policy in force/],
    ]);
  });

  it('reports a proposal decided twice (an expired proposal approved later)', () => {
    const t = buildValidTrail();
    const decided = entryAt(t, 'release.decided');
    const index = t.entries.length;
    t.entries.push({ ...decided, index, outcome: 'approved' });
    const expired = { ...decided, outcome: 'expired' };
    t.entries[decided.index] = expired as typeof decided;
    const release = t.entries.find((e) => e.kind === 'release-approved')!.index;
    assertProblems(verifyGovernanceTrail(t.entries), [
      [release, /which was not approved/],
      [index, /already decided/],
    ]);
  });
});

describe('verifyGovernanceTrail: proposals', () => {
  it('reports a proposal whose subject was edited after it was hashed', () => {
    const t = buildValidTrail();
    const e = entryAt(t, 'run.created');
    e.subject = { ...(e.subject as Record<string, unknown>), rounds: 500 };
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'run.created'), /subject does not hash to its subjectSha256/],
    ]);
  });

  it('reports a proposal that names a policy other than the one in force', () => {
    const t = buildValidTrail({ startRunPolicySha256: 'e'.repeat(64) });
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'run.created'), /does not name the policy in force/],
      [at(t, 'run.decided'), /without its quorum: still needs a proposal under the policy in force/],
    ]);
  });

  it('reports an approval, after a new policy, of a proposal made under the superseded one', () => {
    const t = buildValidTrail();
    const b = t.builder;
    const v1Sha256 = computePolicyDigest(parsePolicy(t.policyV1));
    const stale = b.propose('start-run', { id: 'run-2' }, v1Sha256);
    b.sign(stale, 'operator');
    const v2 = structuredClone(t.policyV1);
    v2.version = 2;
    v2.approvals.startRun = { all: [{ member: 'operator' }, { of: 3, members: [...INSTITUTIONS] }] };
    const change = b.propose('adopt-policy', normalizePolicy(v2), v1Sha256);
    b.sign(change, 'hospital-a');
    b.sign(change, 'hospital-b');
    b.decide(change);
    b.adopt(normalizePolicy(v2), change);
    b.sign(stale, 'hospital-a');
    b.sign(stale, 'hospital-c');
    const decided = b.decide(stale);
    assertProblems(verifyGovernanceTrail(b.entries), [
      [decided, /without its quorum: still needs a proposal under the policy in force/],
    ]);
  });

  it('reports an unknown proposal kind and a signature or decision on an unknown proposal', () => {
    const t = buildValidTrail();
    entryAt(t, 'release.created').proposalKind = 'delete-log';
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'release.created'), /proposal kind "delete-log" is unknown/],
      [at(t, 'release.sign.hospital-a'), /not in the log before it/],
      [at(t, 'release.sign.hospital-b'), /not in the log before it/],
      [at(t, 'release.sign.hospital-c'), /not in the log before it/],
      [at(t, 'release.decided'), /a decision on a proposal that is not in the log before it/],
      [at(t, 'release.approved'), /refers to proposal .*not in the log before it/],
    ]);
  });
});

describe('verifyGovernanceTrail: effects follow approvals', () => {
  it('reports a policy adopted under a proposal that was never approved', () => {
    const t = buildValidTrail();
    const entries = t.entries.filter((e) => e.index !== at(t, 'policy.decided'));
    assertProblems(verifyGovernanceTrail(entries), [
      [at(t, 'policy.adopted'), /policy version 1 follows proposal .*which was not approved/],
    ]);
  });

  it('reports a policy adopted under a proposal that does not exist', () => {
    const t = buildValidTrail();
    entryAt(t, 'policy.adopted').proposal = 'f'.repeat(64);
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'policy.adopted'), /refers to proposal ffffffffffff…, which is not in the log before it/],
    ]);
  });

  it('reports a policy adopted under an approved proposal of another kind', () => {
    const t = buildValidTrail();
    const v2 = structuredClone(t.policyV1);
    v2.version = 2;
    const index = t.builder.adopt(normalizePolicy(v2), t.ids.run);
    assertProblems(verifyGovernanceTrail(t.entries), [
      [index, /follows a start-run proposal, not adopt-policy/],
    ]);
  });

  it('reports an adopted policy that differs from the approved subject', () => {
    const t = buildValidTrail();
    const edited = structuredClone(t.policyV1);
    edited.exchange.maxRounds = 1000;
    Object.assign(entryAt(t, 'policy.adopted'), bodyOfAdoption(edited, t.ids.policy));
    const report = verifyGovernanceTrail(t.entries);
    // What follows was proposed under the approved policy, not this one: those are reported too.
    assert.deepEqual(report.problems[0], {
      index: at(t, 'policy.adopted'),
      message: 'the adopted policy is not the one its proposal was approved for',
    });
    assert.ok(
      report.problems.some((p) => p.index === at(t, 'run.created') && /policy in force/.test(p.message)),
    );
  });

  it('reports an adopted policy that does not hash to its recorded digest', () => {
    const t = buildValidTrail();
    const e = entryAt(t, 'policy.adopted');
    e.policySha256 = '0'.repeat(64);
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'policy.adopted'), /does not hash to policySha256/],
    ]);
  });

  it('reports a policy rolled back by replaying an older approval', () => {
    const t = buildValidTrail();
    const b = t.builder;
    const v1Sha256 = computePolicyDigest(parsePolicy(t.policyV1));
    const v2 = structuredClone(t.policyV1);
    v2.version = 2;
    v2.exchange.maxRounds = 5;
    const change = b.propose('adopt-policy', normalizePolicy(v2), v1Sha256);
    b.sign(change, 'hospital-b');
    b.sign(change, 'hospital-c');
    b.decide(change);
    b.adopt(normalizePolicy(v2), change);
    assertProblems(verifyGovernanceTrail(b.entries), []);
    const rollback = b.adopt(t.policyV1, t.ids.policy);
    assertProblems(verifyGovernanceTrail(b.entries), [
      [rollback, /policy version 1 does not follow version 2 in force/],
    ]);
  });

  it('reports a run configured under a policy without a proposal, or with one of another kind', () => {
    const t = buildValidTrail();
    delete entryAt(t, 'run.configured').proposal;
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'run.configured'), /run run-1 names no start-run proposal, but a policy is in force/],
    ]);
    entryAt(t, 'run.configured').proposal = t.ids.policy;
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'run.configured'), /run run-1 follows a adopt-policy proposal, not start-run/],
    ]);
  });

  it('reports a run configured under the approval of another run', () => {
    const t = buildValidTrail();
    entryAt(t, 'run.configured').run = 'run-9';
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'run.configured'), /run run-9 is not the run its proposal approved/],
    ]);
  });

  it('reports a release of another model than the approved one', () => {
    const t = buildValidTrail();
    entryAt(t, 'release.approved').modelSha256 = 'cd'.repeat(32);
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'release.approved'), /released model is not the one its proposal approved/],
    ]);
  });

  it('reports an incident resolved without a proposal while a policy is in force', () => {
    const t = buildValidTrail();
    entryAt(t, 'incident.resolved').proposal = null;
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'incident.resolved'), /incident inc-1 names no resume-runs proposal/],
    ]);
    entryAt(t, 'incident.resolved').proposal = t.ids.resume;
    entryAt(t, 'incident.resolved').incident = 'inc-2';
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'incident.resolved'), /incident inc-2 is not among those its proposal resolved/],
    ]);
  });
});

describe('verifyGovernanceTrail: model aliases', () => {
  /** The valid trail plus the run's models logged and `candidate` moved to the released one by quorum. */
  function withAliasMove() {
    const t = buildValidTrail();
    const b = t.builder;
    const v1Sha256 = computePolicyDigest(parsePolicy(t.policyV1));
    b.add('model-initialized', { run: 'run-1', round: 0, modelSha256: 'cc'.repeat(32) });
    b.add('model-released', {
      run: 'run-1',
      round: 1,
      modelIn: 'cc'.repeat(32),
      modelSha256: MODEL_SHA256,
      provenanceSha256: 'ee'.repeat(32),
    });
    const subject = { alias: 'candidate', version: MODEL_SHA256, previous: null };
    const move = b.propose('move-alias', subject, v1Sha256, 'hospital-a');
    const signs = ['hospital-a', 'hospital-b'].map((s) => b.sign(move, s));
    const decided = b.decide(move);
    const moved = b.add('alias-moved', { ...subject, proposal: move });
    return { t, b, move, signs, decided, moved, v1Sha256 };
  }

  it('accepts an alias moved after its approved proposal and reports the alias table', () => {
    const { t } = withAliasMove();
    const report = verifyGovernanceTrail(t.entries);
    assertProblems(report, []);
    assert.deepEqual([...report.aliases], [['candidate', MODEL_SHA256]]);
    assert.ok(report.facts.some((f) => /model aliases: 1 moves re-checked, 1 aliases/.test(f)));
    // The entry body is one the log accepts.
    assert.ok(
      logEntryBodies['alias-moved'].safeParse({
        alias: 'candidate',
        version: MODEL_SHA256,
        previous: null,
        proposal: 'ab'.repeat(32),
      }).success,
    );
    assert.ok(
      !logEntryBodies['alias-moved'].safeParse({
        alias: 'Prod!',
        version: MODEL_SHA256,
        previous: null,
        proposal: 'ab'.repeat(32),
      }).success,
    );
  });

  it('reports a forged move: no proposal, an unapproved proposal, or another version than approved', () => {
    const { t, b, moved } = withAliasMove();
    const forged = b.add('alias-moved', {
      alias: 'production',
      version: MODEL_SHA256,
      previous: null,
      proposal: 'ef'.repeat(32),
    });
    assertProblems(verifyGovernanceTrail(t.entries), [
      [forged, /refers to proposal efefefefefef…, which is not in the log/],
    ]);
    t.entries.pop();
    // Only one signature: the release-model rule (2 of 3) is not met, yet the decision says approved.
    const { t: t2, signs } = withAliasMove();
    t2.entries[signs[1]!]!.signature = flipFirstBit(t2.entries[signs[1]!]!.signature);
    const report = verifyGovernanceTrail(t2.entries);
    assert.ok(
      report.problems.some((p) => /approved without its quorum/.test(p.message)),
      JSON.stringify(report.problems),
    );
    const { t: t3, moved: moved3 } = withAliasMove();
    t3.entries[moved3]!.version = 'cc'.repeat(32);
    assertProblems(verifyGovernanceTrail(t3.entries), [
      [moved3, /the move is not the one its proposal approved/],
    ]);
    assert.equal(moved, moved3);
  });

  it('reports a move before its approval, a replayed move and a move to an unknown version', () => {
    const { t, decided, moved } = withAliasMove();
    // The move is logged before the approval: swap the two entries.
    const early = t.entries.map((e) => ({ ...e }));
    [early[decided], early[moved]] = [
      { ...early[moved]!, index: decided },
      { ...early[decided]!, index: moved },
    ];
    const r1 = verifyGovernanceTrail(early);
    assert.equal(r1.problems[0]!.index, decided);
    assert.match(r1.problems[0]!.message, /which was not approved/);
    const { t: t2, b, move } = withAliasMove();
    const again = b.add('alias-moved', {
      alias: 'candidate',
      version: MODEL_SHA256,
      previous: null,
      proposal: move,
    });
    assertProblems(verifyGovernanceTrail(t2.entries), [[again, /already applied/]]);
    const t3 = buildValidTrail();
    const subject = { alias: 'candidate', version: '99'.repeat(32), previous: null };
    const v1 = computePolicyDigest(parsePolicy(t3.policyV1));
    const id = t3.builder.propose('move-alias', subject, v1);
    for (const s of ['hospital-a', 'hospital-c']) t3.builder.sign(id, s);
    t3.builder.decide(id);
    const unknown = t3.builder.add('alias-moved', { ...subject, proposal: id });
    assertProblems(verifyGovernanceTrail(t3.entries), [[unknown, /not a model version the log recorded/]]);
  });

  it('reports a move whose previous version is stale', () => {
    const { t, b, v1Sha256 } = withAliasMove();
    const subject = { alias: 'candidate', version: 'cc'.repeat(32), previous: null };
    const id = b.propose('move-alias', subject, v1Sha256);
    for (const s of ['hospital-b', 'hospital-c']) b.sign(id, s);
    b.decide(id);
    const stale = b.add('alias-moved', { ...subject, proposal: id });
    assertProblems(verifyGovernanceTrail(t.entries), [
      [stale, /starts from nothing, but the alias points at abababababab/],
    ]);
  });
});

describe('verifyGovernanceTrail: legacy logs and hostile input', () => {
  it('accepts a consortium-file policy and runs without proposals before any governance policy', () => {
    const b = new TrailBuilder();
    b.add('log-created', {
      origin: 'entente.example/log',
      consortium: 'local',
      logKey: 'log+01020304+AQIDBA==',
      witnesses: [],
      quorum: 0,
    });
    const file = { consortium: 'local', participants: ['a', 'b', 'c'] };
    b.add('policy-adopted', { policySha256: digestOf(file), policy: file });
    b.add('run-configured', { run: 'run-0', configSha256: digestOf({}), config: {}, policyIndex: 1 });
    b.add('incident-raised', { incident: 'inc-0', raisedBy: 'operator', reason: 'test' });
    b.add('incident-resolved', { incident: 'inc-0', proposal: null, resolvedBy: ['operator'] });
    const legacy = verifyGovernanceTrail(b.entries);
    assertProblems(legacy, []);
    assert.equal(legacy.facts[0], 'governance: no proposals in the log');

    // Governance adopted later: the legacy prefix stays valid, and the governed part is checked.
    const t = buildValidTrail();
    const entries: Entry[] = [...b.entries, ...t.entries.slice(1).map((e) => ({ ...e, index: e.index + 4 }))];
    assertProblems(verifyGovernanceTrail(entries), []);
    entries.push({ kind: 'run-configured', index: 99, at: 0, prev: '', run: 'run-x', policyIndex: 0 });
    assertProblems(verifyGovernanceTrail(entries), [[99, /run run-x names no start-run proposal/]]);
  });

  it('does not throw on a subject that JSON cannot represent or an admission with a null subject', () => {
    const t = buildValidTrail();
    delete entryAt(t, 'run.created').subject;
    assertProblems(verifyGovernanceTrail(t.entries), [
      [at(t, 'run.created'), /does not hash/],
      [at(t, 'run.configured'), /is not the run its proposal approved/],
    ]);

    const b = buildValidTrail().builder;
    const id = b.propose('admit-member', null, computePolicyDigest(parsePolicy(createPolicyInput(1))));
    b.sign(id, 'hospital-a');
    b.sign(id, 'hospital-b');
    b.decide(id);
    const v2 = normalizePolicy({ ...createPolicyInput(1), version: 2 });
    const adopted = b.adopt(v2, id);
    assertProblems(verifyGovernanceTrail(b.entries), [[adopted, /not the one in force with +admitted/]]);
  });

  it('property: dropping one signature leaves the trail valid or yields one missing quorum', () => {
    const t = buildValidTrail();
    const decisionOf = new Map(
      t.entries.filter((e) => e.kind === 'proposal-decided').map((e) => [e.proposal, e.index]),
    );
    const signatures = t.entries.filter((e) => e.kind === 'proposal-signed');
    const unneeded = (e: Entry): boolean => e.proposal === t.ids.release; // 3 signatures, 2 needed
    assert.ok(signatures.some(unneeded) && !signatures.every(unneeded));
    fc.assert(
      fc.property(fc.constantFrom(...signatures), (dropped) => {
        const report = verifyGovernanceTrail(t.entries.filter((e) => e !== dropped));
        if (unneeded(dropped)) assertProblems(report, []);
        else assertProblems(report, [[decisionOf.get(dropped.proposal)!, /without its quorum/]]);
      }),
      { numRuns: 40 },
    );
  });

  it('property: never throws on dropped entries or fields replaced by arbitrary JSON', () => {
    const t = buildValidTrail();
    const n = t.entries.length;
    // An edit replaces (or, when undefined, removes) one of the entry's fields other than its index.
    const edit = fc.record({
      entry: fc.nat(n - 1),
      field: fc.nat(),
      value: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined, freq: 3 }),
    });
    fc.assert(
      fc.property(fc.subarray([...t.entries.keys()]), fc.array(edit, { maxLength: 3 }), (drop, edits) => {
        const entries = structuredClone(t.entries);
        for (const { entry, field, value } of edits) {
          const e = entries[entry]!;
          const fields = Object.keys(e).filter((k) => k !== 'index');
          e[fields[field % fields.length]!] = value;
        }
        const kept = entries.filter((_, i) => !drop.includes(i));
        const report = verifyGovernanceTrail(kept);
        const indices = new Set(kept.map((e) => e.index));
        for (const p of report.problems) {
          assert.ok(indices.has(p.index));
          assert.ok(p.message.length > 0);
        }
        assert.equal(report.facts.length, 2);
      }),
      { numRuns: 200 },
    );
  });
});

describe('verifyGovernanceTrail: pinned identity keys (trust nobody alone)', () => {
  const rawOf = (pem: string): string => Buffer.from(readEd25519PublicKey(pem)).toString('base64');
  const policySha = (t: ValidTrail): string => computePolicyDigest(parsePolicy(t.policyV1));
  /** `member` re-enrolls (as the operator could, with a token for it) under a key the attacker holds. */
  function reenroll(b: TrailBuilder, member: string, pem: string): number {
    return b.add('member-enrolled', {
      member,
      roles: ['institution'],
      tlsCertSha256: digestOf(`tls2:${member}`),
      identityCertSha256: digestOf(`id2:${member}`),
      identityKey: rawOf(pem),
      notAfter: '2026-01-01T00:00:00Z',
      renewal: false,
    });
  }

  it('pins the first enrolled key; a re-enrollment under another key is only presented, and its approvals are refused', () => {
    const t = buildValidTrail();
    const b = t.builder;
    const pinnedB = rawOf(pemOf('hospital-b'));
    const attacker = generateEd25519KeyPem().privateKeyPem;
    reenroll(b, 'hospital-b', attacker);
    const report = verifyGovernanceTrail(b.entries);
    assert.deepEqual(report.problems, []);
    assert.equal(Buffer.from(report.identityKeys.get('hospital-b')!).toString('base64'), pinnedB);
    assert.equal(Buffer.from(report.presentedKeys.get('hospital-b')!).toString('base64'), rawOf(attacker));
    // The operator signs a start-run "by hospital-b" with the attacker's key: the trail names it.
    const id = b.propose('start-run', { id: 'run-2', rounds: 50 }, policySha(t));
    b.sign(id, 'operator');
    b.sign(id, 'hospital-a');
    pems.set('hospital-b-attacker', attacker);
    const forged = signProposal(
      {
        kind: 'start-run',
        subjectSha256: digestOf({ id: 'run-2', rounds: 50 }),
        policySha256: policySha(t),
        createdAt: '2025-01-31T12:04:00Z',
      },
      'hospital-b',
      attacker,
    );
    const at = b.add('proposal-signed', {
      proposal: id,
      signer: 'hospital-b',
      signature: Buffer.from(forged.signature).toString('base64'),
    });
    const again = verifyGovernanceTrail(b.entries);
    assert.ok(
      again.problems.some((p) => p.index === at && /hospital-b does not verify/.test(p.message)),
      JSON.stringify(again.problems),
    );
  });

  it('a rotation signed by the pinned key moves the pin; earlier signatures still verify under the key of their time', () => {
    const t = buildValidTrail();
    const b = t.builder;
    const next = generateEd25519KeyPem().privateKeyPem;
    const previousPem = pemOf('hospital-c');
    const rotation = {
      consortium: 'hospitals-eu',
      member: 'hospital-c',
      previousKey: rawOf(pemOf('hospital-c')),
      key: rawOf(next),
    };
    reenroll(b, 'hospital-c', next);
    b.add('identity-key-changed', {
      ...rotation,
      via: 'rotation',
      signature: Buffer.from(signEd25519(pemOf('hospital-c'), encodeKeyRotation(rotation))).toString(
        'base64',
      ),
    });
    // After the change hospital-c signs with its new key.
    pems.set('hospital-c', next);
    try {
      const release = b.propose(
        'release-model',
        { run: 'run-1', modelSha256: 'cd'.repeat(32) },
        policySha(t),
      );
      b.sign(release, 'hospital-c');
      b.sign(release, 'hospital-a');
      b.decide(release);
      const report = verifyGovernanceTrail(b.entries);
      assert.deepEqual(report.problems, []);
      assert.equal(Buffer.from(report.identityKeys.get('hospital-c')!).toString('base64'), rawOf(next));
      assert.equal(report.presentedKeys.size, 0);
    } finally {
      pems.set('hospital-c', previousPem);
    }
  });

  it('reports a rotation not signed by the pinned key, and keeps the old pin', () => {
    const t = buildValidTrail();
    const b = t.builder;
    const attacker = generateEd25519KeyPem().privateKeyPem;
    const rotation = {
      consortium: 'hospitals-eu',
      member: 'hospital-a',
      previousKey: rawOf(pemOf('hospital-a')),
      key: rawOf(attacker),
    };
    reenroll(b, 'hospital-a', attacker);
    const at = b.add('identity-key-changed', {
      ...rotation,
      via: 'rotation',
      // Signed by the new key itself, not by the key being replaced.
      signature: Buffer.from(signEd25519(attacker, encodeKeyRotation(rotation))).toString('base64'),
    });
    const report = verifyGovernanceTrail(b.entries);
    assert.ok(report.problems.some((p) => p.index === at && /not signed by its pinned key/.test(p.message)));
    assert.equal(
      Buffer.from(report.identityKeys.get('hospital-a')!).toString('base64'),
      rotation.previousKey,
    );
  });

  it('recovery needs an approved replace-identity-key proposal for exactly that key', () => {
    const t = buildValidTrail();
    const b = t.builder;
    const fresh = generateEd25519KeyPem().privateKeyPem;
    reenroll(b, 'hospital-b', fresh);
    const subject = { member: 'hospital-b', identityKey: rawOf(fresh) };
    const id = b.propose('replace-identity-key', subject, policySha(t));
    // One signature: below the admitMember quorum (2 of 3). A change logged now is reported.
    b.sign(id, 'hospital-a');
    const change = {
      member: 'hospital-b',
      previousKey: rawOf(pemOf('hospital-b')),
      key: rawOf(fresh),
      via: 'recovery',
      proposal: id,
    };
    const early = b.add('identity-key-changed', change);
    let report = verifyGovernanceTrail(b.entries);
    assert.ok(report.problems.some((p) => p.index === early && /not approved/.test(p.message)));
    b.entries.pop();
    b.sign(id, 'hospital-c');
    b.decide(id);
    b.add('identity-key-changed', change);
    report = verifyGovernanceTrail(b.entries);
    assert.deepEqual(report.problems, []);
    assert.equal(Buffer.from(report.identityKeys.get('hospital-b')!).toString('base64'), rawOf(fresh));
    // A change to another key than the approved one is reported.
    const other = generateEd25519KeyPem().privateKeyPem;
    const at = b.add('identity-key-changed', { ...change, previousKey: rawOf(fresh), key: rawOf(other) });
    report = verifyGovernanceTrail(b.entries);
    assert.ok(
      report.problems.some((p) => p.index === at && /not the one its proposal approved/.test(p.message)),
    );
  });

  it('reports a witness key that is not the pinned identity key, and admits only members of the policy in force', () => {
    const t = buildValidTrail();
    const b = t.builder;
    const attacker = generateEd25519KeyPem().privateKeyPem;
    const vkey = `hospitals-eu/witness/hospital-b+01020304+${Buffer.concat([Buffer.of(4), Buffer.from(readEd25519PublicKey(attacker))]).toString('base64')}`;
    const at = b.add('witness-added', { institution: 'hospital-b', key: vkey, quorum: 2 });
    // A member the log's writer enrolled by itself, never admitted by a policy.
    b.add('member-enrolled', {
      member: 'mallory',
      roles: ['institution'],
      tlsCertSha256: digestOf('tls:mallory'),
      identityCertSha256: digestOf('id:mallory'),
      identityKey: rawOf(attacker),
      notAfter: '2026-01-01T00:00:00Z',
      renewal: false,
    });
    const report = verifyGovernanceTrail(b.entries);
    assert.ok(report.problems.some((p) => p.index === at && /not the identity key pinned/.test(p.message)));
    assert.ok(report.identityKeys.has('mallory'), 'its key is recorded');
    assert.ok(!report.members.has('mallory'), 'but it is not a member');
    for (const m of INSTITUTIONS) assert.ok(report.members.has(m));
  });
});

// ---- Pre-registered evaluation plans -----------------------------------------------------------

interface EvaluationTrail {
  readonly t: ValidTrail;
  readonly planDigest: string;
  readonly plan: EvaluationPlan;
  readonly openings: BlindOpening[];
  readonly labelOf: (name: string) => string;
  readonly otherDigest: string;
  readonly otherProposal: string;
}

const EVAL_SALTS = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];
const FIGURES: Record<string, Record<string, number>> = {
  candidate: { rocAuc: 0.91, ece: 0.03, accuracy: 0.86 },
  baseline: { rocAuc: 0.915, ece: 0.04, accuracy: 0.87 },
};

function evaluationPlanInput(title: string): Json {
  return {
    consortium: 'hospitals-eu',
    title,
    models: [
      { name: 'candidate', sha256: 'c'.repeat(64) },
      { name: 'baseline', sha256: MODEL_SHA256 },
    ],
    metrics: ['rocAuc', 'ece', 'accuracy'],
    evaluation: { numClasses: 2, slices: ['age>=50'] },
    hypothesis: 'the candidate is not worse than the baseline',
    decisionRule: 'candidate.rocAuc >= baseline.rocAuc - 0.01 and candidate.ece <= 0.05',
    createdAt: '2026-12-08T01:00:00Z',
  };
}

/**
 * The valid trail, then: plan P approved (operator + 2 institutions, the startRun rule since the policy
 * names no evaluationPlan rule), a second plan Q only proposed, P blinded, one result per label, P
 * unblinded and decided. Named entries: 'plan.decided', 'eval.blinded', 'eval.result.A',
 * 'eval.result.B', 'eval.unblinded', 'eval.decision'.
 */
function buildEvaluationTrail(): EvaluationTrail {
  const t = buildValidTrail();
  const b = t.builder;
  const v1 = computePolicyDigest(parsePolicy(t.policyV1));
  const plan = parseEvaluationPlan(evaluationPlanInput('candidate vs baseline'));
  const planDigest = computeEvaluationPlanDigest(plan);
  const id = b.propose('approve-evaluation-plan', JSON.parse(JSON.stringify(plan)), v1, 'hospital-a');
  for (const s of ['operator', 'hospital-a', 'hospital-b']) b.sign(id, s);
  t.at['plan.decided'] = b.decide(id);
  const other = parseEvaluationPlan(evaluationPlanInput('another comparison'));
  const otherProposal = b.propose('approve-evaluation-plan', JSON.parse(JSON.stringify(other)), v1);

  const assignments = assignBlindLabels(plan, createSeededRng('trail/blinding'));
  const { commitments, openings } = commitBlinding({ planDigest, assignments, salts: EVAL_SALTS });
  const add = (kind: string, body: Record<string, unknown>): number => {
    (logEntryBodies as Record<string, { parse(v: unknown): unknown }>)[kind]!.parse(body);
    return b.add(kind, body);
  };
  t.at['eval.blinded'] = add('evaluation-blinded', buildEvaluationBlindedBody(planDigest, commitments));
  for (const o of [...openings].sort((x, y) => x.label.localeCompare(y.label)))
    t.at[`eval.result.${o.label.slice(-1)}`] = add(
      'evaluation-result',
      buildEvaluationResultBody({
        planDigest,
        label: o.label,
        metrics: FIGURES[o.name]!,
        metricsSha256: digestOf(FIGURES[o.name]),
        rows: 120,
        protocol: 'secagg',
      }),
    );
  t.at['eval.unblinded'] = add('evaluation-unblinded', buildEvaluationUnblindedBody(planDigest, openings));
  const results = new Map(openings.map((o) => [o.label, { metrics: FIGURES[o.name]! }]));
  t.at['eval.decision'] = add(
    'evaluation-decision',
    buildEvaluationDecisionBody(planDigest, plan, decisionValuesOf(openings, results)),
  );
  const labelOf = (name: string) => openings.find((o) => o.name === name)!.label;
  return {
    t,
    planDigest,
    plan,
    openings,
    labelOf,
    otherDigest: computeEvaluationPlanDigest(other),
    otherProposal,
  };
}

/** The body of an entry (without kind, index, at and prev). */
function bodyOf(entry: Entry): Record<string, unknown> {
  const { kind: _k, index: _i, at: _a, prev: _p, ...body } = entry;
  return body;
}

/** A copy of the trail's entries with entry `name` moved to just before entry `before`, re-indexed. */
function moveBefore(t: ValidTrail, name: string, before: string): Entry[] {
  const list = [...t.entries];
  const [moved] = list.splice(at(t, name), 1);
  list.splice(at(t, before), 0, moved!);
  return list.map((e, index) => ({ ...e, index }));
}

describe('verifyGovernanceTrail: pre-registered evaluation plans', () => {
  it('accepts plan, blinding, results, unblinding and decision in order', () => {
    const e = buildEvaluationTrail();
    const report = verifyGovernanceTrail(e.t.entries);
    assertProblems(report, []);
    assert.ok(
      report.facts.some((f) =>
        /evaluation: 1 plans pre-registered by quorum, 2 blinded results, 1 decisions/.test(f),
      ),
    );
    const decision = entryAt(e.t, 'eval.decision');
    assert.equal(decision.outcome, 'pass');
  });

  it('reports a result logged before its plan was approved', () => {
    const e = buildEvaluationTrail();
    const entries = moveBefore(e.t, 'eval.result.A', 'plan.decided');
    const report = verifyGovernanceTrail(entries);
    const index = at(e.t, 'plan.decided');
    assert.ok(
      report.problems.some(
        (p) => p.index === index && /no approved approve-evaluation-plan proposal before it/.test(p.message),
      ),
      JSON.stringify(report.problems),
    );
  });

  it('reports a result for another plan (proposed, not approved) and a result for an unknown digest', () => {
    const e = buildEvaluationTrail();
    const result = bodyOf(entryAt(e.t, 'eval.result.A'));
    const b = e.t.builder;
    const i = b.add('evaluation-result', { ...result, plan: e.otherDigest });
    const j = b.add('evaluation-result', { ...result, plan: 'f'.repeat(64) });
    assertProblems(verifyGovernanceTrail(b.entries), [
      [i, /names plan .*no approved approve-evaluation-plan proposal/],
      [j, /names plan ffffffffffff…, which no approved/],
    ]);
  });

  it('reports a result answering a plan approved but never blinded', () => {
    const e = buildEvaluationTrail();
    const b = e.t.builder;
    for (const s of ['operator', 'hospital-b', 'hospital-c']) b.sign(e.otherProposal, s);
    b.decide(e.otherProposal);
    const i = b.add('evaluation-result', { ...bodyOf(entryAt(e.t, 'eval.result.A')), plan: e.otherDigest });
    assertProblems(verifyGovernanceTrail(b.entries), [[i, /whose labels are not committed yet/]]);
  });

  it('reports a label not committed and a duplicate result', () => {
    const e = buildEvaluationTrail();
    const entries = [...e.t.entries];
    const a = at(e.t, 'eval.result.A');
    const extra = { ...entries[a]!, label: 'model-C' };
    const dup = { ...entries[a]! };
    entries.splice(a + 1, 0, extra, dup);
    const list = entries.map((x, index) => ({ ...x, index }));
    assertProblems(verifyGovernanceTrail(list), [
      [a + 1, /label model-C is not among the blinding commitments/],
      [a + 2, /a second result for model-A .*first: entry/],
    ]);
  });

  it('reports an unblinding before every label has its result, and a result after it', () => {
    const e = buildEvaluationTrail();
    const entries = moveBefore(e.t, 'eval.unblinded', 'eval.result.B');
    const report = verifyGovernanceTrail(entries);
    const index = at(e.t, 'eval.result.B');
    assertProblems(report, [
      [index, /unblinded before the results of model-B/],
      [index + 1, /a result for model-B logged after .* was unblinded/],
      [index + 2, /says pass, but its rule gives undetermined/],
    ]);
  });

  it('reports openings that do not match the commitments or the plan', () => {
    const e = buildEvaluationTrail();
    const u = at(e.t, 'eval.unblinded');
    const entry = e.t.entries[u]!;
    const openings = entry.openings as BlindOpening[];
    // The labels swapped after the results were seen.
    const swapped = openings.map((o, i) => ({
      ...o,
      name: openings[1 - i]!.name,
      sha256: openings[1 - i]!.sha256,
    }));
    e.t.entries[u] = { ...entry, openings: swapped };
    let report = verifyGovernanceTrail(e.t.entries);
    assert.ok(
      report.problems.filter((p) => p.index === u && /does not match its commitment/.test(p.message))
        .length === 2,
    );
    // A wrong salt.
    e.t.entries[u] = { ...entry, openings: [{ ...openings[0]!, salt: '00'.repeat(32) }, openings[1]!] };
    report = verifyGovernanceTrail(e.t.entries);
    assert.ok(report.problems.some((p) => p.index === u && /does not match its commitment/.test(p.message)));
    // One label left closed.
    e.t.entries[u] = { ...entry, openings: [openings[0]!] };
    report = verifyGovernanceTrail(e.t.entries);
    assert.ok(report.problems.some((p) => p.index === u && /committed but not opened/.test(p.message)));
  });

  it('reports a decision that does not follow from the rule, or comes before the unblinding', () => {
    const e = buildEvaluationTrail();
    const d = at(e.t, 'eval.decision');
    const entry = e.t.entries[d]!;
    e.t.entries[d] = { ...entry, outcome: 'fail' };
    assertProblems(verifyGovernanceTrail(e.t.entries), [[d, /says fail, but its rule gives pass/]]);
    const clauses = (entry.clauses as { left: number }[]).map((c, i) => (i === 0 ? { ...c, left: 0.99 } : c));
    e.t.entries[d] = { ...entry, clauses };
    assertProblems(verifyGovernanceTrail(e.t.entries), [
      [d, /clauses of the decision .* are not those its rule gives/],
    ]);
    e.t.entries[d] = entry;
    const early = moveBefore(e.t, 'eval.decision', 'eval.unblinded');
    assertProblems(verifyGovernanceTrail(early), [[at(e.t, 'eval.unblinded'), /before its unblinding/]]);
  });

  it('reports a decision whose figures were edited in the result entry', () => {
    const e = buildEvaluationTrail();
    const r = at(e.t, `eval.result.${e.labelOf('candidate').slice(-1)}`);
    e.t.entries[r] = { ...e.t.entries[r]!, metrics: { ...FIGURES.candidate, ece: 0.2 } };
    assertProblems(verifyGovernanceTrail(e.t.entries), [
      [at(e.t, 'eval.decision'), /says pass, but its rule gives fail/],
    ]);
  });

  it('does not approve a plan without its quorum, nor an invalid plan', () => {
    const t = buildValidTrail();
    const b = t.builder;
    const v1 = computePolicyDigest(parsePolicy(t.policyV1));
    const bad = { ...evaluationPlanInput('x'), decisionRule: 'candidate.f1 > 0' };
    b.propose('approve-evaluation-plan', bad, v1);
    const created = b.entries.length - 1;
    const plan = parseEvaluationPlan(evaluationPlanInput('y'));
    const id = b.propose('approve-evaluation-plan', JSON.parse(JSON.stringify(plan)), v1);
    b.sign(id, 'hospital-a');
    const decided = b.decide(id);
    assertProblems(verifyGovernanceTrail(b.entries), [
      [created, /the evaluation plan proposed is not a valid plan/],
      [decided, /approved without its quorum/],
    ]);
  });
});

describe('verifyGovernanceTrail: per-site disclosures of an evaluation plan', () => {
  const disclosure = (plan: string, label: string) => ({
    plan,
    label,
    site: 'hospital-a',
    rows: 40,
    sumsSha256: 'd'.repeat(64),
  });

  it('reports a disclosure the policy does not allow, of a plan that asked for none', () => {
    const e = buildEvaluationTrail();
    const b = e.t.builder;
    // After a result of its label (the order is right), but the policy and the plan never consented.
    const i = b.add('evaluation-disclosure', disclosure(e.planDigest, e.labelOf('candidate')));
    const report = verifyGovernanceTrail(b.entries);
    assert.ok(
      report.problems.some((p) => p.index === i && /the policy in force does not allow it/.test(p.message)),
    );
    assert.ok(report.problems.some((p) => p.index === i && /asks for no per-site figures/.test(p.message)));
  });

  it('reports a disclosure of a plan no quorum approved', () => {
    const e = buildEvaluationTrail();
    const b = e.t.builder;
    const i = b.add('evaluation-disclosure', disclosure('f'.repeat(64), 'model-A'));
    const report = verifyGovernanceTrail(b.entries);
    assert.ok(
      report.problems.some(
        (p) => p.index === i && /no approved approve-evaluation-plan proposal/.test(p.message),
      ),
    );
  });
});
