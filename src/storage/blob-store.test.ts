/** Tests for the chunk store's integrity at rest: every read re-hashes, a damaged chunk is never returned. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { BlobStore } from './blob-store.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof EntenteError, String(err));
    return err.code;
  }
  return 'none';
};

describe('blob store integrity', () => {
  let dir: string;
  let corrupt: string[];
  let store: BlobStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'entente-blobs-'));
    corrupt = [];
    store = new BlobStore(join(dir, 'blobs'), { onCorrupt: (s) => corrupt.push(s) });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a flipped byte on disk is refused with STORE_CORRUPT by read, verify and readPieces, and reported', () => {
    const bytes = new Uint8Array(3000).map((_, i) => i % 251);
    const address = store.put(bytes);
    assert.deepEqual(new Uint8Array(store.read(address)), bytes);
    const path = store.pathOf(address);
    const onDisk = readFileSync(path);
    onDisk[1234]! ^= 0x01;
    writeFileSync(path, onDisk);
    assert.equal(
      code(() => store.read(address)),
      'STORE_CORRUPT',
    );
    assert.equal(
      code(() => store.verify(address)),
      'STORE_CORRUPT',
    );
    assert.equal(
      code(() => store.readPieces([address], () => {}, 512)),
      'STORE_CORRUPT',
    );
    assert.deepEqual(corrupt, [address, address, address]);
    assert.equal(
      code(() => store.read('f'.repeat(64))),
      'NOT_FOUND',
    );
  });

  it('a stored address accepts only its own bytes again, and a verified re-upload repairs a damaged copy', async () => {
    const bytes = Buffer.from('the chunk');
    const address = store.put(bytes);
    await assert.rejects(
      store.putStream(address, Readable.from([Buffer.from('not the chunk')]), 1024),
      (err: unknown) => err instanceof EntenteError && err.code === 'DIGEST_MISMATCH',
    );
    writeFileSync(store.pathOf(address), 'tHe chunk');
    assert.equal(
      code(() => store.read(address)),
      'STORE_CORRUPT',
    );
    await store.putStream(address, Readable.from([bytes]), 1024, bytes.length);
    assert.equal(sha(store.read(address)), address);
  });

  it('lists every chunk with its size, and its directories are 0700', () => {
    const a = store.put(Buffer.from('a'));
    const b = store.put(Buffer.from('bb'));
    assert.deepEqual(
      store.list(),
      [
        { sha256: a, bytes: 1 },
        { sha256: b, bytes: 2 },
      ].sort((x, y) => (x.sha256 < y.sha256 ? -1 : 1)),
    );
    assert.equal(statSync(join(dir, 'blobs')).mode & 0o777, 0o700);
  });
});
