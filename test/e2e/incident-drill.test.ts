/**
 * Incident drills with real processes. A) A governed consortium (in-process coordinator over mutual
 * TLS, three participant processes): gamma starts a drill from its own site (`entente incident drill
 * start`) before any alias exists: new rounds pause, the pause step holds, the rollback rehearsal fails
 * (nothing to roll back) and says so; a second drill is refused while the incident is open; the drill
 * ends when the resumeAfterIncident quorum (alpha, beta) resumes, with drill-completed and a positive
 * time to recover equal to the difference of the logged times. After a one-round run and two
 * move-alias quorums (production → initial model → final model), the operator's drill rehearses
 * rolling production back to the initial model: its bytes are on the coordinator and hash to it, and
 * production does not move; once that model's stored bytes are damaged, the next drill's rehearsal is a
 * failed step naming why. `audit verify` passes and reports both drills; `incident drill list`
 * shows them. B) A local workspace's coordinator started with `--drill-every`: a drill starts on its
 * own, no second one starts while its incident is open, and the operator's resume completes it.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseLogEntry } from '../../src/audit/index.ts';
import { computeSchemaDigest, parseDataSchema } from '../../src/data/index.ts';
import type { DrillView } from '../../src/governance/index.ts';
import {
  type ChildHandle,
  demoRunConfig,
  spawnEntente,
  stopChild,
  waitForUrl,
} from '../../src/simulation/index.ts';
import { createMtlsClient, type MtlsClient } from '../../src/transport/index.ts';
import {
  createTestWorkspace,
  findFreePort,
  SCHEMA_PATH,
  waitFor,
  waitForAllAvailable,
  waitForRunCompleted,
} from './fixtures.ts';
import {
  type GovernedConsortium,
  OPERATOR,
  type ProposalView,
  startGovernedConsortium,
  startSite,
  writeSiteData,
} from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;
const SCHEMA_DIGEST = computeSchemaDigest(parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))));

async function runCli(args: readonly string[]): Promise<{ code: number | null; out: string; err: string }> {
  const handle = spawnEntente('cli', args, { env: { ENTENTE_LOG_LEVEL: 'warn' } });
  let out = '';
  handle.child.stdout?.setEncoding('utf8');
  handle.child.stdout?.on('data', (d: string) => {
    out += d;
  });
  const closed = new Promise<void>((resolve) => handle.child.once('close', () => resolve()));
  const timer = setTimeout(() => handle.child.kill('SIGKILL'), 60_000);
  const code = await handle.exited;
  await closed;
  clearTimeout(timer);
  return { code, out, err: handle.stderr() };
}

async function cli(args: readonly string[], expectCode = 0) {
  const r = await runCli(args);
  assert.equal(r.code, expectCode, `entente ${args.join(' ')}\n${r.out}\n${r.err.slice(-3000)}`);
  return r;
}

async function readLog(client: MtlsClient) {
  const r = await client.getJson<{ entries: { index: number; body: string }[] }>(
    '/v1/log/entries?start=0&end=10000',
  );
  return r.body!.entries.map((e) => parseLogEntry(new Uint8Array(Buffer.from(e.body, 'base64'))));
}

/** The drill's completion as logged, checked against the logged raising and resolution times. */
async function checkCompletion(client: MtlsClient, drill: DrillView): Promise<number> {
  const entries = await readLog(client);
  const raised = entries.find((e) => e.kind === 'incident-raised' && e.incident === drill.incident)!;
  const resolved = entries.find((e) => e.kind === 'incident-resolved' && e.incident === drill.incident)!;
  const done = entries.filter((e) => e.kind === 'drill-completed' && e.drill === drill.drill);
  assert.equal(done.length, 1);
  const completed = done[0]!;
  assert.ok(completed.kind === 'drill-completed');
  assert.ok(resolved.index < completed.index, 'drill-completed follows the resolution');
  assert.equal(completed.timeToRecoverMs, resolved.at - raised.at);
  assert.ok(completed.timeToRecoverMs > 0, `time to recover ${completed.timeToRecoverMs}`);
  assert.equal(drill.timeToRecoverMs, completed.timeToRecoverMs);
  return completed.timeToRecoverMs;
}

