/**
 * Serving on site, in process: loopback hosts only; JSON rows turned into the CSV the schema's loader
 * checks (undeclared columns, uneven rows, values of other types refused, naming the row); the
 * monitoring file flushed, reloaded and added to, and refused when tampered with or for another model.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/index.ts';
import { type DataSchema, parseDataSchema } from '../data/index.ts';
import { initializeWeights } from '../models/index.ts';
import { MonitoringRecorder } from './monitoring-file.ts';
import type { ScoringModel } from './scoring-model.ts';
import { rowsToCsv } from './scoring-server.ts';
import { parseLoopbackHost } from './serve-commands.ts';

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
