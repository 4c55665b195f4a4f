/**
 * Gradient checks: the analytic gradients (float32) against central differences of an independent,
 * naive float64 reference of the objective, for every model kind, per minibatch and per example,
 * with and without the L2 / FedProx terms.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { nextGaussian, nextInt, type Rng } from '../core/rng.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import {
  computeExampleGradient,
  computeExampleLoss,
  computeMinibatchGradient,
  createModelWorkspace,
} from './dense-network.ts';
import type { LabeledData } from './labeled-data.ts';
import { countClasses, describeLayout, type ModelSpec } from './model-spec.ts';
import { applyRegularization } from './regularization.ts';

interface Terms {
  l2: number;
  mu: number;
  anchor: Float64Array;
}

/** Naive float64 objective: mean loss over `rows` + l2/2·||w||² + mu/2·||w − anchor||². */
function referenceObjective(
  spec: ModelSpec,
  w: Float64Array,
  data: LabeledData,
  rows: number[],
  terms?: Terms,
): number {
  const layout = describeLayout(spec);
  const layers = layout.length / 2;
  let total = 0;
  for (const r of rows) {
    let a = Array.from(data.x.subarray(r * data.dim, (r + 1) * data.dim));
    let off = 0;
    for (let l = 0; l < layers; l++) {
      const [nOut, nIn] = layout[2 * l]!.shape as [number, number];
      const z: number[] = [];
      for (let j = 0; j < nOut; j++) {
        let s = w[off + nOut * nIn + j]!;
        for (let i = 0; i < nIn; i++) s += w[off + j * nIn + i]! * a[i]!;
        z.push(s);
      }
      off += nOut * nIn + nOut;
      const act =
        spec.kind === 'mlp' && spec.activation === 'relu' ? (v: number) => Math.max(0, v) : Math.tanh;
      a = l < layers - 1 ? z.map(act) : z;
    }
    const y = data.y[r]!;
    if (spec.kind === 'logistic') {
      const p = 1 / (1 + Math.exp(-a[0]!));
      total += -(y === 1 ? Math.log(p) : Math.log(1 - p));
    } else {
      const denominator = a.reduce((s, v) => s + Math.exp(v), 0);
      total += -Math.log(Math.exp(a[y]!) / denominator);
    }
  }
  let value = total / rows.length;
  if (terms !== undefined) {
    for (let k = 0; k < w.length; k++) {
      value += 0.5 * terms.l2 * w[k]! ** 2 + 0.5 * terms.mu * (w[k]! - terms.anchor[k]!) ** 2;
    }
  }
  return value;
}

function numericGradient(f: (w: Float64Array) => number, at: Float32Array): Float64Array {
  const w = Float64Array.from(at);
  const out = new Float64Array(w.length);
  const h = 1e-6;
  for (let k = 0; k < w.length; k++) {
    const saved = w[k]!;
    w[k] = saved + h;
    const plus = f(w);
    w[k] = saved - h;
    const minus = f(w);
    w[k] = saved;
    out[k] = (plus - minus) / (2 * h);
  }
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rel = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let k = 0; k < actual.length; k++) {
    const a = actual[k]!;
    const e = expected[k]!;
    assert.ok(Math.abs(a - e) <= 2e-5 + rel * Math.abs(e), `${what}[${k}]: ${a} vs ${e}`);
  }
}

function randomData(rng: Rng, spec: ModelSpec, count: number): LabeledData {
  const x = new Float32Array(count * spec.inputDim);
  for (let i = 0; i < x.length; i++) x[i] = nextGaussian(rng);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) y[i] = nextInt(rng, countClasses(spec));
  return { x, y, count, dim: spec.inputDim };
}

function randomParams(rng: Rng, n: number): Float32Array {
  const p = new Float32Array(n);
  for (let i = 0; i < n; i++) p[i] = 2 * rng.nextFloat64() - 1;
  return p;
}

