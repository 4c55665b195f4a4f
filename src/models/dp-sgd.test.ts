import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { nextGaussian, type Rng } from '../core/rng.ts';
import type { Weights } from '../core/tensor.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { computeExampleGradient, createModelWorkspace } from './dense-network.ts';
import {
  clipGradientNorm,
  computeDpSgdGradient,
  computeDpStepsPerEpoch,
  createDpSgdState,
  type DpNoiseSource,
  samplePoissonBatch,
} from './dp-sgd.ts';
import { evaluateModel } from './evaluate-model.ts';
import { flattenWeights } from './flat-parameters.ts';
import { initializeWeights } from './initialize-weights.ts';
import type { LabeledData } from './labeled-data.ts';
import type { ModelSpec } from './model-spec.ts';
import { trainLocally } from './train-locally.ts';
import type { TrainOptions } from './train-options.ts';

/** Deterministic test-only Gaussian noise (NOT a secure sampler). */
function createTestNoise(seed: string): DpNoiseSource {
  const rng = createSeededRng(seed);
  return (out, std) => {
    for (let k = 0; k < out.length; k++) out[k] = std * nextGaussian(rng);
  };
}

function bytesOf(weights: Weights): Buffer {
  return Buffer.concat(weights.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
}

function l2Norm(v: ArrayLike<number>): number {
  let sq = 0;
  for (let k = 0; k < v.length; k++) sq += v[k]! * v[k]!;
  return Math.sqrt(sq);
}

/** Label 1 when x0 + 2·x1 − 0.5 > 0, points within 0.1 of the boundary dropped. */
function separableBinary(rng: Rng, count: number): LabeledData {
  const x = new Float32Array(count * 2);
  const y = new Int32Array(count);
  for (let i = 0; i < count; ) {
    const a = 4 * rng.nextFloat64() - 2;
    const b = 4 * rng.nextFloat64() - 2;
    const s = a + 2 * b - 0.5;
    if (Math.abs(s) < 0.1) continue;
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i++] = s > 0 ? 1 : 0;
  }
  return { x, y, count, dim: 2 };
}

const logistic: ModelSpec = { kind: 'logistic', inputDim: 2 };
const mlp: ModelSpec = { kind: 'mlp', inputDim: 2, numClasses: 2, hidden: [5], activation: 'tanh' };
const dpBase: TrainOptions = {
  epochs: 3,
  batchSize: 1,
  learningRate: 0.3,
  optimizer: 'sgd',
  dp: { clipNorm: 1, noiseMultiplier: 1, samplingRate: 0.1 },
};

/** An Rng whose floats are all `value` (to force Poisson outcomes). */
function constantRng(value: number): Rng {
  return { nextUint32: () => Math.floor(value * 2 ** 32), nextFloat64: () => value };
}

