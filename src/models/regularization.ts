/**
 * The data-independent terms of the local objective:
 *   L2 weight decay         (l2/2) · ||w||²            gradient l2 · w
 *   FedProx proximal term   (mu/2) · ||w − w_global||²  gradient mu · (w − w_global)
 * (Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020, eq. (2)). Both apply to
 * every parameter, biases included, so the gradient of the full objective is the data gradient plus
 * these terms whichever way the data gradient was formed (minibatch mean or clipped-and-noised sum).
 */
import { EntenteError } from '../core/errors.ts';

export interface RegularizationTerms {
  /** L2 coefficient, >= 0 (0 = none). */
  readonly l2: number;
  /** FedProx coefficient mu, >= 0 (0 = none). */
  readonly proximalMu: number;
  /** w_global: the weights local training started from (flat, layout order). Needed when proximalMu > 0. */
  readonly anchor: Float32Array | undefined;
}

/**
 * Adds the gradients of the terms at `params` into `gradient` (in place) and returns the value of the
 * terms. Throws EntenteError('INVALID_ARGUMENT') on a negative coefficient or a length mismatch.
 */
export function applyRegularization(
  params: Float32Array,
  terms: RegularizationTerms,
  gradient: Float32Array,
): number {
  const { l2, proximalMu, anchor } = terms;
  if (!(l2 >= 0 && Number.isFinite(l2))) throw invalid('l2', 'must be a finite number >= 0');
  if (!(proximalMu >= 0 && Number.isFinite(proximalMu))) {
    throw invalid('proximalMu', 'must be a finite number >= 0');
  }
  if (gradient.length !== params.length) throw invalid('gradient', 'must have the length of params');
  const n = params.length;
  let value = 0;
  if (l2 > 0) {
    let sq = 0;
    for (let k = 0; k < n; k++) {
      const w = params[k]!;
      sq += w * w;
      gradient[k] = gradient[k]! + l2 * w;
    }
    value += 0.5 * l2 * sq;
  }
  if (proximalMu > 0) {
    if (anchor === undefined || anchor.length !== n) {
      throw invalid('anchor', 'must be given, with the length of params, when proximalMu > 0');
    }
    let sq = 0;
    for (let k = 0; k < n; k++) {
      const diff = params[k]! - anchor[k]!;
      sq += diff * diff;
      gradient[k] = gradient[k]! + proximalMu * diff;
    }
    value += 0.5 * proximalMu * sq;
  }
  return value;
}

function invalid(field: string, message: string): EntenteError {
  return new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}
