/**
 * The run's projected client-DP ρ is what a site charges (privacy/client-noise.ts, noise shares rounded
 * up), for the exact settings the coordinator puts in a train task.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeLayout } from '../models/index.ts';
import { computeClientNoisePlan } from '../privacy/index.ts';
import { computeDefaultThreshold } from '../secagg/index.ts';
import { computeUpdateNoiseMultiplier, parseRunConfig } from './run-config.ts';
import { computeClientDpRho, createRoundPrivacyEvents } from './run-privacy.ts';

const base = {
  id: 'r1',
  model: { kind: 'logistic', inputDim: 30 },
  strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
  rounds: 3,
  minParticipants: 3,
  train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
  dataSchemaDigest: 'ab'.repeat(32),
};

/** What a site charges for one round of `config` with threshold t (the task's client-DP settings). */
function siteCharge(config: ReturnType<typeof parseRunConfig>, threshold: number): number {
  const cdp = config.clientDp!;
  const dimensions = describeLayout(config.model).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  return computeClientNoisePlan({
    clipNorm: cdp.clipNorm,
    noiseMultiplier: computeUpdateNoiseMultiplier(cdp),
    ...(cdp.adaptive ? { indicatorNoiseStd: cdp.adaptive.countNoiseStd } : {}),
    scale: config.secureAggregation.scale,
    threshold,
    dimensions,
  }).rho;
}

test('fixed threshold: the projection is exactly the charge, rounding up included', () => {
  for (const [threshold, noiseMultiplier] of [
    [3, 2],
    [7, 0.9],
    [4, 1.3],
  ] as const) {
    const config = parseRunConfig({
      ...base,
      minParticipants: 7,
      strategy: { name: 'fedavg', minTrainParticipants: 7, minEvaluateParticipants: 7 },
      secureAggregation: { protocol: 'secagg', threshold },
      clientDp: { clipNorm: 0.5, noiseMultiplier },
    });
    const rho = computeClientDpRho(config);
    assert.equal(rho, siteCharge(config, threshold));
    const events = createRoundPrivacyEvents(config, 1);
    assert.equal(events[0]?.rho, rho);
    // Rounding the shares up only adds noise: never more than the exact-variance formula.
    const cdp = config.clientDp!;
    const s = config.secureAggregation.scale;
    const exact = (cdp.clipNorm * s + Math.sqrt(31)) ** 2 / (2 * (noiseMultiplier * cdp.clipNorm * s) ** 2);
    assert.ok(rho <= exact);
  }
});

test('threshold following the cohort: the projection is the largest charge of any allowed cohort', () => {
  const config = parseRunConfig({
    ...base,
    minParticipants: 3,
    secureAggregation: { protocol: 'secagg', maxParticipants: 12 },
    clientDp: { clipNorm: 1, noiseMultiplier: 1.1, adaptive: { countNoiseStd: 5 } },
  });
  const charges = [];
  for (let n = 3; n <= 12; n++) charges.push(siteCharge(config, computeDefaultThreshold(n)));
  assert.equal(computeClientDpRho(config), Math.max(...charges));
});

test('no client-level DP: nothing is charged', () => {
  assert.equal(computeClientDpRho(parseRunConfig(base)), 0);
});
