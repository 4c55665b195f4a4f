/**
 * The readable views: metrics rows per round and phase (secure aggregation's cohort from the last
 * attempt), CSV with empty unknowns, status tables that escape what members chose (an event message
 * with terminal escapes cannot repaint the operator's screen), and a failed run's reason.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  collectRoundMetrics,
  formatMetricsCsv,
  formatRunStatus,
  formatStatus,
  type RunView,
  type StatusView,
} from './run-view.ts';

const view: RunView = {
  id: 'trial',
  status: 'failed',
  phase: 'train',
  round: 2,
  totalRounds: 3,
  createdAt: 0,
  finishedAt: 5000,
  config: { evaluate: false },
  model: null,
  standardization: null,
  failure: { code: 'ATTEMPTS_EXHAUSTED', round: 2, attempt: 3, message: 'too few survivors' },
  secureAggregation: [
    { round: 1, attempt: 0, cohort: ['a', 'b', 'c', 'd'], survivors: null, outcome: 'aborted' },
    { round: 1, attempt: 1, cohort: ['a', 'b', 'c'], survivors: ['a', 'b', 'c'], outcome: 'completed' },
  ],
  rounds: [
    {
      round: 1,
      trainCohort: 4,
      evalCohort: 0,
      evaluators: 0,
      epsilon: null,
      contributors: ['a', 'b', 'c'],
      trainExamples: 300,
      trainLoss: 0.25,
      evalExamples: null,
      evalLoss: null,
      evalAccuracy: null,
      modelOut: 'f'.repeat(64),
      startedAt: 1000,
      trainedAt: 3500,
      evaluatedAt: null,
    },
  ],
};

describe('run views', () => {
  it('one train row per round; the cohort of the last secure-aggregation attempt; no evaluate row without one', () => {
    assert.deepEqual(collectRoundMetrics(view), [
      {
        round: 1,
        phase: 'train',
        cohort: 3,
        survivors: 3,
        examples: 300,
        loss: 0.25,
        accuracy: null,
        epsilon: null,
        wallMs: 2500,
      },
    ]);
    assert.equal(
      formatMetricsCsv(collectRoundMetrics(view)),
      'round,phase,cohort,survivors,examples,loss,accuracy,epsilon,wallMs\n1,train,3,3,300,0.25,,,2500\n',
    );
  });

  it("a failed run's table names its code and reason", () => {
    assert.match(
      formatRunStatus(view),
      /^run trial: failed, 1 rounds \(ATTEMPTS_EXHAUSTED in round 2: too few survivors\)$/m,
    );
  });

  it('status escapes control characters a member put in an event message', () => {
    const status: StatusView = {
      consortium: 'c',
      paused: true,
      participants: [{ id: 'a', registered: true, lastSeenMsAgo: 1500, available: true }],
      runs: [{ id: 'trial', status: 'running' }],
      events: [
        {
          at: 0,
          kind: 'refused',
          participant: 'a',
          run_id: 'trial',
          round: 1,
          code: 'INVALID_MESSAGE',
          message: 'bad\u001b[2J\rthing',
        },
      ],
    };
    const text = formatStatus(status);
    assert.ok(!text.includes('\u001b'), 'no raw escape');
    assert.ok(!text.includes('\r'), 'no raw carriage return');
    assert.match(text, /bad\\u001b\[2J\\u000dthing/);
    assert.match(text, /^consortium c \(PAUSED: an incident is open\)$/m);
    assert.match(text, /^a +yes +yes +1\.5s ago$/m);
    assert.match(text, /^trial +running$/m);
  });
});
