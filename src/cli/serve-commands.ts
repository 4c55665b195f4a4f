/**
 * Serving on site: `entente participant serve` (a loopback HTTP endpoint, scoring-server.ts),
 * `entente participant score` (a CSV scored in batch, the output of `model predict`) and
 * `entente participant drift` (drift of one monitoring file against another). Serve and score take
 * either `--model` (loaded exactly as `model predict` does, scoring-model.ts: card, digest, schema, the
 * card's standardization) or `--follow DIR`, the site's serving directory (serving-dir.ts: the version
 * `serving.json` names; serve follows it as it changes, serving-follower.ts), and add what they score to
 * the site's monitoring sums, `<site>/monitoring/<model sha256>.json` (monitoring-file.ts): bin counts
 * only, never a row.
 */
import { isIP } from 'node:net';
import type { Command } from 'commander';
import { EntenteError } from '../core/errors.ts';
import { compareMonitoring } from '../evaluation/index.ts';
import { type DataSchema, type StandardizationParams, parseDataSchema } from '../data/index.ts';
import { isRegressionSpec } from '../models/index.ts';
import { createLogger } from './logger.ts';
import { MonitoringRecorder, readMonitoringFile } from './monitoring-file.ts';
import { parseInteger, parsePort, readTextFile, writeOutputFile } from './parse-options.ts';
import { readStructuredFile } from './read-file.ts';
import {
  type ScoringModel,
  loadRows,
  loadScoringModel,
  quoteCsv,
  scoreClasses,
  monitoringInput,
  readMonitoringReference,
  resolveMonitoringReference,
  standardizeForModel,
} from './scoring-model.ts';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SCORE_ROWS, createScoringServer } from './scoring-server.ts';
import { type ServingAssignment, checkServingDir, loadSiteModel, readServingFile } from './serving-dir.ts';
import { type ServedModel, ServingFollower } from './serving-follower.ts';

/** How often serve looks at a followed serving directory between requests. */
const FOLLOW_CHECK_MS = 1000;

/** A loopback address literal: 127.0.0.0/8 or ::1 (`localhost` is 127.0.0.1). */
export function parseLoopbackHost(text: string): string {
  const host = text === 'localhost' ? '127.0.0.1' : text;
  const loopback =
    (isIP(host) === 4 && host.startsWith('127.')) || (isIP(host) === 6 && /^(0*:)*:?0*1$/.test(host));
  if (!loopback)
    throw new EntenteError(
      'INVALID_ARGUMENT',
      '--host: must be a loopback address (127.0.0.1 or ::1); serving on site never listens on the network',
      { field: 'host' },
    );
  return host;
}

function requireClassifier(model: ScoringModel, flag: '--model' | '--follow'): ScoringModel {
  if (isRegressionSpec(model.spec))
    throw new EntenteError(
      'INVALID_CONFIG',
      `${flag}: ${flag === '--follow' ? `version ${model.sha256} is ` : ''}a linear (regression) model; serving scores classifiers`,
      { field: flag.slice(2) },
    );
  return model;
}

interface ModelOptions {
  model?: string;
  follow?: string;
  schema: string;
  card?: string;
  site: string;
  reference?: string;
}

/** Exactly one of --model and --follow; --card only with --model. Returns which. */
export function chooseModelSource(opts: {
  model?: string | undefined;
  follow?: string | undefined;
  card?: string | undefined;
}): 'model' | 'follow' {
  if (opts.model !== undefined && opts.follow !== undefined)
    throw new EntenteError(
      'INVALID_ARGUMENT',
      '--follow: give either --model FILE or --follow DIR, not both',
      { field: 'follow' },
    );
  if (opts.model === undefined && opts.follow === undefined)
    throw new EntenteError(
      'INVALID_ARGUMENT',
      "--follow: say which model to serve: --model FILE (an exported model) or --follow DIR (the site's serving directory)",
      { field: 'follow' },
    );
  if (opts.follow !== undefined && opts.card !== undefined)
    throw new EntenteError(
      'INVALID_ARGUMENT',
      '--card: only with --model; a serving directory describes each version in models/<sha256>.json',
      { field: 'card' },
    );
  return opts.model !== undefined ? 'model' : 'follow';
}

