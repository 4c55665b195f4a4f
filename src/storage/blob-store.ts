/**
 * Content-addressed chunk store on the local filesystem: each chunk lives at
 * `<root>/<aa>/<sha256>`, written to a temporary file, fsynced and renamed, so a crash never leaves a
 * partial chunk under its address. A chunk whose bytes do not hash to its address is never stored, and
 * every read hashes the bytes again: a chunk changed on disk (bit rot, a careless edit, an attacker
 * with file access) is refused with STORE_CORRUPT and reported to `onCorrupt`, never returned as good.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { EntenteError } from '../core/errors.ts';

const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface BlobStoreOptions {
  /** Called once per refused read of a chunk whose bytes no longer hash to its address. */
  readonly onCorrupt?: (sha256: string, path: string) => void;
}

export class BlobStore {
  readonly root: string;
  private readonly onCorrupt: ((sha256: string, path: string) => void) | undefined;

  constructor(root: string, options: BlobStoreOptions = {}) {
    this.root = root;
    this.onCorrupt = options.onCorrupt;
    for (const d of [root, join(root, 'tmp')]) {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      chmodSync(d, 0o700);
    }
  }

  private notStored(sha256: string): EntenteError {
    return new EntenteError('NOT_FOUND', `blob ${sha256.slice(0, 12)}… is not stored`, { field: 'sha256' });
  }

  private corrupt(sha256: string): EntenteError {
    this.onCorrupt?.(sha256, this.pathOf(sha256));
    return new EntenteError(
      'STORE_CORRUPT',
      `stored chunk ${sha256.slice(0, 12)}… no longer hashes to its address (not served)`,
      { field: 'sha256' },
    );
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

  /**
   * A stored chunk's bytes (at most one chunk, ≤ 4 MiB), checked against its address before they are
   * returned: NOT_FOUND when absent, STORE_CORRUPT when they no longer hash to it.
   */
  read(sha256: string): Buffer {
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.pathOf(sha256));
    } catch {
      throw this.notStored(sha256);
    }
    if (createHash('sha256').update(bytes).digest('hex') !== sha256) throw this.corrupt(sha256);
    return bytes;
  }

  /** Hashes a stored chunk without keeping it: NOT_FOUND when absent, STORE_CORRUPT when it does not match. */
  verify(sha256: string): void {
    this.readPieces([sha256], () => {});
  }

  /**
   * Reads stored chunks in order, synchronously, through one reused buffer of `pieceBytes`: `fn` gets
   * views that are only valid during the call. Memory stays O(pieceBytes) whatever the blob size. Each
   * chunk is hashed as it is read and STORE_CORRUPT is thrown at its end when it does not match its
   * address, so a caller must treat what it folded so far as lost when this throws (nothing here is
   * served to a peer: serving paths use `read`, which checks before returning anything).
   */
  readPieces(sha256s: readonly string[], fn: (piece: Uint8Array) => void, pieceBytes = 1024 * 1024): void {
    const buf = Buffer.allocUnsafe(pieceBytes);
    for (const sha of sha256s) {
      let fd: number;
      try {
        fd = openSync(this.pathOf(sha), 'r');
      } catch {
        throw this.notStored(sha);
      }
      const hash = createHash('sha256');
      try {
        for (;;) {
          const n = readSync(fd, buf, 0, pieceBytes, null);
          if (n === 0) break;
          hash.update(buf.subarray(0, n));
          fn(buf.subarray(0, n));
        }
      } finally {
        closeSync(fd);
      }
      if (hash.digest('hex') !== sha) throw this.corrupt(sha);
    }
  }

  /** Every chunk address under the root (for `entente doctor`), with its file size. */
  list(): { sha256: string; bytes: number }[] {
    const out: { sha256: string; bytes: number }[] = [];
    for (const dir of readdirSync(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(dir)) continue;
      for (const name of readdirSync(join(this.root, dir))) {
        const st = statSync(join(this.root, dir, name));
        if (st.isFile()) out.push({ sha256: name, bytes: st.size });
      }
    }
    return out.sort((a, b) => (a.sha256 < b.sha256 ? -1 : a.sha256 > b.sha256 ? 1 : 0));
  }

  /** Stores `bytes` under its own SHA-256 address (idempotent) and returns the address. */
  put(bytes: Uint8Array): string {
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (this.has(sha)) return sha;
    const tmp = join(this.root, 'tmp', randomBytes(12).toString('hex'));
    const fd = openSync(tmp, 'w', 0o600);
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    mkdirSync(join(this.root, sha.slice(0, 2)), { recursive: true });
    renameSync(tmp, this.pathOf(sha));
    return sha;
  }

  /**
   * Streams a body into the store under `expectedSha256`. Fails with BODY_TOO_LARGE as soon as more
   * than `maxBytes` arrive, MALFORMED_BODY when the stream ends early or errors, DIGEST_MISMATCH when
   * the bytes do not hash to the address. Nothing is stored on failure. A chunk already stored is
   * received and checked all the same (so the answer never tells whether the address was known) and
   * replaced by the verified bytes (which repairs a copy damaged on disk).
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
    const fd = openSync(tmp, 'w', 0o600);
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
        while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
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
      ok = true;
    } catch (err) {
      if (err instanceof EntenteError) throw err;
      throw new EntenteError('MALFORMED_BODY', 'chunk body ended before it was complete', {
        field: 'body',
        cause: err,
      });
    } finally {
      closeSync(fd);
      if (ok) {
        mkdirSync(join(this.root, expectedSha256.slice(0, 2)), { recursive: true });
        renameSync(tmp, target);
      } else {
        rmSync(tmp, { force: true });
      }
    }
  }
}
