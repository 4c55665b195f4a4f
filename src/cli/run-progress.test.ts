/**
 * followRun against a scripted coordinator: on a pipe exactly one plain line per finished round and no
 * redrawing; on a terminal a progress bar (escape sequences) plus the same lines; with no stream, silence.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MtlsClient } from '../transport/index.ts';
import { followRun } from './run-progress.ts';
import type { RoundView, RunView } from './run-view.ts';

const round = (r: number, trained: boolean, evaluated: boolean): RoundView => ({
  round: r,
  trainCohort: 3,
  evalCohort: evaluated ? 3 : 0,
  evaluators: evaluated ? 3 : 0,
  epsilon: null,
  contributors: trained ? ['a', 'b', 'c'] : [],
  trainExamples: trained ? 300 : null,
  trainLoss: trained ? 1 / r : null,
  evalExamples: evaluated ? 90 : null,
  evalLoss: evaluated ? 0.5 / r : null,
  evalAccuracy: evaluated ? 0.8 + r / 100 : null,
  modelOut: trained ? 'f'.repeat(64) : null,
  startedAt: 1000 * r,
  trainedAt: trained ? 1000 * r + 400 : null,
  evaluatedAt: evaluated ? 1000 * r + 800 : null,
});

/** Views as the coordinator would show them while a 2-round run progresses (each served twice). */
function scriptedViews(): RunView[] {
  const base = {
    id: 'r',
    totalRounds: 2,
    createdAt: 0,
    finishedAt: null,
    config: { rounds: 2, evaluate: true },
    model: null,
    standardization: null,
    secureAggregation: [],
  };
  const steps: RunView[] = [
    { ...base, status: 'running', phase: 'train', round: 1, rounds: [round(1, false, false)] },
    { ...base, status: 'running', phase: 'evaluate', round: 1, rounds: [round(1, true, false)] },
    {
      ...base,
      status: 'running',
      phase: 'train',
      round: 2,
      rounds: [round(1, true, true), round(2, false, false)],
    },
    {
      ...base,
      status: 'completed',
      phase: 'evaluate',
      round: 2,
      rounds: [round(1, true, true), round(2, true, true)],
    },
  ];
  return steps.flatMap((s) => [s, s]);
}

function fakeClient(views: RunView[]): MtlsClient {
  let i = 0;
  return {
    getJson: async () => ({ status: 200, body: views[Math.min(i++, views.length - 1)] }),
  } as unknown as MtlsClient;
}

function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = {
    isTTY,
    columns: 200,
    write: (s: string) => {
      chunks.push(s);
      return true;
    },
    cursorTo: () => true,
    moveCursor: () => true,
    clearLine: () => true,
    clearScreenDown: () => true,
    on: () => stream,
    removeListener: () => stream,
  };
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => chunks.join('') };
}

describe('followRun', () => {
  it('on a pipe: one plain line per finished round, in order, nothing redrawn', async () => {
    const out = fakeStream(false);
    const view = await followRun(fakeClient(scriptedViews()), 'r', { stream: out.stream, pollMs: 0 });
    assert.equal(view.status, 'completed');
    assert.deepEqual(out.text().split('\n'), [
      'round 1/2 | train cohort 3 survivors 3 loss 1.0000 | evaluate cohort 3 survivors 3 loss 0.5000 accuracy 0.8100 | ε - | elapsed 1.8s',
      'round 2/2 | train cohort 3 survivors 3 loss 0.5000 | evaluate cohort 3 survivors 3 loss 0.2500 accuracy 0.8200 | ε - | elapsed 2.8s',
      '',
    ]);
  });

  it('on a terminal: a progress bar as well as the lines', async () => {
    const out = fakeStream(true);
    await followRun(fakeClient(scriptedViews()), 'r', { stream: out.stream, pollMs: 0 });
    const text = out.text();
    assert.match(text, /round 1\/2 \| train cohort 3/);
    assert.match(text, /round 2\/2 \| train cohort 3/);
    assert.match(text, /2\/2 rounds \| round 2 completed/);
  });

  it('without a stream (--json on a pipe) nothing is printed', async () => {
    const view = await followRun(fakeClient(scriptedViews()), 'r', { stream: undefined, pollMs: 0 });
    assert.equal(view.rounds.length, 2);
  });
});
