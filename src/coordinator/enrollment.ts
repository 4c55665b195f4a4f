/**
 * Members' certificates: on-site enrollment with one-time tokens and CSRs (private keys never
 * reach the coordinator), short-lived certificates, renewal keeping the identity key, revocation checked
 * on every request, and the members' Ed25519 identity keys that approvals are verified with. Every
 * enrollment, renewal, revocation and new log witness is an audit-log entry in the same transaction.
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { formatVerifierKey } from '../audit/index.ts';
import { safeCallerText } from '../core/caller-text.ts';
import { EntenteError } from '../core/errors.ts';
import { type CertificateAndKey, createEnrollmentToken, parseEnrollmentToken } from '../crypto/index.ts';
import { isSameKey, type MemberRole } from '../governance/index.ts';
import {
  computeWitnessName,
  type GovernanceStore,
  type SqliteStore,
  type Workspace,
} from '../storage/index.ts';
import { normalizeSerial } from '../transport/index.ts';
import type { AuditLog } from './audit-log.ts';
import {
  type IssuedCertificates,
  checkKeyRotation,
  describeIssued,
  issueMemberCertificates,
  readIdentityKey,
} from './enrollment-certificates.ts';

export interface EnrollmentDeps {
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
  /** Roles of a member under the policy in force (or the roster before one). */
  readonly rolesOf: (id: string) => readonly MemberRole[];
  /** Called after membership changed (new institution or witness). */
  readonly onMembershipChange?: () => void;
}

export class Enrollment {
  private readonly deps: EnrollmentDeps;
  private readonly revoked = new Map<string, string>();
  /** Identity keys of members whose certificates were made by `entente init` (local workspaces). */
  private readonly localKeys = new Map<string, Uint8Array>();

