/**
 * The federation property: the reference rows split among 3 sites in many ways (random, by label,
 * by group, one site empty) give, once each site's sums are added, the same vector and the same
 * metrics as the sums of all rows together. Also the input checks of accumulateEvaluation.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { nextInt } from '../core/rng.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { accumulateEvaluation, addEvaluationSums, type EvaluationRows } from './accumulate-evaluation.ts';
import { createEvaluationLayout, type EvaluationLayout } from './evaluation-layout.ts';
import { parseEvaluationSpec } from './evaluation-spec.ts';
import { finalizeEvaluation } from './finalize-evaluation.ts';

interface ReferenceRows {
  spec: { numClasses: number; sensitive: { attribute: string; values: string[] }; slices: string[] };
  rows: { probabilities: number[][]; labels: number[]; groups: number[]; slice: number[] };
}

const load = (name: string): ReferenceRows =>
  JSON.parse(
    readFileSync(new URL(`../../test/vectors/evaluation/${name}`, import.meta.url), 'utf8'),
  ) as ReferenceRows;

function rowsOf(ref: ReferenceRows, indices: readonly number[]): EvaluationRows {
  return {
    count: indices.length,
    probabilities: Float64Array.from(indices.flatMap((i) => ref.rows.probabilities[i]!)),
    labels: Int32Array.from(indices.map((i) => ref.rows.labels[i]!)),
    groups: Int32Array.from(indices.map((i) => ref.rows.groups[i]!)),
    slices: [Uint8Array.from(indices.map((i) => ref.rows.slice[i]!))],
  };
}

/** Same shape; numbers equal within rel · max(1, |b|) (0 for exact), nulls equal. */
function assertSame(a: unknown, b: unknown, rel: number, path = 'metrics'): void {
  if (typeof b === 'number') {
    assert.equal(typeof a, 'number', path);
    const err = Math.abs((a as number) - b);
    assert.ok(err <= rel * Math.max(1, Math.abs(b)), `${path}: ${a} vs ${b}`);
  } else if (b === null || typeof b !== 'object') {
    assert.equal(a, b, path);
  } else {
    assert.ok(a !== null && typeof a === 'object', path);
    const keys = Object.keys(b);
    assert.deepEqual(Object.keys(a), keys, path);
    for (const key of keys)
      assertSame(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        rel,
        `${path}.${key}`,
      );
  }
}

/** Count coordinates exactly equal, real sums within 1e-12 relative. */
function assertSameSums(layout: EvaluationLayout, a: Float64Array, b: Float64Array): void {
  assert.equal(a.length, b.length);
  for (const s of layout.segments) {
    for (let i = s.offset; i < s.offset + s.length; i++) {
      if (s.kind === 'count') assert.equal(a[i], b[i], `${s.name}[${i - s.offset}]`);
      else assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-12 * Math.max(1, b[i]!), `${s.name}[${i - s.offset}]`);
    }
  }
}

function federate(layout: EvaluationLayout, ref: ReferenceRows, siteOf: readonly number[]): Float64Array {
  const sites: number[][] = [[], [], []];
  siteOf.forEach((s, i) => {
    sites[s]!.push(i);
  });
  return sites
    .map((indices) => accumulateEvaluation(layout, rowsOf(ref, indices)))
    .reduce((a, b) => addEvaluationSums(a, b));
}

