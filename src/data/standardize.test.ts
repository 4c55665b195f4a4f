import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import type { LabeledData } from './labeled-data.ts';
import { loadTable } from './load-table.ts';
import { parseDataSchema } from './schema.ts';
import { selectRows } from './split.ts';
import {
  applyStandardization,
  computeFeatureStats,
  deriveStandardization,
  mergeFeatureStats,
} from './standardize.ts';

const dir = new URL('../../datasets/breast-cancer/', import.meta.url);
const cancer = loadTable(
  readFileSync(new URL('breast-cancer.csv', dir), 'utf8'),
  parseDataSchema(JSON.parse(readFileSync(new URL('schema.json', dir), 'utf8'))),
);

function columnMoments(d: LabeledData, j: number): { mean: number; std: number } {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < d.count; i++) s += d.x[i * d.dim + j]!;
  const mean = s / d.count;
  for (let i = 0; i < d.count; i++) s2 += (d.x[i * d.dim + j]! - mean) ** 2;
  return { mean, std: Math.sqrt(s2 / d.count) };
}

function tableOf(rows: number[][]): LabeledData {
  const dim = rows[0]!.length;
  return {
    x: Float32Array.from(rows.flat()),
    y: new Int32Array(rows.length),
    count: rows.length,
    dim,
    featureNames: Array.from({ length: dim }, (_, j) => `f${j}`),
  };
}

describe('standardization', () => {
  it('gives every breast-cancer column mean ~0 and std ~1, without touching the input', () => {
    const before = new Float32Array(cancer.x);
    const z = applyStandardization(cancer, deriveStandardization(computeFeatureStats(cancer)));
    for (let j = 0; j < z.dim; j++) {
      const { mean, std } = columnMoments(z, j);
      assert.ok(Math.abs(mean) < 1e-5, `column ${j} mean ${mean}`);
      assert.ok(Math.abs(std - 1) < 1e-4, `column ${j} std ${std}`);
    }
    assert.deepEqual(cancer.x, before);
    assert.notEqual(z.y, cancer.y);
    assert.deepEqual(z.y, cancer.y);
  });

  it('copies groups and slice memberships unchanged', () => {
    const d = {
      ...selectRows(cancer, [0, 1, 2]),
      groups: Int32Array.of(0, -1, 1),
      slices: [Uint8Array.of(1, 0, 1)],
    };
    const z = applyStandardization(d, deriveStandardization(computeFeatureStats(cancer)));
    assert.deepEqual([...z.groups!], [0, -1, 1]);
    assert.deepEqual([...z.slices![0]!], [1, 0, 1]);
    assert.notEqual(z.groups, d.groups);
    assert.ok(
      !('groups' in applyStandardization(cancer, deriveStandardization(computeFeatureStats(cancer)))),
    );
  });

  it('matches a two-pass mean and population std', () => {
    const d = tableOf([
      [1, 10],
      [2, 10],
      [3, 13],
      [6, 11],
    ]);
    const p = deriveStandardization(computeFeatureStats(d));
    assert.deepEqual([...p.mean], [3, 11]);
    assert.ok(Math.abs(p.std[0]! - Math.sqrt(3.5)) < 1e-12);
    assert.ok(Math.abs(p.std[1]! - Math.sqrt(1.5)) < 1e-12);
  });

  it('maps constant columns to 0 (std 1), also for values not exact in binary', () => {
    const d = tableOf([
      [0.1184, 0, 5],
      [0.1184, 0, 6],
      [0.1184, 0, 7],
    ]);
    const p = deriveStandardization(computeFeatureStats(d));
    assert.deepEqual([...p.std.subarray(0, 2)], [1, 1]);
    const z = applyStandardization(d, p);
    for (let i = 0; i < 3; i++) {
      assert.ok(Math.abs(z.x[i * 3]!) < 1e-6);
      assert.equal(z.x[i * 3 + 1], 0);
    }
  });

  it('merging the statistics of two halves equals the statistics of the whole (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 568 }), (cut) => {
        const rows = Array.from({ length: cancer.count }, (_, i) => i);
        const a = computeFeatureStats(selectRows(cancer, rows.slice(0, cut)));
        const b = computeFeatureStats(selectRows(cancer, rows.slice(cut)));
        const whole = computeFeatureStats(cancer);
        const merged = mergeFeatureStats(a, b);
        assert.equal(merged.count, whole.count);
        for (let j = 0; j < cancer.dim; j++) {
          assert.ok(Math.abs(merged.sum[j]! - whole.sum[j]!) <= 1e-12 * Math.abs(whole.sum[j]!));
          assert.ok(Math.abs(merged.sumSquares[j]! - whole.sumSquares[j]!) <= 1e-12 * whole.sumSquares[j]!);
        }
        const pm = deriveStandardization(merged);
        const pw = deriveStandardization(whole);
        for (let j = 0; j < cancer.dim; j++)
          assert.ok(Math.abs(pm.std[j]! - pw.std[j]!) <= 1e-9 * pw.std[j]!);
      }),
      { numRuns: 30 },
    );
  });

  it('rejects mismatched or empty statistics', () => {
    const s = computeFeatureStats(tableOf([[1, 2]]));
    const t = computeFeatureStats(tableOf([[1, 2, 3]]));
    const invalid = (field: string) => (e: unknown) =>
      e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field;
    assert.throws(() => mergeFeatureStats(s, t), invalid('b.sum'));
    assert.throws(() => deriveStandardization({ ...s, count: 0 }), invalid('stats.count'));
    assert.throws(() => mergeFeatureStats({ ...s, count: -1 }, s), invalid('a.count'));
    const p = deriveStandardization(s);
    assert.throws(() => applyStandardization(tableOf([[1, 2, 3]]), p), invalid('params'));
    assert.throws(
      () => applyStandardization(tableOf([[1, 2]]), { mean: p.mean, std: new Float64Array([1, 0]) }),
      invalid('params.std'),
    );
  });
});
