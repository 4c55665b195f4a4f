/**
 * Checking a proposed run before any data is touched (issue 6): against the consortium policy in force
 * (src/governance/run-check.ts), its projected privacy spend (RDP accountant), the secure-aggregation
 * threshold margin, and each site's own answer (a `plan` task every connected institution answers for
 * itself from its site policy, ledger and data schema). The dry run says go only when every check is ok.
 */
import { randomBytes } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';
import {
  type PlanReason,
  type Policy,
  type RunFacts,
  checkRunAgainstPolicy,
  computeSecAggMargin,
} from '../governance/index.ts';
import { type PlanResult, type RunConfig, parseRunConfig, projectRunEpsilon } from '../protocol/index.ts';
import type { SqliteStore } from '../storage/index.ts';
import { checkSchemaAgreement } from './schema-agreement.ts';

const DEFAULT_DELTA = 1e-5;

/** The threshold a round with `cohort` participants uses: the configured one, else ⌊2n/3⌋+1 (at least 3). */
export function computeEffectiveThreshold(config: RunConfig, cohort: number): number {
  return config.secureAggregation.threshold ?? Math.max(3, Math.floor((2 * cohort) / 3) + 1);
}

/** What the policy checks look at in a run configuration. */
export function describeRunFacts(config: RunConfig, delta: number): RunFacts {
  const dp = config.train.dp;
  const cdp = config.clientDp;
  return {
    id: config.id,
    rounds: config.rounds,
    minParticipants: config.minParticipants,
    secureAggregation: {
      protocol: config.secureAggregation.protocol,
      threshold: config.secureAggregation.threshold,
    },
    sampleDp: dp ? { noiseMultiplier: dp.noiseMultiplier, clipNorm: dp.clipNorm } : undefined,
    clientDp: cdp ? { noiseMultiplier: cdp.noiseMultiplier, clipNorm: cdp.clipNorm } : undefined,
    projectedEpsilon: projectRunEpsilon(config, delta).at(-1)?.epsilon ?? null,
    delta,
    dataSchemaDigest: config.dataSchemaDigest,
    // A linear (regression) model reports MSE as its loss, with MAE, RMSE and R² from the sites' sums.
    metrics: !config.evaluate
      ? []
      : config.model.kind === 'linear'
        ? ['loss', 'mae', 'rmse', 'r2']
        : ['loss', 'accuracy'],
    // Participants send their trained weights' difference from the round's model.
    tensors: 'model-deltas',
  };
}

function deltaOf(policy: Policy | undefined): number {
  return policy?.exchange.differentialPrivacy.delta ?? DEFAULT_DELTA;
}

/** Throws POLICY_REFUSED listing every rule of `policy` the run configuration breaks (INVALID_CONFIG if malformed). */
export function checkRunConfigAgainstPolicy(input: unknown, policy: Policy): void {
  const config = parseRunConfig(input);
  const failed = checkRunAgainstPolicy(policy, describeRunFacts(config, deltaOf(policy))).filter(
    (r) => !r.ok,
  );
  if (failed.length > 0)
    throw new EntenteError('POLICY_REFUSED', failed.map((r) => r.message).join('\n'), {
      field: failed[0]!.check,
    });
}

export interface PlanOutcome {
  readonly go: boolean;
  readonly reasons: readonly string[];
  readonly checks: readonly PlanReason[];
}

export interface RunPlannerDeps {
  readonly store: SqliteStore;
  readonly now: () => number;
  readonly policy: () => Policy | undefined;
  readonly institutions: () => string[];
  readonly available: () => string[];
  readonly notify: (participant: string) => void;
  /** The data schema digest each participant stated at registration (the run engine's rule applies). */
  readonly schemaDigestOf?: (participant: string) => string | undefined;
}

/** Runs dry runs: sends `plan` tasks, gathers the sites' answers, combines every check. */
export class RunPlanner {
  private readonly deps: RunPlannerDeps;
  private readonly pending = new Map<string, (r: PlanResult) => void>();

  constructor(deps: RunPlannerDeps) {
    this.deps = deps;
  }

  /** True when `taskId` is a dry-run task waiting for its answer. */
  owns(taskId: string): boolean {
    return this.pending.has(taskId);
  }

  /** A site's answer; throws NOT_FOUND when the task is not this participant's. */
  accept(participant: string, taskId: string, result: PlanResult): { accepted: true } {
    const task = this.deps.store.getTask(taskId);
    const resolve = this.pending.get(taskId);
    if (!task || task.participant !== participant || task.kind !== 'plan' || !resolve)
      throw new EntenteError('NOT_FOUND', `task "${taskId}" is not assigned to ${participant}`, {
        field: 'taskId',
      });
    if (result.runId !== task.run_id)
      throw new EntenteError('STALE_ROUND', 'runId does not match the task', { field: 'runId' });
    this.deps.store.setTaskStatus(taskId, 'done', this.deps.now());
    this.pending.delete(taskId);
    resolve(result);
    return { accepted: true };
  }