for (const file of [
  'breast-cancer-reference.json',
  'wine-reference.json',
  'synthetic-multiclass-reference.json',
]) {
  describe(`federated sums equal centralized sums: ${file}`, () => {
    const ref = load(file);
    const n = ref.rows.labels.length;
    const all = Array.from({ length: n }, (_, i) => i);
    const layout = createEvaluationLayout(parseEvaluationSpec({ ...ref.spec, scoreBins: 100 }));
    const central = accumulateEvaluation(layout, rowsOf(ref, all));
    const centralMetrics = finalizeEvaluation(layout, central);

    const check = (siteOf: readonly number[]): void => {
      const total = federate(layout, ref, siteOf);
      assertSameSums(layout, total, central);
      assertSame(finalizeEvaluation(layout, total), centralMetrics, 1e-12);
    };

    it('over 25 seeded random splits into 3 sites', () => {
      const rng = createSeededRng('evaluation-federation', 'entente/test/v1');
      for (let t = 0; t < 25; t++) {
        // vary the split's skew: some sites get most rows
        const weights = [1 + nextInt(rng, 5), 1 + nextInt(rng, 5), 1 + nextInt(rng, 5)];
        const sum = weights[0]! + weights[1]! + weights[2]!;
        check(
          all.map(() => {
            const u = nextInt(rng, sum);
            return u < weights[0]! ? 0 : u < weights[0]! + weights[1]! ? 1 : 2;
          }),
        );
      }
    });

    it('split by label (each site sees some classes only)', () => {
      check(ref.rows.labels.map((y) => y % 3));
    });

    it('split by sensitive group, and with one site empty', () => {
      check(ref.rows.groups.map((g) => (g < 0 ? 2 : g % 3)));
      check(all.map((i) => (i % 2 === 0 ? 0 : 2)));
      check(all.map(() => 1));
    });

    it('adding is order-independent for the counts', () => {
      const rng = createSeededRng('evaluation-order', 'entente/test/v1');
      const siteOf = all.map(() => nextInt(rng, 3));
      const parts = [0, 1, 2].map((s) =>
        accumulateEvaluation(
          layout,
          rowsOf(
            ref,
            all.filter((i) => siteOf[i] === s),
          ),
        ),
      );
      const forward = addEvaluationSums(addEvaluationSums(parts[0]!, parts[1]!), parts[2]!);
      const backward = addEvaluationSums(parts[2]!, addEvaluationSums(parts[1]!, parts[0]!));
      assertSameSums(layout, forward, backward);
    });

    it('a site with the wrong layout cannot be added', () => {
      assert.throws(
        () => addEvaluationSums(central, new Float64Array(central.length - 1)),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === 'sums',
      );
    });
  });
}

