/**
 * Tests of pre-registered evaluation plans (evaluation-plan.ts): the plan document's validation with
 * paths, its digest, the decision-rule grammar and its evaluation (unit and property tests), and the
 * blinding commitments and their openings.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import {
  assignBlindLabels,
  blindLabels,
  buildEvaluationDecisionBody,
  commitBlinding,
  computeEvaluationPlanDigest,
  decisionValuesOf,
  evaluateDecisionRule,
  headlineFigures,
  parseDecisionRule,
  parseEvaluationPlan,
  verifyUnblinding,
} from './evaluation-plan.ts';

// biome-ignore lint/suspicious/noExplicitAny: plan inputs are mutated freely as JSON
type Json = any;

const CANDIDATE = 'c'.repeat(64);
const BASELINE = 'b'.repeat(64);

function planInput(): Json {
  return {
    consortium: 'demo',
    title: 'candidate vs baseline',
    models: [
      { name: 'candidate', sha256: CANDIDATE },
      { name: 'baseline', sha256: BASELINE },
    ],
    metrics: ['rocAuc', 'ece', 'accuracy'],
    evaluation: {
      numClasses: 2,
      scoreBins: 1000,
      calibrationBins: 10,
      sensitive: { attribute: 'group', values: ['a', 'b'] },
      slices: ['age>=50'],
    },
    hypothesis: 'the candidate is not worse than the baseline and is calibrated',
    decisionRule: 'candidate.rocAuc >= baseline.rocAuc - 0.01 and candidate.ece <= 0.05',
    createdAt: '2026-12-08T01:00:00Z',
  };
}

/** Runs `fn`, expects an EntenteError of `code` whose field is `field`; returns it. */
function refused(fn: () => unknown, code: string, field: string): EntenteError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof EntenteError, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(err.field, field, err.message);
    return err;
  }
  assert.fail(`expected ${code} at ${field}`);
}

describe('parseEvaluationPlan', () => {
  it('accepts the example plan, frozen, with its digest = SHA-256 of the canonical JSON', () => {
    const plan = parseEvaluationPlan(planInput());
    assert.ok(Object.isFrozen(plan) && Object.isFrozen(plan.models[0]));
    const digest = computeEvaluationPlanDigest(plan);
    assert.equal(digest, sha256Hex(new TextEncoder().encode(canonicalizeJson(planInput()))));
    // Key order does not matter; any change of content does.
    const reordered = Object.fromEntries(Object.entries(planInput()).reverse());
    assert.equal(computeEvaluationPlanDigest(parseEvaluationPlan(reordered)), digest);
    assert.notEqual(
      computeEvaluationPlanDigest(parseEvaluationPlan({ ...planInput(), title: 'other' })),
      digest,
    );
  });

  it('names the path of each mistake', () => {
    const cases: [string, (p: Json) => void][] = [
      ['plan.models.1.sha256', (p) => (p.models[1].sha256 = 'B'.repeat(64))],
      ['plan.models.1.name', (p) => (p.models[1].name = 'candidate')],
      ['plan.models.1.sha256', (p) => (p.models[1].sha256 = CANDIDATE)],
      ['plan.models.0.name', (p) => (p.models[0].name = 'Candidate')],
      ['plan.models', (p) => (p.models = [])],
      [
        'plan.models',
        (p) =>
          (p.models = Array.from({ length: 9 }, (_, i) => ({ name: `m${i}`, sha256: `${i}`.repeat(64) }))),
      ],
      ['plan.metrics.1', (p) => (p.metrics[1] = 'f1')],
      ['plan.metrics', (p) => (p.metrics = ['ece', 'ece', 'rocAuc'])],
      ['plan.evaluation', (p) => (p.evaluation = [1, 2])],
      ['plan.evaluation', (p) => (p.evaluation = { blob: 'x'.repeat(17_000) })],
      ['plan.hypothesis', (p) => (p.hypothesis = 'h'.repeat(2001))],
      ['plan.createdAt', (p) => (p.createdAt = '2026-02-30T00:00:00Z')],
      ['plan.dataSchemaDigest', (p) => (p.dataSchemaDigest = 'short')],
      ['plan.extra', (p) => (p.extra = 1)],
      ['plan.title', (p) => delete p.title],
      ['plan.decisionRule', (p) => (p.decisionRule = 'candidate.f1 >= 0.5')],
    ];
    for (const [field, mutate] of cases) {
      const input = planInput();
      mutate(input);
      refused(() => parseEvaluationPlan(input), 'INVALID_CONFIG', field);
    }
  });

  it('lists every mistake, one per line, without echoing refused values', () => {
    const input = planInput();
    input.models[0].sha256 = 'SECRET';
    input.metrics = ['nope'];
    const err = refused(() => parseEvaluationPlan(input), 'INVALID_CONFIG', 'plan.models.0.sha256');
    assert.match(err.message, /plan\.metrics\.0/);
    assert.equal(err.message.split('\n').length, 2);
    assert.doesNotMatch(err.message, /SECRET/);
  });

  it('accepts macroF1, eight models and a data schema digest', () => {
    const input = planInput();
    input.metrics.push('macroF1');
    input.models = Array.from({ length: 8 }, (_, i) => ({ name: `m-${i}`, sha256: `${i}`.repeat(64) }));
    input.decisionRule = 'm-0.macroF1 > m-7.macroF1';
    input.dataSchemaDigest = 'd'.repeat(64);
    assert.equal(parseEvaluationPlan(input).models.length, 8);
  });
});

