/**
 * Privacy–utility study (issue 4, part 5): test accuracy of the demo's federation (UCI breast cancer,
 * 20 % common test set, the rest over 3 institutions by Dirichlet label skew α = 0.5, federated
 * standardisation, logistic regression, 20 rounds of FedAvg, the demo's train options) against ε, run
 * in-process (no processes, no TLS, no SecAgg quantisation: a study of the learning only).
 *   - sample-level DP-SGD (Abadi et al. CCS 2016) in every institution, ε per institution for the whole
 *     run at δ = 1e-5, z calibrated by the RDP accountant as the demo does (calibrateDemoNoise);
 *   - client-level DP-FedAvg (McMahan, Ramage, Talwar, Zhang, ICLR 2018): each institution's update
 *     clipped to L2 norm C, Gaussian noise N(0, (z·C)²) on the sum, fixed denominator n = 3; z by the
 *     RDP accountant with q = 1 over the rounds;
 *   - references: no DP, clipping without noise, and each institution alone (as demo.ts computes it).
 * 3 seeds per setting (the seed moves the initial weights, the batches and the noise; the data split
 * stays the demo's). Noise: privacy/secure-gaussian.ts from createSeededRandomBits (reproducible; the
 * real participant uses node:crypto). Writes bench/results/privacy-utility.{svg,json}; one JSON
 * document on stdout, progress on stderr.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tensor, Weights } from '../src/core/tensor.ts';
import {
  type StrategyConfig,
  createStrategy,
  createWeightedSum,
  parseStrategyConfig,
} from '../src/aggregation/index.ts';
import { createSeededRng } from '../src/crypto/seeded-rng.ts';
import {
  type LabeledData,
  applyStandardization,
  computeFeatureStats,
  deriveStandardization,
  loadTable,
  mergeFeatureStats,
  parseDataSchema,
  partitionByLabelDirichlet,
  selectRows,
  splitTrainTest,
} from '../src/data/index.ts';
import {
  type ModelSpec,
  type TrainOptions,
  builtinTrainer,
  computeDpStepsPerEpoch,
  flattenWeights,
  parseModelSpec,
  parseTrainOptions,
  trainLocally,
  unflattenWeights,
} from '../src/models/index.ts';
import {
  applySecureGaussianNoise,
  calibrateNoiseMultiplier,
  createSeededRandomBits,
  sampleSecureGaussian,
} from '../src/privacy/index.ts';
import {
  DATASET_DIR,
  DEMO_DP,
  DEMO_INSTITUTIONS,
  calibrateDemoNoise,
  demoRunConfig,
} from '../src/simulation/demo.ts';
import { renderPrivacyUtilitySvg } from './privacy-plot.ts';

/** The demo's default seed (runDemo): fixes the test split and the partition for every setting. */
const DATA_SEED = 'entente-demo-v1';
const RUN_SEEDS = [DATA_SEED, `${DATA_SEED}/seed-1`, `${DATA_SEED}/seed-2`];
const ROUNDS = 20;
const EPSILONS = [0.5, 1, 2, 4, 8];
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

interface Institution {
  readonly id: string;
  /** The participant's own 80 % (its 20 % holdout is for federated evaluation), raw features. */
  readonly train: LabeledData;
}
interface Study {
  readonly spec: ModelSpec;
  readonly options: TrainOptions;
  readonly strategy: StrategyConfig;
  readonly institutions: readonly (Institution & { readonly trainStd: LabeledData })[];
  readonly test: LabeledData;
  readonly testStd: LabeledData;
  readonly totalExamples: number;
}
type Privacy =
  | { kind: 'none' }
  | { kind: 'sample'; noiseMultiplier: number }
  | { kind: 'client'; noiseMultiplier: number; clipNorm: number };
interface RunResult {
  accuracy: number;
  /** ‖trained − global‖ of every institution in every round (before clipping). */
  updateNorms: number[];
  /** ‖global(r) − global(r−1)‖ per round: the aggregate step, noise included. */
  stepNorms: number[];
  clippedFraction: number;
  /** The final global model, flat. */
  params: Float32Array;
}

