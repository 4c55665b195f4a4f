/** Tests for the local CA: certificate contents, and real TLS 1.3 mutual-auth handshakes on loopback. */
import 'reflect-metadata'; // before @peculiar/x509, as in pki.ts
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { before, describe, it } from 'node:test';
import * as tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { EntenteError } from '../core/errors.ts';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
  readCertificateIdentity,
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