describe('DP-SGD', () => {
  it('with q = 1, z = 0 and a huge clip equals full-batch gradient descent', () => {
    const data = separableBinary(createSeededRng('eq-data'), 60);
    for (const spec of [logistic, mlp]) {
      const w0 = initializeWeights(spec, createSeededRng('eq-init'));
      const plain: TrainOptions = { epochs: 5, batchSize: 60, learningRate: 0.2, optimizer: 'sgd', l2: 0.01 };
      const dp = { ...plain, dp: { clipNorm: 1e9, noiseMultiplier: 0, samplingRate: 1 } };
      const a = trainLocally(spec, w0, data, plain, createSeededRng('eq'));
      const b = trainLocally(spec, w0, data, dp, createSeededRng('eq'), {
        noise: createTestNoise('n'),
        sampling: createSeededRng('eq-sampling'),
      });
      assert.equal(b.steps, a.steps);
      const fa = flattenWeights(spec, a.weights);
      const fb = flattenWeights(spec, b.weights);
      for (let k = 0; k < fa.length; k++) assert.ok(Math.abs(fa[k]! - fb[k]!) < 1e-5, `${spec.kind} [${k}]`);
      assert.ok(Math.abs(a.meanLoss - b.meanLoss) < 1e-5);
      assert.equal(a.dp, undefined);
      assert.deepEqual(b.dp, { steps: 5, clipNorm: 1e9, noiseMultiplier: 0, samplingRate: 1 });
    }
  });

  it('clips every vector to norm ≤ C, keeps its direction, and leaves short ones unchanged', () => {
    const vector = fc.array(fc.float({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 40 });
    fc.assert(
      fc.property(vector, fc.double({ min: 1e-3, max: 1e3, noNaN: true }), (values, clip) => {
        const g = Float32Array.from(values);
        const before = Float32Array.from(g);
        const norm = clipGradientNorm(g, clip);
        assert.ok(Math.abs(norm - l2Norm(before)) <= 1e-9 * Math.max(1, norm));
        assert.ok(l2Norm(g) <= clip, `${l2Norm(g)} > ${clip}`);
        if (norm <= clip) assert.deepEqual(g, before);
        else for (let k = 0; k < g.length; k++) assert.ok(g[k]! * before[k]! >= 0);
      }),
      { numRuns: 300 },
    );
  });

  it('each example contributes at most C: the noiseless sum has norm ≤ batch·C', () => {
    const data = separableBinary(createSeededRng('clip-data'), 40);
    const ws = createModelWorkspace(mlp);
    const params = flattenWeights(mlp, initializeWeights(mlp, createSeededRng('clip-init')));
    const clipNorm = 0.05;
    const one = new Float32Array(ws.parameterCount);
    computeExampleGradient(ws, params, data, 0, one);
    assert.ok(l2Norm(one) > 10 * clipNorm, 'the clip must bind for this test to mean anything');
    const options = { clipNorm, noiseMultiplier: 0, samplingRate: 1 };
    const state = createDpSgdState(ws, 1, options, createTestNoise('x'));
    const single = { ...data, count: 1 };
    const out = new Float32Array(ws.parameterCount);
    computeDpSgdGradient(ws, state, params, single, createSeededRng('c'), out);
    assert.ok(Math.abs(l2Norm(out) - clipNorm) < 1e-6, `single example: ${l2Norm(out)}`);
    const all = createDpSgdState(ws, data.count, options, createTestNoise('x'));
    const batch = computeDpSgdGradient(ws, all, params, data, createSeededRng('c'), out);
    assert.equal(batch.batchSize, data.count);
    assert.ok(l2Norm(out) * data.count <= data.count * clipNorm * (1 + 1e-6));
  });

  it('is deterministic for fixed sampling and noise sources and differs across them', () => {
    const data = separableBinary(createSeededRng('det-data'), 80);
    const w0 = initializeWeights(mlp, createSeededRng('det-init'));
    const run = (seed: string, noise: string) =>
      trainLocally(mlp, w0, data, dpBase, createSeededRng('unused'), {
        noise: createTestNoise(noise),
        sampling: createSeededRng(seed),
      });
    const a = run('s', 'n');
    assert.ok(bytesOf(a.weights).equals(bytesOf(run('s', 'n').weights)));
    assert.ok(!bytesOf(a.weights).equals(bytesOf(run('t', 'n').weights)));
    assert.ok(!bytesOf(a.weights).equals(bytesOf(run('s', 'm').weights)));
  });

  it('takes epochs × round(1/q) steps and reports the privacy event', () => {
    const data = separableBinary(createSeededRng('steps-data'), 30);
    const w0 = initializeWeights(logistic, createSeededRng('steps-init'));
    const noise = createTestNoise('steps');
    for (const [q, perEpoch] of [
      [1, 1],
      [0.5, 2],
      [0.3, 3],
      [0.12, 8],
      [0.01, 100],
    ] as const) {
      assert.equal(computeDpStepsPerEpoch(q), perEpoch);
      const options = { ...dpBase, epochs: 2, dp: { ...dpBase.dp!, samplingRate: q } };
      const result = trainLocally(logistic, w0, data, options, createSeededRng('s'), {
        noise,
        sampling: createSeededRng('s'),
      });
      assert.equal(result.steps, 2 * perEpoch);
      assert.deepEqual(result.dp, { steps: 2 * perEpoch, clipNorm: 1, noiseMultiplier: 1, samplingRate: q });
    }
  });

  it('Poisson batches have mean q·count and vary in size', () => {
    const rng = createSeededRng('poisson');
    const count = 1000;
    const q = 0.1;
    const rows = new Int32Array(count);
    const sizes: number[] = [];
    for (let t = 0; t < 200; t++) {
      const size = samplePoissonBatch(rng, count, q, rows);
      for (let i = 1; i < size; i++) assert.ok(rows[i - 1]! < rows[i]!);
      sizes.push(size);
    }
    const mean = sizes.reduce((s, v) => s + v, 0) / sizes.length;
    assert.ok(Math.abs(mean - q * count) < 3, `mean batch ${mean}`); // σ(mean) ≈ 0.67
    assert.ok(new Set(sizes).size > 5, 'batch sizes should vary');
    assert.equal(samplePoissonBatch(rng, count, 1, rows), count);
  });

  it('an empty batch still applies noise, divided by the expected batch size', () => {
    const data = separableBinary(createSeededRng('empty-data'), 20);
    const w0 = initializeWeights(logistic, createSeededRng('empty-init'));
    const noise: DpNoiseSource = (out, std) => out.fill(std);
    const options: TrainOptions = {
      epochs: 1,
      batchSize: 1,
      learningRate: 0.1,
      optimizer: 'sgd',
      dp: { clipNorm: 2, noiseMultiplier: 1.5, samplingRate: 0.25 },
    };
    // Every draw is 0.999 ≥ q: no example is ever sampled.
    const result = trainLocally(logistic, w0, data, options, createSeededRng('e'), {
      noise,
      sampling: constantRng(0.999),
    });
    assert.equal(result.steps, 4);
    assert.equal(result.meanLoss, 0);
    const expectedShift = (4 * 0.1 * (1.5 * 2)) / (0.25 * 20);
    const before = flattenWeights(logistic, w0);
    const after = flattenWeights(logistic, result.weights);
    for (let k = 0; k < before.length; k++) {
      assert.ok(Math.abs(before[k]! - expectedShift - after[k]!) < 1e-6, `[${k}]`);
    }
  });

  it('rejects invalid dp options naming the field', () => {
    const data = separableBinary(createSeededRng('v'), 10);
    const w0 = initializeWeights(logistic, createSeededRng('v'));
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ clipNorm: 0 }, 'options.dp.clipNorm'],
      [{ clipNorm: -1 }, 'options.dp.clipNorm'],
      [{ clipNorm: Number.POSITIVE_INFINITY }, 'options.dp.clipNorm'],
      [{ noiseMultiplier: -0.5 }, 'options.dp.noiseMultiplier'],
      [{ noiseMultiplier: Number.NaN }, 'options.dp.noiseMultiplier'],
      [{ samplingRate: 0 }, 'options.dp.samplingRate'],
      [{ samplingRate: 1.5 }, 'options.dp.samplingRate'],
      [{ samplingRate: 1e-9 }, 'options.dp.samplingRate'],
      [{ delta: 1e-5 }, 'options.dp.delta'],
    ];
    for (const [patch, field] of cases) {
      const options = { ...dpBase, dp: { ...dpBase.dp!, ...patch } } as TrainOptions;
      assert.throws(
        () =>
          trainLocally(logistic, w0, data, options, createSeededRng('v'), {
            noise: createTestNoise('v'),
            sampling: createSeededRng('v'),
          }),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_CONFIG' && e.field === field,
        field,
      );
    }
    const { clipNorm: _, ...missing } = dpBase.dp!;
    assert.throws(
      () =>
        trainLocally(logistic, w0, data, { ...dpBase, dp: missing } as TrainOptions, createSeededRng('v')),
      (e: unknown) => e instanceof EntenteError && e.field === 'options.dp.clipNorm',
    );
  });

  it('refuses to run without a noise source (no insecure default), even with z = 0', () => {
    const data = separableBinary(createSeededRng('m'), 10);
    const w0 = initializeWeights(logistic, createSeededRng('m'));
    for (const noiseMultiplier of [1, 0]) {
      const options = { ...dpBase, dp: { ...dpBase.dp!, noiseMultiplier } };
      assert.throws(
        () => trainLocally(logistic, w0, data, options, createSeededRng('m')),
        (e: unknown) =>
          e instanceof EntenteError &&
          e.code === 'INVALID_ARGUMENT' &&
          e.message.includes('dp noise source required'),
      );
    }
    // Without dp the sources argument stays optional.
    assert.equal(
      trainLocally(logistic, w0, data, { ...dpBase, dp: undefined }, createSeededRng('m')).dp,
      undefined,
    );
  });

  it('refuses to run without a sampling source (batches never come from the seeded Rng)', () => {
    const data = separableBinary(createSeededRng('m'), 10);
    const w0 = initializeWeights(logistic, createSeededRng('m'));
    assert.throws(
      () => trainLocally(logistic, w0, data, dpBase, createSeededRng('m'), { noise: createTestNoise('m') }),
      (e: unknown) =>
        e instanceof EntenteError &&
        e.code === 'INVALID_ARGUMENT' &&
        e.field === 'sampling' &&
        e.message.includes('dp sampling source required'),
    );
  });

  it('draws its batches from the sampling source only: the seeded Rng does not change them', () => {
    const data = separableBinary(createSeededRng('b-data'), 50);
    const w0 = initializeWeights(logistic, createSeededRng('b-init'));
    const batches = (seed: string): string[] => {
      const seen: string[] = [];
      trainLocally(logistic, w0, data, dpBase, createSeededRng(seed), {
        noise: createTestNoise('b'),
        sampling: createSeededRng('b-sampling'),
        onDpBatch: (rows) => seen.push([...rows].join(',')),
      });
      return seen;
    };
    const a = batches('one');
    assert.ok(a.length > 0 && a.some((b) => b !== ''));
    assert.deepEqual(batches('two'), a);
  });

  it('still learns a linearly separable problem with z ≈ 1', () => {
    const data = separableBinary(createSeededRng('learn-data'), 400);
    const w0 = initializeWeights(logistic, createSeededRng('learn-init'));
    const before = evaluateModel(logistic, w0, data);
    const options: TrainOptions = {
      epochs: 5,
      batchSize: 1,
      learningRate: 0.5,
      optimizer: 'sgd',
      dp: { clipNorm: 1, noiseMultiplier: 1.1, samplingRate: 0.1 },
    };
    const result = trainLocally(logistic, w0, data, options, createSeededRng('learn'), {
      noise: createTestNoise('learn-noise'),
      sampling: createSeededRng('learn-sampling'),
    });
    const after = evaluateModel(logistic, result.weights, data);
    assert.ok(after.accuracy >= 0.9, `accuracy ${before.accuracy} -> ${after.accuracy}`);
    assert.ok(after.accuracy > before.accuracy + 0.1, `accuracy ${before.accuracy} -> ${after.accuracy}`);
    assert.ok(after.loss < before.loss);
  });
});
