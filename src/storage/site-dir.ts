/**
 * A member's own directory on its own machine, written by `entente participant enroll` (issue 6):
 *
 *   site.json                 member id, consortium, coordinator URL, roles, the audit log's origin
 *                             and verifier key, certificate expiry
 *   ca.crt                    the consortium CA (its SHA-256 was checked against the enrollment token)
 *   client.crt, client.key    the mTLS identity (P-256; key made here, mode 0600, never sent)
 *   identity.crt, identity.key  the Ed25519 identity that signs approvals, secure-aggregation messages
 *                             and log cosignatures (key made here, mode 0600, never sent)
 *
 * Keys are written to a temporary file and renamed, so a crash never leaves half a key. The directory
 * is mode 0700 and the keys 0600, set explicitly even when the directory or a file already existed.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { ensurePrivateDir, writeFileWithMode } from './file-modes.ts';
import type { SigningIdentity, TlsIdentity } from './workspace.ts';

const siteFileSchema = z.strictObject({
  member: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]*$/)
    .max(64),
  consortium: z.string().min(1).max(64),
  coordinator: z.string().url(),
  roles: z.array(z.string().max(64)).max(10),
  log: z.strictObject({ origin: z.string().min(1), key: z.string().min(1) }),
  notAfter: z.string(),
});
export type SiteFile = z.infer<typeof siteFileSchema>;

export interface SiteDir {
  readonly dir: string;
  readonly site: SiteFile;
  /** The mTLS identity as the files hold it now (re-read after a renewal). */
  tlsIdentity(): TlsIdentity;
  signingIdentity(): SigningIdentity;
  journalFile(): string;
  privacyLedgerFile(): string;
  /** The (run, round) pairs this site released unmasking shares for (participant/unmasked-rounds.ts). */
  unmaskedRoundsFile(): string;
  witnessStateFile(): string;
  /** What this site serves (serving.json), its rollouts' models and records (participant/serving-dir.ts). */
  servingDir(): string;
}

function writeAtomically(path: string, text: string, mode: number): void {
  writeFileWithMode(path, text, mode);
}

/** Writes (or, on renewal, replaces) a member's site directory. Key PEMs are secret (mode 0600). */
export function writeSiteDir(
  dir: string,
  input: {
    site: SiteFile;
    caPem: string;
    tls: { certPem: string; keyPem: string };
    identity: { certPem: string; keyPem: string };
  },
): SiteDir {
  // 0700 even when the folder existed (made by hand, or holding the site's data copy already).
  ensurePrivateDir(dir);
  writeAtomically(join(dir, 'client.key'), input.tls.keyPem, 0o600);
  writeAtomically(join(dir, 'identity.key'), input.identity.keyPem, 0o600);
  writeAtomically(join(dir, 'ca.crt'), input.caPem, 0o644);
  writeAtomically(join(dir, 'client.crt'), input.tls.certPem, 0o644);
  writeAtomically(join(dir, 'identity.crt'), input.identity.certPem, 0o644);
  writeAtomically(
    join(dir, 'site.json'),
    `${JSON.stringify(siteFileSchema.parse(input.site), null, 2)}\n`,
    0o644,
  );
  return openSiteDir(dir);
}

/** Opens a site directory; throws INVALID_CONFIG naming the missing or bad file. */
export function openSiteDir(dir: string): SiteDir {
  const read = (name: string): string => {
    const p = join(dir, name);
    try {
      return readFileSync(p, 'utf8');
    } catch {
      throw new EntenteError('INVALID_CONFIG', `${p} is missing (run "entente participant enroll")`, {
        field: 'site',
      });
    }
  };
  let site: SiteFile;
  try {
    site = siteFileSchema.parse(JSON.parse(read('site.json')));
  } catch (err) {
    if (err instanceof EntenteError) throw err;
    throw new EntenteError('INVALID_CONFIG', `${join(dir, 'site.json')} is not a valid site file`, {
      field: 'site',
    });
  }
  let tlsCache: { mtime: number; identity: TlsIdentity } | undefined;
  return {
    dir,
    site,
    tlsIdentity: () => {
      // Re-read only when the certificate file changed (a renewal rewrites it).
      const mtime = statSync(join(dir, 'client.crt'), { throwIfNoEntry: false })?.mtimeMs ?? -1;
      if (!tlsCache || tlsCache.mtime !== mtime)
        tlsCache = {
          mtime,
          identity: { certPem: read('client.crt'), keyPem: read('client.key'), caPem: read('ca.crt') },
        };
      return tlsCache.identity;
    },
    signingIdentity: () => ({
      certPem: read('identity.crt'),
      keyPem: read('identity.key'),
      caPem: read('ca.crt'),
    }),
    journalFile: () => join(dir, 'journal.jsonl'),
    privacyLedgerFile: () => join(dir, 'privacy-ledger.jsonl'),
    unmaskedRoundsFile: () => join(dir, 'unmasked-rounds.jsonl'),
    witnessStateFile: () => join(dir, 'witness.json'),
    servingDir: () => join(dir, 'serving'),
  };
}

/** True when `dir` holds a site directory. */
export function isSiteDir(dir: string): boolean {
  return existsSync(join(dir, 'site.json'));
}
