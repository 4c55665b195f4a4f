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
  /** Regression targets (a schema whose label has `type: 'number'`), one per row; `y` is then all 0. */
  readonly target?: Float32Array | undefined;
  readonly count: number;
  readonly dim: number;
  /** Encoded column names, length `dim` (one-hot columns as `<feature>=<category>`). */
  readonly featureNames: readonly string[];
  /**
   * With a schema that declares `sensitive`: each row's group, the index of its cell in
   * `sensitive.values`, or -1 when the cell is missing. Never model input.
   */
  readonly groups?: Int32Array | undefined;
  /** With a schema that declares `slices`: one 0/1 membership array (length `count`) per slice, in order. */
  readonly slices?: readonly Uint8Array[] | undefined;
}
