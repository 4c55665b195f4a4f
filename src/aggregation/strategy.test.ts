/**
 * Each strategy against an independent float64 reference over several rounds (state rounded to
 * float32 between rounds, as the strategy stores it), persistence round-trips, hand-computed FedAdam
 * and FedYogi steps, and the input checks of aggregateTrain.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import type { Tensor, Weights } from '../core/tensor.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { createStrategy, type Strategy, type StrategyState } from './strategy.ts';
import { parseStrategyConfig, type StrategyConfig } from './strategy-config.ts';
import { createWeightedSum } from './weighted-sum.ts';

const f32 = Math.fround;
const LAYOUT = [
  { name: 'dense0.weight', shape: [2, 3] },
  { name: 'dense0.bias', shape: [3] },
  { name: 'dense1.weight', shape: [3, 1] },
];

function makeWeights(values: number[][]): Tensor[] {
  return LAYOUT.map((l, k) => ({ name: l.name, shape: [...l.shape], data: Float32Array.from(values[k]!) }));
}
function valuesOf(weights: Weights): number[][] {
  return weights.map((t) => Array.from(t.data));
}

/** Initial model and per-round means (model + that round's fixed random pseudo-gradient). */
function makeScenario(seed: string): {
  initial: number[][];
  means: (x: number[][], round: number) => number[][];
} {
  const rng = createSeededRng(seed);
  const draw = (scale: number) => f32((rng.nextFloat64() * 2 - 1) * scale);
  const initial = LAYOUT.map((l) =>
    Array.from({ length: l.shape.reduce((a, b) => a * b, 1) }, () => draw(1)),
  );
  const deltas = Array.from({ length: 10 }, () => initial.map((t) => t.map(() => draw(0.05))));
  return { initial, means: (x, round) => x.map((t, k) => t.map((v, i) => f32(v + deltas[round]![k]![i]!))) };
}

type Reference = { x: number[][]; s1: number[][]; s2: number[][] };

/** The update rules written out per element, independently of the implementation. */
function stepReference(cfg: StrategyConfig, ref: Reference, mean: number[][]): Reference {
  const x: number[][] = [];
  const s1: number[][] = [];
  const s2: number[][] = [];
  for (let k = 0; k < mean.length; k++) {
    x.push([]);
    s1.push([]);
    s2.push([]);
    for (let i = 0; i < mean[k]!.length; i++) {
      const cur = ref.x[k]![i]!;
      const d = mean[k]![i]! - cur;
      if (cfg.name === 'fedavg' || cfg.name === 'fedprox') {
        x[k]!.push(f32(mean[k]![i]!));
      } else if (cfg.name === 'fedavgm') {
        const v = cfg.serverMomentum * ref.s1[k]![i]! + d;
        s1[k]!.push(f32(v));
        x[k]!.push(f32(cur + cfg.serverLearningRate * v));
      } else {
        const m = cfg.beta1 * ref.s1[k]![i]! + (1 - cfg.beta1) * d;
        const vPrev = ref.s2[k]![i]!;
        let v: number;
        if (cfg.name === 'fedadagrad') v = vPrev + d * d;
        else if (cfg.name === 'fedadam') v = cfg.beta2 * vPrev + (1 - cfg.beta2) * d * d;
        else v = vPrev - (1 - cfg.beta2) * d * d * Math.sign(vPrev - d * d);
        s1[k]!.push(f32(m));
        s2[k]!.push(f32(v));
        x[k]!.push(f32(cur + (cfg.serverLearningRate * m) / (Math.sqrt(v) + cfg.tau)));
      }
    }
  }
  return { x, s1, s2 };
}

function initialReference(cfg: StrategyConfig, initial: number[][]): Reference {
  const fill = (v: number) => initial.map((t) => t.map(() => v));
  const tau = 'tau' in cfg ? cfg.tau : 0;
  return { x: initial, s1: fill(0), s2: fill(f32(tau * tau)) };
}

function assertClose(actual: number[][], expected: number[][], what: string): void {
  for (let k = 0; k < expected.length; k++) {
    for (let i = 0; i < expected[k]!.length; i++) {
      const a = actual[k]![i]!;
      const e = expected[k]![i]!;
      assert.ok(Math.abs(a - e) <= 1e-6 * Math.abs(e) + 1e-30, `${what}[${k}][${i}]: ${a} != ${e}`);
    }
  }
}

/** Persists state as a storage layer would: JSON for round/scalars, raw bytes for the tensors. */
function roundTripState(state: StrategyState): StrategyState {
  const json = JSON.stringify({
    round: state.round,
    scalars: state.scalars,
    tensors: state.tensors.map((t) => ({ name: t.name, shape: t.shape })),
  });
  const blobs = state.tensors.map((t) => Buffer.from(new Uint8Array(t.data.buffer.slice(0))));
  const parsed = JSON.parse(json) as { round: number; scalars: Record<string, number>; tensors: Tensor[] };
  return {
    round: parsed.round,
    scalars: parsed.scalars,
    tensors: parsed.tensors.map((t, k) => {
      const b = blobs[k]!;
      return {
        name: t.name,
        shape: t.shape,
        data: new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4),
      };
    }),
  };
}

