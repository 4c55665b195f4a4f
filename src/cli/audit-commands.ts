/**
 * `entente audit …`: the auditor's commands. They read a log (workspace, database, evidence bundle or
 * coordinator URL; see audit-source.ts) and check it offline with src/audit: the whole log (verifyLog:
 * RFC 6962/9162 tree, C2SP checkpoints and cosignatures, entry chain and semantics), one inclusion
 * proof in the transparency-dev/merkle testdata layout, or an evidence bundle (verifyBundle).
 * Exit codes: 0 verified, 1 verification failed (the first bad entry is named), 2 usage or malformed
 * input; other failures map from the error registry in main.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  type AuditReport,
  checkProofFile,
  collectWitnesses,
  hashLeaf,
  type LogEntry,
  MerkleTree,
  openNote,
  parseCheckpoint,
  parseLogEntry,
  parseNote,
  parseVerifierKey,
  type TrustedKeys,
  verifyCosignatures,
  verifyLog,
} from '../audit/index.ts';
import {
  EVIDENCE_BUNDLE_FORMAT,
  type EvidenceBundle,
  parseEvidenceBundle,
  verifyBundle,
} from '../audit/verify-bundle.ts';
import { EntenteError } from '../core/errors.ts';
import { type TrailEntry, verifyGovernanceTrail } from '../governance/index.ts';
import { type AuditInput, type LogReader, openAuditInput, readTrustedKeys } from './audit-source.ts';
import { writeOutputFile } from './parse-options.ts';

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/** Exit 1 with a message on stderr: the log or proof did not verify. */
function failVerification(message: string): void {
  console.error(`entente audit: ${message}`);
  process.exitCode = 1;
}

function parseCount(text: string, flag: string, min: number): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < min)
    throw new EntenteError('INVALID_ARGUMENT', `${flag}: must be an integer ≥ ${min}`, {
      field: flag.slice(2),
    });
  return Number(text);
}

async function withInput<T>(
  log: string,
  workspace: string | undefined,
  fn: (input: AuditInput) => Promise<T>,
) {
  const input = openAuditInput(log, workspace === undefined ? {} : { workspace });
  try {
    return await fn(input);
  } finally {
    if (input.kind === 'log') await input.reader.close();
  }
}

/** The readable report: facts, runs, then OK or the problems and the first bad entry. */
export function formatAuditReport(report: AuditReport, location: string): string {
  const lines = [`audit of ${location}`, ...report.facts.map((f) => `  ${f}`)];
  if (report.runs.length > 0) {
    lines.push('runs:');
    for (const r of report.runs)
      lines.push(
        `  ${r.run}: ${r.models} model versions, last round ${r.rounds}${r.completed ? ', completed' : ''}`,
      );
  }
  if (report.ok) lines.push(`OK: ${report.entries} entries and ${report.checkpoints} checkpoints verified`);
  else {
    lines.push(`FAILED: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}`);
    for (const p of report.problems) lines.push(`  - ${p}`);
    if (report.firstBadEntry !== null) lines.push(`first bad entry: ${report.firstBadEntry}`);
  }
  return lines.join('\n');
}

/** Entries → the RFC 6962 tree over their bytes (as they are, not as the store's leaf hashes claim). */
function buildTree(entries: readonly Uint8Array[]): MerkleTree {
  const tree = new MerkleTree();
  for (const e of entries) tree.appendEntry(e);
  return tree;
}

function readGenesis(first: Uint8Array | undefined): Extract<LogEntry, { kind: 'log-created' }> | undefined {
  if (!first) return undefined;
  try {
    const e = parseLogEntry(first, 'entry 0');
    return e.kind === 'log-created' && e.index === 0 ? e : undefined;
  } catch {
    return undefined;
  }
}

