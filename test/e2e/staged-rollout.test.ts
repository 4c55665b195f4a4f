/**
 * Staged rollouts end to end: a governed consortium of five institutions (in-process coordinator over
 * mutual TLS, five participant processes, each with its own circuit breaker in its site configuration)
 * trains three models (production P, under-trained; a better candidate B; a worse candidate W, trained on raw features
 * with a vanishing learning rate, so it predicts one class for every row). `production` points at P
 * by quorum. Then, as separate `entente` processes where a member or operator would act:
 *
 * 1. W's rollout (shadow → canary → full) fails its shadow gate on the paired outcomes summed under
 *    secure aggregation and rolls back by itself; the alias stays at P.
 * 2. B's rollout passes shadow, canary (sites drawn from a checkpoint the log's witnesses cosigned,
 *    recomputed here) and full; `production` moves to B and the sites serve B.
 * 3. W's rollout against B: the canary sites' own circuit breakers trip (W is far worse on their rows
 *    than B); the first signed statement rolls the rollout back; the sites serve B on their own.
 * 4. A rollout rolled back by a quorum before it started.
 * 5. `audit verify` replays every stage, gate, rollback and the alias move.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { computeSchemaDigest, parseCsv, parseDataSchema } from '../../src/data/index.ts';
import { computeRolloutPlanDigest, drawCanarySites, parseRolloutPlan } from '../../src/governance/index.ts';
import { demoRunConfig } from '../../src/simulation/index.ts';
import {
  type ChildHandle,
  spawnEntente,
  stopChild,
  waitForUrl,
} from '../../src/simulation/process-federation.ts';
import { writePrivateFile } from '../../src/storage/index.ts';
import { SCHEMA_PATH, waitFor, waitForAllAvailable, waitForRunCompleted } from './fixtures.ts';
import {
  type GovernedConsortium,
  OPERATOR,
  startGovernedConsortium,
  startSite,
  writeSiteData,
} from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'] as const;
const DATA_SCHEMA_DIGEST = computeSchemaDigest(
  parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))),
);
/** Each site's own breaker: it stops serving a candidate 25 points less accurate than production on its rows. */
const BREAKER = { circuitBreaker: { maxAccuracyDrop: 0.25 } };
const NON_INFERIOR = 'paired.accuracyDifference >= -0.05';

async function runCli(args: readonly string[]): Promise<{ code: number | null; out: string; err: string }> {
  const handle = spawnEntente('cli', args, { env: { ENTENTE_LOG_LEVEL: 'warn' } });
  let out = '';
  handle.child.stdout?.setEncoding('utf8');
  handle.child.stdout?.on('data', (d: string) => {
    out += d;
  });
  const timer = setTimeout(() => handle.child.kill('SIGKILL'), 150_000);
  const code = await handle.exited;
  clearTimeout(timer);
  return { code, out, err: handle.stderr() };
}

interface Entry {
  kind: string;
  index: number;
  at: number;
  [k: string]: unknown;
}

interface RolloutView {
  rollout: string;
  status: string;
  stageName: string;
  sites: string[] | null;
  checkpoint: { size: number; rootHash: string } | null;
  gates: {
    stage: string;
    outcome: string;
    rows: number;
    figures: Record<string, Record<string, number | null>>;
    contributors: string[];
  }[];
  rolledBack?: { cause: string; by?: string };
  completed?: { aliasMoved: boolean };
}

