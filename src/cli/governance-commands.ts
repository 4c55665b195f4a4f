/**
 * Governance commands (issue 6): enrollment on a member's own machine, renewal, tokens and revocation,
 * proposals signed locally with the member's identity key, incidents, dry runs, model releases and the
 * governance report. A member acts either from its site directory (`--site`, after enrolling) or, in a
 * local workspace made by `entente init`, as one of its members (`--workspace W --as ID`).
 */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { EntenteError } from '../core/errors.ts';
import { makeOutputDir, parseHttpsUrl, parseInteger, writeOutputFile } from './parse-options.ts';
import { readStructuredFile } from './read-file.ts';
import { canonicalizeJson, sha256Hex } from '../crypto/index.ts';
import {
  type DrillView,
  type GovernanceReportData,
  type Proposal,
  renderGovernanceReportHtml,
  renderGovernanceReportMarkdown,
  signProposal,
} from '../governance/index.ts';
import { computeBuiltinTrainerDigest, enrollMember, renewMember } from '../participant/index.ts';
import { openSiteDir, openWorkspace } from '../storage/index.ts';
import { type MtlsClient, createMtlsClient } from '../transport/index.ts';

export interface MemberOptions {
  site?: string;
  workspace?: string;
  as?: string;
}

/** Who is acting: its id, a client for the coordinator, and its identity key (secret) for signing. */
export function openMember(opts: MemberOptions): { id: string; client: MtlsClient; signingKeyPem: string } {
  if (opts.site) {
    const site = openSiteDir(resolve(opts.site));
    return {
      id: site.site.member,
      client: createMtlsClient({ baseUrl: site.site.coordinator, ...site.tlsIdentity() }),
      signingKeyPem: site.signingIdentity().keyPem,
    };
  }
  if (!opts.workspace)
    throw new EntenteError('INVALID_ARGUMENT', '--site or --workspace: say which member acts', {
      field: 'site',
    });
  const ws = openWorkspace(resolve(opts.workspace));
  const id = opts.as ?? ws.consortium.operators[0]!;
  const member = ws.localMember(id);
  return {
    id,
    client: createMtlsClient({ baseUrl: ws.readEndpoint(), ...member.tls }),
    signingKeyPem: member.signing.keyPem,
  };
}

/** Adds --site, --workspace and --as (who acts) to `cmd`. */
export function addMemberOptions(cmd: Command): Command {
  return cmd
    .option('--site <dir>', "this member's site directory (made by participant enroll)")
    .option('--workspace <dir>', 'a local workspace made by entente init')
    .option('--as <member>', 'with --workspace: act as this member (default: the first operator)');
}

/** One drill as the log records it: status, time to recover, each step. */
function describeDrill(d: DrillView): string {
  const ttr =
    d.timeToRecoverMs === null ? '' : `, time to recover ${(d.timeToRecoverMs / 1000).toFixed(1)} s`;
  const who = d.scheduled ? 'on schedule' : `by ${d.by}`;
  const lines = [`${d.drill} (incident ${d.incident}, alias "${d.alias}", ${who}): ${d.status}${ttr}`];
  for (const s of d.steps) lines.push(`  ${s.ok ? 'ok    ' : 'FAILED'} ${s.step}: ${s.detail}`);
  return lines.join('\n');
}

async function withMember<T>(
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

interface ProposalView {
  id: string;
  proposal: Proposal;
  subject: unknown;
  proposer: string;
  status: string;
  missing: string;
  signers: string[];
}

function describe(view: ProposalView): string {
  return `proposal ${view.id}\n  kind ${view.proposal.kind}, proposed by ${view.proposer} at ${view.proposal.createdAt}\n  status ${view.status}${view.status === 'open' ? ` (needs ${view.missing})` : ''}; signed by ${view.signers.join(', ') || 'nobody yet'}`;
}

/** Signs proposal `id` after checking that its subject is what the proposal commits to. */
export async function signProposalAs(
  client: MtlsClient,
  id: string,
  signer: string,
  keyPem: string,
): Promise<ProposalView> {
  const view = (await client.getJson<ProposalView>(`/v1/proposals/${id}`)).body!;
  const digest = sha256Hex(new TextEncoder().encode(canonicalizeJson(view.subject)));
  if (digest !== view.proposal.subjectSha256)
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      'proposal: its subject does not match subjectSha256; not signing',
      {
        field: 'proposal',
      },
    );
  const sig = signProposal(view.proposal, signer, keyPem);
  return (
    await client.postJson<ProposalView>(`/v1/proposals/${id}/signatures`, {
      signature: Buffer.from(sig.signature).toString('base64'),
    })
  ).body;
}

