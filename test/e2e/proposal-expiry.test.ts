/**
 * Proposals expire: one left open longer than the policy's proposalTtlHours (default a week) is closed
 * as expired, recorded in the log, and can no longer be signed; the log's governance trail still
 * replays cleanly. The proposal's age is moved back in the coordinator's database (a week cannot pass
 * in a test); everything else is the real coordinator over mutual TLS.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type LogEntry, parseLogEntry } from '../../src/audit/index.ts';
import { EntenteError } from '../../src/core/index.ts';
import { type TrailEntry, verifyGovernanceTrail } from '../../src/governance/index.ts';
import { type GovernedConsortium, startGovernedConsortium } from './governance-fixtures.ts';

describe('proposal expiry', () => {
  let gov: GovernedConsortium;
  before(async () => {
    gov = await startGovernedConsortium();
  });
  after(async () => {
    await gov?.close();
  });

  it('an open proposal older than the policy allows expires, is logged, and cannot be signed', async () => {
    const p = await gov.propose('operator', 'admit-member', { member: 'late-lab', roles: ['institution'] });
    assert.equal((await gov.sign('alpha', p.id)).status, 'open');
    // Eight days ago (the default time to live is 168 hours).
    const db = new Database(join(gov.ws.coordinatorStateDir(), 'coordinator.db'));
    try {
      db.prepare('UPDATE proposals SET created_at = ? WHERE id = ?').run(Date.now() - 8 * 86_400_000, p.id);
    } finally {
      db.close();
    }
    await assert.rejects(gov.sign('beta', p.id), (err: unknown) => {
      assert.ok(err instanceof EntenteError, String(err));
      assert.equal(err.code, 'CONFLICT');
      assert.match(err.message, /already expired/);
      return true;
    });
    const view = (
      await gov.operator.getJson<{ status: string; missing: string; signers: string[] }>(
        `/v1/proposals/${p.id}`,
      )
    ).body!;
    assert.equal(view.status, 'expired');
    assert.match(view.missing, /expired: open for more than 168 h/);
    assert.deepEqual(view.signers, ['alpha']);
    // The policy did not change: late-lab was not admitted.
    const policy = (
      await gov.operator.getJson<{ policy: { version: number; members: Record<string, unknown> } }>(
        '/v1/policy',
      )
    ).body!.policy;
    assert.equal(policy.version, 1);
    assert.equal(policy.members['late-lab'], undefined);
    // Logged as decided 'expired', and the trail replays without a problem.
    const size = (
      await gov.operator.getJson<{ checkpoints: { size: number }[] }>('/v1/log/checkpoints')
    ).body!.checkpoints.at(-1)!.size;
    const raw = (
      await gov.operator.getJson<{ entries: { body: string }[] }>(`/v1/log/entries?start=0&end=${size}`)
    ).body!.entries;
    const entries: LogEntry[] = raw.map((e, i) =>
      parseLogEntry(new Uint8Array(Buffer.from(e.body, 'base64')), `entry ${i}`),
    );
    const decided = entries.filter((e) => e.kind === 'proposal-decided' && e.proposal === p.id);
    assert.equal(decided.length, 1);
    assert.equal(decided[0]!.kind === 'proposal-decided' && decided[0]!.outcome, 'expired');
    assert.deepEqual(verifyGovernanceTrail(entries as unknown as TrailEntry[]).problems, []);
  });
});