const round4 = (x: number): number => Math.round(x * 1e4) / 1e4;
const progress = (msg: string): void => void process.stderr.write(`bench privacy-utility: ${msg}\n`);

/** mean, min, max, sample std (n − 1) and the values themselves, rounded to 4 digits. */
function summarize(values: readonly number[]): Record<string, number | number[]> {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1) : 0;
  return {
    mean: round4(mean),
    min: round4(Math.min(...values)),
    max: round4(Math.max(...values)),
    std: round4(Math.sqrt(variance)),
    perSeed: values.map(round4),
  };
}
const median = (values: readonly number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const l2 = (v: Float64Array): number => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
/** Cosine of the angle between two models: a linear classifier's decisions depend only on its direction. */
function computeCosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let k = 0; k < a.length; k++) {
    ab += a[k]! * b[k]!;
    aa += a[k]! * a[k]!;
    bb += b[k]! * b[k]!;
  }
  return ab / Math.sqrt(aa * bb);
}

/** The demo's data, split and federated standardisation, exactly as runDemo and the participants do. */
function loadStudy(): Study {
  const schema = parseDataSchema(JSON.parse(readFileSync(join(DATASET_DIR, 'schema.json'), 'utf8')));
  const all = loadTable(readFileSync(join(DATASET_DIR, 'breast-cancer.csv'), 'utf8'), schema);
  const outer = splitTrainTest(all, 0.2, createSeededRng(`${DATA_SEED}/test-split`));
  const parts = partitionByLabelDirichlet(
    outer.train.y,
    2,
    DEMO_INSTITUTIONS.length,
    0.5,
    createSeededRng(`${DATA_SEED}/partition`),
    { minPerPart: 40 },
  );
  const institutions = DEMO_INSTITUTIONS.map((id, k) => {
    const local = selectRows(
      all,
      parts[k]!.map((i) => outer.trainIndices[i]!),
    );
    // participant-agent.ts: a 20 % holdout seeded by the institution's id; statistics of the rest.
    return { id, train: splitTrainTest(local, 0.2, createSeededRng(`${id}/holdout`)).train };
  });
  const stats = institutions.map((i) => computeFeatureStats(i.train)).reduce(mergeFeatureStats);
  const std = deriveStandardization(stats);
  const cfg = demoRunConfig(ROUNDS, DATA_SEED) as { model: unknown; train: unknown; strategy: unknown };
  return {
    spec: parseModelSpec(cfg.model),
    options: parseTrainOptions(cfg.train),
    strategy: parseStrategyConfig(cfg.strategy),
    institutions: institutions.map((i) => ({ ...i, trainStd: applyStandardization(i.train, std) })),
    test: outer.test,
    testStd: applyStandardization(outer.test, std),
    totalExamples: institutions.reduce((a, i) => a + i.train.count, 0),
  };
}

