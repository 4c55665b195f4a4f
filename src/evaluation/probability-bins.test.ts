/**
 * The bin rule against numpy (test/vectors/evaluation/bin-edges.json: np.searchsorted over
 * np.linspace inner edges, side="left", for values on, just below and just above every edge).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { binBounds, binIndex, innerBinEdges } from './probability-bins.ts';

const vectors = JSON.parse(
  readFileSync(new URL('../../test/vectors/evaluation/bin-edges.json', import.meta.url), 'utf8'),
) as { cases: { bins: number; values: number[]; binIds: number[] }[] };

describe('probability bins', () => {
  it('match numpy searchsorted(linspace inner edges) on and around every edge', () => {
    let checked = 0;
    for (const { bins, values, binIds } of vectors.cases) {
      const edges = innerBinEdges(bins);
      values.forEach((p, i) => {
        assert.equal(binIndex(edges, p), binIds[i], `bins=${bins} p=${p}`);
        checked++;
      });
    }
    assert.ok(checked > 500, `only ${checked} values checked`);
  });

  it('puts 0 in the first bin, 1 in the last and an inner edge value in the lower bin', () => {
    const edges = innerBinEdges(10);
    assert.equal(binIndex(edges, 0), 0);
    assert.equal(binIndex(edges, 1), 9);
    assert.equal(binIndex(edges, 0.1), 0); // 0.1 is the first inner edge: lower bin
    assert.equal(binIndex(edges, 0.2), 1);
    assert.equal(binIndex(edges, 0.5), 4);
    // numpy's edge is 3 · 0.1 = 0.30000000000000004, so 0.3 is below it and so is the edge itself
    assert.equal(edges[2], 3 * 0.1);
    assert.equal(binIndex(edges, 0.3), 2);
    assert.equal(binIndex(edges, 0.30000000000000004), 2);
    assert.equal(binIndex(edges, 0.3000000000000001), 3);
    // 7 · 0.1 = 0.7000000000000001 is the edge; 0.7 lies below it
    assert.equal(binIndex(edges, 0.7000000000000001), 6);
    assert.equal(binIndex(edges, 0.7), 6);
  });

  it('gives numpy linspace bounds, the last upper bound exactly 1', () => {
    assert.deepEqual(binBounds(10, 0), { lower: 0, upper: 0.1 });
    assert.deepEqual(binBounds(10, 2), { lower: 0.2, upper: 3 * 0.1 });
    assert.deepEqual(binBounds(10, 9), { lower: 9 * 0.1, upper: 1 });
  });
});
