/**
 * The randomness of a local training call. A task's seed (run seed, round, attempt, institution) is
 * public: every part is in the audit log. So it may only drive draws nobody needs to keep secret: with
 * no differential privacy, the shuffling of a training run reproducible from its seed. With any
 * differential privacy on (DP-SGD in `train.dp`, client-level DP in `clientDp`) every draw of the
 * training call comes from a fresh CSPRNG that no other party can seed (crypto/secure-rng.ts): DP-SGD's
 * Poisson batches (the subsampling amplification the ledger counts holds only if the coordinator cannot
 * know which rows were sampled; it knows the row count from the statistics phase), and the training
 * order. Noise always comes from the injected secure noise source.
 */
import type { Rng } from '../core/rng.ts';
import { createSecureRng, createSeededRng } from '../crypto/index.ts';
import type { DpNoiseSource, TrainSources } from '../models/index.ts';

export interface TrainingRandomness {
  /** The trainer's Rng argument. */
  readonly rng: Rng;
  /** Noise, and with DP-SGD the Poisson sampling source. */
  readonly sources: TrainSources;
  /** True when the call is reproducible from `task.seed` (no differential privacy). */
  readonly reproducible: boolean;
}

/**
 * Chooses the randomness of a training task: seeded from `task.seed` only without differential
 * privacy; otherwise a fresh CSPRNG for every call. `onDpBatch` is test instrumentation (see
 * `TrainSources.onDpBatch`).
 */
export function chooseTrainingRandomness(
  task: { readonly seed: string; readonly train: { readonly dp?: unknown }; readonly clientDp?: unknown },
  noise: DpNoiseSource,
  onDpBatch?: (rows: Int32Array) => void,
): TrainingRandomness {
  const private_ = task.train.dp !== undefined || (task.clientDp !== undefined && task.clientDp !== null);
  if (!private_) return { rng: createSeededRng(task.seed), sources: { noise }, reproducible: true };
  const secure = createSecureRng();
  return {
    rng: secure,
    sources: { noise, sampling: secure, ...(onDpBatch ? { onDpBatch } : {}) },
    reproducible: false,
  };
}
