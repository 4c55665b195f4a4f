/**
 * The coordinator's run state machine, sans I/O: `stepRun(state, event) -> { state, effects }`.
 * It decides *when* a phase opens and closes; the coordinator app decides *how* (selecting the cohort
 * with the strategy, writing tasks, aggregating) and reports back with events. The state is plain
 * JSON, persisted with the run after every step, so a restarted coordinator continues where it was.
 *
 * Phases of a run: [statistics, round 0] → (train r → [evaluate r]) for r = 1..rounds → completed.
 * A secure-aggregation round that aborts before unmasking is retried as a new attempt, at most
 * maxAttemptsPerRound attempts in all; an attempt aborted once unmasking began is never retried (a round
 * is unmasked at most once). Either way the run then fails, with a coded reason in its state.
 */

export type Phase = 'statistics' | 'train' | 'evaluate';

/** After a deadline passes without enough results, how long until the next overdue notice. */
export const OVERDUE_REPEAT_MS = 10_000;

export interface RunState {
  readonly runId: string;
  /** waiting: next phase not yet open; opening/closing: the app is acting on an effect. */
  readonly status: 'waiting' | 'opening' | 'active' | 'closing' | 'completed' | 'failed';
  readonly phase: Phase;
  readonly round: number;
  readonly totalRounds: number;
  readonly minParticipants: number;
  readonly evaluate: boolean;
  readonly cohort: readonly string[];
  readonly received: readonly string[];
  readonly deadlineAt: number | null;
  /** Attempt of the current phase (a secure-aggregation round that aborts is retried as attempt + 1). */
  readonly attempt?: number;
  /** Why the run failed (status 'failed'): a registered error code and a message. */
  readonly failure?: RunFailure;
}

/** Codes a run fails with (registered in core/errors.ts). */
export type RunFailureCode = 'ATTEMPTS_EXHAUSTED' | 'UNMASKING_ABORTED';

export interface RunFailure {
  readonly code: RunFailureCode;
  readonly round: number;
  readonly attempt: number;
  readonly message: string;
}

export type RunEvent =
  | { readonly type: 'tick'; readonly now: number; readonly available: readonly string[] }
  | { readonly type: 'phase-opened'; readonly cohort: readonly string[]; readonly deadlineAt: number | null }
  | { readonly type: 'result-accepted'; readonly participant: string }
  /** The app decided the phase is complete (secure aggregation finished its own stages). */
  | { readonly type: 'close-requested'; readonly contributors: readonly string[] }
  /**
   * The app aborted the phase (too few survivors, coordinator restart): run it again as a new attempt,
   * unless unmasking had begun or this was attempt maxAttempts of the round (then the run fails).
   */
  | { readonly type: 'phase-aborted'; readonly unmaskingBegan: boolean; readonly maxAttempts: number }
  | { readonly type: 'phase-closed' };

export type RunEffect =
  | {
      readonly type: 'open-phase';
      readonly phase: Phase;
      readonly round: number;
      readonly available: readonly string[];
    }
  | {
      readonly type: 'close-phase';
      readonly phase: Phase;
      readonly round: number;
      readonly contributors: readonly string[];
    }
  | {
      readonly type: 'phase-overdue';
      readonly phase: Phase;
      readonly round: number;
      readonly missing: readonly string[];
    }
  | { readonly type: 'run-completed' }
  | { readonly type: 'run-failed'; readonly failure: RunFailure };

export interface StepOutput {
  readonly state: RunState;
  readonly effects: readonly RunEffect[];
}

export function createRunState(input: {
  runId: string;
  totalRounds: number;
  minParticipants: number;
  evaluate: boolean;
  statistics: boolean;
}): RunState {
  return {
    runId: input.runId,
    status: 'waiting',
    phase: input.statistics ? 'statistics' : 'train',
    round: input.statistics ? 0 : 1,
    totalRounds: input.totalRounds,
    minParticipants: input.minParticipants,
    evaluate: input.evaluate,
    cohort: [],
    received: [],
    deadlineAt: null,
  };
}

function nextPhase(state: RunState): { phase: Phase; round: number } | null {
  if (state.phase === 'statistics') return { phase: 'train', round: 1 };
  if (state.phase === 'train' && state.evaluate) return { phase: 'evaluate', round: state.round };
  if (state.round >= state.totalRounds) return null;
  return { phase: 'train', round: state.round + 1 };
}

