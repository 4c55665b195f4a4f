/**
 * The consortium policy (issue 6): members and their roles, what may be exchanged, the data-use and
 * consent agreements it rests on (ids and digests only), and the N-of-M quorum each kind of decision
 * needs. One zod schema, published as docs/policy.schema.json (JSON Schema 2020-12); parsed once, every
 * mistake reported with its dotted path, cross-field rules checked, then frozen (DESIGN.md §5). Its
 * identity is the SHA-256 of its RFC 8785 canonical JSON, which proposals and runs refer to.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { listQuorumMembers, memberIdSchema, type QuorumRule, quorumRuleSchema } from './quorum.ts';

export const memberRoles = [
  'coordinator-operator',
  'institution',
  'data-steward',
  'auditor',
  'observer',
] as const;
export type MemberRole = (typeof memberRoles)[number];

const sha256HexSchema = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 digest (64 lower-case hex digits)');
/** C2SP signed-note verifier key: <name>+<8 hex key id>+<base64 key>; decoded and checked by audit. */
const vkeySchema = z
  .string()
  .max(512)
  .regex(
    /^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+={0,2}$/,
    'must be a signed-note verifier key <name>+<key id>+<key>',
  );
const positive = z.number().finite().positive();

const memberSchema = z.strictObject({
  roles: z
    .array(z.enum(memberRoles))
    .min(1, 'must list at least one role')
    .refine((roles) => new Set(roles).size === roles.length, 'must not repeat a role'),
  witnessKey: vkeySchema.optional().describe('verifier key with which this member cosigns log checkpoints'),
});

const membersSchema = z.record(memberIdSchema, memberSchema).describe('member id → roles and witness key');

const exchangeSchema = z.strictObject({
  tensors: z.enum(['model-deltas', 'model-weights']).describe('what participants send each round'),
  metrics: z.array(z.string().min(1).max(128)).max(1000).describe('evaluation metrics that may be reported'),
  maxRounds: z.int().min(1).max(100_000),
  minParticipantsPerRound: z.int().min(3, 'must be at least 3 (with 2, each learns the other from the sum)'),
  secureAggregation: z.enum(['required', 'optional']),
  differentialPrivacy: z
    .strictObject({
      required: z.boolean(),
      minNoiseMultiplier: positive.max(1000).optional(),
      maxEpsilon: positive.optional().describe('largest ε a run may spend (needs delta)'),
      delta: positive.max(0.1).optional(),
    })
    .superRefine((dp, ctx) => {
      if (dp.maxEpsilon !== undefined && dp.delta === undefined)
        ctx.addIssue({ code: 'custom', path: ['delta'], message: 'is required when maxEpsilon is set' });
    }),
  clipping: z.strictObject({ maxClipNorm: positive.optional() }),
  dataSchemaDigests: z
    .array(sha256HexSchema)
    .min(1, 'must list the data schema digest(s) runs may use')
    .describe('SHA-256 of each data schema a run may use'),
  perSiteEvaluation: z
    .boolean()
    .optional()
    .describe(
      "whether an evaluation plan may ask each site for its own figures (worst site, leave one site out); each site's own policy decides too, and every reveal is logged",
    ),
});

const agreementSchema = z.strictObject({
  id: z.string().min(1).max(200),
  kind: z.enum(['data-use', 'consent']),
  sha256: sha256HexSchema.describe('digest of the agreement document (kept off the policy)'),
});

const approvalsSchema = z.strictObject({
  adoptPolicy: quorumRuleSchema,
  admitMember: quorumRuleSchema,
  startRun: quorumRuleSchema,
  releaseModel: quorumRuleSchema,
  resumeAfterIncident: quorumRuleSchema
    .optional()
    .describe(
      'quorum that resumes runs paused by an incident (a "resume-runs" proposal); when absent, the adoptPolicy rule applies',
    ),
  cancelRun: quorumRuleSchema
    .optional()
    .describe(
      'quorum that cancels a run for good (a "cancel-run" proposal); when absent, the startRun rule applies',
    ),
  evaluationPlan: quorumRuleSchema
    .optional()
    .describe(
      'quorum that approves a pre-registered evaluation plan (an "approve-evaluation-plan" proposal); when absent, the startRun rule applies',
    ),
  moveAlias: quorumRuleSchema
    .optional()
    .describe(
      'quorum that moves a model alias such as candidate or production (a "move-alias" proposal); when absent, the releaseModel rule applies',
    ),
  rollout: quorumRuleSchema
    .optional()
    .describe(
      'quorum that approves a staged rollout plan (an "approve-rollout" proposal); when absent, the releaseModel rule applies',
    ),
  rollback: quorumRuleSchema
    .optional()
    .describe(
      'quorum that rolls back a staged rollout by hand (a "rollback" proposal); when absent, the rollout rule (else releaseModel) applies',
    ),
});

