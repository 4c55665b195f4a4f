/**
 * `entente metrics <run>` (per-round metrics as a table, CSV or JSON), `entente model export <run>`
 * (the released final model exactly as the coordinator stores it, in safetensors, plus a JSON model
 * card next to it: run, rounds, model spec, the standardization the model expects, final metrics and
 * the audit-log entry that records the model's SHA-256) and `entente model predict` (raw CSV rows in,
 * predictions out: the card's standardization is applied, so no hand work is needed).
 *
 * The model is fetched through GET /v1/runs/:runId/model, so the coordinator's access rules decide
 * (under a policy, only after a release-model quorum). The file's bytes are not re-encoded: their
 * SHA-256 is the one the audit log's model-released entry names, and the card says which entry.
 * `model export --alias NAME` exports the version an alias points at (the registry's alias table,
 * replayed from the log): that version's run's final model, refused unless it is exactly that version.
 */
import { basename } from 'node:path';
import type { Command } from 'commander';
import { parseLogEntry } from '../audit/index.ts';
import { EntenteError } from '../core/errors.ts';
import { decodeSafetensors } from '../core/safetensors.ts';
import { sha256Hex } from '../crypto/index.ts';
import {
  MAX_PARAMETERS,
  type ModelSpec,
  describeLayout,
  isRegressionSpec,
  parseModelSpec,
  predictValues,
} from '../models/index.ts';
import type { MtlsClient } from '../transport/index.ts';
import { type MemberOptions, addMemberOptions, openMember } from './governance-commands.ts';
import { readModelOffline } from './model-export-offline.ts';
import { parseInteger, readTextFile, writeOutputFile } from './parse-options.ts';
import { readVersionDetail, registerRegistryCommands, resolveAliasTarget } from './registry-commands.ts';
import {
  MODEL_CARD_FORMAT,
  type ModelCard,
  loadRows,
  loadScoringModel,
  modelCardPath,
  quoteCsv,
  scoreClasses,
  standardizeForModel,
} from './scoring-model.ts';
import { type RunView, collectRoundMetrics, formatMetricsCsv, formatMetricsTable } from './run-view.ts';

export { MODEL_CARD_FORMAT, type ModelCard, modelCardPath } from './scoring-model.ts';

async function withMember<T>(opts: MemberOptions, fn: (client: MtlsClient) => Promise<T>): Promise<T> {
  const m = openMember(opts);
  try {
    return await fn(m.client);
  } finally {
    await m.client.close();
  }
}

async function readRunView(client: MtlsClient, runId: string): Promise<RunView> {
  return (await client.getJson<RunView>(`/v1/runs/${encodeURIComponent(runId)}`)).body!;
}

/** The audit log's model-released entry of `runId` naming `sha256`, read page by page. */
async function findModelEntry(client: MtlsClient, runId: string, sha256: string) {
  const page = 10_000;
  for (let start = 0; ; start += page) {
    const r = (
      await client.getJson<{ entries: { index: number; body: string }[] }>(
        `/v1/log/entries?start=${start}&end=${start + page}`,
      )
    ).body!;
    for (const e of r.entries) {
      const entry = parseLogEntry(Buffer.from(e.body, 'base64'), `entry ${e.index}`);
      if (entry.kind === 'model-released' && entry.run === runId && entry.modelSha256 === sha256)
        return { entry: entry.index, round: entry.round, modelSha256: entry.modelSha256 };
    }
    if (r.entries.length < page) return undefined;
  }
}

