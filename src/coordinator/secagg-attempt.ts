/**
 * Secure-aggregation attempts of train rounds (Bonawitz et al. 2017): opening one (the cohort and
 * threshold, the vector's segments, the client-DP settings, the first stage's tasks), dequantizing
 * its unmasked sum into the mean update (and the next adaptive clip), and aborting one, which reopens
 * the round as attempt + 1 or fails the run. The stages themselves run in secagg-round.ts.
 */
import type { Tensor } from '../core/tensor.ts';
import { EntenteError } from '../core/errors.ts';
import {
  type BlobRef,
  type SecAggContextWire,
  type Standardization,
  computeUpdateNoiseMultiplier,
  describeTrainSegments,
  planSecAggCohort,
} from '../protocol/index.ts';
import {
  type RingVector,
  type SecAggRoundContext,
  CLIP_INDICATOR_SEGMENT,
  dequantizeSum,
  readSignedWord,
} from '../secagg/index.ts';
import { loadWeights } from './model-storage.ts';
import type { LiveRun, RunEngineContext, StoredModel } from './run-engine-context.ts';
import { SECAGG_TASK_KINDS, SecAggRound, createSecAggRoundDeps } from './secagg-round.ts';

/** Opens one secure-aggregation attempt of a train round (stage advertise-keys: train, then advertise). */
export function openSecAggAttempt(
  ctx: RunEngineContext,
  runId: string,
  live: LiveRun,
  selected: string[],
  model: BlobRef,
  standardization: Standardization | undefined,
  proximalMu: number,
  modelLogIndex: number | undefined,
  clipNormIn: number | undefined,
  schemaDigest: string | undefined,
): void {
  const sa = live.config.secureAggregation;
  const planned = planLiveCohort(live, selected);
  if (!planned) return;
  const { cohort, threshold, round, attempt } = planned;
  const cdp = live.config.clientDp;
  // The segments every site requires (one definition, in the protocol layer).
  const segments = describeTrainSegments(live.layout, cdp?.adaptive !== undefined);
  const clipNorm = clipNormIn ?? cdp?.clipNorm;
  const taskClientDp = cdp
    ? {
        clipNorm: clipNorm!,
        noiseMultiplier: computeUpdateNoiseMultiplier(cdp),
        ...(cdp.adaptive ? { indicatorNoiseStd: cdp.adaptive.countNoiseStd } : {}),
      }
    : undefined;
  const train = { ...live.config.train, proximalMu };
  const wire: SecAggContextWire = {
    consortium: ctx.deps.consortium,
    attempt,
    cohort,
    threshold,
    quantization: { ringBits: sa.ringBits, clipRange: sa.clipRange, scale: sa.scale },
    maxWeight: sa.maxWeight,
    segments,
  };
  const context: SecAggRoundContext = {
    ...wire,
    runId,
    round,
    baseModelSha256: model.sha256,
    options: taskClientDp ? { ...train, clientDp: taskClientDp } : train,
  };
  const started = performance.now();
  const secagg = new SecAggRound({
    deps: createSecAggRoundDeps(ctx.deps, (kind, participant, code, message) =>
      ctx.record(runId, round, kind, participant, code, message),
    ),
    context,
    pinnedKeyOf: ctx.deps.pinnedKeyOf,
    firstStageTimeoutMs: live.config.roundTimeoutMs,
    stageTimeoutMs: sa.stageTimeoutMs,
    firstTask: (participant, taskId, issuedAt) => ({
      taskId,
      runId,
      round,
      attempt,
      issuedAt,
      kind: 'secagg-train',
      model,
      modelSpec: live.config.model,
      train,
      seed: `${live.config.seed}/train/${round}/${attempt}/${participant}`,
      ...(schemaDigest ? { dataSchemaDigest: schemaDigest } : {}),
      ...(standardization ? { standardization } : {}),
      ...(modelLogIndex === undefined ? {} : { modelLog: { index: modelLogIndex } }),
      ...(taskClientDp ? { clientDp: taskClientDp } : {}),
      secagg: wire,
    }),
    onDone: (outcome) => {
      if (live.secagg !== secagg) return;
      if (!outcome.ok) {
        abortSecAgg(ctx, runId, live, outcome.reason);
        return;
      }
      const mean = computeSecAggMean(ctx, live, context, outcome.sum);
      live.secagg = undefined;
      finishCompletedAttempt(ctx, { runId, round, attempt }, secagg, outcome);
      live.secaggResult = {
        ...mean,
        contributors: outcome.survivors,
        aggregateMs: performance.now() - started,
      };
      ctx.record(
        runId,
        round,
        'secagg-completed',
        null,
        null,
        `round ${round} attempt ${attempt}: sum of ${outcome.survivors.length} unmasked (threshold ${threshold}; dropped after ShareKeys: ${outcome.dropped.join(', ') || 'none'})`,
      );
      ctx.step(runId, { type: 'close-requested', contributors: outcome.survivors });
    },
  });
  live.secagg = secagg;
  ctx.step(runId, { type: 'phase-opened', cohort, deadlineAt: null }, () => {
    if (attempt === 0)
      ctx.deps.store.upsertRound({
        run_id: runId,
        round,
        started_at: ctx.deps.now(),
        model_in: model.sha256,
      });
    insertRunningAttempt(ctx, { runId, round, attempt }, cohort, threshold, sa.ringBits);
    ctx.deps.audit.append('round-started', {
      run: runId,
      round,
      attempt,
      modelIn: model.sha256,
      cohort,
      protocol: 'secagg',
      threshold,
    });
  });
  ctx.record(
    runId,
    round,
    'secagg-started',
    null,
    null,
    `round ${round} attempt ${attempt}: secure aggregation (Bonawitz et al. 2017) with ${cohort.length} participants, threshold ${threshold}, ring 2^${sa.ringBits}`,
  );
  secagg.start();
}

