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
 * A participant that refuses or cannot execute its task of a plain phase is out of that phase; the
 * phase closes without it when enough remain, otherwise the attempt fails and the phase reopens, at most
 * maxFailuresPerPhase failed attempts in all (then the run fails, naming each site and its reason).
 * A cancelled run stops for good.
 */

export type Phase = 'statistics' | 'train' | 'evaluate';

/** Failed attempts of a plain phase before the run fails, when the run config says nothing. */
export const DEFAULT_MAX_FAILURES_PER_PHASE = 3;

/** After a deadline passes without enough results, how long until the next overdue notice. */
export const OVERDUE_REPEAT_MS = 10_000;

export interface RunState {
  readonly runId: string;
  /** waiting: next phase not yet open; opening/closing: the app is acting on an effect. */
  readonly status: 'waiting' | 'opening' | 'active' | 'closing' | 'completed' | 'failed' | 'cancelled';
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
  /** Cohort members of the open plain phase that refused or could not execute their task, with why. */
  readonly refused?: readonly RefusedTask[];
  /** Failed attempts of the current phase so far (a plain phase with too few participants left). */
  readonly failures?: number;
  /** The run's maxFailuresPerPhase (set with the first refusal; default 3). */
  readonly maxFailuresPerPhase?: number;
  /** Who cancelled the run (status 'cancelled'). */
  readonly cancellation?: { readonly by: string; readonly proposal?: string };
}

/** One participant's refusal of its task: its error code and message. */
export interface RefusedTask {
  readonly participant: string;
  readonly code: string;
  readonly message: string;
}

/** Codes a run fails with (registered in core/errors.ts). */
export type RunFailureCode = 'ATTEMPTS_EXHAUSTED' | 'UNMASKING_ABORTED' | 'PHASE_FAILED';

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
  | {
      readonly type: 'phase-aborted';
      readonly unmaskingBegan: boolean;
      readonly maxAttempts: number;
      /** Why the attempt aborted (named in the run's failure when it was the last). */
      readonly reason?: string;
    }
  /**
   * A cohort member of the open plain phase refused its task or reported that it cannot execute it:
   * it takes no further part in this attempt of the phase.
   */
  | {
      readonly type: 'participant-refused';
      readonly participant: string;
      readonly code: string;
      readonly message: string;
      readonly maxFailures: number;
    }
  /** The run is cancelled for good (by an operator, or by a quorum's proposal). */
  | { readonly type: 'cancel'; readonly by: string; readonly proposal?: string }
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
  | { readonly type: 'run-failed'; readonly failure: RunFailure }
  /** The open attempt of a plain phase failed (too few participants left): withdraw its open tasks. */
  | {
      readonly type: 'phase-failed';
      readonly phase: Phase;
      readonly round: number;
      readonly attempt: number;
      readonly refused: readonly RefusedTask[];
    }
  /** The run was cancelled: withdraw every open task. */
  | { readonly type: 'run-cancelled'; readonly by: string; readonly proposal?: string };

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
        const missing = state.cohort.filter(
          (p) => !state.received.includes(p) && !(state.refused ?? []).some((r) => r.participant === p),
        );
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
        // Refusals left too few that could still report: the attempt failed.
        if (state.cohort.length - (state.refused ?? []).length < state.minParticipants)
          return failAttempt(state);
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
        state: {
          ...state,
          status: 'active',
          cohort,
          received: [],
          refused: [],
          deadlineAt: event.deadlineAt,
        },
        effects: [],
      };
    }
    case 'result-accepted': {
      if (state.status !== 'active') return { state, effects: [] };
      if (!state.cohort.includes(event.participant) || state.received.includes(event.participant)) {
        return { state, effects: [] };
      }
      if ((state.refused ?? []).some((r) => r.participant === event.participant))
        return { state, effects: [] };
      const received = [...state.received, event.participant].sort();
      return settle({ ...state, received });
    }
    case 'participant-refused': {
      if (state.status !== 'active') return { state, effects: [] };
      const refusedBefore = state.refused ?? [];
      if (
        !state.cohort.includes(event.participant) ||
        state.received.includes(event.participant) ||
        refusedBefore.some((r) => r.participant === event.participant)
      )
        return { state, effects: [] };
      const refused = [
        ...refusedBefore,
        { participant: event.participant, code: event.code, message: event.message },
      ].sort((a, b) => (a.participant < b.participant ? -1 : a.participant > b.participant ? 1 : 0));
      return settle({ ...state, refused, maxFailuresPerPhase: event.maxFailures });
    }
    case 'cancel': {
      if (state.status === 'completed' || state.status === 'failed' || state.status === 'cancelled')
        return { state, effects: [] };
      const cancellation = { by: event.by, ...(event.proposal ? { proposal: event.proposal } : {}) };
      return {
        state: { ...state, status: 'cancelled', cancellation, cohort: [], received: [], deadlineAt: null },
        effects: [{ type: 'run-cancelled', ...cancellation }],
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
              message: `round ${state.round}: secure aggregation aborted in all ${attempt + 1} attempts (maxAttemptsPerRound ${event.maxAttempts})${event.reason ? `; last attempt: ${event.reason}` : ''}`,
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
          failures: 0,
          refused: [],
          cohort: [],
          received: [],
          deadlineAt: null,
        },
        effects: [],
      };
    }
  }
}