const monitoringSchema = z
  .strictObject({
    maxPsi: positive
      .optional()
      .describe('an incident is raised when a feature, score or predicted-class PSI exceeds this'),
    maxJsDistance: positive
      .max(1)
      .optional()
      .describe("an incident is raised when a feature's or the score's Jensen-Shannon distance exceeds this"),
    maxKs: positive
      .max(1)
      .optional()
      .describe("an incident is raised when a feature's or the score's binned KS statistic exceeds this"),
    noiseMultiplier: z
      .number()
      .finite()
      .min(0.01)
      .max(1e6)
      .optional()
      .describe(
        "monitoring secure sums carry discrete Gaussian noise of this multiplier (charged to each site's budget)",
      ),
  })
  .describe(
    'drift monitoring of deployed models: thresholds that raise incidents (none: report only), and noise',
  );

const policySchema = z
  .strictObject({
    version: z.int().min(1).max(1_000_000_000).describe('policy version; each adopted change increments it'),
    consortium: memberIdSchema.describe('consortium id'),
    members: membersSchema,
    exchange: exchangeSchema,
    agreements: z
      .array(agreementSchema)
      .max(10_000)
      .superRefine((list, ctx) => {
        const seen = new Set<string>();
        list.forEach((a, i) => {
          if (seen.has(a.id))
            ctx.addIssue({ code: 'custom', path: [i, 'id'], message: 'repeats an agreement id' });
          seen.add(a.id);
        });
      }),
    approvals: approvalsSchema,
    monitoring: monitoringSchema.optional(),
    proposalTtlHours: z
      .int()
      .min(1)
      .max(8_760)
      .optional()
      .describe('hours an open proposal may gather signatures before it expires (default 168: one week)'),
  })
  .meta({ title: 'Entente consortium policy' });

/** How long an open proposal gathers signatures when the policy does not say. */
export const DEFAULT_PROPOSAL_TTL_HOURS = 168;

export interface PolicyMember {
  readonly roles: readonly MemberRole[];
  readonly witnessKey?: string | undefined;
}

export interface Policy {
  readonly version: number;
  readonly consortium: string;
  readonly members: Readonly<Record<string, PolicyMember>>;
  readonly exchange: {
    readonly tensors: 'model-deltas' | 'model-weights';
    readonly metrics: readonly string[];
    readonly maxRounds: number;
    readonly minParticipantsPerRound: number;
    readonly secureAggregation: 'required' | 'optional';
    readonly differentialPrivacy: {
      readonly required: boolean;
      readonly minNoiseMultiplier?: number | undefined;
      readonly maxEpsilon?: number | undefined;
      readonly delta?: number | undefined;
    };
    readonly clipping: { readonly maxClipNorm?: number | undefined };
    readonly dataSchemaDigests: readonly string[];
    readonly perSiteEvaluation?: boolean | undefined;
  };
  readonly agreements: ReadonlyArray<{
    readonly id: string;
    readonly kind: 'data-use' | 'consent';
    readonly sha256: string;
  }>;
  readonly approvals: {
    readonly adoptPolicy: QuorumRule;
    readonly admitMember: QuorumRule;
    readonly startRun: QuorumRule;
    readonly releaseModel: QuorumRule;
    /** Resuming runs after an incident; absent = the adoptPolicy rule applies. */
    readonly resumeAfterIncident?: QuorumRule | undefined;
    /** Cancelling a run; absent = the startRun rule applies. */
    readonly cancelRun?: QuorumRule | undefined;
    /** Approving an evaluation plan; absent = the startRun rule applies. */
    readonly evaluationPlan?: QuorumRule | undefined;
    /** Moving a model alias; absent = the releaseModel rule applies. */
    readonly moveAlias?: QuorumRule | undefined;
    /** Approving a staged rollout plan; absent = the releaseModel rule applies. */
    readonly rollout?: QuorumRule | undefined;
    /** Rolling a rollout back by hand; absent = the rollout rule (else releaseModel) applies. */
    readonly rollback?: QuorumRule | undefined;
  };
  /** Drift monitoring: thresholds that raise an incident (none: report only), and noise on its sums. */
  readonly monitoring?:
    | {
        readonly maxPsi?: number | undefined;
        readonly maxJsDistance?: number | undefined;
        readonly maxKs?: number | undefined;
        readonly noiseMultiplier?: number | undefined;
      }
    | undefined;
  /** Hours an open proposal gathers signatures before it expires (absent: DEFAULT_PROPOSAL_TTL_HOURS). */
  readonly proposalTtlHours?: number | undefined;
}

interface PolicyIssue {
  readonly field: string;
  readonly message: string;
}

