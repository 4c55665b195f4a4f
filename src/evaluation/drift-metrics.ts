/**
 * Drift metrics between a reference histogram and a current one over the same bins, label-shift
 * estimates, and latency percentiles. Pure; every function takes counts (or any non-negative
 * weights) and normalizes them itself.
 *
 * - Population stability index: PSI = Σᵢ (cᵢ − rᵢ) · ln(cᵢ / rᵢ) over the bin proportions, with every
 *   proportion below ε = 1e-4 (PSI_EPSILON) raised to ε (no renormalization), so empty bins give a
 *   finite figure. Each term is ≥ 0, so PSI ≥ 0, and 0 exactly when the proportions agree.
 * - Jensen-Shannon distance: √JSD with JSD = ½ KL(r ‖ m) + ½ KL(c ‖ m), m = ½(r + c), logarithm base 2
 *   by default (so the distance lies in [0, 1]); as scipy.spatial.distance.jensenshannon(r, c, base=2).
 *   With base e it lies in [0, √ln 2].
 * - Binned Kolmogorov-Smirnov statistic: max over the bins' upper edges of |CDF_r − CDF_c|, the
 *   cumulative proportions; in [0, 1]. It can only see differences at bin edges.
 * - Black Box Shift Estimation (Lipton, Wang, Smola, ICML 2018): with C[i][j] = P_ref(ŷ = i, y = j)
 *   from a reference confusion matrix and μ̂[i] = P_cur(ŷ = i), solve C · w = μ̂ and clip w ≥ 0; w[j]
 *   estimates q(y = j) / p(y = j), and w ⊙ p_ref(y), normalized, the current label distribution.
 * - Latency percentiles: the upper edge of the first bin whose cumulative count reaches q · n.
 */
import { EntenteError } from '../core/errors.ts';

export const PSI_EPSILON = 1e-4;

