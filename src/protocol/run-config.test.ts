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
  it('keeps an intended use and refuses one with control characters', () => {
    assert.equal(
      parseRunConfig({ ...valid, intendedUse: 'research triage only' }).intendedUse,
      'research triage only',
    );
    assert.equal(parseRunConfig(valid).intendedUse, undefined);
    assert.equal(fieldOf({ ...valid, intendedUse: 'a\u202eb' }), 'run.intendedUse');
    assert.equal(fieldOf({ ...valid, intendedUse: '' }), 'run.intendedUse');
  });

  it('parses, applies defaults and freezes', () => {
    const c = parseRunConfig(valid);
    assert.equal(c.train.optimizer, 'sgd');
    assert.equal(c.evaluate, true);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.train));
  });

  it('takes the documented training defaults when train is omitted', () => {
    const { train: _, ...withoutTrain } = valid;
    const c = parseRunConfig(withoutTrain);
    assert.deepEqual(c.train, { epochs: 1, batchSize: 32, learningRate: 0.05, optimizer: 'sgd' });
    assert.deepEqual(c.train, parseRunConfig(valid).train);
    assert.ok(Object.isFrozen(c.train));
    // Parsed again (a stored configuration), it is the same run.
    assert.deepEqual(parseRunConfig(JSON.parse(JSON.stringify(c))), c);
    // Options given are kept; the others take their defaults.
    assert.deepEqual(parseRunConfig({ ...valid, train: { epochs: 3 } }).train, {
      epochs: 3,
      batchSize: 32,
      learningRate: 0.05,
      optimizer: 'sgd',
    });
  });

  it('accepts a linear (regression) run', () => {
    assert.equal(parseRunConfig({ ...valid, model: { kind: 'linear', inputDim: 4 } }).model.kind, 'linear');
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

  it('refuses a seed with control or direction-changing characters (it is echoed in the log)', () => {
    assert.equal(fieldOf({ ...valid, seed: 'a\nb' }), 'run.seed');
    assert.equal(fieldOf({ ...valid, seed: 'x\u001b[2J' }), 'run.seed');
    assert.equal(fieldOf({ ...valid, seed: 'abc\u202e' }), 'run.seed');
    assert.equal(parseRunConfig({ ...valid, seed: 'trial 2026/ü' }).seed, 'trial 2026/ü');
  });
});

describe('secure aggregation settings', () => {
  it('is on by default, with a scale chosen so the ring cannot wrap', () => {
    const c = parseRunConfig(valid);
    assert.equal(c.secureAggregation.protocol, 'secagg');
    const { ringBits, clipRange, scale, maxParticipants, maxWeight } = c.secureAggregation;
    assert.equal(ringBits, 32);
    assert.ok(Number.isInteger(Math.log2(scale)), 'a power of two');
    assert.ok(maxParticipants * (clipRange * scale + 1) < 2 ** 31, 'n x range fits the signed ring');
    assert.ok(
      maxParticipants * (clipRange * scale * 2 + 1) >= 2 ** 31,
      'and is the largest such power of two',
    );
    assert.ok(maxParticipants * maxWeight < 2 ** 31);
  });

  it('refuses, up front, a configuration whose sum could wrap the ring', () => {
    assert.equal(
      fieldOf({ ...valid, secureAggregation: { scale: 2 ** 30, clipRange: 1, maxParticipants: 10 } }),
      'secureAggregation.scale',
    );
    assert.equal(
      fieldOf({ ...valid, secureAggregation: { maxWeight: 1e9, maxParticipants: 100 } }),
      'secureAggregation.maxWeight',
    );
    // The same scale fits in the 2^64 ring.
    const c = parseRunConfig({
      ...valid,
      secureAggregation: { scale: 2 ** 30, ringBits: 64, maxParticipants: 10 },
    });
    assert.equal(c.secureAggregation.scale, 2 ** 30);
  });

  it('refuses fewer than 3 participants, and a threshold a minimal round could never reach', () => {
    assert.equal(
      fieldOf({
        ...valid,
        minParticipants: 2,
        strategy: { name: 'fedavg', minTrainParticipants: 2, minEvaluateParticipants: 2 },
      }),
      'minParticipants',
    );
    assert.equal(fieldOf({ ...valid, secureAggregation: { threshold: 4 } }), 'secureAggregation.threshold');
    assert.equal(
      fieldOf({ ...valid, secureAggregation: { threshold: 2 } }),
      'run.secureAggregation.threshold',
    );
    assert.equal(
      fieldOf({ ...valid, secureAggregation: { maxParticipants: 2 } }),
      'run.secureAggregation.maxParticipants',
    );
  });

  it('allows plain aggregation only when asked for explicitly, and then 2 participants', () => {
    const c = parseRunConfig({
      ...valid,
      minParticipants: 2,
      strategy: { name: 'fedavg', minTrainParticipants: 2, minEvaluateParticipants: 2 },
      secureAggregation: { protocol: 'none' },
    });
    assert.equal(c.secureAggregation.protocol, 'none');
  });

  it('a stored configuration parses again to the same value', () => {
    for (const input of [valid, { ...valid, secureAggregation: { protocol: 'none' } }]) {
      const c = parseRunConfig(input);
      assert.deepEqual(parseRunConfig(JSON.parse(JSON.stringify(c))), c);
    }
  });
});
