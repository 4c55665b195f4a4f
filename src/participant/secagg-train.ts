/**
 * A participant's first stage of a secure-aggregation training round (advertise-keys): it trains
 * (charging its ledger first), clips, quantizes and, under client-level DP, noises the weighted delta
 * with its own randomness, then creates its session and signed advert. A retried attempt of a round not
 * unmasked yet reuses the update built for the earlier attempt when nothing that shapes it changed
 * (computeUpdateKey). The task's checks, its round context and the noise plan are the protocol and
 * privacy layers' (protocol/secagg-participant-machine.ts, privacy/client-noise.ts).
 */
import { applyStandardization } from '../data/index.ts';
import { parseModelSpec } from '../models/index.ts';
import { computeClientNoisePlan } from '../privacy/index.ts';
import {
  type PrivacyReport,
  type SecAggTrainTask,
  buildTrainRoundContext,
  checkSecAggFirstTask,
  computeUpdateKey,
} from '../protocol/index.ts';
import {
  ParticipantSession,
  type RingVector,
  countVectorWords,
  createUniformSource,
  quantizeInto,
  writeIntegerWord,
} from '../secagg/index.ts';
import { checkModelInLog, pinnedKeysFor } from './audit-log-checks.ts';
import { addDiscreteGaussianShare, clipL2Norm, writeSignedWord } from './client-dp.ts';
import { type ParticipantContext, type TaskOutput, sessionKey, toParams } from './participant-context.ts';
import { enforceBudget, planPrivacy, spendPrivacy, trainWithPrivateRandomness } from './privacy-spending.ts';