describe('parseDecisionRule', () => {
  const plan = parseEvaluationPlan(planInput());

  it('parses clauses, offsets, numbers and slices', () => {
    const rule = parseDecisionRule(
      'candidate.rocAuc >= baseline.rocAuc - 0.01 and candidate.ece<=0.05 and candidate.slice["age>=50"].accuracy > 0.7+0.05 and 1e-3 < candidate.accuracy',
      plan,
    );
    assert.equal(rule.clauses.length, 4);
    assert.deepEqual(rule.clauses[0], {
      text: 'candidate.rocAuc >= baseline.rocAuc - 0.01',
      left: { term: { kind: 'metric', model: 'candidate', metric: 'rocAuc' }, offset: 0 },
      op: '>=',
      right: { term: { kind: 'metric', model: 'baseline', metric: 'rocAuc' }, offset: -0.01 },
    });
    assert.equal(rule.clauses[1]!.text, 'candidate.ece<=0.05');
    assert.deepEqual(rule.clauses[2]!.left.term, {
      kind: 'metric',
      model: 'candidate',
      metric: 'accuracy',
      slice: 'age>=50',
    });
    assert.equal(rule.clauses[2]!.right.offset, 0.05);
    assert.deepEqual(rule.clauses[3]!.left.term, { kind: 'number', value: 0.001 });
  });

  it('reads a hyphenated model name followed by an offset without spaces', () => {
    const input = planInput();
    input.models[0].name = 'cand-v2';
    input.decisionRule = 'cand-v2.rocAuc>=baseline.rocAuc-0.01';
    const rule = parseDecisionRule(input.decisionRule, parseEvaluationPlan(input));
    assert.equal(rule.clauses[0]!.left.term.kind === 'metric' && rule.clauses[0]!.left.term.model, 'cand-v2');
    assert.equal(rule.clauses[0]!.right.offset, -0.01);
  });

  it('refuses undeclared names and bad syntax, naming plan.decisionRule and the position', () => {
    const cases: [string, number, RegExp][] = [
      ['other.rocAuc >= 0.5', 0, /model "other" is not declared/],
      ['candidate.brier >= 0.5', 10, /metric "brier" is not declared/],
      ['candidate.slice["young"].ece <= 0.1', 10, /slice "young" is not declared/],
      ['candidate.rocAuc = 0.5', 17, /expected one of/],
      ['candidate.rocAuc >= 0.5 or candidate.ece < 1', 24, /expected "and" or the end/],
      ['candidate.rocAuc >= 0.5 and', 24, /expected "and" or the end/],
      ['candidate >= 0.5', 9, /expected "\." after the model name/],
      ['candidate.rocAuc >= baseline.rocAuc - x', 38, /expected a number/],
      ['', 0, /non-empty/],
    ];
    for (const [text, position, message] of cases) {
      const err = refused(() => parseDecisionRule(text, plan), 'INVALID_CONFIG', 'plan.decisionRule');
      assert.match(err.message, new RegExp(`at position ${position}:`), `${text}: ${err.message}`);
      assert.match(err.message, message);
    }
    const many = Array.from({ length: 33 }, () => 'candidate.ece < 1').join(' and ');
    assert.match(
      refused(() => parseDecisionRule(many, plan), 'INVALID_CONFIG', 'plan.decisionRule').message,
      /at most 32/,
    );
  });

  it('never throws anything but INVALID_CONFIG on arbitrary text (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (text) => {
        try {
          parseDecisionRule(text, plan);
        } catch (err) {
          assert.ok(err instanceof EntenteError && err.code === 'INVALID_CONFIG');
        }
      }),
    );
  });
});

