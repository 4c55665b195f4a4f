/**
 * The coordinator's side of governance: who is a member and in which roles, proposals signed
 * by members and decided by the quorum the policy in force names (src/governance), their effects, and
 * incidents that pause new rounds until a quorum resumes them. Certificates (enrollment, renewal,
 * revocation, identity keys) are in enrollment.ts. Every decision is an audit-log entry written in the
 * same transaction as the state it changes. The coordinator never holds a member's private key and
 * cannot approve anything by itself: approvals are Ed25519 signatures it only verifies.
 */
import type { Logger } from 'pino';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import type { CertificateAndKey } from '../crypto/index.ts';
import {
  type MemberRole,
  type Policy,
  type Proposal,
  type ProposalKind,
  computePolicyDigest,
  DEFAULT_PROPOSAL_TTL_HOURS,
  computeProposalDigest,
  decideFirstPolicy,
  decideProposal,
  parsePolicy,
  parseProposal,
  proposalKinds,
} from '../governance/index.ts';
import type { RegistryView } from '../registry/index.ts';
import type { GovernanceStore, SqliteStore, Workspace } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';
import { Enrollment } from './enrollment.ts';
import { listIncidents, logResolutions, raiseIncident, resumeWithoutPolicy } from './incidents.ts';
import { adoptPolicy } from './policy-adoption.ts';
import { admittedPolicy, checkProposalSubject } from './proposal-subjects.ts';

export interface GovernanceDeps {
  readonly ws: Workspace;
  readonly store: SqliteStore;
  readonly gov: GovernanceStore;
  readonly audit: AuditLog;
  readonly log: Logger;
  readonly now: () => number;
  /** The consortium CA (its key is secret: it signs certificates for CSRs, nothing else). */
  readonly ca: CertificateAndKey;
  /** Validity of certificates issued at enrollment and renewal (short-lived). */
  readonly certificateDays: number;
  /** Starts an approved run (the run engine). */
  readonly startRun: (config: unknown, proposal: string) => { runId: string };
  /** Checks a run configuration against the policy; throws POLICY_REFUSED naming every broken rule. */
  readonly checkRun: (config: unknown, policy: Policy) => void;
  /** Cancels a run for good after a cancel-run quorum (the run engine). */
  readonly cancelRun?: (runId: string, proposal: string) => void;
  /** Rolls a running rollout back after a rollback quorum (the rollout jobs). */
  readonly rollBack?: (rollout: string, proposal: string) => void;
  /** The final model of a completed run (SHA-256), or undefined. */
  readonly finalModelOf: (runId: string) => string | undefined;
  /** Called after membership changed (new institution or witness). */
  readonly onMembershipChange?: () => void;
  /** The model registry replayed from the audit log (model versions, aliases): move-alias subjects. */
  readonly registryView?: () => RegistryView;
  /**
   * In the resolving transaction, after an incident's incident-resolved entry (`entry`): a drill's
   * incident logs its drill-completed here (incident-drills.ts).
   */
  readonly onIncidentResolved?: (incident: string, entry: number) => void;
}

export interface ProposalView {
  readonly id: string;
  readonly proposal: Proposal;
  readonly subject: unknown;
  readonly proposer: string;
  readonly status: string;
  readonly missing: string;
  readonly signers: readonly string[];
  readonly createdAt: number;
  readonly decidedAt: number | null;
}

const subjectDigest = (subject: unknown): string =>
  sha256Hex(new TextEncoder().encode(canonicalizeJson(subject)));

export class Governance {
  private readonly deps: GovernanceDeps;
  private policyValue: Policy | undefined;
  /** Members' certificates and identity keys: enrollment, renewal, revocation. */
  readonly enrollment: Enrollment;

  constructor(deps: GovernanceDeps) {
    this.deps = deps;
    const row = deps.gov.latestPolicy();
    this.policyValue = row ? parsePolicy(JSON.parse(row.policy_json)) : undefined;
    this.enrollment = new Enrollment({ ...deps, rolesOf: (id) => this.rolesOf(id) });
  }

  /** The policy in force (undefined before the first adoption). */
  get policy(): Policy | undefined {
    return this.policyValue;
  }

