/**
 * decideServing (serving-assignment.ts): each branch of the rule, the last started rollout of the alias
 * deciding, another alias's rollouts ignored.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type RolloutView, parseRolloutPlan } from '../governance/index.ts';
import { decideServing } from './serving-assignment.ts';

const V1 = '1'.repeat(64);
const V2 = '2'.repeat(64);
const V3 = '3'.repeat(64);
const R1 = 'a'.repeat(64);
const R2 = 'b'.repeat(64);

function view(
  candidate: string,
  production: string | null,
  over: Partial<RolloutView> = {},
  alias?: string,
): RolloutView {
  const plan = parseRolloutPlan({
    consortium: 'x',
    title: 'roll out',
    candidate,
    production,
    ...(alias ? { alias } : {}),
    stages: [
      { name: 'shadow', sites: ['a', 'b', 'c'], minRows: 10, gate: { rule: 'candidate.accuracy >= 0.5' } },
      { name: 'canary', sites: { draw: 1 }, minRows: 10, gate: { rule: 'candidate.accuracy >= 0.5' } },
      { name: 'full', sites: ['a', 'b', 'c'], minRows: 10, gate: { rule: 'candidate.accuracy >= 0.5' } },
    ],
    createdAt: '2026-01-31T12:00:00Z',
  });
  return { plan, stage: 'shadow', sites: null, gate: null, history: [], status: 'approved', ...over };
}

const running = (stage: 'shadow' | 'canary' | 'full', sites: string[]): Partial<RolloutView> => ({
  stage,
  sites,
  status: 'running',
  history: [
    ...(stage === 'shadow' ? [] : [{ stage: 'shadow', sites: ['a', 'b', 'c'] }]),
    ...(stage === 'full' ? [{ stage: 'canary', sites: ['a'] }] : []),
    { stage, sites },
  ],
});

const aliases = new Map([['production', V1]]);
const none = new Set<string>();
const decide = (views: [string, RolloutView][], tripped = none, alias = 'production') =>
  decideServing(new Map(views), aliases, 'a', tripped, alias);

describe('which version a site serves', () => {
  it('no rollout started: the alias’s version in the log, or none', () => {
    assert.deepEqual(decide([]), {
      alias: 'production',
      version: V1,
      rollout: null,
      stage: null,
      reason: "no rollout of production started: the alias's version in the verified log",
    });
    // Approved but not started: still the alias's version.
    assert.equal(decide([[R1, view(V2, V1)]]).version, V1);
    assert.equal(decide([], none, 'staging').version, null);
  });

  it('canary or full with this site among the stage’s sites: the candidate', () => {
    for (const stage of ['canary', 'full'] as const) {
      const got = decide([[R1, view(V2, V1, running(stage, ['a', 'b']))]]);
      assert.equal(got.version, V2);
      assert.equal(got.rollout, R1);
      assert.equal(got.stage, stage);
    }
  });

  it('shadow, or a stage without this site: the production version', () => {
    assert.equal(decide([[R1, view(V2, V1, running('shadow', ['a', 'b', 'c']))]]).version, V1);
    const other = decide([[R1, view(V2, V1, running('canary', ['b']))]]);
    assert.equal(other.version, V1);
    assert.match(other.reason, /without this site/);
  });

  it('the latest started stage counts between a passed gate and the next stage’s start', () => {
    // Canary advanced: the view names full as the next stage (sites null); the canary sites keep serving.
    const advanced = { ...running('canary', ['a']), stage: 'full' as const, sites: null };
    assert.equal(decide([[R1, view(V2, V1, advanced)]]).version, V2);
  });

  it('tripped here or rolled back: the production version; completed: the candidate', () => {
    const canary = view(V2, V1, running('canary', ['a']));
    assert.equal(decide([[R1, canary]], new Set([R1])).version, V1);
    assert.match(decide([[R1, canary]], new Set([R1])).reason, /circuit breaker/);
    assert.equal(decide([[R1, { ...canary, status: 'rolled back' }]]).version, V1);
    assert.equal(decide([[R1, { ...canary, status: 'completed' }]]).version, V2);
    // A completed rollout stays served even if this site's breaker tripped in an earlier stage.
    assert.equal(decide([[R1, { ...canary, status: 'completed' }]], new Set([R1])).version, V2);
    // A first deployment rolled back: nothing to serve.
    assert.equal(
      decide([[R1, view(V2, null, { ...running('canary', ['a']), status: 'rolled back' })]]).version,
      null,
    );
  });

  it('the last started rollout of the alias decides; another alias’s rollouts do not', () => {
    const first = view(V2, V1, { ...running('full', ['a']), status: 'completed' });
    const second = view(V3, V2, running('canary', ['b']));
    const got = decide([
      [R1, first],
      [R2, second],
    ]);
    assert.deepEqual([got.version, got.rollout], [V2, R2]);
    // A rollout of another alias, even later, leaves this alias alone.
    const staging = view(V3, V2, running('canary', ['a']), 'staging');
    assert.deepEqual(
      [
        decide([
          [R1, first],
          [R2, staging],
        ]).rollout,
      ],
      [R1],
    );
    assert.equal(
      decide(
        [
          [R1, first],
          [R2, staging],
        ],
        none,
        'staging',
      ).version,
      V3,
    );
  });
});
