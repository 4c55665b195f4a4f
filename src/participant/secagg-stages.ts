/**
 * A participant's secure sums and later secure-aggregation stages: the first stage of a statistics,
 * evaluation or rollout secure sum (computeSecAggSum: its sums from its own rows, encoded, then its
 * session and signed advert; a rollout's in rollout-task.ts), and ShareKeys, MaskedInputCollection,
 * ConsistencyCheck and Unmasking of any round through the session it holds (computeSecAggStage). The
 * decisions are the protocol layer's (protocol/secagg-participant-machine.ts); this file reads data,
 * keys and the log, and records the unmasked attempt durably before its shares are sent.
 */
import { createHash } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { parseModelSpec } from '../models/index.ts';
import {
  type PrivacyReport,
  type SecAggStageTask,
  type SecAggSumTask,
  answerSecAggStage,
  planSecureSumNoise,
  buildSecureSumContext,
  checkModelFitsData,
  checkSecAggFirstTask,
  encodeSecureSum,
} from '../protocol/index.ts';
import { ParticipantSession, type SecAggRoundContext } from '../secagg/index.ts';
import { enforceBudget, spendPrivacy } from './privacy-spending.ts';
import { checkModelInLog, pinnedKeysFor } from './audit-log-checks.ts';
import { type ParticipantContext, type TaskOutput, sessionKey, toParams } from './participant-context.ts';
import { computeRolloutSum } from './rollout-task.ts';
import { checkPlanTask, computeEvaluationValues, computeStatisticsValues } from './secure-sum-vector.ts';
import { computeMonitoringSum } from './monitoring-sums.ts';

/**
 * Stage advertise-keys of a secure sum (statistics, evaluation or a rollout's paired outcomes): derive the round context from the
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
  if (task.phase === 'rollout') {
    // A staged rollout's measurement: governed by the approved rollout in the verified log.
    values = await computeRolloutSum(ctx, task);
  } else if (task.phase === 'statistics') {
    const stats = computeStatisticsValues(task, ctx.split.train);
    values = stats.values;
    if (stats.clipped > 0)
      log.warn(
        { run: task.runId, clipped: stats.clipped, maxAbsFeature: task.maxAbsFeature },
        'feature values were clipped before the statistics sum (reported to this site only)',
      );
  } else if (task.phase === 'monitor') {
    values = await computeMonitoringSum(ctx, task, std);
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
  const { input, privacy } = encodeOwnSum(ctx, task, context, values);
  const { session, advert } = ParticipantSession.create({
    context,
    self: options.institution,
    identityKeyPem: signing.keyPem,
    pinnedKeyOf: (member) => pinned.get(member),
    input,
  });
  ctx.sessions.set(sessionKey(task.runId, task.round, task.attempt, task.phase), session);
  log.info(
    { run: task.runId, round: task.round, attempt: task.attempt, phase: task.phase },
    'sums ready; keys advertised for the secure sum',
  );
  return {
    result: {
      kind: 'secagg-sum',
      runId: task.runId,
      round: task.round,
      attempt: task.attempt,
      advert,
      ...(privacy ? { privacy } : {}),
    },
    chunks: [],
  };
}

/**
 * This site's vector for the sum: encoded exactly, or, when the declaration asks for differential
 * privacy, with its share of noise after its own budget allowed the charge and its ledger recorded it
 * (before anything leaves). A retried attempt of the same sum, with nothing that shapes it changed,
 * sends the same noised vector again (masked afresh): nothing new is spent. A site that requires noised
 * sums refuses an exact one.
 */
function encodeOwnSum(
  ctx: ParticipantContext,
  task: SecAggSumTask,
  context: SecAggRoundContext,
  values: Float64Array,
): { input: BigUint64Array; privacy: PrivacyReport | undefined } {
  if (!task.secureSum.noise) {
    if (ctx.options.site?.requireNoisedSums)
      throw new EntenteError(
        'SITE_POLICY_REFUSED',
        'site.requireNoisedSums: this site adds its statistics and evaluation figures only to sums with differential-privacy noise',
        { field: 'site.requireNoisedSums' },
      );
    return { input: encodeSecureSum(task.secureSum, values), privacy: undefined };
  }
  const roundKey = `${task.runId}/${task.round}/${task.phase}`;
  const key = createHash('sha256')
    .update(
      canonicalizeJson({ sum: task.secureSum, threshold: context.threshold, base: context.baseModelSha256 }),
    )
    .digest('hex');
  const cached = ctx.updateCache.get(roundKey);
  if (cached && cached.key === key && cached.vector instanceof BigUint64Array) {
    ctx.journal('sum-reused', {
      runId: task.runId,
      round: task.round,
      attempt: task.attempt,
      phase: task.phase,
    });
    return { input: cached.vector.slice(), privacy: cached.privacy };
  }
  const plan = planSecureSumNoise(task.secureSum, context.threshold);
  const event = enforceBudget(ctx, {
    run: task.runId,
    round: task.round,
    mechanism: 'zcdp',
    rho: plan.rho,
    neighbouring: 'add-remove-record',
    attempt: task.attempt,
  });
  const input = encodeSecureSum(task.secureSum, values, { plan, bits: ctx.noiseBits });
  const spent = spendPrivacy(ctx, event);
  const privacy = spent ? { ...spent, chargedAttempt: task.attempt } : undefined;
  ctx.updateCache.set(roundKey, { key, vector: input.slice(), privacy, attempt: task.attempt });
  ctx.log.info(
    { run: task.runId, round: task.round, phase: task.phase, rho: plan.rho },
    "noise added to this site's sums; the ledger is charged",
  );
  return { input, privacy };
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
      updateCache.delete(
        task.phase ? `${task.runId}/${task.round}/${task.phase}` : `${task.runId}/${task.round}`,
      );
    }
    return { result: answer.result, chunks: answer.chunks };
  } catch (err) {
    // A session that saw a protocol violation takes no further part in the round.
    if (err instanceof EntenteError && err.code === 'PROTOCOL_VIOLATION') sessions.delete(key);
    throw err;
  }
}