/** Pure transition function. Events that do not apply in the current status are ignored. */
export function stepRun(state: RunState, event: RunEvent): StepOutput {
  switch (event.type) {
    case 'tick': {
      if (state.status === 'waiting') {
        if (event.available.length < state.minParticipants) return { state, effects: [] };
        return {
          state: { ...state, status: 'opening' },
          effects: [
            {
              type: 'open-phase',
              phase: state.phase,
              round: state.round,
              available: [...event.available].sort(),
            },
          ],
        };
      }
      if (state.status === 'active' && state.deadlineAt !== null && event.now >= state.deadlineAt) {
        const missing = state.cohort.filter((p) => !state.received.includes(p));
        if (state.received.length >= state.minParticipants) {
          return {
            state: { ...state, status: 'closing' },
            effects: [
              {
                type: 'close-phase',
                phase: state.phase,
                round: state.round,
                contributors: [...state.received],
              },
            ],
          };
        }
        // Too few results to close: keep waiting (participants reconnect by themselves); say so once per deadline.
        return {
          state: { ...state, deadlineAt: event.now + OVERDUE_REPEAT_MS },
          effects: [{ type: 'phase-overdue', phase: state.phase, round: state.round, missing }],
        };
      }
      return { state, effects: [] };
    }
    case 'phase-opened': {
      if (state.status !== 'opening') return { state, effects: [] };
      const cohort = [...new Set(event.cohort)].sort();
      return {
        // deadlineAt null: the app enforces its own stage deadlines (secure aggregation).
        state: { ...state, status: 'active', cohort, received: [], deadlineAt: event.deadlineAt },
        effects: [],
      };
    }
    case 'result-accepted': {
      if (state.status !== 'active') return { state, effects: [] };
      if (!state.cohort.includes(event.participant) || state.received.includes(event.participant)) {
        return { state, effects: [] };
      }
      const received = [...state.received, event.participant].sort();
      if (received.length < state.cohort.length) return { state: { ...state, received }, effects: [] };
      return {
        state: { ...state, received, status: 'closing' },
        effects: [{ type: 'close-phase', phase: state.phase, round: state.round, contributors: received }],
      };
    }
    case 'close-requested': {
      if (state.status !== 'active') return { state, effects: [] };
      const received = [...new Set(event.contributors)].sort();
      return {
        state: { ...state, received, status: 'closing' },
        effects: [{ type: 'close-phase', phase: state.phase, round: state.round, contributors: received }],
      };
    }
    case 'phase-aborted': {
      if (state.status !== 'active' && state.status !== 'closing') return { state, effects: [] };
      const attempt = state.attempt ?? 0;
      const failure: RunFailure | undefined = event.unmaskingBegan
        ? {
            code: 'UNMASKING_ABORTED',
            round: state.round,
            attempt,
            message: `round ${state.round} attempt ${attempt} aborted after unmasking began: a round is unmasked at most once, so it is not retried`,
          }
        : attempt + 1 >= event.maxAttempts
          ? {
              code: 'ATTEMPTS_EXHAUSTED',
              round: state.round,
              attempt,
              message: `round ${state.round}: secure aggregation aborted in all ${attempt + 1} attempts (maxAttemptsPerRound ${event.maxAttempts})`,
            }
          : undefined;
      if (failure) {
        return {
          state: { ...state, status: 'failed', failure, cohort: [], received: [], deadlineAt: null },
          effects: [{ type: 'run-failed', failure }],
        };
      }
      return {
        state: {
          ...state,
          status: 'waiting',
          attempt: (state.attempt ?? 0) + 1,
          cohort: [],
          received: [],
          deadlineAt: null,
        },
        effects: [],
      };
    }
    case 'phase-closed': {
      if (state.status !== 'closing') return { state, effects: [] };
      const next = nextPhase(state);
      if (next === null) {
        return {
          state: { ...state, status: 'completed', cohort: [], received: [], deadlineAt: null },
          effects: [{ type: 'run-completed' }],
        };
      }
      return {
        state: {
          ...state,
          status: 'waiting',
          phase: next.phase,
          round: next.round,
          attempt: 0,
          cohort: [],
          received: [],
          deadlineAt: null,
        },
        effects: [],
      };
    }
  }
}

/**
 * What to redo after a restart. The app persists the state after every step, in the same transaction
 * as the effect's writes, so an 'opening' state means the cohort was never written (open again) and a
 * 'closing' state means the aggregate was never recorded (close again, idempotently).
 */
export function resumeRun(state: RunState): StepOutput {
  if (state.status === 'opening') return { state: { ...state, status: 'waiting' }, effects: [] };
  if (state.status === 'closing') {
    return {
      state,
      effects: [
        { type: 'close-phase', phase: state.phase, round: state.round, contributors: [...state.received] },
      ],
    };
  }
  return { state, effects: [] };
}
