/**
 * What enrollment checks and issues: short-lived TLS and identity certificates signed by the CA from
 * the CSRs a member made on its own machine (each CSR's error named by its field; the identity
 * certificate verified and its Ed25519 key read), a key rotation's signature checked against the key
 * pinned for the member, and the answer the member gets (its certificates, the log's key, whether its
 * identity key is pinned or only presented).
 */
import { X509Certificate } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { issueCertificateFromRequest, verifyIdentityCertificate } from '../crypto/index.ts';
import { type MemberRole, verifyKeyRotation } from '../governance/index.ts';
import type { EnrollmentDeps } from './enrollment.ts';

/** The certificates issued for one request and the identity key they carry. */
export type IssuedCertificates = Awaited<ReturnType<typeof issueMemberCertificates>>;

/**
 * For a member whose identity key is pinned already and who presents another one: its rotation
 * signature (by the pinned key) when one is given and verifies. Throws INVALID_ARGUMENT (field
 * rotationSignature) for one that does not verify; undefined when none is given (the new key is then
 * only presented: it counts for nothing until a replace-identity-key quorum approves it).
 */
export function checkKeyRotation(
  consortium: string,
  member: string,
  pinned: Uint8Array | undefined,
  key: Uint8Array,
  signatureB64: string | undefined,
): string | undefined {
  if (!pinned || Buffer.compare(Buffer.from(pinned), Buffer.from(key)) === 0 || signatureB64 === undefined)
    return undefined;
  const rotation = {
    consortium,
    member,
    previousKey: Buffer.from(pinned).toString('base64'),
    key: Buffer.from(key).toString('base64'),
  };
  if (!verifyKeyRotation(rotation, new Uint8Array(Buffer.from(signatureB64, 'base64'))))
    throw new EntenteError(
      'INVALID_ARGUMENT',
      `rotationSignature: does not verify with the identity key pinned for ${member}`,
      { field: 'rotationSignature' },
    );
  return signatureB64;
}

export async function issueMemberCertificates(
  deps: Pick<EnrollmentDeps, 'ca' | 'certificateDays' | 'now'>,
  member: string,
  tlsCsr: unknown,
  identityCsr: unknown,
) {
  if (typeof tlsCsr !== 'string')
    throw new EntenteError('INVALID_ARGUMENT', 'tlsCsr: must be a PEM certificate request', {
      field: 'tlsCsr',
    });
  if (typeof identityCsr !== 'string')
    throw new EntenteError('INVALID_ARGUMENT', 'identityCsr: must be a PEM certificate request', {
      field: 'identityCsr',
    });
  const notBefore = new Date(deps.now() - 60_000);
  const params = { commonName: member, notBefore, validityDays: deps.certificateDays };
  const rename = (field: string) => (err: unknown) => {
    if (err instanceof EntenteError) throw new EntenteError(err.code, `${field}: ${err.message}`, { field });
    throw err;
  };
  const tls = await issueCertificateFromRequest(deps.ca, tlsCsr, { ...params, kind: 'tls' }).catch(
    rename('tlsCsr'),
  );
  const identity = await issueCertificateFromRequest(deps.ca, identityCsr, {
    ...params,
    kind: 'identity',
  }).catch(rename('identityCsr'));
  const check = await verifyIdentityCertificate(identity.certPem, deps.ca.certPem, {
    commonName: member,
    at: new Date(deps.now()),
  });
  if (!check.ok)
    throw new EntenteError('INTERNAL', `issued identity certificate does not verify: ${check.reason}`);
  return { tls, identity, identityKey: check.publicKey };
}

export function describeIssued(
  deps: Pick<EnrollmentDeps, 'ws' | 'audit' | 'ca'>,
  member: string,
  roles: readonly MemberRole[],
  pinned: Uint8Array | undefined,
  issued: IssuedCertificates,
) {
  const { ws, audit } = deps;
  return {
    member,
    consortium: ws.consortium.consortium,
    roles: [...roles],
    tlsCertPem: issued.tls.certPem,
    identityCertPem: issued.identity.certPem,
    caPem: deps.ca.certPem,
    notAfter: issued.tls.notAfter.toISOString(),
    log: { origin: audit.origin, key: audit.verifierKey },
    /** Whether the identity key this request presented is the one pinned for the member in the log. */
    identityKey:
      Buffer.compare(Buffer.from(pinned ?? []), Buffer.from(issued.identityKey)) === 0
        ? 'pinned'
        : 'presented (not pinned: sign a rotation with the previous key, or ask for a replace-identity-key quorum)',
  };
}

/** The raw Ed25519 key of a PEM identity certificate (SPKI id-Ed25519, RFC 8410). */
export function readIdentityKey(certPem: string): Uint8Array {
  const spki = new X509Certificate(certPem).publicKey.export({ format: 'der', type: 'spki' });
  if (spki.length !== 44) throw new Error('not an Ed25519 key');
  return new Uint8Array(spki.subarray(12));
}
