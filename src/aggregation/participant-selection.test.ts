/** Participant selection: sizes, determinism per seed, independence from input order, validation. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { computeSelectionSize, selectParticipants } from './participant-selection.ts';
import { createStrategy } from './strategy.ts';
import { parseStrategyConfig } from './strategy-config.ts';

const IDS = Array.from({ length: 20 }, (_, i) => `site-${String(i).padStart(2, '0')}`);

describe('selectParticipants', () => {
  it('selects max(minimum, ⌊fraction·n⌋), never more than are available', () => {
    assert.equal(computeSelectionSize(10, 0.5, 2), 5);
    assert.equal(computeSelectionSize(10, 0.1, 2), 2);
    assert.equal(computeSelectionSize(100, 0.29, 1), 29);
    assert.equal(computeSelectionSize(3, 1, 5), 3);
    assert.equal(computeSelectionSize(10, 0, 2), 0);
    assert.equal(computeSelectionSize(10, 0.01, 1), 1);
  });

  it('is deterministic per seed, sorted, a subset, and independent of the listing order', () => {
    const pick = (seed: string, ids: readonly string[]) =>
      selectParticipants({ available: ids, fraction: 0.3, minimum: 2, rng: createSeededRng(seed) });
    const a = pick('round-1', IDS);
    assert.equal(a.length, 6);
    assert.deepEqual(a, [...a].sort());
    assert.equal(new Set(a).size, a.length);
    for (const id of a) assert.ok(IDS.includes(id));
    assert.deepEqual(pick('round-1', IDS), a);
    assert.deepEqual(pick('round-1', [...IDS].reverse()), a);
    const others = ['round-2', 'round-3', 'round-4', 'round-5'].map((s) => pick(s, IDS));
    assert.ok(
      others.some((o) => o.join() !== a.join()),
      'different seeds give different selections',
    );
  });

  it('every participant can be selected (no positional bias)', () => {
    const counts = new Map<string, number>();
    const rng = createSeededRng('coverage');
    for (let r = 0; r < 200; r++) {
      for (const id of selectParticipants({ available: IDS, fraction: 0.25, minimum: 1, rng })) {
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    }
    assert.equal(counts.size, IDS.length);
    // each is expected 50 times; a uniform draw stays well inside [20, 80]
    for (const [id, c] of counts) assert.ok(c > 20 && c < 80, `${id} selected ${c} times`);
  });

  it('returns all of them when fewer than the minimum are available', () => {
    const rng = createSeededRng('few');
    assert.deepEqual(selectParticipants({ available: ['b', 'a'], fraction: 0.5, minimum: 3, rng }), [
      'a',
      'b',
    ]);
    assert.deepEqual(selectParticipants({ available: [], fraction: 1, minimum: 2, rng }), []);
  });

  it('rejects duplicate or empty ids', () => {
    const rng = createSeededRng('dup');
    for (const available of [
      ['a', 'b', 'a'],
      ['a', ''],
    ]) {
      assert.throws(
        () => selectParticipants({ available, fraction: 1, minimum: 1, rng }),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === 'available',
      );
    }
  });
});

describe('strategy configure*', () => {
  const state = { round: 0, scalars: { steps: 0 }, tensors: [] };

  it('configureTrain uses fractionTrain/minTrainParticipants, configureEvaluate its own', () => {
    const s = createStrategy(
      parseStrategyConfig({
        name: 'fedavg',
        fractionTrain: 0.5,
        minTrainParticipants: 2,
        fractionEvaluate: 0.1,
        minEvaluateParticipants: 3,
      }),
    );
    const train = s.configureTrain({ round: 1, available: IDS, state, rng: createSeededRng('t') });
    assert.equal(train.participants.length, 10);
    const evaluate = s.configureEvaluate({ round: 1, available: IDS, state, rng: createSeededRng('e') });
    assert.equal(evaluate.participants.length, 3);
    const again = s.configureTrain({ round: 1, available: IDS, state, rng: createSeededRng('t') });
    assert.deepEqual(again.participants, train.participants);
  });

  it('fractionEvaluate 0 disables federated evaluation', () => {
    const s = createStrategy(parseStrategyConfig({ name: 'fedavg', fractionEvaluate: 0 }));
    assert.deepEqual(
      s.configureEvaluate({ round: 1, available: IDS, state, rng: createSeededRng('x') }).participants,
      [],
    );
  });

  it('rejects a round below 1 for training', () => {
    const s = createStrategy(parseStrategyConfig({ name: 'fedavg' }));
    assert.throws(
      () => s.configureTrain({ round: 0, available: IDS, state, rng: createSeededRng('x') }),
      (e: unknown) => e instanceof EntenteError && e.field === 'round',
    );
  });
});
