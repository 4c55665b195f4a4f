/**
 * Partitioners that simulate how rows are spread over the participants of a consortium. Each returns
 * one ascending array of row indices per participant; together they cover every row exactly once.
 * All randomness comes from the passed Rng, so a partition is reproducible from a seed.
 *
 * - IID: a uniform random permutation cut into near-equal parts.
 * - Label skew: for each class, proportions p ~ Dirichlet(alpha) over the parts and the class's rows
 *   (shuffled) are cut at the cumulative proportions (Hsu, Qi & Brown 2019, "Measuring the effects of
 *   non-identical data distribution for federated visual classification"; Yurochkin et al. 2019,
 *   "Bayesian nonparametric federated learning of neural networks"). Small alpha gives each
 *   participant few classes; large alpha approaches IID. Part sizes are not balanced.
 * - Quantity skew: part sizes proportional to p ~ Dirichlet(alpha), rows assigned uniformly
 *   (Li et al. 2022, "Federated learning on non-IID data silos: an experimental study").
 * The skewed partitioners redraw the proportions until every part has at least `minPerPart` rows,
 * at most `maxAttempts` times.
 */
import { EntenteError } from '../core/errors.ts';
import { type Rng, shuffleInPlace } from '../core/rng.ts';
import { sampleDirichlet } from './dirichlet.ts';

export interface SkewOptions {
  /** Smallest allowed part size (integer >= 0). Default 1. */
  readonly minPerPart?: number;
  /** Redraws allowed before giving up (integer >= 1). Default 1000. */
  readonly maxAttempts?: number;
}

/** `count` rows in `parts` parts of size ⌊count/parts⌋ or ⌈count/parts⌉, uniformly at random.
 * Requires integers 1 <= parts <= count (INVALID_ARGUMENT). */
export function partitionIid(count: number, parts: number, rng: Rng): number[][] {
  assertInteger(count, 'count', 1);
  assertInteger(parts, 'parts', 1);
  if (parts > count) {
    throw new EntenteError('INVALID_ARGUMENT', 'parts must be <= count so every part gets a row', {
      field: 'parts',
    });
  }
  const rows = createPermutation(count, rng);
  const out: number[][] = [];
  let start = 0;
  for (let k = 0; k < parts; k++) {
    const size = Math.floor(count / parts) + (k < count % parts ? 1 : 0);
    out.push(sortAscending(rows.slice(start, start + size)));
    start += size;
  }
  return out;
}

/**
 * Label-skewed partition of rows with class `labels[i]` in [0, numClasses). Throws INVALID_ARGUMENT
 * on invalid arguments, when `minPerPart · parts` exceeds the row count, or when no draw within
 * `maxAttempts` meets `minPerPart` (field 'minPerPart').
 */
export function partitionByLabelDirichlet(
  labels: ArrayLike<number>,
  numClasses: number,
  parts: number,
  alpha: number,
  rng: Rng,
  options: SkewOptions = {},
): number[][] {
  assertInteger(numClasses, 'numClasses', 1);
  const { minPerPart, maxAttempts } = checkSkewArguments(labels.length, parts, alpha, options);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
      throw new EntenteError('INVALID_ARGUMENT', `labels[${i}] must be an integer in [0, ${numClasses})`, {
        field: `labels[${i}]`,
      });
    }
    byClass[label]!.push(i);
  }
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const out: number[][] = Array.from({ length: parts }, () => []);
    for (const rows of byClass) {
      if (rows.length === 0) continue;
      const shuffled = rows.slice();
      shuffleInPlace(rng, shuffled);
      const bounds = computeCutPoints(shuffled.length, sampleDirichlet(rng, parts, alpha));
      for (let k = 0; k < parts; k++) {
        const part = out[k]!;
        for (let i = bounds[k]!; i < bounds[k + 1]!; i++) part.push(shuffled[i]!);
      }
    }
    if (out.every((p) => p.length >= minPerPart)) return out.map(sortAscending);
  }
  throw attemptsExhausted(minPerPart, maxAttempts, alpha);
}

/**
 * Quantity-skewed partition of `count` rows: part sizes ~ count · Dirichlet(alpha), rows uniform.
 * Throws INVALID_ARGUMENT like `partitionByLabelDirichlet`.
 */
export function partitionQuantitySkew(
  count: number,
  parts: number,
  alpha: number,
  rng: Rng,
  options: SkewOptions = {},
): number[][] {
  assertInteger(count, 'count', 0);
  const { minPerPart, maxAttempts } = checkSkewArguments(count, parts, alpha, options);
  const rows = createPermutation(count, rng);
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const bounds = computeCutPoints(count, sampleDirichlet(rng, parts, alpha));
    let ok = true;
    for (let k = 0; k < parts; k++) if (bounds[k + 1]! - bounds[k]! < minPerPart) ok = false;
    if (ok) {
      return Array.from({ length: parts }, (_, k) => sortAscending(rows.slice(bounds[k]!, bounds[k + 1]!)));
    }
  }
  throw attemptsExhausted(minPerPart, maxAttempts, alpha);
}

/** Cut points 0 = b_0 <= b_1 <= … <= b_parts = n with b_k = ⌊n · (p_0 + … + p_{k-1})⌋. */
function computeCutPoints(n: number, proportions: Float64Array): number[] {
  const bounds = [0];
  let cumulative = 0;
  for (let k = 0; k < proportions.length - 1; k++) {
    cumulative += proportions[k]!;
    bounds.push(Math.max(bounds[k]!, Math.min(n, Math.floor(cumulative * n))));
  }
  bounds.push(n);
  return bounds;
}

function checkSkewArguments(
  count: number,
  parts: number,
  alpha: number,
  options: SkewOptions,
): { minPerPart: number; maxAttempts: number } {
  assertInteger(parts, 'parts', 1);
  if (!(Number.isFinite(alpha) && alpha > 0)) {
    throw new EntenteError('INVALID_ARGUMENT', 'alpha must be a finite number > 0', { field: 'alpha' });
  }
  const minPerPart = options.minPerPart ?? 1;
  const maxAttempts = options.maxAttempts ?? 1000;
  assertInteger(minPerPart, 'minPerPart', 0);
  assertInteger(maxAttempts, 'maxAttempts', 1);
  if (minPerPart * parts > count) {
    throw new EntenteError(
      'INVALID_ARGUMENT',
      `minPerPart · parts = ${minPerPart * parts} exceeds the ${count} rows`,
      { field: 'minPerPart' },
    );
  }
  return { minPerPart, maxAttempts };
}

function attemptsExhausted(minPerPart: number, maxAttempts: number, alpha: number): EntenteError {
  return new EntenteError(
    'INVALID_ARGUMENT',
    `no partition with at least ${minPerPart} rows per part in ${maxAttempts} draws at alpha ${alpha}; ` +
      'lower minPerPart or raise alpha',
    { field: 'minPerPart' },
  );
}

function createPermutation(count: number, rng: Rng): number[] {
  const rows = Array.from({ length: count }, (_, i) => i);
  shuffleInPlace(rng, rows);
  return rows;
}

function sortAscending(rows: number[]): number[] {
  return rows.sort((a, b) => a - b);
}

function assertInteger(value: number, field: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new EntenteError('INVALID_ARGUMENT', `${field} must be an integer >= ${min}`, { field });
  }
}
