/**
 * The model registry end to end: a governed consortium (in-process coordinator over mutual TLS, three
 * participant processes with DP-SGD) trains a two-round run, a quorum releases its final model; then the
 * `entente` CLI, as separate processes, lists the versions with their lineage, proposes moving
 * `candidate` to the released model (one signature is not the quorum: the alias does not move), a second
 * institution signs and the move is applied and logged, `model show candidate` names the released model,
 * `model export --card` writes the safetensors and a card with lineage, evaluations, privacy spent and
 * intended use, `model export --alias candidate` writes the version the alias points at (an alias on a
 * round's model, an unknown alias, or an alias with a run are refused; offline too), `model diff`
 * compares two versions, and `audit verify` re-checks the alias move.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import { computeSchemaDigest, parseDataSchema } from '../../src/data/index.ts';
import { demoRunConfig } from '../../src/simulation/index.ts';
import { type ChildHandle, spawnEntente, stopChild } from '../../src/simulation/process-federation.ts';
import { SCHEMA_PATH, waitForRunCompleted } from './fixtures.ts';
import {
  type GovernedConsortium,
  OPERATOR,
  startGovernedConsortium,
  startSite,
  writeSiteData,
} from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;
const RUN_ID = 'registry-run';
const INTENDED_USE = 'research on breast cancer triage; not for diagnosis';
const DATA_SCHEMA_DIGEST = computeSchemaDigest(
  parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))),
);

async function runCli(args: readonly string[]): Promise<{ code: number | null; out: string; err: string }> {
  const handle = spawnEntente('cli', args, { env: { ENTENTE_LOG_LEVEL: 'warn' } });
  let out = '';
  handle.child.stdout?.setEncoding('utf8');
  handle.child.stdout?.on('data', (d: string) => {
    out += d;
  });
  const timer = setTimeout(() => handle.child.kill('SIGKILL'), 60_000);
  const code = await handle.exited;
  clearTimeout(timer);
  return { code, out, err: handle.stderr() };
}

interface Listed {
  id: string;
  kind: string;
  run: string;
  round: number;
  parent: string | null;
  policySha256: string | null;
  dataSchemaDigest: string | null;
  modelSpecSha256: string | null;
  provenanceSha256: string | null;
  aliases: string[];
}

describe('model registry: versions, aliases moved by quorum, cards, audit', { timeout: 240_000 }, () => {
  let gov: GovernedConsortium;
  let outDir = '';
  const participants: ChildHandle[] = [];
  let released = '';
  let versions: Listed[] = [];
  const as = (member: string): string[] =>
    member === OPERATOR ? ['--workspace', gov.dir] : ['--site', gov.sites.get(member)!.dir];
  const cli = async (args: readonly string[], expectCode = 0) => {
    const r = await runCli(args);
    assert.equal(r.code, expectCode, `entente ${args.join(' ')}\n${r.out}\n${r.err}`);
    return r;
  };

  before(async () => {
    gov = await startGovernedConsortium({ institutions: INSTITUTIONS, dataSchemaDigest: DATA_SCHEMA_DIGEST });
    writeSiteData(gov.sites, INSTITUTIONS);
    for (const id of INSTITUTIONS) {
      const site = gov.sites.get(id)!;
      participants.push(startSite(site, join(site.dir, 'data.csv')));
    }
    outDir = mkdtempSync(join(tmpdir(), 'entente-registry-'));
    const config = {
      ...demoRunConfig(2, 'registry', { noiseMultiplier: 1.2 }),
      id: RUN_ID,
      dataSchemaDigest: DATA_SCHEMA_DIGEST,
      intendedUse: INTENDED_USE,
    };
    const r = await gov.operator.postJson<{ proposal: string }>('/v1/runs', config);
    for (const m of [OPERATOR, 'alpha', 'beta']) await gov.sign(m, r.body.proposal);
    let view: { status: string; model: { sha256: string } };
    try {
      view = await waitForRunCompleted(gov.operator, RUN_ID, 150_000);
    } catch (err) {
      const logs = participants.map((p) => `--- ${p.name}\n${p.stderr().slice(-1500)}`).join('\n');
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
    released = view.model.sha256;
    const p = await gov.propose('alpha', 'release-model', { run: RUN_ID });
    await gov.sign('alpha', p.id);
    assert.equal((await gov.sign('gamma', p.id)).status, 'approved');
  });

  after(async () => {
    await Promise.all(participants.map((p) => stopChild(p)));
    await gov?.close();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  it('1. model list: the initial, per-round and released versions with their lineage', async () => {
    const r = await cli(['model', 'list', '--json', ...as(OPERATOR)]);
    versions = (JSON.parse(r.out) as { versions: Listed[] }).versions;
    assert.deepEqual(
      versions.map((v) => [v.kind, v.run, v.round]),
      [
        ['initial', RUN_ID, 0],
        ['round', RUN_ID, 1],
        ['released', RUN_ID, 2],
      ],
    );
    assert.equal(versions[2]!.id, released);
    assert.equal(versions[1]!.parent, versions[0]!.id);
    assert.equal(versions[2]!.parent, versions[1]!.id);
    for (const v of versions) {
      assert.equal(v.dataSchemaDigest, DATA_SCHEMA_DIGEST);
      assert.match(v.policySha256 ?? '', /^[0-9a-f]{64}$/);
      assert.match(v.modelSpecSha256 ?? '', /^[0-9a-f]{64}$/);
      assert.deepEqual(v.aliases, []);
    }
    assert.equal(versions[0]!.provenanceSha256, null);
    assert.match(versions[2]!.provenanceSha256 ?? '', /^[0-9a-f]{64}$/);
    // An auditor-like reader (an institution) sees the same list; the table form names the kinds.
    const table = await cli(['model', 'list', ...as('beta')]);
    assert.match(table.out, /released/);
    assert.match(table.out, new RegExp(released.slice(0, 12)));
  });

  it('2. one signature is not the quorum: candidate does not move', async () => {
    const r = await cli([
      'model',
      'alias',
      'propose',
      'candidate',
      released.slice(0, 16),
      '--sign',
      '--json',
      ...as('alpha'),
    ]);
    const view = JSON.parse(r.out) as {
      status: string;
      subject: { alias: string; version: string; previous: null };
    };
    assert.equal(view.status, 'open');
    assert.deepEqual(view.subject, { alias: 'candidate', version: released, previous: null });
    const show = await cli(['model', 'show', 'candidate', ...as(OPERATOR)], 4);
    assert.match(show.err, /^entente: NOT_FOUND: version: no model version or alias "candidate"/m);
    const aliases = (await gov.operator.getJson<{ aliases: unknown[] }>('/v1/registry/aliases')).body!;
    assert.deepEqual(aliases.aliases, []);
    // The same member signing again does not count (CONFLICT, exit 5); a bad name is a usage error.
    const again = await cli(
      ['model', 'alias', 'sign', 'candidate', released.slice(0, 16), ...as('alpha')],
      5,
    );
    assert.match(again.err, /^entente: CONFLICT: /m);
    const bad = await cli(['model', 'alias', 'propose', 'Prod!', released, ...as('alpha')], 2);
    assert.match(bad.err, /^entente: INVALID_ARGUMENT: name: /m);
    const unknown = await cli(['model', 'alias', 'propose', 'canary', 'ab'.repeat(32), ...as('alpha')], 4);
    assert.match(unknown.err, /^entente: NOT_FOUND: subject\.version: /m);
  });

  it('3. a second institution completes the quorum: candidate points at the released model', async () => {
    const r = await cli([
      'model',
      'alias',
      'sign',
      'candidate',
      released.slice(0, 16),
      '--json',
      ...as('beta'),
    ]);
    assert.equal((JSON.parse(r.out) as { status: string }).status, 'approved');
    const show = await cli(['model', 'show', 'candidate', '--json', ...as(OPERATOR)]);
    const detail = JSON.parse(show.out) as {
      version: Listed;
      card: {
        intendedUse: string;
        privacy: { sites: { participant: string; epsilonRun: number }[]; maxEpsilonRun: number };
      };
    };
    assert.equal(detail.version.id, released);
    assert.deepEqual(detail.version.aliases, ['candidate']);
    assert.equal(detail.card.intendedUse, INTENDED_USE);
    assert.deepEqual(
      detail.card.privacy.sites.map((s) => s.participant),
      [...INSTITUTIONS],
    );
    assert.ok(detail.card.privacy.maxEpsilonRun > 0);
    // Moving it again needs a new proposal from the version it now points at.
    const stale = await gov
      .propose('alpha', 'move-alias', { alias: 'candidate', version: versions[1]!.id, previous: null })
      .then(
        () => 'accepted',
        (err: { code?: string }) => err.code,
      );
    assert.equal(stale, 'CONFLICT');
    const entries = (
      await gov.operator.getJson<{ entries: { body: string }[] }>('/v1/log/entries?start=0&end=10000')
    ).body!.entries;
    const moves = entries
      .map(
        (e) =>
          JSON.parse(Buffer.from(e.body, 'base64').toString('utf8')) as {
            kind: string;
            alias?: string;
            version?: string;
          },
      )
      .filter((e) => e.kind === 'alias-moved');
    assert.deepEqual(
      moves.map((m) => [m.alias, m.version]),
      [['candidate', released]],
    );
  });

  it('3b. of two approved-looking moves from the same version, only the first applies', async () => {
    const first = await gov.propose('alpha', 'move-alias', { alias: 'canary', version: versions[1]!.id });
    const second = await gov.propose('gamma', 'move-alias', { alias: 'canary', version: released });
    await gov.sign('alpha', first.id);
    await gov.sign('gamma', second.id);
    assert.equal((await gov.sign('beta', first.id)).status, 'approved');
    // canary moved: the second proposal starts from nothing, which is no longer true.
    const late = await cli(['proposal', 'sign', second.id, ...as('beta')], 5);
    assert.match(late.err, /^entente: CONFLICT: proposal: alias "canary" now points at /m);
    const aliases = (
      await gov.operator.getJson<{ aliases: { alias: string; version: string }[] }>('/v1/registry/aliases')
    ).body!.aliases;
    assert.deepEqual(
      aliases.map((a) => [a.alias, a.version]),
      [
        ['canary', versions[1]!.id],
        ['candidate', released],
      ],
    );
  });

  it('4. model export --card writes the safetensors and a card with lineage, privacy and intended use', async () => {
    const out = join(outDir, 'model.safetensors');
    const cardFile = join(outDir, 'candidate-card.json');
    await cli(['model', 'export', '--run', RUN_ID, '--out', out, '--card', cardFile, ...as(OPERATOR)]);
    const bytes = readFileSync(out);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), released);
    const card = JSON.parse(readFileSync(cardFile, 'utf8')) as {
      format: string;
      model: { sha256: string };
      registry: {
        version: string;
        lineage: { kind: string; run: string; round: number; dataSchemaDigest: string };
        privacy: { sites: unknown[] };
        intendedUse: string;
        aliases: string[];
        evaluations: unknown[];
      };
    };
    assert.equal(card.format, 'entente-model-card/1');
    assert.equal(card.model.sha256, released);
    assert.equal(card.registry.version, released);
    assert.deepEqual(
      [card.registry.lineage.kind, card.registry.lineage.run, card.registry.lineage.round],
      ['released', RUN_ID, 2],
    );
    assert.equal(card.registry.lineage.dataSchemaDigest, DATA_SCHEMA_DIGEST);
    assert.equal(card.registry.privacy.sites.length, 3);
    assert.equal(card.registry.intendedUse, INTENDED_USE);
    assert.deepEqual(card.registry.aliases, ['candidate']);
    assert.deepEqual(card.registry.evaluations, []);
    // Without --card the card is written next to the model, as before.
    const out2 = join(outDir, 'again.safetensors');
    await cli(['model', 'export', RUN_ID, '--out', out2, ...as(OPERATOR)]);
    assert.equal(
      (JSON.parse(readFileSync(join(outDir, 'again.card.json'), 'utf8')) as { registry: { version: string } })
        .registry.version,
      released,
    );
  });

  it("4b. model export --alias: the version the alias points at, and only a run's final model", async () => {
    const out = join(outDir, 'by-alias.safetensors');
    const r = await cli(['model', 'export', '--alias', 'candidate', '--out', out, '--json', ...as(OPERATOR)]);
    assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), released);
    const card = JSON.parse(r.out) as {
      run: string;
      model: { sha256: string };
      registry: { aliases: string[] };
    };
    assert.deepEqual([card.run, card.model.sha256, card.registry.aliases], [RUN_ID, released, ['candidate']]);
    // canary points at round 1's model, which is not the run's final model: nothing is written.
    const canary = join(outDir, 'canary.safetensors');
    const notFinal = await cli(['model', 'export', '--alias', 'canary', '--out', canary, ...as(OPERATOR)], 4);
    assert.match(
      notFinal.err,
      new RegExp(
        `^entente: NOT_FOUND: --alias: "canary" points at ${versions[1]!.id}, the round 1 model of run "${RUN_ID}", not its final model`,
        'm',
      ),
    );
    assert.throws(() => readFileSync(canary), /ENOENT/);
    const unknown = await cli(['model', 'export', '--alias', 'nope', '--out', canary, ...as(OPERATOR)], 4);
    assert.match(unknown.err, /^entente: NOT_FOUND: --alias: no alias "nope" in the registry/m);
    const both = await cli(
      ['model', 'export', RUN_ID, '--alias', 'candidate', '--out', canary, ...as(OPERATOR)],
      2,
    );
    assert.match(
      both.err,
      /^entente: INVALID_ARGUMENT: --alias: name the model by a run or by an alias, not both/m,
    );
    const malformed = await cli(['model', 'export', '--alias', 'Prod!', '--out', canary, ...as(OPERATOR)], 2);
    assert.match(malformed.err, /^entente: INVALID_ARGUMENT: --alias: must be 1 to 40 characters/m);
  });

  it('5. model diff: lineage fields, and the weights where both models may be fetched', async () => {
    const r = await cli(['model', 'diff', versions[1]!.id, 'candidate', '--json', ...as(OPERATOR)]);
    const diff = JSON.parse(r.out) as { lineage: { field: string }[]; tensors: unknown; weights: string };
    assert.deepEqual(
      diff.lineage.map((l) => l.field),
      ['kind', 'round', 'parent', 'provenanceSha256'],
    );
    // Round 1's model is not a released model: its weights stay with the coordinator.
    assert.equal(diff.tensors, null);
    assert.match(diff.weights, /not available/);
    const same = await cli(['model', 'diff', 'candidate', released, '--json', ...as(OPERATOR)]);
    const d = JSON.parse(same.out) as { lineage: unknown[]; total: { l2: number; maxAbs: number } };
    assert.deepEqual(d.lineage, []);
    assert.deepEqual([d.total.l2, d.total.maxAbs], [0, 0]);
  });

  it('6. audit verify re-checks the alias move', async () => {
    const r = await cli(['audit', 'verify', '--log', gov.url, '--workspace', gov.dir, '--json']);
    const report = JSON.parse(r.out.trim().split('\n').at(-1)!) as {
      ok: boolean;
      facts: string[];
      problems: string[];
    };
    assert.equal(report.ok, true, report.problems.join('; '));
    assert.ok(
      report.facts.some((f) => /model aliases: 2 moves re-checked, 2 aliases/.test(f)),
      report.facts.join('\n'),
    );
  });
  it('7. with the coordinator stopped, the workspace holder reads the registry from its own log', async () => {
    await Promise.all(participants.map((p) => stopChild(p)));
    await gov.coordinator.close();
    const r = await cli(['model', 'list', '--json', ...as(OPERATOR)]);
    const offline = (JSON.parse(r.out) as { versions: Listed[] }).versions;
    assert.deepEqual(
      offline.map((v) => [v.id, v.kind, v.aliases]),
      versions.map((v) => [
        v.id,
        v.kind,
        v.id === released ? ['candidate'] : v.round === 1 ? ['canary'] : [],
      ]),
    );
    const show = await cli(['model', 'alias', 'list', '--json', ...as(OPERATOR)]);
    const aliases = (
      JSON.parse(show.out) as { aliases: { alias: string; version: string; history: unknown[] }[] }
    ).aliases;
    assert.deepEqual(
      aliases.map((a) => [a.alias, a.version, a.history.length]),
      [
        ['canary', versions[1]!.id, 1],
        ['candidate', released, 1],
      ],
    );
    const out = join(outDir, 'offline.safetensors');
    await cli(['model', 'export', '--run', RUN_ID, '--out', out, ...as(OPERATOR)]);
    const card = JSON.parse(readFileSync(join(outDir, 'offline.card.json'), 'utf8')) as {
      registry: { version: string; aliases: string[]; intendedUse: string };
    };
    assert.deepEqual(
      [card.registry.version, card.registry.aliases, card.registry.intendedUse],
      [released, ['candidate'], INTENDED_USE],
    );
    // The alias table is replayed from the workspace's own log: --alias works offline as well.
    const byAlias = join(outDir, 'offline-alias.safetensors');
    await cli(['model', 'export', '--alias', 'candidate', '--out', byAlias, ...as(OPERATOR)]);
    assert.equal(createHash('sha256').update(readFileSync(byAlias)).digest('hex'), released);
    const offlineCanary = await cli(
      ['model', 'export', '--alias', 'canary', '--out', byAlias, ...as(OPERATOR)],
      4,
    );
    assert.match(offlineCanary.err, /^entente: NOT_FOUND: --alias: "canary" points at /m);
  });
});
