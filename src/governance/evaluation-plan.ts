/**
 * Pre-registered evaluation plans: which models are compared (by the SHA-256 of their safetensors
 * blob), on which metrics and slices, the hypothesis, and the decision rule that will say whether the
 * hypothesis held. A plan is approved by a quorum (an `approve-evaluation-plan` proposal whose subject
 * is the plan) and logged before any result exists; results, blinding, unblinding and the decision are
 * bound to its digest, the SHA-256 of its RFC 8785 canonical JSON. Pre-registration in the sense of
 * clinical trials (the analysis fixed before the data are seen): the rule is parsed once, here, and the
 * outcome is recomputed by every auditor from the logged figures.
 *
 * Blinding: evaluators see models under labels (`model-A`, `model-B`, …) whose assignment is committed
 * in the log with salted hash commitments and opened only after every result is logged. Pure: the
 * random permutation and the salts are passed in.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { deepFreeze, throwPlanIssues } from './plan-issues.ts';
import { type Rng, shuffleInPlace } from '../core/rng.ts';
import { encodeCanonicalFields } from '../crypto/canonical-bytes.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';

/** The metrics a plan may name (the private evaluation reports these). */
export const evaluationPlanMetrics = [
  'accuracy',
  'logLoss',
  'brier',
  'ece',
  'mce',
  'rocAuc',
  'averagePrecision',
  'macroF1',
  'demographicParityDifference',
  'demographicParityRatio',
  'equalizedOddsDifference',
  'equalOpportunityDifference',
] as const;
export type EvaluationPlanMetric = (typeof evaluationPlanMetrics)[number];

export const MAX_PLAN_MODELS = 8;
/** Largest canonical JSON of `evaluation` (the evaluation folder validates its content). */
export const MAX_PLAN_EVALUATION_BYTES = 16 * 1024;
export const MAX_DECISION_RULE_CHARS = 2000;
export const MAX_DECISION_CLAUSES = 32;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 digest (64 lower-case hex digits)');
const modelNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be 1-32 characters: a lower-case letter, then a-z, 0-9 or -');
const rfc3339Utc = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/, 'must be an RFC 3339 UTC time')
  .refine((s) => {
    const ms = Date.parse(s);
    return Number.isFinite(ms) && new Date(ms).toISOString().slice(0, 19) === s.slice(0, 19);
  }, 'is not a real date and time');

const evaluationSchema = z.record(z.string(), z.unknown()).refine((v) => {
  try {
    return new TextEncoder().encode(canonicalizeJson(v)).length <= MAX_PLAN_EVALUATION_BYTES;
  } catch {
    return false;
  }
}, `must be JSON of at most ${MAX_PLAN_EVALUATION_BYTES} bytes (canonical form)`);

const planSchema = z
  .strictObject({
    consortium: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be a consortium id'),
    title: z.string().min(1).max(200),
    models: z
      .array(z.strictObject({ name: modelNameSchema, sha256: hex64 }))
      .min(1, 'must list at least one model')
      .max(MAX_PLAN_MODELS, `must list at most ${MAX_PLAN_MODELS} models`)
      .superRefine((list, ctx) => {
        const names = new Set<string>();
        const digests = new Set<string>();
        list.forEach((m, i) => {
          if (names.has(m.name))
            ctx.addIssue({ code: 'custom', path: [i, 'name'], message: 'repeats a name' });
          if (digests.has(m.sha256))
            ctx.addIssue({ code: 'custom', path: [i, 'sha256'], message: 'repeats a model digest' });
          names.add(m.name);
          digests.add(m.sha256);
        });
      }),
    metrics: z
      .array(z.enum(evaluationPlanMetrics))
      .min(1, 'must list at least one metric')
      .refine((l) => new Set(l).size === l.length, 'must not repeat a metric'),
    evaluation: evaluationSchema,
    hypothesis: z.string().min(1).max(2000),
    decisionRule: z.string().min(1).max(MAX_DECISION_RULE_CHARS),
    dataSchemaDigest: hex64.optional(),
    /**
     * Ask each site, after the secure sums, for its own figures (worst site, leave one site out): only
     * where the policy's exchange.perSiteEvaluation and the site's own policy allow it; each is logged.
     */
    perSite: z.boolean().optional(),
    createdAt: rfc3339Utc,
  })
  .superRefine((plan, ctx) => {
    // Per-site figures carry no noise: they would undo the differential privacy of the sums.
    if (plan.perSite === true && plan.evaluation.dp !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['perSite'],
        message:
          'a plan whose sums carry differential-privacy noise (evaluation.dp) asks for no per-site figures',
      });
  });

