/**
 * Content-addressed chunk store on the local filesystem: each chunk lives at
 * `<root>/<aa>/<sha256>`, written to a temporary file, fsynced and renamed, so a crash never leaves a
 * partial chunk under its address. A chunk whose bytes do not hash to its address is never stored.
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
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { EntenteError } from '../core/errors.ts';

const SHA256_HEX = /^[0-9a-f]{64}$/;

export class BlobStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
    mkdirSync(join(root, 'tmp'), { recursive: true });
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
   * the bytes do not hash to the address. Nothing is stored on failure.
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
