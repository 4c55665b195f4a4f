/**
 * `entente rollout …`: staged rollouts of a model version. `propose` puts a rollout plan to the quorum
 * (an approve-rollout proposal; members sign it with `proposal sign`), `digest` prints a plan's
 * identity, `start` has the coordinator run an approved plan (operator), `status` shows each rollout's
 * stage, sites, gates and outcome, `rollback` proposes a manual rollback to the quorum.
 */
import type { Command } from 'commander';
import { EntenteError } from '../core/errors.ts';
import { computeRolloutPlanDigest, parseRolloutPlan } from '../governance/index.ts';
import { checkDigestArgument, withMember } from './evaluation-commands.ts';
import { type MemberOptions, addMemberOptions, signProposalAs } from './governance-commands.ts';
import { readStructuredFile } from './read-file.ts';

interface GateView {
  stage: string;
  outcome: string;
  rows: number;
  figures: Record<string, Record<string, number | null>>;
  contributors: string[];
  logIndex: number;
}

/** What the coordinator shows of a rollout (GET /v1/rollouts/:digest). */
export interface RolloutView {
  rollout: string;
  title: string;
  status: string;
  candidate: string;
  production: string | null;
  alias: string;
  stageName: string;
  stages: string[];
  sites: string[] | null;
  checkpoint: { size: number; rootHash: string } | null;
  gates: GateView[];
  rolledBack?: { cause: string; by?: string; logIndex: number };
  completed?: { logIndex: number; aliasMoved: boolean };
  failure?: string;
}

const fmt = (v: number | null | undefined): string => (typeof v === 'number' ? v.toFixed(4) : '—');

export function describeRollout(v: RolloutView): string {
  const lines = [
    `rollout ${v.rollout.slice(0, 12)}… "${v.title}": ${v.status} (stage ${v.stageName} of ${v.stages.join(' → ')})`,
    `  candidate ${v.candidate.slice(0, 12)}… replaces ${v.production?.slice(0, 12) ?? 'nothing'}… as "${v.alias}"`,
  ];
  if (v.sites)
    lines.push(
      `  sites ${v.sites.join(', ')}${v.checkpoint ? ` (drawn from checkpoint ${v.checkpoint.size})` : ''}`,
    );
  for (const g of v.gates)
    lines.push(
      `  gate ${g.stage}: ${g.outcome} on ${g.rows} rows (candidate accuracy ${fmt(g.figures.candidate?.accuracy)}, production ${fmt(g.figures.production?.accuracy)}, McNemar p ${fmt(g.figures.paired?.mcnemarP)}; log entry ${g.logIndex})`,
    );
  if (v.rolledBack)
    lines.push(
      `  rolled back: ${v.rolledBack.cause}${v.rolledBack.by ? ` (${v.rolledBack.by})` : ''} (log entry ${v.rolledBack.logIndex})`,
    );
  if (v.completed)
    lines.push(
      `  completed (log entry ${v.completed.logIndex}); alias ${v.completed.aliasMoved ? 'moved' : 'NOT moved (it moved meanwhile)'}`,
    );
  if (v.failure) lines.push(`  failed: ${v.failure}`);
  return lines.join('\n');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function registerRolloutCommands(program: Command): void {
  const rollout = program.command('rollout').description('staged rollouts: shadow → canary → full, gated');
  rollout
    .command('digest')
    .description("print a rollout plan's digest (after checking the plan)")
    .argument('<plan>', 'the plan (YAML or JSON)')
    .action((file: string) => {
      console.log(computeRolloutPlanDigest(parseRolloutPlan(readStructuredFile(file, 'plan'))));
    });
  addMemberOptions(
    rollout
      .command('propose')
      .description('propose a rollout plan to the quorum (an approve-rollout proposal)')
      .requiredOption('--plan <file>', 'the rollout plan (YAML or JSON)')
      .option('--sign', 'also sign it as the proposer')
      .option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { plan: string; sign?: boolean; json?: boolean }) => {
    const subject = parseRolloutPlan(readStructuredFile(opts.plan, 'plan'));
    await withMember(opts, async ({ id, client, signingKeyPem }) => {
      let view = (
        await client.postJson<{ id: string; status: string }>('/v1/proposals', {
          kind: 'approve-rollout',
          subject,
        })
      ).body;
      if (opts.sign) view = await signProposalAs(client, view.id, id, signingKeyPem);
      const digest = computeRolloutPlanDigest(subject);
      console.log(
        opts.json
          ? JSON.stringify({ ...view, rollout: digest })
          : `rollout ${digest} proposed as ${view.id} (${view.status})`,
      );
    });
  });
  addMemberOptions(
    rollout
      .command('start')
      .description('start an approved rollout plan (operator); the stages then run by themselves')
      .argument('<rollout>', 'the plan digest')
      .option('--wait', 'wait until the rollout completes, rolls back, fails or stays undetermined')
      .option('--json', 'print JSON'),
  ).action(async (digest: string, opts: MemberOptions & { wait?: boolean; json?: boolean }) => {
    checkDigestArgument(digest, 'rollout');
    await withMember(opts, async ({ client }) => {
      let view = (await client.postJson<RolloutView>('/v1/rollouts', { rollout: digest })).body;
      while (opts.wait && view.status === 'running') {
        await sleep(300);
        view = (await client.getJson<RolloutView>(`/v1/rollouts/${digest}`)).body!;
      }
      console.log(opts.json ? JSON.stringify(view) : describeRollout(view));
      if (view.status === 'failed')
        throw new EntenteError('ROLLOUT_FAILED', `rollout: ${view.failure ?? 'failed'}`, {
          field: 'rollout',
        });
    });
  });
  addMemberOptions(
    rollout
      .command('status')
      .description('show one rollout, or all of them')
      .argument('[rollout]', 'the plan digest')
      .option('--json', 'print JSON'),
  ).action(async (digest: string | undefined, opts: MemberOptions & { json?: boolean }) => {
    if (digest !== undefined) checkDigestArgument(digest, 'rollout');
    await withMember(opts, async ({ client }) => {
      if (digest !== undefined) {
        const view = (await client.getJson<RolloutView>(`/v1/rollouts/${digest}`)).body!;
        console.log(opts.json ? JSON.stringify(view) : describeRollout(view));
        return;
      }
      const { rollouts } = (await client.getJson<{ rollouts: RolloutView[] }>('/v1/rollouts')).body!;
      console.log(
        opts.json ? JSON.stringify({ rollouts }) : rollouts.map(describeRollout).join('\n') || 'no rollouts',
      );
    });
  });
  addMemberOptions(
    rollout
      .command('rollback')
      .description('propose a manual rollback of a running rollout to the quorum')
      .argument('<rollout>', 'the plan digest')
      .requiredOption('--reason <text>', 'why (logged with the proposal)')
      .option('--sign', 'also sign it as the proposer')
      .option('--json', 'print JSON'),
  ).action(
    async (digest: string, opts: MemberOptions & { reason: string; sign?: boolean; json?: boolean }) => {
      checkDigestArgument(digest, 'rollout');
      await withMember(opts, async ({ id, client, signingKeyPem }) => {
        let view = (
          await client.postJson<{ id: string; status: string }>('/v1/proposals', {
            kind: 'rollback',
            subject: { rollout: digest, reason: opts.reason },
          })
        ).body;
        if (opts.sign) view = await signProposalAs(client, view.id, id, signingKeyPem);
        console.log(opts.json ? JSON.stringify(view) : `rollback proposed as ${view.id} (${view.status})`);
      });
    },
  );
}
