/** Federated evaluation: example-weighted means; invalid reports rejected naming the participant. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { aggregateEvaluationResults, type EvaluationResult } from './evaluation-aggregation.ts';
import { createStrategy } from './strategy.ts';
import { parseStrategyConfig } from './strategy-config.ts';

const RESULTS: EvaluationResult[] = [
  { participant: 'a', numExamples: 100, loss: 0.5, accuracy: 0.9 },
  { participant: 'b', numExamples: 300, loss: 1.5, accuracy: 0.5 },
  { participant: 'c', numExamples: 600, loss: 1.0, accuracy: 0.75 },
];

describe('aggregateEvaluationResults', () => {
  it('weights loss and accuracy by examples', () => {
    const s = aggregateEvaluationResults(RESULTS);
    assert.equal(s.numExamples, 1000);
    assert.ok(Math.abs(s.loss - (50 + 450 + 600) / 1000) < 1e-12);
    assert.ok(Math.abs(s.accuracy - (90 + 150 + 450) / 1000) < 1e-12);
    // not the unweighted mean (1.0, 0.7166…)
    assert.notEqual(s.loss, 1.0);
  });

  it('goes through Strategy.aggregateEvaluate', () => {
    const strategy = createStrategy(parseStrategyConfig({ name: 'fedadam' }));
    assert.deepEqual(
      strategy.aggregateEvaluate({ round: 3, results: RESULTS }),
      aggregateEvaluationResults(RESULTS),
    );
  });

  it('rejects non-finite or out-of-range entries, naming the participant and field', () => {
    const cases: [Partial<EvaluationResult>, string][] = [
      [{ loss: Number.NaN }, 'results[1].loss'],
      [{ loss: Number.POSITIVE_INFINITY }, 'results[1].loss'],
      [{ accuracy: Number.NaN }, 'results[1].accuracy'],
      [{ accuracy: 1.2 }, 'results[1].accuracy'],
      [{ numExamples: 0 }, 'results[1].numExamples'],
      [{ numExamples: 2.5 }, 'results[1].numExamples'],
    ];
    for (const [patch, field] of cases) {
      const results = RESULTS.map((r, i) => (i === 1 ? { ...r, ...patch } : r));
      assert.throws(
        () => aggregateEvaluationResults(results),
        (e: unknown) =>
          e instanceof EntenteError &&
          e.code === 'INVALID_ARGUMENT' &&
          e.field === field &&
          /"b"/.test(e.message),
        field,
      );
    }
  });

  it('rejects an empty list and a participant reporting twice', () => {
    assert.throws(
      () => aggregateEvaluationResults([]),
      (e: unknown) => e instanceof EntenteError && e.field === 'results',
    );
    assert.throws(
      () => aggregateEvaluationResults([...RESULTS, { ...RESULTS[0]! }]),
      (e: unknown) => e instanceof EntenteError && e.code === 'DUPLICATE_RESULT' && /"a"/.test(e.message),
    );
  });
});
