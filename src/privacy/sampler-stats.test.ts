/**
 * Statistical tests of the noise samplers against their exact distributions, with a seeded
 * (deterministic) AES-CTR source so the outcomes are reproducible: chi-square goodness of fit (p-value
 * from the regularized upper incomplete gamma function, computed here) for the discrete Gaussian,
 * discrete Laplace, Poisson and Skellam samplers; Kolmogorov–Smirnov of the secure Gaussian against Φ;
 * means and variances against the exact moments (tolerance 5 standard errors); the crypto source's
 * sanity. The reference pmf is itself checked against dp_accounting's discrete-Gaussian hockey-stick
 * vector v15 (test/vectors/dp/reference_vectors.json).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { sampleDiscreteGaussianVector, sampleDiscreteLaplace } from './discrete-gaussian.ts';
import { createCryptoRandomBits, createSeededRandomBits, type ExactRational } from './random-source.ts';
import { sampleSecureGaussian } from './secure-gaussian.ts';
import { samplePoisson, sampleSkellamVector } from './skellam.ts';

const SAMPLES = 20000;
const MIN_P_VALUE = 1e-4;

// ---- special functions (Numerical Recipes §6.1–6.2) ----
function computeLnGamma(x: number): number {
  const c = [
    57.15623566586292, -59.59796035547549, 14.136097974741746, -0.4919138160976202, 3.399464998481189e-5,
    4.652362892704858e-5, -9.837447530487956e-5, 0.0001580887032249125, -0.00021026444172410488,
    0.00021743961811521265, -0.0001643181065367639, 8.441822398385275e-5, -2.6190838401581408e-5,
    3.6899182659531625e-6,
  ];
  let tmp = x + 5.2421875;
  tmp = (x + 0.5) * Math.log(tmp) - tmp;
  let ser = 0.9999999999999971;
  for (let j = 0; j < c.length; j++) ser += c[j]! / (x + j + 1);
  return tmp + Math.log((2.5066282746310007 * ser) / x);
}

/** Q(a, x) = Γ(a, x)/Γ(a): series for x < a + 1, Lentz continued fraction otherwise. */
function computeGammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lnPrefix = -x + a * Math.log(x) - computeLnGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 10000 && Math.abs(term) > Math.abs(sum) * 1e-16; n++) {
      term *= x / (a + n);
      sum += term;
    }
    return 1 - sum * Math.exp(lnPrefix);
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(lnPrefix) * h;
}

const computeChiSquarePValue = (statistic: number, df: number): number =>
  computeGammaQ(df / 2, statistic / 2);

/** erfc with fractional error < 1.2e-7 (Numerical Recipes erfcc). */
function computeErfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + z / 2);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}
const computePhi = (x: number): number => 0.5 * computeErfc(-x / Math.SQRT2);

// ---- exact pmfs on a finite window (offset = value of index 0) ----
interface Pmf {
  offset: number;
  p: Float64Array;
}

function normalise(offset: number, weights: Float64Array): Pmf {
  const total = weights.reduce((a, b) => a + b, 0);
  return { offset, p: weights.map((w) => w / total) };
}

function computeDiscreteGaussianPmf(sigmaSquared: number, bound: number): Pmf {
  const w = new Float64Array(2 * bound + 1);
  for (let y = -bound; y <= bound; y++) w[y + bound] = Math.exp(-(y * y) / (2 * sigmaSquared));
  return normalise(-bound, w);
}

function computeDiscreteLaplacePmf(scale: number): Pmf {
  const bound = Math.ceil(50 * scale) + 10;
  const w = new Float64Array(2 * bound + 1);
  for (let y = -bound; y <= bound; y++) w[y + bound] = Math.exp(-Math.abs(y) / scale);
  return normalise(-bound, w);
}

function computePoissonPmf(mu: number): Pmf {
  const low = Math.max(0, Math.floor(mu - 15 * Math.sqrt(mu) - 20));
  const high = Math.ceil(mu + 15 * Math.sqrt(mu) + 30);
  const w = new Float64Array(high - low + 1);
  for (let k = low; k <= high; k++) w[k - low] = Math.exp(k * Math.log(mu) - mu - computeLnGamma(k + 1));
  return normalise(low, w);
}

function computeSkellamPmf(mu: number): Pmf {
  const pois = computePoissonPmf(mu);
  const n = pois.p.length;
  const w = new Float64Array(2 * n - 1); // index i ↔ value i - (n - 1)
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) w[i - j + n - 1]! += pois.p[i]! * pois.p[j]!;
  return normalise(-(n - 1), w);
}

function computeMoments(pmf: Pmf): { mean: number; variance: number; fourth: number } {
  let mean = 0;
  pmf.p.forEach((q, i) => {
    mean += q * (i + pmf.offset);
  });
  let variance = 0;
  let fourth = 0;
  pmf.p.forEach((q, i) => {
    const d = i + pmf.offset - mean;
    variance += q * d * d;
    fourth += q * d ** 4;
  });
  return { mean, variance, fourth };
}

