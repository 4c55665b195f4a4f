/** Tests for the on-disk workspace: layout, key file modes, and the identities it hands out. */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { readCertificateIdentity, verifyIdentityCertificate } from '../crypto/pki.ts';
import { createWorkspace, openWorkspace, type Workspace } from './workspace.ts';

const DAY_MS = 86_400_000;

describe('workspace', () => {
  const now = new Date();
  let dir: string;
  let ws: Workspace;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'entente-ws-'));
    ws = await createWorkspace(dir, {
      consortium: 'test',
      institutions: ['alpha', 'beta'],
      now,
      validityDays: 10,
    });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes every key with mode 0600', () => {
    const keys = [
      ['ca', 'ca.key'],
      ['coordinator', 'server.key'],
      ['operators', 'operator', 'client.key'],
      ...['alpha', 'beta'].flatMap((id) => [
        ['institutions', id, 'client.key'],
        ['institutions', id, 'identity.key'],
      ]),
    ];
    for (const parts of keys) {
      assert.equal(statSync(join(dir, ...parts)).mode & 0o777, 0o600, parts.join('/'));
    }
  });

  it('issues each institution a signing identity that verifies against the CA', async () => {
    for (const id of ['alpha', 'beta']) {
      const signing = ws.institutionSigningIdentity(id);
      assert.equal(signing.caPem, ws.institutionIdentity(id).caPem);
      const verdict = await verifyIdentityCertificate(signing.certPem, signing.caPem, {
        commonName: id,
        at: now,
      });
      assert.ok(verdict.ok, verdict.ok ? id : verdict.reason);
      const node = new X509Certificate(signing.certPem);
      assert.equal(node.publicKey.asymmetricKeyType, 'ed25519');
      assert.match(signing.keyPem, /^-----BEGIN PRIVATE KEY-----/);
      // Same validity as the mTLS client certificate.
      const { notBefore, notAfter } = readCertificateIdentity(signing.certPem);
      const client = readCertificateIdentity(ws.institutionIdentity(id).certPem);
      assert.equal(notBefore.getTime(), client.notBefore.getTime());
      assert.equal(notAfter.getTime(), client.notAfter.getTime());
      assert.equal(notAfter.getTime() - notBefore.getTime(), 10 * DAY_MS);
    }
    const other = await verifyIdentityCertificate(
      ws.institutionSigningIdentity('alpha').certPem,
      ws.institutionSigningIdentity('beta').caPem,
      { commonName: 'beta', at: now },
    );
    assert.equal(other.ok, false, "alpha's certificate is not beta's identity");
  });

  it('reopens the workspace with the same identities', () => {
    const reopened = openWorkspace(dir);
    assert.deepEqual(reopened.institutionSigningIdentity('beta'), ws.institutionSigningIdentity('beta'));
    assert.deepEqual(reopened.institutionIdentity('beta'), ws.institutionIdentity('beta'));
  });

  it('throws UNKNOWN_PARTICIPANT for an unknown institution and INVALID_CONFIG for a missing file', () => {
    for (const get of [ws.institutionIdentity, ws.institutionSigningIdentity]) {
      assert.throws(
        () => get('gamma'),
        (e: unknown) => e instanceof EntenteError && e.code === 'UNKNOWN_PARTICIPANT',
      );
    }
    assert.throws(
      () => ws.institutionSigningIdentity('operator'),
      (e: unknown) => e instanceof EntenteError && e.code === 'UNKNOWN_PARTICIPANT',
      'an operator is not an institution',
    );
    rmSync(join(dir, 'institutions', 'beta', 'identity.key'));
    assert.throws(
      () => ws.institutionSigningIdentity('beta'),
      (e: unknown) =>
        e instanceof EntenteError &&
        e.code === 'INVALID_CONFIG' &&
        e.message.includes(join('institutions', 'beta', 'identity.key')),
    );
    assert.ok(ws.institutionIdentity('beta').keyPem, 'the mTLS identity is unaffected');
  });

  it('refuses to overwrite an existing workspace', async () => {
    await assert.rejects(
      createWorkspace(dir, { consortium: 'test', institutions: ['alpha'], now }),
      (e: unknown) => e instanceof EntenteError && e.code === 'CONFLICT',
    );
  });
});
