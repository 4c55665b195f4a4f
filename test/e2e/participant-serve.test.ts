/**
 * Serving on site as real processes: a logistic model trained here on the vendored breast cancer data
 * (standardized as a run would), exported as safetensors with its card; `entente participant serve`
 * spawned on loopback; its probabilities equal `entente model predict --json` on the same rows; hostile
 * requests get a structured 4xx and the server stays up; on SIGTERM the monitoring file holds the
 * right row count and no row value; `participant score` records a CSV and one with a feature tripled
 * drifts more (PSI) against the reference than the unshifted rows; a non-loopback --host is refused.
 * With `--follow`, serve reads a serving directory laid out by hand (models/<sha>.safetensors + .json,
 * serving.json): 503 until serving.json names a version, then that version; rewritten to a second
 * version, the next requests use it and their counts land in its own monitoring file; a corrupted
 * version is refused with a logged warning and the second keeps serving; `score --follow` scores with
 * the version named; --model and --follow together, or neither, are usage errors.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeSafetensors } from '../../src/core/safetensors.ts';
import { createSeededRng, sha256Hex } from '../../src/crypto/index.ts';
import {
  applyStandardization,
  computeFeatureStats,
  computeSchemaDigest,
  deriveStandardization,
  loadTable,
  parseCsv,
  parseDataSchema,
} from '../../src/data/index.ts';
import { initializeWeights, trainLocally } from '../../src/models/index.ts';
import { DATASET_DIR, spawnEntente, waitForUrl } from '../../src/simulation/index.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'entente.js');
const SCHEMA = join(DATASET_DIR, 'schema.json');
const CSV_TEXT = readFileSync(join(DATASET_DIR, 'breast-cancer.csv'), 'utf8');

function runCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: ROOT, timeout: 120_000, env: { ...process.env, ENTENTE_LOG_LEVEL: 'warn' } },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

/** The CSV with `column` multiplied by `factor` in every row (label and other cells untouched). */
function scaleColumn(text: string, column: string, factor: number): string {
  const table = parseCsv(text);
  const c = table.header.indexOf(column);
  const lines = [table.header.join(',')];
  for (const row of table.rows)
    lines.push(row.map((v, j) => (j === c ? String(Number(v) * factor) : v)).join(','));
  return `${lines.join('\n')}\n`;
}

