/**
 * The consortium workspace on disk, as `entente init` lays it out for local use (enrollment of real
 * institutions on their own machines comes with governance):
 *
 *   consortium.json                   consortium id, institutions, operators, the audit log's origin
 *                                     and verifier key, each institution's witness (cosigner) key
 *   ca/ca.crt, ca/ca.key              the consortium CA (key mode 0600)
 *   coordinator/server.crt|key        the coordinator's TLS identity; coordinator/state/ its store
 *   coordinator/log.key               the audit log's Ed25519 key (signs checkpoints)
 *   coordinator/endpoint.json         where a running coordinator listens (its URL and pid)
 *   coordinator/coordinator.lock      held by the running coordinator (workspace-lock.ts)
 *   operators/<id>/client.crt|key     operator identities (start runs, read status)
 *   institutions/<id>/client.crt|key  one mTLS identity per institution (CN = institution id)
 *   institutions/<id>/identity.crt|key  its Ed25519 signing identity for secure aggregation
 *                                       (OU=entente-identity, CN = institution id, issued by the CA)
 *
 * Every directory is mode 0700 and every *.key file mode 0600, set explicitly (file-modes.ts), also
 * when `dir` existed before; every certificate has the same validity except the CA's, which lasts
 * twelve times as long.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { ensurePrivateDir, writePrivateFile } from './file-modes.ts';
import { formatVerifierKey } from '../audit/signed-note.ts';
import { createCertificateAuthority, issueCertificate, issueIdentityCertificate } from '../crypto/pki.ts';
import { readEd25519PublicKey } from '../crypto/signatures.ts';

const idPattern = /^[a-z0-9][a-z0-9._-]*$/;

export const consortiumFileSchema = z.strictObject({
  consortium: z.string().regex(idPattern),
  institutions: z.array(z.string().regex(idPattern).max(64)).min(1),
  operators: z.array(z.string().regex(idPattern).max(64)).min(1),
  createdAt: z.string(),
  /** The audit log: its origin line and verifier key (C2SP signed-note vkey form). */
  log: z.strictObject({ origin: z.string(), key: z.string() }).optional(),
  /** Each institution's cosigner (witness) vkey: its identity key with the cosignature/v1 key id. */
  witnesses: z.record(z.string(), z.string()).optional(),
  /** Founding members besides institutions and operators (auditors, observers, data stewards). */
  members: z
    .record(
      z.string().regex(idPattern).max(64),
      z.array(z.enum(['data-steward', 'auditor', 'observer'])).min(1),
    )
    .optional(),
  /**
   * true: members enroll on their own machines with one-time tokens (`entente participant enroll`);
   * the workspace holds only the coordinator's side. false/absent: `init` made every key here (local use).
   */
  enrollment: z.boolean().optional(),
  /** Validity of certificates issued at enrollment and renewal, in days (short-lived; default 7). */
  certificateDays: z.number().int().min(1).max(397).optional(),
});
export type ConsortiumFile = z.infer<typeof consortiumFileSchema>;

export interface TlsIdentity {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
}

/** An institution's Ed25519 identity certificate and key (secret), with the CA that issued it. */
export interface SigningIdentity {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
}

export interface Workspace {
  readonly dir: string;
  readonly consortium: ConsortiumFile;
  coordinatorIdentity(): TlsIdentity;
  /** The institution's mTLS client identity. Throws UNKNOWN_PARTICIPANT for an id not in the consortium. */
  institutionIdentity(id: string): TlsIdentity;
  /**
   * The institution's Ed25519 signing identity (institutions/<id>/identity.crt|key) for
   * secure-aggregation messages. Throws UNKNOWN_PARTICIPANT for an id not in the consortium and
   * INVALID_CONFIG naming the file when one is missing.
   */
  institutionSigningIdentity(id: string): SigningIdentity;
  operatorIdentity(id?: string): TlsIdentity;
  /**
   * The mTLS identity and the Ed25519 signing identity `init` made for any local member (institution,
   * operator, auditor, observer, data steward). Throws UNKNOWN_PARTICIPANT / INVALID_CONFIG.
   */
  localMember(id: string): { tls: TlsIdentity; signing: SigningIdentity };
  coordinatorStateDir(): string;
  /** The consortium CA certificate and key (secret; the coordinator signs enrollment CSRs with it). */
  certificateAuthority(): { certPem: string; keyPem: string };
  /** Roles the consortium file gives `id` before any policy is adopted ([] for a stranger). */
  rosterRolesOf(id: string): string[];
  /** Identity certificates `init` made in this workspace (local use), by member id. */
  localIdentityCertificates(): Map<string, string>;
  /** The audit log's Ed25519 private key (PKCS#8 PEM, secret; coordinator/log.key). */
  logSigningKey(): string;
  endpointFile(): string;
  /** The running coordinator's exclusive lock on this workspace. */
  coordinatorLockFile(): string;
  /** Records where the coordinator listens (written whole: a reader never sees half a file). */
  writeEndpoint(url: string, pid: number): void;
  /** Removes the endpoint file if it still names `pid` (never another coordinator's). */
  removeEndpoint(pid: number): void;
  /** The URL a running coordinator wrote to endpoint.json. Throws UNAVAILABLE when absent. */
  readEndpoint(): string;
}

