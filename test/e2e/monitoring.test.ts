/**
 * Drift monitoring end to end with real processes: a governed consortium whose policy sets a PSI
 * threshold trains a model (three participant processes, secure aggregation), a quorum releases it and
 * moves `production` to it, the model is exported with its card; `participant score` (separate
 * processes) records monitoring files on two sites (beta's rows with one feature tripled), the third
 * records none (it adds zeros); `entente monitor run --alias production` (the operator's CLI) measures
 * the reference (each site's training rows scored, one secure sum) and the current window (the sites'
 * files, one secure sum). The logged `monitoring-report` holds exactly the figures compareMonitoring
 * gives on the sum of the files (computed here from the files: the reference from the same rows scored
 * into separate files), the threshold raised an incident naming the metric and value, a second
 * measurement reuses the reference and raises no second incident, a policy with a noise multiplier
 * noises the next measurement (each site's charge logged), and `audit verify` passes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { computeSchemaDigest, parseCsv, parseDataSchema } from '../../src/data/index.ts';
import {
  type MonitoringLayout,
  compareMonitoring,
  createMonitoringLayout,
  createMonitoringSums,
} from '../../src/evaluation/index.ts';
import { demoRunConfig } from '../../src/simulation/index.ts';
import { type ChildHandle, spawnEntente, stopChild } from '../../src/simulation/process-federation.ts';
import { SCHEMA_PATH, waitForRunCompleted } from './fixtures.ts';
import {
  type GovernedConsortium,
  OPERATOR,
  createTestPolicy,
  startGovernedConsortium,
  startSite,
  writeSiteData,
} from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;
const RUN_ID = 'monitored-run';
const MAX_PSI = 0.5;
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
  const timer = setTimeout(() => handle.child.kill('SIGKILL'), 180_000);
  const code = await handle.exited;
  clearTimeout(timer);
  return { code, out, err: handle.stderr() };
}

/** The CSV with `column` multiplied by `factor` in every row. */
function scaleColumn(text: string, column: string, factor: number): string {
  const table = parseCsv(text);
  const c = table.header.indexOf(column);
  const lines = [table.header.join(',')];
  for (const row of table.rows)
    lines.push(row.map((v, j) => (j === c ? String(Number(v) * factor) : v)).join(','));
  return `${lines.join('\n')}\n`;
}

/** The sums vector of a monitoring file (segments in the layout's order). */
function readSums(layout: MonitoringLayout, path: string): Float64Array {
  const file = JSON.parse(readFileSync(path, 'utf8')) as { sums: Record<string, number[]> };
  const out = createMonitoringSums(layout);
  for (const s of layout.segments) out.set(file.sums[s.name]!, s.offset);
  return out;
}

const add = (a: Float64Array, b: Float64Array) => a.map((v, i) => v + b[i]!);

interface ReportEntry {
  kind: string;
  index: number;
  model: string;
  alias: string;
  measurement: number;
  referenceRows: number;
  currentRows: number;
  maxFeaturePsi: number;
  maxFeatureJs: number;
  maxFeatureKs: number;
  scorePsi: number;
  predictedClassPsi: number;
  latencyP90Ms: number | null;
  noised: boolean;
}

