/**
 * The vector of additive sums a site records about a deployed model while it serves it: what its
 * inputs look like against the training reference, what it predicts, how it does where labels arrive,
 * and how long scoring takes. Every coordinate is a count, so the sites' vectors add coordinate by
 * coordinate (in the clear or as a secure sum, `declareMonitoringSum`) and drift metrics computed from
 * the total are the metrics of the union of the sites' rows. No row value is kept, only bin counts.
 *
 * With d = numFeatures, K = numClasses, B = featureBins, S = scoreBins, L = MONITORING_LATENCY_BINS:
 *
 * | segment          | length     | each row adds                                                         |
 * |------------------|------------|-----------------------------------------------------------------------|
 * | `rows`           | 1          | 1                                                                     |
 * | `features`       | d·(B + 2)  | for each feature j, 1 at [j·(B+2) + bin of its z-score]               |
 * | `score`          | S          | 1 at the bin of p₁ (binary) or of the top-label probability max pₖ    |
 * | `predictedClass` | K          | 1 at the argmax class                                                 |
 * | `confusion`      | K·K        | rows with a label only: 1 at [label · K + predicted]                  |
 * | `latency`        | L          | one count per request (not per row), at the bin of its latency in ms  |
 *
 * Feature bins are fixed by the training reference, the run's standardization (mean, std): the
 * model's input z = (x − mean) / std is binned on B equal bins over [−Z, Z] (Z = 4 standard
 * deviations, the default B = 16 gives half-standard-deviation bins) plus a lower tail bin (z < −Z)
 * and an upper tail bin (z ≥ Z): bin 0 is the lower tail, bins 1…B the equal bins (each holds
 * [lower, upper)), bin B + 1 the upper tail. Bins in standard-deviation units need nothing but the
 * reference every site already has, so every site bins alike, and a shift or rescaling of a feature
 * moves mass between bins whatever its units.
 *
 * Score bins are scikit-learn's uniform rule (probability-bins.ts). Latency bins are log-spaced:
 * upper edges 2^(i−2) ms for i = 0 … L − 2 (0.25 ms, 0.5 ms, 1 ms, … 2^14 ms = 16.4 s), each bin
 * holding (previous edge, edge], and a last bin for anything slower. A request has at least one row,
 * so one count per request keeps every segment's per-row bound at 1.
 *
 * Per-row L2 bounds (the sensitivity a noised secure sum needs): √d for `features` (one count per
 * feature), 1 for every other segment (one coordinate each; latency: removing one row removes at most
 * one request).
 */
import { EntenteError } from '../core/errors.ts';
import type { SumSegment } from './evaluation-layout.ts';
import { binIndex, innerBinEdges } from './probability-bins.ts';

export const MONITORING_FORMAT = 'entente-monitoring/1';
/** The z-score range of the equal feature bins: [−Z, Z]. */
export const MONITORING_Z_RANGE = 4;
export const DEFAULT_FEATURE_BINS = 16;
export const DEFAULT_SCORE_BINS = 10;
/** Latency bins: 17 log-spaced upper edges 0.25 ms … 16384 ms, then one bin for slower requests. */
export const MONITORING_LATENCY_BINS = 18;
export const MAX_MONITORING_FEATURES = 10_000;
export const MAX_MONITORING_CLASSES = 1_000;
export const MAX_MONITORING_BINS = 1_000;

/** What a monitoring vector measures: the model's shape and the bin counts. */
export interface MonitoringSpec {
  readonly numFeatures: number;
  readonly numClasses: number;
  /** Equal bins over [−4, 4] standard deviations (two tail bins are added). */
  readonly featureBins: number;
  readonly scoreBins: number;
}

export interface MonitoringLayout {
  readonly spec: MonitoringSpec;
  readonly length: number;
  readonly segments: readonly SumSegment[];
}

export const monitoringSegmentNames = [
  'rows',
  'features',
  'score',
  'predictedClass',
  'confusion',
  'latency',
] as const;
export type MonitoringSegmentName = (typeof monitoringSegmentNames)[number];

function checkInteger(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw new EntenteError('INVALID_CONFIG', `${field}: must be an integer in [${min}, ${max}]`, { field });
  return value;
}

