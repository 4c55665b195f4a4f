/**
 * Tests for the local CA: certificate contents, real TLS 1.3 mutual-auth handshakes on loopback, and
 * Ed25519 identity certificates (issue, verify, refuse).
 */
import 'reflect-metadata'; // before @peculiar/x509, as in pki.ts
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign, verify, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { before, describe, it } from 'node:test';
import * as tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  IDENTITY_ORGANIZATIONAL_UNIT,
  issueCertificate,
  issueIdentityCertificate,
  readCertificateIdentity,
  verifyIdentityCertificate,
} from './pki.ts';

const DAY_MS = 86_400_000;
const now = new Date();
const weekAgo = new Date(now.getTime() - 7 * DAY_MS);

interface HandshakeResult {
  /** CN the server saw on an authorised client certificate, if the handshake completed. When the
   * server refuses a client certificate under TLS 1.3 it just drops the connection (the client has
   * already sent Finished), so `serverError` is a reset and the client sees an empty stream. */
  serverSawCommonName: string | undefined;
  serverError: (Error & { code?: string }) | undefined;
  clientError: (Error & { code?: string }) | undefined;
  clientReceived: string;
}

/** One TLS 1.3 connection over loopback; the server requires a client certificate from `ca`. */
async function runHandshake(options: {
  server: CertificateAndKey;
  client: CertificateAndKey;
  ca: CertificateAndKey;
}): Promise<HandshakeResult> {
  const result: HandshakeResult = {
    serverSawCommonName: undefined,
    serverError: undefined,
    clientError: undefined,
    clientReceived: '',
  };
  const server = tls.createServer(
    {
      key: options.server.keyPem,
      cert: options.server.certPem,
      ca: [options.ca.certPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    },
    (socket) => {
      result.serverSawCommonName = String(socket.getPeerCertificate().subject.CN);
      socket.end(`hello ${result.serverSawCommonName}`);
    },
  );
  server.on('tlsClientError', (error) => {
    result.serverError = error;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      key: options.client.keyPem,
      cert: options.client.certPem,
      ca: [options.ca.certPem],
      minVersion: 'TLSv1.3',
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      result.clientReceived += chunk;
    });
    socket.on('error', (error) => {
      result.clientError = error;
    });
    socket.on('close', () => resolve());
  });
  await new Promise((resolve) => server.close(resolve));
  return result;
}

