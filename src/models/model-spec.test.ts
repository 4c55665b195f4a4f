import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { countParameters } from '../core/tensor.ts';
import { createModelWorkspace } from './dense-network.ts';
import { describeLayout, type ModelSpec, parseModelSpec } from './model-spec.ts';

function assertConfigError(input: unknown, field: string): void {
  assert.throws(
    () => parseModelSpec(input),
    (e: unknown) =>
      e instanceof EntenteError &&
      e.code === 'INVALID_CONFIG' &&
      e.field === field &&
      e.message.includes(field),
  );
}

describe('parseModelSpec', () => {
  it('accepts each kind and returns a frozen copy', () => {
    const input = { kind: 'mlp', inputDim: 4, numClasses: 3, hidden: [8, 5], activation: 'tanh' };
    const spec = parseModelSpec(input);
    assert.deepEqual(spec, input);
    assert.notEqual(spec, input);
    assert.ok(Object.isFrozen(spec));
    assert.ok(spec.kind === 'mlp' && Object.isFrozen(spec.hidden));
    assert.deepEqual(parseModelSpec({ kind: 'logistic', inputDim: 1 }), { kind: 'logistic', inputDim: 1 });
    assert.deepEqual(parseModelSpec({ kind: 'softmax', inputDim: 2, numClasses: 2 }), {
      kind: 'softmax',
      inputDim: 2,
      numClasses: 2,
    });
  });

  it('names the offending field', () => {
    assertConfigError(42, 'modelSpec');
    assertConfigError({ kind: 'cnn', inputDim: 3 }, 'modelSpec.kind');
    assertConfigError({ inputDim: 3 }, 'modelSpec.kind');
    assertConfigError({ kind: 'logistic', inputDim: 0 }, 'modelSpec.inputDim');
    assertConfigError({ kind: 'logistic', inputDim: 2.5 }, 'modelSpec.inputDim');
    assertConfigError({ kind: 'logistic', inputDim: 2, numClasses: 2 }, 'modelSpec.numClasses');
    assertConfigError({ kind: 'softmax', inputDim: 2, numClasses: 1 }, 'modelSpec.numClasses');
    assertConfigError({ kind: 'softmax', inputDim: 2 }, 'modelSpec.numClasses');
    const mlp = { kind: 'mlp', inputDim: 2, numClasses: 2, hidden: [4], activation: 'relu' };
    assertConfigError({ ...mlp, hidden: [] }, 'modelSpec.hidden');
    assertConfigError({ ...mlp, hidden: [4, 4, 4] }, 'modelSpec.hidden');
    assertConfigError({ ...mlp, hidden: [4, 0] }, 'modelSpec.hidden.1');
    assertConfigError({ ...mlp, activation: 'sigmoid' }, 'modelSpec.activation');
    assertConfigError({ ...mlp, inputDim: 1 << 20, hidden: [1 << 16] }, 'modelSpec.hidden');
  });
});

describe('describeLayout', () => {
  it('lists dense layers as [out, in] weights then [out] biases', () => {
    assert.deepEqual(describeLayout({ kind: 'logistic', inputDim: 5 }), [
      { name: 'dense0.weight', shape: [1, 5] },
      { name: 'dense0.bias', shape: [1] },
    ]);
    assert.deepEqual(describeLayout({ kind: 'softmax', inputDim: 5, numClasses: 3 }), [
      { name: 'dense0.weight', shape: [3, 5] },
      { name: 'dense0.bias', shape: [3] },
    ]);
    assert.deepEqual(
      describeLayout({ kind: 'mlp', inputDim: 5, numClasses: 3, hidden: [7, 6], activation: 'relu' }),
      [
        { name: 'dense0.weight', shape: [7, 5] },
        { name: 'dense0.bias', shape: [7] },
        { name: 'dense1.weight', shape: [6, 7] },
        { name: 'dense1.bias', shape: [6] },
        { name: 'dense2.weight', shape: [3, 6] },
        { name: 'dense2.bias', shape: [3] },
      ],
    );
  });

  it('agrees with the flat parameter count of the workspace', () => {
    const specArb: fc.Arbitrary<ModelSpec> = fc.oneof(
      fc.record({ kind: fc.constant('logistic' as const), inputDim: fc.integer({ min: 1, max: 50 }) }),
      fc.record({
        kind: fc.constant('mlp' as const),
        inputDim: fc.integer({ min: 1, max: 50 }),
        numClasses: fc.integer({ min: 2, max: 10 }),
        hidden: fc.oneof(
          fc.tuple(fc.integer({ min: 1, max: 20 })),
          fc.tuple(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 })),
        ),
        activation: fc.constantFrom('relu' as const, 'tanh' as const),
      }),
    );
    fc.assert(
      fc.property(specArb, (spec) => {
        assert.equal(createModelWorkspace(spec).parameterCount, countParameters(describeLayout(spec)));
      }),
      { numRuns: 50 },
    );
  });
});
