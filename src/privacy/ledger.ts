/**
 * The privacy ledger of one institution: the list of privacy events its records took part in
 * (mechanism, noise multiplier, sampling rate, steps, neighbouring relation). ε is always computed from
 * the ledger by composing the events' Rényi DP (Mironov 2017, composition by addition at each order)
 * and converting with the improved RDP→(ε, δ) bound (rdp-conversion.ts); it is never stored as a running
 * number. Before a round, the site composes its ledger with the proposed round and refuses when its own
 * budget (per run and in total) would be exceeded.
 */
import { EntenteError } from '../core/errors.ts';
import { convertRdpToEpsilon } from './rdp-conversion.ts';
import { DEFAULT_RDP_ORDERS, computeRdp, computeZcdpRdp } from './rdp.ts';

/** What one round (or one release) cost an institution's records. */
export interface PrivacyEvent {
  readonly run: string;
  readonly round: number;
  /** 'subsampled-gaussian': DP-SGD / DP-FedAvg (q = 1: no sampling); 'zcdp': a ρ-zCDP release (discrete Gaussian). */
  readonly mechanism: 'subsampled-gaussian' | 'zcdp';
  readonly noiseMultiplier?: number;
  readonly samplingRate?: number;
  readonly steps?: number;
  readonly rho?: number;
  /** Whose privacy: one record of this institution (sample-level) or this institution as a whole (client-level). */
  readonly neighbouring: 'add-remove-record' | 'add-remove-institution';
  /** Secure aggregation: the attempt of the round the site trained for (every attempt trained is charged). */
  readonly attempt?: number;
}

export interface PrivacyBudget {
  readonly epsilon: number;
  readonly delta: number;
}

/** An institution's own limits (site configuration): the consortium cannot raise them. */
export interface SiteBudget {
  readonly perRun?: PrivacyBudget;
  readonly total?: PrivacyBudget;
}

function invalid(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

/** Checks one event's fields; throws INVALID_ARGUMENT naming the field. */
export function checkPrivacyEvent(e: PrivacyEvent, field = 'event'): void {
  if (e.attempt !== undefined && !(Number.isSafeInteger(e.attempt) && e.attempt >= 0))
    invalid(`${field}.attempt`, 'must be an integer >= 0');
  if (e.mechanism === 'subsampled-gaussian') {
    if (!(typeof e.noiseMultiplier === 'number' && e.noiseMultiplier >= 0))
      invalid(`${field}.noiseMultiplier`, 'must be a number >= 0');
    if (!(typeof e.samplingRate === 'number' && e.samplingRate > 0 && e.samplingRate <= 1))
      invalid(`${field}.samplingRate`, 'must be in (0, 1]');
    if (!(Number.isInteger(e.steps) && (e.steps ?? 0) >= 0))
      invalid(`${field}.steps`, 'must be an integer >= 0');
  } else if (e.mechanism === 'zcdp') {
    if (!(typeof e.rho === 'number' && e.rho >= 0)) invalid(`${field}.rho`, 'must be a number >= 0');
  } else {
    invalid(`${field}.mechanism`, 'unknown mechanism');
  }
}

/** RDP of the composition of `events` at each order. */
export function composeLedgerRdp(
  events: readonly PrivacyEvent[],
  orders: readonly number[] = DEFAULT_RDP_ORDERS,
): number[] {
  const total = orders.map(() => 0);
  for (const [i, e] of events.entries()) {
    checkPrivacyEvent(e, `events.${i}`);
    const rdp =
      e.mechanism === 'zcdp'
        ? computeZcdpRdp(e.rho!, orders)
        : computeRdp({
            samplingRate: e.samplingRate!,
            noiseMultiplier: e.noiseMultiplier!,
            steps: e.steps!,
            orders,
          });
    for (let k = 0; k < total.length; k++) total[k]! += rdp[k]!;
  }
  return total;
}

/** ε at `delta` of the composed events (0 for an empty ledger). */
export function computeLedgerEpsilon(
  events: readonly PrivacyEvent[],
  delta: number,
  orders: readonly number[] = DEFAULT_RDP_ORDERS,
): { epsilon: number; order: number | null } {
  if (events.length === 0) return { epsilon: 0, order: null };
  return convertRdpToEpsilon({ orders, rdp: composeLedgerRdp(events, orders), delta });
}

export type BudgetVerdict =
  | { readonly ok: true; readonly epsilonRun: number; readonly epsilonTotal: number }
  | {
      readonly ok: false;
      readonly reason: string;
      readonly epsilonRun: number;
      readonly epsilonTotal: number;
    };

/**
 * Would the site stay within its budget after `proposed`? Composes the site's ledger (all runs for the
 * total, this run's events for the per-run budget) with the proposed event.
 */
export function checkPrivacyBudget(input: {
  ledger: readonly PrivacyEvent[];
  proposed: PrivacyEvent;
  budget: SiteBudget;
}): BudgetVerdict {
  const { ledger, proposed, budget } = input;
  checkPrivacyEvent(proposed, 'proposed');
  const after = [...ledger, proposed];
  const runEvents = after.filter((e) => e.run === proposed.run);
  const epsilonRun = budget.perRun
    ? computeLedgerEpsilon(runEvents, budget.perRun.delta).epsilon
    : Number.NaN;
  const epsilonTotal = budget.total ? computeLedgerEpsilon(after, budget.total.delta).epsilon : Number.NaN;
  if (budget.perRun && !(epsilonRun <= budget.perRun.epsilon)) {
    return {
      ok: false,
      reason: `run ${proposed.run} would reach ε = ${epsilonRun.toFixed(3)} at δ = ${budget.perRun.delta}, above this site's per-run budget ε = ${budget.perRun.epsilon}`,
      epsilonRun,
      epsilonTotal,
    };
  }
  if (budget.total && !(epsilonTotal <= budget.total.epsilon)) {
    return {
      ok: false,
      reason: `the site would reach ε = ${epsilonTotal.toFixed(3)} at δ = ${budget.total.delta} over all runs, above its total budget ε = ${budget.total.epsilon}`,
      epsilonRun,
      epsilonTotal,
    };
  }
  return { ok: true, epsilonRun, epsilonTotal };
}
