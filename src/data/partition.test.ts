import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { loadTable } from './load-table.ts';
import { partitionByLabelDirichlet, partitionIid, partitionQuantitySkew } from './partition.ts';
import { parseDataSchema } from './schema.ts';

/** Every row in exactly one part, each part ascending. */
function assertCover(parts: number[][], count: number): void {
  const seen = new Uint8Array(count);
  for (const part of parts) {
    part.forEach((row, i) => {
      assert.ok(Number.isInteger(row) && row >= 0 && row < count, `row ${row}`);
      assert.equal(seen[row], 0, `row ${row} appears twice`);
      seen[row] = 1;
      if (i > 0) assert.ok(part[i - 1]! < row);
    });
  }
  assert.ok(
    seen.every((v) => v === 1),
    'some row is in no part',
  );
}

/** Size-weighted mean total-variation distance between each part's label mix and the global mix. */
function measureLabelSkew(parts: number[][], labels: ArrayLike<number>, numClasses: number): number {
  const global = new Float64Array(numClasses);
  for (let i = 0; i < labels.length; i++) global[labels[i]!]! += 1 / labels.length;
  let skew = 0;
  for (const part of parts) {
    if (part.length === 0) continue;
    const local = new Float64Array(numClasses);
    for (const row of part) local[labels[row]!]! += 1 / part.length;
    let tv = 0;
    for (let c = 0; c < numClasses; c++) tv += Math.abs(local[c]! - global[c]!) / 2;
    skew += (tv * part.length) / labels.length;
  }
  return skew;
}

/** Runs a partitioner; a "could not meet minPerPart" error becomes 'exhausted', others propagate. */
function attempt(run: () => number[][]): number[][] | 'exhausted' {
  try {
    return run();
  } catch (e) {
    if (e instanceof EntenteError && e.field === 'minPerPart' && /no partition/.test(e.message))
      return 'exhausted';
    throw e;
  }
}

const invalid = (field: string) => (e: unknown) =>
  e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field;