/** Adds `metrics` and `model export|predict` to the program. */
export function registerModelCommands(program: Command): void {
  addMemberOptions(
    program
      .command('metrics')
      .description(
        'per-round metrics of a run: round, phase, cohort, survivors, loss, accuracy, ε, wall time',
      )
      .argument('<runId>', 'run id')
      .option('--csv', 'print CSV (header line, one row per round and phase)')
      .option('--json', 'print a JSON array'),
  ).action(async (runId: string, opts: MemberOptions & { csv?: boolean; json?: boolean }) => {
    if (opts.csv && opts.json)
      throw new EntenteError('INVALID_ARGUMENT', '--csv and --json: choose one', { field: 'csv' });
    const view = await withMember(opts, (client) => readRunView(client, runId));
    const rows = collectRoundMetrics(view);
    if (opts.json) console.log(JSON.stringify(rows));
    else if (opts.csv) process.stdout.write(formatMetricsCsv(rows));
    else console.log(rows.length === 0 ? `run ${runId}: no round finished yet` : formatMetricsTable(rows));
  });

  const model = program
    .command('model')
    .description('the model registry (list, show, diff, aliases) and final models (export, predict)');
  addMemberOptions(
    model
      .command('export')
      .description(
        "write a completed run's final model (safetensors, as released) and its model card (<file>.card.json)",
      )
      .argument('[runId]', 'run id (or --run, or --alias)')
      .option('--run <id>', 'run id')
      .option('--alias <name>', "the version an alias points at (e.g. production): its run's final model")
      .option(
        '--round <n>',
        "the round whose model to write: only the final round's (the released model) is served",
        (v: string) => parseInteger(v, '--round', 0),
      )
      .requiredOption('--out <file>', 'model file to write, e.g. model.safetensors')
      .option('--card <file>', 'model card to write (default: <out>.card.json next to the model)')
      .option('--json', 'print the model card as JSON'),
  ).action(
    async (
      positional: string | undefined,
      opts: MemberOptions & {
        run?: string;
        alias?: string;
        round?: number;
        out: string;
        card?: string;
        json?: boolean;
      },
    ) => {
      if (positional !== undefined && opts.run !== undefined && positional !== opts.run)
        throw new EntenteError('INVALID_ARGUMENT', '--run: names another run than the argument', {
          field: 'run',
        });
      let runId = opts.run ?? positional;
      let expected: Expected | undefined;
      if (opts.alias !== undefined) {
        if (runId !== undefined)
          throw new EntenteError(
            'INVALID_ARGUMENT',
            '--alias: name the model by a run or by an alias, not both',
            {
              field: 'alias',
            },
          );
        if (opts.round !== undefined)
          throw new EntenteError(
            'INVALID_ARGUMENT',
            '--round: not with --alias (an alias names one version)',
            {
              field: 'round',
            },
          );
        const version = await resolveAliasTarget(opts, opts.alias);
        expected = { sha256: version.id, alias: opts.alias, round: version.round };
        if (version.kind === 'initial') throw notFinal(expected, version.run);
        runId = version.run;
      }
      if (runId === undefined)
        throw new EntenteError(
          'INVALID_ARGUMENT',
          '--run: say which run (--run ID) or alias (--alias NAME)',
          {
            field: 'run',
          },
        );
      const card = await exportModel(runId, { ...opts, expected }).catch((err: unknown) => {
        // The workspace's coordinator is not running: its holder reads the released model from its files.
        if (!(err instanceof EntenteError && err.code === 'UNAVAILABLE' && opts.workspace && !opts.site))
          throw err;
        return exportOffline(runId, { ...opts, expected });
      });
      if (opts.json) console.log(JSON.stringify(card));
      else
        console.log(
          `wrote ${opts.out} (${opts.alias ? `alias "${opts.alias}", ` : ''}${card.model.bytes} bytes, sha256 ${card.model.sha256}, audit-log entry ${card.auditLog.entry}) and ${opts.card ?? modelCardPath(opts.out)}`,
        );
    },
  );
  registerPredict(model);
  registerRegistryCommands(model);
}

/** The version an alias pointed at when it was resolved: the exported model must be exactly it. */
interface Expected {
  readonly sha256: string;
  readonly alias: string;
  readonly round: number;
}

function notFinal(expected: Expected, runId: string): EntenteError {
  return new EntenteError(
    'NOT_FOUND',
    `--alias: "${expected.alias}" points at ${expected.sha256}, the round ${expected.round} model of run "${runId}", not its final model; only a run's final model is exported`,
    { field: 'alias' },
  );
}

/** Refuses a model other than the one `expected` names (before anything is written). */
function checkExpected(expected: Expected | undefined, sha256: string, runId: string): void {
  if (expected !== undefined && sha256 !== expected.sha256) throw notFinal(expected, runId);
}

