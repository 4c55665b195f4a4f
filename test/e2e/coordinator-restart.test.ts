/**
 * A coordinator killed with SIGKILL in the middle of a round restarts and continues the run: no
 * completed round is lost, no update is counted twice, and the participants (the same processes)
 * reconnect by themselves. Real processes, real TLS, real SQLite.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { decodeSafetensors } from '../../src/core/index.ts';
import { describeLayout, parseModelSpec } from '../../src/models/index.ts';
import type { BlobRef } from '../../src/protocol/index.ts';
import {
  type ChildHandle,
  type ProcessFederation,
  startProcessFederation,
} from '../../src/simulation/index.ts';
import { createMtlsClient } from '../../src/transport/index.ts';
import { SCHEMA_PATH, createTestWorkspace, findFreePort, waitFor } from './fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'];
const ROUNDS = 6;

interface RunView {
  status: string;
  phase: string;
  round: number;
  received: string[];
  rounds: { round: number; modelIn: string | null; modelOut: string | null; contributors: string[] }[];
}

describe('coordinator crash and restart', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('continues the run after SIGKILL mid-round without losing or double-counting updates', {
    timeout: 180_000,
  }, async () => {
    const setup = await createTestWorkspace(INSTITUTIONS, 'entente-restart-');
    dir = setup.dir;
    const port = await findFreePort();
    federation = await startProcessFederation({
      workspace: dir,
      port,
      participants: INSTITUTIONS.map((id) => ({
        institution: id,
        // gamma is slow, so every round has a window where some but not all updates are in.
        args: [
          '--data',
          setup.dataPath(id),
          '--schema',
          SCHEMA_PATH,
          ...(id === 'gamma' ? ['--slow-ms', '1500'] : []),
        ],
      })),
    });
    const pids = INSTITUTIONS.map((id) => federation!.participants.get(id)!.child.pid);
    const runConfig = {
      id: 'restart',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: ROUNDS,
      minParticipants: 3,
      // Plain updates: this test is about the coordinator's own validation and recovery of them.
      secureAggregation: { protocol: 'none' },
      train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
      standardize: 'federated',
      evaluate: true,
      roundTimeoutMs: 120_000,
      seed: 'restart-test',
    };
    const operator = () =>
      createMtlsClient({ baseUrl: `https://127.0.0.1:${port}`, ...setup.ws.operatorIdentity() });
    let client = operator();
    await client.postJson('/v1/runs', runConfig);

    // Wait until round 3 is training and at least one, but not all, updates are in; then SIGKILL.
    const atKill = await waitFor(
      'round 3 half-way',
      async () => {
        const v = (await client.getJson<RunView>('/v1/runs/restart')).body!;
        return v.phase === 'train' && v.round >= 3 && v.received.length >= 1 && v.received.length < 3
          ? v
          : undefined;
      },
      60_000,
      20,
    );
    federation.coordinator.child.kill('SIGKILL');
    await federation.coordinator.exited;
    await client.close();

    // What the store held at the moment of the kill.
    const dbPath = join(dir, 'coordinator', 'state', 'coordinator.db');
    const before = new Database(dbPath, { readonly: true });
    const completedBefore = (
      before
        .prepare('SELECT COUNT(*) AS n FROM rounds WHERE run_id = ? AND model_out IS NOT NULL')
        .get('restart') as { n: number }
    ).n;
    const updatesBefore = (
      before
        .prepare('SELECT COUNT(*) AS n FROM updates WHERE run_id = ? AND round = ?')
        .get('restart', atKill.round) as { n: number }
    ).n;
    before.close();
    assert.ok(completedBefore >= atKill.round - 1, 'completed rounds were durable before the kill');
    assert.ok(
      updatesBefore >= 1 && updatesBefore < 3,
      `round ${atKill.round} was half-way (${updatesBefore} updates stored)`,
    );

    await new Promise((r) => setTimeout(r, 1500)); // participants notice and start backing off
    await federation.startCoordinator(port);
    client = operator();
    const final = await waitFor(
      'run completion after restart',
      async () => {
        const v = (await client.getJson<RunView>('/v1/runs/restart')).body!;
        return v.status === 'completed' ? v : undefined;
      },
      120_000,
      200,
    );
    await client.close();

    // Same participant processes: they reconnected by themselves.
    for (const [k, id] of INSTITUTIONS.entries()) {
      const p: ChildHandle = federation.participants.get(id)!;
      assert.equal(p.child.pid, pids[k]);
      assert.equal(p.child.exitCode, null, `${id} is still running`);
    }

    // Every round exactly once, with all three contributions, chained model to model.
    assert.deepEqual(
      final.rounds.map((r) => r.round),
      Array.from({ length: ROUNDS }, (_, i) => i + 1),
    );
    for (const r of final.rounds)
      assert.deepEqual(r.contributors, [...INSTITUTIONS].sort(), `round ${r.round} contributors`);
    for (let i = 1; i < final.rounds.length; i++)
      assert.equal(final.rounds[i]!.modelIn, final.rounds[i - 1]!.modelOut);

    // Recompute each round's FedAvg from the stored updates: equal to the recorded model, so no update
    // was lost or counted twice (a double-counted update would move the mean far beyond rounding).
    const db = new Database(dbPath, { readonly: true });
    const layout = describeLayout(parseModelSpec(runConfig.model));
    const blobPath = (sha: string) => join(dir, 'coordinator', 'state', 'blobs', sha.slice(0, 2), sha);
    const readBlob = (ref: BlobRef) => Buffer.concat(ref.chunks.map((c) => readFileSync(blobPath(c.sha256))));
    for (const r of final.rounds) {
      const rows = db
        .prepare('SELECT participant, blob_json, num_examples FROM updates WHERE run_id = ? AND round = ?')
        .all('restart', r.round) as {
        participant: string;
        blob_json: string;
        num_examples: number;
      }[];
      assert.equal(rows.length, 3, `round ${r.round} has exactly three stored updates`);
      const total = rows.reduce((s, u) => s + u.num_examples, 0);
      const mean = layout.map((t) => new Float64Array(t.shape.reduce((a, b) => a * b, 1)));
      for (const u of rows) {
        const w = decodeSafetensors(readBlob(JSON.parse(u.blob_json) as BlobRef), {
          expected: layout,
        }).weights;
        w.forEach((t, i) => {
          for (let j = 0; j < t.data.length; j++) mean[i]![j]! += (t.data[j]! * u.num_examples) / total;
        });
      }
      const out = decodeSafetensors(readFileSync(blobPath(r.modelOut!)), { expected: layout }).weights;
      out.forEach((t, i) => {
        for (let j = 0; j < t.data.length; j++) {
          assert.ok(
            Math.abs(t.data[j]! - mean[i]![j]!) <= 1e-5 * (1 + Math.abs(mean[i]![j]!)),
            `round ${r.round} ${t.name}[${j}]`,
          );
        }
      });
    }
    const dupes = db
      .prepare(
        'SELECT COUNT(*) AS n FROM (SELECT run_id, round, participant FROM updates GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)',
      )
      .get() as { n: number };
    assert.equal(dupes.n, 0);
    db.close();
  });
});
