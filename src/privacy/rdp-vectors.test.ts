/**
 * The shared reference vectors (test/vectors/dp/reference_vectors.json) of the RDP accountant: each
 * checked at the tolerance its source test uses, and, where the vector records the value the reference
 * library returned when the vectors were compiled (`reproduced_value`), also at 1e-9 relative.
 * Calibration (v23) is in calibrate.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  composeRdp,
  computeRdp,
  computeTreeAggregationRdp,
  computeZcdpRdp,
  DEFAULT_RDP_ORDERS,
  type FractionalSeries,
  OPACUS_RDP_ORDERS,
  TF_PRIVACY_RDP_ORDERS,
} from './rdp.ts';
import {
  convertApproxDpToZcdp,
  convertRdpToDelta,
  convertRdpToEpsilon,
  convertZcdpToDelta,
  convertZcdpToEpsilon,
} from './rdp-conversion.ts';
import { computeSampledWithoutReplacementGaussianRdp } from './rdp-without-replacement.ts';

interface Vector {
  id: string;
  mechanism: string;
  params: Record<string, unknown>;
  expected: Record<string, unknown>;
  tolerance: Record<string, unknown>;
  reproduced_value: unknown;
  exact_reference?: Record<string, number>;
}
const file = JSON.parse(
  readFileSync(new URL('../../test/vectors/dp/reference_vectors.json', import.meta.url), 'utf8'),
) as { vectors: Vector[] };
const vector = (id: string): Vector => {
  const v = file.vectors.find((x) => x.id === id);
  assert.ok(v, `vector ${id} missing`);
  return v;
};
const num = (x: unknown): number => (x === 'inf' ? Number.POSITIVE_INFINITY : Number(x));

/** The vector's own tolerance: {rtol}, {places} (|a-b| < 0.5·10^-places) or {abs}. */
function assertWithin(
  actual: number,
  expected: number,
  tolerance: Record<string, unknown>,
  what: string,
): void {
  const message = `${what}: got ${actual}, expected ${expected} (${JSON.stringify(tolerance)})`;
  if (expected === Number.POSITIVE_INFINITY) {
    assert.equal(actual, expected, message);
    return;
  }
  const diff = Math.abs(actual - expected);
  if (typeof tolerance.rtol === 'number') assert.ok(diff <= tolerance.rtol * Math.abs(expected), message);
  else if (typeof tolerance.places === 'number') assert.ok(diff < 0.5 * 10 ** -tolerance.places, message);
  else if (typeof tolerance.abs === 'number') assert.ok(diff <= tolerance.abs, message);
  else assert.fail(`unknown tolerance ${JSON.stringify(tolerance)}`);
}
const assertReproduced = (actual: number, reproduced: number, what: string) =>
  assertWithin(actual, reproduced, { rtol: 1e-9 }, `${what} (reproduced_value)`);

function epsilonOf(input: {
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
  delta: number;
  orders: readonly number[];
  fractionalSeries?: FractionalSeries;
}) {
  return convertRdpToEpsilon({ orders: input.orders, rdp: computeRdp(input), delta: input.delta });
}

