/**
 * The `entente` command line (commander 14). Commands call the apps; exit codes come from the one
 * error registry (core/errors.ts) and are mapped only here.
 */
import { join, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { EntenteError, exitCodeOf, isErrorCode } from '../core/errors.ts';
import { formatDoctorSummary, runDoctor, startCoordinator } from '../coordinator/index.ts';
import { type CsvDelimiter, computeSchemaDigest, loadTable, parseDataSchema } from '../data/index.ts';
import { type SiteConfig, parseSiteConfig, renewIfDue, startParticipant } from '../participant/index.ts';
import type { SiteBudget } from '../privacy/index.ts';
import { parseAliasName } from '../registry/index.ts';
import { runDemo } from '../simulation/index.ts';
import { computeWitnessName, createWorkspace, openSiteDir, openWorkspace } from '../storage/index.ts';
import { createMtlsClient } from '../transport/index.ts';
import { registerAuditCommands } from './audit-commands.ts';
import { readStructuredFile } from './read-file.ts';
import { registerEvaluationCommands } from './evaluation-commands.ts';
import { registerEvaluationRunCommands } from './evaluation-run-commands.ts';
import { registerMonitorCommands } from './monitor-commands.ts';
import { registerGovernanceCommands } from './governance-commands.ts';
import { registerModelCommands } from './model-commands.ts';
import { registerRolloutCommands } from './rollout-commands.ts';
import { registerPrivacyCommands } from './privacy-commands.ts';
import { registerServeCommands } from './serve-commands.ts';
import { createLogger } from './logger.ts';
import { followRun } from './run-progress.ts';
import { type RunView, type StatusView, formatRunStatus, formatStatus } from './run-view.ts';
import {
  parseDecimal,
  parseHttpsUrl,
  parseInteger,
  parseOpenFraction,
  parsePort,
  readTextFile,
} from './parse-options.ts';
import { installProcessHandlers } from './process-handlers.ts';

/** `--slow-ms 1500` (every task) or `--slow-ms secagg-masked-input=4000,train=100` (per task kind). */
function parseSlowMs(text: string): number | Record<string, number> {
  if (/^\d+$/.test(text)) return Number(text);
  const out: Record<string, number> = {};
  for (const part of text.split(',')) {
    const m = /^([a-z-]+)=(\d+)$/.exec(part.trim());
    if (!m)
      throw new EntenteError('INVALID_ARGUMENT', '--slow-ms: expected MS or KIND=MS[,KIND=MS]', {
        field: 'slow-ms',
      });
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** `--delimiter`: `,` (default), `;`, or `tab` (also a literal tab character). */
function parseDelimiter(text: string): CsvDelimiter {
  if (text === ',' || text === ';') return text;
  if (text === 'tab' || text === '\t') return '\t';
  throw new EntenteError('INVALID_ARGUMENT', '--delimiter: must be ",", ";" or "tab"', {
    field: 'delimiter',
  });
}

/** A participant's `--site-config`: its own limits and privacy budget. */
function siteOptions(path: string | undefined): { site?: SiteConfig; privacyBudget?: SiteBudget } {
  if (!path) return {};
  const site = parseSiteConfig(readStructuredFile(path, 'site-config'));
  return { site, ...(site.privacyBudget ? { privacyBudget: site.privacyBudget } : {}) };
}

function onSignals(stop: () => Promise<void>): void {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      void stop().finally(() => process.exit(0));
    });
  }
}

/**
 * Where a participant's identity, journal, ledger, witness state and serving directory live: its site
 * directory or a local workspace.
 */