function bad(field: string, message: string): EntenteError {
  return new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

/** Proportions of non-negative finite counts with a positive total. */
export function normalizeHistogram(counts: ArrayLike<number>, field = 'counts'): Float64Array {
  let total = 0;
  for (let i = 0; i < counts.length; i++) {
    const v = counts[i]!;
    if (!(v >= 0 && Number.isFinite(v))) throw bad(field, 'every count must be finite and >= 0');
    total += v;
  }
  if (!(total > 0)) throw bad(field, 'must have a positive total');
  const out = new Float64Array(counts.length);
  for (let i = 0; i < counts.length; i++) out[i] = counts[i]! / total;
  return out;
}

function pair(reference: ArrayLike<number>, current: ArrayLike<number>): [Float64Array, Float64Array] {
  if (reference.length !== current.length || reference.length === 0)
    throw bad('current', 'must have as many bins as the reference (at least one)');
  return [normalizeHistogram(reference, 'reference'), normalizeHistogram(current, 'current')];
}

/** Population stability index of `current` against `reference` (see the file comment for ε). */
export function populationStabilityIndex(
  reference: ArrayLike<number>,
  current: ArrayLike<number>,
  epsilon = PSI_EPSILON,
): number {
  if (!(epsilon > 0 && epsilon < 1)) throw bad('epsilon', 'must be in (0, 1)');
  const [r, c] = pair(reference, current);
  let psi = 0;
  for (let i = 0; i < r.length; i++) {
    const ri = Math.max(r[i]!, epsilon);
    const ci = Math.max(c[i]!, epsilon);
    psi += (ci - ri) * Math.log(ci / ri);
  }
  return psi;
}

/** Jensen-Shannon distance (√divergence), logarithm base `base` (2 by default: in [0, 1]). */
export function jensenShannonDistance(
  reference: ArrayLike<number>,
  current: ArrayLike<number>,
  base = 2,
): number {
  if (!(base > 1 && Number.isFinite(base))) throw bad('base', 'must be finite and > 1');
  const [r, c] = pair(reference, current);
  let divergence = 0;
  for (let i = 0; i < r.length; i++) {
    const m = (r[i]! + c[i]!) / 2;
    if (r[i]! > 0) divergence += 0.5 * r[i]! * Math.log(r[i]! / m);
    if (c[i]! > 0) divergence += 0.5 * c[i]! * Math.log(c[i]! / m);
  }
  // Rounding may leave a tiny negative divergence for identical inputs.
  return Math.sqrt(Math.max(0, divergence / Math.log(base)));
}

/** Binned Kolmogorov-Smirnov statistic: the largest gap between the cumulative proportions. */
export function binnedKolmogorovSmirnov(reference: ArrayLike<number>, current: ArrayLike<number>): number {
  const [r, c] = pair(reference, current);
  let cr = 0;
  let cc = 0;
  let ks = 0;
  for (let i = 0; i < r.length; i++) {
    cr += r[i]!;
    cc += c[i]!;
    ks = Math.max(ks, Math.abs(cr - cc));
  }
  return Math.min(1, ks);
}

export interface DriftFigures {
  readonly psi: number;
  readonly jsDistance: number;
  readonly ks: number;
}

/** PSI, Jensen-Shannon distance (base 2) and binned KS of two histograms. */
export function compareHistograms(reference: ArrayLike<number>, current: ArrayLike<number>): DriftFigures {
  return {
    psi: populationStabilityIndex(reference, current),
    jsDistance: jensenShannonDistance(reference, current),
    ks: binnedKolmogorovSmirnov(reference, current),
  };
}

/** Solves the square system a · x = b (a row-major n·n) by Gaussian elimination with partial pivoting. */
export function solveLinearSystem(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const n = b.length;
  if (a.length !== n * n) throw bad('matrix', 'must be n · n for n right-hand values');
  const m = Float64Array.from(a);
  const x = Float64Array.from(b);
  let scale = 0;
  for (let i = 0; i < m.length; i++) scale = Math.max(scale, Math.abs(m[i]!));
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let row = col + 1; row < n; row++)
      if (Math.abs(m[row * n + col]!) > Math.abs(m[pivot * n + col]!)) pivot = row;
    if (!(Math.abs(m[pivot * n + col]!) > 1e-12 * Math.max(scale, Number.MIN_VALUE)))
      throw bad('matrix', 'is singular: the reference confusion matrix cannot be inverted');
    if (pivot !== col) {
      for (let k = 0; k < n; k++) {
        const t = m[col * n + k]!;
        m[col * n + k] = m[pivot * n + k]!;
        m[pivot * n + k] = t;
      }
      const t = x[col]!;
      x[col] = x[pivot]!;
      x[pivot] = t;
    }
    for (let row = col + 1; row < n; row++) {
      const f = m[row * n + col]! / m[col * n + col]!;
      if (f === 0) continue;
      for (let k = col; k < n; k++) m[row * n + k]! -= f * m[col * n + k]!;
      x[row]! -= f * x[col]!;
    }
  }
  for (let row = n - 1; row >= 0; row--) {
    let s = x[row]!;
    for (let k = row + 1; k < n; k++) s -= m[row * n + k]! * x[k]!;
    x[row] = s / m[row * n + row]!;
  }
  return x;
}

export interface LabelShiftEstimate {
  /** w[j] ≈ q(y = j) / p(y = j), clipped at 0. */
  readonly weights: number[];
  /** The reference label distribution p(y). */
  readonly referenceLabels: number[];
  /** The estimated current label distribution: w ⊙ p(y), normalized (the reference's if w ⊙ p is 0). */
  readonly estimatedLabels: number[];
}

/**
 * Black Box Shift Estimation from a reference confusion matrix (`confusion[y · K + ŷ]`, counts, as the
 * monitoring and evaluation layouts keep it) and the predicted-class counts on current data.
 * INVALID_ARGUMENT when the sizes disagree, a total is 0, or the confusion matrix is singular.
 */