/** The checkpoint notes that carry a valid log signature, with their size, root and cosignature count. */
function openCheckpoints(notes: readonly string[], logKeyText: string, witnesses: readonly string[]) {
  const logKey = parseVerifierKey(logKeyText);
  const witnessKeys = witnesses.map((w) => parseVerifierKey(w));
  return notes.flatMap((note) => {
    const opened = openNote(note, [logKey]);
    if (!opened.ok) return [];
    try {
      const cp = parseCheckpoint(opened.text);
      const cosigned = new Set(
        verifyCosignatures(note, witnessKeys).flatMap((v) => (v.ok ? [v.witness] : [])),
      ).size;
      return [{ note, size: cp.size, root: cp.rootHash, cosigned }];
    } catch {
      return [];
    }
  });
}

async function runVerify(opts: {
  log: string;
  trustedKeys?: string;
  workspace?: string;
  strict?: boolean;
  json?: boolean;
}): Promise<void> {
  const trusted: TrustedKeys | undefined = opts.trustedKeys ? readTrustedKeys(opts.trustedKeys) : undefined;
  const report = await withInput(opts.log, opts.workspace, async (input) => {
    if (input.kind === 'bundle') return verifyBundle(parseEvidenceBundle(input.bundle), trusted);
    const { entries, storedLeafHashes } = await input.reader.readEntries();
    const checkpoints = await input.reader.readCheckpoints();
    const report = verifyLog(
      { entries, checkpoints, ...(storedLeafHashes ? { storedLeafHashes } : {}) },
      trusted,
      {
        strict: Boolean(opts.strict),
      },
    );
    return addGovernanceTrail(report, entries);
  });
  console.log(opts.json ? JSON.stringify(report) : formatAuditReport(report, opts.log));
  if (!report.ok) process.exitCode = 1;
}

/**
 * Re-checks the log's governance decisions from its entries alone (signatures against enrolled identity
 * keys, quorums of the policy in force, effects following approvals) and adds what it finds to `report`.
 */
function addGovernanceTrail(report: AuditReport, entries: readonly Uint8Array[]): AuditReport {
  const parsed: LogEntry[] = [];
  for (const [i, bytes] of entries.entries()) {
    try {
      parsed.push(parseLogEntry(bytes, `entry ${i}`));
    } catch {
      // already reported by verifyLog
    }
  }
  // The log's own root at any size: a staged rollout's canary draw names a checkpoint by size and root.
  const tree = MerkleTree.fromLeafHashes(entries.map((bytes) => hashLeaf(bytes)));
  const rootHashAt = (size: number): string | undefined =>
    Number.isInteger(size) && size >= 1 && size <= tree.size
      ? Buffer.from(tree.root(size)).toString('hex')
      : undefined;
  const trail = verifyGovernanceTrail(parsed as unknown as TrailEntry[], { rootHashAt });
  if (trail.problems.length === 0) return { ...report, facts: [...report.facts, ...trail.facts] };
  const first = Math.min(...trail.problems.map((p) => p.index));
  return {
    ...report,
    ok: false,
    firstBadEntry: report.firstBadEntry === null ? first : Math.min(report.firstBadEntry, first),
    problems: [...report.problems, ...trail.problems.map((p) => `entry ${p.index}: ${p.message}`)],
    facts: [...report.facts, ...trail.facts],
  };
}

async function runProve(opts: {
  entry: string;
  log: string;
  size?: string;
  workspace?: string;
  json?: boolean;
}) {
  const index = parseCount(opts.entry, '--entry', 0);
  const wanted = opts.size === undefined ? undefined : parseCount(opts.size, '--size', 1);
  const proof = await withInput(opts.log, opts.workspace, async (input) => {
    if (input.kind === 'bundle') return proveFromBundle(parseEvidenceBundle(input.bundle), index, wanted);
    return proveFromLog(input.reader, index, wanted);
  });
  if (proof === null) return;
  console.log(opts.json ? JSON.stringify(proof) : JSON.stringify(proof, null, 2));
}

type ProofFile = { leafIdx: number; treeSize: number; root: string; leafHash: string; proof: string[] };

