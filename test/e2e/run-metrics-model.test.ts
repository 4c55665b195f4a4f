/**
 * A data team's first run through the CLI, end to end with real processes: `run start --wait` on a pipe
 * prints one plain line per finished round (cohort, survivors, loss, accuracy, ε, elapsed) that agrees
 * with the coordinator's own records; `status` prints readable tables; `metrics --csv|--json` exports
 * the per-round metrics; `model export` writes the final model as the audit log names it with its model
 * card (refused to an institution without a policy: the coordinator's access rules apply); `model
 * predict` on each institution's raw held-out rows reproduces the accuracy the coordinator's federated
 * evaluation reported for the final round.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { collectRoundMetrics, type RunView } from '../../src/cli/run-view.ts';
import { createSeededRng, sha256Hex } from '../../src/crypto/index.ts';
import { loadTable, parseCsv, parseDataSchema, splitTrainTest } from '../../src/data/index.ts';
import type { ProcessFederation } from '../../src/simulation/index.ts';
import type { MtlsClient } from '../../src/transport/index.ts';
import { SCHEMA_PATH, startTestFederation } from './fixtures.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;
const ROUNDS = 3;
const RUN = 'first-day';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}
function runCli(args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI, ...args],
      { cwd: ROOT, timeout: 600_000, env: { ...process.env, ENTENTE_LOG_LEVEL: 'warn' } },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}
const ok = (r: CliResult, what: string): CliResult => {
  assert.equal(r.code, 0, `${what} failed:\n${r.stderr}`);
  return r;
};

describe('first day on the CLI: progress, status, metrics, model export and predict', {
  timeout: 900_000,
}, () => {
  let federation: ProcessFederation | undefined;
  let client: MtlsClient | undefined;
  let dir = '';
  let dataPath: (id: string) => string;
  let started: CliResult;
  let view: RunView;

  before(async () => {
    const fed = await startTestFederation({ institutions: INSTITUTIONS, prefix: 'entente-first-day-' });
    federation = fed.federation;
    client = fed.client;
    dir = fed.setup.dir;
    dataPath = fed.setup.dataPath;
    const config = {
      id: RUN,
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: ROUNDS,
      minParticipants: 3,
      secureAggregation: { protocol: 'none' },
      train: {
        epochs: 1,
        batchSize: 16,
        learningRate: 0.1,
        optimizer: 'sgd',
        dp: { clipNorm: 1, noiseMultiplier: 1.1, samplingRate: 0.1 },
      },
      standardize: 'federated',
      evaluate: true,
      roundTimeoutMs: 120_000,
      seed: 'first-day',
    };
    writeFileSync(join(dir, 'run.json'), JSON.stringify(config));
    // stdout is a pipe here: plain lines, no redrawing.
    started = await runCli(['run', 'start', join(dir, 'run.json'), '--workspace', dir, '--wait']);
    view = (await client.getJson<RunView>(`/v1/runs/${RUN}`)).body!;
  });
  after(async () => {
    await client?.close();
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('run start --wait on a pipe prints one plain line per round, matching the coordinator', () => {
    ok(started, 'run start --wait');
    assert.equal(view.status, 'completed');
    assert.equal(view.rounds.length, ROUNDS);
    assert.ok(!started.stdout.includes('\r'), 'no carriage return on a pipe');
    assert.ok(!started.stdout.includes('\u001b['), 'no terminal escapes on a pipe');
    const lines = started.stdout.split('\n').filter((l) => /^round \d+\/\d+ \|/.test(l));
    assert.equal(lines.length, ROUNDS, started.stdout);
    const metrics = collectRoundMetrics(view);
    for (const [i, line] of lines.entries()) {
      const r = view.rounds[i]!;
      const train = metrics.find((m) => m.round === r.round && m.phase === 'train')!;
      const evaluate = metrics.find((m) => m.round === r.round && m.phase === 'evaluate')!;
      assert.equal(train.cohort, 3);
      assert.equal(train.survivors, 3);
      assert.equal(evaluate.survivors, 3);
      assert.ok(train.epsilon !== null && train.epsilon > 0, 'ε is known under DP-SGD');
      const m = new RegExp(
        `^round ${r.round}/${ROUNDS} \\| train cohort 3 survivors 3 loss ${r.trainLoss!.toFixed(4)} \\| evaluate cohort 3 survivors 3 loss ${r.evalLoss!.toFixed(4)} accuracy ${r.evalAccuracy!.toFixed(4)} \\| ε ${train.epsilon.toFixed(3)} \\| elapsed \\d+\\.\\ds$`,
      );
      assert.match(line, m);
    }
    // ε spent only grows.
    const eps = metrics.filter((m) => m.phase === 'train').map((m) => m.epsilon!);
    for (let i = 1; i < eps.length; i++) assert.ok(eps[i]! > eps[i - 1]!, `ε after round ${i + 1}`);
    // Then the run's table.
    assert.match(started.stdout, new RegExp(`^run ${RUN}: completed, ${ROUNDS} rounds$`, 'm'));
    assert.match(started.stdout, /^round +phase +cohort +survivors +examples +loss +accuracy +ε +wall$/m);
  });

  it('status prints readable tables; --json keeps the machine output', async () => {
    const [table, json] = await Promise.all([
      runCli(['status', '--workspace', dir]),
      runCli(['status', '--workspace', dir, '--json']),
    ]);
    ok(table, 'status');
    ok(json, 'status --json');
    const machine = JSON.parse(json.stdout) as { participants: { id: string }[]; runs: { id: string }[] };
    assert.deepEqual(machine.participants.map((p) => p.id).sort(), [...INSTITUTIONS].sort());
    assert.match(table.stdout, /^member +registered +available +last seen$/m);
    for (const id of INSTITUTIONS)
      assert.match(table.stdout, new RegExp(`^${id} +yes +(yes|no) +(\\d+\\.\\ds ago)$`, 'm'));
    assert.match(table.stdout, new RegExp(`^${RUN} +completed$`, 'm'));
    assert.doesNotMatch(table.stdout, /^\s*[{[]/m, 'not JSON');
  });

  it('metrics --csv and --json export every round and phase as the coordinator recorded it', async () => {
    const [csv, json] = await Promise.all([
      runCli(['metrics', RUN, '--workspace', dir, '--csv']),
      runCli(['metrics', RUN, '--workspace', dir, '--json']),
    ]);
    ok(csv, 'metrics --csv');
    ok(json, 'metrics --json');
    const expected = collectRoundMetrics(view);
    assert.deepEqual(JSON.parse(json.stdout), expected);
    const table = parseCsv(csv.stdout);
    assert.deepEqual(table.header, [
      'round',
      'phase',
      'cohort',
      'survivors',
      'examples',
      'loss',
      'accuracy',
      'epsilon',
      'wallMs',
    ]);
    assert.equal(table.rows.length, 2 * ROUNDS);
    for (const [i, row] of table.rows.entries()) {
      const m = expected[i]!;
      assert.deepEqual(row, [
        String(m.round),
        m.phase,
        String(m.cohort),
        String(m.survivors),
        String(m.examples),
        String(m.loss),
        m.accuracy === null ? '' : String(m.accuracy),
        String(m.epsilon),
        String(m.wallMs),
      ]);
    }
    const last = view.rounds.at(-1)!;
    assert.equal(Number(table.rows.at(-1)![6]), last.evalAccuracy);
  });

  it('model export writes the logged final model and its card; predict on held-out rows reproduces the evaluation', async () => {
    const out = join(dir, 'model.safetensors');
    // Without a policy only an operator may fetch a final model: an institution is refused.
    const refused = await runCli([
      'model',
      'export',
      RUN,
      '--workspace',
      dir,
      '--as',
      'alpha',
      '--out',
      join(dir, 'x.safetensors'),
    ]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /^entente: FORBIDDEN: /m);
    assert.equal(existsSync(join(dir, 'x.safetensors')), false);

    ok(await runCli(['model', 'export', RUN, '--workspace', dir, '--out', out]), 'model export');
    const bytes = readFileSync(out);
    const card = JSON.parse(readFileSync(join(dir, 'model.card.json'), 'utf8'));
    const last = view.rounds.at(-1)!;
    assert.equal(sha256Hex(bytes), view.model!.sha256);
    assert.equal(card.model.sha256, last.modelOut);
    assert.equal(card.auditLog.modelSha256, last.modelOut);
    assert.equal(card.auditLog.round, ROUNDS);
    assert.equal(card.run, RUN);
    assert.equal(card.rounds, ROUNDS);
    assert.deepEqual(card.modelSpec, { kind: 'logistic', inputDim: 30 });
    assert.deepEqual(card.standardization, view.standardization);
    assert.equal(card.finalMetrics.evaluation.accuracy, last.evalAccuracy);

    // Each institution's raw held-out rows, split exactly as its participant did.
    const schema = parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
    let correct = 0;
    let total = 0;
    for (const id of INSTITUTIONS) {
      const text = readFileSync(dataPath(id), 'utf8');
      const raw = parseCsv(text);
      const split = splitTrainTest(loadTable(text, schema), 0.2, createSeededRng(`${id}/holdout`));
      const holdout = join(dir, `${id}-holdout.csv`);
      writeFileSync(
        holdout,
        [raw.header, ...split.testIndices.map((i) => raw.rows[i]!)].map((r) => r.join(',')).join('\n'),
      );
      const preds = join(dir, `${id}-predictions.csv`);
      const r = ok(
        await runCli([
          'model',
          'predict',
          '--model',
          out,
          '--data',
          holdout,
          '--schema',
          SCHEMA_PATH,
          '--out',
          preds,
          '--json',
        ]),
        `model predict (${id})`,
      );
      const summary = JSON.parse(r.stdout) as { rows: number; accuracy: number };
      const predicted = parseCsv(readFileSync(preds, 'utf8'));
      assert.equal(predicted.rows.length, split.testIndices.length);
      const labelColumn = raw.header.indexOf(schema.label.name);
      const right = split.testIndices.filter(
        (row, k) => predicted.rows[k]![0] === raw.rows[row]![labelColumn],
      ).length;
      assert.equal(summary.rows, split.testIndices.length);
      assert.equal(summary.accuracy, right / summary.rows);
      correct += right;
      total += summary.rows;
    }
    assert.equal(total, last.evalExamples);
    // The coordinator's accuracy is the example-weighted mean of the sites' accuracies.
    assert.ok(
      Math.abs(correct / total - last.evalAccuracy!) < 1e-12,
      `${correct}/${total} vs ${last.evalAccuracy}`,
    );

    // Rows without the label column are predicted the same way.
    const text = readFileSync(join(dir, 'alpha-holdout.csv'), 'utf8');
    const raw = parseCsv(text);
    const labelColumn = raw.header.indexOf(schema.label.name);
    const unlabelled = join(dir, 'alpha-unlabelled.csv');
    writeFileSync(
      unlabelled,
      [raw.header, ...raw.rows].map((r) => r.filter((_, c) => c !== labelColumn).join(',')).join('\n'),
    );
    const again = ok(
      await runCli(['model', 'predict', '--model', out, '--data', unlabelled, '--schema', SCHEMA_PATH]),
      'model predict (unlabelled)',
    );
    assert.equal(again.stdout, readFileSync(join(dir, 'alpha-predictions.csv'), 'utf8'));
  });
});
