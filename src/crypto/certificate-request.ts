/**
 * On-site enrollment: PKCS#10 certificate signing requests (RFC 2986) so that an institution's private
 * keys are generated where they are used and never travel (the NVFlare lesson, DESIGN.md §6.8). A site
 * creates a CSR for its mTLS client key (ECDSA P-256 / SHA-256, RFC 5480, RFC 5758) or for its
 * long-term identity key (Ed25519, RFC 8410, RFC 8032); the consortium CA checks the proof of
 * possession (the CSR's self-signature), that the subject is exactly the name it was asked to certify
 * and the key type, then issues the same X.509 profile (RFC 5280) as pki.ts does for keys it
 * generates itself. Requested extensions and attributes are ignored: the CA decides them.
 * Time comes in as a parameter; randomness (keys, serials) from node's WebCrypto CSPRNG.
 */
import { createPrivateKey, createPublicKey, type KeyObject, webcrypto } from 'node:crypto';
import 'reflect-metadata'; // must precede @peculiar/x509 (its tsyringe dependency checks at load)
import * as x509 from '@peculiar/x509';
import { EntenteError } from '../core/errors.ts';
import { sha256Hex } from './digest.ts';
import {
  type CertificateAndKey,
  checkCommonName,
  computeValidity,
  createName,
  createSerialHex,
  exportPrivateKeyPem,
  IDENTITY_ORGANIZATIONAL_UNIT,
  loadIssuer,
} from './pki.ts';

const subtle = webcrypto.subtle;
const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
const ED25519 = { name: 'Ed25519' } as const;
/** A CSR for one P-256 or Ed25519 key is a few hundred bytes; refuse anything far larger unparsed. */
const MAX_CSR_PEM_CHARS = 16_384;

/** What a certificate is for: 'tls' = mTLS client (P-256), 'identity' = signing identity (Ed25519). */
export type CertificateRequestKind = 'tls' | 'identity';

export interface CreateCertificateRequestParams {
  /** The institution id to be certified. */
  readonly commonName: string;
  readonly kind: CertificateRequestKind;
  /**
   * An existing PKCS#8 PEM private key (secret) to request a certificate for, instead of a fresh one:
   * renewal keeps a member's long-term identity key. It must match `kind`.
   */
  readonly keyPem?: string | undefined;
}

/** A CSR (public, sent to the CA) and the private key it proves possession of (secret, stays on site). */
export interface CertificateRequestAndKey {
  readonly csrPem: string;
  /** PKCS#8 PEM, unencrypted: secret. */
  readonly keyPem: string;
}

export interface IssueFromRequestParams {
  /** The name the CA agreed to certify; the CSR subject must ask for exactly this name. */
  readonly commonName: string;
  readonly kind: CertificateRequestKind;
  readonly notBefore: Date;
  readonly validityDays: number;
}

export interface IssuedCertificate {
  readonly certPem: string;
  /** The serial as created (16 bytes, first byte 0x01–0x7f): 32 lower-case hex digits. */
  readonly serialHex: string;
  /** SHA-256 of the DER certificate, lower-case hex. */
  readonly fingerprintSha256: string;
  /** As written in the certificate: notBefore + validityDays, truncated to whole seconds (X.509 time). */
  readonly notAfter: Date;
}

function invalid(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

function checkKind(kind: unknown): CertificateRequestKind {
  if (kind !== 'tls' && kind !== 'identity') invalid('kind', "must be 'tls' or 'identity'");
  return kind;
}

/** The subject a CSR of this kind must carry: CN only (tls) or OU=entente-identity + CN (identity). */
function createSubject(commonName: string, kind: CertificateRequestKind): x509.Name {
  return kind === 'tls'
    ? createName(commonName)
    : new x509.Name([
        { OU: [{ utf8String: IDENTITY_ORGANIZATIONAL_UNIT }] },
        { CN: [{ utf8String: commonName }] },
      ]);
}

/** True when the DER bytes are exactly one TLV of tag SEQUENCE (no trailing bytes). */
function isSingleDerSequence(der: Uint8Array): boolean {
  if (der.length < 2 || der[0] !== 0x30) return false;
  const first = der[1]!;
  if (first < 0x80) return der.length === 2 + first;
  const lengthBytes = first & 0x7f;
  if (lengthBytes < 1 || lengthBytes > 3 || der.length < 2 + lengthBytes) return false;
  let length = 0;
  for (let i = 0; i < lengthBytes; i++) length = length * 256 + der[2 + i]!;
  return der.length === 2 + lengthBytes + length;
}

/** Exactly one PEM CERTIFICATE REQUEST block holding one DER CertificationRequest. */
function parseCsr(csrPem: unknown): x509.Pkcs10CertificateRequest {
  if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_PEM_CHARS) {
    invalid('csr', `must be a PEM certificate request of at most ${MAX_CSR_PEM_CHARS} characters`);
  }
  let blocks: ReturnType<typeof x509.PemConverter.decodeWithHeaders>;
  try {
    blocks = x509.PemConverter.decodeWithHeaders(csrPem);
  } catch {
    return invalid('csr', 'is not PEM');
  }
  if (blocks.length !== 1 || blocks[0]!.type !== 'CERTIFICATE REQUEST') {
    invalid('csr', 'must hold exactly one PEM CERTIFICATE REQUEST block');
  }
  const der = new Uint8Array(blocks[0]!.rawData);
  if (!isSingleDerSequence(der)) invalid('csr', 'is not a single DER certification request');
  try {
    const csr = new x509.Pkcs10CertificateRequest(der);
    void csr.subjectName; // force the lazy parts to parse here, not later
    void csr.publicKey;
    return csr;
  } catch {
    return invalid('csr', 'is not a valid PKCS#10 certification request');
  }
}

