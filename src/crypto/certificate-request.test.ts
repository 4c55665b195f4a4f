/**
 * Tests for on-site enrollment CSRs (RFC 2986): round trips for both kinds, the issued profiles
 * against pki.ts, a real mutual-TLS handshake on loopback, and every refusal naming its field.
 */
import 'reflect-metadata'; // before @peculiar/x509, as in pki.ts
import assert from 'node:assert/strict';
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { before, describe, it } from 'node:test';
import * as tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { EntenteError } from '../core/errors.ts';
import {
  createCertificateRequest,
  issueCertificateFromRequest,
  readCertificateSerial,
} from './certificate-request.ts';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
  readCertificateIdentity,
  verifyIdentityCertificate,
} from './pki.ts';
import { readEd25519PublicKey, signEd25519, verifyEd25519 } from './signatures.ts';

const DAY_MS = 86_400_000;
const notBefore = new Date('2030-01-01T00:00:00Z');
const insideValidity = new Date('2030-01-05T00:00:00Z');
const tlsParams = { commonName: 'hospital-a', kind: 'tls', notBefore, validityDays: 10 } as const;
const identityParams = { commonName: 'hospital-a', kind: 'identity', notBefore, validityDays: 10 } as const;

/** Resolves when `promise` rejects with INVALID_ARGUMENT on exactly `field`. */
async function assertInvalid(promise: Promise<unknown>, field: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof EntenteError, String(e));
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.equal(e.field, field, e.message);
    assert.ok(e.message.startsWith(`${field}: `), e.message);
    return true;
  });
}

/** A CSR built by hand, to present what createCertificateRequest would never produce. */
async function createCustomCsr(options: {
  keyAlgorithm: 'P-256' | 'P-384' | 'Ed25519';
  name: x509.Name | string;
  extensions?: x509.Extension[];
  hash?: 'SHA-256' | 'SHA-384';
}): Promise<string> {
  const curve = options.keyAlgorithm;
  const ed = curve === 'Ed25519';
  const keyAlgorithm: webcrypto.AlgorithmIdentifier | webcrypto.EcKeyGenParams =
    curve === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: curve };
  const keys = (await webcrypto.subtle.generateKey(keyAlgorithm, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: options.name,
    keys,
    signingAlgorithm: ed ? { name: 'Ed25519' } : { name: 'ECDSA', hash: options.hash ?? 'SHA-256' },
    extensions: options.extensions ?? [],
  });
  return csr.toString('pem');
}

function decodeCsr(csrPem: string): Uint8Array {
  return new Uint8Array(x509.PemConverter.decodeFirst(csrPem));
}

function encodeCsr(der: Uint8Array): string {
  return x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
}

/** One mutual-TLS connection on loopback; resolves with what the server saw, bounded by 4 s. */
async function runMutualTls(
  ca: CertificateAndKey,
  server: CertificateAndKey,
  client: CertificateAndKey,
): Promise<{ authorized: boolean; commonName: string; serialNumber: string }> {
  let seen: { authorized: boolean; commonName: string; serialNumber: string } | undefined;
  const listener = tls.createServer(
    {
      key: server.keyPem,
      cert: server.certPem,
      ca: [ca.certPem],
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => {
      const peer = socket.getPeerCertificate();
      seen = {
        authorized: socket.authorized,
        commonName: String(peer.subject.CN),
        serialNumber: peer.serialNumber,
      };
      socket.end('ok');
    },
  );
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const { port } = listener.address() as AddressInfo;
  let socket: tls.TLSSocket | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        socket = tls.connect({
          host: '127.0.0.1',
          port,
          key: client.keyPem,
          cert: client.certPem,
          ca: [ca.certPem],
        });
        socket.on('error', reject);
        socket.on('data', () => {});
        socket.on('end', () => resolve());
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('mutual TLS handshake timed out')), 4000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    socket?.destroy();
    await new Promise((resolve) => listener.close(resolve));
  }
  assert.ok(seen, 'the server saw no connection');
  return seen;
}

