/**
 * Gamma and Dirichlet sampling for simulated data partitions (not for privacy noise). Gamma(shape, 1)
 * uses Marsaglia & Tsang, "A Simple Method for Generating Gamma Variables" (ACM TOMS 26(3), 2000),
 * with their boost for shape < 1: Gamma(a) = Gamma(a + 1) · U^(1/a). Dirichlet(α, …, α) normalises
 * independent Gamma(α) draws; the draws are kept in log space so that tiny α (where U^(1/α)
 * underflows to 0) still yields a valid probability vector. All randomness comes from the passed Rng.
 */
import { EntenteError } from '../core/errors.ts';
import { nextGaussian, type Rng } from '../core/rng.ts';

/** One draw of log(G), G ~ Gamma(shape, scale 1). `shape` must be finite and > 0 (INVALID_ARGUMENT). */
export function sampleLogGamma(rng: Rng, shape: number): number {
  assertShape(shape, 'shape');
  if (shape >= 1) return Math.log(sampleGammaAtLeastOne(rng, shape));
  const u = 1 - rng.nextFloat64(); // (0, 1]
  return Math.log(sampleGammaAtLeastOne(rng, shape + 1)) + Math.log(u) / shape;
}

/** One draw of Gamma(shape, scale 1). For very small shapes the result may underflow to 0. */
export function sampleGamma(rng: Rng, shape: number): number {
  return Math.exp(sampleLogGamma(rng, shape));
}

/**
 * One draw from the symmetric Dirichlet(alpha, …, alpha) over `k` outcomes: `k` non-negative numbers
 * summing to 1 (up to rounding). `k` must be an integer >= 1 and `alpha` finite and > 0.
 */
export function sampleDirichlet(rng: Rng, k: number, alpha: number): Float64Array {
  if (!Number.isInteger(k) || k < 1) {
    throw new EntenteError('INVALID_ARGUMENT', 'k must be an integer >= 1', { field: 'k' });
  }
  assertShape(alpha, 'alpha');
  const logs = new Float64Array(k);
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < k; i++) {
    const l = sampleLogGamma(rng, alpha);
    logs[i] = l;
    if (l > max) max = l;
  }
  let sum = 0;
  for (let i = 0; i < k; i++) {
    const e = Math.exp(logs[i]! - max);
    logs[i] = e;
    sum += e;
  }
  for (let i = 0; i < k; i++) logs[i] = logs[i]! / sum;
  return logs;
}

function sampleGammaAtLeastOne(rng: Rng, shape: number): number {
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const z = nextGaussian(rng);
    const t = 1 + c * z;
    if (t <= 0) continue;
    const v = t * t * t;
    const u = 1 - rng.nextFloat64(); // (0, 1], so log(u) is finite
    const z2 = z * z;
    if (u < 1 - 0.0331 * z2 * z2) return d * v;
    if (Math.log(u) < 0.5 * z2 + d * (1 - v + Math.log(v))) return d * v;
  }
}

function assertShape(value: number, field: string): void {
  if (!(Number.isFinite(value) && value > 0)) {
    throw new EntenteError('INVALID_ARGUMENT', `${field} must be a finite number > 0`, { field });
  }
}
