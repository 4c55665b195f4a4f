import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import {
  accumulateEvaluation,
  addEvaluationSums,
  createEvaluationLayout,
  finalizeEvaluation,
  parseEvaluationSpec,
} from '../evaluation/index.ts';
import { parseEvaluationPlan } from '../governance/index.ts';
import { checkRevealedSums, summarizePerSite } from './evaluation-reveal.ts';

const spec = parseEvaluationSpec({ numClasses: 2, scoreBins: 50 });
const layout = createEvaluationLayout(spec);
const plan = parseEvaluationPlan({
  consortium: 'x',
  title: 't',
  models: [{ name: 'm', sha256: 'ab'.repeat(32) }],
  metrics: ['rocAuc', 'ece', 'accuracy'],
  evaluation: spec,
  hypothesis: 'h',
  decisionRule: 'm.rocAuc >= 0.5',
  perSite: true,
  createdAt: '2026-12-08T00:00:00Z',
});

/** One site's sums: `n` rows whose scores separate the classes by `skill` (0 = coin, 1 = perfect). */
function site(n: number, skill: number, seed: string): Float64Array {
  const rng = createSeededRng(seed);
  const labels = Int32Array.from({ length: n }, () => (rng.nextFloat64() < 0.5 ? 1 : 0));
  const probabilities = new Float64Array(n * 2);
  for (let i = 0; i < n; i++) {
    const p = Math.min(
      1,
      Math.max(0, 0.5 + (labels[i] ? 1 : -1) * skill * 0.5 + (rng.nextFloat64() - 0.5) * 0.6),
    );
    probabilities[2 * i] = 1 - p;
    probabilities[2 * i + 1] = p;
  }
  return accumulateEvaluation(layout, { count: n, probabilities, labels });
}

describe('per-site figures from revealed sums', () => {
  const a = site(200, 0.8, 'a');
  const b = site(150, 0.1, 'b');
  const c = site(120, 0.5, 'c');
  const total = addEvaluationSums(addEvaluationSums(a, b), c);

  it('gives each revealing site its figures, the worst site per metric and leave-one-site-out figures', () => {
    const out = summarizePerSite(plan, layout, Array.from(total), {
      round: 1,
      label: 'model-A',
      asked: ['a', 'b', 'c'],
      deadlineAt: 0,
      revealed: { a: Array.from(a), b: Array.from(b) },
      refused: ['c'],
    });
    assert.deepEqual(Object.keys(out.sites).sort(), ['a', 'b']);
    assert.deepEqual(out.withheld, ['c']);
    assert.equal(out.sites.a!.rows, 200);
    // b separates the classes worst: lowest AUC and accuracy.
    assert.equal(out.worstSite.rocAuc!.site, 'b');
    assert.equal(out.worstSite.accuracy!.site, 'b');
    // Leaving a out = the figures of b and c together, computed directly.
    const bc = finalizeEvaluation(layout, addEvaluationSums(b, c));
    assert.ok(Math.abs(out.leaveOneOut.a!.rocAuc! - bc.overall.rocAuc!) < 1e-12);
    assert.ok(Math.abs(out.leaveOneOut.a!.accuracy! - bc.overall.accuracy!) < 1e-12);
  });

  it('gives no leave-one-out figure for a site whose sums do not fit in the secure total (it lied)', () => {
    // Valid sums on their own, but more rows than the whole secure total holds.
    const inflated = Array.from(site(900, 0.8, 'big'));
    const out = summarizePerSite(plan, layout, Array.from(total), {
      round: 1,
      label: 'model-A',
      asked: ['a'],
      deadlineAt: 0,
      revealed: { a: inflated },
      refused: [],
    });
    assert.equal(out.leaveOneOut.a, null);
  });

  it('checks revealed sums: their length, their consistency and the row bound, naming sums', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err instanceof EntenteError ? `${err.code} ${err.field}` : String(err);
      }
      return undefined;
    };
    assert.equal(
      code(() => checkRevealedSums(layout, Array.from(a).slice(1), 1000)),
      'INVALID_MESSAGE sums',
    );
    assert.equal(
      code(() =>
        checkRevealedSums(
          layout,
          Array.from(a, (v, i) => (i === 0 ? -1 : v)),
          1000,
        ),
      ),
      'INVALID_MESSAGE sums',
    );
    assert.equal(
      code(() => checkRevealedSums(layout, Array.from(a), 100)),
      'INVALID_MESSAGE sums',
    );
    const ok = checkRevealedSums(layout, Array.from(a), 1000);
    assert.equal(ok.rows, 200);
    assert.match(ok.sumsSha256, /^[0-9a-f]{64}$/);
  });
});
