import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { calibrateNoiseMultiplier, computeGaussianEpsilon } from './calibrate.ts';
import { OPACUS_RDP_ORDERS } from './rdp.ts';

interface Vector {
  id: string;
  params: Record<string, unknown>;
  expected: Record<string, number>;
  tolerance: { places: number };
  reproduced_value: number;
}
const vectors = (
  JSON.parse(
    readFileSync(new URL('../../test/vectors/dp/reference_vectors.json', import.meta.url), 'utf8'),
  ) as {
    vectors: Vector[];
  }
).vectors;
const invalid = (field: string) => (e: unknown) =>
  e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field;

describe('calibrateNoiseMultiplier', () => {
  it('v23: reproduces Opacus get_noise_multiplier (RDP, ε = 8, δ = 1e-5, q = 0.04, 2000 steps) exactly', () => {
    const v = vectors.find((x) => x.id === 'v23')!;
    const z = calibrateNoiseMultiplier({
      accountant: 'rdp',
      targetEpsilon: 8,
      delta: 1e-5,
      samplingRate: 0.04,
      steps: 2000,
      orders: OPACUS_RDP_ORDERS,
      fractionalSeries: 'signed',
      epsilonTolerance: v.params.epsilon_tolerance as number,
    });
    assert.ok(Math.abs(z - v.expected.noise_multiplier!) < 0.5 * 10 ** -v.tolerance.places, `${z}`);
    assert.equal(z, v.reproduced_value);
  });

  it('default search: the smallest z to 1e-4 relative (dp_accounting orders and series)', () => {
    const base = { accountant: 'rdp' as const, samplingRate: 0.04, steps: 2000, delta: 1e-5 };
    const z = calibrateNoiseMultiplier({ ...base, targetEpsilon: 8 });
    assert.ok(computeGaussianEpsilon({ ...base, noiseMultiplier: z }) <= 8);
    assert.ok(computeGaussianEpsilon({ ...base, noiseMultiplier: z * (1 - 1e-4) }) > 8);
    // Opacus stops as soon as ε is within 0.01 of the target; the default goes on to 1e-4 in z.
    assert.ok(Math.abs(z - 1.3562) < 2e-4, `${z}`);
  });

  it('returns the smallest z meeting the target within its tolerance (property)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e-3, max: 0.2, noNaN: true }),
        fc.integer({ min: 1, max: 20_000 }),
        fc.double({ min: 0.3, max: 12, noNaN: true }),
        fc.constantFrom(1e-5, 1e-7),
        (samplingRate, steps, targetEpsilon, delta) => {
          const base = { accountant: 'rdp' as const, samplingRate, steps, delta };
          const z = calibrateNoiseMultiplier({ ...base, targetEpsilon });
          assert.ok(z > 0);
          assert.ok(computeGaussianEpsilon({ ...base, noiseMultiplier: z }) <= targetEpsilon);
          assert.ok(computeGaussianEpsilon({ ...base, noiseMultiplier: z * (1 - 1e-4) }) > targetEpsilon);
        },
      ),
      { numRuns: 12 },
    );
  });

  it('calibrates with the PLD accountant too (ε_pld(z) ≤ target, ε_pld(0.99z) > target)', () => {
    const base = {
      accountant: 'pld' as const,
      samplingRate: 0.1,
      steps: 10,
      delta: 1e-5,
      valueDiscretizationInterval: 1e-3,
    };
    const z = calibrateNoiseMultiplier({ ...base, targetEpsilon: 2 });
    assert.ok(computeGaussianEpsilon({ ...base, noiseMultiplier: z }) <= 2);
    assert.ok(computeGaussianEpsilon({ ...base, noiseMultiplier: z * 0.99 }) > 2);
    const rdp = calibrateNoiseMultiplier({ ...base, accountant: 'rdp', targetEpsilon: 2 });
    assert.ok(z <= rdp, `PLD is tighter than RDP: ${z} vs ${rdp}`);
  });

  it('needs no noise without steps or sampling, and rejects unreachable or invalid targets', () => {
    const base = { accountant: 'rdp' as const, targetEpsilon: 1, delta: 1e-5, samplingRate: 0.1, steps: 10 };
    assert.equal(calibrateNoiseMultiplier({ ...base, steps: 0 }), 0);
    assert.equal(calibrateNoiseMultiplier({ ...base, samplingRate: 0 }), 0);
    // RDP reaches ε = 0 for large z through the KL shortcut unless δ² underflows: then 1e-9 is out of reach.
    assert.throws(
      () => calibrateNoiseMultiplier({ ...base, targetEpsilon: 1e-9, samplingRate: 1, delta: 1e-200 }),
      invalid('targetEpsilon'),
    );
    assert.throws(() => calibrateNoiseMultiplier({ ...base, targetEpsilon: 0 }), invalid('targetEpsilon'));
    assert.throws(() => calibrateNoiseMultiplier({ ...base, delta: 0 }), invalid('delta'));
    assert.throws(() => calibrateNoiseMultiplier({ ...base, samplingRate: -0.1 }), invalid('samplingRate'));
    assert.throws(() => calibrateNoiseMultiplier({ ...base, steps: 2.5 }), invalid('steps'));
    assert.throws(
      () => calibrateNoiseMultiplier({ ...base, epsilonTolerance: 0 }),
      invalid('epsilonTolerance'),
    );
    const prv = 'prv' as unknown as 'rdp';
    assert.throws(() => calibrateNoiseMultiplier({ ...base, accountant: prv }), invalid('accountant'));
  });
});