export interface EvaluationPlan {
  readonly consortium: string;
  readonly title: string;
  readonly models: ReadonlyArray<{ readonly name: string; readonly sha256: string }>;
  readonly metrics: readonly EvaluationPlanMetric[];
  /** Passed through: validated by the evaluation folder. */
  readonly evaluation: Readonly<Record<string, unknown>>;
  readonly hypothesis: string;
  readonly decisionRule: string;
  readonly dataSchemaDigest?: string | undefined;
  readonly perSite?: boolean | undefined;
  readonly createdAt: string;
}

/**
 * Parses an evaluation plan (plain data) and returns it frozen. Throws one EntenteError INVALID_CONFIG
 * listing every mistake, one per line as '<dotted path>: <message>' (e.g. 'plan.models.1.sha256'), with
 * `field` the path of the first. The decision rule is parsed too (its errors name 'plan.decisionRule'
 * and the character position). Never echoes the values it refuses.
 */
export function parseEvaluationPlan(input: unknown): EvaluationPlan {
  const r = planSchema.safeParse(input, { reportInput: true });
  if (!r.success) throwPlanIssues('plan', r.error.issues);
  const plan = r.data as EvaluationPlan;
  parseDecisionRule(plan.decisionRule, plan);
  return deepFreeze(plan);
}

/** The plan's identity: SHA-256 (hex) of its RFC 8785 canonical JSON. */
export function computeEvaluationPlanDigest(plan: EvaluationPlan): string {
  return sha256Hex(new TextEncoder().encode(canonicalizeJson(plan)));
}

/** Slice names the plan declares (`evaluation.slices`, when it is a list of strings). */
function declaredSlices(plan: EvaluationPlan): readonly string[] {
  const slices = plan.evaluation.slices;
  return Array.isArray(slices) ? slices.filter((s): s is string => typeof s === 'string') : [];
}

// ---- Decision rule -------------------------------------------------------------------------------

export type DecisionTerm =
  | { readonly kind: 'number'; readonly value: number }
  | {
      readonly kind: 'metric';
      readonly model: string;
      readonly metric: string;
      readonly slice?: string | undefined;
    };

export interface DecisionOperand {
  readonly term: DecisionTerm;
  /** Added to the term's value (a '- 0.01' is -0.01). */
  readonly offset: number;
}

export type DecisionOperator = '>=' | '<=' | '>' | '<';

export interface DecisionClause {
  readonly text: string;
  readonly left: DecisionOperand;
  readonly op: DecisionOperator;
  readonly right: DecisionOperand;
}

export interface DecisionRule {
  readonly clauses: readonly DecisionClause[];
}

const NUMBER_RE = /-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?/y;
const MODEL_RE = /[a-z][a-z0-9-]{0,31}/y;
const METRIC_RE = /[A-Za-z][A-Za-z0-9]{0,63}/y;
/** A slice name: printable ASCII other than '"' and '\'. */
const SLICE_RE = /slice\["([ !#-[\]-~]{1,200})"\]\./y;

/**
 * Parses a decision rule: `clause ('and' clause)*`, clause = `operand op operand` with op one of
 * `>= <= > <`, operand = `term (('+'|'-') number)?`, term = `<model>.<metric>`,
 * `<model>.slice["<slice>"].<metric>` or a number. With `plan`, every model, metric and slice must be
 * declared in it. Throws INVALID_CONFIG, field 'plan.decisionRule', naming the character position.
 */