describe('partitionIid', () => {
  it('covers every row once in near-equal parts, deterministic per seed (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 1, max: 20 }),
        fc.string(),
        (count, p, seed) => {
          const parts = Math.min(p, count);
          const out = partitionIid(count, parts, createSeededRng(seed));
          assert.equal(out.length, parts);
          assertCover(out, count);
          const sizes = out.map((o) => o.length);
          assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
          assert.deepEqual(partitionIid(count, parts, createSeededRng(seed)), out);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('depends on the seed', () => {
    assert.notDeepEqual(
      partitionIid(100, 4, createSeededRng('a')),
      partitionIid(100, 4, createSeededRng('b')),
    );
  });

  it('validates arguments', () => {
    const rng = createSeededRng('x');
    assert.throws(() => partitionIid(10, 0, rng), invalid('parts'));
    assert.throws(() => partitionIid(3, 4, rng), invalid('parts'));
    assert.throws(() => partitionIid(2.5, 1, rng), invalid('count'));
  });
});

describe('partitionByLabelDirichlet', () => {
  it('covers every row once, respects minPerPart, deterministic per seed (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 20, maxLength: 300 }),
        fc.integer({ min: 1, max: 6 }),
        fc.double({ min: 0.05, max: 100, noNaN: true }),
        fc.integer({ min: 0, max: 2 }),
        fc.string(),
        (labels, parts, alpha, minPerPart, seed) => {
          const run = () =>
            attempt(() =>
              partitionByLabelDirichlet(labels, 5, parts, alpha, createSeededRng(seed), {
                minPerPart,
                maxAttempts: 200,
              }),
            );
          const out = run();
          assert.deepEqual(run(), out);
          if (out === 'exhausted') return; // a legitimate outcome for small alpha and many parts
          assert.equal(out.length, parts);
          assertCover(out, labels.length);
          assert.ok(out.every((p) => p.length >= minPerPart));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('small alpha is more label-skewed than large alpha (property)', () => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 10);
    fc.assert(
      fc.property(fc.string(), (seed) => {
        const rng = createSeededRng(seed);
        const small = partitionByLabelDirichlet(labels, 10, 10, 0.1, rng, { minPerPart: 0 });
        const large = partitionByLabelDirichlet(labels, 10, 10, 100, rng, { minPerPart: 0 });
        const skewSmall = measureLabelSkew(small, labels, 10);
        const skewLarge = measureLabelSkew(large, labels, 10);
        assert.ok(skewSmall > skewLarge + 0.3, `${skewSmall} vs ${skewLarge}`);
      }),
      { numRuns: 20 },
    );
  });

  it('partitions the breast-cancer labels with at least 20 rows per participant', () => {
    const dir = new URL('../../datasets/breast-cancer/', import.meta.url);
    const schema = parseDataSchema(JSON.parse(readFileSync(new URL('schema.json', dir), 'utf8')));
    const data = loadTable(readFileSync(new URL('breast-cancer.csv', dir), 'utf8'), schema);
    const out = partitionByLabelDirichlet(data.y, 2, 5, 0.5, createSeededRng('cancer'), { minPerPart: 20 });
    assertCover(out, 569);
    assert.ok(out.every((p) => p.length >= 20));
  });

  it('gives up after maxAttempts naming minPerPart, and validates arguments', () => {
    const labels = Array.from({ length: 200 }, (_, i) => i % 2);
    const rng = createSeededRng('x');
    assert.throws(
      () => partitionByLabelDirichlet(labels, 2, 10, 0.01, rng, { minPerPart: 5, maxAttempts: 3 }),
      invalid('minPerPart'),
    );
    assert.throws(() => partitionByLabelDirichlet(labels, 2, 0, 1, rng), invalid('parts'));
    assert.throws(() => partitionByLabelDirichlet(labels, 2, 2, 0, rng), invalid('alpha'));
    assert.throws(() => partitionByLabelDirichlet(labels, 2, 2, -1, rng), invalid('alpha'));
    assert.throws(() => partitionByLabelDirichlet(labels, 0, 2, 1, rng), invalid('numClasses'));
    assert.throws(() => partitionByLabelDirichlet([0, 2], 2, 1, 1, rng), invalid('labels[1]'));
    assert.throws(
      () => partitionByLabelDirichlet(labels, 2, 3, 1, rng, { minPerPart: 70 }),
      invalid('minPerPart'),
    );
    assert.throws(
      () => partitionByLabelDirichlet(labels, 2, 3, 1, rng, { maxAttempts: 0 }),
      invalid('maxAttempts'),
    );
  });
});

describe('partitionQuantitySkew', () => {
  it('covers every row once, respects minPerPart, deterministic per seed (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10, max: 400 }),
        fc.integer({ min: 1, max: 8 }),
        fc.double({ min: 0.1, max: 100, noNaN: true }),
        fc.integer({ min: 0, max: 1 }),
        fc.string(),
        (count, parts, alpha, minPerPart, seed) => {
          const run = () =>
            attempt(() =>
              partitionQuantitySkew(count, parts, alpha, createSeededRng(seed), {
                minPerPart,
                maxAttempts: 200,
              }),
            );
          const out = run();
          assert.deepEqual(run(), out);
          if (out === 'exhausted') return;
          assert.equal(out.length, parts);
          assertCover(out, count);
          assert.ok(out.every((p) => p.length >= minPerPart));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('meets minPerPart by redrawing', () => {
    const out = partitionQuantitySkew(300, 6, 0.5, createSeededRng('min'), { minPerPart: 10 });
    assertCover(out, 300);
    assert.ok(out.every((p) => p.length >= 10));
  });

  it('small alpha gives more unequal sizes than large alpha', () => {
    const rng = createSeededRng('sizes');
    const spread = (alpha: number) => {
      let total = 0;
      for (let t = 0; t < 20; t++) {
        const sizes = partitionQuantitySkew(1000, 5, alpha, rng, { minPerPart: 0 }).map((p) => p.length);
        total += Math.max(...sizes) - Math.min(...sizes);
      }
      return total / 20;
    };
    assert.ok(spread(0.2) > 3 * spread(100));
  });

  it('validates arguments', () => {
    const rng = createSeededRng('x');
    assert.throws(() => partitionQuantitySkew(10, 0, 1, rng), invalid('parts'));
    assert.throws(() => partitionQuantitySkew(10, 2, Number.NaN, rng), invalid('alpha'));
    assert.throws(() => partitionQuantitySkew(3, 4, 1, rng), invalid('minPerPart'));
    assert.throws(() => partitionQuantitySkew(-1, 1, 1, rng), invalid('count'));
  });
});
