/**
 * The coordinator's side of the audit log: appends canonical entries (audit/log-entry.ts) to the store
 * in the caller's transaction and to an in-memory RFC 6962 tree rebuilt from the stored leaf hashes at
 * start, signs C2SP checkpoints with the log key, collects witnesses' cosignatures (each verified
 * against the caller's own witness key before it is kept, at most one per witness and checkpoint), and
 * answers proofs.
 * It never decides what is true: the auditor (`entente audit verify`) and the witnesses check it.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  type LogEntry,
  type LogEntryBody,
  type LogEntryKind,
  MerkleTree,
  type NoteVerifierKey,
  addCosignatureLine,
  createEd25519NoteSigner,
  encodeLogEntry,
  formatCheckpoint,
  hashLeaf,
  parseCheckpoint,
  parseLogEntry,
  parseVerifierKey,
  IN_TOTO_PAYLOAD_TYPE,
  signDsse,
  signNote,
  verifyCosignatures,
} from '../audit/index.ts';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { readEd25519PublicKey } from '../crypto/signatures.ts';
import type { SqliteStore } from '../storage/index.ts';

export interface AuditLogOptions {
  readonly store: SqliteStore;
  readonly log: Logger;
  readonly now: () => number;
  readonly origin: string;
  readonly consortium: string;
  readonly logKeyPem: string;
  /** Institution id → witness vkey (cosignature/v1). */
  readonly witnesses: Readonly<Record<string, string>>;
  /** The policy adopted when the log is created (until governance: the consortium file). */
  readonly policy: unknown;
}

const sha256Hex = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');

export class AuditLog {
  private readonly store: SqliteStore;
  private readonly now: () => number;
  private readonly tree: MerkleTree;
  private readonly signer: ReturnType<typeof createEd25519NoteSigner>;
  readonly origin: string;
  readonly verifierKey: string;
  private readonly witnessKeys: Map<string, NoteVerifierKey>;
  private readonly logKey: NoteVerifierKey;
  private prevHex = '';
  private policyIndexValue = -1;
  private policySha256Value: string | null = null;
  private readonly logKeyPem: string;
  private checkpointSizeValue = -1;

  constructor(options: AuditLogOptions) {
    this.store = options.store;
    this.now = options.now;
    this.origin = options.origin;
    this.logKeyPem = options.logKeyPem;
    this.signer = createEd25519NoteSigner(options.origin, options.logKeyPem);
    const publicKey = readEd25519PublicKey(options.logKeyPem);
    this.verifierKey = `${options.origin}+${Buffer.from(this.signer.keyId).toString('hex')}+${Buffer.concat([Uint8Array.of(1), publicKey]).toString('base64')}`;
    this.logKey = parseVerifierKey(this.verifierKey);
    this.witnessKeys = new Map(Object.entries(options.witnesses).map(([id, k]) => [id, parseVerifierKey(k)]));
    const leaves = options.store.listLeafHashes();
    this.tree = MerkleTree.fromLeafHashes(leaves);
    if (leaves.length > 0) {
      this.prevHex = Buffer.from(leaves.at(-1)!).toString('hex');
      // The latest adopted policy (entries are few; this runs once at start).
      for (const row of options.store.listLogEntries()) {
        const e = parseLogEntry(row.body);
        if (e.kind === 'policy-adopted') {
          this.policyIndexValue = e.index;
          this.policySha256Value = e.policySha256;
        }
      }
      this.checkpointSizeValue = options.store.listCheckpoints().at(-1)?.size ?? -1;
      options.log.info({ entries: leaves.length }, 'audit log loaded');
      return;
    }
    const witnesses = Object.entries(options.witnesses).map(([institution, key]) => ({ institution, key }));
    options.store.transaction(() => {
      this.append('log-created', {
        origin: options.origin,
        consortium: options.consortium,
        logKey: this.verifierKey,
        witnesses,
        quorum: Math.floor(witnesses.length / 2) + 1,
      });
      this.policySha256Value = sha256Hex(canonicalizeJson(options.policy));
      this.policyIndexValue = this.append('policy-adopted', {
        policySha256: this.policySha256Value,
        policy: options.policy,
      });
    });
    this.publishCheckpoint();
  }

