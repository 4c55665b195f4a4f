import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type RunEffect, type RunState, createRunState, resumeRun, stepRun } from './run-machine.ts';

const base = () =>
  createRunState({ runId: 'r', totalRounds: 2, minParticipants: 2, evaluate: true, statistics: true });

function drive(state: RunState, cohort: string[]): { state: RunState; effects: RunEffect[] } {
  const effects: RunEffect[] = [];
  let s = stepRun(state, { type: 'tick', now: 0, available: cohort });
  effects.push(...s.effects);
  s = stepRun(s.state, { type: 'phase-opened', cohort, deadlineAt: 1000 });
  for (const p of cohort) {
    s = stepRun(s.state, { type: 'result-accepted', participant: p });
    effects.push(...s.effects);
  }
  s = stepRun(s.state, { type: 'phase-closed' });
  effects.push(...s.effects);
  return { state: s.state, effects };
}

describe('run state machine', () => {
  it('walks statistics, then train and evaluate for each round, then completes', () => {
    let state = base();
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) {
      seen.push(`${state.phase}:${state.round}`);
      const out = drive(state, ['a', 'b']);
      state = out.state;
      assert.equal(out.effects.filter((e) => e.type === 'close-phase').length, 1);
    }
    assert.deepEqual(seen, ['statistics:0', 'train:1', 'evaluate:1', 'train:2', 'evaluate:2']);
    assert.equal(state.status, 'completed');
  });

  it('does not open a phase with fewer than minParticipants available', () => {
    const out = stepRun(base(), { type: 'tick', now: 0, available: ['a'] });
    assert.equal(out.state.status, 'waiting');
    assert.deepEqual(out.effects, []);
  });

  it('ignores results from outside the cohort and duplicates', () => {
    let s = stepRun(base(), { type: 'tick', now: 0, available: ['a', 'b', 'c'] }).state;
    s = stepRun(s, { type: 'phase-opened', cohort: ['a', 'b', 'c'], deadlineAt: 1000 }).state;
    s = stepRun(s, { type: 'result-accepted', participant: 'a' }).state;
    const dup = stepRun(s, { type: 'result-accepted', participant: 'a' });
    assert.equal(dup.state, s);
    const stranger = stepRun(s, { type: 'result-accepted', participant: 'mallory' });
    assert.equal(stranger.state, s);
    assert.deepEqual(s.received, ['a']);
  });

  it('closes at the deadline with enough results, and only reports overdue without', () => {
    let s = stepRun(base(), { type: 'tick', now: 0, available: ['a', 'b', 'c'] }).state;
    s = stepRun(s, { type: 'phase-opened', cohort: ['a', 'b', 'c'], deadlineAt: 1000 }).state;
    s = stepRun(s, { type: 'result-accepted', participant: 'a' }).state;
    const early = stepRun(s, { type: 'tick', now: 999, available: [] });
    assert.deepEqual(early.effects, []);
    const overdue = stepRun(s, { type: 'tick', now: 1000, available: [] });
    assert.equal(overdue.effects[0]!.type, 'phase-overdue');
    assert.equal(overdue.state.status, 'active');
    s = stepRun(s, { type: 'result-accepted', participant: 'c' }).state;
    const closed = stepRun(s, { type: 'tick', now: 1000, available: [] });
    assert.deepEqual(closed.effects, [
      { type: 'close-phase', phase: 'statistics', round: 0, contributors: ['a', 'c'] },
    ]);
  });

  it('resumes an interrupted open by waiting again and an interrupted close by closing again', () => {
    const opening = stepRun(base(), { type: 'tick', now: 0, available: ['a', 'b'] }).state;
    assert.equal(resumeRun(opening).state.status, 'waiting');
    let s = stepRun(opening, { type: 'phase-opened', cohort: ['a', 'b'], deadlineAt: 1000 }).state;
    s = stepRun(s, { type: 'result-accepted', participant: 'a' }).state;
    s = stepRun(s, { type: 'result-accepted', participant: 'b' }).state;
    assert.equal(s.status, 'closing');
    assert.deepEqual(resumeRun(s).effects, [
      { type: 'close-phase', phase: 'statistics', round: 0, contributors: ['a', 'b'] },
    ]);
  });

  it('never closes a phase twice or counts a participant twice, whatever the event order', () => {
    const event = fc.oneof(
      fc.record({
        type: fc.constant('result-accepted' as const),
        participant: fc.constantFrom('a', 'b', 'c', 'd'),
      }),
      fc.record({
        type: fc.constant('tick' as const),
        now: fc.integer({ min: 0, max: 2000 }),
        available: fc.constant(['a', 'b', 'c']),
      }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 40 }), (events) => {
        let s = stepRun(base(), { type: 'tick', now: 0, available: ['a', 'b', 'c'] }).state;
        s = stepRun(s, { type: 'phase-opened', cohort: ['a', 'b', 'c'], deadlineAt: 1000 }).state;
        let closes = 0;
        for (const e of events) {
          const out = stepRun(s, e);
          closes += out.effects.filter((x) => x.type === 'close-phase').length;
          s = out.state;
          assert.equal(new Set(s.received).size, s.received.length);
          assert.ok(s.received.every((p) => s.cohort.includes(p)));
        }
        assert.ok(closes <= 1);
        if (closes === 1) assert.equal(s.status, 'closing');
      }),
    );
  });
});