/** The monitoring reference of a version from a serving directory: its own standardization, or --reference. */
function followReference(model: ScoringModel, referenceFile: string | undefined): StandardizationParams {
  if (model.standardization !== null) return model.standardization;
  if (referenceFile === undefined)
    throw new EntenteError(
      'INVALID_ARGUMENT',
      `--reference: required: version ${model.sha256} has no standardization, the training reference that fixes the monitoring bins ({"mean": [...], "std": [...]})`,
      { field: 'reference' },
    );
  return readMonitoringReference(model, referenceFile);
}

function readSchema(path: string): DataSchema {
  return parseDataSchema(readStructuredFile(path, 'schema'));
}

/** The version a serving directory assigns now, loaded and checked (score's one-shot resolution). */
function loadFollowed(opts: ModelOptions & { follow: string }): {
  model: ScoringModel;
  reference: StandardizationParams;
  assignment: ServingAssignment;
} {
  checkServingDir(opts.follow);
  const assignment = readServingFile(opts.follow);
  if (assignment.version === null)
    throw new EntenteError(
      'UNAVAILABLE',
      `--follow: serving.json names no version to serve (${assignment.reason.slice(0, 200)})`,
      { field: 'follow' },
    );
  const model = requireClassifier(
    loadSiteModel(opts.follow, assignment.version, readSchema(opts.schema)),
    '--follow',
  );
  return { model, reference: followReference(model, opts.reference), assignment };
}

function addModelOptions(command: Command): Command {
  return command
    .option('--model <file>', 'model file written by entente model export (or --follow)')
    .option(
      '--follow <dir>',
      "the site's serving directory: the version its serving.json names (models/<sha256>.safetensors + .json)",
    )
    .requiredOption('--schema <file>', 'the data schema the run was trained with (JSON or YAML)')
    .option('--card <file>', 'with --model: model card (default: <model>.card.json next to the model)')
    .requiredOption(
      '--site <dir>',
      'site directory: monitoring sums go to <site>/monitoring/<model sha256>.json',
    )
    .option(
      '--reference <file>',
      'only for a model without standardization: the training {mean, std} that fixes the monitoring bins',
    );
}