  /** Roles of a member: from the policy in force, or before one from the consortium file's roster. */
  rolesOf(id: string): readonly MemberRole[] {
    if (this.policyValue) return this.policyValue.members[id]?.roles ?? [];
    return this.deps.ws.rosterRolesOf(id) as readonly MemberRole[];
  }

  /** Institutions that take part in rounds. */
  institutions(): string[] {
    if (!this.policyValue) return [...this.deps.ws.consortium.institutions];
    return Object.entries(this.policyValue.members)
      .filter(([, m]) => m.roles.includes('institution'))
      .map(([id]) => id)
      .sort();
  }

  isPaused(): boolean {
    return this.deps.gov.openIncidents().length > 0;
  }

  // ---- Proposals --------------------------------------------------------------------------------

  /**
   * Records a proposal for `subject` (a policy, an admission, a run configuration, a model release, or
   * the incidents a resumption closes), made under the policy in force. The proposer still signs it like
   * anyone else. Throws INVALID_ARGUMENT / INVALID_CONFIG / POLICY_REFUSED naming the field.
   */
  propose(proposer: string, kind: unknown, subject: unknown): ProposalView {
    this.expireDue();
    if (typeof kind !== 'string' || !(proposalKinds as readonly string[]).includes(kind))
      throw new EntenteError('INVALID_ARGUMENT', `kind: must be one of ${proposalKinds.join(', ')}`, {
        field: 'kind',
      });
    const k = kind as ProposalKind;
    const normalized = checkProposalSubject(
      this.deps,
      this.policyValue,
      (member) => this.enrollment.presentedKeyOf(member),
      k,
      subject,
    );
    const policy = this.policyValue;
    const policySha256 =
      policy !== undefined ? computePolicyDigest(policy) : computePolicyDigest(normalized as Policy);
    const proposal = parseProposal({
      kind: k,
      subjectSha256: subjectDigest(normalized),
      policySha256,
      createdAt: new Date(this.deps.now()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    });
    const id = computeProposalDigest(proposal);
    if (this.deps.gov.getProposal(id))
      throw new EntenteError('CONFLICT', 'proposal: the same proposal already exists', { field: 'proposal' });
    const missing = this.decide(proposal, normalized, []).missing;
    this.deps.store.transaction(() => {
      this.deps.gov.insertProposal({
        id,
        kind: k,
        proposal_json: JSON.stringify(proposal),
        subject_json: JSON.stringify(normalized),
        proposer,
        status: 'open',
        missing,
        created_at: this.deps.now(),
      });
      this.deps.audit.append('proposal-created', {
        proposal: id,
        proposalKind: proposal.kind,
        subjectSha256: proposal.subjectSha256,
        policySha256: proposal.policySha256,
        createdAt: proposal.createdAt,
        proposer,
        subject: normalized,
      });
    });
    this.deps.audit.publishCheckpoint();
    this.deps.log.info({ proposal: id, kind: k, proposer }, 'proposal created');
    return this.describeProposal(id);
  }

  private keys(): Map<string, Uint8Array> {
    return this.enrollment.identityKeys();
  }

  private decide(
    proposal: Proposal,
    subject: unknown,
    signatures: readonly { signer: string; signature: string }[],
  ) {
    // The first policy is decided under its own rules and needs every founding member's signature;
    // every later decision is taken under the policy in force.
    const policy = this.policyValue ?? parsePolicy(subject);
    return (this.policyValue === undefined ? decideFirstPolicy : decideProposal)(
      policy,
      proposal,
      signatures.map((s) => ({
        signer: s.signer,
        signature: new Uint8Array(Buffer.from(s.signature, 'base64')),
      })),
      this.keys(),
    );
  }

  /**
   * Adds `signer`'s signature (base64 Ed25519 over the proposal's signing bytes). Refuses one that does
   * not verify with the signer's identity key (INVALID_ARGUMENT, field signature), a second one by the same
   * signer (CONFLICT) or one on a decided proposal (CONFLICT). Applies the proposal when the quorum is met.
   */
  sign(signer: string, id: string, signatureB64: unknown): ProposalView {
    this.expireDue();
    const row = this.deps.gov.getProposal(id);
    if (!row)
      throw new EntenteError('NOT_FOUND', `proposal: no proposal ${id.slice(0, 16)}…`, { field: 'proposal' });
    if (row.status !== 'open')
      throw new EntenteError('CONFLICT', `proposal: already ${row.status}`, { field: 'proposal' });
    if (typeof signatureB64 !== 'string' || !/^[A-Za-z0-9+/]{86}==$/.test(signatureB64))
      throw new EntenteError('INVALID_ARGUMENT', 'signature: must be a base64 Ed25519 signature', {
        field: 'signature',
      });
    const proposal = parseProposal(JSON.parse(row.proposal_json));
    const subject = JSON.parse(row.subject_json) as unknown;
    if (proposal.kind === 'move-alias') this.checkAliasUnmoved(subject);
    const one = this.decide(proposal, subject, [{ signer, signature: signatureB64 }]);
    const mine = one.rejected.find((r) => r.signer === signer);
    if (mine || !one.signers.includes(signer))
      throw new EntenteError('INVALID_ARGUMENT', `signature: ${mine?.reason ?? 'does not count'}`, {
        field: 'signature',
      });
    const now = this.deps.now();
    this.deps.store.transaction(() => {
      if (!this.deps.gov.insertSignature({ proposal: id, signer, signature: signatureB64, at: now }))
        throw new EntenteError('CONFLICT', `signature: ${signer} already signed this proposal`, {
          field: 'signature',
        });
      this.deps.audit.append('proposal-signed', { proposal: id, signer, signature: signatureB64 });
      const decision = this.decide(proposal, subject, this.deps.gov.listSignatures(id));
      if (!decision.approved) {
        this.deps.gov.setProposalStatus(id, 'open', decision.missing, null);
        return;
      }
      this.deps.gov.setProposalStatus(id, 'approved', '', now);
      this.deps.audit.append('proposal-decided', {
        proposal: id,
        outcome: 'approved',
        signers: [...decision.signers],
        missing: '',
      });
      this.apply(id, proposal.kind, subject, decision.signers);
    });
    this.deps.audit.publishCheckpoint();
    const view = this.describeProposal(id);
    this.deps.log.info({ proposal: id, signer, status: view.status }, 'proposal signed');
    if (view.status === 'approved') this.afterApproval(proposal.kind, subject, id);
    return view;
  }

  /**
   * A move-alias proposal counts only while its alias still points at the version it starts from: of two
   * proposals moving one alias from the same version, once one is applied the other takes no more
   * signatures (CONFLICT) and expires. Checked before anything is written.
   */
  private checkAliasUnmoved(subject: unknown): void {
    const s = subject as { alias: string; previous: string | null };
    const current = this.deps.store.getMeta(`alias:${s.alias}`) ?? null;
    if (current !== s.previous)
      throw new EntenteError(
        'CONFLICT',
        `proposal: alias "${s.alias}" now points at ${current ?? 'nothing'}, not at ${s.previous ?? 'nothing'} as this proposal says; propose the move again`,
        { field: 'proposal' },
      );
  }

  /** In the approving transaction: the effect of an approved proposal. */
  private apply(id: string, kind: ProposalKind, subject: unknown, signers: readonly string[]): void {
    const { gov, audit } = this.deps;
    const now = this.deps.now();
    if (kind === 'adopt-policy' || kind === 'admit-member') {
      const next =
        kind === 'adopt-policy'
          ? parsePolicy(subject)
          : admittedPolicy(
              this.policyValue!,
              (subject as { member: string }).member,
              (subject as { roles: unknown }).roles,
            );
      adoptPolicy({ gov, audit }, next, id, now);
      this.policyValue = next;
    } else if (kind === 'release-model') {
      const s = subject as { run: string; modelSha256: string };
      audit.append('release-approved', { run: s.run, modelSha256: s.modelSha256, proposal: id });
      this.deps.store.setMeta(`released:${s.run}`, s.modelSha256);
    } else if (kind === 'move-alias') {
      // sign() checked, before this transaction, that the alias still points where the proposal says.
      const s = subject as { alias: string; version: string; previous: string | null };
      audit.append('alias-moved', { alias: s.alias, version: s.version, previous: s.previous, proposal: id });
      this.deps.store.setMeta(`alias:${s.alias}`, s.version);
    } else if (kind === 'replace-identity-key') {
      const s = subject as { member: string; identityKey: string };
      this.enrollment.applyRecovery(s.member, s.identityKey, id);
    } else if (kind === 'resume-runs') {
      logResolutions(this.deps, gov.resolveIncidents(now, signers, id), id, signers);
    }
  }

  /** After the approving transaction committed: effects that have their own transactions. */
  private afterApproval(kind: ProposalKind, subject: unknown, id: string): void {
    if (kind === 'cancel-run' || kind === 'rollback') {
      const target =
        kind === 'cancel-run' ? (subject as { run: string }).run : (subject as { rollout: string }).rollout;
      try {
        (kind === 'cancel-run' ? this.deps.cancelRun : this.deps.rollBack)?.(target, id);
        this.deps.log.info({ target, proposal: id, kind }, 'applied after its quorum');
      } catch (err) {
        this.deps.log.error({ proposal: id, err, kind }, 'an approved proposal could not be applied');
      }
    }
    if (kind === 'start-run') {
      try {
        const { runId } = this.deps.startRun(subject, id);
        this.deps.log.info({ run: runId, proposal: id }, 'run approved and started');
      } catch (err) {
        this.deps.log.error({ proposal: id, err }, 'approved run could not start');
      }
    }
    if (
      kind === 'adopt-policy' ||
      kind === 'admit-member' ||
      kind === 'resume-runs' ||
      kind === 'replace-identity-key'
    )
      this.deps.onMembershipChange?.();
  }

  describeProposal(id: string): ProposalView {
    const row = this.deps.gov.getProposal(id);
    if (!row)
      throw new EntenteError('NOT_FOUND', `proposal: no proposal ${id.slice(0, 16)}…`, { field: 'proposal' });
    return {
      id: row.id,
      proposal: JSON.parse(row.proposal_json) as Proposal,
      subject: JSON.parse(row.subject_json) as unknown,
      proposer: row.proposer,
      status: row.status,
      missing: row.missing,
      signers: this.deps.gov.listSignatures(id).map((s) => s.signer),
      createdAt: row.created_at,
      decidedAt: row.decided_at,
    };
  }

  listProposals(): ProposalView[] {
    this.expireDue();
    return this.deps.gov.listProposals().map((r) => this.describeProposal(r.id));
  }

  /**
   * Open proposals older than the policy's proposalTtlHours (default one week) expire, recorded in the
   * log: a stale proposal cannot be approved by signatures gathered much later.
   */
  expireDue(): void {
    const ttlMs = (this.policyValue?.proposalTtlHours ?? DEFAULT_PROPOSAL_TTL_HOURS) * 3_600_000;
    const now = this.deps.now();
    const { gov, audit, store } = this.deps;
    const due = gov.listProposals().filter((r) => r.status === 'open' && now - r.created_at > ttlMs);
    if (due.length === 0) return;
    store.transaction(() => {
      for (const row of due) {
        const missing = `expired: open for more than ${ttlMs / 3_600_000} h without reaching its quorum`;
        gov.setProposalStatus(row.id, 'expired', missing, now);
        audit.append('proposal-decided', {
          proposal: row.id,
          outcome: 'expired',
          signers: gov.listSignatures(row.id).map((x) => x.signer),
          missing,
        });
      }
    });
    audit.publishCheckpoint();
  }

  // ---- Incidents --------------------------------------------------------------------------------

  /** Any member raises an incident: no new round or phase opens until a quorum resumes. */
  raiseIncident(
    by: string,
    reason: unknown,
    alongside?: (incident: string) => void,
  ): { incident: string; paused: boolean } {
    return raiseIncident(this.deps, by, reason, alongside);
  }

  /** Without a policy in force (a local workspace) an operator resumes directly; with one, only a quorum. */
  resumeWithoutPolicy(by: string): string[] {
    return resumeWithoutPolicy(this.deps, this.policyValue !== undefined, by);
  }

  listIncidents() {
    return listIncidents(this.deps);
  }

  /** The stored records (for the report). */
  records() {
    const { gov } = this.deps;
    return { members: gov.listMembers(), certificates: gov.listCertificates(), policies: gov.listPolicies() };
  }

  /** The released final model of a run (policy in force: after a release-model quorum). */
  releasedModel(runId: string): string | undefined {
    return this.deps.store.getMeta(`released:${runId}`);
  }
}
