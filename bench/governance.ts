/**
 * Governance benchmark: what it costs an auditor (`entente audit verify`) or an enrolled site (before
 * each new run) to replay a log's governance trail with verifyGovernanceTrail — every proposal's
 * subject digest, every Ed25519 signature against the signer's enrolled key, every approval against the
 * quorum of the policy in force. A synthetic trail: 10 institutions and an operator, a policy whose
 * startRun rule is "operator and 5 of 10", then N start-run proposals each signed by 6 members and
 * approved, each followed by its run-configured entry. The bound, measured in the same run, is raw
 * Ed25519 verification with node:crypto (one verify per signature); the ratio says how much the
 * replay costs on top (each signature is checked when it is recorded and again at the decision, so 2×
 * is the floor of this design). `--quick`: N = 200. One JSON document on stdout.
 */
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { canonicalizeJson } from '../src/crypto/canonical-json.ts';
import { sha256Hex } from '../src/crypto/digest.ts';
import { generateEd25519KeyPem } from '../src/crypto/signatures.ts';
import {
  computePolicyDigest,
  computeProposalDigest,
  parsePolicy,
  type Proposal,
  signProposal,
  type TrailEntry,
  verifyGovernanceTrail,
} from '../src/governance/index.ts';

const progress = (msg: string) => process.stderr.write(`bench governance: ${msg}\n`);
const round2 = (x: number) => Math.round(x * 100) / 100;
const digestOf = (v: unknown) => sha256Hex(new TextEncoder().encode(canonicalizeJson(v)));

/** Raw node:crypto Ed25519 verifications per second over 120-byte messages, for ≥ minMs. */
function measureEd25519VerifyPerSecond(minMs = 400): number {
  const key = createPrivateKey(generateEd25519KeyPem().privateKeyPem);
  const pub = createPublicKey(key);
  const msg = Buffer.alloc(120, 7);
  const sig = sign(null, msg, key);
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < minMs) {
    for (let i = 0; i < 200; i++) if (!verify(null, msg, pub, sig)) throw new Error('verify failed');
    n += 200;
    now = performance.now();
  }
  return n / ((now - start) / 1000);
}

function buildTrail(proposals: number): { entries: TrailEntry[]; signatures: number } {
  const ids = [...Array.from({ length: 10 }, (_, i) => `site-${i}`), 'operator'];
  const keys = new Map(ids.map((id) => [id, generateEd25519KeyPem()]));
  const institutions = ids.slice(0, 10);
  const policyInput = {
    version: 1,
    consortium: 'bench',
    members: Object.fromEntries(
      ids.map((id) => [id, { roles: [id === 'operator' ? 'coordinator-operator' : 'institution'] }]),
    ),
    exchange: {
      tensors: 'model-deltas',
      metrics: ['loss', 'accuracy'],
      maxRounds: 100,
      minParticipantsPerRound: 3,
      secureAggregation: 'required',
      differentialPrivacy: { required: false },
      clipping: {},
      dataSchemaDigests: ['a'.repeat(64)],
    },
    agreements: [],
    approvals: {
      adoptPolicy: { of: 5, members: institutions },
      admitMember: { of: 5, members: institutions },
      startRun: { all: [{ member: 'operator' }, { of: 5, members: institutions }] },
      releaseModel: { of: 5, members: institutions },
    },
  };
  const policy = parsePolicy(policyInput);
  const policySha256 = computePolicyDigest(policy);
  const entries: TrailEntry[] = [];
  let index = 0;
  const push = (kind: string, body: Record<string, unknown>) =>
    entries.push({ kind, index: index++, ...body });
  for (const [id, k] of keys)
    push('member-enrolled', { member: id, identityKey: Buffer.from(k.publicKey).toString('base64') });
  let signatures = 0;
  const signAll = (proposal: Proposal, id: string, signers: readonly string[]) => {
    for (const s of signers) {
      const sig = signProposal(proposal, s, keys.get(s)!.privateKeyPem);
      push('proposal-signed', {
        proposal: id,
        signer: s,
        signature: Buffer.from(sig.signature).toString('base64'),
      });
      signatures++;
    }
    push('proposal-decided', {
      proposal: id,
      outcome: 'approved',
      signers: [...signers].sort(),
      missing: '',
    });
  };
  const adopt: Proposal = {
    kind: 'adopt-policy',
    subjectSha256: digestOf(policyInput),
    policySha256,
    createdAt: '2026-01-01T00:00:00Z',
  };
  const adoptId = computeProposalDigest(adopt);
  push('proposal-created', {
    proposal: adoptId,
    proposalKind: adopt.kind,
    subjectSha256: adopt.subjectSha256,
    policySha256,
    createdAt: adopt.createdAt,
    subject: policyInput,
  });
  signAll(adopt, adoptId, institutions.slice(0, 5));
  push('policy-adopted', { policySha256, policy: policyInput, version: 1, proposal: adoptId });
  for (let p = 0; p < proposals; p++) {
    const subject = { id: `run-${p}`, rounds: 10 };
    const proposal: Proposal = {
      kind: 'start-run',
      subjectSha256: digestOf(subject),
      policySha256,
      createdAt: '2026-01-02T00:00:00Z',
    };
    const id = computeProposalDigest(proposal);
    push('proposal-created', {
      proposal: id,
      proposalKind: proposal.kind,
      subjectSha256: proposal.subjectSha256,
      policySha256,
      createdAt: proposal.createdAt,
      subject,
    });
    const five = Array.from({ length: 5 }, (_, k) => institutions[(p + k) % 10]!);
    signAll(proposal, id, ['operator', ...five]);
    push('run-configured', { run: subject.id, proposal: id });
  }
  return { entries, signatures };
}

export async function benchGovernance(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const proposals = quick ? 200 : 2_000;
  progress(`building a trail of ${proposals} approved runs`);
  const { entries, signatures } = buildTrail(proposals);
  const verifyPerSecond = measureEd25519VerifyPerSecond();
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const report = verifyGovernanceTrail(entries);
    times.push(performance.now() - t0);
    if (report.problems.length > 0) throw new Error(`trail has problems: ${report.problems[0]!.message}`);
  }
  times.sort((a, b) => a - b);
  const medianMs = times[1]!;
  const boundMs = (signatures / verifyPerSecond) * 1000;
  const out = {
    bench: 'governance',
    entries: entries.length,
    proposals: proposals + 1,
    signatures,
    replay: { medianMs: round2(medianMs), runs: times.map(round2) },
    bound: {
      what: 'one node:crypto Ed25519 verify per signature, measured in this run',
      ed25519VerifyPerSecond: Math.round(verifyPerSecond),
      ms: round2(boundMs),
    },
    ratio: round2(medianMs / boundMs),
    signaturesPerSecond: Math.round(signatures / (medianMs / 1000)),
  };
  console.log(JSON.stringify(out, null, args.includes('--json') ? undefined : 2));
}
