/**
 * Tests of the incident-drill trail (drill-trail.ts): an honest log of two drills replays without a
 * problem, with each drill's steps and its time to recover from the log's own times, and a fact line;
 * each tampering an auditor must catch (an edited time to recover, edited step counts, a completion
 * before the resolution, a drill adopting an incident it did not raise, a resolution whose completion
 * is missing, a step logged after the resolution) is reported at the entry it breaks, also by the
 * governance trail `audit verify` runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { logEntryBodies } from '../audit/log-entry.ts';
import { medianOf, replayDrills } from './drill-trail.ts';
import { verifyGovernanceTrail } from './verify-trail.ts';

type Entry = { kind: string; index: number; at: number; [field: string]: unknown };
const CURRENT = 'ab'.repeat(32);
const TARGET = 'cd'.repeat(32);

/** Entries with consecutive indexes; each body is checked against its kind's schema. */
function log(...items: [string, number, Record<string, unknown>][]): Entry[] {
  return items.map(([kind, at, body], index) => {
    const schema = (logEntryBodies as Record<string, { parse(v: unknown): unknown }>)[kind]!;
    schema.parse(body);
    return { kind, index, at, prev: '', ...body };
  });
}

const raised = (incident: string, at: number): [string, number, Record<string, unknown>] => [
  'incident-raised',
  at,
  { incident, raisedBy: 'alpha', reason: 'drill' },
];
const started = (drill: string, incident: string, at: number): [string, number, Record<string, unknown>] => [
  'drill-started',
  at,
  { drill, incident, alias: 'production', by: 'alpha', scheduled: false },
];
const step = (
  drill: string,
  name: string,
  ok: boolean,
  at: number,
): [string, number, Record<string, unknown>] => [
  'drill-step',
  at,
  {
    drill,
    step: name,
    ok,
    detail: ok ? 'held' : 'failed',
    ...(name === 'rollback-rehearsal' ? { current: CURRENT, target: ok ? TARGET : null } : {}),
  },
];
const resolved = (incident: string, at: number): [string, number, Record<string, unknown>] => [
  'incident-resolved',
  at,
  { incident, proposal: null, resolvedBy: ['operator'] },
];
const completed = (
  drill: string,
  incident: string,
  at: number,
  timeToRecoverMs: number,
  stepsOk: number,
  stepsFailed: number,
): [string, number, Record<string, unknown>] => [
  'drill-completed',
  at,
  { drill, incident, timeToRecoverMs, stepsOk, stepsFailed },
];

/** Two honest drills: the first recovers in 5 s with both steps held, the second in 9 s with one failed. */
function honest(): Entry[] {
  return log(
    ['log-created', 0, { origin: 'o', consortium: 'c', logKey: 'k', witnesses: [], quorum: 0 }],
    raised('inc-1', 1_000),
    started('drill-1', 'inc-1', 1_000),
    step('drill-1', 'paused', true, 1_010),
    step('drill-1', 'rollback-rehearsal', true, 1_020),
    resolved('inc-1', 6_000),
    completed('drill-1', 'inc-1', 6_000, 5_000, 2, 0),
    raised('inc-2', 10_000),
    started('drill-2', 'inc-2', 10_000),
    step('drill-2', 'paused', true, 10_010),
    step('drill-2', 'rollback-rehearsal', false, 10_020),
    resolved('inc-2', 19_000),
    completed('drill-2', 'inc-2', 19_001, 9_000, 1, 1),
  );
}

const messages = (entries: Entry[]) =>
  replayDrills(entries).problems.map((p) => [p.index, p.message] as const);