async function proveFromLog(reader: LogReader, index: number, wanted?: number): Promise<ProofFile | null> {
  const { entries } = await reader.readEntries();
  const tree = buildTree(entries);
  const genesis = readGenesis(entries[0]);
  const notes = await reader.readCheckpoints();
  const checkpoints = genesis ? openCheckpoints(notes, genesis.logKey, []) : [];
  const size = wanted ?? checkpoints.at(-1)?.size;
  if (size === undefined)
    throw new EntenteError('NOT_FOUND', 'the log has no signed checkpoint; give --size', { field: 'size' });
  if (size > tree.size)
    throw new EntenteError('INVALID_ARGUMENT', `--size: the log holds ${tree.size} entries`, {
      field: 'size',
    });
  if (index >= size)
    throw new EntenteError('INVALID_ARGUMENT', `--entry: must be below the tree size ${size}`, {
      field: 'entry',
    });
  const root = tree.root(size);
  const cp = checkpoints.find((c) => c.size === size);
  if (cp && b64(cp.root) !== b64(root)) {
    failVerification(
      `the log's entries do not match its signed checkpoint of size ${size}; run "entente audit verify"`,
    );
    return null;
  }
  return {
    leafIdx: index,
    treeSize: size,
    root: b64(root),
    leafHash: b64(tree.leafHash(index)),
    proof: tree.inclusionProof(index, size).map(b64),
  };
}

function proveFromBundle(bundle: EvidenceBundle, index: number, wanted?: number): ProofFile {
  const cp = parseCheckpoint(parseNote(bundle.checkpoint).text);
  if (wanted !== undefined && wanted !== cp.size)
    throw new EntenteError(
      'INVALID_ARGUMENT',
      `--size: a bundle proves against its checkpoint of size ${cp.size}`,
      {
        field: 'size',
      },
    );
  const item = [bundle.policy, ...bundle.models].find((m) => m.index === index);
  if (!item)
    throw new EntenteError('NOT_FOUND', `--entry: entry ${index} is not in the bundle`, { field: 'entry' });
  return {
    leafIdx: index,
    treeSize: cp.size,
    root: b64(cp.rootHash),
    leafHash: b64(hashLeaf(Buffer.from(item.entry, 'base64'))),
    proof: [...item.proof],
  };
}

async function runExportBundle(opts: { log: string; out: string; workspace?: string }): Promise<void> {
  await withInput(opts.log, opts.workspace, async (input) => {
    if (input.kind === 'bundle')
      throw new EntenteError('INVALID_ARGUMENT', '--log: this is already an evidence bundle', {
        field: 'log',
      });
    const result = await createBundle(input.reader);
    if (typeof result === 'string') return failVerification(result);
    writeOutputFile(opts.out, `${JSON.stringify(result.bundle, null, 2)}\n`, '--out');
    console.log(
      `wrote ${opts.out}: checkpoint of size ${result.size} with ${result.cosigned}/${result.bundle.witnesses.length} cosignatures, policy entry ${result.bundle.policy.index}, ${result.bundle.models.length} model versions`,
    );
    const check = verifyBundle(result.bundle);
    if (!check.ok)
      console.error(`entente audit: warning: the bundle does not verify yet: ${check.problems.join('; ')}`);
  });
}

/**
 * The bundle of the newest checkpoint with a quorum of cosignatures (else the newest, with a warning),
 * or the reason none can be made from this log.
 */