describe('RDP reference vectors', () => {
  it('v01 dp_accounting Poisson-subsampled Gaussian RDP at 1.5, 2.5, 5, 50, 100, ∞ (fractional = |C| series)', () => {
    const v = vector('v01');
    const orders = (v.params.orders as string[]).map(num);
    const rdp = computeRdp({ samplingRate: 0.01, noiseMultiplier: 2.5, steps: 50, orders });
    const expected = (v.expected.rdp as unknown[]).map(num);
    const reproduced = (v.reproduced_value as unknown[]).map(num);
    rdp.forEach((r, k) => {
      assertWithin(r, expected[k]!, v.tolerance, `order ${orders[k]}`);
      if (Number.isFinite(reproduced[k]!)) assertReproduced(r, reproduced[k]!, `order ${orders[k]}`);
    });
    // The signed (Opacus) series gives the exact RDP, ~3% below at α = 1.5 (mpmath in exact_reference).
    const exact = computeRdp({
      samplingRate: 0.01,
      noiseMultiplier: 2.5,
      steps: 50,
      orders: [1.5, 2.5],
      fractionalSeries: 'signed',
    });
    assertWithin(exact[0]!, v.exact_reference!.rdp_alpha_1_5!, { rtol: 1e-8 }, 'exact α=1.5');
    assertWithin(exact[1]!, v.exact_reference!.rdp_alpha_2_5!, { rtol: 1e-8 }, 'exact α=2.5');
    assert.ok(
      Math.abs(exact[0]! - expected[0]!) > 1e-4 * expected[0]!,
      'the two series really differ at α = 1.5',
    );
  });

  it('v03 improved RDP→(ε,δ) conversion and its inverse', () => {
    const v = vector('v03');
    const orders = Array.from({ length: 31 }, (_, i) => i + 2);
    const rdp = orders.map(() => 1.1);
    const { epsilon, order } = convertRdpToEpsilon({ orders, rdp, delta: 1e-5 });
    assertWithin(epsilon, num(v.expected.epsilon), v.tolerance, 'epsilon');
    assert.equal(order, v.expected.optimal_order);
    const back = convertRdpToDelta({ orders, rdp, epsilon });
    assertWithin(back.delta, num(v.expected.delta_at_that_epsilon), { rtol: 1e-9 }, 'delta');
    assert.equal(back.order, 32);
  });

  it('v05 DP-FTRL single-epoch tree aggregation: ε below the upper bounds (and equal to dp_accounting)', () => {
    const v = vector('v05');
    const bounds = v.expected.epsilon_upper_bounds as number[];
    const reproduced = v.reproduced_value as number[];
    [1.13, 8.83].forEach((z, k) => {
      const rdp = computeTreeAggregationRdp({
        noiseMultiplier: z,
        stepCounts: 1600,
        orders: OPACUS_RDP_ORDERS,
      });
      const { epsilon } = convertRdpToEpsilon({ orders: OPACUS_RDP_ORDERS, rdp, delta: 1e-6 });
      assert.ok(epsilon < bounds[k]!, `z=${z}: ${epsilon} < ${bounds[k]}`);
      assertReproduced(epsilon, reproduced[k]!, `z=${z}`);
    });
  });

  it('v19 Opacus RDP accountant (signed series, Opacus orders; fractional optimum 3.9)', () => {
    const v = vector('v19');
    const steps = Math.trunc(90 / 0.04);
    assert.equal(steps, 2250);
    const base = { samplingRate: 0.04, noiseMultiplier: 1.5, steps, delta: 1e-5, orders: OPACUS_RDP_ORDERS };
    const opacus = epsilonOf({ ...base, fractionalSeries: 'signed' });
    assertWithin(opacus.epsilon, num(v.expected.epsilon), v.tolerance, 'epsilon');
    assert.equal(opacus.order, 3.9);
    // The default (dp_accounting) series: 7.329334702381698 per the vector's notes — |diff| 2.2e-4.
    assertReproduced(epsilonOf(base).epsilon, 7.329334702381698, 'dp_accounting series');
  });

  it('v35 TF Privacy compute_dp_sgd_privacy (legacy order list)', () => {
    const v = vector('v35');
    const r = epsilonOf({
      samplingRate: 100 / 100_000,
      noiseMultiplier: 1,
      steps: Math.ceil((30 * 100_000) / 100),
      delta: 1e-7,
      orders: TF_PRIVACY_RDP_ORDERS,
    });
    assertWithin(r.epsilon, num(v.expected.epsilon), v.tolerance, 'epsilon');
    assert.equal(r.order, v.expected.optimal_order);
  });

  it('v37 / v39 TF Privacy example-level DP-SGD with dp_accounting default orders', () => {
    const v37 = vector('v37');
    const noSampling = epsilonOf({
      samplingRate: 1,
      noiseMultiplier: 0.7,
      steps: 2,
      delta: 1e-5,
      orders: DEFAULT_RDP_ORDERS,
    });
    assertWithin(noSampling.epsilon, num(v37.expected.epsilon), v37.tolerance, 'v37');
    assertReproduced(noSampling.epsilon, v37.reproduced_value as number, 'v37');
    const v39 = vector('v39');
    const steps = Math.ceil(1.2 / 0.01);
    assert.equal(steps, 120);
    const poisson = epsilonOf({
      samplingRate: 0.01,
      noiseMultiplier: 0.7,
      steps,
      delta: 1e-5,
      orders: DEFAULT_RDP_ORDERS,
    });
    assertWithin(poisson.epsilon, num(v39.expected.epsilon), v39.tolerance, 'v39');
    assertReproduced(poisson.epsilon, v39.reproduced_value as number, 'v39');
  });

  it('v43 TF Privacy DP-SGD statement (microbatching halves z): RDP lines to 3 decimals', () => {
    const v = vector('v43');
    const z = 2.0 / 2;
    const q = 64 / 10_000;
    const onePass = epsilonOf({
      samplingRate: 1,
      noiseMultiplier: z,
      steps: Math.ceil(5),
      delta: 1e-6,
      orders: DEFAULT_RDP_ORDERS,
    });
    const poisson = epsilonOf({
      samplingRate: q,
      noiseMultiplier: z,
      steps: Math.ceil(5 / q),
      delta: 1e-6,
      orders: DEFAULT_RDP_ORDERS,
    });
    assert.equal(
      onePass.epsilon.toFixed(3),
      num(v.expected.rdp_epsilon_no_sampling_one_pass_per_epoch).toFixed(3),
    );
    assert.equal(poisson.epsilon.toFixed(3), num(v.expected.rdp_epsilon_poisson).toFixed(3));
  });

  it('v45 v47 v49 v51 FL4Health client- and example-level DP-FedAvg/DP-SGD (dp_accounting)', () => {
    const cases: Array<[string, number, number, number, number]> = [
      ['v45', 0.001, 1.0, 1_000_000, 100_000 ** -1.1],
      ['v47', 0.01, 1.0, 1000, 1_000_000 ** -1.1],
      ['v49', 1e-6, 1.0, 1_000_000, 1e9 ** -1.1],
      ['v51', 0.01, 4.0, 40_000, 1e-5],
    ];
    for (const [id, q, z, steps, delta] of cases) {
      const v = vector(id);
      const r = epsilonOf({
        samplingRate: q,
        noiseMultiplier: z,
        steps,
        delta,
        orders: TF_PRIVACY_RDP_ORDERS,
      });
      assertWithin(r.epsilon, num(v.expected.epsilon), v.tolerance, id);
      assertReproduced(r.epsilon, v.reproduced_value as number, id);
    }
  });

  it('v53 fixed-size sampling without replacement (Wang–Balle–Kasiviswanathan Thm 27, REPLACE_ONE)', () => {
    const v = vector('v53');
    const delta = 1e6 ** -1.1;
    const orders = TF_PRIVACY_RDP_ORDERS;
    const rdp = composeRdp(
      computeSampledWithoutReplacementGaussianRdp({
        samplingRate: 13_958 / 1e6,
        noiseMultiplier: 1.396,
        orders,
      }),
      1500,
    );
    const { epsilon } = convertRdpToEpsilon({ orders, rdp, delta });
    assertWithin(epsilon, num(v.expected.epsilon), { abs: v.tolerance.eps_abs }, 'epsilon');
    assertReproduced(epsilon, v.reproduced_value as number, 'epsilon');
    const atFive = convertRdpToDelta({ orders, rdp, epsilon: 5 });
    assertWithin(atFive.delta, delta, { abs: v.tolerance.delta_abs }, 'delta at ε = 5');
  });

  it('v59 zCDP → (ε,δ): cdp2adp continuous-order conversion, and dp_accounting on its order grid', () => {
    const v = vector('v59');
    const rho = 0.025;
    assertWithin(convertZcdpToEpsilon({ rho, delta: 1e-6 }), num(v.expected.cdp_eps), v.tolerance, 'cdp_eps');
    assertWithin(
      convertZcdpToDelta({ rho, epsilon: 1 }),
      num(v.expected.cdp_delta),
      v.tolerance,
      'cdp_delta',
    );
    assertWithin(
      convertApproxDpToZcdp({ epsilon: 1, delta: 1e-6 }),
      num(v.expected.cdp_rho),
      v.tolerance,
      'cdp_rho',
    );
    const grid = convertRdpToEpsilon({
      orders: DEFAULT_RDP_ORDERS,
      rdp: computeZcdpRdp(rho, DEFAULT_RDP_ORDERS),
      delta: 1e-6,
    });
    const reproduced = v.reproduced_value as Record<string, number>;
    assertReproduced(grid.epsilon, reproduced.dp_accounting_rdp_default_orders_eps!, 'grid');
    assert.ok(
      grid.epsilon > num(v.expected.cdp_eps),
      'a discrete grid is never tighter than the continuous optimum',
    );
  });

  it('covers every vector of the RDP mechanisms (v25 is the PRV accountant, checked by its own helper)', () => {
    const mine = new Set([
      'poisson_subsampled_gaussian_rdp',
      'client_level_dp_fedavg_poisson_rdp',
      'gaussian_composition_no_sampling_rdp',
      'rdp_to_dp_conversion',
      'calibrate_noise_multiplier',
      'zcdp_to_approx_dp',
      'dp_sgd_statement',
      'client_level_fixed_size_sampling_without_replacement_rdp',
      'tree_aggregation_dp_ftrl_rdp',
    ]);
    const covered = [
      'v01',
      'v03',
      'v05',
      'v19',
      'v23',
      'v25',
      'v35',
      'v37',
      'v39',
      'v43',
      'v45',
      'v47',
      'v49',
      'v51',
      'v53',
      'v59',
    ];
    const ids = file.vectors.filter((x) => mine.has(x.mechanism)).map((x) => x.id);
    assert.deepEqual(ids.sort(), covered.sort());
    assert.equal(vector('v25').params.accountant, 'prv');
  });
});