/** The registry's section of the card for `sha256` (null when this member may not read the registry). */
async function registrySection(opts: MemberOptions, sha256: string): Promise<unknown> {
  try {
    return (await readVersionDetail(opts, sha256)).card;
  } catch (err) {
    if (err instanceof EntenteError && (err.code === 'FORBIDDEN' || err.code === 'NOT_FOUND')) return null;
    throw err;
  }
}

/** Writes the model bytes and its card (at --card, or next to the model). */
function writeModelAndCard(opts: { out: string; card?: string }, bytes: Uint8Array, card: ModelCard): void {
  writeOutputFile(opts.out, bytes, '--out');
  writeOutputFile(
    opts.card ?? modelCardPath(opts.out),
    `${JSON.stringify(card, null, 2)}\n`,
    opts.card ? '--card' : '--out',
  );
}

async function exportOffline(
  runId: string,
  opts: { workspace?: string; round?: number; out: string; card?: string; expected?: Expected | undefined },
): Promise<ModelCard> {
  const m = readModelOffline(opts.workspace!, runId);
  checkExpected(opts.expected, m.sha256, runId);
  if (opts.round !== undefined && opts.round !== m.finalMetrics.round)
    throw new EntenteError(
      'NOT_FOUND',
      `--round: run "${runId}" serves only its final model (round ${m.finalMetrics.round}); earlier rounds' models stay with the coordinator`,
      { field: 'round' },
    );
  const spec: ModelSpec = parseModelSpec(m.config.model);
  decodeSafetensors(m.bytes, { expected: describeLayout(spec) });
  const card: ModelCard = {
    format: MODEL_CARD_FORMAT,
    run: runId,
    rounds: m.rounds,
    modelSpec: spec,
    model: { file: basename(opts.out), sha256: m.sha256, bytes: m.bytes.length },
    standardization: m.standardization,
    dataSchemaDigest: m.config.dataSchemaDigest ?? null,
    finalMetrics: m.finalMetrics,
    auditLog: m.auditLog,
    exportedAt: new Date().toISOString(),
    registry: await registrySection({ workspace: opts.workspace! }, m.sha256),
  };
  writeModelAndCard(opts, m.bytes, card);
  return card;
}

async function exportModel(
  runId: string,
  opts: MemberOptions & { round?: number; out: string; card?: string; expected?: Expected | undefined },
): Promise<ModelCard> {
  return withMember(opts, async (client) => {
    // The model route applies the access rules (release under a policy) before anything else is read.
    const bytes = await client.getBytes(
      `/v1/runs/${encodeURIComponent(runId)}/model`,
      MAX_PARAMETERS * 4 + 1024 * 1024,
    );
    const view = await readRunView(client, runId).catch((err: unknown) => {
      if (err instanceof EntenteError && err.code === 'FORBIDDEN')
        throw new EntenteError(
          'FORBIDDEN',
          `run "${runId}": the model card needs the run's record (its spec and standardization), which only an operator or a data steward may read`,
          { field: 'runId' },
        );
      throw err;
    });
    const sha256 = sha256Hex(bytes);
    checkExpected(opts.expected, sha256, runId);
    const last = view.rounds.at(-1);
    if (sha256 !== view.model?.sha256 || (last && last.modelOut !== sha256))
      throw new EntenteError(
        'DIGEST_MISMATCH',
        `run "${runId}": the model served is not the run's final model`,
        {
          field: 'model',
        },
      );
    const logged = await findModelEntry(client, runId, sha256);
    if (!logged)
      throw new EntenteError(
        'DIGEST_MISMATCH',
        `run "${runId}": no model-released entry of the audit log names the model served`,
        { field: 'model' },
      );
    if (opts.round !== undefined && opts.round !== last?.round)
      throw new EntenteError(
        'NOT_FOUND',
        `--round: run "${runId}" serves only its final model (round ${last?.round ?? 0}); earlier rounds' models stay with the coordinator`,
        { field: 'round' },
      );
    const spec: ModelSpec = parseModelSpec(view.config.model);
    decodeSafetensors(bytes, { expected: describeLayout(spec) });
    const metrics = collectRoundMetrics(view);
    const lastEvaluation = metrics.filter((m) => m.phase === 'evaluate' && m.accuracy !== null).at(-1);
    const lastTrain = metrics.filter((m) => m.phase === 'train').at(-1);
    const card: ModelCard = {
      format: MODEL_CARD_FORMAT,
      run: runId,
      rounds: view.rounds.length,
      modelSpec: spec,
      model: { file: basename(opts.out), sha256, bytes: bytes.length },
      standardization: view.standardization,
      dataSchemaDigest: view.config.dataSchemaDigest ?? null,
      finalMetrics: {
        round: last?.round ?? 0,
        trainLoss: lastTrain?.loss ?? null,
        evaluation: lastEvaluation
          ? {
              round: lastEvaluation.round,
              examples: lastEvaluation.examples,
              loss: lastEvaluation.loss,
              accuracy: lastEvaluation.accuracy,
            }
          : null,
      },
      auditLog: logged,
      exportedAt: new Date().toISOString(),
      registry: await registrySection(opts, sha256),
    };
    writeModelAndCard(opts, bytes, card);
    return card;
  });
}