export function registerGovernanceCommands(program: Command, participant: Command, run: Command): void {
  participant
    .command('enroll')
    .description('enroll this machine: keys are made here, only CSRs and the one-time token are sent')
    .requiredOption('--coordinator <url>', 'the coordinator URL (https://host:port)', (v: string) =>
      parseHttpsUrl(v, '--coordinator'),
    )
    .requiredOption('--token <token>', 'the one-time enrollment token the consortium operator gave you')
    .requiredOption('--dir <dir>', 'site directory to create (keys are written with mode 0600)')
    .option(
      '--rotate-from <dir>',
      "this member's earlier site directory: its identity key signs the move to the new key (else the new key needs a replace-identity-key quorum)",
    )
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        coordinator: string;
        token: string;
        dir: string;
        rotateFrom?: string;
        json?: boolean;
      }) => {
        const { site, identityKey } = await enrollMember({
          coordinatorUrl: opts.coordinator,
          token: opts.token,
          dir: resolve(opts.dir),
          rotateFrom: opts.rotateFrom === undefined ? undefined : resolve(opts.rotateFrom),
        });
        if (opts.json) console.log(JSON.stringify({ dir: site.dir, ...site.site, identityKey }));
        else
          console.log(
            `enrolled ${site.site.member} in ${site.site.consortium} as ${site.site.roles.join(', ')}; certificates valid until ${site.site.notAfter}; site directory ${site.dir}; identity key ${identityKey}`,
          );
      },
    );
  participant
    .command('rotate')
    .description("renew this member's certificates (a new TLS key; the identity key is kept)")
    .requiredOption('--dir <dir>', 'site directory')
    .option('--json', 'print JSON')
    .action(async (opts: { dir: string; json?: boolean }) => {
      const site = await renewMember({ dir: resolve(opts.dir) });
      if (opts.json) console.log(JSON.stringify({ dir: site.dir, ...site.site }));
      else console.log(`renewed ${site.site.member}: certificates valid until ${site.site.notAfter}`);
    });

  participant
    .command('trainer-digest')
    .description(
      "print the SHA-256 of this installation's built-in trainer code (pin it in allowedTrainerDigests)",
    )
    .action(() => {
      console.log(computeBuiltinTrainerDigest());
    });

  const enrollment = program.command('enrollment').description('enrollment tokens (coordinator operator)');
  addMemberOptions(
    enrollment
      .command('token')
      .description('create a one-time enrollment token for a member of the policy in force (shown once)')
      .requiredOption('--member <id>', 'member id')
      .option(
        '--ttl-minutes <n>',
        'minutes the token stays valid',
        (v: string) => parseInteger(v, '--ttl-minutes', 1, 7 * 24 * 60),
        60,
      )
      .option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { member: string; ttlMinutes: number; json?: boolean }) => {
    await withMember(opts, async ({ client }) => {
      const r = await client.postJson<{ member: string; token: string; expiresAt: string }>(
        '/v1/enrollment/tokens',
        {
          member: opts.member,
          ttlMinutes: opts.ttlMinutes,
        },
      );
      if (opts.json) console.log(JSON.stringify(r.body));
      else
        console.log(
          `${r.body.token}\n(one-time token for ${r.body.member}, valid until ${r.body.expiresAt})`,
        );
    });
  });

  const certificate = program.command('certificate').description('certificates (revocation)');
  addMemberOptions(
    certificate
      .command('revoke')
      .description("revoke a member's certificates (refused on its next request)")
      .requiredOption('--member <id>', 'member id')
      .option('--serial <hex>', 'only this certificate')
      .requiredOption('--reason <text>', 'why')
      .option('--json', 'print JSON'),
  ).action(
    async (opts: MemberOptions & { member: string; serial?: string; reason: string; json?: boolean }) => {
      await withMember(opts, async ({ client }) => {
        const r = await client.postJson<{ revoked: string[] }>('/v1/certificates/revoke', {
          member: opts.member,
          ...(opts.serial ? { serial: opts.serial } : {}),
          reason: opts.reason,
        });
        console.log(
          opts.json
            ? JSON.stringify(r.body)
            : `revoked ${r.body.revoked.length} certificate(s) of ${opts.member}`,
        );
      });
    },
  );

  const proposal = program.command('proposal').description('governance proposals, signed by members');
  addMemberOptions(
    proposal
      .command('create')
      .description(
        'propose a change: adopt-policy, admit-member, start-run, release-model, resume-runs, replace-identity-key, cancel-run, approve-evaluation-plan (or: eval plan create), move-alias (or: model alias propose), approve-rollout, rollback',
      )
      .requiredOption(
        '--kind <kind>',
        'adopt-policy | admit-member | start-run | release-model | resume-runs | replace-identity-key | cancel-run | approve-evaluation-plan | move-alias | approve-rollout | rollback',
      )
      .option(
        '--subject <file>',
        'YAML/JSON: the policy, {member, roles}, the run config, {run}, {member} (its presented key), {alias, version}, a rollout plan, or {rollout, reason}',
      )
      .option('--sign', 'also sign it as the proposer')
      .option('--json', 'print JSON'),
  ).action(
    async (opts: MemberOptions & { kind: string; subject?: string; sign?: boolean; json?: boolean }) => {
      await withMember(opts, async ({ id, client, signingKeyPem }) => {
        const subject = opts.subject ? readStructuredFile(opts.subject, 'subject') : {};
        let view = (await client.postJson<ProposalView>('/v1/proposals', { kind: opts.kind, subject })).body;
        if (opts.sign) view = await signProposalAs(client, view.id, id, signingKeyPem);
        console.log(opts.json ? JSON.stringify(view) : describe(view));
      });
    },
  );
  addMemberOptions(
    proposal
      .command('sign')
      .description("sign a proposal with this member's identity key (after checking its subject)")
      .argument('<id>', 'proposal id')
      .option('--json', 'print JSON'),
  ).action(async (pid: string, opts: MemberOptions & { json?: boolean }) => {
    await withMember(opts, async ({ id, client, signingKeyPem }) => {
      const view = await signProposalAs(client, pid, id, signingKeyPem);
      console.log(opts.json ? JSON.stringify(view) : describe(view));
    });
  });
  addMemberOptions(
    proposal
      .command('show')
      .description('show a proposal and its subject')
      .argument('<id>', 'proposal id')
      .option('--json', 'print JSON'),
  ).action(async (pid: string, opts: MemberOptions & { json?: boolean }) => {
    await withMember(opts, async ({ client }) => {
      const view = (await client.getJson<ProposalView>(`/v1/proposals/${pid}`)).body!;
      console.log(
        opts.json ? JSON.stringify(view) : `${describe(view)}\n  subject ${JSON.stringify(view.subject)}`,
      );
    });
  });
  addMemberOptions(
    proposal.command('list').description('list proposals').option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { json?: boolean }) => {
    await withMember(opts, async ({ client }) => {
      const r = (await client.getJson<{ proposals: ProposalView[] }>('/v1/proposals')).body!;
      console.log(opts.json ? JSON.stringify(r) : r.proposals.map(describe).join('\n') || 'no proposals');
    });
  });

  const incident = program.command('incident').description('incidents: any member can pause new rounds');
  addMemberOptions(
    incident
      .command('raise')
      .description('raise an incident: new rounds pause at once until a quorum resumes them')
      .requiredOption('--reason <text>', 'what happened')
      .option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { reason: string; json?: boolean }) => {
    await withMember(opts, async ({ client }) => {
      const r = (await client.postJson<{ incident: string }>('/v1/incidents', { reason: opts.reason })).body;
      console.log(opts.json ? JSON.stringify(r) : `incident ${r.incident} raised: new rounds are paused`);
    });
  });
  addMemberOptions(
    incident.command('list').description('list incidents').option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { json?: boolean }) => {
    await withMember(opts, async ({ client }) => {
      const r = (await client.getJson('/v1/incidents')).body;
      console.log(opts.json ? JSON.stringify(r) : JSON.stringify(r, null, 2));
    });
  });
  addMemberOptions(
    incident
      .command('resume')
      .description(
        'resume rounds: under a policy this proposes resume-runs (the quorum decides); else an operator resumes',
      )
      .option('--sign', 'also sign the resume-runs proposal')
      .option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { sign?: boolean; json?: boolean }) => {
    await withMember(opts, async ({ id, client, signingKeyPem }) => {
      const policy = (await client.getJson<{ policy: unknown }>('/v1/policy')).body!;
      if (policy.policy === null) {
        const r = (await client.postJson('/v1/incidents/resume', {})).body;
        console.log(opts.json ? JSON.stringify(r) : `resumed: ${JSON.stringify(r)}`);
        return;
      }
      let view = (await client.postJson<ProposalView>('/v1/proposals', { kind: 'resume-runs', subject: {} }))
        .body;
      if (opts.sign) view = await signProposalAs(client, view.id, id, signingKeyPem);
      console.log(opts.json ? JSON.stringify(view) : describe(view));
    });
  });

  const drill = incident
    .command('drill')
    .description('incident drills: rehearse the playbook (pause, rollback rehearsal, quorum resume)');
  addMemberOptions(
    drill
      .command('start')
      .description(
        'start a drill: raises an incident (new rounds pause), checks the pause and rehearses a rollback of the alias; it ends when the incident is resumed the normal way',
      )
      .option('--alias <name>', 'the alias whose rollback is rehearsed', 'production')
      .option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { alias: string; json?: boolean }) => {
    await withMember(opts, async ({ client }) => {
      const r = (await client.postJson<{ drill: DrillView }>('/v1/incidents/drills', { alias: opts.alias }))
        .body;
      console.log(
        opts.json
          ? JSON.stringify(r.drill)
          : `${describeDrill(r.drill)}\nnew rounds are paused until incident ${r.drill.incident} is resumed (entente incident resume)`,
      );
    });
  });
  addMemberOptions(
    drill
      .command('list')
      .description('list drills: status, steps, time to recover')
      .option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { json?: boolean }) => {
    await withMember(opts, async ({ client }) => {
      const r = (await client.getJson<{ paused: boolean; drills: DrillView[] }>('/v1/incidents/drills'))
        .body!;
      console.log(opts.json ? JSON.stringify(r) : r.drills.map(describeDrill).join('\n') || 'no drills');
    });
  });

  addMemberOptions(
    run
      .command('plan')
      .description(
        'dry run: check a proposed run against the policy and every site before any data is touched',
      )
      .argument('<config>', 'run configuration (YAML or JSON)')
      .option(
        '--wait-ms <ms>',
        'how long sites have to answer',
        (v: string) => parseInteger(v, '--wait-ms', 0, 120_000),
        15_000,
      )
      .option('--json', 'print {"go":bool,"reasons":[…]}'),
  ).action(async (file: string, opts: MemberOptions & { waitMs: number; json?: boolean }) => {
    const config = readStructuredFile(file, 'config');
    const out = await withMember(
      opts,
      async ({ client }) =>
        (
          await client.postJson<{
            go: boolean;
            reasons: string[];
            checks: { check: string; ok: boolean; message: string }[];
          }>('/v1/runs/plan', { config, waitMs: opts.waitMs }, opts.waitMs + 30_000)
        ).body,
    );
    if (opts.json) console.log(JSON.stringify(out));
    else {
      console.log(out.go ? 'GO' : 'NO-GO');
      for (const c of out.checks) console.log(`  ${c.ok ? 'ok ' : 'NO '} ${c.message}`);
    }
    if (!out.go) process.exitCode = 5;
  });
  addMemberOptions(
    run
      .command('release')
      .description("propose releasing a completed run's final model (the release-model quorum decides)")
      .argument('<runId>', 'run id')
      .option('--sign', 'also sign it')
      .option('--json', 'print JSON'),
  ).action(async (runId: string, opts: MemberOptions & { sign?: boolean; json?: boolean }) => {
    await withMember(opts, async ({ id, client, signingKeyPem }) => {
      let view = (
        await client.postJson<ProposalView>('/v1/proposals', {
          kind: 'release-model',
          subject: { run: runId },
        })
      ).body;
      if (opts.sign) view = await signProposalAs(client, view.id, id, signingKeyPem);
      console.log(opts.json ? JSON.stringify(view) : describe(view));
    });
  });

  const report = program.command('report').description('reports');
  addMemberOptions(
    report
      .command('governance')
      .description(
        'write the governance report (Markdown and HTML): members, policies, approvals, runs, ε, incidents',
      )
      .requiredOption('--out <dir>', 'directory for governance-report.md and governance-report.html'),
  ).action(async (opts: MemberOptions & { out: string }) => {
    const data = await withMember(
      opts,
      async ({ client }) => (await client.getJson<GovernanceReportData>('/v1/report/governance')).body!,
    );
    const dir = resolve(opts.out);
    makeOutputDir(dir, '--out');
    writeOutputFile(join(dir, 'governance-report.md'), renderGovernanceReportMarkdown(data), '--out');
    writeOutputFile(join(dir, 'governance-report.html'), renderGovernanceReportHtml(data), '--out');
    console.log(`wrote ${join(dir, 'governance-report.md')} and ${join(dir, 'governance-report.html')}`);
  });
}