/** The audit log's origin line (C2SP tlog-checkpoint) for a consortium. */
export function computeLogOrigin(consortium: string): string {
  return `entente/${consortium}/log`;
}

/** The cosigner name of an institution acting as a witness of its consortium's log. */
export function computeWitnessName(consortium: string, institution: string): string {
  return `entente/${consortium}/witness/${institution}`;
}

function writeSecret(path: string, pem: string): void {
  writePrivateFile(path, pem);
}

/** Creates a new workspace in `dir` (must not already hold one). */
export async function createWorkspace(
  dir: string,
  input: {
    consortium: string;
    institutions: readonly string[];
    operators?: readonly string[];
    /** Founding auditors, observers and data stewards. */
    members?: Readonly<Record<string, readonly ('data-steward' | 'auditor' | 'observer')[]>>;
    /** Members enroll with tokens on their own machines: no institution or member keys are made here. */
    enrollment?: boolean;
    certificateDays?: number;
    now: Date;
    validityDays?: number;
  },
): Promise<Workspace> {
  let consortium = consortiumFileSchema.parse({
    consortium: input.consortium,
    institutions: [...input.institutions],
    operators: [...(input.operators ?? ['operator'])],
    createdAt: input.now.toISOString(),
    ...(input.members
      ? { members: Object.fromEntries(Object.entries(input.members).map(([k, v]) => [k, [...v]])) }
      : {}),
    ...(input.enrollment ? { enrollment: true } : {}),
    ...(input.certificateDays ? { certificateDays: input.certificateDays } : {}),
  });
  const all = [...consortium.institutions, ...consortium.operators, ...Object.keys(consortium.members ?? {})];
  if (new Set(all).size !== all.length) {
    throw new EntenteError(
      'INVALID_ARGUMENT',
      'institutions: ids must be unique and differ from operator ids',
      {
        field: 'institutions',
      },
    );
  }
  if (existsSync(join(dir, 'consortium.json'))) {
    throw new EntenteError('CONFLICT', `${dir} already holds a workspace`, { field: 'workspace' });
  }
  const validityDays = input.validityDays ?? 30;
  // The workspace holds the CA key and the coordinator's state: 0700 even when `dir` already existed.
  ensurePrivateDir(dir);
  ensurePrivateDir(join(dir, 'ca'));
  const ca = await createCertificateAuthority({
    commonName: `${consortium.consortium} CA`,
    notBefore: input.now,
    validityDays: validityDays * 12,
  });
  writeFileSync(join(dir, 'ca', 'ca.crt'), ca.certPem);
  writeSecret(join(dir, 'ca', 'ca.key'), ca.keyPem);

  ensurePrivateDir(join(dir, 'coordinator'));
  ensurePrivateDir(join(dir, 'coordinator', 'state'));
  const server = await issueCertificate(ca, {
    commonName: 'coordinator',
    role: 'server',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
    notBefore: input.now,
    validityDays,
  });
  writeFileSync(join(dir, 'coordinator', 'server.crt'), server.certPem);
  writeSecret(join(dir, 'coordinator', 'server.key'), server.keyPem);
  // The audit log's Ed25519 signing key (checkpoints are C2SP signed notes).
  const logKey = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' });
  writeSecret(join(dir, 'coordinator', 'log.key'), logKey.toString());
  const origin = computeLogOrigin(consortium.consortium);
  const witnesses: Record<string, string> = {};

  const enrolled = consortium.enrollment === true;
  for (const [folder, ids] of [
    ['institutions', enrolled ? [] : consortium.institutions],
    ['operators', consortium.operators],
    ['members', enrolled ? [] : Object.keys(consortium.members ?? {})],
  ] as const) {
    for (const id of ids) {
      ensurePrivateDir(join(dir, folder));
      ensurePrivateDir(join(dir, folder, id));
      const cert = await issueCertificate(ca, {
        commonName: id,
        role: 'client',
        notBefore: input.now,
        validityDays,
      });
      writeFileSync(join(dir, folder, id, 'client.crt'), cert.certPem);
      writeSecret(join(dir, folder, id, 'client.key'), cert.keyPem);
      // Every member has an Ed25519 identity: it signs proposals (and, for institutions, secure
      // aggregation messages and log cosignatures).
      const signing = await issueIdentityCertificate(ca, {
        commonName: id,
        notBefore: input.now,
        validityDays,
      });
      writeFileSync(join(dir, folder, id, 'identity.crt'), signing.certPem);
      writeSecret(join(dir, folder, id, 'identity.key'), signing.keyPem);
      if (folder === 'institutions') {
        witnesses[id] = formatVerifierKey(
          computeWitnessName(consortium.consortium, id),
          readEd25519PublicKey(signing.keyPem),
          0x04,
        );
      }
    }
  }
  consortium = {
    ...consortium,
    log: { origin, key: formatVerifierKey(origin, readEd25519PublicKey(logKey.toString()), 0x01) },
    witnesses,
  };
  writeFileSync(join(dir, 'consortium.json'), JSON.stringify(consortium, null, 2) + '\n');
  return openWorkspace(dir);
}

