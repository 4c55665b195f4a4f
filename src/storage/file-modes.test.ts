/** Tests for private directories and files: 0700 / 0600 whatever the umask and whatever existed before. */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensurePrivateDir, writeFileWithMode, writePrivateFile } from './file-modes.ts';

const mode = (p: string): number => statSync(p).mode & 0o777;

describe('file modes', () => {
  let dir: string;
  let umask: number;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'entente-modes-'));
    umask = process.umask(0); // the loosest umask: nothing is masked
  });
  after(() => {
    process.umask(umask);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a directory that existed with 0777 becomes 0700; a new one is 0700 under umask 0', () => {
    const old = join(dir, 'old');
    mkdirSync(old, { mode: 0o777 });
    chmodSync(old, 0o777);
    ensurePrivateDir(old);
    assert.equal(mode(old), 0o700);
    ensurePrivateDir(join(dir, 'new', 'deeper'));
    assert.equal(mode(join(dir, 'new', 'deeper')), 0o700);
  });

  it('a file that existed with 0666 (and a stale temporary) becomes 0600 with the new content', () => {
    const file = join(dir, 'key.pem');
    writeFileSync(file, 'old', { mode: 0o666 });
    chmodSync(file, 0o666);
    writeFileSync(`${file}.${process.pid}.tmp`, 'stale', { mode: 0o666 });
    writePrivateFile(file, 'new secret');
    assert.equal(mode(file), 0o600);
    assert.equal(readFileSync(file, 'utf8'), 'new secret');
    writeFileWithMode(file, 'public', 0o644);
    assert.equal(mode(file), 0o644);
  });
});