const specArb: fc.Arbitrary<ModelSpec> = fc.oneof(
  fc.record({ kind: fc.constant('logistic' as const), inputDim: fc.integer({ min: 1, max: 4 }) }),
  fc.record({
    kind: fc.constant('softmax' as const),
    inputDim: fc.integer({ min: 1, max: 4 }),
    numClasses: fc.integer({ min: 2, max: 4 }),
  }),
  fc.record({
    kind: fc.constant('mlp' as const),
    inputDim: fc.integer({ min: 1, max: 4 }),
    numClasses: fc.integer({ min: 2, max: 4 }),
    hidden: fc.oneof(
      fc.tuple(fc.integer({ min: 1, max: 4 })),
      fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })),
    ),
    activation: fc.constantFrom('relu' as const, 'tanh' as const),
  }),
);

/** One explicit case per model family so every kind is checked on every run. */
const coverageExamples: Array<[ModelSpec, string, number]> = [
  [{ kind: 'logistic', inputDim: 3 }, 'a', 3],
  [{ kind: 'softmax', inputDim: 3, numClasses: 4 }, 'b', 3],
  [{ kind: 'mlp', inputDim: 3, numClasses: 3, hidden: [4], activation: 'relu' }, 'c', 3],
  [{ kind: 'mlp', inputDim: 3, numClasses: 3, hidden: [4, 3], activation: 'relu' }, 'd', 3],
  [{ kind: 'mlp', inputDim: 3, numClasses: 3, hidden: [4], activation: 'tanh' }, 'e', 3],
  [{ kind: 'mlp', inputDim: 3, numClasses: 3, hidden: [4, 3], activation: 'tanh' }, 'f', 3],
];

