/**
 * A participant's side of a secure-aggregation attempt without I/O: the checks a first-stage task must
 * pass before any data is touched (a key to sign with, this consortium, segments that match the model),
 * the round context a train task defines, the digest of everything that shapes a noised update (a
 * retried attempt may reuse it), and the answer to each later stage (ShareKeys, MaskedInputCollection,
 * ConsistencyCheck, Unmasking) computed by the pure `ParticipantSession`. The participant's files do
 * the I/O: reading data, keys and the log, charging the ledger, and noting durably that it released
 * unmasking shares (`releasesShares`) before the answer is sent.
 */
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { type ParticipantSession, type SecAggRoundContext, checkRoundContext } from '../secagg/index.ts';
import { createBlobRef } from './blob-ref.ts';
import type { SecAggSumTask, SecAggTrainTask, Task, TaskResult } from './messages.ts';
import { describeTrainSegments } from './secure-sum-round.ts';

/** The tasks of a round's later stages, answered through the session the site holds for the attempt. */
export type SecAggStageTask = Extract<
  Task,
  { kind: 'secagg-share-keys' | 'secagg-masked-input' | 'secagg-consistency-check' | 'secagg-unmasking' }
>;

/** A first-stage task (train or secure sum) is for this site's consortium, and the site can sign. */
export function checkSecAggFirstTask(
  task: SecAggTrainTask | SecAggSumTask,
  site: { readonly consortium: string; readonly canSign: boolean },
): void {
  if (!site.canSign)
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      'secagg: this participant has no identity key to sign with',
      {
        field: 'secagg',
      },
    );
  if (task.secagg.consortium !== site.consortium)
    throw new EntenteError('PROTOCOL_VIOLATION', 'secagg.consortium: not the consortium this site joined', {
      field: 'secagg.consortium',
    });
}

/**
 * The round context of a train round's task: its segments must be the ones the model's layout requires
 * (one definition, protocol/secure-sum-round.ts), and the context must be one a participant accepts
 * (threshold, cohort, ring; secagg/round-context.ts).
 */
export function buildTrainRoundContext(
  task: SecAggTrainTask,
  layout: readonly { readonly name: string; readonly shape: readonly number[] }[],
): SecAggRoundContext {
  const segs = task.secagg.segments;
  if (
    canonicalizeJson(segs) !==
    canonicalizeJson(describeTrainSegments(layout, task.clientDp?.indicatorNoiseStd !== undefined))
  )
    throw new EntenteError('PROTOCOL_VIOLATION', 'secagg.segments: do not match the model layout', {
      field: 'secagg.segments',
    });
  const context: SecAggRoundContext = {
    ...task.secagg,
    runId: task.runId,
    round: task.round,
    baseModelSha256: task.model.sha256,
    options: task.clientDp ? { ...task.train, clientDp: task.clientDp } : task.train,
  };
  checkRoundContext(context);
  return context;
}

/** Everything that shapes this site's noised update of a secure-aggregation round, as one digest. */
export function computeUpdateKey(task: SecAggTrainTask, context: SecAggRoundContext): string {
  return sha256Hex(
    Buffer.from(
      canonicalizeJson({
        model: task.model.sha256,
        modelSpec: task.modelSpec,
        train: task.train,
        standardization: task.standardization ?? null,
        dataSchemaDigest: task.dataSchemaDigest ?? null,
        clientDp: task.clientDp ?? null,
        quantization: context.quantization,
        segments: context.segments,
        maxWeight: context.maxWeight,
        // Client-level DP: each share's noise variance is σ²/t, so the threshold shapes the update.
        threshold: task.clientDp ? context.threshold : null,
      }),
      'utf8',
    ),
  );
}

export interface SecAggStageAnswer {
  readonly result: TaskResult;
  /** The chunks of a masked input to upload before the result. */
  readonly chunks: Uint8Array[];
  /**
   * The answer releases unmasking shares: the site must note the attempt durably (fsynced) before it
   * sends it, so that no other attempt of this round is ever unmasked.
   */
  readonly releasesShares: boolean;
}

/**
 * The answer to a later stage's task through this attempt's session. Throws the session's coded error
 * (PROTOCOL_VIOLATION names the field) when the task is refused; the session then takes no further
 * part (the caller drops it).
 */
export async function answerSecAggStage(
  session: ParticipantSession,
  task: SecAggStageTask,
): Promise<SecAggStageAnswer> {
  const base = { runId: task.runId, round: task.round, attempt: task.attempt };
  switch (task.kind) {
    case 'secagg-share-keys': {
      const out = await session.shareKeys(task.adverts);
      return {
        result: { ...base, kind: 'secagg-share-keys', shares: out.shares },
        chunks: [],
        releasesShares: false,
      };
    }
    case 'secagg-masked-input': {
      const out = session.maskInput(task.shares);
      const bytes = new Uint8Array(out.masked.buffer, out.masked.byteOffset, out.masked.byteLength);
      const { ref, chunks } = createBlobRef(bytes);
      return {
        result: { ...base, kind: 'secagg-masked-input', maskedInput: ref, signature: out.sign(ref.sha256) },
        chunks,
        releasesShares: false,
      };
    }
    case 'secagg-consistency-check':
      return {
        result: {
          ...base,
          kind: 'secagg-consistency-check',
          signature: session.signSurvivors(task.survivors).signature,
        },
        chunks: [],
        releasesShares: false,
      };
    case 'secagg-unmasking': {
      const out = session.unmask(task);
      return {
        result: {
          ...base,
          kind: 'secagg-unmasking',
          selfSeedShares: [...out.selfSeedShares],
          maskingKeyShares: [...out.maskingKeyShares],
        },
        chunks: [],
        releasesShares: true,
      };
    }
  }
}
