/**
 * Checks a proposed run against the consortium policy before any data is touched (issue 6): one
 * reason per rule of policy.exchange, ok or not, in a fixed order, each a sentence naming the policy
 * field, so that a refusal (or an approval) can be shown to members and written to the log as is.
 * Also the secure-aggregation dropout margin of a round (Bonawitz et al. 2017: a round completes only
 * if at least `threshold` participants survive to the unmasking step).
 */
import { EntenteError } from '../core/errors.ts';
import type { Policy } from './policy.ts';

/** What the coordinator extracts from a parsed run config. */
export interface RunFacts {
  readonly id: string;
  readonly rounds: number;
  readonly minParticipants: number;
  readonly secureAggregation: {
    readonly protocol: 'secagg' | 'none';
    readonly threshold?: number | undefined;
  };
  /** Sample-level DP-SGD (per institution) and/or client-level DP; undefined = no DP. */
  readonly sampleDp?: { readonly noiseMultiplier: number; readonly clipNorm: number } | undefined;
  readonly clientDp?: { readonly noiseMultiplier: number; readonly clipNorm: number } | undefined;
  /** ε the run would spend per institution at `delta` (computed by the caller's accountant), null = unbounded/no DP. */
  readonly projectedEpsilon: number | null;
  readonly delta: number;
  readonly dataSchemaDigest?: string | undefined;
  /** Metrics the run reports, e.g. ['loss', 'accuracy']. */
  readonly metrics: readonly string[];
  readonly tensors: 'model-deltas' | 'model-weights';
}

export interface PlanReason {
  /** The policy field checked, e.g. 'policy.exchange.maxRounds'. */
  readonly check: string;
  readonly ok: boolean;
  /** A sentence naming the policy field and both values. */
  readonly message: string;
}

/** The checks checkRunAgainstPolicy makes, in the order it reports them. */
export const runPolicyChecks = [
  'policy.exchange.maxRounds',
  'policy.exchange.minParticipantsPerRound',
  'policy.exchange.secureAggregation',
  'policy.exchange.differentialPrivacy.required',
  'policy.exchange.differentialPrivacy.minNoiseMultiplier',
  'policy.exchange.differentialPrivacy.maxEpsilon',
  'policy.exchange.clipping.maxClipNorm',
  'policy.exchange.dataSchemaDigests',
  'policy.exchange.metrics',
  'policy.exchange.tensors',
] as const;
export type RunPolicyCheck = (typeof runPolicyChecks)[number];

/** The check id computeSecAggMargin reports under. */
export const SECAGG_MARGIN_CHECK = 'secureAggregation.margin';

type Mechanism = { readonly label: string; readonly noiseMultiplier: number; readonly clipNorm: number };