function participantIdentity(opts: { site?: string; workspace?: string; institution?: string }) {
  if (opts.site) {
    const site = openSiteDir(resolve(opts.site));
    return {
      institution: site.site.member,
      coordinatorUrl: site.site.coordinator as string | (() => string),
      identity: () => site.tlsIdentity(),
      signing: site.signingIdentity(),
      journalFile: site.journalFile(),
      privacyLedgerFile: site.privacyLedgerFile(),
      unmaskedRoundsFile: site.unmaskedRoundsFile(),
      servingDir: site.servingDir(),
      // Where `participant serve|score --site` record monitoring counts (a monitoring sum reads them).
      monitoringDir: join(site.dir, 'monitoring'),
      // An enrolled site takes part only in runs the log shows approved by the policy's quorum.
      requireApprovedRuns: true,
      witness: {
        logKey: site.site.log.key,
        origin: site.site.log.origin,
        witnessName: computeWitnessName(site.site.consortium, site.site.member),
        stateFile: site.witnessStateFile(),
      },
    };
  }
  if (!opts.workspace || !opts.institution)
    throw new EntenteError('INVALID_ARGUMENT', '--site, or --workspace with --institution, is required', {
      field: 'site',
    });
  const ws = openWorkspace(resolve(opts.workspace));
  const id = opts.institution;
  return {
    institution: id,
    coordinatorUrl: (() => ws.readEndpoint()) as string | (() => string),
    identity: ws.institutionIdentity(id),
    signing: ws.institutionSigningIdentity(id),
    journalFile: join(ws.dir, 'institutions', id, 'journal.jsonl'),
    privacyLedgerFile: join(ws.dir, 'institutions', id, 'privacy-ledger.jsonl'),
    unmaskedRoundsFile: join(ws.dir, 'institutions', id, 'unmasked-rounds.jsonl'),
    servingDir: join(ws.dir, 'institutions', id, 'serving'),
    monitoringDir: join(ws.dir, 'institutions', id, 'monitoring'),
    ...(ws.consortium.log
      ? {
          witness: {
            logKey: ws.consortium.log.key,
            origin: ws.consortium.log.origin,
            witnessName: computeWitnessName(ws.consortium.consortium, id),
            stateFile: join(ws.dir, 'institutions', id, 'witness.json'),
          },
        }
      : {}),
  };
}

/** Checks now and every 10 minutes whether the site's certificates are due for renewal. */
function startAutoRenewal(dir: string, log: ReturnType<typeof createLogger>): NodeJS.Timeout {
  const check = (): void => {
    renewIfDue({ dir, now: Date.now() })
      .then((renewed) => {
        if (renewed) log.info({ notAfter: openSiteDir(dir).site.notAfter }, 'certificates renewed');
      })
      .catch((err: unknown) =>
        log.warn({ code: (err as EntenteError).code }, `renewal failed: ${(err as Error).message}`),
      );
  };
  check();
  const timer = setInterval(check, 10 * 60_000);
  timer.unref();
  return timer;
}

function operatorClient(workspace: string) {
  const ws = openWorkspace(workspace);
  return createMtlsClient({ baseUrl: ws.readEndpoint(), ...ws.operatorIdentity() });
}

