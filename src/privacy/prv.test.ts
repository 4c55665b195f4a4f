/**
 * The PRV accountant (prv.ts) against the five Opacus `*_prv` reference vectors (v21, v27, v29, v31, v33
 * in test/vectors/dp/reference_vectors.json) at their stated tolerances; its building blocks (CDF against
 * 40-digit mpmath values, the aligned domain and safe domain size Opacus's code gives, composition
 * against direct convolution); the exact Gaussian (q = 1) and single-step cases, which the [lower,
 * upper] interval must contain; the PLD accountant as a cross-check; monotonicity properties.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { computeGaussianDelta, computePldEpsilon } from './pld.ts';
import {
  composeDiscretePrv,
  computePrvEpsilon,
  computePrvSafeDomainSize,
  computeSubsampledGaussianPrvCdf,
  createAlignedPrvDomain,
  createDiscretePrv,
  type DiscretePrv,
} from './prv.ts';

interface Vector {
  id: string;
  mechanism: string;
  params: Record<string, number | string>;
  expected: { epsilon: number };
  tolerance: { places: number };
}
const vectors = (
  JSON.parse(
    readFileSync(new URL('../../test/vectors/dp/reference_vectors.json', import.meta.url), 'utf8'),
  ) as { vectors: Vector[] }
).vectors.filter((v) => v.mechanism === 'poisson_subsampled_gaussian_prv');

/** A numeric parameter, or the number after '=' in a string such as "int(90//0.04) = 2249". */
function readNumber(value: number | string | undefined): number {
  if (typeof value === 'number') return value;
  const match = /=\s*([0-9.eE+-]+)\s*$/.exec(value ?? '');
  assert.ok(match, `cannot read a number from ${value}`);
  return Number(match[1]);
}

/** Smallest ε with δ(ε) ≤ target for a decreasing δ(·), by bisection on [0, 100]. */
function invertDelta(deltaOf: (epsilon: number) => number, target: number): number {
  let lo = 0;
  let hi = 100;
  for (let i = 0; i < 200 && hi - lo > 1e-13; i++) {
    const mid = (lo + hi) / 2;
    if (deltaOf(mid) > target) lo = mid;
    else hi = mid;
  }
  return hi;
}

function expectField(fn: () => unknown, field: string): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
  );
}

describe('PRV accountant: Opacus reference vectors', () => {
  it('has the five poisson_subsampled_gaussian_prv vectors', () => {
    assert.deepEqual(vectors.map((v) => v.id).sort(), ['v21', 'v27', 'v29', 'v31', 'v33']);
  });

  for (const v of vectors) {
    it(`${v.id}: σ=${v.params.noise_multiplier}, q=${v.params.q}, steps=${v.params.steps}`, () => {
      const p = v.params;
      const delta = readNumber(p.delta);
      // v21 passes eps_error=0.01, delta_error=delta/1000 explicitly; the others use Opacus's defaults
      // (get_epsilon(delta, eps_error=0.01, delta_error=None → delta/1000)): the same values.
      if (p.eps_error !== undefined) assert.equal(readNumber(p.eps_error), 0.01);
      if (p.delta_error !== undefined) assert.equal(p.delta_error, 'delta/1000');
      const result = computePrvEpsilon({
        samplingRate: readNumber(p.q),
        noiseMultiplier: readNumber(p.noise_multiplier),
        steps: readNumber(p.steps),
        delta,
        epsError: 0.01,
        deltaError: delta / 1000,
      });
      const bound = 0.5 * 10 ** -v.tolerance.places;
      const diff = result.epsilonUpper - v.expected.epsilon;
      assert.ok(
        Math.abs(diff) < bound,
        `${v.id}: ${result.epsilonUpper} vs ${v.expected.epsilon} (bound ${bound})`,
      );
      assert.ok(result.epsilonLower < result.epsilonEstimate && result.epsilonEstimate < result.epsilonUpper);
      // upper − estimate = eps_error + the δ_err move, which is small (ε changes slowly with δ).
      assert.ok(Math.abs(result.epsilonUpper - result.epsilonEstimate - 0.01) < 1e-3);
    });
  }
});

