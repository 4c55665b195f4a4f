import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { assertMatchesLayout, type Tensor } from '../core/tensor.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { initializeWeights } from './initialize-weights.ts';
import { describeLayout, type ModelSpec } from './model-spec.ts';

const mlp: ModelSpec = { kind: 'mlp', inputDim: 30, numClasses: 4, hidden: [50, 20], activation: 'relu' };

function bytesOf(weights: Tensor[]): Buffer {
  return Buffer.concat(weights.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
}

function maxAbs(data: Float32Array): number {
  let m = 0;
  for (const v of data) m = Math.max(m, Math.abs(v));
  return m;
}

describe('initializeWeights', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = initializeWeights(mlp, createSeededRng('seed-a'));
    const b = initializeWeights(mlp, createSeededRng('seed-a'));
    const c = initializeWeights(mlp, createSeededRng('seed-b'));
    assert.ok(bytesOf(a).equals(bytesOf(b)));
    assert.ok(!bytesOf(a).equals(bytesOf(c)));
  });

  it('matches the layout, zeroes biases and uses He (ReLU) / Glorot limits', () => {
    const w = initializeWeights(mlp, createSeededRng('limits'));
    assertMatchesLayout(w, describeLayout(mlp));
    for (const t of w)
      if (t.name.endsWith('.bias'))
        assert.ok(
          t.data.every((v) => v === 0),
          t.name,
        );
    const limits = [Math.sqrt(6 / 30), Math.sqrt(6 / 50), Math.sqrt(6 / (20 + 4))];
    limits.forEach((limit, l) => {
      const data = w[2 * l]!.data;
      const m = maxAbs(data);
      assert.ok(m <= limit && m > 0.8 * limit, `layer ${l}: max ${m}, limit ${limit}`);
      const variance = data.reduce((s, v) => s + v * v, 0) / data.length;
      assert.ok(Math.abs(variance / ((limit * limit) / 3) - 1) < 0.25, `layer ${l}: variance ${variance}`);
    });
    const tanh = initializeWeights({ ...mlp, activation: 'tanh' }, createSeededRng('limits'));
    assert.ok(maxAbs(tanh[0]!.data) <= Math.sqrt(6 / 80));
  });

  it('rejects an invalid spec', () => {
    assert.throws(
      () => initializeWeights({ kind: 'softmax', inputDim: 3, numClasses: 0 }, createSeededRng('x')),
      (e: unknown) =>
        e instanceof EntenteError && e.code === 'INVALID_CONFIG' && e.field === 'modelSpec.numClasses',
    );
  });
});
