/**
 * The statistics and evaluate phases of a run under secure aggregation, on the coordinator: the
 * declaration and the first-stage task of an attempt, and what the unmasked sum becomes (the
 * standardization, or the evaluation metrics). The coordinator never sees one site's figures: only the
 * sum of at least a threshold of sites (secagg-round.ts runs the stages).
 */
import type { BlobRef, RunConfig, SecAggSumTask, SecureSumDeclaration } from '../protocol/index.ts';
import {
  buildSecureSumContext,
  buildSecureSumWire,
  decodeSecureSum,
  declareRunEvaluationSum,
  declareRunStatisticsSum,
  selectRunEvaluationSpec,
  SECURE_SUM_DEFAULTS,
} from '../protocol/index.ts';
import { EntenteError } from '../core/errors.ts';
import { type EvaluationMetrics, createEvaluationLayout, finalizeEvaluation } from '../evaluation/index.ts';
import { type RegressionMetrics, combineRegressionEvaluations, isRegressionSpec } from '../models/index.ts';
import type { RingVector, SecAggRoundContext } from '../secagg/index.ts';

export type SumPhaseOutcome =
  | { readonly kind: 'statistics'; readonly count: number; readonly mean: number[]; readonly std: number[] }
  | { readonly kind: 'evaluation'; readonly metrics: EvaluationMetrics }
  | { readonly kind: 'regression'; readonly metrics: RegressionMetrics };

export interface SumAttempt {
  readonly declaration: SecureSumDeclaration;
  readonly context: SecAggRoundContext;
  /** The first-stage task, the same for every cohort member but for its id (chosen by the round). */
  task(taskId: string, issuedAt: number): SecAggSumTask;
}

/** Declares one attempt's secure sum and the task every cohort member receives for it. */
export function planSumAttempt(input: {
  readonly runId: string;
  readonly round: number;
  readonly attempt: number;
  readonly phase: 'statistics' | 'evaluate';
  readonly config: RunConfig;
  readonly consortium: string;
  readonly cohort: readonly string[];
  readonly threshold: number;
  /** Input columns of the model (statistics). */
  readonly features: number;
  readonly model?: BlobRef | undefined;
  readonly modelLogIndex?: number | undefined;
  readonly standardization?: { mean: number[]; std: number[] } | undefined;
  readonly schemaDigest?: string | undefined;
}): SumAttempt {
  const { config, phase } = input;
  const cohortSize = input.cohort.length;
  const declaration =
    phase === 'statistics'
      ? declareRunStatisticsSum(config, input.features, cohortSize)
      : declareRunEvaluationSum(config, cohortSize);
  const secagg = buildSecureSumWire({
    consortium: input.consortium,
    attempt: input.attempt,
    cohort: input.cohort,
    threshold: input.threshold,
    declaration,
  });
  const regression = isRegressionSpec(config.model);
  const task = (taskId: string, issuedAt: number): SecAggSumTask => ({
    taskId,
    runId: input.runId,
    round: input.round,
    attempt: input.attempt,
    issuedAt,
    kind: 'secagg-sum',
    phase,
    secureSum: { ...declaration, segments: [...declaration.segments] },
    ...(phase === 'statistics'
      ? { maxAbsFeature: config.secureSums?.maxAbsFeature ?? SECURE_SUM_DEFAULTS.maxAbsFeature }
      : {
          model: input.model!,
          modelSpec: config.model,
          ...(regression
            ? { maxAbsTarget: config.secureSums?.maxAbsTarget ?? SECURE_SUM_DEFAULTS.maxAbsTarget }
            : { evaluation: selectRunEvaluationSpec(config) }),
          ...(input.standardization ? { standardization: input.standardization } : {}),
          ...(input.modelLogIndex === undefined ? {} : { modelLog: { index: input.modelLogIndex } }),
        }),
    ...(input.schemaDigest ? { dataSchemaDigest: input.schemaDigest } : {}),
    secagg,
  });
  if (phase === 'evaluate' && !input.model)
    throw new EntenteError('INTERNAL', 'an evaluation sum needs its model', { field: 'model' });
  // Built from a task exactly as each participant builds it: both sides agree on the digest.
  const context = buildSecureSumContext(task('context', 0));
  return { declaration, context, task };
}

/** What the unmasked sum of `contributors` sites becomes. Throws PROTOCOL_VIOLATION for a sum out of bounds. */
export function finishSumAttempt(
  attempt: SumAttempt,
  config: RunConfig,
  sum: RingVector,
  contributors: number,
): SumPhaseOutcome {
  const values = decodeSecureSum(attempt.declaration, sum, contributors, attempt.context.threshold);
  const purpose = attempt.declaration.purpose;
  if (purpose === 'statistics') {
    const d = (values.length - 1) / 2;
    const count = values[0]!;
    if (!(count > 0))
      throw new EntenteError('PROTOCOL_VIOLATION', 'sum.count: no rows were summed', { field: 'sum.count' });
    const mean = Array.from(values.subarray(1, 1 + d), (v) => v / count);
    const std = Array.from(values.subarray(1 + d), (v, j) =>
      Math.max(1e-6, Math.sqrt(Math.max(0, v / count - mean[j]! ** 2))),
    );
    return { kind: 'statistics', count, mean, std };
  }
  if (purpose === 'regression-evaluation') {
    // Noised sums are post-processed into figures that can exist (no privacy cost): n ≥ 1, sums ≥ 0.
    const [n, sse, sae, st, st2] = attempt.declaration.noise
      ? [
          Math.max(1, Math.round(values[0]!)),
          Math.max(0, values[1]!),
          Math.max(0, values[2]!),
          values[3]!,
          Math.max(0, values[4]!),
        ]
      : values;
    return {
      kind: 'regression',
      metrics: combineRegressionEvaluations([
        {
          numExamples: n!,
          sumSquaredError: sse!,
          sumAbsoluteError: sae!,
          sumTarget: st!,
          sumTargetSquared: st2!,
        },
      ]),
    };
  }
  const layout = createEvaluationLayout(selectRunEvaluationSpec(config));
  return { kind: 'evaluation', metrics: finalizeEvaluation(layout, values) };
}