function invalid(field: string, what: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${what}`, { field });
}

function checkDp(dp: RunFacts['sampleDp'], field: string): void {
  if (dp === undefined) return;
  if (dp === null || typeof dp !== 'object') invalid(field, 'must be an object or undefined');
  if (!(Number.isFinite(dp.noiseMultiplier) && dp.noiseMultiplier >= 0))
    invalid(`${field}.noiseMultiplier`, 'must be a finite number ≥ 0');
  if (!(Number.isFinite(dp.clipNorm) && dp.clipNorm > 0))
    invalid(`${field}.clipNorm`, 'must be a finite number > 0');
}

/** Throws INVALID_ARGUMENT naming the first field of `run` that is not of its declared shape. */
function checkRunFacts(run: RunFacts): void {
  if (run === null || typeof run !== 'object') invalid('run', 'must be an object');
  if (typeof run.id !== 'string' || run.id === '') invalid('run.id', 'must be a non-empty string');
  if (!(Number.isSafeInteger(run.rounds) && run.rounds >= 1)) invalid('run.rounds', 'must be an integer ≥ 1');
  if (!(Number.isSafeInteger(run.minParticipants) && run.minParticipants >= 1))
    invalid('run.minParticipants', 'must be an integer ≥ 1');
  const sa = run.secureAggregation;
  if (sa === null || typeof sa !== 'object' || (sa.protocol !== 'secagg' && sa.protocol !== 'none'))
    invalid('run.secureAggregation.protocol', 'must be "secagg" or "none"');
  if (sa.threshold !== undefined && !(Number.isSafeInteger(sa.threshold) && sa.threshold >= 1))
    invalid('run.secureAggregation.threshold', 'must be an integer ≥ 1 or undefined');
  checkDp(run.sampleDp, 'run.sampleDp');
  checkDp(run.clientDp, 'run.clientDp');
  const eps = run.projectedEpsilon;
  if (eps !== null && !(typeof eps === 'number' && eps >= 0))
    invalid('run.projectedEpsilon', 'must be a number ≥ 0 or null');
  if (!(Number.isFinite(run.delta) && run.delta >= 0 && run.delta < 1))
    invalid('run.delta', 'must be a number in [0, 1)');
  if (run.dataSchemaDigest !== undefined && typeof run.dataSchemaDigest !== 'string')
    invalid('run.dataSchemaDigest', 'must be a string or undefined');
  if (!Array.isArray(run.metrics) || !run.metrics.every((m) => typeof m === 'string'))
    invalid('run.metrics', 'must be an array of strings');
  if (run.tensors !== 'model-deltas' && run.tensors !== 'model-weights')
    invalid('run.tensors', 'must be "model-deltas" or "model-weights"');
}

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;
const quoteList = (items: readonly string[]): string => items.map((s) => JSON.stringify(s)).join(', ');

function listMechanisms(run: RunFacts): Mechanism[] {
  const out: Mechanism[] = [];
  if (run.sampleDp !== undefined) out.push({ label: 'sample-level DP', ...run.sampleDp });
  if (run.clientDp !== undefined) out.push({ label: 'client-level DP', ...run.clientDp });
  return out;
}

function reason(check: RunPolicyCheck, ok: boolean, message: string): PlanReason {
  return { check, ok, message };
}

function checkMinNoise(policy: Policy, mechanisms: readonly Mechanism[]): PlanReason {
  const id = 'policy.exchange.differentialPrivacy.minNoiseMultiplier';
  const min = policy.exchange.differentialPrivacy.minNoiseMultiplier;
  if (min === undefined) return reason(id, true, `${id} is not set, so any noise multiplier is allowed`);
  if (mechanisms.length === 0)
    return reason(id, true, `the run uses no DP mechanism, so ${id} (${min}) does not apply`);
  const used = mechanisms.map((m) => `${m.label} noise multiplier ${m.noiseMultiplier}`).join(' and ');
  const ok = mechanisms.every((m) => m.noiseMultiplier >= min);
  return reason(id, ok, `the run uses ${used}; ${id} requires at least ${min}`);
}

function checkEpsilon(policy: Policy, run: RunFacts): PlanReason {
  const id = 'policy.exchange.differentialPrivacy.maxEpsilon';
  const { maxEpsilon, delta } = policy.exchange.differentialPrivacy;
  if (maxEpsilon === undefined) return reason(id, true, `${id} is not set, so no ε limit applies`);
  const bound = `${id} allows ε ≤ ${maxEpsilon}${delta === undefined ? '' : ` at δ = ${delta}`}`;
  if (run.projectedEpsilon === null)
    return reason(id, false, `the run's privacy loss is unbounded (no DP accounting); ${bound}`);
  const spent = `the run would spend ε = ${run.projectedEpsilon} per institution at δ = ${run.delta}`;
  const tooMuch = run.projectedEpsilon > maxEpsilon;
  const deltaTooLarge = delta !== undefined && run.delta > delta;
  if (!tooMuch && !deltaTooLarge) return reason(id, true, `${spent}; ${bound}`);
  const atDelta = `only at δ ≤ ${delta} (policy.exchange.differentialPrivacy.delta)`;
  const limit = tooMuch
    ? `${id} allows ${maxEpsilon}${deltaTooLarge ? `, and ${atDelta}` : ''}`
    : `${id} applies ${atDelta}`;
  return reason(id, false, `${spent}; ${limit}`);
}

function checkClipNorm(policy: Policy, mechanisms: readonly Mechanism[]): PlanReason {
  const id = 'policy.exchange.clipping.maxClipNorm';
  const max = policy.exchange.clipping.maxClipNorm;
  if (max === undefined) return reason(id, true, `${id} is not set, so any clipping norm is allowed`);
  if (mechanisms.length === 0)
    return reason(
      id,
      true,
      `the run uses no DP mechanism, so it declares no clipping norm to compare with ${id} (${max})`,
    );
  const used = mechanisms.map((m) => `${m.label} clipping norm ${m.clipNorm}`).join(' and ');
  const ok = mechanisms.every((m) => m.clipNorm <= max);
  return reason(id, ok, `the run uses ${used}; ${id} allows at most ${max}`);
}

/**
 * Checks `run` against `policy` (a parsed policy) and returns one reason per entry of runPolicyChecks,
 * in that order; the run may start only if every reason is ok. Checks that a policy leaves unset are
 * reported ok, saying so. The ε check also requires the run's δ to be at most policy δ when set.
 * Throws INVALID_ARGUMENT (field 'run.<name>') when `run` is not of the RunFacts shape.
 */
