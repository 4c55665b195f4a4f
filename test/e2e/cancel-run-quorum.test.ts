/**
 * Under a policy a run is cancelled only by quorum: `POST /v1/runs/:id/cancel` (what `entente run
 * cancel` sends) makes a cancel-run proposal decided by the policy's startRun rule (no cancelRun rule is
 * named); until the quorum signs, the run goes on; once it does, the run is cancelled for good, the
 * audit log names the proposal, and a replay of the governance trail accepts it. A member without the
 * operator role cannot cancel, and a cancellation that names no approved proposal fails the replay.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { hashLeaf, parseLogEntry } from '../../src/audit/index.ts';
import { computeSchemaDigest, parseDataSchema } from '../../src/data/index.ts';
import { type TrailEntry, verifyGovernanceTrail } from '../../src/governance/index.ts';
import { demoRunConfig } from '../../src/simulation/index.ts';
import { SCHEMA_PATH } from './fixtures.ts';
import { type GovernedConsortium, OPERATOR, startGovernedConsortium } from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;
const SCHEMA_DIGEST = computeSchemaDigest(parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))));

type RunView = { status: string; cancellation: { by: string; proposal?: string } | null };

describe('cancelling a run under a policy', () => {
  let gov: GovernedConsortium;
  before(async () => {
    gov = await startGovernedConsortium({ institutions: INSTITUTIONS, dataSchemaDigest: SCHEMA_DIGEST });
  });
  after(async () => {
    await gov?.close();
  });

  async function replayLog() {
    const notes = (await gov.operator.getJson<{ checkpoints: { size: number }[] }>('/v1/log/checkpoints'))
      .body!;
    const size = notes.checkpoints.at(-1)!.size;
    const r = await gov.operator.getJson<{ entries: { index: number; body: string }[] }>(
      `/v1/log/entries?start=0&end=${size}`,
    );
    const entries = r.body!.entries.map((e) => {
      const bytes = new Uint8Array(Buffer.from(e.body, 'base64'));
      hashLeaf(bytes);
      return parseLogEntry(bytes);
    });
    return { entries, report: verifyGovernanceTrail(entries as unknown as TrailEntry[]) };
  }

  it('takes the startRun quorum, then the run is cancelled for good and the trail replays', {
    timeout: 60_000,
  }, async () => {
    // A run approved by its start-run quorum (no site is running: it waits for participants).
    const start = await gov.operator.postJson<{ proposal: string }>('/v1/runs', {
      ...demoRunConfig(2, 'cancel-quorum'),
      id: 'to-cancel',
      dataSchemaDigest: SCHEMA_DIGEST,
    });
    for (const member of [OPERATOR, 'alpha', 'beta']) await gov.sign(member, start.body.proposal);
    assert.equal((await gov.operator.getJson<RunView>('/v1/runs/to-cancel')).body!.status, 'running');

    // An institution may not cancel; an unknown run cannot be proposed for cancellation.
    await gov
      .clientOf('alpha')
      .postJson('/v1/runs/to-cancel/cancel', {})
      .then(
        () => assert.fail('alpha cancelled a run'),
        (err: { code?: string }) => assert.equal(err.code, 'FORBIDDEN'),
      );
    await gov.operator.postJson('/v1/runs/nope/cancel', {}).then(
      () => assert.fail('a cancellation of an unknown run was proposed'),
      (err: { code?: string }) => assert.equal(err.code, 'NOT_FOUND'),
    );

    const r = await gov.operator.postJson<{ proposal: string; status: string; missing: string }>(
      '/v1/runs/to-cancel/cancel',
      {},
    );
    assert.equal(r.status, 202);
    assert.equal(r.body.status, 'open');
    // The startRun rule: the operator and 2 of the institutions.
    assert.match(r.body.missing, new RegExp(OPERATOR));
    const proposal = (
      await gov.operator.getJson<{ proposal: { kind: string }; subject: unknown }>(
        `/v1/proposals/${r.body.proposal}`,
      )
    ).body!;
    assert.equal(proposal.proposal.kind, 'cancel-run');
    assert.deepEqual(proposal.subject, { run: 'to-cancel' });

    assert.equal((await gov.sign(OPERATOR, r.body.proposal)).status, 'open');
    assert.equal((await gov.sign('alpha', r.body.proposal)).status, 'open');
    assert.equal((await gov.operator.getJson<RunView>('/v1/runs/to-cancel')).body!.status, 'running');
    assert.equal((await gov.sign('beta', r.body.proposal)).status, 'approved');

    const view = (await gov.operator.getJson<RunView>('/v1/runs/to-cancel')).body!;
    assert.equal(view.status, 'cancelled');
    assert.deepEqual(view.cancellation, { by: 'quorum', proposal: r.body.proposal });
    // Ended: another cancellation is refused.
    await gov.operator.postJson('/v1/runs/to-cancel/cancel', {}).then(
      () => assert.fail('a second cancellation was proposed'),
      (err: { code?: string }) => assert.equal(err.code, 'CONFLICT'),
    );

    const { entries, report } = await replayLog();
    const cancelled = entries.filter((e) => e.kind === 'run-cancelled');
    assert.equal(cancelled.length, 1);
    assert.equal((cancelled[0] as { proposal?: string }).proposal, r.body.proposal);
    assert.deepEqual(report.problems, []);

    // The replay refuses a cancellation that names no approved cancel-run proposal.
    const forged = entries.map((e) =>
      e.kind === 'run-cancelled' ? { ...e, proposal: start.body.proposal } : e,
    ) as unknown as TrailEntry[];
    assert.ok(
      verifyGovernanceTrail(forged).problems.some((p) =>
        /cancellation of run to-cancel follows a start-run proposal, not cancel-run/.test(p.message),
      ),
    );
    const unnamed = entries.map((e) => {
      if (e.kind !== 'run-cancelled') return e;
      const { proposal: _p, ...rest } = e as { proposal?: string };
      return rest;
    }) as unknown as TrailEntry[];
    assert.ok(
      verifyGovernanceTrail(unnamed).problems.some((p) => /names no cancel-run proposal/.test(p.message)),
    );
  });
});
