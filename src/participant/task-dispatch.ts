/**
 * How a participant computes one task: a dry run answered from its own policy, ledger and schema; for
 * every other task, first the checks made before any data is touched (site policy, the run's approval
 * and settings in the verified audit log, the model fitting its records, at most one unmasked sum per
 * round), then the task's handler (secagg-train.ts, secagg-stages.ts, plain-tasks.ts).
 */
import { EntenteError } from '../core/errors.ts';
import { builtinTrainer, parseModelSpec } from '../models/index.ts';
import { type Task, checkModelFitsData } from '../protocol/index.ts';
import type { ParticipantContext, TaskOutput } from './participant-context.ts';
import { computeEvaluate, computeStatistics, computeTrain } from './plain-tasks.ts';
import { computeReveal } from './evaluation-reveal.ts';
import { computeSecAggStage, computeSecAggSum } from './secagg-stages.ts';
import { computeSecAggTrain } from './secagg-train.ts';
import { checkSitePolicy } from './site-config.ts';
import { answerPlan } from './site-plan.ts';
import { checkTaskConformance, checkTaskSchemaDigest } from './task-conformance.ts';
import { computeBuiltinTrainerDigest } from './trainer-digest.ts';

/** The site's own limits, checked before any data is touched. */
export function enforceSitePolicy(ctx: ParticipantContext, task: Task): void {
  const { options, trainer } = ctx;
  checkTaskSchemaDigest(task, options.dataSchemaDigest);
  const site = options.site;
  if (!site) return;
  if (
    task.kind !== 'statistics' &&
    task.kind !== 'train' &&
    task.kind !== 'evaluate' &&
    task.kind !== 'secagg-train' &&
    task.kind !== 'secagg-sum'
  )
    return;
  const modelKind =
    'modelSpec' in task && task.modelSpec && typeof task.modelSpec === 'object'
      ? String((task.modelSpec as { kind?: unknown }).kind)
      : undefined;
  checkSitePolicy(site, {
    kind: task.kind,
    secureAggregation: task.kind === 'secagg-train' || task.kind === 'secagg-sum',
    cohortSize:
      task.kind === 'secagg-train' || task.kind === 'secagg-sum' ? task.secagg.cohort.length : undefined,
    modelKind,
    trainerId: trainer.id,
    trainerDigest: trainer === builtinTrainer ? computeBuiltinTrainerDigest() : undefined,
    dataSchemaDigest: task.dataSchemaDigest,
  });
}

export async function computeTask(ctx: ParticipantContext, task: Task): Promise<TaskOutput> {
  const { options, trainer, checkRunApproved } = ctx;
  if (task.kind === 'plan') {
    // A dry run: answered from this site's own policy, ledger and schema; no data is touched.
    const answer = answerPlan({
      institution: options.institution,
      config: task.config,
      cohortSize: task.cohortSize,
      site: options.site,
      budget: options.privacyBudget,
      ledger: ctx.ledger.events(),
      trainerId: trainer.id,
      trainerDigest: trainer === builtinTrainer ? computeBuiltinTrainerDigest() : undefined,
      dataSchemaDigest: options.dataSchemaDigest,
      dataShape: ctx.dataShape,
    });
    ctx.journal('plan-answered', { runId: task.runId, go: answer.go });
    return { result: { kind: 'plan', runId: task.runId, round: task.round, ...answer }, chunks: [] };
  }
  enforceSitePolicy(ctx, task);
  if (
    options.requireApprovedRuns &&
    (task.kind === 'statistics' ||
      task.kind === 'train' ||
      task.kind === 'evaluate' ||
      task.kind === 'secagg-train' ||
      // An evaluation plan's, a rollout's and a monitoring measurement's sums are governed by their own
      // approved proposals or the log's model records (checked by their handlers), not by a start-run approval.
      (task.kind === 'secagg-sum' && !task.plan && task.phase !== 'rollout' && task.phase !== 'monitor'))
  ) {
    if (!checkRunApproved)
      throw new EntenteError(
        'PROTOCOL_VIOLATION',
        'governance: this site needs the audit log to check runs',
        {
          field: 'run',
        },
      );
    // Before any data is touched: the log must show this run approved by the policy's quorum.
    await checkRunApproved.check(task.runId);
    // And the task must carry the settings the quorum approved, not others.
    checkTaskConformance(task, checkRunApproved.approvedConfig(task.runId)!);
  }
  if (task.kind === 'train' || task.kind === 'evaluate' || task.kind === 'secagg-train')
    // A model that does not fit this site's records cannot be executed here: said once, as a refusal.
    checkModelFitsData(parseModelSpec(task.modelSpec), ctx.dataShape, options.institution);
  if (
    task.kind === 'secagg-train' ||
    task.kind === 'secagg-sum' ||
    task.kind === 'secagg-share-keys' ||
    task.kind === 'secagg-masked-input' ||
    task.kind === 'secagg-consistency-check' ||
    task.kind === 'secagg-unmasking'
  ) {
    // At most one unmasked sum per (run, round, phase): no stage of another attempt of a round this
    // site already unmasked, not even training (which would spend privacy for nothing).
    ctx.unmasked.check(task.runId, task.round, task.attempt, task.phase);
  }
  if (task.kind === 'evaluation-reveal') return computeReveal(ctx, task);
  if (task.kind === 'secagg-train') return computeSecAggTrain(ctx, task);
  if (task.kind === 'secagg-sum') return computeSecAggSum(ctx, task);
  if (
    task.kind === 'secagg-share-keys' ||
    task.kind === 'secagg-masked-input' ||
    task.kind === 'secagg-consistency-check' ||
    task.kind === 'secagg-unmasking'
  ) {
    return computeSecAggStage(ctx, task);
  }
  if (task.kind === 'statistics') return computeStatistics(ctx, task);
  if (task.kind === 'evaluate') return computeEvaluate(ctx, task);
  return computeTrain(ctx, task);
}
