/**
 * A rollout stage's gate, decided and logged in one transaction with what follows from it: a failed
 * gate rolls the rollout back (`rollout-rolled-back`, cause gate); a passed gate advances to the next
 * stage (`rollout-advanced`) or, after the last, completes the rollout (`rollout-completed`) and moves
 * the plan's alias to the candidate (`alias-moved`, naming the approve-rollout proposal) when the alias
 * still points where the plan found it; an undetermined gate leaves the stage waiting. The gate entry
 * carries the time its decision was made at, so `audit verify` recomputes the same outcome.
 */
import {
  type RolloutFigures,
  type RolloutPlan,
  decideRolloutGate,
  rolloutAlias,
} from '../governance/index.ts';
import type { RolloutJobState, RolloutJobsDeps } from './rollout-job-state.ts';

export function logGateDecision(
  deps: RolloutJobsDeps,
  job: RolloutJobState,
  plan: RolloutPlan,
  input: { stageName: string; rows: number; figures: RolloutFigures; contributors: string[] },
  save: () => void,
): { outcome: 'pass' | 'fail' | 'undetermined'; last: boolean } {
  const stage = plan.stages[job.stage]!;
  const at = deps.now();
  const decision = decideRolloutGate(plan, job.stage, {
    rows: input.rows,
    figures: input.figures,
    elapsedMs: at - job.started!.at,
    evaluationOutcome:
      stage.gate.evaluationPlan === undefined ? undefined : deps.evaluationOutcome(stage.gate.evaluationPlan),
  });
  const last = job.stage === plan.stages.length - 1;
  deps.store.transaction(() => {
    const logIndex = deps.audit.append(
      'rollout-gate',
      {
        rollout: job.rollout,
        stage: stage.name,
        outcome: decision.outcome,
        rows: input.rows,
        figures: input.figures,
      },
      at,
    );
    job.gates.push({
      stage: input.stageName,
      outcome: decision.outcome,
      rows: input.rows,
      figures: input.figures,
      contributors: input.contributors,
      logIndex,
    });
    if (decision.outcome === 'fail') {
      const i = deps.audit.append('rollout-rolled-back', {
        rollout: job.rollout,
        stage: stage.name,
        cause: 'gate',
      });
      job.status = 'rolled back';
      job.rolledBack = { cause: 'gate', logIndex: i };
      job.finishedAt = at;
    } else if (decision.outcome === 'undetermined') {
      job.status = 'undetermined';
    } else if (last) {
      completeRollout(deps, job, plan, at);
    } else {
      deps.audit.append('rollout-advanced', {
        rollout: job.rollout,
        from: stage.name,
        to: plan.stages[job.stage + 1]!.name,
      });
      job.stage += 1;
      job.status = 'running';
    }
    save();
  });
  deps.log.info(
    {
      rollout: job.id,
      stage: stage.name,
      outcome: decision.outcome,
      rows: input.rows,
      reason: decision.reason,
    },
    'rollout gate decided',
  );
  return { outcome: decision.outcome, last };
}

/** In the gate's transaction: the completion and the alias move (when the alias is still where the plan found it). */
function completeRollout(deps: RolloutJobsDeps, job: RolloutJobState, plan: RolloutPlan, at: number): void {
  const logIndex = deps.audit.append('rollout-completed', { rollout: job.rollout, version: plan.candidate });
  const alias = rolloutAlias(plan);
  const current = deps.store.getMeta(`alias:${alias}`) ?? null;
  const movable = current === plan.production;
  if (movable) {
    deps.audit.append('alias-moved', {
      alias,
      version: plan.candidate,
      previous: plan.production,
      proposal: job.proposal,
    });
    deps.store.setMeta(`alias:${alias}`, plan.candidate);
  } else
    deps.log.warn(
      { rollout: job.id, alias },
      'rollout completed but its alias was moved meanwhile: not moved again',
    );
  job.status = 'completed';
  job.completed = { logIndex, aliasMoved: movable };
  job.finishedAt = at;
}
