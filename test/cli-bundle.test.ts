/**
 * The `entente` command's bundle (scripts/build-cli.mjs, run by bin/entente.js): its fingerprint notices
 * every change that must rebuild it, the bundled CLI finds files next to its sources as tsx does, and a
 * failing call through the entry prints one `entente: CODE: message` line, never a stack trace.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { computeBuiltinTrainerDigest } from '../src/participant/index.ts';
import { computeFingerprint } from '../scripts/build-cli.mjs';

const BIN = fileURLToPath(new URL('../bin/entente.js', import.meta.url));

describe('CLI bundle', () => {
  it('rebuilds after an edit, a new or deleted source, or an older copy; not after a test file changes', () => {
    const root = mkdtempSync(join(tmpdir(), 'entente-bundle-'));
    try {
      mkdirSync(join(root, 'src', 'core'), { recursive: true });
      for (const f of ['package.json', 'tsconfig.json', 'package-lock.json'])
        writeFileSync(join(root, f), '{}');
      const source = join(root, 'src', 'core', 'a.ts');
      writeFileSync(source, 'export const a = 1;\n');
      const atime = new Date(1_700_000_000_000); // whole milliseconds: restorable exactly
      const mtime = new Date(1_700_000_000_000);
      utimesSync(source, atime, mtime);
      const built = computeFingerprint(root);
      assert.equal(computeFingerprint(root), built, 'nothing changed');

      writeFileSync(source, 'export const a = 2;\n'); // same size, new time
      utimesSync(source, atime, new Date(mtime.getTime() + 5_000));
      assert.notEqual(computeFingerprint(root), built, 'edited in place');
      utimesSync(source, atime, new Date(mtime.getTime() - 86_400_000));
      assert.notEqual(computeFingerprint(root), built, 'replaced by an older copy');
      utimesSync(source, atime, mtime);
      assert.equal(computeFingerprint(root), built, 'same size and time again');

      writeFileSync(join(root, 'src', 'core', 'a.test.ts'), 'test');
      assert.equal(computeFingerprint(root), built, 'a test file is not part of the bundle');
      const added = join(root, 'src', 'core', 'b.ts');
      writeFileSync(added, 'export {};\n');
      assert.notEqual(computeFingerprint(root), built, 'new source');
      rmSync(added);
      assert.equal(computeFingerprint(root), built);
      rmSync(source);
      assert.notEqual(computeFingerprint(root), built, 'deleted source');
      writeFileSync(source, 'export const a = 2;\n');
      utimesSync(source, atime, mtime);
      writeFileSync(join(root, 'package-lock.json'), '{"x":1}');
      assert.notEqual(computeFingerprint(root), built, 'other dependencies');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('finds the files next to its sources as under tsx (the trainer digest of src/models)', () => {
    const r = spawnSync(process.execPath, [BIN, 'participant', 'trainer-digest'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), computeBuiltinTrainerDigest());
  });

  it('prints one "entente: CODE: message" line for a failing call, without a stack trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'entente-bundle-'));
    try {
      const r = spawnSync(process.execPath, [BIN, 'status', '--workspace', join(dir, 'none')], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^entente: INVALID_CONFIG: [^\n]+\n$/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
