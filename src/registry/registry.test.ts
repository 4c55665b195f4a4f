import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import {
  buildRegistryCardSection,
  buildRegistryView,
  collectPrivacySpent,
  diffModelVersions,
  diffWeights,
  parseAliasName,
  type RegistryEntry,
  replayAliasMoves,
  resolveVersion,
} from './index.ts';

const h = (c: string): string => c.repeat(64);
const M0 = h('0');
const M1 = h('1');
const M2 = h('2');
const POLICY = h('4');
const PLAN = h('e');
const model = { kind: 'logistic', features: 3 };
const config = { id: 'run-1', model, dataSchemaDigest: h('d'), intendedUse: 'triage research only' };
const subjectOf = (alias: string, version: string, previous: string | null) => ({ alias, version, previous });

/** A small log: a policy, a run of two rounds, a release, an evaluation plan and its result. */
function baseLog(): RegistryEntry[] {
  const e: Omit<RegistryEntry, 'index'>[] = [
    { kind: 'policy-adopted', policySha256: POLICY, version: 1, proposal: h('a') },
    { kind: 'run-configured', run: 'run-1', configSha256: h('c'), config, policyIndex: 0, proposal: h('b') },
    { kind: 'model-initialized', run: 'run-1', round: 0, modelSha256: M0 },
    {
      kind: 'model-released',
      run: 'run-1',
      round: 1,
      modelIn: M0,
      modelSha256: M1,
      provenanceSha256: h('5'),
    },
    {
      kind: 'privacy-spent',
      run: 'run-1',
      round: 1,
      participant: 'site-b',
      mechanism: 'dp-sgd',
      neighbouring: 'x',
      epsilonRun: 0.5,
      epsilonTotal: 0.5,
      delta: 1e-5,
    },
    {
      kind: 'model-released',
      run: 'run-1',
      round: 2,
      modelIn: M1,
      modelSha256: M2,
      provenanceSha256: h('6'),
    },
    {
      kind: 'privacy-spent',
      run: 'run-1',
      round: 2,
      participant: 'site-b',
      mechanism: 'dp-sgd',
      neighbouring: 'x',
      epsilonRun: 0.9,
      epsilonTotal: 0.9,
      delta: 1e-5,
    },
    {
      kind: 'privacy-spent',
      run: 'run-1',
      round: 2,
      participant: 'site-a',
      mechanism: 'dp-sgd',
      neighbouring: 'x',
      epsilonRun: 0.7,
      epsilonTotal: 1.2,
      delta: 1e-5,
    },
    { kind: 'release-approved', run: 'run-1', modelSha256: M2, proposal: h('f') },
    {
      kind: 'proposal-created',
      proposal: h('9'),
      proposalKind: 'approve-evaluation-plan',
      subjectSha256: PLAN,
      subject: { name: 'plan' },
    },
    { kind: 'proposal-decided', proposal: h('9'), outcome: 'approved', signers: [], missing: '' },
    { kind: 'evaluation-result', plan: PLAN, label: 'model-A', metrics: { auc: 0.81 } },
    {
      kind: 'evaluation-unblinded',
      plan: PLAN,
      openings: [{ label: 'model-A', name: 'released', sha256: M2, salt: h('3') }],
    },
    { kind: 'evaluation-decision', plan: PLAN, outcome: 'pass', clauses: [] },
  ];
  return e.map((x, index) => ({ ...x, index }) as RegistryEntry);
}

/** Appends a move-alias proposal (approved or not) and, optionally, its alias-moved entry. */
function move(
  log: RegistryEntry[],
  id: string,
  subject: { alias: string; version: string; previous: string | null },
  opts: { approve?: boolean; apply?: boolean; applied?: Partial<typeof subject> } = {},
): void {
  const push = (x: Omit<RegistryEntry, 'index'>) => log.push({ ...x, index: log.length } as RegistryEntry);
  push({
    kind: 'proposal-created',
    proposal: id,
    proposalKind: 'move-alias',
    subjectSha256: sha256Hex(new TextEncoder().encode(canonicalizeJson(subject))),
    subject,
  });
  if (opts.approve !== false)
    push({ kind: 'proposal-decided', proposal: id, outcome: 'approved', signers: [], missing: '' });
  if (opts.apply !== false)
    push({ kind: 'alias-moved', ...subject, ...opts.applied, proposal: id, at: 1000 });
}

