import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RefusalSummarizer } from './refusal-summary.ts';

describe('RefusalSummarizer', () => {
  it('records the first refusals of a window in full and counts the rest in one summary', () => {
    const s = new RefusalSummarizer({ windowMs: 1000, fullPerWindow: 3 });
    const full = Array.from({ length: 1000 }, (_, i) =>
      s.note('mallory', i % 2 ? 'FORBIDDEN' : 'INVALID_MESSAGE', i % 900),
    );
    assert.equal(full.filter(Boolean).length, 3);
    assert.deepEqual(full.slice(0, 4), [true, true, true, false]);
    assert.deepEqual(s.due(999), [], 'the window has not ended');
    assert.deepEqual(s.due(1000), [
      {
        participant: 'mallory',
        from: 0,
        to: 899,
        counts: { FORBIDDEN: 500, INVALID_MESSAGE: 500 },
        recordedInFull: 3,
      },
    ]);
    assert.deepEqual(s.due(5000), [], 'a summary is given once');
    assert.equal(s.note('mallory', 'FORBIDDEN', 5001), true, 'a new window records in full again');
  });

  it('gives no summary when every refusal was recorded in full', () => {
    const s = new RefusalSummarizer({ windowMs: 1000, fullPerWindow: 3 });
    s.note('alice', 'STALE_ROUND', 0);
    s.note('alice', 'STALE_ROUND', 10);
    assert.deepEqual(s.due(2000), []);
  });

  it('keeps members apart, and `all` closes every window at once', () => {
    const s = new RefusalSummarizer({ windowMs: 60_000, fullPerWindow: 1 });
    for (let i = 0; i < 5; i++) s.note('a', 'FORBIDDEN', i);
    for (let i = 0; i < 2; i++) s.note('b', 'NOT_FOUND', 100 + i);
    const out = s.due(200, true);
    assert.deepEqual(
      out.map((x) => [x.participant, x.counts, x.recordedInFull]),
      [
        ['a', { FORBIDDEN: 5 }, 1],
        ['b', { NOT_FOUND: 2 }, 1],
      ],
    );
  });
});
