/**
 * Staged rollout plans: how a candidate model version replaces the production one, approved by quorum
 * (an `approve-rollout` proposal whose subject is the plan) before any site serves it. The stages run
 * in order, `shadow` (optional: sites score the candidate beside production without acting on it),
 * `canary` (a few sites serve the candidate) and `full` (the listed sites serve it); each stage has its
 * sites, a minimum sample size (rows) and/or duration, and a gate: a decision rule in the grammar of
 * evaluation plans (evaluation-plan.ts) over the stage's logged figures, optionally bound to a
 * pre-registered evaluation plan whose logged decision must be `pass` too. A passed gate advances the
 * stage; a failed gate rolls back. On completion the plan's alias (default `production`) points at the
 * candidate. A site's circuit breaker (a threshold it sets on its own monitored metric) is the site's
 * own policy, not the plan's.
 *
 * Canary sites are not chosen by anyone: they are drawn from the consortium's institutions by a
 * deterministic shuffle seeded with the plan's digest and a checkpoint of the audit log made after the
 * plan's approval (drawCanarySites), so any reader of the log recomputes the draw.
 *
 * The plan's identity is the SHA-256 of its RFC 8785 canonical JSON, like an evaluation plan's.
 * Pure: the checkpoint, the members and the figures are passed in.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { deepFreeze, throwPlanIssues } from './plan-issues.ts';
import { encodeCanonicalFields } from '../crypto/canonical-bytes.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import {
  type DecisionOutcome,
  type DecisionRule,
  evaluateDecisionRule,
  parseDecisionRule,
} from './evaluation-plan.ts';
import { memberIdSchema } from './quorum.ts';

export const rolloutStageNames = ['shadow', 'canary', 'full'] as const;
export type RolloutStageName = (typeof rolloutStageNames)[number];

/**
 * The figures a gate's rule may name, `<group>.<metric>`:
 *
 * - `candidate.accuracy`, `production.accuracy`: the share of the stage's rows each model gets right;
 *   `candidate.rows`, `production.rows`: the rows they were measured on.
 * - `paired.*` (shadow stage: both models scored on the same rows, paired-outcomes.ts):
 *   `rows` (n), `discordant` (b + c: rows exactly one model gets right), `accuracyDifference`
 *   (candidate − production accuracy), `mcnemarP` (McNemar's exact two-sided p-value from the
 *   discordant counts), `mcnemarChiSquare` (the continuity-corrected statistic, for reference),
 *   `meanLossDifference` (mean of loss_candidate − loss_production per row; negative favours the
 *   candidate) and `lossDifferenceStdError` (its standard error).
 */
export const rolloutGateMetrics = {
  candidate: ['accuracy', 'rows'],
  production: ['accuracy', 'rows'],
  paired: [
    'rows',
    'discordant',
    'accuracyDifference',
    'mcnemarP',
    'mcnemarChiSquare',
    'meanLossDifference',
    'lossDifferenceStdError',
  ],
} as const satisfies Record<string, readonly string[]>;
export type RolloutFigureGroup = keyof typeof rolloutGateMetrics;

/** Logged gate figures: group → metric → value (null when not measured). */
export type RolloutFigures = {
  readonly [G in RolloutFigureGroup]?: Readonly<Record<string, number | null>>;
};

export const DEFAULT_ROLLOUT_ALIAS = 'production';
export const MAX_STAGE_SITES = 1000;
export const MAX_STAGE_DURATION_HOURS = 24 * 366;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 digest (64 lower-case hex digits)');
const rfc3339Utc = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/, 'must be an RFC 3339 UTC time')
  .refine((s) => {
    const ms = Date.parse(s);
    return Number.isFinite(ms) && new Date(ms).toISOString().slice(0, 19) === s.slice(0, 19);
  }, 'is not a real date and time');

const siteListSchema = z
  .array(memberIdSchema)
  .min(1, 'must list at least one site')
  .max(MAX_STAGE_SITES, `must list at most ${MAX_STAGE_SITES} sites`)
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((s, i) => {
      if (seen.has(s)) ctx.addIssue({ code: 'custom', path: [i], message: 'repeats a site' });
      seen.add(s);
    });
  });

