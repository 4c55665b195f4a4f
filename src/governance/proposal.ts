/**
 * Governance proposals (issue 6): a change — adopt or change the policy, admit a member, start a run,
 * release a model, resume runs after an incident, cancel a run, approve an evaluation plan, move a model
 * alias, approve a staged rollout or roll one back — is a proposal naming its subject by SHA-256 and the
 * policy in force; members sign
 * it with their Ed25519 identity keys (RFC 8032, src/crypto/signatures.ts) over length-prefixed
 * canonical bytes with a domain-separation tag; it takes effect only when the valid signatures of
 * members satisfy the quorum the policy in force names for that kind (quorum.ts).
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { encodeCanonicalFields } from '../crypto/canonical-bytes.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { signEd25519, verifyEd25519 } from '../crypto/signatures.ts';
import { computePolicyDigest, type Policy } from './policy.ts';
import { evaluateQuorum, memberIdSchema, type QuorumRule } from './quorum.ts';

/** Domain-separation tag, the first signed field. */
export const PROPOSAL_SIGNING_CONTEXT = 'entente/governance/proposal/v1';

export const proposalKinds = [
  'adopt-policy',
  'admit-member',
  'start-run',
  'release-model',
  'resume-runs',
  'replace-identity-key',
  'cancel-run',
  'approve-evaluation-plan',
  'move-alias',
  'approve-rollout',
  'rollback',
] as const;
export type ProposalKind = (typeof proposalKinds)[number];

export interface Proposal {
  readonly kind: ProposalKind;
  /** SHA-256 of what is decided: the new policy, the admission request, the run config, the model,
   *  (for 'resume-runs') the incident record the resumption closes, or (for 'approve-evaluation-plan')
   *  the evaluation plan (its digest, evaluation-plan.ts), or (for 'move-alias') {alias, version,
   *  previous}: the alias, the model version it will point at and the one it points at now (or null),
   *  or (for 'approve-rollout') the rollout plan (rollout-plan.ts), or (for 'rollback') {rollout, reason}:
   *  the approved rollout plan's digest and why it is rolled back. */
  readonly subjectSha256: string;
  /** computePolicyDigest of the policy in force (for the very first policy: of that policy itself). */
  readonly policySha256: string;
  /** RFC 3339 UTC time the proposal was made, e.g. '2025-01-31T12:00:00Z' (passed in, never read here). */
  readonly createdAt: string;
}

/** One member's signature over a proposal; the 64-byte Ed25519 signature is not secret. */
export interface ProposalSignature {
  readonly signer: string;
  readonly signature: Uint8Array;
}

export interface RejectedSignature {
  /** Position in the signatures given. */
  readonly index: number;
  readonly signer: string;
  readonly reason: string;
}

export interface ProposalSignatureVerdict {
  /** Distinct signers whose signature verified, sorted. */
  readonly signers: readonly string[];
  readonly rejected: readonly RejectedSignature[];
}

export interface ProposalDecision extends ProposalSignatureVerdict {
  readonly approved: boolean;
  /** What is still needed ('' when approved). */
  readonly missing: string;
}

const sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');
const proposalSchema = z.strictObject({
  kind: z.enum(proposalKinds),
  subjectSha256: sha256HexSchema,
  policySha256: sha256HexSchema,
  createdAt: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/, 'must be an RFC 3339 UTC time')
    .refine((s) => {
      const ms = Date.parse(s);
      return Number.isFinite(ms) && new Date(ms).toISOString().slice(0, 19) === s.slice(0, 19);
    }, 'is not a real date and time'),
});

/** Validates a proposal (e.g. from the wire) and returns a frozen copy. Throws INVALID_MESSAGE naming the
 *  first bad field ('proposal.kind', 'proposal.subjectSha256', ...). */
export function parseProposal(input: unknown): Proposal {
  const r = proposalSchema.safeParse(input);
  if (r.success) return Object.freeze(r.data);
  const issue = r.error.issues[0]!;
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]] : issue.path;
  const field = ['proposal', ...path.map(String)].join('.');
  throw new EntenteError('INVALID_MESSAGE', `${field}: ${issue.message}`, { field });
}

/** The exact bytes `signer` signs: canonical fields (context, kind, subject, policy, createdAt, signer).
 *  Throws INVALID_MESSAGE for a malformed proposal, INVALID_ARGUMENT (field 'signer') for a bad id. */