describe('certificate requests', () => {
  let ca: CertificateAndKey;
  let otherCa: CertificateAndKey;
  let tlsRequest: { csrPem: string; keyPem: string };
  let identityRequest: { csrPem: string; keyPem: string };

  before(async () => {
    ca = await createCertificateAuthority({ commonName: 'Entente CA', notBefore, validityDays: 365 });
    otherCa = await createCertificateAuthority({ commonName: 'Other CA', notBefore, validityDays: 365 });
    tlsRequest = await createCertificateRequest({ commonName: 'hospital-a', kind: 'tls' });
    identityRequest = await createCertificateRequest({ commonName: 'hospital-a', kind: 'identity' });
  });

  it('creates CSRs with the requested subject, key type and a valid self-signature', async () => {
    const tlsCsr = new x509.Pkcs10CertificateRequest(tlsRequest.csrPem);
    assert.equal(tlsCsr.subject, 'CN=hospital-a');
    assert.equal(await tlsCsr.verify(), true);
    assert.equal(createPrivateKey(tlsRequest.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const idCsr = new x509.Pkcs10CertificateRequest(identityRequest.csrPem);
    assert.equal(idCsr.subject, 'OU=entente-identity, CN=hospital-a');
    assert.equal(await idCsr.verify(), true);
    assert.equal(createPrivateKey(identityRequest.keyPem).asymmetricKeyType, 'ed25519');
    assert.match(identityRequest.keyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(tlsCsr.extensions.length + idCsr.extensions.length, 0);
  });

  it('issues a tls certificate with the client profile of issueCertificate and the CSR key', async () => {
    const issued = await issueCertificateFromRequest(ca, tlsRequest.csrPem, tlsParams);
    const node = new X509Certificate(issued.certPem);
    assert.equal(node.ca, false);
    assert.equal(node.verify(new X509Certificate(ca.certPem).publicKey), true);
    assert.equal(node.checkPrivateKey(createPrivateKey(tlsRequest.keyPem)), true);
    assert.deepEqual(node.keyUsage, [x509.ExtendedKeyUsage.clientAuth]);
    assert.equal(readCertificateIdentity(issued.certPem).commonName, 'hospital-a');
    const reference = await issueCertificate(ca, { ...tlsParams, role: 'client' });
    const profile = (pem: string) =>
      new x509.X509Certificate(pem).extensions.map((e) => [e.type, e.critical] as const);
    assert.deepEqual(profile(issued.certPem), profile(reference.certPem));
    const cert = new x509.X509Certificate(issued.certPem);
    const ref = new x509.X509Certificate(reference.certPem);
    assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.critical, true);
    assert.equal(cert.getExtension(x509.KeyUsagesExtension)?.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(cert.getExtension(x509.KeyUsagesExtension)?.critical, true);
    assert.equal(
      cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
      ref.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
    );
    assert.equal(cert.subjectName.toString(), ref.subjectName.toString());
  });

  it('returns serial, fingerprint and notAfter that match the certificate', async () => {
    const issued = await issueCertificateFromRequest(ca, tlsRequest.csrPem, tlsParams);
    const again = await issueCertificateFromRequest(ca, tlsRequest.csrPem, tlsParams);
    assert.match(issued.serialHex, /^[0-9a-f]{32}$/);
    assert.equal(readCertificateSerial(issued.certPem), issued.serialHex);
    assert.equal(new X509Certificate(issued.certPem).serialNumber.toLowerCase(), issued.serialHex);
    assert.notEqual(again.serialHex, issued.serialHex);
    assert.equal(issued.fingerprintSha256, readCertificateIdentity(issued.certPem).fingerprintSha256);
    assert.equal(issued.notAfter.getTime(), notBefore.getTime() + 10 * DAY_MS);
    assert.equal(readCertificateIdentity(issued.certPem).notAfter.getTime(), issued.notAfter.getTime());
  });

  it('issues an identity certificate that verifies and binds the CSR Ed25519 key', async () => {
    const issued = await issueCertificateFromRequest(ca, identityRequest.csrPem, identityParams);
    const verdict = await verifyIdentityCertificate(issued.certPem, ca.certPem, {
      commonName: 'hospital-a',
      at: insideValidity,
    });
    assert.ok(verdict.ok, verdict.ok ? '' : verdict.reason);
    assert.deepEqual(verdict.publicKey, readEd25519PublicKey(identityRequest.keyPem));
    const message = new TextEncoder().encode('round 7 key list');
    assert.equal(
      verifyEd25519(verdict.publicKey, message, signEd25519(identityRequest.keyPem, message)),
      true,
    );
    assert.equal(verdict.fingerprintSha256, issued.fingerprintSha256);
    assert.equal(readCertificateSerial(issued.certPem), issued.serialHex);
    assert.deepEqual(new X509Certificate(issued.certPem).keyUsage, undefined, 'no extendedKeyUsage');
    const wrongName = await verifyIdentityCertificate(issued.certPem, ca.certPem, {
      commonName: 'hospital-b',
      at: insideValidity,
    });
    assert.equal(wrongName.ok, false);
  });

  it('a tls certificate from a CSR authenticates in mutual TLS against the CA', {
    timeout: 8000,
  }, async () => {
    const now = new Date();
    const timely = { notBefore: new Date(now.getTime() - DAY_MS), validityDays: 2 };
    const liveCa = await createCertificateAuthority({ commonName: 'Live CA', ...timely });
    const server = await issueCertificate(liveCa, {
      commonName: 'coordinator',
      role: 'server',
      ipAddresses: ['127.0.0.1'],
      ...timely,
    });
    const request = await createCertificateRequest({ commonName: 'lab-7', kind: 'tls' });
    const issued = await issueCertificateFromRequest(liveCa, request.csrPem, {
      commonName: 'lab-7',
      kind: 'tls',
      ...timely,
    });
    const seen = await runMutualTls(liveCa, server, { certPem: issued.certPem, keyPem: request.keyPem });
    assert.equal(seen.authorized, true);
    assert.equal(seen.commonName, 'lab-7');
    assert.equal(seen.serialNumber.toLowerCase(), issued.serialHex);
  });

  it('refuses a CSR asking for another name (csr.subject)', async () => {
    const other = await createCertificateRequest({ commonName: 'hospital-b', kind: 'tls' });
    await assertInvalid(issueCertificateFromRequest(ca, other.csrPem, tlsParams), 'csr.subject');
    const otherId = await createCertificateRequest({ commonName: 'hospital-b', kind: 'identity' });
    await assertInvalid(issueCertificateFromRequest(ca, otherId.csrPem, identityParams), 'csr.subject');
    const subjects = [
      'CN=hospital-a, O=Evil',
      'OU=entente-identity, CN=hospital-a', // identity layout on a tls key
      'CN=hospital-a+OU=x',
      'CN=hospital-a, CN=hospital-a',
      'O=hospital-a',
    ];
    for (const name of subjects) {
      const csrPem = await createCustomCsr({ keyAlgorithm: 'P-256', name });
      await assertInvalid(issueCertificateFromRequest(ca, csrPem, tlsParams), 'csr.subject');
    }
    const cnOnlyEd = await createCustomCsr({ keyAlgorithm: 'Ed25519', name: 'CN=hospital-a' });
    await assertInvalid(issueCertificateFromRequest(ca, cnOnlyEd, identityParams), 'csr.subject');
  });

  it('refuses a CSR whose signature or signed bytes were altered (csr.signature)', async () => {
    for (const [request, params] of [
      [tlsRequest, tlsParams],
      [identityRequest, identityParams],
    ] as const) {
      const lastByte = decodeCsr(request.csrPem);
      lastByte[lastByte.length - 1]! ^= 0x01;
      await assertInvalid(issueCertificateFromRequest(ca, encodeCsr(lastByte), params), 'csr.signature');
      // 'hospital-a' -> 'hospital-b' inside the signed CertificationRequestInfo.
      const der = decodeCsr(request.csrPem);
      const at = Buffer.from(der).indexOf('hospital-a') + 'hospital-'.length;
      der[at] = 'b'.charCodeAt(0);
      await assertInvalid(issueCertificateFromRequest(ca, encodeCsr(der), params), 'csr.signature');
    }
    const sha384 = await createCustomCsr({ keyAlgorithm: 'P-256', name: 'CN=hospital-a', hash: 'SHA-384' });
    await assertInvalid(issueCertificateFromRequest(ca, sha384, tlsParams), 'csr.signature');
  });

  it('refuses a key of the wrong type for the kind (csr.publicKey)', async () => {
    await assertInvalid(issueCertificateFromRequest(ca, identityRequest.csrPem, tlsParams), 'csr.publicKey');
    await assertInvalid(issueCertificateFromRequest(ca, tlsRequest.csrPem, identityParams), 'csr.publicKey');
    const p384 = await createCustomCsr({ keyAlgorithm: 'P-384', name: 'CN=hospital-a' });
    await assertInvalid(issueCertificateFromRequest(ca, p384, tlsParams), 'csr.publicKey');
  });

  it('refuses garbage, other PEM types, two blocks and trailing bytes (csr)', async () => {
    const der = decodeCsr(tlsRequest.csrPem);
    const cases: unknown[] = [
      '',
      'garbage',
      42,
      undefined,
      tlsRequest.csrPem + tlsRequest.csrPem,
      ca.certPem,
      encodeCsr(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])),
      encodeCsr(new Uint8Array([...der, 0x00])),
      encodeCsr(der.subarray(0, der.length - 5)),
      `${tlsRequest.csrPem}${'x'.repeat(20_000)}`,
    ];
    for (const csrPem of cases) {
      await assertInvalid(issueCertificateFromRequest(ca, csrPem as string, tlsParams), 'csr');
    }
  });

  it('ignores requested extensions: the CA decides them', async () => {
    const csrPem = await createCustomCsr({
      keyAlgorithm: 'P-256',
      name: 'CN=hospital-a',
      extensions: [
        new x509.BasicConstraintsExtension(true, 3, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'coordinator.example' }]),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      ],
    });
    assert.equal(new x509.Pkcs10CertificateRequest(csrPem).extensions.length, 4, 'the CSR does ask');
    const issued = await issueCertificateFromRequest(ca, csrPem, tlsParams);
    const node = new X509Certificate(issued.certPem);
    assert.equal(node.ca, false);
    assert.equal(node.subjectAltName, undefined);
    assert.deepEqual(node.keyUsage, [x509.ExtendedKeyUsage.clientAuth]);
    const usages = new x509.X509Certificate(issued.certPem).getExtension(x509.KeyUsagesExtension)?.usages;
    assert.equal(usages, x509.KeyUsageFlags.digitalSignature);
  });

  it('throws INVALID_ARGUMENT naming bad parameters and a bad CA', async () => {
    const csr = tlsRequest.csrPem;
    await assertInvalid(issueCertificateFromRequest(ca, csr, { ...tlsParams, commonName: '' }), 'commonName');
    await assertInvalid(
      issueCertificateFromRequest(ca, csr, { ...tlsParams, kind: 'server' as 'tls' }),
      'kind',
    );
    await assertInvalid(
      issueCertificateFromRequest(ca, csr, { ...tlsParams, validityDays: 0 }),
      'validityDays',
    );
    await assertInvalid(
      issueCertificateFromRequest(ca, csr, { ...tlsParams, notBefore: new Date(Number.NaN) }),
      'notBefore',
    );
    const leaf = await issueCertificate(ca, { ...tlsParams, role: 'client' });
    await assertInvalid(issueCertificateFromRequest(leaf, csr, tlsParams), 'ca.certPem');
    await assertInvalid(
      issueCertificateFromRequest({ certPem: ca.certPem, keyPem: otherCa.keyPem }, csr, tlsParams),
      'ca.keyPem',
    );
    await assertInvalid(createCertificateRequest({ commonName: 'x'.repeat(65), kind: 'tls' }), 'commonName');
    await assertInvalid(createCertificateRequest({ commonName: 'x', kind: 'rsa' as 'tls' }), 'kind');
  });

  it('readCertificateSerial refuses what is not one certificate (certPem)', () => {
    for (const bad of ['', 'garbage', tlsRequest.csrPem, ca.certPem + ca.certPem, 7]) {
      assert.throws(
        () => readCertificateSerial(bad as string),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === 'certPem',
      );
    }
    assert.equal(
      readCertificateSerial(ca.certPem),
      new X509Certificate(ca.certPem).serialNumber.toLowerCase(),
    );
  });
});

