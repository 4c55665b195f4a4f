/**
 * Incidents and dry runs with real processes (issue 6). A) Any member pauses a running run by raising
 * an incident from its own site (`entente incident raise`): no new round opens, an operator cannot
 * resume on its own under a policy, one institution's resume-runs signature is not enough, and once the
 * resumeAfterIncident quorum (2 institutions) has signed the run goes on to its last round; the log
 * names the incident, the proposal and both signers. B) `entente run plan` checks a run against the
 * policy and every connected site before any data is touched: a run that breaks maxRounds and that a
 * site with a privacy budget refuses is no-go (exit 5) with each reason, a good one is go, a stopped
 * participant is named as not connected, and nothing was started.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseLogEntry } from '../../src/audit/index.ts';
import { EntenteError } from '../../src/core/index.ts';
import { computeSchemaDigest, parseDataSchema } from '../../src/data/index.ts';
import { parseRunConfig, projectRunEpsilon } from '../../src/protocol/index.ts';
import { type ChildHandle, demoRunConfig, spawnEntente, stopChild } from '../../src/simulation/index.ts';
import { SCHEMA_PATH, waitFor, waitForAllAvailable, waitForRunCompleted } from './fixtures.ts';
import {
  type GovernedConsortium,
  type ProposalView,
  startGovernedConsortium,
  startSite,
  writeSiteData,
} from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;
const SCHEMA_DIGEST = computeSchemaDigest(parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))));

interface RunView {
  status: string;
  rounds: { round: number; modelOut: string | null }[];
}

interface PlanOut {
  go: boolean;
  reasons: string[];
  checks: { check: string; ok: boolean; message: string }[];
}

/** Runs one `entente` CLI command to its end; returns its exit code and everything it printed. */
async function runCli(
  args: readonly string[],
  timeoutMs = 40_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const h = spawnEntente(`entente ${args.slice(0, 2).join(' ')}`, args);
  let stdout = '';
  h.child.stdout?.setEncoding('utf8');
  h.child.stdout?.on('data', (d: string) => {
    stdout += d;
  });
  const closed = new Promise<void>((resolve) => h.child.once('close', () => resolve()));
  const timer = setTimeout(() => h.child.kill('SIGKILL'), timeoutMs);
  const code = await h.exited;
  await closed;
  clearTimeout(timer);
  return { code, stdout, stderr: h.stderr() };
}

/** The single JSON object a `--json` command printed (asserts there is exactly one line). */
function parseOnlyJson<T>(out: { stdout: string; stderr: string }): T {
  const lines = out.stdout.trim().split('\n');
  assert.equal(lines.length, 1, `expected one JSON line, got:\n${out.stdout}\n${out.stderr.slice(-2000)}`);
  return JSON.parse(lines[0]!) as T;
}

function countCompletedRounds(view: RunView): number {
  return view.rounds.filter((r) => r.modelOut !== null).length;
}

async function readLog(c: GovernedConsortium) {
  const r = await c.operator.getJson<{ entries: { index: number; body: string }[] }>(
    '/v1/log/entries?start=0&end=10000',
  );
  return r.body!.entries.map((e) => parseLogEntry(new Uint8Array(Buffer.from(e.body, 'base64'))));
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    assert.ok(err instanceof EntenteError, String(err));
    return err.code;
  }
}