const stageSchema = z
  .strictObject({
    name: z.enum(rolloutStageNames),
    /** Explicit sites (shadow, full) or, for canary, `{draw: n}` institutions drawn verifiably. */
    sites: z.union([siteListSchema, z.strictObject({ draw: z.int().min(1).max(MAX_STAGE_SITES) })]),
    /** The gate is decided only once the stage's figures cover at least this many rows. */
    minRows: z.int().min(1).max(1e12).optional(),
    /** … and once the stage has run this long (from its `rollout-stage-started` entry). */
    minDurationHours: z.number().positive().max(MAX_STAGE_DURATION_HOURS).optional(),
    gate: z.strictObject({
      rule: z.string().min(1).max(2000),
      /** An approved evaluation plan whose logged decision must also be `pass`. */
      evaluationPlan: hex64.optional(),
    }),
  })
  .superRefine((stage, ctx) => {
    if (stage.minRows === undefined && stage.minDurationHours === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['minRows'],
        message: 'a stage needs a minimum sample size (minRows) or duration (minDurationHours)',
      });
    const drawn = !Array.isArray(stage.sites);
    if (stage.name === 'canary' && !drawn)
      ctx.addIssue({
        code: 'custom',
        path: ['sites'],
        message: 'canary sites are drawn, not listed: {"draw": n}',
      });
    if (stage.name !== 'canary' && drawn)
      ctx.addIssue({
        code: 'custom',
        path: ['sites'],
        message: `${stage.name} sites are listed explicitly (only canary sites are drawn)`,
      });
  });

const rolloutSchema = z
  .strictObject({
    consortium: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be a consortium id'),
    title: z.string().min(1).max(200),
    /** The model version rolled out (SHA-256 of its safetensors bytes). */
    candidate: hex64,
    /** The version the alias points at now (null: none yet). */
    production: hex64.nullable(),
    alias: z
      .string()
      .regex(/^[a-z0-9-]{1,40}$/, 'must be an alias name (1-40 characters a-z, 0-9, -)')
      .optional(),
    stages: z.array(stageSchema).min(2, 'must have a canary and a full stage').max(3),
    createdAt: rfc3339Utc,
  })
  .superRefine((plan, ctx) => {
    if (plan.candidate === plan.production)
      ctx.addIssue({ code: 'custom', path: ['candidate'], message: 'is the production version already' });
    const names = plan.stages.map((s) => s.name).join(',');
    if (names !== 'canary,full' && names !== 'shadow,canary,full')
      ctx.addIssue({
        code: 'custom',
        path: ['stages'],
        message: 'must be, in order, shadow (optional), canary, full',
      });
  });

export interface RolloutStage {
  readonly name: RolloutStageName;
  readonly sites: readonly string[] | { readonly draw: number };
  readonly minRows?: number | undefined;
  readonly minDurationHours?: number | undefined;
  readonly gate: { readonly rule: string; readonly evaluationPlan?: string | undefined };
}

export interface RolloutPlan {
  readonly consortium: string;
  readonly title: string;
  readonly candidate: string;
  readonly production: string | null;
  /** Absent: DEFAULT_ROLLOUT_ALIAS (rolloutAlias). */
  readonly alias?: string | undefined;
  readonly stages: readonly RolloutStage[];
  readonly createdAt: string;
}

/**
 * Parses a rollout plan (plain data) and returns it frozen. Throws one EntenteError INVALID_CONFIG
 * listing every mistake, one per line as '<dotted path>: <message>' (e.g. 'rollout.stages.1.sites'),
 * with `field` the path of the first. Each gate's rule is parsed too (its errors name
 * 'rollout.stages.<i>.gate.rule' and the character position). Never echoes the values it refuses.
 */
