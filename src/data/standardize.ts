/**
 * Feature standardization (z-scores) from additive statistics. Each participant computes per-column
 * count, sum and sum of squares of its own rows; these are plain sums, so statistics of several
 * institutions combine by addition (`mergeFeatureStats`, or a secure sum) without revealing rows.
 * `deriveStandardization` turns them into the population mean and standard deviation (divisor n, as
 * scikit-learn's StandardScaler), and `applyStandardization` maps x to (x - mean) / std.
 */
import { EntenteError } from '../core/errors.ts';
import type { LabeledData } from './labeled-data.ts';

export interface FeatureStats {
  /** Number of rows summed. */
  readonly count: number;
  /** Per-column sum of values. */
  readonly sum: Float64Array;
  /** Per-column sum of squared values. */
  readonly sumSquares: Float64Array;
}

export interface StandardizationParams {
  readonly mean: Float64Array;
  /** Always > 0: constant columns get std 1 (they map to 0). */
  readonly std: Float64Array;
}

/**
 * Below this relative size (std <= RELATIVE_STD_FLOOR · |mean|, or std == 0) a column is treated as
 * constant: the rounding error of sumSquares/n - mean² is about n·2^-53·mean², so a smaller std
 * cannot be told apart from a constant column stored in float32.
 */
export const RELATIVE_STD_FLOOR = 1e-6;

/** Count, sum and sum of squares (float64 accumulation) of every column of `data`. */
export function computeFeatureStats(data: Pick<LabeledData, 'x' | 'count' | 'dim'>): FeatureStats {
  const { x, count, dim } = data;
  if (x.length !== count * dim) {
    throw new EntenteError('INVALID_ARGUMENT', 'data.x must have count * dim entries', { field: 'data.x' });
  }
  const sum = new Float64Array(dim);
  const sumSquares = new Float64Array(dim);
  for (let i = 0; i < count; i++) {
    const offset = i * dim;
    for (let j = 0; j < dim; j++) {
      const v = x[offset + j]!;
      sum[j]! += v;
      sumSquares[j]! += v * v;
    }
  }
  return { count, sum, sumSquares };
}

/** Statistics of the union of two disjoint row sets (new arrays). Throws INVALID_ARGUMENT on a
 * dimension mismatch or a malformed statistic. */
export function mergeFeatureStats(a: FeatureStats, b: FeatureStats): FeatureStats {
  assertStats(a, 'a');
  assertStats(b, 'b');
  if (a.sum.length !== b.sum.length) {
    throw new EntenteError('INVALID_ARGUMENT', `b has ${b.sum.length} columns, a has ${a.sum.length}`, {
      field: 'b.sum',
    });
  }
  const dim = a.sum.length;
  const sum = new Float64Array(dim);
  const sumSquares = new Float64Array(dim);
  for (let j = 0; j < dim; j++) {
    sum[j] = a.sum[j]! + b.sum[j]!;
    sumSquares[j] = a.sumSquares[j]! + b.sumSquares[j]!;
  }
  return { count: a.count + b.count, sum, sumSquares };
}

/** Population mean and standard deviation per column. Throws INVALID_ARGUMENT when `stats.count` is
 * 0 or the statistics are malformed or non-finite. */
export function deriveStandardization(stats: FeatureStats): StandardizationParams {
  assertStats(stats, 'stats');
  if (stats.count === 0) {
    throw new EntenteError('INVALID_ARGUMENT', 'stats.count must be >= 1', { field: 'stats.count' });
  }
  const dim = stats.sum.length;
  const mean = new Float64Array(dim);
  const std = new Float64Array(dim);
  for (let j = 0; j < dim; j++) {
    const m = stats.sum[j]! / stats.count;
    const variance = Math.max(0, stats.sumSquares[j]! / stats.count - m * m);
    const s = Math.sqrt(variance);
    if (!Number.isFinite(m) || !Number.isFinite(s)) {
      throw new EntenteError('INVALID_ARGUMENT', `stats column ${j} is not finite`, { field: 'stats.sum' });
    }
    mean[j] = m;
    std[j] = s === 0 || s <= RELATIVE_STD_FLOOR * Math.abs(m) ? 1 : s;
  }
  return { mean, std };
}

/** A standardized copy of `data` (new x, y and featureNames arrays; groups and slices copied). Throws INVALID_ARGUMENT when
 * the parameters do not have `data.dim` columns or a std is not > 0. */
export function applyStandardization(data: LabeledData, params: StandardizationParams): LabeledData {
  const { dim, count } = data;
  if (params.mean.length !== dim || params.std.length !== dim) {
    throw new EntenteError(
      'INVALID_ARGUMENT',
      `params have ${params.mean.length}/${params.std.length} columns, data has ${dim}`,
      { field: 'params' },
    );
  }
  const inverse = new Float64Array(dim);
  for (let j = 0; j < dim; j++) {
    const s = params.std[j]!;
    if (!(s > 0 && Number.isFinite(s))) {
      throw new EntenteError('INVALID_ARGUMENT', `params.std[${j}] must be finite and > 0`, {
        field: 'params.std',
      });
    }
    inverse[j] = 1 / s;
  }
  const x = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) {
    const offset = i * dim;
    for (let j = 0; j < dim; j++) x[offset + j] = (data.x[offset + j]! - params.mean[j]!) * inverse[j]!;
  }
  return {
    x,
    y: new Int32Array(data.y),
    ...(data.target ? { target: new Float32Array(data.target) } : {}),
    count,
    dim,
    featureNames: [...data.featureNames],
    ...(data.groups ? { groups: new Int32Array(data.groups) } : {}),
    ...(data.slices ? { slices: data.slices.map((m) => new Uint8Array(m)) } : {}),
  };
}

function assertStats(stats: FeatureStats, field: string): void {
  if (!Number.isInteger(stats.count) || stats.count < 0) {
    throw new EntenteError('INVALID_ARGUMENT', `${field}.count must be an integer >= 0`, {
      field: `${field}.count`,
    });
  }
  if (stats.sum.length !== stats.sumSquares.length) {
    throw new EntenteError('INVALID_ARGUMENT', `${field}.sum and ${field}.sumSquares differ in length`, {
      field: `${field}.sumSquares`,
    });
  }
}