  async plan(input: unknown, waitMs: number): Promise<PlanOutcome> {
    const checks: PlanReason[] = [];
    let config: RunConfig;
    try {
      config = parseRunConfig(input);
    } catch (err) {
      const e = err as EntenteError;
      checks.push({
        check: e.field ?? 'run',
        ok: false,
        message: `the run configuration is invalid: ${e.message}`,
      });
      return summarize(checks);
    }
    const policy = this.deps.policy();
    const delta = deltaOf(policy);
    const facts = describeRunFacts(config, delta);
    if (policy) checks.push(...checkRunAgainstPolicy(policy, facts));
    else
      checks.push({
        check: 'policy',
        ok: true,
        message: 'no consortium policy is in force (a local workspace): only the sites check the run',
      });
    checks.push({
      check: 'privacy.projected',
      ok: true,
      message:
        facts.projectedEpsilon === null
          ? 'the run has no differential privacy: ε is unbounded for every institution'
          : `each institution taking part in every round would spend ε = ${facts.projectedEpsilon.toFixed(3)} at δ = ${delta} (RDP accountant)`,
    });
    const institutions = this.deps.institutions();
    const available = new Set(this.deps.available());
    if (config.secureAggregation.protocol === 'secagg') {
      const n = institutions.filter((i) => available.has(i)).length;
      checks.push(computeSecAggMargin(n, computeEffectiveThreshold(config, n)));
    }
    if (available.size < config.minParticipants)
      checks.push({
        check: 'minParticipants',
        ok: false,
        message: `${available.size} institutions are connected; the run needs ${config.minParticipants} per round`,
      });
    const digestOf = this.deps.schemaDigestOf;
    if (digestOf) {
      // The rule the run's first phase applies (run-engine.ts): same digests, the run's if it names one.
      const sites = new Map(
        institutions.filter((i) => available.has(i)).map((i) => [i, digestOf(i)] as const),
      );
      const agreement = checkSchemaAgreement(config.dataSchemaDigest, sites);
      checks.push({
        check: 'data-schema.agreement',
        ok: agreement.ok,
        message: agreement.ok
          ? agreement.message
          : `the run's first phase would not open: ${agreement.message}`,
      });
    }
    checks.push(...(await this.askSites(config, input, institutions, available, waitMs)));
    return summarize(checks);
  }

  private async askSites(
    config: RunConfig,
    input: unknown,
    institutions: readonly string[],
    available: ReadonlySet<string>,
    waitMs: number,
  ): Promise<PlanReason[]> {
    const out: PlanReason[] = [];
    const nonce = randomBytes(4).toString('hex');
    const answers = new Map<string, Promise<PlanResult | undefined>>();
    for (const institution of institutions) {
      if (!available.has(institution)) {
        out.push({
          check: 'site',
          ok: false,
          message: `${institution}: not connected, so it cannot answer for itself`,
        });
        continue;
      }
      const taskId = `plan-${config.id}-${nonce}-${institution}`.slice(0, 64);
      const task = {
        taskId,
        runId: config.id,
        round: 0,
        issuedAt: this.deps.now(),
        kind: 'plan' as const,
        config: input,
        cohortSize: institutions.length,
      };
      const answered = new Promise<PlanResult | undefined>((resolve) => {
        const timer = setTimeout(() => {
          this.pending.delete(taskId);
          this.deps.store.setTaskStatus(taskId, 'expired', this.deps.now());
          resolve(undefined);
        }, waitMs);
        this.pending.set(taskId, (r) => {
          clearTimeout(timer);
          resolve(r);
        });
      });
      this.deps.store.insertTask({
        id: taskId,
        run_id: config.id,
        round: 0,
        kind: 'plan',
        participant: institution,
        status: 'open',
        task_json: JSON.stringify(task),
        created_at: this.deps.now(),
        completed_at: null,
      });
      this.deps.notify(institution);
      answers.set(institution, answered);
    }
    for (const [institution, answered] of answers) {
      const r = await answered;
      if (!r)
        out.push({
          check: 'site',
          ok: false,
          message: `${institution}: did not answer within ${Math.round(waitMs / 1000)} s`,
        });
      else out.push(...r.reasons.map((x) => ({ check: x.check, ok: x.ok, message: x.message })));
    }
    return out;
  }
}

function summarize(checks: PlanReason[]): PlanOutcome {
  const failed = checks.filter((c) => !c.ok);
  return { go: failed.length === 0, reasons: failed.map((c) => c.message), checks };
}
