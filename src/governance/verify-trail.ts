/**
 * The governance trail of an audit log, re-checked from the entries alone (issue 6: "every decision
 * leaves a verifiable trace"). An auditor replays the log's governance entries in order: members'
 * identity keys from their enrollment entries, the policy in force from its adoption entries, each
 * proposal's subject against its digest, each signature against the signer's key (Ed25519, RFC 8032,
 * over the proposal's canonical bytes), and each approval against the quorum of the policy in force
 * (quorum.ts). Effects must follow an approval: a policy adopted, a run configured, a model released or
 * an incident resolved under a policy without the matching approved proposal is a problem, and so is a
 * model alias moved without one (alias-trail.ts: the approved move, from the alias's current version, to
 * a model version the log recorded); so is an
 * evaluation step out of the order its pre-registered plan fixes (evaluation-trail.ts), and a staged
 * rollout step its approved plan does not allow (rollout-trail.ts), and an incident drill whose
 * completion or time to recover the log's own entries contradict (drill-trail.ts). Pure: it
 * takes plain entry objects (what src/audit's parseLogEntry returns), never throws on bad data.
 */
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import {
  createIdentityKeyState,
  decodeRawKey,
  isSameKey,
  readVerifierKeyBytes,
  recordPresentedKey,
  verifyKeyRotation,
} from './identity-key.ts';
import { createAliasTrail } from './alias-trail.ts';
import { createDrillTrail, type DrillView } from './drill-trail.ts';
import { type EvaluationPlan, parseEvaluationPlan } from './evaluation-plan.ts';
import { createEvaluationTrail } from './evaluation-trail.ts';
import { parseRolloutPlan, type RolloutPlan } from './rollout-plan.ts';
import { createRolloutTrail, type RolloutView } from './rollout-trail.ts';
import { computePolicyDigest, type Policy, parsePolicy } from './policy.ts';
import {
  decideFirstPolicy,
  decideProposal,
  type Proposal,
  type ProposalKind,
  proposalKinds,
} from './proposal.ts';

/** A log entry as parsed: its kind, index and body fields. */
export interface TrailEntry {
  readonly kind: string;
  readonly index: number;
  readonly [field: string]: unknown;
}

export interface TrailReport {
  readonly problems: ReadonlyArray<{ readonly index: number; readonly message: string }>;
  readonly facts: readonly string[];
  /** Each member's identity key pinned at the end of the entries (identity-key.ts rules). */
  readonly identityKeys: ReadonlyMap<string, Uint8Array>;
  /** Keys members presented (re-enrollment) that no rotation or recovery authorized. */
  readonly presentedKeys: ReadonlyMap<string, Uint8Array>;
  /**
   * Who is a member at the end of the entries: the members of the policy in force, or (no policy yet)
   * the institutions the log-created entry names. An identity key recorded for anyone else (an
   * enrollment entry the log's writer could add for a name of its choosing) admits no one.
   */
  readonly members: ReadonlySet<string>;
  /** Evaluation plans whose approve-evaluation-plan proposal was approved, by plan digest. */
  readonly approvedPlans: ReadonlyMap<string, EvaluationPlan>;
  /** The consortium policy in force at the end of the entries (undefined before the first). */
  readonly policy: Policy | undefined;
  /** Each model alias and the version it points at after the entries' approved moves. */
  readonly aliases: ReadonlyMap<string, string>;
  /** Every rollout an approve-rollout proposal approved, as its entries leave it (rollout-trail.ts). */
  readonly rollouts: ReadonlyMap<string, RolloutView>;
  /** Every incident drill, with its steps and time to recover (drill-trail.ts). */
  readonly drills: readonly DrillView[];
}

interface OpenProposal {
  readonly proposal: Proposal;
  readonly subject: unknown;
  readonly signatures: { signer: string; signature: Uint8Array }[];
  /** The policy the decision is taken under (the first policy: itself). */
  readonly policy: Policy | undefined;
  approved: boolean;
  /** Decided (approved, rejected or expired): nothing may be added to it afterwards. */
  decided: boolean;
}

