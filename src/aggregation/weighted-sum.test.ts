/** The streaming weighted sum: any slicing and interleaving of the updates gives the direct weighted mean. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import type { Tensor, TensorLayout } from '../core/tensor.ts';
import { createWeightedSum } from './weighted-sum.ts';

interface Slice {
  readonly contribution: number;
  readonly tensor: number;
  readonly offset: number;
  readonly values: Float32Array;
}

const scenario = fc
  .record({
    sizes: fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 4 }),
    count: fc.integer({ min: 1, max: 5 }),
  })
  .chain(({ sizes, count }) =>
    fc.record({
      sizes: fc.constant(sizes),
      models: fc.array(
        fc.tuple(
          ...sizes.map((n) =>
            fc.array(fc.float({ min: -1e3, max: 1e3, noNaN: true, noDefaultInfinity: true }), {
              minLength: n,
              maxLength: n,
            }),
          ),
        ),
        { minLength: count, maxLength: count },
      ),
      weights: fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: count, maxLength: count }),
      // cut points and an ordering key per (contribution, tensor) piece
      cuts: fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 0, maxLength: 40 }),
      orderSeed: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 200, maxLength: 200 }),
    }),
  );

describe('createWeightedSum', () => {
  it('streaming slices in any order equals the direct weighted mean', () => {
    fc.assert(
      fc.property(scenario, ({ sizes, models, weights, cuts, orderSeed }) => {
        const layout: TensorLayout[] = sizes.map((n, k) => ({ name: `t${k}`, shape: [n] }));
        const slices: Slice[] = [];
        models.forEach((model, ci) => {
          model.forEach((values, ti) => {
            const data = Float32Array.from(values);
            const points = [...new Set([0, ...cuts.map((x) => x % (data.length + 1)), data.length])].sort(
              (a, b) => a - b,
            );
            for (let p = 0; p + 1 < points.length; p++) {
              slices.push({
                contribution: ci,
                tensor: ti,
                offset: points[p]!,
                values: data.subarray(points[p]!, points[p + 1]!),
              });
            }
          });
        });
        const order = slices
          .map((_, i) => i)
          .sort((a, b) => orderSeed[a % 200]! - orderSeed[b % 200]! || a - b);
        const sum = createWeightedSum(layout);
        for (const i of order) {
          const s = slices[i]!;
          sum.addSlice(s.tensor, s.offset, s.values, weights[s.contribution]!);
        }
        for (const w of weights) sum.addWeight(w);
        assert.equal(sum.contributions, models.length);
        assert.equal(
          sum.totalWeight,
          weights.reduce((a, b) => a + b, 0),
        );
        const mean = sum.computeMean();
        assert.deepEqual(
          mean.map((t) => [t.name, t.shape]),
          layout.map((l) => [l.name, l.shape]),
        );
        for (let k = 0; k < sizes.length; k++) {
          for (let i = 0; i < sizes[k]!; i++) {
            let num = 0;
            let scale = 0;
            models.forEach((m, ci) => {
              const x = Math.fround(m[k]![i]!);
              num += weights[ci]! * x;
              scale += weights[ci]! * Math.abs(x);
            });
            const expected = Math.fround(num / sum.totalWeight);
            const got = mean[k]!.data[i]!;
            const tol = 1e-12 * (scale / sum.totalWeight) + 2 ** -23 * Math.abs(expected);
            assert.ok(Math.abs(got - expected) <= tol, `t${k}[${i}]: ${got} vs ${expected}`);
          }
        }
      }),
      { numRuns: 200, seed: 20240611 },
    );
  });

  it('addWeights equals adding every tensor as one slice', () => {
    const layout = [
      { name: 'a', shape: [2, 2] },
      { name: 'b', shape: [3] },
    ];
    const m1: Tensor[] = [
      { name: 'a', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) },
      { name: 'b', shape: [3], data: Float32Array.from([5, 6, 7]) },
    ];
    const m2: Tensor[] = [
      { name: 'a', shape: [2, 2], data: Float32Array.from([3, 2, 1, 0]) },
      { name: 'b', shape: [3], data: Float32Array.from([-5, 0, 1]) },
    ];
    const s = createWeightedSum(layout);
    s.addWeights(m1, 1);
    s.addWeights(m2, 3);
    const mean = s.computeMean();
    assert.deepEqual(Array.from(mean[0]!.data), [2.5, 2, 1.5, 1]);
    assert.deepEqual(Array.from(mean[1]!.data), [-2.5, 1.5, 2.5]);
    assert.equal(s.totalWeight, 4);
    assert.equal(s.contributions, 2);
    assert.deepEqual(Array.from(m1[0]!.data), [1, 2, 3, 4], 'input not mutated');
  });

  it('rejects out-of-bounds slices, bad weights and non-finite values without adding anything', () => {
    const s = createWeightedSum([{ name: 'w', shape: [4] }]);
    const fails = (f: () => void, code: string, field: string) =>
      assert.throws(f, (e: unknown) => e instanceof EntenteError && e.code === code && e.field === field);
    fails(() => s.addSlice(1, 0, new Float32Array(1), 1), 'INVALID_ARGUMENT', 'tensorIndex');
    fails(() => s.addSlice(-1, 0, new Float32Array(1), 1), 'INVALID_ARGUMENT', 'tensorIndex');
    fails(() => s.addSlice(0.5, 0, new Float32Array(1), 1), 'INVALID_ARGUMENT', 'tensorIndex');
    fails(() => s.addSlice(0, 3, new Float32Array(2), 1), 'INVALID_ARGUMENT', 'elementOffset');
    fails(() => s.addSlice(0, -1, new Float32Array(1), 1), 'INVALID_ARGUMENT', 'elementOffset');
    fails(() => s.addSlice(0, 0, new Float32Array(1), 0), 'INVALID_ARGUMENT', 'weight');
    fails(() => s.addSlice(0, 0, new Float32Array(1), Number.NaN), 'INVALID_ARGUMENT', 'weight');
    fails(() => s.addWeight(-2), 'INVALID_ARGUMENT', 'weight');
    fails(() => s.addWeight(Number.POSITIVE_INFINITY), 'INVALID_ARGUMENT', 'weight');
    fails(() => s.addSlice(0, 0, Float32Array.from([1, Number.NaN]), 1), 'INVALID_TENSOR', 'values.w');
    fails(() => s.computeMean(), 'CONFLICT', 'contributions');
    fails(
      () => s.addWeights([{ name: 'v', shape: [4], data: new Float32Array(4) }], 1),
      'INVALID_TENSOR',
      'weights.w',
    );
    assert.equal(s.contributions, 0);
    s.addSlice(0, 2, Float32Array.from([8, 8]), 2);
    s.addWeight(2);
    assert.deepEqual(Array.from(s.computeMean()[0]!.data), [0, 0, 8, 8]);
  });

  it('rejects a layout with duplicate names', () => {
    assert.throws(
      () =>
        createWeightedSum([
          { name: 'a', shape: [1] },
          { name: 'a', shape: [2] },
        ]),
      (e: unknown) => e instanceof EntenteError && e.field === 'layout',
    );
  });
});
