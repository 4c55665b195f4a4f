/**
 * A site's own evaluation figures of an evaluation plan, revealed in the clear only with three consents:
 * the plan asks for per-site figures (`perSite`, approved by its quorum), the policy in force allows it
 * (`exchange.perSiteEvaluation`, both read from this site's own verified copy of the log), and this
 * site's own policy says `revealEvaluation: true`. The task must be exactly what the plan pre-registered
 * (checkPlanTask). The coordinator logs every answer as a disclosure; this site journals it too.
 */
import { EntenteError } from '../core/errors.ts';
import { parseModelSpec } from '../models/index.ts';
import { type EvaluationRevealTask, checkModelFitsData } from '../protocol/index.ts';
import { type ParticipantContext, type TaskOutput, toParams } from './participant-context.ts';
import { checkPlanTask, computeRevealValues } from './secure-sum-vector.ts';

export async function computeReveal(
  ctx: ParticipantContext,
  task: EvaluationRevealTask,
): Promise<TaskOutput> {
  const { options, checkRunApproved } = ctx;
  if (!options.site?.revealEvaluation)
    throw new EntenteError(
      'SITE_POLICY_REFUSED',
      'site.revealEvaluation: this site does not reveal its own evaluation figures (its figures are only in secure sums)',
      { field: 'site.revealEvaluation' },
    );
  if (!checkRunApproved)
    throw new EntenteError('PROTOCOL_VIOLATION', 'governance: this site needs the audit log to check plans', {
      field: 'plan',
    });
  const plan = await checkRunApproved.approvedPlan(task.plan.digest);
  if (plan.perSite !== true)
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      'plan.perSite: the approved plan asks for no per-site figures',
      {
        field: 'plan.perSite',
      },
    );
  if (!(await checkRunApproved.perSiteEvaluationAllowed()))
    throw new EntenteError(
      'POLICY_REFUSED',
      'policy.exchange.perSiteEvaluation: the policy in force does not allow per-site evaluation figures',
      { field: 'policy.exchange.perSiteEvaluation' },
    );
  checkPlanTask({ ...task, phase: 'evaluate' }, plan, options.dataSchemaDigest);
  if ((plan.evaluation as { dp?: unknown }).dp !== undefined)
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      'evaluation.dp: a plan with differential privacy reveals no per-site figures (they would carry no noise)',
      { field: 'evaluation.dp' },
    );
  const spec = parseModelSpec(task.modelSpec);
  checkModelFitsData(spec, ctx.dataShape, options.institution);
  const weights = await ctx.connection.fetchModel(task.model, spec);
  const sums = computeRevealValues(
    task,
    spec,
    weights,
    ctx.evaluationRows,
    task.standardization ? toParams(task.standardization) : undefined,
  );
  ctx.journal('evaluation-revealed', {
    runId: task.runId,
    round: task.round,
    plan: task.plan.digest,
    label: task.plan.label,
  });
  ctx.log.warn(
    { plan: task.plan.digest, label: task.plan.label },
    "this site's own evaluation figures were revealed to the consortium (its policy allows it; logged as a disclosure)",
  );
  return {
    result: { kind: 'evaluation-reveal', runId: task.runId, round: task.round, sums: Array.from(sums) },
    chunks: [],
  };
}