/** Opens an existing workspace; throws INVALID_CONFIG naming what is missing or wrong. */
export function openWorkspace(dir: string): Workspace {
  const file = join(dir, 'consortium.json');
  let consortium: ConsortiumFile;
  try {
    consortium = consortiumFileSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch (err) {
    throw new EntenteError(
      'INVALID_CONFIG',
      `${file}: missing or not a valid consortium file (run "entente init")`,
      {
        field: 'workspace',
        cause: err,
      },
    );
  }
  const read = (...parts: string[]): string => {
    const p = join(dir, ...parts);
    try {
      return readFileSync(p, 'utf8');
    } catch {
      throw new EntenteError('INVALID_CONFIG', `${p} is missing`, { field: 'workspace' });
    }
  };
  const identity = (folder: string, id: string): TlsIdentity => ({
    certPem: read(folder, id, 'client.crt'),
    keyPem: read(folder, id, 'client.key'),
    caPem: read('ca', 'ca.crt'),
  });
  const checkInstitution = (id: string): void => {
    if (!consortium.institutions.includes(id)) {
      throw new EntenteError('UNKNOWN_PARTICIPANT', `institution "${id}" is not in ${file}`, {
        field: 'institution',
      });
    }
  };
  return {
    dir,
    consortium,
    coordinatorIdentity: () => ({
      certPem: read('coordinator', 'server.crt'),
      keyPem: read('coordinator', 'server.key'),
      caPem: read('ca', 'ca.crt'),
    }),
    institutionIdentity: (id) => {
      checkInstitution(id);
      return identity('institutions', id);
    },
    institutionSigningIdentity: (id) => {
      checkInstitution(id);
      return {
        certPem: read('institutions', id, 'identity.crt'),
        keyPem: read('institutions', id, 'identity.key'),
        caPem: read('ca', 'ca.crt'),
      };
    },
    operatorIdentity: (id) => identity('operators', id ?? consortium.operators[0]!),
    localMember: (id) => {
      const folder = consortium.institutions.includes(id)
        ? 'institutions'
        : consortium.operators.includes(id)
          ? 'operators'
          : consortium.members?.[id]
            ? 'members'
            : undefined;
      if (folder === undefined)
        throw new EntenteError('UNKNOWN_PARTICIPANT', `"${id}" is not in ${file}`, { field: 'member' });
      return {
        tls: identity(folder, id),
        signing: {
          certPem: read(folder, id, 'identity.crt'),
          keyPem: read(folder, id, 'identity.key'),
          caPem: read('ca', 'ca.crt'),
        },
      };
    },
    coordinatorStateDir: () => join(dir, 'coordinator', 'state'),
    certificateAuthority: () => ({ certPem: read('ca', 'ca.crt'), keyPem: read('ca', 'ca.key') }),
    rosterRolesOf: (id) => {
      const roles: string[] = [];
      if (consortium.institutions.includes(id)) roles.push('institution');
      if (consortium.operators.includes(id)) roles.push('coordinator-operator');
      roles.push(...(consortium.members?.[id] ?? []));
      return roles;
    },
    localIdentityCertificates: () => {
      const out = new Map<string, string>();
      for (const [folder, ids] of [
        ['institutions', consortium.institutions],
        ['operators', consortium.operators],
        ['members', Object.keys(consortium.members ?? {})],
      ] as const)
        for (const id of ids) {
          const p = join(dir, folder, id, 'identity.crt');
          if (existsSync(p)) out.set(id, readFileSync(p, 'utf8'));
        }
      return out;
    },
    logSigningKey: () => read('coordinator', 'log.key'),
    endpointFile: () => join(dir, 'coordinator', 'endpoint.json'),
    coordinatorLockFile: () => join(dir, 'coordinator', 'coordinator.lock'),
    writeEndpoint: (url, pid) => {
      const file = join(dir, 'coordinator', 'endpoint.json');
      const temporary = `${file}.${pid}.tmp`;
      writeFileSync(temporary, `${JSON.stringify({ url, pid })}\n`);
      renameSync(temporary, file);
    },
    removeEndpoint: (pid) => {
      const file = join(dir, 'coordinator', 'endpoint.json');
      let recorded: unknown;
      try {
        recorded = (JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown }).pid;
      } catch {
        return;
      }
      if (recorded === pid) rmSync(file, { force: true });
    },
    readEndpoint: () => {
      try {
        const url = (
          JSON.parse(readFileSync(join(dir, 'coordinator', 'endpoint.json'), 'utf8')) as { url: string }
        ).url;
        if (typeof url !== 'string') throw new Error('no url');
        return url;
      } catch {
        throw new EntenteError(
          'UNAVAILABLE',
          'no running coordinator recorded in this workspace (coordinator/endpoint.json)',
          {
            field: 'workspace',
          },
        );
      }
    },
  };
}