describe('accumulateEvaluation', () => {
  const layout = createEvaluationLayout(
    parseEvaluationSpec({
      numClasses: 3,
      scoreBins: 10,
      sensitive: { attribute: 's', values: ['x', 'y'] },
      slices: ['a'],
    }),
  );
  const good = (): EvaluationRows & { probabilities: Float64Array; labels: number[] } => ({
    count: 3,
    probabilities: Float64Array.from([0.2, 0.5, 0.3, 1, 0, 0, 0.1, 0.1, 0.8]),
    labels: [1, 0, 2],
    groups: Int32Array.from([0, -1, 1]),
    slices: [Uint8Array.from([1, 0, 1])],
  });
  const fails = (rows: EvaluationRows, code: string, field: string): void => {
    assert.throws(
      () => accumulateEvaluation(layout, rows),
      (e: unknown) =>
        e instanceof EntenteError && e.code === code && e.field === field && e.message.startsWith(field),
      `${code} ${field}`,
    );
  };

  it('fills counts and bounded sums, zero vector for zero rows', () => {
    const sums = accumulateEvaluation(layout, good());
    assert.equal(sums.length, layout.length);
    for (const s of layout.segments)
      for (let i = s.offset; i < s.offset + s.length; i++) {
        assert.ok(sums[i]! >= 0);
        if (s.kind === 'count') assert.ok(Number.isInteger(sums[i]!));
      }
    const empty = accumulateEvaluation(layout, {
      count: 0,
      probabilities: new Float64Array(0),
      labels: [],
      groups: new Int32Array(0),
      slices: [new Uint8Array(0)],
    });
    assert.ok(empty.every((x) => x === 0));
    const m = finalizeEvaluation(layout, empty);
    assert.equal(m.overall.rows, 0);
    assert.deepEqual(
      [
        m.overall.accuracy,
        m.overall.logLoss,
        m.overall.brier,
        m.overall.rocAuc,
        m.overall.ece,
        m.overall.macro.f1,
      ],
      [null, null, null, null, null, null],
    );
  });

  it('predicts the lowest index on ties and clips the log loss', () => {
    const m = finalizeEvaluation(
      layout,
      accumulateEvaluation(layout, {
        count: 2,
        probabilities: Float64Array.from([0.4, 0.4, 0.2, 0, 0, 1]),
        labels: [1, 0],
        groups: Int32Array.from([0, 0]),
        slices: [Uint8Array.from([0, 0])],
      }),
    );
    assert.deepEqual(m.overall.confusion, [
      [0, 0, 1],
      [1, 0, 0],
      [0, 0, 0],
    ]);
    // row 2 has p_true = 0 → −ln(1e-15)
    assert.ok(Math.abs(m.overall.logLoss! - (-Math.log(0.4) - Math.log(1e-15)) / 2) < 1e-12);
    assert.equal(m.slices.a!.rows, 0);
    assert.equal(m.fairness!.groups.x!.rows, 2);
  });

  it('refuses wrong shapes with INVALID_ARGUMENT', () => {
    fails({ ...good(), count: -1 }, 'INVALID_ARGUMENT', 'rows.count');
    fails({ ...good(), count: 2.5 }, 'INVALID_ARGUMENT', 'rows.count');
    fails({ ...good(), probabilities: new Float64Array(8) }, 'INVALID_ARGUMENT', 'rows.probabilities');
    fails(
      { ...good(), probabilities: [0.2, 0.5, 0.3] as unknown as Float64Array },
      'INVALID_ARGUMENT',
      'rows.probabilities',
    );
    fails({ ...good(), labels: [1, 0] }, 'INVALID_ARGUMENT', 'rows.labels');
    const { groups: _g, ...noGroups } = good();
    fails(noGroups, 'INVALID_ARGUMENT', 'rows.groups');
    fails({ ...good(), groups: Int32Array.from([0, 0]) }, 'INVALID_ARGUMENT', 'rows.groups');
    const { slices: _s, ...noSlices } = good();
    fails(noSlices, 'INVALID_ARGUMENT', 'rows.slices');
    fails({ ...good(), slices: [] }, 'INVALID_ARGUMENT', 'rows.slices');
    fails({ ...good(), slices: [Uint8Array.from([1, 0])] }, 'INVALID_ARGUMENT', 'rows.slices[0]');
  });

  it('refuses bad values with INVALID_DATA naming the row', () => {
    const withLabels = (labels: number[]) => ({ ...good(), labels });
    fails(withLabels([1, 3, 0]), 'INVALID_DATA', 'rows.labels[1]');
    fails(withLabels([1, 0, -1]), 'INVALID_DATA', 'rows.labels[2]');
    fails(withLabels([0.5, 0, 1]), 'INVALID_DATA', 'rows.labels[0]');
    const withP = (i: number, v: number) => {
      const rows = good();
      rows.probabilities[i] = v;
      return rows;
    };
    fails(withP(4, Number.NaN), 'INVALID_DATA', 'rows.probabilities[1][1]');
    fails(withP(3, Number.POSITIVE_INFINITY), 'INVALID_DATA', 'rows.probabilities[1][0]');
    fails(withP(3, 1.01), 'INVALID_DATA', 'rows.probabilities[1][0]');
    fails(withP(8, -0.01), 'INVALID_DATA', 'rows.probabilities[2][2]');
    fails(withP(8, 0.5), 'INVALID_DATA', 'rows.probabilities[2]'); // row sums to 0.7
    fails({ ...good(), groups: Int32Array.from([0, 2, 1]) }, 'INVALID_DATA', 'rows.groups[1]');
    fails({ ...good(), groups: Int32Array.from([0, -2, 1]) }, 'INVALID_DATA', 'rows.groups[1]');
    fails({ ...good(), slices: [Uint8Array.from([1, 2, 1])] }, 'INVALID_DATA', 'rows.slices[0][1]');
  });

  it('accepts probabilities within 1e-6 of [0, 1], clamped', () => {
    const rows = good();
    rows.probabilities.set([1 + 5e-7, 0, -5e-7], 3);
    const sums = accumulateEvaluation(layout, rows);
    const m = finalizeEvaluation(layout, sums);
    assert.ok(m.overall.reliability.every((b) => b.meanPredicted === null || b.meanPredicted <= 1));
  });

  it('refuses groups or slices the spec does not declare', () => {
    const plain = createEvaluationLayout(parseEvaluationSpec({ numClasses: 2, scoreBins: 10 }));
    const rows = { count: 1, probabilities: Float64Array.from([0.5, 0.5]), labels: [0] };
    accumulateEvaluation(plain, rows);
    assert.throws(
      () => accumulateEvaluation(plain, { ...rows, groups: Int32Array.from([0]) }),
      (e: unknown) => e instanceof EntenteError && e.field === 'rows.groups',
    );
    assert.throws(
      () => accumulateEvaluation(plain, { ...rows, slices: [Uint8Array.from([1])] }),
      (e: unknown) => e instanceof EntenteError && e.field === 'rows.slices',
    );
  });
});
