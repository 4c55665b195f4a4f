/**
 * A participant's privacy, against its own ledger and budget: what a round would cost its records
 * (planPrivacy), the refusal when its budget does not allow it (enforceBudget), the charge recorded
 * before the update leaves the site (spendPrivacy), and local training with the randomness
 * training-randomness.ts chooses (trainWithPrivateRandomness).
 */
import { appendFileSync } from 'node:fs';
import { EntenteError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { LabeledData } from '../data/index.ts';
import { type Trainer, computeDpStepsPerEpoch, type parseModelSpec } from '../models/index.ts';
import type { PrivacyReport, SecAggTrainTask, TrainTask } from '../protocol/index.ts';
import { type PrivacyEvent, checkPrivacyBudget, computeLedgerEpsilon } from '../privacy/index.ts';
import type { ParticipantContext } from './participant-context.ts';
import { chooseTrainingRandomness } from './training-randomness.ts';

/**
 * Before training: what this round would cost this site's records, and whether its own budget allows
 * it. A round without differential privacy has unbounded ε: a site with a budget refuses it.
 */
export function planPrivacy(
  ctx: ParticipantContext,
  task: {
    runId: string;
    round: number;
    train: TrainTask['train'];
  },
  attempt?: number,
): PrivacyEvent | undefined {
  const dp = task.train.dp;
  const proposed: PrivacyEvent | undefined = dp
    ? {
        run: task.runId,
        round: task.round,
        mechanism: 'subsampled-gaussian',
        noiseMultiplier: dp.noiseMultiplier,
        samplingRate: dp.samplingRate,
        steps: task.train.epochs * computeDpStepsPerEpoch(dp.samplingRate),
        neighbouring: 'add-remove-record',
        ...(attempt === undefined ? {} : { attempt }),
      }
    : undefined;
  return enforceBudget(ctx, proposed);
}

/** Refuses (PRIVACY_BUDGET_EXCEEDED) when this site's own budget does not allow `proposed`. */
export function enforceBudget(
  ctx: ParticipantContext,
  proposed: PrivacyEvent | undefined,
): PrivacyEvent | undefined {
  const budget = ctx.options.privacyBudget;
  if (!budget) return proposed;
  if (!proposed) {
    throw new EntenteError(
      'PRIVACY_BUDGET_EXCEEDED',
      'train.dp: the round has no differential privacy (ε unbounded) and this site has a privacy budget',
      { field: 'train.dp' },
    );
  }
  const verdict = checkPrivacyBudget({ ledger: ctx.ledger.events(), proposed, budget });
  if (!verdict.ok)
    throw new EntenteError('PRIVACY_BUDGET_EXCEEDED', `privacy: ${verdict.reason}`, { field: 'train.dp' });
  return proposed;
}

/** Records the event (before the update leaves the site) and reports what the ledger now says. */
export function spendPrivacy(
  ctx: ParticipantContext,
  event: PrivacyEvent | undefined,
): PrivacyReport | undefined {
  if (!event) return undefined;
  ctx.ledger.append(event);
  const budget = ctx.options.privacyBudget;
  const delta = budget?.perRun?.delta ?? budget?.total?.delta ?? 1e-5;
  const events = ctx.ledger.events();
  return {
    event:
      event.mechanism === 'zcdp'
        ? { mechanism: 'zcdp', rho: event.rho!, neighbouring: event.neighbouring }
        : {
            mechanism: 'subsampled-gaussian',
            noiseMultiplier: event.noiseMultiplier!,
            samplingRate: event.samplingRate!,
            steps: event.steps!,
            neighbouring: event.neighbouring,
          },
    epsilonRun: computeLedgerEpsilon(
      events.filter((e) => e.run === event.run),
      delta,
    ).epsilon,
    epsilonTotal: computeLedgerEpsilon(events, delta).epsilon,
    delta,
  };
}

/**
 * Local training with the randomness training-randomness.ts chooses: reproducible from the task seed
 * only without differential privacy; otherwise from a CSPRNG of this site alone.
 */
export function trainWithPrivateRandomness(
  ctx: ParticipantContext,
  task: TrainTask | SecAggTrainTask,
  spec: ReturnType<typeof parseModelSpec>,
  weights: Tensor[],
  data: LabeledData,
): ReturnType<Trainer['train']> {
  const { options } = ctx;
  const batches: number[][] = [];
  const record = options.batchJournalFile ? (rows: Int32Array) => batches.push([...rows]) : undefined;
  const { rng, sources } = chooseTrainingRandomness(
    { seed: task.seed, train: task.train, clientDp: 'clientDp' in task ? task.clientDp : undefined },
    ctx.secureNoise,
    record,
  );
  const out = ctx.trainer.train(spec, weights, data, { ...task.train }, rng, sources);
  if (options.batchJournalFile && batches.length > 0) {
    const line = {
      run: task.runId,
      round: task.round,
      attempt: 'attempt' in task ? task.attempt : 0,
      seed: task.seed,
      count: data.count,
      batches,
    };
    appendFileSync(options.batchJournalFile, `${JSON.stringify(line)}\n`, { mode: 0o600 });
  }
  return out;
}
