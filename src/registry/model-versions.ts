/**
 * Model versions and their lineage, collected from the audit log's entries alone (pure: plain entry
 * objects as src/audit's parseLogEntry returns them). A version is a content address: the SHA-256 of
 * the model's safetensors bytes. Its lineage is where it first appeared: the run, the round, what kind
 * of model it is (`initial`: a run's round-0 model; `round`: an aggregated round's model; `released`:
 * a model a release-model quorum approved), the policy in force when the run was configured, the run's
 * data-schema digest, the digest of its model spec, the provenance statement logged with it, the model
 * it was trained from, and the pre-registered evaluations that compared it (plan digest, label,
 * headline figures and the plan's decision).
 */
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';

/** A log entry as parsed: its kind, index and body fields (declared like governance's TrailEntry). */
export interface RegistryEntry {
  readonly kind: string;
  readonly index: number;
  readonly [field: string]: unknown;
}

export type ModelVersionKind = 'initial' | 'round' | 'released';

export interface EvaluationReference {
  /** The evaluation plan's digest (its approve-evaluation-plan subject). */
  readonly plan: string;
  /** The blinded label the model was evaluated under and the name the plan gave it. */
  readonly label: string;
  readonly name: string;
  /** Headline figures logged for the label (null until its result is logged). */
  readonly metrics: Readonly<Record<string, number | null>> | null;
  /** The plan's decision ('pending' until its evaluation-decision entry). */
  readonly decision: 'pass' | 'fail' | 'undetermined' | 'pending';
  /** Log entry of the opening that names this model. */
  readonly entry: number;
}

export interface ModelVersion {
  /** SHA-256 of the model's safetensors bytes. */
  readonly id: string;
  readonly kind: ModelVersionKind;
  readonly run: string;
  readonly round: number;
  /** The model it was trained from (null for an initial model). */
  readonly parent: string | null;
  /** The run configuration's digest (its run-configured entry). */
  readonly configSha256: string | null;
  /** The policy in force when the run was configured (null without governance). */
  readonly policySha256: string | null;
  readonly dataSchemaDigest: string | null;
  /** SHA-256 of the run's model spec (canonical JSON): the trainer's model definition. */
  readonly modelSpecSha256: string | null;
  /** SHA-256 of the provenance statement (DSSE envelope) logged with the model (null: initial model). */
  readonly provenanceSha256: string | null;
  /** The log entry that first recorded the model, and the release approval's entry if any. */
  readonly entry: number;
  readonly releaseEntry: number | null;
  readonly evaluations: readonly EvaluationReference[];
}

interface RunRecord {
  readonly configSha256: string | null;
  readonly config: Record<string, unknown>;
  readonly policySha256: string | null;
}

