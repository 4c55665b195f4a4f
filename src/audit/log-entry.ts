/**
 * The entries of the audit log: what happened, as canonical bytes (RFC 8785 JSON, never ad-hoc
 * JSON.stringify). Every entry carries its own index and the RFC 6962 leaf hash of the entry before
 * it, so a deleted, reordered or edited row is named by the first entry that no longer fits, even
 * before the checkpoints are consulted. Each kind has a strict schema; parsing refuses anything else.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const id = z.string().min(1).max(64);
const text = z.string().max(2000);
const runRound = { run: id, round: z.number().int().min(0) };
const attempt = z.number().int().min(0);
/**
 * A secure sum of a run's statistics or evaluation phase, a rollout's or a monitoring measurement
 * (absent: its training round).
 */
const phase = z.enum(['statistics', 'evaluate', 'rollout', 'monitor']).optional();
/** A blinded evaluation label: model-A … model-H. */
const blindLabel = z.string().regex(/^model-[A-H]$/);
/** Headline figures: metric name → value (null where the metric is undefined on the data). */
const figures = z
  .record(z.string().regex(/^[A-Za-z][A-Za-z0-9]{0,63}$/), z.number().nullable())
  .refine((m) => Object.keys(m).length <= 64, 'at most 64 metrics');

/** A stage of a staged rollout. */
const rolloutStage = z.enum(['shadow', 'canary', 'full']);