/** SHA-256 of the canonical JSON of `value`; '' (never a digest) for a value JSON cannot represent. */
const digestOf = (value: unknown): string => {
  try {
    return sha256Hex(new TextEncoder().encode(canonicalizeJson(value)));
  } catch {
    return '';
  }
};
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

export interface TrailOptions {
  /**
   * The log's root hash (hex) at a tree size, when the caller holds the log's leaves (`audit verify`):
   * a canary draw's checkpoint is then compared with it. Without it, the draw is recomputed from the
   * root hash and size the entry carries.
   */
  readonly rootHashAt?: ((size: number) => string | undefined) | undefined;
}

/** Replays the governance entries of `entries` (in log order) and reports every inconsistency. */
export function verifyGovernanceTrail(
  entries: readonly TrailEntry[],
  options: TrailOptions = {},
): TrailReport {
  const problems: { index: number; message: string }[] = [];
  const bad = (index: number, message: string): void => {
    problems.push({ index, message });
  };
  const identity = createIdentityKeyState();
  const keys = identity.pinned;
  let consortium = '';
  const genesisMembers = new Set<string>();
  const proposals = new Map<string, OpenProposal>();
  let policy: Policy | undefined;
  const counts = { proposals: 0, signatures: 0, approvals: 0, policies: 0, runs: 0, keyChanges: 0 };
  const evaluation = createEvaluationTrail(bad);
  const aliasTrail = createAliasTrail(bad);
  const drills = createDrillTrail(bad);
  /** The evaluation plan each approve-evaluation-plan proposal pre-registers (by proposal id). */
  const plans = new Map<string, EvaluationPlan>();
  const approvedPlans = new Map<string, EvaluationPlan>();
  /** The rollout plan each approve-rollout proposal names (by proposal id). */
  const rolloutPlans = new Map<string, RolloutPlan>();
  const rollout = createRolloutTrail(bad, {
    institutions: () =>
      policy
        ? Object.entries(policy.members)
            .filter(([, m]) => m.roles.includes('institution'))
            .map(([id]) => id)
        : [],
    keyOf: (member) => keys.get(member),
    evaluationPlanApproved: (digest) => approvedPlans.has(digest),
    rootHashAt: options.rootHashAt,
  });

  const approvedOf = (
    index: number,
    id: unknown,
    kind: ProposalKind,
    what: string,
  ): OpenProposal | undefined => {
    const p = typeof id === 'string' ? proposals.get(id) : undefined;
    if (typeof id !== 'string') bad(index, `${what} names no ${kind} proposal, but a policy is in force`);
    else if (!p)
      bad(index, `${what} refers to proposal ${str(id).slice(0, 12)}…, which is not in the log before it`);
    else if (!p.approved)
      bad(index, `${what} follows proposal ${str(id).slice(0, 12)}…, which was not approved`);
    else if (p.proposal.kind !== kind)
      bad(index, `${what} follows a ${p.proposal.kind} proposal, not ${kind}`);
    else return p;
    return undefined;
  };

  for (const e of entries) {
    // Sees every entry (a drill must follow the raising of its incident), consumes the drill entries.
    if (drills.check(e)) continue;
    switch (e.kind) {
      case 'log-created': {
        consortium = str(e.consortium);
        // A workspace made by `entente init`: its institutions' keys are pinned from the start.
        for (const item of Array.isArray(e.witnesses) ? (e.witnesses as unknown[]) : []) {
          const w = (item !== null && typeof item === 'object' ? item : {}) as Record<string, unknown>;
          const key = readVerifierKeyBytes(str(w.key));
          if (key) keys.set(str(w.institution), key);
          genesisMembers.add(str(w.institution));
        }
        break;
      }
      case 'member-enrolled': {
        const key = decodeRawKey(str(e.identityKey));
        if (!key) bad(e.index, `member ${str(e.member)}: identity key is not 32 bytes`);
        else recordPresentedKey(identity, str(e.member), key);
        break;
      }
      case 'identity-key-changed': {
        const member = str(e.member);
        const previous = decodeRawKey(str(e.previousKey));
        const next = decodeRawKey(str(e.key));
        if (!previous || !next) {
          bad(e.index, `identity key change of ${member}: a key is not 32 bytes`);
          break;
        }
        if (!isSameKey(previous, keys.get(member))) {
          bad(e.index, `identity key change of ${member}: previousKey is not the key pinned for it`);
          break;
        }
        if (e.via === 'rotation') {
          const signature = new Uint8Array(Buffer.from(str(e.signature), 'base64'));
          const rotation = { consortium, member, previousKey: str(e.previousKey), key: str(e.key) };
          if (!verifyKeyRotation(rotation, signature)) {
            bad(e.index, `identity key rotation of ${member} is not signed by its pinned key`);
            break;
          }
        } else {
          const p = approvedOf(
            e.index,
            e.proposal,
            'replace-identity-key',
            `identity key recovery of ${member}`,
          );
          const s = p?.subject as { member?: unknown; identityKey?: unknown } | undefined;
          if (!p) break;
          if (s?.member !== member || s?.identityKey !== e.key) {
            bad(e.index, `the recovered key of ${member} is not the one its proposal approved`);
            break;
          }
        }
        keys.set(member, next);
        identity.presented.delete(member);
        counts.keyChanges++;
        break;
      }
      case 'witness-added': {
        const key = readVerifierKeyBytes(str(e.key));
        if (!isSameKey(key, keys.get(str(e.institution))))
          bad(
            e.index,
            `witness key of ${str(e.institution)} is not the identity key pinned for it (a key that no rotation or recovery authorized)`,
          );
        break;
      }
      case 'proposal-created': {
        counts.proposals++;
        const kind = str(e.proposalKind);
        if (!(proposalKinds as readonly string[]).includes(kind)) {
          bad(e.index, `proposal kind "${kind.slice(0, 40)}" is unknown`);
          break;
        }
        const proposal: Proposal = {
          kind: kind as ProposalKind,
          subjectSha256: str(e.subjectSha256),
          policySha256: str(e.policySha256),
          createdAt: str(e.createdAt),
        };
        if (digestOf(e.subject) !== proposal.subjectSha256)
          bad(e.index, 'the proposal subject does not hash to its subjectSha256');
        let under = policy;
        if (under === undefined && kind === 'adopt-policy') {
          try {
            under = parsePolicy(e.subject);
          } catch {
            bad(e.index, 'the first policy proposed is not a valid policy');
          }
        }
        if (kind === 'approve-evaluation-plan') {
          try {
            const plan = parseEvaluationPlan(e.subject);
            if (policy && plan.consortium !== policy.consortium)
              bad(e.index, `the evaluation plan is for consortium "${plan.consortium}", not this one`);
            else plans.set(str(e.proposal), plan);
          } catch {
            bad(e.index, 'the evaluation plan proposed is not a valid plan');
          }
        }
        if (kind === 'approve-rollout') {
          try {
            const plan = parseRolloutPlan(e.subject);
            if (policy && plan.consortium !== policy.consortium)
              bad(e.index, `the rollout plan is for consortium "${plan.consortium}", not this one`);
            else rolloutPlans.set(str(e.proposal), plan);
          } catch {
            bad(e.index, 'the rollout plan proposed is not a valid plan');
          }
        }
        const expected = under ? computePolicyDigest(under) : undefined;
        if (expected !== undefined && expected !== proposal.policySha256)
          bad(e.index, 'the proposal does not name the policy in force');
        proposals.set(str(e.proposal), {
          proposal,
          subject: e.subject,
          signatures: [],
          policy: under,
          approved: false,
          decided: false,
        });
        break;
      }
      case 'proposal-signed': {
        counts.signatures++;
        const p = proposals.get(str(e.proposal));
        if (!p) {
          bad(e.index, 'a signature for a proposal that is not in the log before it');
          break;
        }
        if (p.decided) bad(e.index, 'a signature recorded after the proposal was decided');
        const signature = new Uint8Array(Buffer.from(str(e.signature), 'base64'));
        const one = p.policy
          ? decideProposal(p.policy, p.proposal, [{ signer: str(e.signer), signature }], keys)
          : undefined;
        if (!one || one.rejected.length > 0 || !one.signers.includes(str(e.signer)))
          bad(
            e.index,
            `signature by ${str(e.signer)} does not verify with its enrolled identity key${one?.rejected[0] ? ` (${one.rejected[0].reason})` : ''}`,
          );
        p.signatures.push({ signer: str(e.signer), signature });
        break;
      }
      case 'proposal-decided': {
        const p = proposals.get(str(e.proposal));
        if (!p) {
          bad(e.index, 'a decision on a proposal that is not in the log before it');
          break;
        }
        if (p.decided) bad(e.index, 'the proposal was already decided (approved, rejected or expired)');
        p.decided = true;
        if (e.outcome !== 'approved') break;
        counts.approvals++;
        // Decided under the policy in force now (the first policy: under itself), so that a proposal made
        // under a superseded policy cannot be approved by that policy's quorum.
        const under = policy ?? p.policy;
        const decide = policy === undefined ? decideFirstPolicy : decideProposal;
        const decision = under ? decide(under, p.proposal, p.signatures, keys) : undefined;
        if (!decision?.approved)
          bad(
            e.index,
            `approved without its quorum: still needs ${decision?.missing ?? 'a policy in force'}`,
          );
        p.approved = true;
        const plan = plans.get(str(e.proposal));
        if (p.proposal.kind === 'approve-evaluation-plan' && plan) {
          evaluation.approve(p.proposal.subjectSha256, plan, e.index);
          approvedPlans.set(p.proposal.subjectSha256, plan);
        }
        const rolloutPlan = rolloutPlans.get(str(e.proposal));
        if (p.proposal.kind === 'approve-rollout' && rolloutPlan)
          rollout.approve(p.proposal.subjectSha256, rolloutPlan, e.index);
        if (p.proposal.kind === 'rollback') rollout.approveRollback(str(e.proposal), p.subject, e.index);
        break;
      }
      case 'policy-adopted': {
        if (e.version === undefined) break; // the consortium file recorded at log creation (no governance)
        counts.policies++;
        let next: Policy;
        try {
          next = parsePolicy(e.policy);
        } catch {
          bad(e.index, 'the adopted policy is not a valid policy');
          break;
        }
        if (computePolicyDigest(next) !== e.policySha256)
          bad(e.index, 'the adopted policy does not hash to policySha256');
        // Versions only move forward one at a time: an old approval cannot roll the policy back.
        if (next.version !== e.version || (policy !== undefined && next.version !== policy.version + 1))
          bad(
            e.index,
            `policy version ${String(e.version)} does not follow version ${policy?.version ?? '(none)'} in force`,
          );
        const adopt = proposals.get(str(e.proposal));
        const kind: ProposalKind = adopt?.proposal.kind === 'admit-member' ? 'admit-member' : 'adopt-policy';
        const p = approvedOf(e.index, e.proposal, kind, `policy version ${String(e.version)}`);
        if (p && kind === 'adopt-policy' && digestOf(p.subject) !== digestOf(next))
          bad(e.index, 'the adopted policy is not the one its proposal was approved for');
        if (p && kind === 'admit-member') {
          // Exactly the policy in force, one version up, with the member added in the approved roles.
          const s = (p.subject ?? {}) as { member?: unknown; roles?: unknown };
          const expected = policy && {
            ...policy,
            version: policy.version + 1,
            members: { ...policy.members, [str(s.member)]: { roles: s.roles } },
          };
          if (expected === undefined || digestOf(expected) !== digestOf(next))
            bad(
              e.index,
              `the policy is not the one in force with ${str(s.member)} admitted in the approved roles`,
            );
        }
        policy = next;
        break;
      }
      case 'run-configured': {
        if (policy === undefined) break;
        counts.runs++;
        const p = approvedOf(e.index, e.proposal, 'start-run', `run ${str(e.run)}`);
        if (p && (p.subject as { id?: unknown } | null)?.id !== e.run)
          bad(e.index, `run ${str(e.run)} is not the run its proposal approved`);
        break;
      }
      case 'run-cancelled': {
        if (policy === undefined) break;
        const p = approvedOf(e.index, e.proposal, 'cancel-run', `cancellation of run ${str(e.run)}`);
        if (p && (p.subject as { run?: unknown } | null)?.run !== e.run)
          bad(e.index, `run ${str(e.run)} is not the run its cancel-run proposal named`);
        break;
      }
      case 'release-approved': {
        const p = approvedOf(e.index, e.proposal, 'release-model', `release of run ${str(e.run)}`);
        const s = p?.subject as { run?: unknown; modelSha256?: unknown } | undefined;
        if (p && (s?.run !== e.run || s?.modelSha256 !== e.modelSha256))
          bad(e.index, `the released model is not the one its proposal approved`);
        break;
      }
      case 'model-initialized':
      case 'model-released':
        aliasTrail.recordVersion(e);
        break;
      case 'alias-moved': {
        // A completed rollout moves its plan's alias, naming its approve-rollout proposal.
        const byRollout = proposals.get(str(e.proposal))?.proposal.kind === 'approve-rollout';
        const p = approvedOf(
          e.index,
          e.proposal,
          byRollout ? 'approve-rollout' : 'move-alias',
          `move of alias "${str(e.alias).slice(0, 40)}"`,
        );
        const subject = p && byRollout ? rollout.aliasMoveOf(p.proposal.subjectSha256, e.index) : p?.subject;
        aliasTrail.checkMove(e, byRollout && subject === undefined ? undefined : subject);
        break;
      }
      case 'incident-resolved': {
        if (policy === undefined) break;
        const p = approvedOf(e.index, e.proposal, 'resume-runs', `resolution of incident ${str(e.incident)}`);
        const list = (p?.subject as { incidents?: unknown } | undefined)?.incidents;
        if (p && !(Array.isArray(list) && list.includes(e.incident)))
          bad(e.index, `incident ${str(e.incident)} is not among those its proposal resolved`);
        break;
      }
      case 'evaluation-disclosure':
        // A site's own figures leave it only where the policy in force allows per-site evaluation.
        if (policy?.exchange.perSiteEvaluation !== true)
          bad(
            e.index,
            `${str(e.site)}'s evaluation figures were disclosed, but the policy in force does not allow it`,
          );
        evaluation.check(e);
        break;
      default:
        if (!rollout.check(e)) evaluation.check(e);
        break;
    }
  }
  const facts =
    counts.proposals === 0
      ? ['governance: no proposals in the log']
      : [
          `governance: ${counts.proposals} proposals, ${counts.signatures} signatures, ${counts.approvals} approvals re-checked against the quorum in force; ${counts.policies} policy versions, ${counts.runs} runs under a policy`,
        ];
  facts.push(...evaluation.facts());
  facts.push(...aliasTrail.facts());
  facts.push(...rollout.facts());
  drills.finish();
  facts.push(...drills.facts());
  const members = policy ? new Set(Object.keys(policy.members)) : genesisMembers;
  facts.push(
    `identity keys: ${keys.size} pinned, ${counts.keyChanges} changed by rotation or recovery${identity.presented.size > 0 ? `; presented but not authorized (count for nothing): ${[...identity.presented.keys()].sort().slice(0, 10).join(', ')}` : ''}`,
  );
  return {
    problems,
    facts,
    identityKeys: keys,
    presentedKeys: identity.presented,
    members,
    approvedPlans,
    policy,
    aliases: aliasTrail.table(),
    rollouts: rollout.views(),
    drills: drills.views(),
  };
}
