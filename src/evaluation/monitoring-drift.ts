/**
 * Drift of a current monitoring vector against a reference one of the same layout (for instance the
 * sums of scoring the training or validation rows, against the sums of what a site served since):
 * per-feature PSI, Jensen-Shannon distance and binned KS, the same on the score histogram, PSI and JS
 * on the predicted classes, label shift (BBSE from the reference's confusion matrix when it has
 * labelled rows and can be inverted; the observed shift when the current sums have labels too), and
 * the current latency percentiles. Pure: post-processing of summed counts.
 */
import { EntenteError } from '../core/errors.ts';
import {
  type DriftFigures,
  type LabelShiftEstimate,
  type ObservedLabelShift,
  compareHistograms,
  estimateLabelShift,
  histogramPercentile,
  jensenShannonDistance,
  observedLabelShift,
  populationStabilityIndex,
} from './drift-metrics.ts';
import {
  type MonitoringLayout,
  checkMonitoringSums,
  latencyBinUpperEdges,
  monitoringSlice,
} from './monitoring-layout.ts';

export interface MonitoringDrift {
  readonly referenceRows: number;
  readonly currentRows: number;
  /** One entry per feature, in the layout's order; undefined figures when a side has no rows. */
  readonly features: readonly DriftFigures[];
  readonly score: DriftFigures;
  readonly predictedClass: { readonly psi: number; readonly jsDistance: number };
  /** BBSE; null without labelled reference rows or with a singular reference confusion matrix. */
  readonly labelShiftEstimate: LabelShiftEstimate | null;
  /** Observed label shift; null unless both sides have labelled rows. */
  readonly observedLabelShift: ObservedLabelShift | null;
  /** Upper bin edges in ms; null without a recorded request (Infinity: slower than the last edge). */
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number } | null;
}

const total = (v: ArrayLike<number>) => {
  let t = 0;
  for (let i = 0; i < v.length; i++) t += v[i]!;
  return t;
};

/** Drift of `current` against `reference` (both checked against the layout first: INVALID_DATA). */
export function compareMonitoring(
  layout: MonitoringLayout,
  reference: Float64Array,
  current: Float64Array,
): MonitoringDrift {
  checkMonitoringSums(layout, reference, 'reference');
  checkMonitoringSums(layout, current, 'current');
  if (reference[0] === 0 || current[0] === 0)
    throw new EntenteError('INVALID_DATA', 'rows: both sides need at least one scored row', {
      field: 'rows',
    });
  const per = layout.spec.featureBins + 2;
  const rf = monitoringSlice(layout, reference, 'features');
  const cf = monitoringSlice(layout, current, 'features');
  const features: DriftFigures[] = [];
  for (let j = 0; j < layout.spec.numFeatures; j++)
    features.push(
      compareHistograms(rf.subarray(j * per, (j + 1) * per), cf.subarray(j * per, (j + 1) * per)),
    );
  const rp = monitoringSlice(layout, reference, 'predictedClass');
  const cp = monitoringSlice(layout, current, 'predictedClass');
  const rc = monitoringSlice(layout, reference, 'confusion');
  const cc = monitoringSlice(layout, current, 'confusion');
  let labelShiftEstimate: LabelShiftEstimate | null = null;
  if (total(rc) > 0) {
    try {
      labelShiftEstimate = estimateLabelShift(rc, cp);
    } catch (e) {
      if (!(e instanceof EntenteError)) throw e;
    }
  }
  const latency = monitoringSlice(layout, current, 'latency');
  const edges = latencyBinUpperEdges();
  return {
    referenceRows: reference[0]!,
    currentRows: current[0]!,
    features,
    score: compareHistograms(
      monitoringSlice(layout, reference, 'score'),
      monitoringSlice(layout, current, 'score'),
    ),
    predictedClass: { psi: populationStabilityIndex(rp, cp), jsDistance: jensenShannonDistance(rp, cp) },
    labelShiftEstimate,
    observedLabelShift:
      total(rc) > 0 && total(cc) > 0 ? observedLabelShift(rc, cc, layout.spec.numClasses) : null,
    latencyMs:
      total(latency) > 0
        ? {
            p50: histogramPercentile(latency, edges, 0.5),
            p90: histogramPercentile(latency, edges, 0.9),
            p99: histogramPercentile(latency, edges, 0.99),
          }
        : null,
  };
}