/** The fields of each kind of entry (besides kind, index, at, prev). */
export const logEntryBodies = {
  /** Entry 0: who the log is, who may cosign it and how many cosignatures a checkpoint needs. */
  'log-created': z.strictObject({
    origin: z.string().min(1).max(200),
    consortium: id,
    logKey: z.string().min(1).max(500),
    witnesses: z.array(z.strictObject({ institution: id, key: z.string().min(1).max(500) })).max(1000),
    quorum: z.number().int().min(0),
  }),
  /** The consortium policy in force (until governance signs policies: the consortium file). */
  'policy-adopted': z.strictObject({
    policySha256: hex64,
    policy: z.unknown(),
    /** The consortium policy's version and the proposal whose quorum adopted it (governance). */
    version: z.number().int().min(1).optional(),
    proposal: hex64.optional(),
  }),
  /**
   * A member enrolled (or renewed) on its own machine: the certificates the CA issued for its CSRs (by
   * SHA-256) and its Ed25519 identity key, which verifies its proposal signatures and cosignatures.
   */
  'member-enrolled': z.strictObject({
    member: id,
    roles: z.array(z.string().max(64)).max(10),
    tlsCertSha256: hex64,
    identityCertSha256: hex64,
    identityKey: z.string().max(100),
    notAfter: z.string().max(40),
    renewal: z.boolean(),
  }),
  /**
   * A member's pinned identity key replaced: by a rotation statement signed with the key pinned until now
   * (`signature`), or by an approved replace-identity-key proposal (`proposal`, recovery of a lost key).
   * Until such an entry, a different key a member presents (re-enrollment) counts for nothing.
   */
  'identity-key-changed': z.strictObject({
    member: id,
    previousKey: z.string().max(100),
    key: z.string().max(100),
    via: z.enum(['rotation', 'recovery']),
    signature: z.string().max(200).optional(),
    proposal: hex64.optional(),
  }),
  'certificate-revoked': z.strictObject({ member: id, serial: z.string().max(64), reason: text }),
  /** A new log witness (an institution's identity key as a cosigner vkey) and the quorum from now on. */
  'witness-added': z.strictObject({
    institution: id,
    key: z.string().min(1).max(500),
    quorum: z.number().int(),
  }),
  /** A governance proposal: what is decided (its subject, in full) under which policy, and who proposed it. */
  'proposal-created': z.strictObject({
    proposal: hex64,
    proposalKind: z.string().max(64),
    subjectSha256: hex64,
    policySha256: hex64,
    createdAt: z.string().max(40),
    proposer: id,
    subject: z.unknown(),
  }),
  'proposal-signed': z.strictObject({ proposal: hex64, signer: id, signature: z.string().max(200) }),
  'proposal-decided': z.strictObject({
    proposal: hex64,
    outcome: z.enum(['approved', 'rejected', 'expired']),
    signers: z.array(id),
    missing: text,
  }),
  /** A final model a quorum approved for release outside the consortium. */
  'release-approved': z.strictObject({ run: id, modelSha256: hex64, proposal: hex64 }),
  /**
   * A model alias (`candidate`, `production`, …) moved by an approved move-alias proposal, or by a
   * completed staged rollout (`proposal`: its approve-rollout proposal): the version it points at now
   * and the one it pointed at before (null for a new alias).
   */
  'alias-moved': z.strictObject({
    alias: z.string().regex(/^[a-z0-9-]{1,40}$/),
    version: hex64,
    previous: hex64.nullable(),
    proposal: hex64,
  }),
  'incident-raised': z.strictObject({ incident: id, raisedBy: id, reason: text }),
  'incident-resolved': z.strictObject({ incident: id, proposal: hex64.nullable(), resolvedBy: z.array(id) }),
  // ---- Incident drills (re-checked by governance/drill-trail.ts) ----
  /**
   * A rehearsal of the incident playbook: the incident it raised (logged just before, pausing new rounds
   * like any other), the alias whose rollback it rehearses, who started it (`coordinator` on a schedule).
   */
  'drill-started': z.strictObject({
    drill: id,
    incident: id,
    alias: z.string().regex(/^[a-z0-9-]{1,40}$/),
    by: id,
    scheduled: z.boolean(),
  }),
  /**
   * One automatic step of a drill and whether it held: `paused` (no round or phase opened on a tick
   * after the incident), `rollback-rehearsal` (the alias's current version, the version a rollback
   * would restore, and whether the coordinator still holds that model's bytes hashing to it).
   */
  'drill-step': z.strictObject({
    drill: id,
    step: z.enum(['paused', 'rollback-rehearsal']),
    ok: z.boolean(),
    detail: text,
    current: hex64.nullable().optional(),
    target: hex64.nullable().optional(),
  }),
  /**
   * A drill ended with its incident's resolution (logged just before, in the same transaction):
   * time to recover = the resolution entry's `at` minus the raising entry's `at`.
   */
  'drill-completed': z.strictObject({
    drill: id,
    incident: id,
    timeToRecoverMs: z.number().int(),
    stepsOk: z.number().int().min(0),
    stepsFailed: z.number().int().min(0),
  }),
  /** A run and every security parameter of it. */
  'run-configured': z.strictObject({
    run: id,
    configSha256: hex64,
    config: z.unknown(),
    policyIndex: z.number().int().min(0),
    /** The start-run proposal whose quorum approved it (absent when no policy was adopted yet). */
    proposal: hex64.optional(),
  }),
  'model-initialized': z.strictObject({ ...runRound, modelSha256: hex64 }),
  'round-started': z.strictObject({
    ...runRound,
    attempt,
    phase,
    modelIn: hex64,
    cohort: z.array(id),
    protocol: z.enum(['secagg', 'none']),
    threshold: z.number().int().min(0).nullable(),
  }),
  /** Hashes of the signed adverts and of each public key (a key must never appear twice in the log). */
  'keys-advertised': z.strictObject({
    ...runRound,
    attempt,
    phase,
    sessionId: hex64,
    adverts: z.array(
      z.strictObject({
        participant: id,
        advertSha256: hex64,
        encryptionKeySha256: hex64,
        maskingKeySha256: hex64,
      }),
    ),
  }),
  'survivors-fixed': z.strictObject({
    ...runRound,
    attempt,
    phase,
    sessionId: hex64,
    sharedKeys: z.array(id),
    survivors: z.array(id),
    dropped: z.array(id),
  }),
  /** A participant's signed commitment to the exact bytes it uploaded. */
  'update-committed': z.strictObject({
    ...runRound,
    attempt,
    phase,
    participant: id,
    modelIn: hex64,
    sha256: hex64,
    sessionId: z.string().max(128),
    signature: z.string().max(200),
  }),
  'round-aborted': z.strictObject({ ...runRound, attempt, phase, reason: text }),
  'aggregate-computed': z.strictObject({
    ...runRound,
    attempt,
    sha256: hex64,
    contributors: z.array(id),
    examples: z.number().min(0),
  }),
  /** A new model version and the digest of its provenance statement (an in-toto Statement in DSSE). */
  'model-released': z.strictObject({
    ...runRound,
    modelIn: hex64,
    modelSha256: hex64,
    provenanceSha256: hex64,
  }),
  evaluated: z.strictObject({
    ...runRound,
    examples: z.number().min(0),
    loss: z.number().nullable(),
    accuracy: z.number().nullable(),
  }),
  refused: z.strictObject({
    run: id.nullable(),
    round: z.number().int().min(0).nullable(),
    participant: id.nullable(),
    code: z.string().max(64),
    message: text,
  }),
  /**
   * A member's refusals of one window beyond those recorded in full as `refused`: the count of each
   * code (all refusals of the window), so a flood of bad requests adds a bounded number of entries.
   */
  'refusals-summarized': z.strictObject({
    participant: id,
    from: z.number().int().min(0),
    to: z.number().int().min(0),
    counts: z
      .record(z.string().max(64), z.number().int().min(1))
      .refine((c) => Object.keys(c).length <= 100, 'at most 100 codes'),
    recordedInFull: z.number().int().min(0),
  }),
  /** A participant's privacy event for a round and the ε its own ledger reports (DP accounting). */
  'privacy-spent': z.strictObject({
    ...runRound,
    participant: id,
    /** The secure-aggregation attempt it trained for (each attempt a site trains for is charged). */
    attempt: attempt.optional(),
    /** A noised secure sum of a run's statistics or evaluate phase, or of an evaluation plan (absent: training). */
    phase: z.enum(['statistics', 'evaluate', 'rollout', 'monitor']).optional(),
    mechanism: z.string().max(64),
    noiseMultiplier: z.number().min(0).optional(),
    samplingRate: z.number().min(0).max(1).optional(),
    steps: z.number().int().min(0).optional(),
    rho: z.number().min(0).optional(),
    neighbouring: z.string().max(64),
    epsilonRun: z.number().min(0).nullable(),
    epsilonTotal: z.number().min(0).nullable(),
    delta: z.number().min(0).max(1),
  }),
  'run-completed': z.strictObject({ run: id }),
  /** A run stopped for good, with the registered code and why (e.g. a round's attempts exhausted). */
  'run-failed': z.strictObject({ ...runRound, attempt, code: z.string().max(64), reason: text }),
  /** A run stopped for good by an operator (`by`), or by a cancel-run quorum (`proposal`). */
  'run-cancelled': z.strictObject({ run: id, by: z.string().max(200), proposal: hex64.optional() }),
  /**
   * The blinded labels of an approved evaluation plan (`plan`: its digest): one salted hash commitment
   * per label to the model it stands for, opened by `evaluation-unblinded` once every result is logged.
   */
  'evaluation-blinded': z.strictObject({
    plan: hex64,
    commitments: z
      .array(z.strictObject({ label: blindLabel, commitment: hex64 }))
      .min(1)
      .max(8),
  }),
  /** The headline figures of one blinded model under a plan, and the digest of the full metrics report. */
  'evaluation-result': z.strictObject({
    plan: hex64,
    label: blindLabel,
    metrics: figures,
    sliceMetrics: z
      .record(z.string().min(1).max(200), figures)
      .refine((s) => Object.keys(s).length <= 64, 'at most 64 slices')
      .optional(),
    metricsSha256: hex64,
    rows: z.number().int().min(0),
    protocol: z.string().min(1).max(64),
  }),
  /** The openings of a plan's blinding commitments: which model each label was. */
  'evaluation-unblinded': z.strictObject({
    plan: hex64,
    openings: z
      .array(z.strictObject({ label: blindLabel, name: id, sha256: hex64, salt: hex64 }))
      .min(1)
      .max(8),
  }),
  /** The plan's decision rule evaluated on the logged, unblinded figures. */
  'evaluation-decision': z.strictObject({
    plan: hex64,
    outcome: z.enum(['pass', 'fail', 'undetermined']),
    clauses: z
      .array(
        z.strictObject({
          text,
          left: z.number().nullable(),
          right: z.number().nullable(),
          holds: z.boolean().nullable(),
        }),
      )
      .max(32),
  }),
  /**
   * One site's own evaluation sums of a plan's label, revealed with its consent (the plan asks for
   * per-site figures, the policy allows them, the site's own policy too): their digest, not the sums.
   */
  'evaluation-disclosure': z.strictObject({
    plan: hex64,
    label: blindLabel,
    site: id,
    rows: z.number().int().min(0),
    sumsSha256: hex64,
  }),
  // ---- Staged rollout (governance/rollout-plan.ts; re-checked by governance/rollout-trail.ts) ----
  /**
   * A stage of an approved rollout plan (`rollout`: its digest) starts at `sites`. A canary stage names
   * the audit-log checkpoint (tree size and root hash, made after the plan's approval) its sites were
   * drawn from.
   */
  'rollout-stage-started': z.strictObject({
    rollout: hex64,
    stage: rolloutStage,
    sites: z.array(id).min(1).max(1000),
    checkpoint: z.strictObject({ size: z.number().int().min(1), rootHash: hex64 }).optional(),
  }),
  /** A stage's gate decided on its figures (group → metric → value) over `rows` rows. */
  'rollout-gate': z.strictObject({
    rollout: hex64,
    stage: rolloutStage,
    outcome: z.enum(['pass', 'fail', 'undetermined']),
    rows: z.number().int().min(0),
    figures: z
      .partialRecord(z.enum(['candidate', 'production', 'paired']), figures)
      .refine((f) => Object.keys(f).length <= 3, 'at most 3 groups'),
  }),
  /** The next stage follows a passed gate. */
  'rollout-advanced': z.strictObject({ rollout: hex64, from: rolloutStage, to: rolloutStage }),
  /**
   * A rollout stopped during `stage`: its gate failed, a site's own circuit breaker tripped (`by`, with
   * the site's Ed25519 `signature` over its statement) or a rollback quorum decided (`proposal`).
   * Privacy already spent is not refunded.
   */
  'rollout-rolled-back': z.strictObject({
    rollout: hex64,
    stage: rolloutStage,
    cause: z.enum(['gate', 'circuit-breaker', 'quorum']),
    by: id.optional(),
    signature: z.string().max(200).optional(),
    proposal: hex64.optional(),
  }),
  /** The last stage's gate passed: the candidate `version` replaces production (an alias-moved follows). */
  'rollout-completed': z.strictObject({ rollout: hex64, version: hex64 }),
  // ---- Monitoring of a deployed model (coordinator/monitoring-jobs.ts) ----
  /**
   * One monitoring measurement of `model` (the version `alias` pointed at): drift of the sites' summed
   * monitoring counts (`currentRows` served or scored rows) against the summed scores of their training
   * rows (`referenceRows`), both secure sums (`noised`: with differential-privacy noise). The largest
   * per-feature PSI, Jensen-Shannon distance and binned KS, the score and predicted-class PSI, and the
   * 90th latency percentile's bin edge in ms (null: no request recorded, or slower than the last edge).
   */
  'monitoring-report': z.strictObject({
    model: hex64,
    alias: z.string().regex(/^[a-z0-9-]{1,40}$/),
    measurement: z.number().int().min(1),
    referenceRows: z.number().int().min(0),
    currentRows: z.number().int().min(0),
    maxFeaturePsi: z.number().min(0),
    maxFeatureJs: z.number().min(0).max(1),
    maxFeatureKs: z.number().min(0).max(1),
    scorePsi: z.number().min(0),
    predictedClassPsi: z.number().min(0),
    latencyP90Ms: z.number().min(0).nullable(),
    noised: z.boolean(),
  }),
} as const;