export function parseDecisionRule(
  text: string,
  plan?: Pick<EvaluationPlan, 'models' | 'metrics' | 'evaluation'>,
): DecisionRule {
  let pos = 0;
  const fail = (message: string, at = pos): never => {
    throw new EntenteError('INVALID_CONFIG', `plan.decisionRule: at position ${at}: ${message}`, {
      field: 'plan.decisionRule',
    });
  };
  if (typeof text !== 'string' || text.length === 0) fail('must be a non-empty rule');
  if (text.length > MAX_DECISION_RULE_CHARS) fail(`must be at most ${MAX_DECISION_RULE_CHARS} characters`, 0);
  const models = plan ? new Set(plan.models.map((m) => m.name)) : undefined;
  const metrics = plan ? new Set<string>(plan.metrics) : undefined;
  const slices = plan ? new Set(declaredSlices(plan as EvaluationPlan)) : undefined;

  const skipSpace = (): void => {
    while (pos < text.length && /\s/.test(text[pos]!)) pos++;
  };
  const match = (re: RegExp): RegExpExecArray | null => {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m) pos = re.lastIndex;
    return m;
  };
  const number = (): number => {
    const start = pos;
    const m = match(NUMBER_RE);
    if (!m) return fail('expected a number');
    const value = Number(m[0]);
    if (!Number.isFinite(value)) fail('the number is not finite', start);
    return value;
  };
  const term = (): DecisionTerm => {
    const c = text[pos];
    if (c !== undefined && /[-.0-9]/.test(c)) return { kind: 'number', value: number() };
    const start = pos;
    const model = match(MODEL_RE);
    if (!model) return fail('expected <model>.<metric> or a number');
    if (text[pos] !== '.') return fail('expected "." after the model name');
    if (models && !models.has(model[0])) fail(`model "${model[0]}" is not declared in plan.models`, start);
    pos++;
    const sliceStart = pos;
    const slice = match(SLICE_RE);
    if (slice && slices && !slices.has(slice[1]!))
      fail(`slice "${slice[1]}" is not declared in plan.evaluation.slices`, sliceStart);
    const metricStart = pos;
    const metric = match(METRIC_RE);
    if (!metric) return fail('expected a metric name');
    if (metrics && !metrics.has(metric[0]))
      fail(`metric "${metric[0]}" is not declared in plan.metrics`, metricStart);
    return slice
      ? { kind: 'metric', model: model[0], metric: metric[0], slice: slice[1] }
      : { kind: 'metric', model: model[0], metric: metric[0] };
  };
  const operand = (): DecisionOperand => {
    const t = term();
    skipSpace();
    const sign = text[pos];
    if (sign !== '+' && sign !== '-') return { term: t, offset: 0 };
    pos++;
    skipSpace();
    const n = number();
    return { term: t, offset: sign === '+' ? n : -n };
  };
  const operator = (): DecisionOperator => {
    for (const op of ['>=', '<=', '>', '<'] as const) {
      if (text.startsWith(op, pos)) {
        pos += op.length;
        return op;
      }
    }
    return fail('expected one of >=, <=, >, <');
  };

  const clauses: DecisionClause[] = [];
  skipSpace();
  for (;;) {
    const start = pos;
    const left = operand();
    skipSpace();
    const op = operator();
    skipSpace();
    const right = operand();
    clauses.push({ text: text.slice(start, pos).trim(), left, op, right });
    if (clauses.length > MAX_DECISION_CLAUSES) fail(`at most ${MAX_DECISION_CLAUSES} clauses`, start);
    skipSpace();
    if (pos === text.length) break;
    if (!(text.startsWith('and', pos) && /\s/.test(text[pos + 3] ?? ''))) fail('expected "and" or the end');
    pos += 3;
    skipSpace();
  }
  return { clauses };
}

/** A metric's value: (model name, metric, slice) → number, or null when it is not known. */
export type DecisionValues = (model: string, metric: string, slice?: string) => number | null;

export interface DecisionClauseResult {
  readonly text: string;
  readonly left: number | null;
  readonly right: number | null;
  /** null when a side is unknown. */
  readonly holds: boolean | null;
}

export interface DecisionOutcome {
  readonly outcome: 'pass' | 'fail' | 'undetermined';
  readonly clauses: readonly DecisionClauseResult[];
}

/**
 * Evaluates `rule` on `values`. 'undetermined' when any value is null or not finite (the pre-registered
 * rule cannot be decided on partial figures, even when another clause already fails); otherwise 'pass'
 * when every clause holds, else 'fail'.
 */
