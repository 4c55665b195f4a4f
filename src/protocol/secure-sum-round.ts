/**
 * One secure-sum round as both sides see it, computed in one place: the cohort and threshold of an
 * attempt, the masked vector's segments, and the round context every party derives from a `secagg-sum`
 * task (the coordinator when it writes the task, each participant when it reads it), so both agree on
 * the configuration digest bit for bit (secagg/round-context.ts).
 */
import { createHash } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import {
  CLIP_INDICATOR_SEGMENT,
  type SecAggRoundContext,
  type VectorSegment,
  WEIGHT_SEGMENT,
  checkRoundContext,
  computeDefaultThreshold,
} from '../secagg/index.ts';
import type { SecAggContextWire, SecAggSumTask } from './messages.ts';
import {
  type SecureSumDeclaration,
  type SecureSumNoise,
  type SumSegmentBound,
  declareSecureSum,
  toVectorSegments,
} from './secure-sum.ts';

/**
 * The run id an evaluation plan's tasks carry, fixed by the plan's digest, and the round of each blinded
 * label (model-A is round 1, …): with each site's one unmasked sum per (run, round, phase), no plan's
 * label can be evaluated twice at a site, so a coordinator cannot difference two cohorts' sums.
 */
export function evaluationJobId(planDigest: string): string {
  return `eval-${planDigest.slice(0, 16)}`;
}

export function evaluationLabelRound(label: string): number | undefined {
  const m = /^model-([A-H])$/.exec(label);
  return m ? m[1]!.charCodeAt(0) - 64 : undefined;
}

/**
 * The run id a staged rollout's measurements carry, fixed by the rollout plan's digest. Each measurement
 * (of any stage) is a new round, so each site unmasks at most one sum per measurement.
 */
export function rolloutJobId(rolloutDigest: string): string {
  return `rollout-${rolloutDigest.slice(0, 16)}`;
}

/**
 * The run id a deployed model's monitoring measurements carry, fixed by the model's SHA-256. The
 * reference window (each site's training rows scored) is round 0, measured once; each current window is
 * a new round 1, 2, …, so each site unmasks at most one sum per measurement.
 */
export function monitoringJobId(modelSha256: string): string {
  return `monitor-${modelSha256.slice(0, 16)}`;
}

/** Defaults of the bounds a secure sum declares when the run says nothing. */
export const SECURE_SUM_DEFAULTS = {
  /** Rows one site may evaluate or describe in one secure sum. */
  maxRowsPerSite: 100_000,
  /** Every feature value is clipped to ±maxAbsFeature before it enters the statistics sum. */
  maxAbsFeature: 10_000,
  /** Regression targets and predictions are clipped to ±maxAbsTarget in the evaluation sums. */
  maxAbsTarget: 1_000,
} as const;

/**
 * The cohort and threshold of one secure-aggregation attempt: the selected institutions sorted and
 * capped at maxParticipants, the threshold given or floor(2n/3)+1. Null when the cohort cannot reach
 * the threshold (the phase waits).
 */
export function planSecAggCohort(input: {
  readonly selected: readonly string[];
  readonly maxParticipants: number;
  readonly threshold?: number | undefined;
}): { readonly cohort: string[]; readonly threshold: number } | null {
  const cohort = [...new Set(input.selected)].sort().slice(0, input.maxParticipants);
  const threshold = input.threshold ?? computeDefaultThreshold(cohort.length);
  if (cohort.length < 3 || threshold > cohort.length) return null;
  return { cohort, threshold };
}

/**
 * A training round's masked vector: one segment per tensor of the model layout, then (adaptive
 * clipping) the one-word clip indicator, then the one-word weight channel. The coordinator writes these
 * into the task and every site requires exactly these.
 */
export function describeTrainSegments(
  layout: readonly { readonly name: string; readonly shape: readonly number[] }[],
  adaptiveClipping: boolean,
): VectorSegment[] {
  const segments: VectorSegment[] = [];
  let offset = 0;
  for (const t of layout) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    segments.push({ name: t.name, offsetWords: offset, lengthWords: n });
    offset += n;
  }
  if (adaptiveClipping) {
    segments.push({ name: CLIP_INDICATOR_SEGMENT, offsetWords: offset, lengthWords: 1 });
    offset += 1;
  }
  segments.push({ name: WEIGHT_SEGMENT, offsetWords: offset, lengthWords: 1 });
  return segments;
}