/** A checked copy of a monitoring spec (INVALID_CONFIG naming the field). */
export function parseMonitoringSpec(input: unknown): MonitoringSpec {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new EntenteError('INVALID_CONFIG', 'spec: must be an object', { field: 'spec' });
  const o = input as Record<string, unknown>;
  for (const key of Object.keys(o))
    if (!['numFeatures', 'numClasses', 'featureBins', 'scoreBins'].includes(key))
      throw new EntenteError('INVALID_CONFIG', `spec: unknown field`, { field: 'spec' });
  return Object.freeze({
    numFeatures: checkInteger(o.numFeatures, 'spec.numFeatures', 1, MAX_MONITORING_FEATURES),
    numClasses: checkInteger(o.numClasses, 'spec.numClasses', 2, MAX_MONITORING_CLASSES),
    featureBins: checkInteger(
      o.featureBins ?? DEFAULT_FEATURE_BINS,
      'spec.featureBins',
      1,
      MAX_MONITORING_BINS,
    ),
    scoreBins: checkInteger(o.scoreBins ?? DEFAULT_SCORE_BINS, 'spec.scoreBins', 1, MAX_MONITORING_BINS),
  });
}

/** The layout of a spec's monitoring vector (every segment a count). Pure. */
export function createMonitoringLayout(input: MonitoringSpec): MonitoringLayout {
  const spec = parseMonitoringSpec(input);
  const segments: SumSegment[] = [];
  let offset = 0;
  const add = (name: MonitoringSegmentName, length: number, maxRowL2 = 1): void => {
    segments.push(Object.freeze({ name, offset, length, kind: 'count', maxPerRow: 1, maxRowL2 }));
    offset += length;
  };
  const k = spec.numClasses;
  add('rows', 1);
  add('features', spec.numFeatures * (spec.featureBins + 2), Math.sqrt(spec.numFeatures));
  add('score', spec.scoreBins);
  add('predictedClass', k);
  add('confusion', k * k);
  add('latency', MONITORING_LATENCY_BINS);
  return Object.freeze({ spec, length: offset, segments: Object.freeze(segments) });
}

/** The segment called `name`. */
export function monitoringSegment(layout: MonitoringLayout, name: MonitoringSegmentName): SumSegment {
  return layout.segments.find((s) => s.name === name)!;
}

/** The coordinates of segment `name` of `sums` (a view). */
export function monitoringSlice(
  layout: MonitoringLayout,
  sums: Float64Array,
  name: MonitoringSegmentName,
): Float64Array {
  const s = monitoringSegment(layout, name);
  return sums.subarray(s.offset, s.offset + s.length);
}

/** Bin of a z-score among 0 (z < −4), 1 … B (equal bins over [−4, 4)), B + 1 (z ≥ 4). */
export function featureBinIndex(z: number, bins: number): number {
  if (!(z >= -MONITORING_Z_RANGE)) return 0;
  if (z >= MONITORING_Z_RANGE) return bins + 1;
  const b = Math.floor(((z + MONITORING_Z_RANGE) / (2 * MONITORING_Z_RANGE)) * bins);
  return 1 + Math.min(bins - 1, Math.max(0, b));
}

/** The z-score edges of the feature bins: B + 1 values from −4 to 4 (tails below the first, above the last). */
export function featureBinEdges(bins: number): Float64Array {
  const edges = new Float64Array(bins + 1);
  for (let i = 0; i <= bins; i++) edges[i] = -MONITORING_Z_RANGE + (2 * MONITORING_Z_RANGE * i) / bins;
  return edges;
}

/** Upper edges of the latency bins in ms: 0.25, 0.5, … 16384, then Infinity. */
export function latencyBinUpperEdges(): Float64Array {
  const edges = new Float64Array(MONITORING_LATENCY_BINS);
  for (let i = 0; i < MONITORING_LATENCY_BINS - 1; i++) edges[i] = 2 ** (i - 2);
  edges[MONITORING_LATENCY_BINS - 1] = Number.POSITIVE_INFINITY;
  return edges;
}

/** Bin of a latency in ms: the first bin whose upper edge is ≥ ms (non-finite or negative: refused). */
export function latencyBinIndex(ms: number): number {
  if (!(ms >= 0) || !Number.isFinite(ms))
    throw new EntenteError('INVALID_ARGUMENT', 'latencyMs: must be a finite number >= 0', {
      field: 'latencyMs',
    });
  const edges = latencyBinUpperEdges();
  for (let i = 0; i < edges.length; i++) if (ms <= edges[i]!) return i;
  return edges.length - 1;
}

/** A zero vector for the layout. */
export function createMonitoringSums(layout: MonitoringLayout): Float64Array {
  return new Float64Array(layout.length);
}

/**
 * Adds one scored batch to `sums`: `z` the model's standardized inputs (row-major, count · d),
 * `probabilities` count · K class probabilities, `labels` the known labels (−1 for a row without one)
 * or undefined, `latencyMs` the request's latency (one count) or undefined. Throws INVALID_ARGUMENT
 * naming the field when a length does not fit or a value is out of range.
 */
