import assert from 'node:assert/strict';
import { test } from 'node:test';
import { computeClientNoisePlan } from './client-noise.ts';

test('each share is ⌈σ²/t⌉ and ρ is Δ² over twice the noise t shares carry', () => {
  // σ = z·C·s = 1.5·2·10 = 30, σ² = 900, t = 7: share ⌈128.57⌉ = 129, total 903.
  const plan = computeClientNoisePlan({
    clipNorm: 2,
    noiseMultiplier: 1.5,
    scale: 10,
    threshold: 7,
    dimensions: 16,
  });
  assert.deepEqual(plan.shareVariance, { num: 129n, den: 1n });
  assert.equal(plan.rho, (2 * 10 + 4) ** 2 / (2 * 903));
  assert.equal(plan.indicator, undefined);
});

test('adaptive clipping: the indicator share is rounded up and its ρ added', () => {
  const plain = computeClientNoisePlan({
    clipNorm: 2,
    noiseMultiplier: 1.5,
    scale: 10,
    threshold: 3,
    dimensions: 16,
  });
  const plan = computeClientNoisePlan({
    clipNorm: 2,
    noiseMultiplier: 1.5,
    indicatorNoiseStd: 0.3,
    scale: 10,
    threshold: 3,
    dimensions: 16,
  });
  // (2σ_b)² = 0.36: 360000 parts of a million, split in 3 shares.
  assert.deepEqual(plan.indicator?.shareVariance, { num: 360000n, den: 3_000_000n });
  assert.ok(Math.abs(plan.rho - plain.rho - 1 / (2 * 0.36)) < 1e-12);
});