describe('model versions', () => {
  it('collects every version with its lineage, kind and evaluations', () => {
    const view = buildRegistryView(baseLog());
    assert.deepEqual(
      view.versions.map((v) => [v.id, v.kind, v.round, v.parent]),
      [
        [M0, 'initial', 0, null],
        [M1, 'round', 1, M0],
        [M2, 'released', 2, M1],
      ],
    );
    const v2 = view.versions[2]!;
    assert.equal(v2.policySha256, POLICY);
    assert.equal(v2.dataSchemaDigest, h('d'));
    assert.equal(v2.provenanceSha256, h('6'));
    assert.equal(v2.modelSpecSha256, sha256Hex(new TextEncoder().encode(canonicalizeJson(model))));
    assert.equal(v2.releaseEntry, 8);
    assert.deepEqual(v2.evaluations, [
      { plan: PLAN, label: 'model-A', name: 'released', metrics: { auc: 0.81 }, decision: 'pass', entry: 12 },
    ]);
    assert.deepEqual(view.versions[1]!.evaluations, []);
  });
});

describe('alias replay', () => {
  it('applies approved moves in order and keeps each alias history', () => {
    const log = baseLog();
    move(log, h('a'), subjectOf('candidate', M1, null));
    move(log, h('b'), subjectOf('candidate', M2, M1));
    move(log, h('c'), subjectOf('production', M2, null));
    const view = buildRegistryView(log);
    assert.deepEqual(view.problems, []);
    assert.deepEqual(
      view.aliases.map((a) => [a.alias, a.version, a.history.length]),
      [
        ['candidate', M2, 2],
        ['production', M2, 1],
      ],
    );
    assert.equal(resolveVersion(view, 'candidate').id, M2);
    assert.equal(resolveVersion(view, M1.slice(0, 10)).id, M1);
    assert.throws(() => resolveVersion(view, 'canary'), /NOT_FOUND|no model version/);
  });

  it('refuses a move whose proposal was not approved, and does not apply it', () => {
    const log = baseLog();
    move(log, h('a'), subjectOf('candidate', M1, null), { approve: false });
    const r = buildRegistryView(log);
    assert.equal(r.aliases.length, 0);
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0]!.message, /without\) the approval/);
  });

  it('refuses a move logged before its approval (out of order)', () => {
    const log = baseLog();
    const subject = subjectOf('candidate', M1, null);
    const n = log.length;
    log.push({ kind: 'proposal-created', index: n, proposal: h('a'), proposalKind: 'move-alias', subject });
    log.push({ kind: 'alias-moved', index: n + 1, ...subject, proposal: h('a') });
    log.push({ kind: 'proposal-decided', index: n + 2, proposal: h('a'), outcome: 'approved' });
    const r = replayAliasMoves(log, buildRegistryView(baseLog()).versions);
    assert.equal(r.aliases.length, 0);
    assert.equal(r.problems[0]!.index, n + 1);
  });

  it('refuses a move without any proposal, one that differs from its proposal, and a reused proposal', () => {
    const log = baseLog();
    log.push({
      kind: 'alias-moved',
      index: log.length,
      alias: 'candidate',
      version: M2,
      previous: null,
      proposal: h('7'),
    });
    move(log, h('a'), subjectOf('candidate', M1, null), { applied: { version: M2 } });
    move(log, h('b'), subjectOf('canary', M1, null));
    log.push({
      kind: 'alias-moved',
      index: log.length,
      alias: 'canary',
      version: M1,
      previous: M1,
      proposal: h('b'),
    });
    const r = buildRegistryView(log);
    assert.deepEqual(
      r.problems.map((p) => p.message.replace(/^alias "[^"]+": /, '')),
      [
        'moved without a move-alias proposal in the log before it',
        'the move is not the one its proposal approved',
        'its move-alias proposal was already applied',
      ],
    );
    assert.deepEqual(
      r.aliases.map((a) => a.alias),
      ['canary'],
    );
  });

  it('refuses a stale previous version and an unknown model version', () => {
    const log = baseLog();
    move(log, h('a'), subjectOf('candidate', M1, null));
    move(log, h('b'), subjectOf('candidate', M2, null)); // previous should be M1
    move(log, h('c'), subjectOf('canary', h('9'), null)); // not a model version
    const r = buildRegistryView(log);
    assert.equal(r.problems.length, 2);
    assert.match(r.problems[0]!.message, /starts from nothing, but the alias points at 111111111111/);
    assert.match(r.problems[1]!.message, /is not a model version recorded before the move/);
    assert.deepEqual(
      r.aliases.map((a) => [a.alias, a.version]),
      [['candidate', M1]],
    );
  });

  it('validates alias names', () => {
    assert.equal(parseAliasName('production-2'), 'production-2');
    for (const bad of ['', 'Prod', 'a_b', 'x'.repeat(41), 'a b', 'é'])
      assert.throws(() => parseAliasName(bad), /INVALID_ARGUMENT|alias: must be/);
  });
});

