/**
 * The participant as a witness of the consortium's audit log (C2SP tlog-witness role, simplified to a
 * pull model). It keeps the newest checkpoint it has verified (persisted, so a restart cannot be
 * fooled), and for every newer one: checks the log's signature, refuses a rollback, and verifies an
 * RFC 9162 consistency proof from its own view; a second checkpoint for a size it already saw with a
 * different root is a split view: it records an incident and stops. Before cosigning it checks that
 * each update commitment it made is in the log by the time the log closes that round (inclusion
 * proofs). A cosignature the coordinator refuses is given up and the site moves on to the next
 * checkpoint, never retrying the same one in a loop. Before training it checks that the model it was
 * given is the one the log recorded.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { Logger } from 'pino';
import {
  type Checkpoint,
  type NoteVerifierKey,
  createCosignatureLine,
  hashLeaf,
  openNote,
  parseCheckpoint,
  parseLogEntry,
  parseVerifierKey,
  verifyConsistency,
  verifyInclusion,
} from '../audit/index.ts';
import { EntenteError, httpStatusOf } from '../core/errors.ts';
import type { MtlsClient } from '../transport/index.ts';

export interface LogWitnessOptions {
  readonly client: () => MtlsClient;
  readonly institution: string;
  /** The log's verifier key and origin, from the consortium file (not from the coordinator). */
  readonly logKey: string;
  readonly origin: string;
  /** This institution's cosigner name and Ed25519 key (its identity key). */
  readonly witnessName: string;
  readonly witnessKeyPem: string;
  /** Where the verified view survives restarts (absent: memory only). */
  readonly stateFile?: string | undefined;
  readonly log: Logger;
  readonly now: () => number;
}

interface WitnessState {
  size: number;
  root: string;
  note: string;
  cosigned: number;
  /**
   * The newest checkpoint size this site is done with: cosigned, or refused by the coordinator and given
   * up (absent in state files written before: then `cosigned`).
   */
  witnessed?: number;
  /** Update commitments this site made and has not yet seen in the log. */
  pending: { run: string; round: number; attempt: number; sha256: string }[];
}

/** A definite answer from the coordinator (4xx other than 429), not a network failure or overload. */
function isRefusal(err: unknown): err is EntenteError {
  if (!(err instanceof EntenteError)) return false;
  const status = httpStatusOf(err.code);
  return status >= 400 && status < 500 && status !== 429;
}

function violation(field: string, message: string): never {
  throw new EntenteError('PROTOCOL_VIOLATION', `${field}: ${message}`, { field });
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const fromB64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));

export class LogWitness {
  private readonly o: LogWitnessOptions;
  private readonly key: NoteVerifierKey;
  private state: WitnessState;
  /** Set after a split view or rollback: the site takes no further part. */
  halted: string | null = null;

  constructor(options: LogWitnessOptions) {
    this.o = options;
    this.key = parseVerifierKey(options.logKey);
    this.state = { size: 0, root: '', note: '', cosigned: -1, pending: [] };
    if (options.stateFile && existsSync(options.stateFile)) {
      this.state = JSON.parse(readFileSync(options.stateFile, 'utf8')) as WitnessState;
    }
  }

  get view(): { size: number; root: string } {
    return { size: this.state.size, root: this.state.root };
  }

