/**
 * Closing a phase: the train round's aggregate (from the plain streaming sum or the unmasked secure
 * sum) applied by the strategy and released as the next model with its provenance; the evaluate
 * phase's metrics (classification or regression); the statistics phase's standardization. Each close
 * is one transition, written with the state in one transaction.
 */
import { createWeightedSum } from '../aggregation/index.ts';
import type { Tensor } from '../core/tensor.ts';
import { createProvenanceStatement } from '../audit/index.ts';
import { type RegressionSums, combineRegressionEvaluations, isRegressionSpec } from '../models/index.ts';
import type { BlobRef, Standardization } from '../protocol/index.ts';
import { createHash } from 'node:crypto';
import { loadStrategyState, loadWeights, storeStrategyState, storeWeights } from './model-storage.ts';
import { foldUpdate } from './result-acceptance.ts';
import { type LiveRun, type RunEngineContext, type StoredModel, plainTaskId } from './run-engine-context.ts';
import { abortSecAgg } from './secagg-attempt.ts';
import { closeSumPhase } from './secure-sum-attempt.ts';

/** Recorded in every model's provenance statement. */
const CODE_VERSION = 'entente/0.2.0';

/** Closes the run's open phase from what it received, then advances every run. */
export function closePhase(ctx: RunEngineContext, runId: string): void {
  const live = ctx.runs.get(runId)!;
  const { store, now } = ctx.deps;
  const { phase, round } = live.state;
  const row = store.getRun(runId)!;
  const at = now();
  if (phase !== 'train' && live.config.secureAggregation.protocol === 'secagg') {
    closeSumPhase(ctx, runId, live);
  } else if (phase === 'train' && live.config.secureAggregation.protocol === 'secagg') {
    const result = live.secaggResult;
    if (!result) {
      abortSecAgg(ctx, runId, live, 'no unmasked sum is available');
      return;
    }
    const currentRef = (JSON.parse(row.model_json) as StoredModel).ref;
    const current = loadWeights(ctx.deps.blobs, currentRef, live.layout);
    const sstate = loadStrategyState(ctx.deps.blobs, row.strategy_json);
    const out = live.strategy.aggregateTrain({
      round,
      current,
      mean: result.mean,
      totalExamples: result.totalExamples,
      contributions: result.contributors.length,
      state: sstate,
    });
    // A full disk (STORAGE_FULL) throws here, before anything changed: the next tick tries again.
    const newRef = storeWeights(ctx.deps.blobs, out.weights, { run: runId, round: String(round) });
    const strategyJson = JSON.stringify(storeStrategyState(ctx.deps.blobs, out.state));
    live.secaggResult = undefined;
    ctx.step(runId, { type: 'phase-closed' }, () => {
      store.updateRun(runId, {
        strategy_json: strategyJson,
      });
      store.upsertRound({
        run_id: runId,
        round,
        trained_at: at,
        model_out: newRef.sha256,
        contributors_json: JSON.stringify(result.contributors),
        train_examples: result.totalExamples,
        aggregate_ms: result.aggregateMs,
      });
      const logIndex = logModelRelease(ctx, live, {
        round,
        attempt: live.state.attempt ?? 0,
        modelIn: currentRef.sha256,
        model: newRef,
        mean: result.mean,
        contributors: result.contributors,
        examples: result.totalExamples,
      });
      store.updateRun(runId, {
        model_json: JSON.stringify({
          ref: newRef,
          logIndex,
          ...(result.nextClipNorm === undefined ? {} : { clipNorm: result.nextClipNorm }),
        } satisfies StoredModel),
      });
    });
    ctx.publishCheckpoint();
    ctx.deps.log.info(
      {
        run: runId,
        round,
        contributors: result.contributors.length,
        aggregateMs: Math.round(result.aggregateMs),
      },
      'round aggregated (secure aggregation)',
    );
  } else if (phase === 'train') {
    const started = performance.now();
    const updates = store
      .listUpdates(runId, round)
      .filter(
        (u) =>
          live.state.received.includes(u.participant) &&
          u.task_id === plainTaskId(ctx, runId, round, phase, u.participant),
      );
    if (
      !live.sum ||
      updates.some((u) => !live.folded.has(u.participant)) ||
      live.folded.size !== updates.length
    ) {
      // After a restart (or any doubt) rebuild the sum from the stored updates: each counted exactly once.
      live.sum = createWeightedSum(live.layout);
      live.folded = new Set();
      live.aggregateMs = 0;
      for (const u of updates)
        foldUpdate(ctx, live, u.participant, JSON.parse(u.blob_json) as BlobRef, u.num_examples);
    }
    const mean = live.sum.computeMean();
    // Release the float64 sum before loading the current model: peak memory stays near 4 models.
    live.sum = undefined;
    const currentRef = (JSON.parse(row.model_json) as StoredModel).ref;
    const current = loadWeights(ctx.deps.blobs, currentRef, live.layout);
    const sstate = loadStrategyState(ctx.deps.blobs, row.strategy_json);
    const totalExamples = updates.reduce((s, u) => s + u.num_examples, 0);
    const out = live.strategy.aggregateTrain({
      round,
      current,
      mean,
      totalExamples,
      contributions: updates.length,
      state: sstate,
    });
    const newRef = storeWeights(ctx.deps.blobs, out.weights, { run: runId, round: String(round) });
    const strategyJson = JSON.stringify(storeStrategyState(ctx.deps.blobs, out.state));
    const trainLoss = updates.reduce((s, u) => s + u.train_loss * u.num_examples, 0) / totalExamples;
    const aggregateMs = live.aggregateMs + (performance.now() - started);
    ctx.step(runId, { type: 'phase-closed' }, () => {
      store.updateRun(runId, {
        strategy_json: strategyJson,
      });
      store.upsertRound({
        run_id: runId,
        round,
        trained_at: at,
        model_out: newRef.sha256,
        contributors_json: JSON.stringify(updates.map((u) => u.participant)),
        train_examples: totalExamples,
        train_loss: trainLoss,
        aggregate_ms: aggregateMs,
      });
      store.closeOpenTasks(runId, round, 'train', 'expired', at);
      const logIndex = logModelRelease(ctx, live, {
        round,
        attempt: 0,
        modelIn: currentRef.sha256,
        model: newRef,
        mean,
        contributors: updates.map((u) => u.participant),
        examples: totalExamples,
      });
      store.updateRun(runId, {
        model_json: JSON.stringify({ ref: newRef, logIndex } satisfies StoredModel),
      });
    });
    ctx.publishCheckpoint();
    live.sum = undefined;
    live.folded = new Set();
    ctx.deps.log.info(
      { run: runId, round, contributors: updates.length, trainLoss, aggregateMs: Math.round(aggregateMs) },
      'round aggregated',
    );
  } else if (phase === 'evaluate' && isRegressionSpec(live.config.model)) {
    // Regression: the metrics over every site's holdout rows, from their additive sums.
    const parts: RegressionSums[] = store
      .listRegressionEvaluations(runId, round)
      .filter((e) => live.state.received.includes(e.participant))
      .map((e) => ({
        numExamples: e.num_examples,
        ...(JSON.parse(e.sums_json) as Omit<RegressionSums, 'numExamples'>),
      }));
    const m = combineRegressionEvaluations(parts);
    ctx.step(runId, { type: 'phase-closed' }, () => {
      store.upsertRound({
        run_id: runId,
        round,
        evaluated_at: at,
        eval_examples: m.numExamples,
        eval_loss: m.mse,
        eval_accuracy: null,
      });
      store.setRoundMetrics(runId, round, JSON.stringify({ mse: m.mse, mae: m.mae, rmse: m.rmse, r2: m.r2 }));
      store.closeOpenTasks(runId, round, 'evaluate', 'expired', at);
      ctx.deps.audit.append('evaluated', {
        run: runId,
        round,
        examples: m.numExamples,
        loss: Number.isFinite(m.mse) ? m.mse : null,
        accuracy: null,
      });
    });
    ctx.deps.log.info({ run: runId, round, mse: m.mse, r2: m.r2 }, 'round evaluated');
  } else if (phase === 'evaluate') {
    const results = store
      .listEvaluations(runId, round)
      .filter(
        (e) =>
          live.state.received.includes(e.participant) &&
          e.task_id === plainTaskId(ctx, runId, round, phase, e.participant),
      )
      .map((e) => ({
        participant: e.participant,
        numExamples: e.num_examples,
        loss: e.loss,
        accuracy: e.accuracy,
      }));
    const agg = live.strategy.aggregateEvaluate({ round, results });
    ctx.step(runId, { type: 'phase-closed' }, () => {
      store.upsertRound({
        run_id: runId,
        round,
        evaluated_at: at,
        eval_examples: agg.numExamples,
        eval_loss: agg.loss,
        eval_accuracy: agg.accuracy,
      });
      store.closeOpenTasks(runId, round, 'evaluate', 'expired', at);
      ctx.deps.audit.append('evaluated', {
        run: runId,
        round,
        examples: agg.numExamples,
        loss: Number.isFinite(agg.loss) ? agg.loss : null,
        accuracy: Number.isFinite(agg.accuracy) ? agg.accuracy : null,
      });
    });
    ctx.deps.log.info({ run: runId, round, loss: agg.loss, accuracy: agg.accuracy }, 'round evaluated');
  } else {
    const stats = store
      .listStatistics(runId)
      .filter(
        (s) =>
          live.state.received.includes(s.participant) &&
          s.task_id === plainTaskId(ctx, runId, round, phase, s.participant),
      );
    const dim = live.layout[0]?.shape[1] ?? 0;
    const sum = new Float64Array(dim);
    const sq = new Float64Array(dim);
    let count = 0;
    for (const s of stats) {
      const r = JSON.parse(s.stats_json) as { count: number; sum: number[]; sumSquares: number[] };
      count += r.count;
      for (let j = 0; j < dim; j++) {
        sum[j]! += r.sum[j]!;
        sq[j]! += r.sumSquares[j]!;
      }
    }
    const mean = Array.from(sum, (v) => v / count);
    const std = Array.from(sq, (v, j) => Math.max(1e-6, Math.sqrt(Math.max(0, v / count - mean[j]! ** 2))));
    const standardization: Standardization = { mean, std };
    ctx.step(runId, { type: 'phase-closed' }, () => {
      store.updateRun(runId, { standardization_json: JSON.stringify(standardization) });
      store.closeOpenTasks(runId, round, 'statistics', 'expired', at);
    });
    ctx.deps.log.info(
      { run: runId, contributors: stats.length, examples: count },
      'federated feature statistics merged',
    );
  }
  ctx.tick();
}

