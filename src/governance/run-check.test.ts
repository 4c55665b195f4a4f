import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type Policy, parsePolicy } from './policy.ts';
import {
  checkRunAgainstPolicy,
  computeSecAggMargin,
  type PlanReason,
  type RunFacts,
  type RunPolicyCheck,
  runPolicyChecks,
  SECAGG_MARGIN_CHECK,
} from './run-check.ts';

const digestA = 'a'.repeat(64);
const only = { member: 'op' };
const approvals = { adoptPolicy: only, admitMember: only, startRun: only, releaseModel: only };
const members = { op: { roles: ['coordinator-operator', 'institution'] } };

/** Every check of policy.exchange set. */
const strict: Policy = parsePolicy({
  version: 1,
  consortium: 'c',
  members,
  exchange: {
    tensors: 'model-deltas',
    metrics: ['accuracy', 'loss'],
    maxRounds: 100,
    minParticipantsPerRound: 3,
    secureAggregation: 'required',
    differentialPrivacy: { required: true, minNoiseMultiplier: 0.8, maxEpsilon: 8, delta: 1e-6 },
    clipping: { maxClipNorm: 1 },
    dataSchemaDigests: [digestA, 'f'.repeat(64)],
  },
  agreements: [],
  approvals,
});

/** Every optional check left unset. */
const lenient: Policy = parsePolicy({
  version: 1,
  consortium: 'c',
  members,
  exchange: {
    tensors: 'model-weights',
    metrics: [],
    maxRounds: 10,
    minParticipantsPerRound: 3,
    secureAggregation: 'optional',
    differentialPrivacy: { required: false },
    clipping: {},
    dataSchemaDigests: [digestA],
  },
  agreements: [],
  approvals,
});

const goodRun: RunFacts = {
  id: 'run-1',
  rounds: 50,
  minParticipants: 5,
  secureAggregation: { protocol: 'secagg', threshold: 4 },
  sampleDp: { noiseMultiplier: 1, clipNorm: 0.5 },
  clientDp: { noiseMultiplier: 1.2, clipNorm: 1 },
  projectedEpsilon: 3.2,
  delta: 1e-6,
  dataSchemaDigest: digestA,
  metrics: ['loss'],
  tensors: 'model-deltas',
};

const failing = (reasons: readonly PlanReason[]): string[] =>
  reasons.filter((r) => !r.ok).map((r) => r.check);

