/**
 * Drift metrics against reference values computed by scipy/numpy (test/vectors/monitoring, see its
 * README), properties on random histograms, and the monitoring layout: its bins, its sums, the
 * secure-sum declaration it becomes, and hostile recorded sums.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { decodeSecureSum, encodeSecureSum, toVectorSegments } from '../protocol/secure-sum.ts';
import { declareMonitoringSum } from '../protocol/secure-sum-round.ts';
import { addRingVectors } from '../secagg/index.ts';
import {
  PSI_EPSILON,
  binnedKolmogorovSmirnov,
  estimateLabelShift,
  histogramPercentile,
  jensenShannonDistance,
  observedLabelShift,
  populationStabilityIndex,
} from './drift-metrics.ts';
import { compareMonitoring } from './monitoring-drift.ts';
import {
  accumulateMonitoring,
  checkMonitoringSums,
  createMonitoringLayout,
  createMonitoringSums,
  featureBinIndex,
  latencyBinIndex,
  latencyBinUpperEdges,
  monitoringSlice,
} from './monitoring-layout.ts';

const vectors = JSON.parse(
  readFileSync(
    join(import.meta.dirname, '..', '..', 'test', 'vectors', 'monitoring', 'monitoring.json'),
    'utf8',
  ),
) as {
  psiEpsilon: number;
  histograms: {
    reference: number[];
    current: number[];
    psi: number;
    jsDistanceBase2: number;
    jsDistanceNatural: number;
    ks: number;
  }[];
  labelShift: {
    confusion: number[];
    predicted: number[];
    weights: number[];
    referenceLabels: number[];
    estimatedLabels: number[];
  }[];
  latencyPercentiles: { counts: number[]; percentiles: Record<string, number | null> }[];
  featureBins: { bins: number; z: number[]; index: number[] }[];
  latencyBins: { ms: number[]; index: number[] };
};

const close = (actual: number, expected: number, what: string, tol = 1e-12) =>
  assert.ok(
    Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)),
    `${what}: ${actual} vs ${expected}`,
  );

describe('drift metrics against scipy / numpy', () => {
  it('uses the same epsilon as the generator', () => assert.equal(PSI_EPSILON, vectors.psiEpsilon));

  it('PSI, Jensen-Shannon distance (base 2 and e) and binned KS', () => {
    assert.ok(vectors.histograms.length >= 10);
    for (const [i, h] of vectors.histograms.entries()) {
      close(populationStabilityIndex(h.reference, h.current), h.psi, `psi ${i}`);
      close(jensenShannonDistance(h.reference, h.current), h.jsDistanceBase2, `js2 ${i}`, 1e-10);
      close(jensenShannonDistance(h.reference, h.current, Math.E), h.jsDistanceNatural, `jse ${i}`, 1e-10);
      close(binnedKolmogorovSmirnov(h.reference, h.current), h.ks, `ks ${i}`);
    }
  });

  it('Black Box Shift Estimation', () => {
    for (const [i, v] of vectors.labelShift.entries()) {
      const est = estimateLabelShift(v.confusion, v.predicted);
      for (const [j, w] of v.weights.entries()) close(est.weights[j]!, w, `w ${i}.${j}`, 1e-9);
      for (const [j, p] of v.referenceLabels.entries()) close(est.referenceLabels[j]!, p, `p ${i}.${j}`);
      for (const [j, q] of v.estimatedLabels.entries())
        close(est.estimatedLabels[j]!, q, `q ${i}.${j}`, 1e-9);
    }
  });

  it('latency percentiles are bin upper edges', () => {
    const edges = latencyBinUpperEdges();
    for (const v of vectors.latencyPercentiles)
      for (const [q, expected] of Object.entries(v.percentiles)) {
        const got = histogramPercentile(v.counts, edges, Number(q));
        assert.equal(got, expected ?? Number.POSITIVE_INFINITY, `q=${q}`);
      }
  });

  it('feature and latency bins', () => {
    for (const v of vectors.featureBins)
      for (const [i, z] of v.z.entries())
        assert.equal(featureBinIndex(z, v.bins), v.index[i], `z=${z} B=${v.bins}`);
    for (const [i, ms] of vectors.latencyBins.ms.entries())
      assert.equal(latencyBinIndex(ms), vectors.latencyBins.index[i]);
  });
});

describe('drift metric properties', () => {
  const histogram = (n: number) =>
    fc.array(fc.nat(1000), { minLength: n, maxLength: n }).filter((a) => a.some((v) => v > 0));
  const pairOf = fc.integer({ min: 1, max: 40 }).chain((n) => fc.tuple(histogram(n), histogram(n)));

  it('PSI ≥ 0, JS distance in [0, 1] (base 2) and [0, √ln 2] (base e), KS in [0, 1]', () => {
    fc.assert(
      fc.property(pairOf, ([r, c]) => {
        assert.ok(populationStabilityIndex(r, c) >= 0);
        const js = jensenShannonDistance(r, c);
        assert.ok(js >= 0 && js <= 1 + 1e-12);
        const jse = jensenShannonDistance(r, c, Math.E);
        assert.ok(jse >= 0 && jse <= Math.sqrt(Math.LN2) + 1e-12);
        const ks = binnedKolmogorovSmirnov(r, c);
        assert.ok(ks >= 0 && ks <= 1);
      }),
      { numRuns: 300 },
    );
  });

  it('identical (or proportional) histograms give 0', () => {
    fc.assert(
      fc.property(histogram(12), fc.integer({ min: 1, max: 7 }), (r, m) => {
        const scaled = r.map((v) => v * m);
        assert.equal(populationStabilityIndex(r, scaled), 0);
        assert.ok(jensenShannonDistance(r, scaled) < 1e-7);
        assert.ok(binnedKolmogorovSmirnov(r, scaled) < 1e-12);
      }),
      { numRuns: 200 },
    );
  });

  it('disjoint histograms: JS distance 1, KS 1', () => {
    close(jensenShannonDistance([5, 0], [0, 3]), 1, 'js');
    close(binnedKolmogorovSmirnov([5, 0], [0, 3]), 1, 'ks');
  });

  it('refuses empty totals, negative counts, mismatched sizes and a singular confusion matrix', () => {
    const code = (f: () => unknown) =>
      assert.throws(f, (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT');
    code(() => populationStabilityIndex([0, 0], [1, 2]));
    code(() => jensenShannonDistance([1, -1, 3], [1, 2, 3]));
    code(() => binnedKolmogorovSmirnov([1, 2], [1, 2, 3]));
    code(() => populationStabilityIndex([1, Number.NaN], [1, 2]));
    code(() => estimateLabelShift([1, 1, 1, 1], [3, 4]));
    code(() => histogramPercentile([0, 0], [1, 2], 0.5));
    code(() => histogramPercentile([1, 0], [1, 2], 0));
  });

  it('BBSE recovers a known label shift from exact expectations', () => {
    // Reference: p(y) = (0.5, 0.5); P(ŷ | y=0) = (0.9, 0.1), P(ŷ | y=1) = (0.2, 0.8).
    const confusion = [450, 50, 100, 400];
    // Current q(y) = (0.8, 0.2): μ̂ = 0.8·(0.9, 0.1) + 0.2·(0.2, 0.8) = (0.76, 0.24).
    const est = estimateLabelShift(confusion, [760, 240]);
    close(est.weights[0]!, 1.6, 'w0', 1e-9);
    close(est.weights[1]!, 0.4, 'w1', 1e-9);
    close(est.estimatedLabels[0]!, 0.8, 'q0', 1e-9);
    const observed = observedLabelShift(confusion, [700, 100, 50, 150], 2);
    close(observed.totalVariation, 0.3, 'tv');
  });
});

describe('monitoring layout', () => {
  const layout = createMonitoringLayout({ numFeatures: 3, numClasses: 2, featureBins: 16, scoreBins: 10 });

  it('declares every segment a count with its per-row bounds, and a monitoring secure sum', () => {
    assert.deepEqual(
      layout.segments.map((s) => [s.name, s.length, s.kind, s.maxPerRow, s.maxRowL2]),
      [
        ['rows', 1, 'count', 1, 1],
        ['features', 54, 'count', 1, Math.sqrt(3)],
        ['score', 10, 'count', 1, 1],
        ['predictedClass', 2, 'count', 1, 1],
        ['confusion', 4, 'count', 1, 1],
        ['latency', 18, 'count', 1, 1],
      ],
    );
    assert.equal(layout.length, 89);
    const declaration = declareMonitoringSum({ layout, maxRows: 10_000, cohortSize: 3 });
    assert.equal(declaration.purpose, 'monitoring');
    assert.deepEqual(
      declaration.segments.map((s) => s.name),
      layout.segments.map((s) => s.name),
    );
    const noised = declareMonitoringSum({
      layout,
      maxRows: 10_000,
      cohortSize: 3,
      noise: { noiseMultiplier: 1 },
    });
    assert.deepEqual(noised.noise, { noiseMultiplier: 1 });
  });

  it("two sites' monitoring vectors add exactly as a secure sum", () => {
    const declaration = declareMonitoringSum({ layout, maxRows: 1000, cohortSize: 2 });
    const site = (shift: number, latencyMs: number) => {
      const sums = createMonitoringSums(layout);
      accumulateMonitoring(layout, sums, {
        count: 3,
        z: [shift, 0, 1, -2, shift, 5, 0.1, 0.2, -shift],
        probabilities: [0.1, 0.9, 0.6, 0.4, 0.5, 0.5],
        labels: [1, 0, -1],
        latencyMs,
      });
      return sums;
    };
    const a = site(0.5, 1.5);
    const b = site(-3, 900);
    const words = toVectorSegments(declaration).reduce((n, x) => n + x.lengthWords, 0);
    const total = new BigUint64Array(words);
    addRingVectors(total, encodeSecureSum(declaration, a));
    addRingVectors(total, encodeSecureSum(declaration, b));
    const decoded = decodeSecureSum(declaration, total, 2);
    assert.deepEqual(
      Array.from(decoded),
      Array.from(a, (v, i) => v + b[i]!),
    );
    checkMonitoringSums(layout, decoded);
  });

  it('refuses a spec out of bounds, naming the field', () => {
    assert.throws(
      () => createMonitoringLayout({ numFeatures: 0, numClasses: 2, featureBins: 16, scoreBins: 10 }),
      (e: unknown) =>
        e instanceof EntenteError && e.code === 'INVALID_CONFIG' && e.field === 'spec.numFeatures',
    );
    assert.throws(
      () => createMonitoringLayout({ numFeatures: 2, numClasses: 2, featureBins: 1e9, scoreBins: 10 }),
      (e: unknown) => e instanceof EntenteError && e.field === 'spec.featureBins',
    );
  });

  it('accumulates rows into bins: features by z-score, p₁, argmax, labelled confusion, one latency count', () => {
    const sums = createMonitoringSums(layout);
    accumulateMonitoring(layout, sums, {
      count: 2,
      z: [-5, 0, 4, 0.3, -0.3, 1],
      probabilities: [0.2, 0.8, 0.65, 0.35],
      labels: [1, -1],
      latencyMs: 3,
    });
    checkMonitoringSums(layout, sums);
    assert.equal(sums[0], 2);
    const f = monitoringSlice(layout, sums, 'features');
    assert.equal(f[0], 1); // feature 0, z = −5: lower tail
    assert.equal(f[featureBinIndex(0.3, 16)], 1); // feature 0, z = 0.3
    assert.equal(f[18 + 9], 1); // feature 1, z = 0 → [0, 0.5) = bin 9
    assert.equal(f[18 + 8], 1); // feature 1, z = −0.3 → [−0.5, 0) = bin 8
    assert.equal(f[36 + 17], 1); // feature 2, z = 4: upper tail
    assert.equal(f[36 + 11], 1); // feature 2, z = 1 → [1, 1.5) = bin 11
    assert.deepEqual(Array.from(monitoringSlice(layout, sums, 'score')), [0, 0, 0, 1, 0, 0, 0, 1, 0, 0]);
    assert.deepEqual(Array.from(monitoringSlice(layout, sums, 'predictedClass')), [1, 1]);
    assert.deepEqual(Array.from(monitoringSlice(layout, sums, 'confusion')), [0, 0, 0, 1]);
    assert.equal(monitoringSlice(layout, sums, 'latency')[latencyBinIndex(3)], 1);
  });

  it('a bad batch changes nothing', () => {
    const sums = createMonitoringSums(layout);
    assert.throws(
      () =>
        accumulateMonitoring(layout, sums, {
          count: 1,
          z: [0, 0, 0],
          probabilities: [0.5, 0.5],
          labels: [2],
        }),
      (e: unknown) => e instanceof EntenteError && e.field === 'labels',
    );
    assert.throws(
      () =>
        accumulateMonitoring(layout, sums, { count: 1, z: [0, Number.NaN, 0], probabilities: [0.5, 0.5] }),
      (e: unknown) => e instanceof EntenteError && e.field === 'z',
    );
    assert.ok(sums.every((v) => v === 0));
  });

  it('refuses recorded sums that cannot come from rows', () => {
    const sums = createMonitoringSums(layout);
    accumulateMonitoring(layout, sums, { count: 1, z: [0, 0, 0], probabilities: [0.5, 0.5] });
    const refused = (mutate: (s: Float64Array) => void, field: string) => {
      const s = sums.slice();
      mutate(s);
      assert.throws(
        () => checkMonitoringSums(layout, s),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_DATA' && e.field === field,
      );
    };
    refused((s) => (s[0] = 2), 'sums.features');
    refused((s) => (s[3] = -1), 'sums.features');
    refused((s) => (s[3] = 0.5), 'sums.features');
    refused((s) => (s[layout.length - 1] = 5), 'sums.latency');
  });

  it('drift of a shifted feature shows in its PSI, JS and KS and not in the others', () => {
    const two = createMonitoringLayout({ numFeatures: 2, numClasses: 2, featureBins: 16, scoreBins: 10 });
    // Deterministic standard-normal-ish z values from a fixed grid of quantiles.
    const n = 400;
    const zs = Array.from({ length: n }, (_, i) => {
      const u = (i + 0.5) / n;
      return Math.sqrt(-2 * Math.log(u < 0.5 ? u * 2 : (1 - u) * 2)) * (u < 0.5 ? -1 : 1) * 0.7;
    });
    const fill = (scale: number) => {
      const sums = createMonitoringSums(two);
      const z: number[] = [];
      const p: number[] = [];
      for (let i = 0; i < n; i++) {
        z.push(zs[i]! * scale, zs[(i * 7) % n]!);
        p.push(0.3, 0.7);
      }
      accumulateMonitoring(two, sums, { count: n, z, probabilities: p, labels: new Array(n).fill(1) });
      return sums;
    };
    const reference = fill(1);
    const drift = compareMonitoring(two, reference, fill(3));
    const same = compareMonitoring(two, reference, fill(1));
    assert.equal(same.features[0]!.psi, 0);
    assert.ok(drift.features[0]!.psi > 0.5, `psi ${drift.features[0]!.psi}`);
    assert.ok(drift.features[0]!.jsDistance > 0.2);
    assert.ok(drift.features[0]!.ks > 0.1);
    assert.equal(drift.features[1]!.psi, 0);
    assert.equal(drift.score.psi, 0);
    assert.ok(drift.observedLabelShift !== null);
    assert.equal(drift.latencyMs, null);
  });
});