describe('PRV accountant: building blocks', () => {
  it('the PRV CDF and survival match 40-digit mpmath values (full relative accuracy in the tails)', () => {
    const cases: [number, number, number, number, number][] = [
      [-0.03, 0.04, 1.5, 0.044930033303140576, 0.9550699666968594],
      [0.5, 0.04, 1.5, 0.9999963342539911, 3.6657460088882647e-6],
      [3.0, 0.04, 1.5, 1, 9.629192380523502e-21],
      [0.001, 0.001, 0.8, 0.8805348020252205, 0.11946519797477953],
      [1.0, 0.001, 0.8, 0.9999999999293936, 7.06064543477955e-11],
    ];
    for (const [t, q, z, cdf, survival] of cases) {
      const [f, s] = computeSubsampledGaussianPrvCdf(t, q, z);
      assert.ok(Math.abs(f - cdf) <= 1e-14 * cdf, `F(${t}) ${f} vs ${cdf}`);
      assert.ok(Math.abs(s - survival) <= 1e-12 * survival, `S(${t}) ${s} vs ${survival}`);
    }
    // The loss is > log(1 − q) surely.
    assert.deepEqual([...computeSubsampledGaussianPrvCdf(Math.log1p(-0.04) - 1e-9, 0.04, 1.5)], [0, 1]);
  });

  it('safe domain size and aligned grid are those of Opacus (v21: L = 12.769243935874519, N = 391570)', () => {
    // Values from a numpy/scipy run of Opacus's compute_safe_domain_size and Domain.create_aligned.
    const L = computePrvSafeDomainSize({
      samplingRate: 0.04,
      noiseMultiplier: 1.5,
      steps: 2249,
      epsError: 0.01,
      deltaError: 1e-8,
    });
    assert.ok(Math.abs(L - 12.769243935874519) < 1e-9, `L ${L}`);
    const mesh = 0.01 / Math.sqrt((2249 * Math.log(12 / 1e-8)) / 2);
    const domain = createAlignedPrvDomain(L, mesh);
    assert.equal(domain.size, 391570);
    assert.ok(Math.abs(domain.tMin + 12.76927617404485) < 1e-12);
    assert.ok(Math.abs(domain.tMax - 12.769341395289558) < 1e-12);
    const k = Math.round(-domain.tMin / mesh);
    assert.equal(domain.size, 2 * k + 2);
  });

  it('the discrete PRV has mass 1 and its shifted mean within dt/2 of the grid mean', () => {
    const domain = createAlignedPrvDomain(4, 0.001);
    const dprv = createDiscretePrv(0.05, 1.2, domain);
    const total = dprv.pmf.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - 1) < 1e-13, `mass ${total}`);
    assert.ok(dprv.pmf.every((p) => p >= 0));
    assert.ok(Math.abs(dprv.shift) < 0.0005);
    assert.equal(dprv.domain.tMin, domain.tMin + dprv.shift);
  });

  it('composition equals direct convolution on the same grid (2 and 3 steps)', () => {
    // σ = 4: the 3-fold loss stays well inside ±3, so nothing wraps around the FFT ring.
    const domain = createAlignedPrvDomain(3, 0.05);
    const one = createDiscretePrv(0.3, 4, domain);
    const n = domain.size;
    const k = n / 2 - 1; // grid index of t = 0
    // Direct: the sum of two grid indices i1 + i2 sits at output index i1 + i2 − K.
    const convolve = (a: Float64Array, b: Float64Array) => {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          const s = i + j - k;
          if (s >= 0 && s < n) out[s]! += a[i]! * b[j]!;
        }
      return out;
    };
    const two = convolve(one.pmf, one.pmf);
    const three = convolve(two, one.pmf);
    const check = (composed: DiscretePrv, direct: Float64Array, steps: number) => {
      for (let i = 0; i < n; i++) assert.ok(Math.abs(composed.pmf[i]! - direct[i]!) < 1e-15, `index ${i}`);
      assert.ok(Math.abs(composed.domain.tMin - (domain.tMin + steps * one.shift)) < 1e-15);
    };
    check(composeDiscretePrv(one, 2), two, 2);
    check(composeDiscretePrv(one, 3), three, 3);
    assert.deepEqual(composeDiscretePrv(one, 1).pmf, one.pmf);
  });
});

