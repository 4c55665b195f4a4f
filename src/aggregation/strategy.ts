/**
 * A federated strategy: configure/aggregate for train and for evaluate, with transport kept outside
 * (the shape of Flower's serverapp Strategy, with typed configs and explicit, persistable state).
 * A strategy never sees individual updates: the coordinator hands it the example-weighted mean of
 * the returned models (under secure aggregation, the unmasked sum divided by the total weight).
 * Pure: randomness comes in as an Rng, state goes in and comes out as values.
 */
import { EntenteError } from '../core/errors.ts';
import type { Rng } from '../core/rng.ts';
import {
  assertMatchesLayout,
  indexOfNonFinite,
  layoutOf,
  type Tensor,
  type TensorLayout,
  type Weights,
} from '../core/tensor.ts';
import {
  aggregateEvaluationResults,
  type EvaluationResult,
  type EvaluationSummary,
} from './evaluation-aggregation.ts';
import { createFedAvgOptimizer } from './fedavg-optimizer.ts';
import { createFedAvgMOptimizer } from './fedavgm-optimizer.ts';
import { createFedOptOptimizer } from './fedopt-optimizer.ts';
import { selectParticipants } from './participant-selection.ts';
import type { ServerOptimizer } from './server-optimizer.ts';
import { parseStrategyConfig, type StrategyConfig, type StrategyName } from './strategy-config.ts';

/**
 * Everything a strategy carries between rounds, persistable as JSON (`round`, `scalars`) plus named
 * float32 tensors (e.g. "m/dense0.weight", "v/dense0.weight", "momentum/dense0.weight").
 * `round` is the last round aggregated (0 before any); `scalars.steps` counts server steps applied.
 */
export interface StrategyState {
  readonly round: number;
  readonly scalars: Readonly<Record<string, number>>;
  readonly tensors: readonly Tensor[];
}

/** What participants are told for local training. */
export interface TrainInstructions {
  /** FedProx μ (0 for every other strategy: plain local training). */
  readonly proximalMu: number;
}

export interface ConfigureInput {
  readonly round: number;
  readonly available: readonly string[];
  readonly state: StrategyState;
  readonly rng: Rng;
}

export interface AggregateTrainInput {
  readonly round: number;
  /** The global model the participants started from. */
  readonly current: Weights;
  /** Example-weighted mean of the models the participants returned (same layout as `current`). */
  readonly mean: Weights;
  readonly totalExamples: number;
  readonly contributions: number;
  readonly state: StrategyState;
}

export interface Strategy {
  readonly name: StrategyName;
  readonly config: StrategyConfig;
  /** State before round 1, for a model like `current`. Throws INVALID_TENSOR on non-finite weights. */
  initializeState(current: Weights): StrategyState;
  /** Participants (sorted) and instructions for a training round. */
  configureTrain(input: ConfigureInput): { participants: string[]; config: TrainInstructions };
  /**
   * The next global model and state. Throws INVALID_ARGUMENT (round not after state.round, bad
   * counts, malformed state) or INVALID_TENSOR (layout mismatch, non-finite values, overflow).
   */
  aggregateTrain(input: AggregateTrainInput): { weights: Tensor[]; state: StrategyState };
  /** Participants (sorted) for a federated evaluation; none when fractionEvaluate is 0. */
  configureEvaluate(input: ConfigureInput): { participants: string[] };
  /** Example-weighted loss and accuracy; rejects invalid entries naming the participant. */
  aggregateEvaluate(input: { round: number; results: readonly EvaluationResult[] }): EvaluationSummary;
}

function createServerOptimizer(config: StrategyConfig): ServerOptimizer {
  switch (config.name) {
    case 'fedavg':
    case 'fedprox':
      return createFedAvgOptimizer();
    case 'fedavgm':
      return createFedAvgMOptimizer(config);
    case 'fedadagrad':
      return createFedOptOptimizer({ ...config, rule: 'adagrad', beta2: 0 });
    case 'fedadam':
      return createFedOptOptimizer({ ...config, rule: 'adam' });
    case 'fedyogi':
      return createFedOptOptimizer({ ...config, rule: 'yogi' });
  }
}

