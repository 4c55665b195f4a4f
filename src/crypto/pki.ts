/**
 * A local certificate authority for `entente init`: mutual TLS between the coordinator and the
 * participants (RFC 8446 with client certificates). X.509 profile of RFC 5280 with ECDSA P-256 /
 * SHA-256 (RFC 5480, RFC 5758): a CA certificate (basicConstraints CA:true pathLen 0 and keyUsage
 * keyCertSign|cRLSign, both critical; subject key identifier) and end-entity certificates (CA:false,
 * digitalSignature, extendedKeyUsage serverAuth or clientAuth, subjectAltName, authority key
 * identifier). The commonName of a client certificate is the institution id: the mTLS identity.
 * Keys are PKCS#8 PEM and certificates PEM, both usable as node:tls `key` / `cert` / `ca`.
 * Time comes in as `notBefore`; randomness (keys, serials) from node's WebCrypto CSPRNG.
 */
import { webcrypto } from 'node:crypto';
import 'reflect-metadata'; // must precede @peculiar/x509 (its tsyringe dependency checks at load)
import * as x509 from '@peculiar/x509';
import { EntenteError } from '../core/errors.ts';
import { sha256Hex } from './digest.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const subtle = webcrypto.subtle;
const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
const MAX_VALIDITY_DAYS = 36_500;
const SERIAL_BYTES = 16;

