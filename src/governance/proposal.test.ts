import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCanonicalFields } from '../crypto/canonical-bytes.ts';
import { generateEd25519KeyPem, signEd25519, verifyEd25519 } from '../crypto/signatures.ts';
import { computePolicyDigest, type Policy, parsePolicy } from './policy.ts';
import {
  computeProposalDigest,
  decideProposal,
  encodeProposalSigningBytes,
  type Proposal,
  type ProposalSignature,
  parseProposal,
  selectApprovalRule,
  signProposal,
  verifyProposalSignatures,
} from './proposal.ts';

const ids = ['op', 'a', 'b', 'c', 'x', 'former'] as const;
const identities = new Map(ids.map((id) => [id, generateEd25519KeyPem()]));
const pem = (id: string): string => identities.get(id as (typeof ids)[number])!.privateKeyPem;
/** Every key we know, including one of a party ('former') that is not in the policy. */
const keys = new Map([...identities].map(([id, k]) => [id as string, k.publicKey]));

const policyInput = {
  version: 3,
  consortium: 'demo',
  members: {
    op: { roles: ['coordinator-operator'] },
    a: { roles: ['institution'] },
    b: { roles: ['institution'] },
    c: { roles: ['institution'] },
    x: { roles: ['auditor'] },
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
    adoptPolicy: { of: 3, members: ['a', 'b', 'c'] },
    admitMember: { of: 2, members: ['a', 'b', 'c', 'op'] },
    startRun: { of: 2, members: ['a', 'b', 'c'] },
    releaseModel: { all: [{ of: 2, members: ['a', 'b', 'c'] }, { member: 'x' }] },
  },
};
const policy: Policy = parsePolicy(policyInput);

const proposal: Proposal = {
  kind: 'start-run',
  subjectSha256: '1'.repeat(64),
  policySha256: computePolicyDigest(policy),
  createdAt: '2025-03-01T09:30:00Z',
};
const sign = (p: Proposal, ...signers: string[]): ProposalSignature[] =>
  signers.map((s) => signProposal(p, s, pem(s)));

describe('signProposal and its bytes', () => {
  it('signs the canonical fields with the domain tag', () => {
    const expected = encodeCanonicalFields([
      'entente/governance/proposal/v1',
      'start-run',
      '1'.repeat(64),
      proposal.policySha256,
      '2025-03-01T09:30:00Z',
      'a',
    ]);
    assert.deepEqual(encodeProposalSigningBytes(proposal, 'a'), expected);
    const [sig] = sign(proposal, 'a');
    assert.equal(sig?.signer, 'a');
    assert.ok(verifyEd25519(keys.get('a')!, expected, sig!.signature));
  });

  it('refuses a malformed proposal or signer id, naming the field', () => {
    assert.throws(() => parseProposal({ ...proposal, kind: 'delete-log' }), {
      code: 'INVALID_MESSAGE',
      field: 'proposal.kind',
    });
    assert.throws(() => parseProposal({ ...proposal, createdAt: '2025-02-30T00:00:00Z' }), {
      field: 'proposal.createdAt',
    });
    assert.throws(() => parseProposal({ ...proposal, extra: 1 }), { field: 'proposal.extra' });
    assert.throws(() => signProposal(proposal, 'A B', pem('a')), {
      code: 'INVALID_ARGUMENT',
      field: 'signer',
    });
  });

  it('gives each distinct proposal a distinct digest', () => {
    const d = computeProposalDigest(proposal);
    assert.match(d, /^[0-9a-f]{64}$/);
    assert.notEqual(computeProposalDigest({ ...proposal, subjectSha256: '2'.repeat(64) }), d);
    assert.equal(computeProposalDigest({ ...proposal }), d);
  });
});

describe('verifyProposalSignatures', () => {
  it('lists valid signers and rejects bad entries with reasons, without throwing', () => {
    const good = sign(proposal, 'b', 'a');
    const forged: ProposalSignature = {
      signer: 'c',
      signature: signProposal(proposal, 'c', pem('x')).signature,
    };
    const verdict = verifyProposalSignatures(
      proposal,
      [...good, forged, good[0]!, { signer: 'nobody', signature: new Uint8Array(64) }],
      keys,
    );
    assert.deepEqual(verdict.signers, ['a', 'b']);
    assert.deepEqual(
      verdict.rejected.map((r) => [r.index, r.signer]),
      [
        [2, 'c'],
        [3, 'b'],
        [4, 'nobody'],
      ],
    );
    assert.match(verdict.rejected[0]!.reason, /does not verify/);
    assert.match(verdict.rejected[1]!.reason, /duplicate/);
    assert.match(verdict.rejected[2]!.reason, /no public key/);
  });

  it('rejects everything for a malformed proposal', () => {
    const bad = { ...proposal, policySha256: 'zz' };
    const verdict = verifyProposalSignatures(bad, sign(proposal, 'a'), keys);
    assert.deepEqual(verdict.signers, []);
    assert.match(verdict.rejected[0]!.reason, /malformed/);
  });
});