/** One federated run of ROUNDS rounds under `privacy`, seeded by `seed`; accuracy on the common test set. */
function runFederation(study: Study, seed: string, privacy: Privacy): RunResult {
  const { spec, institutions } = study;
  const strategy = createStrategy(study.strategy);
  let global: Tensor[] = builtinTrainer.initializeWeights(spec, createSeededRng(`${seed}/init`));
  let state = strategy.initializeState(global);
  const options: TrainOptions =
    privacy.kind === 'sample'
      ? {
          ...study.options,
          dp: {
            clipNorm: DEMO_DP.clipNorm,
            noiseMultiplier: privacy.noiseMultiplier,
            samplingRate: DEMO_DP.samplingRate,
          },
        }
      : study.options;
  const noiseFor = new Map(
    institutions.map((inst) => {
      const bits = createSeededRandomBits(`${seed}/dp-sgd-noise/${inst.id}`);
      return [
        inst.id,
        (out: Float64Array | Float32Array, std: number) =>
          out.set(sampleSecureGaussian(std, bits, out.length)),
      ];
    }),
  );
  const serverBits = createSeededRandomBits(`${seed}/dp-fedavg-noise`);
  const updateNorms: number[] = [];
  const stepNorms: number[] = [];
  let clipped = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const base = Float64Array.from(flattenWeights(spec, global));
    const sum = createWeightedSum(global.map((t) => ({ name: t.name, shape: [...t.shape] })));
    const clippedSum = new Float64Array(base.length);
    for (const inst of institutions) {
      const out = trainLocally(
        spec,
        global,
        inst.trainStd,
        options,
        createSeededRng(`${seed}/train/${round}/${inst.id}`),
        {
          noise: noiseFor.get(inst.id)!,
          // A seeded sampling source: this benchmark is an in-process simulation meant to be reproducible.
          sampling: createSeededRng(`${seed}/dp-sgd-sampling/${round}/${inst.id}`),
        },
      );
      const delta = Float64Array.from(flattenWeights(spec, out.weights), (w, k) => w - base[k]!);
      const norm = l2(delta);
      updateNorms.push(norm);
      sum.addWeights(out.weights, out.numExamples);
      if (privacy.kind === 'client') {
        const factor = Math.min(1, privacy.clipNorm / norm);
        if (factor < 1) clipped++;
        for (let k = 0; k < delta.length; k++) clippedSum[k]! += delta[k]! * factor;
      }
    }
    let mean: Weights = sum.computeMean();
    if (privacy.kind === 'client') {
      const sigma = privacy.noiseMultiplier * privacy.clipNorm;
      const noisy = sigma > 0 ? applySecureGaussianNoise(clippedSum, sigma, serverBits) : clippedSum;
      const next = Float32Array.from(base, (w, k) => w + noisy[k]! / institutions.length);
      mean = unflattenWeights(spec, next);
    }
    const step = strategy.aggregateTrain({
      round,
      current: global,
      mean,
      totalExamples: study.totalExamples,
      contributions: institutions.length,
      state,
    });
    stepNorms.push(l2(Float64Array.from(flattenWeights(spec, step.weights), (w, k) => w - base[k]!)));
    global = step.weights;
    state = step.state;
  }
  return {
    accuracy: builtinTrainer.evaluate(spec, global, study.testStd).accuracy,
    params: flattenWeights(spec, global),
    updateNorms,
    stepNorms,
    clippedFraction: clipped / updateNorms.length,
  };
}

/** Each institution alone, as demo.ts computes it: own statistics, epochs × rounds, its own seed. */
function runLocalOnly(study: Study, seed: string): Record<string, number> {
  const result: Record<string, number> = {};
  for (const inst of study.institutions) {
    const std = deriveStandardization(computeFeatureStats(inst.train));
    const init = builtinTrainer.initializeWeights(study.spec, createSeededRng(`${seed}/init`));
    const { epochs, batchSize, learningRate, optimizer } = study.options;
    const trained = builtinTrainer.train(
      study.spec,
      init,
      applyStandardization(inst.train, std),
      { epochs: epochs * ROUNDS, batchSize, learningRate, optimizer },
      createSeededRng(`${seed}/local/${inst.id}`),
    );
    result[inst.id] = builtinTrainer.evaluate(
      study.spec,
      trained.weights,
      applyStandardization(study.test, std),
    ).accuracy;
  }
  return result;
}