export function checkRunAgainstPolicy(policy: Policy, run: RunFacts): PlanReason[] {
  checkRunFacts(run);
  const ex = policy.exchange;
  const mechanisms = listMechanisms(run);
  const reasons: PlanReason[] = [];

  reasons.push(
    reason(
      'policy.exchange.maxRounds',
      run.rounds <= ex.maxRounds,
      `the run asks for ${plural(run.rounds, 'round', 'rounds')}; policy.exchange.maxRounds allows ${ex.maxRounds}`,
    ),
  );
  reasons.push(
    reason(
      'policy.exchange.minParticipantsPerRound',
      run.minParticipants >= ex.minParticipantsPerRound,
      `the run needs at least ${plural(run.minParticipants, 'participant', 'participants')} per round; ` +
        `policy.exchange.minParticipantsPerRound requires at least ${ex.minParticipantsPerRound}`,
    ),
  );
  const usesSecAgg = run.secureAggregation.protocol === 'secagg';
  reasons.push(
    reason(
      'policy.exchange.secureAggregation',
      usesSecAgg || ex.secureAggregation === 'optional',
      `the run ${usesSecAgg ? 'uses secure aggregation (secagg)' : 'does not use secure aggregation'}; ` +
        `policy.exchange.secureAggregation is ${ex.secureAggregation}`,
    ),
  );
  const dpRequired = ex.differentialPrivacy.required;
  reasons.push(
    reason(
      'policy.exchange.differentialPrivacy.required',
      mechanisms.length > 0 || !dpRequired,
      `the run ${mechanisms.length > 0 ? `uses ${mechanisms.map((m) => m.label).join(' and ')}` : 'uses no differential privacy'}; ` +
        `policy.exchange.differentialPrivacy.required is ${dpRequired}`,
    ),
  );
  reasons.push(checkMinNoise(policy, mechanisms));
  reasons.push(checkEpsilon(policy, run));
  reasons.push(checkClipNorm(policy, mechanisms));

  const digest = run.dataSchemaDigest;
  const digestListed = digest !== undefined && ex.dataSchemaDigests.includes(digest);
  reasons.push(
    reason(
      'policy.exchange.dataSchemaDigests',
      digestListed,
      digest === undefined
        ? 'the run names no data schema digest; policy.exchange.dataSchemaDigests requires one it lists'
        : `the run's data schema digest ${digest.slice(0, 64)} is ${digestListed ? '' : 'not '}listed in policy.exchange.dataSchemaDigests`,
    ),
  );
  const unlisted = [...new Set(run.metrics.filter((m) => !ex.metrics.includes(m)))];
  reasons.push(
    reason(
      'policy.exchange.metrics',
      unlisted.length === 0,
      unlisted.length === 0
        ? `every metric the run reports (${run.metrics.length === 0 ? 'none' : quoteList(run.metrics)}) is listed in policy.exchange.metrics`
        : `the run reports ${quoteList(unlisted)}, not listed in policy.exchange.metrics (${ex.metrics.length === 0 ? 'empty' : quoteList(ex.metrics)})`,
    ),
  );
  reasons.push(
    reason(
      'policy.exchange.tensors',
      run.tensors === ex.tensors,
      `the run exchanges ${run.tensors}; policy.exchange.tensors is ${ex.tensors}`,
    ),
  );
  return reasons;
}

/**
 * The secure-aggregation dropout margin of a round: how many of the `available` participants may drop
 * before the round aborts (available − threshold). ok when the margin is ≥ 0 (a margin of 0 is ok but
 * tolerates no dropout, and says so). Throws INVALID_ARGUMENT (field 'available' or 'threshold') unless
 * both are safe integers with available ≥ 0 and threshold ≥ 1.
 */
export function computeSecAggMargin(available: number, threshold: number): PlanReason {
  if (!(Number.isSafeInteger(available) && available >= 0)) invalid('available', 'must be an integer ≥ 0');
  if (!(Number.isSafeInteger(threshold) && threshold >= 1)) invalid('threshold', 'must be an integer ≥ 1');
  const margin = available - threshold;
  const head = `${plural(available, 'participant', 'participants')} available, threshold ${threshold}`;
  const tail =
    margin > 0
      ? `up to ${margin} may drop out before the round aborts (margin ${margin})`
      : margin === 0
        ? 'no dropout can be tolerated (margin 0)'
        : `the round cannot complete: ${plural(-margin, 'more participant is', 'more participants are')} needed (margin ${margin})`;
  return { check: SECAGG_MARGIN_CHECK, ok: margin >= 0, message: `${head}: ${tail}` };
}
