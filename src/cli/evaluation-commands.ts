/**
 * `entente eval …`: pre-registered evaluation plans. `eval plan create` parses a plan locally (every
 * mistake named by its path), prints its digest and opens the approve-evaluation-plan proposal whose
 * subject is the plan, signing it as the caller when the caller is a member of the policy in force;
 * `eval plan sign` checks the plan and its digest before signing; `eval plan show` prints the plan, its
 * signatures, whether it is approved and where the log recorded it. The `eval` group is returned so
 * that the commands running and reporting an evaluation can be added next to `plan`.
 */
import type { Command } from 'commander';
import { type LogEntry, parseLogEntry } from '../audit/index.ts';
import { EntenteError } from '../core/errors.ts';
import {
  computeEvaluationPlanDigest,
  type EvaluationPlan,
  parseEvaluationPlan,
  type Proposal,
} from '../governance/index.ts';
import type { MtlsClient } from '../transport/index.ts';
import { addMemberOptions, type MemberOptions, openMember, signProposalAs } from './governance-commands.ts';
import { readStructuredFile } from './read-file.ts';

const PLAN_KIND = 'approve-evaluation-plan';
const ENTRIES_PER_PAGE = 10_000;

interface ProposalView {
  id: string;
  proposal: Proposal;
  subject: unknown;
  proposer: string;
  status: string;
  missing: string;
  signers: string[];
}

/** What `eval plan create|sign|show --json` print. */
interface PlanView {
  digest: string;
  proposal: string;
  status: string;
  missing: string;
  proposer: string;
  signers: string[];
  /** Log index of the proposal-created entry, and of its approval (null until approved). */
  logIndex: number | null;
  approvedLogIndex: number | null;
  plan: EvaluationPlan;
}

export function checkDigestArgument(value: string, field: string): string {
  if (!/^[0-9a-f]{64}$/.test(value))
    throw new EntenteError('INVALID_ARGUMENT', `${field}: must be 64 lower-case hex digits`, { field });
  return value;
}

/**
 * The plan a proposal carries, checked: an approve-evaluation-plan proposal whose subject parses as a
 * plan whose digest is the proposal's subjectSha256. Anything else is the coordinator misreporting.
 */
function planOfView(view: ProposalView): EvaluationPlan {
  if (view.proposal.kind !== PLAN_KIND)
    throw new EntenteError(
      'INVALID_ARGUMENT',
      `proposal: ${view.id.slice(0, 16)}… is not an evaluation plan`,
      {
        field: 'proposal',
      },
    );
  let plan: EvaluationPlan;
  try {
    plan = parseEvaluationPlan(view.subject);
  } catch {
    throw new EntenteError('PROTOCOL_VIOLATION', 'proposal: its subject is not a valid evaluation plan', {
      field: 'proposal',
    });
  }
  if (computeEvaluationPlanDigest(plan) !== view.proposal.subjectSha256)
    throw new EntenteError('PROTOCOL_VIOLATION', 'proposal: its plan does not hash to subjectSha256', {
      field: 'proposal',
    });
  return plan;
}

/**
 * The approve-evaluation-plan proposal for `ref` (a plan digest or a proposal id): an approved one
 * first, then an open one, then the newest. Throws NOT_FOUND naming `field`.
 */
export async function findPlanProposal(
  client: MtlsClient,
  ref: string,
  field: string,
): Promise<ProposalView> {
  const list = (await client.getJson<{ proposals: ProposalView[] }>('/v1/proposals')).body!.proposals;
  const matching = list.filter(
    (v) => v.proposal.kind === PLAN_KIND && (v.id === ref || v.proposal.subjectSha256 === ref),
  );
  const rank = (v: ProposalView): number => (v.status === 'approved' ? 0 : v.status === 'open' ? 1 : 2);
  matching.sort((a, b) => rank(a) - rank(b) || b.proposal.createdAt.localeCompare(a.proposal.createdAt));
  const found = matching[0];
  if (!found)
    throw new EntenteError('NOT_FOUND', `${field}: no evaluation plan ${ref.slice(0, 16)}… was proposed`, {
      field,
    });
  return found;
}

/** Where the log recorded proposal `id`: its creation and (if any) its approval. */
async function logIndicesOf(
  client: MtlsClient,
  id: string,
): Promise<{ logIndex: number | null; approvedLogIndex: number | null }> {
  let logIndex: number | null = null;
  let approvedLogIndex: number | null = null;
  for (let start = 0; ; start += ENTRIES_PER_PAGE) {
    const r = await client.getJson<{ entries: { index: number; body: string }[] }>(
      `/v1/log/entries?start=${start}&end=${start + ENTRIES_PER_PAGE}`,
      120_000,
    );
    const page = r.body?.entries ?? [];
    for (const e of page) {
      let entry: LogEntry;
      try {
        entry = parseLogEntry(new Uint8Array(Buffer.from(e.body, 'base64')), `entry ${e.index}`);
      } catch {
        continue; // `entente audit verify` reports malformed entries
      }
      if (entry.kind === 'proposal-created' && entry.proposal === id) logIndex = entry.index;
      if (entry.kind === 'proposal-decided' && entry.proposal === id && entry.outcome === 'approved')
        approvedLogIndex = entry.index;
    }
    if (page.length < ENTRIES_PER_PAGE) break;
  }
  return { logIndex, approvedLogIndex };
}

