/**
 * A local certificate authority for `entente init`: mutual TLS between the coordinator and the
 * participants (RFC 8446 with client certificates). X.509 profile of RFC 5280 with ECDSA P-256 /
 * SHA-256 (RFC 5480, RFC 5758): a CA certificate (basicConstraints CA:true pathLen 0 and keyUsage
 * keyCertSign|cRLSign, both critical; subject key identifier) and end-entity certificates (CA:false,
 * digitalSignature, extendedKeyUsage serverAuth or clientAuth, subjectAltName, authority key
 * identifier). The commonName of a client certificate is the institution id: the mTLS identity.
 * Keys are PKCS#8 PEM and certificates PEM, both usable as node:tls `key` / `cert` / `ca`.
 * The same CA also issues each institution's long-term identity certificate: an Ed25519 key
 * (RFC 8410, RFC 8032) with OU=entente-identity and keyUsage digitalSignature, which signs its
 * secure-aggregation messages (Bonawitz et al. 2017); peers verify it against the CA they hold.
 * Time comes in as a parameter; randomness (keys, serials) from node's WebCrypto CSPRNG.
 */
import { webcrypto, X509Certificate } from 'node:crypto';
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

export function checkCommonName(commonName: unknown): string {
  // X.520 ub-common-name is 64; control characters have no place in an identity.
  if (typeof commonName !== 'string' || commonName.length < 1 || commonName.length > 64) {
    invalid('commonName', 'must be a string of 1 to 64 characters');
  }
  if (/\p{Cc}/u.test(commonName)) invalid('commonName', 'must not contain control characters');
  return commonName;
}