export function estimateLabelShift(
  confusion: ArrayLike<number>,
  currentPredicted: ArrayLike<number>,
): LabelShiftEstimate {
  const k = currentPredicted.length;
  if (k < 2 || confusion.length !== k * k)
    throw bad('confusion', 'must be K · K for K predicted-class counts (K >= 2)');
  const joint = normalizeHistogram(confusion, 'confusion');
  const mu = normalizeHistogram(currentPredicted, 'currentPredicted');
  // C[i][j] = P(ŷ = i, y = j) = joint[j · K + i].
  const c = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) c[i * k + j] = joint[j * k + i]!;
  const w = solveLinearSystem(c, mu);
  const weights = Array.from(w, (v) => Math.max(0, v));
  const referenceLabels = new Array<number>(k).fill(0);
  for (let j = 0; j < k; j++) for (let i = 0; i < k; i++) referenceLabels[j]! += joint[j * k + i]!;
  const raw = weights.map((v, j) => v * referenceLabels[j]!);
  const total = raw.reduce((a, b) => a + b, 0);
  return {
    weights,
    referenceLabels,
    estimatedLabels: total > 0 ? raw.map((v) => v / total) : referenceLabels.slice(),
  };
}

export interface ObservedLabelShift {
  readonly referenceLabels: number[];
  readonly currentLabels: number[];
  /** ½ Σ |q − p|, in [0, 1]. */
  readonly totalVariation: number;
  readonly jsDistance: number;
}

/** The label distributions of two confusion matrices (rows = labels) and the distance between them. */
export function observedLabelShift(
  referenceConfusion: ArrayLike<number>,
  currentConfusion: ArrayLike<number>,
  numClasses: number,
): ObservedLabelShift {
  const k = numClasses;
  if (referenceConfusion.length !== k * k || currentConfusion.length !== k * k)
    throw bad('confusion', 'must be K · K');
  const labels = (m: ArrayLike<number>) => {
    const out = new Array<number>(k).fill(0);
    for (let y = 0; y < k; y++) for (let p = 0; p < k; p++) out[y]! += m[y * k + p]!;
    return out;
  };
  const p = Array.from(normalizeHistogram(labels(referenceConfusion), 'referenceConfusion'));
  const q = Array.from(normalizeHistogram(labels(currentConfusion), 'currentConfusion'));
  let tv = 0;
  for (let y = 0; y < k; y++) tv += Math.abs(q[y]! - p[y]!);
  return {
    referenceLabels: p,
    currentLabels: q,
    totalVariation: tv / 2,
    jsDistance: jensenShannonDistance(p, q),
  };
}

/**
 * The q-quantile (q in (0, 1]) of a histogram as the upper edge of the first bin whose cumulative
 * count reaches q · n (Infinity when that is the open last bin). INVALID_ARGUMENT for an empty
 * histogram or sizes that disagree.
 */
export function histogramPercentile(
  counts: ArrayLike<number>,
  upperEdges: ArrayLike<number>,
  q: number,
): number {
  if (counts.length !== upperEdges.length || counts.length === 0)
    throw bad('upperEdges', 'must have one edge per bin');
  if (!(q > 0 && q <= 1)) throw bad('q', 'must be in (0, 1]');
  let total = 0;
  for (let i = 0; i < counts.length; i++) {
    const v = counts[i]!;
    if (!(v >= 0 && Number.isFinite(v))) throw bad('counts', 'every count must be finite and >= 0');
    total += v;
  }
  if (!(total > 0)) throw bad('counts', 'must have a positive total');
  const rank = q * total;
  let cumulative = 0;
  for (let i = 0; i < counts.length; i++) {
    cumulative += counts[i]!;
    if (cumulative >= rank) return upperEdges[i]!;
  }
  return upperEdges[counts.length - 1]!;
}
