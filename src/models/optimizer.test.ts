import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import {
  ADAM_BETA1,
  ADAM_BETA2,
  ADAM_EPSILON,
  applyOptimizerStep,
  createOptimizerState,
} from './optimizer.ts';
import { applyRegularization } from './regularization.ts';

const f32 = (values: number[]) => new Float32Array(values);

describe('optimizer', () => {
  it('plain SGD subtracts lr × gradient', () => {
    const state = createOptimizerState({ optimizer: 'sgd', learningRate: 0.5 }, 3);
    const w = f32([1, 2, 3]);
    applyOptimizerStep(state, w, f32([1, -2, 0.5]));
    assert.deepEqual(Array.from(w), [0.5, 3, 2.75]);
    assert.equal(state.step, 1);
  });

  it('SGD with momentum accumulates velocity', () => {
    const state = createOptimizerState({ optimizer: 'sgd', learningRate: 0.5, momentum: 0.5 }, 1);
    const w = f32([0]);
    applyOptimizerStep(state, w, f32([1])); // v = 1
    applyOptimizerStep(state, w, f32([1])); // v = 1.5
    assert.equal(w[0], -(0.5 * 1 + 0.5 * 1.5));
  });

  it('Adam first step moves each weight by about lr against the sign of its gradient', () => {
    fc.assert(
      fc.property(
        fc.float({ min: Math.fround(1e-3), max: 1e3, noNaN: true }),
        fc.boolean(),
        (magnitude, negative) => {
          const g = negative ? -magnitude : magnitude;
          const state = createOptimizerState({ optimizer: 'adam', learningRate: 0.01 }, 1);
          const w = f32([0]);
          applyOptimizerStep(state, w, f32([g]));
          assert.ok(Math.abs(w[0]! + 0.01 * Math.sign(g)) < 1e-6, `${w[0]} for g=${g}`);
        },
      ),
    );
  });

  it('Adam matches a float64 transcription of Kingma & Ba Algorithm 1', () => {
    const rng = createSeededRng('adam');
    const n = 5;
    const state = createOptimizerState({ optimizer: 'adam', learningRate: 0.05 }, n);
    const w = new Float32Array(n);
    const ref = new Float64Array(n);
    const m = new Float64Array(n);
    const v = new Float64Array(n);
    for (let t = 1; t <= 20; t++) {
      const g = Float32Array.from({ length: n }, () => 2 * rng.nextFloat64() - 1);
      applyOptimizerStep(state, w, g);
      for (let k = 0; k < n; k++) {
        m[k] = ADAM_BETA1 * m[k]! + (1 - ADAM_BETA1) * g[k]!;
        v[k] = ADAM_BETA2 * v[k]! + (1 - ADAM_BETA2) * g[k]! ** 2;
        const mHat = m[k]! / (1 - ADAM_BETA1 ** t);
        const vHat = v[k]! / (1 - ADAM_BETA2 ** t);
        ref[k] = ref[k]! - (0.05 * mHat) / (Math.sqrt(vHat) + ADAM_EPSILON);
      }
    }
    for (let k = 0; k < n; k++) assert.ok(Math.abs(w[k]! - ref[k]!) < 1e-5, `${w[k]} vs ${ref[k]}`);
    assert.ok(ref.some((x) => Math.abs(x) > 0.1));
  });

  it('rejects invalid settings naming the field', () => {
    const fails = (fn: () => unknown, field: string) =>
      assert.throws(fn, (e: unknown) => e instanceof EntenteError && e.field === field);
    fails(() => createOptimizerState({ optimizer: 'sgd', learningRate: 0 }, 1), 'learningRate');
    fails(() => createOptimizerState({ optimizer: 'sgd', learningRate: Number.NaN }, 1), 'learningRate');
    fails(() => createOptimizerState({ optimizer: 'sgd', learningRate: 1, momentum: 1 }, 1), 'momentum');
    const state = createOptimizerState({ optimizer: 'adam', learningRate: 1 }, 2);
    fails(() => applyOptimizerStep(state, f32([1, 2]), f32([1])), 'gradient');
    fails(() => applyOptimizerStep(state, f32([1]), f32([1])), 'params');
  });
});

describe('applyRegularization', () => {
  it('adds l2·w + mu·(w − anchor) and returns the penalty', () => {
    const w = f32([1, -2]);
    const g = f32([0.5, 0.5]);
    const value = applyRegularization(w, { l2: 0.5, proximalMu: 2, anchor: f32([0, -1]) }, g);
    // 0.25·(1 + 4) + 1·(1 + 1)
    assert.equal(value, 3.25);
    assert.deepEqual(Array.from(g), [0.5 + 0.5 + 2, 0.5 - 1 - 2]);
  });

  it('is a no-op with zero coefficients and demands an anchor for proximalMu > 0', () => {
    const g = f32([0.25]);
    assert.equal(applyRegularization(f32([3]), { l2: 0, proximalMu: 0, anchor: undefined }, g), 0);
    assert.deepEqual(Array.from(g), [0.25]);
    assert.throws(
      () => applyRegularization(f32([3]), { l2: 0, proximalMu: 1, anchor: undefined }, g),
      (e: unknown) => e instanceof EntenteError && e.field === 'anchor',
    );
    assert.throws(
      () => applyRegularization(f32([3]), { l2: -1, proximalMu: 0, anchor: undefined }, g),
      (e: unknown) => e instanceof EntenteError && e.field === 'l2',
    );
  });
});
