/**
 * The auditor's verification of a whole log, offline and pure: entry bytes, the index and previous-hash
 * chain, the RFC 6962 tree, every checkpoint's signature (C2SP signed note), its cosignature quorum
 * (C2SP tlog-cosignature), consistency between consecutive checkpoints (RFC 9162 §2.1.4), and the
 * semantics of the entries (every run points at an adopted policy, every model chains back to its
 * run's initial model, no public key is used twice). It returns a report naming the first bad entry;
 * it never throws on bad input.
 */
import { EntenteError } from '../core/errors.ts';
import { parseCheckpoint } from './checkpoint.ts';
import { verifyCosignatures } from './cosignature.ts';
import { collectWitnesses, type LogEntry, parseLogEntry } from './log-entry.ts';
import { hashLeaf } from './merkle-hash.ts';
import { verifyConsistency } from './merkle-proof.ts';
import { MerkleTree } from './merkle-tree.ts';
import { type NoteVerifierKey, openNote, parseVerifierKey } from './signed-note.ts';

export interface LogSource {
  /** Entry bytes in log order. */
  readonly entries: readonly Uint8Array[];
  /** Leaf hashes as the store recorded them (optional; lets an edited row be named exactly). */
  readonly storedLeafHashes?: readonly Uint8Array[];
  /** Published checkpoints (signed notes with cosignature lines), any order. */
  readonly checkpoints: readonly string[];
}

export interface TrustedKeys {
  /** The log's verifier key (signed-note text form). */
  readonly log: string;
  /** Witness (cosigner) verifier keys, algorithm 0x04. */
  readonly witnesses: readonly string[];
  /** Cosignatures a checkpoint needs. */
  readonly quorum: number;
}

