import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { parseModelSpec } from '../models/index.ts';
import { checkModelFitsData } from './data-shape.ts';

const refused = (spec: unknown, features: number, classes: number): EntenteError => {
  try {
    checkModelFitsData(parseModelSpec(spec), { features, classes }, 'alpha');
  } catch (err) {
    assert.ok(err instanceof EntenteError);
    return err;
  }
  assert.fail('accepted');
};

describe('a model against the records a site declared', () => {
  it('accepts a model that fits', () => {
    checkModelFitsData(parseModelSpec({ kind: 'logistic', inputDim: 30 }), { features: 30, classes: 2 }, 'a');
    checkModelFitsData(
      parseModelSpec({ kind: 'softmax', inputDim: 4, numClasses: 3 }),
      { features: 4, classes: 3 },
      'a',
    );
  });

  it('refuses a wrong inputDim, naming the field and the site', () => {
    const err = refused({ kind: 'logistic', inputDim: 31 }, 30, 2);
    assert.equal(err.code, 'INVALID_CONFIG');
    assert.equal(err.field, 'model.inputDim');
    assert.equal(err.message, 'model.inputDim: 31, but site alpha declared 30 features');
  });

  it('refuses a wrong class count (softmax) and a binary model for more classes (logistic)', () => {
    const softmax = refused({ kind: 'softmax', inputDim: 30, numClasses: 3 }, 30, 2);
    assert.equal(softmax.field, 'model.numClasses');
    assert.match(softmax.message, /model\.numClasses: 3, but site alpha declared 2 classes/);
    const logistic = refused({ kind: 'logistic', inputDim: 30 }, 30, 3);
    assert.equal(logistic.field, 'model.kind');
    assert.match(logistic.message, /logistic has 2 classes, but site alpha declared 3/);
  });

  it('fits a linear model only to a regression target (0 classes), and a classifier only to classes', () => {
    checkModelFitsData(parseModelSpec({ kind: 'linear', inputDim: 10 }), { features: 10, classes: 0 }, 'a');
    const linear = refused({ kind: 'linear', inputDim: 30 }, 30, 2);
    assert.equal(linear.field, 'model.kind');
    assert.match(
      linear.message,
      /linear needs a number \(regression\) label, but site alpha declared 2 classes/,
    );
    const classifier = refused({ kind: 'logistic', inputDim: 30 }, 30, 0);
    assert.equal(classifier.field, 'model.kind');
    assert.match(classifier.message, /label is a number \(regression target\): use a linear model/);
  });
});