/** Adds `serve`, `score` and `drift` to the `participant` command group. */
export function registerServeCommands(participant: Command): void {
  addModelOptions(
    participant
      .command('serve')
      .description(
        'score rows over loopback HTTP (POST /v1/score, GET /v1/health) and record monitoring sums; runs until SIGINT/SIGTERM',
      ),
  )
    .option('--host <address>', 'loopback address to bind', parseLoopbackHost, '127.0.0.1')
    .option('--port <n>', 'port (0: any free port, printed on stdout)', (v: string) => parsePort(v), 0)
    .option(
      '--max-rows <n>',
      `most rows in one request (default ${DEFAULT_MAX_SCORE_ROWS})`,
      (v: string) => parseInteger(v, '--max-rows', 1, 1_000_000),
      DEFAULT_MAX_SCORE_ROWS,
    )
    .option(
      '--flush-seconds <n>',
      'write the monitoring file this often when it changed (and on shutdown)',
      (v: string) => parseInteger(v, '--flush-seconds', 1, 86_400),
      30,
    )
    .action(
      async (opts: ModelOptions & { host: string; port: number; maxRows: number; flushSeconds: number }) => {
        const log = createLogger('serve');
        let fixed: ServedModel | null = null;
        let follower: ServingFollower | null = null;
        if (chooseModelSource(opts) === 'model') {
          const model = requireClassifier(loadScoringModel({ ...opts, model: opts.model! }), '--model');
          const reference = resolveMonitoringReference(model, opts.reference);
          fixed = { model, reference, recorder: new MonitoringRecorder(model, opts.site, Date.now()) };
        } else {
          const dir = opts.follow!;
          checkServingDir(dir);
          const schema = readSchema(opts.schema);
          follower = new ServingFollower({
            dir,
            site: opts.site,
            load: (sha256) => requireClassifier(loadSiteModel(dir, sha256, schema), '--follow'),
            reference: (model) => followReference(model, opts.reference),
            log,
            now: Date.now,
          });
          follower.check();
        }
        const current = fixed;
        const following = follower;
        const server = createScoringServer({
          serving: () => current ?? following!.served(),
          health: () =>
            following
              ? following.health()
              : { status: 'ok', model: current!.model.sha256, rows: current!.recorder.rows },
          maxRows: opts.maxRows,
          maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
        });
        const recorderNow = () => current?.recorder ?? following!.recorder;
        const release = () => {
          if (current) current.recorder.close();
          else following!.close();
        };
        await new Promise<void>((resolve, reject) => {
          server.once('error', (err: NodeJS.ErrnoException) =>
            reject(
              err.code === 'EADDRINUSE'
                ? new EntenteError('PORT_IN_USE', `--port: ${opts.port} is taken; choose another, or 0`, {
                    field: 'port',
                  })
                : new EntenteError(
                    'INVALID_ARGUMENT',
                    `--port: cannot listen on ${opts.host}:${opts.port} (${err.code ?? 'error'})`,
                    { field: 'port' },
                  ),
            ),
          );
          server.listen(opts.port, opts.host, () => resolve());
        }).catch((err: unknown) => {
          release();
          throw err;
        });
        const flush = () => {
          const recorder = recorderNow();
          try {
            if (recorder?.flush(new Date()))
              log.info({ rows: recorder.rows, monitoring: recorder.path }, 'monitoring sums written');
          } catch (err) {
            log.error({ err }, 'monitoring sums could not be written');
          }
        };
        const timer = setInterval(flush, opts.flushSeconds * 1000);
        timer.unref();
        const watch = following ? setInterval(() => following.check(), FOLLOW_CHECK_MS) : undefined;
        watch?.unref();
        let stopping = false;
        for (const sig of ['SIGINT', 'SIGTERM'] as const)
          process.on(sig, () => {
            if (stopping) return;
            stopping = true;
            clearInterval(timer);
            clearInterval(watch);
            server.close();
            server.closeAllConnections();
            flush();
            release();
            process.exit(0);
          });
        const address = server.address();
        const port = typeof address === 'object' && address !== null ? address.port : opts.port;
        const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
        console.log(
          JSON.stringify({
            url: `http://${host}:${port}`,
            model: current?.model.sha256 ?? following!.health().model,
            monitoring: recorderNow()?.path ?? null,
            ...(following ? { follow: opts.follow } : {}),
            pid: process.pid,
          }),
        );
      },
    );

  addModelOptions(
    participant
      .command('score')
      .description(
        "score a CSV's rows with a model (as model predict) and record them in the monitoring sums",
      ),
  )
    .requiredOption(
      '--data <csv>',
      "rows to score (the schema's feature columns; a label column is optional)",
    )
    .option('--out <csv>', 'write predictions here (default: stdout)')
    .option('--json', 'print JSON as model predict --json, with the monitoring file and its row count')
    .action((opts: ModelOptions & { data: string; out?: string; json?: boolean }) => {
      let model: ScoringModel;
      let reference: StandardizationParams;
      let assignment: ServingAssignment | null = null;
      if (chooseModelSource(opts) === 'model') {
        model = requireClassifier(loadScoringModel({ ...opts, model: opts.model! }), '--model');
        reference = resolveMonitoringReference(model, opts.reference);
      } else ({ model, reference, assignment } = loadFollowed({ ...opts, follow: opts.follow! }));
      const { data: raw, labelled } = loadRows(readTextFile(opts.data, '--data'), model.schema);
      const data = standardizeForModel(model, raw);
      const { probabilities, classes } = scoreClasses(model, data);
      const names = model.classNames;
      const k = names.length;
      const flat = new Float64Array(data.count * k);
      for (let i = 0; i < data.count; i++) flat.set(probabilities[i]!, i * k);
      const recorder = new MonitoringRecorder(model, opts.site, Date.now());
      try {
        recorder.record({
          count: data.count,
          z: monitoringInput(reference, raw),
          probabilities: flat,
          labels: labelled ? data.y : undefined,
        });
        recorder.flush(new Date());
      } finally {
        recorder.close();
      }
      const lines = [['prediction', ...names.map((c) => `p_${c}`)].map(quoteCsv).join(',')];
      let correct = 0;
      for (let i = 0; i < data.count; i++) {
        lines.push([names[classes[i]!]!, ...probabilities[i]!.map((v) => String(v))].map(quoteCsv).join(','));
        if (classes[i] === data.y[i]) correct++;
      }
      const csv = `${lines.join('\n')}\n`;
      if (opts.out) writeOutputFile(opts.out, csv, '--out');
      else if (!opts.json) process.stdout.write(csv);
      const accuracy = labelled ? correct / data.count : null;
      if (opts.json)
        console.log(
          JSON.stringify({
            probabilities,
            classes: names,
            rows: data.count,
            accuracy,
            ...(opts.out ? { out: opts.out } : {}),
            model: model.sha256,
            ...(assignment
              ? { alias: assignment.alias, rollout: assignment.rollout, stage: assignment.stage }
              : {}),
            monitoring: recorder.path,
            monitoredRows: recorder.rows,
          }),
        );
      else console.error(`recorded ${data.count} rows in ${recorder.path} (${recorder.rows} in all)`);
    });

  participant
    .command('drift')
    .description('drift of one monitoring file against a reference one: PSI, Jensen-Shannon, KS, label shift')
    .requiredOption('--reference <file>', 'monitoring file of the reference rows (e.g. scored training data)')
    .requiredOption('--current <file>', 'monitoring file of the rows to compare')
    .option('--json', 'print JSON')
    .action((opts: { reference: string; current: string; json?: boolean }) => {
      const reference = readMonitoringFile(opts.reference, '--reference');
      const current = readMonitoringFile(opts.current, '--current');
      if (
        reference.file.model !== current.file.model ||
        reference.layout.length !== current.layout.length ||
        JSON.stringify(reference.file.spec) !== JSON.stringify(current.file.spec)
      )
        throw new EntenteError(
          'INVALID_ARGUMENT',
          '--current: records another model or layout than --reference',
          {
            field: 'current',
          },
        );
      const drift = compareMonitoring(reference.layout, reference.sums, current.sums);
      const columns = reference.file.inputColumns;
      const features = drift.features.map((f, j) => ({ column: columns[j] ?? `column ${j}`, ...f }));
      if (opts.json) {
        // JSON has no Infinity: a percentile past the last latency bin is null.
        const finite = (v: number) => (Number.isFinite(v) ? v : null);
        console.log(
          JSON.stringify({
            ...drift,
            features,
            latencyMs: drift.latencyMs && {
              p50: finite(drift.latencyMs.p50),
              p90: finite(drift.latencyMs.p90),
              p99: finite(drift.latencyMs.p99),
            },
          }),
        );
        return;
      }
      const top = [...features].sort((a, b) => b.psi - a.psi);
      console.log(`reference ${drift.referenceRows} rows, current ${drift.currentRows} rows`);
      console.log('column                          PSI       JS        KS');
      for (const f of top)
        console.log(
          `${f.column.padEnd(30).slice(0, 30)}  ${f.psi.toFixed(4).padStart(8)}  ${f.jsDistance.toFixed(4).padStart(8)}  ${f.ks.toFixed(4).padStart(8)}`,
        );
      console.log(
        `score                           ${drift.score.psi.toFixed(4).padStart(8)}  ${drift.score.jsDistance.toFixed(4).padStart(8)}  ${drift.score.ks.toFixed(4).padStart(8)}`,
      );
      if (drift.labelShiftEstimate)
        console.log(
          `estimated label distribution (BBSE): ${drift.labelShiftEstimate.estimatedLabels.map((v) => v.toFixed(3)).join(', ')}`,
        );
      if (drift.latencyMs)
        console.log(
          `latency ms (bin upper bounds): p50 ≤ ${drift.latencyMs.p50}, p90 ≤ ${drift.latencyMs.p90}, p99 ≤ ${drift.latencyMs.p99}`,
        );
    });
}