describe('an incident pauses a run until the resumeAfterIncident quorum resumes it', () => {
  let c: GovernedConsortium | undefined;
  const children: ChildHandle[] = [];
  before(async () => {
    c = await startGovernedConsortium({ dataSchemaDigest: SCHEMA_DIGEST });
    const data = writeSiteData(c.sites, INSTITUTIONS);
    // alpha holds back each training result a little (a simulation option), so that rounds are slow
    // enough for the CLI to raise the incident well before the run's last round.
    for (const id of INSTITUTIONS)
      children.push(
        startSite(c.sites.get(id)!, data.get(id)!, id === 'alpha' ? ['--slow-ms', 'secagg-train=1200'] : []),
      );
    await waitForAllAvailable(c.operator, 30_000);
  });
  after(async () => {
    await Promise.all(children.map((h) => stopChild(h)));
    await c?.close();
  });

  it('pauses new rounds, refuses a lone resume, and completes after two institutions sign', {
    timeout: 90_000,
  }, async () => {
    const cons = c!;
    const site = (id: string): string => cons.sites.get(id)!.dir;
    const view = async (): Promise<RunView> =>
      (await cons.operator.getJson<RunView>('/v1/runs/paused-run')).body!;

    // The run starts only once the startRun quorum (operator + 2 institutions) has signed.
    const config = {
      ...demoRunConfig(6, 'incident-e2e'),
      id: 'paused-run',
      roundTimeoutMs: 15_000,
      dataSchemaDigest: SCHEMA_DIGEST,
    };
    const created = await cons.operator.postJson<{ proposal: string; status: string }>('/v1/runs', config);
    assert.equal(created.status, 202);
    assert.equal(created.body.status, 'open');
    await cons.sign('operator', created.body.proposal);
    assert.equal((await cons.sign('alpha', created.body.proposal)).status, 'open');
    assert.equal((await cons.sign('beta', created.body.proposal)).status, 'approved');

    await waitFor(
      'round 1 of paused-run',
      async () => (countCompletedRounds(await view()) >= 1 ? true : undefined),
      40_000,
    );

    // gamma (an institution, from its own site folder) raises an incident: new rounds pause at once.
    const raised = await runCli([
      'incident',
      'raise',
      '--site',
      site('gamma'),
      '--reason',
      'suspicious update',
      '--json',
    ]);
    assert.equal(raised.code, 0, raised.stderr.slice(-2000));
    const incident = parseOnlyJson<{ incident: string; paused: boolean }>(raised);
    assert.equal(incident.paused, true);
    assert.match(incident.incident, /^inc-/);
    const listed = (
      await cons.operator.getJson<{ paused: boolean; incidents: { id: string; raisedBy: string }[] }>(
        '/v1/incidents',
      )
    ).body!;
    assert.equal(listed.paused, true);
    assert.deepEqual(
      listed.incidents.map((i) => [i.id, i.raisedBy]),
      [[incident.incident, 'gamma']],
    );

    // The round under way may finish; no further round opens.
    const before = await view();
    const atPause = countCompletedRounds(before);
    assert.ok(atPause < 6, `the run finished before the incident (${atPause} rounds)`);
    await new Promise((r) => setTimeout(r, 4_000));
    const paused = await view();
    assert.equal(paused.status, 'running');
    const afterWait = countCompletedRounds(paused);
    assert.ok(afterWait <= atPause + 1, `rounds went on while paused: ${atPause} → ${afterWait}`);

    // Under a policy the operator cannot resume on its own.
    assert.equal(await codeOf(cons.operator.postJson('/v1/incidents/resume', {})), 'FORBIDDEN');
    assert.equal((await cons.operator.getJson<{ paused: boolean }>('/v1/incidents')).body!.paused, true);

    // One institution proposes and signs resume-runs: not enough.
    const resumed = await runCli(['incident', 'resume', '--site', site('alpha'), '--sign', '--json']);
    assert.equal(resumed.code, 0, resumed.stderr.slice(-2000));
    const proposal = parseOnlyJson<ProposalView>(resumed);
    assert.equal(proposal.proposal.kind, 'resume-runs');
    assert.equal(proposal.status, 'open');
    assert.deepEqual(proposal.signers, ['alpha']);
    assert.deepEqual(proposal.subject, { incidents: [incident.incident] });
    assert.equal((await cons.operator.getJson<{ paused: boolean }>('/v1/incidents')).body!.paused, true);
    const stillPaused = await view();
    assert.equal(stillPaused.status, 'running');
    assert.ok(countCompletedRounds(stillPaused) <= atPause + 1);

    // The second institution signs: approved, the incident closes and the run completes all 6 rounds.
    const signed = await runCli(['proposal', 'sign', proposal.id, '--site', site('beta'), '--json']);
    assert.equal(signed.code, 0, signed.stderr.slice(-2000));
    const approved = parseOnlyJson<ProposalView>(signed);
    assert.equal(approved.status, 'approved');
    assert.deepEqual([...approved.signers].sort(), ['alpha', 'beta']);
    const after = (
      await cons.operator.getJson<{
        paused: boolean;
        incidents: { id: string; resolvedBy: string[]; proposal: string | null; resolvedAt: string | null }[];
      }>('/v1/incidents')
    ).body!;
    assert.equal(after.paused, false);
    assert.equal(after.incidents[0]!.proposal, proposal.id);
    assert.deepEqual([...after.incidents[0]!.resolvedBy].sort(), ['alpha', 'beta']);
    assert.notEqual(after.incidents[0]!.resolvedAt, null);

    const done = await waitForRunCompleted<RunView>(cons.operator, 'paused-run', 60_000);
    assert.equal(countCompletedRounds(done), 6);

    // The log names the incident, who raised it, the resuming proposal and both of its signers.
    const log = await readLog(cons);
    const raisedEntries = log.filter((e) => e.kind === 'incident-raised');
    assert.equal(raisedEntries.length, 1);
    const r0 = raisedEntries[0]!;
    assert.ok(r0.kind === 'incident-raised');
    assert.equal(r0.incident, incident.incident);
    assert.equal(r0.raisedBy, 'gamma');
    assert.equal(r0.reason, 'suspicious update');
    const resolvedEntries = log.filter((e) => e.kind === 'incident-resolved');
    assert.equal(resolvedEntries.length, 1);
    const r1 = resolvedEntries[0]!;
    assert.ok(r1.kind === 'incident-resolved');
    assert.equal(r1.incident, incident.incident);
    assert.equal(r1.proposal, proposal.id);
    assert.deepEqual([...r1.resolvedBy].sort(), ['alpha', 'beta']);
    assert.ok(r1.index > r0.index);
  });
});

