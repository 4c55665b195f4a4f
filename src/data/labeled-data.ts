/**
 * `LabeledData`: an in-memory table of encoded examples, the unit the data module hands to trainers.
 * Features are row-major float32 (`x[row * dim + column]`), labels are class indices into the schema's
 * `label.classes`. Functions of this module never mutate a `LabeledData` they receive.
 */

export interface LabeledData {
  /** Row-major features, length `count * dim`. */
  readonly x: Float32Array;
  /** Class index per row, length `count`. */
  readonly y: Int32Array;
  readonly count: number;
  readonly dim: number;
  /** Encoded column names, length `dim` (one-hot columns as `<feature>=<category>`). */
  readonly featureNames: readonly string[];
}
