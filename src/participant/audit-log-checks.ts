/**
 * What a participant checks against its own verified copy of the audit log before a task touches its
 * data: the identity keys the log pins for a secure-aggregation cohort (pinnedKeysFor) and that the
 * task's model is the one the log records (checkModelInLog).
 */
import { createPublicKey } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import { isSameKey } from '../governance/index.ts';
import type { BlobRef } from '../protocol/index.ts';
import type { ParticipantContext } from './participant-context.ts';

/**
 * Before anything else in a secure-aggregation round: the identity keys this site will check its peers'
 * adverts against, from its own verified copy of the audit log (never from a certificate the CA next to
 * the coordinator could mint). Refuses (PROTOCOL_VIOLATION) without a verified log, when the log pins
 * another key for this site (someone re-enrolled as it), or when a cohort member has no pinned key.
 */
export async function pinnedKeysFor(
  ctx: ParticipantContext,
  cohort: readonly string[],
  ownKeyPem: string,
): Promise<ReadonlyMap<string, Uint8Array>> {
  if (!ctx.checkRunApproved)
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      'secagg: this site verifies no audit log, so it has no pinned identity keys to check peers against',
      { field: 'secagg' },
    );
  const keys = await ctx.checkRunApproved.pinnedKeys();
  const spki = createPublicKey(ownKeyPem).export({ format: 'der', type: 'spki' });
  const institution = ctx.options.institution;
  if (!isSameKey(keys.get(institution), new Uint8Array(spki.subarray(12))))
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      `identity: the audit log does not pin this site's identity key for ${institution} (another key was enrolled under its name)`,
      { field: 'identity' },
    );
  const missing = cohort.filter((m) => !keys.has(m));
  if (missing.length > 0)
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      `secagg.cohort: ${missing.slice(0, 5).join(', ')} ${missing.length === 1 ? 'has' : 'have'} no identity key pinned in the audit log this site verified (not admitted members)`,
      { field: 'secagg.cohort' },
    );
  return keys;
}

/** Before training: the model must be the one the audit log records (when this site witnesses the log). */
export async function checkModelInLog(
  ctx: ParticipantContext,
  task: {
    runId: string;
    model: BlobRef;
    modelLog?: { index: number } | undefined;
  },
): Promise<void> {
  if (!ctx.witness) return;
  if (!task.modelLog) {
    throw new EntenteError(
      'PROTOCOL_VIOLATION',
      'modelLog: the task does not say where the log records its model',
      {
        field: 'modelLog',
      },
    );
  }
  await ctx.witness.checkModel({
    index: task.modelLog.index,
    run: task.runId,
    modelSha256: task.model.sha256,
  });
}
