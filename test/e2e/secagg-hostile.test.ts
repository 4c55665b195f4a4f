/**
 * Hostile secure-aggregation results against the real coordinator process: an institution ("mallory",
 * driven by this test with a real ParticipantSession and its real identity key) sends, at every stage,
 * malformed or forged results before the genuine one. Each is refused with a code naming the problem
 * and recorded; none corrupts the round: it completes with every participant, and the unmasked weight
 * channel is exactly the sum of everyone's weights.
 */
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { EntenteError } from '../../src/core/index.ts';
import { createSeededRng } from '../../src/crypto/index.ts';
import { computeSchemaDigest, loadTable, parseDataSchema, splitTrainTest } from '../../src/data/index.ts';
import { type Task, createBlobRef, taskSchema } from '../../src/protocol/index.ts';
import {
  ParticipantSession,
  type SecAggRoundContext,
  countVectorWords,
  toBase64,
  writeIntegerWord,
} from '../../src/secagg/index.ts';
import { type ProcessFederation, startProcessFederation } from '../../src/simulation/index.ts';
import { createMtlsClient } from '../../src/transport/index.ts';
import { SCHEMA_PATH, createTestWorkspace, findFreePort, waitFor, waitForAllAvailable } from './fixtures.ts';

const HONEST = ['alpha', 'beta', 'gamma'];
const MALLORY = 'mallory';
const MALLORY_WEIGHT = 77;

