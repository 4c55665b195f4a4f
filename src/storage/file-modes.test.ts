/** Tests for private directories and files: 0700 / 0600 whatever the umask and whatever existed before. */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensurePrivateDir, writeFileWithMode, writePrivateFile } from './file-modes.ts';
import { writeSiteDir } from './site-dir.ts';
import { createWorkspace } from './workspace.ts';

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

  it('a workspace made in a directory that existed wide open: every directory 0700, every key 0600', async () => {
    const ws = join(dir, 'ws');
    mkdirSync(ws, { mode: 0o777 });
    chmodSync(ws, 0o777);
    await createWorkspace(ws, { consortium: 'c', institutions: ['alpha'], now: new Date() });
    for (const d of [
      '',
      'ca',
      'coordinator',
      'coordinator/state',
      'institutions',
      'institutions/alpha',
      'operators/operator',
    ])
      assert.equal(mode(join(ws, d)), 0o700, d || 'workspace');
    for (const f of [
      'ca/ca.key',
      'coordinator/server.key',
      'coordinator/log.key',
      'institutions/alpha/client.key',
      'institutions/alpha/identity.key',
    ])
      assert.equal(mode(join(ws, f)), 0o600, f);
  });

  it('a site directory rewritten over a wide-open folder and stale key files: 0700 and 0600', () => {
    const site = join(dir, 'site');
    mkdirSync(site, { mode: 0o777 });
    chmodSync(site, 0o777);
    for (const name of ['client.key', 'identity.key']) {
      writeFileSync(join(site, name), 'old', { mode: 0o666 });
      chmodSync(join(site, name), 0o666);
    }
    writeSiteDir(site, {
      site: {
        member: 'alpha',
        consortium: 'c',
        coordinator: 'https://127.0.0.1:1',
        roles: ['institution'],
        log: { origin: 'o', key: 'k' },
        notAfter: new Date(0).toISOString(),
      },
      caPem: 'ca',
      tls: { certPem: 'cert', keyPem: 'tls key' },
      identity: { certPem: 'cert', keyPem: 'identity key' },
    });
    assert.equal(mode(site), 0o700);
    assert.equal(mode(join(site, 'client.key')), 0o600);
    assert.equal(mode(join(site, 'identity.key')), 0o600);
    assert.equal(readFileSync(join(site, 'client.key'), 'utf8'), 'tls key');
  });
});