/** A certificate and its private key, both PEM (the key is PKCS#8, unencrypted: keep it secret). */
export interface CertificateAndKey {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface CertificateAuthorityParams {
  readonly commonName: string;
  readonly notBefore: Date;
  readonly validityDays: number;
}

export interface IssueCertificateParams {
  /** For a client certificate: the institution id, which the coordinator reads as its identity. */
  readonly commonName: string;
  readonly role: 'server' | 'client';
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly notBefore: Date;
  readonly validityDays: number;
}

export interface CertificateIdentity {
  readonly commonName: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 of the DER certificate, lower-case hex. */
  readonly fingerprintSha256: string;
}

function invalid(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

function checkCommonName(commonName: unknown): string {
  // X.520 ub-common-name is 64; control characters have no place in an identity.
  if (typeof commonName !== 'string' || commonName.length < 1 || commonName.length > 64) {
    invalid('commonName', 'must be a string of 1 to 64 characters');
  }
  if (/\p{Cc}/u.test(commonName)) invalid('commonName', 'must not contain control characters');
  return commonName;
}

function computeValidity(notBefore: unknown, validityDays: unknown): { notBefore: Date; notAfter: Date } {
  if (!(notBefore instanceof Date) || Number.isNaN(notBefore.getTime()))
    invalid('notBefore', 'must be a valid Date');
  if (
    !Number.isInteger(validityDays) ||
    (validityDays as number) < 1 ||
    (validityDays as number) > MAX_VALIDITY_DAYS
  ) {
    invalid('validityDays', `must be an integer in [1, ${MAX_VALIDITY_DAYS}]`);
  }
  return { notBefore, notAfter: new Date(notBefore.getTime() + (validityDays as number) * DAY_MS) };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** IPv4 dotted quad or IPv6 in hex groups with at most one '::' (no embedded IPv4, no zone). */
function isIpAddress(text: string): boolean {
  if (IPV4.test(text)) return true;
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return false;
  return halves.length === 2 ? groups.length <= 7 : groups.length === 8;
}

/** A subject name built structurally, so ',', '+' or '=' in a name cannot inject extra attributes. */
function createName(commonName: string): x509.Name {
  return new x509.Name([{ CN: [{ utf8String: commonName }] }]);
}

/** 16 CSPRNG bytes as a positive DER INTEGER of exactly 16 octets (RFC 5280 §4.1.2.2). */
function createSerialHex(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(SERIAL_BYTES));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

async function exportPrivateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const pkcs8 = await subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(pkcs8, x509.PemConverter.PrivateKeyTag);
}

function parseCertificate(certPem: unknown, field: string): x509.X509Certificate {
  if (typeof certPem !== 'string' || !certPem.includes('-----BEGIN CERTIFICATE-----')) {
    invalid(field, 'must be a PEM certificate');
  }
  try {
    return new x509.X509Certificate(certPem);
  } catch {
    return invalid(field, 'is not a valid X.509 certificate');
  }
}

async function importCaKey(keyPem: unknown, caCert: x509.X509Certificate): Promise<webcrypto.CryptoKey> {
  if (typeof keyPem !== 'string' || !keyPem.includes('-----BEGIN PRIVATE KEY-----')) {
    invalid('ca.keyPem', 'must be a PKCS#8 PEM private key');
  }
  let key: webcrypto.CryptoKey;
  try {
    key = await subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(keyPem), EC_KEY, true, ['sign']);
  } catch {
    return invalid('ca.keyPem', 'is not a P-256 ECDSA private key');
  }
  const fromKey = await subtle.exportKey('jwk', key);
  let fromCert: webcrypto.JsonWebKey;
  try {
    fromCert = await subtle.exportKey('jwk', await caCert.publicKey.export(EC_KEY, ['verify']));
  } catch {
    return invalid('ca.certPem', 'does not hold a P-256 ECDSA public key');
  }
  if (fromKey.x !== fromCert.x || fromKey.y !== fromCert.y) invalid('ca.keyPem', 'does not match ca.certPem');
  return key;
}

/**
 * Creates a self-signed CA (valid from `notBefore` for `validityDays` days) with a fresh P-256 key.
 * Throws INVALID_ARGUMENT for a commonName outside 1..64 characters (or with control characters),
 * an invalid Date or validityDays outside [1, 36500]. The returned keyPem is secret.
 */
export async function createCertificateAuthority(
  params: CertificateAuthorityParams,
): Promise<CertificateAndKey> {
  const commonName = checkCommonName(params.commonName);
  const validity = computeValidity(params.notBefore, params.validityDays);
  const keys = await subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: createSerialHex(),
    name: createName(commonName),
    ...validity,
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Issues an end-entity certificate signed by `ca` with a fresh P-256 key: serverAuth (at least one
 * DNS or IP subjectAltName required) or clientAuth (commonName = institution id).
 * Throws INVALID_ARGUMENT for invalid names, addresses or validity, a `ca` that is not a CA
 * certificate, or a CA key that does not match the CA certificate. The returned keyPem is secret.
 */
export async function issueCertificate(
  ca: CertificateAndKey,
  params: IssueCertificateParams,
): Promise<CertificateAndKey> {
  const commonName = checkCommonName(params.commonName);
  const validity = computeValidity(params.notBefore, params.validityDays);
  if (params.role !== 'server' && params.role !== 'client') invalid('role', "must be 'server' or 'client'");
  const dnsNames = params.dnsNames ?? [];
  const ipAddresses = params.ipAddresses ?? [];
  for (const d of dnsNames)
    if (typeof d !== 'string' || !DNS_NAME.test(d)) invalid('dnsNames', 'invalid DNS name');
  for (const ip of ipAddresses) {
    if (typeof ip !== 'string' || !isIpAddress(ip)) invalid('ipAddresses', 'invalid IP address');
  }
  if (params.role === 'server' && dnsNames.length + ipAddresses.length === 0) {
    invalid('dnsNames', 'a server certificate needs at least one DNS name or IP address');
  }

  const caCert = parseCertificate(ca.certPem, 'ca.certPem');
  const constraints = caCert.getExtension(x509.BasicConstraintsExtension);
  const usages = caCert.getExtension(x509.KeyUsagesExtension);
  if (!constraints?.ca || !usages || (usages.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    invalid('ca.certPem', 'is not a certificate authority');
  }
  const caKey = await importCaKey(ca.keyPem, caCert);
  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;

  const keys = await subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [params.role === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    caKeyId === undefined
      ? await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey)
      : new x509.AuthorityKeyIdentifierExtension(caKeyId),
  ];
  if (dnsNames.length + ipAddresses.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ]),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: createSerialHex(),
    subject: createName(commonName),
    issuer: caCert.subjectName,
    ...validity,
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions,
  });
  return { certPem: cert.toString('pem'), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Reads the identity of a PEM certificate (no chain or validity check: that is the TLS stack's job).
 * Throws INVALID_ARGUMENT for something that is not a certificate or has no commonName.
 */
export function readCertificateIdentity(certPem: string): CertificateIdentity {
  const cert = parseCertificate(certPem, 'certPem');
  const commonName = cert.subjectName.getField('CN')[0];
  if (commonName === undefined) invalid('certPem', 'has no subject commonName');
  return {
    commonName,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    fingerprintSha256: sha256Hex(new Uint8Array(cert.rawData)),
  };
}
