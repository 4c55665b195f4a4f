/**
 * The operator alone cannot take over members by re-enrolling them. With one-time tokens it makes for
 * beta and gamma, the operator enrolls new identity keys under their names. Those keys are only
 * *presented*: the log keeps the keys it pinned at first enrollment, so approvals signed with the new keys
 * are refused by the coordinator and would be reported by any replay of the log, the real members keep
 * their certificates (the token holder cannot lock them out), and the honest members still approve and
 * complete a run under secure aggregation. A member that really lost its key gets the new one pinned only
 * by the replace-identity-key quorum.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashLeaf, parseLogEntry } from '../../src/audit/index.ts';
import { readEd25519PublicKey } from '../../src/crypto/index.ts';
import { computeSchemaDigest, parseDataSchema } from '../../src/data/index.ts';
import { signProposal, type TrailEntry, verifyGovernanceTrail } from '../../src/governance/index.ts';
import { enrollMember } from '../../src/participant/index.ts';
import { CLI_ENTRY, type ChildHandle, demoRunConfig, stopChild } from '../../src/simulation/index.ts';
import type { SiteDir } from '../../src/storage/index.ts';
import { createMtlsClient } from '../../src/transport/index.ts';
import { SCHEMA_PATH, waitForRunCompleted } from './fixtures.ts';
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
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

function runCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI_ENTRY, ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe('a re-enrollment takeover by the operator', () => {
  let gov: GovernedConsortium;
  let attackerDir = '';
  const children: ChildHandle[] = [];
  const attacker = new Map<string, SiteDir>();

  before(async () => {
    gov = await startGovernedConsortium({
      dataSchemaDigest: SCHEMA_DIGEST,
      livenessMs: 6_000,
      heartbeatMs: 1_000,
    });
    attackerDir = mkdtempSync(join(tmpdir(), 'entente-takeover-'));
  });

  after(async () => {
    for (const c of children) await stopChild(c);
    await gov?.close();
    rmSync(attackerDir, { recursive: true, force: true });
  });

  /** Replays the log as any member or auditor does. */
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
    return verifyGovernanceTrail(entries as unknown as TrailEntry[]);
  }

  it("new identity keys the operator enrolls under beta's and gamma's names count for nothing", {
    timeout: 60_000,
  }, async () => {
    for (const member of ['beta', 'gamma']) {
      const { token } = (await gov.operator.postJson<{ token: string }>('/v1/enrollment/tokens', { member }))
        .body!;
      const { site, identityKey } = await enrollMember({
        coordinatorUrl: gov.url,
        token,
        dir: join(attackerDir, member),
      });
      assert.match(identityKey, /^presented/, 'the new key is not pinned');
      attacker.set(member, site);
    }
    // The operator proposes a 50-round run and signs it, then signs "as" beta and gamma.
    const subject = { ...demoRunConfig(50, 'takeover'), id: 'takeover-run', dataSchemaDigest: SCHEMA_DIGEST };
    const proposal = await gov.propose(OPERATOR, 'start-run', subject);
    await gov.sign(OPERATOR, proposal.id);
    for (const member of ['beta', 'gamma']) {
      const site = attacker.get(member)!;
      const client = createMtlsClient({ baseUrl: gov.url, ...site.tlsIdentity() });
      try {
        const sig = signProposal(proposal.proposal, member, site.signingIdentity().keyPem);
        const r = await client
          .postJson<ProposalView>(`/v1/proposals/${proposal.id}/signatures`, {
            signature: b64(sig.signature),
          })
          .then(
            () => undefined,
            (err: unknown) => err as { code?: string; message?: string },
          );
        assert.ok(r, `${member}'s forged approval was refused`);
        assert.equal(r.code, 'INVALID_ARGUMENT');
        assert.match(r.message ?? '', /signature/);
      } finally {
        await client.close();
      }
    }
    const view = (await gov.operator.getJson<ProposalView>(`/v1/proposals/${proposal.id}`)).body!;
    assert.equal(view.status, 'open');
    assert.deepEqual(view.signers, [OPERATOR]);
    // Any member's replay of the log: no problem, the pinned keys are the real members', the new ones
    // are listed as presented only.
    const trail = await replayLog();
    assert.deepEqual(trail.problems, []);
    for (const member of ['beta', 'gamma']) {
      assert.equal(
        b64(trail.identityKeys.get(member)!),
        b64(readEd25519PublicKey(gov.sites.get(member)!.signingIdentity().keyPem)),
      );
      assert.equal(
        b64(trail.presentedKeys.get(member)!),
        b64(readEd25519PublicKey(attacker.get(member)!.signingIdentity().keyPem)),
      );
    }
    // What a founder compares out of band: `entente audit keys` prints the pinned keys and flags the
    // presented ones.
    const keys = await runCli(['audit', 'keys', '--log', gov.url, '--workspace', gov.dir, '--json']);
    assert.equal(keys.code, 0, keys.stderr);
    const listed = (
      JSON.parse(keys.stdout) as {
        keys: {
          member: string;
          admitted: boolean;
          identityKey: string | null;
          presentedKey: string | null;
        }[];
      }
    ).keys;
    for (const member of INSTITUTIONS) {
      const row = listed.find((k) => k.member === member)!;
      assert.ok(row.admitted);
      assert.equal(
        row.identityKey,
        b64(readEd25519PublicKey(gov.sites.get(member)!.signingIdentity().keyPem)),
      );
      assert.equal(row.presentedKey !== null, member !== 'alpha', `${member}'s presented key is flagged`);
    }
    // The real members were not locked out: their certificates still work.
    for (const member of INSTITUTIONS)
      assert.equal((await gov.clientOf(member).getJson('/v1/summary')).status, 200, member);
  });

  it('the honest members approve a run and complete it under secure aggregation; the takeover run never starts', {
    timeout: 240_000,
  }, async () => {
    const csv = writeSiteData(gov.sites, [...INSTITUTIONS]);
    for (const id of INSTITUTIONS) children.push(startSite(gov.sites.get(id)!, csv.get(id)!));
    const subject = { ...demoRunConfig(2, 'honest'), id: 'honest-run', dataSchemaDigest: SCHEMA_DIGEST };
    const proposal = await gov.propose(OPERATOR, 'start-run', subject);
    await gov.sign(OPERATOR, proposal.id);
    await gov.sign('alpha', proposal.id);
    const done = await gov.sign('beta', proposal.id);
    assert.equal(done.status, 'approved');
    const run = await waitForRunCompleted<{ status: string; rounds: { contributors: string[] }[] }>(
      gov.operator,
      'honest-run',
      200_000,
    );
    assert.equal(run.status, 'completed');
    const takeover = await gov.operator
      .getJson(`/v1/runs/takeover-run`)
      .catch((err: { code?: string }) => err);
    assert.equal((takeover as { code?: string }).code, 'NOT_FOUND', 'the takeover run was never started');
  });

  it('recovery: a member that lost its key gets a new one pinned only by the replace-identity-key quorum', {
    timeout: 60_000,
  }, async () => {
    // gamma's presented key (the operator's, here) becomes pinned only once 2 institutions approve.
    const proposal = await gov.propose(OPERATOR, 'replace-identity-key', { member: 'gamma' });
    assert.equal(
      (proposal.subject as { identityKey: string }).identityKey,
      b64(readEd25519PublicKey(attacker.get('gamma')!.signingIdentity().keyPem)),
    );
    const one = await gov.sign('alpha', proposal.id);
    assert.equal(one.status, 'open');
    let trail = await replayLog();
    assert.equal(
      b64(trail.identityKeys.get('gamma')!),
      b64(readEd25519PublicKey(gov.sites.get('gamma')!.signingIdentity().keyPem)),
      'one signature changes nothing',
    );
    const two = await gov.sign('beta', proposal.id);
    assert.equal(two.status, 'approved');
    trail = await replayLog();
    assert.deepEqual(trail.problems, []);
    assert.equal(
      b64(trail.identityKeys.get('gamma')!),
      b64(readEd25519PublicKey(attacker.get('gamma')!.signingIdentity().keyPem)),
    );
    assert.ok(!trail.presentedKeys.has('gamma'));
  });
});
