/**
 * Sample-level DP-SGD for the built-in trainers (Abadi et al., "Deep Learning with Differential
 * Privacy", CCS 2016, Algorithm 1), with Opacus semantics (Yousefpour et al., "Opacus", 2021):
 *   - Poisson sampling: each step includes each example independently with probability q
 *     (`samplingRate`); an epoch is round(1/q) steps; an empty batch is a valid step (noise only);
 *   - per-example gradients, each clipped to L2 norm ≤ C: g · min(1, C/‖g‖), then summed;
 *   - Gaussian noise N(0, (z·C)²) on every coordinate of the sum (z = `noiseMultiplier`), drawn from
 *     an injected `DpNoiseSource` (never Math.random, never a silent insecure default);
 *   - a fixed denominator: the noisy sum is divided by the expected batch size q·count, not the
 *     realised one (whose value would itself leak membership).
 * Each step is then one application of the Poisson-subsampled Gaussian mechanism with sampling rate q
 * and noise multiplier z; the caller records (mechanism, steps, q, z) in its ledger. L2 decay and the
 * FedProx term are added afterwards by the trainer: they use no data, so they do not affect privacy;
 * nor does the optimizer step (post-processing). What is NOT covered: the count of examples and the
 * reported training loss (TrainResult.numExamples, meanLoss) are computed from the raw data.
 */
import { EntenteError } from '../core/errors.ts';
import type { Rng } from '../core/rng.ts';
import { computeExampleGradient, type ModelWorkspace } from './dense-network.ts';
import type { LabeledData } from './labeled-data.ts';

/**
 * Writes independent N(0, std²) samples into every element of `out` (overwriting it). Must be a
 * secure sampler in production (its output is what protects the data); std ≥ 0 (0 writes zeros).
 */
export type DpNoiseSource = (out: Float64Array | Float32Array, std: number) => void;

/** DP-SGD parameters of a training call (validated by parseTrainOptions as `options.dp`). */
export interface DpSgdOptions {
  /** C: per-example L2 clipping bound, finite and > 0. */
  readonly clipNorm: number;
  /** z: noise standard deviation as a multiple of C, finite and ≥ 0. */
  readonly noiseMultiplier: number;
  /** q: Poisson inclusion probability of each example per step, in [MIN_DP_SAMPLING_RATE, 1]. */
  readonly samplingRate: number;
}

/** What a DP-SGD training call did, as its privacy event: a Poisson-subsampled Gaussian, `steps` times. */
export interface DpSgdReport {
  readonly steps: number;
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly clipNorm: number;
}

/** Smallest sampling rate accepted: bounds an epoch to 10^6 steps (a hostile config cannot stall training). */
export const MIN_DP_SAMPLING_RATE = 1e-6;

/** Steps in one DP-SGD epoch: round(1 / samplingRate) (Opacus), at least 1. */
export function computeDpStepsPerEpoch(samplingRate: number): number {
  if (!(samplingRate >= MIN_DP_SAMPLING_RATE && samplingRate <= 1)) {
    throw invalid('samplingRate', `must be in [${MIN_DP_SAMPLING_RATE}, 1]`);
  }
  return Math.max(1, Math.round(1 / samplingRate));
}

/**
 * Scales `gradient` in place to L2 norm ≤ clipNorm (g · min(1, C/‖g‖); unchanged when already
 * within) and returns its norm before clipping. Throws INVALID_ARGUMENT for clipNorm not finite > 0.
 */
export function clipGradientNorm(gradient: Float32Array | Float64Array, clipNorm: number): number {
  if (!(clipNorm > 0 && Number.isFinite(clipNorm))) throw invalid('clipNorm', 'must be finite and > 0');
  let sq = 0;
  for (let k = 0; k < gradient.length; k++) sq += gradient[k]! * gradient[k]!;
  const norm = Math.sqrt(sq);
  if (norm > clipNorm) {
    // The rounding margin keeps the Float32 result within C even after rounding each coordinate.
    const factor = (clipNorm / norm) * (1 - 1e-7);
    for (let k = 0; k < gradient.length; k++) gradient[k] = gradient[k]! * factor;
  }
  return norm;
}

/**
 * Poisson sampling: writes into `rowsOut` (length ≥ count) the rows 0..count-1 each included
 * independently with probability `samplingRate` (in increasing order) and returns how many were.
 * Draws exactly `count` floats from `rng`.
 */