/** Chi-square test with bins of expected count ≥ 5 (tails pooled); returns statistic, df, p-value. */
function testChiSquare(
  samples: ArrayLike<number>,
  pmf: Pmf,
): { statistic: number; df: number; pValue: number } {
  const n = samples.length;
  const counts = new Float64Array(pmf.p.length);
  for (let i = 0; i < n; i++) {
    const idx = samples[i]! - pmf.offset;
    assert.ok(idx >= 0 && idx < counts.length, `sample ${samples[i]} outside the pmf window`);
    counts[idx]!++;
  }
  const bins: Array<{ observed: number; expected: number }> = [];
  let observed = 0;
  let expected = 0;
  let mass = 0;
  for (let i = 0; i < counts.length; i++) {
    observed += counts[i]!;
    expected += n * pmf.p[i]!;
    mass += pmf.p[i]!;
    if (expected >= 5 && n * (1 - mass) >= 5) {
      bins.push({ observed, expected });
      observed = 0;
      expected = 0;
    }
  }
  const last = bins[bins.length - 1]!;
  last.observed += observed;
  last.expected += expected;
  const statistic = bins.reduce((s, b) => s + (b.observed - b.expected) ** 2 / b.expected, 0);
  const df = bins.length - 1;
  return { statistic, df, pValue: computeChiSquarePValue(statistic, df) };
}

/** Asserts the goodness of fit and that mean and variance are within 5 standard errors. */
function checkAgainstPmf(label: string, samples: ArrayLike<number>, pmf: Pmf): string {
  const { statistic, df, pValue } = testChiSquare(samples, pmf);
  assert.ok(df >= 2, `${label}: too few bins`);
  assert.ok(pValue > MIN_P_VALUE, `${label}: chi-square ${statistic.toFixed(2)} on ${df} df, p = ${pValue}`);
  const n = samples.length;
  const exact = computeMoments(pmf);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += samples[i]! / n;
  let variance = 0;
  for (let i = 0; i < n; i++) variance += (samples[i]! - mean) ** 2 / (n - 1);
  const meanTolerance = 5 * Math.sqrt(exact.variance / n);
  const varianceTolerance = 5 * Math.sqrt((exact.fourth - exact.variance ** 2) / n);
  assert.ok(Math.abs(mean - exact.mean) < meanTolerance, `${label}: mean ${mean} vs ${exact.mean}`);
  assert.ok(
    Math.abs(variance - exact.variance) < varianceTolerance,
    `${label}: variance ${variance} vs ${exact.variance} (± ${varianceTolerance})`,
  );
  return `chi2 = ${statistic.toFixed(2)}, df = ${df}, p = ${pValue.toPrecision(3)}; mean ${mean.toFixed(4)} (exact ${exact.mean.toFixed(4)}), variance ${variance.toFixed(4)} (exact ${exact.variance.toFixed(4)})`;
}

const r = (num: bigint, den: bigint): ExactRational => ({ num, den });

describe('reference pmf', () => {
  it('reproduces dp_accounting v15 (truncated discrete Gaussian hockey stick) and its untruncated value', () => {
    const file = JSON.parse(
      readFileSync(new URL('../../test/vectors/dp/reference_vectors.json', import.meta.url), 'utf8'),
    ) as { vectors: Array<{ id: string; params: Record<string, number>; expected: { delta: number } }> };
    const v15 = file.vectors.find((v) => v.id === 'v15')!;
    const { sigma, sensitivity, truncation_bound: bound, epsilon } = v15.params as Record<string, number>;
    const delta = (b: number): number => {
      const pmf = computeDiscreteGaussianPmf(sigma! ** 2, b);
      let sum = 0; // δ(ε) = Σ_y max(0, P(y) - e^ε·Q(y)), Q = P shifted by the sensitivity
      for (let y = -b - sensitivity!; y <= b + sensitivity!; y++) {
        const p = pmf.p[y + b] ?? 0;
        const q = pmf.p[y - sensitivity! + b] ?? 0;
        sum += Math.max(0, p - Math.exp(epsilon!) * q);
      }
      return sum;
    };
    assert.ok(Math.abs(delta(bound!) - v15.expected.delta) < 0.5e-7, `v15: ${delta(bound!)}`);
    assert.ok(Math.abs(delta(60) - 0.14135133940562) < 0.5e-12, 'untruncated value in the v15 notes');
  });
});

