/**
 * A site's serving directory (serving-dir.ts): records survive a reopen, an unreadable record stops the
 * site, bytes that are not the digest are never stored, serving.json has the contract's fields and
 * mode 0600, and without a directory nothing is written but trips are still remembered.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { openServingDir } from './serving-dir.ts';

const root = mkdtempSync(join(tmpdir(), 'entente-serving-dir-'));
after(() => rmSync(root, { recursive: true, force: true }));
const D = 'd'.repeat(64);
const trip = {
  stage: 'canary',
  at: '2026-01-01T00:00:00.000Z',
  candidateAccuracy: 0.4,
  productionAccuracy: 0.6,
  reason: 'r',
};

describe('a site’s serving directory', () => {
  it('keeps trips and reports across a reopen; serving.json has the contract’s fields', () => {
    const dir = join(root, 'a');
    const s = openServingDir(dir);
    s.recordTrip(D, trip);
    assert.deepEqual(openServingDir(dir).unreported(), [{ digest: D, stage: 'canary' }]);
    s.markReported(D, '2026-01-01T00:01:00.000Z');
    const again = openServingDir(dir);
    assert.deepEqual([...again.tripped()], [D]);
    assert.deepEqual(again.unreported(), []);
    assert.deepEqual(again.record(D)?.tripped, trip);
    s.writeServing(
      { alias: 'production', version: 'b'.repeat(64), rollout: D, stage: 'canary', reason: 'why' },
      '2026-01-01T00:02:00.000Z',
    );
    const file = join(dir, 'serving.json');
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), {
      format: 'entente-serving/1',
      alias: 'production',
      version: 'b'.repeat(64),
      rollout: D,
      stage: 'canary',
      reason: 'why',
      updatedAt: '2026-01-01T00:02:00.000Z',
    });
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(again.servingAlias(), 'production');
    assert.deepEqual(readdirSync(dir).sort(), ['models', 'rollouts', 'serving.json']);
  });

  it('an unreadable record stops the site, naming it', () => {
    const dir = join(root, 'b');
    openServingDir(dir);
    writeFileSync(join(dir, 'rollouts', `${D}.json`), '{"tripped": ');
    assert.throws(
      () => openServingDir(dir),
      (e: unknown) =>
        e instanceof EntenteError &&
        e.code === 'INVALID_DATA' &&
        e.field === `servingDir.rollouts.${D.slice(0, 12)}`,
    );
  });

  it('stores a model only when its bytes are the digest, and reads back only matching bytes', () => {
    const dir = join(root, 'c');
    const s = openServingDir(dir);
    const bytes = new Uint8Array([1, 2, 3]);
    const sha = sha256Hex(bytes);
    const meta = {
      modelSpec: { kind: 'logistic', inputDim: 2 },
      standardization: null,
      dataSchemaDigest: null,
    };
    assert.throws(() => s.storeModel('e'.repeat(64), bytes, meta), /model.sha256/);
    assert.equal(s.readModel(sha), undefined);
    s.storeModel(sha, bytes, meta);
    assert.deepEqual([...s.readModel(sha)!], [1, 2, 3]);
    writeFileSync(join(dir, 'models', `${sha}.safetensors`), 'tampered');
    assert.equal(s.readModel(sha), undefined);
  });

  it('without a directory: trips remembered in memory, nothing written', () => {
    const s = openServingDir(undefined);
    s.recordTrip(D, trip);
    assert.deepEqual([...s.tripped()], [D]);
    s.writeServing({ alias: 'production', version: null, rollout: null, stage: null, reason: 'x' }, 'now');
    assert.equal(s.servingAlias(), undefined);
  });
});
