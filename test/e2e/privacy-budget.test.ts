/**
 * Sample-level DP-SGD in a secure-aggregation federation of real processes, with one institution whose
 * own site configuration sets a per-run privacy budget: it takes part while its ledger allows, then
 * refuses the round that would exceed it (recorded in its journal and at the coordinator) while the run
 * goes on without it. ε comes from its persisted ledger; the coordinator shows ε spent per institution
 * and logs every privacy event.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type PrivacyEvent, computeLedgerEpsilon } from '../../src/privacy/index.ts';
import type { ProcessFederation } from '../../src/simulation/index.ts';
import { waitForRunCompleted, startTestFederation } from './fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma', 'delta'];
const CAPPED = 'beta';
const DP = { clipNorm: 1, noiseMultiplier: 1.1, samplingRate: 0.05 };
const DELTA = 1e-5;

describe('privacy budget enforced by the site', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('takes part while its ledger allows, then refuses the round that would exceed its budget', {
    timeout: 180_000,
  }, async () => {
    const oneRound: PrivacyEvent = {
      run: 'dp',
      round: 1,
      mechanism: 'subsampled-gaussian',
      noiseMultiplier: DP.noiseMultiplier,
      samplingRate: DP.samplingRate,
      steps: Math.round(1 / DP.samplingRate),
      neighbouring: 'add-remove-record',
    };
    const epsilonOne = computeLedgerEpsilon([oneRound], DELTA).epsilon;
    const epsilonTwo = computeLedgerEpsilon([oneRound, { ...oneRound, round: 2 }], DELTA).epsilon;
    const budget = (epsilonOne + epsilonTwo) / 2; // one round fits, two do not
    const started = await startTestFederation({
      institutions: INSTITUTIONS,
      prefix: 'entente-privacy-',
      siteConfigs: {
        [CAPPED]: {
          name: 'site.json',
          text: JSON.stringify({ privacy: { perRun: { epsilon: budget, delta: DELTA } } }),
        },
      },
    });
    ({ federation } = started);
    const { setup, client } = started;
    dir = setup.dir;
    after(() => client.close());
    await client.postJson('/v1/runs', {
      id: 'dp',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: 3,
      minParticipants: 3,
      train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd', dp: DP },
      standardize: 'federated',
      evaluate: false,
      roundTimeoutMs: 60_000,
      seed: 'privacy-budget',
      secureAggregation: { protocol: 'secagg', stageTimeoutMs: 20_000, maxParticipants: 10, maxWeight: 1000 },
    });
    type View = {
      status: string;
      rounds: { round: number; contributors: string[] }[];
      privacy: Record<string, { round: number; epsilonRun: number | null; delta: number }>;
    };
    const final = await waitForRunCompleted<View>(client, 'dp', 150_000);
    assert.deepEqual(
      final.rounds.map((r) => r.contributors.includes(CAPPED)),
      [true, false, false],
      'beta only in round 1',
    );
    for (const r of final.rounds) assert.equal(r.contributors.length, r.round === 1 ? 4 : 3);

    // Its own ledger holds exactly the one round it took part in; ε is recomputed from it.
    const ledgerLines = readFileSync(join(dir, 'institutions', CAPPED, 'privacy-ledger.jsonl'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(ledgerLines.length, 1);
    const ledger = ledgerLines.map((l) => JSON.parse(l) as PrivacyEvent);
    assert.ok(computeLedgerEpsilon(ledger, DELTA).epsilon <= budget);
    // Its journal and the coordinator record each refusal with the code.
    const journal = readFileSync(join(dir, 'institutions', CAPPED, 'journal.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; code?: string; round?: number });
    const refusals = journal.filter(
      (e) => e.event === 'task-refused' && e.code === 'PRIVACY_BUDGET_EXCEEDED',
    );
    assert.deepEqual(
      refusals.map((r) => r.round),
      [2, 3],
    );
    const db = new Database(join(dir, 'coordinator', 'state', 'coordinator.db'), { readonly: true });
    after(() => db.close());
    const recorded = db
      .prepare(
        "SELECT round FROM events WHERE kind = 'participant-refused' AND participant = ? AND code = 'PRIVACY_BUDGET_EXCEEDED' ORDER BY round",
      )
      .all(CAPPED) as { round: number }[];
    assert.deepEqual(
      recorded.map((r) => r.round),
      [2, 3],
    );
    // The coordinator shows ε spent per institution, as each site's ledger reported it.
    assert.ok(Math.abs(final.privacy[CAPPED]!.epsilonRun! - epsilonOne) < 1e-9);
    for (const id of INSTITUTIONS.filter((x) => x !== CAPPED)) {
      assert.equal(final.privacy[id]!.round, 3);
      assert.ok(final.privacy[id]!.epsilonRun! > epsilonOne, `${id} spent more over three rounds`);
    }
    const logged = db
      .prepare(
        'SELECT COUNT(*) AS n FROM log_entries WHERE CAST(body AS TEXT) LIKE \'%"kind":"privacy-spent"%\'',
      )
      .get() as { n: number };
    assert.equal(logged.n, 1 + 3 * 3, 'every privacy event is in the audit log');
  });
});
