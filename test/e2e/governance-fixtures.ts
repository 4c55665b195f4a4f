/**
 * A governed consortium for end-to-end tests: a workspace in enrollment mode (only the coordinator's
 * side is made), an in-process coordinator over real mutual TLS, members enrolled with one-time tokens
 * into their own site folders, and (unless `adopt: false`) policy v1 adopted by its quorum.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/index.ts';
import { createSeededRng } from '../../src/crypto/index.ts';
import { parseCsv, partitionIid } from '../../src/data/index.ts';
import { type ChildHandle, DATASET_DIR, spawnEntente } from '../../src/simulation/index.ts';
import { type Proposal, signProposal } from '../../src/governance/index.ts';
import { enrollMember } from '../../src/participant/index.ts';
import { type SiteDir, type Workspace, createWorkspace, writePrivateFile } from '../../src/storage/index.ts';
import { type MtlsClient, createMtlsClient } from '../../src/transport/index.ts';
import { SCHEMA_PATH } from './fixtures.ts';

export interface ProposalView {
  id: string;
  proposal: Proposal;
  subject: unknown;
  status: string;
  missing: string;
  signers: string[];
}

export interface GovernedConsortium {
  readonly dir: string;
  readonly ws: Workspace;
  readonly coordinator: RunningCoordinator;
  readonly url: string;
  /** The operator's client (its certificate was made by init, on the coordinator's side). */
  readonly operator: MtlsClient;
  readonly sites: Map<string, SiteDir>;
  readonly policy: Record<string, unknown>;
  /** A client with `member`'s certificate (the operator's for the operator). */
  clientOf(member: string): MtlsClient;
  /** `member` signs proposal `id` with its own identity key. */
  sign(member: string, id: string): Promise<ProposalView>;
  /** Proposes (as `proposer`) and returns the proposal. */
  propose(proposer: string, kind: string, subject: unknown): Promise<ProposalView>;
  /** Enrolls one more member (it must be in the roster or the policy in force). */
  enroll(member: string): Promise<SiteDir>;
  close(): Promise<void>;
}

export const OPERATOR = 'operator';

/** The default test policy over the given members; approvals need 2 of the institutions (+ auditor). */
export function createTestPolicy(input: {
  institutions: readonly string[];
  auditors?: readonly string[];
  observers?: readonly string[];
  stewards?: readonly string[];
  dataSchemaDigest?: string;
}): Record<string, unknown> {
  const members: Record<string, { roles: string[] }> = { [OPERATOR]: { roles: ['coordinator-operator'] } };
  for (const id of input.institutions) members[id] = { roles: ['institution'] };
  for (const id of input.auditors ?? []) members[id] = { roles: ['auditor'] };
  for (const id of input.observers ?? []) members[id] = { roles: ['observer'] };
  for (const id of input.stewards ?? []) members[id] = { roles: ['data-steward'] };
  const two = { of: 2, members: [...input.institutions] };
  return {
    version: 1,
    consortium: 'test',
    members,
    exchange: {
      tensors: 'model-deltas',
      metrics: ['loss', 'accuracy'],
      maxRounds: 50,
      minParticipantsPerRound: 3,
      secureAggregation: 'required',
      differentialPrivacy: { required: false, delta: 1e-5 },
      clipping: {},
      dataSchemaDigests: [input.dataSchemaDigest ?? 'a'.repeat(64)],
    },
    agreements: [],
    approvals: {
      adoptPolicy: two,
      admitMember: two,
      startRun: { all: [{ member: OPERATOR }, two] },
      releaseModel: two,
      resumeAfterIncident: two,
    },
  };
}

