/**
 * Opening a phase: the data schema agreed with the available sites, the cohort chosen by the strategy
 * (seeded per phase and round), and its tasks written with the round row and the round-started entry
 * in one transition. A secure-aggregation run's phases open as attempts instead (secagg-attempt.ts,
 * secure-sum-attempt.ts).
 */
import { createWeightedSum } from '../aggregation/index.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import type { RunState, Standardization, Task } from '../protocol/index.ts';
import { loadStrategyState } from './model-storage.ts';
import {
  type LiveRun,
  type RunEngineContext,
  type StoredModel,
  plainTaskId,
  schemaMetaKey,
} from './run-engine-context.ts';
import { openSecAggAttempt } from './secagg-attempt.ts';
import { checkSchemaAgreement } from './schema-agreement.ts';
import { openSumAttempt } from './secure-sum-attempt.ts';

/**
 * The data schema the phase's tasks name, and the sites that may take part. Before the run's first
 * phase every available site must follow the run's schema (or, without one, the same schema): if not,
 * the disagreement is recorded once (naming sites and digests) and undefined is returned. Afterwards
 * the schema is fixed and sites that follow another are left out of the phase.
 */
function agreeOnSchema(
  ctx: RunEngineContext,
  runId: string,
  live: LiveRun,
  round: number,
  available: readonly string[],
): { digest: string | undefined; available: readonly string[] } | undefined {
  const digestOf = ctx.deps.schemaDigestOf;
  if (!digestOf) return { digest: live.config.dataSchemaDigest, available };
  const fixed = ctx.deps.store.getMeta(schemaMetaKey(runId));
  if (fixed !== undefined) {
    const digest = fixed === '' ? undefined : fixed;
    const kept = available.filter((id) => digestOf(id) === digest);
    if (kept.length < available.length) {
      const left = available.filter((id) => digestOf(id) !== digest);
      noteSchemaRefusal(
        ctx,
        runId,
        live,
        round,
        `the run's data schema is ${digest ?? '(none stated)'}; left out of this phase: ${left
          .map((id) => `${id} follows ${digestOf(id) ?? '(none stated)'}`)
          .join(', ')}`,
      );
    }
    return { digest, available: kept };
  }
  const sites = new Map(available.map((id) => [id, digestOf(id)] as const));
  const agreement = checkSchemaAgreement(live.config.dataSchemaDigest, sites);
  if (!agreement.ok) {
    noteSchemaRefusal(ctx, runId, live, round, `the first phase does not open: ${agreement.message}`);
    return undefined;
  }
  return { digest: agreement.digest, available };
}

function noteSchemaRefusal(
  ctx: RunEngineContext,
  runId: string,
  live: LiveRun,
  round: number,
  message: string,
): void {
  if (live.schemaRefusal === message) return;
  live.schemaRefusal = message;
  ctx.record(runId, round, 'schema-mismatch', null, 'SCHEMA_MISMATCH', message);
}

export function openPhase(
  ctx: RunEngineContext,
  runId: string,
  phase: RunState['phase'],
  round: number,
  available: readonly string[],
): void {
  const live = ctx.runs.get(runId)!;
  const { store, now } = ctx.deps;
  const agreed = agreeOnSchema(ctx, runId, live, round, available);
  if (!agreed) {
    // Sites disagree on the data schema before the first phase: keep waiting, nothing is written.
    live.state = { ...live.state, status: 'waiting' };
    return;
  }
  available = agreed.available;
  const schemaDigest = agreed.digest;
  const row = store.getRun(runId)!;
  const rng = createSeededRng(`${live.config.seed}/select/${phase}/${round}`);
  const sstate = loadStrategyState(ctx.deps.blobs, row.strategy_json);
  let cohort: string[];
  let proximalMu = 0;
  if (phase === 'train') {
    const c = live.strategy.configureTrain({ round, available, state: sstate, rng });
    cohort = c.participants;
    proximalMu = c.config.proximalMu;
  } else if (phase === 'evaluate') {
    cohort = live.strategy.configureEvaluate({ round, available, state: sstate, rng }).participants;
  } else {
    cohort = [...available];
  }
  if (cohort.length < live.config.minParticipants) {
    // Not enough participants selected: go back to waiting without writing anything.
    live.state = { ...live.state, status: 'waiting' };
    return;
  }
  // From the first phase on, the run's tasks name this schema (every site refuses another one).
  if (ctx.deps.schemaDigestOf && store.getMeta(schemaMetaKey(runId)) === undefined)
    store.setMeta(schemaMetaKey(runId), schemaDigest ?? '');
  const stored = JSON.parse(row.model_json) as StoredModel;
  const model = stored.ref;
  const modelLog = stored.logIndex === undefined ? {} : { modelLog: { index: stored.logIndex } };
  const standardization = row.standardization_json
    ? (JSON.parse(row.standardization_json) as Standardization)
    : undefined;
  const issuedAt = now();
  if (phase !== 'train' && live.config.secureAggregation.protocol === 'secagg') {
    openSumAttempt(ctx, runId, live, phase, cohort, {
      model,
      modelLogIndex: stored.logIndex,
      standardization,
      schemaDigest,
    });
    return;
  }
  if (phase === 'train' && live.config.secureAggregation.protocol === 'secagg') {
    openSecAggAttempt(
      ctx,
      runId,
      live,
      cohort,
      model,
      standardization,
      proximalMu,
      stored.logIndex,
      stored.clipNorm,
      schemaDigest,
    );
    return;
  }
  const deadlineAt = issuedAt + live.config.roundTimeoutMs;
  const tasks: Task[] = cohort.map((participant) => {
    const base = { taskId: plainTaskId(ctx, runId, round, phase, participant), runId, round, issuedAt };
    const schema = schemaDigest ? { dataSchemaDigest: schemaDigest } : {};
    if (phase === 'statistics') return { ...base, kind: 'statistics', ...schema };
    if (phase === 'evaluate') {
      return {
        ...base,
        kind: 'evaluate',
        model,
        modelSpec: live.config.model,
        ...schema,
        ...(standardization ? { standardization } : {}),
        ...modelLog,
      };
    }
    return {
      ...base,
      kind: 'train',
      model,
      modelSpec: live.config.model,
      train: { ...live.config.train, proximalMu },
      seed: `${live.config.seed}/train/${round}/${participant}`,
      ...schema,
      ...(standardization ? { standardization } : {}),
      ...modelLog,
    };
  });
  ctx.step(runId, { type: 'phase-opened', cohort, deadlineAt }, () => {
    for (const t of tasks) {
      store.insertTask({
        id: t.taskId,
        run_id: runId,
        round,
        kind: t.kind,
        participant: t.taskId.slice(t.taskId.lastIndexOf('.') + 1),
        status: 'open',
        task_json: JSON.stringify(t),
        created_at: issuedAt,
        completed_at: null,
      });
    }
    if (phase === 'train') {
      store.upsertRound({ run_id: runId, round, started_at: issuedAt, model_in: model.sha256 });
      ctx.deps.audit.append('round-started', {
        run: runId,
        round,
        attempt: live.state.attempt ?? 0,
        modelIn: model.sha256,
        cohort,
        protocol: 'none',
        threshold: null,
      });
    }
  });
  if (phase === 'train') {
    live.sum = createWeightedSum(live.layout);
    live.folded = new Set();
    live.aggregateMs = 0;
  }
  ctx.deps.log.info({ run: runId, phase, round, cohort }, 'phase opened');
  for (const p of cohort) ctx.deps.notify(p);
}
