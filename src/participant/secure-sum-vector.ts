/**
 * What this site adds to a secure sum that is not a training delta, computed from its own records:
 * the standardization statistics of its training rows, or the evaluation sums of a model on its
 * evaluation rows. Before computing anything, the site derives the declaration itself from what the task
 * says is measured and refuses a task whose declaration differs: the coordinator cannot widen a bound
 * or add a segment the site did not agree to.
 */
import { EntenteError } from '../core/errors.ts';
import type { Weights } from '../core/tensor.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import type { EvaluationPlan } from '../governance/index.ts';
import { type LabeledData, applyStandardization } from '../data/index.ts';
import {
  type EvaluationSpec,
  accumulateEvaluation,
  createEvaluationLayout,
  parseEvaluationSpec,
} from '../evaluation/index.ts';
import {
  type ModelSpec,
  countOutputs,
  isRegressionSpec,
  predictProbabilities,
  predictValues,
} from '../models/index.ts';
import {
  type SecAggSumTask,
  type SecureSumDeclaration,
  declareEvaluationSum,
  declareRegressionSum,
  declareStatisticsSum,
  evaluationJobId,
  evaluationLabelRound,
} from '../protocol/index.ts';

/** The rows a site evaluates on, with what its data schema says about each of them. */
export interface EvaluationRowsSource {
  readonly data: LabeledData;
  /** Index into `sensitive.values` per row, −1 when missing. */
  readonly groups?: Int32Array | undefined;
  /** The sensitive attribute the site's schema declares. */
  readonly sensitive?: { readonly attribute: string; readonly values: readonly string[] } | undefined;
  /** Membership per declared slice, by slice name. */
  readonly slices?: ReadonlyMap<string, Uint8Array> | undefined;
}

function refuse(field: string, message: string): never {
  throw new EntenteError('PROTOCOL_VIOLATION', `${field}: ${message}`, { field });
}

export function sameDeclaration(task: SecAggSumTask, derived: SecureSumDeclaration): void {
  if (canonicalizeJson(task.secureSum) !== canonicalizeJson(derived))
    refuse('secureSum', 'is not the declaration this site derives from what the task measures');
}

export function checkRowCount(task: SecAggSumTask, count: number): void {
  if (count > task.secureSum.maxRows)
    throw new EntenteError(
      'INVALID_DATA',
      `secureSum.maxRows: this site holds ${count} rows for this sum, more than the declared ${task.secureSum.maxRows}`,
      { field: 'secureSum.maxRows' },
    );
}

/**
 * The statistics sum of `rows`: count, Σx and Σx² per input column, each value clipped to
 * ±maxAbsFeature. Returns the values and how many cells were clipped (reported to this site only).
 */
export function computeStatisticsValues(
  task: SecAggSumTask,
  rows: LabeledData,
): { values: Float64Array; clipped: number } {
  const maxAbs = task.maxAbsFeature;
  if (maxAbs === undefined) refuse('maxAbsFeature', 'a statistics sum declares the feature bound');
  sameDeclaration(
    task,
    declareStatisticsSum({
      features: rows.dim,
      maxRows: task.secureSum.maxRows,
      maxAbsFeature: maxAbs,
      cohortSize: task.secagg.cohort.length,
      noise: task.secureSum.noise,
    }),
  );
  checkRowCount(task, rows.count);
  const d = rows.dim;
  const values = new Float64Array(1 + 2 * d);
  values[0] = rows.count;
  let clipped = 0;
  for (let i = 0; i < rows.count; i++) {
    for (let j = 0; j < d; j++) {
      let v = rows.x[i * d + j]!;
      if (v > maxAbs || v < -maxAbs) {
        v = v > 0 ? maxAbs : -maxAbs;
        clipped++;
      }
      values[1 + j]! += v;
      values[1 + d + j]! += v * v;
    }
  }
  return { values, clipped };
}