export type LogEntryKind = keyof typeof logEntryBodies;
export type LogEntryBody<K extends LogEntryKind> = z.infer<(typeof logEntryBodies)[K]>;

export type LogEntry = {
  [K in LogEntryKind]: {
    readonly kind: K;
    readonly index: number;
    readonly at: number;
    readonly prev: string;
  } & LogEntryBody<K>;
}[LogEntryKind];

const headerSchema = z.object({
  kind: z.string(),
  index: z.number().int().min(0),
  at: z.number().int().min(0),
  prev: z.union([z.literal(''), hex64]),
});

/** Canonical bytes of an entry (RFC 8785 JSON, UTF-8). Throws INVALID_ARGUMENT for a malformed entry. */
export function encodeLogEntry(entry: LogEntry): Uint8Array {
  checkEntry(entry, 'entry');
  return new TextEncoder().encode(canonicalizeJson(entry));
}

function checkEntry(value: unknown, field: string): LogEntry {
  const head = headerSchema.safeParse(value);
  if (!head.success) throw new EntenteError('INVALID_MESSAGE', `${field}: malformed entry header`, { field });
  const schema = (logEntryBodies as Record<string, z.ZodType>)[head.data.kind];
  if (!schema)
    throw new EntenteError(
      'INVALID_MESSAGE',
      `${field}.kind: unknown kind "${head.data.kind.slice(0, 40)}"`,
      { field: `${field}.kind` },
    );
  const { kind: _k, index: _i, at: _a, prev: _p, ...body } = value as Record<string, unknown>;
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = `${field}.${issue.path.map(String).join('.')}`;
    throw new EntenteError('INVALID_MESSAGE', `${path}: ${issue.message}`, { field: path });
  }
  return value as LogEntry;
}