describe('createCertificateRequest with an existing key (renewal)', () => {
  it('requests a certificate for the same identity key, and refuses a key of the wrong kind', async () => {
    const first = await createCertificateRequest({ commonName: 'site-a', kind: 'identity' });
    const again = await createCertificateRequest({
      commonName: 'site-a',
      kind: 'identity',
      keyPem: first.keyPem,
    });
    assert.equal(again.keyPem.trim(), first.keyPem.trim());
    const ca = await createCertificateAuthority({
      commonName: 'renew CA',
      notBefore: new Date(),
      validityDays: 2,
    });
    const a = await issueCertificateFromRequest(ca, first.csrPem, {
      commonName: 'site-a',
      kind: 'identity',
      notBefore: new Date(),
      validityDays: 1,
    });
    const b = await issueCertificateFromRequest(ca, again.csrPem, {
      commonName: 'site-a',
      kind: 'identity',
      notBefore: new Date(),
      validityDays: 1,
    });
    const key = (pem: string) =>
      new X509Certificate(pem).publicKey.export({ format: 'der', type: 'spki' }).toString('hex');
    assert.equal(key(a.certPem), key(b.certPem));
    assert.notEqual(a.serialHex, b.serialHex);
    await assert.rejects(
      createCertificateRequest({ commonName: 'site-a', kind: 'tls', keyPem: first.keyPem }),
      (e: EntenteError) => e.field === 'keyPem',
    );
  });
});