describe('discrete Gaussian', () => {
  for (const [num, den] of [
    [1n, 2n],
    [1n, 1n],
    [3n, 1n],
    [10n, 1n],
  ] as const) {
    it(`fits N_Z(0, ${num}/${den}) (chi-square, mean, variance)`, (t) => {
      const samples = sampleDiscreteGaussianVector(
        r(num, den),
        SAMPLES,
        createSeededRandomBits(`dg-${num}/${den}`),
      );
      assert.ok(samples instanceof Int32Array);
      t.diagnostic(
        checkAgainstPmf(
          `N_Z(0, ${num}/${den})`,
          samples,
          computeDiscreteGaussianPmf(Number(num) / Number(den), 200),
        ),
      );
    });
  }
});

describe('discrete Laplace', () => {
  for (const [num, den] of [
    [1n, 2n],
    [1n, 1n],
    [3n, 1n],
    [10n, 1n],
  ] as const) {
    it(`fits DLap(${num}/${den})`, (t) => {
      const bits = createSeededRandomBits(`dlap-${num}/${den}`);
      const samples = Array.from({ length: SAMPLES }, () => Number(sampleDiscreteLaplace(r(num, den), bits)));
      t.diagnostic(
        checkAgainstPmf(`DLap(${num}/${den})`, samples, computeDiscreteLaplacePmf(Number(num) / Number(den))),
      );
    });
  }
});

describe('Poisson and Skellam', () => {
  for (const [num, den] of [
    [1n, 3n],
    [7n, 2n],
    [63n, 1n],
    [129n, 2n],
    [1000000n, 3n],
  ] as const) {
    it(`Poisson(${num}/${den}) fits (10^4 samples)`, (t) => {
      const bits = createSeededRandomBits(`poisson-${num}/${den}`);
      const samples = Array.from({ length: 10000 }, () => Number(samplePoisson(r(num, den), bits)));
      t.diagnostic(
        checkAgainstPmf(`Poisson(${num}/${den})`, samples, computePoissonPmf(Number(num) / Number(den))),
      );
    });
  }
  for (const [num, den] of [
    [1n, 2n],
    [5n, 2n],
    [64n, 1n],
    [12345n, 7n],
  ] as const) {
    it(`Skellam(${num}/${den}) fits`, (t) => {
      const samples = sampleSkellamVector(
        r(num, den),
        SAMPLES,
        createSeededRandomBits(`skellam-${num}/${den}`),
      );
      assert.ok(samples instanceof Int32Array);
      t.diagnostic(
        checkAgainstPmf(`Skellam(${num}/${den})`, samples, computeSkellamPmf(Number(num) / Number(den))),
      );
    });
  }
});

describe('secure Gaussian', () => {
  it('passes Kolmogorov–Smirnov against Φ (n = 20000, D < 1.63/√n) with the right mean and variance', (t) => {
    const sigma = 1.7;
    const x = sampleSecureGaussian(sigma, createSeededRandomBits('secure-ks'), SAMPLES).sort();
    let d = 0;
    for (let i = 0; i < x.length; i++) {
      const f = computePhi(x[i]! / sigma);
      d = Math.max(d, (i + 1) / x.length - f, f - i / x.length);
    }
    assert.ok(d < 1.63 / Math.sqrt(SAMPLES), `KS D = ${d}`);
    const mean = x.reduce((a, b) => a + b, 0) / x.length;
    const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / (x.length - 1);
    assert.ok(Math.abs(mean) < (5 * sigma) / Math.sqrt(SAMPLES), `mean ${mean}`);
    assert.ok(Math.abs(variance / sigma ** 2 - 1) < 5 * Math.sqrt(2 / SAMPLES), `variance ${variance}`);
    t.diagnostic(
      `D = ${d.toFixed(5)} (bound ${(1.63 / Math.sqrt(SAMPLES)).toFixed(5)}), mean ${mean.toFixed(4)}, variance ${variance.toFixed(4)} (σ² = ${sigma ** 2})`,
    );
  });
});

describe('crypto random source', () => {
  it('never repeats a 64-bit value in 10^5 draws, and 32-bit repeats stay at the birthday rate', (t) => {
    const bits = createCryptoRandomBits();
    const words = new Set<number>();
    const pairs = new Set<bigint>();
    let repeats32 = 0;
    for (let i = 0; i < 100000; i++) {
      const hi = bits.nextUint32();
      const lo = bits.nextUint32();
      if (i < 50000) {
        for (const w of [hi, lo]) {
          if (words.has(w)) repeats32++;
          words.add(w);
        }
      }
      pairs.add((BigInt(hi) << 32n) | BigInt(lo));
    }
    assert.equal(pairs.size, 100000);
    // 10^5 uniform 32-bit words collide C(10^5, 2)/2^32 ≈ 1.16 times on average; a stuck pool would not
    assert.ok(repeats32 <= 12, `${repeats32} repeated 32-bit words`);
    t.diagnostic(`${repeats32} repeated 32-bit words among 10^5; 0 repeated 64-bit values among 10^5`);
  });
});
