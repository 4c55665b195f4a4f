import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import {
  type EvaluationMetrics,
  createEvaluationLayout,
  finalizeEvaluation,
  parseEvaluationSpec,
} from '../evaluation/index.ts';
import {
  type BlindOpening,
  type EvaluationPlan,
  buildEvaluationDecisionBody,
  buildEvaluationResultBody,
  buildEvaluationUnblindedBody,
  decisionValuesOf,
  headlineFigures,
} from '../governance/index.ts';
import {
  type SecAggSumTask,
  type TaskResult,
  SECURE_SUM_DEFAULTS,
  buildSecureSumContext,
  buildSecureSumWire,
  decodeSecureSum,
  declareEvaluationSum,
  planSecAggCohort,
} from '../protocol/index.ts';
import { buildRevealTask, checkRevealedSums, summarizePerSite } from './evaluation-reveal.ts';
import { SecAggRound, createSecAggRoundDeps } from './secagg-round.ts';

/** Secure-sum attempts per label before the job fails. */
import type { JobState, JobsContext } from './evaluation-job-state.ts';

/** Opens the secure sum of the next label over the available sites. */
export function openJobRound(ctx: JobsContext, job: JobState): void {
  const plan = ctx.deps.approvedPlan(job.plan);
  const opening = job.openings[job.next];
  if (!plan || !opening) {
    ctx.fail(job, 'the plan is no longer approved or has no such label');
    return;
  }
  const model = ctx.deps.knownModel(opening.sha256);
  if (!model) {
    ctx.fail(job, `model ${opening.label} is no longer held by the coordinator`);
    return;
  }
  const planned = planSecAggCohort({ selected: ctx.deps.available(), maxParticipants: 1000 });
  if (!planned) return; // fewer than 3 sites: wait
  const { cohort, threshold } = planned;
  const spec = parseEvaluationSpec(plan.evaluation);
  const declaration = declareEvaluationSum({
    layout: createEvaluationLayout(spec),
    maxRows: SECURE_SUM_DEFAULTS.maxRowsPerSite,
    cohortSize: cohort.length,
  });
  const round = job.next + 1;
  const attempt = job.attempt;
  const secagg = buildSecureSumWire({
    consortium: ctx.deps.consortium,
    attempt,
    cohort,
    threshold,
    declaration,
  });
  const task = (taskId: string, issuedAt: number): SecAggSumTask => ({
    taskId,
    runId: job.id,
    round,
    attempt,
    issuedAt,
    kind: 'secagg-sum',
    phase: 'evaluate',
    secureSum: { ...declaration, segments: [...declaration.segments] },
    model: model.ref,
    modelSpec: model.modelSpec,
    evaluation: spec,
    plan: { digest: job.plan, label: opening.label },
    ...(model.standardization ? { standardization: model.standardization } : {}),
    ...(plan.dataSchemaDigest ? { dataSchemaDigest: plan.dataSchemaDigest } : {}),
    secagg,
  });
  const context = buildSecureSumContext(task('context', 0));
  const sumRound: SecAggRound = new SecAggRound({
    deps: createSecAggRoundDeps(ctx.deps, (kind, participant, code, message) =>
      ctx.deps.log.info({ job: job.id, kind, participant, code }, message),
    ),
    context,
    phase: 'evaluate',
    pinnedKeyOf: ctx.deps.pinnedKeyOf,
    firstStageTimeoutMs: ctx.deps.firstStageTimeoutMs ?? 120_000,
    stageTimeoutMs: ctx.deps.stageTimeoutMs ?? 30_000,
    firstTask: (_participant, taskId, issuedAt) => task(taskId, issuedAt),
    onDone: (outcome) => {
      if (ctx.rounds.get(job.id) !== sumRound) return;
      ctx.rounds.delete(job.id);
      if (!outcome.ok) {
        ctx.abortRound(job, outcome.reason);
        return;
      }
      let metrics: EvaluationMetrics;
      let values: Float64Array;
      try {
        values = decodeSecureSum(declaration, outcome.sum, outcome.survivors.length, threshold);
        metrics = finalizeEvaluation(createEvaluationLayout(spec), values);
      } catch (err) {
        ctx.abortRound(job, `the unmasked sum was refused: ${(err as Error).message}`);
        return;
      }
      recordResult(ctx, job, plan, opening, metrics, outcome.survivors, values, {
        model: model.ref,
        modelSpec: model.modelSpec,
        evaluation: spec,
        ...(model.standardization ? { standardization: model.standardization } : {}),
        ...(plan.dataSchemaDigest ? { dataSchemaDigest: plan.dataSchemaDigest } : {}),
      });
    },
  });
  ctx.rounds.set(job.id, sumRound);
  ctx.deps.store.insertSecAggAttempt({
    run_id: job.id,
    round,
    attempt,
    phase: 'evaluate',
    started_at: ctx.deps.now(),
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
  ctx.deps.log.info(
    { job: job.id, label: opening.label, attempt, cohort },
    'secure evaluation of a blinded model opened',
  );
  sumRound.start();
}

/** Logs one label's result; after the last, the unblinding and the decision. */
export function recordResult(
  ctx: JobsContext,
  job: JobState,
  plan: EvaluationPlan,
  opening: BlindOpening,
  metrics: EvaluationMetrics,
  survivors: string[],
  values: Float64Array,
  revealBase: Parameters<typeof buildRevealTask>[0]['base'],
): void {
  const figures = headlineFigures(plan, metrics as unknown as Parameters<typeof headlineFigures>[1]);
  const reveal = plan.perSite === true && ctx.deps.perSiteAllowed?.() === true;
  const now = ctx.deps.now();
  ctx.deps.store.transaction(() => {
    ctx.deps.store.finishSecAggAttempt(
      { run_id: job.id, round: job.next + 1, attempt: job.attempt, phase: 'evaluate' },
      {
        session_id: null,
        survivors_json: JSON.stringify(survivors),
        dropped_json: null,
        outcome: 'completed',
        reason: null,
        finished_at: now,
      },
    );
    const logIndex = ctx.deps.audit.append(
      'evaluation-result',
      buildEvaluationResultBody({
        planDigest: job.plan,
        label: opening.label,
        metrics: figures.metrics,
        sliceMetrics: figures.sliceMetrics,
        metricsSha256: sha256Hex(Buffer.from(canonicalizeJson(metrics as unknown), 'utf8')),
        rows: metrics.overall.rows,
        protocol: 'secagg',
      }),
    );
    job.results.push({
      label: opening.label,
      rows: metrics.overall.rows,
      contributors: survivors,
      metrics,
      logIndex,
      ...(reveal ? { values: Array.from(values) } : {}),
    });
    if (reveal) {
      // The plan, the policy and (each answering) site consent: ask the survivors for their own sums.
      job.reveal = {
        round: job.next + 1,
        label: opening.label,
        asked: [...survivors],
        deadlineAt: now + (ctx.deps.stageTimeoutMs ?? 30_000),
        revealed: {},
        refused: [],
      };
      for (const p of survivors) {
        const task = buildRevealTask({
          jobId: job.id,
          round: job.next + 1,
          participant: p,
          planDigest: job.plan,
          label: opening.label,
          base: revealBase,
          issuedAt: now,
        });
        ctx.deps.store.insertTask({
          id: task.taskId,
          run_id: job.id,
          round: task.round,
          kind: task.kind,
          participant: p,
          status: 'open',
          task_json: JSON.stringify(task),
          created_at: now,
          completed_at: null,
        });
      }
    } else advanceJob(ctx, job, plan, now);
    ctx.save(job);
  });
  if (reveal) for (const p of survivors) ctx.deps.notify(p);
  ctx.deps.publishCheckpoint();
  ctx.deps.log.info(
    { job: job.id, label: opening.label, rows: metrics.overall.rows, status: job.status },
    'blinded model evaluated under secure aggregation',
  );
  if (job.status === 'running') ctx.tick();
}

/** The next label; after the last, the unblinding and the decision (in the caller's transaction). */
export function advanceJob(ctx: JobsContext, job: JobState, plan: EvaluationPlan, now: number): void {
  job.next += 1;
  job.attempt = 0;
  if (job.next === job.openings.length) {
    job.unblindedAt = ctx.deps.audit.append(
      'evaluation-unblinded',
      buildEvaluationUnblindedBody(job.plan, job.openings),
    );
    const logged = new Map(
      job.results.map((r) => [
        r.label,
        headlineFigures(plan, r.metrics as unknown as Parameters<typeof headlineFigures>[1]),
      ]),
    );
    const body = buildEvaluationDecisionBody(job.plan, plan, decisionValuesOf(job.openings, logged));
    const decisionIndex = ctx.deps.audit.append('evaluation-decision', body);
    job.decision = { outcome: body.outcome, clauses: body.clauses, logIndex: decisionIndex };
    job.status = 'completed';
    job.finishedAt = now;
  }
}

/** One site's answer to a reveal task: its sums (checked and logged as a disclosure) or its refusal. */
export function acceptRevealAnswer(
  ctx: JobsContext,
  job: JobState,
  participant: string,
  taskId: string,
  result: TaskResult,
): void {
  const reveal = job.reveal;
  const task = ctx.deps.store.getTask(taskId)!;
  if (!reveal || task.round !== reveal.round || task.status !== 'open')
    throw new EntenteError('STALE_ROUND', `task "${taskId}" is for a reveal that is no longer open`, {
      field: 'round',
    });
  const now = ctx.deps.now();
  if (result.kind === 'refusal') {
    ctx.deps.store.transaction(() => {
      ctx.deps.store.setTaskStatus(taskId, 'refused', now);
      reveal.refused.push(participant);
      ctx.save(job);
    });
  } else {
    if (result.kind !== 'evaluation-reveal' || result.runId !== job.id || result.round !== reveal.round)
      throw new EntenteError('INVALID_MESSAGE', "kind: the task asks for this site's evaluation sums", {
        field: 'kind',
      });
    const plan = ctx.deps.approvedPlan(job.plan)!;
    const layout = createEvaluationLayout(parseEvaluationSpec(plan.evaluation));
    const checked = checkRevealedSums(layout, result.sums, SECURE_SUM_DEFAULTS.maxRowsPerSite);
    ctx.deps.store.transaction(() => {
      ctx.deps.audit.append('evaluation-disclosure', {
        plan: job.plan,
        label: reveal.label,
        site: participant,
        rows: checked.rows,
        sumsSha256: checked.sumsSha256,
      });
      ctx.deps.store.setTaskStatus(taskId, 'done', now);
      reveal.revealed[participant] = [...result.sums];
      ctx.save(job);
    });
    ctx.deps.log.warn(
      { job: job.id, label: reveal.label, site: participant },
      'a site revealed its own figures (logged as a disclosure)',
    );
  }
  finishRevealIfDone(ctx, job, now);
}

/** Ends the reveal when every survivor answered or refused, or at its deadline; then the next label. */
export function finishRevealIfDone(ctx: JobsContext, job: JobState, now: number): void {
  const reveal = job.reveal;
  if (!reveal) return;
  const answered = reveal.refused.length + Object.keys(reveal.revealed).length;
  if (answered < reveal.asked.length && now < reveal.deadlineAt) return;
  const plan = ctx.deps.approvedPlan(job.plan);
  if (!plan) {
    ctx.fail(job, 'the plan is no longer approved');
    return;
  }
  const layout = createEvaluationLayout(parseEvaluationSpec(plan.evaluation));
  const result = job.results.find((r) => r.label === reveal.label)!;
  ctx.deps.store.transaction(() => {
    result.perSite = summarizePerSite(plan, layout, result.values ?? [], reveal);
    ctx.deps.store.closeOpenTasks(job.id, reveal.round, 'evaluation-reveal', 'expired', now);
    job.reveal = undefined;
    advanceJob(ctx, job, plan, now);
    ctx.save(job);
  });
  ctx.deps.publishCheckpoint();
  if (job.status === 'running') ctx.tick();
}