export async function benchPrivacyUtility(args: string[]): Promise<void> {
  const started = performance.now();
  const timing: Record<string, number> = {};
  const lap = (name: string, t0: number): void => {
    timing[name] = Math.round(performance.now() - t0);
  };
  const study = loadStudy();
  const dim = flattenWeights(
    study.spec,
    builtinTrainer.initializeWeights(study.spec, createSeededRng('x')),
  ).length;
  const stepsPerInstitution = ROUNDS * study.options.epochs * computeDpStepsPerEpoch(DEMO_DP.samplingRate);

  let t0 = performance.now();
  const sampleZ = EPSILONS.map((e) => calibrateDemoNoise(ROUNDS, e));
  const clientZ = EPSILONS.map((e) =>
    calibrateNoiseMultiplier({
      accountant: 'rdp',
      targetEpsilon: e,
      delta: DEMO_DP.delta,
      samplingRate: 1,
      steps: ROUNDS,
    }),
  );
  lap('calibrationMs', t0);

  t0 = performance.now();
  progress(`no DP, ${RUN_SEEDS.length} seeds`);
  const noDp = RUN_SEEDS.map((s) => runFederation(study, s, { kind: 'none' }));
  const localOnly = RUN_SEEDS.map((s) => runLocalOnly(study, s));
  lap('noDpAndLocalMs', t0);
  // C: median of every institution's update norm over all rounds and seeds of the no-DP runs.
  const allNorms = noDp.flatMap((r) => r.updateNorms);
  const clipNorm = round4(median(allNorms));

  t0 = performance.now();
  const sampleLevel = EPSILONS.map((epsilon, i) => {
    progress(`sample-level DP-SGD ε = ${epsilon} (z = ${sampleZ[i]!.toFixed(4)})`);
    const runs = RUN_SEEDS.map((s) =>
      runFederation(study, s, { kind: 'sample', noiseMultiplier: sampleZ[i]! }),
    );
    return {
      epsilon,
      noiseMultiplier: sampleZ[i]!,
      accuracy: summarize(runs.map((r) => r.accuracy)),
      cosineToNoDp: summarize(runs.map((r, k) => computeCosine(r.params, noDp[k]!.params))),
    };
  });
  lap('sampleLevelMs', t0);

  t0 = performance.now();
  const client = (z: number) =>
    RUN_SEEDS.map((s) => runFederation(study, s, { kind: 'client', noiseMultiplier: z, clipNorm }));
  progress(`client-level clipping only (C = ${clipNorm}, z = 0)`);
  const clipOnly = client(0);
  const clientLevel = EPSILONS.map((epsilon, i) => {
    const z = clientZ[i]!;
    progress(`client-level DP-FedAvg ε = ${epsilon} (z = ${z.toFixed(4)}, C = ${clipNorm})`);
    const runs = client(z);
    const noiseStdOnMean = (z * clipNorm) / study.institutions.length;
    return {
      epsilon,
      noiseMultiplier: z,
      accuracy: summarize(runs.map((r) => r.accuracy)),
      cosineToNoDp: summarize(runs.map((r, k) => computeCosine(r.params, noDp[k]!.params))),
      noiseStdPerCoordinateOnMean: round4(noiseStdOnMean),
      expectedNoiseNormOnMean: round4(noiseStdOnMean * Math.sqrt(dim)),
      // ‖mean of clipped updates‖ ≤ C while E‖noise/3‖ ≈ z·C·√d/3: at most 3/(z·√d), whatever C is.
      clippedFraction: round4(runs.reduce((a, r) => a + r.clippedFraction, 0) / runs.length),
      signalToNoiseBoundPerRound: round4(study.institutions.length / (z * Math.sqrt(dim))),
      medianGlobalStepNorm: round4(median(runs.flatMap((r) => r.stepNorms))),
    };
  });
  lap('clientLevelMs', t0);

  const perInstitution = Object.fromEntries(
    study.institutions.map((inst) => [inst.id, summarize(localOnly.map((r) => r[inst.id]!))]),
  );
  const best = Object.entries(perInstitution).sort(
    (a, b) => (b[1].mean as number) - (a[1].mean as number),
  )[0]!;
  const noDpSummary = summarize(noDp.map((r) => r.accuracy));
  const doc = {
    bench: 'privacy-utility',
    setup: {
      data: 'UCI breast cancer (demo split: seed entente-demo-v1, 20 % common test set, Dirichlet α = 0.5, minPerPart 40)',
      testRows: study.test.count,
      /** Accuracy of always predicting the test set's majority class (a random direction scores ~0.5). */
      majorityClassAccuracy: round4(
        Math.max(...[0, 1].map((c) => study.test.y.filter((y) => y === c).length)) / study.test.count,
      ),
      trainRows: Object.fromEntries(study.institutions.map((i) => [i.id, i.train.count])),
      model: study.spec,
      parameters: dim,
      rounds: ROUNDS,
      train: study.options,
      seeds: RUN_SEEDS,
      delta: DEMO_DP.delta,
      noise:
        'privacy/secure-gaussian.ts (exact discrete Gaussian on a 2^-24·σ grid) from createSeededRandomBits',
      aggregation:
        'in-process; FedAvg example-weighted mean (no DP, DP-SGD); DP-FedAvg: Σ clipped Δ + noise, ÷ 3',
    },
    noDp: {
      accuracy: noDpSummary,
      medianUpdateNorm: clipNorm,
      medianGlobalStepNorm: round4(median(noDp.flatMap((r) => r.stepNorms))),
    },
    localOnly: { perInstitution, best: { institution: best[0], accuracy: best[1].mean } },
    sampleLevel: {
      mechanism: 'DP-SGD per institution: Poisson q, per-example clip, Gaussian noise z·C per step',
      samplingRate: DEMO_DP.samplingRate,
      clipNorm: DEMO_DP.clipNorm,
      stepsPerInstitution,
      results: sampleLevel,
    },
    clientLevel: {
      mechanism: 'DP-FedAvg: Δ_i clipped to C, N(0,(z·C)²) on Σ, fixed denominator 3 (unweighted), q = 1',
      clipNorm,
      clipNormChoice:
        'median L2 norm of the institutions\u2019 updates over all rounds and seeds of the no-DP runs',
      updateNormQuantiles: {
        min: round4(Math.min(...allNorms)),
        median: clipNorm,
        max: round4(Math.max(...allNorms)),
      },
      steps: ROUNDS,
      clipOnly: {
        accuracy: summarize(clipOnly.map((r) => r.accuracy)),
        clippedFraction: round4(clipOnly.reduce((a, r) => a + r.clippedFraction, 0) / clipOnly.length),
        cosineToNoDp: summarize(clipOnly.map((r, k) => computeCosine(r.params, noDp[k]!.params))),
      },
      results: clientLevel,
    },
    timing: { ...timing, totalMs: Math.round(performance.now() - started) },
  };

  mkdirSync(RESULTS_DIR, { recursive: true });
  const point = (epsilon: number, a: Record<string, number | number[]>) => ({
    x: epsilon,
    mean: a.mean as number,
    min: a.min as number,
    max: a.max as number,
  });
  const svg = renderPrivacyUtilitySvg({
    title: 'Privacy vs utility: 3 institutions, 20 rounds of FedAvg, logistic regression',
    subtitle: `UCI breast cancer; accuracy on the common test set (${study.test.count} rows); δ = 1e-5; ${RUN_SEEDS.length} seeds per point`,
    xLabel: 'ε (per institution, whole run; log scale)',
    yLabel: 'test accuracy',
    xTicks: EPSILONS,
    curves: [
      {
        label: 'sample-level DP-SGD',
        note: `q = ${DEMO_DP.samplingRate}, clip ${DEMO_DP.clipNorm} per example`,
        color: '#1f77b4',
        points: sampleLevel.map((r) => point(r.epsilon, r.accuracy)),
      },
      {
        label: 'client-level DP-FedAvg',
        note: `clip C = ${clipNorm} (median update norm)`,
        color: '#d62728',
        points: clientLevel.map((r) => point(r.epsilon, r.accuracy)),
      },
    ],
    lines: [
      { label: 'no DP (FedAvg)', color: '#2ca02c', y: noDpSummary.mean as number },
      { label: `best alone (${best[0]})`, color: '#7f7f7f', y: best[1].mean as number },
    ],
  });
  writeFileSync(join(RESULTS_DIR, 'privacy-utility.svg'), svg);
  writeFileSync(join(RESULTS_DIR, 'privacy-utility.json'), JSON.stringify(doc, null, 2) + '\n');
  progress(`wrote ${join(RESULTS_DIR, 'privacy-utility.svg')} and privacy-utility.json`);
  console.log(args.includes('--json') ? JSON.stringify(doc) : JSON.stringify(doc, null, 2));
}