function runRounds(
  strategy: Strategy,
  start: { weights: Tensor[]; state: StrategyState },
  means: (x: number[][], round: number) => number[][],
  fromRound: number,
  toRound: number,
): { weights: Tensor[]; state: StrategyState } {
  let { weights, state } = start;
  for (let round = fromRound; round <= toRound; round++) {
    const mean = makeWeights(means(valuesOf(weights), round));
    ({ weights, state } = strategy.aggregateTrain({
      round,
      current: weights,
      mean,
      totalExamples: 100,
      contributions: 3,
      state,
    }));
  }
  return { weights, state };
}

const CONFIGS: unknown[] = [
  { name: 'fedavg' },
  { name: 'fedprox', proximalMu: 0.01 },
  { name: 'fedavgm' },
  { name: 'fedavgm', serverLearningRate: 0.7, serverMomentum: 0.5 },
  { name: 'fedadagrad' },
  { name: 'fedadagrad', beta1: 0.5, serverLearningRate: 0.1, tau: 1e-2 },
  { name: 'fedadam' },
  { name: 'fedadam', serverLearningRate: 0.1, beta1: 0.8, beta2: 0.9, tau: 1e-2 },
  { name: 'fedyogi' },
  { name: 'fedyogi', serverLearningRate: 0.05, tau: 0.02 },
];

describe('strategies against a float64 reference', () => {
  for (const raw of CONFIGS) {
    const cfg = parseStrategyConfig(raw);
    it(`${JSON.stringify(raw)} matches over 6 rounds`, () => {
      const strategy = createStrategy(cfg);
      const { initial, means } = makeScenario(`scenario/${cfg.name}`);
      let weights = makeWeights(initial);
      let state = strategy.initializeState(weights);
      let ref = initialReference(cfg, initial);
      for (let round = 1; round <= 6; round++) {
        const mean = makeWeights(means(valuesOf(weights), round));
        const meanValues = valuesOf(mean);
        ref = stepReference(cfg, ref, meanValues);
        ({ weights, state } = strategy.aggregateTrain({
          round,
          current: weights,
          mean,
          totalExamples: 42,
          contributions: 2,
          state,
        }));
        assertClose(valuesOf(weights), ref.x, `round ${round} weights`);
        assert.equal(state.round, round);
        assert.equal(state.scalars.steps, round);
        const n = LAYOUT.length;
        if (cfg.name === 'fedavgm') {
          assert.deepEqual(
            state.tensors.map((t) => t.name),
            LAYOUT.map((l) => `momentum/${l.name}`),
          );
          assertClose(valuesOf(state.tensors), ref.s1, 'momentum');
        } else if (cfg.name === 'fedavg' || cfg.name === 'fedprox') {
          assert.equal(state.tensors.length, 0);
        } else {
          assert.deepEqual(
            state.tensors.map((t) => t.name),
            [...LAYOUT.map((l) => `m/${l.name}`), ...LAYOUT.map((l) => `v/${l.name}`)],
          );
          assertClose(valuesOf(state.tensors.slice(0, n)), ref.s1, 'm');
          assertClose(valuesOf(state.tensors.slice(n)), ref.s2, 'v');
        }
        // the server step really moved the model (except where it is FedAvg's, which equals the mean)
        if (cfg.name === 'fedavg' || cfg.name === 'fedprox') assert.deepEqual(valuesOf(weights), meanValues);
        else if (cfg.name !== 'fedavgm' || round > 1) assert.notDeepEqual(valuesOf(weights), meanValues);
      }
    });

    it(`${JSON.stringify(raw)}: persisting state between rounds changes nothing`, () => {
      const strategy = createStrategy(cfg);
      const { initial, means } = makeScenario(`persist/${cfg.name}`);
      const start = { weights: makeWeights(initial), state: strategy.initializeState(makeWeights(initial)) };
      const direct = runRounds(strategy, start, means, 1, 5);
      const half = runRounds(strategy, start, means, 1, 2);
      const restored = createStrategy(parseStrategyConfig(JSON.parse(JSON.stringify(cfg))));
      const resumed = runRounds(
        restored,
        { weights: half.weights, state: roundTripState(half.state) },
        means,
        3,
        5,
      );
      assert.deepEqual(valuesOf(resumed.weights), valuesOf(direct.weights));
      assert.deepEqual(resumed.state.scalars, direct.state.scalars);
      assert.deepEqual(valuesOf(resumed.state.tensors), valuesOf(direct.state.tensors));
    });
  }
});