describe('pki', () => {
  let caA: CertificateAndKey;
  let caB: CertificateAndKey;
  let server: CertificateAndKey;
  let client: CertificateAndKey;

  before(async () => {
    caA = await createCertificateAuthority({
      commonName: 'Entente CA A',
      notBefore: weekAgo,
      validityDays: 30,
    });
    caB = await createCertificateAuthority({
      commonName: 'Entente CA B',
      notBefore: weekAgo,
      validityDays: 30,
    });
    server = await issueCertificate(caA, {
      commonName: 'coordinator',
      role: 'server',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
      notBefore: weekAgo,
      validityDays: 14,
    });
    client = await issueCertificate(caA, {
      commonName: 'hospital-a',
      role: 'client',
      notBefore: weekAgo,
      validityDays: 14,
    });
  });

  it('creates a CA with the RFC 5280 profile', () => {
    const cert = new x509.X509Certificate(caA.certPem);
    const constraints = cert.getExtension(x509.BasicConstraintsExtension)!;
    assert.equal(constraints.ca, true);
    assert.equal(constraints.critical, true);
    assert.equal(constraints.pathLength, 0);
    const usages = cert.getExtension(x509.KeyUsagesExtension)!;
    assert.equal(usages.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.equal(usages.critical, true);
    assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
    const node = new X509Certificate(caA.certPem);
    assert.equal(node.ca, true);
    assert.equal(node.checkIssued(node), true);
    assert.equal(node.verify(node.publicKey), true);
    const algorithm = cert.signatureAlgorithm as unknown as { name: string; hash: { name: string } };
    assert.deepEqual([algorithm.name, algorithm.hash.name], ['ECDSA', 'SHA-256']);
  });

  it('issues end-entity certificates signed by the CA, with usages, SAN and key identifiers', () => {
    const ca = new X509Certificate(caA.certPem);
    const caKeyId = new x509.X509Certificate(caA.certPem).getExtension(
      x509.SubjectKeyIdentifierExtension,
    )!.keyId;
    for (const [issued, purpose] of [
      [server, x509.ExtendedKeyUsage.serverAuth],
      [client, x509.ExtendedKeyUsage.clientAuth],
    ] as const) {
      const node = new X509Certificate(issued.certPem);
      assert.equal(node.ca, false);
      assert.equal(node.checkIssued(ca), true);
      assert.equal(node.verify(ca.publicKey), true);
      assert.deepEqual(node.keyUsage, [purpose]);
      assert.equal(node.checkPrivateKey(createPrivateKey(issued.keyPem)), true);
      assert.equal(createPrivateKey(issued.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
      assert.match(issued.keyPem, /^-----BEGIN PRIVATE KEY-----/);
      const cert = new x509.X509Certificate(issued.certPem);
      assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.critical, true);
      assert.equal(cert.getExtension(x509.KeyUsagesExtension)?.usages, x509.KeyUsageFlags.digitalSignature);
      assert.equal(cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, caKeyId);
      assert.match(cert.serialNumber, /^[0-7][0-9a-f]{31}$/, '16-byte positive serial');
    }
    assert.equal(
      new X509Certificate(server.certPem).subjectAltName,
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    assert.notEqual(
      new X509Certificate(server.certPem).serialNumber,
      new X509Certificate(client.certPem).serialNumber,
    );
  });

  it('reads the identity of a certificate', () => {
    const id = readCertificateIdentity(client.certPem);
    assert.equal(id.commonName, 'hospital-a');
    assert.equal(id.notBefore.getTime(), Math.floor(weekAgo.getTime() / 1000) * 1000);
    assert.equal(id.notAfter.getTime() - id.notBefore.getTime(), 14 * DAY_MS);
    const node = new X509Certificate(client.certPem);
    assert.equal(id.fingerprintSha256, node.fingerprint256.replaceAll(':', '').toLowerCase());
  });

  it('keeps a commonName with DN syntax characters as one attribute', async () => {
    const issued = await issueCertificate(caA, {
      commonName: 'lab, O=evil+CN=admin',
      role: 'client',
      notBefore: now,
      validityDays: 1,
    });
    assert.equal(readCertificateIdentity(issued.certPem).commonName, 'lab, O=evil+CN=admin');
    assert.deepEqual(new x509.X509Certificate(issued.certPem).subjectName.getField('O'), []);
  });

  it('rejects invalid arguments with INVALID_ARGUMENT naming the field', async () => {
    const base = {
      commonName: 'p',
      role: 'server' as const,
      dnsNames: ['localhost'],
      notBefore: now,
      validityDays: 1,
    };
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['commonName', () => createCertificateAuthority({ commonName: '', notBefore: now, validityDays: 1 })],
      [
        'commonName',
        () => createCertificateAuthority({ commonName: 'a\nb', notBefore: now, validityDays: 1 }),
      ],
      [
        'validityDays',
        () => createCertificateAuthority({ commonName: 'ca', notBefore: now, validityDays: 0 }),
      ],
      [
        'validityDays',
        () => createCertificateAuthority({ commonName: 'ca', notBefore: now, validityDays: 1.5 }),
      ],
      [
        'notBefore',
        () =>
          createCertificateAuthority({ commonName: 'ca', notBefore: new Date(Number.NaN), validityDays: 1 }),
      ],
      ['dnsNames', () => issueCertificate(caA, { ...base, dnsNames: [] })],
      ['dnsNames', () => issueCertificate(caA, { ...base, dnsNames: ['a_b.example'] })],
      ['ipAddresses', () => issueCertificate(caA, { ...base, ipAddresses: ['1.2.3'] })],
      ['ipAddresses', () => issueCertificate(caA, { ...base, ipAddresses: ['256.0.0.1'] })],
      ['ipAddresses', () => issueCertificate(caA, { ...base, ipAddresses: ['1::2::3'] })],
      ['ca.keyPem', () => issueCertificate({ certPem: caA.certPem, keyPem: caB.keyPem }, base)],
      ['ca.keyPem', () => issueCertificate({ certPem: caA.certPem, keyPem: 'nope' }, base)],
      ['ca.certPem', () => issueCertificate(server, base)],
      ['ca.certPem', () => issueCertificate({ certPem: 'garbage', keyPem: caA.keyPem }, base)],
      [
        'certPem',
        async () => readCertificateIdentity('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----'),
      ],
    ];
    for (const [field, run] of cases) {
      await assert.rejects(run, (e: unknown) => {
        assert.ok(e instanceof EntenteError, `${field}: ${String(e)}`);
        assert.equal(e.code, 'INVALID_ARGUMENT');
        assert.equal(e.field, field);
        return true;
      });
    }
  });

  it('completes a TLS 1.3 handshake with client certificates; the server sees the CN', async () => {
    const r = await runHandshake({ server, client, ca: caA });
    assert.equal(r.serverError, undefined);
    assert.equal(r.clientError, undefined);
    assert.equal(r.serverSawCommonName, 'hospital-a');
    assert.equal(r.clientReceived, 'hello hospital-a');
  });

  it('rejects a client certificate issued by a different CA', async () => {
    const stranger = await issueCertificate(caB, {
      commonName: 'hospital-a',
      role: 'client',
      notBefore: weekAgo,
      validityDays: 14,
    });
    const r = await runHandshake({ server, client: stranger, ca: caA });
    assert.equal(r.serverSawCommonName, undefined);
    assert.equal(r.clientReceived, '');
    assert.ok(r.serverError, 'the server aborts the handshake');
  });

  it('rejects a server certificate without an IP SAN for 127.0.0.1', async () => {
    const dnsOnly = await issueCertificate(caA, {
      commonName: 'coordinator',
      role: 'server',
      dnsNames: ['localhost'],
      notBefore: weekAgo,
      validityDays: 14,
    });
    const r = await runHandshake({ server: dnsOnly, client, ca: caA });
    assert.equal(r.clientError?.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    assert.equal(r.clientReceived, '');
  });

  it('rejects expired certificates on both sides', async () => {
    const expired = { notBefore: new Date(now.getTime() - 2 * DAY_MS), validityDays: 1 };
    const oldClient = await issueCertificate(caA, { commonName: 'hospital-a', role: 'client', ...expired });
    const r1 = await runHandshake({ server, client: oldClient, ca: caA });
    assert.equal(r1.serverSawCommonName, undefined);
    assert.equal(r1.clientReceived, '');
    assert.ok(r1.serverError, 'the server aborts the handshake');

    const oldServer = await issueCertificate(caA, {
      commonName: 'coordinator',
      role: 'server',
      ipAddresses: ['127.0.0.1'],
      ...expired,
    });
    const r2 = await runHandshake({ server: oldServer, client, ca: caA });
    assert.equal(r2.clientError?.code, 'CERT_HAS_EXPIRED');
    assert.equal(r2.serverSawCommonName, undefined);
  });
});

/** Re-encodes DER bytes as a PEM certificate. */
function toPem(der: Uint8Array): string {
  return x509.PemConverter.encode(new Uint8Array(der).buffer, 'CERTIFICATE');
}

function derOf(certPem: string): Uint8Array {
  return new Uint8Array(x509.PemConverter.decodeFirst(certPem));
}

describe('identity certificates', () => {
  let caA: CertificateAndKey;
  let caB: CertificateAndKey;
  let caImpostor: CertificateAndKey; // same subject name as caA, different key
  let identity: CertificateAndKey;
  const expected = { commonName: 'hospital-a', at: now };

  before(async () => {
    const caParams = { notBefore: weekAgo, validityDays: 365 };
    caA = await createCertificateAuthority({ commonName: 'Entente CA A', ...caParams });
    caB = await createCertificateAuthority({ commonName: 'Entente CA B', ...caParams });
    caImpostor = await createCertificateAuthority({ commonName: 'Entente CA A', ...caParams });
    identity = await issueIdentityCertificate(caA, {
      commonName: 'hospital-a',
      notBefore: weekAgo,
      validityDays: 30,
    });
  });

  it('issues an Ed25519 certificate with OU entente-identity, digitalSignature only and no EKU', () => {
    const cert = new x509.X509Certificate(identity.certPem);
    assert.deepEqual(cert.subjectName.getField('CN'), ['hospital-a']);
    assert.deepEqual(cert.subjectName.getField('OU'), [IDENTITY_ORGANIZATIONAL_UNIT]);
    const usages = cert.getExtension(x509.KeyUsagesExtension)!;
    assert.equal(usages.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(usages.critical, true);
    assert.equal(cert.getExtension(x509.ExtendedKeyUsageExtension), null);
    assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    const node = new X509Certificate(identity.certPem);
    assert.equal(node.publicKey.asymmetricKeyType, 'ed25519');
    assert.equal(node.checkIssued(new X509Certificate(caA.certPem)), true);
    assert.equal(node.verify(new X509Certificate(caA.certPem).publicKey), true);
    assert.equal(node.checkPrivateKey(createPrivateKey(identity.keyPem)), true);
    assert.match(identity.keyPem, /^-----BEGIN PRIVATE KEY-----/);
  });

  it('verifies: the raw key is the Ed25519 key of keyPem, and signatures made with it verify', async () => {
    const verdict = await verifyIdentityCertificate(identity.certPem, caA.certPem, expected);
    assert.ok(verdict.ok, verdict.ok ? '' : verdict.reason);
    assert.equal(verdict.publicKey.length, 32);
    const jwk = createPublicKey(identity.keyPem).export({ format: 'jwk' });
    assert.equal(Buffer.from(verdict.publicKey).toString('base64url'), jwk.x);
    assert.equal(verdict.fingerprintSha256, readCertificateIdentity(identity.certPem).fingerprintSha256);

    const message = Buffer.from('round 7 key list');
    const signature = sign(null, message, identity.keyPem);
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(verdict.publicKey).toString('base64url') },
      format: 'jwk',
    });
    assert.equal(verify(null, message, key, signature), true);
    assert.equal(verify(null, Buffer.from('round 8 key list'), key, signature), false);
  });

  it('checks the validity dates inclusively, on every call despite the cache', async () => {
    const { notBefore, notAfter } = readCertificateIdentity(identity.certPem);
    const at = (time: number) =>
      verifyIdentityCertificate(identity.certPem, caA.certPem, {
        commonName: 'hospital-a',
        at: new Date(time),
      });
    assert.equal((await at(notBefore.getTime())).ok, true);
    assert.equal((await at(notAfter.getTime())).ok, true);
    const early = await at(notBefore.getTime() - 1);
    assert.ok(!early.ok && /^certPem: not valid before/.test(early.reason));
    const late = await at(notAfter.getTime() + 1);
    assert.ok(!late.ok && /^certPem: expired/.test(late.reason));
    assert.equal((await at(now.getTime())).ok, true, 'still ok after refusals');
  });

  it('hands out a fresh copy of the public key', async () => {
    const first = await verifyIdentityCertificate(identity.certPem, caA.certPem, expected);
    assert.ok(first.ok);
    const copy = first.publicKey.slice();
    first.publicKey.fill(0);
    const second = await verifyIdentityCertificate(identity.certPem, caA.certPem, expected);
    assert.ok(second.ok);
    assert.deepEqual(second.publicKey, copy);
  });

  it('refuses, naming what failed', async () => {
    const expiredCert = await issueIdentityCertificate(caA, {
      commonName: 'hospital-a',
      notBefore: new Date(now.getTime() - 3 * DAY_MS),
      validityDays: 1,
    });
    const futureCert = await issueIdentityCertificate(caA, {
      commonName: 'hospital-a',
      notBefore: new Date(now.getTime() + DAY_MS),
      validityDays: 1,
    });
    const otherCa = await issueIdentityCertificate(caB, {
      commonName: 'hospital-a',
      notBefore: weekAgo,
      validityDays: 30,
    });
    const impostor = await issueIdentityCertificate(caImpostor, {
      commonName: 'hospital-a',
      notBefore: weekAgo,
      validityDays: 30,
    });
    const tlsClient = await issueCertificate(caA, {
      commonName: 'hospital-a',
      role: 'client',
      notBefore: weekAgo,
      validityDays: 30,
    });
    const der = derOf(identity.certPem);
    const rawKey = createPublicKey(identity.keyPem).export({ format: 'jwk' }).x!;
    const keyOffset = Buffer.from(der).indexOf(Buffer.from(rawKey, 'base64url'));
    assert.ok(keyOffset > 0, 'the raw key is inside the certificate');
    const tampered = der.slice();
    tampered[keyOffset] = tampered[keyOffset]! ^ 0x01;
    const cases: Array<[string, string, string, RegExp]> = [
      ['other CA', otherCa.certPem, caA.certPem, /^issuer:/],
      ['same CA name, other key', impostor.certPem, caA.certPem, /^signature: not signed by the CA/],
      ['tampered key bytes', toPem(tampered), caA.certPem, /^signature: not signed by the CA/],
      ['expired', expiredCert.certPem, caA.certPem, /^certPem: expired/],
      ['not yet valid', futureCert.certPem, caA.certPem, /^certPem: not valid before/],
      ['ECDSA client certificate', tlsClient.certPem, caA.certPem, /^organizationalUnit:/],
      ['the CA itself', caA.certPem, caA.certPem, /^basicConstraints:/],
      ['garbage', 'garbage', caA.certPem, /^certPem:/],
      [
        'empty PEM body',
        '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
        caA.certPem,
        /^certPem:/,
      ],
      ['two certificates', identity.certPem + identity.certPem, caA.certPem, /^certPem:/],
      ['a private key', identity.keyPem, caA.certPem, /^certPem:/],
      ['CA garbage', identity.certPem, 'garbage', /^caCertPem:/],
      ['CA not a CA', identity.certPem, tlsClient.certPem, /^caCertPem: not a certificate authority/],
    ];
    for (const [name, certPem, caPem, reason] of cases) {
      const verdict = await verifyIdentityCertificate(certPem, caPem, expected);
      assert.equal(verdict.ok, false, name);
      assert.match((verdict as { reason: string }).reason, reason, name);
    }
    const wrongName = await verifyIdentityCertificate(identity.certPem, caA.certPem, {
      commonName: 'hospital-b',
      at: now,
    });
    assert.ok(!wrongName.ok && /^commonName:/.test(wrongName.reason));
    const outlivesCa = await issueIdentityCertificate(caA, {
      commonName: 'hospital-a',
      notBefore: weekAgo,
      validityDays: 1000,
    });
    const lateCa = await verifyIdentityCertificate(outlivesCa.certPem, caA.certPem, {
      commonName: 'hospital-a',
      at: new Date(weekAgo.getTime() + 400 * DAY_MS),
    });
    assert.ok(!lateCa.ok && /^caCertPem: expired/.test(lateCa.reason), 'the CA expires too');
  });

  it('refuses every single-bit change to the certificate', async () => {
    const der = derOf(identity.certPem);
    await fc.assert(
      fc.asyncProperty(fc.nat(der.length - 1), fc.nat(7), async (index, bit) => {
        const changed = der.slice();
        changed[index] = changed[index]! ^ (1 << bit);
        const verdict = await verifyIdentityCertificate(toPem(changed), caA.certPem, expected);
        assert.equal(verdict.ok, false);
      }),
      { numRuns: 300 },
    );
  });

  it('throws INVALID_ARGUMENT for bad issuing parameters or a bad expected date', async () => {
    const cases: Array<[string, () => Promise<unknown>]> = [
      [
        'commonName',
        () => issueIdentityCertificate(caA, { commonName: '', notBefore: now, validityDays: 1 }),
      ],
      [
        'validityDays',
        () => issueIdentityCertificate(caA, { commonName: 'a', notBefore: now, validityDays: 0 }),
      ],
      [
        'ca.certPem',
        () => issueIdentityCertificate(identity, { commonName: 'a', notBefore: now, validityDays: 1 }),
      ],
      [
        'ca.keyPem',
        () =>
          issueIdentityCertificate(
            { certPem: caA.certPem, keyPem: caB.keyPem },
            { commonName: 'a', notBefore: now, validityDays: 1 },
          ),
      ],
      [
        'expected.at',
        () =>
          verifyIdentityCertificate(identity.certPem, caA.certPem, {
            commonName: 'hospital-a',
            at: new Date(Number.NaN),
          }),
      ],
    ];
    for (const [field, run] of cases) {
      await assert.rejects(run, (e: unknown) => {
        assert.ok(e instanceof EntenteError, `${field}: ${String(e)}`);
        assert.equal(e.code, 'INVALID_ARGUMENT');
        assert.equal(e.field, field);
        return true;
      });
    }
  });
});