/** Stage advertise-keys: train, clip and quantize the weighted delta, then create the session and advert. */
export async function computeSecAggTrain(
  ctx: ParticipantContext,
  task: SecAggTrainTask,
): Promise<TaskOutput> {
  const { options, log, trainer, split, sessions, updateCache } = ctx;
  checkSecAggFirstTask(task, { consortium: ctx.consortium, canSign: options.signing !== undefined });
  const signing = options.signing!;
  const spec = parseModelSpec(task.modelSpec);
  const layout = trainer.describeLayout(spec);
  const segs = task.secagg.segments;
  const context = buildTrainRoundContext(task, layout);
  const pinned = await pinnedKeysFor(ctx, context.cohort, signing.keyPem);
  await checkModelInLog(ctx, task);
  const roundKey = `${task.runId}/${task.round}`;
  const updateKey = computeUpdateKey(task, context);
  const cached = updateCache.get(roundKey);
  let vector: RingVector;
  let privacy: PrivacyReport | undefined;
  let trained: { meanLoss: number; numExamples: number } | undefined;
  if (cached && cached.key === updateKey) {
    // A retried attempt of a round not unmasked yet, with everything that shapes the update unchanged:
    // the noised update of the earlier attempt is sent again (masked afresh), so nothing new is spent.
    vector = cached.vector.slice();
    privacy = cached.privacy;
    ctx.journal('update-reused', {
      runId: task.runId,
      round: task.round,
      attempt: task.attempt,
      trainedFor: cached.attempt,
    });
    log.info(
      { run: task.runId, round: task.round, attempt: task.attempt, trainedFor: cached.attempt },
      'retried attempt: reusing the update trained for an earlier attempt (no new training, no new privacy spend)',
    );
  } else {
    const built = await buildUpdate();
    vector = built.vector;
    privacy = built.spent ? { ...built.spent, chargedAttempt: task.attempt } : undefined;
    trained = built.out;
    for (const k of updateCache.keys()) if (k.startsWith(`${task.runId}/`)) updateCache.delete(k);
    updateCache.set(roundKey, { key: updateKey, vector: vector.slice(), privacy, attempt: task.attempt });
  }
  /** Trains (charging the ledger first), then clips, quantizes and noises the weighted delta. */
  async function buildUpdate() {
    const base = await ctx.connection.fetchModel(task.model, spec);
    const std = task.standardization ? toParams(task.standardization) : undefined;
    const data = std ? applyStandardization(split.train, std) : split.train;
    const words = countVectorWords(context);
    const clientNoise = task.clientDp
      ? computeClientNoisePlan({
          ...task.clientDp,
          scale: context.quantization.scale,
          threshold: context.threshold,
          dimensions: segs[layout.length]!.offsetWords,
        })
      : undefined;
    const privacyEvent = clientNoise
      ? enforceBudget(ctx, {
          run: task.runId,
          round: task.round,
          mechanism: 'zcdp',
          rho: clientNoise.rho,
          neighbouring: 'add-remove-institution',
          attempt: task.attempt,
        })
      : planPrivacy(ctx, task, task.attempt);
    const out = trainWithPrivateRandomness(ctx, task, spec, base, data);
    const spent = spendPrivacy(ctx, privacyEvent);
    // Client-level DP: every institution counts once (weight 1) and its whole update is clipped to C.
    const weight = clientNoise ? 1 : Math.min(out.numExamples, context.maxWeight);
    const ratio = clientNoise ? 1 : weight / context.maxWeight;
    const deltas = out.weights.map((t, i) => {
      const before = base[i]!.data;
      const delta = new Float32Array(t.data.length);
      for (let j = 0; j < delta.length; j++) delta[j] = (t.data[j]! - before[j]!) * ratio;
      return delta;
    });
    const normBeforeClip = clientNoise ? clipL2Norm(deltas, task.clientDp!.clipNorm) : 0;
    const vector: RingVector =
      context.quantization.ringBits === 32 ? new Uint32Array(words) : new BigUint64Array(words);
    const uniform = createUniformSource();
    let clipped = 0;
    for (const [i, delta] of deltas.entries())
      clipped += quantizeInto(delta, vector, segs[i]!.offsetWords, context.quantization, uniform).clipped;
    if (clientNoise) {
      const tensorWords = segs[layout.length]!.offsetWords;
      addDiscreteGaussianShare(vector, tensorWords, clientNoise.shareVariance, ctx.noiseBits, 0);
      if (clientNoise.indicator) {
        // Adaptive clipping: 2b−1 (b: this update needed no clipping) plus this site's share of its noise.
        const at = segs[layout.length]!.offsetWords;
        writeSignedWord(vector, at, normBeforeClip <= task.clientDp!.clipNorm ? 1 : -1);
        addDiscreteGaussianShare(vector, 1, clientNoise.indicator.shareVariance, ctx.noiseBits, at);
      }
    }
    writeIntegerWord(vector, segs.at(-1)!.offsetWords, weight);
    if (clipped > 0) {
      log.warn(
        {
          run: task.runId,
          round: task.round,
          clipped,
          of: words - 1,
          clipRange: context.quantization.clipRange,
        },
        'update values were clipped before secure aggregation (reported to this site only)',
      );
    }
    return { vector, spent, out };
  }
  const { session, advert } = ParticipantSession.create({
    context,
    self: options.institution,
    identityKeyPem: signing.keyPem,
    // Peers are checked against the keys pinned in this site's own verified copy of the log only.
    pinnedKeyOf: (member) => pinned.get(member),
    input: vector,
  });
  for (const key of sessions.keys()) if (key.startsWith(`${task.runId}/`)) sessions.delete(key);
  sessions.set(sessionKey(task.runId, task.round, task.attempt), session);
  log.info(
    {
      run: task.runId,
      round: task.round,
      attempt: task.attempt,
      ...(trained ? { trainLoss: trained.meanLoss, examples: trained.numExamples } : { reused: true }),
    },
    'update ready; keys advertised for secure aggregation',
  );
  return {
    result: {
      kind: 'secagg-train',
      runId: task.runId,
      round: task.round,
      attempt: task.attempt,
      advert,
      ...(privacy ? { privacy } : {}),
    },
    chunks: [],
  };
}