/** The evaluation sums as a secure-sum declaration: the layout's segments with their per-row bounds. */
export function declareEvaluationSum(input: {
  /** The evaluation layout's segments (evaluation/evaluation-layout.ts), each with its per-row bound. */
  readonly layout: {
    readonly segments: readonly SumSegmentBound[];
    /** The spec's differential privacy, if it asks for noise. */
    readonly spec?: { readonly dp?: { readonly noiseMultiplier: number } | undefined };
  };
  readonly maxRows: number;
  readonly cohortSize: number;
}): SecureSumDeclaration {
  const dp = input.layout.spec?.dp;
  return declareSecureSum({
    purpose: 'evaluation',
    maxRows: input.maxRows,
    cohortSize: input.cohortSize,
    segments: input.layout.segments.map((s) => ({
      name: s.name,
      length: s.length,
      kind: s.kind,
      maxPerRow: s.maxPerRow,
      ...(s.maxRowL2 === undefined ? {} : { maxRowL2: s.maxRowL2 }),
    })),
    ...(dp === undefined ? {} : { noise: { noiseMultiplier: dp.noiseMultiplier } }),
  });
}

/**
 * A monitoring vector (evaluation/monitoring-layout.ts: bin counts of inputs, scores, predicted
 * classes, labelled rows and request latencies) as a secure sum: every segment a count with its
 * per-row bound and L2 sensitivity, optionally noised. The coordinator's monitoring jobs declare it
 * (phase `monitor`); each site derives it again from the task's monitoring spec.
 */
export function declareMonitoringSum(input: {
  readonly layout: { readonly segments: readonly SumSegmentBound[] };
  readonly maxRows: number;
  readonly cohortSize: number;
  readonly noise?: SecureSumNoise | undefined;
}): SecureSumDeclaration {
  return declareSecureSum({
    purpose: 'monitoring',
    maxRows: input.maxRows,
    cohortSize: input.cohortSize,
    noise: input.noise,
    segments: input.layout.segments.map((s) => ({
      name: s.name,
      length: s.length,
      kind: s.kind,
      maxPerRow: s.maxPerRow,
      ...(s.maxRowL2 === undefined ? {} : { maxRowL2: s.maxRowL2 }),
    })),
  });
}

/**
 * A staged rollout's paired outcomes (evaluation/paired-outcomes.ts: rows, the four agreement cells,
 * the positive and negative parts of the loss difference and its square) as a secure sum.
 */
export function declarePairedOutcomeSum(input: {
  readonly layout: { readonly segments: readonly SumSegmentBound[] };
  readonly maxRows: number;
  readonly cohortSize: number;
}): SecureSumDeclaration {
  return declareSecureSum({
    purpose: 'paired-outcomes',
    maxRows: input.maxRows,
    cohortSize: input.cohortSize,
    segments: input.layout.segments.map((s) => ({
      name: s.name,
      length: s.length,
      kind: s.kind,
      maxPerRow: s.maxPerRow,
      ...(s.maxRowL2 === undefined ? {} : { maxRowL2: s.maxRowL2 }),
    })),
  });
}

/**
 * A regression model's evaluation sums (n, Σ(ŷ−t)², Σ|ŷ−t|, Σt, Σt²) as a secure sum, with targets and
 * predictions clipped to ±maxAbsTarget by each site.
 */
export function declareRegressionSum(input: {
  readonly maxRows: number;
  readonly maxAbsTarget: number;
  readonly cohortSize: number;
  readonly noise?: SecureSumNoise | undefined;
}): SecureSumDeclaration {
  const m = input.maxAbsTarget;
  return declareSecureSum({
    purpose: 'regression-evaluation',
    maxRows: input.maxRows,
    cohortSize: input.cohortSize,
    noise: input.noise,
    segments: [
      { name: 'count', length: 1, kind: 'count', maxPerRow: 1 },
      { name: 'sumSquaredError', length: 1, kind: 'sum', maxPerRow: 4 * m * m },
      { name: 'sumAbsoluteError', length: 1, kind: 'sum', maxPerRow: 2 * m },
      { name: 'sumTarget', length: 1, kind: 'signed-sum', maxPerRow: m },
      { name: 'sumTargetSquared', length: 1, kind: 'sum', maxPerRow: m * m },
    ],
  });
}