/** The CSR's key as a node KeyObject of the expected type (P-256 or Ed25519), else csr.publicKey. */
function readRequestKey(csr: x509.Pkcs10CertificateRequest, kind: CertificateRequestKind): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch {
    return invalid('csr.publicKey', 'is not a readable public key');
  }
  if (kind === 'tls') {
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      invalid('csr.publicKey', 'must be an ECDSA P-256 key for a tls certificate');
    }
  } else if (key.asymmetricKeyType !== 'ed25519') {
    invalid('csr.publicKey', 'must be an Ed25519 key for an identity certificate');
  }
  return key;
}

/** Proof of possession: the CSR is signed by its own key with the algorithm of its kind. */
async function checkRequestSignature(
  csr: x509.Pkcs10CertificateRequest,
  kind: CertificateRequestKind,
): Promise<void> {
  const algorithm = csr.signatureAlgorithm as { name?: string; hash?: { name?: string } };
  const expected =
    kind === 'tls'
      ? algorithm.name === 'ECDSA' && algorithm.hash?.name === 'SHA-256'
      : algorithm.name === 'Ed25519';
  if (!expected) {
    invalid(
      'csr.signature',
      kind === 'tls' ? 'algorithm must be ECDSA with SHA-256' : 'algorithm must be Ed25519',
    );
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) invalid('csr.signature', 'does not verify with the request key (no proof of possession)');
}

/**
 * The CSR subject must be exactly the expected RDN sequence: one attribute per RDN, same types in the
 * same order, same string values (any DirectoryString encoding). Anything else asks for another name.
 */
function checkRequestSubject(csr: x509.Pkcs10CertificateRequest, expected: x509.Name): void {
  const actual = csr.subjectName.toJSON();
  const wanted = expected.toJSON();
  const same =
    actual.length === wanted.length &&
    actual.every((rdn, i) => {
      const want = wanted[i]!;
      const types = Object.keys(rdn);
      const wantTypes = Object.keys(want);
      if (types.length !== 1 || wantTypes.length !== 1 || types[0] !== wantTypes[0]) return false;
      const values = rdn[types[0]!]!;
      const wantValues = want[wantTypes[0]!]!;
      return values.length === 1 && wantValues.length === 1 && values[0] === wantValues[0];
    });
  if (!same) invalid('csr.subject', `must be exactly ${expected.toString()}`);
}

/**
 * Creates a fresh key pair on site and a CSR for it: 'tls' → ECDSA P-256 key, subject CN=commonName,
 * signed with ECDSA/SHA-256; 'identity' → Ed25519 key, subject OU=entente-identity + CN=commonName,
 * signed with Ed25519. No extensions or attributes are requested (the CA decides them).
 * keyPem is PKCS#8 PEM and SECRET: usable as node:tls `key` (tls) or with signEd25519 (identity).
 * Throws INVALID_ARGUMENT for a commonName outside 1..64 characters (or with control characters) or
 * an unknown kind.
 */
