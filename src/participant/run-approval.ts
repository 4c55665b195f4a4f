/**
 * A participant enforcing the consortium's rules on its own side (issue 6): before it touches its data
 * for a run, it reads the audit log up to the newest checkpoint it verified, checks that the entries hash
 * to that checkpoint's root (RFC 6962), replays the governance trail (signatures against enrolled
 * identity keys, quorums of the policy in force: src/governance/verify-trail.ts), and requires the run's
 * `run-configured` entry to follow an approved start-run proposal. A coordinator that starts a run
 * without its quorum, or forges an approval, gets a refusal (PROTOCOL_VIOLATION, journaled). The entries
 * are fetched incrementally and kept; the same replay gives every member's pinned identity key, which
 * secure aggregation checks peers' adverts against (identity-key.ts in governance).
 */
import { type LogEntry, MerkleTree, hashLeaf, parseLogEntry } from '../audit/index.ts';
import { EntenteError } from '../core/errors.ts';
import {
  type EvaluationPlan,
  type RolloutView,
  type TrailEntry,
  verifyGovernanceTrail,
} from '../governance/index.ts';
import { type RunConfig, parseRunConfig } from '../protocol/index.ts';
import { type RegistryEntry, type RegistryView, buildRegistryView } from '../registry/index.ts';
import type { MtlsClient } from '../transport/index.ts';
import type { LogWitness } from './log-witness.ts';

const BATCH = 10_000;

function refuse(message: string): never {
  throw new EntenteError('PROTOCOL_VIOLATION', `governance: ${message}`, { field: 'run' });
}

export interface RunApprovalCheck {
  /** Throws PROTOCOL_VIOLATION unless the verified log shows `run` approved by its quorum. */
  check(run: string): Promise<void>;
  /** The run configuration the log records for an approved `run` (after `check(run)`). */
  approvedConfig(run: string): RunConfig | undefined;
  /**
   * The identity key of every *admitted* member (policy in force, or the log's founding institutions)
   * as pinned in the log this site verified (read up to its newest verified checkpoint first): what
   * secure-aggregation adverts are checked against, never a certificate.
   */
  pinnedKeys(): Promise<ReadonlyMap<string, Uint8Array>>;
  /**
   * The evaluation plan with digest `digest` as the verified log pre-registers it (approved by its
   * quorum). Throws PROTOCOL_VIOLATION when the log shows no such approval or breaks a rule.
   */
  approvedPlan(digest: string): Promise<EvaluationPlan>;
  /** Whether the policy in force (in the verified log) lets evaluation plans ask for per-site figures. */
  perSiteEvaluationAllowed(): Promise<boolean>;
  /**
   * The rollout with plan digest `digest` as the verified log leaves it (approved by its quorum, its
   * stages, sites and gates re-checked). Throws PROTOCOL_VIOLATION when the log shows no such approval.
   */
  approvedRollout(digest: string): Promise<RolloutView>;
  /** Every approved rollout in the verified log (what this site serves follows them). */
  rollouts(): Promise<ReadonlyMap<string, RolloutView>>;
  /** The model registry's aliases as the verified log leaves them (alias → model version). */
  aliases(): Promise<ReadonlyMap<string, string>>;
  /**
   * The model registry replayed from the verified log (its governance trail checked first): every
   * model version the log records and the aliases pointing at them.
   */
  registry(): Promise<RegistryView>;
}