describe('PRV accountant: exact cases and the PLD cross-check', () => {
  it('q = 1: the interval contains the exact Gaussian ε (μ = √T/σ) and the estimate is within 1e-4', () => {
    for (const [sigma, steps, delta] of [
      [5, 100, 1e-5],
      [2, 10, 1e-6],
    ] as const) {
      const exact = invertDelta(
        (epsilon) => computeGaussianDelta({ noiseMultiplier: sigma / Math.sqrt(steps), epsilon }),
        delta,
      );
      const r = computePrvEpsilon({ samplingRate: 1, noiseMultiplier: sigma, steps, delta });
      assert.ok(r.epsilonLower <= exact && exact <= r.epsilonUpper, `${exact} in ${JSON.stringify(r)}`);
      assert.ok(Math.abs(r.epsilonEstimate - exact) < 1e-4, `${r.epsilonEstimate} vs exact ${exact}`);
    }
  });

  it('one step: the interval contains the exact subsampled-Gaussian ε (remove direction, as Opacus)', () => {
    const [q, sigma, delta] = [0.1, 1, 1e-5];
    const exact = invertDelta(
      (epsilon) =>
        computeGaussianDelta({ noiseMultiplier: sigma, epsilon, samplingRate: q, direction: 'remove' }),
      delta,
    );
    const r = computePrvEpsilon({ samplingRate: q, noiseMultiplier: sigma, steps: 1, delta });
    assert.ok(r.epsilonLower <= exact && exact <= r.epsilonUpper, `${exact} in ${JSON.stringify(r)}`);
    assert.ok(Math.abs(r.epsilonEstimate - exact) < 1e-3, `${r.epsilonEstimate} vs exact ${exact}`);
  });

  it('the PLD accountant ε (dp_accounting method) lies within [lower, upper]', () => {
    for (const [q, sigma, steps, delta] of [
      [0.01, 1, 1000, 1e-5],
      [0.2, 3, 100, 1e-6],
    ] as const) {
      const pld = computePldEpsilon({ samplingRate: q, noiseMultiplier: sigma, steps, delta });
      const r = computePrvEpsilon({ samplingRate: q, noiseMultiplier: sigma, steps, delta });
      assert.ok(r.epsilonLower <= pld && pld <= r.epsilonUpper, `${pld} in ${JSON.stringify(r)}`);
      assert.ok(Math.abs(r.epsilonEstimate - pld) < 1e-3);
    }
  });
});

describe('PRV accountant: properties and input checks', () => {
  const base = fc.record({
    samplingRate: fc.double({ min: 0.001, max: 0.1, noNaN: true }),
    noiseMultiplier: fc.double({ min: 0.8, max: 3, noNaN: true }),
    steps: fc.integer({ min: 1, max: 100 }),
  });
  const eps = (x: { samplingRate: number; noiseMultiplier: number; steps: number }) =>
    computePrvEpsilon({ ...x, delta: 1e-5 });
  const assertNotBelow = (larger: ReturnType<typeof eps>, smaller: ReturnType<typeof eps>) => {
    assert.ok(
      larger.epsilonEstimate >= smaller.epsilonEstimate,
      `${larger.epsilonEstimate} < ${smaller.epsilonEstimate}`,
    );
    assert.ok(larger.epsilonUpper >= smaller.epsilonLower); // the true ε is monotone and inside both
  };

  it('ε never decreases with more steps', () => {
    fc.assert(
      fc.property(base, fc.integer({ min: 1, max: 50 }), (x, more) => {
        assertNotBelow(eps({ ...x, steps: x.steps + more }), eps(x));
      }),
      { numRuns: 5, seed: 11 },
    );
  });

  it('ε never decreases with a higher sampling rate', () => {
    fc.assert(
      fc.property(base, fc.double({ min: 1.05, max: 2, noNaN: true }), (x, factor) => {
        assertNotBelow(eps({ ...x, samplingRate: Math.min(1, x.samplingRate * factor) }), eps(x));
      }),
      { numRuns: 5, seed: 12 },
    );
  });

  it('ε never increases with more noise', () => {
    fc.assert(
      fc.property(base, fc.double({ min: 1.05, max: 2, noNaN: true }), (x, factor) => {
        assertNotBelow(eps(x), eps({ ...x, noiseMultiplier: x.noiseMultiplier * factor }));
      }),
      { numRuns: 5, seed: 13 },
    );
  });

  it('no steps or no sampling costs nothing; bad inputs throw INVALID_ARGUMENT naming the field', () => {
    const ok = { samplingRate: 0.01, noiseMultiplier: 1, steps: 10, delta: 1e-5 };
    const zero = { epsilonLower: 0, epsilonEstimate: 0, epsilonUpper: 0 };
    assert.deepEqual(computePrvEpsilon({ ...ok, steps: 0 }), zero);
    assert.deepEqual(computePrvEpsilon({ ...ok, samplingRate: 0 }), zero);
    expectField(() => computePrvEpsilon({ ...ok, samplingRate: 1.5 }), 'samplingRate');
    expectField(() => computePrvEpsilon({ ...ok, noiseMultiplier: 0 }), 'noiseMultiplier');
    expectField(() => computePrvEpsilon({ ...ok, steps: 2.5 }), 'steps');
    expectField(() => computePrvEpsilon({ ...ok, delta: 0 }), 'delta');
    expectField(() => computePrvEpsilon({ ...ok, epsError: -1 }), 'epsError');
    expectField(() => computePrvEpsilon({ ...ok, deltaError: 1e-5 }), 'deltaError');
    // A grid beyond 2^23 points is refused up front (would need ~10^9 bins here).
    expectField(() => computePrvEpsilon({ ...ok, steps: 100000, epsError: 1e-5 }), 'epsError');
    // δ − δ_err below float64 resolution of the tail sums on this grid.
    expectField(() => computePrvEpsilon({ ...ok, delta: 1e-13 }), 'delta');
  });
});
