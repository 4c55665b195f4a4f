/**
 * Model aliases in the governance trail: each `alias-moved` entry must follow the approval of a
 * move-alias proposal whose subject is exactly {alias, version, previous}, apply it once, start from
 * the version the alias points at (null for a new alias) and name a model version the log recorded
 * before it (a `model-initialized` or `model-released` entry). Called by verify-trail.ts, which
 * re-checks the quorum of every approval. The alias-name rule is declared again in registry/ (sibling
 * folders do not import each other).
 */

const ALIAS_NAME = /^[a-z0-9-]{1,40}$/;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

interface TrailEntryLike {
  readonly kind: string;
  readonly index: number;
  readonly [field: string]: unknown;
}

export interface AliasTrail {
  /** Notes a model version from a model-initialized or model-released entry. */
  recordVersion(entry: TrailEntryLike): void;
  /** Checks an alias-moved entry; `approvedSubject` is the subject of the approved move-alias proposal it
   *  names (undefined when there is none; the caller has reported why). */
  checkMove(entry: TrailEntryLike, approvedSubject: unknown): void;
  /** The alias table at the end: alias → version. */
  table(): ReadonlyMap<string, string>;
  facts(): string[];
}

export function createAliasTrail(bad: (index: number, message: string) => void): AliasTrail {
  const versions = new Set<string>();
  const aliases = new Map<string, string>();
  const applied = new Set<string>();
  let moves = 0;
  return {
    recordVersion(e) {
      if (typeof e.modelSha256 === 'string') versions.add(e.modelSha256);
    },
    checkMove(e, approvedSubject) {
      const alias = str(e.alias);
      const what = `alias "${alias.slice(0, 40)}"`;
      if (!ALIAS_NAME.test(alias)) {
        bad(e.index, `${what} is not a valid alias name`);
        return;
      }
      if (approvedSubject === undefined) return;
      const s = (approvedSubject ?? {}) as { alias?: unknown; version?: unknown; previous?: unknown };
      const previous = e.previous ?? null;
      if (s.alias !== alias || s.version !== e.version || (s.previous ?? null) !== previous) {
        bad(e.index, `${what}: the move is not the one its proposal approved`);
        return;
      }
      if (applied.has(str(e.proposal))) {
        bad(e.index, `${what}: its move-alias proposal was already applied`);
        return;
      }
      const current = aliases.get(alias) ?? null;
      if (current !== previous) {
        bad(
          e.index,
          `${what}: the move starts from ${typeof previous === 'string' ? previous.slice(0, 12) : 'nothing'}, but the alias points at ${current?.slice(0, 12) ?? 'nothing'}`,
        );
        return;
      }
      if (!versions.has(str(e.version))) {
        bad(
          e.index,
          `${what}: ${str(e.version).slice(0, 12)}… is not a model version the log recorded before`,
        );
        return;
      }
      applied.add(str(e.proposal));
      aliases.set(alias, str(e.version));
      moves++;
    },
    table: () => aliases,
    facts: () =>
      moves === 0 && aliases.size === 0
        ? []
        : [`model aliases: ${moves} moves re-checked, ${aliases.size} aliases`],
  };
}