describe('entente run plan: a dry run against the policy and every site', () => {
  let c: GovernedConsortium | undefined;
  const children = new Map<string, ChildHandle>();
  const files = { bad: '', good: '' };
  before(async () => {
    c = await startGovernedConsortium({
      dataSchemaDigest: SCHEMA_DIGEST,
      livenessMs: 4_000,
      heartbeatMs: 1_000,
    });
    const data = writeSiteData(c.sites, INSTITUTIONS);
    const budget = join(c.dir, 'gamma-site.yaml');
    writeFileSync(budget, 'privacy:\n  perRun: { epsilon: 1, delta: 1.0e-5 }\n');
    for (const id of INSTITUTIONS)
      children.set(
        id,
        startSite(c.sites.get(id)!, data.get(id)!, id === 'gamma' ? ['--site-config', budget] : []),
      );
    // Breaks policy.exchange.maxRounds (50) and has no differential privacy.
    files.bad = join(c.dir, 'bad-run.json');
    writeFileSync(
      files.bad,
      JSON.stringify({ ...demoRunConfig(500, 'plan-e2e'), id: 'too-long', dataSchemaDigest: SCHEMA_DIGEST }),
    );
    // Within the policy, with sample-level DP-SGD that spends well under gamma's ε = 1 per run.
    const base = demoRunConfig(3, 'plan-e2e') as { train: Record<string, unknown> };
    const good = {
      ...base,
      id: 'fits',
      train: { ...base.train, dp: { clipNorm: 1, noiseMultiplier: 5, samplingRate: 0.05 } },
      dataSchemaDigest: SCHEMA_DIGEST,
    };
    const eps = projectRunEpsilon(parseRunConfig(good), 1e-5).at(-1)?.epsilon ?? null;
    assert.ok(eps !== null && eps > 0 && eps < 1, `the good run should fit gamma's budget, ε = ${eps}`);
    files.good = join(c.dir, 'good-run.json');
    writeFileSync(files.good, JSON.stringify(good));
    await waitForAllAvailable(c.operator, 30_000);
  });
  after(async () => {
    await Promise.all([...children.values()].map((h) => stopChild(h)));
    await c?.close();
  });

  const plan = async (file: string) => {
    const out = await runCli(['run', 'plan', file, '--workspace', c!.dir, '--json', '--wait-ms', '8000']);
    return { code: out.code, plan: parseOnlyJson<PlanOut>(out), stderr: out.stderr };
  };

  it("says no-go (exit 5) naming maxRounds and gamma's budget, and nothing about alpha or beta", {
    timeout: 40_000,
  }, async () => {
    const { code, plan: out } = await plan(files.bad);
    assert.equal(code, 5);
    assert.equal(out.go, false);
    assert.ok(
      out.reasons.some((r) => /maxRounds/.test(r)),
      `no maxRounds reason: ${out.reasons.join(' | ')}`,
    );
    assert.ok(
      out.reasons.some((r) => /gamma.*(budget|ε unbounded)/.test(r)),
      `no privacy refusal by gamma: ${out.reasons.join(' | ')}`,
    );
    assert.ok(
      !out.reasons.some((r) => /^(alpha|beta):/.test(r)),
      `alpha or beta refused: ${out.reasons.join(' | ')}`,
    );
    // Each reason is a failed check; the site checks that passed are still listed.
    assert.deepEqual(
      out.reasons,
      out.checks.filter((x) => !x.ok).map((x) => x.message),
    );
    const margin = out.checks.find((x) => x.check === 'secureAggregation.margin');
    assert.ok(margin, 'no secure-aggregation margin check');
    assert.equal(margin.ok, true);
    assert.ok(out.checks.some((x) => x.ok && /^alpha:/.test(x.message)));
    assert.ok(out.checks.some((x) => x.ok && /^beta:/.test(x.message)));
  });

  it("says go (exit 0) for a run within the policy and gamma's budget", { timeout: 40_000 }, async () => {
    const { code, plan: out, stderr } = await plan(files.good);
    assert.deepEqual(out.reasons, [], stderr.slice(-2000));
    assert.equal(out.go, true);
    assert.equal(code, 0);
    assert.ok(
      out.checks.some((x) => x.ok && /^gamma:.*within its budget/.test(x.message)),
      `gamma did not accept the budget: ${out.checks.map((x) => x.message).join(' | ')}`,
    );
  });

  it('names a stopped participant as not connected', { timeout: 60_000 }, async () => {
    const cons = c!;
    await stopChild(children.get('beta')!);
    // The coordinator counts a participant as gone once it has not been seen for its liveness window.
    await waitFor(
      'beta to be seen as unavailable',
      async () => {
        const st = (
          await cons.operator.getJson<{ participants: { id: string; available: boolean }[] }>('/v1/status')
        ).body!;
        return st.participants.find((p) => p.id === 'beta')?.available === false ? true : undefined;
      },
      30_000,
      250,
    );
    const { code, plan: out } = await plan(files.good);
    assert.equal(code, 5);
    assert.equal(out.go, false);
    assert.ok(
      out.reasons.some((r) => /^beta: not connected/.test(r)),
      `beta not named: ${out.reasons.join(' | ')}`,
    );
    assert.ok(!out.reasons.some((r) => /^(alpha|gamma)/.test(r)), out.reasons.join(' | '));
  });

  it('touched no data and started nothing: no run, and every site journaled its answers', async () => {
    const cons = c!;
    const runs = (await cons.operator.getJson<{ runs: unknown[] }>('/v1/runs')).body!;
    assert.deepEqual(runs.runs, []);
    const expected: Record<string, number> = { alpha: 3, beta: 2, gamma: 3 };
    for (const id of INSTITUTIONS) {
      const lines = readFileSync(cons.sites.get(id)!.journalFile(), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { event: string; runId?: string; go?: boolean });
      const answered = lines.filter((l) => l.event === 'plan-answered');
      assert.equal(answered.length, expected[id], `${id}: ${JSON.stringify(answered)}`);
      // A site journals refused tasks and halted witnesses too: only plan answers were written here.
      assert.deepEqual(
        lines.filter((l) => l.event !== 'plan-answered'),
        [],
        `${id} did more than answer plans`,
      );
    }
    const gamma = readFileSync(cons.sites.get('gamma')!.journalFile(), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; runId?: string; go?: boolean })
      .filter((l) => l.event === 'plan-answered');
    assert.deepEqual(
      gamma.map((l) => [l.runId, l.go]),
      [
        ['too-long', false],
        ['fits', true],
        ['fits', true],
      ],
    );
  });
});
