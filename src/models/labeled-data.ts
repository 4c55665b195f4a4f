/**
 * Labelled examples as the built-in trainers consume them: a row-major Float32Array of features and
 * an Int32Array of class labels (classifiers) or a Float32Array of continuous targets (regression). The data module produces a structurally identical object (band-1
 * siblings do not import each other, so the shape is declared on both sides).
 */
import { EntenteError } from '../core/errors.ts';
import { countClasses, isRegressionSpec, type ModelSpec } from './model-spec.ts';

export interface LabeledData {
  /** Features, row-major: element (row, column) is x[row * dim + column]. Length count × dim. */
  readonly x: Float32Array;
  /** Class labels, one per row: 0/1 for logistic, 0..numClasses-1 otherwise. Length count (unused by regression). */
  readonly y: Int32Array;
  /** Regression targets, one per row (required by a linear model, finite). Length count. */
  readonly target?: Float32Array | undefined;
  readonly count: number;
  readonly dim: number;
}

/**
 * Checks that `data` fits `spec`: at least one row, dim == spec.inputDim, consistent lengths, every
 * feature finite and every label in range. Throws EntenteError('INVALID_DATA') naming the field and,
 * for a bad value, the row (never the value itself: it is an institution's data).
 */
export function assertValidLabeledData(spec: ModelSpec, data: LabeledData, what = 'data'): void {
  const fail = (field: string, message: string): never => {
    throw new EntenteError('INVALID_DATA', `${field}: ${message}`, { field });
  };
  if (typeof data !== 'object' || data === null) fail(what, 'must be an object');
  const { x, y, count, dim } = data;
  if (!Number.isSafeInteger(count) || count < 1) fail(`${what}.count`, 'must be an integer >= 1');
  if (dim !== spec.inputDim) fail(`${what}.dim`, `must equal the model's inputDim (${spec.inputDim})`);
  if (!(x instanceof Float32Array)) fail(`${what}.x`, 'must be a Float32Array');
  if (!(y instanceof Int32Array)) fail(`${what}.y`, 'must be an Int32Array');
  if (x.length !== count * dim) fail(`${what}.x`, `must have count × dim = ${count * dim} elements`);
  if (y.length !== count) fail(`${what}.y`, `must have count = ${count} elements`);
  const classes = countClasses(spec);
  const regression = isRegressionSpec(spec);
  const target = data.target;
  if (regression) {
    if (!(target instanceof Float32Array))
      fail(`${what}.target`, 'a regression model needs a Float32Array of targets');
    if (target!.length !== count) fail(`${what}.target`, `must have count = ${count} elements`);
  } else if (target !== undefined) {
    fail(
      `${what}.target`,
      'the data has continuous targets (a regression label) but the model is a classifier',
    );
  }
  for (let row = 0; row < count; row++) {
    if (regression) {
      const t = target![row]!;
      if (t - t !== 0) fail(`${what}.target[${row}]`, `the target at row ${row} is not finite`);
    } else {
      const label = y[row]!;
      if (label < 0 || label >= classes) {
        fail(`${what}.y[${row}]`, `the label at row ${row} is outside [0, ${classes})`);
      }
    }
    const base = row * dim;
    for (let i = 0; i < dim; i++) {
      const v = x[base + i]!;
      // v - v is NaN exactly when v is NaN or ±Infinity.
      if (v - v !== 0) fail(`${what}.x[${row}]`, `row ${row} has a non-finite feature in column ${i}`);
    }
  }
}