describe('staged rollout: gates, canary draw, circuit breakers, rollback, audit', {
  timeout: 600_000,
}, () => {
  let gov: GovernedConsortium;
  const participants: ChildHandle[] = [];
  const models = { P: '', B: '', W: '' };
  const digests: Record<string, string> = {};
  const cli = async (args: readonly string[], expectCode = 0) => {
    const r = await runCli(args);
    assert.equal(r.code, expectCode, `entente ${args.join(' ')}\n${r.out}\n${r.err}`);
    return r;
  };
  const entries = async (): Promise<Entry[]> =>
    (
      await gov.operator.getJson<{ entries: { body: string }[] }>('/v1/log/entries?start=0&end=10000')
    ).body!.entries.map((e) => JSON.parse(Buffer.from(e.body, 'base64').toString('utf8')) as Entry);
  const train = async (id: string, config: Record<string, unknown>): Promise<string> => {
    const r = await gov.operator.postJson<{ proposal: string }>('/v1/runs', {
      ...config,
      id,
      dataSchemaDigest: DATA_SCHEMA_DIGEST,
      minParticipants: 5,
      strategy: { name: 'fedavg', minTrainParticipants: 5, minEvaluateParticipants: 5 },
    });
    for (const m of [OPERATOR, 'alpha', 'beta']) await gov.sign(m, r.body.proposal);
    const view = await waitForRunCompleted<{ status: string; model: { sha256: string } }>(
      gov.operator,
      id,
      200_000,
    );
    return view.model.sha256;
  };
  const plan = (title: string, candidate: string, production: string, stages: unknown[]) => ({
    consortium: 'test',
    title,
    candidate,
    production,
    stages,
    // Fixed: the plan's digest (and with it which rows each stage scores) is the same on every run.
    createdAt: '2026-12-01T00:00:00Z',
  });
  /** Proposes a plan with `rollout propose` (alpha) and approves it (beta signs). */
  const approve = async (subject: unknown, file: string): Promise<string> => {
    const path = join(gov.dir, file);
    writePrivateFile(path, JSON.stringify(subject));
    const r = await cli([
      'rollout',
      'propose',
      '--plan',
      path,
      '--sign',
      '--json',
      '--site',
      gov.sites.get('alpha')!.dir,
    ]);
    const proposed = JSON.parse(r.out) as { id: string; rollout: string };
    assert.equal(proposed.rollout, computeRolloutPlanDigest(parseRolloutPlan(subject)));
    assert.equal((await gov.sign('beta', proposed.id)).status, 'approved');
    return proposed.rollout;
  };
  const start = async (digest: string): Promise<RolloutView> => {
    const r = await cli(['rollout', 'start', digest, '--wait', '--json', '--workspace', gov.dir]);
    return JSON.parse(r.out) as RolloutView;
  };
  const aliasOf = async (alias: string): Promise<string | undefined> =>
    (
      await gov.operator.getJson<{ aliases: { alias: string; version: string }[] }>('/v1/registry/aliases')
    ).body!.aliases.find((a) => a.alias === alias)?.version;
  const stagesOf = (sites: readonly string[]) => [
    { name: 'shadow', sites: [...sites], minRows: 20, gate: { rule: NON_INFERIOR } },
    { name: 'canary', sites: { draw: 3 }, minRows: 10, gate: { rule: NON_INFERIOR } },
    { name: 'full', sites: [...sites], minRows: 20, gate: { rule: NON_INFERIOR } },
  ];

  before(async () => {
    gov = await startGovernedConsortium({ institutions: INSTITUTIONS, dataSchemaDigest: DATA_SCHEMA_DIGEST });
    writeSiteData(gov.sites, INSTITUTIONS);
    for (const id of INSTITUTIONS) {
      const site = gov.sites.get(id)!;
      const config = join(site.dir, 'site-config.json');
      writePrivateFile(config, JSON.stringify(BREAKER));
      participants.push(
        startSite(site, join(site.dir, 'data.csv'), ['--site-config', config, '--holdout', '0.5']),
      );
    }
    await waitForAllAvailable(gov.operator, 120_000);
    try {
      // P: one short round at a small learning rate (under-trained); B: three rounds.
      const p = demoRunConfig(1, 'rollout-p');
      models.P = await train('rollout-p', {
        ...p,
        train: { epochs: 2, batchSize: 16, learningRate: 0.02, optimizer: 'sgd' },
      });
      models.B = await train('rollout-b', demoRunConfig(3, 'rollout-b'));
      const w = demoRunConfig(1, 'rollout-w');
      models.W = await train('rollout-w', {
        ...w,
        standardize: 'none',
        train: { epochs: 1, batchSize: 16, learningRate: 1e-9, optimizer: 'sgd' },
      });
    } catch (err) {
      const logs = participants.map((p) => `--- ${p.name}\n${p.stderr().slice(-1500)}`).join('\n');
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
    const p = await gov.propose('alpha', 'move-alias', { alias: 'production', version: models.P });
    assert.equal((await gov.sign('alpha', p.id)).status, 'open');
    assert.equal((await gov.sign('gamma', p.id)).status, 'approved');
    assert.equal(await aliasOf('production'), models.P);
  });

  after(async () => {
    await Promise.all(participants.map((p) => stopChild(p)));
    await gov?.close();
  });

  it('1. a worse candidate fails its shadow gate and rolls back on its own; production stays', async (t) => {
    digests.worse = await approve(
      plan('W replaces P', models.W, models.P, stagesOf(INSTITUTIONS)),
      'worse.json',
    );
    const view = await start(digests.worse);
    t.diagnostic(
      JSON.stringify(
        view.gates.map((g) => ({
          stage: g.stage,
          rows: g.rows,
          candidate: g.figures.candidate?.accuracy,
          production: g.figures.production?.accuracy,
          p: g.figures.paired?.mcnemarP,
        })),
      ),
    );
    assert.equal(view.status, 'rolled back', JSON.stringify(view));
    assert.equal(view.rolledBack?.cause, 'gate');
    assert.equal(view.gates.length, 1);
    const gate = view.gates[0]!;
    assert.equal(gate.stage, 'shadow');
    assert.equal(gate.outcome, 'fail');
    assert.deepEqual([...gate.contributors].sort(), [...INSTITUTIONS].sort());
    const f = gate.figures;
    assert.ok(gate.rows >= 20, `rows ${gate.rows}`);
    assert.ok(f.candidate!.accuracy! < f.production!.accuracy! - 0.2, JSON.stringify(f));
    assert.ok(
      Math.abs(f.candidate!.accuracy! - f.production!.accuracy! - f.paired!.accuracyDifference!) < 1e-12,
    );
    assert.ok(f.paired!.mcnemarP! < 0.01);
    assert.equal(await aliasOf('production'), models.P);
    const mine = (await entries()).filter((e) => e.rollout === digests.worse).map((e) => e.kind);
    assert.deepEqual(mine, ['rollout-stage-started', 'rollout-gate', 'rollout-rolled-back']);
    // Started once: a second start is refused.
    const again = await runCli(['rollout', 'start', digests.worse!, '--workspace', gov.dir]);
    assert.equal(again.code, 5, again.err);
    assert.match(again.err, /^entente: CONFLICT: rollout: already rolled back/m);
  });

  it('2. a better candidate passes shadow, a drawn canary and full; production moves to it', async (t) => {
    // The canary stage runs at least 18 s before it is measured: its sites serve B meanwhile.
    const stages: Record<string, unknown>[] = stagesOf(INSTITUTIONS);
    stages[1] = { ...stages[1]!, minDurationHours: 0.005 };
    digests.better = await approve(plan('B replaces P', models.B, models.P, stages), 'better.json');
    await cli(['rollout', 'start', digests.better, '--workspace', gov.dir]);
    const status = async () =>
      (await gov.operator.getJson<RolloutView>(`/v1/rollouts/${digests.better}`)).body!;
    const canarySites = await waitFor(
      'the canary stage to start',
      async () => {
        const v = await status();
        return v.stageName === 'canary' && v.sites ? v.sites : undefined;
      },
      120_000,
    );
    // A canary site follows its log: it serves the candidate before the stage is measured.
    const servingOf = (site: string) =>
      JSON.parse(readFileSync(join(gov.sites.get(site)!.dir, 'serving', 'serving.json'), 'utf8')) as {
        version: string | null;
        stage: string | null;
      };
    await waitFor(
      `${canarySites[0]} to serve B in the canary stage`,
      async () => {
        const s = servingOf(canarySites[0]!);
        return s.version === models.B && s.stage === 'canary' ? true : undefined;
      },
      15_000,
    );
    assert.equal((await status()).gates.length, 1, 'the canary stage was not measured yet');
    const outside = INSTITUTIONS.find((s) => !canarySites.includes(s))!;
    assert.equal(servingOf(outside).version, models.P, `${outside} is not a canary site: it serves P`);
    const view = await waitFor(
      'the rollout to end',
      async () => {
        const v = await status();
        return v.status === 'running' ? undefined : v;
      },
      180_000,
      300,
    );
    t.diagnostic(
      JSON.stringify(
        view.gates.map((g) => ({
          stage: g.stage,
          rows: g.rows,
          candidate: g.figures.candidate?.accuracy,
          production: g.figures.production?.accuracy,
          p: g.figures.paired?.mcnemarP,
        })),
      ),
    );
    assert.equal(view.status, 'completed', JSON.stringify(view));
    assert.equal(view.completed?.aliasMoved, true);
    assert.deepEqual(
      view.gates.map((g) => [g.stage, g.outcome]),
      [
        ['shadow', 'pass'],
        ['canary', 'pass'],
        ['full', 'pass'],
      ],
    );
    assert.equal(await aliasOf('production'), models.B);
    const log = await entries();
    const mine = log.filter((e) => e.rollout === digests.better);
    assert.deepEqual(
      mine.map((e) => `${e.kind}${e.stage ? `:${e.stage}` : ''}`),
      [
        'rollout-stage-started:shadow',
        'rollout-gate:shadow',
        'rollout-advanced',
        'rollout-stage-started:canary',
        'rollout-gate:canary',
        'rollout-advanced',
        'rollout-stage-started:full',
        'rollout-gate:full',
        'rollout-completed',
      ],
    );
    // The canary sites are the draw anyone recomputes from the plan and the named checkpoint.
    const canary = mine.find((e) => e.kind === 'rollout-stage-started' && e.stage === 'canary')!;
    const cp = canary.checkpoint as { size: number; rootHash: string };
    const created = log.find((e) => e.kind === 'proposal-created' && e.subjectSha256 === digests.better)!;
    const decided = log.find((e) => e.kind === 'proposal-decided' && e.proposal === created.proposal)!;
    assert.equal(decided.outcome, 'approved');
    assert.ok(cp.size > decided.index, 'the draw comes from a checkpoint made after the approval');
    assert.ok(cp.size <= canary.index);
    assert.deepEqual(
      canary.sites,
      drawCanarySites({
        planDigest: digests.better!,
        checkpointRootHash: cp.rootHash,
        checkpointSize: cp.size,
        members: [...INSTITUTIONS],
        count: 3,
      }),
    );
    // The checkpoint the draw used carries a witness's cosignature besides the log's own signature.
    const { checkpoints } = (
      await gov.operator.getJson<{ checkpoints: { size: number; note: string }[] }>(
        `/v1/log/checkpoints?after=${cp.size - 1}`,
      )
    ).body!;
    const note = checkpoints.find((c) => c.size === cp.size)!.note;
    assert.ok(note.split('\n').filter((l) => l.startsWith('\u2014')).length >= 2, note);
    const moved = log.filter((e) => e.kind === 'alias-moved' && e.alias === 'production').at(-1)!;
    assert.equal(moved.version, models.B);
    assert.equal(moved.previous, models.P);
    // A site's loopback endpoint serves what its serving directory (written from its log) names: B.
    const site = gov.sites.get('alpha')!.dir;
    const server = spawnEntente('serve-alpha', [
      ...['participant', 'serve', '--follow', join(site, 'serving'), '--schema', SCHEMA_PATH, '--site', site],
    ]);
    try {
      const url = await waitForUrl(server);
      const health = await waitFor(
        'alpha to serve B',
        async () => {
          const h = (await (await fetch(`${url}/v1/health`)).json()) as {
            model: string | null;
            rollout: string;
          };
          return h.model === models.B ? h : undefined;
        },
        30_000,
      );
      assert.equal(health.rollout, digests.better);
      const table = parseCsv(readFileSync(join(site, 'data.csv'), 'utf8'));
      const label = table.header.indexOf('diagnosis');
      const rows = table.rows
        .slice(0, 5)
        .map((r) => Object.fromEntries(table.header.flatMap((h, j) => (j === label ? [] : [[h, r[j]!]]))));
      const scored = await fetch(`${url}/v1/score`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ rows }),
      });
      assert.equal(scored.status, 200, await scored.clone().text());
    } finally {
      await stopChild(server);
    }
  });

  it("3. a site's own circuit breaker stops a worse candidate at canary; the site serves production", async () => {
    const stages = [
      { name: 'canary', sites: { draw: 3 }, minRows: 1, gate: { rule: 'paired.rows >= 1' } },
      { name: 'full', sites: [...INSTITUTIONS], minRows: 1, gate: { rule: 'paired.rows >= 1' } },
    ];
    digests.breaker = await approve(plan('W replaces B', models.W, models.B, stages), 'breaker.json');
    const view = await start(digests.breaker);
    assert.equal(view.status, 'rolled back', JSON.stringify(view));
    assert.equal(view.rolledBack?.cause, 'circuit-breaker');
    const by = view.rolledBack!.by!;
    assert.ok(view.sites!.includes(by), `${by} is not a canary site of ${view.sites}`);
    // Nothing was gated: the breaker came first.
    assert.equal(view.gates.length, 0);
    assert.equal(await aliasOf('production'), models.B);
    // The tripped site recorded its breaker before anything left, and serves production (B) on its own.
    const siteDir = gov.sites.get(by)!.dir;
    await waitFor(
      `${by} to serve production again`,
      async () => {
        const file = join(siteDir, 'serving', 'serving.json');
        if (!existsSync(file)) return undefined;
        const s = JSON.parse(readFileSync(file, 'utf8')) as { version: string | null };
        return s.version === models.B ? true : undefined;
      },
      30_000,
    );
    assert.ok(existsSync(join(siteDir, 'serving', 'rollouts', `${digests.breaker}.json`)));
  });

  it('4. a rollback quorum stops an approved rollout before it runs', async () => {
    digests.quorum = await approve(
      plan('W replaces B, by hand', models.W, models.B, stagesOf(INSTITUTIONS)),
      'quorum.json',
    );
    const r = await cli([
      'rollout',
      'rollback',
      digests.quorum,
      '--reason',
      'the canary window collides with a data migration',
      '--sign',
      '--json',
      '--site',
      gov.sites.get('gamma')!.dir,
    ]);
    const proposal = JSON.parse(r.out) as { id: string };
    assert.equal((await gov.sign('delta', proposal.id)).status, 'approved');
    const status = await cli(['rollout', 'status', digests.quorum, '--json', '--workspace', gov.dir]);
    const view = JSON.parse(status.out) as RolloutView;
    assert.equal(view.status, 'rolled back');
    assert.equal(view.rolledBack?.cause, 'quorum');
    const start2 = await runCli(['rollout', 'start', digests.quorum!, '--workspace', gov.dir]);
    assert.equal(start2.code, 5, start2.err);
  });

  it('5. audit verify replays every stage, gate, rollback and the alias move', async () => {
    const r = await cli(['audit', 'verify', '--log', gov.url, '--workspace', gov.dir, '--json']);
    const report = JSON.parse(r.out) as { ok: boolean; facts: string[] };
    assert.equal(report.ok, true, r.out);
    const fact = report.facts.find((f) => f.startsWith('rollouts:'));
    assert.match(
      fact ?? '',
      /4 plans approved by quorum, 4 gates recomputed from their figures, 1 completed, 3 rolled back/,
    );
    const text = await cli(['rollout', 'status', '--workspace', gov.dir]);
    assert.match(text.out, /completed/);
    assert.match(text.out, /circuit-breaker/);
  });
});
