/**
 * Serving on site, in process: loopback hosts only; JSON rows turned into the CSV the schema's loader
 * checks (undeclared columns, uneven rows, values of other types refused, naming the row); the
 * monitoring file flushed, reloaded and added to, and refused when tampered with or for another model;
 * --model or --follow, exactly one; a serving directory's versions checked (bytes against their name,
 * description against the name, tensors against the spec, schema against the digest); the follower
 * swapping versions and recorders, keeping the last good model when serving.json or a version is bad,
 * and refusing to score before any good assignment.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { encodeSafetensors } from '../core/safetensors.ts';
import type { Weights } from '../core/tensor.ts';
import { createSeededRng, sha256Hex } from '../crypto/index.ts';
import { type DataSchema, computeSchemaDigest, parseDataSchema } from '../data/index.ts';
import { initializeWeights } from '../models/index.ts';
import { MonitoringRecorder } from './monitoring-file.ts';
import type { ScoringModel } from './scoring-model.ts';
import { rowsToCsv, scoreAndRecord } from './scoring-server.ts';
import { chooseModelSource, parseLoopbackHost } from './serve-commands.ts';
import { loadSiteModel, readServingFile } from './serving-dir.ts';
import { ServingFollower } from './serving-follower.ts';

const schema: DataSchema = parseDataSchema({
  features: [
    { name: 'a', type: 'number' },
    { name: 'b', type: 'number' },
  ],
  label: { name: 'y', classes: ['no', 'yes'] },
  missing: 'reject',
  standardize: true,
});
const spec = { kind: 'logistic' as const, inputDim: 2 };
const weights = initializeWeights(spec, createSeededRng('serve-unit'));
const model = (sha256: string): ScoringModel => ({
  spec,
  weights,
  schema,
  card: {} as ScoringModel['card'],
  sha256,
  classNames: ['no', 'yes'],
  standardization: null,
});
const field = (f: string) => (e: unknown) => e instanceof EntenteError && e.field === f;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('participant serve pieces', () => {
  it('accepts loopback hosts only', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1'])
      assert.equal(parseLoopbackHost(h), h);
    assert.equal(parseLoopbackHost('localhost'), '127.0.0.1');
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.org', '128.0.0.1', '1::1', ''])
      assert.throws(() => parseLoopbackHost(h), field('host'), h);
  });

  it('turns JSON rows into CSV and refuses what the schema does not declare', () => {
    const m = model('a'.repeat(64));
    assert.equal(
      rowsToCsv(
        {
          rows: [
            { a: 1, b: '2.5' },
            { a: -3, b: 4 },
          ],
        },
        m,
        10,
      ),
      'a,b\n1,2.5\n-3,4\n',
    );
    assert.equal(rowsToCsv({ rows: [{ a: 1, b: 2, y: 'yes' }] }, m, 10), 'a,b,y\n1,2,yes\n');
    assert.equal(rowsToCsv({ rows: [{ a: 'x,"y"', b: 2 }] }, m, 10), 'a,b\n"x,""y""",2\n');
    assert.throws(() => rowsToCsv([], m, 10), field('body'));
    assert.throws(() => rowsToCsv({ rows: [], extra: 1 }, m, 10), field('body'));
    assert.throws(() => rowsToCsv({ rows: [] }, m, 10), field('rows'));
    assert.throws(
      () =>
        rowsToCsv(
          {
            rows: [
              { a: 1, b: 2 },
              { a: 1, b: 2 },
            ],
          },
          m,
          1,
        ),
      field('rows'),
    );
    assert.throws(() => rowsToCsv({ rows: [{ a: 1, b: 2, c: 3 }] }, m, 10), field('rows[0]'));
    assert.throws(() => rowsToCsv({ rows: [{ a: 1, b: 2 }, { a: 1 }] }, m, 10), field('rows[1]'));
    assert.throws(
      () =>
        rowsToCsv(
          {
            rows: [
              { a: 1, b: 2 },
              { a: 1, y: 2 },
            ],
          },
          m,
          10,
        ),
      field('rows[1]'),
    );
    assert.throws(() => rowsToCsv({ rows: [{ a: 1, b: null }] }, m, 10), field('rows[0].b'));
    assert.throws(() => rowsToCsv({ rows: [{ a: 1, b: Number.NaN }] }, m, 10), field('rows[0].b'));
    assert.throws(() => rowsToCsv({ rows: [7] }, m, 10), field('rows[0]'));
  });

  it('flushes the sums, reloads and adds to them, refuses a tampered file or another model', () => {
    const site = mkdtempSync(join(tmpdir(), 'entente-monitoring-'));
    dirs.push(site);
    const m = model('b'.repeat(64));
    const first = new MonitoringRecorder(m, site, 0);
    assert.throws(
      () => new MonitoringRecorder(m, site, 0),
      (e: unknown) => e instanceof EntenteError && e.code === 'WORKSPACE_LOCKED',
    );
    assert.equal(first.flush(new Date(0)), false, 'nothing to write yet');
    first.record({ count: 2, z: [0, 1, -9, 9], probabilities: [0.4, 0.6, 0.9, 0.1], latencyMs: 2 });
    assert.equal(first.flush(new Date(0)), true);
    first.close();
    const second = new MonitoringRecorder(m, site, 0);
    assert.equal(second.rows, 2);
    second.record({ count: 1, z: [0, 0], probabilities: [0.5, 0.5], labels: [1] });
    second.flush(new Date(0));
    second.close();
    const file = JSON.parse(readFileSync(second.path, 'utf8'));
    assert.deepEqual(file.sums.rows, [3]);
    assert.deepEqual(file.sums.predictedClass, [2, 1]);
    assert.deepEqual(file.sums.confusion, [0, 0, 1, 0]);
    assert.deepEqual(file.inputColumns, ['a', 'b']);
    file.sums.score[0] += 1;
    writeFileSync(second.path, JSON.stringify(file));
    assert.throws(() => new MonitoringRecorder(m, site, 0), field('monitoring.score'));
    file.sums.score[0] -= 1;
    file.model = 'c'.repeat(64);
    writeFileSync(second.path, JSON.stringify(file));
    assert.throws(() => new MonitoringRecorder(m, site, 0), field('monitoring'));
    writeFileSync(second.path, '{');
    assert.throws(() => new MonitoringRecorder(m, site, 0), field('monitoring'));
  });
});

/** Writes a version into `dir/models` as the participant would; returns its digest. */
function writeVersion(dir: string, w: Weights, description: Record<string, unknown> = {}): string {
  const bytes = encodeSafetensors(w);
  const sha = sha256Hex(bytes);
  mkdirSync(join(dir, 'models'), { recursive: true });
  writeFileSync(join(dir, 'models', `${sha}.safetensors`), bytes);
  writeFileSync(
    join(dir, 'models', `${sha}.json`),
    JSON.stringify({
      format: 'entente-site-model/1',
      sha256: sha,
      modelSpec: spec,
      standardization: { mean: [0, 0], std: [1, 1] },
      dataSchemaDigest: computeSchemaDigest(schema),
      ...description,
    }),
  );
  return sha;
}

