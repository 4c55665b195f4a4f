/**
 * One measurement of a rollout stage: a secure sum of paired outcomes (evaluation/paired-outcomes.ts)
 * over the stage's sites, each scoring the plan's candidate beside its production model on its own
 * labelled rows. The round of a stage is fixed (stage index + 1), so each site unmasks at most one sum
 * per stage: the coordinator cannot measure a stage twice over different cohorts and difference them.
 * Only the total is seen; it becomes the gate's figures (pairedGateFigures).
 */
import {
  type PairedOutcomeFigures,
  createPairedOutcomeLayout,
  finalizePairedOutcomes,
} from '../evaluation/index.ts';
import type { RolloutPlan } from '../governance/index.ts';
import {
  type SecAggSumTask,
  SECURE_SUM_DEFAULTS,
  buildSecureSumContext,
  buildSecureSumWire,
  declarePairedOutcomeSum,
  decodeSecureSum,
  planSecAggCohort,
} from '../protocol/index.ts';
import type { KnownModel } from './evaluation-job-state.ts';
import { ROLLOUT_MAX_ROW_LOSS, type RolloutJobState, type RolloutJobsDeps } from './rollout-job-state.ts';
import { SecAggRound, createSecAggRoundDeps } from './secagg-round.ts';

export type MeasurementOutcome =
  | { readonly ok: true; readonly figures: PairedOutcomeFigures; readonly contributors: string[] }
  | { readonly ok: false; readonly reason: string };

/** The round number of a stage's one measurement. */
export const stageRound = (stage: number): number => stage + 1;

/**
 * Opens the measurement of the running stage over `cohortSites` (its available sites). Returns the
 * round, or undefined when fewer than 3 of them can take part (the stage waits).
 */
export function openMeasurement(input: {
  deps: RolloutJobsDeps;
  job: RolloutJobState;
  plan: RolloutPlan;
  candidate: KnownModel;
  production: KnownModel;
  cohortSites: readonly string[];
  onDone: (outcome: MeasurementOutcome) => void;
}): SecAggRound | undefined {
  const { deps, job, plan, candidate, production } = input;
  const planned = planSecAggCohort({ selected: input.cohortSites, maxParticipants: 1000 });
  if (!planned) return undefined;
  const { cohort, threshold } = planned;
  const spec = { maxRowLoss: ROLLOUT_MAX_ROW_LOSS };
  const declaration = declarePairedOutcomeSum({
    layout: createPairedOutcomeLayout(spec),
    maxRows: SECURE_SUM_DEFAULTS.maxRowsPerSite,
    cohortSize: cohort.length,
  });
  const round = stageRound(job.stage);
  const attempt = job.attempt;
  const stage = plan.stages[job.stage]!.name;
  const secagg = buildSecureSumWire({ consortium: deps.consortium, attempt, cohort, threshold, declaration });
  const task = (taskId: string, issuedAt: number): SecAggSumTask => ({
    taskId,
    runId: job.id,
    round,
    attempt,
    issuedAt,
    kind: 'secagg-sum',
    phase: 'rollout',
    secureSum: { ...declaration, segments: [...declaration.segments] },
    model: candidate.ref,
    modelSpec: candidate.modelSpec,
    ...(candidate.standardization ? { standardization: candidate.standardization } : {}),
    rollout: { digest: job.rollout, stage },
    production: {
      model: production.ref,
      modelSpec: production.modelSpec,
      ...(production.standardization ? { standardization: production.standardization } : {}),
    },
    paired: spec,
    ...(candidate.dataSchemaDigest ? { dataSchemaDigest: candidate.dataSchemaDigest } : {}),
    secagg,
  });
  const context = buildSecureSumContext(task('context', 0));
  const sumRound: SecAggRound = new SecAggRound({
    deps: createSecAggRoundDeps(deps, (kind, participant, code, message) =>
      deps.log.info({ rollout: job.id, kind, participant, code }, message),
    ),
    context,
    phase: 'rollout',
    pinnedKeyOf: deps.pinnedKeyOf,
    firstStageTimeoutMs: deps.firstStageTimeoutMs ?? 120_000,
    stageTimeoutMs: deps.stageTimeoutMs ?? 30_000,
    firstTask: (_participant, taskId, issuedAt) => task(taskId, issuedAt),
    onDone: (outcome) => {
      if (!outcome.ok) {
        input.onDone({ ok: false, reason: outcome.reason });
        return;
      }
      try {
        const values = decodeSecureSum(declaration, outcome.sum, outcome.survivors.length, threshold);
        input.onDone({
          ok: true,
          figures: finalizePairedOutcomes(spec, values),
          contributors: [...outcome.survivors].sort(),
        });
      } catch (err) {
        input.onDone({ ok: false, reason: `the unmasked sum was refused: ${(err as Error).message}` });
      }
    },
  });
  deps.store.insertSecAggAttempt({
    run_id: job.id,
    round,
    attempt,
    phase: 'rollout',
    started_at: deps.now(),
    cohort_json: JSON.stringify(cohort),
    threshold,
    ring_bits: 64,
    session_id: null,
    survivors_json: null,
    dropped_json: null,
    outcome: 'running',
    reason: null,
    finished_at: null,
  });
  deps.log.info({ rollout: job.id, stage, attempt, cohort }, 'rollout stage measurement opened');
  sumRound.start();
  return sumRound;
}