async function createBundle(
  reader: LogReader,
): Promise<{ bundle: EvidenceBundle; size: number; cosigned: number } | string> {
  const { entries } = await reader.readEntries();
  const genesis = readGenesis(entries[0]);
  if (!genesis) return 'entry 0 is not a valid log-created entry; run "entente audit verify"';
  const stated = collectWitnesses(
    entries.flatMap((bytes, i) => {
      try {
        return [parseLogEntry(bytes, `entry ${i}`)];
      } catch {
        return [];
      }
    }),
  );
  const witnesses = stated.keys;
  const tree = buildTree(entries);
  const checkpoints = openCheckpoints(await reader.readCheckpoints(), genesis.logKey, witnesses).filter(
    (c) => c.size >= 1,
  );
  const newest = checkpoints.at(-1);
  if (!newest) return 'the log has no checkpoint signed by its key';
  for (const c of checkpoints)
    if (c.size > tree.size || b64(tree.root(c.size)) !== b64(c.root))
      return `the log's entries do not match its signed checkpoint of size ${c.size}; run "entente audit verify"`;
  let chosen = [...checkpoints].reverse().find((c) => c.cosigned >= stated.quorum);
  if (!chosen) {
    chosen = newest;
    console.error(
      `entente audit: warning: no checkpoint has ${stated.quorum} cosignatures yet; using the newest (size ${newest.size})`,
    );
  } else if (chosen !== newest)
    console.error(
      `entente audit: the newest checkpoint (size ${newest.size}) awaits cosignatures; using size ${chosen.size}`,
    );
  const size = chosen.size;
  const parsed = entries.slice(0, size).map((bytes, i) => parseLogEntry(bytes, `entry ${i}`));
  const item = (index: number) => ({
    index,
    entry: b64(entries[index]!),
    proof: tree.inclusionProof(index, size).map(b64),
  });
  const policy = parsed.filter((e) => e.kind === 'policy-adopted').at(-1);
  if (!policy) return `no policy-adopted entry below size ${size}`;
  const provenance = await reader.readProvenance();
  const models: EvidenceBundle['models'][number][] = [];
  for (const e of parsed) {
    if (e.kind !== 'model-released') continue;
    const envelope = provenance.get(e.provenanceSha256);
    if (envelope === undefined)
      throw new EntenteError(
        'NOT_FOUND',
        `entry ${e.index}: its provenance statement is not stored with the log`,
        {
          field: 'provenance',
        },
      );
    models.push({ ...item(e.index), provenance: envelope });
  }
  return {
    size,
    cosigned: chosen.cosigned,
    bundle: {
      format: EVIDENCE_BUNDLE_FORMAT,
      origin: genesis.origin,
      logKey: genesis.logKey,
      witnesses,
      quorum: stated.quorum,
      checkpoint: chosen.note,
      policy: item(policy.index),
      models,
    },
  };
}

async function runCheckpoint(opts: { log: string; workspace?: string }): Promise<void> {
  const note = await withInput(opts.log, opts.workspace, async (input) =>
    input.kind === 'bundle'
      ? parseEvidenceBundle(input.bundle).checkpoint
      : input.reader.readNewestCheckpoint(),
  );
  process.stdout.write(note);
}

/** SHA-256 of a raw identity key, as grouped hex for reading aloud (what founders compare out of band). */
function fingerprintOf(key: Uint8Array): string {
  const hex = createHash('sha256').update(key).digest('hex').slice(0, 32);
  return hex.match(/.{4}/g)!.join(' ');
}

/**
 * Prints each member's identity key as the log pins it (replaying the governance trail): its fingerprint,
 * whether the member is admitted, and any key it presented that no rotation or recovery authorized.
 */
async function runKeys(opts: { log: string; workspace?: string; json?: boolean }): Promise<void> {
  const rows = await withInput(opts.log, opts.workspace, async (input) => {
    if (input.kind === 'bundle')
      throw new EntenteError(
        'INVALID_ARGUMENT',
        'log: an evidence bundle holds no enrollments; give the log',
        {
          field: 'log',
        },
      );
    const { entries } = await input.reader.readEntries();
    const parsed: LogEntry[] = [];
    for (const [i, bytes] of entries.entries()) parsed.push(parseLogEntry(bytes, `entry ${i}`));
    const trail = verifyGovernanceTrail(parsed as unknown as TrailEntry[]);
    const members = new Set([...trail.identityKeys.keys(), ...trail.members]);
    return [...members].sort().map((member) => {
      const pinned = trail.identityKeys.get(member);
      const presented = trail.presentedKeys.get(member);
      return {
        member,
        admitted: trail.members.has(member),
        identityKey: pinned ? Buffer.from(pinned).toString('base64') : null,
        fingerprint: pinned ? fingerprintOf(pinned) : null,
        presentedKey: presented ? Buffer.from(presented).toString('base64') : null,
      };
    });
  });
  if (opts.json) {
    console.log(JSON.stringify({ keys: rows }));
    return;
  }
  for (const r of rows)
    console.log(
      `${r.member.padEnd(24)} ${r.fingerprint ?? '(no key pinned)'}${r.admitted ? '' : '   not admitted'}${r.presentedKey ? '   + a presented key, not authorized' : ''}`,
    );
}

