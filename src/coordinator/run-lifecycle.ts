/**
 * A run's beginning and its return after a restart: createRun (the initial model from the run seed,
 * the strategy state and the first state, with the run-configured and model-initialized entries, in
 * one transaction) and resumeRuns (every run still `running` in the store reloaded, finished or
 * failed ones marked, an interrupted secure-aggregation attempt aborted, the others resumed).
 */
import { createStrategy } from '../aggregation/index.ts';
import { EntenteError } from '../core/errors.ts';
import { countParameters } from '../core/tensor.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { builtinTrainer, describeLayout } from '../models/index.ts';
import {
  type RunConfig,
  type RunState,
  checkModelFitsData,
  createRunState,
  parseRunConfig,
  resumeRun,
} from '../protocol/index.ts';
import { createHash } from 'node:crypto';
import { storeStrategyState, storeWeights } from './model-storage.ts';
import { type RunEngineContext, type StoredModel, createLiveRun } from './run-engine-context.ts';
import { applyEffects, markFailed } from './run-transitions.ts';
import { abortSecAgg } from './secagg-attempt.ts';

/** Reloads the runs left running in the store (called once, when the engine is constructed). */
export function resumeRuns(ctx: RunEngineContext): void {
  const { deps } = ctx;
  for (const row of deps.store.listRuns()) {
    if (row.status !== 'running') continue;
    const config = parseRunConfig(JSON.parse(row.config_json));
    const live = createLiveRun(
      config,
      JSON.parse(row.state_json) as RunState,
      createStrategy(config.strategy),
      describeLayout(config.model),
    );
    if (live.state.status === 'completed') {
      // Killed between the last transition and marking the run: finish marking it.
      deps.store.updateRun(row.id, { status: 'completed', finished_at: deps.now() });
      continue;
    }
    if (live.state.status === 'failed' && live.state.failure) {
      markFailed(ctx, row.id, live.state.failure);
      continue;
    }
    if (live.state.status === 'cancelled') {
      // Cancelled in the transaction that stored this state; the row is marked with it, but be sure.
      deps.store.updateRun(row.id, { status: 'cancelled', finished_at: deps.now() });
      continue;
    }
    ctx.runs.set(row.id, live);
    if (
      config.secureAggregation.protocol === 'secagg' &&
      (live.state.status === 'active' || live.state.status === 'closing')
    ) {
      // The attempt's secrets and running sum lived in memory only: abort it cleanly and retry.
      abortSecAgg(ctx, row.id, live, 'the coordinator restarted during secure aggregation');
      continue;
    }
    const out = resumeRun(live.state);
    live.state = out.state;
    deps.log.info(
      { run: row.id, phase: live.state.phase, round: live.state.round, status: live.state.status },
      'resuming run',
    );
    applyEffects(ctx, row.id, out.effects);
  }
}

/** Creates a run: initial model from the run seed, strategy state, first state; all in one transaction. */
export function createRun(
  ctx: RunEngineContext,
  input: unknown,
  approval?: { readonly proposal: string },
): { runId: string } {
  const config = parseRunConfig(input);
  checkAgainstSites(ctx, config);
  const { store, now } = ctx.deps;
  if (store.getRun(config.id)) {
    throw new EntenteError('CONFLICT', `run "${config.id}" already exists`, { field: 'run.id' });
  }
  const weights = builtinTrainer.initializeWeights(config.model, createSeededRng(`${config.seed}/init`));
  const model = storeWeights(ctx.deps.blobs, weights, { run: config.id, round: '0' });
  const strategy = createStrategy(config.strategy);
  const sstate = strategy.initializeState(weights);
  const state = createRunState({
    runId: config.id,
    totalRounds: config.rounds,
    minParticipants: config.minParticipants,
    evaluate: config.evaluate,
    statistics: config.standardize === 'federated',
  });
  store.transaction(() => {
    store.insertRun({
      id: config.id,
      config_json: JSON.stringify(config),
      state_json: JSON.stringify(state),
      status: 'running',
      model_json: JSON.stringify({ ref: model } satisfies StoredModel),
      strategy_json: JSON.stringify(storeStrategyState(ctx.deps.blobs, sstate)),
      standardization_json: null,
      created_at: now(),
      finished_at: null,
    });
    const audit = ctx.deps.audit;
    audit.append('run-configured', {
      run: config.id,
      configSha256: createHash('sha256').update(canonicalizeJson(config)).digest('hex'),
      config,
      policyIndex: audit.policyIndex,
      ...(approval ? { proposal: approval.proposal } : {}),
    });
    const logIndex = audit.append('model-initialized', {
      run: config.id,
      round: 0,
      modelSha256: model.sha256,
    });
    store.updateRun(config.id, {
      model_json: JSON.stringify({ ref: model, logIndex } satisfies StoredModel),
    });
  });
  ctx.publishCheckpoint();
  ctx.runs.set(config.id, createLiveRun(config, state, strategy, describeLayout(config.model)));
  ctx.deps.log.info(
    {
      run: config.id,
      rounds: config.rounds,
      strategy: config.strategy.name,
      parameters: countParameters(weights),
    },
    'run created',
  );
  ctx.tick();
  return { runId: config.id };
}

/**
 * Refuses (INVALID_CONFIG naming the field and the site) a run whose model does not fit the records a
 * registered site declared: no round of it could ever be executed there.
 */
export function checkAgainstSites(ctx: RunEngineContext, config: RunConfig): void {
  for (const { participant, shape } of ctx.deps.declaredData?.() ?? [])
    checkModelFitsData(config.model, shape, participant);
}
