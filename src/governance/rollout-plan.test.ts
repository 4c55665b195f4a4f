/**
 * Tests of staged rollout plans (rollout-plan.ts): validation with dotted paths, the digest, gate rules
 * and their decision, and the verifiable canary draw (determinism, dependence on the checkpoint, an
 * independent re-implementation, uniformity over many seeds, refusals).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { encodeCanonicalFields } from '../crypto/canonical-bytes.ts';
import { sha256Hex } from '../crypto/digest.ts';
import {
  assignRowsToStages,
  canaryDrawSeed,
  computeRolloutPlanDigest,
  decideRolloutGate,
  drawCanarySites,
  parseGateRule,
  parseRolloutPlan,
  rolloutAlias,
} from './rollout-plan.ts';

// biome-ignore lint/suspicious/noExplicitAny: plan inputs are mutated freely as JSON
type Json = any;

const CANDIDATE = 'c'.repeat(64);
const PRODUCTION = 'b'.repeat(64);
const ROOT = 'a'.repeat(64);

function samplePlan(): Json {
  return {
    consortium: 'demo',
    title: 'Roll out the retrained model',
    candidate: CANDIDATE,
    production: PRODUCTION,
    stages: [
      {
        name: 'shadow',
        sites: ['hospital-a', 'hospital-b', 'clinic-c'],
        minRows: 500,
        gate: { rule: 'paired.accuracyDifference >= -0.01 and paired.mcnemarP >= 0.05' },
      },
      {
        name: 'canary',
        sites: { draw: 1 },
        minDurationHours: 24,
        gate: { rule: 'candidate.accuracy >= production.accuracy - 0.02' },
      },
      {
        name: 'full',
        sites: ['hospital-a', 'hospital-b', 'clinic-c'],
        minRows: 100,
        gate: { rule: 'candidate.accuracy >= 0.9' },
      },
    ],
    createdAt: '2026-01-31T12:00:00Z',
  };
}

function refusal(input: unknown): EntenteError {
  try {
    parseRolloutPlan(input);
  } catch (err) {
    assert.ok(err instanceof EntenteError);
    assert.equal(err.code, 'INVALID_CONFIG');
    return err;
  }
  assert.fail('the plan was accepted');
}

describe('parseRolloutPlan', () => {
  it('accepts a plan, freezes it, defaults the alias to production', () => {
    const plan = parseRolloutPlan(samplePlan());
    assert.equal(plan.stages.length, 3);
    assert.ok(Object.isFrozen(plan.stages[1]));
    assert.equal(rolloutAlias(plan), 'production');
    assert.equal(rolloutAlias(parseRolloutPlan({ ...samplePlan(), alias: 'triage' })), 'triage');
  });

  it('accepts a plan without shadow and a null production', () => {
    const p = samplePlan();
    p.stages.shift();
    p.production = null;
    assert.equal(parseRolloutPlan(p).stages[0]!.name, 'canary');
  });

  it('names every mistake by its dotted path', () => {
    const p = samplePlan();
    p.candidate = 'XYZ';
    p.stages[0].sites = ['hospital-a', 'hospital-a'];
    p.stages[2].extra = 1;
    delete p.title;
    const err = refusal(p);
    assert.equal(err.field, 'rollout.title');
    assert.match(err.message, /^rollout\.candidate: /m);
    assert.match(err.message, /^rollout\.stages\.0\.sites\.1: repeats a site$/m);
    assert.match(err.message, /^rollout\.stages\.2\.extra: is not a known field$/m);
    assert.match(err.message, /^rollout\.title: is required$/m);
    assert.doesNotMatch(err.message, /XYZ/);
  });

  it('requires the stages in order: shadow (optional), canary, full', () => {
    const p = samplePlan();
    p.stages = [p.stages[2], p.stages[1]];
    assert.match(refusal(p).message, /^rollout\.stages: must be, in order/m);
    const q = samplePlan();
    q.stages = [q.stages[0], q.stages[2]];
    assert.match(refusal(q).message, /^rollout\.stages: must be, in order/m);
  });

  it('draws canary sites and lists the others', () => {
    const p = samplePlan();
    p.stages[1].sites = ['hospital-a'];
    assert.match(refusal(p).message, /^rollout\.stages\.1\.sites: canary sites are drawn/m);
    const q = samplePlan();
    q.stages[2].sites = { draw: 2 };
    assert.match(refusal(q).message, /^rollout\.stages\.2\.sites: full sites are listed/m);
    const r = samplePlan();
    r.stages[1].sites = { draw: 0 };
    assert.equal(refusal(r).field, 'rollout.stages.1.sites.draw');
  });

  it('requires a minimum sample size or duration per stage', () => {
    const p = samplePlan();
    delete p.stages[1].minDurationHours;
    assert.match(refusal(p).message, /^rollout\.stages\.1\.minRows: a stage needs a minimum/m);
  });

  it('refuses a candidate that is the production version', () => {
    const p = samplePlan();
    p.production = CANDIDATE;
    assert.equal(refusal(p).field, 'rollout.candidate');
  });

  it('parses each gate rule, naming the stage and the position', () => {
    const p = samplePlan();
    p.stages[2].gate.rule = 'candidate.accuracy >=';
    const err = refusal(p);
    assert.equal(err.field, 'rollout.stages.2.gate.rule');
    assert.match(err.message, /at position \d+/);
    const q = samplePlan();
    q.stages[0].gate.rule = 'candidate.rocAuc >= 0.8';
    assert.match(refusal(q).message, /candidate\.rocAuc is not a rollout figure/);
    const r = samplePlan();
    r.stages[0].gate.rule = 'baseline.accuracy >= 0.8';
    assert.equal(refusal(r).field, 'rollout.stages.0.gate.rule');
    const s = samplePlan();
    s.stages[0].gate.rule = 'candidate.slice["old"].accuracy >= 0.8';
    assert.equal(refusal(s).field, 'rollout.stages.0.gate.rule');
  });

  it('digests the canonical JSON, independent of key order', () => {
    const plan = parseRolloutPlan(samplePlan());
    const digest = computeRolloutPlanDigest(plan);
    assert.equal(digest, sha256Hex(new TextEncoder().encode(canonicalizeJson(samplePlan()))));
    const reordered = Object.fromEntries(Object.entries(samplePlan()).reverse());
    assert.equal(computeRolloutPlanDigest(parseRolloutPlan(reordered)), digest);
    assert.notEqual(computeRolloutPlanDigest(parseRolloutPlan({ ...samplePlan(), title: 'x' })), digest);
  });
});

describe('decideRolloutGate', () => {
  const plan = parseRolloutPlan(samplePlan());
  const good = { paired: { accuracyDifference: 0.01, mcnemarP: 0.4 } };
  it('passes, fails or stays undetermined as the rule says on the figures', () => {
    assert.equal(decideRolloutGate(plan, 0, { rows: 600, figures: good, elapsedMs: 0 }).outcome, 'pass');
    const worse = { paired: { accuracyDifference: -0.05, mcnemarP: 0.001 } };
    assert.equal(decideRolloutGate(plan, 0, { rows: 600, figures: worse, elapsedMs: 0 }).outcome, 'fail');
    const partial = { paired: { accuracyDifference: 0.01, mcnemarP: null } };
    assert.equal(
      decideRolloutGate(plan, 0, { rows: 600, figures: partial, elapsedMs: 0 }).outcome,
      'undetermined',
    );
  });
  it('is undetermined before the minimum sample size or duration, whatever the figures', () => {
    const worse = { paired: { accuracyDifference: -0.5, mcnemarP: 0 } };
    const d = decideRolloutGate(plan, 0, { rows: 499, figures: worse, elapsedMs: 0 });
    assert.equal(d.outcome, 'undetermined');
    assert.match(d.reason, /500 rows/);
    const canary = { candidate: { accuracy: 0.9 }, production: { accuracy: 0.9 } };
    assert.equal(
      decideRolloutGate(plan, 1, { rows: 10, figures: canary, elapsedMs: 23 * 3_600_000 }).outcome,
      'undetermined',
    );
    assert.equal(
      decideRolloutGate(plan, 1, { rows: 10, figures: canary, elapsedMs: 24 * 3_600_000 }).outcome,
      'pass',
    );
  });
  it('with a bound evaluation plan, needs its pass decision too', () => {
    const p = samplePlan();
    p.stages[0].gate.evaluationPlan = 'e'.repeat(64);
    const bound = parseRolloutPlan(p);
    const at = (evaluationOutcome?: 'pass' | 'fail' | 'undetermined') =>
      decideRolloutGate(bound, 0, { rows: 600, figures: good, elapsedMs: 0, evaluationOutcome }).outcome;
    assert.equal(at('pass'), 'pass');
    assert.equal(at('fail'), 'fail');
    assert.equal(at(undefined), 'undetermined');
    assert.equal(at('undetermined'), 'undetermined');
  });
  it('refuses a stage the plan does not have', () => {
    assert.throws(() => decideRolloutGate(plan, 3, { rows: 1, figures: {}, elapsedMs: 0 }), {
      code: 'INVALID_ARGUMENT',
    });
  });
  it('reads only figures the rule may name', () => {
    assert.throws(() => parseGateRule('paired.unknown >= 1', 'gate'), { field: 'gate' });
    assert.equal(parseGateRule('paired.mcnemarP >= 0.05 and candidate.rows >= 10').clauses.length, 2);
  });
});

/** An independent re-implementation of the draw from its description, for comparison. */
function referenceDraw(planDigest: string, root: string, size: number, members: string[], count: number) {
  const field = (tag: number, bytes: Buffer): Buffer => {
    const head = Buffer.alloc(5);
    head[0] = tag;
    head.writeUInt32BE(bytes.length, 1);
    return Buffer.concat([head, bytes]);
  };
  const sizeBytes = Buffer.alloc(8);
  sizeBytes.writeBigUInt64BE(BigInt(size));
  const seed = createHash('sha256')
    .update(
      Buffer.concat([
        field(1, Buffer.from('entente/rollout/canary-draw/v1')),
        field(1, Buffer.from(planDigest)),
        field(2, Buffer.from(root, 'hex')),
        field(3, sizeBytes),
      ]),
    )
    .digest();
  const words: number[] = [];
  let counter = 0n;
  const word = (): number => {
    if (words.length === 0) {
      const c = Buffer.alloc(8);
      c.writeBigUInt64BE(counter++);
      const block = createHash('sha256').update(seed).update(c).digest();
      for (let k = 0; k < 32; k += 4) words.push(block.readUInt32BE(k));
    }
    return words.shift()!;
  };
  const list = [...new Set(members)].sort();
  for (let i = list.length - 1; i > 0; i--) {
    const n = i + 1;
    const limit = 2 ** 32 - (2 ** 32 % n);
    let x = word();
    while (x >= limit) x = word();
    const j = x % n;
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list.slice(0, count).sort();
}

describe('drawCanarySites', () => {
  const members = ['hospital-a', 'hospital-b', 'clinic-c', 'clinic-d', 'lab-e', 'lab-f'];
  const digest = 'd'.repeat(64);
  const input = { planDigest: digest, checkpointRootHash: ROOT, checkpointSize: 42, members, count: 2 };

  it('is deterministic and independent of the members order', () => {
    const a = drawCanarySites(input);
    assert.equal(a.length, 2);
    assert.deepEqual(drawCanarySites({ ...input, members: [...members].reverse() }), a);
    assert.deepEqual(a, [...a].sort());
    assert.ok(a.every((s) => members.includes(s)));
  });

  it('matches an independent implementation of its description', () => {
    for (let k = 0; k < 50; k++) {
      const root = sha256Hex(new TextEncoder().encode(`root ${k}`));
      const count = 1 + (k % members.length);
      assert.deepEqual(
        drawCanarySites({ ...input, checkpointRootHash: root, checkpointSize: 10 + k, count }),
        referenceDraw(digest, root, 10 + k, members, count),
      );
    }
  });

  it('differs between checkpoints and between plans', () => {
    const draws = new Set<string>();
    for (let k = 0; k < 20; k++) {
      const root = sha256Hex(new TextEncoder().encode(`checkpoint ${k}`));
      draws.add(drawCanarySites({ ...input, checkpointRootHash: root, count: 3 }).join(','));
    }
    // 20 draws of 3 out of 6 (20 possible sets): all equal would be a broken seed.
    assert.ok(draws.size >= 5, `only ${draws.size} distinct draws`);
    assert.notDeepEqual(canaryDrawSeed(input), canaryDrawSeed({ ...input, checkpointSize: 43 }));
    assert.notDeepEqual(canaryDrawSeed(input), canaryDrawSeed({ ...input, planDigest: 'e'.repeat(64) }));
  });

  it('draws each member about equally often over many checkpoints (chi-square bound)', () => {
    // 6000 seeds, one canary of 6: expected 1000 each; chi-square with 5 degrees of freedom has
    // P(X > 30) < 1e-5, so a correct draw fails this bound with negligible probability.
    const counts = new Map(members.map((m) => [m, 0]));
    const trials = 6000;
    for (let k = 0; k < trials; k++) {
      const root = sha256Hex(new TextEncoder().encode(`seed ${k}`));
      const [site] = drawCanarySites({ ...input, checkpointRootHash: root, count: 1 });
      counts.set(site!, counts.get(site!)! + 1);
    }
    const expected = trials / members.length;
    const chi = [...counts.values()].reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    assert.ok(chi < 30, `chi-square ${chi.toFixed(2)} over ${[...counts.values()].join(',')}`);
  });

  it('refuses a count larger than the members, naming the field', () => {
    assert.throws(() => drawCanarySites({ ...input, count: 7 }), {
      code: 'INVALID_ARGUMENT',
      field: 'count',
    });
    assert.throws(() => drawCanarySites({ ...input, count: 0 }), { field: 'count' });
    assert.throws(() => drawCanarySites({ ...input, members: [...members, 'lab-e'], count: 7 }), {
      field: 'count',
    });
    assert.throws(() => drawCanarySites({ ...input, checkpointRootHash: 'zz' }), {
      field: 'checkpointRootHash',
    });
    assert.throws(() => drawCanarySites({ ...input, checkpointSize: 0 }), { field: 'checkpointSize' });
    assert.throws(() => drawCanarySites({ ...input, planDigest: 'D'.repeat(64) }), { field: 'planDigest' });
  });
});

describe('assignRowsToStages', () => {
  it('puts each row in one stage, independently of the others, about evenly, the same way every time', () => {
    const digest = 'd'.repeat(64);
    const a = assignRowsToStages(digest, 3000, 3);
    assert.deepEqual(a, assignRowsToStages(digest, 3000, 3));
    // A prefix of the rows is assigned the same way (a row's stage depends on its position only).
    assert.deepEqual(a.subarray(0, 100), assignRowsToStages(digest, 100, 3));
    const counts = [0, 0, 0];
    for (const s of a) counts[s]! += 1;
    for (const c of counts) assert.ok(c > 900 && c < 1100, `counts ${counts}`);
    // Another rollout assigns the rows differently.
    const b = assignRowsToStages('e'.repeat(64), 3000, 3);
    let same = 0;
    for (let i = 0; i < 3000; i++) if (a[i] === b[i]) same++;
    assert.ok(same > 800 && same < 1200, `same ${same}`);
    assert.deepEqual([...assignRowsToStages(digest, 5, 1)], [0, 0, 0, 0, 0]);
  });

  it('row i is the first 4 bytes of SHA-256 of the canonical fields, mod the stage count', () => {
    const digest = '0'.repeat(64);
    const fields = encodeCanonicalFields(['entente/rollout/stage-rows/v1', digest, 7]);
    const expected = Number.parseInt(createHash('sha256').update(fields).digest('hex').slice(0, 8), 16) % 2;
    assert.equal(assignRowsToStages(digest, 8, 2)[7], expected);
  });

  it('refuses a malformed digest, row count or stage count naming the field', () => {
    for (const [args, field] of [
      [['x', 1, 2], 'rollout'],
      [['0'.repeat(64), -1, 2], 'rows'],
      [['0'.repeat(64), 1, 4], 'stageCount'],
    ] as const)
      assert.throws(
        () => assignRowsToStages(args[0], args[1], args[2]),
        (e: unknown) => e instanceof EntenteError && e.field === field,
      );
  });
});
