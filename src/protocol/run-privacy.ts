/**
 * What a run would cost each institution's privacy, from its configuration alone (before any data is
 * touched): the privacy events of every round (sample-level DP-SGD, Abadi et al. 2016; client-level
 * DP-FedAvg as zCDP, Kairouz, Liu, Steinke 2021) and ε after each round by the RDP accountant. Used by
 * `entente privacy plan`, the coordinator's dry run and its policy checks.
 */
import { computeDpStepsPerEpoch, describeLayout } from '../models/index.ts';
import { computeClientNoisePlan, computeLedgerEpsilon, type PrivacyEvent } from '../privacy/index.ts';
import { computeDefaultThreshold } from '../secagg/index.ts';
import { computeUpdateNoiseMultiplier, type RunConfig } from './run-config.ts';

/**
 * The thresholds a round of `config` may run with: the configured one, or floor(2n/3)+1 of every cohort
 * size n the run allows (secure-sum-round.ts `planSecAggCohort`).
 */
function listPossibleThresholds(config: RunConfig): number[] {
  const sa = config.secureAggregation;
  if (sa.threshold !== undefined) return [sa.threshold];
  const out = new Set<number>();
  for (let n = Math.max(3, config.minParticipants); n <= sa.maxParticipants; n++)
    out.add(computeDefaultThreshold(n));
  return out.size > 0 ? [...out] : [computeDefaultThreshold(3)];
}

/**
 * zCDP ρ per round of client-level DP, as a site charges it (privacy/client-noise.ts, noise shares
 * rounded up): with the configured clip, and the largest over the thresholds a round may have when the
 * threshold follows the cohort. Equal to a site's charge whenever the threshold is fixed.
 */
export function computeClientDpRho(config: RunConfig): number {
  const cdp = config.clientDp;
  if (!cdp) return 0;
  const dimensions = describeLayout(config.model).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  let worst = 0;
  for (const threshold of listPossibleThresholds(config)) {
    const { rho } = computeClientNoisePlan({
      clipNorm: cdp.clipNorm,
      noiseMultiplier: computeUpdateNoiseMultiplier(cdp),
      ...(cdp.adaptive ? { indicatorNoiseStd: cdp.adaptive.countNoiseStd } : {}),
      scale: config.secureAggregation.scale,
      threshold,
      dimensions,
    });
    worst = Math.max(worst, rho);
  }
  return worst;
}

/** The privacy events one round of `config` records in each institution's ledger (empty without DP). */
export function createRoundPrivacyEvents(config: RunConfig, round: number): PrivacyEvent[] {
  const events: PrivacyEvent[] = [];
  const dp = config.train.dp;
  if (config.clientDp)
    events.push({
      run: config.id,
      round,
      mechanism: 'zcdp',
      rho: computeClientDpRho(config),
      neighbouring: 'add-remove-institution',
    });
  if (dp)
    events.push({
      run: config.id,
      round,
      mechanism: 'subsampled-gaussian',
      noiseMultiplier: dp.noiseMultiplier,
      samplingRate: dp.samplingRate,
      steps: config.train.epochs * computeDpStepsPerEpoch(dp.samplingRate),
      neighbouring: 'add-remove-record',
    });
  return events;
}

/**
 * ε at `delta` after each round of the run for one institution taking part in every round (null for
 * every round when the run has no differential privacy: ε is unbounded).
 */
export function projectRunEpsilon(
  config: RunConfig,
  delta: number,
): { round: number; epsilon: number | null }[] {
  const out: { round: number; epsilon: number | null }[] = [];
  const events: PrivacyEvent[] = [];
  const private_ = config.train.dp !== undefined || config.clientDp !== undefined;
  for (let round = 1; round <= config.rounds; round++) {
    events.push(...createRoundPrivacyEvents(config, round));
    out.push({ round, epsilon: private_ ? computeLedgerEpsilon(events, delta).epsilon : null });
  }
  return out;
}
