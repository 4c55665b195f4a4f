/**
 * Governance end to end (issue 6): proposals and their quorums, policy changes, admissions, runs and
 * model releases under a policy, the governance report and the audit log, over real mutual TLS with one
 * in-process coordinator and three participant processes. One consortium walks the whole path in
 * order (each case builds on the state the previous ones left): policy v1 → v2 → v3 → v4 (admission),
 * a run started by its quorum, trained, released, reported and audited.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type LogEntry,
  collectWitnesses,
  parseLogEntry,
  parseVerifierKey,
  verifyCosignatures,
} from '../../src/audit/index.ts';
import { EntenteError } from '../../src/core/index.ts';
import { issueCertificate } from '../../src/crypto/index.ts';
import { computeSchemaDigest, parseDataSchema } from '../../src/data/index.ts';
import { computePolicyDigest, parsePolicy, signProposal } from '../../src/governance/index.ts';
import { demoRunConfig } from '../../src/simulation/index.ts';
import { type ChildHandle, spawnEntente, stopChild } from '../../src/simulation/process-federation.ts';
import { type MtlsClient, createMtlsClient } from '../../src/transport/index.ts';
import { SCHEMA_PATH, waitFor, waitForRunCompleted } from './fixtures.ts';
import {
  type GovernedConsortium,
  OPERATOR,
  type ProposalView,
  startGovernedConsortium,
  startSite,
  writeSiteData,
} from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;
const RUN_ID = 'gov-run';
const DATA_SCHEMA_DIGEST = computeSchemaDigest(
  parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))),
);
const HOSTILE_REASON = '<script>alert("report")</script> & friends';

interface PolicyResponse {
  policy: { version: number; members: Record<string, { roles: string[] }> } | null;
  versions: { version: number; sha256: string; proposal: string | null }[];
}

interface RunView {
  status: string;
  model: { sha256: string; bytes: number };
}

/** Awaits `promise` and checks it fails with an EntenteError of `code` (and `field`, message pattern). */
async function expectError(
  promise: Promise<unknown>,
  code: string,
  field?: string,
  message?: RegExp,
): Promise<EntenteError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof EntenteError, `expected EntenteError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (field !== undefined) assert.equal(caught.field, field, caught.message);
  if (message !== undefined) assert.match(caught.message, message);
  return caught;
}

/** A copy of `base` as policy `version`, with `exchange` fields replaced. */
function nextPolicy(
  base: Record<string, unknown>,
  version: number,
  exchange: Record<string, unknown> = {},
): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
  return { ...copy, version, exchange: { ...(copy.exchange as object), ...exchange } };
}

/** The entries of one kind, typed. */
function entriesOf<K extends LogEntry['kind']>(
  entries: readonly LogEntry[],
  kind: K,
): Extract<LogEntry, { kind: K }>[] {
  return entries.filter((e): e is Extract<LogEntry, { kind: K }> => e.kind === kind);
}

/** Runs `entente <args>` to completion; returns its exit code and stdout. */
async function runCli(
  name: string,
  args: readonly string[],
): Promise<{ code: number | null; out: string; err: string }> {
  const handle = spawnEntente(name, args, { env: { ENTENTE_LOG_LEVEL: 'warn' } });
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

describe('governance flow: proposals, quorums, policies, runs and releases', { timeout: 150_000 }, () => {
  let gov: GovernedConsortium;
  let stranger: MtlsClient | undefined;
  let stalePolicyRun = '';
  let outDir = '';
  const participants: ChildHandle[] = [];

  const policyNow = async (): Promise<PolicyResponse> =>
    (await gov.operator.getJson<PolicyResponse>('/v1/policy')).body!;
  const proposalOf = async (id: string): Promise<ProposalView> =>
    (await gov.operator.getJson<ProposalView>(`/v1/proposals/${id}`)).body!;
  const listProposals = async (): Promise<ProposalView[]> =>
    (await gov.operator.getJson<{ proposals: ProposalView[] }>('/v1/proposals')).body!.proposals;
  const logEntries = async (): Promise<LogEntry[]> => {
    const r = await gov.operator.getJson<{ entries: { index: number; body: string }[] }>(
      '/v1/log/entries?start=0&end=10000',
    );
    return r.body!.entries.map((e) => parseLogEntry(new Uint8Array(Buffer.from(e.body, 'base64'))));
  };
  const signatureOf = async (member: string, id: string): Promise<string> => {
    const keyPem = gov.sites.get(member)!.signingIdentity().keyPem;
    const view = await proposalOf(id);
    return Buffer.from(signProposal(view.proposal, member, keyPem).signature).toString('base64');
  };
  const postSignature = (member: string, id: string, signature: string) =>
    gov.clientOf(member).postJson<ProposalView>(`/v1/proposals/${id}/signatures`, { signature });
  /** Adopts `policy` (proposed by the operator, signed by alpha and beta) and returns the proposal. */
  const adopt = async (policy: Record<string, unknown>): Promise<ProposalView> => {
    const p = await gov.propose(OPERATOR, 'adopt-policy', policy);
    assert.equal((await gov.sign('alpha', p.id)).status, 'open');
    const done = await gov.sign('beta', p.id);
    assert.equal(done.status, 'approved', done.missing);
    return done;
  };
  const runConfig = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
    ...demoRunConfig(2, 'gov-flow'),
    id: RUN_ID,
    dataSchemaDigest: DATA_SCHEMA_DIGEST,
    ...overrides,
  });

  before(async () => {
    gov = await startGovernedConsortium({
      institutions: INSTITUTIONS,
      adopt: false,
      dataSchemaDigest: DATA_SCHEMA_DIGEST,
    });
    // A certificate from the consortium CA whose name is no member of anything.
    const ca = gov.ws.certificateAuthority();
    const cert = await issueCertificate(ca, {
      commonName: 'mallory',
      role: 'client',
      notBefore: new Date(Date.now() - 60_000),
      validityDays: 1,
    });
    stranger = createMtlsClient({
      baseUrl: gov.url,
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      caPem: ca.certPem,
    });
    // Each institution's own data (an IID split of the vendored data set) in its own site folder.
    writeSiteData(gov.sites, INSTITUTIONS);
    outDir = mkdtempSync(join(tmpdir(), 'entente-gov-report-'));
  });

  after(async () => {
    await Promise.all(participants.map((p) => stopChild(p)));
    await stranger?.close();
    await gov?.close();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  it('1. adoption needs the quorum and, for the founding policy, every member: duplicates, forgeries and strangers do not count', async () => {
    // Without a policy in force nothing but an adoption may be proposed.
    await expectError(gov.propose(OPERATOR, 'start-run', runConfig()), 'CONFLICT', 'kind', /no policy/);

    const p = await gov.propose(OPERATOR, 'adopt-policy', gov.policy);
    assert.equal(p.status, 'open');
    assert.deepEqual(p.signers, []);

    const one = await gov.sign('alpha', p.id);
    assert.equal(one.status, 'open');
    assert.deepEqual(one.signers, ['alpha']);
    assert.match(one.missing, /1 more of/);
    assert.match(one.missing, /beta/);
    assert.match(one.missing, /gamma/);
    assert.doesNotMatch(one.missing, /alpha/);

    // The same member again: refused, not counted twice.
    await expectError(gov.sign('alpha', p.id), 'CONFLICT', 'signature');

    // beta with a flipped byte, and beta posting alpha's valid signature: both forged, nothing recorded.
    const good = Buffer.from(await signatureOf('beta', p.id), 'base64');
    const flipped = Buffer.from(good);
    flipped[7]! ^= 0x01;
    await expectError(
      postSignature('beta', p.id, flipped.toString('base64')),
      'INVALID_ARGUMENT',
      'signature',
    );
    await expectError(
      postSignature('beta', p.id, await signatureOf('alpha', p.id)),
      'INVALID_ARGUMENT',
      'signature',
    );
    // A valid signature by beta, but over another proposal's bytes.
    const other = await gov.propose('alpha', 'adopt-policy', nextPolicy(gov.policy, 1, { maxRounds: 7 }));
    await expectError(
      postSignature('beta', p.id, await signatureOf('beta', other.id)),
      'INVALID_ARGUMENT',
      'signature',
    );
    // A certificate of the consortium CA that names no member cannot even call.
    await expectError(
      stranger!.postJson(`/v1/proposals/${p.id}/signatures`, { signature: good.toString('base64') }),
      'UNKNOWN_PARTICIPANT',
    );
    const still = await proposalOf(p.id);
    assert.equal(still.status, 'open');
    assert.deepEqual(still.signers, ['alpha']);
    assert.equal((await policyNow()).policy, null);

    // The second distinct institution meets the policy's own quorum, but a founding policy also needs
    // every member it lists: gamma and the operator have not signed yet.
    const quorum = await postSignature('beta', p.id, good.toString('base64'));
    assert.equal(quorum.body.status, 'open');
    assert.match(quorum.body.missing, /every founding member \(missing: gamma, operator\)/);
    assert.equal((await policyNow()).policy, null);
    assert.equal((await gov.sign('gamma', p.id)).status, 'open');
    const done = { body: await gov.sign(OPERATOR, p.id) };
    assert.equal(done.body.status, 'approved');
    assert.deepEqual(done.body.signers, ['alpha', 'beta', 'gamma', OPERATOR]);
    assert.equal(done.body.missing, '');
    const now = await policyNow();
    assert.equal(now.policy?.version, 1);
    assert.equal(now.versions.length, 1);
    assert.equal(now.versions[0]!.version, 1);
    assert.equal(now.versions[0]!.sha256, computePolicyDigest(parsePolicy(gov.policy)));
    assert.equal(now.versions[0]!.proposal, p.id);
    // The competing v1 proposal was made "under" its own text: adopting v1 closed it as rejected
    // (superseded), so it can no longer be signed.
    const otherAfter = (await gov.operator.getJson<ProposalView>(`/v1/proposals/${other.id}`)).body!;
    assert.equal(otherAfter.status, 'rejected');
    assert.match(otherAfter.missing, /superseded/);
    await expectError(gov.sign('alpha', other.id), 'CONFLICT', 'proposal');
    assert.equal((await policyNow()).policy?.version, 1);
  });

  it('2. changing the policy: version 2 by its quorum; wrong versions and malformed policies refused', async () => {
    const v2 = nextPolicy(gov.policy, 2, { maxRounds: 10 });
    const done = await adopt(v2);
    const now = await policyNow();
    assert.equal(now.policy?.version, 2);
    assert.deepEqual(
      now.versions.map((v) => v.version),
      [1, 2],
    );
    assert.equal(now.versions[1]!.sha256, computePolicyDigest(parsePolicy(v2)));
    assert.equal(now.versions[1]!.proposal, done.id);
    assert.equal((now.policy as unknown as { exchange: { maxRounds: number } }).exchange.maxRounds, 10);

    for (const version of [1, 2, 4])
      await expectError(
        gov.propose(OPERATOR, 'adopt-policy', nextPolicy(gov.policy, version, { maxRounds: 10 })),
        'INVALID_CONFIG',
        'policy.version',
        /must be 3/,
      );
    await expectError(
      gov.propose(OPERATOR, 'adopt-policy', nextPolicy(gov.policy, 3, { maxRounds: 0 })),
      'INVALID_CONFIG',
      'policy.exchange.maxRounds',
    );
    await expectError(
      gov.propose(OPERATOR, 'adopt-policy', nextPolicy(gov.policy, 3, { secureAggregation: 'sometimes' })),
      'INVALID_CONFIG',
      'policy.exchange.secureAggregation',
    );
    const withUnknown = {
      ...nextPolicy(gov.policy, 3),
      approvals: { ...(gov.policy.approvals as object), x: 1 },
    };
    await expectError(
      gov.propose(OPERATOR, 'adopt-policy', withUnknown),
      'INVALID_CONFIG',
      'policy.approvals.x',
    );
    assert.equal((await policyNow()).policy?.version, 2);
  });

  it('3. a proposal made under an old policy is never approved after the policy changed', async () => {
    const r = await gov.operator.postJson<{ proposal: string; status: string }>(
      '/v1/runs',
      runConfig({ id: 'stale-run' }),
    );
    assert.equal(r.status, 202);
    stalePolicyRun = r.body.proposal;
    assert.equal((await gov.sign(OPERATOR, stalePolicyRun)).status, 'open');

    await adopt(nextPolicy(gov.policy, 3, { maxRounds: 20 }));
    assert.equal((await policyNow()).policy?.version, 3);

    // Adopting v3 closed the proposal made under v2 as rejected (superseded, recorded): it can no longer
    // be signed, and the run never starts.
    const stale = (await gov.operator.getJson<ProposalView>(`/v1/proposals/${stalePolicyRun}`)).body!;
    assert.equal(stale.status, 'rejected');
    assert.match(stale.missing, /superseded/);
    await expectError(gov.sign('alpha', stalePolicyRun), 'CONFLICT', 'proposal');
    await expectError(gov.operator.getJson('/v1/runs/stale-run'), 'NOT_FOUND');
  });

  it('4. admitting a member: a quorum adds it to a new policy version; then it can enroll', async () => {
    await expectError(
      gov.operator.postJson('/v1/enrollment/tokens', { member: 'newlab' }),
      'NOT_FOUND',
      'member',
    );
    const p = await gov.propose('alpha', 'admit-member', { member: 'newlab', roles: ['institution'] });
    assert.deepEqual(p.subject, { member: 'newlab', roles: ['institution'] });
    assert.equal((await gov.sign('alpha', p.id)).status, 'open');
    await expectError(gov.enroll('newlab'), 'NOT_FOUND', 'member');
    assert.equal((await gov.sign('gamma', p.id)).status, 'approved');

    const now = await policyNow();
    assert.equal(now.policy?.version, 4);
    assert.deepEqual(now.policy?.members.newlab, { roles: ['institution'] });
    assert.equal(now.versions.at(-1)!.proposal, p.id);
    // Admitting someone already in is refused.
    await expectError(
      gov.propose('alpha', 'admit-member', { member: 'newlab', roles: ['institution'] }),
      'CONFLICT',
      'subject.member',
    );

    const site = await gov.enroll('newlab');
    assert.equal(site.site.member, 'newlab');
    const summary = (await gov.clientOf('newlab').getJson<{ policyVersion: number }>('/v1/summary')).body!;
    assert.equal(summary.policyVersion, 4);

    const entries = await logEntries();
    const witness = entriesOf(entries, 'witness-added').filter((e) => e.institution === 'newlab');
    assert.equal(witness.length, 1);
    // The first policy-adopted entry is the consortium file's (no version); then one per version.
    const adopted = entriesOf(entries, 'policy-adopted');
    assert.equal(adopted[0]!.version, undefined);
    adopted.shift();
    assert.deepEqual(
      adopted.map((e) => e.version),
      [1, 2, 3, 4],
    );
    assert.equal(adopted.at(-1)!.proposal, p.id);
  });

  it('5. a run starts only when operator and two institutions signed; policy-breaking runs are refused', async () => {
    // The three institutions' participants, from their own site folders (newlab stays offline).
    for (const id of INSTITUTIONS) {
      const site = gov.sites.get(id)!;
      participants.push(startSite(site, join(site.dir, 'data.csv')));
    }
    const before = (await listProposals()).length;
    await expectError(
      gov.operator.postJson('/v1/runs', runConfig({ rounds: 25 })),
      'POLICY_REFUSED',
      'policy.exchange.maxRounds',
      /policy\.exchange\.maxRounds allows 20/,
    );
    await expectError(
      gov.operator.postJson('/v1/runs', runConfig({ secureAggregation: { protocol: 'none' } })),
      'POLICY_REFUSED',
      'policy.exchange.secureAggregation',
    );
    await expectError(
      gov.operator.postJson('/v1/runs', runConfig({ dataSchemaDigest: 'b'.repeat(64) })),
      'POLICY_REFUSED',
      'policy.exchange.dataSchemaDigests',
    );
    // Only an operator may ask for a run.
    await expectError(gov.clientOf('alpha').postJson('/v1/runs', runConfig()), 'FORBIDDEN');
    assert.equal((await listProposals()).length, before);

    const r = await gov.operator.postJson<{ proposal: string; status: string; missing: string }>(
      '/v1/runs',
      runConfig(),
    );
    assert.equal(r.status, 202);
    assert.match(r.body.proposal, /^[0-9a-f]{64}$/);
    assert.equal(r.body.status, 'open');
    assert.match(r.body.missing, new RegExp(OPERATOR));
    assert.equal((await listProposals()).length, before + 1);
    await expectError(gov.operator.getJson(`/v1/runs/${RUN_ID}`), 'NOT_FOUND');

    const byOperator = await gov.sign(OPERATOR, r.body.proposal);
    assert.equal(byOperator.status, 'open');
    assert.doesNotMatch(byOperator.missing, new RegExp(OPERATOR));
    await expectError(gov.operator.getJson(`/v1/runs/${RUN_ID}`), 'NOT_FOUND');
    const byAlpha = await gov.sign('alpha', r.body.proposal);
    assert.equal(byAlpha.status, 'open');
    assert.match(byAlpha.missing, /1 more of/);
    await expectError(gov.operator.getJson(`/v1/runs/${RUN_ID}`), 'NOT_FOUND');

    const byBeta = await gov.sign('beta', r.body.proposal);
    assert.equal(byBeta.status, 'approved');
    const view = (await gov.operator.getJson<RunView>(`/v1/runs/${RUN_ID}`)).body!;
    assert.ok(['pending', 'running', 'completed'].includes(view.status), view.status);
  });

  it('6. the final model leaves only after the releaseModel quorum', { timeout: 100_000 }, async () => {
    let view: RunView;
    try {
      view = await waitForRunCompleted<RunView>(gov.operator, RUN_ID, 90_000);
    } catch (err) {
      const logs = participants.map((p) => `--- ${p.name}\n${p.stderr().slice(-1500)}`).join('\n');
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
    assert.match(view.model.sha256, /^[0-9a-f]{64}$/);
    const path = `/v1/runs/${RUN_ID}/model`;
    await expectError(gov.operator.getBytes(path, view.model.bytes), 'FORBIDDEN', 'runId', /not released/);
    await expectError(gov.clientOf('alpha').getBytes(path, view.model.bytes), 'FORBIDDEN', 'runId');
    // A release of a run that does not exist (or has not completed) is refused.
    await expectError(
      gov.propose('alpha', 'release-model', { run: 'no-such-run' }),
      'CONFLICT',
      'subject.run',
    );

    const p = await gov.propose('alpha', 'release-model', { run: RUN_ID });
    assert.deepEqual(p.subject, { run: RUN_ID, modelSha256: view.model.sha256 });
    assert.equal((await gov.sign('alpha', p.id)).status, 'open');
    await expectError(gov.operator.getBytes(path, view.model.bytes), 'FORBIDDEN', 'runId');
    assert.equal((await gov.sign('gamma', p.id)).status, 'approved');

    const bytes = await gov.operator.getBytes(path, view.model.bytes);
    assert.equal(bytes.length, view.model.bytes);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), view.model.sha256);
    const released = entriesOf(await logEntries(), 'release-approved');
    assert.equal(released.length, 1);
    assert.equal(released[0]!.run, RUN_ID);
    assert.equal(released[0]!.modelSha256, view.model.sha256);
    assert.equal(released[0]!.proposal, p.id);
  });

  it('7. the governance report (CLI) lists policies, approvals and the run, and escapes text', async () => {
    // An incident whose reason is markup: the report must show it as text.
    const inc = await gov.operator.postJson<{ incident: string }>('/v1/incidents', {
      reason: HOSTILE_REASON,
    });
    assert.equal(inc.status, 201);

    const r = await runCli('report', ['report', 'governance', '--workspace', gov.dir, '--out', outDir]);
    assert.equal(r.code, 0, r.err);
    const mdPath = join(outDir, 'governance-report.md');
    const htmlPath = join(outDir, 'governance-report.html');
    assert.ok(existsSync(mdPath) && existsSync(htmlPath));
    const md = readFileSync(mdPath, 'utf8');
    const html = readFileSync(htmlPath, 'utf8');

    const versions = (await policyNow()).versions;
    assert.deepEqual(
      versions.map((v) => v.version),
      [1, 2, 3, 4],
    );
    for (const v of versions)
      assert.match(md, new RegExp(`^\\| ${v.version} \\| \`${v.sha256}\` \\|`, 'm'), `policy v${v.version}`);
    const proposals = await listProposals();
    const approved = proposals.filter((p) => p.status === 'approved');
    // v1, v2, v3, the admission (v4), the run and the release; the competing v1 and the stale run were
    // closed as rejected when a newer policy was adopted.
    assert.equal(approved.length, 6);
    for (const p of approved)
      assert.match(md, new RegExp(`^\\| \`${p.id}\` \\| ${p.proposal.kind} \\| .*\\| approved \\|`, 'm'));
    const rejected = proposals.filter((p) => p.status === 'rejected').map((p) => p.id);
    assert.ok(rejected.includes(stalePolicyRun));
    assert.match(md, new RegExp(`^\\| \`${stalePolicyRun}\` \\| start-run \\| .*\\| rejected \\|`, 'm'));
    const runRow = md.split('\n').find((l) => l.startsWith(`| ${RUN_ID} |`));
    assert.ok(runRow, 'the run has a row');
    const cells = runRow.replace(/ \|$/, '').split(' | ');
    assert.equal(cells[1], 'completed');
    assert.equal(cells[2], '2');
    assert.deepEqual(cells.at(-1)!.split(', ').sort(), ['alpha', 'beta', OPERATOR].sort());
    assert.doesNotMatch(md, /<script/i);

    assert.match(html, /<table/);
    assert.doesNotMatch(html, /<script/i);
    assert.ok(html.includes('&lt;script&gt;'), 'the incident reason is shown escaped');
    assert.ok(html.includes(RUN_ID));
    for (const v of versions) assert.ok(html.includes(v.sha256));
  });

  it('8. the audit log verifies (entente audit verify --strict over https)', async () => {
    const entries = await logEntries();
    const size = entries.length;
    // The witnesses (the three live participants) cosign every checkpoint on their own, a few seconds
    // after it is published; wait until each one has its quorum, then even --strict must pass.
    const stated = collectWitnesses(entries);
    assert.equal(stated.keys.length, 4); // alpha, beta, gamma, newlab
    assert.equal(stated.quorum, 3);
    const witnesses = stated.keys.map((k) => parseVerifierKey(k));
    await waitFor(
      'every checkpoint to be cosigned by its quorum',
      async () => {
        const r = await gov.operator.getJson<{ checkpoints: { size: number; note: string }[] }>(
          '/v1/log/checkpoints',
        );
        const cps = r.body!.checkpoints;
        const cosigned = (note: string) => verifyCosignatures(note, witnesses).filter((v) => v.ok).length;
        return cps.at(-1)?.size === size && cps.every((c) => cosigned(c.note) >= stated.quorum)
          ? true
          : undefined;
      },
      30_000,
      250,
    );
    const r = await runCli('audit', [
      'audit',
      'verify',
      '--log',
      gov.url,
      '--workspace',
      gov.dir,
      '--strict',
      '--json',
    ]);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    const report = JSON.parse(r.out.trim().split('\n').at(-1)!) as {
      ok: boolean;
      entries: number;
      problems: string[];
      runs: { run: string; completed: boolean }[];
    };
    assert.equal(report.ok, true, report.problems.join('; '));
    assert.equal(report.entries, size);
    assert.ok(report.runs.some((x) => x.run === RUN_ID && x.completed));
  });
});