describe('entente participant serve and score', { timeout: 120_000 }, () => {
  let dir: string;
  const files: Record<string, string> = {};
  let sha256: string;
  let rows: Record<string, string>[];
  /** What a serving directory's models/<sha>.json says of the models trained here (spec, standardization, schema). */
  let description: Record<string, unknown>;
  /** A second model (another seed, one epoch): its bytes and digest. */
  let second: { bytes: Uint8Array; sha256: string };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'entente-serve-'));
    const schema = parseDataSchema(JSON.parse(readFileSync(SCHEMA, 'utf8')));
    const raw = loadTable(CSV_TEXT, schema);
    const standardization = deriveStandardization(computeFeatureStats(raw));
    const spec = { kind: 'logistic' as const, inputDim: raw.dim };
    const trained = trainLocally(
      spec,
      initializeWeights(spec, createSeededRng('serve-init')),
      applyStandardization(raw, standardization),
      { epochs: 5, batchSize: 32, learningRate: 0.1, optimizer: 'sgd' },
      createSeededRng('serve-train'),
    );
    const model = encodeSafetensors(trained.weights);
    sha256 = sha256Hex(model);
    description = {
      format: 'entente-site-model/1',
      modelSpec: spec,
      standardization: { mean: Array.from(standardization.mean), std: Array.from(standardization.std) },
      dataSchemaDigest: computeSchemaDigest(schema),
    };
    const other = encodeSafetensors(
      trainLocally(
        spec,
        initializeWeights(spec, createSeededRng('serve-init-2')),
        applyStandardization(raw, standardization),
        { epochs: 1, batchSize: 64, learningRate: 0.05, optimizer: 'sgd' },
        createSeededRng('serve-train-2'),
      ).weights,
    );
    second = { bytes: other, sha256: sha256Hex(other) };
    files.model = join(dir, 'model.safetensors');
    writeFileSync(files.model, model);
    writeFileSync(
      join(dir, 'model.card.json'),
      JSON.stringify({
        format: 'entente-model-card/1',
        run: 'run-serve',
        rounds: 1,
        modelSpec: spec,
        model: { file: 'model.safetensors', sha256, bytes: model.length },
        standardization: { mean: Array.from(standardization.mean), std: Array.from(standardization.std) },
        dataSchemaDigest: computeSchemaDigest(schema),
        finalMetrics: null,
        auditLog: { entry: 1, round: 1, modelSha256: sha256 },
        exportedAt: '2026-01-01T00:00:00.000Z',
      }),
    );
    // 40 rows without the label, as an application would send them.
    const table = parseCsv(CSV_TEXT);
    const label = table.header.indexOf('diagnosis');
    rows = table.rows.slice(0, 40).map((r) => {
      const o: Record<string, string> = {};
      table.header.forEach((h, j) => {
        if (j !== label) o[h] = r[j]!;
      });
      return o;
    });
    const head = table.header.filter((_, j) => j !== label);
    files.unlabelled = join(dir, 'rows.csv');
    writeFileSync(
      files.unlabelled,
      `${[head.join(','), ...rows.map((o) => head.map((h) => o[h]).join(','))].join('\n')}\n`,
    );
    // A reference (every row), the same rows again, and the same rows with one feature tripled.
    files.all = join(dir, 'all.csv');
    writeFileSync(files.all, CSV_TEXT);
    files.shifted = join(dir, 'shifted.csv');
    writeFileSync(files.shifted, scaleColumn(CSV_TEXT, 'mean_texture', 3));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves the probabilities model predict gives, refuses hostile requests, records counts only', async () => {
    const site = join(dir, 'site-serve');
    const server = spawnEntente('serve', [
      ...['participant', 'serve', '--model', files.model!, '--schema', SCHEMA, '--site', site],
    ]);
    try {
      const url = await waitForUrl(server);
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const health = await (await fetch(`${url}/v1/health`)).json();
      assert.deepEqual(health, { status: 'ok', model: sha256, rows: 0 });

      const post = (body: string | Uint8Array, type = 'application/json') =>
        fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': type }, body });
      const scored = await post(JSON.stringify({ rows }));
      assert.equal(scored.status, 200);
      const answer = (await scored.json()) as { probabilities: number[][]; model: string; rows: number };
      assert.equal(answer.model, sha256);
      assert.equal(answer.rows, 40);
      const predicted = await runCli([
        ...[
          'model',
          'predict',
          '--model',
          files.model!,
          '--schema',
          SCHEMA,
          '--data',
          files.unlabelled!,
          '--json',
        ],
      ]);
      assert.equal(predicted.code, 0, predicted.stderr);
      const expected = JSON.parse(predicted.stdout) as { probabilities: number[][] };
      assert.deepEqual(answer.probabilities, expected.probabilities);
      // Not a constant model: the rows get different scores.
      assert.ok(new Set(answer.probabilities.map((p) => p[1])).size > 10);

      // The same rows as a CSV body (with their label: they add to the confusion matrix).
      const csvBody = CSV_TEXT.split('\n').slice(0, 11).join('\n');
      const csvScored = await post(csvBody, 'text/csv');
      assert.equal(csvScored.status, 200);
      const csvAnswer = (await csvScored.json()) as { probabilities: number[][] };
      assert.deepEqual(csvAnswer.probabilities, expected.probabilities.slice(0, 10));

      const refused = async (response: Response, status: number, code: string, field: string) => {
        assert.equal(response.status, status);
        const body = (await response.json()) as { error: { code: string; message: string; field: string } };
        assert.equal(body.error.code, code);
        assert.equal(body.error.field, field);
        assert.ok(body.error.message.length > 0);
        return body.error;
      };
      await refused(await post('{"rows": [{"mean_radius": 1,'), 400, 'INVALID_ARGUMENT', 'body');
      await refused(await post('[1, 2]'), 400, 'INVALID_ARGUMENT', 'body');
      const unknown = await refused(
        await post(JSON.stringify({ rows: [{ ...rows[0], secret_column: 7 }] })),
        400,
        'INVALID_ARGUMENT',
        'rows[0]',
      );
      assert.match(unknown.message, /does not declare/);
      const { mean_radius: _dropped, ...missing } = rows[0]!;
      await refused(await post(JSON.stringify({ rows: [missing] })), 422, 'INVALID_DATA', 'mean_radius');
      await refused(
        await post(JSON.stringify({ rows: [{ ...rows[0], mean_radius: 'abc' }] })),
        422,
        'INVALID_DATA',
        'mean_radius',
      );
      await refused(
        await post(JSON.stringify({ rows: [{ ...rows[0], mean_radius: { x: 1 } }] })),
        400,
        'INVALID_ARGUMENT',
        'rows[0].mean_radius',
      );
      await refused(
        await post(JSON.stringify({ rows: new Array(5001).fill({}) })),
        400,
        'INVALID_ARGUMENT',
        'rows',
      );
      await refused(await post(new Uint8Array(2 * 1024 * 1024).fill(32)), 413, 'BODY_TOO_LARGE', 'body');
      await refused(await post('a,b', 'text/plain'), 400, 'INVALID_ARGUMENT', 'content-type');
      assert.equal((await fetch(`${url}/v1/nothing`)).status, 404);

      // One recorder per model and site: a batch score while serve runs is refused, not lost.
      const locked = await runCli([
        ...['participant', 'score', '--model', files.model!, '--schema', SCHEMA, '--data', files.unlabelled!],
        ...['--site', site],
      ]);
      assert.notEqual(locked.code, 0);
      assert.match(locked.stderr, /^entente: WORKSPACE_LOCKED: --site: another entente process records/m);

      // Still alive; only the two accepted requests were recorded.
      const after = (await (await fetch(`${url}/v1/health`)).json()) as { rows: number };
      assert.equal(after.rows, 50);
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0);

      const text = readFileSync(join(site, 'monitoring', `${sha256}.json`), 'utf8');
      const file = JSON.parse(text) as {
        model: string;
        sums: Record<string, number[]>;
        inputColumns: string[];
      };
      assert.equal(file.model, sha256);
      assert.deepEqual(file.sums.rows, [50]);
      assert.equal(
        file.sums.confusion!.reduce((a, b) => a + b, 0),
        10,
      );
      assert.equal(
        file.sums.latency!.reduce((a, b) => a + b, 0),
        2,
      );
      assert.equal(file.inputColumns.length, 30);
      // No row value: none of the submitted cells (with 3+ significant digits) appears in the file.
      for (const row of rows.slice(0, 5))
        for (const v of Object.values(row))
          if (v.replace(/[^0-9]/g, '').length >= 4) assert.ok(!text.includes(v), v);
      for (const p of answer.probabilities.slice(0, 5)) assert.ok(!text.includes(String(p[1])));
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  it('participant score records a CSV; a tripled feature drifts more than the same rows', async () => {
    const score = (site: string, data: string) =>
      runCli([
        ...['participant', 'score', '--model', files.model!, '--schema', SCHEMA, '--data', data],
        ...['--site', join(dir, site), '--json'],
      ]);
    const [reference, same, shifted] = await Promise.all([
      score('site-reference', files.all!),
      score('site-same', files.all!),
      score('site-shifted', files.shifted!),
    ]);
    for (const r of [reference, same, shifted]) assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(reference.stdout) as {
      probabilities: number[][];
      rows: number;
      monitoredRows: number;
    };
    assert.equal(out.rows, 569);
    assert.equal(out.monitoredRows, 569);
    const predicted = await runCli([
      ...['model', 'predict', '--model', files.model!, '--schema', SCHEMA, '--data', files.all!, '--json'],
    ]);
    assert.deepEqual(
      out.probabilities,
      (JSON.parse(predicted.stdout) as { probabilities: number[][] }).probabilities,
    );

    const file = (site: string) => join(dir, site, 'monitoring', `${sha256}.json`);
    const drift = async (current: string) => {
      const r = await runCli([
        ...[
          'participant',
          'drift',
          '--reference',
          file('site-reference'),
          '--current',
          file(current),
          '--json',
        ],
      ]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as {
        features: { column: string; psi: number; jsDistance: number; ks: number }[];
        labelShiftEstimate: { estimatedLabels: number[] } | null;
      };
    };
    const unshifted = await drift('site-same');
    const moved = await drift('site-shifted');
    const texture = (d: typeof moved) => d.features.find((f) => f.column === 'mean_texture')!;
    assert.equal(texture(unshifted).psi, 0);
    assert.ok(texture(moved).psi > 1, `PSI ${texture(moved).psi}`);
    assert.ok(texture(moved).ks > texture(unshifted).ks);
    assert.equal(moved.features.find((f) => f.column === 'mean_radius')!.psi, 0);
    assert.ok(unshifted.labelShiftEstimate !== null);

    // Scoring again adds to the same file.
    const again = await score('site-same', files.unlabelled!);
    assert.equal((JSON.parse(again.stdout) as { monitoredRows: number }).monitoredRows, 569 + 40);
  });

  it('refuses a non-loopback --host and a tampered monitoring file; --reference for a card without standardization', async () => {
    const r = await runCli([
      ...['participant', 'serve', '--model', files.model!, '--schema', SCHEMA, '--site', join(dir, 'x')],
      ...['--host', '0.0.0.0'],
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^entente: INVALID_ARGUMENT: --host: must be a loopback address/m);
    const site = join(dir, 'site-tampered');
    const first = await runCli([
      ...['participant', 'score', '--model', files.model!, '--schema', SCHEMA, '--data', files.unlabelled!],
      ...['--site', site, '--json'],
    ]);
    assert.equal(first.code, 0, first.stderr);
    const path = join(site, 'monitoring', `${sha256}.json`);
    const file = JSON.parse(readFileSync(path, 'utf8')) as { sums: Record<string, number[]> };
    file.sums.rows = [41];
    writeFileSync(path, JSON.stringify(file));
    const second = await runCli([
      ...['participant', 'score', '--model', files.model!, '--schema', SCHEMA, '--data', files.unlabelled!],
      ...['--site', site],
    ]);
    assert.equal(second.code, 2);
    assert.match(second.stderr, /^entente: INVALID_DATA: monitoring\.features: /m);

    // A card without standardization: the training reference comes from --reference, and only there.
    const card = JSON.parse(readFileSync(join(dir, 'model.card.json'), 'utf8'));
    writeFileSync(join(dir, 'raw.card.json'), JSON.stringify({ ...card, standardization: null }));
    writeFileSync(join(dir, 'reference.json'), JSON.stringify(card.standardization));
    const rawScore = (...extra: string[]) =>
      runCli([
        ...['participant', 'score', '--model', files.model!, '--schema', SCHEMA, '--data', files.unlabelled!],
        ...['--card', join(dir, 'raw.card.json'), '--site', join(dir, 'site-raw'), '--json', ...extra],
      ]);
    const without = await rawScore();
    assert.equal(without.code, 2);
    assert.match(without.stderr, /^entente: INVALID_ARGUMENT: --reference: required/m);
    const withReference = await rawScore('--reference', join(dir, 'reference.json'));
    assert.equal(withReference.code, 0, withReference.stderr);
    const sums = (s: string) =>
      (
        JSON.parse(readFileSync(join(dir, s, 'monitoring', `${sha256}.json`), 'utf8')) as {
          sums: { features: number[] };
        }
      ).sums.features;
    // The same rows binned against the same reference: the same feature histograms as site-tampered's first score.
    const standardized = await runCli([
      ...['participant', 'score', '--model', files.model!, '--schema', SCHEMA, '--data', files.unlabelled!],
      ...['--site', join(dir, 'site-standardized')],
    ]);
    assert.equal(standardized.code, 0, standardized.stderr);
    assert.deepEqual(sums('site-raw'), sums('site-standardized'));
    const both = await runCli([
      ...['participant', 'score', '--model', files.model!, '--schema', SCHEMA, '--data', files.unlabelled!],
      ...['--site', join(dir, 'site-both'), '--reference', join(dir, 'reference.json')],
    ]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /^entente: INVALID_ARGUMENT: --reference: the model card carries/m);
  });

  it('serve --follow: the version serving.json names, swapped when it changes; a corrupted version refused', async () => {
    const serving = join(dir, 'serving');
    const site = join(dir, 'site-follow');
    mkdirSync(join(serving, 'models'), { recursive: true });
    const place = (bytes: Uint8Array, sha: string) => {
      writeFileSync(join(serving, 'models', `${sha}.safetensors`), bytes);
      writeFileSync(join(serving, 'models', `${sha}.json`), JSON.stringify({ ...description, sha256: sha }));
    };
    place(readFileSync(files.model!), sha256);
    place(second.bytes, second.sha256);
    const rollout = 'ab'.repeat(32);
    const assign = (version: string, stage: string) =>
      writeFileSync(
        join(serving, 'serving.json'),
        JSON.stringify({
          format: 'entente-serving/1',
          alias: 'production',
          version,
          rollout,
          stage,
          reason: `${stage} stage of the rollout`,
          updatedAt: new Date().toISOString(),
        }),
      );

    const server = spawnEntente('serve-follow', [
      ...['participant', 'serve', '--follow', serving, '--schema', SCHEMA, '--site', site],
    ]);
    try {
      const url = await waitForUrl(server);
      type Health = {
        status: string;
        model: string | null;
        rollout: string | null;
        stage: string | null;
        warning: string | null;
      };
      const health = async () => (await (await fetch(`${url}/v1/health`)).json()) as Health;
      /** Polls GET /v1/health until `done` holds (bounded: the server checks serving.json every second). */
      const waitForHealth = async (done: (h: Health) => boolean, what: string) => {
        for (let i = 0; i < 200; i++) {
          const h = await health();
          if (done(h)) return h;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.fail(`serve never reported ${what}:\n${server.stderr().slice(-2000)}`);
      };
      const score = async () => {
        const r = await fetch(`${url}/v1/score`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ rows }),
        });
        return { status: r.status, body: (await r.json()) as Record<string, unknown> };
      };

      // No serving.json yet: waiting, and scoring is refused with a coded 503.
      const waiting = await health();
      assert.deepEqual([waiting.status, waiting.model], ['waiting', null]);
      const early = await score();
      assert.equal(early.status, 503);
      assert.deepEqual(
        [(early.body.error as { code: string }).code, (early.body.error as { field: string }).field],
        ['UNAVAILABLE', 'model'],
      );

      assign(sha256, 'canary');
      const first = await waitForHealth((h) => h.model === sha256, `model ${sha256}`);
      assert.deepEqual(
        [first.status, first.rollout, first.stage, first.warning],
        ['ok', rollout, 'canary', null],
      );
      const a = await score();
      assert.equal(a.status, 200);
      assert.equal(a.body.model, sha256);
      // score --follow resolves the same version: the same probabilities.
      const batch = await runCli([
        ...['participant', 'score', '--follow', serving, '--schema', SCHEMA, '--data', files.unlabelled!],
        ...['--site', join(dir, 'site-follow-batch'), '--json'],
      ]);
      assert.equal(batch.code, 0, batch.stderr);
      const batchOut = JSON.parse(batch.stdout) as {
        model: string;
        stage: string;
        probabilities: number[][];
      };
      assert.deepEqual([batchOut.model, batchOut.stage], [sha256, 'canary']);
      assert.deepEqual(a.body.probabilities, batchOut.probabilities);

      assign(second.sha256, 'full');
      const swapped = await waitForHealth((h) => h.model === second.sha256, `model ${second.sha256}`);
      assert.deepEqual([swapped.stage, swapped.warning], ['full', null]);
      const b = await score();
      assert.equal(b.body.model, second.sha256);
      assert.notDeepEqual(b.body.probabilities, a.body.probabilities);

      // A version whose bytes do not hash to its name: refused with a warning, the second keeps serving.
      const corrupt = Buffer.from(readFileSync(files.model!));
      corrupt[corrupt.length - 1]! ^= 0x01;
      const named = 'cd'.repeat(32);
      writeFileSync(join(serving, 'models', `${named}.safetensors`), corrupt);
      writeFileSync(
        join(serving, 'models', `${named}.json`),
        JSON.stringify({ ...description, sha256: named }),
      );
      assign(named, 'full');
      const refused = await waitForHealth((h) => h.warning !== null, 'a warning');
      assert.equal(refused.model, second.sha256);
      assert.match(
        refused.warning!,
        /DIGEST_MISMATCH: --follow: models\/(cd){32}\.safetensors: the bytes do not hash/,
      );
      const c = await score();
      assert.equal(c.body.model, second.sha256);
      assert.match(server.stderr(), /serving\.json not applied: keeping the model in service/);
      assert.match(server.stderr(), /DIGEST_MISMATCH/);

      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0);
      const monitored = (sha: string) =>
        (
          JSON.parse(readFileSync(join(site, 'monitoring', `${sha}.json`), 'utf8')) as {
            sums: { rows: number[] };
          }
        ).sums.rows[0];
      assert.equal(monitored(sha256), 40);
      assert.equal(monitored(second.sha256), 80);
    } finally {
      server.child.kill('SIGKILL');
    }

    const both = await runCli([
      ...['participant', 'serve', '--model', files.model!, '--follow', serving, '--schema', SCHEMA],
      ...['--site', site],
    ]);
    assert.equal(both.code, 2);
    assert.match(
      both.stderr,
      /^entente: INVALID_ARGUMENT: --follow: give either --model FILE or --follow DIR/m,
    );
    const neither = await runCli([
      ...['participant', 'score', '--schema', SCHEMA, '--data', files.unlabelled!, '--site', site],
    ]);
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /^entente: INVALID_ARGUMENT: --follow: say which model to serve/m);
  });
});
