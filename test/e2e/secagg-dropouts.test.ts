/**
 * Secure aggregation with real processes over mutual TLS: a participant is killed with SIGKILL after
 * AdvertiseKeys, after ShareKeys, after uploading its masked input and during Unmasking (and restarted
 * each time), and one participant's masked input arrives after it was declared dropped. Every round
 * must complete with exactly the right survivors, and the unmasked weight channel must equal the
 * survivors' example counts exactly: the masks cancelled and nobody was counted twice or left out.
 * Finally the coordinator itself is killed mid-round: the attempt is aborted cleanly and retried.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createSeededRng } from '../../src/crypto/index.ts';
import { loadTable, parseDataSchema, splitTrainTest } from '../../src/data/index.ts';
import { type ProcessFederation, startProcessFederation } from '../../src/simulation/index.ts';
import { createMtlsClient } from '../../src/transport/index.ts';
import { SCHEMA_PATH, createTestWorkspace, findFreePort, waitFor, waitForAllAvailable } from './fixtures.ts';

const HONEST = ['alpha', 'beta', 'gamma'];
const VICTIM = 'delta';
const INSTITUTIONS = [...HONEST, VICTIM];
// Generous: under load an honest participant must never miss a deadline (only the victim may).
const STAGE_TIMEOUT_MS = 6_000;
/** The victim pauses before answering every stage after the first: the window in which it is killed. */
const VICTIM_PAUSE =
  'secagg-share-keys=1500,secagg-masked-input=1500,secagg-consistency-check=1500,secagg-unmasking=1500';

interface AttemptRow {
  round: number;
  attempt: number;
  cohort_json: string;
  survivors_json: string | null;
  dropped_json: string | null;
  outcome: string;
  reason: string | null;
}