describe('FedAvg and FedProx', () => {
  it('the FedAvg of identical models is that model', () => {
    const model = makeWeights(makeScenario('identical').initial);
    const sum = createWeightedSum(LAYOUT);
    for (const n of [3, 17, 250]) sum.addWeights(model, n);
    const mean = sum.computeMean();
    assert.deepEqual(valuesOf(mean), valuesOf(model));
    const strategy = createStrategy(parseStrategyConfig({ name: 'fedavg' }));
    const start = makeWeights(makeScenario('other').initial);
    const { weights } = strategy.aggregateTrain({
      round: 1,
      current: start,
      mean,
      totalExamples: 270,
      contributions: 3,
      state: strategy.initializeState(start),
    });
    assert.deepEqual(valuesOf(weights), valuesOf(model));
    assert.notEqual(weights[0]!.data, mean[0]!.data, 'returns a copy, not the input');
  });

  it('FedProx sends its proximal μ; the others send 0', () => {
    const rng = createSeededRng('mu');
    const args = { round: 1, available: ['a', 'b'], rng, state: { round: 0, scalars: {}, tensors: [] } };
    assert.equal(
      createStrategy(parseStrategyConfig({ name: 'fedprox', proximalMu: 0.25 })).configureTrain(args).config
        .proximalMu,
      0.25,
    );
    assert.equal(
      createStrategy(parseStrategyConfig({ name: 'fedadam' })).configureTrain(args).config.proximalMu,
      0,
    );
  });
});

describe('adaptive strategies by hand', () => {
  const one = (values: number[]): Tensor[] => [
    { name: 'w', shape: [values.length], data: Float32Array.from(values) },
  ];

  it('FedAdam on tiny vectors equals the formula of Reddi et al. Algorithm 2', () => {
    const s = createStrategy(
      parseStrategyConfig({ name: 'fedadam', serverLearningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 }),
    );
    const current = one([0, 1, -2]);
    const state0 = s.initializeState(current);
    assert.deepEqual(Array.from(state0.tensors[1]!.data), [f32(1e-6), f32(1e-6), f32(1e-6)]);
    const r1 = s.aggregateTrain({
      round: 1,
      current,
      mean: one([0.5, 1, -2.25]),
      totalExamples: 10,
      contributions: 2,
      state: state0,
    });
    // Δ = [0.5, 0, -0.25]; m = 0.1·Δ; v = 0.99·1e-6 + 0.01·Δ²; x + 0.1·m/(√v + 1e-3)
    const v0 = f32(1e-6);
    const expected1 = [
      0 + (0.1 * 0.05) / (Math.sqrt(0.99 * v0 + 0.0025) + 1e-3),
      1 + 0,
      -2 + (0.1 * -0.025) / (Math.sqrt(0.99 * v0 + 0.000625) + 1e-3),
    ].map(f32);
    assert.deepEqual(Array.from(r1.weights[0]!.data), expected1);
    assert.deepEqual(Array.from(r1.state.tensors[0]!.data), [0.05, 0, -0.025].map(f32));
    assert.deepEqual(
      Array.from(r1.state.tensors[1]!.data),
      [0.99 * v0 + 0.0025, 0.99 * v0, 0.99 * v0 + 0.000625].map(f32),
    );
    // the first step of Algorithm 2 (no bias correction) moves ≈ η·sign(Δ) when |Δ| ≫ τ
    assert.ok(Math.abs(expected1[0]! - 0.1) < 0.01);
  });

  it('FedYogi differs from FedAdam exactly by the v rule, including sign(0) = 0', () => {
    // tau = 0.5 makes v₋₁ = 0.25 exact; Δ = 0.5 gives v₋₁ − Δ² = 0 (no change for Yogi),
    // Δ = 0.25 gives v₋₁ > Δ² and Δ = 1 gives v₋₁ < Δ².
    const params = { serverLearningRate: 0.3, beta1: 0.9, beta2: 0.9, tau: 0.5 };
    const adam = createStrategy(parseStrategyConfig({ name: 'fedadam', ...params }));
    const yogi = createStrategy(parseStrategyConfig({ name: 'fedyogi', ...params }));
    const current = one([0, 0, 0]);
    const mean = one([0.5, 0.25, -1]);
    const input = { round: 1, current, mean, totalExamples: 5, contributions: 1 };
    const a = adam.aggregateTrain({ ...input, state: adam.initializeState(current) });
    const y = yogi.aggregateTrain({ ...input, state: yogi.initializeState(current) });
    assert.deepEqual(Array.from(y.state.tensors[0]!.data), Array.from(a.state.tensors[0]!.data), 'same m');
    const d2 = [0.25, 0.0625, 1];
    assert.deepEqual(
      Array.from(a.state.tensors[1]!.data),
      d2.map((d) => f32(0.9 * 0.25 + 0.1 * d)),
    );
    assert.deepEqual(Array.from(y.state.tensors[1]!.data), [
      0.25,
      f32(0.25 - 0.1 * 0.0625),
      f32(0.25 + 0.1 * 1),
    ]);
    // and each model follows from its own float64 (m, v) through the same update
    const delta = [0.5, 0.25, -1];
    const m = delta.map((d) => (1 - 0.9) * d);
    const vAdam = d2.map((d) => 0.9 * 0.25 + 0.1 * d);
    const vYogi = d2.map((d) => 0.25 - 0.1 * d * Math.sign(0.25 - d));
    for (const [result, v] of [
      [a, vAdam],
      [y, vYogi],
    ] as const) {
      assert.deepEqual(
        Array.from(result.weights[0]!.data),
        m.map((mi, i) => f32((0.3 * mi) / (Math.sqrt(v[i]!) + 0.5))),
      );
    }
    assert.notDeepEqual(Array.from(a.weights[0]!.data), Array.from(y.weights[0]!.data));
  });
});