export async function createCertificateRequest(
  params: CreateCertificateRequestParams,
): Promise<CertificateRequestAndKey> {
  const commonName = checkCommonName(params?.commonName);
  const kind = checkKind(params.kind);
  const keys =
    params.keyPem === undefined
      ? ((await subtle.generateKey(kind === 'tls' ? EC_KEY : ED25519, true, [
          'sign',
          'verify',
        ])) as webcrypto.CryptoKeyPair)
      : await importKeyPair(params.keyPem, kind);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: createSubject(commonName, kind),
    keys,
    signingAlgorithm: kind === 'tls' ? ECDSA_SHA256 : ED25519,
  });
  return { csrPem: csr.toString('pem'), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/** A key pair from an existing PKCS#8 PEM private key (the public half derived by node:crypto). */
async function importKeyPair(keyPem: string, kind: CertificateRequestKind): Promise<webcrypto.CryptoKeyPair> {
  const algorithm = kind === 'tls' ? EC_KEY : ED25519;
  try {
    const der = x509.PemConverter.decodeFirst(keyPem);
    const privateKey = await subtle.importKey('pkcs8', der, algorithm, true, ['sign']);
    const spki = createPublicKey(createPrivateKey(keyPem)).export({ format: 'der', type: 'spki' });
    const publicKey = await subtle.importKey('spki', spki, algorithm, true, ['verify']);
    return { privateKey, publicKey };
  } catch {
    throw new EntenteError(
      'INVALID_ARGUMENT',
      `keyPem: not a ${kind === 'tls' ? 'P-256' : 'Ed25519'} private key`,
      {
        field: 'keyPem',
      },
    );
  }
}

/**
 * Issues a certificate for the key in `csrPem`, signed by `ca` with ECDSA P-256 / SHA-256.
 * Checks, in order: `csr` is one PEM CERTIFICATE REQUEST block holding one DER request that parses;
 * `csr.publicKey` is P-256 (tls) or Ed25519 (identity); `csr.signature` uses ECDSA/SHA-256 (tls) or
 * Ed25519 (identity) and verifies with that key (proof of possession); `csr.subject` is exactly
 * CN=commonName (tls) or OU=entente-identity + CN=commonName (identity). Each failure throws
 * INVALID_ARGUMENT naming that field; so do invalid params (commonName, kind, notBefore,
 * validityDays) and a `ca` that is not a CA with its matching key (ca.certPem / ca.keyPem).
 * Requested extensions and attributes are ignored. The subject is rebuilt by the CA, never copied.
 * Profiles: tls → as `issueCertificate` role 'client' (CA:false and keyUsage digitalSignature, both
 * critical; extendedKeyUsage clientAuth; SKI; AKI); identity → as `issueIdentityCertificate`
 * (passes `verifyIdentityCertificate`). Fresh random 16-byte serial; notAfter = notBefore + days.
 */
export async function issueCertificateFromRequest(
  ca: CertificateAndKey,
  csrPem: string,
  params: IssueFromRequestParams,
): Promise<IssuedCertificate> {
  const commonName = checkCommonName(params?.commonName);
  const kind = checkKind(params.kind);
  const validity = computeValidity(params.notBefore, params.validityDays);
  const csr = parseCsr(csrPem);
  const requestKey = readRequestKey(csr, kind);
  await checkRequestSignature(csr, kind);
  const subject = createSubject(commonName, kind);
  checkRequestSubject(csr, subject);

  const issuer = await loadIssuer(ca);
  // Re-encode the key canonically (RFC 5480 uncompressed point / RFC 8410 without parameters).
  const publicKey = new x509.PublicKey(new Uint8Array(requestKey.export({ format: 'der', type: 'spki' })));
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
  ];
  if (kind === 'tls') {
    extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false));
  }
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(publicKey), issuer.authorityKeyId);
  const serialHex = createSerialHex();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex,
    subject,
    issuer: issuer.cert.subjectName,
    ...validity,
    signingAlgorithm: ECDSA_SHA256,
    publicKey,
    signingKey: issuer.key,
    extensions,
  });
  return {
    certPem: cert.toString('pem'),
    serialHex,
    fingerprintSha256: sha256Hex(new Uint8Array(cert.rawData)),
    notAfter: cert.notAfter,
  };
}

/**
 * The serial number of one PEM certificate as lower-case hex in whole bytes: the DER INTEGER's content
 * octets, without the 0x00 sign octet DER puts before a first byte >= 0x80, and no other stripping.
 * For serials made by pki.ts (16 bytes, first byte 0x01–0x7f) that is exactly the 32 digits created.
 * node:tls `getPeerCertificate().serialNumber` (OpenSSL) is the same digits in upper case: compare
 * `peer.serialNumber.toLowerCase() === readCertificateSerial(certPem)`.
 * Throws INVALID_ARGUMENT (field 'certPem') for anything but one PEM CERTIFICATE block that parses.
 */
export function readCertificateSerial(certPem: string): string {
  if (typeof certPem !== 'string') invalid('certPem', 'must be a PEM certificate');
  let der: Uint8Array;
  try {
    const blocks = x509.PemConverter.decodeWithHeaders(certPem);
    if (blocks.length !== 1 || blocks[0]!.type !== 'CERTIFICATE') throw new Error('not one certificate');
    der = new Uint8Array(blocks[0]!.rawData);
  } catch {
    return invalid('certPem', 'must hold exactly one PEM CERTIFICATE block');
  }
  try {
    return new x509.X509Certificate(der).serialNumber.toLowerCase();
  } catch {
    return invalid('certPem', 'is not a valid X.509 certificate');
  }
}