function registerPredict(model: Command): void {
  model
    .command('predict')
    .description(
      'predict the class of each row of a CSV with an exported model (its card standardizes the rows)',
    )
    .requiredOption('--model <file>', 'model file written by entente model export')
    .requiredOption(
      '--data <csv>',
      "rows to predict (CSV with the schema's feature columns; a label column is optional)",
    )
    .requiredOption('--schema <file>', 'the data schema the run was trained with (JSON or YAML)')
    .option('--card <file>', 'model card (default: <model>.card.json next to the model)')
    .option('--out <csv>', 'write predictions here (default: stdout)')
    .option(
      '--json',
      'print JSON: {"probabilities": [[p_class0, p_class1, …], …]} in row order, rows, accuracy',
    )
    .action(
      (opts: {
        model: string;
        data: string;
        schema: string;
        card?: string;
        out?: string;
        json?: boolean;
      }) => {
        const loaded = loadScoringModel(opts);
        const { spec, weights, classNames: names } = loaded;
        const { data: raw, labelled } = loadRows(readTextFile(opts.data, '--data'), loaded.schema);
        const data = standardizeForModel(loaded, raw);
        if (isRegressionSpec(spec)) {
          // A linear model predicts a value per row; with targets, the mean squared error is reported.
          const values = predictValues(spec, weights, data.x);
          let squared = 0;
          const lines = ['prediction'];
          for (let i = 0; i < data.count; i++) {
            lines.push(String(values[i]));
            if (labelled) squared += (values[i]! - data.target![i]!) ** 2;
          }
          const csv = `${lines.join('\n')}\n`;
          if (opts.out) writeOutputFile(opts.out, csv, '--out');
          else if (!opts.json) process.stdout.write(csv);
          const mse = labelled ? squared / data.count : null;
          if (opts.json)
            console.log(JSON.stringify({ rows: data.count, mse, ...(opts.out ? { out: opts.out } : {}) }));
          else if (mse !== null)
            console.error(`mean squared error ${mse} on ${data.count} rows with targets`);
          return;
        }
        const { probabilities: rows, classes } = scoreClasses(loaded, data);
        const lines = [['prediction', ...names.map((c) => `p_${c}`)].map(quoteCsv).join(',')];
        let correct = 0;
        for (let i = 0; i < data.count; i++) {
          const p = rows[i]!;
          lines.push([names[classes[i]!]!, ...p.map((v) => String(v))].map(quoteCsv).join(','));
          if (classes[i] === data.y[i]) correct++;
        }
        const csv = `${lines.join('\n')}\n`;
        if (opts.out) writeOutputFile(opts.out, csv, '--out');
        else if (!opts.json) process.stdout.write(csv);
        const accuracy = labelled ? correct / data.count : null;
        if (opts.json)
          // Class probabilities in the CSV's row order, one column per class of the schema.
          console.log(
            JSON.stringify({
              probabilities: rows,
              classes: names,
              rows: data.count,
              accuracy,
              ...(opts.out ? { out: opts.out } : {}),
            }),
          );
        else if (accuracy !== null)
          console.error(
            `accuracy ${accuracy.toFixed(4)} on ${data.count} labelled rows (${correct} correct)`,
          );
      },
    );
}