export async function describePlan(client: MtlsClient, view: ProposalView): Promise<PlanView> {
  const plan = planOfView(view);
  return {
    digest: view.proposal.subjectSha256,
    proposal: view.id,
    status: view.status,
    missing: view.missing,
    proposer: view.proposer,
    signers: [...view.signers],
    ...(await logIndicesOf(client, view.id)),
    plan,
  };
}

function formatPlanView(v: PlanView, withPlan: boolean): string {
  const lines = [
    `evaluation plan ${v.digest}`,
    `  "${v.plan.title}" (${v.plan.consortium}), models ${v.plan.models.map((m) => `${m.name} ${m.sha256.slice(0, 12)}…`).join(', ')}`,
    `  proposal ${v.proposal} by ${v.proposer}: ${v.status}${v.status === 'open' ? ` (needs ${v.missing})` : ''}; signed by ${v.signers.join(', ') || 'nobody yet'}`,
    `  log: proposed at entry ${v.logIndex ?? '(not found)'}${v.approvedLogIndex === null ? '' : `, approved at entry ${v.approvedLogIndex}`}`,
  ];
  if (withPlan)
    lines.push(
      `  metrics ${v.plan.metrics.join(', ')}`,
      `  hypothesis ${JSON.stringify(v.plan.hypothesis)}`,
      `  decision rule ${v.plan.decisionRule}`,
    );
  return lines.join('\n');
}

/** True when `member` may sign under the policy in force (a member with a role other than observer). */
async function isSigningMember(client: MtlsClient, member: string): Promise<boolean> {
  const r = await client.getJson<{
    policy: { members: Record<string, { roles: string[] }> } | null;
  }>('/v1/policy');
  const roles = r.body?.policy?.members[member]?.roles ?? [];
  return roles.some((role) => role !== 'observer');
}

export async function withMember<T>(
  opts: MemberOptions,
  fn: (m: ReturnType<typeof openMember>) => Promise<T>,
): Promise<T> {
  const m = openMember(opts);
  try {
    return await fn(m);
  } finally {
    await m.client.close();
  }
}

/** Registers `entente eval` and `eval plan create|sign|show`; returns the `eval` group. */
export function registerEvaluationCommands(program: Command): Command {
  const evaluation = program
    .command('eval')
    .description('pre-registered, blinded evaluations of models against a plan a quorum approved');
  const plan = evaluation
    .command('plan')
    .description('evaluation plans: proposed, signed by members, logged');

  addMemberOptions(
    plan
      .command('create')
      .description(
        'check a plan, print its digest and propose it for approval (signed as the caller when it is a member)',
      )
      .requiredOption('--plan <file>', 'the plan (JSON or YAML)')
      .option('--no-sign', 'do not sign it as the proposer')
      .option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { plan: string; sign: boolean; json?: boolean }) => {
    const parsed = parseEvaluationPlan(readStructuredFile(opts.plan, 'plan'));
    const digest = computeEvaluationPlanDigest(parsed);
    if (!opts.json) console.log(`plan ${digest}`);
    await withMember(opts, async ({ id, client, signingKeyPem }) => {
      let view = (await client.postJson<ProposalView>('/v1/proposals', { kind: PLAN_KIND, subject: parsed }))
        .body;
      if (view.proposal.subjectSha256 !== digest)
        throw new EntenteError(
          'PROTOCOL_VIOLATION',
          'proposal: the coordinator recorded another plan than the one given',
          { field: 'proposal' },
        );
      if (opts.sign && (await isSigningMember(client, id)))
        view = await signProposalAs(client, view.id, id, signingKeyPem);
      const out = await describePlan(client, view);
      console.log(opts.json ? JSON.stringify(out) : formatPlanView(out, false));
    });
  });

  addMemberOptions(
    plan
      .command('sign')
      .description("sign a plan's approval with this member's identity key (after checking the plan)")
      .argument('<ref>', 'the plan digest or its proposal id')
      .option('--json', 'print JSON'),
  ).action(async (ref: string, opts: MemberOptions & { json?: boolean }) => {
    checkDigestArgument(ref, 'ref');
    await withMember(opts, async ({ id, client, signingKeyPem }) => {
      const found = await findPlanProposal(client, ref, 'ref');
      planOfView(found);
      const view = await signProposalAs(client, found.id, id, signingKeyPem);
      const out = await describePlan(client, view);
      console.log(opts.json ? JSON.stringify(out) : formatPlanView(out, false));
    });
  });

  addMemberOptions(
    plan
      .command('show')
      .description('show a plan, its signatures, whether it is approved, and where the log recorded it')
      .argument('<digest>', 'the plan digest (or its proposal id)')
      .option('--json', 'print JSON'),
  ).action(async (ref: string, opts: MemberOptions & { json?: boolean }) => {
    checkDigestArgument(ref, 'digest');
    await withMember(opts, async ({ client }) => {
      const out = await describePlan(client, await findPlanProposal(client, ref, 'digest'));
      console.log(opts.json ? JSON.stringify(out) : formatPlanView(out, true));
    });
  });

  return evaluation;
}