export function computeValidity(
  notBefore: unknown,
  validityDays: unknown,
): { notBefore: Date; notAfter: Date } {
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
export function createName(commonName: string): x509.Name {
  return new x509.Name([{ CN: [{ utf8String: commonName }] }]);
}

/** 16 CSPRNG bytes as a positive DER INTEGER of exactly 16 octets (RFC 5280 §4.1.2.2). */
export function createSerialHex(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(SERIAL_BYTES));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

export async function exportPrivateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
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

interface Issuer {
  readonly cert: x509.X509Certificate;
  readonly key: webcrypto.CryptoKey;
  readonly authorityKeyId: x509.AuthorityKeyIdentifierExtension;
}

/** Checks that `ca` is a CA certificate with its matching key (INVALID_ARGUMENT on ca.certPem / ca.keyPem). */
export async function loadIssuer(ca: CertificateAndKey): Promise<Issuer> {
  const cert = parseCertificate(ca?.certPem, 'ca.certPem');
  const constraints = cert.getExtension(x509.BasicConstraintsExtension);
  const usages = cert.getExtension(x509.KeyUsagesExtension);
  if (!constraints?.ca || !usages || (usages.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    invalid('ca.certPem', 'is not a certificate authority');
  }
  const key = await importCaKey(ca.keyPem, cert);
  const keyId = cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const authorityKeyId =
    keyId === undefined
      ? await x509.AuthorityKeyIdentifierExtension.create(cert.publicKey)
      : new x509.AuthorityKeyIdentifierExtension(keyId);
  return { cert, key, authorityKeyId };
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

  const issuer = await loadIssuer(ca);

  const keys = await subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [params.role === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    issuer.authorityKeyId,
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
    issuer: issuer.cert.subjectName,
    ...validity,
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: issuer.key,
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

// --- Identity certificates (Ed25519, RFC 8410) for signing secure-aggregation messages ---------

/** The subject organizationalUnit that marks an identity certificate (never an mTLS certificate). */
export const IDENTITY_ORGANIZATIONAL_UNIT = 'entente-identity';

export interface IssueIdentityCertificateParams {
  /** The institution id. */
  readonly commonName: string;
  readonly notBefore: Date;
  readonly validityDays: number;
}

export type IdentityVerdict =
  | {
      readonly ok: true;
      /** The 32 raw Ed25519 public-key bytes (RFC 8032), a fresh copy on every call. */
      readonly publicKey: Uint8Array;
      /** SHA-256 of the DER certificate, lower-case hex. */
      readonly fingerprintSha256: string;
    }
  | { readonly ok: false; readonly reason: string };

/** SubjectPublicKeyInfo DER prefix of an Ed25519 key: id-Ed25519, parameters absent (RFC 8410 §4). */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ED25519_KEY_BYTES = 32;
/** Extensions this profile understands; any other critical extension is refused (RFC 5280 §4.2). */
const KNOWN_CRITICAL_EXTENSIONS = new Set(['2.5.29.19', '2.5.29.15']); // basicConstraints, keyUsage

/**
 * Issues an identity certificate for an institution: a fresh Ed25519 key, subject
 * OU=entente-identity + CN=`commonName`, basicConstraints CA:false and keyUsage digitalSignature
 * (both critical), no extendedKeyUsage, signed by `ca` with ECDSA P-256 / SHA-256.
 * Throws INVALID_ARGUMENT like `issueCertificate`. The returned keyPem (PKCS#8 PEM) is secret.
 */
export async function issueIdentityCertificate(
  ca: CertificateAndKey,
  params: IssueIdentityCertificateParams,
): Promise<CertificateAndKey> {
  const commonName = checkCommonName(params.commonName);
  const validity = computeValidity(params.notBefore, params.validityDays);
  const issuer = await loadIssuer(ca);
  const keys = (await subtle.generateKey({ name: 'Ed25519' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: createSerialHex(),
    subject: new x509.Name([
      { OU: [{ utf8String: IDENTITY_ORGANIZATIONAL_UNIT }] },
      { CN: [{ utf8String: commonName }] },
    ]),
    issuer: issuer.cert.subjectName,
    ...validity,
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: issuer.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      issuer.authorityKeyId,
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/** The date-independent outcome of checking a certificate against a CA (what the cache holds). */
type StaticCheck =
  | {
      readonly ok: true;
      readonly publicKey: Uint8Array;
      readonly fingerprintSha256: string;
      readonly validity: readonly (readonly [string, Date, Date])[];
    }
  | { readonly ok: false; readonly reason: string };

const MAX_CACHED_CHECKS = 1024;
const checkCache = new Map<string, StaticCheck>();

/** Exactly one PEM CERTIFICATE block, parsed by both @peculiar/x509 and OpenSSL (node:crypto). */
function parseOnePem(pem: unknown): { cert: x509.X509Certificate; node: X509Certificate } | undefined {
  if (typeof pem !== 'string') return undefined;
  try {
    const blocks = x509.PemConverter.decodeWithHeaders(pem);
    if (blocks.length !== 1 || blocks[0]!.type !== 'CERTIFICATE') return undefined;
    const der = blocks[0]!.rawData;
    return { cert: new x509.X509Certificate(der), node: new X509Certificate(Buffer.from(der)) };
  } catch {
    return undefined;
  }
}

function isSameBytes(a: ArrayBuffer, b: ArrayBuffer): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

function refuse(reason: string): { readonly ok: false; readonly reason: string } {
  return { ok: false, reason };
}

/** Every check of `verifyIdentityCertificate` except the validity dates. */
function checkIdentityStatically(certPem: unknown, caCertPem: unknown, commonName: string): StaticCheck {
  const ca = parseOnePem(caCertPem);
  if (ca === undefined) return refuse('caCertPem: not a single PEM X.509 certificate');
  const caConstraints = ca.cert.getExtension(x509.BasicConstraintsExtension);
  const caUsages = ca.cert.getExtension(x509.KeyUsagesExtension);
  if (!caConstraints?.ca || !caUsages || (caUsages.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    return refuse('caCertPem: not a certificate authority');
  }
  const leaf = parseOnePem(certPem);
  if (leaf === undefined) return refuse('certPem: not a single PEM X.509 certificate');
  const { cert } = leaf;
  if (!isSameBytes(cert.issuerName.toArrayBuffer(), ca.cert.subjectName.toArrayBuffer())) {
    return refuse('issuer: does not match the CA subject');
  }
  const algorithm = cert.signatureAlgorithm as { name?: string; hash?: { name?: string } };
  if (algorithm.name !== 'ECDSA' || algorithm.hash?.name !== 'SHA-256') {
    return refuse('signature: algorithm is not ECDSA with SHA-256');
  }
  let signed = false;
  try {
    signed = leaf.node.verify(ca.node.publicKey);
  } catch {
    signed = false;
  }
  if (!signed) return refuse('signature: not signed by the CA');
  if (cert.getExtension(x509.BasicConstraintsExtension)?.ca) {
    return refuse('basicConstraints: a CA certificate is not an identity');
  }
  const unknownCritical = cert.extensions.find((e) => e.critical && !KNOWN_CRITICAL_EXTENSIONS.has(e.type));
  if (unknownCritical) return refuse(`extensions: unknown critical extension ${unknownCritical.type}`);
  const usages = cert.getExtension(x509.KeyUsagesExtension);
  if (!usages || (usages.usages & x509.KeyUsageFlags.digitalSignature) === 0) {
    return refuse('keyUsage: digitalSignature is missing');
  }
  const units = cert.subjectName.getField('OU');
  if (units.length !== 1 || units[0] !== IDENTITY_ORGANIZATIONAL_UNIT) {
    return refuse(`organizationalUnit: not ${IDENTITY_ORGANIZATIONAL_UNIT}`);
  }
  const names = cert.subjectName.getField('CN');
  if (names.length !== 1 || names[0] !== commonName) {
    return refuse(`commonName: expected ${JSON.stringify(commonName)}`);
  }
  const spki = Buffer.from(cert.publicKey.rawData);
  if (
    spki.length !== ED25519_SPKI_PREFIX.length + ED25519_KEY_BYTES ||
    !spki.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX)
  ) {
    return refuse('publicKey: not an Ed25519 key');
  }
  return {
    ok: true,
    publicKey: new Uint8Array(spki.subarray(ED25519_SPKI_PREFIX.length)),
    fingerprintSha256: sha256Hex(new Uint8Array(cert.rawData)),
    validity: [
      ['certPem', cert.notBefore, cert.notAfter],
      ['caCertPem', ca.cert.notBefore, ca.cert.notAfter],
    ],
  };
}

/**
 * Verifies an institution's identity certificate against the consortium CA certificate held
 * locally (never against anything the coordinator says): one PEM certificate, issuer = CA subject,
 * ECDSA/SHA-256 signature by the CA, CA and certificate valid at `expected.at` (notBefore <= at <=
 * notAfter), not a CA, no unknown critical extension, keyUsage digitalSignature, OU
 * entente-identity, CN = `expected.commonName`, an Ed25519 key. A bad certificate (or CA
 * certificate) is a verdict { ok:false, reason } naming the first failed check, never a throw.
 * Throws INVALID_ARGUMENT only for a non-string expected.commonName or an invalid expected.at.
 * Date-independent results are cached by (SHA-256 of certPem, SHA-256 of caCertPem, commonName).
 */
export async function verifyIdentityCertificate(
  certPem: string,
  caCertPem: string,
  expected: { readonly commonName: string; readonly at: Date },
): Promise<IdentityVerdict> {
  if (typeof expected?.commonName !== 'string') invalid('expected.commonName', 'must be a string');
  const at = expected.at;
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) invalid('expected.at', 'must be a valid Date');
  const utf8 = (v: string): Uint8Array => Buffer.from(v, 'utf8');
  const key =
    typeof certPem === 'string' && typeof caCertPem === 'string'
      ? `${sha256Hex(utf8(certPem))}${sha256Hex(utf8(caCertPem))}${expected.commonName}`
      : undefined;
  let check = key === undefined ? undefined : checkCache.get(key);
  if (check === undefined) {
    check = checkIdentityStatically(certPem, caCertPem, expected.commonName);
    if (key !== undefined) {
      if (checkCache.size >= MAX_CACHED_CHECKS) checkCache.delete(checkCache.keys().next().value!);
      checkCache.set(key, check);
    }
  }
  if (!check.ok) return check;
  const time = at.getTime();
  for (const [field, notBefore, notAfter] of check.validity) {
    if (time < notBefore.getTime()) return refuse(`${field}: not valid before ${notBefore.toISOString()}`);
    if (time > notAfter.getTime()) return refuse(`${field}: expired at ${notAfter.toISOString()}`);
  }
  return { ok: true, publicKey: check.publicKey.slice(), fingerprintSha256: check.fingerprintSha256 };
}