describe('decideProposal', () => {
  it('approves exactly at quorum and not at quorum − 1', () => {
    const at = decideProposal(policy, proposal, sign(proposal, 'a', 'c'), keys);
    assert.deepEqual(at, { approved: true, missing: '', signers: ['a', 'c'], rejected: [] });
    const below = decideProposal(policy, proposal, sign(proposal, 'c'), keys);
    assert.equal(below.approved, false);
    assert.equal(below.missing, '1 more of {a, b}');
  });

  it('uses the rule of the proposal kind', () => {
    const release: Proposal = { ...proposal, kind: 'release-model' };
    const noAuditor = decideProposal(policy, release, sign(release, 'a', 'b', 'c'), keys);
    assert.deepEqual([noAuditor.approved, noAuditor.missing], [false, 'x']);
    assert.equal(decideProposal(policy, release, sign(release, 'a', 'b', 'x'), keys).approved, true);
    const adopt: Proposal = { ...proposal, kind: 'adopt-policy' };
    assert.equal(decideProposal(policy, adopt, sign(adopt, 'a', 'b'), keys).approved, false);
  });

  it('resumes runs after an incident under adoptPolicy when the policy sets no resumeAfterIncident', () => {
    const resume: Proposal = { ...proposal, kind: 'resume-runs', subjectSha256: 'f'.repeat(64) };
    assert.equal(parseProposal(resume).kind, 'resume-runs');
    assert.deepEqual(selectApprovalRule(policy, 'resume-runs'), policy.approvals.adoptPolicy);
    // adoptPolicy here is 3 of {a, b, c}: the start-run quorum (2 of them) is not enough.
    const two = decideProposal(policy, resume, sign(resume, 'a', 'b'), keys);
    assert.deepEqual([two.approved, two.missing], [false, 'c']);
    assert.equal(decideProposal(policy, resume, sign(resume, 'a', 'b', 'c'), keys).approved, true);
  });

  it('cancels a run under approvals.startRun, or approvals.cancelRun when the policy sets it', () => {
    assert.deepEqual(selectApprovalRule(policy, 'cancel-run'), policy.approvals.startRun);
    const withRule = parsePolicy({
      ...structuredClone(policyInput),
      approvals: { ...policyInput.approvals, cancelRun: { member: 'op' } },
    });
    assert.deepEqual(selectApprovalRule(withRule, 'cancel-run'), { member: 'op' });
    const cancel: Proposal = {
      kind: 'cancel-run',
      subjectSha256: 'e'.repeat(64),
      policySha256: computePolicyDigest(withRule),
      createdAt: '2025-03-02T10:00:00Z',
    };
    assert.equal(parseProposal(cancel).kind, 'cancel-run');
    // Its own rule: the start-run quorum of institutions does not cancel; the operator named does.
    assert.equal(decideProposal(withRule, cancel, sign(cancel, 'a', 'b'), keys).approved, false);
    assert.equal(decideProposal(withRule, cancel, sign(cancel, 'op'), keys).approved, true);
  });

  it('approves an evaluation plan under approvals.startRun, or approvals.evaluationPlan when set', () => {
    const plan: Proposal = {
      kind: 'approve-evaluation-plan',
      subjectSha256: '7'.repeat(64),
      policySha256: computePolicyDigest(policy),
      createdAt: '2025-03-02T11:00:00Z',
    };
    assert.deepEqual(selectApprovalRule(policy, 'approve-evaluation-plan'), policy.approvals.startRun);
    assert.equal(decideProposal(policy, plan, sign(plan, 'a'), keys).approved, false);
    assert.equal(decideProposal(policy, plan, sign(plan, 'a', 'c'), keys).approved, true);
    const withRule = parsePolicy({
      ...structuredClone(policyInput),
      approvals: { ...policyInput.approvals, evaluationPlan: { all: [{ member: 'x' }, { member: 'a' }] } },
    });
    const underRule = { ...plan, policySha256: computePolicyDigest(withRule) };
    // The start-run quorum is not enough: the auditor the rule names must sign too.
    assert.equal(decideProposal(withRule, underRule, sign(underRule, 'a', 'c'), keys).approved, false);
    assert.equal(decideProposal(withRule, underRule, sign(underRule, 'a', 'x'), keys).approved, true);
    // A rule naming someone outside the policy is refused where it is written.
    assert.throws(
      () =>
        parsePolicy({
          ...structuredClone(policyInput),
          approvals: { ...policyInput.approvals, evaluationPlan: { member: 'nobody' } },
        }),
      (err: { field?: string }) => err.field === 'policy.approvals.evaluationPlan.member',
    );
  });

  it('moves an alias under approvals.releaseModel, or approvals.moveAlias when set', () => {
    const move: Proposal = {
      kind: 'move-alias',
      subjectSha256: '8'.repeat(64),
      policySha256: computePolicyDigest(policy),
      createdAt: '2025-03-02T12:00:00Z',
    };
    assert.deepEqual(selectApprovalRule(policy, 'move-alias'), policy.approvals.releaseModel);
    const withRule = parsePolicy({
      ...structuredClone(policyInput),
      approvals: { ...policyInput.approvals, moveAlias: { all: [{ member: 'x' }, { member: 'a' }] } },
    });
    assert.deepEqual(selectApprovalRule(withRule, 'move-alias'), { all: [{ member: 'x' }, { member: 'a' }] });
    const underRule = { ...move, policySha256: computePolicyDigest(withRule) };
    assert.equal(decideProposal(withRule, underRule, sign(underRule, 'a'), keys).approved, false);
    assert.equal(decideProposal(withRule, underRule, sign(underRule, 'a', 'x'), keys).approved, true);
    assert.throws(
      () =>
        parsePolicy({
          ...structuredClone(policyInput),
          approvals: { ...policyInput.approvals, moveAlias: { member: 'nobody' } },
        }),
      (err: { field?: string }) => err.field === 'policy.approvals.moveAlias.member',
    );
  });

  it('approves a rollout under approvals.releaseModel, or approvals.rollout; a rollback under approvals.rollback, else the rollout rule', () => {
    assert.deepEqual(selectApprovalRule(policy, 'approve-rollout'), policy.approvals.releaseModel);
    assert.deepEqual(selectApprovalRule(policy, 'rollback'), policy.approvals.releaseModel);
    const withRollout = parsePolicy({
      ...structuredClone(policyInput),
      approvals: { ...policyInput.approvals, rollout: { all: [{ member: 'x' }, { member: 'a' }] } },
    });
    assert.deepEqual(selectApprovalRule(withRollout, 'approve-rollout'), {
      all: [{ member: 'x' }, { member: 'a' }],
    });
    assert.deepEqual(selectApprovalRule(withRollout, 'rollback'), {
      all: [{ member: 'x' }, { member: 'a' }],
    });
    const withRollback = parsePolicy({
      ...structuredClone(policyInput),
      approvals: {
        ...policyInput.approvals,
        rollout: { all: [{ member: 'x' }, { member: 'a' }] },
        rollback: { member: 'a' },
      },
    });
    const rollback: Proposal = {
      kind: 'rollback',
      subjectSha256: '9'.repeat(64),
      policySha256: computePolicyDigest(withRollback),
      createdAt: '2025-03-02T12:00:00Z',
    };
    assert.equal(decideProposal(withRollback, rollback, sign(rollback, 'a'), keys).approved, true);
    const approve: Proposal = { ...rollback, kind: 'approve-rollout' };
    assert.equal(decideProposal(withRollback, approve, sign(approve, 'a'), keys).approved, false);
    assert.equal(decideProposal(withRollback, approve, sign(approve, 'a', 'x'), keys).approved, true);
    assert.throws(
      () =>
        parsePolicy({
          ...structuredClone(policyInput),
          approvals: { ...policyInput.approvals, rollback: { member: 'nobody' } },
        }),
      (err: { field?: string }) => err.field === 'policy.approvals.rollback.member',
    );
  });

  it('resumes runs under approvals.resumeAfterIncident when the policy sets it', () => {
    const input = {
      ...structuredClone(policyInput),
      approvals: {
        ...policyInput.approvals,
        resumeAfterIncident: { all: [{ member: 'x' }, { member: 'op' }] },
      },
    };
    const withRule = parsePolicy(input);
    assert.deepEqual(selectApprovalRule(withRule, 'resume-runs'), {
      all: [{ member: 'x' }, { member: 'op' }],
    });
    assert.deepEqual(selectApprovalRule(withRule, 'adopt-policy'), withRule.approvals.adoptPolicy);
    const resume: Proposal = {
      kind: 'resume-runs',
      subjectSha256: 'f'.repeat(64),
      policySha256: computePolicyDigest(withRule),
      createdAt: '2025-03-02T10:00:00Z',
    };
    // The adoptPolicy quorum does not resume runs when a dedicated rule exists.
    const institutions = decideProposal(withRule, resume, sign(resume, 'a', 'b', 'c'), keys);
    assert.deepEqual([institutions.approved, institutions.missing], [false, 'x and op']);
    assert.equal(decideProposal(withRule, resume, sign(resume, 'x', 'op'), keys).approved, true);
    // A signature over a start-run proposal on the same subject does not count for resuming.
    const asStart = sign({ ...resume, kind: 'start-run' }, 'x', 'op');
    assert.equal(decideProposal(withRule, resume, asStart, keys).approved, false);
  });

  it('selectApprovalRule refuses an unknown kind', () => {
    assert.throws(() => selectApprovalRule(policy, 'delete-log' as never), {
      code: 'INVALID_ARGUMENT',
      field: 'kind',
    });
  });

  it('does not count a forged signature', () => {
    const forged: ProposalSignature = {
      signer: 'b',
      signature: signProposal(proposal, 'b', pem('c')).signature,
    };
    const flipped = sign(proposal, 'b')[0]!;
    const bits = flipped.signature.slice();
    bits[10]! ^= 1;
    for (const bad of [forged, { signer: 'b', signature: bits }]) {
      const d = decideProposal(policy, proposal, [...sign(proposal, 'a'), bad], keys);
      assert.equal(d.approved, false);
      assert.deepEqual(d.signers, ['a']);
      assert.deepEqual(
        d.rejected.map((r) => r.index),
        [1],
      );
    }
  });

  it('does not count a signature over another proposal', () => {
    const other: Proposal = { ...proposal, subjectSha256: '9'.repeat(64) };
    const d = decideProposal(policy, proposal, [...sign(proposal, 'a'), ...sign(other, 'b')], keys);
    assert.equal(d.approved, false);
    assert.deepEqual(d.signers, ['a']);
    assert.match(d.rejected[0]!.reason, /does not verify/);
    // Nor one by b over the bytes naming another signer, or another kind of decision on the same subject.
    const relabelled: ProposalSignature = {
      signer: 'b',
      signature: signEd25519(pem('b'), encodeProposalSigningBytes(proposal, 'c')),
    };
    const asRelease = sign({ ...proposal, kind: 'release-model' }, 'b');
    assert.equal(
      decideProposal(policy, proposal, [...sign(proposal, 'a'), relabelled], keys).approved,
      false,
    );
    assert.equal(
      decideProposal(policy, proposal, [...sign(proposal, 'a'), ...asRelease], keys).approved,
      false,
    );
  });

  it("does not count a non-member's signature, even with a known key", () => {
    const d = decideProposal(policy, proposal, sign(proposal, 'a', 'former'), keys);
    assert.equal(d.approved, false);
    assert.deepEqual(d.signers, ['a']);
    assert.deepEqual(d.rejected, [
      { index: 1, signer: 'former', reason: 'signer is not a member of the policy in force' },
    ]);
  });

  it('refuses a proposal made under another policy, and a malformed one', () => {
    const stale: Proposal = { ...proposal, policySha256: 'e'.repeat(64) };
    const d = decideProposal(policy, stale, sign(stale, 'a', 'b', 'c'), keys);
    assert.equal(d.approved, false);
    assert.deepEqual(d.signers, ['a', 'b', 'c']);
    assert.match(d.missing, /policy in force/);
    const malformed = { ...proposal, kind: 'nope' } as unknown as Proposal;
    const m = decideProposal(policy, malformed, sign(proposal, 'a', 'b'), keys);
    assert.deepEqual([m.approved, m.signers.length, m.rejected.length], [false, 0, 2]);
  });
});