describe('drill trail', () => {
  it('replays honest drills: steps, status, time to recover from the logged times, one fact line', () => {
    const r = replayDrills(honest());
    assert.deepEqual(r.problems, []);
    assert.deepEqual(
      r.drills.map((d) => [d.drill, d.incident, d.status, d.timeToRecoverMs, d.raisedAt, d.resolvedAt]),
      [
        ['drill-1', 'inc-1', 'completed', 5_000, 1_000, 6_000],
        ['drill-2', 'inc-2', 'completed', 9_000, 10_000, 19_000],
      ],
    );
    assert.deepEqual(
      r.drills[1]!.steps.map((s) => [s.step, s.ok, s.target ?? null]),
      [
        ['paused', true, null],
        ['rollback-rehearsal', false, null],
      ],
    );
    assert.deepEqual(r.facts, [
      'drills: 2 started, 2 completed, median time to recover 7.0 s; 1 failed steps',
    ]);
    // The governance trail `audit verify` runs reports the same, without a problem.
    const trail = verifyGovernanceTrail(honest());
    assert.deepEqual(trail.problems, []);
    assert.ok(trail.facts.includes(r.facts[0]!), trail.facts.join('\n'));
    assert.equal(trail.drills.length, 2);
  });

  it('a drill still under way is running, with no problem and no time to recover yet', () => {
    const entries = honest().slice(0, 5);
    const r = replayDrills(entries);
    assert.deepEqual(r.problems, []);
    assert.equal(r.drills[0]!.status, 'running');
    assert.equal(r.drills[0]!.timeToRecoverMs, null);
    assert.deepEqual(r.facts, ['drills: 1 started, 0 completed, no time to recover yet; 0 failed steps']);
  });

  it('catches a tampered timeToRecoverMs (here and in the governance trail)', () => {
    const entries = honest();
    entries[6] = { ...entries[6]!, timeToRecoverMs: 500 };
    assert.deepEqual(messages(entries), [
      [
        6,
        'drill drill-1: timeToRecoverMs 500 is not the logged resolution time minus the raising time (5000)',
      ],
    ]);
    const trail = verifyGovernanceTrail(entries);
    assert.deepEqual(
      trail.problems.map((p) => p.index),
      [6],
    );
  });

  it('catches an edited raising or resolution time (the recorded figure no longer fits)', () => {
    const entries = honest();
    entries[5] = { ...entries[5]!, at: 5_500 };
    assert.match(messages(entries)[0]![1], /timeToRecoverMs 5000 is not .* \(4500\)/);
  });

  it('catches step counts that are not the logged steps', () => {
    const entries = honest();
    entries[12] = { ...entries[12]!, stepsOk: 2, stepsFailed: 0 };
    assert.deepEqual(messages(entries), [
      [12, 'drill drill-2: 2 steps ok and 0 failed, but the log holds 1 ok and 1 failed'],
    ]);
  });

  it('catches a completion logged before the resolution, and a resolution never completed', () => {
    const e = honest();
    const swapped = [...e.slice(0, 5), { ...e[6]!, index: 5 }, { ...e[5]!, index: 6 }, ...e.slice(7)];
    assert.deepEqual(messages(swapped), [
      [5, 'drill drill-1 completed before its incident inc-1 was resolved'],
    ]);
    const missing = honest().filter((x) => x.index !== 6);
    assert.deepEqual(messages(missing), [
      [5, 'drill drill-1: its incident was resolved but no drill-completed follows'],
    ]);
  });

  it('catches a drill naming an incident it did not raise, a repeated drill, a step after the resolution', () => {
    const e = honest();
    // drill-2 names inc-1 (someone else's, already resolved) instead of the incident just raised.
    const adopted = e.map((x) => (x.index === 8 ? { ...x, incident: 'inc-1' } : x));
    const found = messages(adopted);
    assert.deepEqual(found[0], [8, 'drill drill-2 does not follow the raising of its incident inc-1']);
    const late = log(
      raised('inc-1', 1_000),
      started('drill-1', 'inc-1', 1_000),
      step('drill-1', 'paused', true, 1_010),
      resolved('inc-1', 2_000),
      step('drill-1', 'rollback-rehearsal', true, 2_001),
      completed('drill-1', 'inc-1', 2_002, 1_000, 2, 0),
    );
    assert.deepEqual(messages(late), [
      [4, 'drill drill-1: step rollback-rehearsal logged after its incident was resolved'],
    ]);
    const twice = log(
      raised('inc-1', 1_000),
      started('drill-1', 'inc-1', 1_000),
      raised('inc-2', 2_000),
      started('drill-1', 'inc-2', 2_000),
    );
    assert.deepEqual(messages(twice), [[3, 'drill drill-1 was already started']]);
  });

  it('medianOf: odd and even counts, empty', () => {
    assert.equal(medianOf([3, 1, 2]), 2);
    assert.equal(medianOf([4, 1, 3, 2]), 2.5);
    assert.equal(medianOf([]), undefined);
  });
});
