import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { nextGaussian, nextInt, type Rng } from '../core/rng.ts';
import type { Tensor, Weights } from '../core/tensor.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { evaluateModel } from './evaluate-model.ts';
import { initializeWeights } from './initialize-weights.ts';
import type { LabeledData } from './labeled-data.ts';
import type { ModelSpec } from './model-spec.ts';
import { trainLocally } from './train-locally.ts';
import type { TrainOptions } from './train-options.ts';

function bytesOf(weights: Weights): Buffer {
  return Buffer.concat(weights.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
}

function sqDistance(a: Weights, b: Weights): number {
  let d = 0;
  a.forEach((t, i) => {
    for (let k = 0; k < t.data.length; k++) d += (t.data[k]! - b[i]!.data[k]!) ** 2;
  });
  return d;
}

/** Two features; label 1 when x0 + 2·x1 − 0.5 > 0, points within 0.1 of the boundary dropped. */
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

/** Gaussian blobs (std 0.5) centred at distinct points, one per class. */
function blobs(rng: Rng, count: number, centres: number[][]): LabeledData {
  const dim = centres[0]!.length;
  const x = new Float32Array(count * dim);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const c = nextInt(rng, centres.length);
    y[i] = c;
    for (let j = 0; j < dim; j++) x[i * dim + j] = centres[c]![j]! + 0.5 * nextGaussian(rng);
  }
  return { x, y, count, dim };
}

/** XOR: four clusters at (±1, ±1) (std 0.25), label 1 when the signs differ. */
function xor(rng: Rng, count: number): LabeledData {
  const x = new Float32Array(count * 2);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const sa = nextInt(rng, 2) * 2 - 1;
    const sb = nextInt(rng, 2) * 2 - 1;
    x[2 * i] = sa + 0.25 * nextGaussian(rng);
    x[2 * i + 1] = sb + 0.25 * nextGaussian(rng);
    y[i] = sa === sb ? 0 : 1;
  }
  return { x, y, count, dim: 2 };
}

const logistic: ModelSpec = { kind: 'logistic', inputDim: 2 };
const sgd: TrainOptions = { epochs: 30, batchSize: 16, learningRate: 0.5, optimizer: 'sgd' };