type Path = readonly PropertyKey[];
const dotted = (path: Path): string => ['policy', ...path.map(String)].join('.');
const isMissing = (issue: z.core.$ZodIssue): boolean =>
  (issue.code === 'invalid_type' || issue.code === 'invalid_value') && issue.input === undefined;
/** A union branch the input was clearly not meant for: a value of another kind, or another object shape. */
const isOtherShape = (issue: z.core.$ZodIssue): boolean =>
  isMissing(issue) ||
  (issue.path.length === 0 && (issue.code === 'invalid_type' || issue.code === 'unrecognized_keys'));

/** One readable issue per mistake. A failed union is explained by the one branch the input was meant for. */
function collectIssues(issues: readonly z.core.$ZodIssue[], base: Path, out: PolicyIssue[]): void {
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    if (issue.code === 'invalid_union') {
      const meant = issue.errors.filter((branch) => !branch.some(isOtherShape));
      if (meant.length === 1) collectIssues(meant[0]!, path, out);
      else out.push({ field: dotted(path), message: issue.message });
    } else if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        out.push({ field: dotted([...path, key]), message: 'is not a known field' });
    } else if (issue.code === 'invalid_key') {
      out.push({ field: dotted(path), message: `key ${issue.issues[0]?.message ?? 'is invalid'}` });
    } else if (isMissing(issue)) {
      out.push({ field: dotted(path), message: 'is required' });
    } else {
      out.push({ field: dotted(path), message: issue.message.replace(/^Invalid (input|option): /, '') });
    }
  }
}

/** Cross-field rules, checked on the raw input so that they are reported alongside shape mistakes:
 *  role coverage, and that every member a rule names is in policy.members. */
function checkCrossFields(input: Record<string, unknown>, out: PolicyIssue[]): void {
  const members = input.members;
  if (members === null || typeof members !== 'object' || Array.isArray(members)) return;
  const entries = Object.values(members as Record<string, unknown>);
  for (const role of ['coordinator-operator', 'institution'] as const) {
    const has = entries.some((m) => {
      const roles = (m as { roles?: unknown } | null)?.roles;
      return Array.isArray(roles) && roles.includes(role);
    });
    if (!has)
      out.push({ field: 'policy.members', message: `must include at least one member with role "${role}"` });
  }
  const approvals = input.approvals;
  if (approvals === null || typeof approvals !== 'object') return;
  for (const [name, rule] of Object.entries(approvals as Record<string, unknown>)) {
    for (const { member, path } of listQuorumMembers(rule)) {
      if (!Object.hasOwn(members, member) && memberIdSchema.safeParse(member).success)
        out.push({
          field: `policy.approvals.${name}.${path}`,
          message: `names "${member}", who is not in policy.members`,
        });
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Parses a consortium policy (plain data; the caller parses the YAML) and returns it frozen. Throws one
 * EntenteError INVALID_CONFIG listing every mistake, one per line as '<dotted path>: <message>', with
 * `field` = the path of the first (e.g. 'policy.approvals.startRun.all.0.of'). Cross-field rules: at
 * least one coordinator-operator and one institution; every member a rule names exists; maxEpsilon
 * needs delta; no k-of group with k above its size. Never echoes values other than member ids.
 */
export function parsePolicy(input: unknown): Policy {
  const issues: PolicyIssue[] = [];
  const result = policySchema.safeParse(input, { reportInput: true });
  if (!result.success) collectIssues(result.error.issues, [], issues);
  if (input !== null && typeof input === 'object' && !Array.isArray(input))
    checkCrossFields(input as Record<string, unknown>, issues);
  if (issues.length > 0 || !result.success) {
    const first = issues[0] ?? { field: 'policy', message: 'is invalid' };
    throw new EntenteError('INVALID_CONFIG', issues.map((i) => `${i.field}: ${i.message}`).join('\n'), {
      field: first.field,
    });
  }
  return deepFreeze(result.data as Policy);
}

/** SHA-256 (lower-case hex) of the RFC 8785 canonical JSON of a parsed policy: its identity. */
export function computePolicyDigest(policy: Policy): string {
  // A parsed policy is deeply frozen, so its digest never changes: computed once per object.
  const cached = Object.isFrozen(policy) ? digestCache.get(policy) : undefined;
  if (cached !== undefined) return cached;
  const digest = sha256Hex(new TextEncoder().encode(canonicalizeJson(policy)));
  if (Object.isFrozen(policy)) digestCache.set(policy, digest);
  return digest;
}

const digestCache = new WeakMap<Policy, string>();

/** The published JSON Schema (2020-12) of the policy file; docs/policy.schema.json is this, verbatim.
 *  Cross-field rules (role coverage, member references, satisfiability) are checked only by parsePolicy. */
export function createPolicyJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(policySchema, { target: 'draft-2020-12' }) as Record<string, unknown>;
}
