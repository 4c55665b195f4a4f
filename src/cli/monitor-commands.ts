/**
 * `entente monitor run --alias <alias>` (the operator measures drift of the version an alias points
 * at now: the reference sum first when the model has none, then the current window; waits for the
 * report unless --no-wait), `entente monitor list` (the monitored models) and `entente monitor show
 * <model>` (one model's reference, reports and failures). Every report is also a `monitoring-report`
 * entry of the audit log.
 */
import type { Command } from 'commander';
import { EntenteError } from '../core/errors.ts';
import type { MtlsClient } from '../transport/index.ts';
import { withMember } from './evaluation-commands.ts';
import { type MemberOptions, addMemberOptions } from './governance-commands.ts';

interface Report {
  measurement: number;
  alias: string;
  noised: boolean;
  contributors: string[];
  logIndex: number;
  referenceRows: number;
  currentRows: number;
  maxFeaturePsi: number;
  maxFeatureJs: number;
  maxFeatureKs: number;
  scorePsi: number;
  predictedClassPsi: number;
  latencyP90Ms: number | null;
  crossed: string[];
  incident: string | null;
  features: { psi: number; jsDistance: number; ks: number }[];
}

/** What the coordinator shows of a monitored model (GET /v1/monitoring/:model). */
interface MonitorJobView {
  model: string;
  id: string;
  reference: { rows: number; contributors: string[]; noised: boolean } | null;
  referenceLost: string | null;
  pending: { window: string; round: number; attempt: number; alias: string } | null;
  reports: Report[];
  failures: { round: number; window: string; reason: string }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (v: number | null) => (v === null ? '—' : v.toFixed(4));

async function readJob(client: MtlsClient, model: string): Promise<MonitorJobView> {
  const r = await client.getJson<MonitorJobView>(`/v1/monitoring/${model}`);
  if (!r.body)
    throw new EntenteError('NOT_FOUND', `model: ${model.slice(0, 12)}… was never monitored`, {
      field: 'model',
    });
  return r.body;
}

function describeReport(model: string, r: Report): string[] {
  return [
    `model ${model.slice(0, 12)}… (alias ${r.alias}), measurement ${r.measurement} (log entry ${r.logIndex})${r.noised ? ', noised sums' : ''}`,
    `  rows: reference ${r.referenceRows}, current ${r.currentRows} from ${r.contributors.length} sites`,
    `  features: max PSI ${fmt(r.maxFeaturePsi)}, max JS distance ${fmt(r.maxFeatureJs)}, max KS ${fmt(r.maxFeatureKs)}`,
    `  score PSI ${fmt(r.scorePsi)}, predicted-class PSI ${fmt(r.predictedClassPsi)}, latency p90 ${r.latencyP90Ms === null ? '—' : `≤ ${r.latencyP90Ms} ms`}`,
    ...(r.crossed.length ? [`  thresholds crossed: ${r.crossed.join('; ')}`] : []),
    ...(r.incident ? [`  incident raised: ${r.incident}`] : []),
  ];
}

/** Registers `entente monitor run|list|show`. */
export function registerMonitorCommands(program: Command): void {
  const monitor = program
    .command('monitor')
    .description("drift monitoring of deployed models: secure sums of the sites' monitoring counts");
  addMemberOptions(
    monitor
      .command('run')
      .description('measure drift of the model an alias points at now (operator); waits for the report')
      .requiredOption('--alias <alias>', 'the alias whose version is measured (e.g. production)')
      .option('--no-wait', 'return once the measurement is requested')
      .option('--timeout <seconds>', 'how long to wait for the report', '600')
      .option('--json', 'print the report (or the request) as JSON'),
  ).action(
    async (opts: MemberOptions & { alias: string; wait: boolean; timeout: string; json?: boolean }) => {
      const timeoutMs = Number(opts.timeout) * 1000;
      if (!(timeoutMs > 0))
        throw new EntenteError('INVALID_ARGUMENT', '--timeout: must be a number of seconds > 0', {
          field: '--timeout',
        });
      await withMember(opts, async ({ client }) => {
        const started = (await client.postJson<MonitorJobView>('/v1/monitoring/run', { alias: opts.alias }))
          .body;
        if (!opts.wait) {
          if (opts.json) console.log(JSON.stringify(started));
          else
            console.log(
              `measurement of ${started.model.slice(0, 12)}… requested (${started.pending?.window} window)`,
            );
          return;
        }
        const reports = started.reports.length;
        const failures = started.failures.length;
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const view = await readJob(client, started.model);
          if (view.reports.length > reports) {
            const report = view.reports.at(-1)!;
            if (opts.json) console.log(JSON.stringify({ model: view.model, ...report }));
            else for (const line of describeReport(view.model, report)) console.log(line);
            return;
          }
          if (view.failures.length > failures && view.pending === null)
            throw new EntenteError(
              'MONITORING_FAILED',
              `monitoring of ${view.model.slice(0, 12)}…: ${view.failures.at(-1)!.reason}`,
              { field: 'alias' },
            );
          if (Date.now() > deadline)
            throw new EntenteError('TIMEOUT', `--timeout: no report after ${opts.timeout} s`, {
              field: '--timeout',
            });
          await sleep(300);
        }
      });
    },
  );
  addMemberOptions(
    monitor
      .command('list')
      .description('the monitored models: reference rows, measurements, the latest figures')
      .option('--json', 'print JSON'),
  ).action(async (opts: MemberOptions & { json?: boolean }) => {
    await withMember(opts, async ({ client }) => {
      const { models } = (await client.getJson<{ models: MonitorJobView[] }>('/v1/monitoring')).body!;
      if (opts.json) return console.log(JSON.stringify({ models }));
      if (models.length === 0) return console.log('no model is monitored yet');
      for (const m of models) {
        const last = m.reports.at(-1);
        console.log(
          `${m.model.slice(0, 12)}…  reference ${m.reference ? `${m.reference.rows} rows` : 'none'}  measurements ${m.reports.length}${last ? `  last: max feature PSI ${fmt(last.maxFeaturePsi)}, score PSI ${fmt(last.scorePsi)}` : ''}${m.pending ? `  (${m.pending.window} under way)` : ''}`,
        );
      }
    });
  });
  addMemberOptions(
    monitor
      .command('show')
      .description("one monitored model's reference, reports and failures")
      .argument('<model>', 'the model SHA-256')
      .option('--json', 'print JSON'),
  ).action(async (model: string, opts: MemberOptions & { json?: boolean }) => {
    if (!/^[0-9a-f]{64}$/.test(model))
      throw new EntenteError('INVALID_ARGUMENT', 'model: must be a model SHA-256 (64 hex)', {
        field: 'model',
      });
    await withMember(opts, async ({ client }) => {
      const view = await readJob(client, model);
      if (opts.json) return console.log(JSON.stringify(view));
      console.log(
        `model ${model}: reference ${view.reference ? `${view.reference.rows} rows from ${view.reference.contributors.length} sites` : view.referenceLost ? `lost (${view.referenceLost})` : 'not measured yet'}`,
      );
      for (const r of view.reports) for (const line of describeReport(model, r)) console.log(line);
      for (const f of view.failures) console.log(`failed: ${f.window} window, round ${f.round}: ${f.reason}`);
    });
  });
}