/**
 * Parses entry bytes; throws INVALID_MESSAGE (naming the field) unless they are valid UTF-8 JSON, in
 * canonical form (re-encoding gives the same bytes), of a known kind with a valid body.
 */
export function parseLogEntry(bytes: Uint8Array, field = 'entry'): LogEntry {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new EntenteError('INVALID_MESSAGE', `${field}: not UTF-8 JSON`, { field });
  }
  const entry = checkEntry(value, field);
  const again = new TextEncoder().encode(canonicalizeJson(value));
  if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i]))
    throw new EntenteError('INVALID_MESSAGE', `${field}: not in canonical form (RFC 8785)`, { field });
  return entry;
}

/**
 * The witnesses of a log and the cosignature quorum as its entries state them: those of the
 * log-created entry, then each witness-added entry (a later one for the same institution replaces its
 * key, e.g. after a renewal). Trust on first use: `--trusted-keys` overrides this for auditors.
 */
export function collectWitnesses(entries: readonly LogEntry[]): { keys: string[]; quorum: number } {
  const byInstitution = new Map<string, string>();
  let quorum = 0;
  for (const e of entries) {
    if (e.kind === 'log-created') {
      for (const w of e.witnesses) byInstitution.set(w.institution, w.key);
      quorum = e.quorum;
    } else if (e.kind === 'witness-added') {
      byInstitution.set(e.institution, e.key);
      quorum = e.quorum;
    }
  }
  return { keys: [...byInstitution.values()], quorum };
}
