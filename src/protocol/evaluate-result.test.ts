import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { parseMessage, taskResultSchema } from './messages.ts';

const base = { kind: 'evaluate', runId: 'r1', round: 1, numExamples: 30, loss: 0.4 };
const sums = { sumSquaredError: 12, sumAbsoluteError: 9, sumTarget: 300, sumTargetSquared: 3100 };

function fieldOf(value: unknown): string | undefined {
  try {
    parseMessage(taskResultSchema, value, 'result');
    return undefined;
  } catch (err) {
    assert.ok(err instanceof EntenteError && err.code === 'INVALID_MESSAGE', String(err));
    return err.field;
  }
}

describe('evaluate result', () => {
  it("carries a classifier's accuracy or a regression model's sums", () => {
    assert.equal(fieldOf({ ...base, accuracy: 0.9 }), undefined);
    assert.equal(fieldOf({ ...base, regression: sums }), undefined);
  });

  it('refuses both, neither, or malformed sums', () => {
    assert.match(fieldOf({ ...base, accuracy: 0.9, regression: sums }) ?? '', /accuracy/);
    assert.match(fieldOf(base) ?? '', /accuracy/);
    assert.match(fieldOf({ ...base, regression: { ...sums, sumSquaredError: -1 } }) ?? '', /sumSquaredError/);
    assert.match(fieldOf({ ...base, regression: { ...sums, extra: 1 } }) ?? '', /regression/);
  });
});