function assertRound(round: number, min: number): void {
  if (!Number.isSafeInteger(round) || round < min) {
    throw new EntenteError('INVALID_ARGUMENT', `round must be an integer >= ${min}`, { field: 'round' });
  }
}

function assertState(state: StrategyState, stateLayout: readonly TensorLayout[]): number {
  if (!Number.isSafeInteger(state.round) || state.round < 0) {
    throw new EntenteError('INVALID_ARGUMENT', 'state.round must be a non-negative integer', {
      field: 'state.round',
    });
  }
  for (const [key, value] of Object.entries(state.scalars)) {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new EntenteError('INVALID_ARGUMENT', `state.scalars.${key} must be a finite number`, {
        field: `state.scalars.${key}`,
      });
    }
  }
  const steps = state.scalars.steps;
  if (steps === undefined || !Number.isSafeInteger(steps) || steps < 0) {
    throw new EntenteError('INVALID_ARGUMENT', 'state.scalars.steps must be a non-negative integer', {
      field: 'state.scalars.steps',
    });
  }
  assertMatchesLayout(state.tensors, stateLayout, 'state.tensors');
  return steps;
}

/** Builds the strategy named by `config` (re-validated: throws INVALID_CONFIG naming the field). */
export function createStrategy(config: StrategyConfig): Strategy {
  const cfg = parseStrategyConfig(config);
  const optimizer = createServerOptimizer(cfg);
  const proximalMu = cfg.name === 'fedprox' ? cfg.proximalMu : 0;

  return {
    name: cfg.name,
    config: cfg,

    initializeState(current) {
      const layout = layoutOf(current);
      assertMatchesLayout(current, layout, 'current');
      return { round: 0, scalars: { steps: 0 }, tensors: optimizer.initializeStateTensors(layout) };
    },

    configureTrain({ round, available, rng }) {
      assertRound(round, 1);
      const participants = selectParticipants({
        available,
        fraction: cfg.fractionTrain,
        minimum: cfg.minTrainParticipants,
        rng,
      });
      return { participants, config: { proximalMu } };
    },

    aggregateTrain({ round, current, mean, totalExamples, contributions, state }) {
      assertRound(round, 1);
      if (!(Number.isFinite(totalExamples) && totalExamples > 0)) {
        throw new EntenteError('INVALID_ARGUMENT', 'totalExamples must be a finite number > 0', {
          field: 'totalExamples',
        });
      }
      if (!Number.isSafeInteger(contributions) || contributions < 1) {
        throw new EntenteError('INVALID_ARGUMENT', 'contributions must be a positive integer', {
          field: 'contributions',
        });
      }
      const layout = layoutOf(current);
      assertMatchesLayout(current, layout, 'current');
      assertMatchesLayout(mean, layout, 'mean');
      const steps = assertState(state, optimizer.computeStateLayout(layout));
      if (round <= state.round) {
        throw new EntenteError(
          'INVALID_ARGUMENT',
          `round ${round} is not after the state's round ${state.round}`,
          {
            field: 'round',
          },
        );
      }
      const { weights, stateTensors } = optimizer.applyStep(current, mean, state.tensors);
      for (const t of [...weights, ...stateTensors]) {
        if (indexOfNonFinite(t.data) >= 0) {
          throw new EntenteError(
            'INVALID_TENSOR',
            `the server step overflows float32 in tensor "${t.name}"`,
            {
              field: `weights.${t.name}`,
            },
          );
        }
      }
      return {
        weights,
        state: { round, scalars: { ...state.scalars, steps: steps + 1 }, tensors: stateTensors },
      };
    },

    configureEvaluate({ round, available, rng }) {
      assertRound(round, 0);
      const participants = selectParticipants({
        available,
        fraction: cfg.fractionEvaluate,
        minimum: cfg.minEvaluateParticipants,
        rng,
      });
      return { participants };
    },

    aggregateEvaluate({ round, results }) {
      assertRound(round, 0);
      return aggregateEvaluationResults(results);
    },
  };
}
