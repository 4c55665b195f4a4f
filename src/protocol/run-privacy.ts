/**
 * What a run would cost each institution's privacy, from its configuration alone (before any data is
 * touched): the privacy events of every round (sample-level DP-SGD, Abadi et al. 2016; client-level
 * DP-FedAvg as zCDP, Kairouz, Liu, Steinke 2021) and ε after each round by the RDP accountant. Used by
 * `entente privacy plan`, the coordinator's dry run and its policy checks.
 */
import { computeDpStepsPerEpoch, describeLayout } from '../models/index.ts';
import { computeLedgerEpsilon, type PrivacyEvent } from '../privacy/index.ts';
import { computeUpdateNoiseMultiplier, type RunConfig } from './run-config.ts';

/** zCDP ρ per round of client-level DP: the clipped, quantised update over the noise the sum carries. */
export function computeClientDpRho(config: RunConfig): number {
  const cdp = config.clientDp;
  if (!cdp) return 0;
  const s = config.secureAggregation.scale;
  const d = describeLayout(config.model).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const sensitivity = cdp.clipNorm * s + Math.sqrt(d);
  const z = computeUpdateNoiseMultiplier(cdp);
  const indicator = cdp.adaptive ? 1 / (2 * (2 * cdp.adaptive.countNoiseStd) ** 2) : 0;
  return (sensitivity * sensitivity) / (2 * (z * cdp.clipNorm * s) ** 2) + indicator;
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