export interface AuditReport {
  readonly ok: boolean;
  readonly entries: number;
  readonly checkpoints: number;
  /** Index of the first entry found bad (null when none, or when the problem is not one entry). */
  readonly firstBadEntry: number | null;
  readonly problems: readonly string[];
  /** Facts established, in order, for the readable report. */
  readonly facts: readonly string[];
  /** Where the keys came from: given by the auditor, or read from the log's first entry (trust on first use). */
  readonly keysFrom: 'trusted-keys' | 'log';
  readonly runs: readonly { run: string; rounds: number; models: number; completed: boolean }[];
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/**
 * Verifies everything about `source`. Keys: the `trusted` ones when given (then the log's first
 * entry must name the same log key), else those the log's first entry names (reported as such).
 * The newest checkpoint may still be gathering cosignatures unless `strict`.
 */
export function verifyLog(
  source: LogSource,
  trusted?: TrustedKeys,
  options: { strict?: boolean } = {},
): AuditReport {
  const problems: string[] = [];
  const facts: string[] = [];
  // Entry-level evidence (bytes, index, chain, semantics) names an entry exactly; a checkpoint that
  // no longer matches only bounds where the change starts, so it names an entry only without the former.
  let firstBad: number | null = null;
  let firstBadInRange: number | null = null;
  const bad = (index: number | null, message: string, inexact = false): void => {
    if (index !== null && !inexact && (firstBad === null || index < firstBad)) firstBad = index;
    if (index !== null && inexact && (firstBadInRange === null || index < firstBadInRange))
      firstBadInRange = index;
    problems.push(index === null ? message : `entry ${index}: ${message}`);
  };
  const entries: LogEntry[] = [];
  const tree = new MerkleTree();
  let prev = '';
  for (const [i, bytes] of source.entries.entries()) {
    const leaf = hashLeaf(bytes);
    const stored = source.storedLeafHashes?.[i];
    if (stored && hex(stored) !== hex(leaf))
      bad(i, 'its bytes do not hash to the leaf hash recorded for it (edited)');
    let entry: LogEntry | undefined;
    try {
      entry = parseLogEntry(bytes, `entry ${i}`);
    } catch (err) {
      bad(i, (err as EntenteError).message);
    }
    if (entry) {
      if (entry.index !== i) bad(i, `says it is entry ${entry.index} (deleted or reordered rows)`);
      else if (entry.prev !== prev)
        bad(i, 'does not follow the entry before it (previous-hash chain broken)');
      entries.push(entry);
    }
    prev = hex(leaf);
    tree.appendLeafHash(leaf);
  }
  facts.push(`${source.entries.length} entries read; tree root ${b64(tree.root())}`);

  // Keys.
  const genesis = entries[0];
  let logKey: NoteVerifierKey | undefined;
  let witnesses: NoteVerifierKey[] = [];
  let quorum = 0;
  let history: { key: NoteVerifierKey; until: number }[] = [];
  let origin = '';
  const keysFrom = trusted ? 'trusted-keys' : 'log';
  try {
    if (genesis?.kind !== 'log-created' || genesis.index !== 0)
      throw new EntenteError('INVALID_MESSAGE', 'entry 0 is not the log-created entry');
    origin = genesis.origin;
    logKey = parseVerifierKey(trusted?.log ?? genesis.logKey);
    if (trusted && trusted.log !== genesis.logKey) bad(0, 'names a different log key than the trusted one');
    const stated = collectWitnesses(entries);
    witnesses = (trusted?.witnesses ?? stated.keys).map((k) => parseVerifierKey(k));
    if (!trusted) history = collectWitnessHistory(entries);
    quorum = trusted?.quorum ?? stated.quorum;
    facts.push(
      `log ${origin}; ${witnesses.length} witnesses, quorum ${quorum}; keys from ${keysFrom === 'log' ? "the log's first entry (trust on first use)" : 'the trusted keys file'}`,
    );
  } catch (err) {
    bad(0, (err as Error).message);
  }

  // Checkpoints.
  const parsed: { size: number; root: Uint8Array; note: string; cosigned: number; quorum: number }[] = [];
  for (const [k, note] of source.checkpoints.entries()) {
    if (!logKey) break;
    const opened = openNote(note, [logKey]);
    if (!opened.ok) {
      bad(null, `checkpoint ${k}: signature does not verify with the log key (${opened.reason})`);
      continue;
    }
    let cp: ReturnType<typeof parseCheckpoint>;
    try {
      cp = parseCheckpoint(opened.text);
    } catch (err) {
      bad(null, `checkpoint ${k}: ${(err as Error).message}`);
      continue;
    }
    if (cp.origin !== origin) bad(null, `checkpoint ${k}: origin "${cp.origin}" is not this log's`);
    // A witness's key counts for the checkpoints that do not yet include the entry replacing it (a
    // rotation or recovery): a later key change never invalidates earlier cosignatures, and a replaced
    // key cosigns nothing newer. Trusted keys, when given, count for every checkpoint.
    const keysAtTime = trusted ? witnesses : history.filter((h) => cp.size <= h.until).map((h) => h.key);
    const cosigned = new Set(verifyCosignatures(note, keysAtTime).flatMap((v) => (v.ok ? [v.witness] : [])))
      .size;
    parsed.push({ size: cp.size, root: cp.rootHash, note, cosigned, quorum });
  }
  parsed.sort((a, b) => a.size - b.size);
  for (const [k, cp] of parsed.entries()) {
    const same = parsed.filter((o) => o.size === cp.size && hex(o.root) !== hex(cp.root));
    if (same.length > 0) bad(null, `two different checkpoints for size ${cp.size} (a split view)`);
    if (cp.size > tree.size) {
      bad(tree.size, `the log ends here but a checkpoint covers ${cp.size} entries (truncated)`);
      continue;
    }
    if (hex(tree.root(cp.size)) !== hex(cp.root)) {
      const before = parsed
        .slice(0, k)
        .filter((o) => o.size < cp.size && hex(tree.root(o.size)) === hex(o.root))
        .at(-1);
      const from = before?.size ?? 0;
      bad(
        from,
        `entries ${from}..${cp.size - 1} do not match the checkpoint of size ${cp.size} (rewritten)`,
        true,
      );
      continue;
    }
    const last = k === parsed.length - 1;
    if (cp.cosigned < cp.quorum && !(last && !options.strict))
      bad(null, `checkpoint of size ${cp.size} has ${cp.cosigned} cosignatures, quorum is ${cp.quorum}`);
    const previous = parsed[k - 1];
    if (previous && previous.size <= cp.size) {
      const proof = tree.consistencyProof(previous.size, cp.size);
      const v = verifyConsistency({
        size1: previous.size,
        size2: cp.size,
        root1: previous.root,
        root2: cp.root,
        proof,
      });
      if (!v.ok) bad(null, `checkpoints ${previous.size} and ${cp.size} are not consistent: ${v.reason}`);
    }
  }
  const newest = parsed.at(-1);
  facts.push(
    `${parsed.length} checkpoints verified${newest ? `; newest covers ${newest.size} entries with ${newest.cosigned}/${witnesses.length} cosignatures${newest.cosigned < newest.quorum ? ' (awaiting cosignatures)' : ''}` : ''}`,
  );
  if (newest && newest.size < tree.size)
    facts.push(`${tree.size - newest.size} entries after the newest checkpoint are not yet committed`);

  const runs = checkSemantics(entries, bad, facts);
  return {
    ok: problems.length === 0,
    entries: source.entries.length,
    checkpoints: parsed.length,
    firstBadEntry: firstBad ?? firstBadInRange,
    problems,
    facts,
    keysFrom,
    runs,
  };
}

/** Every witness key the log stated, with the last checkpoint size it may cosign (Infinity: current). */
function collectWitnessHistory(entries: readonly LogEntry[]): { key: NoteVerifierKey; until: number }[] {
  const history: { institution: string; key: NoteVerifierKey; until: number }[] = [];
  const add = (institution: string, vkey: string, at: number): void => {
    for (const h of history) if (h.institution === institution && h.until === Infinity) h.until = at;
    try {
      history.push({ institution, key: parseVerifierKey(vkey), until: Infinity });
    } catch {
      // An unparsable key verifies nothing; the entry schema already bounds it.
    }
  };
  for (const e of entries) {
    if (e.kind === 'log-created') for (const w of e.witnesses) add(w.institution, w.key, e.index);
    else if (e.kind === 'witness-added') add(e.institution, e.key, e.index);
  }
  return history.map(({ key, until }) => ({ key, until }));
}

function checkSemantics(
  entries: readonly LogEntry[],
  bad: (index: number | null, message: string) => void,
  facts: string[],
): AuditReport['runs'] {
  const policies = new Set<number>();
  const runs = new Map<string, { model: string; rounds: number; models: number; completed: boolean }>();
  const keys = new Map<string, number>();
  for (const e of entries) {
    switch (e.kind) {
      case 'policy-adopted':
        policies.add(e.index);
        break;
      case 'run-configured':
        if (!policies.has(e.policyIndex))
          bad(
            e.index,
            `run ${e.run} refers to entry ${e.policyIndex}, which is not an adopted policy before it`,
          );
        if (runs.has(e.run)) bad(e.index, `run ${e.run} is configured twice`);
        runs.set(e.run, { model: '', rounds: 0, models: 0, completed: false });
        break;
      case 'model-initialized': {
        const r = runs.get(e.run);
        if (!r) bad(e.index, `model for run ${e.run}, which was never configured`);
        else r.model = e.modelSha256;
        break;
      }
      case 'model-released': {
        const r = runs.get(e.run);
        if (!r) {
          bad(e.index, `model for run ${e.run}, which was never configured`);
          break;
        }
        if (e.modelIn !== r.model)
          bad(
            e.index,
            `model of run ${e.run} round ${e.round} does not descend from the run's previous model`,
          );
        r.model = e.modelSha256;
        r.models++;
        r.rounds = Math.max(r.rounds, e.round);
        break;
      }
      case 'keys-advertised':
        for (const a of e.adverts) {
          for (const k of [a.encryptionKeySha256, a.maskingKeySha256]) {
            const seen = keys.get(k);
            if (seen !== undefined)
              bad(e.index, `a public key of ${a.participant} was already used in entry ${seen}`);
            keys.set(k, e.index);
          }
        }
        break;
      case 'run-cancelled':
        if (!runs.has(e.run)) bad(e.index, `cancellation of run ${e.run}, which was never configured`);
        break;
      case 'run-completed': {
        const r = runs.get(e.run);
        if (r) r.completed = true;
        else bad(e.index, `completion of run ${e.run}, which was never configured`);
        break;
      }
      default:
        break;
    }
  }
  facts.push(
    `${runs.size} runs; ${[...runs.values()].reduce((s, r) => s + r.models, 0)} model versions, each chained to its run's initial model; ${keys.size} distinct public keys, none reused`,
  );
  return [...runs.entries()].map(([run, r]) => ({
    run,
    rounds: r.rounds,
    models: r.models,
    completed: r.completed,
  }));
}
