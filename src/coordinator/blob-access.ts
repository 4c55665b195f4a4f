/**
 * Who may read a stored blob chunk: access is decided on the objects that refer to it, not only on the
 * route. A chunk is readable by a caller when at least one row referring to it entitles that caller:
 *
 * - a model a task gave a participant (a round's input model) → that participant;
 * - an update or any chunk a participant uploaded (plain or masked) → its uploader only;
 * - a run's final model → under a policy, only after its release-model quorum approved exactly that
 *   model, to the members the released-model route serves; without a policy, the operator;
 * - a run's current model before completion and its strategy state → nobody outside the coordinator.
 *
 * A chunk no row refers to is readable by nobody. The refusal for a chunk the caller may not read is the
 * one for a chunk that does not exist (see `blobNotAvailable`), so the answer never tells which it is.
 */
import { EntenteError } from '../core/errors.ts';
import type { MemberRole } from '../governance/index.ts';
import type { BlobReference } from '../storage/index.ts';
import { routeAccess } from './access.ts';

export interface BlobReader {
  readonly id: string;
  readonly roles: readonly MemberRole[];
}

export interface BlobAccessContext {
  /** A consortium policy is in force (the final model then leaves only after its release quorum). */
  readonly governed: boolean;
  /** The model (SHA-256) a release-model quorum approved for `runId`, if any. */
  readonly releasedModelOf: (runId: string) => string | undefined;
}

/** Members that may read a released final model: the same roles the released-model route serves. */
const finalModelReaders: readonly MemberRole[] = routeAccess['GET /v1/runs/:runId/model'];

/** Whether `reader` may have run `runId`'s final model `sha256` (the run is completed). */
export function mayReadFinalModel(
  reader: BlobReader,
  runId: string,
  sha256: string,
  context: BlobAccessContext,
): boolean {
  if (!context.governed) return reader.roles.includes('coordinator-operator');
  return context.releasedModelOf(runId) === sha256 && reader.roles.some((r) => finalModelReaders.includes(r));
}

function grants(reader: BlobReader, ref: BlobReference, context: BlobAccessContext): boolean {
  switch (ref.kind) {
    case 'task-model':
    case 'update':
    case 'upload':
      return ref.participant === reader.id;
    case 'run-model':
      return ref.status === 'completed' && mayReadFinalModel(reader, ref.runId, ref.blob.sha256, context);
    case 'strategy-state':
      return false;
  }
}

/** True when one of `references` (the rows that refer to a chunk) entitles `reader` to read it. */
export function mayReadBlob(
  reader: BlobReader,
  references: readonly BlobReference[],
  context: BlobAccessContext,
): boolean {
  return references.some((ref) => grants(reader, ref, context));
}

/** The one refusal for a chunk that is unknown, absent or not the caller's to read. */
export function blobNotAvailable(sha256: string): EntenteError {
  return new EntenteError(
    'NOT_FOUND',
    `blob ${sha256.slice(0, 12)}… is not stored or not available to this member`,
    { field: 'sha256' },
  );
}