export function evaluateDecisionRule(rule: DecisionRule, values: DecisionValues): DecisionOutcome {
  const side = (o: DecisionOperand): number | null => {
    const v =
      o.term.kind === 'number'
        ? o.term.value
        : o.term.slice === undefined
          ? values(o.term.model, o.term.metric)
          : values(o.term.model, o.term.metric, o.term.slice);
    return typeof v === 'number' && Number.isFinite(v) ? v + o.offset : null;
  };
  const clauses = rule.clauses.map((c): DecisionClauseResult => {
    const left = side(c.left);
    const right = side(c.right);
    const holds =
      left === null || right === null
        ? null
        : c.op === '>='
          ? left >= right
          : c.op === '<='
            ? left <= right
            : c.op === '>'
              ? left > right
              : left < right;
    return { text: c.text, left, right, holds };
  });
  const outcome = clauses.some((c) => c.holds === null)
    ? 'undetermined'
    : clauses.every((c) => c.holds)
      ? 'pass'
      : 'fail';
  return { outcome, clauses };
}

// ---- Blinding --------------------------------------------------------------------------------------

/** Domain-separation tag, the first committed field. */
export const BLINDING_COMMITMENT_CONTEXT = 'entente/evaluation/blinding/v1';

/** The labels of a plan with `count` models: model-A, model-B, … */
export function blindLabels(count: number): string[] {
  if (!Number.isInteger(count) || count < 1 || count > MAX_PLAN_MODELS)
    throw new EntenteError('INVALID_ARGUMENT', `count: must be 1..${MAX_PLAN_MODELS}`, { field: 'count' });
  return Array.from({ length: count }, (_, i) => `model-${String.fromCharCode(65 + i)}`);
}

export interface BlindAssignment {
  readonly label: string;
  readonly name: string;
  readonly sha256: string;
}

/**
 * Assigns the plan's models to labels by a uniformly random permutation (Fisher–Yates on `rng`, which
 * the caller draws from a CSPRNG): label i gets the i-th model of the shuffled list.
 */
export function assignBlindLabels(plan: EvaluationPlan, rng: Rng): BlindAssignment[] {
  const models = plan.models.map((m) => ({ name: m.name, sha256: m.sha256 }));
  shuffleInPlace(rng, models);
  const labels = blindLabels(models.length);
  return models.map((m, i) => ({ label: labels[i]!, name: m.name, sha256: m.sha256 }));
}

export interface BlindCommitment {
  readonly label: string;
  /** SHA-256 (hex) of the committed fields. */
  readonly commitment: string;
}

export interface BlindOpening extends BlindAssignment {
  /** The 32-byte salt, hex. */
  readonly salt: string;
}

/**
 * A salted hash commitment to one assignment: SHA-256 over the length-prefixed canonical fields
 * (BLINDING_COMMITMENT_CONTEXT, planDigest, label, name, sha256, salt). Hiding because the 256-bit
 * salt is uniformly random and secret until the opening; binding because finding a second opening is a
 * SHA-256 collision (the standard hash-based commitment, e.g. Damgård, "Commitment schemes and
 * zero-knowledge protocols", LNCS 1561, 1999; the field encoding is injective, crypto/canonical-bytes.ts).
 */
export function computeBlindCommitment(planDigest: string, opening: BlindOpening): string {
  return sha256Hex(
    encodeCanonicalFields([
      BLINDING_COMMITMENT_CONTEXT,
      planDigest,
      opening.label,
      opening.name,
      opening.sha256,
      Buffer.from(opening.salt, 'hex'),
    ]),
  );
}

/**
 * Commits to each assignment with its salt (`salts[i]`, 32 random bytes for assignments[i], drawn by
 * the caller). Returns the commitments to log and the openings to keep secret until unblinding.
 * Throws INVALID_ARGUMENT for a malformed digest, a missing or short salt, or repeated labels.
 */
