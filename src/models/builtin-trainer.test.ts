import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { builtinTrainer } from './builtin-trainer.ts';
import type { LabeledData } from './labeled-data.ts';
import type { ModelSpec } from './model-spec.ts';
import { predictClasses, predictProbabilities } from './predict.ts';
import type { Trainer } from './trainer.ts';

const trainer: Trainer = builtinTrainer;
const softmax: ModelSpec = { kind: 'softmax', inputDim: 2, numClasses: 3 };
const options = { epochs: 2, batchSize: 2, learningRate: 0.1, optimizer: 'sgd' } as const;

/** The error has `code` and `field`; messages from this folder also start with the field. */
function isError(code: string, field: string) {
  return (e: unknown) =>
    e instanceof EntenteError &&
    e.code === code &&
    e.field === field &&
    (code === 'INVALID_TENSOR' || e.message.startsWith(field));
}

function goodData(): LabeledData {
  return {
    x: new Float32Array([0, 1, 1, 0, -1, 0, 0, -1]),
    y: new Int32Array([0, 1, 2, 1]),
    count: 4,
    dim: 2,
  };
}

describe('builtinTrainer', () => {
  it('has its id and describes and initializes the layout', () => {
    assert.equal(trainer.id, 'builtin/float32@1');
    assert.deepEqual(
      trainer.describeLayout(softmax).map((l) => l.name),
      ['dense0.weight', 'dense0.bias'],
    );
    const w = trainer.initializeWeights(softmax, createSeededRng('init'));
    assert.deepEqual(w[0]!.shape, [3, 2]);
    const result = trainer.train(softmax, w, goodData(), options, createSeededRng('train'));
    assert.equal(result.steps, 4);
    const evaluation = trainer.evaluate(softmax, result.weights, goodData());
    assert.equal(evaluation.numExamples, 4);
    assert.ok(evaluation.accuracy >= 0 && evaluation.accuracy <= 1);
  });

  it('rejects weights that do not match the layout', () => {
    const w = trainer.initializeWeights(softmax, createSeededRng('init'));
    const rng = createSeededRng('r');
    const data = goodData();
    const swapped = [w[1]!, w[0]!];
    assert.throws(
      () => trainer.train(softmax, swapped, data, options, rng),
      isError('INVALID_TENSOR', 'weights.dense0.weight'),
    );
    const reshaped: Tensor[] = [{ ...w[0]!, shape: [2, 3] }, w[1]!];
    assert.throws(
      () => trainer.train(softmax, reshaped, data, options, rng),
      isError('INVALID_TENSOR', 'weights.dense0.weight'),
    );
    const nan: Tensor[] = [w[0]!, { ...w[1]!, data: new Float32Array([0, Number.NaN, 0]) }];
    assert.throws(
      () => trainer.evaluate(softmax, nan, data),
      isError('INVALID_TENSOR', 'weights.dense0.bias'),
    );
    assert.throws(() => trainer.evaluate(softmax, [w[0]!], data), isError('INVALID_TENSOR', 'weights'));
  });

  it('rejects data that does not fit the spec, naming the row but not the value', () => {
    const w = trainer.initializeWeights(softmax, createSeededRng('init'));
    const rng = createSeededRng('r');
    const d = goodData();
    const cases: Array<[LabeledData, string]> = [
      [{ ...d, dim: 3, x: new Float32Array(12) }, 'data.dim'],
      [{ ...d, count: 0, x: new Float32Array(0), y: new Int32Array(0) }, 'data.count'],
      [{ ...d, x: new Float32Array(7) }, 'data.x'],
      [{ ...d, y: new Int32Array([0, 1, 2]) }, 'data.y'],
      [{ ...d, y: new Int32Array([0, 1, 2, 3]) }, 'data.y[3]'],
      [{ ...d, y: new Int32Array([0, -7, 2, 1]) }, 'data.y[1]'],
      [{ ...d, x: new Float32Array([0, 1, 1, 0, Number.POSITIVE_INFINITY, 0, 0, -1]) }, 'data.x[2]'],
    ];
    for (const [data, field] of cases) {
      assert.throws(
        () => trainer.train(softmax, w, data, options, rng),
        isError('INVALID_DATA', field),
        field,
      );
      assert.throws(() => trainer.evaluate(softmax, w, data), isError('INVALID_DATA', field), field);
    }
    assert.throws(
      () => trainer.evaluate(softmax, w, { ...d, y: new Int32Array([0, -7, 2, 1]) }),
      (e: unknown) => e instanceof Error && !e.message.includes('-7'),
    );
    const logistic: ModelSpec = { kind: 'logistic', inputDim: 2 };
    const lw = trainer.initializeWeights(logistic, rng);
    assert.throws(() => trainer.evaluate(logistic, lw, d), isError('INVALID_DATA', 'data.y[2]'));
  });

  it('evaluates loss and accuracy exactly on a hand-computed logistic model', () => {
    const spec: ModelSpec = { kind: 'logistic', inputDim: 1 };
    const weights: Tensor[] = [
      { name: 'dense0.weight', shape: [1, 1], data: new Float32Array([1]) },
      { name: 'dense0.bias', shape: [1], data: new Float32Array([0]) },
    ];
    const data: LabeledData = {
      x: new Float32Array([-2, -1, 1, 2]),
      y: new Int32Array([0, 1, 1, 1]),
      count: 4,
      dim: 1,
    };
    const result = trainer.evaluate(spec, weights, data);
    const softplus = (v: number) => Math.log(1 + Math.exp(v));
    const expected = (softplus(-2) + softplus(1) + softplus(-1) + softplus(-2)) / 4;
    assert.ok(Math.abs(result.loss - expected) < 1e-12, `${result.loss} vs ${expected}`);
    assert.equal(result.accuracy, 0.75);
    assert.deepEqual(Array.from(predictClasses(spec, weights, data.x)), [0, 0, 1, 1]);
    const p = predictProbabilities(spec, weights, data.x);
    assert.ok(Math.abs(p[3]! - 1 / (1 + Math.exp(-2))) < 1e-7);
  });

  it('predicts softmax probabilities that sum to 1 and agree with the predicted classes', () => {
    const spec: ModelSpec = { kind: 'mlp', inputDim: 2, numClasses: 3, hidden: [4], activation: 'relu' };
    const w = trainer.initializeWeights(spec, createSeededRng('p'));
    const x = goodData().x;
    const p = predictProbabilities(spec, w, x);
    const classes = predictClasses(spec, w, x);
    assert.equal(p.length, 12);
    for (let r = 0; r < 4; r++) {
      const row = Array.from(p.subarray(3 * r, 3 * r + 3));
      assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-6);
      assert.equal(classes[r], row.indexOf(Math.max(...row)));
    }
    assert.throws(() => predictClasses(spec, w, new Float32Array(3)), isError('INVALID_DATA', 'x'));
  });
});