  constructor(deps: EnrollmentDeps) {
    this.deps = deps;
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

  private rolesOf(id: string): readonly MemberRole[] {
    return this.deps.rolesOf(id);
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
  async enroll(body: {
    token: string;
    tlsCsr: string;
    identityCsr: string;
    rotationSignature?: string | undefined;
  }) {
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
    const issued = await issueMemberCertificates(this.deps, row.member, body.tlsCsr, body.identityCsr);
    const renewal = this.deps.gov.getMember(row.member) !== undefined;
    const rotation = checkKeyRotation(
      this.deps.ws.consortium.consortium,
      row.member,
      this.pinnedKeyOf(row.member),
      issued.identityKey,
      body.rotationSignature,
    );
    this.deps.store.transaction(() => {
      if (!this.deps.gov.useToken(parsed.tokenSha256, now))
        throw new EntenteError('UNAUTHENTICATED', 'token: this enrollment token was already used', {
          field: 'token',
        });
      const presentedOnly =
        renewal && rotation === undefined && !isSameKey(this.pinnedKeyOf(row.member), issued.identityKey);
      if (renewal && !presentedOnly) {
        // Re-enrollment by the member itself (its pinned key, or a rotation signed with it): the
        // member's earlier certificates stop working at once. A new key without a rotation is only
        // presented: whoever holds the token does not get to lock the member out (the operator revokes
        // explicitly, logged, when a member reports its keys lost).
        const old = this.deps.gov.listCertificates(row.member).filter((c) => c.revoked_at === null);
        this.revokeRows(
          row.member,
          old.map((c) => c.serial),
          're-enrolled with a new key',
        );
      }
      this.record(row.member, issued, false, rotation);
    });
    this.deps.audit.publishCheckpoint();
    this.deps.onMembershipChange?.();
    return describeIssued(
      this.deps,
      row.member,
      this.rolesOf(row.member),
      this.pinnedKeyOf(row.member),
      issued,
    );
  }

  /** The identity key pinned for `member` in the log (enrolled or made by `entente init`), if any. */
  pinnedKeyOf(member: string): Uint8Array | undefined {
    return this.identityKeyOf(member);
  }

  /** A key `member` presented (re-enrollment) that no rotation or recovery has authorized yet. */
  presentedKeyOf(member: string): string | undefined {
    return this.deps.store.getMeta(`presented-identity-key:${member}`) || undefined;
  }

  /**
   * Recovery by quorum (an approved replace-identity-key proposal), in the approving transaction: the
   * member's presented key becomes its pinned key; logged with the proposal.
   */
  applyRecovery(member: string, keyB64: string, proposal: string): void {
    const previous = this.pinnedKeyOf(member);
    const row = this.deps.gov.getMember(member);
    if (!previous || !row || this.presentedKeyOf(member) !== keyB64)
      throw new EntenteError('CONFLICT', `subject.identityKey: not the key ${member} presented`, {
        field: 'subject.identityKey',
      });
    const cert = this.deps.store.getMeta(`presented-identity-cert:${member}`) ?? row.identity_cert_pem;
    this.changePinnedKey(member, Buffer.from(previous).toString('base64'), keyB64, cert, {
      via: 'recovery',
      proposal,
    });
  }

  private changePinnedKey(
    member: string,
    previousKey: string,
    key: string,
    certPem: string,
    how: { via: 'rotation'; signature: string } | { via: 'recovery'; proposal: string },
  ): void {
    const { gov, audit, store } = this.deps;
    gov.upsertMember({
      id: member,
      enrolled_at: gov.getMember(member)?.enrolled_at ?? this.deps.now(),
      identity_cert_pem: certPem,
      identity_key_b64: key,
    });
    store.setMeta(`presented-identity-key:${member}`, '');
    audit.append('identity-key-changed', { member, previousKey, key, ...how });
    if (this.rolesOf(member).includes('institution')) {
      const vkey = this.witnessKeyOf(member, new Uint8Array(Buffer.from(key, 'base64')));
      audit.addWitness(member, vkey);
      const count = Object.keys(audit.witnessSnapshot()).length;
      audit.append('witness-added', { institution: member, key: vkey, quorum: Math.floor(count / 2) + 1 });
    }
    this.deps.log.warn({ member, via: how.via }, 'identity key changed');
  }

  /** Renews a member's certificates (mutual TLS with its current one): a new TLS key, its identity key kept. */
  async renew(member: string, body: { tlsCsr: string; identityCsr: string }) {
    const current = this.identityKeyOf(member);
    const issued = await issueMemberCertificates(this.deps, member, body.tlsCsr, body.identityCsr);
    if (current && Buffer.compare(Buffer.from(current), Buffer.from(issued.identityKey)) !== 0)
      throw new EntenteError(
        'INVALID_ARGUMENT',
        'identityCsr: renewal keeps the identity key (it signs approvals and cosignatures); re-enroll with a token to replace it',
        { field: 'identityCsr' },
      );
    this.deps.store.transaction(() => this.record(member, issued, true));
    this.deps.audit.publishCheckpoint();
    return describeIssued(this.deps, member, this.rolesOf(member), this.pinnedKeyOf(member), issued);
  }

  private record(
    member: string,
    issued: IssuedCertificates,
    renewal: boolean,
    rotationSignature?: string,
  ): void {
    const now = this.deps.now();
    const { gov, audit, store } = this.deps;
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
    const pinned = gov.getMember(member)?.identity_key_b64;
    if (pinned === undefined || pinned === keyB64)
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
    if (pinned === undefined) {
      if (this.rolesOf(member).includes('institution')) {
        const key = this.witnessKeyOf(member, issued.identityKey);
        audit.addWitness(member, key);
        const count = Object.keys(audit.witnessSnapshot()).length;
        audit.append('witness-added', { institution: member, key, quorum: Math.floor(count / 2) + 1 });
      }
    } else if (pinned !== keyB64) {
      // A different key for a pinned member: only a rotation signed with the pinned key, or a quorum
      // (replace-identity-key), makes it count. Until then approvals, cosignatures and adverts made with
      // it are refused by the coordinator and by every member's own replay of the log.
      if (rotationSignature !== undefined)
        this.changePinnedKey(member, pinned, keyB64, issued.identity.certPem, {
          via: 'rotation',
          signature: rotationSignature,
        });
      else {
        store.setMeta(`presented-identity-key:${member}`, keyB64);
        store.setMeta(`presented-identity-cert:${member}`, issued.identity.certPem);
        this.deps.log.warn(
          { member },
          'a new identity key was presented without a rotation signature: it counts for nothing until a replace-identity-key quorum approves it',
        );
      }
    }
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
    // The reason is quoted in the revocation list and the log: escaped and bounded.
    const said = `${safeCallerText(reason, 1500)} (by ${by})`;
    this.deps.store.transaction(() => this.revokeRows(target.member, serials, said));
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

  /** Every member's identity key (enrolled, or made by `entente init`), by member id. */
  identityKeys(): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>(this.localKeys);
    for (const m of this.deps.gov.listMembers())
      out.set(m.id, new Uint8Array(Buffer.from(m.identity_key_b64, 'base64')));
    return out;
  }
}
