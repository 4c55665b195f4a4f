/**
 * What a site's records look like under its data schema (encoded feature count, label classes), as the
 * site declares it when it registers, and the one rule checking a model against it: the coordinator
 * refuses a run no declared site could execute, and a site refuses a task whose model does not fit its
 * records (both INVALID_CONFIG naming the field and the site).
 */
import { EntenteError } from '../core/errors.ts';
import { type ModelSpec, countClasses } from '../models/index.ts';

export interface DataShape {
  /** Encoded feature columns (the model's inputDim must equal it). */
  readonly features: number;
  /** Label classes of the schema (the model's class count must equal it); 0 for a regression target. */
  readonly classes: number;
}

/** Throws INVALID_CONFIG (field model.inputDim or model.numClasses) when `spec` cannot run on `shape`. */
export function checkModelFitsData(spec: ModelSpec, shape: DataShape, site: string): void {
  if (spec.inputDim !== shape.features)
    throw new EntenteError(
      'INVALID_CONFIG',
      `model.inputDim: ${spec.inputDim}, but site ${site} declared ${shape.features} features`,
      { field: 'model.inputDim' },
    );
  if ((spec.kind === 'linear') !== (shape.classes === 0))
    throw new EntenteError(
      'INVALID_CONFIG',
      spec.kind === 'linear'
        ? `model.kind: linear needs a number (regression) label, but site ${site} declared ${shape.classes} classes`
        : `model.kind: site ${site}'s label is a number (regression target): use a linear model`,
      { field: 'model.kind' },
    );
  if (spec.kind === 'linear') return;
  const classes = countClasses(spec);
  if (classes !== shape.classes)
    throw new EntenteError(
      'INVALID_CONFIG',
      spec.kind === 'logistic'
        ? `model.kind: logistic has 2 classes, but site ${site} declared ${shape.classes} (use softmax with numClasses ${shape.classes})`
        : `model.numClasses: ${classes}, but site ${site} declared ${shape.classes} classes`,
      { field: spec.kind === 'logistic' ? 'model.kind' : 'model.numClasses' },
    );
}