describe('dense network gradients', () => {
  it('minibatch and per-example gradients match central differences for every kind', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(specArb, fc.string(), fc.integer({ min: 1, max: 5 }), (spec, seed, batch) => {
        seen.add(spec.kind === 'mlp' ? `mlp-${spec.activation}-${spec.hidden.length}` : spec.kind);
        const rng = createSeededRng(seed);
        const ws = createModelWorkspace(spec);
        const data = randomData(rng, spec, batch + 2);
        const params = randomParams(rng, ws.parameterCount);
        const rows = Array.from({ length: batch }, () => nextInt(rng, data.count));

        const grad = new Float32Array(ws.parameterCount);
        const loss = computeMinibatchGradient(ws, params, data, Int32Array.from(rows), grad);
        const f = (w: Float64Array) => referenceObjective(spec, w, data, rows);
        assert.ok(Math.abs(loss - f(Float64Array.from(params))) <= 1e-9 + 1e-6 * loss, 'minibatch loss');
        assertClose(grad, numericGradient(f, params), 'minibatch gradient');

        const mean = new Float64Array(ws.parameterCount);
        const one = new Float32Array(ws.parameterCount);
        for (const r of rows) {
          const exampleLoss = computeExampleGradient(ws, params, data, r, one);
          const g = (w: Float64Array) => referenceObjective(spec, w, data, [r]);
          assert.ok(Math.abs(exampleLoss - g(Float64Array.from(params))) <= 1e-9 + 1e-6 * exampleLoss);
          assert.equal(computeExampleLoss(ws, params, data, r), exampleLoss);
          assertClose(one, numericGradient(g, params), `example ${r} gradient`);
          for (let k = 0; k < one.length; k++) mean[k]! += one[k]! / rows.length;
        }
        assertClose(mean, grad, 'mean of per-example gradients', 1e-5);
      }),
      { numRuns: 60, examples: coverageExamples },
    );
    assert.equal(seen.size, 6, `covered ${[...seen].join(', ')}`);
  });

  it('l2 and FedProx terms add the right value and gradient', () => {
    fc.assert(
      fc.property(
        specArb,
        fc.string(),
        fc.double({ min: 0, max: 0.5, noNaN: true }),
        fc.double({ min: 0, max: 2, noNaN: true }),
        (spec, seed, l2, mu) => {
          const rng = createSeededRng(seed);
          const ws = createModelWorkspace(spec);
          const data = randomData(rng, spec, 4);
          const params = randomParams(rng, ws.parameterCount);
          const anchor = randomParams(rng, ws.parameterCount);
          const rows = [0, 1, 2, 3];
          const grad = new Float32Array(ws.parameterCount);
          const loss = computeMinibatchGradient(ws, params, data, Int32Array.from(rows), grad);
          const value = loss + applyRegularization(params, { l2, proximalMu: mu, anchor }, grad);
          const terms = { l2, mu, anchor: Float64Array.from(anchor) };
          const f = (w: Float64Array) => referenceObjective(spec, w, data, rows, terms);
          assert.ok(Math.abs(value - f(Float64Array.from(params))) <= 1e-9 + 1e-6 * value, 'objective');
          assertClose(grad, numericGradient(f, params), 'regularized gradient');
        },
      ),
      { numRuns: 40 },
    );
  });

  it('stays finite for extreme logits (stable log-sigmoid and log-sum-exp)', () => {
    const x = new Float32Array([1]);
    const logistic = createModelWorkspace({ kind: 'logistic', inputDim: 1 });
    const g = new Float32Array(2);
    const data0: LabeledData = { x, y: new Int32Array([0]), count: 1, dim: 1 };
    assert.equal(computeExampleGradient(logistic, new Float32Array([1000, 0]), data0, 0, g), 1000);
    assert.deepEqual(Array.from(g), [1, 1]);
    const data1: LabeledData = { x, y: new Int32Array([1]), count: 1, dim: 1 };
    assert.equal(computeExampleGradient(logistic, new Float32Array([1000, 0]), data1, 0, g), 0);
    assert.deepEqual(Array.from(g), [0, 0]);

    const softmax = createModelWorkspace({ kind: 'softmax', inputDim: 1, numClasses: 3 });
    const gs = new Float32Array(6);
    const data2: LabeledData = { x, y: new Int32Array([2]), count: 1, dim: 1 };
    const params = new Float32Array([1000, 0, -1000, 0, 0, 0]);
    assert.equal(computeExampleGradient(softmax, params, data2, 0, gs), 2000);
    assert.deepEqual(Array.from(gs), [1, 0, -1, 1, 0, -1]);
  });

  it('rejects mismatched buffers, rows and labels', () => {
    const ws = createModelWorkspace({ kind: 'softmax', inputDim: 2, numClasses: 3 });
    const data: LabeledData = { x: new Float32Array(4), y: new Int32Array([0, 3]), count: 2, dim: 2 };
    const params = new Float32Array(ws.parameterCount);
    const grad = new Float32Array(ws.parameterCount);
    const fails = (fn: () => unknown, code: string, field: string) =>
      assert.throws(fn, (e: unknown) => e instanceof EntenteError && e.code === code && e.field === field);
    fails(() => computeExampleGradient(ws, new Float32Array(3), data, 0, grad), 'INVALID_ARGUMENT', 'params');
    fails(
      () => computeExampleGradient(ws, params, data, 0, new Float32Array(3)),
      'INVALID_ARGUMENT',
      'gradientOut',
    );
    fails(() => computeExampleGradient(ws, params, data, 2, grad), 'INVALID_ARGUMENT', 'row');
    fails(() => computeExampleGradient(ws, params, data, 1, grad), 'INVALID_DATA', 'data.y[1]');
    fails(
      () => computeMinibatchGradient(ws, params, data, new Int32Array([0, 5]), grad),
      'INVALID_ARGUMENT',
      'row',
    );
    fails(
      () => computeMinibatchGradient(ws, params, data, new Int32Array(0), grad),
      'INVALID_ARGUMENT',
      'rows',
    );
    fails(() => computeExampleLoss(ws, params, { ...data, dim: 1 }, 0), 'INVALID_DATA', 'data.dim');
  });
});
