/**
 * The evidence bundle (`entente audit export-bundle`): one JSON file an outside auditor can check with
 * no access to the coordinator — the newest cosigned checkpoint (C2SP tlog-checkpoint, signed note and
 * tlog-cosignature lines), the policy entry and every model-release entry, each with its RFC 9162
 * §2.1.3 inclusion proof against that checkpoint, and each model's provenance (an in-toto Statement v1
 * in a DSSE envelope signed by the log key). Verification is offline and pure, and never throws on a
 * bad bundle: it returns the same report as verifyLog, naming the first bad entry.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { parseCheckpoint } from './checkpoint.ts';
import { verifyCosignatures } from './cosignature.ts';
import { verifyDsse } from './dsse.ts';
import { type LogEntry, parseLogEntry } from './log-entry.ts';
import { hashLeaf } from './merkle-hash.ts';
import { verifyInclusion } from './merkle-proof.ts';
import { IN_TOTO_PAYLOAD_TYPE, parseProvenanceStatement } from './provenance.ts';
import { type NoteVerifierKey, openNote, parseVerifierKey } from './signed-note.ts';
import type { AuditReport, TrustedKeys } from './verify-log.ts';

export const EVIDENCE_BUNDLE_FORMAT = 'entente-evidence/v1';

/** One log entry in a bundle: its index, its bytes (standard base64) and its inclusion proof (base64 nodes). */
export interface BundledEntry {
  readonly index: number;
  readonly entry: string;
  readonly proof: readonly string[];
}

export interface EvidenceBundle {
  readonly format: typeof EVIDENCE_BUNDLE_FORMAT;
  readonly origin: string;
  /** The log's verifier key (signed-note vkey text). */
  readonly logKey: string;
  /** Witness (cosigner) vkeys. */
  readonly witnesses: readonly string[];
  readonly quorum: number;
  /** The checkpoint note exactly as published, with its cosignature lines. */
  readonly checkpoint: string;
  readonly policy: BundledEntry;
  /** Model-release entries, each with its provenance DSSE envelope. */
  readonly models: readonly (BundledEntry & { readonly provenance: unknown })[];
}

const STANDARD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const base64 = (max: number) =>
  z
    .string()
    .max(max)
    .regex(STANDARD_BASE64, 'must be standard padded base64')
    .refine((s) => Buffer.from(s, 'base64').toString('base64') === s, 'is not canonical base64');
const bundledEntry = z.strictObject({
  index: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  entry: base64(16 * 1024 * 1024).refine((s) => s.length > 0, 'must not be empty'),
  proof: z.array(base64(100)).max(64),
});
const bundleSchema = z.strictObject({
  format: z.literal(EVIDENCE_BUNDLE_FORMAT),
  origin: z.string().min(1).max(200),
  logKey: z.string().min(1).max(500),
  witnesses: z.array(z.string().min(1).max(500)).max(1000),
  quorum: z.number().int().min(0),
  checkpoint: z
    .string()
    .min(1)
    .max(1024 * 1024),
  policy: bundledEntry,
  models: z.array(bundledEntry.extend({ provenance: z.unknown() })).max(1_000_000),
});

/**
 * Checks the shape of an evidence bundle (an untrusted JSON value): the format tag, every field's type,
 * canonical standard base64 for entries and proof nodes. Proves nothing. Throws INVALID_MESSAGE naming
 * the field (e.g. 'bundle.models.2.proof.0') when the value is not a bundle.
 */
export function parseEvidenceBundle(value: unknown): EvidenceBundle {
  const parsed = bundleSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = ['bundle', ...issue.path.map(String)].join('.');
    throw new EntenteError('INVALID_MESSAGE', `${field}: ${issue.message}`, { field });
  }
  return parsed.data as EvidenceBundle;
}

const fromBase64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/**
 * Verifies an evidence bundle offline: the checkpoint's signature with the log key, its cosignature
 * quorum (required: a bundle is final evidence), each entry's inclusion proof against the checkpoint,
 * the entries' canonical bytes and kinds, the policy digest, and for every model the DSSE signature by
 * the log key (keyid = the log's vkey), the statement digest the entry commits to, and the statement's
 * model, run, round, log index and policy against the entries. Keys: `trusted` when given (the bundle
 * must name the same log key), else those the bundle names (trust on first use). Never throws.
 */