/**
 * The cohort and threshold of a live run's next attempt, or undefined (the run waits) when fewer
 * sites than a secure-aggregation round needs are available.
 */
export function planLiveCohort(
  live: LiveRun,
  selected: readonly string[],
): { cohort: string[]; threshold: number; round: number; attempt: number } | undefined {
  const sa = live.config.secureAggregation;
  const planned = planSecAggCohort({
    selected: [...selected],
    maxParticipants: sa.maxParticipants,
    threshold: sa.threshold,
  });
  if (!planned) {
    live.state = { ...live.state, status: 'waiting' };
    return undefined;
  }
  return { ...planned, round: live.state.round, attempt: live.state.attempt ?? 0 };
}

/** The attempt's row, written when it opens: running, with its cohort and threshold. */
export function insertRunningAttempt(
  ctx: RunEngineContext,
  a: { runId: string; round: number; attempt: number; phase?: 'statistics' | 'evaluate' },
  cohort: readonly string[],
  threshold: number,
  ringBits: number,
): void {
  ctx.deps.store.insertSecAggAttempt({
    run_id: a.runId,
    round: a.round,
    attempt: a.attempt,
    ...(a.phase ? { phase: a.phase } : {}),
    started_at: ctx.deps.now(),
    cohort_json: JSON.stringify(cohort),
    threshold,
    ring_bits: ringBits,
    session_id: null,
    survivors_json: null,
    dropped_json: null,
    outcome: 'running',
    reason: null,
    finished_at: null,
  });
}

/** The attempt's row, finished: its session, survivors and dropped sites. */
export function finishCompletedAttempt(
  ctx: RunEngineContext,
  a: { runId: string; round: number; attempt: number; phase?: 'statistics' | 'evaluate' },
  secagg: SecAggRound,
  outcome: { readonly survivors: readonly string[]; readonly dropped: readonly string[] },
): void {
  ctx.deps.store.finishSecAggAttempt(
    { run_id: a.runId, round: a.round, attempt: a.attempt, ...(a.phase ? { phase: a.phase } : {}) },
    {
      session_id: secagg.session.sessionId ?? null,
      survivors_json: JSON.stringify(outcome.survivors),
      dropped_json: JSON.stringify(outcome.dropped),
      outcome: 'completed',
      reason: null,
      finished_at: ctx.deps.now(),
    },
  );
}

