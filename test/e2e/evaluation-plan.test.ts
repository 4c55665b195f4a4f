/**
 * Pre-registered evaluation plans end to end, over real mutual TLS with `entente` processes: a plan is
 * created from a file (its digest printed, the approve-evaluation-plan proposal opened and signed by the
 * operator), signed by two institutions from their own site folders until the quorum is met, shown as
 * approved with its log entries, and `entente audit verify` passes on the log. A malformed plan is
 * refused with the field named, by the command and by the coordinator, and nothing is logged for it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { type LogEntry, parseLogEntry } from '../../src/audit/index.ts';
import { EntenteError } from '../../src/core/index.ts';
import { computeEvaluationPlanDigest, parseEvaluationPlan } from '../../src/governance/index.ts';
import { LogWitness } from '../../src/participant/log-witness.ts';
import { spawnEntente } from '../../src/simulation/index.ts';
import { computeWitnessName } from '../../src/storage/index.ts';
import { type GovernedConsortium, OPERATOR, startGovernedConsortium } from './governance-fixtures.ts';

/** Runs `entente <args>` to completion; returns its exit code, stdout and stderr. */
async function runCli(args: readonly string[]): Promise<{ code: number | null; out: string; err: string }> {
  const handle = spawnEntente('eval', args, { env: { ENTENTE_LOG_LEVEL: 'warn' } });
  let out = '';
  handle.child.stdout?.setEncoding('utf8');
  handle.child.stdout?.on('data', (d: string) => {
    out += d;
  });
  const timer = setTimeout(() => handle.child.kill('SIGKILL'), 30_000);
  const code = await handle.exited;
  clearTimeout(timer);
  return { code, out, err: handle.stderr() };
}

const lastJson = <T>(out: string): T => JSON.parse(out.trim().split('\n').at(-1)!) as T;