describe('secure aggregation survives dropouts at every stage', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('kills a participant at each stage, lets one arrive late, and restarts the coordinator', {
    timeout: 240_000,
  }, async () => {
    const setup = await createTestWorkspace(INSTITUTIONS, 'entente-secagg-');
    dir = setup.dir;
    const port = await findFreePort();
    const args = (id: string, pause?: string) => [
      '--data',
      setup.dataPath(id),
      '--schema',
      SCHEMA_PATH,
      ...(pause ? ['--slow-ms', pause] : []),
    ];
    federation = await startProcessFederation({
      workspace: dir,
      port,
      participants: INSTITUTIONS.map((id) => ({
        institution: id,
        args: args(id, id === VICTIM ? VICTIM_PAUSE : undefined),
      })),
    });
    const schema = parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
    const trainRows = new Map(
      INSTITUTIONS.map((id) => {
        const data = loadTable(readFileSync(setup.dataPath(id), 'utf8'), schema);
        return [id, splitTrainTest(data, 0.2, createSeededRng(`${id}/holdout`)).train.count] as const;
      }),
    );
    const client = createMtlsClient({ baseUrl: `https://127.0.0.1:${port}`, ...setup.ws.operatorIdentity() });
    await waitForAllAvailable(client);
    await client.postJson('/v1/runs', {
      id: 'dropouts',
      model: { kind: 'logistic', inputDim: 30 },
      // A server optimizer: strategies see only the unmasked sum and keep working on it.
      strategy: { name: 'fedadam', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: 30,
      minParticipants: 3,
      train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
      standardize: 'none',
      evaluate: false,
      roundTimeoutMs: 20_000,
      seed: 'dropouts-test',
      secureAggregation: {
        protocol: 'secagg',
        stageTimeoutMs: STAGE_TIMEOUT_MS,
        maxParticipants: 10,
        maxWeight: 1000,
      },
    });
    const dbPath = join(dir, 'coordinator', 'state', 'coordinator.db');
    const db = new Database(dbPath, { readonly: true, fileMustExist: true });
    after(() => db.close());
    const taskOf = (round: number, stage: string, who: string) =>
      db
        .prepare(
          "SELECT status FROM tasks WHERE run_id = 'dropouts' AND round = ? AND id LIKE ? AND participant = ?",
        )
        .get(round, `%.a0.${stage}.${who}`, who) as { status: string } | undefined;
    const attemptOf = (round: number) =>
      db
        .prepare("SELECT * FROM secagg_attempts WHERE run_id = 'dropouts' AND round = ? AND attempt = 0")
        .get(round) as AttemptRow | undefined;

    /** Waits for the next round (after `afterRound`) whose cohort includes the victim. */
    const nextVictimRound = (afterRound: number) =>
      waitFor(
        'a round with the victim in its cohort',
        async () => {
          const row = db
            .prepare(
              "SELECT round FROM tasks WHERE run_id = 'dropouts' AND round > ? AND participant = ? AND kind = 'secagg-train' ORDER BY round LIMIT 1",
            )
            .get(afterRound, VICTIM) as { round: number } | undefined;
          return row?.round;
        },
        60_000,
        20,
      );
    const restartVictim = async (pause: string) => {
      const old = federation!.participants.get(VICTIM)!;
      old.child.kill('SIGKILL');
      await old.exited;
      federation!.startParticipant(VICTIM, args(VICTIM, pause));
    };
    const finished = (round: number) =>
      waitFor(
        `round ${round} to finish`,
        async () => {
          const a = attemptOf(round);
          if (!a || a.outcome === 'running') return undefined;
          // A completed attempt's model and metrics land in the next transaction: wait for them too.
          const r = db
            .prepare("SELECT model_out FROM rounds WHERE run_id = 'dropouts' AND round = ?")
            .get(round) as { model_out: string | null } | undefined;
          return a.outcome === 'aborted' || r?.model_out ? a : undefined;
        },
        60_000,
        50,
      );

    const scenarios: {
      name: string;
      killWhen: (round: number) => boolean;
      survivors: string[];
      dropped: string[];
    }[] = [
      {
        name: 'after AdvertiseKeys',
        killWhen: (r) => taskOf(r, 'share-keys', VICTIM) !== undefined,
        survivors: HONEST,
        dropped: [],
      },
      {
        name: 'after ShareKeys',
        killWhen: (r) =>
          taskOf(r, 'share-keys', VICTIM)?.status === 'done' &&
          taskOf(r, 'masked-input', VICTIM) !== undefined,
        survivors: HONEST,
        dropped: [VICTIM],
      },
      {
        name: 'after uploading its masked input',
        killWhen: (r) => taskOf(r, 'masked-input', VICTIM)?.status === 'done',
        survivors: INSTITUTIONS.slice().sort(),
        dropped: [],
      },
      {
        name: 'during Unmasking',
        killWhen: (r) => taskOf(r, 'unmasking', VICTIM) !== undefined,
        survivors: INSTITUTIONS.slice().sort(),
        dropped: [],
      },
    ];
    let round = 0;
    for (const [k, s] of scenarios.entries()) {
      round = await nextVictimRound(round);
      try {
        await waitFor(
          `round ${round}: victim ${s.name}`,
          async () => (s.killWhen(round) ? true : undefined),
          60_000,
          10,
        );
      } catch (err) {
        const events = db
          .prepare('SELECT kind, participant, code, message FROM events WHERE round = ?')
          .all(round);
        const tasks = db
          .prepare("SELECT id, status FROM tasks WHERE run_id = 'dropouts' AND round = ?")
          .all(round);
        const victimLog = federation!.participants.get(VICTIM)!.stderr().slice(-3000);
        throw new Error(
          `${(err as Error).message}\n${JSON.stringify({ events, tasks }, null, 1)}\n${victimLog}`,
        );
      }
      // The last scenario's restart brings the victim back slow at MaskedInputCollection only.
      await restartVictim(
        k === scenarios.length - 1 ? `secagg-masked-input=${STAGE_TIMEOUT_MS + 2_000}` : VICTIM_PAUSE,
      );
      const a = await finished(round);
      const events = () =>
        (
          db
            .prepare('SELECT kind, participant, code, message FROM events WHERE round = ?')
            .all(round) as object[]
        )
          .map((e) => JSON.stringify(e))
          .join('\n');
      assert.equal(a.outcome, 'completed', `${s.name}: round ${round} ${a.reason ?? ''}\n${events()}`);
      assert.deepEqual(JSON.parse(a.survivors_json!), s.survivors, `${s.name}: survivors`);
      assert.deepEqual(JSON.parse(a.dropped_json!), s.dropped, `${s.name}: dropped`);
      const r = db
        .prepare("SELECT train_examples, model_out FROM rounds WHERE run_id = 'dropouts' AND round = ?")
        .get(round) as {
        train_examples: number;
        model_out: string | null;
      };
      const expected = s.survivors.reduce((sum, id) => sum + trainRows.get(id)!, 0);
      assert.equal(
        r.train_examples,
        expected,
        `${s.name}: the unmasked weight channel is exactly the survivors' examples`,
      );
      assert.ok(r.model_out, `${s.name}: a new model was stored`);
    }

    // Late masked input: the victim answers MaskedInputCollection after the stage deadline.
    round = await nextVictimRound(round);
    const late = await finished(round);
    const explain = (): string => {
      const events = db
        .prepare('SELECT kind, participant, code, message FROM events WHERE round = ?')
        .all(round);
      const tasks = db
        .prepare("SELECT id, status FROM tasks WHERE run_id = 'dropouts' AND round = ?")
        .all(round);
      let journal = '';
      try {
        journal = readFileSync(join(dir, 'institutions', VICTIM, 'journal.jsonl'), 'utf8');
      } catch {}
      return JSON.stringify({ round, events, tasks, journal }, null, 1);
    };
    assert.equal(late.outcome, 'completed', explain());
    assert.deepEqual(JSON.parse(late.survivors_json!), HONEST, explain());
    assert.deepEqual(JSON.parse(late.dropped_json!), [VICTIM], explain());
    const refused = await waitFor(
      'the late masked input to be refused',
      async () =>
        db
          .prepare(
            "SELECT code, message FROM events WHERE kind = 'result-refused' AND participant = ? AND round = ? AND message LIKE '%masked-input%'",
          )
          .get(VICTIM, round) as { code: string; message: string } | undefined,
      20_000,
    );
    assert.equal(refused.code, 'STALE_ROUND');

    // The coordinator killed during a secure-aggregation round: that attempt aborts, the round is retried.
    const killRound = await waitFor(
      'a round in MaskedInputCollection',
      async () => {
        const row = db
          .prepare(
            "SELECT round FROM tasks WHERE run_id = 'dropouts' AND kind = 'secagg-masked-input' AND round > ? ORDER BY round DESC LIMIT 1",
          )
          .get(round) as { round: number } | undefined;
        return row?.round;
      },
      60_000,
      10,
    );
    federation.coordinator.child.kill('SIGKILL');
    await federation.coordinator.exited;
    await federation.startCoordinator(port);
    const retried = await waitFor(
      `round ${killRound} to complete on a later attempt`,
      async () =>
        db
          .prepare(
            "SELECT * FROM secagg_attempts WHERE run_id = 'dropouts' AND round = ? AND outcome = 'completed'",
          )
          .get(killRound) as AttemptRow | undefined,
      60_000,
      100,
    );
    assert.ok(retried.attempt >= 1);
    const first = db
      .prepare("SELECT * FROM secagg_attempts WHERE run_id = 'dropouts' AND round = ? AND attempt = 0")
      .get(killRound) as AttemptRow;
    assert.equal(first.outcome, 'aborted');
    assert.match(first.reason ?? '', /coordinator restarted/);
    await client.close();
  });
});
