/**
 * A malicious coordinator against a real participant process (Bonawitz et al. CCS 2017, actively
 * secure variant; DESIGN.md §4 threat model). The coordinator is a double speaking the real protocol
 * over mutual TLS (malicious-coordinator-double.ts); one institution is a real `entente participant`
 * process, the other cohort members are simulated here with real `ParticipantSession`s holding their
 * workspace identity keys, so their adverts, shares and signatures are genuine. Every trick must end
 * with the real participant refusing (a 'refusal' result with PROTOCOL_VIOLATION naming the problem,
 * and a line in its journal) without revealing an individual update; one honest round shows that the
 * same process completes all five stages and that the double can unmask the sum with ServerSession.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Tensor, encodeSafetensors } from '../../src/core/index.ts';
import { createSeededRng, signEd25519 } from '../../src/crypto/index.ts';
import {
  applyStandardization,
  computeFeatureStats,
  computeSchemaDigest,
  deriveStandardization,
  loadTable,
  parseDataSchema,
  splitTrainTest,
} from '../../src/data/index.ts';
import { builtinTrainer, describeLayout, initializeWeights, parseModelSpec } from '../../src/models/index.ts';
import type { BlobRef, SecAggContextWire, Task, TaskResult } from '../../src/protocol/index.ts';
import {
  ParticipantSession,
  type SealedShare,
  type SecAggRoundContext,
  ServerSession,
  type SignedAdvert,
  type UnmaskRequest,
  WEIGHT_SEGMENT,
  encodeAdvertPayload,
  generateX25519KeyPair,
  toBase64,
} from '../../src/secagg/index.ts';
import { type ChildHandle, DATASET_DIR, spawnEntente, stopChild } from '../../src/simulation/index.ts';
import type { Workspace } from '../../src/storage/index.ts';
import { SCHEMA_PATH, createTestWorkspace, waitFor } from './fixtures.ts';
import { type CoordinatorDouble, startCoordinatorDouble } from './malicious-coordinator-double.ts';

const REAL = 'alpha';
const SIMULATED = ['beta', 'delta', 'gamma'];
const COHORT = [REAL, ...SIMULATED].sort(); // alpha, beta, delta, gamma: beta is adverts.1
const RUN = 'malicious';
const THRESHOLD = 3;
const SIM_WEIGHTS: Record<string, number> = { beta: 100, delta: 200, gamma: 300 };
const spec = parseModelSpec({ kind: 'logistic', inputDim: 30 });
const layout = describeLayout(spec);
const TRAIN = { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' as const, proximalMu: 0 };
const QUANTIZATION = { ringBits: 32 as const, clipRange: 1, scale: 2 ** 16 };
const MAX_WEIGHT = 1000;
const RESULT_TIMEOUT_MS = 20_000;

const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const SCHEMA_DIGEST = computeSchemaDigest(parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))));

function createSegments() {
  const segments: { name: string; offsetWords: number; lengthWords: number }[] = [];
  let offset = 0;
  for (const t of layout) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    segments.push({ name: t.name, offsetWords: offset, lengthWords: n });
    offset += n;
  }
  segments.push({ name: WEIGHT_SEGMENT, offsetWords: offset, lengthWords: 1 });
  return segments;
}
const SEGMENTS = createSegments();
const WORDS = SEGMENTS.at(-1)!.offsetWords + 1;

/** A simulated member's known input: small signed integers, then its weight. */
function createSimInput(id: string): Uint32Array {
  const k = SIMULATED.indexOf(id) + 1;
  const v = Uint32Array.from({ length: WORDS }, (_, i) => (((k * 37 + i * 11) % 101) - 50) >>> 0);
  v[WORDS - 1] = SIM_WEIGHTS[id]!;
  return v;
}

type ShareKeysTask = Extract<Task, { kind: 'secagg-share-keys' }>;