describe('trainLocally', () => {
  it('learns a linearly separable problem with logistic regression (SGD and Adam)', () => {
    const data = separableBinary(createSeededRng('lin-data'), 300);
    const w0 = initializeWeights(logistic, createSeededRng('lin-init'));
    const before = evaluateModel(logistic, w0, data);
    for (const options of [sgd, { ...sgd, optimizer: 'adam' as const, learningRate: 0.05 }]) {
      const result = trainLocally(logistic, w0, data, options, createSeededRng('lin-train'));
      const after = evaluateModel(logistic, result.weights, data);
      assert.ok(after.loss < 0.5 * before.loss, `${options.optimizer}: ${before.loss} -> ${after.loss}`);
      assert.ok(after.accuracy >= 0.97, `${options.optimizer}: accuracy ${after.accuracy}`);
      assert.equal(result.numExamples, 300);
      assert.equal(result.steps, 30 * Math.ceil(300 / 16));
    }
  });

  it('learns separated blobs with softmax regression, and the last-epoch loss falls with training', () => {
    const spec: ModelSpec = { kind: 'softmax', inputDim: 3, numClasses: 4 };
    const centres = [
      [2, 0, 0],
      [0, 2, 0],
      [0, 0, 2],
      [-2, -2, -2],
    ];
    const data = blobs(createSeededRng('blob-data'), 400, centres);
    const w0 = initializeWeights(spec, createSeededRng('blob-init'));
    const short = trainLocally(
      spec,
      w0,
      data,
      { ...sgd, epochs: 1, learningRate: 0.1 },
      createSeededRng('t'),
    );
    const long = trainLocally(
      spec,
      w0,
      data,
      { ...sgd, epochs: 20, learningRate: 0.1, momentum: 0.9 },
      createSeededRng('t'),
    );
    assert.ok(long.meanLoss < short.meanLoss, `${short.meanLoss} -> ${long.meanLoss}`);
    const evaluation = evaluateModel(spec, long.weights, data);
    assert.ok(evaluation.accuracy >= 0.95, `accuracy ${evaluation.accuracy}`);
    assert.ok(Math.abs(evaluation.loss - long.meanLoss) < 0.1);
  });

  it('learns XOR with an MLP (ReLU and two tanh layers), which a linear model cannot', () => {
    const data = xor(createSeededRng('xor-data'), 400);
    const options: TrainOptions = { epochs: 60, batchSize: 20, learningRate: 0.02, optimizer: 'adam' };
    const specs: ModelSpec[] = [
      { kind: 'mlp', inputDim: 2, numClasses: 2, hidden: [16], activation: 'relu' },
      { kind: 'mlp', inputDim: 2, numClasses: 2, hidden: [8, 8], activation: 'tanh' },
    ];
    for (const spec of specs) {
      const w0 = initializeWeights(spec, createSeededRng('xor-init'));
      const result = trainLocally(spec, w0, data, options, createSeededRng('xor-train'));
      const evaluation = evaluateModel(spec, result.weights, data);
      assert.ok(evaluation.accuracy >= 0.97, `${JSON.stringify(spec)}: accuracy ${evaluation.accuracy}`);
    }
    const linear: ModelSpec = { kind: 'softmax', inputDim: 2, numClasses: 2 };
    const lw = trainLocally(
      linear,
      initializeWeights(linear, createSeededRng('l')),
      data,
      options,
      createSeededRng('l'),
    );
    assert.ok(evaluateModel(linear, lw.weights, data).accuracy < 0.8);
  });

  it('is deterministic per seed, differs across seeds and never mutates its input', () => {
    const spec: ModelSpec = { kind: 'mlp', inputDim: 2, numClasses: 2, hidden: [6], activation: 'tanh' };
    const data = xor(createSeededRng('det-data'), 100);
    const w0 = initializeWeights(spec, createSeededRng('det-init'));
    const snapshot = Buffer.from(bytesOf(w0));
    const options: TrainOptions = {
      epochs: 3,
      batchSize: 7,
      learningRate: 0.1,
      optimizer: 'adam',
      l2: 1e-3,
      proximalMu: 0.1,
    };
    const a = trainLocally(spec, w0, data, options, createSeededRng('run'));
    const b = trainLocally(spec, w0, data, options, createSeededRng('run'));
    const c = trainLocally(spec, w0, data, options, createSeededRng('other'));
    assert.ok(bytesOf(a.weights).equals(bytesOf(b.weights)));
    assert.equal(a.meanLoss, b.meanLoss);
    assert.ok(!bytesOf(a.weights).equals(bytesOf(c.weights)));
    assert.ok(bytesOf(w0).equals(snapshot), 'input weights were mutated');
    assert.ok(!bytesOf(a.weights).equals(snapshot), 'training changed nothing');
    a.weights.forEach((t: Tensor, i) => {
      assert.notEqual(t.data.buffer, w0[i]!.data.buffer);
    });
  });

  it('the FedProx term keeps weights near the starting point; l2 shrinks them', () => {
    const data = separableBinary(createSeededRng('prox-data'), 200);
    const w0 = initializeWeights(logistic, createSeededRng('prox-init'));
    const base: TrainOptions = { epochs: 10, batchSize: 10, learningRate: 0.01, optimizer: 'sgd' };
    const plain = trainLocally(logistic, w0, data, base, createSeededRng('p'));
    const prox = trainLocally(logistic, w0, data, { ...base, proximalMu: 50 }, createSeededRng('p'));
    assert.ok(sqDistance(prox.weights, w0) < 0.05 * sqDistance(plain.weights, w0));
    const zero = [
      { ...w0[0]!, data: new Float32Array(2) },
      { ...w0[1]!, data: new Float32Array(1) },
    ];
    const decayed = trainLocally(logistic, w0, data, { ...base, l2: 10 }, createSeededRng('p'));
    assert.ok(sqDistance(decayed.weights, zero) < 0.1 * sqDistance(plain.weights, zero));
  });

  it('rejects invalid options naming the field', () => {
    const data = separableBinary(createSeededRng('v'), 10);
    const w0 = initializeWeights(logistic, createSeededRng('v'));
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ epochs: 0 }, 'options.epochs'],
      [{ batchSize: 1.5 }, 'options.batchSize'],
      [{ learningRate: -1 }, 'options.learningRate'],
      [{ learningRate: Number.POSITIVE_INFINITY }, 'options.learningRate'],
      [{ optimizer: 'rmsprop' }, 'options.optimizer'],
      [{ momentum: 1 }, 'options.momentum'],
      [{ optimizer: 'adam', momentum: 0.9 }, 'options.momentum'],
      [{ l2: -0.1 }, 'options.l2'],
      [{ proximalMu: Number.NaN }, 'options.proximalMu'],
      [{ shuffle: false }, 'options.shuffle'],
    ];
    for (const [patch, field] of cases) {
      const options = { ...sgd, ...patch } as TrainOptions;
      assert.throws(
        () => trainLocally(logistic, w0, data, options, createSeededRng('v')),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_CONFIG' && e.field === field,
        field,
      );
    }
  });

  it('reports divergence as a learning-rate error instead of returning non-finite weights', () => {
    const data = separableBinary(createSeededRng('d'), 20);
    const w0 = initializeWeights(logistic, createSeededRng('d'));
    assert.throws(
      () => trainLocally(logistic, w0, data, { ...sgd, epochs: 2, learningRate: 1e39 }, createSeededRng('d')),
      (e: unknown) => e instanceof EntenteError && e.field === 'options.learningRate',
    );
  });
});
