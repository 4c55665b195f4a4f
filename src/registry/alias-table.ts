/**
 * Named aliases (`candidate`, `canary`, `production`, …) replayed from the audit log. An alias moves
 * only by an approved move-alias proposal whose subject is {alias, version, previous}, or by an approved
 * staged rollout on completion (its approve-rollout proposal; the move its plan names): the move names
 * the proposal, the version it points the alias at, and the version it pointed at before (null for a
 * new alias), so two approved moves of one alias cannot both apply: the second names a stale previous
 * version. The replay refuses (lists as a problem, and does not apply) a move without an approved
 * proposal before it, one whose fields differ from its proposal's subject, one that reuses a proposal,
 * one whose previous version is not the alias's current one, and one naming a version the log has not
 * recorded. Quorums are re-checked by the governance trail (governance/verify-trail.ts); this replay
 * takes the log's approvals as logged.
 */
import { isAliasName } from './alias-name.ts';
import type { ModelVersion, RegistryEntry } from './model-versions.ts';

/** The subject of a move-alias proposal (what its subjectSha256 digests, canonical JSON). */
export interface AliasMoveSubject {
  readonly alias: string;
  readonly version: string;
  readonly previous: string | null;
}

export interface AliasMove extends AliasMoveSubject {
  readonly proposal: string;
  /** The alias-moved entry's index and time (ms since the epoch). */
  readonly entry: number;
  readonly at: number;
}

export interface AliasState {
  readonly alias: string;
  readonly version: string;
  /** The move that set it. */
  readonly since: AliasMove;
  /** Every applied move of this alias, oldest first. */
  readonly history: readonly AliasMove[];
}

export interface AliasReplay {
  /** Current target of each alias, sorted by name. */
  readonly aliases: readonly AliasState[];
  readonly problems: ReadonlyArray<{ readonly index: number; readonly message: string }>;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const isHex64 = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);

/** Parses a move-alias subject; undefined when malformed. */
export function readAliasMoveSubject(value: unknown): AliasMoveSubject | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const { alias, version, previous, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0 || !isAliasName(alias) || !isHex64(version)) return undefined;
  if (previous !== null && !isHex64(previous)) return undefined;
  return { alias, version, previous };
}

/**
 * The alias move an approved staged rollout makes on completion: its plan's alias (default
 * `production`) from its `production` version to its `candidate`. That the rollout completed first is
 * checked by the governance trail (governance/rollout-trail.ts). Undefined when malformed.
 */
function rolloutAliasMove(plan: unknown): AliasMoveSubject | undefined {
  if (plan === null || typeof plan !== 'object' || Array.isArray(plan)) return undefined;
  const { alias = 'production', candidate, production } = plan as Record<string, unknown>;
  if (!isAliasName(alias) || !isHex64(candidate) || (production !== null && !isHex64(production)))
    return undefined;
  return { alias, version: candidate, previous: production };
}

/**
 * Replays the alias moves of `entries` (log order) against the model versions the log recorded
 * before each move (`versions`, from collectModelVersions: only those whose entry precedes the move
 * count). Pure; never throws.
 */
export function replayAliasMoves(
  entries: readonly RegistryEntry[],
  versions: readonly ModelVersion[],
): AliasReplay {
  const problems: { index: number; message: string }[] = [];
  const firstSeen = new Map(versions.map((v) => [v.id, v.entry] as const));
  const proposals = new Map<string, { subject: AliasMoveSubject | undefined; approved: boolean }>();
  const used = new Set<string>();
  const table = new Map<string, AliasState>();
  for (const e of entries) {
    if (e.kind === 'proposal-created' && e.proposalKind === 'move-alias')
      proposals.set(str(e.proposal), { subject: readAliasMoveSubject(e.subject), approved: false });
    else if (e.kind === 'proposal-created' && e.proposalKind === 'approve-rollout')
      proposals.set(str(e.proposal), { subject: rolloutAliasMove(e.subject), approved: false });
    else if (e.kind === 'proposal-decided' && e.outcome === 'approved') {
      const p = proposals.get(str(e.proposal));
      if (p) p.approved = true;
    } else if (e.kind === 'alias-moved') {
      const move: AliasMove = {
        alias: str(e.alias),
        version: str(e.version),
        previous: isHex64(e.previous) ? e.previous : null,
        proposal: str(e.proposal),
        entry: e.index,
        at: typeof e.at === 'number' ? e.at : 0,
      };
      const why = refusal(move, proposals.get(move.proposal), used, table, firstSeen);
      if (why !== undefined) {
        problems.push({ index: e.index, message: `alias "${move.alias.slice(0, 40)}": ${why}` });
        continue;
      }
      used.add(move.proposal);
      const history = [...(table.get(move.alias)?.history ?? []), move];
      table.set(move.alias, { alias: move.alias, version: move.version, since: move, history });
    }
  }
  const aliases = [...table.values()].sort((a, b) => (a.alias < b.alias ? -1 : a.alias > b.alias ? 1 : 0));
  return { aliases, problems };
}

function refusal(
  move: AliasMove,
  proposal: { subject: AliasMoveSubject | undefined; approved: boolean } | undefined,
  used: ReadonlySet<string>,
  table: ReadonlyMap<string, AliasState>,
  firstSeen: ReadonlyMap<string, number>,
): string | undefined {
  if (!isAliasName(move.alias)) return 'not a valid alias name';
  if (!proposal) return 'moved without a move-alias proposal in the log before it';
  if (!proposal.approved) return 'moved before (or without) the approval of its move-alias proposal';
  if (used.has(move.proposal)) return 'its move-alias proposal was already applied';
  const s = proposal.subject;
  if (!s || s.alias !== move.alias || s.version !== move.version || s.previous !== move.previous)
    return 'the move is not the one its proposal approved';
  const current = table.get(move.alias)?.version ?? null;
  if (current !== move.previous)
    return `the move starts from ${move.previous?.slice(0, 12) ?? 'nothing'}, but the alias points at ${current?.slice(0, 12) ?? 'nothing'}`;
  const seen = firstSeen.get(move.version);
  if (seen === undefined || seen > move.entry)
    return `version ${move.version.slice(0, 12)}… is not a model version recorded before the move`;
  return undefined;
}