  /** Size of the newest published checkpoint (-1 before the first). */
  get checkpointSize(): number {
    return this.checkpointSizeValue;
  }

  get size(): number {
    return this.tree.size;
  }

  /** SHA-256 of the adopted policy (canonical JSON). */
  get policySha256(): string | null {
    return this.policySha256Value;
  }

  /**
   * Signs a provenance statement (in-toto Statement bytes) as a DSSE envelope with the log key, stores
   * it, and returns the statement's SHA-256 (what the log entry commits to).
   */
  storeProvenance(statement: Uint8Array): string {
    const envelope = signDsse(IN_TOTO_PAYLOAD_TYPE, statement, {
      keyid: this.verifierKey,
      privateKeyPem: this.logKeyPem,
    });
    const digest = sha256Hex(statement);
    this.store.putLogArtifact(digest, 'provenance', JSON.stringify(envelope));
    return digest;
  }

  /** Stored provenance envelopes, by statement SHA-256. */
  provenance(): { sha256: string; envelope: unknown }[] {
    return this.store
      .listLogArtifacts('provenance')
      .map((a) => ({ sha256: a.sha256, envelope: JSON.parse(a.body) as unknown }));
  }

  /** Index of the policy entry runs are configured under. */
  get policyIndex(): number {
    return this.policyIndexValue;
  }

  /** A policy adopted by governance (its entry was appended by the caller). */
  setPolicy(index: number, sha256: string): void {
    this.policyIndexValue = index;
    this.policySha256Value = sha256;
  }

  /** Accepts cosignatures from a newly enrolled institution (its witness-added entry is the caller's). */
  addWitness(institution: string, vkey: string): void {
    this.witnessKeys.set(institution, parseVerifierKey(vkey));
  }

  /** Institutions whose cosignature on `note` verifies with their witness key. */
  cosignersOf(note: string): string[] {
    const out: string[] = [];
    for (const [institution, key] of this.witnessKeys)
      if (verifyCosignatures(note, [key]).some((v) => v.ok)) out.push(institution);
    return out.sort();
  }

  /** Institutions whose cosignatures are accepted. */
  witnessSnapshot(): Record<string, true> {
    return Object.fromEntries([...this.witnessKeys.keys()].map((k) => [k, true as const]));
  }

  /**
   * Appends one entry (durably, in the caller's transaction when there is one) and returns its index;
   * `at` (default: now) is for a caller whose decision was made at a time the entry must carry.
   * Throws INVALID_MESSAGE for a body that does not match its kind's schema.
   */
  append<K extends LogEntryKind>(kind: K, body: LogEntryBody<K>, at?: number): number {
    const index = this.tree.size;
    const entry = { kind, index, at: at ?? this.now(), prev: this.prevHex, ...body } as unknown as LogEntry;
    const bytes = encodeLogEntry(entry);
    const leaf = hashLeaf(bytes);
    this.store.appendLogEntries([{ idx: index, body: bytes, leaf_hash: leaf }]);
    this.tree.appendLeafHash(leaf);
    this.prevHex = Buffer.from(leaf).toString('hex');
    return index;
  }

  /** Appends many entries in one transaction (the batched path). Returns the first index. */
  appendMany(entries: readonly { kind: LogEntryKind; body: object }[]): number {
    const first = this.tree.size;
    const rows: { idx: number; body: Uint8Array; leaf_hash: Uint8Array }[] = [];
    const at = this.now();
    let prev = this.prevHex;
    for (const [k, e] of entries.entries()) {
      const bytes = encodeLogEntry({
        kind: e.kind,
        index: first + k,
        at,
        prev,
        ...e.body,
      } as unknown as LogEntry);
      const leaf = hashLeaf(bytes);
      rows.push({ idx: first + k, body: bytes, leaf_hash: leaf });
      prev = Buffer.from(leaf).toString('hex');
    }
    this.store.appendLogEntries(rows);
    for (const r of rows) this.tree.appendLeafHash(r.leaf_hash);
    this.prevHex = prev;
    return first;
  }

