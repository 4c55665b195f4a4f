/**
 * Serving on site: `entente participant serve` (a loopback HTTP endpoint, scoring-server.ts),
 * `entente participant score` (a CSV scored in batch, the output of `model predict`) and
 * `entente participant drift` (drift of one monitoring file against another). Serve and score load the
 * model exactly as `model predict` does (scoring-model.ts: card, digest, schema, the card's
 * standardization) and add what they score to the site's monitoring sums,
 * `<site>/monitoring/<model sha256>.json` (monitoring-file.ts): bin counts only, never a row.
 */
import { isIP } from 'node:net';
import type { Command } from 'commander';
import { EntenteError } from '../core/errors.ts';
import { compareMonitoring } from '../evaluation/index.ts';
import { isRegressionSpec } from '../models/index.ts';
import { createLogger } from './logger.ts';
import { MonitoringRecorder, readMonitoringFile } from './monitoring-file.ts';
import { parseInteger, parsePort, readTextFile, writeOutputFile } from './parse-options.ts';
import {
  type ScoringModel,
  loadRows,
  loadScoringModel,
  quoteCsv,
  scoreClasses,
  monitoringInput,
  resolveMonitoringReference,
  standardizeForModel,
} from './scoring-model.ts';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SCORE_ROWS, createScoringServer } from './scoring-server.ts';

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

function loadClassifier(opts: { model: string; schema: string; card?: string }): ScoringModel {
  const model = loadScoringModel(opts);
  if (isRegressionSpec(model.spec))
    throw new EntenteError(
      'INVALID_CONFIG',
      '--model: a linear (regression) model; serving scores classifiers',
      {
        field: 'model',
      },
    );
  return model;
}

interface ModelOptions {
  model: string;
  schema: string;
  card?: string;
  site: string;
  reference?: string;
}

function addModelOptions(command: Command): Command {
  return command
    .requiredOption('--model <file>', 'model file written by entente model export')
    .requiredOption('--schema <file>', 'the data schema the run was trained with (JSON or YAML)')
    .option('--card <file>', 'model card (default: <model>.card.json next to the model)')
    .requiredOption(
      '--site <dir>',
      'site directory: monitoring sums go to <site>/monitoring/<model sha256>.json',
    )
    .option(
      '--reference <file>',
      'only for a card without standardization: the training {mean, std} that fixes the monitoring bins',
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
        const model = loadClassifier(opts);
        const reference = resolveMonitoringReference(model, opts.reference);
        const recorder = new MonitoringRecorder(model, opts.site, Date.now());
        const server = createScoringServer({
          model,
          reference,
          recorder,
          maxRows: opts.maxRows,
          maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
        });
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
          recorder.close();
          throw err;
        });
        const flush = () => {
          try {
            if (recorder.flush(new Date())) log.info({ rows: recorder.rows }, 'monitoring sums written');
          } catch (err) {
            log.error({ err }, 'monitoring sums could not be written');
          }
        };
        const timer = setInterval(flush, opts.flushSeconds * 1000);
        timer.unref();
        let stopping = false;
        for (const sig of ['SIGINT', 'SIGTERM'] as const)
          process.on(sig, () => {
            if (stopping) return;
            stopping = true;
            clearInterval(timer);
            server.close();
            server.closeAllConnections();
            flush();
            recorder.close();
            process.exit(0);
          });
        const address = server.address();
        const port = typeof address === 'object' && address !== null ? address.port : opts.port;
        const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
        console.log(
          JSON.stringify({
            url: `http://${host}:${port}`,
            model: model.sha256,
            monitoring: recorder.path,
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
      const model = loadClassifier(opts);
      const reference = resolveMonitoringReference(model, opts.reference);
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
