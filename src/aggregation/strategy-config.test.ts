/** The strategy schema: defaults, frozen result, and errors that name the offending field. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { createStrategy } from './strategy.ts';
import { parseStrategyConfig, type StrategyConfig } from './strategy-config.ts';

function assertFieldError(input: unknown, field: string): void {
  assert.throws(
    () => parseStrategyConfig(input),
    (e: unknown) =>
      e instanceof EntenteError &&
      e.code === 'INVALID_CONFIG' &&
      e.field === field &&
      e.message.includes(field),
    `expected INVALID_CONFIG naming ${field}`,
  );
}

describe('parseStrategyConfig', () => {
  it('fills the documented defaults', () => {
    const common = {
      fractionTrain: 1,
      minTrainParticipants: 2,
      fractionEvaluate: 1,
      minEvaluateParticipants: 2,
    };
    assert.deepEqual(parseStrategyConfig({ name: 'fedavg' }), { name: 'fedavg', ...common });
    assert.deepEqual(parseStrategyConfig({ name: 'fedavgm' }), {
      name: 'fedavgm',
      ...common,
      serverLearningRate: 1,
      serverMomentum: 0.9,
    });
    const adaptive = { serverLearningRate: 1e-2, beta1: 0.9, beta2: 0.99, tau: 1e-3 };
    assert.deepEqual(parseStrategyConfig({ name: 'fedadam' }), { name: 'fedadam', ...common, ...adaptive });
    assert.deepEqual(parseStrategyConfig({ name: 'fedyogi' }), { name: 'fedyogi', ...common, ...adaptive });
    assert.deepEqual(parseStrategyConfig({ name: 'fedadagrad' }), {
      name: 'fedadagrad',
      ...common,
      serverLearningRate: 1e-2,
      beta1: 0,
      tau: 1e-3,
    });
  });

  it('keeps given values and returns a frozen object', () => {
    const cfg = parseStrategyConfig({
      name: 'fedprox',
      proximalMu: 0.1,
      fractionTrain: 0.5,
      minTrainParticipants: 3,
    });
    assert.equal(cfg.name === 'fedprox' && cfg.proximalMu, 0.1);
    assert.equal(cfg.fractionTrain, 0.5);
    assert.equal(cfg.minTrainParticipants, 3);
    assert.ok(Object.isFrozen(cfg));
  });

  it('names the field of each error', () => {
    assertFieldError(42, 'strategy');
    assertFieldError({}, 'strategy.name');
    assertFieldError({ name: 'fedsgd' }, 'strategy.name');
    assertFieldError({ name: 'fedprox' }, 'strategy.proximalMu');
    assertFieldError({ name: 'fedprox', proximalMu: -1 }, 'strategy.proximalMu');
    assertFieldError({ name: 'fedavgm', serverMomentum: 1 }, 'strategy.serverMomentum');
    assertFieldError({ name: 'fedavgm', serverMomentun: 0.5 }, 'strategy.serverMomentun');
    assertFieldError({ name: 'fedavgm', serverLearningRate: 0 }, 'strategy.serverLearningRate');
    assertFieldError({ name: 'fedadam', beta1: 1 }, 'strategy.beta1');
    assertFieldError({ name: 'fedyogi', beta2: -0.1 }, 'strategy.beta2');
    assertFieldError({ name: 'fedadam', tau: 0 }, 'strategy.tau');
    assertFieldError({ name: 'fedadam', tau: Number.NaN }, 'strategy.tau');
    assertFieldError({ name: 'fedadagrad', beta2: 0.9 }, 'strategy.beta2');
    assertFieldError({ name: 'fedavg', fractionTrain: 0 }, 'strategy.fractionTrain');
    assertFieldError({ name: 'fedavg', fractionTrain: 1.5 }, 'strategy.fractionTrain');
    assertFieldError({ name: 'fedavg', minTrainParticipants: 1.5 }, 'strategy.minTrainParticipants');
    assertFieldError({ name: 'fedavg', fractionEvaluate: -0.5 }, 'strategy.fractionEvaluate');
    assertFieldError({ name: 'fedavg', minEvaluateParticipants: 0 }, 'strategy.minEvaluateParticipants');
    assertFieldError({ name: 'fedavg', proximalMu: 0.1 }, 'strategy.proximalMu');
  });

  it('createStrategy re-validates an unchecked config', () => {
    const bad = { name: 'fedadam', beta1: 2 } as unknown as StrategyConfig;
    assert.throws(
      () => createStrategy(bad),
      (e: unknown) =>
        e instanceof EntenteError && e.code === 'INVALID_CONFIG' && e.field === 'strategy.beta1',
    );
    assert.equal(createStrategy(parseStrategyConfig({ name: 'fedyogi' })).name, 'fedyogi');
  });
});
