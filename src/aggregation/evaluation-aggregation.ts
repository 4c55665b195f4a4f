/**
 * Federated evaluation: participants evaluate the global model on their own held-out data and report
 * (examples, loss, accuracy); the round's figures are the example-weighted means, i.e. what one
 * evaluation over the union of their data would have given (Flower's weighted average of
 * evaluate results). A non-finite or out-of-range report is rejected, never silently dropped.
 */
import { EntenteError } from '../core/errors.ts';

export interface EvaluationResult {
  readonly participant: string;
  /** Number of examples evaluated; a positive integer. */
  readonly numExamples: number;
  /** Mean loss over those examples; finite. */
  readonly loss: number;
  /** Fraction correct over those examples, in [0, 1]. */
  readonly accuracy: number;
}

export interface EvaluationSummary {
  readonly loss: number;
  readonly accuracy: number;
  readonly numExamples: number;
}

/**
 * Example-weighted mean loss and accuracy. Throws INVALID_ARGUMENT when `results` is empty or an
 * entry is invalid (the message names the participant and field), DUPLICATE_RESULT when a
 * participant reports twice.
 */
export function aggregateEvaluationResults(results: readonly EvaluationResult[]): EvaluationSummary {
  if (results.length === 0) {
    throw new EntenteError('INVALID_ARGUMENT', 'results: no evaluation results to aggregate', {
      field: 'results',
    });
  }
  const seen = new Set<string>();
  let examples = 0;
  let lossSum = 0;
  let accuracySum = 0;
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    const who = `results[${i}] (participant "${r.participant}")`;
    if (typeof r.participant !== 'string' || r.participant === '') {
      throw new EntenteError('INVALID_ARGUMENT', `results[${i}].participant must be a non-empty string`, {
        field: `results[${i}].participant`,
      });
    }
    if (seen.has(r.participant)) {
      throw new EntenteError('DUPLICATE_RESULT', `${who}: a second evaluation result for this participant`, {
        field: `results[${i}].participant`,
      });
    }
    seen.add(r.participant);
    if (!Number.isSafeInteger(r.numExamples) || r.numExamples <= 0) {
      throw new EntenteError('INVALID_ARGUMENT', `${who}: numExamples must be a positive integer`, {
        field: `results[${i}].numExamples`,
      });
    }
    if (!Number.isFinite(r.loss)) {
      throw new EntenteError('INVALID_ARGUMENT', `${who}: loss must be finite`, {
        field: `results[${i}].loss`,
      });
    }
    if (!(Number.isFinite(r.accuracy) && r.accuracy >= 0 && r.accuracy <= 1)) {
      throw new EntenteError('INVALID_ARGUMENT', `${who}: accuracy must be a number in [0, 1]`, {
        field: `results[${i}].accuracy`,
      });
    }
    examples += r.numExamples;
    lossSum += r.numExamples * r.loss;
    accuracySum += r.numExamples * r.accuracy;
  }
  if (!Number.isFinite(lossSum)) {
    throw new EntenteError('INVALID_ARGUMENT', 'results: the weighted loss overflows', { field: 'results' });
  }
  return { loss: lossSum / examples, accuracy: accuracySum / examples, numExamples: examples };
}