export function commitBlinding(input: {
  readonly planDigest: string;
  readonly assignments: readonly BlindAssignment[];
  readonly salts: readonly Uint8Array[];
}): { commitments: BlindCommitment[]; openings: BlindOpening[] } {
  const { planDigest, assignments, salts } = input;
  if (!/^[0-9a-f]{64}$/.test(planDigest))
    throw new EntenteError('INVALID_ARGUMENT', 'planDigest: must be 64 lower-case hex digits', {
      field: 'planDigest',
    });
  if (salts.length !== assignments.length)
    throw new EntenteError('INVALID_ARGUMENT', 'salts: one salt per assignment', { field: 'salts' });
  const labels = new Set<string>();
  const openings = assignments.map((a, i): BlindOpening => {
    const salt = salts[i]!;
    if (!(salt instanceof Uint8Array) || salt.length !== 32)
      throw new EntenteError('INVALID_ARGUMENT', `salts.${i}: must be 32 bytes`, { field: `salts.${i}` });
    if (labels.has(a.label))
      throw new EntenteError('INVALID_ARGUMENT', `assignments.${i}.label: repeats a label`, {
        field: `assignments.${i}.label`,
      });
    labels.add(a.label);
    return { label: a.label, name: a.name, sha256: a.sha256, salt: Buffer.from(salt).toString('hex') };
  });
  const commitments = openings.map((o) => ({
    label: o.label,
    commitment: computeBlindCommitment(planDigest, o),
  }));
  return { commitments, openings };
}

/**
 * Checks openings against the logged commitments and (with `plan`) the plan's models. Never throws:
 * returns every problem found. The openings must cover exactly the committed labels, each recompute its
 * commitment, and (with a plan) the (name, sha256) pairs must be exactly the plan's models, once each.
 */
export function verifyUnblinding(
  planDigest: string,
  commitments: readonly BlindCommitment[],
  openings: readonly BlindOpening[],
  plan?: EvaluationPlan,
): { ok: boolean; problems: string[] } {
  const problems: string[] = [];
  const committed = new Map(commitments.map((c) => [c.label, c.commitment]));
  const opened = new Set<string>();
  for (const o of openings) {
    const label = String(o?.label ?? '').slice(0, 40);
    if (opened.has(label)) problems.push(`label ${label} is opened twice`);
    opened.add(label);
    const expected = committed.get(label);
    if (expected === undefined) {
      problems.push(`label ${label} was not committed`);
      continue;
    }
    const wellFormed =
      typeof o.name === 'string' &&
      typeof o.sha256 === 'string' &&
      typeof o.salt === 'string' &&
      /^[0-9a-f]{64}$/.test(o.salt);
    if (!wellFormed || computeBlindCommitment(planDigest, o) !== expected)
      problems.push(`the opening of ${label} does not match its commitment`);
  }
  for (const label of committed.keys())
    if (!opened.has(label)) problems.push(`label ${label} is committed but not opened`);
  if (plan) {
    const wanted = new Set(plan.models.map((m) => `${m.name}\n${m.sha256}`));
    const seen = new Set<string>();
    for (const o of openings) {
      const key = `${String(o?.name)}\n${String(o?.sha256)}`;
      if (!wanted.has(key))
        problems.push(`label ${String(o?.label).slice(0, 40)} opens to a model the plan does not name`);
      else if (seen.has(key)) problems.push(`model ${String(o.name)} is opened under two labels`);
      seen.add(key);
    }
    for (const m of plan.models)
      if (!seen.has(`${m.name}\n${m.sha256}`)) problems.push(`model ${m.name} of the plan is not opened`);
  }
  return { ok: problems.length === 0, problems };
}

// ---- Log entry bodies (the coordinator appends them) -------------------------------------------

/** Headline figures of one blinded model: metric → value (null when undefined on the data), and per slice. */
export interface EvaluationFigures {
  readonly [metric: string]: number | null;
}

export interface EvaluationResultInput {
  readonly planDigest: string;
  readonly label: string;
  readonly metrics: EvaluationFigures;
  /** Per declared slice: metric → value. */
  readonly sliceMetrics?: Readonly<Record<string, EvaluationFigures>> | undefined;
  /** SHA-256 of the full metrics report (the evaluation folder's document). */
  readonly metricsSha256: string;
  readonly rows: number;
  /** How the figures were computed, e.g. 'secagg' or 'clear'. */
  readonly protocol: string;
}

/**
 * What a metrics report looks like to this module (the evaluation folder's EvaluationMetrics, declared
 * structurally here: governance does not import it).
 */