describe('checkRunAgainstPolicy', () => {
  it('reports every check ok, in the fixed order, for a run within the policy', () => {
    const reasons = checkRunAgainstPolicy(strict, goodRun);
    assert.deepEqual(
      reasons.map((r) => r.check),
      [...runPolicyChecks],
    );
    assert.deepEqual(failing(reasons), []);
    for (const r of reasons) assert.ok(r.message.includes(r.check), r.message);
    assert.equal(reasons[0]!.message, 'the run asks for 50 rounds; policy.exchange.maxRounds allows 100');
  });

  it('accepts the boundary values (equal to the limits)', () => {
    const run: RunFacts = {
      ...goodRun,
      rounds: 100,
      minParticipants: 3,
      sampleDp: { noiseMultiplier: 0.8, clipNorm: 1 },
      clientDp: undefined,
      projectedEpsilon: 8,
    };
    assert.deepEqual(failing(checkRunAgainstPolicy(strict, run)), []);
  });

  it('fails exactly the broken check, naming the policy field', () => {
    const cases: Array<[string, Partial<RunFacts>, RunPolicyCheck, RegExp]> = [
      [
        'too many rounds',
        { rounds: 200 },
        'policy.exchange.maxRounds',
        /^the run asks for 200 rounds; policy\.exchange\.maxRounds allows 100$/,
      ],
      [
        'too few participants',
        { minParticipants: 2 },
        'policy.exchange.minParticipantsPerRound',
        /at least 2 participants per round; .*requires at least 3/,
      ],
      [
        'no secure aggregation',
        { secureAggregation: { protocol: 'none' } },
        'policy.exchange.secureAggregation',
        /does not use secure aggregation; .* is required/,
      ],
      [
        'no DP at all',
        { sampleDp: undefined, clientDp: undefined },
        'policy.exchange.differentialPrivacy.required',
        /uses no differential privacy; .*required is true/,
      ],
      [
        'sample-level noise too low',
        { sampleDp: { noiseMultiplier: 0.5, clipNorm: 0.5 } },
        'policy.exchange.differentialPrivacy.minNoiseMultiplier',
        /sample-level DP noise multiplier 0\.5 .*at least 0\.8/,
      ],
      [
        'client-level noise too low',
        { clientDp: { noiseMultiplier: 0.7, clipNorm: 1 } },
        'policy.exchange.differentialPrivacy.minNoiseMultiplier',
        /client-level DP noise multiplier 0\.7/,
      ],
      [
        'ε too large',
        { projectedEpsilon: 9.5 },
        'policy.exchange.differentialPrivacy.maxEpsilon',
        /ε = 9\.5 .*maxEpsilon allows 8/,
      ],
      [
        'ε unbounded',
        { projectedEpsilon: null },
        'policy.exchange.differentialPrivacy.maxEpsilon',
        /unbounded/,
      ],
      [
        'δ above the policy δ',
        { delta: 1e-5 },
        'policy.exchange.differentialPrivacy.maxEpsilon',
        /δ = 0\.00001.*applies only at δ ≤ 0\.000001 \(policy\.exchange\.differentialPrivacy\.delta\)/,
      ],
      [
        'sample clip too large',
        { sampleDp: { noiseMultiplier: 1, clipNorm: 2 } },
        'policy.exchange.clipping.maxClipNorm',
        /sample-level DP clipping norm 2 .*at most 1/,
      ],
      [
        'client clip too large',
        { clientDp: { noiseMultiplier: 1.2, clipNorm: 1.5 } },
        'policy.exchange.clipping.maxClipNorm',
        /client-level DP clipping norm 1\.5/,
      ],
      [
        'no data schema',
        { dataSchemaDigest: undefined },
        'policy.exchange.dataSchemaDigests',
        /names no data schema digest/,
      ],
      [
        'unlisted data schema',
        { dataSchemaDigest: 'b'.repeat(64) },
        'policy.exchange.dataSchemaDigests',
        /b{64} is not listed/,
      ],
      [
        'unlisted metric',
        { metrics: ['loss', 'auc', 'auc'] },
        'policy.exchange.metrics',
        /reports "auc", not listed in policy\.exchange\.metrics \("accuracy", "loss"\)$/,
      ],
      [
        'other tensors',
        { tensors: 'model-weights' },
        'policy.exchange.tensors',
        /exchanges model-weights; policy\.exchange\.tensors is model-deltas/,
      ],
    ];
    for (const [name, change, check, message] of cases) {
      const reasons = checkRunAgainstPolicy(strict, { ...goodRun, ...change });
      assert.equal(reasons.length, runPolicyChecks.length, name);
      assert.deepEqual(failing(reasons), [check], name);
      const r = reasons.find((x) => x.check === check)!;
      assert.match(r.message, message, name);
      assert.ok(r.message.includes(check), `${name}: ${r.message}`);
    }
  });

  it('reports every broken check at once', () => {
    const run: RunFacts = {
      ...goodRun,
      rounds: 101,
      minParticipants: 1,
      secureAggregation: { protocol: 'none' },
      sampleDp: undefined,
      clientDp: undefined,
      projectedEpsilon: null,
      dataSchemaDigest: undefined,
      metrics: ['auc'],
      tensors: 'model-weights',
    };
    // With no DP mechanism the noise and clipping limits have nothing to apply to.
    assert.deepEqual(
      failing(checkRunAgainstPolicy(strict, run)),
      runPolicyChecks.filter((c) => !/minNoiseMultiplier|maxClipNorm/.test(c)),
    );
  });

  it('says a check is not set when the policy leaves it unset', () => {
    const run: RunFacts = {
      ...goodRun,
      rounds: 10,
      secureAggregation: { protocol: 'none' },
      sampleDp: undefined,
      clientDp: undefined,
      projectedEpsilon: null,
      metrics: [],
      tensors: 'model-weights',
    };
    const reasons = checkRunAgainstPolicy(lenient, run);
    assert.deepEqual(failing(reasons), []);
    const byCheck = new Map(reasons.map((r) => [r.check, r.message]));
    assert.match(byCheck.get('policy.exchange.differentialPrivacy.maxEpsilon')!, /is not set/);
    assert.match(byCheck.get('policy.exchange.clipping.maxClipNorm')!, /is not set/);
    assert.match(byCheck.get('policy.exchange.secureAggregation')!, /is optional/);
    assert.match(byCheck.get('policy.exchange.metrics')!, /\(none\)/);
  });

  it('refuses malformed run facts, naming the field', () => {
    const cases: Array<[unknown, string]> = [
      [{ ...goodRun, rounds: 0 }, 'run.rounds'],
      [{ ...goodRun, minParticipants: 2.5 }, 'run.minParticipants'],
      [{ ...goodRun, secureAggregation: { protocol: 'magic' } }, 'run.secureAggregation.protocol'],
      [{ ...goodRun, sampleDp: { noiseMultiplier: 1, clipNorm: -1 } }, 'run.sampleDp.clipNorm'],
      [
        { ...goodRun, clientDp: { noiseMultiplier: Number.NaN, clipNorm: 1 } },
        'run.clientDp.noiseMultiplier',
      ],
      [{ ...goodRun, projectedEpsilon: Number.NaN }, 'run.projectedEpsilon'],
      [{ ...goodRun, delta: 1 }, 'run.delta'],
      [{ ...goodRun, metrics: 'loss' }, 'run.metrics'],
      [{ ...goodRun, id: '' }, 'run.id'],
    ];
    for (const [run, field] of cases)
      assert.throws(() => checkRunAgainstPolicy(strict, run as RunFacts), {
        code: 'INVALID_ARGUMENT',
        field,
      });
  });

  it('the rounds check is ok exactly when rounds ≤ maxRounds (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), (rounds) => {
        const reasons = checkRunAgainstPolicy(strict, { ...goodRun, rounds });
        assert.equal(reasons[0]!.ok, rounds <= 100);
        assert.deepEqual(failing(reasons.slice(1)), []);
      }),
    );
  });
});