interface Draft {
  id: string;
  kind: ModelVersionKind;
  run: string;
  round: number;
  parent: string | null;
  provenanceSha256: string | null;
  entry: number;
  releaseEntry: number | null;
  evaluations: EvaluationReference[];
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const isHex64 = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
const digestOf = (value: unknown): string | null => {
  try {
    return sha256Hex(new TextEncoder().encode(canonicalizeJson(value)));
  } catch {
    return null;
  }
};
const asObject = (v: unknown): Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

export interface ModelVersionCollection {
  /** Versions in the order they first appeared in the log. */
  readonly versions: readonly ModelVersion[];
  /** The logged configuration of each run (its run-configured entry). */
  readonly runConfigs: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
  /** Approved evaluation plans by digest (the subject of their approve-evaluation-plan proposal). */
  readonly plans: ReadonlyMap<string, unknown>;
}

/** Every model version the entries record, with its lineage. Never throws on odd entries: skips them. */
export function collectModelVersions(entries: readonly RegistryEntry[]): ModelVersionCollection {
  const drafts = new Map<string, Draft>();
  const runs = new Map<string, RunRecord>();
  const policies = new Map<number, string>();
  let policyInForce: string | null = null;
  const planProposals = new Map<string, { digest: string; subject: unknown }>();
  const plans = new Map<string, unknown>();
  const labels = new Map<string, Map<string, Readonly<Record<string, number | null>>>>();
  const decisions = new Map<string, EvaluationReference['decision']>();
  const add = (d: Draft): void => {
    if (!drafts.has(d.id)) drafts.set(d.id, d);
  };
  for (const e of entries) {
    switch (e.kind) {
      case 'policy-adopted':
        if (isHex64(e.policySha256)) {
          policies.set(e.index, e.policySha256);
          if (e.version !== undefined) policyInForce = e.policySha256;
        }
        break;
      case 'run-configured': {
        const policyIndex = typeof e.policyIndex === 'number' ? e.policyIndex : -1;
        runs.set(str(e.run), {
          configSha256: isHex64(e.configSha256) ? e.configSha256 : null,
          config: asObject(e.config),
          policySha256: policies.get(policyIndex) ?? policyInForce,
        });
        break;
      }
      case 'model-initialized':
        if (isHex64(e.modelSha256))
          add({
            id: e.modelSha256,
            kind: 'initial',
            run: str(e.run),
            round: Number(e.round) || 0,
            parent: null,
            provenanceSha256: null,
            entry: e.index,
            releaseEntry: null,
            evaluations: [],
          });
        break;
      case 'model-released':
        if (isHex64(e.modelSha256))
          add({
            id: e.modelSha256,
            kind: 'round',
            run: str(e.run),
            round: Number(e.round) || 0,
            parent: isHex64(e.modelIn) ? e.modelIn : null,
            provenanceSha256: isHex64(e.provenanceSha256) ? e.provenanceSha256 : null,
            entry: e.index,
            releaseEntry: null,
            evaluations: [],
          });
        break;
      case 'release-approved': {
        const d = isHex64(e.modelSha256) ? drafts.get(e.modelSha256) : undefined;
        if (d && d.run === str(e.run)) {
          d.kind = 'released';
          d.releaseEntry ??= e.index;
        }
        break;
      }
      case 'proposal-created':
        if (e.proposalKind === 'approve-evaluation-plan' && isHex64(e.subjectSha256))
          planProposals.set(str(e.proposal), { digest: e.subjectSha256, subject: e.subject });
        break;
      case 'proposal-decided': {
        const p = planProposals.get(str(e.proposal));
        if (p && e.outcome === 'approved') plans.set(p.digest, p.subject);
        break;
      }
      case 'evaluation-result': {
        const plan = str(e.plan);
        const byLabel = labels.get(plan) ?? new Map();
        byLabel.set(str(e.label), asObject(e.metrics) as Record<string, number | null>);
        labels.set(plan, byLabel);
        break;
      }
      case 'evaluation-unblinded': {
        const plan = str(e.plan);
        for (const item of Array.isArray(e.openings) ? (e.openings as unknown[]) : []) {
          const o = asObject(item);
          const d = isHex64(o.sha256) ? drafts.get(o.sha256) : undefined;
          if (!d) continue;
          d.evaluations.push({
            plan,
            label: str(o.label),
            name: str(o.name),
            metrics: labels.get(plan)?.get(str(o.label)) ?? null,
            decision: 'pending',
            entry: e.index,
          });
        }
        break;
      }
      case 'evaluation-decision':
        if (e.outcome === 'pass' || e.outcome === 'fail' || e.outcome === 'undetermined')
          decisions.set(str(e.plan), e.outcome);
        break;
    }
  }
  const versions = [...drafts.values()].map((d): ModelVersion => {
    const run = runs.get(d.run);
    const schema = run?.config.dataSchemaDigest;
    return Object.freeze({
      ...d,
      configSha256: run?.configSha256 ?? null,
      policySha256: run?.policySha256 ?? null,
      dataSchemaDigest: isHex64(schema) ? schema : null,
      modelSpecSha256: run && run.config.model !== undefined ? digestOf(run.config.model) : null,
      evaluations: d.evaluations.map((r) => ({ ...r, decision: decisions.get(r.plan) ?? 'pending' })),
    });
  });
  const runConfigs = new Map([...runs].map(([id, r]) => [id, r.config] as const));
  return { versions, runConfigs, plans };
}