export function parseRolloutPlan(input: unknown): RolloutPlan {
  const r = rolloutSchema.safeParse(input, { reportInput: true });
  if (!r.success)
    throwPlanIssues('rollout', r.error.issues, (issue) =>
      issue.code === 'invalid_union' ? 'must be a list of distinct member ids or {"draw": n}' : undefined,
    );
  const plan = r.data as RolloutPlan;
  plan.stages.forEach((s, i) => {
    parseGateRule(s.gate.rule, `rollout.stages.${i}.gate.rule`);
  });
  return deepFreeze(plan);
}

/** The plan's identity: SHA-256 (hex) of its RFC 8785 canonical JSON. */
export function computeRolloutPlanDigest(plan: RolloutPlan): string {
  return sha256Hex(new TextEncoder().encode(canonicalizeJson(plan)));
}

/** The alias the plan moves on completion. */
export function rolloutAlias(plan: RolloutPlan): string {
  return plan.alias ?? DEFAULT_ROLLOUT_ALIAS;
}

/**
 * Parses a gate's rule: the decision-rule grammar of evaluation plans, whose terms must be figures of
 * rolloutGateMetrics (no slices). Throws INVALID_CONFIG with `field`, naming the character position.
 */
export function parseGateRule(text: string, field = 'rollout.gate.rule'): DecisionRule {
  let rule: DecisionRule;
  try {
    rule = parseDecisionRule(text);
  } catch (err) {
    const message =
      err instanceof Error ? err.message.replace(/^plan\.decisionRule: /, '') : 'does not parse';
    throw new EntenteError('INVALID_CONFIG', `${field}: ${message}`, { field });
  }
  for (const clause of rule.clauses) {
    for (const side of [clause.left, clause.right]) {
      const t = side.term;
      if (t.kind !== 'metric') continue;
      const known = (rolloutGateMetrics as Record<string, readonly string[]>)[t.model];
      const name = `${t.model}.${t.slice === undefined ? '' : 'slice[…].'}${t.metric}`;
      if (known === undefined || t.slice !== undefined || !known.includes(t.metric))
        throw new EntenteError(
          'INVALID_CONFIG',
          `${field}: in "${clause.text.slice(0, 200)}": ${name.slice(0, 100)} is not a rollout figure (candidate.accuracy, production.accuracy, paired.mcnemarP, …)`,
          { field },
        );
    }
  }
  return rule;
}

// ---- Gates ---------------------------------------------------------------------------------------

export interface GateInput {
  /** Rows the figures were computed from (checked against the stage's minRows). */
  readonly rows: number;
  readonly figures: RolloutFigures;
  /** Milliseconds since the stage started (checked against its minDurationHours). */
  readonly elapsedMs: number;
  /** The logged decision of the stage's bound evaluation plan, if any (undefined: none logged yet). */
  readonly evaluationOutcome?: 'pass' | 'fail' | 'undetermined' | undefined;
}

export interface GateDecision {
  readonly outcome: 'pass' | 'fail' | 'undetermined';
  readonly rule: DecisionOutcome;
  /** Why the outcome is undetermined or fails besides the rule ('' when the rule alone decides). */
  readonly reason: string;
}

