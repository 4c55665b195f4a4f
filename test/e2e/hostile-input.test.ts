/**
 * Hostile and broken input against a real coordinator over mutual TLS: each case gets a clear error
 * naming the problem, is recorded, and leaves the round, the model and the store intact — the round
 * then completes with exactly the valid updates.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Agent, request } from 'undici';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/index.ts';
import { EntenteError, type Tensor, decodeSafetensors, encodeSafetensors } from '../../src/core/index.ts';
import { createCertificateAuthority, issueCertificate } from '../../src/crypto/index.ts';
import { describeLayout, parseModelSpec } from '../../src/models/index.ts';
import { type BlobRef, type TrainTask, createBlobRef } from '../../src/protocol/index.ts';
import type { TlsIdentity, Workspace } from '../../src/storage/index.ts';
import { type MtlsClient, createMtlsClient } from '../../src/transport/index.ts';
import { createTestWorkspace, waitFor } from './fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'];
const spec = parseModelSpec({ kind: 'logistic', inputDim: 30 });
const layout = describeLayout(spec);

describe('hostile and broken input', () => {
  let dir = '';
  let ws: Workspace;
  let coordinator: RunningCoordinator;
  const clients = new Map<string, MtlsClient>();
  const tasks = new Map<string, TrainTask>();
  let model: Tensor[];

  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

  async function expectError(p: Promise<unknown>, code: string, fieldOrText?: RegExp): Promise<EntenteError> {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof EntenteError, `expected EntenteError, got ${String(err)}`);
      assert.equal(err.code, code, err.message);
      if (fieldOrText) assert.match(`${err.field ?? ''} ${err.message}`, fieldOrText);
      return err;
    }
    assert.fail(`expected ${code}`);
  }

  function rawAgent(identity: TlsIdentity): Agent {
    return new Agent({ connect: { ca: identity.caPem, cert: identity.certPem, key: identity.keyPem } });
  }

  async function uploadUpdate(client: MtlsClient, bytes: Uint8Array): Promise<BlobRef> {
    const { ref, chunks } = createBlobRef(bytes, 256);
    for (const c of chunks) await client.putBytes(`/v1/blobs/${sha(c)}`, c);
    return ref;
  }

  function updateResult(task: TrainTask, ref: BlobRef, overrides: Record<string, unknown> = {}) {
    return {
      kind: 'train',
      runId: task.runId,
      round: task.round,
      update: ref,
      numExamples: 100,
      trainLoss: 0.5,
      ...overrides,
    };
  }

  function shifted(delta: number): Tensor[] {
    return model.map((t) => ({ name: t.name, shape: [...t.shape], data: t.data.map((v) => v + delta) }));
  }

  before(async () => {
    const setup = await createTestWorkspace(INSTITUTIONS, 'entente-hostile-');
    dir = setup.dir;
    ws = setup.ws;
    coordinator = await startCoordinator({ workspaceDir: dir, log: pino({ level: 'silent' }), tickMs: 100 });
    for (const id of INSTITUTIONS) {
      const c = createMtlsClient({ baseUrl: coordinator.url, ...ws.institutionIdentity(id) });
      clients.set(id, c);
      await c.postJson('/v1/participants/register', {
        protocol: 'entente/1',
        trainers: ['test'],
        software: 'test',
      });
    }
    const operator = createMtlsClient({ baseUrl: coordinator.url, ...ws.operatorIdentity() });
    await operator.postJson('/v1/runs', {
      id: 'hostile',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3 },
      rounds: 1,
      minParticipants: 3,
      // Plain updates: this test is about the coordinator's own validation and recovery of them.
      secureAggregation: { protocol: 'none' },
      train: {},
      evaluate: false,
      seed: 'hostile',
    });
    await operator.close();
    for (const id of INSTITUTIONS) {
      const r = await clients.get(id)!.getJson<TrainTask>('/v1/tasks/next?waitMs=5000');
      assert.equal(r.status, 200);
      tasks.set(id, r.body!);
    }
    const t = tasks.get('alpha')!;
    const parts: Buffer[] = [];
    for (const c of t.model.chunks)
      parts.push(await clients.get('alpha')!.getBytes(`/v1/blobs/${c.sha256}`, c.bytes));
    model = decodeSafetensors(Buffer.concat(parts), { expected: layout }).weights;
  });

  after(async () => {
    for (const c of clients.values()) await c.close();
    await coordinator?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rejects malformed, truncated and oversized bodies', async () => {
    const alpha = ws.institutionIdentity('alpha');
    const agent = rawAgent(alpha);
    const task = tasks.get('alpha')!;
    const post = (body: string) =>
      request(`${coordinator.url}/v1/tasks/${task.taskId}/result`, {
        method: 'POST',
        dispatcher: agent,
        body,
        headers: { 'content-type': 'application/json' },
      });
    let r = await post('{"kind": "train", ');
    assert.equal(r.statusCode, 400);
    assert.equal(((await r.body.json()) as { error: { code: string } }).error.code, 'MALFORMED_BODY');
    r = await post(JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }));
    assert.equal(r.statusCode, 413);
    assert.equal(((await r.body.json()) as { error: { code: string } }).error.code, 'BODY_TOO_LARGE');
    // A chunk larger than the limit is refused from its declared length, before the body is read.
    const big = Buffer.alloc(5 * 1024 * 1024, 1);
    r = await request(`${coordinator.url}/v1/blobs/${sha(big)}`, {
      method: 'PUT',
      dispatcher: agent,
      body: big,
      headers: { 'content-type': 'application/octet-stream' },
    });
    assert.equal(r.statusCode, 413);
    await r.body.dump();
    await agent.close();
    const client = clients.get('alpha')!;
    // A chunk whose bytes do not hash to its address.
    await expectError(
      client.putBytes(`/v1/blobs/${sha(Buffer.from('a'))}`, Buffer.from('b')),
      'DIGEST_MISMATCH',
      /sha256/,
    );
    // A result whose message fails validation names the field.
    await expectError(
      client.postJson(`/v1/tasks/${task.taskId}/result`, {
        ...updateResult(task, { sha256: 'zz', bytes: 1, chunks: [] }),
      }),
      'INVALID_MESSAGE',
      /update\.sha256/,
    );
    // Truncated safetensors body (valid chunks, but the blob stops early).
    const bytes = encodeSafetensors(shifted(0.1));
    const ref = await uploadUpdate(client, bytes.subarray(0, bytes.length - 10));
    await expectError(
      client.postJson(`/v1/tasks/${task.taskId}/result`, updateResult(task, ref)),
      'MALFORMED_BODY',
    );
    // A manifest pointing at chunks that were never uploaded.
    const { ref: missing } = createBlobRef(encodeSafetensors(shifted(0.2)));
    await expectError(
      client.postJson(`/v1/tasks/${task.taskId}/result`, updateResult(task, missing)),
      'MALFORMED_BODY',
      /chunks\.0/,
    );
  });

  it('rejects wrong tensor names, shapes, dtypes and non-finite values, naming the tensor', async () => {
    const client = clients.get('alpha')!;
    const task = tasks.get('alpha')!;
    const good = shifted(0.1);
    const renamed = good.map((t, i) => (i === 0 ? { ...t, name: 'dense9.weight' } : t));
    let ref = await uploadUpdate(client, encodeSafetensors(renamed));
    await expectError(
      client.postJson(`/v1/tasks/${task.taskId}/result`, updateResult(task, ref)),
      'INVALID_TENSOR',
      /dense/,
    );
    const reshaped = good.map((t, i) => (i === 0 ? { ...t, shape: [2, 15] } : t));
    ref = await uploadUpdate(client, encodeSafetensors(reshaped));
    await expectError(
      client.postJson(`/v1/tasks/${task.taskId}/result`, updateResult(task, ref)),
      'INVALID_TENSOR',
      /dense0\.weight/,
    );
    const nan = good.map((t, i) =>
      i === 0 ? { ...t, data: Float32Array.from(t.data, (v, j) => (j === 7 ? Number.NaN : v)) } : t,
    );
    ref = await uploadUpdate(client, encodeSafetensors(nan));
    await expectError(
      client.postJson(`/v1/tasks/${task.taskId}/result`, updateResult(task, ref)),
      'INVALID_TENSOR',
      /dense0\.weight/,
    );
    const inf = good.map((t, i) =>
      i === 1 ? { ...t, data: Float32Array.from(t.data, () => Number.POSITIVE_INFINITY) } : t,
    );
    ref = await uploadUpdate(client, encodeSafetensors(inf));
    await expectError(
      client.postJson(`/v1/tasks/${task.taskId}/result`, updateResult(task, ref)),
      'INVALID_TENSOR',
      /dense0\.bias/,
    );
    // dtype F64: same bytes, header says F64 (8 bytes per element, so shape halves).
    const f32 = encodeSafetensors(good);
    const headerLen = Number(Buffer.from(f32).readBigUInt64LE(0));
    const header = JSON.parse(Buffer.from(f32.subarray(8, 8 + headerLen)).toString('utf8')) as Record<
      string,
      { dtype: string; shape: number[] }
    >;
    header['dense0.weight']!.dtype = 'F64';
    header['dense0.weight']!.shape = [1, 15];
    const h = Buffer.from(JSON.stringify(header).padEnd(headerLen, ' '));
    const f64 = Buffer.concat([Buffer.from(f32.subarray(0, 8)), h, Buffer.from(f32.subarray(8 + headerLen))]);
    ref = await uploadUpdate(client, f64);
    await expectError(
      client.postJson(`/v1/tasks/${task.taskId}/result`, updateResult(task, ref)),
      'INVALID_TENSOR',
      /F64|dtype/,
    );
  });

  it('rejects stale and future rounds, other participants’ tasks, unknown and unauthenticated callers', async () => {
    const client = clients.get('alpha')!;
    const task = tasks.get('alpha')!;
    const ref = await uploadUpdate(client, encodeSafetensors(shifted(0.1)));
    await expectError(
      client.postJson(`/v1/tasks/${task.taskId}/result`, updateResult(task, ref, { round: 0 })),
      'STALE_ROUND',
      /round/,
    );
    await expectError(
      client.postJson(`/v1/tasks/${task.taskId}/result`, updateResult(task, ref, { round: 7 })),
      'STALE_ROUND',
      /round/,
    );
    await expectError(
      client.postJson(`/v1/tasks/${tasks.get('beta')!.taskId}/result`, updateResult(tasks.get('beta')!, ref)),
      'NOT_FOUND',
      /taskId/,
    );
    await expectError(client.postJson('/v1/runs', { id: 'x' }), 'FORBIDDEN');

    // A certificate from the consortium CA whose holder is not a member.
    const caPem = readFileSync(join(dir, 'ca', 'ca.crt'), 'utf8');
    const caKey = readFileSync(join(dir, 'ca', 'ca.key'), 'utf8');
    const mallory = await issueCertificate(
      { certPem: caPem, keyPem: caKey },
      { commonName: 'mallory', role: 'client', notBefore: new Date(), validityDays: 1 },
    );
    const m = createMtlsClient({
      baseUrl: coordinator.url,
      certPem: mallory.certPem,
      keyPem: mallory.keyPem,
      caPem,
    });
    await expectError(m.getJson('/v1/tasks/next?waitMs=0'), 'UNKNOWN_PARTICIPANT');
    await m.close();

    // A certificate from another CA: the TLS handshake itself fails.
    const otherCa = await createCertificateAuthority({
      commonName: 'other',
      notBefore: new Date(),
      validityDays: 1,
    });
    const alien = await issueCertificate(otherCa, {
      commonName: 'alpha',
      role: 'client',
      notBefore: new Date(),
      validityDays: 1,
    });
    const a = createMtlsClient({
      baseUrl: coordinator.url,
      certPem: alien.certPem,
      keyPem: alien.keyPem,
      caPem,
    });
    // Refused before any route runs, with the reason in words (not a bare TLS failure).
    const operator = createMtlsClient({ baseUrl: coordinator.url, ...ws.operatorIdentity() });
    type Status = { traffic: { unauthenticatedRefusals: number }; events: { message: string }[] };
    const before = (await operator.getJson<Status>('/v1/status')).body!;
    const entriesBefore = (await operator.getJson<{ checkpoints: { size: number }[] }>('/v1/log/checkpoints'))
      .body!;
    const err = await expectError(a.getJson('/v1/tasks/next?waitMs=0'), 'UNAUTHENTICATED');
    assert.match(err.message, /not issued by this consortium's CA/);
    // A caller without a valid certificate cannot write to the audit log or the event table: only counted.
    for (let i = 0; i < 20; i++) await expectError(a.getJson('/v1/status'), 'UNAUTHENTICATED');
    const after = (await operator.getJson<Status>('/v1/status')).body!;
    assert.equal(after.traffic.unauthenticatedRefusals - before.traffic.unauthenticatedRefusals, 21);
    assert.ok(!after.events.some((e) => /not issued by this consortium's CA/.test(e.message)));
    const entriesAfter = (await operator.getJson<{ checkpoints: { size: number }[] }>('/v1/log/checkpoints'))
      .body!;
    assert.equal(entriesAfter.checkpoints.at(-1)?.size, entriesBefore.checkpoints.at(-1)?.size);
    await operator.close();
    await a.close();
  });

  it('stores nothing from an upload that disconnects half way', async () => {
    const identity = ws.institutionIdentity('alpha');
    const body = Buffer.alloc(100_000, 7);
    const address = new URL(coordinator.url);
    await new Promise<void>((resolve, reject) => {
      const socket = connect(
        {
          host: address.hostname,
          port: Number(address.port),
          ca: identity.caPem,
          cert: identity.certPem,
          key: identity.keyPem,
        },
        () => {
          socket.write(
            `PUT /v1/blobs/${sha(body)} HTTP/1.1\r\nHost: ${address.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`,
          );
          socket.write(body.subarray(0, 50_000), () => {
            setTimeout(() => {
              socket.destroy();
              resolve();
            }, 100);
          });
        },
      );
      socket.on('error', reject);
    });
    const blobs = join(dir, 'coordinator', 'state', 'blobs');
    await waitFor(
      'temporary file cleanup',
      async () => (readdirSync(join(blobs, 'tmp')).length === 0 ? true : undefined),
      5_000,
    );
    const stored = readdirSync(blobs).flatMap((d) => (d === 'tmp' ? [] : readdirSync(join(blobs, d))));
    assert.ok(!stored.includes(sha(body)), 'the partial chunk is not stored');
  });

  it('completes the round with exactly the valid updates and refuses a replayed result', async () => {
    const deltas: Record<string, number> = { alpha: 0.1, beta: -0.2, gamma: 0.4 };
    const examples: Record<string, number> = { alpha: 100, beta: 50, gamma: 150 };
    const alpha = clients.get('alpha')!;
    const aRef = await uploadUpdate(alpha, encodeSafetensors(shifted(deltas.alpha!)));
    const aResult = updateResult(tasks.get('alpha')!, aRef, { numExamples: examples.alpha });
    await alpha.postJson(`/v1/tasks/${tasks.get('alpha')!.taskId}/result`, aResult);
    await expectError(
      alpha.postJson(`/v1/tasks/${tasks.get('alpha')!.taskId}/result`, aResult),
      'DUPLICATE_RESULT',
    );
    for (const id of ['beta', 'gamma']) {
      const c = clients.get(id)!;
      const ref = await uploadUpdate(c, encodeSafetensors(shifted(deltas[id]!)));
      await c.postJson(
        `/v1/tasks/${tasks.get(id)!.taskId}/result`,
        updateResult(tasks.get(id)!, ref, { numExamples: examples[id] }),
      );
    }
    // A result after the round closed is stale.
    await expectError(
      clients
        .get('beta')!
        .postJson(`/v1/tasks/${tasks.get('beta')!.taskId}/result`, updateResult(tasks.get('beta')!, aRef)),
      'DUPLICATE_RESULT',
    );
    const operator = createMtlsClient({ baseUrl: coordinator.url, ...ws.operatorIdentity() });
    const run = await waitFor(
      'run completion',
      async () => {
        const v = (
          await operator.getJson<{ status: string; model: BlobRef; rounds: { contributors: string[] }[] }>(
            '/v1/runs/hostile',
          )
        ).body!;
        return v.status === 'completed' ? v : undefined;
      },
      10_000,
    );
    // The operator fetches the final model whole; chunk blobs are for institutions only.
    const parts: Buffer[] = [await operator.getBytes('/v1/runs/hostile/model', run.model.bytes)];
    const status = (await operator.getJson<{ events: { code: string | null }[] }>('/v1/status')).body!;
    await operator.close();
    assert.deepEqual(run.rounds[0]!.contributors, INSTITUTIONS);
    const out = decodeSafetensors(Buffer.concat(parts), { expected: layout }).weights;
    const meanDelta = (0.1 * 100 - 0.2 * 50 + 0.4 * 150) / 300;
    out.forEach((t, i) => {
      for (let j = 0; j < t.data.length; j++)
        assert.ok(Math.abs(t.data[j]! - (model[i]!.data[j]! + meanDelta)) < 1e-6);
    });
    // Every refusal was recorded with its code.
    const codes = new Set(status.events.map((e) => e.code));
    for (const code of [
      'MALFORMED_BODY',
      'INVALID_TENSOR',
      'STALE_ROUND',
      'DUPLICATE_RESULT',
      'UNKNOWN_PARTICIPANT',
      'DIGEST_MISMATCH',
      'BODY_TOO_LARGE',
      'INVALID_MESSAGE',
    ]) {
      assert.ok(codes.has(code), `event recorded for ${code}`);
    }
  });
});

describe('the public enrollment paths are rate limited per address', () => {
  let coordinator: RunningCoordinator | undefined;
  let dir = '';
  after(async () => {
    await coordinator?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the request after the limit with RATE_LIMITED, and members are not affected', async () => {
    const setup = await createTestWorkspace(['alpha', 'beta', 'gamma'], 'entente-ratelimit-');
    dir = setup.dir;
    coordinator = await startCoordinator({
      workspaceDir: dir,
      port: 0,
      log: pino({ level: 'silent' }),
      publicRequestsPerMinute: 5,
    });
    const caPem = setup.ws.coordinatorIdentity().caPem;
    const anonymous = createMtlsClient({ baseUrl: coordinator.url, caPem });
    const member = createMtlsClient({ baseUrl: coordinator.url, ...setup.ws.institutionIdentity('alpha') });
    try {
      for (let i = 0; i < 5; i++)
        assert.equal((await anonymous.getBytes('/v1/enroll/ca', 65_536)).length > 0, true);
      await assert.rejects(anonymous.getBytes('/v1/enroll/ca', 65_536), (err: unknown) => {
        assert.ok(err instanceof EntenteError);
        assert.equal(err.code, 'RATE_LIMITED');
        return true;
      });
      await assert.rejects(
        anonymous.postJson('/v1/enroll', { token: 'x', tlsCsr: 'x', identityCsr: 'x' }),
        (err: unknown) => err instanceof EntenteError && err.code === 'RATE_LIMITED',
      );
      // Authenticated endpoints are not counted against the public limit.
      assert.equal((await member.postJson('/v1/heartbeat', {})).status, 200);
    } finally {
      await anonymous.close();
      await member.close();
    }
  });
});