describe('aggregateTrain input checks', () => {
  const strategy = createStrategy(parseStrategyConfig({ name: 'fedadam' }));
  const current = makeWeights(makeScenario('checks').initial);
  const state = strategy.initializeState(current);
  const base = { round: 1, current, mean: current, totalExamples: 10, contributions: 2, state };
  const fails = (patch: Partial<typeof base>, code: string, field: string) =>
    assert.throws(
      () => strategy.aggregateTrain({ ...base, ...patch }),
      (e: unknown) => e instanceof EntenteError && e.code === code && e.field === field,
    );

  it('never mutates its inputs', () => {
    const before = JSON.stringify([valuesOf(current), valuesOf(state.tensors), state]);
    const mean = makeWeights(valuesOf(current).map((t) => t.map((v) => v + 0.5)));
    const meanBefore = valuesOf(mean);
    strategy.aggregateTrain({ ...base, mean });
    assert.equal(JSON.stringify([valuesOf(current), valuesOf(state.tensors), state]), before);
    assert.deepEqual(valuesOf(mean), meanBefore);
  });

  it('rejects a mean whose layout differs from current', () => {
    const wrongShape = current.map((t, k) => (k === 1 ? { ...t, shape: [1, 3] } : t));
    fails({ mean: wrongShape }, 'INVALID_TENSOR', 'mean.dense0.bias');
    fails({ mean: current.slice(0, 2) }, 'INVALID_TENSOR', 'mean');
    const renamed = current.map((t, k) => (k === 0 ? { ...t, name: 'other' } : t));
    fails({ mean: renamed }, 'INVALID_TENSOR', 'mean.dense0.weight');
  });

  it('rejects non-finite weights, bad counts, stale rounds and foreign state', () => {
    const nan = current.map((t, k) => (k === 2 ? { ...t, data: Float32Array.from([1, Number.NaN, 0]) } : t));
    fails({ mean: nan }, 'INVALID_TENSOR', 'mean.dense1.weight');
    fails({ current: nan, mean: nan }, 'INVALID_TENSOR', 'current.dense1.weight');
    fails({ totalExamples: 0 }, 'INVALID_ARGUMENT', 'totalExamples');
    fails({ totalExamples: Number.POSITIVE_INFINITY }, 'INVALID_ARGUMENT', 'totalExamples');
    fails({ contributions: 0 }, 'INVALID_ARGUMENT', 'contributions');
    fails({ round: 0 }, 'INVALID_ARGUMENT', 'round');
    fails({ state: { ...state, round: 1 } }, 'INVALID_ARGUMENT', 'round');
    fails({ state: { ...state, scalars: {} } }, 'INVALID_ARGUMENT', 'state.scalars.steps');
    fails(
      { state: { ...state, scalars: { steps: 0, x: Number.NaN } } },
      'INVALID_ARGUMENT',
      'state.scalars.x',
    );
    const avgm = createStrategy(parseStrategyConfig({ name: 'fedavgm' }));
    fails({ state: avgm.initializeState(current) }, 'INVALID_TENSOR', 'state.tensors');
  });

  it('rejects a step that overflows float32', () => {
    const big = createStrategy(
      parseStrategyConfig({ name: 'fedavgm', serverLearningRate: 1e6, serverMomentum: 0 }),
    );
    const x = [{ name: 'w', shape: [1], data: Float32Array.from([0]) }];
    const m = [{ name: 'w', shape: [1], data: Float32Array.from([3e33]) }];
    assert.throws(
      () =>
        big.aggregateTrain({
          round: 1,
          current: x,
          mean: m,
          totalExamples: 1,
          contributions: 1,
          state: big.initializeState(x),
        }),
      (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_TENSOR' && /overflows/.test(e.message),
    );
  });
});
