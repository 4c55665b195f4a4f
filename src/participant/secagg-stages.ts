/**
 * A participant's secure sums and later secure-aggregation stages: the first stage of a statistics or
 * evaluation secure sum (computeSecAggSum: its sums from its own rows, encoded, then its session and
 * signed advert), and ShareKeys, MaskedInputCollection, ConsistencyCheck and Unmasking of any round
 * through the session it holds (computeSecAggStage). The decisions are the protocol layer's
 * (protocol/secagg-participant-machine.ts); this file reads data, keys and the log, and records the
 * unmasked attempt durably before its shares are sent.
 */
import { EntenteError } from '../core/errors.ts';
import { parseModelSpec } from '../models/index.ts';
import {
  type SecAggStageTask,
  type SecAggSumTask,
  answerSecAggStage,
  buildSecureSumContext,
  checkModelFitsData,
  checkSecAggFirstTask,
  encodeSecureSum,
} from '../protocol/index.ts';
import { ParticipantSession } from '../secagg/index.ts';
import { checkModelInLog, pinnedKeysFor } from './audit-log-checks.ts';
import { type ParticipantContext, type TaskOutput, sessionKey, toParams } from './participant-context.ts';
import { checkPlanTask, computeEvaluationValues, computeStatisticsValues } from './secure-sum-vector.ts';

/**
 * Stage advertise-keys of a secure sum (statistics or evaluation): derive the round context from the
 * task as the coordinator did, compute this site's sums from its own rows, encode them, then create the
 * session and its signed advert. Nothing is revealed in the clear.
 */
export async function computeSecAggSum(ctx: ParticipantContext, task: SecAggSumTask): Promise<TaskOutput> {
  const { options, log, checkRunApproved } = ctx;
  checkSecAggFirstTask(task, { consortium: ctx.consortium, canSign: options.signing !== undefined });
  const signing = options.signing!;
  const context = buildSecureSumContext(task);
  if (task.plan) {
    // An evaluation plan's job: only a plan the verified log shows approved, exactly as approved.
    if (!checkRunApproved)
      throw new EntenteError(
        'PROTOCOL_VIOLATION',
        'governance: this site needs the audit log to check plans',
        {
          field: 'plan',
        },
      );
    checkPlanTask(task, await checkRunApproved.approvedPlan(task.plan.digest), options.dataSchemaDigest);
  }
  const pinned = await pinnedKeysFor(ctx, context.cohort, signing.keyPem);
  const std = task.standardization ? toParams(task.standardization) : undefined;
  let values: Float64Array;
  if (task.phase === 'statistics') {
    const stats = computeStatisticsValues(task, ctx.split.train);
    values = stats.values;
    if (stats.clipped > 0)
      log.warn(
        { run: task.runId, clipped: stats.clipped, maxAbsFeature: task.maxAbsFeature },
        'feature values were clipped before the statistics sum (reported to this site only)',
      );
  } else {
    if (!task.model)
      throw new EntenteError('INVALID_MESSAGE', 'model: an evaluation sum names its model', {
        field: 'model',
      });
    const spec = parseModelSpec(task.modelSpec);
    checkModelFitsData(spec, ctx.dataShape, options.institution);
    if (!task.plan)
      await checkModelInLog(ctx, { runId: task.runId, model: task.model, modelLog: task.modelLog });
    const weights = await ctx.connection.fetchModel(task.model, spec);
    values = computeEvaluationValues(task, spec, weights, ctx.evaluationRows, std);
  }
  const { session, advert } = ParticipantSession.create({
    context,
    self: options.institution,
    identityKeyPem: signing.keyPem,
    pinnedKeyOf: (member) => pinned.get(member),
    input: encodeSecureSum(task.secureSum, values),
  });
  ctx.sessions.set(sessionKey(task.runId, task.round, task.attempt, task.phase), session);
  log.info(
    { run: task.runId, round: task.round, attempt: task.attempt, phase: task.phase },
    'sums ready; keys advertised for the secure sum',
  );
  return {
    result: { kind: 'secagg-sum', runId: task.runId, round: task.round, attempt: task.attempt, advert },
    chunks: [],
  };
}

/**
 * The later stages of a round (ShareKeys, MaskedInputCollection, ConsistencyCheck, Unmasking) through the
 * session this site holds for the attempt; a protocol violation ends that session.
 */
export async function computeSecAggStage(
  ctx: ParticipantContext,
  task: SecAggStageTask,
): Promise<TaskOutput> {
  const { sessions, unmasked, updateCache } = ctx;
  const key = sessionKey(task.runId, task.round, task.attempt, task.phase);
  const session = sessions.get(key);
  if (!session) {
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      'attempt: no secure-aggregation session of this site for it',
      {
        field: 'attempt',
      },
    );
  }
  try {
    const answer = await answerSecAggStage(session, task);
    if (answer.releasesShares) {
      // Durably noted before the shares leave: no other attempt of this round will be served.
      unmasked.record(task.runId, task.round, task.attempt, task.phase);
      if (!task.phase) updateCache.delete(`${task.runId}/${task.round}`);
    }
    return { result: answer.result, chunks: answer.chunks };
  } catch (err) {
    // A session that saw a protocol violation takes no further part in the round.
    if (err instanceof EntenteError && err.code === 'PROTOCOL_VIOLATION') sessions.delete(key);
    throw err;
  }
}