/** Dequantizes the unmasked sum: mean delta = (Σ (w/W)·Δ) · W / Σ w, added to the current model. */
function computeSecAggMean(
  ctx: RunEngineContext,
  live: LiveRun,
  context: SecAggRoundContext,
  sum: RingVector,
): { mean: Tensor[]; totalExamples: number; nextClipNorm?: number } {
  const row = ctx.deps.store.getRun(context.runId)!;
  const current = loadWeights(ctx.deps.blobs, (JSON.parse(row.model_json) as StoredModel).ref, live.layout);
  const weightSegment = context.segments.at(-1)!;
  const totalWeight = readSignedWord(sum, weightSegment.offsetWords);
  if (!(totalWeight > 0)) throw new EntenteError('INTERNAL', 'the unmasked weight channel is not positive');
  // Client-level DP: a fixed denominator (McMahan et al. 2018), the cohort size chosen before any data.
  const factor = live.config.clientDp ? 1 / context.cohort.length : context.maxWeight / totalWeight;
  const mean = current.map((t, i) => {
    const seg = context.segments[i]!;
    const delta = dequantizeSum(sum, context.quantization, seg.offsetWords, seg.lengthWords);
    const data = new Float32Array(t.data.length);
    for (let j = 0; j < data.length; j++) data[j] = t.data[j]! + delta[j]! * factor;
    return { name: t.name, shape: [...t.shape], data };
  });
  const cdp = live.config.clientDp;
  const indicator = context.segments.find((s) => s.name === CLIP_INDICATOR_SEGMENT);
  if (cdp?.adaptive && indicator) {
    // Σ(2b−1) + noise over the survivors → the noisy fraction of unclipped updates (Andrew et al. 2021, Alg. 1).
    const applied = (context.options as { clientDp: { clipNorm: number } }).clientDp.clipNorm;
    const survivors = totalWeight;
    const unclipped = Math.min(
      1,
      Math.max(0, (readSignedWord(sum, indicator.offsetWords) + survivors) / (2 * survivors)),
    );
    const next = applied * Math.exp(-cdp.adaptive.learningRate * (unclipped - cdp.adaptive.targetQuantile));
    const nextClipNorm = Math.min(
      cdp.clipNorm * cdp.adaptive.maxGrowth,
      Math.max(cdp.clipNorm / cdp.adaptive.maxGrowth, next),
    );
    ctx.record(
      context.runId,
      context.round,
      'clip-updated',
      null,
      null,
      `adaptive clipping: noisy unclipped fraction ${unclipped.toFixed(3)} (target ${cdp.adaptive.targetQuantile}), clip ${applied.toPrecision(4)} → ${nextClipNorm.toPrecision(4)}`,
    );
    return { mean, totalExamples: totalWeight, nextClipNorm };
  }
  return { mean, totalExamples: totalWeight };
}

/**
 * Ends the open secure-aggregation attempt without a result. The phase reopens as attempt + 1 only
 * when the attempt never reached its unmasking stage and the run's maxAttemptsPerRound allows another;
 * otherwise the run fails with a coded reason (a round is unmasked at most once, and every attempt
 * costs every site a training and possibly privacy).
 */
export function abortSecAgg(ctx: RunEngineContext, runId: string, live: LiveRun, reason: string): void {
  const d = live.secagg?.session.describe();
  const current = live.state.attempt ?? 0;
  const phase = live.state.phase;
  const unmaskingBegan = ctx.deps.store
    .listSecAggAttempts(runId)
    .some(
      (a) =>
        a.round === live.state.round &&
        (a.phase ?? 'train') === phase &&
        a.attempt === current &&
        a.outcome === 'unmasking',
    );
  ctx.deps.store.finishSecAggAttempt(
    { run_id: runId, round: live.state.round, attempt: live.state.attempt ?? 0, phase },
    {
      session_id: live.secagg?.session.sessionId ?? null,
      survivors_json: d ? JSON.stringify(d.survivors) : null,
      dropped_json: d ? JSON.stringify(d.dropped) : null,
      outcome: 'aborted',
      reason,
      finished_at: ctx.deps.now(),
    },
  );
  live.secagg?.expire();
  live.secagg = undefined;
  live.secaggResult = undefined;
  live.sumResult = undefined;
  const { round } = live.state;
  const attempt = live.state.attempt ?? 0;
  ctx.record(
    runId,
    round,
    'secagg-aborted',
    null,
    null,
    unmaskingBegan
      ? `round ${round} attempt ${attempt} aborted during unmasking: ${reason}; no sum was computed`
      : `round ${round} attempt ${attempt} aborted: ${reason}; nothing was unmasked`,
  );
  const at = ctx.deps.now();
  const event = {
    type: 'phase-aborted',
    unmaskingBegan,
    maxAttempts: live.config.maxAttemptsPerRound,
    reason: reason.slice(0, 1000),
  } as const;
  ctx.step(runId, event, () => {
    for (const kind of SECAGG_TASK_KINDS) ctx.deps.store.closeOpenTasks(runId, round, kind, 'expired', at);
    ctx.deps.audit.append('round-aborted', {
      run: runId,
      round,
      attempt,
      ...(phase === 'train' ? {} : { phase }),
      reason: reason.slice(0, 2000),
    });
  });
}

/** An attempt that failed unexpectedly (a stage threw): logged, then aborted like any other. */
export function failSecAgg(ctx: RunEngineContext, runId: string, err: unknown): void {
  const live = ctx.runs.get(runId);
  if (!live) return;
  ctx.deps.log.error({ run: runId, err }, 'secure aggregation failed');
  abortSecAgg(ctx, runId, live, `internal error: ${(err as Error).message}`);
}