/** `alpha (SITE_POLICY_REFUSED: …); beta (…)`: each participant that refused, its code and message. */
export function describeRefusals(refused: readonly RefusedTask[]): string {
  if (refused.length === 0) return 'no participant refused';
  return refused.map((r) => `${r.participant} (${r.code}: ${r.message.slice(0, 300)})`).join('; ');
}

/**
 * Once every cohort member reported or refused: the phase closes with the results when there are at
 * least minParticipants, otherwise this attempt failed. Until then it waits, so every member has its
 * say (and every refusal is named) even when the attempt can no longer succeed.
 */
function settle(state: RunState): StepOutput {
  const refused = state.refused ?? [];
  const pending = state.cohort.filter(
    (p) => !state.received.includes(p) && !refused.some((r) => r.participant === p),
  );
  if (pending.length > 0) return { state, effects: [] };
  if (state.received.length < state.minParticipants) return failAttempt(state);
  return {
    state: { ...state, status: 'closing' },
    effects: [
      { type: 'close-phase', phase: state.phase, round: state.round, contributors: [...state.received] },
    ],
  };
}

/** Too few could take part in this attempt of a plain phase: reopen it, or fail the run after maxFailures. */
function failAttempt(state: RunState): StepOutput {
  const refused = state.refused ?? [];
  const failures = (state.failures ?? 0) + 1;
  const maxFailures = state.maxFailuresPerPhase ?? DEFAULT_MAX_FAILURES_PER_PHASE;
  const attempt = state.attempt ?? 0;
  const effect: RunEffect = {
    type: 'phase-failed',
    phase: state.phase,
    round: state.round,
    attempt,
    refused,
  };
  if (failures >= maxFailures) {
    const failure: RunFailure = {
      code: 'PHASE_FAILED',
      round: state.round,
      attempt,
      message: `${state.phase} round ${state.round}: too few participants could take part in all ${failures} attempts (maxFailuresPerPhase ${maxFailures}; minParticipants ${state.minParticipants}); last attempt: ${describeRefusals(refused)}`,
    };
    return {
      state: { ...state, status: 'failed', failure, failures, cohort: [], received: [], deadlineAt: null },
      effects: [effect, { type: 'run-failed', failure }],
    };
  }
  return {
    state: {
      ...state,
      status: 'waiting',
      attempt: attempt + 1,
      failures,
      cohort: [],
      received: [],
      deadlineAt: null,
    },
    effects: [effect],
  };
}

/**
 * What to redo after a restart. The app persists the state after every step, in the same transaction
 * as the effect's writes, so an 'opening' state means the cohort was never written (open again) and a
 * 'closing' state means the aggregate was never recorded (close again, idempotently).
 */
export function resumeRun(state: RunState): StepOutput {
  if (state.status === 'opening') return { state: { ...state, status: 'waiting' }, effects: [] };
  // A cancelled run's open tasks were withdrawn in the transaction that cancelled it: nothing to redo.
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