export function createRunApprovalCheck(input: {
  witness: LogWitness;
  client: () => MtlsClient;
}): RunApprovalCheck {
  const approved = new Map<string, RunConfig>();
  const entries: LogEntry[] = [];
  const tree = new MerkleTree();
  let trailOkAt = -1;
  let keysAt = -1;
  let keys: ReadonlyMap<string, Uint8Array> = new Map();
  let plansAt = -1;
  let plans: ReadonlyMap<string, EvaluationPlan> = new Map();
  let perSite = false;
  let rollouts: ReadonlyMap<string, RolloutView> = new Map();
  let aliases: ReadonlyMap<string, string> = new Map();
  let registryAt = -1;
  let registry: RegistryView | undefined;

  /** Reads the entries added since the last call and checks the whole log against the verified root. */
  async function sync(): Promise<void> {
    const { size, root } = await input.witness.refresh();
    if (size < entries.length) refuse(`the verified checkpoint (${size}) is older than entries already read`);
    for (let start = entries.length; start < size; start += BATCH) {
      const end = Math.min(size, start + BATCH);
      const r = await input
        .client()
        .getJson<{ entries: { index: number; body: string }[] }>(`/v1/log/entries?start=${start}&end=${end}`);
      const got = r.body?.entries ?? [];
      if (got.length !== end - start) refuse(`the log served ${got.length} of entries ${start}..${end - 1}`);
      for (const [k, e] of got.entries()) {
        if (e.index !== start + k) refuse(`the log served entry ${e.index} where ${start + k} belongs`);
        const bytes = new Uint8Array(Buffer.from(e.body, 'base64'));
        tree.appendLeafHash(hashLeaf(bytes));
        let entry: LogEntry;
        try {
          entry = parseLogEntry(bytes, `entry ${start + k}`);
        } catch (err) {
          return refuse(`an entry of the log is malformed (${(err as Error).message})`);
        }
        entries.push(entry);
      }
    }
    if (size === 0 || Buffer.from(tree.root()).toString('base64') !== root)
      refuse(`the entries served do not hash to the checkpoint of size ${size} this site verified`);
  }

  /** Replays the verified log's governance trail when it grew: approved plans and the policy in force. */
  async function refreshPlans(): Promise<void> {
    await sync();
    if (plansAt === entries.length) return;
    const trail = verifyGovernanceTrail(entries as unknown as TrailEntry[]);
    if (trail.problems.length > 0) refuse(`entry ${trail.problems[0]!.index}: ${trail.problems[0]!.message}`);
    plans = trail.approvedPlans;
    rollouts = trail.rollouts;
    aliases = trail.aliases;
    perSite = trail.policy?.exchange.perSiteEvaluation === true;
    plansAt = entries.length;
  }

  return {
    approvedConfig: (run) => approved.get(run),
    async pinnedKeys() {
      await sync();
      if (keysAt !== entries.length) {
        const trail = verifyGovernanceTrail(entries as unknown as TrailEntry[]);
        keys = new Map([...trail.identityKeys].filter(([member]) => trail.members.has(member)));
        keysAt = entries.length;
      }
      return keys;
    },
    async approvedPlan(digest: string): Promise<EvaluationPlan> {
      await refreshPlans();
      const plan = plans.get(digest);
      if (!plan)
        refuse(`evaluation plan ${digest.slice(0, 12)}… is not approved in the log this site verified`);
      return plan;
    },
    async approvedRollout(digest: string): Promise<RolloutView> {
      await refreshPlans();
      const r = rollouts.get(digest);
      if (!r) refuse(`rollout ${digest.slice(0, 12)}… is not approved in the log this site verified`);
      return r;
    },
    async rollouts(): Promise<ReadonlyMap<string, RolloutView>> {
      await refreshPlans();
      return rollouts;
    },
    async aliases(): Promise<ReadonlyMap<string, string>> {
      await refreshPlans();
      return aliases;
    },
    async registry(): Promise<RegistryView> {
      await refreshPlans();
      if (registryAt !== entries.length || !registry) {
        registry = buildRegistryView(entries as unknown as RegistryEntry[]);
        registryAt = entries.length;
      }
      return registry;
    },
    async perSiteEvaluationAllowed(): Promise<boolean> {
      await refreshPlans();
      return perSite;
    },
    async check(run: string): Promise<void> {
      await sync();
      if (approved.has(run)) return;
      if (trailOkAt !== entries.length) {
        const trail = verifyGovernanceTrail(entries as unknown as TrailEntry[]);
        if (trail.problems.length > 0)
          refuse(`entry ${trail.problems[0]!.index}: ${trail.problems[0]!.message}`);
        trailOkAt = entries.length;
      }
      const configured = entries.find((e) => e.kind === 'run-configured' && e.run === run);
      if (!configured) refuse(`run ${run} is not configured in the log this site verified`);
      const governed = entries.some(
        (e) => e.kind === 'policy-adopted' && e.version !== undefined && e.index < configured.index,
      );
      if (!governed) refuse(`run ${run} was configured before any consortium policy was adopted`);
      if (configured.kind !== 'run-configured' || configured.proposal === undefined)
        refuse(`run ${run} names no approved start-run proposal`);
      let config: RunConfig;
      try {
        config = parseRunConfig(configured.config);
      } catch (err) {
        return refuse(`run ${run}: the configuration in the log is not valid (${(err as Error).message})`);
      }
      approved.set(run, config);
    },
  };
}