describe('computeSecAggMargin', () => {
  it('counts how many may drop out', () => {
    assert.deepEqual(computeSecAggMargin(5, 3), {
      check: SECAGG_MARGIN_CHECK,
      ok: true,
      message:
        '5 participants available, threshold 3: up to 2 may drop out before the round aborts (margin 2)',
    });
  });

  it('is ok at margin 0 but says no dropout can be tolerated', () => {
    assert.deepEqual(computeSecAggMargin(3, 3), {
      check: SECAGG_MARGIN_CHECK,
      ok: true,
      message: '3 participants available, threshold 3: no dropout can be tolerated (margin 0)',
    });
  });

  it('fails when fewer participants than the threshold are available', () => {
    const one = computeSecAggMargin(2, 3);
    assert.equal(one.ok, false);
    assert.equal(
      one.message,
      '2 participants available, threshold 3: the round cannot complete: 1 more participant is needed (margin -1)',
    );
    assert.match(
      computeSecAggMargin(1, 4).message,
      /^1 participant available, .*3 more participants are needed \(margin -3\)$/,
    );
    assert.equal(computeSecAggMargin(0, 1).ok, false);
  });

  it('ok exactly when available ≥ threshold (property)', () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.integer({ min: 1, max: 1000 }), (available, threshold) => {
        const r = computeSecAggMargin(available, threshold);
        assert.equal(r.ok, available >= threshold);
        assert.ok(r.message.endsWith(`(margin ${available - threshold})`), r.message);
      }),
    );
  });

  it('refuses counts that are not integers in range', () => {
    assert.throws(() => computeSecAggMargin(-1, 3), { code: 'INVALID_ARGUMENT', field: 'available' });
    assert.throws(() => computeSecAggMargin(3, 0), { code: 'INVALID_ARGUMENT', field: 'threshold' });
    assert.throws(() => computeSecAggMargin(3, 1.5), { code: 'INVALID_ARGUMENT', field: 'threshold' });
  });
});
