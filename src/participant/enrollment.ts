/**
 * On-site enrollment and renewal (issue 6), the member's side. Enrollment: fetch the consortium CA
 * certificate and check its SHA-256 against the fingerprint the one-time token carries (so a
 * man-in-the-middle cannot pose as the coordinator), make the keys here, send only CSRs with the token
 * over TLS pinned to that CA, and write the site directory. Renewal: a new TLS key and a renewed
 * identity certificate for the same identity key, over mutual TLS with the current certificate.
 * Private keys never leave this machine.
 */
import { X509Certificate } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { createCertificateRequest, parseEnrollmentToken } from '../crypto/index.ts';
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
}): Promise<SiteDir> {
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
  const issued = await requestCertificates(
    createMtlsClient({ baseUrl: input.coordinatorUrl, caPem }),
    '/v1/enroll',
    {
      token: input.token.trim(),
      tlsCsr: tls.csrPem,
      identityCsr: identity.csrPem,
    },
  );
  return writeSiteDir(input.dir, {
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
