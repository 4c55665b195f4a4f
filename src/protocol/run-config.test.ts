import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { parseRunConfig } from './run-config.ts';

const valid = {
  id: 'r1',
  model: { kind: 'logistic', inputDim: 4 },
  strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
  rounds: 2,
  minParticipants: 3,
  train: {},
};

function fieldOf(input: unknown): string | undefined {
  try {
    parseRunConfig(input);
  } catch (err) {
    assert.ok(err instanceof EntenteError);
    assert.equal(err.code, 'INVALID_CONFIG');
    return err.field;
  }
  assert.fail('expected INVALID_CONFIG');
}

describe('run configuration', () => {
  it('parses, applies defaults and freezes', () => {
    const c = parseRunConfig(valid);
    assert.equal(c.train.optimizer, 'sgd');
    assert.equal(c.evaluate, true);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.train));
  });

  it('names the field of each mistake, including cross-field rules that would stall a run', () => {
    assert.equal(fieldOf({ ...valid, id: 'Bad Id' }), 'run.id');
    assert.equal(fieldOf({ ...valid, rounds: 0 }), 'run.rounds');
    assert.equal(fieldOf({ ...valid, extra: 1 }), 'run');
    assert.match(fieldOf({ ...valid, model: { kind: 'logistic', inputDim: -1 } }) ?? '', /inputDim/);
    assert.match(fieldOf({ ...valid, strategy: { name: 'fedadam', beta1: 2 } }) ?? '', /beta1/);
    assert.equal(
      fieldOf({ ...valid, strategy: { name: 'fedavg', minTrainParticipants: 2 } }),
      'strategy.minTrainParticipants',
    );
    assert.equal(
      fieldOf({ ...valid, strategy: { name: 'fedavg', minTrainParticipants: 3, fractionEvaluate: 0 } }),
      'strategy.fractionEvaluate',
    );
    assert.match(fieldOf({ ...valid, train: { optimizer: 'adam', momentum: 0.9 } }) ?? '', /momentum/);
  });
});
