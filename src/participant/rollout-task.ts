/**
 * A staged rollout's measurement at this site (a `secagg-sum` task with phase `rollout`): checked
 * against the rollout its verified audit log shows running and the declaration it derives itself, both
 * models fetched (or read from its serving directory) with their digests checked, stored for serving,
 * scored on the evaluation rows assigned to the stage (assignRowsToStages), its circuit breaker consulted in the canary and full stages, then its
 * paired-outcome sums. After every rollout task (and at start) `serving.json` is recomputed
 * (serving-assignment.ts).
 */
import { decodeSafetensors } from '../core/safetensors.ts';
import type { Tensor } from '../core/tensor.ts';
import {
  DEFAULT_ROLLOUT_ALIAS,
  type RolloutView,
  assignRowsToStages,
  rolloutAlias,
} from '../governance/index.ts';
import { type ModelSpec, parseModelSpec } from '../models/index.ts';
import {
  type BlobRef,
  type SecAggSumTask,
  type Standardization,
  checkModelFitsData,
} from '../protocol/index.ts';
import { EntenteError } from '../core/errors.ts';
import {
  decideCircuitBreaker,
  reportPendingTrips,
  trippedRefusal,
  tripCircuitBreaker,
} from './circuit-breaker.ts';
import { type ParticipantContext, toParams } from './participant-context.ts';
import {
  type ScoringModel,
  checkRolloutDeclaration,
  checkRolloutTask,
  computeRolloutValues,
  pairedAccuracies,
  rolloutFields,
  scorePairedRows,
} from './rollout-sums.ts';
import { decideServing } from './serving-assignment.ts';

/**
 * Recomputes and writes `serving.json` for `alias` (default: the alias it names now, else
 * `production`) from the verified log. Needs the log check and a serving directory; else does nothing.
 */
export async function refreshServing(ctx: ParticipantContext, alias?: string): Promise<void> {
  const check = ctx.checkRunApproved;
  if (!check || !ctx.serving.dir) return;
  const name = alias ?? ctx.serving.servingAlias() ?? DEFAULT_ROLLOUT_ALIAS;
  const views = await check.rollouts();
  const aliases = await check.aliases();
  const assignment = decideServing(views, aliases, ctx.options.institution, ctx.serving.tripped(), name);
  ctx.serving.writeServing(assignment, new Date().toISOString());
  ctx.log.info({ alias: name, version: assignment.version, rollout: assignment.rollout }, assignment.reason);
}

/** Best effort: a failure to recompute serving is logged, never turned into a refusal. */
async function refreshServingQuietly(ctx: ParticipantContext, alias: string | undefined): Promise<void> {
  try {
    await refreshServing(ctx, alias);
  } catch (err) {
    ctx.log.warn(
      { code: (err as EntenteError).code },
      `serving.json not recomputed: ${(err as Error).message}`,
    );
  }
}

/**
 * After a trip: serving recomputed from the log (the trip now counts), or, when the log cannot be read
 * right now, the tripped rollout's production version written directly.
 */
async function revertToProduction(
  ctx: ParticipantContext,
  digest: string,
  view: RolloutView,
  stage: 'canary' | 'full',
): Promise<void> {
  const alias = rolloutAlias(view.plan);
  try {
    await refreshServing(ctx, alias);
  } catch (err) {
    ctx.serving.writeServing(
      {
        alias,
        version: view.plan.production,
        rollout: digest,
        stage,
        reason: `rollout ${digest.slice(0, 12)}… tripped this site's circuit breaker: its production version, never the candidate`,
      },
      new Date().toISOString(),
    );
    throw err;
  }
}

/** A model of the task: bytes from the serving directory or the coordinator (digest checked), stored. */
async function loadModel(
  ctx: ParticipantContext,
  ref: BlobRef,
  specInput: unknown,
  standardization: Standardization | undefined,
  task: SecAggSumTask,
): Promise<ScoringModel> {
  const spec: ModelSpec = parseModelSpec(specInput);
  checkModelFitsData(spec, ctx.dataShape, ctx.options.institution);
  const bytes = ctx.serving.readModel(ref.sha256) ?? (await ctx.connection.fetchModelBytes(ref));
  const weights: Tensor[] = decodeSafetensors(bytes, { expected: ctx.trainer.describeLayout(spec) }).weights;
  ctx.serving.storeModel(ref.sha256, bytes, {
    modelSpec: specInput,
    standardization: standardization
      ? { mean: [...standardization.mean], std: [...standardization.std] }
      : null,
    dataSchemaDigest: task.dataSchemaDigest ?? null,
  });
  return { spec, weights, standardization: standardization ? toParams(standardization) : undefined };
}

/**
 * This site's paired-outcome sums for a rollout task, after every check; throws PROTOCOL_VIOLATION
 * (a task the verified log does not support), SITE_POLICY_REFUSED (its circuit breaker) or the model
 * and data errors of any evaluation.
 */
export async function computeRolloutSum(ctx: ParticipantContext, task: SecAggSumTask): Promise<Float64Array> {
  const check = ctx.checkRunApproved;
  if (!check)
    throw new EntenteError('PROTOCOL_VIOLATION', 'rollout: this site needs the audit log to check rollouts', {
      field: 'rollout',
    });
  const { rollout, production, model, paired } = rolloutFields(task);
  let view: RolloutView | undefined;
  try {
    await reportPendingTrips(ctx);
    const tripped = ctx.serving.record(rollout.digest)?.tripped;
    if (tripped) throw trippedRefusal(rollout.digest, tripped);
    view = await check.approvedRollout(rollout.digest);
    checkRolloutTask(task, view, ctx.options.institution);
    checkRolloutDeclaration(task);
    const candidate = await loadModel(ctx, model, task.modelSpec, task.standardization, task);
    const current = await loadModel(
      ctx,
      production.model,
      production.modelSpec,
      production.standardization,
      task,
    );
    // Each labelled row is scored in one stage only (as fresh traffic would be): two stages' sums are
    // over disjoint rows, so their difference isolates no site even where the stages' sites differ.
    const stageIndex = view.plan.stages.findIndex((s) => s.name === rollout.stage);
    const inStage = assignRowsToStages(
      rollout.digest,
      ctx.evaluationRows.data.count,
      view.plan.stages.length,
    );
    const rows = scorePairedRows(candidate, current, ctx.evaluationRows.data, paired.maxRowLoss).filter(
      (_, i) => inStage[i] === stageIndex,
    );
    const breaker = ctx.options.site?.circuitBreaker;
    const stage = rollout.stage;
    const served = view;
    if (breaker && (stage === 'canary' || stage === 'full')) {
      const accuracy = pairedAccuracies(rows);
      const reason = decideCircuitBreaker(breaker, accuracy);
      if (reason) {
        await tripCircuitBreaker(ctx, {
          digest: rollout.digest,
          stage,
          candidateAccuracy: accuracy.candidateAccuracy!,
          productionAccuracy: accuracy.productionAccuracy!,
          reason,
          revert: () => revertToProduction(ctx, rollout.digest, served, stage),
        });
      }
    }
    return computeRolloutValues(task, rows);
  } finally {
    await refreshServingQuietly(ctx, view ? rolloutAlias(view.plan) : undefined);
  }
}
