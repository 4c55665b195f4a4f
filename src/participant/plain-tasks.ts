/**
 * A participant's plain (not secure-aggregation) tasks: feature statistics of its training rows,
 * evaluation of a model on its evaluation rows, and local training whose update is returned as a
 * chunked safetensors blob (its privacy charged to the site's ledger before it leaves).
 */
import { encodeSafetensors } from '../core/safetensors.ts';
import { applyStandardization, computeFeatureStats } from '../data/index.ts';
import { evaluateRegression, isRegressionSpec, parseModelSpec } from '../models/index.ts';
import { type EvaluateTask, type StatisticsTask, type TrainTask, createBlobRef } from '../protocol/index.ts';
import { checkModelInLog } from './audit-log-checks.ts';
import { type ParticipantContext, type TaskOutput, toParams } from './participant-context.ts';
import { planPrivacy, spendPrivacy, trainWithPrivateRandomness } from './privacy-spending.ts';

/** Count, sum and sum of squares of each feature of its training rows. */
export function computeStatistics(ctx: ParticipantContext, task: StatisticsTask): TaskOutput {
  const s = computeFeatureStats(ctx.split.train);
  return {
    result: {
      kind: 'statistics',
      runId: task.runId,
      round: task.round,
      count: s.count,
      sum: [...s.sum],
      sumSquares: [...s.sumSquares],
    },
    chunks: [],
  };
}

/** Loss and accuracy on its evaluation rows (a linear model: MSE and the sums of its errors). */
export async function computeEvaluate(ctx: ParticipantContext, task: EvaluateTask): Promise<TaskOutput> {
  const spec = parseModelSpec(task.modelSpec);
  const weights = await ctx.connection.fetchModel(task.model, spec);
  const std = task.standardization ? toParams(task.standardization) : undefined;
  await checkModelInLog(ctx, task);
  const holdout = std ? applyStandardization(ctx.split.test, std) : ctx.split.test;
  if (isRegressionSpec(spec)) {
    // A linear model: MSE as the loss, and the sums the coordinator combines into MAE, RMSE and R².
    const m = evaluateRegression(spec, weights, holdout);
    const { numExamples: _n, ...sums } = m.sums;
    return {
      result: {
        kind: 'evaluate',
        runId: task.runId,
        round: task.round,
        numExamples: m.numExamples,
        loss: m.mse,
        regression: sums,
      },
      chunks: [],
    };
  }
  const r = ctx.trainer.evaluate(spec, weights, holdout);
  return {
    result: {
      kind: 'evaluate',
      runId: task.runId,
      round: task.round,
      numExamples: r.numExamples,
      loss: r.loss,
      accuracy: r.accuracy,
    },
    chunks: [],
  };
}

/** Trains locally on its training rows and returns the trained model as a safetensors blob. */
export async function computeTrain(ctx: ParticipantContext, task: TrainTask): Promise<TaskOutput> {
  const spec = parseModelSpec(task.modelSpec);
  const weights = await ctx.connection.fetchModel(task.model, spec);
  const std = task.standardization ? toParams(task.standardization) : undefined;
  await checkModelInLog(ctx, task);
  const train = std ? applyStandardization(ctx.split.train, std) : ctx.split.train;
  const privacyEvent = planPrivacy(ctx, task);
  const out = trainWithPrivateRandomness(ctx, task, spec, weights, train);
  const privacy = spendPrivacy(ctx, privacyEvent);
  const bytes = encodeSafetensors(out.weights, {
    run: task.runId,
    round: String(task.round),
    institution: ctx.options.institution,
  });
  const { ref, chunks } = createBlobRef(bytes);
  return {
    result: {
      kind: 'train',
      runId: task.runId,
      round: task.round,
      update: ref,
      numExamples: out.numExamples,
      trainLoss: out.meanLoss,
      ...(privacy ? { privacy } : {}),
    },
    chunks,
  };
}