/**
 * Appends the aggregate's hash and the new model version with its provenance (an in-toto Statement
 * in a DSSE envelope signed with the log key). Called inside the transaction that stores the model.
 */
function logModelRelease(
  ctx: RunEngineContext,
  live: LiveRun,
  r: {
    round: number;
    attempt: number;
    modelIn: string;
    model: BlobRef;
    mean: readonly Tensor[];
    contributors: string[];
    examples: number;
  },
): number {
  const audit = ctx.deps.audit;
  const runId = live.config.id;
  const h = createHash('sha256');
  for (const t of r.mean) h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  audit.append('aggregate-computed', {
    run: runId,
    round: r.round,
    attempt: r.attempt,
    sha256: h.digest('hex'),
    contributors: r.contributors,
    examples: r.examples,
  });
  const statement = createProvenanceStatement({
    modelSha256: r.model.sha256,
    run: runId,
    round: r.round,
    policySha256: audit.policySha256,
    dataSchemaSha256: live.config.dataSchemaDigest ?? null,
    codeVersion: CODE_VERSION,
    hyperparameters: {
      model: live.config.model,
      strategy: live.config.strategy,
      train: live.config.train,
      secureAggregation: live.config.secureAggregation,
    },
    contributors: r.contributors,
    logIndex: audit.size,
  });
  const provenanceSha256 = audit.storeProvenance(statement);
  return audit.append('model-released', {
    run: runId,
    round: r.round,
    modelIn: r.modelIn,
    modelSha256: r.model.sha256,
    provenanceSha256,
  });
}
