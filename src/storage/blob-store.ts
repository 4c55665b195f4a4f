/**
 * Content-addressed chunk store on the local filesystem: each chunk lives at
 * `<root>/<aa>/<sha256>`, written to a temporary file, fsynced and renamed, so a crash never leaves a
 * partial chunk under its address. A chunk whose bytes do not hash to its address is never stored.
 * Temporary files a crash left behind are removed when the store opens (and by `removeTemporaryFiles`
 * once older than a deadline); unreferenced chunks are removed by `collectGarbage`. A full disk is
 * reported as STORAGE_FULL, never as a malformed body, and leaves nothing half-written behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  type ReadStream,
  closeSync,
  createReadStream,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { EntenteError } from '../core/errors.ts';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const PREFIX_DIR = /^[0-9a-f]{2}$/;

/** True for the errors of a full disk or an exhausted disk quota. */
export function isDiskFullError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function storageFull(err: unknown): EntenteError {
  return new EntenteError('STORAGE_FULL', "the coordinator's disk is full: the chunk was not stored", {
    field: 'body',
    cause: err,
  });
}

export interface BlobStoreOptions {
  /** Writes bytes to a file descriptor (tests inject a full disk here). */
  readonly write?: (fd: number, buffer: Uint8Array, offset: number, length: number) => number;
}

/** A stored chunk, as the garbage collector sees it. */
export interface StoredChunk {
  readonly sha256: string;
  readonly bytes: number;
  /** Last time it was written or re-uploaded (ms since the epoch). */
  readonly touchedAt: number;
}

export class BlobStore {
  readonly root: string;
  /** Temporary files removed when the store was opened (left by a crash mid-upload). */
  readonly removedAtOpen: number;
  private readonly write: NonNullable<BlobStoreOptions['write']>;

  constructor(root: string, options: BlobStoreOptions = {}) {
    this.root = root;
    this.write = options.write ?? ((fd, buf, off, len) => writeSync(fd, buf, off, len));
    mkdirSync(join(root, 'tmp'), { recursive: true });
    // One coordinator owns the store: anything in tmp/ now is a crashed upload's remains.
    this.removedAtOpen = this.removeTemporaryFiles(0, Number.POSITIVE_INFINITY);
  }

