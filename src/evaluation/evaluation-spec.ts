/**
 * Parses what a private evaluation measures (`EvaluationSpec`): one strict zod schema, every mistake
 * reported with its dotted path under `evaluation.`, then frozen. The bounds keep the vector of
 * additive sums (evaluation-layout.ts) small enough to aggregate securely: besides the per-field
 * bounds, the whole vector may have at most `MAX_EVALUATION_SUMS` coordinates.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import type { EvaluationSpec } from './evaluation-metrics.ts';

/** Largest per-row log loss: −ln(1e-15) = 34.538…, rounded up (scikit-learn's classic eps). */
export const MAX_ROW_LOG_LOSS = 34.6;

/** Largest sums vector a spec may ask for (2^24 coordinates, 128 MiB as float64). */
export const MAX_EVALUATION_SUMS = 2 ** 24;

const distinct = (items: readonly string[]): boolean => new Set(items).size === items.length;

export const evaluationSpecSchema = z.strictObject({
  numClasses: z.int().min(2).max(1000),
  scoreBins: z.int().min(10).max(100_000).default(1000),
  calibrationBins: z.int().min(2).max(1000).default(10),
  sensitive: z
    .strictObject({
      attribute: z.string().min(1).max(128),
      values: z.array(z.string().min(1).max(64)).min(2).max(64).refine(distinct, 'must not repeat a value'),
    })
    .optional(),
  slices: z
    .array(
      z
        .string()
        .regex(
          /^[A-Za-z0-9][A-Za-z0-9 _.<>=-]{0,63}$/,
          'must be 1-64 characters: letters, digits, space and _ . < > = - (not starting with a symbol)',
        ),
    )
    .max(32)
    .refine(distinct, 'must not repeat a slice name')
    .optional(),
  dp: z
    .strictObject({
      noiseMultiplier: z.number().min(0.01).max(1e6),
      maxRowLogLoss: z.number().min(0.01).max(MAX_ROW_LOG_LOSS).default(MAX_ROW_LOG_LOSS),
    })
    .optional(),
});

/** Number of coordinates of one block of sums (all rows, or one slice); see evaluation-layout.ts. */
export function blockSumCount(numClasses: number, scoreBins: number, calibrationBins: number): number {
  const k = numClasses;
  const histogram = k === 2 ? 2 * scoreBins : k * 2 * scoreBins;
  return k * k + 2 + histogram + 3 * calibrationBins;
}

/** Total number of coordinates of the sums vector a spec asks for. */
export function evaluationSumCount(spec: EvaluationSpec): number {
  const blocks = 1 + (spec.slices?.length ?? 0);
  const groups = spec.sensitive === undefined ? 0 : spec.sensitive.values.length;
  const perGroup = spec.numClasses === 2 ? 4 : 2;
  return blocks * blockSumCount(spec.numClasses, spec.scoreBins, spec.calibrationBins) + groups * perGroup;
}

/**
 * Parses and freezes an evaluation spec. Unknown fields are rejected. Throws
 * EntenteError('INVALID_CONFIG') whose message and `field` name the first offending path, e.g.
 * `evaluation.scoreBins: Too big: expected number to be <=100000`.
 */
export function parseEvaluationSpec(input: unknown): EvaluationSpec {
  const result = evaluationSpecSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    let path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      path = [path, issue.keys[0]].filter((s) => s !== undefined && s !== '').join('.');
    }
    const field = path === '' ? 'evaluation' : `evaluation.${path}`;
    const what = issue.code === 'unrecognized_keys' ? 'is not a field of an evaluation spec' : issue.message;
    throw new EntenteError('INVALID_CONFIG', `${field}: ${what}`, { field });
  }
  const data = result.data;
  const spec: EvaluationSpec = {
    numClasses: data.numClasses,
    scoreBins: data.scoreBins,
    calibrationBins: data.calibrationBins,
    ...(data.sensitive === undefined
      ? {}
      : {
          sensitive: Object.freeze({
            attribute: data.sensitive.attribute,
            values: Object.freeze([...data.sensitive.values]),
          }),
        }),
    ...(data.slices === undefined ? {} : { slices: Object.freeze([...data.slices]) }),
    ...(data.dp === undefined ? {} : { dp: Object.freeze({ ...data.dp }) }),
  };
  const total = evaluationSumCount(spec);
  if (total > MAX_EVALUATION_SUMS) {
    throw new EntenteError(
      'INVALID_CONFIG',
      `evaluation.scoreBins: the sums vector would have ${total} coordinates, more than ${MAX_EVALUATION_SUMS} (fewer score bins, classes or slices)`,
      { field: 'evaluation.scoreBins' },
    );
  }
  return Object.freeze(spec);
}
