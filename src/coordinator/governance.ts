/**
 * The coordinator's side of governance (issue 6): who is a member and in which roles, on-site
 * enrollment (one-time tokens, CSRs, short-lived certificates, renewal, revocation), proposals signed
 * by members and decided by the quorum the policy in force names (src/governance), and incidents that
 * pause new rounds until a quorum resumes them. Every decision is an audit-log entry written in the
 * same transaction as the state it changes. The coordinator never holds a member's private key and
 * cannot approve anything by itself: approvals are Ed25519 signatures it only verifies.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import {
  type CertificateAndKey,
  issueCertificateFromRequest,
  parseEnrollmentToken,
  createEnrollmentToken,
  verifyIdentityCertificate,
} from '../crypto/index.ts';
import { formatVerifierKey } from '../audit/index.ts';
import {
  type MemberRole,
  type Policy,
  type Proposal,
  type ProposalKind,
  computePolicyDigest,
  computeProposalDigest,
  decideProposal,
  parsePolicy,
  parseProposal,
  proposalKinds,
} from '../governance/index.ts';
import {
  computeWitnessName,
  type GovernanceStore,
  type SqliteStore,
  type Workspace,
} from '../storage/index.ts';
import { normalizeSerial } from '../transport/index.ts';
import type { AuditLog } from './audit-log.ts';

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
  /** The final model of a completed run (SHA-256), or undefined. */
  readonly finalModelOf: (runId: string) => string | undefined;
  /** Called after membership changed (new institution or witness). */
  readonly onMembershipChange?: () => void;
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
  private revoked = new Map<string, string>();
  /** Identity keys of members whose certificates were made by `entente init` (local workspaces). */
  private readonly localKeys = new Map<string, Uint8Array>();

  constructor(deps: GovernanceDeps) {
    this.deps = deps;
    const row = deps.gov.latestPolicy();
    this.policyValue = row ? parsePolicy(JSON.parse(row.policy_json)) : undefined;
    for (const c of deps.gov.listCertificates())
      if (c.revoked_at !== null) this.revoked.set(normalizeSerial(c.serial), c.reason ?? '');
    for (const [id, pem] of deps.ws.localIdentityCertificates()) {
      try {
        this.localKeys.set(id, readIdentityKey(pem));
      } catch {
        deps.log.warn({ member: id }, 'local identity certificate unreadable; ignored');
      }
    }
    this.recordLocalMembers();
  }

  /**
   * Members whose keys `entente init` made (the operator, and everyone in a local workspace) are written
   * to the log once, like an enrollment, so that an auditor can check their approvals from the log alone.
   */
  private recordLocalMembers(): void {
    const { gov, audit, store, ws } = this.deps;
    const fresh = [...this.localKeys].filter(([id]) => gov.getMember(id) === undefined);
    if (fresh.length === 0) return;
    store.transaction(() => {
      for (const [id, key] of fresh) {
        const certPem = ws.localIdentityCertificates().get(id)!;
        const tls = ws.localMember(id).tls.certPem;
        const keyB64 = Buffer.from(key).toString('base64');
        gov.upsertMember({
          id,
          enrolled_at: this.deps.now(),
          identity_cert_pem: certPem,
          identity_key_b64: keyB64,
        });
        audit.append('member-enrolled', {
          member: id,
          roles: [...this.rolesOf(id)],
          tlsCertSha256: new X509Certificate(tls).fingerprint256.replaceAll(':', '').toLowerCase(),
          identityCertSha256: new X509Certificate(certPem).fingerprint256.replaceAll(':', '').toLowerCase(),
          identityKey: keyB64,
          notAfter: new Date(new X509Certificate(tls).validTo).toISOString(),
          renewal: false,
        });
      }
    });
    audit.publishCheckpoint();
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

  /** The reason a certificate serial was revoked, or undefined (checked on every request). */
  revocationReason(serial: string): string | undefined {
    // Serials are stored in whole bytes ("0d…"); the TLS edge may strip leading zeros: compare normalized.
    return this.revoked.get(normalizeSerial(serial));
  }

  /** A member's Ed25519 identity public key (enrolled, or made by `entente init`). */
  identityKeyOf(id: string): Uint8Array | undefined {
    const row = this.deps.gov.getMember(id);
    if (row) return new Uint8Array(Buffer.from(row.identity_key_b64, 'base64'));
    return this.localKeys.get(id);
  }

  /** Witness (cosigner) vkeys of enrolled institutions, by institution. */
  enrolledWitnesses(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const m of this.deps.gov.listMembers()) {
      if (!this.rolesOf(m.id).includes('institution')) continue;
      out[m.id] = this.witnessKeyOf(m.id, Buffer.from(m.identity_key_b64, 'base64'));
    }
    return out;
  }

  private witnessKeyOf(id: string, key: Uint8Array): string {
    return formatVerifierKey(computeWitnessName(this.deps.ws.consortium.consortium, id), key, 0x04);
  }

  // ---- Enrollment -------------------------------------------------------------------------------

  private isKnownMember(id: string): boolean {
    return this.rolesOf(id).length > 0;
  }

  /** A one-time enrollment token for `member` (secret: shown once, only its SHA-256 is kept). */
  createToken(member: string, ttlMinutes: number): { token: string; expiresAt: string } {
    if (!this.isKnownMember(member))
      throw new EntenteError(
        'NOT_FOUND',
        `member: "${member}" is not a member of the policy in force (admit it first)`,
        { field: 'member' },
      );
    const fingerprint = new X509Certificate(this.deps.ca.certPem).fingerprint256
      .replaceAll(':', '')
      .toLowerCase();
    const { token, tokenSha256 } = createEnrollmentToken({ member, caFingerprintSha256: fingerprint });
    const now = this.deps.now();
    const expires = now + ttlMinutes * 60_000;
    this.deps.gov.insertToken({ token_sha256: tokenSha256, member, created_at: now, expires_at: expires });
    this.deps.log.info({ member, expiresAt: new Date(expires).toISOString() }, 'enrollment token created');
    return { token, expiresAt: new Date(expires).toISOString() };
  }

  /**
   * Enrolls a member from its one-time token and the CSRs it made on its own machine (its private keys
   * never leave it). Throws UNAUTHENTICATED for an unknown, expired or already used token, and
   * INVALID_ARGUMENT naming the CSR field for a request the CA will not sign.
   */
  async enroll(body: { token: string; tlsCsr: string; identityCsr: string }) {
    const parsed = parseEnrollmentToken(body.token);
    const row = this.deps.gov.getToken(parsed.tokenSha256);
    const now = this.deps.now();
    if (!row || row.member !== parsed.member)
      throw new EntenteError('UNAUTHENTICATED', 'token: not an enrollment token of this consortium', {
        field: 'token',
      });
    if (row.used_at !== null)
      throw new EntenteError('UNAUTHENTICATED', 'token: this enrollment token was already used', {
        field: 'token',
      });
    if (now > row.expires_at)
      throw new EntenteError(
        'UNAUTHENTICATED',
        `token: this enrollment token expired at ${new Date(row.expires_at).toISOString()}`,
        { field: 'token' },
      );
    if (!this.isKnownMember(row.member))
      throw new EntenteError('FORBIDDEN', `member: "${row.member}" is no longer a member`, {
        field: 'member',
      });
    const issued = await this.issue(row.member, body.tlsCsr, body.identityCsr);
    const renewal = this.deps.gov.getMember(row.member) !== undefined;
    this.deps.store.transaction(() => {
      if (!this.deps.gov.useToken(parsed.tokenSha256, now))
        throw new EntenteError('UNAUTHENTICATED', 'token: this enrollment token was already used', {
          field: 'token',
        });
      if (renewal) {
        // Re-enrollment (lost keys): the member's earlier certificates stop working at once.
        const old = this.deps.gov.listCertificates(row.member).filter((c) => c.revoked_at === null);
        this.revokeRows(
          row.member,
          old.map((c) => c.serial),
          're-enrolled with a new key',
        );
      }
      this.record(row.member, issued, false);
    });
    this.deps.audit.publishCheckpoint();
    this.deps.onMembershipChange?.();
    return this.describeIssued(row.member, issued);
  }

  /** Renews a member's certificates (mutual TLS with its current one): a new TLS key, its identity key kept. */
  async renew(member: string, body: { tlsCsr: string; identityCsr: string }) {
    const current = this.identityKeyOf(member);
    const issued = await this.issue(member, body.tlsCsr, body.identityCsr);
    if (current && Buffer.compare(Buffer.from(current), Buffer.from(issued.identityKey)) !== 0)
      throw new EntenteError(
        'INVALID_ARGUMENT',
        'identityCsr: renewal keeps the identity key (it signs approvals and cosignatures); re-enroll with a token to replace it',
        { field: 'identityCsr' },
      );
    this.deps.store.transaction(() => this.record(member, issued, true));
    this.deps.audit.publishCheckpoint();
    return this.describeIssued(member, issued);
  }

  private async issue(member: string, tlsCsr: unknown, identityCsr: unknown) {
    if (typeof tlsCsr !== 'string')
      throw new EntenteError('INVALID_ARGUMENT', 'tlsCsr: must be a PEM certificate request', {
        field: 'tlsCsr',
      });
    if (typeof identityCsr !== 'string')
      throw new EntenteError('INVALID_ARGUMENT', 'identityCsr: must be a PEM certificate request', {
        field: 'identityCsr',
      });
    const notBefore = new Date(this.deps.now() - 60_000);
    const params = { commonName: member, notBefore, validityDays: this.deps.certificateDays };
    const rename = (field: string) => (err: unknown) => {
      if (err instanceof EntenteError)
        throw new EntenteError(err.code, `${field}: ${err.message}`, { field });
      throw err;
    };
    const tls = await issueCertificateFromRequest(this.deps.ca, tlsCsr, { ...params, kind: 'tls' }).catch(
      rename('tlsCsr'),
    );
    const identity = await issueCertificateFromRequest(this.deps.ca, identityCsr, {
      ...params,
      kind: 'identity',
    }).catch(rename('identityCsr'));
    const check = await verifyIdentityCertificate(identity.certPem, this.deps.ca.certPem, {
      commonName: member,
      at: new Date(this.deps.now()),
    });
    if (!check.ok)
      throw new EntenteError('INTERNAL', `issued identity certificate does not verify: ${check.reason}`);
    return { tls, identity, identityKey: check.publicKey };
  }

  private record(member: string, issued: Awaited<ReturnType<Governance['issue']>>, renewal: boolean): void {
    const now = this.deps.now();
    const { gov, audit } = this.deps;
    for (const [kind, c] of [
      ['tls', issued.tls],
      ['identity', issued.identity],
    ] as const)
      gov.insertCertificate({
        serial: c.serialHex,
        member,
        kind,
        fingerprint: c.fingerprintSha256,
        not_after: c.notAfter.getTime(),
        issued_at: now,
      });
    const keyB64 = Buffer.from(issued.identityKey).toString('base64');
    const wasWitness = gov.getMember(member)?.identity_key_b64;
    gov.upsertMember({
      id: member,
      enrolled_at: gov.getMember(member)?.enrolled_at ?? now,
      identity_cert_pem: issued.identity.certPem,
      identity_key_b64: keyB64,
    });
    audit.append('member-enrolled', {
      member,
      roles: [...this.rolesOf(member)],
      tlsCertSha256: issued.tls.fingerprintSha256,
      identityCertSha256: issued.identity.fingerprintSha256,
      identityKey: keyB64,
      notAfter: issued.tls.notAfter.toISOString(),
      renewal,
    });
    if (this.rolesOf(member).includes('institution') && wasWitness !== keyB64) {
      const key = this.witnessKeyOf(member, issued.identityKey);
      audit.addWitness(member, key);
      const count = Object.keys(audit.witnessSnapshot()).length;
      audit.append('witness-added', { institution: member, key, quorum: Math.floor(count / 2) + 1 });
    }
  }

  private describeIssued(member: string, issued: Awaited<ReturnType<Governance['issue']>>) {
    const { ws, audit } = this.deps;
    return {
      member,
      consortium: ws.consortium.consortium,
      roles: [...this.rolesOf(member)],
      tlsCertPem: issued.tls.certPem,
      identityCertPem: issued.identity.certPem,
      caPem: this.deps.ca.certPem,
      notAfter: issued.tls.notAfter.toISOString(),
      log: { origin: audit.origin, key: audit.verifierKey },
    };
  }

  /** Revokes a member's certificates (all, or one serial); refused at once on every later request. */
  revoke(by: string, target: { member: string; serial?: string | undefined }, reason: string): string[] {
    const rows = this.deps.gov
      .listCertificates(target.member)
      .filter((c) => c.revoked_at === null && (target.serial === undefined || c.serial === target.serial));
    if (rows.length === 0)
      throw new EntenteError('NOT_FOUND', `member: no unrevoked certificate of "${target.member}" matches`, {
        field: target.serial === undefined ? 'member' : 'serial',
      });
    const serials = rows.map((c) => c.serial);
    this.deps.store.transaction(() => this.revokeRows(target.member, serials, `${reason} (by ${by})`));
    this.deps.audit.publishCheckpoint();
    return serials;
  }

  private revokeRows(member: string, serials: readonly string[], reason: string): void {
    this.deps.gov.revokeCertificates(serials, this.deps.now(), reason);
    for (const serial of serials) {
      this.revoked.set(normalizeSerial(serial), reason);
      this.deps.audit.append('certificate-revoked', { member, serial, reason: reason.slice(0, 2000) });
    }
  }

  revocationList(): { serial: string; member: string; revokedAt: string; reason: string }[] {
    return this.deps.gov
      .listCertificates()
      .filter((c) => c.revoked_at !== null)
      .map((c) => ({
        serial: c.serial,
        member: c.member,
        revokedAt: new Date(c.revoked_at!).toISOString(),
        reason: c.reason ?? '',
      }));
  }

  // ---- Proposals --------------------------------------------------------------------------------

  /**
   * Records a proposal for `subject` (a policy, an admission, a run configuration, a model release, or
   * the incidents a resumption closes), made under the policy in force. The proposer still signs it like
   * anyone else. Throws INVALID_ARGUMENT / INVALID_CONFIG / POLICY_REFUSED naming the field.
   */
  propose(proposer: string, kind: unknown, subject: unknown): ProposalView {
    if (typeof kind !== 'string' || !(proposalKinds as readonly string[]).includes(kind))
      throw new EntenteError('INVALID_ARGUMENT', `kind: must be one of ${proposalKinds.join(', ')}`, {
        field: 'kind',
      });
    const k = kind as ProposalKind;
    const normalized = this.checkSubject(k, subject);
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

  /** Validates a subject for its kind and returns it in the form that is hashed and recorded. */
  private checkSubject(kind: ProposalKind, subject: unknown): unknown {
    const policy = this.policyValue;
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
        if (next.consortium !== this.deps.ws.consortium.consortium)
          throw new EntenteError(
            'INVALID_CONFIG',
            `policy.consortium: must be "${this.deps.ws.consortium.consortium}"`,
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
        const next = this.admitted(policy!, member, obj.roles);
        return { member, roles: next.members[member]!.roles };
      }
      case 'start-run': {
        this.deps.checkRun(subject, policy!);
        return JSON.parse(JSON.stringify(subject)) as unknown;
      }
      case 'release-model': {
        const run = obj.run;
        if (typeof run !== 'string')
          throw new EntenteError('INVALID_ARGUMENT', 'subject.run: must be a run id', {
            field: 'subject.run',
          });
        const model = this.deps.finalModelOf(run);
        if (!model)
          throw new EntenteError('CONFLICT', `subject.run: run "${run}" has not completed`, {
            field: 'subject.run',
          });
        return { run, modelSha256: model };
      }
      case 'resume-runs': {
        const open = this.deps.gov.openIncidents().map((i) => i.id);
        if (open.length === 0)
          throw new EntenteError('CONFLICT', 'subject: no incident is open', { field: 'subject' });
        return { incidents: open };
      }
    }
  }

  /** The policy with `member` added in `roles` (validated), one version up. */
  private admitted(policy: Policy, member: string, roles: unknown): Policy {
    return parsePolicy({
      ...JSON.parse(JSON.stringify(policy)),
      version: policy.version + 1,
      members: { ...policy.members, [member]: { roles } },
    });
  }

  private keys(): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>(this.localKeys);
    for (const m of this.deps.gov.listMembers())
      out.set(m.id, new Uint8Array(Buffer.from(m.identity_key_b64, 'base64')));
    return out;
  }

  private decide(
    proposal: Proposal,
    subject: unknown,
    signatures: readonly { signer: string; signature: string }[],
  ) {
    // The first policy is decided under its own rules; every later decision under the policy in force.
    const policy = this.policyValue ?? parsePolicy(subject);
    return decideProposal(
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

  /** In the approving transaction: the effect of an approved proposal. */
  private apply(id: string, kind: ProposalKind, subject: unknown, signers: readonly string[]): void {
    const { gov, audit } = this.deps;
    const now = this.deps.now();
    if (kind === 'adopt-policy' || kind === 'admit-member') {
      const next =
        kind === 'adopt-policy'
          ? parsePolicy(subject)
          : this.admitted(
              this.policyValue!,
              (subject as { member: string }).member,
              (subject as { roles: unknown }).roles,
            );
      const sha256 = computePolicyDigest(next);
      const logIndex = audit.append('policy-adopted', {
        policySha256: sha256,
        policy: JSON.parse(JSON.stringify(next)),
        version: next.version,
        proposal: id,
      });
      gov.insertPolicy({
        version: next.version,
        sha256,
        policy_json: JSON.stringify(next),
        adopted_at: now,
        proposal: id,
        log_index: logIndex,
      });
      audit.setPolicy(logIndex, sha256);
      this.policyValue = next;
      // Proposals made under the old policy can never be approved now: close them, recorded.
      for (const row of gov.listProposals()) {
        if (row.status !== 'open' || row.id === id) continue;
        const missing = `superseded: made under an earlier policy; policy version ${next.version} is in force`;
        gov.setProposalStatus(row.id, 'rejected', missing, now);
        audit.append('proposal-decided', {
          proposal: row.id,
          outcome: 'rejected',
          signers: gov.listSignatures(row.id).map((x) => x.signer),
          missing,
        });
      }
    } else if (kind === 'release-model') {
      const s = subject as { run: string; modelSha256: string };
      audit.append('release-approved', { run: s.run, modelSha256: s.modelSha256, proposal: id });
      this.deps.store.setMeta(`released:${s.run}`, s.modelSha256);
    } else if (kind === 'resume-runs') {
      const closed = gov.resolveIncidents(now, signers, id);
      for (const incident of closed)
        audit.append('incident-resolved', { incident, proposal: id, resolvedBy: [...signers] });
    }
  }

  /** After the approving transaction committed: effects that have their own transactions. */
  private afterApproval(kind: ProposalKind, subject: unknown, id: string): void {
    if (kind === 'start-run') {
      try {
        const { runId } = this.deps.startRun(subject, id);
        this.deps.log.info({ run: runId, proposal: id }, 'run approved and started');
      } catch (err) {
        this.deps.log.error({ proposal: id, err }, 'approved run could not start');
      }
    }
    if (kind === 'adopt-policy' || kind === 'admit-member' || kind === 'resume-runs')
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
    return this.deps.gov.listProposals().map((r) => this.describeProposal(r.id));
  }

  // ---- Incidents --------------------------------------------------------------------------------

  /** Any member raises an incident: no new round or phase opens until a quorum resumes. */
  raiseIncident(by: string, reason: unknown): { incident: string; paused: boolean } {
    if (typeof reason !== 'string' || reason.trim().length === 0 || reason.length > 2000)
      throw new EntenteError('INVALID_ARGUMENT', 'reason: must be 1 to 2000 characters', { field: 'reason' });
    const id = `inc-${new Date(this.deps.now()).toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`;
    this.deps.store.transaction(() => {
      this.deps.gov.insertIncident({ id, raised_by: by, reason, raised_at: this.deps.now() });
      this.deps.audit.append('incident-raised', { incident: id, raisedBy: by, reason });
    });
    this.deps.audit.publishCheckpoint();
    this.deps.log.warn({ incident: id, by }, 'incident raised: new rounds are paused');
    return { incident: id, paused: true };
  }

  /** Without a policy in force (a local workspace) an operator resumes directly; with one, only a quorum. */
  resumeWithoutPolicy(by: string): string[] {
    if (this.policyValue)
      throw new EntenteError(
        'FORBIDDEN',
        'resuming needs a resume-runs proposal approved by the policy quorum',
        {
          field: 'kind',
        },
      );
    let closed: string[] = [];
    this.deps.store.transaction(() => {
      closed = this.deps.gov.resolveIncidents(this.deps.now(), [by], null);
      for (const incident of closed)
        this.deps.audit.append('incident-resolved', { incident, proposal: null, resolvedBy: [by] });
    });
    this.deps.audit.publishCheckpoint();
    return closed;
  }

  listIncidents() {
    return this.deps.gov.listIncidents().map((i) => ({
      id: i.id,
      raisedBy: i.raised_by,
      reason: i.reason,
      raisedAt: new Date(i.raised_at).toISOString(),
      resolvedAt: i.resolved_at === null ? null : new Date(i.resolved_at).toISOString(),
      resolvedBy: i.resolved_by_json ? (JSON.parse(i.resolved_by_json) as string[]) : [],
      proposal: i.proposal,
    }));
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

/** The raw Ed25519 key of a PEM identity certificate (SPKI id-Ed25519, RFC 8410). */
function readIdentityKey(certPem: string): Uint8Array {
  const spki = new X509Certificate(certPem).publicKey.export({ format: 'der', type: 'spki' });
  if (spki.length !== 44) throw new Error('not an Ed25519 key');
  return new Uint8Array(spki.subarray(12));
}