export function encodeProposalSigningBytes(proposal: Proposal, signer: string): Uint8Array {
  const p = parseProposal(proposal);
  if (!memberIdSchema.safeParse(signer).success)
    throw new EntenteError('INVALID_ARGUMENT', 'signer: not a member id', { field: 'signer' });
  return encodeSigningFields(p, signer);
}

/** The signing bytes of an already validated proposal and signer id. */
function encodeSigningFields(p: Proposal, signer: string): Uint8Array {
  return encodeCanonicalFields([
    PROPOSAL_SIGNING_CONTEXT,
    p.kind,
    p.subjectSha256,
    p.policySha256,
    p.createdAt,
    signer,
  ]);
}

/** SHA-256 (hex) of the proposal's RFC 8785 canonical JSON: the id under which it is recorded. */
export function computeProposalDigest(proposal: Proposal): string {
  return sha256Hex(new TextEncoder().encode(canonicalizeJson(parseProposal(proposal))));
}

/**
 * `signer` signs `proposal` with its Ed25519 identity key (`privateKeyPem`, secret). Throws
 * INVALID_MESSAGE for a malformed proposal, INVALID_ARGUMENT for a bad signer id or key.
 */
export function signProposal(proposal: Proposal, signer: string, privateKeyPem: string): ProposalSignature {
  return { signer, signature: signEd25519(privateKeyPem, encodeProposalSigningBytes(proposal, signer)) };
}

/** Why one well-formed entry does not count, or undefined when it does. */
function checkSignature(
  proposal: Proposal,
  signer: string,
  signature: Uint8Array,
  keys: ReadonlyMap<string, Uint8Array>,
  counted: ReadonlySet<string>,
): string | undefined {
  const key = keys.get(signer);
  if (key === undefined) return 'no public key is known for this signer';
  // Both were validated by the caller (verifyProposalSignatures): no second parse per signature.
  if (!verifyEd25519(key, encodeSigningFields(proposal, signer), signature))
    return 'signature does not verify for this proposal and signer';
  if (counted.has(signer)) return 'duplicate: this signer is already counted';
  return undefined;
}

/**
 * Checks each signature against the signer's 32-byte Ed25519 public key in `keys`. Never throws: a
 * malformed proposal or entry, a signer with no key, a signature that does not verify (forged, or over
 * another proposal), or a second signature by a signer already counted, is listed in `rejected`.
 */
export function verifyProposalSignatures(
  proposal: Proposal,
  signatures: readonly ProposalSignature[],
  keys: ReadonlyMap<string, Uint8Array>,
): ProposalSignatureVerdict {
  const rejected: RejectedSignature[] = [];
  const signers = new Set<string>();
  const wellFormed = isWellFormed(proposal);
  const list: readonly unknown[] = Array.isArray(signatures) ? signatures : [];
  for (const [index, entry] of list.entries()) {
    const { signer, signature } = (entry ?? {}) as { signer?: unknown; signature?: unknown };
    const reason = !wellFormed
      ? 'the proposal is malformed'
      : typeof signer !== 'string' || !memberIdSchema.safeParse(signer).success
        ? 'signer is not a member id'
        : !(signature instanceof Uint8Array)
          ? 'signature is not bytes'
          : checkSignature(proposal, signer, signature, keys, signers);
    if (reason === undefined) signers.add(signer as string);
    else rejected.push({ index, signer: typeof signer === 'string' ? signer : '', reason });
  }
  return { signers: [...signers].sort(), rejected };
}

function isWellFormed(proposal: Proposal): boolean {
  return proposalSchema.safeParse(proposal).success;
}

/** The approval rule `policy` names for proposals of `kind`. Resuming runs after an incident uses
 *  approvals.resumeAfterIncident, or approvals.adoptPolicy when the policy sets none; cancelling a run
 *  uses approvals.cancelRun, or approvals.startRun when the policy sets none; approving an evaluation
 *  plan uses approvals.evaluationPlan, or approvals.startRun when the policy sets none; moving a model
 *  alias uses approvals.moveAlias, or approvals.releaseModel when the policy sets none; approving a staged
 *  rollout uses approvals.rollout, or approvals.releaseModel when the policy sets none; rolling one back
 *  uses approvals.rollback, else the rollout's rule. Throws
 *  INVALID_ARGUMENT (field 'kind') for a value that is not a proposal kind. */
