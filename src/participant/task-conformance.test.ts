import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { type Task, computeUpdateNoiseMultiplier, parseRunConfig } from '../protocol/index.ts';
import { checkTaskConformance } from './task-conformance.ts';

const base = {
  id: 'r1',
  model: { kind: 'logistic', inputDim: 30 },
  strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
  rounds: 3,
  minParticipants: 3,
  train: {
    epochs: 2,
    batchSize: 16,
    learningRate: 0.1,
    optimizer: 'sgd',
  },
  dataSchemaDigest: 'ab'.repeat(32),
  secureAggregation: { protocol: 'secagg', threshold: 3 },
  clientDp: { clipNorm: 0.5, noiseMultiplier: 2 },
};
const config = parseRunConfig(base);
/** The same run with sample-level DP-SGD instead of client-level DP. */
const { clientDp: _omit, ...withoutClientDp } = base;
const dpConfig = parseRunConfig({
  ...withoutClientDp,
  train: { ...base.train, dp: { clipNorm: 1, noiseMultiplier: 1.2, samplingRate: 0.05 } },
});

/** A secagg-train task as the run engine builds it from `config`. */
function task(change: (t: Record<string, unknown>) => void = () => {}): Task {
  const t: Record<string, unknown> = {
    kind: 'secagg-train',
    round: 1,
    attempt: 0,
    modelSpec: config.model,
    train: { ...config.train, proximalMu: 0 },
    dataSchemaDigest: config.dataSchemaDigest,
    clientDp: { clipNorm: 0.5, noiseMultiplier: computeUpdateNoiseMultiplier(config.clientDp!) },
    secagg: { threshold: 3 },
  };
  change(t);
  return t as unknown as Task;
}

const refusedAt = (t: Task, approved = config): string | undefined => {
  try {
    checkTaskConformance(t, approved);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof EntenteError && err.code === 'PROTOCOL_VIOLATION', String(err));
    assert.match(err.message, /than the run the quorum approved/);
    return err.field;
  }
};

describe('checkTaskConformance', () => {
  it('accepts the task the run engine builds from the approved configuration', () => {
    assert.equal(refusedAt(task()), undefined);
  });

  it('refuses each setting that differs from the approved run, naming it', () => {
    const cases: [string, (t: Record<string, unknown>) => void][] = [
      ['modelSpec', (t) => (t.modelSpec = { kind: 'logistic', inputDim: 29 })],
      ['kind', (t) => (t.kind = 'train')],
      [
        'train.dp',
        (t) =>
          (t.train = {
            ...(t.train as object),
            dp: { clipNorm: 1, noiseMultiplier: 0.1, samplingRate: 0.05 },
          }),
      ],
      ['train.epochs', (t) => (t.train = { ...(t.train as object), epochs: 50 })],
      ['dataSchemaDigest', (t) => (t.dataSchemaDigest = 'cd'.repeat(32))],
      ['clientDp', (t) => (t.clientDp = undefined)],
      ['clientDp.noiseMultiplier', (t) => (t.clientDp = { clipNorm: 0.5, noiseMultiplier: 0.5 })],
      ['clientDp.clipNorm', (t) => (t.clientDp = { clipNorm: 5, noiseMultiplier: 2 })],
      ['secagg.threshold', (t) => (t.secagg = { threshold: 4 })],
      ['attempt', (t) => (t.attempt = 3)],
    ];
    for (const [field, change] of cases) assert.equal(refusedAt(task(change)), field, field);
  });

  it('accepts attempts up to maxAttemptsPerRound (default 3) and refuses the next', () => {
    assert.equal(config.maxAttemptsPerRound, 3);
    for (const attempt of [0, 1, 2]) assert.equal(refusedAt(task((t) => (t.attempt = attempt))), undefined);
    assert.equal(refusedAt(task((t) => (t.attempt = 3))), 'attempt');
    const one = parseRunConfig({ ...base, maxAttemptsPerRound: 1 });
    assert.equal(
      refusedAt(
        task((t) => (t.attempt = 1)),
        one,
      ),
      'attempt',
    );
  });

  it('refuses DP-SGD with less noise, or none, than approved', () => {
    const dpTask = (dp: unknown): Task =>
      task((t) => {
        t.train = { ...dpConfig.train, proximalMu: 0, dp };
        t.clientDp = undefined;
      });
    assert.equal(refusedAt(dpTask(dpConfig.train.dp), dpConfig), undefined);
    assert.equal(refusedAt(dpTask({ ...dpConfig.train.dp, noiseMultiplier: 0.3 }), dpConfig), 'train.dp');
    assert.equal(refusedAt(dpTask(undefined), dpConfig), 'train.dp');
  });

  it('checks the model of an evaluation task and ignores other task kinds', () => {
    const evaluate = { kind: 'evaluate', modelSpec: config.model } as unknown as Task;
    assert.equal(refusedAt(evaluate), undefined);
    assert.equal(refusedAt({ ...evaluate, modelSpec: { kind: 'mlp' } } as unknown as Task), 'modelSpec');
    assert.equal(refusedAt({ kind: 'statistics' } as unknown as Task), undefined);
  });
});