export function verifyBundle(bundle: unknown, trusted?: TrustedKeys): AuditReport {
  const problems: string[] = [];
  const facts: string[] = [];
  let firstBad: number | null = null;
  const bad = (index: number | null, message: string): void => {
    if (index !== null && (firstBad === null || index < firstBad)) firstBad = index;
    problems.push(index === null ? message : `entry ${index}: ${message}`);
  };
  const keysFrom = trusted ? 'trusted-keys' : 'log';
  const report = (entries: number, checkpoints: number, runs: AuditReport['runs'] = []): AuditReport => ({
    ok: problems.length === 0,
    entries,
    checkpoints,
    firstBadEntry: firstBad,
    problems,
    facts,
    keysFrom,
    runs,
  });

  let b: EvidenceBundle;
  try {
    b = parseEvidenceBundle(bundle);
  } catch (err) {
    bad(null, (err as Error).message);
    return report(0, 0);
  }
  const entryCount = 1 + b.models.length;

  // Keys.
  const logKeyText = trusted?.log ?? b.logKey;
  let logKey: NoteVerifierKey;
  let witnesses: NoteVerifierKey[];
  try {
    logKey = parseVerifierKey(logKeyText);
    witnesses = (trusted?.witnesses ?? b.witnesses).map((k) => parseVerifierKey(k));
  } catch (err) {
    bad(null, `keys: ${(err as Error).message}`);
    return report(entryCount, 0);
  }
  if (trusted && trusted.log !== b.logKey)
    bad(null, 'the bundle names a different log key than the trusted one');
  const quorum = trusted?.quorum ?? b.quorum;
  facts.push(
    `log ${b.origin}; ${witnesses.length} witnesses, quorum ${quorum}; keys from ${keysFrom === 'log' ? 'the bundle (trust on first use)' : 'the trusted keys file'}`,
  );

  // Checkpoint and cosignatures.
  const opened = openNote(b.checkpoint, [logKey]);
  if (!opened.ok) {
    bad(null, `checkpoint: signature does not verify with the log key (${opened.reason})`);
    return report(entryCount, 0);
  }
  let size: number;
  let root: Uint8Array;
  try {
    const cp = parseCheckpoint(opened.text);
    if (cp.origin !== b.origin) bad(null, `checkpoint: origin "${cp.origin}" is not the bundle's origin`);
    size = cp.size;
    root = cp.rootHash;
  } catch (err) {
    bad(null, `checkpoint: ${(err as Error).message}`);
    return report(entryCount, 0);
  }
  const cosigned = new Set(
    verifyCosignatures(b.checkpoint, witnesses).flatMap((v) => (v.ok ? [v.witness] : [])),
  ).size;
  if (cosigned < quorum) bad(null, `checkpoint has ${cosigned} cosignatures, quorum is ${quorum}`);
  facts.push(
    `checkpoint of size ${size} signed by the log key, ${cosigned}/${witnesses.length} cosignatures; root ${Buffer.from(root).toString('base64')}`,
  );

  // Entries: inclusion, bytes, kind.
  const seen = new Set<number>();
  const open = (item: BundledEntry): LogEntry | undefined => {
    const { index } = item;
    if (seen.has(index)) bad(index, 'appears twice in the bundle');
    seen.add(index);
    const bytes = fromBase64(item.entry);
    const v = verifyInclusion({
      leafIndex: index,
      treeSize: size,
      leafHash: hashLeaf(bytes),
      proof: item.proof.map(fromBase64),
      root,
    });
    if (!v.ok) bad(index, `inclusion proof does not verify against the checkpoint (${v.reason})`);
    try {
      const entry = parseLogEntry(bytes, `entry ${index}`);
      if (entry.index !== index) bad(index, `says it is entry ${entry.index}`);
      return entry;
    } catch (err) {
      bad(index, (err as Error).message);
      return undefined;
    }
  };

  const policy = open(b.policy);
  let policySha256: string | null = null;
  if (policy && policy.kind !== 'policy-adopted')
    bad(b.policy.index, `is a ${policy.kind} entry, not policy-adopted`);
  else if (policy) {
    policySha256 = policy.policySha256;
    let digest: string | null = null;
    try {
      digest = sha256Hex(new TextEncoder().encode(canonicalizeJson(policy.policy)));
    } catch {
      digest = null;
    }
    if (digest !== policy.policySha256)
      bad(policy.index, 'policySha256 is not the digest of the policy it records');
    else facts.push(`policy entry ${policy.index} (sha256 ${policySha256}) is in the log`);
  }

  const keys = new Map([[logKeyText, logKey.publicKey]]);
  const runs = new Map<string, { rounds: number; models: number; last: string | null }>();
  for (const item of [...b.models].sort((x, y) => x.index - y.index)) {
    const entry = open(item);
    if (!entry) continue;
    if (entry.kind !== 'model-released') {
      bad(item.index, `is a ${entry.kind} entry, not model-released`);
      continue;
    }
    const run = runs.get(entry.run) ?? { rounds: 0, models: 0, last: null };
    runs.set(entry.run, run);
    if (run.last !== null && entry.modelIn !== run.last)
      bad(
        entry.index,
        `model of run ${entry.run} round ${entry.round} does not descend from the run's previous model`,
      );
    run.last = entry.modelSha256;
    run.models++;
    run.rounds = Math.max(run.rounds, entry.round);
    const problem = checkProvenance(entry, item.provenance, keys, policySha256);
    if (problem !== null) bad(entry.index, problem);
  }
  facts.push(
    `${b.models.length} model versions, each with a provenance statement signed by the log key and committed to by its entry`,
  );
  return report(
    entryCount,
    1,
    [...runs.entries()].map(([run, r]) => ({ run, rounds: r.rounds, models: r.models, completed: false })),
  );
}

/** Why a model's provenance envelope does not match its entry, or null when it does. */
function checkProvenance(
  entry: Extract<LogEntry, { kind: 'model-released' }>,
  envelope: unknown,
  keys: ReadonlyMap<string, Uint8Array>,
  policySha256: string | null,
): string | null {
  const v = verifyDsse(envelope, keys);
  if (!v.ok) return `provenance envelope does not verify with the log key (${v.reason})`;
  if (v.payloadType !== IN_TOTO_PAYLOAD_TYPE) return `provenance payloadType is not ${IN_TOTO_PAYLOAD_TYPE}`;
  if (sha256Hex(v.payload) !== entry.provenanceSha256)
    return 'provenance statement is not the one the entry commits to (provenanceSha256)';
  let p: ReturnType<typeof parseProvenanceStatement>;
  try {
    p = parseProvenanceStatement(v.payload);
  } catch (err) {
    return `provenance: ${(err as Error).message}`;
  }
  if (p.modelSha256 !== entry.modelSha256) return 'provenance names a different model';
  if (p.run !== entry.run || p.round !== entry.round) return 'provenance names a different run or round';
  if (p.logIndex !== entry.index) return `provenance names log entry ${p.logIndex}`;
  if (p.policySha256 !== policySha256)
    return "provenance names a different policy than the bundle's policy entry";
  return null;
}