  /** Signs and stores a checkpoint of the current size (no-op when the newest already covers it). */
  publishCheckpoint(): { size: number; note: string } {
    const latest = this.latestCheckpoint();
    if (latest && latest.size === this.tree.size) return latest;
    const text = formatCheckpoint({
      origin: this.origin,
      size: this.tree.size,
      rootHash: this.tree.root(),
      extensions: [],
    });
    const note = signNote(text, [this.signer]);
    this.store.putCheckpoint(this.tree.size, note, this.now());
    this.checkpointSizeValue = this.tree.size;
    return { size: this.tree.size, note };
  }

  latestCheckpoint(): { size: number; note: string } | undefined {
    const all = this.store.listCheckpoints();
    const last = all.at(-1);
    return last ? { size: last.size, note: last.note } : undefined;
  }

  checkpoints(): { size: number; note: string }[] {
    return this.store.listCheckpoints().map((c) => ({ size: c.size, note: c.note }));
  }

  /**
   * Adds the cosignature `line` of witness `institution` (the authenticated caller) to the stored
   * checkpoint of `size`. The line must be by that institution's witness key and verify over that
   * checkpoint; a checkpoint keeps at most one line per known witness key (addCosignatureLine), so a
   * repeated cosignature changes nothing (`added` false) and the note never grows past one line per
   * witness. Throws FORBIDDEN (field 'institution') for a caller that is not a witness, NOT_FOUND
   * ('size'), INVALID_MESSAGE or PROTOCOL_VIOLATION ('line') for a line that is malformed, by another
   * key, or does not verify.
   */
  addCosignature(institution: string, size: number, line: string): { added: boolean } {
    const key = this.witnessKeys.get(institution);
    if (!key)
      throw new EntenteError('FORBIDDEN', `institution: ${institution} is not a witness of this log`, {
        field: 'institution',
      });
    const cp = this.store.checkpointOf(size);
    if (!cp) throw new EntenteError('NOT_FOUND', `size: no checkpoint of size ${size}`, { field: 'size' });
    const out = addCosignatureLine({
      note: cp.note,
      line,
      witness: key,
      witnesses: [...this.witnessKeys.values()],
      logKey: this.logKey,
    });
    // Also written when nothing was added but lines that do not verify were dropped.
    if (out.note !== cp.note) this.store.putCheckpoint(size, out.note, cp.created_at);
    return { added: out.added };
  }

  entries(start: number, end: number): { index: number; body: Uint8Array }[] {
    return this.store.listLogEntries(start, end).map((r) => ({ index: r.idx, body: new Uint8Array(r.body) }));
  }

  inclusionProof(index: number, size: number): Uint8Array[] {
    this.checkSize(size, 'size');
    if (!Number.isInteger(index) || index < 0 || index >= size)
      throw new EntenteError('INVALID_ARGUMENT', 'index: must be below size', { field: 'index' });
    return this.tree.inclusionProof(index, size);
  }

  consistencyProof(size1: number, size2: number): Uint8Array[] {
    this.checkSize(size2, 'to');
    if (!Number.isInteger(size1) || size1 < 0 || size1 > size2)
      throw new EntenteError('INVALID_ARGUMENT', 'from: must be between 0 and to', { field: 'from' });
    return this.tree.consistencyProof(size1, size2);
  }

  root(size: number): Uint8Array {
    this.checkSize(size, 'size');
    return this.tree.root(size);
  }

  private checkSize(size: number, field: string): void {
    if (!Number.isInteger(size) || size < 0 || size > this.tree.size)
      throw new EntenteError(
        'INVALID_ARGUMENT',
        `${field}: must be between 0 and the log size ${this.tree.size}`,
        { field },
      );
  }

  /** Parses a stored checkpoint's size (for callers holding only the note). */
  static sizeOf(note: string): number {
    const text = note.slice(0, note.indexOf('\n\n') + 1);
    return parseCheckpoint(text).size;
  }
}
