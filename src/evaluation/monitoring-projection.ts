/**
 * A noised monitoring sum made consistent again. Differential-privacy noise on a secure sum leaves
 * counts that may be negative, fractional, and whose histograms no longer add up to the row count;
 * drift metrics need non-negative integer histograms of one total. This post-processing (which spends
 * no privacy) rounds the row count (at least 1), then gives each histogram (each feature's bins, the
 * score bins, the predicted classes) that total in proportion to its clamped counts by the
 * largest-remainder rule (an all-zero histogram becomes uniform), and caps the confusion matrix and the
 * latency counts at the row count. Pure.
 */
import {
  type MonitoringLayout,
  type MonitoringSegmentName,
  checkMonitoringSums,
  monitoringSegment,
} from './monitoring-layout.ts';

/** Non-negative integers proportional to `values` (clamped at 0) summing to `total`. */
function apportion(values: ArrayLike<number>, total: number): number[] {
  const n = values.length;
  const clamped = Array.from({ length: n }, (_, i) =>
    Math.max(0, Number.isFinite(values[i]!) ? values[i]! : 0),
  );
  let sum = clamped.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) {
    clamped.fill(1);
    sum = n;
  }
  const exact = clamped.map((v) => (v / sum) * total);
  const out = exact.map(Math.floor);
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = exact
    .map((v, i) => [v - Math.floor(v), i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; left > 0; k = (k + 1) % n, left--) out[order[k]![1]]! += 1;
  return out;
}

/** Rounded, clamped counts, scaled down to at most `cap` in total. */
function capped(values: ArrayLike<number>, cap: number): number[] {
  const rounded = Array.from(values, (v) => Math.max(0, Math.round(Number.isFinite(v) ? v : 0)));
  const sum = rounded.reduce((a, b) => a + b, 0);
  return sum <= cap ? rounded : apportion(rounded, cap);
}

/** A consistent monitoring vector (checkMonitoringSums passes) from a noised one of the same layout. */
export function projectMonitoringSums(layout: MonitoringLayout, noised: ArrayLike<number>): Float64Array {
  const out = new Float64Array(layout.length);
  const rows = Math.max(1, Math.round(Number.isFinite(noised[0]!) ? noised[0]! : 1));
  out[0] = rows;
  const copy = (name: MonitoringSegmentName, from: number, values: number[]) =>
    out.set(values, monitoringSegment(layout, name).offset + from);
  const slice = (name: MonitoringSegmentName, from = 0, length?: number) => {
    const s = monitoringSegment(layout, name);
    return Array.from({ length: length ?? s.length }, (_, i) => noised[s.offset + from + i]!);
  };
  const per = layout.spec.featureBins + 2;
  for (let j = 0; j < layout.spec.numFeatures; j++)
    copy('features', j * per, apportion(slice('features', j * per, per), rows));
  copy('score', 0, apportion(slice('score'), rows));
  copy('predictedClass', 0, apportion(slice('predictedClass'), rows));
  copy('confusion', 0, capped(slice('confusion'), rows));
  copy('latency', 0, capped(slice('latency'), rows));
  checkMonitoringSums(layout, out, 'projected');
  return out;
}
