/**
 * The demo's governance path (issue 6), as a real consortium would walk it: the operator creates one-time
 * tokens; each member enrolls on "its own machine" (its own site directory: keys made there, only CSRs
 * sent); the founding policy is proposed and adopted only once its own adoptPolicy quorum has signed;
 * the run starts only when the startRun quorum has signed; the final model is released by the
 * releaseModel quorum. Every step goes over mutual TLS to the coordinator and lands in the audit log.
 */
import { join } from 'node:path';
import { formatVerifierKey } from '../audit/index.ts';
import { readEd25519PublicKey } from '../crypto/signatures.ts';
import { type Proposal, signProposal } from '../governance/index.ts';
import { type SiteDir, type Workspace, computeWitnessName, openSiteDir } from '../storage/index.ts';
import { type MtlsClient, createMtlsClient } from '../transport/index.ts';
import { spawnEntente } from './process-federation.ts';

export const DEMO_AUDITOR = 'auditor';

interface ProposalView {
  id: string;
  proposal: Proposal;
  status: string;
  missing: string;
  signers: string[];
}

/** The demo consortium's policy: who is who, what may be exchanged, which quorum decides what. */
export function createDemoPolicy(input: {
  consortium: string;
  operator: string;
  institutions: readonly string[];
  dataSchemaDigest: string;
}): Record<string, unknown> {
  const hospitals = [...input.institutions];
  return {
    version: 1,
    consortium: input.consortium,
    members: {
      [input.operator]: { roles: ['coordinator-operator'] },
      ...Object.fromEntries(hospitals.map((id) => [id, { roles: ['institution'] }])),
      [DEMO_AUDITOR]: { roles: ['auditor'] },
    },
    exchange: {
      tensors: 'model-deltas',
      metrics: ['loss', 'accuracy'],
      maxRounds: 100,
      minParticipantsPerRound: 3,
      secureAggregation: 'required',
      differentialPrivacy: { required: false, delta: 1e-5 },
      clipping: {},
      dataSchemaDigests: [input.dataSchemaDigest],
    },
    agreements: [],
    approvals: {
      adoptPolicy: { all: [{ of: 2, members: hospitals }, { member: DEMO_AUDITOR }] },
      admitMember: { of: 2, members: hospitals },
      startRun: { all: [{ member: input.operator }, { of: 2, members: hospitals }] },
      releaseModel: { all: [{ member: DEMO_AUDITOR }, { of: 1, members: hospitals }] },
      resumeAfterIncident: { of: 2, members: hospitals },
    },
  };
}

export interface DemoMembers {
  readonly sites: Map<string, SiteDir>;
  /** Each institution's witness vkey, from the identity key it made itself (what an auditor trusts). */
  readonly witnesses: string[];
  close(): Promise<void>;
  sign(member: string, proposalId: string): Promise<ProposalView>;
}

/** Tokens from the operator, then each member enrolls into `<dir>/sites/<id>` over real TLS. */
export async function enrollDemoMembers(input: {
  url: string;
  ws: Workspace;
  operator: MtlsClient;
  members: readonly string[];
  dir: string;
}): Promise<DemoMembers> {
  const sites = new Map<string, SiteDir>();
  const tokens = new Map<string, string>();
  for (const member of input.members) {
    const { token } = (
      await input.operator.postJson<{ token: string }>('/v1/enrollment/tokens', { member, ttlMinutes: 10 })
    ).body;
    tokens.set(member, token);
  }
  // Each member enrolls with its own `entente participant enroll` process: keys made in its folder,
  // only CSRs and the token sent.
  await Promise.all(
    [...tokens].map(async ([member, token]) => {
      const dir = join(input.dir, 'sites', member);
      const child = spawnEntente(`enroll:${member}`, [
        'participant',
        'enroll',
        '--coordinator',
        input.url,
        '--token',
        token,
        '--dir',
        dir,
      ]);
      const code = await child.exited;
      if (code !== 0)
        throw new Error(`${member} could not enroll (exit ${code}): ${child.stderr().slice(-1000)}`);
      sites.set(member, openSiteDir(dir));
    }),
  );
  const clients = new Map<string, MtlsClient>();
  const clientOf = (member: string): { client: MtlsClient; keyPem: string } => {
    const site = sites.get(member);
    if (site) {
      let c = clients.get(member);
      if (!c) {
        c = createMtlsClient({ baseUrl: input.url, ...site.tlsIdentity() });
        clients.set(member, c);
      }
      return { client: c, keyPem: site.signingIdentity().keyPem };
    }
    return { client: input.operator, keyPem: input.ws.localMember(member).signing.keyPem };
  };
  return {
    sites,
    witnesses: [...sites.entries()]
      .filter(([id]) => input.ws.consortium.institutions.includes(id))
      .map(([id, site]) =>
        formatVerifierKey(
          computeWitnessName(input.ws.consortium.consortium, id),
          readEd25519PublicKey(site.signingIdentity().keyPem),
          0x04,
        ),
      ),
    async close() {
      for (const c of clients.values()) await c.close();
    },
    async sign(member, proposalId) {
      const { client, keyPem } = clientOf(member);
      const view = (await client.getJson<ProposalView>(`/v1/proposals/${proposalId}`)).body!;
      const sig = signProposal(view.proposal, member, keyPem);
      return (
        await client.postJson<ProposalView>(`/v1/proposals/${proposalId}/signatures`, {
          signature: Buffer.from(sig.signature).toString('base64'),
        })
      ).body;
    },
  };
}

/** Signs `proposalId` by each of `signers` in turn until it is approved; throws if it never is. */
export async function approveByQuorum(
  members: DemoMembers,
  proposalId: string,
  signers: readonly string[],
  log: (line: string) => void,
): Promise<ProposalView> {
  let view: ProposalView | undefined;
  for (const signer of signers) {
    view = await members.sign(signer, proposalId);
    log(`  ${signer} signed; ${view.status === 'approved' ? 'approved' : `still needs ${view.missing}`}`);
    if (view.status === 'approved') return view;
  }
  throw new Error(`proposal ${proposalId} was not approved by ${signers.join(', ')}`);
}