function writeServing(dir: string, version: string | null, stage: string | null = null): void {
  writeFileSync(
    join(dir, 'serving.json'),
    JSON.stringify({
      format: 'entente-serving/1',
      alias: 'production',
      version,
      rollout: stage ? 'd'.repeat(64) : null,
      stage,
      reason: 'test',
      updatedAt: '2026-01-01T00:00:00.000Z',
    }),
  );
}

const code =
  (c: string, f = 'follow') =>
  (e: unknown) =>
    e instanceof EntenteError && e.code === c && e.field === f;

describe('participant serve --follow pieces', () => {
  it('takes exactly one of --model and --follow, and --card only with --model', () => {
    assert.equal(chooseModelSource({ model: 'm' }), 'model');
    assert.equal(chooseModelSource({ follow: 'd' }), 'follow');
    assert.throws(() => chooseModelSource({ model: 'm', follow: 'd' }), code('INVALID_ARGUMENT'));
    assert.throws(() => chooseModelSource({}), code('INVALID_ARGUMENT'));
    assert.throws(() => chooseModelSource({ follow: 'd', card: 'c' }), code('INVALID_ARGUMENT', 'card'));
  });

  it('loads a version only when its bytes, description, tensors and schema agree', () => {
    const dir = mkdtempSync(join(tmpdir(), 'entente-serving-'));
    dirs.push(dir);
    const sha = writeVersion(dir, weights);
    const loaded = loadSiteModel(dir, sha, schema);
    assert.equal(loaded.sha256, sha);
    assert.equal(loaded.card, null);
    assert.deepEqual(Array.from(loaded.standardization!.std), [1, 1]);

    // The bytes do not hash to their name.
    const bytesFile = join(dir, 'models', `${sha}.safetensors`);
    const good = readFileSync(bytesFile);
    const bad = Buffer.from(good);
    bad[bad.length - 1]! ^= 1;
    writeFileSync(bytesFile, bad);
    assert.throws(() => loadSiteModel(dir, sha, schema), code('DIGEST_MISMATCH'));
    writeFileSync(bytesFile, good);

    // The description names another version, is not the format, or its spec does not fit the tensors.
    const other = writeVersion(dir, weights, { sha256: 'e'.repeat(64) });
    assert.equal(other, sha);
    assert.throws(() => loadSiteModel(dir, sha, schema), code('DIGEST_MISMATCH'));
    writeVersion(dir, weights, { format: 'entente-model-card/1' });
    assert.throws(() => loadSiteModel(dir, sha, schema), code('INVALID_CONFIG'));
    writeVersion(dir, weights, { modelSpec: { kind: 'logistic', inputDim: 3 } });
    assert.throws(() => loadSiteModel(dir, sha, schema), code('INVALID_TENSOR'));
    // A schema other than the one the description names.
    writeVersion(dir, weights, { dataSchemaDigest: 'f'.repeat(64) });
    assert.throws(() => loadSiteModel(dir, sha, schema), code('INVALID_CONFIG', 'schema'));
    // No digest to check: any schema with the right columns and classes.
    writeVersion(dir, weights, { dataSchemaDigest: null });
    assert.equal(loadSiteModel(dir, sha, schema).sha256, sha);
    // Missing files.
    assert.throws(() => loadSiteModel(dir, 'a'.repeat(64), schema), code('INVALID_ARGUMENT'));
    assert.throws(() => loadSiteModel(dir, '../x', schema), code('INVALID_CONFIG'));
  });

  it('reads serving.json strictly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'entente-serving-'));
    dirs.push(dir);
    assert.throws(() => readServingFile(dir), code('INVALID_ARGUMENT'));
    writeServing(dir, 'a'.repeat(64), 'canary');
    assert.deepEqual([readServingFile(dir).version, readServingFile(dir).stage], ['a'.repeat(64), 'canary']);
    writeFileSync(join(dir, 'serving.json'), '{"format": "entente-serving/1"');
    assert.throws(() => readServingFile(dir), code('INVALID_CONFIG'));
    writeServing(dir, 'A'.repeat(64));
    assert.throws(() => readServingFile(dir), code('INVALID_CONFIG'));
    writeServing(dir, null, 'beta');
    assert.throws(() => readServingFile(dir), code('INVALID_CONFIG'));
  });

  it('follows the directory: 503 before an assignment, swaps versions and recorders, keeps the last good one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'entente-serving-'));
    const site = mkdtempSync(join(tmpdir(), 'entente-site-'));
    dirs.push(dir, site);
    const first = writeVersion(dir, weights);
    const second = writeVersion(dir, initializeWeights(spec, createSeededRng('serve-unit-2')));
    assert.notEqual(first, second);
    const warnings: string[] = [];
    const infos: string[] = [];
    const follower = new ServingFollower({
      dir,
      site,
      load: (sha) => loadSiteModel(dir, sha, schema),
      reference: (m) => m.standardization!,
      log: {
        info: (d) => infos.push(String(d.model)),
        warn: (d) => warnings.push(String(d.problem)),
        error: () => {},
      },
      now: () => 0,
    });
    const score = () => scoreAndRecord(follower.served(), 10, 'a,b\n1,2\n3,4\n', 0, () => 1);

    // Nothing assigned yet: refused with UNAVAILABLE, one warning however often it is asked.
    assert.throws(score, code('UNAVAILABLE', 'model'));
    assert.throws(score, code('UNAVAILABLE', 'model'));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /serving\.json: no such file/);
    assert.equal(follower.health().status, 'waiting');
    writeServing(dir, null);
    assert.throws(score, /names no version to serve/);

    writeServing(dir, first, 'canary');
    assert.equal(score().model, first);
    const firstScore = score().probabilities;
    assert.deepEqual(follower.health(), {
      status: 'ok',
      model: first,
      rows: 4,
      alias: 'production',
      rollout: 'd'.repeat(64),
      stage: 'canary',
      reason: 'test',
      updatedAt: '2026-01-01T00:00:00.000Z',
      warning: null,
    });

    writeServing(dir, second, 'full');
    const after = score();
    assert.equal(after.model, second);
    assert.notDeepEqual(after.probabilities, firstScore);
    assert.deepEqual(infos, [first, second]);
    // The first version's counts were flushed when it left service; the second's are in memory.
    const sums = (sha: string) =>
      JSON.parse(readFileSync(join(site, 'monitoring', `${sha}.json`), 'utf8')).sums.rows[0];
    assert.equal(sums(first), 4);
    assert.equal(follower.health().rows, 2);

    // A corrupted version, then a malformed serving.json: the second keeps serving, each warned once.
    const third = writeVersion(dir, initializeWeights(spec, createSeededRng('serve-unit-3')));
    const thirdFile = join(dir, 'models', `${third}.safetensors`);
    const thirdBytes = readFileSync(thirdFile);
    writeFileSync(thirdFile, thirdBytes.subarray(0, thirdBytes.length - 4));
    writeServing(dir, third, 'full');
    assert.equal(score().model, second);
    assert.equal(score().model, second);
    assert.match(follower.health().warning!, /DIGEST_MISMATCH/);
    assert.equal(warnings.filter((w) => w.includes(third)).length, 1);
    // Repaired in place (serving.json untouched): the next check loads it.
    writeFileSync(thirdFile, thirdBytes);
    assert.equal(score().model, third);
    assert.equal(follower.health().warning, null);

    writeFileSync(join(dir, 'serving.json'), 'not json');
    assert.equal(score().model, third);
    assert.match(follower.health().warning!, /INVALID_CONFIG: --follow: serving\.json: not JSON/);
    rmSync(join(dir, 'serving.json'));
    assert.equal(score().model, third);
    assert.match(follower.health().warning!, /no such file/);

    // Back to the first version: its recorder adds to its file.
    writeServing(dir, first, null);
    assert.equal(score().model, first);
    follower.close();
    assert.equal(sums(first), 6);
    assert.equal(sums(second), 6);
    assert.equal(sums(third), 6);
  });
});