describe('phases driven by the app (secure aggregation)', () => {
  const opened = () => {
    let s = createRunState({
      runId: 'r',
      totalRounds: 2,
      minParticipants: 3,
      evaluate: false,
      statistics: false,
    });
    s = stepRun(s, { type: 'tick', now: 0, available: ['a', 'b', 'c'] }).state;
    return stepRun(s, { type: 'phase-opened', cohort: ['a', 'b', 'c'], deadlineAt: null }).state;
  };

  it('has no deadline of its own: ticks never close or flag the phase', () => {
    const s = opened();
    const out = stepRun(s, { type: 'tick', now: 10 ** 12, available: [] });
    assert.equal(out.state, s);
    assert.deepEqual(out.effects, []);
  });

  it('closes when the app asks, with the contributors it names', () => {
    const out = stepRun(opened(), { type: 'close-requested', contributors: ['c', 'a', 'a'] });
    assert.equal(out.state.status, 'closing');
    assert.deepEqual(out.effects, [
      { type: 'close-phase', phase: 'train', round: 1, contributors: ['a', 'c'] },
    ]);
  });

  it('an aborted phase waits to reopen as the next attempt of the same round; the next round starts at 0', () => {
    const aborted = stepRun(opened(), { type: 'phase-aborted', unmaskingBegan: false, maxAttempts: 3 }).state;
    assert.equal(aborted.status, 'waiting');
    assert.equal(aborted.round, 1);
    assert.equal(aborted.attempt, 1);
    assert.deepEqual(aborted.cohort, []);
    const again = stepRun(stepRun(aborted, { type: 'tick', now: 0, available: ['a', 'b', 'c'] }).state, {
      type: 'phase-opened',
      cohort: ['a', 'b', 'c'],
      deadlineAt: null,
    }).state;
    const closing = stepRun(again, { type: 'close-requested', contributors: ['a', 'b', 'c'] }).state;
    const next = stepRun(closing, { type: 'phase-closed' }).state;
    assert.equal(next.round, 2);
    assert.equal(next.attempt, 0);
  });

  it('fails the run, coded, when the last allowed attempt of a round aborts', () => {
    const abort = { type: 'phase-aborted', unmaskingBegan: false, maxAttempts: 2 } as const;
    const reopen = (s: ReturnType<typeof opened>) =>
      stepRun(stepRun(s, { type: 'tick', now: 0, available: ['a', 'b', 'c'] }).state, {
        type: 'phase-opened',
        cohort: ['a', 'b', 'c'],
        deadlineAt: null,
      }).state;
    const first = stepRun(opened(), abort);
    assert.equal(first.state.status, 'waiting');
    assert.deepEqual(first.effects, []);
    const second = stepRun(reopen(first.state), abort);
    assert.equal(second.state.status, 'failed');
    assert.equal(second.state.failure?.code, 'ATTEMPTS_EXHAUSTED');
    assert.equal(second.state.failure?.attempt, 1);
    assert.match(second.state.failure!.message, /all 2 attempts \(maxAttemptsPerRound 2\)/);
    assert.deepEqual(second.effects, [{ type: 'run-failed', failure: second.state.failure }]);
    // A failed run opens nothing more.
    const after = stepRun(second.state, { type: 'tick', now: 0, available: ['a', 'b', 'c'] });
    assert.equal(after.state, second.state);
    assert.deepEqual(after.effects, []);
  });

  it('never retries an attempt that aborted after unmasking began', () => {
    const out = stepRun(opened(), { type: 'phase-aborted', unmaskingBegan: true, maxAttempts: 3 });
    assert.equal(out.state.status, 'failed');
    assert.equal(out.state.failure?.code, 'UNMASKING_ABORTED');
    assert.equal(out.effects[0]?.type, 'run-failed');
  });

  it('ignores close and abort requests that do not apply', () => {
    const waiting = createRunState({
      runId: 'r',
      totalRounds: 1,
      minParticipants: 3,
      evaluate: false,
      statistics: false,
    });
    assert.equal(stepRun(waiting, { type: 'close-requested', contributors: ['a'] }).state, waiting);
    assert.equal(
      stepRun(waiting, { type: 'phase-aborted', unmaskingBegan: false, maxAttempts: 3 }).state,
      waiting,
    );
  });

  describe('refusals, failed attempts and cancellation', () => {
    const open = (cohort: string[], min = 2): RunState => {
      const s0 = createRunState({
        runId: 'r',
        totalRounds: 1,
        minParticipants: min,
        evaluate: false,
        statistics: false,
      });
      const t = stepRun(s0, { type: 'tick', now: 0, available: cohort });
      return stepRun(t.state, { type: 'phase-opened', cohort, deadlineAt: 1000 }).state;
    };
    const refuse = (s: RunState, participant: string, maxFailures = 3) =>
      stepRun(s, {
        type: 'participant-refused',
        participant,
        code: 'SITE_POLICY_REFUSED',
        message: 'no',
        maxFailures,
      });

    it("a refusal ends that site's part: the phase closes without it as soon as the rest reported", () => {
      let s = open(['a', 'b', 'c']);
      s = refuse(s, 'c').state;
      assert.equal(s.status, 'active');
      s = stepRun(s, { type: 'result-accepted', participant: 'a' }).state;
      const out = stepRun(s, { type: 'result-accepted', participant: 'b' });
      assert.equal(out.state.status, 'closing');
      assert.deepEqual(out.effects, [
        { type: 'close-phase', phase: 'train', round: 1, contributors: ['a', 'b'] },
      ]);
      // A result from the site that refused counts for nothing.
      assert.equal(
        stepRun(refuse(open(['a', 'b', 'c']), 'c').state, { type: 'result-accepted', participant: 'c' }).state
          .received.length,
        0,
      );
    });

    it('too few left: once the rest answered the attempt fails and reopens; after maxFailures the run fails naming each site', () => {
      let s = open(['a', 'b']);
      for (let attempt = 0; attempt < 2; attempt++) {
        // The attempt can no longer succeed, but a still has its say.
        const refusedOnly = refuse(s, 'b');
        assert.equal(refusedOnly.state.status, 'active');
        assert.deepEqual(refusedOnly.effects, []);
        const out = stepRun(refusedOnly.state, { type: 'result-accepted', participant: 'a' });
        assert.equal(out.state.status, 'waiting');
        assert.equal(out.state.attempt, attempt + 1);
        assert.deepEqual(
          out.effects.map((e) => e.type),
          ['phase-failed'],
        );
        const t = stepRun(out.state, { type: 'tick', now: 0, available: ['a', 'b'] });
        assert.equal(t.effects[0]?.type, 'open-phase');
        s = stepRun(t.state, { type: 'phase-opened', cohort: ['a', 'b'], deadlineAt: 1000 }).state;
        assert.deepEqual(s.refused, []);
      }
      // The last attempt: a never answers; at the deadline the attempt fails rather than waiting on.
      const waiting = refuse(s, 'b').state;
      const last = stepRun(waiting, { type: 'tick', now: 1000, available: ['a', 'b'] });
      assert.equal(last.state.status, 'failed');
      assert.equal(last.state.failure?.code, 'PHASE_FAILED');
      assert.match(last.state.failure!.message, /all 3 attempts.*b \(SITE_POLICY_REFUSED: no\)/);
      assert.deepEqual(
        last.effects.map((e) => e.type),
        ['phase-failed', 'run-failed'],
      );
      // Nothing moves a failed run.
      assert.equal(stepRun(last.state, { type: 'tick', now: 0, available: ['a', 'b'] }).effects.length, 0);
    });

    it('without refusals a late phase only waits (participants reconnect by themselves)', () => {
      const s = open(['a', 'b']);
      const out = stepRun(s, { type: 'tick', now: 1000, available: ['a', 'b'] });
      assert.equal(out.state.status, 'active');
      assert.deepEqual(
        out.effects.map((e) => e.type),
        ['phase-overdue'],
      );
    });

    it('a later phase starts with no failed attempts counted', () => {
      let s = open(['a', 'b', 'c']);
      s = refuse(s, 'c').state;
      s = stepRun(s, { type: 'result-accepted', participant: 'a' }).state;
      s = stepRun(s, { type: 'result-accepted', participant: 'b' }).state;
      s = stepRun(s, { type: 'phase-closed' }).state;
      assert.equal(s.status, 'completed');
    });

    it('cancel ends an open run for good; resume and ticks do nothing after it', () => {
      const s = open(['a', 'b']);
      const out = stepRun(s, { type: 'cancel', by: 'operator' });
      assert.equal(out.state.status, 'cancelled');
      assert.deepEqual(out.effects, [{ type: 'run-cancelled', by: 'operator' }]);
      assert.deepEqual(resumeRun(out.state).effects, []);
      assert.equal(stepRun(out.state, { type: 'tick', now: 5000, available: ['a', 'b'] }).effects.length, 0);
      assert.equal(
        stepRun(out.state, { type: 'result-accepted', participant: 'a' }).state.status,
        'cancelled',
      );
      assert.equal(stepRun(out.state, { type: 'cancel', by: 'x' }).effects.length, 0);
    });
  });
});
