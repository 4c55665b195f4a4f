/** Tests for the object-level blob access rule: who may read a chunk, from the rows that refer to it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BlobReference, StoredBlobRef } from '../storage/index.ts';
import { blobNotAvailable, mayReadBlob, mayReadFinalModel } from './blob-access.ts';

const blob = (sha: string): StoredBlobRef => ({
  sha256: sha,
  bytes: 10,
  chunks: [{ sha256: sha, bytes: 10 }],
});
const M = 'a'.repeat(64);
const alpha = { id: 'alpha', roles: ['institution'] as const };
const beta = { id: 'beta', roles: ['institution'] as const };
const operator = { id: 'operator', roles: ['coordinator-operator'] as const };
const auditor = { id: 'audit', roles: ['auditor'] as const };
const governed = (released?: string) => ({ governed: true, releasedModelOf: () => released });
const ungoverned = { governed: false, releasedModelOf: () => undefined };

describe('blob access', () => {
  it('a task model is readable by the participant the task was given to, and no one else', () => {
    const refs: BlobReference[] = [
      {
        kind: 'task-model',
        task: 'r.r1.train.alpha',
        runId: 'r',
        round: 1,
        participant: 'alpha',
        blob: blob(M),
      },
    ];
    assert.equal(mayReadBlob(alpha, refs, governed()), true);
    assert.equal(mayReadBlob(beta, refs, governed()), false);
    assert.equal(mayReadBlob(operator, refs, ungoverned), false);
  });

  it("an update or upload is its uploader's only", () => {
    for (const ref of [
      { kind: 'update', task: 't', runId: 'r', round: 1, participant: 'alpha', blob: blob(M) },
      { kind: 'upload', participant: 'alpha', chunk: M },
    ] as BlobReference[]) {
      assert.equal(mayReadBlob(alpha, [ref], governed(M)), true);
      assert.equal(mayReadBlob(beta, [ref], governed(M)), false);
      assert.equal(mayReadBlob(operator, [ref], ungoverned), false);
    }
  });

  it('a final model under a policy: nobody before its release, members after, only the released digest', () => {
    const refs: BlobReference[] = [{ kind: 'run-model', runId: 'r', status: 'completed', blob: blob(M) }];
    assert.equal(mayReadBlob(alpha, refs, governed()), false);
    assert.equal(mayReadBlob(operator, refs, governed()), false);
    assert.equal(mayReadBlob(alpha, refs, governed('b'.repeat(64))), false);
    assert.equal(mayReadBlob(alpha, refs, governed(M)), true);
    assert.equal(mayReadBlob(operator, refs, governed(M)), true);
    assert.equal(mayReadBlob(auditor, refs, governed(M)), false);
  });

  it('without a policy a final model is the operator’s; a running model and strategy state are nobody’s', () => {
    const final: BlobReference[] = [{ kind: 'run-model', runId: 'r', status: 'completed', blob: blob(M) }];
    assert.equal(mayReadBlob(operator, final, ungoverned), true);
    assert.equal(mayReadBlob(alpha, final, ungoverned), false);
    const running: BlobReference[] = [
      { kind: 'run-model', runId: 'r', status: 'running', blob: blob(M) },
      { kind: 'strategy-state', runId: 'r', blob: blob(M) },
    ];
    for (const who of [alpha, operator]) {
      assert.equal(mayReadBlob(who, running, ungoverned), false);
      assert.equal(mayReadBlob(who, running, governed(M)), false);
    }
    assert.equal(mayReadFinalModel(operator, 'r', M, ungoverned), true);
  });

  it('a chunk nothing refers to is nobody’s, and the refusal is the unknown-chunk answer', () => {
    assert.equal(mayReadBlob(alpha, [], governed(M)), false);
    assert.equal(mayReadBlob(operator, [], ungoverned), false);
    const err = blobNotAvailable(M);
    assert.equal(err.code, 'NOT_FOUND');
    assert.equal(err.field, 'sha256');
    assert.equal(blobNotAvailable(M).message, err.message);
  });
});