/** The value of a figure, or null when it is absent or not a finite number. */
export function rolloutFigureValue(figures: RolloutFigures, group: string, metric: string): number | null {
  const g = Object.hasOwn(figures, group) ? (figures as Record<string, unknown>)[group] : undefined;
  if (g === null || typeof g !== 'object' || !Object.hasOwn(g, metric)) return null;
  const v = (g as Record<string, unknown>)[metric];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * Decides the gate of `plan.stages[stage]`. Before the stage's minimum sample size or duration the
 * outcome is 'undetermined' whatever the figures say (the pre-registered rule is decided at the
 * pre-registered size; a site's circuit breaker covers harm seen earlier). Otherwise the rule decides
 * ('undetermined' when a figure it names is missing); with a bound evaluation plan, its logged decision
 * must be `pass` too: a `fail` fails the gate, no decision (or `undetermined`) leaves it undetermined.
 * Throws INVALID_ARGUMENT for a stage index the plan does not have.
 */
export function decideRolloutGate(plan: RolloutPlan, stage: number, input: GateInput): GateDecision {
  const s = plan.stages[stage];
  if (!s) throw new EntenteError('INVALID_ARGUMENT', 'stage: not a stage of the plan', { field: 'stage' });
  const rule = evaluateDecisionRule(parseGateRule(s.gate.rule), (model, metric, slice) =>
    slice === undefined ? rolloutFigureValue(input.figures, model, metric) : null,
  );
  const rows = Number.isFinite(input.rows) ? input.rows : 0;
  const elapsed = Number.isFinite(input.elapsedMs) ? input.elapsedMs : 0;
  if (s.minRows !== undefined && rows < s.minRows)
    return { outcome: 'undetermined', rule, reason: `fewer than ${s.minRows} rows` };
  if (s.minDurationHours !== undefined && elapsed < s.minDurationHours * 3_600_000)
    return { outcome: 'undetermined', rule, reason: `the stage has run less than ${s.minDurationHours} h` };
  if (rule.outcome === 'undetermined') return { outcome: 'undetermined', rule, reason: '' };
  if (s.gate.evaluationPlan !== undefined) {
    if (input.evaluationOutcome === 'fail')
      return { outcome: 'fail', rule, reason: 'the bound evaluation plan decided fail' };
    if (rule.outcome === 'pass' && input.evaluationOutcome !== 'pass')
      return { outcome: 'undetermined', rule, reason: 'the bound evaluation plan has no pass decision' };
  }
  return { outcome: rule.outcome, rule, reason: '' };
}

// ---- The canary draw -----------------------------------------------------------------------------

/** Domain-separation tag of the canary draw's seed, the first hashed field. */
export const CANARY_DRAW_CONTEXT = 'entente/rollout/canary-draw/v1';

/**
 * An unbiased integer in [0, n) from a SHA-256 counter stream: block k = SHA-256(seed ‖ k as 8 bytes
 * big-endian), read as big-endian 32-bit words; a word x is used only when x < 2^32 − (2^32 mod n)
 * (rejection sampling), then x mod n, so every value has the same number of preimages.
 */
function createCounterStream(seed: Uint8Array): (n: number) => number {
  let counter = 0n;
  let block = new Uint8Array(0);
  let offset = 0;
  const nextWord = (): number => {
    if (offset + 4 > block.length) {
      const ctr = new Uint8Array(8);
      new DataView(ctr.buffer).setBigUint64(0, counter++);
      block = new Uint8Array(Buffer.from(sha256Hex(seed, ctr), 'hex'));
      offset = 0;
    }
    const x = new DataView(block.buffer, block.byteOffset).getUint32(offset);
    offset += 4;
    return x;
  };
  return (n) => {
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = nextWord();
      if (x < limit) return x % n;
    }
  };
}

export interface CanaryDrawInput {
  /** computeRolloutPlanDigest of the approved plan. */
  readonly planDigest: string;
  /** The root hash (64 hex digits) of an audit-log checkpoint made after the plan's approval. */
  readonly checkpointRootHash: string;
  /** That checkpoint's tree size. */
  readonly checkpointSize: number;
  /** The institutions drawn from (any order; sorted and de-duplicated here). */
  readonly members: readonly string[];
  readonly count: number;
}

/** SHA-256 of the canonical fields (CANARY_DRAW_CONTEXT, planDigest, root hash bytes, size). */
export function canaryDrawSeed(
  input: Pick<CanaryDrawInput, 'planDigest' | 'checkpointRootHash' | 'checkpointSize'>,
): Uint8Array {
  return new Uint8Array(
    Buffer.from(
      sha256Hex(
        encodeCanonicalFields([
          CANARY_DRAW_CONTEXT,
          input.planDigest,
          new Uint8Array(Buffer.from(input.checkpointRootHash, 'hex')),
          input.checkpointSize,
        ]),
      ),
      'hex',
    ),
  );
}

/**
 * The canary sites: the members sorted (UTF-16 code-unit order) and de-duplicated, shuffled by
 * Fisher–Yates (i from the last position down to 1, j uniform in [0, i] from the counter stream seeded
 * by canaryDrawSeed), the first `count` of them, returned sorted. Deterministic: anyone holding the
 * plan's digest, the checkpoint and the members recomputes it. Throws INVALID_ARGUMENT naming the field
 * for a malformed digest or size, or a count that is not 1..members.
 */
export function drawCanarySites(input: CanaryDrawInput): string[] {
  const { planDigest, checkpointRootHash, checkpointSize, count } = input;
  const fail = (field: string, message: string): never => {
    throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
  };
  if (typeof planDigest !== 'string' || !/^[0-9a-f]{64}$/.test(planDigest))
    fail('planDigest', 'must be 64 lower-case hex digits');
  if (typeof checkpointRootHash !== 'string' || !/^[0-9a-f]{64}$/.test(checkpointRootHash))
    fail('checkpointRootHash', 'must be 64 lower-case hex digits');
  if (!Number.isSafeInteger(checkpointSize) || checkpointSize < 1)
    fail('checkpointSize', 'must be a positive integer');
  if (!Array.isArray(input.members) || input.members.some((m) => typeof m !== 'string'))
    fail('members', 'must be a list of member ids');
  const members = [...new Set(input.members)].sort();
  if (!Number.isInteger(count) || count < 1 || count > members.length)
    fail('count', `must be an integer from 1 to the number of members (${members.length})`);
  const next = createCounterStream(canaryDrawSeed(input));
  for (let i = members.length - 1; i > 0; i--) {
    const j = next(i + 1);
    const tmp = members[i]!;
    members[i] = members[j]!;
    members[j] = tmp;
  }
  return members.slice(0, count).sort();
}

// ---- Circuit breakers ----------------------------------------------------------------------------

/** Domain-separation tag of a site's circuit-breaker statement. */
export const CIRCUIT_BREAKER_CONTEXT = 'entente/rollout/circuit-breaker/v1';

/**
 * The bytes a site signs (Ed25519, its identity key) when its own circuit breaker trips during a
 * rollout stage: canonical fields (context, rollout digest, stage, site). The coordinator logs the
 * signature with the rollback, so the log shows the site, not the coordinator, stopped the stage.
 */
export function encodeCircuitBreakerStatement(rollout: string, stage: string, site: string): Uint8Array {
  return encodeCanonicalFields([CIRCUIT_BREAKER_CONTEXT, rollout, stage, site]);
}

// ---- Which rows a stage scores ---------------------------------------------------------------------

/** Domain-separation tag of the assignment of a site's rows to a rollout's stages. */
export const STAGE_ROWS_CONTEXT = 'entente/rollout/stage-rows/v1';

/**
 * The stage (0 … stageCount − 1) each of a site's `rows` labelled rows is scored in: row i goes to the
 * stage given by the first 4 bytes of SHA-256(canonical fields: STAGE_ROWS_CONTEXT, rollout digest, i),
 * big-endian, mod stageCount. Each row is scored in exactly one stage, as fresh traffic would be, so two
 * stages' secure sums cover disjoint rows and their difference isolates no site's figures even when
 * the stages' site sets differ. Deterministic: the site and anyone holding its rows recompute it.
 */
export function assignRowsToStages(rolloutDigest: string, rows: number, stageCount: number): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(rolloutDigest))
    throw new EntenteError('INVALID_ARGUMENT', 'rollout: must be 64 lower-case hex digits', {
      field: 'rollout',
    });
  if (!Number.isSafeInteger(rows) || rows < 0)
    throw new EntenteError('INVALID_ARGUMENT', 'rows: must be a non-negative integer', { field: 'rows' });
  if (!Number.isInteger(stageCount) || stageCount < 1 || stageCount > 3)
    throw new EntenteError('INVALID_ARGUMENT', 'stageCount: must be 1, 2 or 3', { field: 'stageCount' });
  const out = new Uint8Array(rows);
  for (let i = 0; i < rows; i++) {
    const h = sha256Hex(encodeCanonicalFields([STAGE_ROWS_CONTEXT, rolloutDigest, i]));
    out[i] = Number.parseInt(h.slice(0, 8), 16) % stageCount;
  }
  return out;
}
