/**
 * The coordinator's governance records in the same SQLite database as its runs (issue 6): enrolled
 * members and their Ed25519 identity certificates, every certificate the CA issued (for the revocation
 * list), one-time enrollment tokens (their SHA-256 only; a token is used at most once), adopted policy
 * versions, proposals with their signatures, and incidents. Every row that matters is also an audit
 * log entry, written in the same transaction by the caller.
 */
import type Database from 'better-sqlite3';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS members (
  id TEXT PRIMARY KEY, enrolled_at INTEGER NOT NULL, identity_cert_pem TEXT NOT NULL,
  identity_key_b64 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
  serial TEXT PRIMARY KEY, member TEXT NOT NULL, kind TEXT NOT NULL, fingerprint TEXT NOT NULL,
  not_after INTEGER NOT NULL, issued_at INTEGER NOT NULL, revoked_at INTEGER, reason TEXT
);
CREATE TABLE IF NOT EXISTS enrollment_tokens (
  token_sha256 TEXT PRIMARY KEY, member TEXT NOT NULL, created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, used_at INTEGER
);
CREATE TABLE IF NOT EXISTS policies (
  version INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, policy_json TEXT NOT NULL,
  adopted_at INTEGER NOT NULL, proposal TEXT, log_index INTEGER
);
CREATE TABLE IF NOT EXISTS proposals (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, proposal_json TEXT NOT NULL, subject_json TEXT NOT NULL,
  proposer TEXT NOT NULL, status TEXT NOT NULL, missing TEXT NOT NULL, created_at INTEGER NOT NULL,
  decided_at INTEGER
);
CREATE TABLE IF NOT EXISTS proposal_signatures (
  proposal TEXT NOT NULL, signer TEXT NOT NULL, signature TEXT NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY (proposal, signer)
);
CREATE TABLE IF NOT EXISTS incidents (
  id TEXT PRIMARY KEY, raised_by TEXT NOT NULL, reason TEXT NOT NULL, raised_at INTEGER NOT NULL,
  resolved_at INTEGER, resolved_by_json TEXT, proposal TEXT
);
`;

export interface MemberRow {
  id: string;
  enrolled_at: number;
  identity_cert_pem: string;
  identity_key_b64: string;
}
export interface CertificateRow {
  serial: string;
  member: string;
  kind: string;
  fingerprint: string;
  not_after: number;
  issued_at: number;
  revoked_at: number | null;
  reason: string | null;
}
export interface PolicyRow {
  version: number;
  sha256: string;
  policy_json: string;
  adopted_at: number;
  proposal: string | null;
  log_index: number | null;
}
export interface ProposalRow {
  id: string;
  kind: string;
  proposal_json: string;
  subject_json: string;
  proposer: string;
  /** open | approved | rejected */
  status: string;
  missing: string;
  created_at: number;
  decided_at: number | null;
}
export interface IncidentRow {
  id: string;
  raised_by: string;
  reason: string;
  raised_at: number;
  resolved_at: number | null;
  resolved_by_json: string | null;
  proposal: string | null;
}

export class GovernanceStore {
  private readonly db: Database.Database;

  constructor(db: Database.Database) {
    this.db = db;
    this.db.exec(SCHEMA);
  }

  upsertMember(row: MemberRow): void {
    this.db
      .prepare(
        `INSERT INTO members (id, enrolled_at, identity_cert_pem, identity_key_b64)
         VALUES (@id, @enrolled_at, @identity_cert_pem, @identity_key_b64)
         ON CONFLICT(id) DO UPDATE SET identity_cert_pem = excluded.identity_cert_pem,
         identity_key_b64 = excluded.identity_key_b64`,
      )
      .run(row);
  }
  getMember(id: string): MemberRow | undefined {
    return this.db.prepare('SELECT * FROM members WHERE id = ?').get(id) as MemberRow | undefined;
  }
  listMembers(): MemberRow[] {
    return this.db.prepare('SELECT * FROM members ORDER BY id').all() as MemberRow[];
  }

  insertCertificate(row: Omit<CertificateRow, 'revoked_at' | 'reason'>): void {
    this.db
      .prepare(
        `INSERT INTO certificates (serial, member, kind, fingerprint, not_after, issued_at)
         VALUES (@serial, @member, @kind, @fingerprint, @not_after, @issued_at)`,
      )
      .run(row);
  }
  listCertificates(member?: string): CertificateRow[] {
    return (
      member === undefined
        ? this.db.prepare('SELECT * FROM certificates ORDER BY issued_at').all()
        : this.db.prepare('SELECT * FROM certificates WHERE member = ? ORDER BY issued_at').all(member)
    ) as CertificateRow[];
  }
  /** Marks certificates revoked; returns how many were newly revoked. */
  revokeCertificates(serials: readonly string[], at: number, reason: string): number {
    const stmt = this.db.prepare(
      'UPDATE certificates SET revoked_at = ?, reason = ? WHERE serial = ? AND revoked_at IS NULL',
    );
    let n = 0;
    for (const s of serials) n += stmt.run(at, reason, s).changes;
    return n;
  }
  listRevokedSerials(): string[] {
    return (
      this.db.prepare('SELECT serial FROM certificates WHERE revoked_at IS NOT NULL').all() as {
        serial: string;
      }[]
    ).map((r) => r.serial);
  }

  insertToken(row: { token_sha256: string; member: string; created_at: number; expires_at: number }): void {
    this.db
      .prepare(
        `INSERT INTO enrollment_tokens (token_sha256, member, created_at, expires_at)
         VALUES (@token_sha256, @member, @created_at, @expires_at)`,
      )
      .run(row);
  }
  getToken(
    sha256: string,
  ):
    | { token_sha256: string; member: string; created_at: number; expires_at: number; used_at: number | null }
    | undefined {
    return this.db.prepare('SELECT * FROM enrollment_tokens WHERE token_sha256 = ?').get(sha256) as
      | {
          token_sha256: string;
          member: string;
          created_at: number;
          expires_at: number;
          used_at: number | null;
        }
      | undefined;
  }
  /** Marks a token used; false when it was already used (a token is used at most once). */
  useToken(sha256: string, at: number): boolean {
    return (
      this.db
        .prepare('UPDATE enrollment_tokens SET used_at = ? WHERE token_sha256 = ? AND used_at IS NULL')
        .run(at, sha256).changes === 1
    );
  }

  insertPolicy(row: PolicyRow): void {
    this.db
      .prepare(
        `INSERT INTO policies (version, sha256, policy_json, adopted_at, proposal, log_index)
         VALUES (@version, @sha256, @policy_json, @adopted_at, @proposal, @log_index)`,
      )
      .run(row);
  }
  latestPolicy(): PolicyRow | undefined {
    return this.db.prepare('SELECT * FROM policies ORDER BY version DESC LIMIT 1').get() as
      | PolicyRow
      | undefined;
  }
  listPolicies(): PolicyRow[] {
    return this.db.prepare('SELECT * FROM policies ORDER BY version').all() as PolicyRow[];
  }

  insertProposal(row: Omit<ProposalRow, 'decided_at'>): void {
    this.db
      .prepare(
        `INSERT INTO proposals (id, kind, proposal_json, subject_json, proposer, status, missing, created_at)
         VALUES (@id, @kind, @proposal_json, @subject_json, @proposer, @status, @missing, @created_at)`,
      )
      .run(row);
  }
  getProposal(id: string): ProposalRow | undefined {
    return this.db.prepare('SELECT * FROM proposals WHERE id = ?').get(id) as ProposalRow | undefined;
  }
  listProposals(): ProposalRow[] {
    return this.db.prepare('SELECT * FROM proposals ORDER BY created_at, id').all() as ProposalRow[];
  }
  setProposalStatus(id: string, status: string, missing: string, decidedAt: number | null): void {
    this.db
      .prepare('UPDATE proposals SET status = ?, missing = ?, decided_at = ? WHERE id = ?')
      .run(status, missing, decidedAt, id);
  }
  /** Adds a signature; false when this signer already signed this proposal. */
  insertSignature(row: { proposal: string; signer: string; signature: string; at: number }): boolean {
    return (
      this.db
        .prepare(
          `INSERT INTO proposal_signatures (proposal, signer, signature, at) VALUES (@proposal, @signer, @signature, @at)
           ON CONFLICT(proposal, signer) DO NOTHING`,
        )
        .run(row).changes === 1
    );
  }
  listSignatures(proposal: string): { signer: string; signature: string; at: number }[] {
    return this.db
      .prepare('SELECT signer, signature, at FROM proposal_signatures WHERE proposal = ? ORDER BY at, signer')
      .all(proposal) as { signer: string; signature: string; at: number }[];
  }

  insertIncident(row: { id: string; raised_by: string; reason: string; raised_at: number }): void {
    this.db
      .prepare(
        'INSERT INTO incidents (id, raised_by, reason, raised_at) VALUES (@id, @raised_by, @reason, @raised_at)',
      )
      .run(row);
  }
  listIncidents(): IncidentRow[] {
    return this.db.prepare('SELECT * FROM incidents ORDER BY raised_at, id').all() as IncidentRow[];
  }
  openIncidents(): IncidentRow[] {
    return this.db
      .prepare('SELECT * FROM incidents WHERE resolved_at IS NULL ORDER BY raised_at')
      .all() as IncidentRow[];
  }
  resolveIncidents(at: number, resolvedBy: readonly string[], proposal: string | null): string[] {
    const open = this.openIncidents().map((r) => r.id);
    this.db
      .prepare(
        'UPDATE incidents SET resolved_at = ?, resolved_by_json = ?, proposal = ? WHERE resolved_at IS NULL',
      )
      .run(at, JSON.stringify(resolvedBy), proposal);
    return open;
  }
}