export function selectApprovalRule(policy: Policy, kind: ProposalKind): QuorumRule {
  const { approvals } = policy;
  switch (kind) {
    case 'adopt-policy':
      return approvals.adoptPolicy;
    case 'admit-member':
    case 'replace-identity-key':
      // Replacing a member's key without its old key is as weighty as admitting it anew.
      return approvals.admitMember;
    case 'start-run':
      return approvals.startRun;
    case 'cancel-run':
      // Stopping a run is as weighty as starting one, unless the policy names its own rule.
      return approvals.cancelRun ?? approvals.startRun;
    case 'approve-evaluation-plan':
      // Pre-registering a comparison is as weighty as starting a run, unless the policy names its own rule.
      return approvals.evaluationPlan ?? approvals.startRun;
    case 'release-model':
      return approvals.releaseModel;
    case 'move-alias':
      // Pointing an alias (candidate, production, …) at a model is as weighty as releasing it, unless
      // the policy names its own rule.
      return approvals.moveAlias ?? approvals.releaseModel;
    case 'approve-rollout':
      // Putting a model in front of sites is as weighty as releasing it, unless the policy names its own rule.
      return approvals.rollout ?? approvals.releaseModel;
    case 'rollback':
      // Stopping a rollout by hand takes the rollout's own quorum, unless the policy names a lighter one.
      return approvals.rollback ?? approvals.rollout ?? approvals.releaseModel;
    case 'resume-runs':
      return approvals.resumeAfterIncident ?? approvals.adoptPolicy;
    default:
      throw new EntenteError('INVALID_ARGUMENT', 'kind: not a proposal kind', { field: 'kind' });
  }
}

/**
 * Decides `proposal` under `policy` (the parsed policy in force): approved when its policySha256 is that
 * policy's digest and the members whose signatures verify satisfy the rule for its kind. Signatures of
 * non-members (even with a known key) are rejected. Never throws for bad signatures or a malformed
 * proposal; the verdict says why. `keys`: member id → 32-byte Ed25519 public key (from certificates).
 */
export function decideProposal(
  policy: Policy,
  proposal: Proposal,
  signatures: readonly ProposalSignature[],
  keys: ReadonlyMap<string, Uint8Array>,
): ProposalDecision {
  const verdict = verifyProposalSignatures(proposal, signatures, keys);
  const list: readonly ProposalSignature[] = Array.isArray(signatures) ? signatures : [];
  const rejected = [...verdict.rejected];
  const signers: string[] = [];
  for (const signer of verdict.signers) {
    if (Object.hasOwn(policy.members, signer)) {
      signers.push(signer);
    } else {
      list.forEach((s, index) => {
        if (s?.signer === signer && !rejected.some((r) => r.index === index))
          rejected.push({ index, signer, reason: 'signer is not a member of the policy in force' });
      });
    }
  }
  rejected.sort((a, b) => a.index - b.index);
  if (!isWellFormed(proposal))
    return { approved: false, missing: 'a well-formed proposal', signers, rejected };
  const policySha256 = computePolicyDigest(policy);
  if (proposal.policySha256 !== policySha256)
    return {
      approved: false,
      missing: `a proposal under the policy in force (policySha256 ${policySha256.slice(0, 12)}…)`,
      signers,
      rejected,
    };
  const result = evaluateQuorum(selectApprovalRule(policy, proposal.kind), new Set(signers));
  return { approved: result.satisfied, missing: result.missing, signers, rejected };
}

/**
 * Decides the *first* policy of a consortium (its genesis, decided under its own rules): approved only
 * when its adoptPolicy rule is met and every member it lists (observers aside: they sign nothing) has
 * signed it. Each founding member thereby
 * consents to the roster it will be federated with, and proves that the identity key the log pinned for it
 * is its own; without this, whoever controls enrollment before the first policy (the operator) could
 * found a consortium of members it made up around one honest institution. Never throws.
 */
export function decideFirstPolicy(
  policy: Policy,
  proposal: Proposal,
  signatures: readonly ProposalSignature[],
  keys: ReadonlyMap<string, Uint8Array>,
): ProposalDecision {
  const decision = decideProposal(policy, proposal, signatures, keys);
  // Observers only read: they sign nothing, so the roster needs every member with another role.
  const absent = Object.entries(policy.members)
    .filter(([m, { roles }]) => roles.some((r) => r !== 'observer') && !decision.signers.includes(m))
    .map(([m]) => m)
    .sort();
  if (absent.length === 0) return decision;
  const founders = `the signature of every founding member (missing: ${absent.slice(0, 10).join(', ')})`;
  return {
    ...decision,
    approved: false,
    missing: decision.missing === '' ? founders : `${decision.missing}; ${founders}`,
  };
}