export function accumulateMonitoring(
  layout: MonitoringLayout,
  sums: Float64Array,
  batch: {
    readonly count: number;
    readonly z: ArrayLike<number>;
    readonly probabilities: ArrayLike<number>;
    readonly labels?: ArrayLike<number> | undefined;
    readonly latencyMs?: number | undefined;
  },
): void {
  const { numFeatures: d, numClasses: k, featureBins: fb, scoreBins } = layout.spec;
  const n = batch.count;
  const bad = (field: string, message: string) =>
    new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
  if (sums.length !== layout.length) throw bad('sums', `must have ${layout.length} coordinates`);
  if (!Number.isInteger(n) || n < 0) throw bad('count', 'must be an integer >= 0');
  if (batch.z.length !== n * d) throw bad('z', `must have count · ${d} values`);
  if (batch.probabilities.length !== n * k) throw bad('probabilities', `must have count · ${k} values`);
  if (batch.labels !== undefined && batch.labels.length !== n) throw bad('labels', 'must have count values');
  const latencyBin = batch.latencyMs === undefined ? undefined : latencyBinIndex(batch.latencyMs);
  const features = monitoringSegment(layout, 'features').offset;
  const score = monitoringSegment(layout, 'score').offset;
  const predicted = monitoringSegment(layout, 'predictedClass').offset;
  const confusion = monitoringSegment(layout, 'confusion').offset;
  const edges = innerBinEdges(scoreBins);
  // Checked first, so a bad batch changes nothing.
  for (let i = 0; i < n * d; i++) if (!Number.isFinite(batch.z[i]!)) throw bad('z', 'must be finite');
  for (let i = 0; i < n * k; i++) {
    const p = batch.probabilities[i]!;
    if (!(p >= 0 && p <= 1)) throw bad('probabilities', 'must be in [0, 1]');
  }
  if (batch.labels !== undefined)
    for (let i = 0; i < n; i++) {
      const y = batch.labels[i]!;
      if (!(Number.isInteger(y) && y >= -1 && y < k))
        throw bad('labels', `must be −1 or a class in [0, ${k})`);
    }
  sums[0]! += n;
  for (let row = 0; row < n; row++) {
    for (let j = 0; j < d; j++)
      sums[features + j * (fb + 2) + featureBinIndex(batch.z[row * d + j]!, fb)]! += 1;
    let top = 0;
    for (let c = 1; c < k; c++)
      if (batch.probabilities[row * k + c]! > batch.probabilities[row * k + top]!) top = c;
    const s = k === 2 ? batch.probabilities[row * k + 1]! : batch.probabilities[row * k + top]!;
    sums[score + binIndex(edges, s)]! += 1;
    sums[predicted + top]! += 1;
    const y = batch.labels?.[row] ?? -1;
    if (y >= 0) sums[confusion + y * k + top]! += 1;
  }
  if (latencyBin !== undefined) sums[monitoringSegment(layout, 'latency').offset + latencyBin]! += 1;
}

/**
 * Checks a recorded or summed monitoring vector: the layout's length, every coordinate a finite
 * integer ≥ 0, each feature's bins and the score, predicted-class bins summing to `rows`, the
 * confusion matrix at most `rows`. INVALID_DATA naming the segment otherwise.
 */
export function checkMonitoringSums(layout: MonitoringLayout, sums: ArrayLike<number>, field = 'sums'): void {
  const bad = (name: string, message: string) =>
    new EntenteError('INVALID_DATA', `${field}.${name}: ${message}`, { field: `${field}.${name}` });
  if (sums.length !== layout.length)
    throw new EntenteError('INVALID_DATA', `${field}: must have ${layout.length} coordinates`, { field });
  for (const s of layout.segments)
    for (let i = s.offset; i < s.offset + s.length; i++) {
      const v = sums[i]!;
      if (!(Number.isSafeInteger(v) && v >= 0)) throw bad(s.name, 'every count must be an integer >= 0');
    }
  const rows = sums[0]!;
  const total = (name: MonitoringSegmentName, from = 0, length?: number) => {
    const s = monitoringSegment(layout, name);
    let t = 0;
    for (let i = from; i < from + (length ?? s.length); i++) t += sums[s.offset + i]!;
    return t;
  };
  const per = layout.spec.featureBins + 2;
  for (let j = 0; j < layout.spec.numFeatures; j++)
    if (total('features', j * per, per) !== rows)
      throw bad('features', `feature ${j}'s bins must sum to rows`);
  if (total('score') !== rows) throw bad('score', 'bins must sum to rows');
  if (total('predictedClass') !== rows) throw bad('predictedClass', 'counts must sum to rows');
  if (total('confusion') > rows) throw bad('confusion', 'must hold at most rows');
  if (total('latency') > rows) throw bad('latency', 'must hold at most rows (one count per request)');
}
