/** The blob store's lifecycle: temporary uploads removed, unreferenced chunks collected, a full disk coded. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { BlobStore } from './blob-store.ts';

const dirs: string[] = [];
const fresh = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'entente-blobs-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const diskFull = (): never => {
  throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
};

describe('BlobStore', () => {
  it('removes temporary files left by a crash when it opens, and old ones on demand', () => {
    const root = fresh();
    new BlobStore(root);
    for (let i = 0; i < 20; i++) writeFileSync(join(root, 'tmp', `left-${i}`), 'partial');
    const reopened = new BlobStore(root);
    assert.equal(reopened.removedAtOpen, 20);
    assert.deepEqual(readdirSync(join(root, 'tmp')), []);
    writeFileSync(join(root, 'tmp', 'old'), 'x');
    writeFileSync(join(root, 'tmp', 'new'), 'x');
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(join(root, 'tmp', 'old'), old, old);
    assert.equal(reopened.removeTemporaryFiles(600_000, Date.now()), 1);
    assert.deepEqual(readdirSync(join(root, 'tmp')), ['new']);
  });

  it('collects unreferenced chunks older than the grace period, never referenced or young ones', () => {
    const root = fresh();
    const store = new BlobStore(root);
    const kept = store.put(new Uint8Array([1, 2, 3]));
    const garbage = store.put(new Uint8Array([4, 5, 6]));
    const young = store.put(new Uint8Array([7, 8, 9]));
    const now = Date.now();
    const old = new Date(now - 7_200_000);
    for (const s of [kept, garbage]) utimesSync(store.pathOf(s), old, old);
    const out = store.collectGarbage((s) => s === kept, 3_600_000, now);
    assert.deepEqual(out, { removed: [garbage], bytes: 3 });
    assert.ok(store.has(kept) && store.has(young) && !store.has(garbage));
    // A re-upload of an old chunk makes it young again.
    utimesSync(store.pathOf(young), old, old);
    store.touch(young, now);
    assert.deepEqual(store.collectGarbage((s) => s === kept, 3_600_000, now).removed, []);
  });

  it('reports a full disk as STORAGE_FULL and leaves no temporary file (stream and put)', async () => {
    const root = fresh();
    const store = new BlobStore(root, { write: diskFull });
    const body = new Uint8Array(1000).fill(7);
    await assert.rejects(
      store.putStream(sha(body), Readable.from([Buffer.from(body)]), 4096, body.length),
      (err: unknown) => err instanceof EntenteError && err.code === 'STORAGE_FULL',
    );
    assert.throws(
      () => store.put(body),
      (err: unknown) => err instanceof EntenteError && err.code === 'STORAGE_FULL',
    );
    assert.equal(store.countTemporaryFiles(), 0);
    assert.equal(store.has(sha(body)), false);
    // Once there is room again, the same chunk is stored.
    const healthy = new BlobStore(root);
    await healthy.putStream(sha(body), Readable.from([Buffer.from(body)]), 4096, body.length);
    assert.ok(existsSync(healthy.pathOf(sha(body))));
  });
});
