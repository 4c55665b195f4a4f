import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { evaluateQuorum, listQuorumMembers, type QuorumRule, quorumRuleSchema } from './quorum.ts';

const set = (...ids: string[]): ReadonlySet<string> => new Set(ids);
const twoOfThree: QuorumRule = { of: 2, members: ['a', 'b', 'c'] };

describe('evaluateQuorum', () => {
  it('is satisfied with exactly N signers and not with N−1', () => {
    assert.deepEqual(evaluateQuorum(twoOfThree, set('a', 'c')), { satisfied: true, missing: '' });
    const one = evaluateQuorum(twoOfThree, set('b'));
    assert.equal(one.satisfied, false);
    assert.equal(one.missing, '1 more of {a, c}');
    assert.equal(evaluateQuorum(twoOfThree, set()).missing, '2 more of {a, b, c}');
  });

  it('counts a signer once, even when named twice in a group', () => {
    // A Set cannot hold a signer twice; a group that names a member twice still counts it once.
    assert.equal(evaluateQuorum(twoOfThree, new Set(['a', 'a'])).satisfied, false);
    assert.equal(evaluateQuorum({ of: 2, members: ['a', 'a', { member: 'a' }] }, set('a')).satisfied, false);
  });

  it('ignores signers outside the group', () => {
    const r = evaluateQuorum(twoOfThree, set('a', 'x', 'y', 'z'));
    assert.equal(r.satisfied, false);
    assert.equal(r.missing, '1 more of {b, c}');
  });

  it('evaluates nested groups: 2-of-{A, 1-of-{B,C}, D}', () => {
    const rule: QuorumRule = { of: 2, members: ['a', { of: 1, members: ['b', 'c'] }, 'd'] };
    assert.equal(evaluateQuorum(rule, set('a', 'c')).satisfied, true);
    assert.equal(evaluateQuorum(rule, set('c', 'd')).satisfied, true);
    assert.equal(evaluateQuorum(rule, set('a', 'd')).satisfied, true);
    // B and C together only satisfy the one nested entry.
    const bc = evaluateQuorum(rule, set('b', 'c'));
    assert.equal(bc.satisfied, false);
    assert.equal(bc.missing, '1 more of {a, d}');
    assert.equal(evaluateQuorum(rule, set('a')).missing, '1 more of {(1 more of {b, c}), d}');
  });

  it('evaluates all (2 of {A,B,C} and auditor X) and any (1 of ...)', () => {
    const rule: QuorumRule = { all: [twoOfThree, { member: 'x' }] };
    assert.equal(evaluateQuorum(rule, set('a', 'b', 'x')).satisfied, true);
    assert.deepEqual(evaluateQuorum(rule, set('a', 'b', 'c')), { satisfied: false, missing: 'x' });
    assert.deepEqual(evaluateQuorum(rule, set('a')), { satisfied: false, missing: '1 more of {b, c} and x' });
    const any: QuorumRule = { of: 1, members: ['a', 'b'] };
    assert.equal(evaluateQuorum(any, set('b')).satisfied, true);
    assert.deepEqual(evaluateQuorum(any, set('c')), { satisfied: false, missing: '1 more of {a, b}' });
    assert.deepEqual(evaluateQuorum({ member: 'x' }, set()), { satisfied: false, missing: 'x' });
  });

  it('throws INVALID_ARGUMENT for a value that is not a rule', () => {
    assert.throws(
      () => evaluateQuorum({ any: ['a'] } as unknown as QuorumRule, set('a')),
      (e: unknown) => (e as { code?: string; field?: string }).code === 'INVALID_ARGUMENT',
    );
    assert.throws(() => evaluateQuorum({ of: 1, members: 'a' } as unknown as QuorumRule, set('a')), {
      code: 'INVALID_ARGUMENT',
      field: 'rule',
    });
  });
});

const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
const ruleArb: fc.Arbitrary<QuorumRule> = fc.letrec<{ rule: QuorumRule; entry: string | QuorumRule }>(
  (tie) => ({
    rule: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constantFrom(...ids).map((member) => ({ member })),
      fc
        .array(tie('entry'), { minLength: 1, maxLength: 4 })
        .chain((members) => fc.integer({ min: 1, max: members.length }).map((of) => ({ of, members }))),
      fc.array(tie('rule'), { minLength: 1, maxLength: 3 }).map((all) => ({ all })),
    ),
    entry: fc.oneof({ depthSize: 'small' }, fc.constantFrom(...ids), tie('rule')),
  }),
).rule;
const signersArb = fc.uniqueArray(fc.constantFrom(...ids, 'outsider'), { maxLength: 7 });

describe('evaluateQuorum laws', () => {
  it('adding a signer never turns satisfied into unsatisfied', () => {
    fc.assert(
      fc.property(ruleArb, signersArb, fc.constantFrom(...ids, 'outsider'), (rule, signers, extra) => {
        if (evaluateQuorum(rule, new Set(signers)).satisfied)
          assert.equal(evaluateQuorum(rule, new Set([...signers, extra])).satisfied, true);
      }),
      { numRuns: 300 },
    );
  });

  it('removing a signer never turns unsatisfied into satisfied', () => {
    fc.assert(
      fc.property(ruleArb, signersArb, fc.nat(), (rule, signers, pick) => {
        if (signers.length === 0 || evaluateQuorum(rule, new Set(signers)).satisfied) return;
        const fewer = signers.filter((_, i) => i !== pick % signers.length);
        assert.equal(evaluateQuorum(rule, new Set(fewer)).satisfied, false);
      }),
      { numRuns: 300 },
    );
  });

  it('all members signing satisfies any rule without repeated leaves; nobody signing satisfies none', () => {
    fc.assert(
      fc.property(ruleArb, (rule) => {
        assert.equal(evaluateQuorum(rule, new Set()).satisfied, false);
        if (quorumRuleSchema.safeParse(rule).success)
          assert.equal(evaluateQuorum(rule, new Set(ids)).satisfied, true);
        const { missing } = evaluateQuorum(rule, new Set());
        assert.ok(missing.length > 0);
      }),
      { numRuns: 300 },
    );
  });
});

describe('quorumRuleSchema and listQuorumMembers', () => {
  it('accepts the three forms and refuses unsatisfiable or repeating groups', () => {
    assert.equal(quorumRuleSchema.safeParse({ all: [twoOfThree, { member: 'x' }] }).success, true);
    const tooMany = quorumRuleSchema.safeParse({ of: 3, members: ['a', 'b'] });
    assert.equal(tooMany.success, false);
    assert.deepEqual(
      tooMany.error?.issues.map((i) => i.path),
      [['of']],
    );
    assert.equal(quorumRuleSchema.safeParse({ of: 2, members: ['a', { member: 'a' }] }).success, false);
    assert.equal(quorumRuleSchema.safeParse({ of: 0, members: ['a'] }).success, false);
    assert.equal(quorumRuleSchema.safeParse({ all: [] }).success, false);
    assert.equal(quorumRuleSchema.safeParse({ member: 'a', all: [] }).success, false);
  });

  it('lists every named member with its path, skipping malformed parts', () => {
    assert.deepEqual(
      listQuorumMembers({ all: [{ of: 1, members: ['a', { member: 'b' }] }, { member: 'x' }, 7] }),
      [
        { member: 'a', path: 'all.0.members.0' },
        { member: 'b', path: 'all.0.members.1.member' },
        { member: 'x', path: 'all.1.member' },
      ],
    );
    assert.deepEqual(listQuorumMembers('a'), []);
  });
});