/** The evaluation spec of the task, checked against this site's model outputs and data schema. */
function checkEvaluationSpec(input: unknown, spec: ModelSpec, rows: EvaluationRowsSource): EvaluationSpec {
  const evaluation = parseEvaluationSpec(input);
  const classes = Math.max(2, countOutputs(spec));
  if (evaluation.numClasses !== classes)
    refuse('evaluation.numClasses', `the model has ${classes} classes, not ${evaluation.numClasses}`);
  if (evaluation.sensitive) {
    const own = rows.sensitive;
    if (
      !own ||
      own.attribute !== evaluation.sensitive.attribute ||
      canonicalizeJson(own.values) !== canonicalizeJson(evaluation.sensitive.values)
    )
      throw new EntenteError(
        'INVALID_DATA',
        `evaluation.sensitive: this site's data schema does not declare "${evaluation.sensitive.attribute}" with these values`,
        { field: 'evaluation.sensitive' },
      );
  }
  for (const name of evaluation.slices ?? [])
    if (!rows.slices?.has(name))
      throw new EntenteError(
        'INVALID_DATA',
        `evaluation.slices: this site's data schema declares no slice "${name}"`,
        {
          field: 'evaluation.slices',
        },
      );
  return evaluation;
}

/**
 * The evaluation sums of `weights` on this site's evaluation rows (standardized with the run's
 * statistics when given): class probabilities through evaluation/accumulate-evaluation.ts.
 */
export function computeEvaluationValues(
  task: SecAggSumTask,
  spec: ModelSpec,
  weights: Weights,
  rows: EvaluationRowsSource,
  standardization: { mean: Float64Array; std: Float64Array } | undefined,
): Float64Array {
  const data = standardization ? applyStandardization(rows.data, standardization) : rows.data;
  checkRowCount(task, data.count);
  if (isRegressionSpec(spec)) return computeRegressionValues(task, spec, weights, data);
  const evaluation = checkEvaluationSpec(task.evaluation, spec, rows);
  const layout = createEvaluationLayout(evaluation);
  sameDeclaration(
    task,
    declareEvaluationSum({ layout, maxRows: task.secureSum.maxRows, cohortSize: task.secagg.cohort.length }),
  );
  return accumulateOwnRows(evaluation, spec, weights, data, rows);
}

/**
 * This site's own evaluation sums of `weights` on its evaluation rows, for a reveal it consented to
 * (the same figures it added to the plan's secure sum).
 */
export function computeRevealValues(
  task: { evaluation?: unknown },
  spec: ModelSpec,
  weights: Weights,
  rows: EvaluationRowsSource,
  standardization: { mean: Float64Array; std: Float64Array } | undefined,
): Float64Array {
  const data = standardization ? applyStandardization(rows.data, standardization) : rows.data;
  return accumulateOwnRows(checkEvaluationSpec(task.evaluation, spec, rows), spec, weights, data, rows);
}

function accumulateOwnRows(
  evaluation: EvaluationSpec,
  spec: ModelSpec,
  weights: Weights,
  data: LabeledData,
  rows: EvaluationRowsSource,
): Float64Array {
  const layout = createEvaluationLayout(evaluation);
  const raw = predictProbabilities(spec, weights, data.x);
  const k = evaluation.numClasses;
  // Logistic regression gives P(y = 1) only: the two columns are [1 − p, p].
  const probabilities = new Float64Array(data.count * k);
  if (raw.length === data.count && k === 2) {
    for (let i = 0; i < data.count; i++) {
      probabilities[2 * i] = 1 - raw[i]!;
      probabilities[2 * i + 1] = raw[i]!;
    }
  } else probabilities.set(raw);
  const slices = evaluation.slices?.map((name) => rows.slices!.get(name)!);
  return accumulateEvaluation(layout, {
    count: data.count,
    probabilities,
    labels: data.y,
    ...(evaluation.sensitive && rows.groups ? { groups: rows.groups } : {}),
    ...(slices ? { slices } : {}),
  });
}