/** The secure-aggregation part of a secure-sum task: a 2^64 ring, weight 1 per site. */
export function buildSecureSumWire(input: {
  readonly consortium: string;
  readonly attempt: number;
  readonly cohort: readonly string[];
  readonly threshold: number;
  readonly declaration: SecureSumDeclaration;
}): SecAggContextWire {
  return {
    consortium: input.consortium,
    attempt: input.attempt,
    cohort: [...input.cohort],
    threshold: input.threshold,
    // Sums are encoded per segment (secure-sum.ts); clipRange and scale are unused and fixed at 1.
    quantization: { ringBits: 64, clipRange: 1, scale: 1 },
    maxWeight: 1,
    segments: toVectorSegments(input.declaration),
  };
}

/** What a secure-sum task binds beyond the wire context: everything that shapes the vector. */
function describeSumOptions(task: SecAggSumTask): unknown {
  return {
    purpose: task.secureSum.purpose,
    phase: task.phase,
    secureSum: task.secureSum,
    maxAbsFeature: task.maxAbsFeature ?? null,
    maxAbsTarget: task.maxAbsTarget ?? null,
    evaluation: task.evaluation ?? null,
    modelSpec: task.modelSpec ?? null,
    plan: task.plan ?? null,
    rollout: task.rollout ?? null,
    production: task.production ?? null,
    paired: task.paired ?? null,
    monitoring: task.monitoring ?? null,
    standardization: task.standardization ?? null,
    dataSchemaDigest: task.dataSchemaDigest ?? null,
  };
}

/**
 * The round context of a secure-sum task, identical on both sides. The base "model" is the evaluated
 * model, or for statistics the SHA-256 of the declaration. Throws INVALID_MESSAGE when the wire
 * segments are not the declaration's, or the context is inconsistent (checkRoundContext).
 */
export function buildSecureSumContext(task: SecAggSumTask): SecAggRoundContext {
  const expected = toVectorSegments(task.secureSum);
  if (canonicalizeJson(expected) !== canonicalizeJson(task.secagg.segments))
    throw new EntenteError('INVALID_MESSAGE', 'secagg.segments: do not match the secure-sum declaration', {
      field: 'secagg.segments',
    });
  if (task.secagg.quantization.ringBits !== 64 || task.secagg.maxWeight !== 1)
    throw new EntenteError(
      'INVALID_MESSAGE',
      'secagg.quantization: a secure sum uses the 2^64 ring and weight 1',
      {
        field: 'secagg.quantization',
      },
    );
  if (
    (task.phase === 'evaluate' || task.phase === 'rollout' || task.phase === 'monitor') !==
    (task.model !== undefined)
  )
    throw new EntenteError(
      'INVALID_MESSAGE',
      'model: an evaluation, rollout or monitoring sum names its model, a statistics sum none',
      {
        field: 'model',
      },
    );
  if (
    (task.phase === 'rollout') !==
    (task.rollout !== undefined && task.production !== undefined && task.paired !== undefined)
  )
    throw new EntenteError(
      'INVALID_MESSAGE',
      'rollout: a rollout sum names its rollout, its production model and its paired-outcome bound; no other sum does',
      { field: 'rollout' },
    );
  if (
    (task.phase === 'monitor') !==
    (task.monitoring !== undefined && task.monitoring.model === task.model?.sha256)
  )
    throw new EntenteError(
      'INVALID_MESSAGE',
      'monitoring: a monitoring sum names its window and spec for its own model; no other sum does',
      { field: 'monitoring' },
    );
  const base =
    task.model?.sha256 ?? createHash('sha256').update(canonicalizeJson(task.secureSum), 'utf8').digest('hex');
  const context: SecAggRoundContext = {
    ...task.secagg,
    runId: task.runId,
    round: task.round,
    baseModelSha256: base,
    options: describeSumOptions(task),
  };
  checkRoundContext(context);
  return context;
}
