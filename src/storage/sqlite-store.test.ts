/** Tests for the store's blob references (which rows refer to a chunk) and its corruption checks. */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { SqliteStore } from './sqlite-store.ts';

const h = (c: string): string => c.repeat(64);
const ref = (...chunks: string[]) => ({
  sha256: chunks.length === 1 ? chunks[0]! : h('f'),
  bytes: chunks.length,
  chunks: chunks.map((s) => ({ sha256: s, bytes: 1 })),
});

describe('sqlite store: blob references and damage', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'entente-store-'));
    path = join(dir, 'coordinator.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('names every row that refers to a chunk, and only those', () => {
    const store = new SqliteStore(path);
    const task = (id: string, kind: string, participant: string, model?: unknown) =>
      store.insertTask({
        id,
        run_id: 'r',
        round: 1,
        kind,
        participant,
        status: 'open',
        task_json: JSON.stringify({ kind, ...(model ? { model } : {}) }),
        created_at: 1,
        completed_at: null,
      });
    task('t1', 'train', 'alpha', ref(h('a')));
    task('t2', 'secagg-train', 'beta', ref(h('b'), h('a')));
    task('t3', 'statistics', 'gamma');
    store.insertUpdate({
      task_id: 't1',
      run_id: 'r',
      round: 1,
      participant: 'alpha',
      blob_json: JSON.stringify(ref(h('c'))),
      num_examples: 1,
      train_loss: 0,
      received_at: 1,
    });
    store.insertRun({
      id: 'r',
      config_json: '{}',
      state_json: '{}',
      status: 'completed',
      model_json: JSON.stringify({ ref: ref(h('d')) }),
      strategy_json: JSON.stringify({ round: 1, scalars: {}, tensors: ref(h('e')) }),
      standardization_json: null,
      created_at: 1,
      finished_at: 2,
    });
    store.recordUpload(h('9'), 'gamma', 1);
    const kinds = (c: string) =>
      store.blobReferences(c).map((r) => `${r.kind}:${'participant' in r ? r.participant : ''}`);
    assert.deepEqual(kinds(h('a')), ['task-model:alpha', 'task-model:beta']);
    assert.deepEqual(kinds(h('b')), ['task-model:beta']);
    assert.deepEqual(kinds(h('c')), ['update:alpha']);
    assert.deepEqual(kinds(h('d')), ['run-model:']);
    assert.deepEqual(kinds(h('e')), ['strategy-state:']);
    assert.deepEqual(kinds(h('9')), ['upload:gamma']);
    assert.deepEqual(kinds(h('7')), []);
    assert.equal(store.listBlobReferences().length, 6);
    // Narrowed to one participant: its own rows, and the runs' models (which are no one's in particular).
    const of = (c: string, participant: string) =>
      store
        .blobReferences(c, { participant })
        .map((r) => `${r.kind}:${'participant' in r ? r.participant : ''}`);
    assert.deepEqual(of(h('a'), 'beta'), ['task-model:beta']);
    assert.deepEqual(of(h('c'), 'beta'), []);
    assert.deepEqual(of(h('9'), 'alpha'), []);
    assert.deepEqual(of(h('d'), 'alpha'), ['run-model:']);
    assert.deepEqual(store.quickCheck(), []);
    store.close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  it('a damaged page is found by quick_check; a file that is not a database is STORE_CORRUPT at open', () => {
    const store = new SqliteStore(path);
    for (let i = 0; i < 400; i++)
      store.recordEvent({
        at: i,
        kind: 'k',
        participant: null,
        run_id: null,
        round: null,
        code: null,
        message: 'x'.repeat(200),
      });
    const root = (
      store.db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'events'").get() as {
        rootpage: number;
      }
    ).rootpage;
    const pageSize = store.db.pragma('page_size', { simple: true }) as number;
    store.close();
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, (root - 1) * pageSize);
    closeSync(fd);
    const damaged = new SqliteStore(path, { readonly: true });
    assert.ok(damaged.quickCheck().length > 0);
    assert.throws(
      () => damaged.assertSound(),
      (err: unknown) =>
        err instanceof EntenteError && err.code === 'STORE_CORRUPT' && /quick_check/.test(err.message),
    );
    damaged.close();

    const fd2 = openSync(path, 'r+');
    writeSync(fd2, Buffer.alloc(100, 0x42), 0, 100, 0);
    closeSync(fd2);
    assert.throws(
      () => new SqliteStore(path),
      (err: unknown) =>
        err instanceof EntenteError && err.code === 'STORE_CORRUPT' && err.field === 'database',
    );
  });
});
