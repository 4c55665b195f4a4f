import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSeededRng } from '../crypto/index.ts';
import {
  type DpNoiseSource,
  type LabeledData,
  type ModelSpec,
  type TrainOptions,
  builtinTrainer,
  computeDpStepsPerEpoch,
  samplePoissonBatch,
} from '../models/index.ts';
import { createCryptoRandomBits, sampleSecureGaussian } from '../privacy/index.ts';
import { chooseTrainingRandomness } from './training-randomness.ts';

const spec: ModelSpec = { kind: 'logistic', inputDim: 2 };
const bits = createCryptoRandomBits();
const noise: DpNoiseSource = (out, std) => out.set(sampleSecureGaussian(std, bits, out.length));

function dataset(count: number): LabeledData {
  const rng = createSeededRng('tr-data');
  const x = new Float32Array(count * 2);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    x[2 * i] = 2 * rng.nextFloat64() - 1;
    x[2 * i + 1] = 2 * rng.nextFloat64() - 1;
    y[i] = x[2 * i]! + x[2 * i + 1]! > 0 ? 1 : 0;
  }
  return { x, y, count, dim: 2 };
}

const data = dataset(80);
const weights = builtinTrainer.initializeWeights(spec, createSeededRng('tr-init'));
const plain: TrainOptions = { epochs: 2, batchSize: 8, learningRate: 0.1, optimizer: 'sgd' };
const dp = { clipNorm: 1, noiseMultiplier: 1.1, samplingRate: 0.2 };
const seed = 'run-seed/train/1/0/alpha';

/** Trains as the participant does and returns each DP-SGD batch as a 0/1 mask over the rows. */
function trainedMasks(task: { seed: string; train: TrainOptions }): string[] {
  const masks: string[] = [];
  const { rng, sources } = chooseTrainingRandomness(task, noise, (rows) => {
    const mask = new Uint8Array(data.count);
    for (const r of rows) mask[r] = 1;
    masks.push(mask.join(''));
  });
  builtinTrainer.train(spec, weights, data, task.train, rng, sources);
  return masks;
}

/** What a coordinator that knows the seed and the row count would predict for each step. */
function seededMasks(taskSeed: string, steps: number): string[] {
  const rng = createSeededRng(taskSeed);
  const rows = new Int32Array(data.count);
  const out: string[] = [];
  for (let s = 0; s < steps; s++) {
    const n = samplePoissonBatch(rng, data.count, dp.samplingRate, rows);
    const mask = new Uint8Array(data.count);
    for (const r of rows.subarray(0, n)) mask[r] = 1;
    out.push(mask.join(''));
  }
  return out;
}

describe('training randomness of a participant', () => {
  it('with DP-SGD on, the batches drawn cannot be reproduced from the task seed', () => {
    const task = { seed, train: { ...plain, dp } };
    const steps = plain.epochs * computeDpStepsPerEpoch(dp.samplingRate);
    const first = trainedMasks(task);
    const second = trainedMasks(task);
    assert.equal(first.length, steps);
    assert.equal(second.length, steps);
    // Two trainings from the same seed and data draw different batches (80 rows, q = 0.2: a collision
    // of one step has probability ≈ 0.68^80 ≈ 4e-14).
    for (let s = 0; s < steps; s++) assert.notEqual(first[s], second[s], `step ${s}`);
    // None equals what the seeded generator would draw, at any step.
    const predicted = seededMasks(seed, steps);
    for (const masks of [first, second]) {
      for (let s = 0; s < steps; s++) assert.ok(!predicted.includes(masks[s]!), `step ${s} predicted`);
    }
    assert.equal(chooseTrainingRandomness(task, noise).reproducible, false);
  });

  it('with client-level DP on, training is not replayable from the seed either', () => {
    const task = { seed, train: plain, clientDp: { clipNorm: 1, noiseMultiplier: 1 } };
    const a = chooseTrainingRandomness(task, noise);
    const b = chooseTrainingRandomness(task, noise);
    assert.equal(a.reproducible, false);
    const wa = builtinTrainer.train(spec, weights, data, plain, a.rng, a.sources).weights;
    const wb = builtinTrainer.train(spec, weights, data, plain, b.rng, b.sources).weights;
    assert.notDeepEqual(wa[0]!.data, wb[0]!.data);
  });

  it('without differential privacy, training is reproducible from the task seed', () => {
    const task = { seed, train: plain };
    const a = chooseTrainingRandomness(task, noise);
    const b = chooseTrainingRandomness(task, noise);
    assert.equal(a.reproducible, true);
    const wa = builtinTrainer.train(spec, weights, data, plain, a.rng, a.sources).weights;
    const wb = builtinTrainer.train(spec, weights, data, plain, b.rng, b.sources).weights;
    const wc = builtinTrainer.train(spec, weights, data, plain, createSeededRng(seed)).weights;
    assert.deepEqual(wa, wb);
    assert.deepEqual(wa, wc);
  });
});