export function samplePoissonBatch(
  rng: Rng,
  count: number,
  samplingRate: number,
  rowsOut: Int32Array,
): number {
  if (!(samplingRate > 0 && samplingRate <= 1)) throw invalid('samplingRate', 'must be in (0, 1]');
  if (!Number.isSafeInteger(count) || count < 0 || rowsOut.length < count) {
    throw invalid('rowsOut', 'must hold at least count rows');
  }
  let size = 0;
  for (let row = 0; row < count; row++) if (rng.nextFloat64() < samplingRate) rowsOut[size++] = row;
  return size;
}

/** Scratch and parameters of one DP-SGD training call (buffers allocated once). */
export interface DpSgdState {
  readonly options: DpSgdOptions;
  readonly noise: DpNoiseSource;
  readonly stepsPerEpoch: number;
  readonly rows: Int32Array;
  readonly example: Float32Array;
  readonly sum: Float64Array;
  readonly noiseBuffer: Float64Array;
}

/**
 * Prepares DP-SGD over `count` examples. Throws INVALID_ARGUMENT 'dp noise source required' when
 * `noise` is missing (there is deliberately no default), or naming the dp field that is invalid.
 */
export function createDpSgdState(
  workspace: ModelWorkspace,
  count: number,
  options: DpSgdOptions,
  noise: DpNoiseSource | undefined,
): DpSgdState {
  if (typeof noise !== 'function') {
    throw new EntenteError('INVALID_ARGUMENT', 'noise: dp noise source required', { field: 'noise' });
  }
  if (!(options.clipNorm > 0 && Number.isFinite(options.clipNorm))) {
    throw invalid('clipNorm', 'must be finite and > 0');
  }
  if (!(options.noiseMultiplier >= 0 && Number.isFinite(options.noiseMultiplier))) {
    throw invalid('noiseMultiplier', 'must be finite and >= 0');
  }
  const n = workspace.parameterCount;
  return {
    options,
    noise,
    stepsPerEpoch: computeDpStepsPerEpoch(options.samplingRate),
    rows: new Int32Array(count),
    example: new Float32Array(n),
    sum: new Float64Array(n),
    noiseBuffer: new Float64Array(n),
  };
}

/** Outcome of one DP-SGD gradient: the realised batch and its summed (unclipped) data loss. */
export interface DpSgdBatch {
  readonly batchSize: number;
  readonly lossSum: number;
}

/**
 * One DP-SGD gradient at `params`: samples a Poisson batch from `rng`, sums the clipped per-example
 * gradients, adds N(0, (z·C)²) noise per coordinate and writes (sum + noise) / (q·count) into
 * `gradientOut` (overwritten; no regularisation term). Returns the batch size and loss sum (secret:
 * data-dependent, not privatised). Throws INVALID_ARGUMENT on a noise source that writes a non-finite value.
 */
export function computeDpSgdGradient(
  workspace: ModelWorkspace,
  state: DpSgdState,
  params: Float32Array,
  data: LabeledData,
  rng: Rng,
  gradientOut: Float32Array,
): DpSgdBatch {
  const { options, rows, example, sum, noiseBuffer } = state;
  const n = sum.length;
  if (gradientOut.length !== n) throw invalid('gradientOut', `expected ${n} elements`);
  const batchSize = samplePoissonBatch(rng, data.count, options.samplingRate, rows);
  sum.fill(0);
  let lossSum = 0;
  for (let b = 0; b < batchSize; b++) {
    lossSum += computeExampleGradient(workspace, params, data, rows[b]!, example);
    clipGradientNorm(example, options.clipNorm);
    for (let k = 0; k < n; k++) sum[k] = sum[k]! + example[k]!;
  }
  const std = options.noiseMultiplier * options.clipNorm;
  if (std > 0) {
    state.noise(noiseBuffer, std);
    // Snap the sum to the noise lattice first (g = 2^(⌊log2 σ⌋−24), as privacy/secure-gaussian.ts
    // draws on it): sum + noise is then an exact lattice point and its low-order bits carry nothing
    // about the sum (Mironov 2012's attack on floating-point noise).
    const grid = 2 ** (Math.floor(Math.log2(std)) - 24);
    for (let k = 0; k < n; k++) {
      const e = noiseBuffer[k]!;
      if (!Number.isFinite(e)) throw invalid('noise', 'the noise source wrote a non-finite value');
      sum[k] = Math.round(sum[k]! / grid) * grid + e;
    }
  }
  const scale = 1 / (options.samplingRate * data.count);
  for (let k = 0; k < n; k++) gradientOut[k] = sum[k]! * scale;
  return { batchSize, lossSum };
}

function invalid(field: string, message: string): EntenteError {
  return new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}
