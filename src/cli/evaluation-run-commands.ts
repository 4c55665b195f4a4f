/**
 * `entente eval run <plan>` (the operator starts an approved plan's evaluation: blinded, under secure
 * aggregation) and `entente eval report <plan>` (its results as Markdown and a self-contained HTML page
 * with the reliability diagram and ROC curve of each model).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { EntenteError } from '../core/errors.ts';
import {
  type EvaluationMetrics,
  type EvaluationReportInput,
  renderEvaluationReport,
} from '../evaluation/index.ts';
import type { MtlsClient } from '../transport/index.ts';
import { checkDigestArgument, describePlan, findPlanProposal, withMember } from './evaluation-commands.ts';
import { addMemberOptions, type MemberOptions } from './governance-commands.ts';

/** What the coordinator shows of an evaluation job (GET /v1/evaluations/:plan). */
export interface EvaluationJobView {
  plan: string;
  id: string;
  title: string;
  status: 'running' | 'completed' | 'failed';
  labels: string[];
  results: {
    label: string;
    rows: number;
    contributors: string[];
    metrics: EvaluationMetrics;
    logIndex: number;
    perSite?: {
      sites: Record<string, { rows: number; metrics: Record<string, number | null> }>;
      worstSite: Record<string, { site: string; value: number } | null>;
      leaveOneOut: Record<string, Record<string, number | null> | null>;
      withheld: string[];
    };
  }[];
  unblinding: { label: string; name: string; sha256: string }[] | null;
  unblindedLogIndex: number | null;
  decision: {
    outcome: 'pass' | 'fail' | 'undetermined';
    clauses: { text: string; left: number | null; right: number | null; holds: boolean | null }[];
    logIndex: number;
  } | null;
  failure: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readJob(client: MtlsClient, plan: string): Promise<EvaluationJobView> {
  const r = await client.getJson<EvaluationJobView>(`/v1/evaluations/${plan}`);
  if (!r.body)
    throw new EntenteError('NOT_FOUND', `plan ${plan.slice(0, 12)}… has no evaluation`, { field: 'plan' });
  return r.body;
}

/** Waits until the job ends, printing one line per newly logged result on `progress`. */
async function waitForJob(
  client: MtlsClient,
  plan: string,
  progress: NodeJS.WritableStream | undefined,
): Promise<EvaluationJobView> {
  let shown = 0;
  for (;;) {
    const view = await readJob(client, plan);
    for (const r of view.results.slice(shown))
      progress?.write(
        `${r.label}: ${r.rows} rows from ${r.contributors.length} sites, accuracy ${fmt(r.metrics.overall.accuracy)}, ROC AUC ${fmt(r.metrics.overall.rocAuc)} (log entry ${r.logIndex})\n`,
      );
    shown = view.results.length;
    if (view.status !== 'running') return view;
    await sleep(300);
  }
}

const fmt = (v: number | null | undefined): string => (typeof v === 'number' ? v.toFixed(4) : '—');

function describeClause(c: NonNullable<EvaluationJobView['decision']>['clauses'][number]): string {
  const verdict = c.holds === null ? 'undetermined' : c.holds ? 'holds' : 'does not hold';
  return `${c.text}: ${fmt(c.left)} vs ${fmt(c.right)}, ${verdict}`;
}

/** A plan whose sums carry differential-privacy noise says so: its figures are noisy estimates. */
function describeNoise(evaluation: Readonly<Record<string, unknown>>): string[] {
  const dp = evaluation.dp as { noiseMultiplier?: number; maxRowLogLoss?: number } | undefined;
  if (dp?.noiseMultiplier === undefined) return [];
  return [
    `Every sum carries differential-privacy noise (noise multiplier ${dp.noiseMultiplier}, each site charged about ρ = ${(1 / (2 * dp.noiseMultiplier ** 2)).toPrecision(3)} zCDP per model for one of its records; per-row log loss clipped at ${dp.maxRowLogLoss ?? 34.6}): the figures are noisy estimates, post-processed into valid ranges.`,
  ];
}

/** Per-site figures as report notes: who revealed (each logged), the worst site per metric, who withheld. */
function describePerSite(
  label: string,
  p: NonNullable<EvaluationJobView['results'][number]['perSite']>,
): string[] {
  const worst = Object.entries(p.worstSite)
    .filter(([, w]) => w !== null)
    .map(([metric, w]) => `${metric} ${fmt(w!.value)} at ${w!.site}`);
  return [
    `${label}: per-site figures revealed by ${Object.keys(p.sites).join(', ') || 'no site'} (each logged as a disclosure)${p.withheld.length ? `; withheld by ${p.withheld.join(', ')}` : ''}; worst site: ${worst.join(', ') || '—'}.`,
  ];
}

function failIfFailed(view: EvaluationJobView): void {
  if (view.status === 'failed')
    throw new EntenteError(
      'EVALUATION_FAILED',
      `evaluation of plan ${view.plan.slice(0, 12)}… failed: ${view.failure}`,
      {
        field: 'plan',
      },
    );
}

/** Registers `eval run` and `eval report` under the `eval` group. */
export function registerEvaluationRunCommands(evaluation: Command): void {
  addMemberOptions(
    evaluation
      .command('run')
      .description("evaluate an approved plan's models under secure aggregation, blinded (operator)")
      .argument('<plan>', 'the approved plan digest')
      .option('--wait', 'wait until every model is evaluated and the decision is logged')
      .option('--json', 'print the job as JSON'),
  ).action(async (plan: string, opts: MemberOptions & { wait?: boolean; json?: boolean }) => {
    checkDigestArgument(plan, 'plan');
    await withMember(opts, async ({ client }) => {
      let view = (await client.postJson<EvaluationJobView>('/v1/evaluations', { plan })).body;
      if (opts.wait) view = await waitForJob(client, plan, opts.json ? undefined : process.stdout);
      failIfFailed(view);
      if (opts.json) console.log(JSON.stringify(view));
      else if (view.decision) {
        for (const o of view.unblinding ?? [])
          console.log(`${o.label} is ${o.name} (${o.sha256.slice(0, 12)}…)`);
        console.log(`decision: ${view.decision.outcome} (log entry ${view.decision.logIndex})`);
        for (const c of view.decision.clauses) console.log(`  ${describeClause(c)}`);
      } else console.log(`evaluation ${view.id} ${view.status}: labels ${view.labels.join(', ')} committed`);
    });
  });

  addMemberOptions(
    evaluation
      .command('report')
      .description(
        "a plan's evaluation as Markdown and self-contained HTML (reliability diagrams, ROC curves)",
      )
      .argument('<plan>', 'the plan digest')
      .option('--json', 'print the results as JSON')
      .option('--out <dir>', 'write report.md and report.html into this directory'),
  ).action(async (plan: string, opts: MemberOptions & { json?: boolean; out?: string }) => {
    checkDigestArgument(plan, 'plan');
    await withMember(opts, async ({ client }) => {
      const [view, planView] = await Promise.all([
        readJob(client, plan),
        findPlanProposal(client, plan, 'plan').then((p) => describePlan(client, p)),
      ]);
      const names = new Map((view.unblinding ?? []).map((o) => [o.label, o]));
      const input: EvaluationReportInput = {
        title: `Evaluation: ${planView.plan.title}`,
        consortium: planView.plan.consortium,
        generatedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
        plan: {
          digest: plan,
          hypothesis: planView.plan.hypothesis,
          decisionRule: planView.plan.decisionRule,
          metrics: [...planView.plan.metrics],
          approvedBy: planView.signers,
          ...(planView.approvedLogIndex === null ? {} : { loggedAt: planView.approvedLogIndex }),
        },
        models: view.results.map((r) => {
          const o = names.get(r.label);
          return {
            label: r.label,
            ...(o ? { name: o.name, sha256: o.sha256 } : {}),
            metrics: r.metrics,
            resultLogIndex: r.logIndex,
          };
        }),
        ...(view.decision
          ? {
              decision: {
                outcome: view.decision.outcome,
                details: view.decision.clauses.map(describeClause),
              },
            }
          : {}),
        blinded: view.unblinding === null,
        notes: [
          `Every figure is computed from sums over all participating sites' evaluation rows, added under secure aggregation: no site's own figures were seen by anyone.`,
          ...describeNoise(planView.plan.evaluation),
          ...(view.status === 'running' ? ['The evaluation is still running: results so far.'] : []),
          ...(view.failure ? [`The evaluation failed: ${view.failure}`] : []),
          ...view.results.flatMap((r) => (r.perSite ? describePerSite(r.label, r.perSite) : [])),
        ],
      };
      const report = renderEvaluationReport(input);
      if (opts.out) {
        const dir = resolve(opts.out);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'report.md'), report.markdown);
        writeFileSync(join(dir, 'report.html'), report.html);
      }
      if (opts.json) console.log(JSON.stringify({ ...view, plan: planView.plan, planDigest: plan }));
      else if (opts.out) console.log(`wrote ${join(resolve(opts.out), 'report.md')} and report.html`);
      else console.log(report.markdown);
    });
  });
}
