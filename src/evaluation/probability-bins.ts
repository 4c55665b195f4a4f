/**
 * Equal-width bins of a probability in [0, 1], with exactly scikit-learn's rule
 * (`calibration_curve(strategy="uniform")`, sklearn 1.2 calibration.py):
 *
 *     bins = np.linspace(0.0, 1.0, n_bins + 1)
 *     binids = np.searchsorted(bins[1:-1], y_prob)        # side="left"
 *
 * - the edges are numpy's linspace values `i * (1/n)` (a product, not the quotient `i/n`: for n = 10
 *   the fourth edge is 3 * 0.1 = 0.30000000000000004, so 0.3 lies below it);
 * - searchsorted(side="left") returns the number of inner edges strictly below p, so bin b holds
 *   (edge_b, edge_{b+1}]: a value exactly on an inner edge falls in the LOWER bin; 0 falls in bin 0
 *   and 1 in bin n − 1.
 * The same rule bins calibration confidences and the scores of the ROC / precision-recall histograms.
 */

/** Inner edges of n equal-width bins, as numpy computes them: (i · (1/n)) for i = 1 … n − 1. */
export function innerBinEdges(n: number): Float64Array {
  const step = 1 / n;
  const edges = new Float64Array(n - 1);
  for (let i = 1; i < n; i++) edges[i - 1] = i * step;
  return edges;
}

/** Lower and upper edge of bin b (0-based) of n bins, as numpy's linspace (last upper edge exactly 1). */
export function binBounds(n: number, b: number): { lower: number; upper: number } {
  const step = 1 / n;
  return { lower: b * step, upper: b === n - 1 ? 1 : (b + 1) * step };
}

/**
 * Bin index of p (already clamped to [0, 1]) among the bins whose inner edges are `edges`: the number
 * of inner edges strictly less than p (numpy searchsorted, side="left").
 */
export function binIndex(edges: Float64Array, p: number): number {
  const n = edges.length + 1;
  let b = Math.floor(p * n);
  if (b > n - 1) b = n - 1;
  if (b < 0) b = 0;
  // p · n is within an ulp or two of the exact quotient: step to the bin the edges define.
  while (b > 0 && edges[b - 1]! >= p) b--;
  while (b < n - 1 && edges[b]! < p) b++;
  return b;
}
