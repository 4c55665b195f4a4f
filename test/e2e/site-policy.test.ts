/**
 * A site's own policy with real processes: an institution that trains only MLPs is asked to train a
 * logistic model; it refuses every such task (recorded in its journal and at the coordinator) before
 * touching its data, and the run goes on with the others.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { ProcessFederation } from '../../src/simulation/index.ts';
import { waitForRunCompleted, startTestFederation } from './fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma', 'delta'];
const STRICT = 'delta';

describe('site policy enforced by the site', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses tasks that break its limits, and the run goes on without it', {
    timeout: 120_000,
  }, async () => {
    const started = await startTestFederation({
      institutions: INSTITUTIONS,
      prefix: 'entente-site-',
      siteConfigs: {
        [STRICT]: { name: 'site.yaml', text: 'allowedModels: [mlp]\nrequireSecureAggregation: true\n' },
      },
    });
    ({ federation } = started);
    const { setup, client } = started;
    dir = setup.dir;
    after(() => client.close());
    await client.postJson('/v1/runs', {
      id: 'site',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: 2,
      minParticipants: 3,
      train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
      evaluate: false,
      roundTimeoutMs: 60_000,
      seed: 'site-policy',
      secureAggregation: { protocol: 'secagg', stageTimeoutMs: 20_000, maxParticipants: 10 },
    });
    const final = await waitForRunCompleted<{ status: string; rounds: { contributors: string[] }[] }>(
      client,
      'site',
      100_000,
    );
    for (const r of final.rounds) assert.deepEqual(r.contributors, ['alpha', 'beta', 'gamma']);
    const journal = readFileSync(join(dir, 'institutions', STRICT, 'journal.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; code?: string; field?: string; round?: number });
    const refused = journal.filter((e) => e.event === 'task-refused');
    assert.deepEqual(
      refused.map((e) => [e.round, e.code, e.field]),
      [
        [1, 'SITE_POLICY_REFUSED', 'site.allowedModels'],
        [2, 'SITE_POLICY_REFUSED', 'site.allowedModels'],
      ],
    );
    const db = new Database(join(dir, 'coordinator', 'state', 'coordinator.db'), { readonly: true });
    after(() => db.close());
    const recorded = db
      .prepare(
        "SELECT round FROM events WHERE kind = 'participant-refused' AND participant = ? AND code = 'SITE_POLICY_REFUSED' ORDER BY round",
      )
      .all(STRICT) as { round: number }[];
    assert.deepEqual(
      recorded.map((r) => r.round),
      [1, 2],
    );
  });
});