/** n, Σ(ŷ−t)², Σ|ŷ−t|, Σt, Σt² with targets and predictions clipped to ±maxAbsTarget. */
function computeRegressionValues(
  task: SecAggSumTask,
  spec: ModelSpec,
  weights: Weights,
  data: LabeledData,
): Float64Array {
  const m = task.maxAbsTarget;
  if (m === undefined) refuse('maxAbsTarget', 'a regression evaluation sum declares the target bound');
  sameDeclaration(
    task,
    declareRegressionSum({
      maxRows: task.secureSum.maxRows,
      maxAbsTarget: m,
      cohortSize: task.secagg.cohort.length,
      noise: task.secureSum.noise,
    }),
  );
  const target = data.target;
  if (!target)
    throw new EntenteError('INVALID_DATA', 'target: this site has no regression targets', {
      field: 'target',
    });
  const predicted = predictValues(spec, weights, data.x);
  const clip = (v: number) => Math.min(m, Math.max(-m, v));
  const out = new Float64Array(5);
  out[0] = data.count;
  for (let i = 0; i < data.count; i++) {
    const t = clip(target[i]!);
    const e = clip(predicted[i]!) - t;
    out[1]! += e * e;
    out[2]! += Math.abs(e);
    out[3]! += t;
    out[4]! += t * t;
  }
  return out;
}

/** What a site's data schema declares for private evaluation: its sensitive attribute and slice names. */
export interface EvaluationAnnotations {
  readonly sensitive?: { readonly attribute: string; readonly values: readonly string[] } | undefined;
  /** Slice names in the order of `data.slices`. */
  readonly slices?: readonly string[] | undefined;
}

/** Evaluation rows from loaded data (its groups and slice memberships) and what the schema names them. */
export function toEvaluationRows(
  data: LabeledData,
  annotations: EvaluationAnnotations | undefined,
): EvaluationRowsSource {
  const names = annotations?.slices ?? [];
  const slices =
    data.slices && names.length === data.slices.length
      ? new Map(names.map((name, i) => [name, data.slices![i]!]))
      : undefined;
  return {
    data,
    ...(data.groups && annotations?.sensitive
      ? { groups: data.groups, sensitive: annotations.sensitive }
      : {}),
    ...(slices ? { slices } : {}),
  };
}

/**
 * An evaluation plan's task must be what the plan this site found approved in its verified log
 * pre-registered: an evaluation of one of its models, measuring exactly its evaluation spec, under a
 * blinded label, on data of its schema. Throws PROTOCOL_VIOLATION naming the field.
 */
export function checkPlanTask(
  task: Pick<SecAggSumTask, 'phase' | 'plan' | 'model' | 'evaluation' | 'runId' | 'round'>,
  plan: EvaluationPlan,
  ownSchemaDigest: string | undefined,
): void {
  if (task.phase !== 'evaluate') refuse('phase', 'an evaluation plan only evaluates');
  if (!task.plan || !/^model-[A-H]$/.test(task.plan.label)) refuse('plan.label', 'is not a blinded label');
  // One run id per plan and one round per label: with one unmasked sum per (run, round, phase) at this
  // site, no label of the plan is summed twice here (no differencing of two cohorts' sums).
  const round = evaluationLabelRound(task.plan.label)!;
  if (round > plan.models.length) refuse('plan.label', 'the plan has no model under this label');
  if (task.runId !== evaluationJobId(task.plan.digest) || task.round !== round)
    refuse('runId', "is not the plan's evaluation run and the label's round");
  if (!task.model || !plan.models.some((m) => m.sha256 === task.model!.sha256))
    refuse('model', 'is not one of the models the approved plan names');
  const planned = canonicalizeJson(parseEvaluationSpec(plan.evaluation));
  if (canonicalizeJson(parseEvaluationSpec(task.evaluation)) !== planned)
    refuse('evaluation', 'is not what the approved plan measures');
  if (plan.dataSchemaDigest !== undefined && plan.dataSchemaDigest !== ownSchemaDigest)
    refuse('plan.dataSchemaDigest', "the plan evaluates data of another schema than this site's");
}
