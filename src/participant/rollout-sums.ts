/**
 * What a site adds to a staged rollout's measurement, computed from its own evaluation rows: each row
 * scored by the plan's candidate and production models (each with its own standardization), the two
 * outcomes paired (evaluation/paired-outcomes.ts) and added up. Before any data is touched, the task is
 * checked against the rollout as the verified log leaves it (running, this stage, this site among the
 * stage's sites, exactly the plan's two models) and the declaration the site derives itself. Pure.
 */
import { EntenteError } from '../core/errors.ts';
import type { Weights } from '../core/tensor.ts';
import { type LabeledData, applyStandardization } from '../data/index.ts';
import {
  type PairedRow,
  accumulatePairedOutcomes,
  createPairedOutcomeLayout,
} from '../evaluation/paired-outcomes.ts';
import type { RolloutView } from '../governance/index.ts';
import { type ModelSpec, countOutputs, isRegressionSpec, predictProbabilities } from '../models/index.ts';
import { type SecAggSumTask, declarePairedOutcomeSum, rolloutJobId } from '../protocol/index.ts';
import { checkRowCount, sameDeclaration } from './secure-sum-vector.ts';

function refuse(field: string, message: string): never {
  throw new EntenteError('PROTOCOL_VIOLATION', `${field}: ${message}`, { field });
}

/** A rollout task's own fields, present (buildSecureSumContext has checked they come together). */
export function rolloutFields(task: SecAggSumTask): {
  rollout: NonNullable<SecAggSumTask['rollout']>;
  production: NonNullable<SecAggSumTask['production']>;
  paired: NonNullable<SecAggSumTask['paired']>;
  model: NonNullable<SecAggSumTask['model']>;
} {
  if (task.phase !== 'rollout') refuse('phase', 'is not a rollout measurement');
  if (!task.rollout || !task.production || !task.paired || !task.model)
    refuse('rollout', 'a rollout sum names its rollout, both models and its paired-outcome bound');
  return { rollout: task.rollout, production: task.production, paired: task.paired, model: task.model };
}

/**
 * A rollout task must be a measurement of the rollout the verified log shows running: its stage, this
 * site among the stage's sites, the plan's candidate and production, under the rollout's run id.
 * Throws PROTOCOL_VIOLATION naming the field.
 */
export function checkRolloutTask(task: SecAggSumTask, view: RolloutView, institution: string): void {
  const { rollout, production, model } = rolloutFields(task);
  if (task.runId !== rolloutJobId(rollout.digest)) refuse('runId', "is not the rollout's measurement run");
  if (view.status !== 'running')
    refuse('rollout.digest', `the verified log shows this rollout ${view.status}, not running`);
  if (view.stage !== rollout.stage)
    refuse('rollout.stage', `the verified log shows stage ${view.stage} running, not ${rollout.stage}`);
  if (!view.sites?.includes(institution))
    refuse('rollout.stage', `this site is not one of the running stage's sites`);
  if (model.sha256 !== view.plan.candidate) refuse('model', "is not the approved plan's candidate");
  if (view.plan.production === null || production.model.sha256 !== view.plan.production)
    refuse('production.model', "is not the approved plan's production version");
}

/** One model as the site scores with it: spec, weights and its own standardization. */
export interface ScoringModel {
  readonly spec: ModelSpec;
  readonly weights: Weights;
  readonly standardization: { mean: Float64Array; std: Float64Array } | undefined;
}

/** Class probabilities of every row, k columns (a logistic model's P(y = 1) becomes [1 − p, p]). */
function classProbabilities(model: ScoringModel, data: LabeledData): { p: Float64Array; k: number } {
  if (isRegressionSpec(model.spec))
    throw new EntenteError(
      'INVALID_CONFIG',
      'modelSpec.kind: a rollout pairs classifiers, not a linear model',
      {
        field: 'modelSpec.kind',
      },
    );
  const rows = model.standardization ? applyStandardization(data, model.standardization) : data;
  const raw = predictProbabilities(model.spec, model.weights, rows.x);
  const k = Math.max(2, countOutputs(model.spec));
  const p = new Float64Array(rows.count * k);
  if (raw.length === rows.count && k === 2)
    for (let i = 0; i < rows.count; i++) {
      p[2 * i] = 1 - raw[i]!;
      p[2 * i + 1] = raw[i]!;
    }
  else p.set(raw);
  return { p, k };
}

/**
 * Each row scored by both models: correct when the argmax class (the lowest index wins ties) is the
 * label; the loss is −ln p(true class), clipped to [0, maxRowLoss] (a zero probability costs maxRowLoss).
 */
export function scorePairedRows(
  candidate: ScoringModel,
  production: ScoringModel,
  data: LabeledData,
  maxRowLoss: number,
): PairedRow[] {
  const c = classProbabilities(candidate, data);
  const p = classProbabilities(production, data);
  const outcome = (s: { p: Float64Array; k: number }, i: number, label: number) => {
    let best = 0;
    for (let j = 1; j < s.k; j++) if (s.p[i * s.k + j]! > s.p[i * s.k + best]!) best = j;
    const pt = label >= 0 && label < s.k ? s.p[i * s.k + label]! : 0;
    const loss = pt > 0 ? Math.min(maxRowLoss, Math.max(0, -Math.log(pt))) : maxRowLoss;
    return { correct: best === label, loss };
  };
  const out: PairedRow[] = [];
  for (let i = 0; i < data.count; i++) {
    const label = data.y[i]!;
    const a = outcome(c, i, label);
    const b = outcome(p, i, label);
    out.push({
      candidateCorrect: a.correct,
      productionCorrect: b.correct,
      candidateLoss: a.loss,
      productionLoss: b.loss,
    });
  }
  return out;
}

/** This site's own accuracy of each model on the rows (null without rows): what its circuit breaker reads. */
export function pairedAccuracies(rows: readonly PairedRow[]): {
  candidateAccuracy: number | null;
  productionAccuracy: number | null;
} {
  if (rows.length === 0) return { candidateAccuracy: null, productionAccuracy: null };
  let c = 0;
  let p = 0;
  for (const r of rows) {
    if (r.candidateCorrect) c++;
    if (r.productionCorrect) p++;
  }
  return { candidateAccuracy: c / rows.length, productionAccuracy: p / rows.length };
}

/**
 * The declaration this site derives for a rollout task (the paired-outcome layout with the task's loss
 * clip, its row bound and cohort size); throws PROTOCOL_VIOLATION (field secureSum) when the task's
 * differs. Call before any data is touched.
 */
export function checkRolloutDeclaration(task: SecAggSumTask): void {
  const { paired } = rolloutFields(task);
  sameDeclaration(
    task,
    declarePairedOutcomeSum({
      layout: createPairedOutcomeLayout({ maxRowLoss: paired.maxRowLoss }),
      maxRows: task.secureSum.maxRows,
      cohortSize: task.secagg.cohort.length,
    }),
  );
}

/** This site's paired-outcome sums from its scored rows, after the declaration and row bound are checked. */
export function computeRolloutValues(task: SecAggSumTask, rows: readonly PairedRow[]): Float64Array {
  checkRolloutDeclaration(task);
  checkRowCount(task, rows.length);
  return accumulatePairedOutcomes({ maxRowLoss: rolloutFields(task).paired.maxRowLoss }, rows);
}
