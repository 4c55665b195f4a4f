/**
 * Institutions enforce the consortium's rules on their own side: a coordinator that starts a run without
 * the start-run quorum (here: the run engine called directly, as a malicious coordinator would) gets
 * nothing from enrolled sites. Each site reads the audit log itself, replays the governance trail, finds
 * no approved proposal for the run and refuses before touching its data (PROTOCOL_VIOLATION, journaled
 * and reported), and after that it takes part in no later run of that coordinator, approved or not.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { computeSchemaDigest, parseDataSchema } from '../../src/data/index.ts';
import { type ChildHandle, demoRunConfig, stopChild } from '../../src/simulation/index.ts';
import { SCHEMA_PATH, waitFor } from './fixtures.ts';
import {
  type GovernedConsortium,
  OPERATOR,
  startGovernedConsortium,
  startSite,
  writeSiteData,
} from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;
const SCHEMA_DIGEST = computeSchemaDigest(parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))));

describe('sites refuse runs the log does not show approved', () => {
  let gov: GovernedConsortium;
  const children: ChildHandle[] = [];
  before(async () => {
    gov = await startGovernedConsortium({ institutions: INSTITUTIONS, dataSchemaDigest: SCHEMA_DIGEST });
    const data = writeSiteData(gov.sites, INSTITUTIONS);
    for (const id of INSTITUTIONS) children.push(startSite(gov.sites.get(id)!, data.get(id)!));
  });
  after(async () => {
    await Promise.all(children.map((c) => stopChild(c)));
    await gov?.close();
  });

  const journal = (id: string): { event: string; code?: string; message?: string; taskId?: string }[] => {
    try {
      return readFileSync(join(gov.sites.get(id)!.dir, 'journal.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { event: string; code?: string; message?: string });
    } catch {
      return [];
    }
  };

  it('a run started without the quorum is refused by every site before any data is touched', {
    timeout: 60_000,
  }, async () => {
    // A malicious coordinator: the engine starts a run directly, with no start-run proposal.
    gov.coordinator.engine.createRun({
      ...demoRunConfig(2, 'rogue'),
      id: 'rogue-run',
      dataSchemaDigest: SCHEMA_DIGEST,
    });
    for (const id of INSTITUTIONS) {
      const refusal = await waitFor(
        `${id} refusing rogue-run`,
        async () => journal(id).find((e) => e.event === 'task-refused' && e.taskId?.includes('rogue-run')),
        30_000,
      );
      assert.equal(refusal.code, 'PROTOCOL_VIOLATION');
      assert.match(refusal.message ?? '', /governance: .*(no start-run proposal|names no approved)/);
    }
    // Each site raised the finding as an incident: new rounds are paused for everyone, and it is logged.
    const incidents = await waitFor(
      'the sites to raise incidents',
      async () => {
        const r = (
          await gov.operator.getJson<{ paused: boolean; incidents: { raisedBy: string; reason: string }[] }>(
            '/v1/incidents',
          )
        ).body!;
        return r.incidents.length === INSTITUTIONS.length ? r : undefined;
      },
      20_000,
    );
    assert.equal(incidents.paused, true);
    assert.deepEqual(incidents.incidents.map((i) => i.raisedBy).sort(), [...INSTITUTIONS].sort());
    for (const i of incidents.incidents) assert.match(i.reason, /found in the audit log: .*rogue-run/);
    // Nothing was trained: no round of the rogue run produced a model.
    const run = (await gov.operator.getJson<{ rounds: { modelOut: string | null }[] }>('/v1/runs/rogue-run'))
      .body!;
    assert.equal(run.rounds.filter((r) => r.modelOut !== null).length, 0);
  });

  it('after that, the sites take part in no later run: the log shows the coordinator broke the rules', {
    timeout: 60_000,
  }, async () => {
    // Even a run the quorum approved is refused: the trail the sites replay has a run without approval,
    // so this coordinator is not trusted again until the consortium deals with it (a new log).
    // The consortium resumes by its quorum...
    const resume = await gov.propose('alpha', 'resume-runs', {});
    await gov.sign('alpha', resume.id);
    assert.equal((await gov.sign('beta', resume.id)).status, 'approved');
    assert.equal((await gov.operator.getJson<{ paused: boolean }>('/v1/incidents')).body!.paused, false);
    // ...but the log still shows the rogue run, so the sites still refuse.
    const posted = await gov.operator.postJson<{ proposal: string }>('/v1/runs', {
      ...demoRunConfig(2, 'approved'),
      id: 'approved-run',
      dataSchemaDigest: SCHEMA_DIGEST,
    });
    assert.equal(posted.status, 202);
    await gov.sign(OPERATOR, posted.body.proposal);
    await gov.sign('alpha', posted.body.proposal);
    assert.equal((await gov.sign('beta', posted.body.proposal)).status, 'approved');
    for (const id of INSTITUTIONS) {
      const refusal = await waitFor(
        `${id} refusing approved-run`,
        async () => journal(id).find((e) => e.event === 'task-refused' && e.taskId?.includes('approved-run')),
        30_000,
      );
      assert.equal(refusal.code, 'PROTOCOL_VIOLATION');
      assert.match(refusal.message ?? '', /run rogue-run names no start-run proposal/);
    }
  });
});
