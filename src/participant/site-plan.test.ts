import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { answerPlan } from './site-plan.ts';

const config = {
  id: 'r',
  model: { kind: 'logistic', inputDim: 30 },
  strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
  rounds: 1,
  minParticipants: 3,
  train: {},
};
const answer = (inputDim: number) =>
  answerPlan({
    institution: 'alpha',
    config: { ...config, model: { kind: 'logistic', inputDim } },
    cohortSize: 3,
    ledger: [],
    trainerId: 'builtin',
    dataShape: { features: 30, classes: 2 },
  });

describe("a site's answer to a dry run: the model against its records", () => {
  it('accepts a model that fits', () => {
    const a = answer(30);
    assert.ok(a.reasons.some((r) => r.check === 'model' && r.ok));
    assert.ok(!a.reasons.some((r) => r.check.startsWith('model') && !r.ok));
  });

  it('says no-go for a wrong inputDim, naming the field and the site', () => {
    const a = answer(31);
    assert.equal(a.go, false);
    const bad = a.reasons.find((r) => r.check.startsWith('model'));
    assert.equal(bad?.check, 'model.inputDim');
    assert.equal(bad?.message, 'alpha: model.inputDim: 31, but site alpha declared 30 features');
  });
});
