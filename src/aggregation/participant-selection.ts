/**
 * Which participants take part in a round: a uniformly random subset of the available ones, of size
 * max(minimum, ⌊fraction·available⌋) (Flower's rule for fraction_train / min_train_nodes). The draw
 * is a partial Fisher–Yates shuffle over the ids sorted first, so the same ids, sizes and rng seed
 * give the same selection whatever order the transport listed them in.
 */
import { EntenteError } from '../core/errors.ts';
import { nextInt, type Rng } from '../core/rng.ts';

export interface SelectionInput {
  readonly available: readonly string[];
  /** Fraction of the available participants to select, in [0, 1]; 0 selects nobody. */
  readonly fraction: number;
  /** Select at least this many (all of them when fewer are available). */
  readonly minimum: number;
  readonly rng: Rng;
}

/**
 * How many of `availableCount` participants to select. A tiny tolerance keeps ⌊0.29·100⌋ at 29
 * despite binary floating point (0.29·100 = 28.999999999999996).
 */
export function computeSelectionSize(availableCount: number, fraction: number, minimum: number): number {
  if (fraction === 0) return 0;
  const wanted = Math.max(minimum, Math.floor(fraction * availableCount + 1e-9), 1);
  return Math.min(wanted, availableCount);
}

/**
 * Returns the selected ids, sorted. If fewer than `minimum` are available, returns them all: the
 * coordinator decides whether to wait for more.
 * Throws INVALID_ARGUMENT when `available` has an empty or duplicate id, or fraction/minimum are invalid.
 */
export function selectParticipants({ available, fraction, minimum, rng }: SelectionInput): string[] {
  if (!(fraction >= 0 && fraction <= 1)) {
    throw new EntenteError('INVALID_ARGUMENT', 'fraction must be in [0, 1]', { field: 'fraction' });
  }
  if (!Number.isInteger(minimum) || minimum < 0) {
    throw new EntenteError('INVALID_ARGUMENT', 'minimum must be a non-negative integer', {
      field: 'minimum',
    });
  }
  const ids = [...available].sort();
  for (let i = 0; i < ids.length; i++) {
    if (typeof ids[i] !== 'string' || ids[i] === '') {
      throw new EntenteError('INVALID_ARGUMENT', 'available: participant ids must be non-empty strings', {
        field: 'available',
      });
    }
    if (i > 0 && ids[i] === ids[i - 1]) {
      throw new EntenteError('INVALID_ARGUMENT', `available: participant "${ids[i]}" is listed twice`, {
        field: 'available',
      });
    }
  }
  const size = computeSelectionSize(ids.length, fraction, minimum);
  if (size === ids.length) return ids;
  for (let i = 0; i < size; i++) {
    const j = i + nextInt(rng, ids.length - i);
    const tmp = ids[i]!;
    ids[i] = ids[j]!;
    ids[j] = tmp;
  }
  return ids.slice(0, size).sort();
}