describe('model diff', () => {
  it('reports lineage differences and per-tensor L2 and max abs differences', () => {
    const view = buildRegistryView(baseLog());
    const [v0, v1] = [view.versions[0]!, view.versions[1]!];
    const a = [
      { name: 'w', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
      { name: 'b', shape: [2], data: new Float32Array([0, 0]) },
      { name: 'only-a', shape: [1], data: new Float32Array([1]) },
    ];
    const b = [
      { name: 'w', shape: [2, 2], data: new Float32Array([1, 2, 6, 0]) },
      { name: 'b', shape: [2], data: new Float32Array([0.5, 0]) },
    ];
    const d = diffModelVersions(v0, v1, { a, b });
    assert.deepEqual(
      d.lineage.map((x) => x.field),
      ['kind', 'round', 'parent', 'provenanceSha256'],
    );
    assert.deepEqual(d.tensors![0], { name: 'w', shapeA: [2, 2], shapeB: [2, 2], l2: 5, maxAbs: 4 });
    assert.deepEqual(d.tensors![1], { name: 'b', shapeA: [2], shapeB: [2], l2: 0.5, maxAbs: 0.5 });
    assert.deepEqual(d.tensors![2], { name: 'only-a', shapeA: [1], shapeB: null, l2: null, maxAbs: null });
    assert.equal(d.total!.l2, Math.sqrt(25.25));
    assert.equal(d.total!.maxAbs, 4);
    assert.equal(d.total!.comparable, false);
    assert.deepEqual(diffWeights(b, [{ name: 'w', shape: [4], data: new Float32Array(4) }])[0]!.l2, null);
    assert.equal(diffModelVersions(v1, v1).lineage.length, 0);
  });
});

describe('model card section', () => {
  it('holds lineage, evaluations with their plan, privacy spent, intended use and aliases', () => {
    const log = baseLog();
    move(log, h('a'), subjectOf('candidate', M2, null));
    const view = buildRegistryView(log);
    const version = view.versions[2]!;
    const card = buildRegistryCardSection({
      version,
      entries: log,
      plans: view.plans,
      runConfig: view.runConfigs.get('run-1'),
      aliases: view.aliases,
    });
    assert.equal(card.version, M2);
    assert.equal(card.lineage.kind, 'released');
    assert.deepEqual(card.evaluations[0]!.planDocument, { name: 'plan' });
    assert.equal(card.evaluations[0]!.decision, 'pass');
    assert.equal(card.intendedUse, 'triage research only');
    assert.deepEqual(card.aliases, ['candidate']);
    assert.equal(card.privacy.maxEpsilonRun, 0.9);
    assert.deepEqual(
      card.privacy.sites.map((s) => [s.participant, s.epsilonRun, s.events]),
      [
        ['site-a', 0.7, 1],
        ['site-b', 0.9, 2],
      ],
    );
  });

  it('says the privacy is unbounded when a site reported no ε', () => {
    const log = baseLog();
    log.push({
      kind: 'privacy-spent',
      index: log.length,
      run: 'run-1',
      participant: 'site-c',
      epsilonRun: null,
      delta: 1e-5,
      mechanism: 'x',
    });
    const p = collectPrivacySpent(log, 'run-1');
    assert.equal(p.maxEpsilonRun, null);
    assert.equal(collectPrivacySpent(log, 'other').sites.length, 0);
  });
});
