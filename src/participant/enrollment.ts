/**
 * On-site enrollment and renewal (issue 6), the member's side. Enrollment: fetch the consortium CA
 * certificate and check its SHA-256 against the fingerprint the one-time token carries (so a
 * man-in-the-middle cannot pose as the coordinator), make the keys here, send only CSRs with the token
 * over TLS pinned to that CA, and write the site directory. Renewal: a new TLS key and a renewed
 * identity certificate for the same identity key, over mutual TLS with the current certificate.
 * Private keys never leave this machine.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { createCertificateRequest, parseEnrollmentToken, signEd25519 } from '../crypto/index.ts';
import { encodeKeyRotation } from '../governance/index.ts';
import { type SiteDir, openSiteDir, writeSiteDir } from '../storage/index.ts';
import { type MtlsClient, createMtlsClient, fetchUnverifiedText } from '../transport/index.ts';

interface IssuedBody {
  member: string;
  consortium: string;
  roles: string[];
  tlsCertPem: string;
  identityCertPem: string;
  caPem: string;
  notAfter: string;
  log: { origin: string; key: string };
  /** 'pinned' when the identity key sent is the one the log pins for the member; else why not. */
  identityKey?: string;
}

/** Base64 of the raw 32-byte Ed25519 public key of a PKCS#8 PEM secret key. */
function rawPublicKeyOf(keyPem: string): string {
  return createPublicKey(keyPem).export({ format: 'der', type: 'spki' }).subarray(12).toString('base64');
}

/** Sends the CSRs (with the token, for enrollment) and returns what the CA issued; closes `client`. */
async function requestCertificates(client: MtlsClient, path: string, body: unknown): Promise<IssuedBody> {
  try {
    return (await client.postJson<IssuedBody>(path, body)).body;
  } finally {
    await client.close();
  }
}

/** Enrolls this machine as `token`'s member; writes `dir`. Throws naming what failed (token, CA, CSR). */
export async function enrollMember(input: {
  coordinatorUrl: string;
  token: string;
  dir: string;
  /**
   * The member's earlier site directory, still holding its identity key: the new key is then announced
   * by a rotation statement signed with the old one, so the log pins it at once. Without it (keys lost)
   * the new key counts for nothing until the consortium approves a replace-identity-key proposal.
   */
  rotateFrom?: string | undefined;
}): Promise<{ site: SiteDir; identityKey: string }> {
  const token = parseEnrollmentToken(input.token.trim());
  const caPem = await fetchUnverifiedText(input.coordinatorUrl, '/v1/enroll/ca');
  let fingerprint: string;
  try {
    fingerprint = new X509Certificate(caPem).fingerprint256.replaceAll(':', '').toLowerCase();
  } catch {
    throw new EntenteError('UNAUTHENTICATED', 'coordinator: did not serve a CA certificate', {
      field: 'coordinator',
    });
  }
  if (fingerprint !== token.caFingerprintSha256)
    throw new EntenteError(
      'UNAUTHENTICATED',
      "coordinator: its CA certificate does not match the token's fingerprint (wrong coordinator, or someone in between)",
      { field: 'coordinator' },
    );
  const tls = await createCertificateRequest({ commonName: token.member, kind: 'tls' });
  const identity = await createCertificateRequest({ commonName: token.member, kind: 'identity' });
  let rotationSignature: string | undefined;
  if (input.rotateFrom !== undefined) {
    const previous = openSiteDir(input.rotateFrom);
    if (previous.site.member !== token.member)
      throw new EntenteError(
        'INVALID_ARGUMENT',
        `rotate-from: that site directory is ${previous.site.member}'s, the token is for ${token.member}`,
        { field: 'rotate-from' },
      );
    const oldKeyPem = previous.signingIdentity().keyPem;
    const statement = encodeKeyRotation({
      consortium: previous.site.consortium,
      member: token.member,
      previousKey: rawPublicKeyOf(oldKeyPem),
      key: rawPublicKeyOf(identity.keyPem),
    });
    rotationSignature = Buffer.from(signEd25519(oldKeyPem, statement)).toString('base64');
  }
  const issued = await requestCertificates(
    createMtlsClient({ baseUrl: input.coordinatorUrl, caPem }),
    '/v1/enroll',
    {
      token: input.token.trim(),
      tlsCsr: tls.csrPem,
      identityCsr: identity.csrPem,
      ...(rotationSignature === undefined ? {} : { rotationSignature }),
    },
  );
  const site = writeSiteDir(input.dir, {
    site: {
      member: issued.member,
      consortium: issued.consortium,
      coordinator: input.coordinatorUrl,
      roles: issued.roles,
      log: issued.log,
      notAfter: issued.notAfter,
    },
    caPem,
    tls: { certPem: issued.tlsCertPem, keyPem: tls.keyPem },
    identity: { certPem: issued.identityCertPem, keyPem: identity.keyPem },
  });
  return { site, identityKey: issued.identityKey ?? 'pinned' };
}

/** Renews the certificates of the member in `dir` (before they expire); rewrites `dir`. */
export async function renewMember(input: { dir: string; coordinatorUrl?: string }): Promise<SiteDir> {
  const site = openSiteDir(input.dir);
  const member = site.site.member;
  const baseUrl = input.coordinatorUrl ?? site.site.coordinator;
  const signing = site.signingIdentity();
  const tls = await createCertificateRequest({ commonName: member, kind: 'tls' });
  const identity = await createCertificateRequest({
    commonName: member,
    kind: 'identity',
    keyPem: signing.keyPem,
  });
  const issued = await requestCertificates(
    createMtlsClient({ baseUrl, ...site.tlsIdentity() }),
    '/v1/certificates/renew',
    {
      tlsCsr: tls.csrPem,
      identityCsr: identity.csrPem,
    },
  );
  return writeSiteDir(input.dir, {
    site: { ...site.site, roles: issued.roles, notAfter: issued.notAfter },
    caPem: signing.caPem,
    tls: { certPem: issued.tlsCertPem, keyPem: tls.keyPem },
    identity: { certPem: issued.identityCertPem, keyPem: signing.keyPem },
  });
}

/**
 * Renews the member's certificates in `dir` when less than a third of their validity is left at `now`
 * (as ACME clients do), so a running participant never reaches expiry. Returns whether it renewed.
 */
export async function renewIfDue(input: { dir: string; now: number }): Promise<boolean> {
  const cert = new X509Certificate(openSiteDir(input.dir).tlsIdentity().certPem);
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (input.now < to - (to - from) / 3) return false;
  await renewMember({ dir: input.dir });
  return true;
}
