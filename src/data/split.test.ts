import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import type { LabeledData } from './labeled-data.ts';
import { selectRows, splitTrainTest } from './split.ts';

function dataOf(labels: number[]): LabeledData {
  return {
    x: Float32Array.from(labels.flatMap((_, i) => [i, -i])),
    y: Int32Array.from(labels),
    count: labels.length,
    dim: 2,
    featureNames: ['a', 'b'],
  };
}

const countOf = (y: ArrayLike<number>, c: number) => Array.from(y).filter((v) => v === c).length;

describe('splitTrainTest', () => {
  it('partitions rows, keeps order and row contents, stratifies, and is deterministic (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 2, maxLength: 300 }),
        fc.double({ min: 0.01, max: 0.99, noNaN: true }),
        fc.string(),
        (labels, fraction, seed) => {
          const data = dataOf(labels);
          const s = splitTrainTest(data, fraction, createSeededRng(seed));
          const all = [...s.trainIndices, ...s.testIndices].sort((a, b) => a - b);
          assert.deepEqual(
            all,
            labels.map((_, i) => i),
          );
          assert.ok(s.test.count >= 1 && s.train.count >= 1);
          assert.equal(
            s.test.count,
            Math.min(labels.length - 1, Math.max(1, Math.round(fraction * labels.length))),
          );
          assert.deepEqual(
            [...s.testIndices],
            [...s.testIndices].sort((a, b) => a - b),
          );
          s.testIndices.forEach((row, i) => {
            assert.equal(s.test.x[i * 2], row);
            assert.equal(s.test.y[i], labels[row]);
          });
          // Stratified: each class's test count is within 1 of its proportional quota.
          for (let c = 0; c < 4; c++) {
            const quota = (s.test.count * countOf(labels, c)) / labels.length;
            assert.ok(Math.abs(countOf(s.test.y, c) - quota) < 1);
          }
          const again = splitTrainTest(data, fraction, createSeededRng(seed));
          assert.deepEqual(again.testIndices, s.testIndices);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('different seeds give different splits', () => {
    const data = dataOf(Array.from({ length: 100 }, (_, i) => i % 2));
    const a = splitTrainTest(data, 0.3, createSeededRng('a'));
    const b = splitTrainTest(data, 0.3, createSeededRng('b'));
    assert.notDeepEqual(a.testIndices, b.testIndices);
    assert.equal(countOf(a.test.y, 0), 15);
  });

  it('validates arguments', () => {
    const invalid = (field: string) => (e: unknown) =>
      e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field;
    const rng = createSeededRng('x');
    for (const f of [0, 1, -0.5, 1.5, Number.NaN])
      assert.throws(() => splitTrainTest(dataOf([0, 1, 0]), f, rng), invalid('testFraction'));
    assert.throws(() => splitTrainTest(dataOf([0]), 0.5, rng), invalid('data.count'));
  });
});

describe('selectRows', () => {
  it('copies the chosen rows in order, repeats allowed', () => {
    const d = dataOf([0, 1, 2]);
    const s = selectRows(d, [2, 0, 2]);
    assert.deepEqual([...s.x], [2, -2, 0, -0, 2, -2]);
    assert.deepEqual([...s.y], [2, 0, 2]);
    assert.equal(s.count, 3);
  });

  it('carries groups and slice memberships with their rows', () => {
    const d = {
      ...dataOf([0, 1, 2]),
      groups: Int32Array.of(1, -1, 0),
      slices: [Uint8Array.of(1, 0, 0), Uint8Array.of(0, 1, 1)],
    };
    const s = selectRows(d, [2, 0, 2]);
    assert.deepEqual([...s.groups!], [0, 1, 0]);
    assert.deepEqual(
      s.slices!.map((m) => [...m]),
      [
        [0, 1, 0],
        [1, 0, 1],
      ],
    );
    assert.ok(!('groups' in selectRows(dataOf([0, 1]), [1])));
  });

  it('rejects out-of-range indices naming them', () => {
    const d = dataOf([0, 1]);
    for (const bad of [2, -1, 0.5]) {
      assert.throws(
        () => selectRows(d, [0, bad]),
        (e: unknown) => e instanceof EntenteError && e.field === 'indices[1]',
      );
    }
  });
});