export async function startGovernedConsortium(
  input: {
    institutions?: readonly string[];
    auditors?: readonly string[];
    observers?: readonly string[];
    stewards?: readonly string[];
    /** Adopt the policy (default true): signed by every member it lists (a founding policy needs all). */
    adopt?: boolean;
    policy?: Record<string, unknown>;
    certificateDays?: number;
    dataSchemaDigest?: string;
    /** The coordinator's liveness window and heartbeat (shorter: a stopped site is noticed sooner). */
    livenessMs?: number;
    heartbeatMs?: number;
  } = {},
): Promise<GovernedConsortium> {
  const institutions = input.institutions ?? ['alpha', 'beta', 'gamma'];
  const dir = mkdtempSync(join(tmpdir(), 'entente-gov-'));
  const roster: Record<string, ('auditor' | 'observer' | 'data-steward')[]> = {};
  for (const id of input.auditors ?? []) roster[id] = ['auditor'];
  for (const id of input.observers ?? []) roster[id] = ['observer'];
  for (const id of input.stewards ?? []) roster[id] = ['data-steward'];
  const ws = await createWorkspace(dir, {
    consortium: 'test',
    institutions,
    members: roster,
    enrollment: true,
    ...(input.certificateDays ? { certificateDays: input.certificateDays } : {}),
    now: new Date(),
  });
  const coordinator = await startCoordinator({
    workspaceDir: dir,
    port: 0,
    // ENTENTE_CHILD_LOG_DIR (debugging): the coordinator's log too, beside the children's.
    log: process.env.ENTENTE_CHILD_LOG_DIR
      ? pino({ level: 'info' }, pino.destination(join(process.env.ENTENTE_CHILD_LOG_DIR, 'coordinator.log')))
      : pino({ level: 'silent' }),
    ...(input.livenessMs ? { livenessMs: input.livenessMs } : {}),
    ...(input.heartbeatMs ? { heartbeatMs: input.heartbeatMs } : {}),
  });
  const url = coordinator.url;
  const operator = createMtlsClient({ baseUrl: url, ...ws.operatorIdentity() });
  const sites = new Map<string, SiteDir>();
  const clients = new Map<string, MtlsClient>();
  const clientOf = (member: string): MtlsClient => {
    if (member === OPERATOR) return operator;
    let c = clients.get(member);
    if (!c) {
      const site = sites.get(member);
      if (!site) throw new Error(`${member} is not enrolled`);
      c = createMtlsClient({ baseUrl: url, ...site.tlsIdentity() });
      clients.set(member, c);
    }
    return c;
  };
  const enroll = async (member: string): Promise<SiteDir> => {
    const { token } = (await operator.postJson<{ token: string }>('/v1/enrollment/tokens', { member })).body;
    const { site } = await enrollMember({ coordinatorUrl: url, token, dir: join(dir, 'sites', member) });
    sites.set(member, site);
    return site;
  };
  const sign = async (member: string, id: string): Promise<ProposalView> => {
    const client = clientOf(member);
    const keyPem =
      member === OPERATOR
        ? ws.localMember(OPERATOR).signing.keyPem
        : sites.get(member)!.signingIdentity().keyPem;
    const view = (await client.getJson<ProposalView>(`/v1/proposals/${id}`)).body!;
    const sig = signProposal(view.proposal, member, keyPem);
    return (
      await client.postJson<ProposalView>(`/v1/proposals/${id}/signatures`, {
        signature: Buffer.from(sig.signature).toString('base64'),
      })
    ).body;
  };
  const propose = async (proposer: string, kind: string, subject: unknown): Promise<ProposalView> =>
    (await clientOf(proposer).postJson<ProposalView>('/v1/proposals', { kind, subject })).body;

  for (const id of [...institutions, ...Object.keys(roster)]) await enroll(id);
  const policy =
    input.policy ??
    createTestPolicy({
      institutions,
      ...(input.auditors ? { auditors: input.auditors } : {}),
      ...(input.observers ? { observers: input.observers } : {}),
      ...(input.stewards ? { stewards: input.stewards } : {}),
      ...(input.dataSchemaDigest ? { dataSchemaDigest: input.dataSchemaDigest } : {}),
    });
  if (input.adopt !== false) {
    // A founding policy needs the signature of every member it lists but observers (each consents to the roster).
    const p = await propose(OPERATOR, 'adopt-policy', policy);
    let done: ProposalView | undefined;
    for (const [member, { roles }] of Object.entries(policy.members as Record<string, { roles: string[] }>))
      if ((member === OPERATOR || sites.has(member)) && roles.some((r) => r !== 'observer'))
        done = await sign(member, p.id);
    if (done?.status !== 'approved') throw new Error(`policy not adopted: needs ${done?.missing}`);
  }
  return {
    dir,
    ws,
    coordinator,
    url,
    operator,
    sites,
    policy,
    clientOf,
    sign,
    propose,
    enroll,
    async close() {
      for (const c of clients.values()) await c.close();
      await operator.close();
      await coordinator.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes an IID split of the breast cancer data as `<site>/data.csv` for each of `ids`; returns the paths. */
export function writeSiteData(
  sites: ReadonlyMap<string, SiteDir>,
  ids: readonly string[],
): Map<string, string> {
  const table = parseCsv(readFileSync(join(DATASET_DIR, 'breast-cancer.csv'), 'utf8'));
  const parts = partitionIid(table.rows.length, ids.length, createSeededRng('e2e/partition'));
  const out = new Map<string, string>();
  ids.forEach((id, k) => {
    const path = join(sites.get(id)!.dir, 'data.csv');
    const lines = [table.header.join(','), ...parts[k]!.map((i) => table.rows[i]!.join(','))];
    writePrivateFile(path, `${lines.join('\n')}\n`);
    out.set(id, path);
  });
  return out;
}

/** Starts one participant process from its site folder (`participant start --site`). */
export function startSite(site: SiteDir, csv: string, extra: readonly string[] = []): ChildHandle {
  return spawnEntente(site.site.member, [
    'participant',
    'start',
    '--site',
    site.dir,
    '--data',
    csv,
    '--schema',
    SCHEMA_PATH,
    ...extra,
  ]);
}