describe('incident drills on a governed consortium', { timeout: 300_000 }, () => {
  let gov: GovernedConsortium;
  let rollbackTarget = '';
  const children: ChildHandle[] = [];
  const as = (member: string): string[] =>
    member === OPERATOR ? ['--workspace', gov.dir] : ['--site', gov.sites.get(member)!.dir];
  const drills = async (): Promise<DrillView[]> =>
    (await gov.operator.getJson<{ drills: DrillView[] }>('/v1/incidents/drills')).body!.drills;
  const paused = async (): Promise<boolean> =>
    (await gov.operator.getJson<{ paused: boolean }>('/v1/incidents')).body!.paused;
  /** alpha proposes and signs resume-runs from its site (CLI), beta completes the quorum. */
  const resumeByQuorum = async (): Promise<void> => {
    const r = await cli(['incident', 'resume', '--sign', '--json', ...as('alpha')]);
    const proposal = JSON.parse(r.out) as ProposalView;
    assert.equal(proposal.status, 'open');
    assert.equal(await paused(), true, 'one signature is not the quorum');
    const signed = await cli(['proposal', 'sign', proposal.id, '--json', ...as('beta')]);
    assert.equal((JSON.parse(signed.out) as ProposalView).status, 'approved');
  };

  before(async () => {
    gov = await startGovernedConsortium({ institutions: INSTITUTIONS, dataSchemaDigest: SCHEMA_DIGEST });
    const data = writeSiteData(gov.sites, INSTITUTIONS);
    for (const id of INSTITUTIONS) children.push(startSite(gov.sites.get(id)!, data.get(id)!));
    await waitForAllAvailable(gov.operator, 60_000);
  });
  after(async () => {
    await Promise.all(children.map((h) => stopChild(h)));
    await gov?.close();
  });

  it('1. a drill with nothing to roll back: pause holds, rollback rehearsal fails, quorum resume completes it', async () => {
    const r = await cli(['incident', 'drill', 'start', '--json', ...as('gamma')]);
    const drill = JSON.parse(r.out) as DrillView;
    assert.match(drill.drill, /^drill-/);
    assert.equal(drill.by, 'gamma');
    assert.equal(drill.alias, 'production');
    assert.equal(drill.status, 'running');
    assert.deepEqual(
      drill.steps.map((s) => [s.step, s.ok]),
      [
        ['paused', true],
        ['rollback-rehearsal', false],
      ],
    );
    assert.match(drill.steps[1]!.detail, /alias "production" points at no model/);
    assert.equal(await paused(), true);
    // The drill's incident is an incident like any other: listed, and it blocks a second drill.
    const incidents = (await gov.operator.getJson<{ incidents: { id: string }[] }>('/v1/incidents')).body!;
    assert.deepEqual(
      incidents.incidents.map((i) => i.id),
      [drill.incident],
    );
    const again = await cli(['incident', 'drill', 'start', ...as('beta')], 5);
    assert.match(again.err, /^entente: CONFLICT: incident: an incident is open/m);
    const bad = await cli(['incident', 'drill', 'start', '--alias', 'Prod!', ...as('beta')], 2);
    assert.match(bad.err, /^entente: INVALID_ARGUMENT: alias: /m);

    await resumeByQuorum();
    assert.equal(await paused(), false);
    const [done] = await drills();
    assert.equal(done!.status, 'completed');
    await checkCompletion(gov.operator, done!);
  });

  it('2. after two alias moves, a drill rehearses rolling production back to a stored model; nothing moves', async () => {
    const config = { ...demoRunConfig(1, 'drill-e2e'), id: 'drill-run', dataSchemaDigest: SCHEMA_DIGEST };
    const created = await gov.operator.postJson<{ proposal: string }>('/v1/runs', config);
    for (const m of [OPERATOR, 'alpha', 'beta']) await gov.sign(m, created.body.proposal);
    const view = await waitForRunCompleted<{ status: string; model: { sha256: string } }>(
      gov.operator,
      'drill-run',
      150_000,
    );
    const final = view.model.sha256;
    const initial = (await readLog(gov.operator)).find((e) => e.kind === 'model-initialized')!;
    assert.ok(initial.kind === 'model-initialized');
    const move = async (version: string): Promise<void> => {
      const p = await gov.propose('alpha', 'move-alias', { alias: 'production', version });
      await gov.sign('alpha', p.id);
      assert.equal((await gov.sign('beta', p.id)).status, 'approved');
    };
    await move(initial.modelSha256);
    await move(final);

    const r = await cli(['incident', 'drill', 'start', '--json', ...as(OPERATOR)]);
    const drill = JSON.parse(r.out) as DrillView;
    assert.equal(drill.by, OPERATOR);
    assert.deepEqual(
      drill.steps.map((s) => [s.step, s.ok]),
      [
        ['paused', true],
        ['rollback-rehearsal', true],
      ],
    );
    const rollback = drill.steps[1]!;
    assert.equal(rollback.current, final);
    assert.equal(rollback.target, initial.modelSha256);
    assert.match(rollback.detail, /are stored and hash to it; the alias was not moved/);
    const aliases = (
      await gov.operator.getJson<{ aliases: { alias: string; version: string }[] }>('/v1/registry/aliases')
    ).body!.aliases;
    assert.deepEqual(
      aliases.map((a) => [a.alias, a.version]),
      [['production', final]],
    );

    await resumeByQuorum();
    const all = await drills();
    assert.deepEqual(
      all.map((d) => d.status),
      ['completed', 'completed'],
    );
    await checkCompletion(gov.operator, all[1]!);
    rollbackTarget = initial.modelSha256;
  });

  it('2b. a rollback target whose stored bytes were damaged is a failed step, logged as such', async () => {
    // The initial model fits in one chunk: its chunk address is the model's digest.
    const chunk = join(gov.dir, 'coordinator', 'state', 'blobs', rollbackTarget.slice(0, 2), rollbackTarget);
    assert.ok(existsSync(chunk), 'the rollback target is stored as one chunk');
    writeFileSync(chunk, 'not the model');
    const r = await cli(['incident', 'drill', 'start', '--json', ...as('alpha')]);
    const drill = JSON.parse(r.out) as DrillView;
    assert.deepEqual(
      drill.steps.map((s) => [s.step, s.ok]),
      [
        ['paused', true],
        ['rollback-rehearsal', false],
      ],
    );
    assert.equal(drill.steps[1]!.target, rollbackTarget);
    assert.match(drill.steps[1]!.detail, /cannot be served: stored chunk .* no longer hashes to its address/);
    await resumeByQuorum();
    const done = (await drills()).find((d) => d.drill === drill.drill)!;
    assert.equal(done.status, 'completed');
    await checkCompletion(gov.operator, done);
  });

  it('3. audit verify re-checks and reports the drills; incident drill list shows them', async () => {
    // Every checkpoint but the newest needs the witnesses' quorum: wait until they caught up.
    await waitFor(
      'the witnesses to cosign the newest checkpoint',
      async () => {
        const note = Buffer.from(await gov.operator.getBytes('/v1/log/checkpoint', 65_536)).toString('utf8');
        return note.split('\n').filter((l) => l.startsWith('\u2014 ')).length >= 3 ? true : undefined;
      },
      30_000,
    );
    const verified = await cli(['audit', 'verify', '--log', gov.url, '--workspace', gov.dir]);
    assert.match(
      verified.out,
      /drills: 3 started, 3 completed, median time to recover \d+\.\d s; 2 failed steps/,
    );
    const listed = await cli(['incident', 'drill', 'list', '--json', ...as('beta')]);
    const body = JSON.parse(listed.out) as { paused: boolean; drills: DrillView[] };
    assert.equal(body.paused, false);
    assert.deepEqual(
      body.drills.map((d) => [d.by, d.status, d.steps.filter((s) => !s.ok).length]),
      [
        ['gamma', 'completed', 1],
        [OPERATOR, 'completed', 0],
        ['alpha', 'completed', 1],
      ],
    );
    const text = await cli(['incident', 'drill', 'list', ...as('alpha')]);
    assert.match(text.out, /: completed, time to recover \d+\.\d s/);
    assert.match(text.out, /FAILED rollback-rehearsal: alias "production" points at no model/);
  });
});