  /** Atomic (temp file, fsync, rename): a site killed mid-write keeps its previous view intact. */
  private save(): void {
    const file = this.o.stateFile;
    if (!file) return;
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(this.state));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  }

  private halt(message: string): never {
    this.halted = message;
    violation('checkpoint', message);
  }

  /**
   * Verifies `note` against the log key and this site's view; adopts it when newer. Throws
   * PROTOCOL_VIOLATION (and halts on a split view or a rollback).
   */
  async observe(note: string, options: { older?: boolean } = {}): Promise<Checkpoint> {
    if (this.halted) violation('checkpoint', `this site stopped witnessing: ${this.halted}`);
    const opened = openNote(note, [this.key]);
    if (!opened.ok) violation('checkpoint', `not signed by the consortium's log key (${opened.reason})`);
    const cp = parseCheckpoint(opened.text);
    if (cp.origin !== this.o.origin)
      violation('checkpoint.origin', `"${cp.origin}" is not this consortium's log`);
    const root = b64(cp.rootHash);
    const { size: oldSize, root: oldRoot } = this.state;
    if (cp.size < oldSize && !options.older)
      this.halt(`rollback: size ${cp.size} after this site saw size ${oldSize}`);
    if (cp.size < oldSize) {
      // An older checkpoint being witnessed late: it must be a prefix of this site's view.
      const r = await this.o
        .client()
        .getJson<{ proof: string[] }>(`/v1/log/proof/consistency?from=${cp.size}&to=${oldSize}`);
      const v = verifyConsistency({
        size1: cp.size,
        size2: oldSize,
        root1: cp.rootHash,
        root2: fromB64(oldRoot),
        proof: (r.body?.proof ?? []).map(fromB64),
      });
      if (!v.ok) this.halt(`split view: checkpoint ${cp.size} is not a prefix of ${oldSize} (${v.reason})`);
      return cp;
    }
    if (cp.size === oldSize && oldRoot !== '' && root !== oldRoot)
      this.halt(`split view: two different checkpoints of size ${cp.size}`);
    if (cp.size > oldSize && oldRoot !== '') {
      const r = await this.o
        .client()
        .getJson<{ proof: string[] }>(`/v1/log/proof/consistency?from=${oldSize}&to=${cp.size}`);
      const v = verifyConsistency({
        size1: oldSize,
        size2: cp.size,
        root1: fromB64(oldRoot),
        root2: cp.rootHash,
        proof: (r.body?.proof ?? []).map(fromB64),
      });
      if (!v.ok)
        this.halt(`split view: checkpoint ${cp.size} is not consistent with ${oldSize} (${v.reason})`);
    }
    if (cp.size >= oldSize) {
      this.state = { ...this.state, size: cp.size, root, note };
      this.save();
    }
    return cp;
  }

  private async fetchCheckpoint(): Promise<string> {
    return (await this.o.client().getBytes('/v1/log/checkpoint', 64 * 1024)).toString('utf8');
  }

  /** Observes the newest checkpoint (verified like any other) and returns this site's view. */
  async refresh(): Promise<{ size: number; root: string }> {
    await this.observe(await this.fetchCheckpoint());
    return this.view;
  }

  /** Fetches entry `index` and checks its inclusion in the current view; returns the parsed entry. */
  async fetchIncluded(index: number): Promise<ReturnType<typeof parseLogEntry>> {
    const { size, root } = this.state;
    if (index >= size)
      violation('modelLog.index', `entry ${index} is beyond the newest checkpoint (${size})`);
    const entries = await this.o
      .client()
      .getJson<{ entries: { index: number; body: string }[] }>(
        `/v1/log/entries?start=${index}&end=${index + 1}`,
      );
    const body = entries.body?.entries[0];
    if (!body || body.index !== index) violation('log', `entry ${index} was not served`);
    const bytes = fromB64(body.body);
    const proof = await this.o
      .client()
      .getJson<{ proof: string[] }>(`/v1/log/proof/inclusion?index=${index}&size=${size}`);
    const v = verifyInclusion({
      leafIndex: index,
      treeSize: size,
      leafHash: hashLeaf(bytes),
      proof: (proof.body?.proof ?? []).map(fromB64),
      root: fromB64(root),
    });
    if (!v.ok) violation('log', `entry ${index} is not in the checkpoint of size ${size} (${v.reason})`);
    return parseLogEntry(bytes, `log entry ${index}`);
  }

  /** Before training: the model must be the one the log recorded for this run at `index`. */
  async checkModel(input: { index: number; run: string; modelSha256: string }): Promise<void> {
    await this.observe(await this.fetchCheckpoint());
    const entry = await this.fetchIncluded(input.index);
    if (
      (entry.kind !== 'model-initialized' && entry.kind !== 'model-released') ||
      entry.run !== input.run ||
      entry.modelSha256 !== input.modelSha256
    ) {
      violation(
        'model',
        `the model sent (${input.modelSha256.slice(0, 12)}…) is not the one the log records at entry ${input.index}`,
      );
    }
  }

  /** Remembers a commitment this site signed and had accepted; it must show up in the log. */
  recordCommitment(c: { run: string; round: number; attempt: number; sha256: string }): void {
    this.state.pending.push(c);
    this.save();
  }

  /** Size of the newest checkpoint this site has cosigned (-1 before the first). */
  get cosignedSize(): number {
    return this.state.cosigned;
  }

  /**
   * Size of the newest checkpoint this site is done with (-1 before the first): cosigned, or refused by
   * the coordinator and given up. The long poll is told this size, so only a newer one wakes the site.
   */
  get witnessedSize(): number {
    return Math.max(this.state.cosigned, this.state.witnessed ?? -1);
  }

  /**
   * Witnesses, in order, every checkpoint newer than the last one it is done with: verifies each against
   * this site's view, checks this site's commitments in its range, and posts a cosignature for each. A
   * cosignature the coordinator refuses (a 4xx answer other than 429: the note cannot take it, the
   * checkpoint is gone, …) is logged and given up: the site moves on to the next checkpoint, up to the
   * newest (whose consistency with its last verified view was proven first), instead of retrying the
   * same one forever. Network failures and overload propagate, so the caller retries later.
   * Returns how many it cosigned.
   */
  async cosignPending(): Promise<number> {
    if (this.halted) violation('checkpoint', `this site stopped witnessing: ${this.halted}`);
    // The newest checkpoint first: a second checkpoint for a size already seen is a split view even
    // though it is not "after" anything.
    await this.observe(await this.fetchCheckpoint());
    const r = await this.o
      .client()
      .getJson<{ checkpoints: { size: number; note: string }[] }>(
        `/v1/log/checkpoints?after=${this.witnessedSize}`,
      );
    let count = 0;
    let refused = 0;
    for (const { note } of r.body?.checkpoints ?? []) {
      const from = Math.max(0, this.witnessedSize);
      const cp = await this.observe(note, { older: true });
      if (cp.size <= this.witnessedSize) continue;
      await this.checkCommitments(from, cp.size);
      const line = createCosignatureLine({
        witnessName: this.o.witnessName,
        privateKeyPem: this.o.witnessKeyPem,
        checkpointText: note.slice(0, note.indexOf('\n\n') + 1),
        timestampSeconds: Math.floor(this.o.now() / 1000),
      });
      try {
        await this.o.client().postJson('/v1/log/cosignatures', { size: cp.size, line });
        this.state.cosigned = cp.size;
        count++;
      } catch (err) {
        if (!isRefusal(err)) throw err;
        refused++;
        this.o.log.warn(
          { size: cp.size, code: err.code, field: err.field },
          `the coordinator refused this site's cosignature of checkpoint ${cp.size}; moving on: ${err.message}`,
        );
      }
      this.state.witnessed = cp.size;
      this.save();
    }
    if (count > 0 || refused > 0)
      this.o.log.info(
        { size: this.state.cosigned, count, refused },
        'audit log checkpoints verified and cosigned',
      );
    return count;
  }

  /** Every pending commitment whose round the log has closed in [from, to) must be in the log. */
  private async checkCommitments(from: number, to: number): Promise<void> {
    if (this.state.pending.length === 0) return;
    const found = new Set<string>();
    const closed: { run: string; round: number; attempt: number | null }[] = [];
    for (let start = from; start < to; start += 10_000) {
      const end = Math.min(to, start + 10_000);
      const page = await this.o
        .client()
        .getJson<{ entries: { index: number; body: string }[] }>(`/v1/log/entries?start=${start}&end=${end}`);
      for (const e of page.body?.entries ?? []) {
        const entry = parseLogEntry(fromB64(e.body), `log entry ${e.index}`);
        if (entry.kind === 'update-committed' && entry.participant === this.o.institution) {
          const key = `${entry.run}/${entry.round}/${entry.attempt}/${entry.sha256}`;
          if (this.state.pending.some((p) => `${p.run}/${p.round}/${p.attempt}/${p.sha256}` === key)) {
            await this.fetchIncluded(e.index); // an inclusion proof for each of its own commitments
            found.add(key);
          }
        }
        if (entry.kind === 'model-released')
          closed.push({ run: entry.run, round: entry.round, attempt: null });
        if (entry.kind === 'round-aborted' && !entry.phase)
          closed.push({ run: entry.run, round: entry.round, attempt: entry.attempt });
      }
    }
    const stillPending: WitnessState['pending'] = [];
    for (const p of this.state.pending) {
      const key = `${p.run}/${p.round}/${p.attempt}/${p.sha256}`;
      if (found.has(key)) continue;
      const isClosed = closed.some(
        (c) => c.run === p.run && c.round === p.round && (c.attempt === null || c.attempt === p.attempt),
      );
      if (isClosed)
        this.halt(
          `the log closed run ${p.run} round ${p.round} without this site's accepted update commitment`,
        );
      stillPending.push(p);
    }
    this.state.pending = stillPending;
    this.save();
  }
}