function planInput(title: string): Record<string, unknown> {
  return {
    consortium: 'test',
    title,
    models: [
      { name: 'candidate', sha256: 'c'.repeat(64) },
      { name: 'baseline', sha256: 'b'.repeat(64) },
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

interface PlanView {
  digest: string;
  proposal: string;
  status: string;
  missing: string;
  signers: string[];
  logIndex: number | null;
  approvedLogIndex: number | null;
  plan: { title: string };
}

describe('evaluation plans: create, sign to quorum, show, audit', { timeout: 120_000 }, () => {
  let gov: GovernedConsortium;
  let planFile = '';
  let digest = '';
  const entries = async (): Promise<LogEntry[]> => {
    const r = await gov.operator.getJson<{ entries: { body: string }[] }>(
      '/v1/log/entries?start=0&end=10000',
    );
    return r.body!.entries.map((e) => parseLogEntry(new Uint8Array(Buffer.from(e.body, 'base64'))));
  };

  before(async () => {
    gov = await startGovernedConsortium();
    planFile = join(gov.dir, 'plan.json');
    writeFileSync(planFile, JSON.stringify(planInput('candidate vs baseline')));
    digest = computeEvaluationPlanDigest(parseEvaluationPlan(planInput('candidate vs baseline')));
  });
  after(async () => {
    await gov?.close();
  });

  it('creates the plan: prints its digest, opens the proposal, signed by the operator', async () => {
    const text = await runCli(['eval', 'plan', 'create', '--workspace', gov.dir, '--plan', planFile]);
    assert.equal(text.code, 0, text.err);
    assert.equal(text.out.split('\n')[0], `plan ${digest}`);
    assert.match(text.out, /by operator: open \(needs .*\); signed by operator/);
    const shown = await runCli(['eval', 'plan', 'show', digest, '--workspace', gov.dir, '--json']);
    assert.equal(shown.code, 0, shown.err);
    const view = lastJson<PlanView>(shown.out);
    assert.equal(view.digest, digest);
    assert.equal(view.status, 'open');
    assert.deepEqual(view.signers, [OPERATOR]);
    assert.match(view.missing, /1 more of|alpha|beta|gamma/);
    assert.equal(view.approvedLogIndex, null);
    const log = await entries();
    const created = log[view.logIndex!]!;
    assert.equal(created.kind, 'proposal-created');
    assert.ok(created.kind === 'proposal-created' && created.proposalKind === 'approve-evaluation-plan');
    assert.ok(created.kind === 'proposal-created' && created.subjectSha256 === digest);
  });

  it('a second create of the same plan conflicts (exit 5)', async () => {
    const r = await runCli(['eval', 'plan', 'create', '--workspace', gov.dir, '--plan', planFile]);
    assert.equal(r.code, 5, r.err);
    assert.match(r.err, /^entente: CONFLICT: /m);
  });

  it('two institutions sign from their own site folders: approved and logged', async () => {
    const alpha = await runCli([
      'eval',
      'plan',
      'sign',
      digest,
      '--site',
      gov.sites.get('alpha')!.dir,
      '--json',
    ]);
    assert.equal(alpha.code, 0, alpha.err);
    assert.equal(lastJson<PlanView>(alpha.out).status, 'open');
    const beta = await runCli([
      'eval',
      'plan',
      'sign',
      digest,
      '--site',
      gov.sites.get('beta')!.dir,
      '--json',
    ]);
    assert.equal(beta.code, 0, beta.err);
    const signed = lastJson<PlanView>(beta.out);
    assert.equal(signed.status, 'approved');
    assert.deepEqual([...signed.signers].sort(), ['alpha', 'beta', OPERATOR]);

    const shown = await runCli(['eval', 'plan', 'show', digest, '--site', gov.sites.get('gamma')!.dir]);
    assert.equal(shown.code, 0, shown.err);
    assert.match(shown.out, new RegExp(`evaluation plan ${digest}`));
    assert.match(shown.out, /: approved; signed by/);
    assert.match(shown.out, /approved at entry \d+/);
    assert.match(shown.out, /decision rule candidate\.rocAuc >= baseline\.rocAuc - 0\.01/);

    const view = lastJson<PlanView>(
      (await runCli(['eval', 'plan', 'show', digest, '--workspace', gov.dir, '--json'])).out,
    );
    const log = await entries();
    const decided = log[view.approvedLogIndex!]!;
    assert.ok(decided.kind === 'proposal-decided' && decided.outcome === 'approved');
    assert.ok(decided.kind === 'proposal-decided' && decided.proposal === view.proposal);
    assert.ok(view.approvedLogIndex! > view.logIndex!);
    // A third signature on a decided proposal is refused.
    const late = await runCli(['eval', 'plan', 'sign', digest, '--site', gov.sites.get('gamma')!.dir]);
    assert.equal(late.code, 5, late.err);
  });

  it('a plan nobody proposed is not found (exit 4); a bad digest is a usage error (exit 2)', async () => {
    const missing = await runCli(['eval', 'plan', 'show', 'e'.repeat(64), '--workspace', gov.dir]);
    assert.equal(missing.code, 4, missing.err);
    assert.match(missing.err, /^entente: NOT_FOUND: digest: /m);
    const bad = await runCli(['eval', 'plan', 'show', 'xyz', '--workspace', gov.dir]);
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /^entente: INVALID_ARGUMENT: digest: /m);
  });

  it('refuses a malformed plan naming the field, in the command and at the coordinator; nothing is logged', async () => {
    const before = (await entries()).length;
    const input = planInput('malformed');
    (input.models as { sha256: string }[])[1]!.sha256 = 'not-a-digest';
    const file = join(gov.dir, 'bad-plan.json');
    writeFileSync(file, JSON.stringify(input));
    const r = await runCli(['eval', 'plan', 'create', '--workspace', gov.dir, '--plan', file]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^entente: INVALID_CONFIG: plan\.models\.1\.sha256: /m);
    assert.doesNotMatch(r.err, /not-a-digest/);

    const rule = { ...planInput('bad rule'), decisionRule: 'candidate.rocAuc >= other.rocAuc' };
    writeFileSync(file, JSON.stringify(rule));
    const r2 = await runCli(['eval', 'plan', 'create', '--workspace', gov.dir, '--plan', file]);
    assert.equal(r2.code, 2, r2.err);
    assert.match(r2.err, /^entente: INVALID_CONFIG: plan\.decisionRule: at position 20: model "other"/m);

    // The coordinator checks the same, whoever sends the proposal.
    const direct = async (subject: unknown): Promise<EntenteError> => {
      try {
        await gov.operator.postJson('/v1/proposals', { kind: 'approve-evaluation-plan', subject });
      } catch (err) {
        assert.ok(err instanceof EntenteError);
        return err;
      }
      assert.fail('the coordinator accepted a bad plan');
    };
    const e1 = await direct(input);
    assert.equal(e1.code, 'INVALID_CONFIG');
    assert.equal(e1.field, 'plan.models.1.sha256');
    const e2 = await direct({ ...planInput('elsewhere'), consortium: 'other' });
    assert.equal(e2.code, 'POLICY_REFUSED');
    assert.equal(e2.field, 'plan.consortium');
    const e3 = await direct({ ...planInput('schema'), dataSchemaDigest: 'f'.repeat(64) });
    assert.equal(e3.code, 'POLICY_REFUSED');
    assert.equal(e3.field, 'plan.dataSchemaDigest');
    // Refusals are recorded (as `refused` entries), but no proposal was.
    const added = (await entries()).slice(before);
    assert.ok(
      added.every((e) => e.kind === 'refused'),
      added.map((e) => e.kind).join(', '),
    );
  });

  it('entente audit verify passes on the log and counts the plan', async () => {
    // The institutions witness the log (no participant process runs here): each cosigns every checkpoint.
    for (const member of ['alpha', 'beta', 'gamma']) {
      const site = gov.sites.get(member)!;
      const witness = new LogWitness({
        client: () => gov.clientOf(member),
        institution: member,
        logKey: site.site.log.key,
        origin: site.site.log.origin,
        witnessName: computeWitnessName(site.site.consortium, member),
        witnessKeyPem: site.signingIdentity().keyPem,
        log: pino({ level: 'silent' }),
        now: () => Date.now(),
      });
      assert.ok((await witness.cosignPending()) > 0);
    }
    const r = await runCli(['audit', 'verify', '--log', gov.url, '--workspace', gov.dir, '--json']);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    const report = lastJson<{ ok: boolean; problems: string[]; facts: string[] }>(r.out);
    assert.equal(report.ok, true, report.problems.join('; '));
    assert.ok(
      report.facts.some((f) => /evaluation: 1 plans pre-registered by quorum/.test(f)),
      report.facts.join('\n'),
    );
  });
});