describe('evaluateDecisionRule', () => {
  const plan = parseEvaluationPlan(planInput());
  const rule = parseDecisionRule(plan.decisionRule, plan);
  const table = (figures: Record<string, Record<string, number | null>>) => (model: string, metric: string) =>
    figures[model]?.[metric] ?? null;

  it('passes, fails, or is undetermined', () => {
    const pass = evaluateDecisionRule(
      rule,
      table({ candidate: { rocAuc: 0.9, ece: 0.04 }, baseline: { rocAuc: 0.905 } }),
    );
    assert.equal(pass.outcome, 'pass');
    assert.deepEqual(pass.clauses[0], {
      text: 'candidate.rocAuc >= baseline.rocAuc - 0.01',
      left: 0.9,
      right: 0.905 - 0.01,
      holds: true,
    });
    const fail = evaluateDecisionRule(
      rule,
      table({ candidate: { rocAuc: 0.9, ece: 0.06 }, baseline: { rocAuc: 0.905 } }),
    );
    assert.equal(fail.outcome, 'fail');
    assert.deepEqual(
      fail.clauses.map((c) => c.holds),
      [true, false],
    );
    const unknown = evaluateDecisionRule(
      rule,
      table({ candidate: { rocAuc: 0.5, ece: null }, baseline: { rocAuc: 0.9 } }),
    );
    assert.equal(unknown.outcome, 'undetermined');
    assert.deepEqual(
      unknown.clauses.map((c) => c.holds),
      [false, null],
    );
    const nan = evaluateDecisionRule(
      rule,
      table({ candidate: { rocAuc: Number.NaN, ece: 0 }, baseline: { rocAuc: 0.9 } }),
    );
    assert.equal(nan.outcome, 'undetermined');
  });

  it('agrees with the arithmetic for every operator and offset (property)', () => {
    const ops = ['>=', '<=', '>', '<'] as const;
    const compare = {
      '>=': (a: number, b: number) => a >= b,
      '<=': (a: number, b: number) => a <= b,
      '>': (a: number, b: number) => a > b,
      '<': (a: number, b: number) => a < b,
    };
    fc.assert(
      fc.property(
        fc.constantFrom(...ops),
        fc.double({ min: -1, max: 1, noNaN: true }),
        fc.double({ min: -1, max: 1, noNaN: true }),
        fc.integer({ min: -100, max: 100 }),
        (op, a, b, k) => {
          const offset = k / 100;
          const text = `candidate.accuracy ${op} baseline.accuracy ${offset < 0 ? '-' : '+'} ${Math.abs(offset)}`;
          const out = evaluateDecisionRule(
            parseDecisionRule(text, plan),
            table({ candidate: { accuracy: a }, baseline: { accuracy: b } }),
          );
          const right = b + (offset < 0 ? -Math.abs(offset) : Math.abs(offset));
          assert.equal(out.clauses[0]!.holds, compare[op](a, right));
          assert.equal(out.outcome, compare[op](a, right) ? 'pass' : 'fail');
        },
      ),
    );
  });

  it('a conjunction passes exactly when every clause holds (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 6 }),
        (thresholds) => {
          const text = thresholds.map((t) => `candidate.accuracy >= ${t}`).join(' and ');
          const out = evaluateDecisionRule(
            parseDecisionRule(text, plan),
            table({ candidate: { accuracy: 0.5 } }),
          );
          assert.equal(
            out.outcome === 'pass',
            thresholds.every((t) => 0.5 >= t),
          );
        },
      ),
    );
  });
});

