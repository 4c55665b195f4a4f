/**
 * The registry as one view of the log: every model version with its lineage, the aliases pointing at
 * it, and a version named either by its digest (or a unique prefix of at least 8 hex digits) or by an
 * alias. Pure.
 */
import { EntenteError } from '../core/errors.ts';
import { type AliasReplay, replayAliasMoves } from './alias-table.ts';
import { isAliasName } from './alias-name.ts';
import {
  collectModelVersions,
  type ModelVersion,
  type ModelVersionCollection,
  type RegistryEntry,
} from './model-versions.ts';

export interface RegistryView extends ModelVersionCollection, AliasReplay {}

/** Versions, plans, run configurations and the alias table replayed from `entries`. */
export function buildRegistryView(entries: readonly RegistryEntry[]): RegistryView {
  const collection = collectModelVersions(entries);
  return { ...collection, ...replayAliasMoves(entries, collection.versions) };
}

/** The aliases currently pointing at `version`. */
export function aliasesOf(view: RegistryView, version: string): string[] {
  return view.aliases.filter((a) => a.version === version).map((a) => a.alias);
}

/**
 * The version `ref` names: an alias, a full digest, or a unique digest prefix (8+ hex digits).
 * Throws NOT_FOUND (field `field`) when none, CONFLICT when a prefix is ambiguous, INVALID_ARGUMENT
 * when `ref` is neither an alias name nor hex.
 */
export function resolveVersion(view: RegistryView, ref: string, field = 'version'): ModelVersion {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > 64)
    throw new EntenteError('INVALID_ARGUMENT', `${field}: must be a version digest or an alias`, { field });
  const alias = view.aliases.find((a) => a.alias === ref);
  if (alias) {
    const v = view.versions.find((x) => x.id === alias.version);
    if (v) return v;
  }
  if (/^[0-9a-f]{8,64}$/.test(ref)) {
    const matches = view.versions.filter((v) => v.id.startsWith(ref));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1)
      throw new EntenteError('CONFLICT', `${field}: "${ref}" is the prefix of ${matches.length} versions`, {
        field,
      });
  } else if (!isAliasName(ref))
    throw new EntenteError('INVALID_ARGUMENT', `${field}: must be a version digest or an alias`, { field });
  throw new EntenteError('NOT_FOUND', `${field}: no model version or alias "${ref}"`, { field });
}