export interface HeadlineSource {
  readonly overall: Readonly<Record<string, unknown>>;
  readonly fairness: Readonly<Record<string, unknown>> | null;
  readonly slices: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

const FAIRNESS_METRICS: ReadonlySet<string> = new Set([
  'demographicParityDifference',
  'demographicParityRatio',
  'equalizedOddsDifference',
  'equalOpportunityDifference',
]);

/**
 * The plan's metrics read from a metrics report: overall, and per slice the plan declares (fairness
 * figures exist only overall). `macroF1` is `macro.f1`. A value that is not a finite number is null.
 */
export function headlineFigures(
  plan: EvaluationPlan,
  report: HeadlineSource,
): { metrics: Record<string, number | null>; sliceMetrics?: Record<string, Record<string, number | null>> } {
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const read = (set: Readonly<Record<string, unknown>>, fairness: HeadlineSource['fairness']) => {
    const out: Record<string, number | null> = {};
    for (const m of plan.metrics) {
      if (m === 'macroF1') out[m] = num((set.macro as Record<string, unknown> | undefined)?.f1);
      else if (FAIRNESS_METRICS.has(m)) out[m] = num(fairness?.[m]);
      else out[m] = num(set[m]);
    }
    return out;
  };
  const metrics = read(report.overall, report.fairness);
  const slices = declaredSlices(plan).filter((s) => Object.hasOwn(report.slices, s));
  if (slices.length === 0) return { metrics };
  return {
    metrics,
    sliceMetrics: Object.fromEntries(slices.map((s) => [s, read(report.slices[s]!, null)])),
  };
}

/** Body of an `evaluation-blinded` entry. */
export function buildEvaluationBlindedBody(planDigest: string, commitments: readonly BlindCommitment[]) {
  return {
    plan: planDigest,
    commitments: commitments.map((c) => ({ label: c.label, commitment: c.commitment })),
  };
}

/** Body of an `evaluation-result` entry. */
export function buildEvaluationResultBody(input: EvaluationResultInput) {
  return {
    plan: input.planDigest,
    label: input.label,
    metrics: { ...input.metrics },
    ...(input.sliceMetrics ? { sliceMetrics: JSON.parse(JSON.stringify(input.sliceMetrics)) } : {}),
    metricsSha256: input.metricsSha256,
    rows: input.rows,
    protocol: input.protocol,
  };
}

/** Body of an `evaluation-unblinded` entry. */
export function buildEvaluationUnblindedBody(planDigest: string, openings: readonly BlindOpening[]) {
  return {
    plan: planDigest,
    openings: openings.map((o) => ({ label: o.label, name: o.name, sha256: o.sha256, salt: o.salt })),
  };
}

/** The values the decision rule reads, from logged results and the unblinding (label → model name). */
export function decisionValuesOf(
  openings: readonly BlindOpening[],
  results: ReadonlyMap<
    string,
    {
      readonly metrics: Readonly<Record<string, unknown>>;
      readonly sliceMetrics?: Readonly<Record<string, unknown>> | undefined;
    }
  >,
): DecisionValues {
  const labelOf = new Map(openings.map((o) => [o.name, o.label]));
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return (model, metric, slice) => {
    const label = labelOf.get(model);
    const r = label === undefined ? undefined : results.get(label);
    if (!r) return null;
    if (slice === undefined) return Object.hasOwn(r.metrics, metric) ? num(r.metrics[metric]) : null;
    const s = r.sliceMetrics && Object.hasOwn(r.sliceMetrics, slice) ? r.sliceMetrics[slice] : undefined;
    return s !== null && typeof s === 'object' && Object.hasOwn(s, metric)
      ? num((s as Record<string, unknown>)[metric])
      : null;
  };
}

/** Body of an `evaluation-decision` entry: the plan's rule evaluated on the logged, unblinded results. */
export function buildEvaluationDecisionBody(
  planDigest: string,
  plan: EvaluationPlan,
  values: DecisionValues,
) {
  const decided = evaluateDecisionRule(parseDecisionRule(plan.decisionRule, plan), values);
  return {
    plan: planDigest,
    outcome: decided.outcome,
    clauses: decided.clauses.map((c) => ({ text: c.text, left: c.left, right: c.right, holds: c.holds })),
  };
}