interface OpenRound {
  readonly round: number;
  readonly attempt: number;
  /** The context the simulated members (and an honest double) use. */
  readonly ctx: SecAggRoundContext;
  readonly trainTask: Extract<Task, { kind: 'secagg-train' }>;
  readonly sims: Map<string, ParticipantSession>;
  /** All four adverts sorted by participant (the real one as it posted it). */
  readonly adverts: SignedAdvert[];
}

describe('a malicious coordinator against a real participant process', () => {
  let dir = '';
  let ws: Workspace;
  let double: CoordinatorDouble;
  let participant: ChildHandle | undefined;
  let dataPath = '';
  let model: Tensor[];
  let modelRef: BlobRef;
  const logged = new Map<string, number>();
  /** The double logs each model once (the participant checks the model against the log). */
  const logIndexOf = (sha256: string): number => {
    let index = logged.get(sha256);
    if (index === undefined) {
      index = double.logModel(RUN, sha256);
      logged.set(sha256, index);
    }
    return index;
  };
  let otherModelRef: BlobRef;
  let standardization: { mean: number[]; std: number[] };
  let journalPath = '';
  let nextTask = 0;
  let nextRound = 1;
  let honestAdverts: SignedAdvert[] = [];
  let honestShareKeysTask: ShareKeysTask | undefined;
  /** The workspace institutions' identity keys: what the double's log pins (as the real log does). */
  const pinnedKeyOf = (member: string): Uint8Array | undefined => {
    if (!ws.consortium.institutions.includes(member)) return undefined;
    const spki = createPublicKey(ws.institutionSigningIdentity(member).keyPem).export({
      format: 'der',
      type: 'spki',
    });
    return new Uint8Array(spki.subarray(12));
  };

  before(async () => {
    const setup = await createTestWorkspace(COHORT, 'entente-malicious-');
    dir = setup.dir;
    ws = setup.ws;
    dataPath = setup.dataPath(REAL);
    journalPath = join(dir, 'institutions', REAL, 'journal.jsonl');
    double = await startCoordinatorDouble({ workspace: ws });
    model = initializeWeights(spec, createSeededRng('malicious/model'));
    modelRef = double.putBlob(encodeSafetensors(model));
    const other = initializeWeights(spec, createSeededRng('malicious/other-model'));
    otherModelRef = double.putBlob(encodeSafetensors(other));
    assert.notEqual(modelRef.sha256, otherModelRef.sha256);
    const schema = parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
    const all = loadTable(readFileSync(join(DATASET_DIR, 'breast-cancer.csv'), 'utf8'), schema);
    const std = deriveStandardization(computeFeatureStats(all));
    standardization = { mean: [...std.mean], std: [...std.std] };
    participant = spawnEntente(REAL, [
      'participant',
      'start',
      '--workspace',
      dir,
      '--institution',
      REAL,
      '--coordinator',
      double.url,
      '--data',
      dataPath,
      '--schema',
      SCHEMA_PATH,
    ]);
    await waitFor(
      `${REAL} to register`,
      async () => (double.registrations.includes(REAL) ? true : undefined),
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${participant?.stderr().slice(-3000)}`);
    });
  });

  after(async () => {
    if (participant) await stopChild(participant);
    await double?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // ---------- the double's moves ----------

  function base(r: { round: number; attempt: number }, stage: string) {
    return {
      taskId: `${RUN}.r${r.round}.a${r.attempt}.${stage}.${nextTask++}`,
      runId: RUN,
      round: r.round,
      attempt: r.attempt,
      issuedAt: Date.now(),
    };
  }

  /** Hands `task` to the real participant and waits for what it posts. */
  async function ask(task: Task): Promise<TaskResult> {
    double.assign(REAL, task);
    try {
      return (await double.waitForResult(task.taskId, RESULT_TIMEOUT_MS)).result;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${participant?.stderr().slice(-3000)}`);
    }
  }

  function expectKind<K extends TaskResult['kind']>(
    r: TaskResult,
    kind: K,
  ): Extract<TaskResult, { kind: K }> {
    assert.equal(r.kind, kind, `expected a ${kind} result, got ${JSON.stringify(r).slice(0, 400)}`);
    return r as Extract<TaskResult, { kind: K }>;
  }

  /** Stage advertise-keys: the real participant trains on `realModel` and advertises; the others too. */
  async function openRound(options: { realModel?: BlobRef; round?: number; attempt?: number } = {}) {
    const round = options.round ?? nextRound++;
    const attempt = options.attempt ?? 0;
    const wire: SecAggContextWire = {
      consortium: ws.consortium.consortium,
      attempt,
      cohort: COHORT,
      threshold: THRESHOLD,
      quantization: QUANTIZATION,
      maxWeight: MAX_WEIGHT,
      segments: SEGMENTS,
    };
    const ctx: SecAggRoundContext = {
      ...wire,
      runId: RUN,
      round,
      baseModelSha256: modelRef.sha256,
      options: TRAIN,
    };
    const trainTask = {
      ...base({ round, attempt }, 'advertise-keys'),
      kind: 'secagg-train' as const,
      model: options.realModel ?? modelRef,
      modelSpec: { kind: 'logistic', inputDim: 30 },
      train: TRAIN,
      standardization,
      dataSchemaDigest: SCHEMA_DIGEST,
      seed: `${RUN}/train/${round}/${attempt}`,
      modelLog: { index: logIndexOf((options.realModel ?? modelRef).sha256) },
      secagg: wire,
    };
    const advert = expectKind(await ask(trainTask), 'secagg-train').advert;
    assert.equal(advert.participant, REAL);
    const sims = new Map<string, ParticipantSession>();
    const adverts = [advert];
    for (const id of SIMULATED) {
      const signing = ws.institutionSigningIdentity(id);
      const created = ParticipantSession.create({
        context: ctx,
        self: id,
        identityKeyPem: signing.keyPem,
        pinnedKeyOf,
        input: createSimInput(id),
      });
      sims.set(id, created.session);
      adverts.push(created.advert);
    }
    adverts.sort((a, b) => (a.participant < b.participant ? -1 : 1));
    return { round, attempt, ctx, trainTask, sims, adverts } satisfies OpenRound;
  }

  function shareKeysTask(r: OpenRound, adverts: readonly SignedAdvert[]): ShareKeysTask {
    return { ...base(r, 'share-keys'), kind: 'secagg-share-keys', adverts: [...adverts] };
  }

  /** Honest ShareKeys for everyone; returns, per sender, the ciphertexts it addressed to each peer. */
  async function shareKeysAll(r: OpenRound): Promise<Map<string, SealedShare[]>> {
    const out = new Map<string, SealedShare[]>();
    out.set(REAL, expectKind(await ask(shareKeysTask(r, r.adverts)), 'secagg-share-keys').shares);
    for (const [id, s] of r.sims) out.set(id, (await s.shareKeys(r.adverts)).shares);
    return out;
  }

  /** The ciphertexts addressed to `receiver`, as the coordinator routes them (sorted by sender). */
  function routeTo(sent: Map<string, SealedShare[]>, receiver: string): SealedShare[] {
    return [...sent.keys()]
      .filter((sender) => sender !== receiver)
      .sort()
      .map((sender) => ({
        peer: sender,
        sealed: sent.get(sender)!.find((s) => s.peer === receiver)!.sealed,
      }));
  }

  /** MaskedInputCollection: the real participant and the simulated `maskers` send masked inputs. */
  async function maskAll(r: OpenRound, sent: Map<string, SealedShare[]>, maskers: readonly string[]) {
    const real = expectKind(
      await ask({ ...base(r, 'masked-input'), kind: 'secagg-masked-input', shares: routeTo(sent, REAL) }),
      'secagg-masked-input',
    );
    const masked = new Map<string, { vector: Uint32Array; sha256: string; signature: string }>();
    const bytes = new Uint8Array(double.readBlob(real.maskedInput));
    masked.set(REAL, {
      vector: new Uint32Array(bytes.buffer, 0, WORDS),
      sha256: real.maskedInput.sha256,
      signature: real.signature,
    });
    for (const id of maskers) {
      const out = r.sims.get(id)!.maskInput(routeTo(sent, id));
      const vector = out.masked as Uint32Array;
      const digest = sha256Hex(new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength));
      masked.set(id, { vector, sha256: digest, signature: out.sign(digest) });
    }
    return masked;
  }

  function consistencyTask(r: OpenRound, survivors: readonly string[]): Task {
    return { ...base(r, 'consistency-check'), kind: 'secagg-consistency-check', survivors: [...survivors] };
  }

  function unmaskingTask(r: OpenRound, request: UnmaskRequest): Task {
    return {
      ...base(r, 'unmasking'),
      kind: 'secagg-unmasking',
      survivors: [...request.survivors],
      dropped: [...request.dropped],
      signatures: request.signatures.map((s) => ({ ...s })),
    };
  }

  /** Runs the round to the Unmasking stage with `dropped` not sending masked inputs, everyone signing `survivors`. */
  async function toUnmasking(r: OpenRound, survivors: readonly string[]) {
    const sent = await shareKeysAll(r);
    await maskAll(
      r,
      sent,
      SIMULATED.filter((id) => survivors.includes(id)),
    );
    const signatures = [
      {
        participant: REAL,
        signature: expectKind(await ask(consistencyTask(r, survivors)), 'secagg-consistency-check').signature,
      },
    ];
    for (const id of survivors.filter((p) => p !== REAL))
      signatures.push({ participant: id, signature: r.sims.get(id)!.signSurvivors(survivors).signature });
    return signatures.sort((a, b) => (a.participant < b.participant ? -1 : 1));
  }

  // ---------- what every refusal must show ----------

  function readJournal(): { event: string; taskId: string; code: string; message: string; round: number }[] {
    let text = '';
    try {
      text = readFileSync(journalPath, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }

  function resultsOf(r: { round: number; attempt: number }): TaskResult[] {
    return double.results
      .filter((x) => x.participant === REAL)
      .map((x) => x.result)
      .filter((x) => x.round === r.round && (!('attempt' in x) || x.attempt === r.attempt));
  }

  /** The result is a PROTOCOL_VIOLATION refusal naming the problem, and the journal has the same line. */
  function assertRefused(result: TaskResult, task: Task, pattern: RegExp): void {
    const refusal = expectKind(result, 'refusal');
    assert.equal(refusal.code, 'PROTOCOL_VIOLATION');
    assert.match(refusal.message, pattern);
    assert.equal(refusal.round, task.round);
    const line = readJournal().find((e) => e.taskId === task.taskId);
    assert.ok(line, `journal has a line for ${task.taskId}`);
    assert.equal(line.event, 'task-refused');
    assert.equal(line.code, 'PROTOCOL_VIOLATION');
    assert.match(line.message, pattern);
  }

  /** Nothing of the round's secrets was released: no unmask shares at all (and optionally no key shares). */
  function assertNothingReleased(r: OpenRound, options: { sharesSent: boolean }): void {
    const kinds = resultsOf(r).map((x) => x.kind);
    assert.ok(!kinds.includes('secagg-unmasking'), `no unmask shares were posted (${kinds.join(', ')})`);
    if (!options.sharesSent)
      assert.ok(
        !kinds.includes('secagg-share-keys'),
        `no share ciphertexts were posted (${kinds.join(', ')})`,
      );
  }

  // ---------- the cases ----------

  it('an honest round: the participant completes all five stages and the double unmasks the sum', {
    timeout: 30_000,
  }, async () => {
    const r = await openRound();
    const server = new ServerSession({ context: r.ctx, pinnedKeyOf });
    for (const a of r.adverts) await server.acceptAdvert(a.participant, a);
    const v1 = server.closeAdvertiseKeys();
    assert.ok(v1.ok);
    const skTask = shareKeysTask(r, v1.value.adverts);
    const real = expectKind(await ask(skTask), 'secagg-share-keys');
    server.acceptShares(REAL, real.shares);
    for (const [id, s] of r.sims) server.acceptShares(id, (await s.shareKeys(v1.value.adverts)).shares);
    const v2 = server.closeShareKeys();
    assert.ok(v2.ok);
    // gamma drops after ShareKeys: its pairwise masks must be removed with its reconstructed key.
    const sum = new Uint32Array(WORDS);
    const fold = (v: Uint32Array) => {
      for (let i = 0; i < WORDS; i++) sum[i] = (sum[i]! + v[i]!) >>> 0;
    };
    const maskedReal = expectKind(
      await ask({
        ...base(r, 'masked-input'),
        kind: 'secagg-masked-input',
        shares: v2.value.routed.get(REAL)!,
      }),
      'secagg-masked-input',
    );
    const realBytes = new Uint8Array(double.readBlob(maskedReal.maskedInput));
    assert.equal(realBytes.length, WORDS * 4);
    server.acceptMaskedInput(REAL, maskedReal.maskedInput.sha256, maskedReal.signature);
    fold(new Uint32Array(realBytes.buffer, 0, WORDS));
    for (const id of ['beta', 'delta']) {
      const out = r.sims.get(id)!.maskInput(v2.value.routed.get(id)!);
      const v = out.masked as Uint32Array;
      const digest = sha256Hex(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      server.acceptMaskedInput(id, digest, out.sign(digest));
      fold(v);
    }
    const v3 = server.closeMaskedInput();
    assert.ok(v3.ok);
    assert.deepEqual(v3.value.dropped, ['gamma']);
    const cc = expectKind(await ask(consistencyTask(r, v3.value.survivors)), 'secagg-consistency-check');
    server.acceptSurvivorSignature(REAL, cc.signature);
    for (const id of ['beta', 'delta'])
      server.acceptSurvivorSignature(id, r.sims.get(id)!.signSurvivors(v3.value.survivors).signature);
    const v4 = server.closeConsistencyCheck();
    assert.ok(v4.ok);
    const um = expectKind(await ask(unmaskingTask(r, v4.value)), 'secagg-unmasking');
    assert.deepEqual(
      um.selfSeedShares.map((s) => s.owner),
      [REAL, 'beta', 'delta'],
    );
    assert.deepEqual(
      um.maskingKeyShares.map((s) => s.owner),
      ['gamma'],
    );
    server.acceptUnmaskShares(REAL, um);
    for (const id of ['beta', 'delta']) server.acceptUnmaskShares(id, r.sims.get(id)!.unmask(v4.value));
    const v5 = await server.closeUnmasking();
    assert.ok(v5.ok, v5.ok ? '' : v5.reason);
    v5.value.unmaskSum(sum);

    // The test (not the double) can recompute the real participant's update: same data split, same
    // seed, same trainer. The weight channel is the exact sum of the weights; every other word is the
    // sum of the simulated inputs plus the real participant's quantized delta (within 1/scale).
    const schema = parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
    const data = loadTable(readFileSync(dataPath, 'utf8'), schema);
    const split = splitTrainTest(data, 0.2, createSeededRng(`${REAL}/holdout`));
    const train = applyStandardization(split.train, {
      mean: Float64Array.from(standardization.mean),
      std: Float64Array.from(standardization.std),
    });
    const out = builtinTrainer.train(spec, model, train, { ...TRAIN }, createSeededRng(r.trainTask.seed));
    const realWeight = Math.min(out.numExamples, MAX_WEIGHT);
    assert.equal(sum[WORDS - 1], realWeight + SIM_WEIGHTS.beta! + SIM_WEIGHTS.delta!);
    const simSum = new Uint32Array(WORDS);
    for (const id of ['beta', 'delta']) {
      const x = createSimInput(id);
      for (let i = 0; i < WORDS; i++) simSum[i] = (simSum[i]! + x[i]!) >>> 0;
    }
    const ratio = realWeight / MAX_WEIGHT;
    let checked = 0;
    for (const [k, t] of out.weights.entries()) {
      const seg = SEGMENTS[k]!;
      for (let j = 0; j < t.data.length; j++) {
        const delta = Math.fround((t.data[j]! - model[k]!.data[j]!) * ratio);
        const clipped = Math.max(-QUANTIZATION.clipRange, Math.min(QUANTIZATION.clipRange, delta));
        const q = ((sum[seg.offsetWords + j]! - simSum[seg.offsetWords + j]!) >>> 0) | 0;
        assert.ok(
          Math.abs(q / QUANTIZATION.scale - clipped) <= 1 / QUANTIZATION.scale + 1e-9,
          `${t.name}[${j}]: unmasked ${q / QUANTIZATION.scale}, trained ${clipped}`,
        );
        checked++;
      }
    }
    assert.equal(checked, WORDS - 1);
    // No refusal in the honest round.
    assert.ok(!resultsOf(r).some((x) => x.kind === 'refusal'));
    honestAdverts = r.adverts;
    honestShareKeysTask = skTask;
  });

  it('1a. asking for both shares of one peer (a survivor also listed as dropped) is refused', {
    timeout: 30_000,
  }, async () => {
    const r = await openRound();
    const survivors = [REAL, 'beta', 'delta'];
    const signatures = await toUnmasking(r, survivors);
    const task = unmaskingTask(r, { survivors, dropped: ['delta', 'gamma'], signatures });
    assertRefused(await ask(task), task, /delta is listed as both survivor and dropped/);
    assertNothingReleased(r, { sharesSent: true });
  });

  it('1b. an honest Unmasking request followed by one with different lists is refused the second time', {
    timeout: 30_000,
  }, async () => {
    const r = await openRound();
    const survivors = [REAL, 'beta', 'delta'];
    const signatures = await toUnmasking(r, survivors);
    const first = expectKind(
      await ask(unmaskingTask(r, { survivors, dropped: ['gamma'], signatures })),
      'secagg-unmasking',
    );
    assert.deepEqual(
      first.selfSeedShares.map((s) => s.owner),
      survivors,
    );
    // Now the coordinator claims delta dropped too, to get delta's masking-key share as well.
    const task = unmaskingTask(r, { survivors: [REAL, 'beta'], dropped: ['delta', 'gamma'], signatures });
    assertRefused(await ask(task), task, /already answered for different survivor and dropped lists/);
    const released = resultsOf(r).filter((x) => x.kind === 'secagg-unmasking');
    assert.equal(released.length, 1, 'only the first request was answered');
  });

  it('2. different survivor sets to different participants are refused at Unmasking', {
    timeout: 30_000,
  }, async () => {
    const r = await openRound();
    const sent = await shareKeysAll(r);
    await maskAll(r, sent, SIMULATED);
    // The real participant is shown A (gamma "dropped"), the others B (gamma survived).
    const setA = [REAL, 'beta', 'delta'];
    const setB = [...COHORT];
    expectKind(await ask(consistencyTask(r, setA)), 'secagg-consistency-check');
    const signaturesB = SIMULATED.map((id) => ({
      participant: id,
      signature: r.sims.get(id)!.signSurvivors(setB).signature,
    }));
    const task = unmaskingTask(r, { survivors: setB, dropped: [], signatures: signaturesB });
    assertRefused(await ask(task), task, /survivors: differs from the survivor set this participant signed/);
    assertNothingReleased(r, { sharesSent: true });
  });

  it('3. adverts replayed from an earlier round, and a replayed earlier task, are refused', {
    timeout: 30_000,
  }, async () => {
    assert.ok(honestShareKeysTask && honestAdverts.length === 4, 'the honest round ran first');
    const r = await openRound();
    const own = r.adverts.find((a) => a.participant === REAL)!;
    const replayed = honestAdverts.map((a) => (a.participant === REAL ? own : a));
    const task = shareKeysTask(r, replayed);
    assertRefused(await ask(task), task, /adverts\.1\.configDigest: differs from this round/);
    assertNothingReleased(r, { sharesSent: false });
    // The whole ShareKeys task of the honest round, replayed under a fresh task id.
    const old = { ...honestShareKeysTask, taskId: `${honestShareKeysTask.taskId}.replay` };
    const answeredBefore = resultsOf(old).filter((x) => x.kind !== 'refusal').length;
    assertRefused(await ask(old), old, /attempt: no secure-aggregation session/);
    assert.equal(resultsOf(old).filter((x) => x.kind !== 'refusal').length, answeredBefore);
  });

  const tamperedAdverts: [string, (a: SignedAdvert, r: OpenRound) => SignedAdvert, RegExp][] = [
    [
      'a substituted masking key',
      (a) => ({ ...a, maskingKey: toBase64(generateX25519KeyPair().publicKey) }),
      /adverts\.1\.signature: does not verify with the identity key pinned for beta/,
    ],
    [
      'an unsigned advert (zero signature)',
      (a) => ({ ...a, signature: toBase64(new Uint8Array(64)) }),
      /adverts\.1\.signature: does not verify with the identity key pinned for beta/,
    ],
    [
      "an advert signed by another institution's identity key",
      (a, r) => {
        const { signature: _s, ...unsigned } = a;
        const gamma = ws.institutionSigningIdentity('gamma');
        return { ...a, signature: toBase64(signEd25519(gamma.keyPem, encodeAdvertPayload(r.ctx, unsigned))) };
      },
      /adverts\.1\.signature: does not verify with the identity key pinned for beta/,
    ],
    [
      'an advert signed with a fresh key the coordinator certified for beta (its CA would issue one)',
      (a, r) => {
        const { signature: _s, ...unsigned } = a;
        const minted = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' });
        return {
          ...a,
          signature: toBase64(signEd25519(minted.toString(), encodeAdvertPayload(r.ctx, unsigned))),
        };
      },
      /adverts\.1\.signature: does not verify with the identity key pinned for beta/,
    ],
  ];
  for (const [i, [what, tamper, pattern]] of tamperedAdverts.entries()) {
    it(`4${'abcd'[i]}. a relayed advert is refused: ${what}`, { timeout: 30_000 }, async () => {
      const r = await openRound();
      const list = r.adverts.map((a) => (a.participant === 'beta' ? tamper(a, r) : a));
      const task = shareKeysTask(r, list);
      assertRefused(await ask(task), task, pattern);
      assertNothingReleased(r, { sharesSent: false });
    });
  }

  it('5. a different base model for the participant than for the others is caught at ShareKeys', {
    timeout: 30_000,
  }, async () => {
    const r = await openRound({ realModel: otherModelRef });
    const own = r.adverts.find((a) => a.participant === REAL)!;
    // An honest coordinator would already catch the mismatch on the advert (bound to H').
    const server = new ServerSession({ context: r.ctx, pinnedKeyOf });
    await assert.rejects(() => server.acceptAdvert(REAL, own), /advert\.configDigest: differs/);
    const task = shareKeysTask(r, r.adverts);
    assertRefused(await ask(task), task, /adverts\.1\.configDigest: differs from this round/);
    assertNothingReleased(r, { sharesSent: false });
  });

  /** Enrolls `member` in the double's log under a key the double made (as a coordinator holding the CA could). */
  function mintMember(member: string): string {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
    double.appendLogEntry({
      kind: 'member-enrolled',
      member,
      roles: ['institution'],
      tlsCertSha256: sha256Hex(raw),
      identityCertSha256: sha256Hex(Buffer.concat([raw, raw])),
      identityKey: Buffer.from(raw).toString('base64'),
      notAfter: new Date(Date.now() + 86_400_000).toISOString(),
      renewal: false,
    });
    return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  }

  it('7. a cohort minted by the coordinator (members it enrolled in its own log) is refused before training', {
    timeout: 30_000,
  }, async () => {
    mintMember('mallory-1');
    mintMember('mallory-2');
    const round = nextRound++;
    const wire: SecAggContextWire = {
      consortium: ws.consortium.consortium,
      attempt: 0,
      cohort: [REAL, 'mallory-1', 'mallory-2'],
      threshold: 3,
      quantization: QUANTIZATION,
      maxWeight: MAX_WEIGHT,
      segments: SEGMENTS,
    };
    const task: Task = {
      ...base({ round, attempt: 0 }, 'advertise-keys'),
      kind: 'secagg-train',
      model: modelRef,
      modelSpec: { kind: 'logistic', inputDim: 30 },
      train: TRAIN,
      standardization,
      dataSchemaDigest: SCHEMA_DIGEST,
      seed: `${RUN}/train/${round}/0`,
      modelLog: { index: logIndexOf(modelRef.sha256) },
      secagg: wire,
    };
    assertRefused(
      await ask(task),
      task,
      /secagg\.cohort: mallory-1, mallory-2 have no identity key pinned in the audit log this site verified/,
    );
    assert.ok(
      !resultsOf({ round, attempt: 0 }).some((x) => x.kind === 'secagg-train'),
      'no advert was posted',
    );
  });

  it("8. a key the coordinator enrolled under beta's name (no rotation by beta, no quorum) is not beta's", {
    timeout: 30_000,
  }, async () => {
    const mintedBeta = mintMember('beta');
    const r = await openRound();
    const list = r.adverts.map((a) => {
      if (a.participant !== 'beta') return a;
      const { signature: _s, ...unsigned } = a;
      return { ...a, signature: toBase64(signEd25519(mintedBeta, encodeAdvertPayload(r.ctx, unsigned))) };
    });
    const task = shareKeysTask(r, list);
    assertRefused(
      await ask(task),
      task,
      /adverts\.1\.signature: does not verify with the identity key pinned for beta/,
    );
    assertNothingReleased(r, { sharesSent: false });
  });

  it('across every round, no peer ever had both its self-seed share and its masking-key share released', () => {
    const byAttempt = new Map<string, { self: Set<string>; key: Set<string> }>();
    for (const x of double.results) {
      if (x.participant !== REAL || x.result.kind !== 'secagg-unmasking') continue;
      const k = `${x.result.round}/${x.result.attempt}`;
      const entry = byAttempt.get(k) ?? { self: new Set(), key: new Set() };
      for (const s of x.result.selfSeedShares) entry.self.add(s.owner);
      for (const s of x.result.maskingKeyShares) entry.key.add(s.owner);
      byAttempt.set(k, entry);
    }
    assert.equal(byAttempt.size, 2, 'exactly two rounds reached Unmasking (the honest one and 1b)');
    for (const [k, { self, key }] of byAttempt)
      for (const owner of self) assert.ok(!key.has(owner), `round ${k}: both shares of ${owner} released`);
    const refusals = double.results.filter((x) => x.result.kind === 'refusal');
    assert.equal(refusals.length, 12, 'one refusal per malicious move');
    assert.equal(readJournal().length, refusals.length);
  });

  it('6. two different signed checkpoints for the same size: the participant records an incident and stops', {
    timeout: 30_000,
  }, async () => {
    const cosignedBefore = double.cosignatures.filter((c) => c.participant === REAL).map((c) => c.size);
    assert.ok(cosignedBefore.length > 0, 'the participant had witnessed and cosigned the honest log');
    double.forkCheckpoint();
    const exited = await waitFor(
      'the participant to stop',
      async () => (participant!.child.exitCode !== null ? true : undefined),
      20_000,
    );
    assert.ok(exited);
    assert.notEqual(participant!.child.exitCode, 0, 'it stops with an error');
    const incident = readFileSync(journalPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; message?: string })
      .find((e) => e.event === 'incident');
    assert.ok(incident, 'an incident is in the journal');
    assert.match(incident.message ?? '', /split view/);
    assert.deepEqual(
      double.cosignatures.filter((c) => c.participant === REAL).map((c) => c.size),
      cosignedBefore,
      'it cosigned nothing after the fork',
    );
  });
});