  /** Removes temporary files last written more than `maxAgeMs` before `now`; returns how many. */
  removeTemporaryFiles(maxAgeMs: number, now: number): number {
    const dir = join(this.root, 'tmp');
    let removed = 0;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      try {
        if (now - statSync(path).mtimeMs < maxAgeMs) continue;
        rmSync(path, { force: true, recursive: true });
        removed++;
      } catch {
        // gone meanwhile
      }
    }
    return removed;
  }

  /** Temporary files present (uploads in progress or left behind). */
  countTemporaryFiles(): number {
    return readdirSync(join(this.root, 'tmp')).length;
  }

  /** Every stored chunk with its size and last write. */
  listChunks(): StoredChunk[] {
    const out: StoredChunk[] = [];
    for (const prefix of readdirSync(this.root)) {
      if (!PREFIX_DIR.test(prefix)) continue;
      for (const name of readdirSync(join(this.root, prefix))) {
        if (!SHA256_HEX.test(name) || name.slice(0, 2) !== prefix) continue;
        try {
          const st = statSync(join(this.root, prefix, name));
          out.push({ sha256: name, bytes: st.size, touchedAt: st.mtimeMs });
        } catch {
          // removed meanwhile
        }
      }
    }
    return out;
  }

  /** Marks a chunk as just written (a re-upload of a stored chunk: the garbage collector waits again). */
  touch(sha256: string, now: number): void {
    const t = new Date(now);
    try {
      utimesSync(this.pathOf(sha256), t, t);
    } catch {
      // not stored
    }
  }

  /** Removes one chunk (the garbage collector's decision). */
  remove(sha256: string): void {
    rmSync(this.pathOf(sha256), { force: true });
  }

  /**
   * Removes the chunks `isReferenced` does not claim and that were last written at least `graceMs`
   * before `now` (younger ones may belong to an upload whose result is still on its way).
   */
  collectGarbage(
    isReferenced: (sha256: string) => boolean,
    graceMs: number,
    now: number,
  ): { removed: string[]; bytes: number } {
    const removed: string[] = [];
    let bytes = 0;
    for (const c of this.listChunks()) {
      if (now - c.touchedAt < graceMs || isReferenced(c.sha256)) continue;
      this.remove(c.sha256);
      removed.push(c.sha256);
      bytes += c.bytes;
    }
    return { removed, bytes };
  }

  pathOf(sha256: string): string {
    if (!SHA256_HEX.test(sha256))
      throw new EntenteError('INVALID_ARGUMENT', 'sha256: not a SHA-256 hex digest', { field: 'sha256' });
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  has(sha256: string): boolean {
    try {
      return statSync(this.pathOf(sha256)).isFile();
    } catch {
      return false;
    }
  }

  sizeOf(sha256: string): number | undefined {
    try {
      return statSync(this.pathOf(sha256)).size;
    } catch {
      return undefined;
    }
  }

  read(sha256: string): Buffer {
    try {
      return readFileSync(this.pathOf(sha256));
    } catch {
      throw new EntenteError('NOT_FOUND', `blob ${sha256.slice(0, 12)}… is not stored`, { field: 'sha256' });
    }
  }

  /** A read stream of a stored chunk (for serving it without holding it in memory). */
  openReadStream(sha256: string): ReadStream {
    if (!this.has(sha256))
      throw new EntenteError('NOT_FOUND', `blob ${sha256.slice(0, 12)}… is not stored`, { field: 'sha256' });
    return createReadStream(this.pathOf(sha256), { highWaterMark: 256 * 1024 });
  }

  /**
   * Reads stored chunks in order, synchronously, through one reused buffer of `pieceBytes`: `fn` gets
   * views that are only valid during the call. Memory stays O(pieceBytes) whatever the blob size.
   */
  readPieces(sha256s: readonly string[], fn: (piece: Uint8Array) => void, pieceBytes = 1024 * 1024): void {
    const buf = Buffer.allocUnsafe(pieceBytes);
    for (const sha of sha256s) {
      let fd: number;
      try {
        fd = openSync(this.pathOf(sha), 'r');
      } catch {
        throw new EntenteError('NOT_FOUND', `blob ${sha.slice(0, 12)}… is not stored`, { field: 'sha256' });
      }
      try {
        for (;;) {
          const n = readSync(fd, buf, 0, pieceBytes, null);
          if (n === 0) break;
          fn(buf.subarray(0, n));
        }
      } finally {
        closeSync(fd);
      }
    }
  }

  /** Stores `bytes` under its own SHA-256 address (idempotent) and returns the address. */
  put(bytes: Uint8Array): string {
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (this.has(sha)) return sha;
    const tmp = join(this.root, 'tmp', randomBytes(12).toString('hex'));
    let ok = false;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        let off = 0;
        while (off < bytes.length) off += this.write(fd, bytes, off, bytes.length - off);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      mkdirSync(join(this.root, sha.slice(0, 2)), { recursive: true });
      renameSync(tmp, this.pathOf(sha));
      ok = true;
    } catch (err) {
      if (isDiskFullError(err)) throw storageFull(err);
      throw err;
    } finally {
      if (!ok) rmSync(tmp, { force: true });
    }
    return sha;
  }

  /**
   * Streams a body into the store under `expectedSha256`. Fails with BODY_TOO_LARGE as soon as more
   * than `maxBytes` arrive, MALFORMED_BODY when the stream ends early or errors, DIGEST_MISMATCH when
   * the bytes do not hash to the address, STORAGE_FULL when the disk is full. Nothing is stored on
   * failure.
   */
  async putStream(
    expectedSha256: string,
    body: Readable,
    maxBytes: number,
    expectedBytes?: number,
  ): Promise<void> {
    const target = this.pathOf(expectedSha256);
    const tmp = join(this.root, 'tmp', randomBytes(12).toString('hex'));
    const hash = createHash('sha256');
    let fd: number;
    try {
      fd = openSync(tmp, 'w', 0o600);
    } catch (err) {
      if (isDiskFullError(err)) throw storageFull(err);
      throw err;
    }
    let total = 0;
    let ok = false;
    try {
      for await (const piece of body) {
        const buf = piece as Buffer;
        total += buf.length;
        if (total > maxBytes) {
          throw new EntenteError('BODY_TOO_LARGE', `chunk body exceeds ${maxBytes} bytes`, { field: 'body' });
        }
        hash.update(buf);
        let off = 0;
        while (off < buf.length) off += this.write(fd, buf, off, buf.length - off);
      }
      if (expectedBytes !== undefined && total !== expectedBytes) {
        throw new EntenteError('MALFORMED_BODY', `chunk body has ${total} bytes, expected ${expectedBytes}`, {
          field: 'body',
        });
      }
      const got = hash.digest('hex');
      if (got !== expectedSha256) {
        throw new EntenteError('DIGEST_MISMATCH', 'chunk body does not hash to its address', {
          field: 'sha256',
        });
      }
      fsyncSync(fd);
      mkdirSync(join(this.root, expectedSha256.slice(0, 2)), { recursive: true });
      ok = true;
    } catch (err) {
      if (err instanceof EntenteError) throw err;
      // The disk filled up under the upload: the caller's body was fine.
      if (isDiskFullError(err)) throw storageFull(err);
      throw new EntenteError('MALFORMED_BODY', 'chunk body ended before it was complete', {
        field: 'body',
        cause: err,
      });
    } finally {
      closeSync(fd);
      if (ok) renameSync(tmp, target);
      else rmSync(tmp, { force: true });
    }
  }
}