describe('drift monitoring: secure sums of the sites’ monitoring counts, reports, incidents', {
  timeout: 300_000,
}, () => {
  let gov: GovernedConsortium;
  let work = '';
  const participants: ChildHandle[] = [];
  let model = '';
  let modelFile = '';
  const as = (member: string): string[] =>
    member === OPERATOR ? ['--workspace', gov.dir] : ['--site', gov.sites.get(member)!.dir];
  const cli = async (args: readonly string[], expectCode = 0) => {
    const r = await runCli(args);
    assert.equal(r.code, expectCode, `entente ${args.join(' ')}\n${r.out}\n${r.err}`);
    return r;
  };
  const entries = async (): Promise<ReportEntry[]> =>
    (
      await gov.operator.getJson<{ entries: { body: string }[] }>('/v1/log/entries?start=0&end=10000')
    ).body!.entries.map((e) => JSON.parse(Buffer.from(e.body, 'base64').toString('utf8')) as ReportEntry);

  before(async () => {
    gov = await startGovernedConsortium({
      institutions: INSTITUTIONS,
      dataSchemaDigest: DATA_SCHEMA_DIGEST,
      policy: {
        ...createTestPolicy({ institutions: INSTITUTIONS, dataSchemaDigest: DATA_SCHEMA_DIGEST }),
        monitoring: { maxPsi: MAX_PSI },
      },
    });
    const csv = writeSiteData(gov.sites, INSTITUTIONS);
    // Each site trains on all its rows (--eval-data: the same file), so its training rows are data.csv.
    for (const id of INSTITUTIONS) {
      const path = csv.get(id)!;
      participants.push(startSite(gov.sites.get(id)!, path, ['--eval-data', path]));
    }
    work = mkdtempSync(join(tmpdir(), 'entente-monitoring-'));
    const config = { ...demoRunConfig(1, 'monitoring'), id: RUN_ID, dataSchemaDigest: DATA_SCHEMA_DIGEST };
    const r = await gov.operator.postJson<{ proposal: string }>('/v1/runs', config);
    for (const m of [OPERATOR, 'alpha', 'beta']) await gov.sign(m, r.body.proposal);
    try {
      model = (
        await waitForRunCompleted<{ status: string; model: { sha256: string } }>(
          gov.operator,
          RUN_ID,
          150_000,
        )
      ).model.sha256;
    } catch (err) {
      const logs = participants.map((p) => `--- ${p.name}\n${p.stderr().slice(-1500)}`).join('\n');
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
    const release = await gov.propose('alpha', 'release-model', { run: RUN_ID });
    await gov.sign('alpha', release.id);
    assert.equal((await gov.sign('gamma', release.id)).status, 'approved');
    const move = await gov.propose('alpha', 'move-alias', { alias: 'production', version: model });
    await gov.sign('alpha', move.id);
    assert.equal((await gov.sign('beta', move.id)).status, 'approved');
    modelFile = join(work, 'model.safetensors');
    await cli(['model', 'export', '--run', RUN_ID, '--out', modelFile, ...as(OPERATOR)]);
  });

  after(async () => {
    await Promise.all(participants.map((p) => stopChild(p)));
    await gov?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const score = (data: string, site: string) =>
    cli([
      'participant',
      'score',
      '--model',
      modelFile,
      '--schema',
      SCHEMA_PATH,
      '--data',
      data,
      '--site',
      site,
      '--json',
    ]);

  it('1. monitor run measures the reference and the current window; the report is the drift of the summed files', async () => {
    const data = (id: string) => join(gov.sites.get(id)!.dir, 'data.csv');
    // Served rows: alpha as trained, beta with mean_texture tripled; gamma served nothing.
    const shifted = join(work, 'beta-shifted.csv');
    writeFileSync(shifted, scaleColumn(readFileSync(data('beta'), 'utf8'), 'mean_texture', 3));
    await score(data('alpha'), gov.sites.get('alpha')!.dir);
    await score(shifted, gov.sites.get('beta')!.dir);
    // The reference the sites compute: their training rows scored, here into files of their own.
    for (const id of INSTITUTIONS) await score(data(id), join(work, `reference-${id}`));

    const before = await entries();
    const r = await cli(['monitor', 'run', '--alias', 'production', '--json', ...as(OPERATOR)]);
    const report = JSON.parse(r.out.trim().split('\n').at(-1)!) as ReportEntry & {
      contributors: string[];
      crossed: string[];
      incident: string | null;
    };
    assert.equal(report.model, model);
    assert.equal(report.measurement, 1);
    assert.deepEqual(report.contributors, [...INSTITUTIONS]);

    const file = (dir: string) => join(dir, 'monitoring', `${model}.json`);
    const spec = (JSON.parse(readFileSync(file(gov.sites.get('alpha')!.dir), 'utf8')) as { spec: never })
      .spec;
    const layout = createMonitoringLayout(spec);
    const reference = INSTITUTIONS.map((id) => readSums(layout, file(join(work, `reference-${id}`)))).reduce(
      add,
    );
    const current = add(
      readSums(layout, file(gov.sites.get('alpha')!.dir)),
      readSums(layout, file(gov.sites.get('beta')!.dir)),
    );
    const drift = compareMonitoring(layout, reference, current);
    const logged = (await entries()).filter((e) => e.kind === 'monitoring-report');
    assert.equal(logged.length, 1);
    const entry = logged[0]!;
    assert.ok(entry.index >= before.length);
    assert.equal(entry.model, model);
    assert.equal(entry.alias, 'production');
    assert.equal(entry.measurement, 1);
    assert.equal(entry.referenceRows, 569);
    assert.equal(entry.referenceRows, drift.referenceRows);
    assert.equal(entry.currentRows, drift.currentRows);
    assert.equal(entry.currentRows, current[0]);
    const max = (f: (x: (typeof drift.features)[number]) => number) => Math.max(...drift.features.map(f));
    const close = (got: number, want: number, what: string) =>
      assert.ok(Math.abs(got - want) <= 1e-12 * Math.max(1, Math.abs(want)), `${what}: ${got} vs ${want}`);
    close(
      entry.maxFeaturePsi,
      max((x) => x.psi),
      'maxFeaturePsi',
    );
    close(
      entry.maxFeatureJs,
      max((x) => x.jsDistance),
      'maxFeatureJs',
    );
    close(
      entry.maxFeatureKs,
      max((x) => x.ks),
      'maxFeatureKs',
    );
    close(entry.scorePsi, drift.score.psi, 'scorePsi');
    close(entry.predictedClassPsi, drift.predictedClass.psi, 'predictedClassPsi');
    assert.equal(entry.latencyP90Ms, null); // score records no request latency
    assert.equal(entry.noised, false);
    // The tripled feature is the one that drifted most.
    const texture = drift.features[1]!.psi;
    assert.equal(
      texture,
      max((x) => x.psi),
    );
    assert.ok(texture > MAX_PSI, `mean_texture PSI ${texture}`);
    // The report the CLI printed is the logged one.
    assert.equal(report.maxFeaturePsi, entry.maxFeaturePsi);
    assert.equal(report.scorePsi, entry.scorePsi);

    // The threshold raised an incident naming the metric, where and its value.
    assert.ok(report.incident);
    const incidents = (
      await gov.operator.getJson<{
        paused: boolean;
        incidents: { id: string; reason: string; raisedBy: string }[];
      }>('/v1/incidents')
    ).body!;
    assert.equal(incidents.paused, true);
    const raised = incidents.incidents.find((i) => i.id === report.incident)!;
    assert.match(
      raised.reason,
      new RegExp(`^monitoring: model ${model.slice(0, 16)} \\(alias production\\), measurement 1: `),
    );
    assert.match(
      raised.reason,
      new RegExp(`feature 1 PSI ${texture.toPrecision(4).replace('.', '\\.')} > maxPsi ${MAX_PSI}`),
    );
  });

  it('2. a second measurement reuses the reference (no second reference sum) and raises no second incident', async () => {
    const r = await cli(['monitor', 'run', '--alias', 'production', '--json', ...as(OPERATOR)]);
    const report = JSON.parse(r.out.trim().split('\n').at(-1)!) as {
      measurement: number;
      incident: string | null;
    };
    assert.equal(report.measurement, 2);
    assert.equal(report.incident, null);
    const logged = (await entries()).filter((e) => e.kind === 'monitoring-report');
    assert.deepEqual(
      logged.map((e) => e.measurement),
      [1, 2],
    );
    // Nothing new was served: the same figures.
    assert.equal(logged[1]!.maxFeaturePsi, logged[0]!.maxFeaturePsi);
    const incidents = (await gov.operator.getJson<{ incidents: unknown[] }>('/v1/incidents')).body!.incidents;
    assert.equal(incidents.length, 1);
    // Rounds: the reference once (round 0), then one round per measurement, each run as phase monitor.
    const show = await cli(['monitor', 'show', model, '--json', ...as('beta')]);
    const view = JSON.parse(show.out) as {
      reference: { rows: number; contributors: string[] };
      reports: unknown[];
      failures: unknown[];
    };
    assert.equal(view.reference.rows, 569);
    assert.equal(view.reports.length, 2);
    assert.deepEqual(view.failures, []);
    const list = await cli(['monitor', 'list', ...as(OPERATOR)]);
    assert.match(list.out, new RegExp(`${model.slice(0, 12)}….*reference 569 rows.*measurements 2`));
    // An alias that does not exist, and an institution starting a measurement: refused.
    const missing = await cli(['monitor', 'run', '--alias', 'canary', ...as(OPERATOR)], 4);
    assert.match(missing.err, /^entente: NOT_FOUND: alias: no alias "canary"/m);
    const forbidden = await cli(['monitor', 'run', '--alias', 'production', ...as('alpha')], 3);
    assert.match(forbidden.err, /^entente: FORBIDDEN: /m);
  });

  it("3. with the policy's noiseMultiplier the sums are noised, each site charges its ledger, the charges are logged", async () => {
    const policy = { ...gov.policy, version: 2, monitoring: { maxPsi: MAX_PSI, noiseMultiplier: 2 } };
    const p = await gov.propose(OPERATOR, 'adopt-policy', policy);
    await gov.sign('alpha', p.id);
    assert.equal((await gov.sign('beta', p.id)).status, 'approved');
    const r = await cli(['monitor', 'run', '--alias', 'production', '--json', ...as(OPERATOR)]);
    const report = JSON.parse(r.out.trim().split('\n').at(-1)!) as {
      measurement: number;
      noised: boolean;
      maxFeaturePsi: number;
      currentRows: number;
    };
    assert.equal(report.measurement, 3);
    assert.equal(report.noised, true);
    // Noise moves the figures a little; the tripled feature still drifts far beyond the threshold.
    assert.ok(report.maxFeaturePsi > MAX_PSI, `max feature PSI ${report.maxFeaturePsi}`);
    assert.ok(Math.abs(report.currentRows - 2 * 190) < 60, `current rows ${report.currentRows}`);
    const all = (await entries()) as unknown as {
      kind: string;
      run?: string;
      round?: number;
      phase?: string;
      participant?: string;
      mechanism?: string;
      rho?: number;
    }[];
    const charges = all.filter((e) => e.kind === 'privacy-spent' && e.phase === 'monitor');
    assert.deepEqual(charges.map((e) => [e.run, e.round, e.participant]).sort(), [
      [`monitor-${model.slice(0, 16)}`, 3, 'alpha'],
      [`monitor-${model.slice(0, 16)}`, 3, 'beta'],
      [`monitor-${model.slice(0, 16)}`, 3, 'gamma'],
    ]);
    for (const c of charges) {
      assert.equal(c.mechanism, 'zcdp');
      assert.ok((c.rho ?? 0) > 0);
    }
  });

  it('4. audit verify passes over the monitoring sums and reports', async () => {
    const r = await cli(['audit', 'verify', '--log', gov.url, '--workspace', gov.dir, '--json']);
    const verdict = JSON.parse(r.out.trim().split('\n').at(-1)!) as { ok: boolean; problems: string[] };
    assert.equal(verdict.ok, true, verdict.problems.join('; '));
  });
});
