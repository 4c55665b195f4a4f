/**
 * Train/test splitting and row selection. The split is stratified by label: the test size
 * round(testFraction · count) (kept within [1, count - 1]) is apportioned to the classes in proportion
 * to their sizes by the largest-remainder (Hamilton) method, and each class's test rows are a uniform
 * random subset of that class drawn with the passed Rng (Fisher–Yates, classes in ascending label
 * order). Both parts keep the original row order. Deterministic given the Rng's stream.
 */
import { EntenteError } from '../core/errors.ts';
import { type Rng, shuffleInPlace } from '../core/rng.ts';
import type { LabeledData } from './labeled-data.ts';

export interface TrainTestSplit {
  readonly train: LabeledData;
  readonly test: LabeledData;
  /** Rows of the input in `train`, ascending. */
  readonly trainIndices: readonly number[];
  /** Rows of the input in `test`, ascending. */
  readonly testIndices: readonly number[];
}

/**
 * Splits `data` into disjoint train and test parts covering every row. `testFraction` must be in
 * (0, 1) and `data.count` >= 2 (INVALID_ARGUMENT).
 */
export function splitTrainTest(data: LabeledData, testFraction: number, rng: Rng): TrainTestSplit {
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new EntenteError('INVALID_ARGUMENT', 'testFraction must be in (0, 1)', { field: 'testFraction' });
  }
  const n = data.count;
  if (!Number.isInteger(n) || n < 2) {
    throw new EntenteError('INVALID_ARGUMENT', 'data.count must be >= 2 to split', { field: 'data.count' });
  }
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const label = data.y[i]!;
    let rows = byClass.get(label);
    if (rows === undefined) {
      rows = [];
      byClass.set(label, rows);
    }
    rows.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const testTotal = Math.min(n - 1, Math.max(1, Math.round(testFraction * n)));

  // Largest-remainder apportionment of testTotal over the classes, in exact integer arithmetic:
  // class c's quota is testTotal·n_c / n; ties go to the smaller label.
  const numerators = classes.map((c) => testTotal * byClass.get(c)!.length);
  const testPerClass = numerators.map((q) => Math.floor(q / n));
  let remaining = testTotal - testPerClass.reduce((a, b) => a + b, 0);
  const order = classes.map((_, k) => k).sort((a, b) => (numerators[b]! % n) - (numerators[a]! % n) || a - b);
  for (const k of order) {
    if (remaining === 0) break;
    testPerClass[k] = testPerClass[k]! + 1;
    remaining--;
  }

  const testIndices: number[] = [];
  const trainIndices: number[] = [];
  classes.forEach((c, k) => {
    const rows = byClass.get(c)!;
    shuffleInPlace(rng, rows);
    const take = testPerClass[k]!;
    for (let i = 0; i < rows.length; i++) (i < take ? testIndices : trainIndices).push(rows[i]!);
  });
  testIndices.sort((a, b) => a - b);
  trainIndices.sort((a, b) => a - b);
  return {
    train: selectRows(data, trainIndices),
    test: selectRows(data, testIndices),
    trainIndices,
    testIndices,
  };
}

/**
 * A new `LabeledData` holding rows `indices` of `data`, in that order (repeats allowed), with their
 * targets, groups and slice memberships when `data` has them. Every index
 * must be an integer in [0, data.count) (INVALID_ARGUMENT naming `indices[i]`).
 */
export function selectRows(data: LabeledData, indices: ArrayLike<number>): LabeledData {
  const { dim } = data;
  const count = indices.length;
  const x = new Float32Array(count * dim);
  const y = new Int32Array(count);
  const target = data.target ? new Float32Array(count) : undefined;
  const groups = data.groups ? new Int32Array(count) : undefined;
  const slices = data.slices?.map(() => new Uint8Array(count));
  for (let i = 0; i < count; i++) {
    const row = indices[i]!;
    if (!Number.isInteger(row) || row < 0 || row >= data.count) {
      throw new EntenteError('INVALID_ARGUMENT', `indices[${i}] must be an integer in [0, ${data.count})`, {
        field: `indices[${i}]`,
      });
    }
    x.set(data.x.subarray(row * dim, row * dim + dim), i * dim);
    y[i] = data.y[row]!;
    if (target) target[i] = data.target![row]!;
    if (groups) groups[i] = data.groups![row]!;
    if (slices) for (let s = 0; s < slices.length; s++) slices[s]![i] = data.slices![s]![row]!;
  }
  return {
    x,
    y,
    ...(target ? { target } : {}),
    count,
    dim,
    featureNames: [...data.featureNames],
    ...(groups ? { groups } : {}),
    ...(slices ? { slices } : {}),
  };
}