describe('scheduled incident drills (coordinator start --drill-every)', { timeout: 120_000 }, () => {
  let dir = '';
  let coordinator: ChildHandle | undefined;
  let operator: MtlsClient | undefined;

  before(async () => {
    const setup = await createTestWorkspace(['alpha', 'beta', 'gamma'], 'entente-drill-');
    dir = setup.dir;
    const port = await findFreePort();
    // 0.0005 h = 1.8 s between drills.
    coordinator = spawnEntente('coordinator', [
      'coordinator',
      'start',
      '--workspace',
      dir,
      '--port',
      String(port),
      '--drill-every',
      '0.0005',
    ]);
    const url = await waitForUrl(coordinator);
    operator = createMtlsClient({ baseUrl: url, ...setup.ws.operatorIdentity() });
  });
  after(async () => {
    await operator?.close();
    if (coordinator) await stopChild(coordinator);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts a drill on schedule, none while its incident is open, and completes on the operator resume', async () => {
    const list = async () =>
      (await operator!.getJson<{ drills: DrillView[] }>('/v1/incidents/drills')).body!.drills;
    const [first] = await waitFor(
      'a scheduled drill',
      async () => ((await list()).length > 0 ? list() : undefined),
      30_000,
    );
    assert.equal(first!.scheduled, true);
    assert.equal(first!.by, 'coordinator');
    assert.deepEqual(
      first!.steps.map((s) => [s.step, s.ok]),
      [
        ['paused', true],
        ['rollback-rehearsal', false],
      ],
    );
    // Longer than the interval: the open incident holds the schedule back.
    await new Promise((r) => setTimeout(r, 4_000));
    assert.equal((await list()).length, 1);
    const resumed = (await operator!.postJson<{ resumed: string[] }>('/v1/incidents/resume', {})).body;
    assert.deepEqual(resumed.resumed, [first!.incident]);
    const [done] = await list();
    assert.equal(done!.status, 'completed');
    await checkCompletion(operator!, done!);
    // The next one follows once the interval has passed since the first started.
    await waitFor(
      'a second scheduled drill',
      async () => ((await list()).length === 2 ? true : undefined),
      30_000,
    );
    await operator!.postJson('/v1/incidents/resume', {});
  });
});