describe('blinding', () => {
  const plan = parseEvaluationPlan(planInput());
  const digest = computeEvaluationPlanDigest(plan);
  const salts = (n: number, seed: number) =>
    Array.from({ length: n }, (_, i) => new Uint8Array(32).fill(seed + i));

  it('labels model-A…, assigned by a permutation the rng draws', () => {
    assert.deepEqual(blindLabels(3), ['model-A', 'model-B', 'model-C']);
    assert.throws(() => blindLabels(9), EntenteError);
    const firsts = new Set<string>();
    for (let s = 0; s < 40; s++) {
      const a = assignBlindLabels(plan, createSeededRng(`blind/${s}`));
      assert.deepEqual(
        a.map((x) => x.label),
        ['model-A', 'model-B'],
      );
      assert.deepEqual(a.map((x) => x.name).sort(), ['baseline', 'candidate']);
      firsts.add(a[0]!.name);
    }
    assert.equal(firsts.size, 2, 'both models are drawn first for some seed');
  });

  it('commitments open with the right salt and not otherwise', () => {
    const assignments = assignBlindLabels(plan, createSeededRng('blind'));
    const { commitments, openings } = commitBlinding({ planDigest: digest, assignments, salts: salts(2, 1) });
    assert.deepEqual(verifyUnblinding(digest, commitments, openings, plan), { ok: true, problems: [] });
    // Same assignment, other salts: other commitments (hiding needs the salt).
    const again = commitBlinding({ planDigest: digest, assignments, salts: salts(2, 7) });
    assert.notEqual(again.commitments[0]!.commitment, commitments[0]!.commitment);
    // A swapped opening (the other model under a label) does not open.
    const swapped = openings.map((o, i) => ({
      ...o,
      name: openings[1 - i]!.name,
      sha256: openings[1 - i]!.sha256,
    }));
    const v = verifyUnblinding(digest, commitments, swapped, plan);
    assert.equal(v.ok, false);
    assert.match(v.problems.join('\n'), /does not match its commitment/);
    // Another plan's digest: no opening matches.
    assert.equal(verifyUnblinding('e'.repeat(64), commitments, openings).ok, false);
    // A wrong salt, a missing label, a model not in the plan.
    assert.equal(
      verifyUnblinding(digest, commitments, [{ ...openings[0]!, salt: '00'.repeat(32) }, openings[1]!]).ok,
      false,
    );
    assert.match(
      verifyUnblinding(digest, commitments, [openings[0]!]).problems.join(),
      /committed but not opened/,
    );
    const foreign = commitBlinding({
      planDigest: digest,
      assignments: [assignments[0]!, { label: 'model-B', name: 'baseline', sha256: 'f'.repeat(64) }],
      salts: salts(2, 1),
    });
    assert.match(
      verifyUnblinding(digest, foreign.commitments, foreign.openings, plan).problems.join(),
      /opens to a model the plan does not name/,
    );
  });

  it('refuses short salts and repeated labels', () => {
    const assignments = assignBlindLabels(plan, createSeededRng('blind'));
    refused(
      () =>
        commitBlinding({ planDigest: digest, assignments, salts: [new Uint8Array(32), new Uint8Array(16)] }),
      'INVALID_ARGUMENT',
      'salts.1',
    );
    refused(
      () =>
        commitBlinding({
          planDigest: digest,
          assignments: [assignments[0]!, assignments[0]!],
          salts: salts(2, 0),
        }),
      'INVALID_ARGUMENT',
      'assignments.1.label',
    );
    refused(
      () => commitBlinding({ planDigest: 'x', assignments, salts: salts(2, 0) }),
      'INVALID_ARGUMENT',
      'planDigest',
    );
  });

  it('the decision body reads figures through the unblinding', () => {
    const assignments = assignBlindLabels(plan, createSeededRng('blind/decision'));
    const { openings } = commitBlinding({ planDigest: digest, assignments, salts: salts(2, 3) });
    const labelOf = (name: string) => openings.find((o) => o.name === name)!.label;
    const results = new Map([
      [labelOf('candidate'), { metrics: { rocAuc: 0.9, ece: 0.03, accuracy: 0.8 } }],
      [labelOf('baseline'), { metrics: { rocAuc: 0.95, ece: 0.02, accuracy: 0.85 } }],
    ]);
    const body = buildEvaluationDecisionBody(digest, plan, decisionValuesOf(openings, results));
    assert.equal(body.plan, digest);
    assert.equal(body.outcome, 'fail');
    assert.deepEqual(body.clauses[0], {
      text: 'candidate.rocAuc >= baseline.rocAuc - 0.01',
      left: 0.9,
      right: 0.95 - 0.01,
      holds: false,
    });
  });
});

describe('headlineFigures', () => {
  it("reads the plan's metrics overall and per declared slice from a metrics report", () => {
    const input = planInput();
    input.metrics = ['rocAuc', 'macroF1', 'demographicParityDifference', 'ece'];
    input.decisionRule = 'candidate.rocAuc > 0.5';
    const plan = parseEvaluationPlan(input);
    const overall = { rocAuc: 0.9, ece: Number.NaN, macro: { f1: 0.7 }, accuracy: 0.8 };
    const report = {
      overall,
      fairness: { demographicParityDifference: 0.12 },
      slices: { 'age>=50': { rocAuc: 0.85, ece: 0.04, macro: { f1: null } }, other: { rocAuc: 0.1 } },
    };
    assert.deepEqual(headlineFigures(plan, report), {
      metrics: { rocAuc: 0.9, macroF1: 0.7, demographicParityDifference: 0.12, ece: null },
      sliceMetrics: {
        'age>=50': { rocAuc: 0.85, macroF1: null, demographicParityDifference: null, ece: 0.04 },
      },
    });
    assert.deepEqual(
      headlineFigures(plan, { overall, fairness: null, slices: {} }).metrics.demographicParityDifference,
      null,
    );
  });
});
