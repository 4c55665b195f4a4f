/**
 * N-of-M quorum rules that nest ("2 of {A, B, C} and auditor X"), evaluated as a recursive, monotone
 * predicate over the set of members whose signatures verified — the shape of transparency-dev/tessera
 * witness groups (witness.go), applied to consortium approvals (issue 6, DESIGN.md §6.3).
 *
 * A rule is one of
 *   { "member": id }                          that member signs;
 *   { "of": k, "members": [id | rule, ...] }  at least k of the entries are satisfied;
 *   { "all": [rule, ...] }                    every rule is satisfied.
 * "any of" is { "of": 1, ... }. Each signer counts once: signers are a set and the same member named
 * twice in one group counts once. Signers the rule never names have no effect.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';

/** A consortium member id: 1–64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit. */
export const memberIdSchema = z
  .string()
  .max(64, 'must be at most 64 characters')
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "_" or "-" (a member id)');

export type QuorumRule =
  | { readonly member: string }
  | { readonly of: number; readonly members: readonly (string | QuorumRule)[] }
  | { readonly all: readonly QuorumRule[] };

/** The largest group or nesting we accept; real consortia are far smaller. */
const MAX_GROUP_ENTRIES = 1000;

/** The member a direct group entry names ('a' or {member: 'a'}), else undefined. Total on any value,
 *  because zod runs the group refinement even when a sibling entry failed to parse. */
function leafId(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (entry === null || typeof entry !== 'object' || !('member' in entry)) return undefined;
  return typeof entry.member === 'string' ? entry.member : undefined;
}

/**
 * The zod schema of a rule (recursive; published in the policy JSON Schema as $defs/QuorumRule). Beyond
 * the shape it refuses rules that can never be met or that count one member twice: k > entries
 * (issue at `of`), and a member named twice directly in one group (issue at `members.i`).
 */
export const quorumRuleSchema: z.ZodType<QuorumRule> = z
  .lazy(() =>
    z.union(
      [
        z.strictObject({ member: memberIdSchema }),
        z
          .strictObject({
            of: z.int().min(1, 'must be at least 1').max(MAX_GROUP_ENTRIES),
            members: z
              .array(
                z.union([memberIdSchema, quorumRuleSchema], {
                  error: 'must be a member id or a nested rule',
                }),
              )
              .min(1, 'must name at least one member')
              .max(MAX_GROUP_ENTRIES),
          })
          .superRefine((group, ctx) => {
            if (!Array.isArray(group.members) || typeof group.of !== 'number') return;
            if (group.of > group.members.length)
              ctx.addIssue({
                code: 'custom',
                path: ['of'],
                message: `needs ${group.of} but the group has only ${group.members.length} ${group.members.length === 1 ? 'entry' : 'entries'}, so it can never be satisfied`,
              });
            const seen = new Set<string>();
            group.members.forEach((entry, i) => {
              const id = leafId(entry);
              if (id === undefined) return;
              if (seen.has(id))
                ctx.addIssue({
                  code: 'custom',
                  path: ['members', i],
                  message: `member "${id}" is named twice`,
                });
              seen.add(id);
            });
          }),
        z.strictObject({
          all: z.array(quorumRuleSchema).min(1, 'must list at least one rule').max(MAX_GROUP_ENTRIES),
        }),
      ],
      { error: 'must be {"member": id}, {"of": k, "members": [...]} or {"all": [...]}' },
    ),
  )
  .meta({
    id: 'QuorumRule',
    description:
      'An approval rule: {"member": id}, {"of": k, "members": [id | rule]} (at least k entries), or {"all": [rule]}.',
  });

export interface QuorumEvaluation {
  readonly satisfied: boolean;
  /** What is still needed, e.g. '1 more of {b, c} and x'; '' when satisfied. */
  readonly missing: string;
}

function invalidRule(path: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${path}: not a quorum rule`, { field: path });
}

function evaluateEntry(
  entry: string | QuorumRule,
  signers: ReadonlySet<string>,
  path: string,
): QuorumEvaluation {
  if (typeof entry === 'string')
    return { satisfied: signers.has(entry), missing: signers.has(entry) ? '' : entry };
  return evaluateAt(entry, signers, path);
}

function evaluateAt(rule: QuorumRule, signers: ReadonlySet<string>, path: string): QuorumEvaluation {
  if (rule === null || typeof rule !== 'object') invalidRule(path);
  if ('member' in rule) return evaluateEntry(rule.member, signers, path);
  if ('of' in rule) {
    if (!Array.isArray(rule.members) || !Number.isSafeInteger(rule.of)) invalidRule(path);
    let count = 0;
    const counted = new Set<string>();
    const open: string[] = [];
    rule.members.forEach((entry, i) => {
      const id = leafId(entry);
      if (id !== undefined && counted.has(id)) return; // the same member counts once per group
      if (id !== undefined) counted.add(id);
      const result = evaluateEntry(entry, signers, `${path}.members.${i}`);
      if (result.satisfied) count += 1;
      else open.push(id !== undefined ? id : `(${result.missing})`);
    });
    const need = rule.of - count;
    if (need <= 0) return { satisfied: true, missing: '' };
    if (open.length < need)
      return { satisfied: false, missing: `${need} more of {${open.join(', ')}} (unreachable)` };
    const missing = need === open.length && need === 1 ? open[0]! : `${need} more of {${open.join(', ')}}`;
    return { satisfied: false, missing };
  }
  if ('all' in rule) {
    if (!Array.isArray(rule.all)) invalidRule(path);
    const open = rule.all
      .map((sub, i) => evaluateAt(sub, signers, `${path}.all.${i}`))
      .filter((r) => !r.satisfied)
      .map((r) => r.missing);
    return { satisfied: open.length === 0, missing: open.join(' and ') };
  }
  return invalidRule(path);
}

/**
 * Whether the members in `signers` (whose signatures the caller has already verified) satisfy `rule`,
 * and a readable description of what is still missing. Pure and monotone: adding a signer never turns
 * a satisfied rule unsatisfied. Throws INVALID_ARGUMENT (field: the rule path) only for a value that is
 * not a rule; parse untrusted rules with quorumRuleSchema (via parsePolicy) first.
 */
export function evaluateQuorum(rule: QuorumRule, signers: ReadonlySet<string>): QuorumEvaluation {
  return evaluateAt(rule, signers, 'rule');
}

/**
 * Every member id `rule` names, with the dotted path of each mention relative to the rule (e.g.
 * 'all.0.members.2'). Tolerant: parts of a malformed rule that are not rules are skipped, so a policy
 * with several mistakes can still report every unknown member at once.
 */
export function listQuorumMembers(rule: unknown): Array<{ member: string; path: string }> {
  const out: Array<{ member: string; path: string }> = [];
  const visit = (entry: unknown, path: string): void => {
    if (typeof entry === 'string') out.push({ member: entry, path });
    if (entry === null || typeof entry !== 'object') return;
    const node = entry as { member?: unknown; members?: unknown; all?: unknown };
    if (typeof node.member === 'string') out.push({ member: node.member, path: join(path, 'member') });
    if (Array.isArray(node.members))
      for (const [i, e] of node.members.entries()) visit(e, join(path, `members.${i}`));
    if (Array.isArray(node.all)) for (const [i, e] of node.all.entries()) visit(e, join(path, `all.${i}`));
  };
  if (rule !== null && typeof rule === 'object') visit(rule, '');
  return out;
}

function join(path: string, tail: string): string {
  return path === '' ? tail : `${path}.${tail}`;
}