describe('hostile secure-aggregation results', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses each forged or malformed result by name and still completes the round exactly', {
    timeout: 120_000,
  }, async () => {
    const setup = await createTestWorkspace([...HONEST, MALLORY], 'entente-secagg-hostile-');
    dir = setup.dir;
    const port = await findFreePort();
    federation = await startProcessFederation({
      workspace: dir,
      port,
      participants: HONEST.map((id) => ({
        institution: id,
        args: ['--data', setup.dataPath(id), '--schema', SCHEMA_PATH],
      })),
    });
    const base = `https://127.0.0.1:${port}`;
    const operator = createMtlsClient({ baseUrl: base, ...setup.ws.operatorIdentity() });
    const mallory = createMtlsClient({ baseUrl: base, ...setup.ws.institutionIdentity(MALLORY) });
    after(async () => {
      await operator.close();
      await mallory.destroy();
    });
    const signing = setup.ws.institutionSigningIdentity(MALLORY);
    // Mallory registers like a site with the same records' schema (sites that follow another are left out).
    await mallory.postJson('/v1/participants/register', {
      protocol: 'entente/1',
      trainers: ['builtin'],
      software: 'test',
      dataSchemaDigest: computeSchemaDigest(parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')))),
    });
    const heartbeat = setInterval(() => void mallory.postJson('/v1/heartbeat', {}).catch(() => {}), 1000);
    after(() => clearInterval(heartbeat));
    await waitForAllAvailable(operator);
    await operator.postJson('/v1/runs', {
      id: 'hostile',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: 1,
      minParticipants: 3,
      train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
      evaluate: false,
      roundTimeoutMs: 60_000,
      seed: 'hostile-secagg',
      secureAggregation: { protocol: 'secagg', stageTimeoutMs: 60_000, maxParticipants: 10, maxWeight: 1000 },
    });

    const nextTask = async (kind: Task['kind']): Promise<Task> =>
      waitFor(
        `mallory's ${kind} task`,
        async () => {
          const r = await mallory.getJson('/v1/tasks/next?waitMs=1000', 5_000);
          if (r.status === 204 || r.body === null) return undefined;
          const t = taskSchema.parse(r.body);
          return t.kind === kind ? t : undefined;
        },
        30_000,
        10,
      );
    const post = (task: Task, result: object) =>
      mallory.postJson(`/v1/tasks/${encodeURIComponent(task.taskId)}/result`, result);
    const refused = async (task: Task, result: object, code: string, pattern: RegExp) => {
      await assert.rejects(post(task, result), (err: unknown) => {
        assert.ok(err instanceof EntenteError, String(err));
        assert.equal(err.code, code, err.message);
        assert.match(err.message, pattern);
        return true;
      });
    };

    // Stage 1: AdvertiseKeys.
    const train = await nextTask('secagg-train');
    assert.equal(train.kind, 'secagg-train');
    if (train.kind !== 'secagg-train') return;
    const context: SecAggRoundContext = {
      ...train.secagg,
      runId: train.runId,
      round: train.round,
      baseModelSha256: train.model.sha256,
      options: train.train,
    };
    const input = new Uint32Array(countVectorWords(context)); // a zero delta
    writeIntegerWord(input, context.segments.at(-1)!.offsetWords, MALLORY_WEIGHT);
    const { session, advert } = ParticipantSession.create({
      context,
      self: MALLORY,
      identityKeyPem: signing.keyPem,
      // The workspace's institutions, as the log pins them.
      pinnedKeyOf: (member) => {
        if (!setup.ws.consortium.institutions.includes(member)) return undefined;
        const pem = setup.ws.institutionSigningIdentity(member).keyPem;
        return new Uint8Array(createPublicKey(pem).export({ format: 'der', type: 'spki' }).subarray(12));
      },
      input,
    });
    const ids = { runId: train.runId, round: train.round, attempt: train.attempt };
    await refused(
      train,
      { ...ids, kind: 'secagg-train', advert: { ...advert, signature: toBase64(new Uint8Array(64)) } },
      'PROTOCOL_VIOLATION',
      /advert\.signature/,
    );
    await refused(
      train,
      { ...ids, kind: 'secagg-train', advert: { ...advert, participant: 'alpha' } },
      'PROTOCOL_VIOLATION',
      /advert\.participant/,
    );
    await refused(
      train,
      { ...ids, kind: 'secagg-train', advert: { ...advert, encryptionKey: 'AAAA' } },
      'INVALID_MESSAGE',
      /encryptionKey/,
    );
    await refused(
      train,
      { ...ids, attempt: ids.attempt + 1, kind: 'secagg-train', advert },
      'STALE_ROUND',
      /attempt/,
    );
    await post(train, { ...ids, kind: 'secagg-train', advert });
    await refused(train, { ...ids, kind: 'secagg-train', advert }, 'DUPLICATE_RESULT', /already/);

    // Stage 2: ShareKeys.
    const shareTask = await nextTask('secagg-share-keys');
    if (shareTask.kind !== 'secagg-share-keys') return;
    const { shares } = await session.shareKeys(shareTask.adverts);
    await refused(
      shareTask,
      { ...ids, kind: 'secagg-share-keys', shares: shares.slice(1) },
      'PROTOCOL_VIOLATION',
      /every other member/,
    );
    await post(shareTask, { ...ids, kind: 'secagg-share-keys', shares });

    // Stage 3: MaskedInputCollection.
    const maskTask = await nextTask('secagg-masked-input');
    if (maskTask.kind !== 'secagg-masked-input') return;
    const out = session.maskInput(maskTask.shares);
    const bytes = new Uint8Array(out.masked.buffer, out.masked.byteOffset, out.masked.byteLength);
    const upload = async (b: Uint8Array) => {
      const { ref, chunks } = createBlobRef(b);
      for (const c of chunks) await mallory.putBytes(`/v1/blobs/${ref.chunks[chunks.indexOf(c)]!.sha256}`, c);
      return ref;
    };
    const short = await upload(bytes.subarray(0, bytes.length - 4));
    await refused(
      maskTask,
      { ...ids, kind: 'secagg-masked-input', maskedInput: short, signature: out.sign(short.sha256) },
      'INVALID_TENSOR',
      /maskedInput\.bytes/,
    );
    const good = createBlobRef(bytes).ref;
    await refused(
      maskTask,
      { ...ids, kind: 'secagg-masked-input', maskedInput: good, signature: out.sign(good.sha256) },
      'MALFORMED_BODY',
      /not uploaded completely/,
    );
    const ref = await upload(bytes);
    const other = '0'.repeat(64);
    await refused(
      maskTask,
      { ...ids, kind: 'secagg-masked-input', maskedInput: ref, signature: out.sign(other) },
      'PROTOCOL_VIOLATION',
      /signature/,
    );
    await refused(
      maskTask,
      {
        ...ids,
        kind: 'secagg-masked-input',
        maskedInput: { ...ref, sha256: other },
        signature: out.sign(other),
      },
      'DIGEST_MISMATCH',
      /maskedInput\.sha256/,
    );
    await post(maskTask, {
      ...ids,
      kind: 'secagg-masked-input',
      maskedInput: ref,
      signature: out.sign(ref.sha256),
    });

    // Stage 4: ConsistencyCheck.
    const checkTask = await nextTask('secagg-consistency-check');
    if (checkTask.kind !== 'secagg-consistency-check') return;
    const signed = session.signSurvivors(checkTask.survivors);
    await refused(
      checkTask,
      { ...ids, kind: 'secagg-consistency-check', signature: toBase64(new Uint8Array(64).fill(1)) },
      'PROTOCOL_VIOLATION',
      /survivor set/,
    );
    await post(checkTask, { ...ids, kind: 'secagg-consistency-check', signature: signed.signature });

    // Stage 5: Unmasking.
    const unmaskTask = await nextTask('secagg-unmasking');
    if (unmaskTask.kind !== 'secagg-unmasking') return;
    const released = session.unmask(unmaskTask);
    await refused(
      unmaskTask,
      {
        ...ids,
        kind: 'secagg-unmasking',
        selfSeedShares: released.selfSeedShares.slice(1),
        maskingKeyShares: [...released.maskingKeyShares],
      },
      'PROTOCOL_VIOLATION',
      /selfSeedShares/,
    );
    await post(unmaskTask, {
      ...ids,
      kind: 'secagg-unmasking',
      selfSeedShares: [...released.selfSeedShares],
      maskingKeyShares: [...released.maskingKeyShares],
    });

    // The round completes with all four, and the weight channel is exact.
    const db = new Database(join(dir, 'coordinator', 'state', 'coordinator.db'), { readonly: true });
    after(() => db.close());
    const attempt = await waitFor(
      'the round to complete',
      async () => {
        const a = db
          .prepare(
            // 'unmasking' is not an outcome yet: the attempt is still in its last stage.
            "SELECT * FROM secagg_attempts WHERE run_id = 'hostile' AND round = 1 AND outcome NOT IN ('running', 'unmasking')",
          )
          .get() as { outcome: string; survivors_json: string; reason: string | null } | undefined;
        const r = db.prepare("SELECT model_out FROM rounds WHERE run_id = 'hostile' AND round = 1").get() as
          | { model_out: string | null }
          | undefined;
        // The model and metrics land in the transaction after the attempt's outcome.
        return a && (a.outcome !== 'completed' || r?.model_out) ? a : undefined;
      },
      60_000,
    );
    assert.equal(attempt.outcome, 'completed', attempt.reason ?? '');
    assert.deepEqual(JSON.parse(attempt.survivors_json), [...HONEST, MALLORY].sort());
    const schema = parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
    const honestWeight = HONEST.reduce((s, id) => {
      const data = loadTable(readFileSync(setup.dataPath(id), 'utf8'), schema);
      return s + splitTrainTest(data, 0.2, createSeededRng(`${id}/holdout`)).train.count;
    }, 0);
    const round = db
      .prepare("SELECT train_examples FROM rounds WHERE run_id = 'hostile' AND round = 1")
      .get() as { train_examples: number };
    assert.equal(round.train_examples, honestWeight + MALLORY_WEIGHT);
    const codes = (
      db
        .prepare("SELECT code FROM events WHERE participant = ? AND kind = 'result-refused' ORDER BY id")
        .all(MALLORY) as { code: string }[]
    ).map((e) => e.code);
    assert.deepEqual(codes, [
      'PROTOCOL_VIOLATION',
      'PROTOCOL_VIOLATION',
      'INVALID_MESSAGE',
      'STALE_ROUND',
      'DUPLICATE_RESULT',
      'PROTOCOL_VIOLATION',
      'INVALID_TENSOR',
      'MALFORMED_BODY',
      'PROTOCOL_VIOLATION',
      'DIGEST_MISMATCH',
      'PROTOCOL_VIOLATION',
      'PROTOCOL_VIOLATION',
    ]);
  });
});