export function buildProgram(): Command {
  const program = new Command('entente')
    .description('Secure collaborative model improvement across institutions without sharing raw data')
    .version('0.1.0')
    .exitOverride()
    // Usage errors print like every other failure: `entente: INVALID_ARGUMENT: …` (inherited by every
    // command added below), then a pointer to the command's help instead of the whole help text.
    .configureOutput({
      outputError: (text, write) => write(`entente: INVALID_ARGUMENT: ${text.replace(/^error: /, '')}`),
    })
    .showHelpAfterError('(add --help for usage)');

  program
    .command('init')
    .description('create a consortium workspace: a CA and one key + certificate per institution (local use)')
    .argument('<dir>', 'workspace directory to create')
    .requiredOption(
      '--institutions <ids>',
      'comma-separated institution ids, e.g. hospital-a,hospital-b,lab-c',
    )
    .option('--consortium <id>', 'consortium id', 'local')
    .option('--operators <ids>', 'comma-separated coordinator operator ids', 'operator')
    .option('--auditors <ids>', 'comma-separated founding auditor ids')
    .option('--observers <ids>', 'comma-separated founding observer ids')
    .option('--data-stewards <ids>', 'comma-separated founding data steward ids')
    .option(
      '--enrollment',
      'members enroll on their own machines with one-time tokens (only the coordinator side is made here)',
    )
    .option(
      '--certificate-days <n>',
      'validity of certificates issued at enrollment and renewal',
      (v: string) => parseInteger(v, '--certificate-days', 1, 3650),
      7,
    )
    .option('--json', 'print the result as JSON')
    .action(
      async (
        dir: string,
        opts: {
          institutions: string;
          consortium: string;
          operators: string;
          auditors?: string;
          observers?: string;
          dataStewards?: string;
          enrollment?: boolean;
          certificateDays: number;
          json?: boolean;
        },
      ) => {
        const list = (text: string | undefined): string[] =>
          (text ?? '')
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean);
        const institutions = list(opts.institutions);
        const members: Record<string, ('auditor' | 'observer' | 'data-steward')[]> = {};
        for (const [ids, role] of [
          [opts.auditors, 'auditor'],
          [opts.observers, 'observer'],
          [opts.dataStewards, 'data-steward'],
        ] as const)
          for (const id of list(ids)) members[id] = [...(members[id] ?? []), role];
        const ws = await createWorkspace(resolve(dir), {
          consortium: opts.consortium,
          institutions,
          operators: list(opts.operators),
          ...(Object.keys(members).length > 0 ? { members } : {}),
          ...(opts.enrollment ? { enrollment: true, certificateDays: opts.certificateDays } : {}),
          now: new Date(),
        });
        if (opts.json) console.log(JSON.stringify({ workspace: ws.dir, consortium: ws.consortium }));
        else
          console.log(
            `created workspace ${ws.dir} for ${institutions.length} institutions: ${institutions.join(', ')}${opts.enrollment ? ' (they enroll with tokens: entente enrollment token --member ID)' : ''}`,
          );
      },
    );

  const coordinator = program.command('coordinator').description('the coordinator service');
  coordinator
    .command('start')
    .description('start the coordinator (HTTPS with mutual TLS); runs until SIGINT/SIGTERM')
    .requiredOption('--workspace <dir>', 'consortium workspace')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option(
      '--port <port>',
      'port (0 = any free port; default: the port this workspace was served on before, so enrolled sites find it again, or any free port the first time)',
      (v: string) => parsePort(v),
    )
    .option('--max-polls-per-member <n>', 'long polls one member may hold open at once', '4')
    .option(
      '--member-storage-mb <n>',
      'MiB of uploaded chunks a member may have stored that are not part of an accepted result of its own',
      '1024',
    )
    .option(
      '--refusal-window-ms <ms>',
      "a member's refusals are summarized in the audit log per window",
      '60000',
    )
    .option(
      '--gc-interval-ms <ms>',
      'how often unreferenced chunks and stale temporary uploads are removed',
      '600000',
    )
    .option(
      '--drill-every <hours>',
      'start an incident drill when none was started within this many hours and no incident is open',
    )
    .option('--drill-alias <name>', 'the alias whose rollback scheduled drills rehearse', 'production')
    .option(
      '--monitor-every <minutes>',
      'measure drift of the model --monitor-alias points at this often (secure sums over the sites; see entente monitor)',
    )
    .option('--monitor-alias <alias>', 'the alias scheduled monitoring follows', 'production')
    .action(
      async (opts: {
        workspace: string;
        host: string;
        port?: number;
        maxPollsPerMember: string;
        memberStorageMb: string;
        refusalWindowMs: string;
        gcIntervalMs: string;
        drillEvery?: string;
        drillAlias: string;
        monitorEvery?: string;
        monitorAlias: string;
      }) => {
        const log = createLogger('coordinator');
        const positive = (value: string, field: string, min = 1): number => parseDecimal(value, field, min);
        const running = await startCoordinator({
          workspaceDir: resolve(opts.workspace),
          host: opts.host,
          ...(opts.port === undefined ? {} : { port: opts.port }),
          maxPollsPerMember: positive(opts.maxPollsPerMember, '--max-polls-per-member'),
          memberStorageBytes: Math.round(
            positive(opts.memberStorageMb, '--member-storage-mb', 0.001) * 1024 * 1024,
          ),
          refusalWindowMs: positive(opts.refusalWindowMs, '--refusal-window-ms', 100),
          gcIntervalMs: positive(opts.gcIntervalMs, '--gc-interval-ms', 100),
          ...(opts.drillEvery === undefined
            ? {}
            : {
                drillEveryMs: Math.round(positive(opts.drillEvery, '--drill-every', 0.0001) * 3_600_000),
                drillAlias: parseAliasName(opts.drillAlias, '--drill-alias'),
              }),
          ...(opts.monitorEvery === undefined
            ? {}
            : {
                monitorEveryMs: Math.round(positive(opts.monitorEvery, '--monitor-every', 0.01) * 60_000),
                monitorAlias: parseAliasName(opts.monitorAlias, '--monitor-alias'),
              }),
          log,
        });
        // Stoppable cleanly (lock released) before it says it is ready: a signal sent on the URL line
        // must find the handlers in place.
        onSignals(() => running.close());
        console.log(JSON.stringify({ url: running.url, pid: process.pid }));
      },
    );

  const participant = program.command('participant').description("an institution's participant agent");
  participant
    .command('start')
    .description(
      'start a participant: polls the coordinator for tasks and trains on local data; runs until SIGINT/SIGTERM',
    )
    .option('--site <dir>', "this institution's site directory (made by participant enroll)")
    .option('--workspace <dir>', 'or: a local workspace made by entente init (with --institution)')
    .option('--institution <id>', 'with --workspace: this institution id (its certificate CN)')
    .requiredOption('--data <csv>', 'local data file (CSV)')
    .requiredOption('--schema <file>', 'declared data schema (JSON or YAML)')
    .option('--delimiter <d>', 'field delimiter of the data file: "," (default), ";" or "tab"', ',')
    .option('--coordinator <url>', 'coordinator URL (default: read from the workspace)', (v: string) =>
      parseHttpsUrl(v, '--coordinator'),
    )
    .option(
      '--eval-data <csv>',
      'the rows this site evaluates on (same schema and delimiter); it then trains on all of --data',
    )
    .option(
      '--holdout <fraction>',
      'without --eval-data: fraction of local rows held out for federated evaluation',
      (v: string) => parseOpenFraction(v, '--holdout'),
      0.2,
    )
    .option(
      '--site-config <file>',
      "this site's own limits (YAML/JSON), e.g. privacy.perRun / privacy.total {epsilon, delta}",
    )
    .addOption(
      new Option(
        '--slow-ms <ms>',
        'simulation: delay each result, MS or KIND=MS,... (a slow institution)',
      ).hideHelp(),
    )
    .addOption(
      new Option(
        '--batch-journal <file>',
        'tests only: record the rows of every DP-SGD batch drawn (reveals which records were sampled)',
      ).hideHelp(),
    )
    .action(
      async (opts: {
        site?: string;
        workspace?: string;
        institution?: string;
        data: string;
        evalData?: string;
        schema: string;
        delimiter: string;
        coordinator?: string;
        holdout: number;
        siteConfig?: string;
        slowMs?: string;
        batchJournal?: string;
      }) => {
        const schema = parseDataSchema(readStructuredFile(opts.schema, 'schema'));
        const delimiter = parseDelimiter(opts.delimiter);
        const data = loadTable(readTextFile(opts.data, '--data'), schema, { delimiter });
        const evaluationData = opts.evalData
          ? loadTable(readTextFile(opts.evalData, '--eval-data'), schema, { delimiter })
          : undefined;
        const where = participantIdentity(opts);
        const log = createLogger(`participant:${where.institution}`);
        const handle = startParticipant({
          ...where,
          coordinatorUrl: opts.coordinator ?? where.coordinatorUrl,
          dataSchemaDigest: computeSchemaDigest(schema),
          ...siteOptions(opts.siteConfig),
          data,
          ...(evaluationData ? { evaluationData } : {}),
          evaluationAnnotations: {
            ...(schema.sensitive
              ? { sensitive: { attribute: schema.sensitive.name, values: [...schema.sensitive.values] } }
              : {}),
            ...(schema.slices ? { slices: schema.slices.map((x) => x.name) } : {}),
          },
          dataClasses: schema.label.classes.length,
          holdoutFraction: opts.holdout,
          log,
          ...(opts.slowMs ? { slowMs: parseSlowMs(opts.slowMs) } : {}),
          ...(opts.batchJournal ? { batchJournalFile: resolve(opts.batchJournal) } : {}),
        });
        log.info({ rows: data.count, features: data.dim }, 'local data loaded');
        // An enrolled site renews its short-lived certificates itself, well before they expire.
        const renewal = opts.site ? startAutoRenewal(resolve(opts.site), log) : undefined;
        onSignals(async () => {
          if (renewal) clearInterval(renewal);
          await handle.stop();
        });
        await handle.done;
      },
    );

  program
    .command('schema')
    .description('data schemas')
    .command('digest')
    .description(
      "print a data schema's digest (SHA-256 of its canonical JSON): the value a run's dataSchemaDigest names",
    )
    .argument('<file>', 'data schema (JSON or YAML)')
    .action((file: string) => {
      console.log(computeSchemaDigest(parseDataSchema(readStructuredFile(file, 'schema'))));
    });

  const run = program.command('run').description('training runs');
  run
    .command('start')
    .description('start a run from a run configuration (YAML or JSON)')
    .argument('<config>', 'run configuration file')
    .requiredOption('--workspace <dir>', 'consortium workspace (for the operator certificate)')
    .option('--wait', 'wait until the run completes')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, opts: { workspace: string; wait?: boolean; json?: boolean }) => {
      const client = operatorClient(resolve(opts.workspace));
      try {
        const config = readStructuredFile(file, 'config');
        const created = await client.postJson<{ runId: string; proposal?: string; missing?: string }>(
          '/v1/runs',
          config,
        );
        let out: unknown = created.body;
        if (created.status === 202 && created.body.proposal) {
          // Under a policy: the run starts when its start-run proposal reaches the quorum.
          const id = created.body.proposal;
          console.error(
            `run proposed: proposal ${id} needs ${created.body.missing}; members sign it with "entente proposal sign ${id}"`,
          );
          if (!opts.wait) {
            console.log(opts.json ? JSON.stringify(created.body) : `proposal ${id}`);
            return;
          }
          for (;;) {
            const p = await client.getJson<{ status: string }>(`/v1/proposals/${id}`);
            if (p.body?.status === 'approved') break;
            await new Promise((res) => setTimeout(res, 500));
          }
          const runId = String((config as { id?: unknown }).id);
          created.body.runId = runId;
          for (;;) {
            const r = await client.getJson(`/v1/runs/${encodeURIComponent(runId)}`).catch(() => undefined);
            if (r?.body) break;
            await new Promise((res) => setTimeout(res, 300));
          }
        }
        if (opts.wait) {
          // Progress: on stdout (a bar on a terminal, a plain line per round otherwise); with --json,
          // stdout carries only the final JSON and the bar goes to a terminal's stderr.
          const stream = opts.json ? (process.stderr.isTTY ? process.stderr : undefined) : process.stdout;
          const view = await followRun(client, created.body.runId, { stream });
          out = view;
          if (!opts.json) console.log(formatRunStatus(view));
        }
        if (opts.json || !opts.wait)
          console.log(opts.json ? JSON.stringify(out) : `run ${created.body.runId} started`);
        // A run that failed (e.g. a round's secure-aggregation attempts exhausted) exits with its code.
        const failure = (out as { status?: string; failure?: { code?: unknown; message?: string } } | null)
          ?.failure;
        if ((out as { status?: string } | null)?.status === 'failed' && failure && isErrorCode(failure.code))
          throw new EntenteError(failure.code, `run ${created.body.runId}: ${failure.message ?? 'failed'}`, {
            field: 'run',
          });
        if ((out as { status?: string } | null)?.status === 'cancelled')
          throw new EntenteError('RUN_CANCELLED', `run ${created.body.runId}: cancelled`, { field: 'run' });
      } finally {
        await client.close();
      }
    });

  run
    .command('cancel')
    .description('cancel a run for good (under a policy: proposes it to the cancel-run quorum)')
    .argument('<id>', 'run id')
    .requiredOption('--workspace <dir>', 'consortium workspace (for the operator certificate)')
    .option('--json', 'print the result as JSON')
    .action(async (id: string, opts: { workspace: string; json?: boolean }) => {
      const client = operatorClient(resolve(opts.workspace));
      try {
        const r = await client.postJson<{
          runId?: string;
          status?: string;
          proposal?: string;
          missing?: string;
        }>(`/v1/runs/${encodeURIComponent(id)}/cancel`, {});
        if (opts.json) console.log(JSON.stringify(r.body));
        else if (r.body.proposal)
          console.log(
            `cancellation proposed: proposal ${r.body.proposal} needs ${r.body.missing}; members sign it with "entente proposal sign ${r.body.proposal}"`,
          );
        else console.log(`run ${id}: cancelled`);
      } finally {
        await client.close();
      }
    });

  program
    .command('status')
    .description('show participants, runs and recent refusals (or one run with --run)')
    .requiredOption('--workspace <dir>', 'consortium workspace')
    .option('--run <id>', 'show one run with its rounds')
    .option('--json', 'print JSON')
    .action(async (opts: { workspace: string; run?: string; json?: boolean }) => {
      const client = operatorClient(resolve(opts.workspace));
      try {
        const r = await client.getJson(opts.run ? `/v1/runs/${encodeURIComponent(opts.run)}` : '/v1/status');
        if (opts.json) console.log(JSON.stringify(r.body));
        else console.log(opts.run ? formatRunStatus(r.body as RunView) : formatStatus(r.body as StatusView));
      } finally {
        await client.close();
      }
    });

  program
    .command('demo')
    .description('run the local demo federation: 1 coordinator + 3 participants on breast cancer data')
    .option('--rounds <n>', 'training rounds', (v: string) => parseInteger(v, '--rounds', 1, 10_000), 20)
    .option('--workspace <dir>', 'keep the workspace in this directory (default: a temporary one, removed)')
    .option('--json', 'also print the summary as one JSON object on the last line')
    .option('--dp <epsilon>', 'sample-level DP-SGD with this target ε per institution (δ = 1e-5)')
    .action(async (opts: { rounds: number; workspace?: string; json?: boolean; dp?: string }) => {
      const dpEpsilon = opts.dp === undefined ? undefined : parseDecimal(opts.dp, '--dp', Number.MIN_VALUE);
      await runDemo({
        rounds: opts.rounds,
        json: Boolean(opts.json),
        ...(dpEpsilon !== undefined ? { dpEpsilon } : {}),
        ...(opts.workspace ? { workspace: resolve(opts.workspace) } : {}),
      });
    });

  program
    .command('doctor')
    .description(
      "check the coordinator's store, blobs and audit log against each other (offline, read-only); exits non-zero naming each mismatch",
    )
    .requiredOption('--workspace <dir>', 'consortium workspace')
    .option('--json', 'print the report as JSON')
    .action((opts: { workspace: string; json?: boolean }) => {
      const report = runDoctor(resolve(opts.workspace));
      if (opts.json) console.log(JSON.stringify(report));
      else if (report.ok) console.log(formatDoctorSummary(report));
      for (const p of report.problems) console.error(`entente: ${p.code}: ${p.message}`);
      if (!report.ok) process.exitCode = exitCodeOf(report.problems[0]!.code);
    });

  registerGovernanceCommands(program, participant, run);
  registerAuditCommands(program);
  registerPrivacyCommands(program);
  registerModelCommands(program);
  registerRolloutCommands(program);
  registerServeCommands(participant);
  registerEvaluationRunCommands(registerEvaluationCommands(program));
  registerMonitorCommands(program);
  return program;
}

installProcessHandlers();
buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    if (err instanceof CommanderError) {
      // Usage errors exit 2 (INVALID_ARGUMENT; commander has printed the message); --help and --version
      // exit 0. A command group given without its subcommand shows its help, then says so.
      if (err.code === 'commander.help')
        console.error('entente: INVALID_ARGUMENT: missing command (one of those listed above)');
      process.exit(err.exitCode === 0 ? 0 : exitCodeOf('INVALID_ARGUMENT'));
    }
    if (err instanceof EntenteError) {
      console.error(`entente: ${err.code}: ${err.message}`);
      process.exit(exitCodeOf(err.code));
    }
    // Anything else is a bug, not a usage mistake: one line, the stack only on request.
    console.error(`entente: INTERNAL: ${err instanceof Error ? err.message : String(err)}`);
    if (process.env.ENTENTE_DEBUG) console.error((err as Error).stack);
    process.exit(exitCodeOf('INTERNAL'));
  });