async function runVkey(opts: { log: string; workspace?: string }): Promise<void> {
  const key = await withInput(opts.log, opts.workspace, async (input) => {
    if (input.kind === 'bundle') return parseEvidenceBundle(input.bundle).logKey;
    const genesis = readGenesis(await input.reader.readFirstEntry());
    const key = genesis?.logKey ?? input.reader.configuredLogKey;
    if (!key)
      throw new EntenteError(
        'NOT_FOUND',
        "no log key: the log's first entry is missing and no consortium.json names one",
        {
          field: 'log',
        },
      );
    return key;
  });
  parseVerifierKey(key);
  process.stdout.write(`${key}\n`);
}

function runCheckProof(file: string): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new EntenteError('INVALID_ARGUMENT', `cannot read ${file}`, { field: 'file' });
  }
  const verdict = checkProofFile(text);
  if (verdict.status === 'valid') console.log(`valid ${verdict.kind} proof`);
  else if (verdict.status === 'invalid') failVerification(`invalid ${verdict.kind} proof: ${verdict.reason}`);
  else
    throw new EntenteError('INVALID_ARGUMENT', `malformed proof file ${file}: ${verdict.reason}`, {
      field: 'file',
    });
}

/** Adds `entente audit …` to the program. */
export function registerAuditCommands(program: Command): void {
  const audit = program
    .command('audit')
    .description("the auditor's tools: verify a log or an evidence bundle offline, prove, export");
  const logHelp =
    'a workspace directory, a coordinator database, an evidence bundle, or the coordinator https URL';
  const workspaceHelp = 'workspace whose operator identity reads an https --log';
  audit
    .command('verify')
    .description(
      'verify the whole log (or a bundle) offline; exit 0 ok, 1 failed (names the first bad entry), 2 bad input',
    )
    .requiredOption('--log <dir|file|url>', logHelp)
    .option(
      '--trusted-keys <file>',
      'JSON { "log": vkey, "witnesses": [vkey…], "quorum": n } (default: trust on first use)',
    )
    .option('--workspace <dir>', workspaceHelp)
    .option('--strict', 'the newest checkpoint too must have its quorum of cosignatures')
    .option('--json', 'print the report as one JSON object')
    .action(runVerify);
  audit
    .command('prove')
    .description('print an inclusion proof of one entry (transparency-dev JSON layout, for check-proof)')
    .requiredOption('--entry <n>', 'entry index')
    .requiredOption('--log <dir|file|url>', logHelp)
    .option('--size <s>', 'tree size to prove against (default: the newest checkpoint)')
    .option('--workspace <dir>', workspaceHelp)
    .option('--json', 'print the proof on one line')
    .action(runProve);
  audit
    .command('export-bundle')
    .description(
      'write an evidence bundle: cosigned checkpoint, policy and model entries with proofs and provenance',
    )
    .requiredOption('--log <dir|file|url>', logHelp)
    .requiredOption('--out <file>', 'bundle file to write')
    .option('--workspace <dir>', workspaceHelp)
    .action(runExportBundle);
  audit
    .command('check-proof')
    .description('check a proof file; exit 0 valid, 1 invalid, 2 malformed')
    .argument('<file>', 'proof file (JSON)')
    .action(runCheckProof);
  audit
    .command('checkpoint')
    .description('print the newest checkpoint note exactly as published')
    .requiredOption('--log <dir|file|url>', logHelp)
    .option('--workspace <dir>', workspaceHelp)
    .action(runCheckpoint);
  audit
    .command('keys')
    .description(
      "print each member's identity key as the log pins it (SHA-256 fingerprint): compare them out of band before signing the founding policy",
    )
    .requiredOption('--log <dir|file|url>', logHelp)
    .option('--workspace <dir>', workspaceHelp)
    .option('--json', 'print JSON')
    .action(runKeys);
  audit
    .command('vkey')
    .description("print the log's verifier key")
    .requiredOption('--log <dir|file|url>', logHelp)
    .option('--workspace <dir>', workspaceHelp)
    .action(runVkey);
}
