/**
 * Objects at rest, end to end: access is decided on the stored objects (not only on routes), stored
 * bytes are checked against their digests whenever they are read, `entente doctor` finds mismatches
 * between the store, the blobs and the audit log, a damaged SQLite file stops the coordinator at
 * start-up, and private directories and files get 0700 / 0600 whatever existed before. Each attack is
 * mounted against a real governed consortium (in-process coordinator, participant processes over
 * mutual TLS, a run approved and released by quorum) whose honest run still completes.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type LogEntry, parseLogEntry } from '../../src/audit/index.ts';
import { EntenteError } from '../../src/core/index.ts';
import { computeSchemaDigest, parseDataSchema } from '../../src/data/index.ts';
import { demoRunConfig } from '../../src/simulation/index.ts';
import { type ChildHandle, spawnEntente, stopChild } from '../../src/simulation/process-federation.ts';
import { SCHEMA_PATH, waitForRunCompleted } from './fixtures.ts';
import {
  type GovernedConsortium,
  OPERATOR,
  startGovernedConsortium,
  startSite,
  writeSiteData,
} from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;
const RUN_ID = 'objects-run';
const DATA_SCHEMA_DIGEST = computeSchemaDigest(
  parseDataSchema(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))),
);

interface RunView {
  status: string;
  model: { sha256: string; bytes: number; chunks: { sha256: string; bytes: number }[] };
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function expectError(promise: Promise<unknown>, code: string, message?: RegExp): Promise<EntenteError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof EntenteError, `expected EntenteError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** Runs `entente <args>` to completion; returns its exit code, stdout and stderr. */
async function runCli(
  name: string,
  args: readonly string[],
  killAfterMs = 60_000,
): Promise<{ code: number | null; out: string; err: string }> {
  const handle = spawnEntente(name, args, { env: { ENTENTE_LOG_LEVEL: 'warn' } });
  let out = '';
  handle.child.stdout?.setEncoding('utf8');
  handle.child.stdout?.on('data', (d: string) => {
    out += d;
  });
  // A safety net against a hung child, not a budget: every command here exits by itself.
  const timer = setTimeout(() => handle.child.kill('SIGKILL'), killAfterMs);
  const code = await handle.exited;
  clearTimeout(timer);
  return { code, out, err: handle.stderr() };
}

/** The error lines (`entente: CODE: message`) of a CLI's stderr. */
const errorLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l.startsWith('entente: '));

describe('hostile objects: object-level access and integrity at rest', { timeout: 300_000 }, () => {
  let gov: GovernedConsortium;
  const participants: ChildHandle[] = [];
  let view: RunView;
  let entries: LogEntry[] = [];
  let coordinatorClosed = false;
  const blobPath = (address: string): string =>
    join(gov.dir, 'coordinator', 'state', 'blobs', address.slice(0, 2), address);

  before(async () => {
    gov = await startGovernedConsortium({ institutions: INSTITUTIONS, dataSchemaDigest: DATA_SCHEMA_DIGEST });
    writeSiteData(gov.sites, INSTITUTIONS);
    for (const id of INSTITUTIONS) {
      const site = gov.sites.get(id)!;
      participants.push(startSite(site, join(site.dir, 'data.csv')));
    }
    // Secure aggregation (the policy requires it); no federated evaluation, so the final model is in
    // no task: only its release may let it out.
    const config = {
      ...demoRunConfig(2, 'hostile-objects'),
      id: RUN_ID,
      evaluate: false,
      dataSchemaDigest: DATA_SCHEMA_DIGEST,
    };
    const r = await gov.operator.postJson<{ proposal: string }>('/v1/runs', config);
    await gov.sign(OPERATOR, r.body.proposal);
    await gov.sign('alpha', r.body.proposal);
    assert.equal((await gov.sign('beta', r.body.proposal)).status, 'approved');
    try {
      view = await waitForRunCompleted<RunView>(gov.operator, RUN_ID, 180_000);
    } catch (err) {
      const logs = participants.map((p) => `--- ${p.name}\n${p.stderr().slice(-1500)}`).join('\n');
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
    const r2 = await gov.operator.getJson<{ entries: { body: string }[] }>(
      '/v1/log/entries?start=0&end=10000',
    );
    entries = r2.body!.entries.map((e) => parseLogEntry(new Uint8Array(Buffer.from(e.body, 'base64'))));
  });

  after(async () => {
    await Promise.all(participants.map((p) => stopChild(p)));
    const dir = gov?.dir;
    if (coordinatorClosed) {
      // Only the clients are left to close; the directory is removed below.
      await gov.operator.close();
      for (const id of INSTITUTIONS) await gov.clientOf(id).close();
    } else await gov?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("an institution cannot fetch another institution's masked update by digest", async () => {
    assert.equal(view.status, 'completed');
    const commits = entries.filter(
      (e): e is Extract<LogEntry, { kind: 'update-committed' }> => e.kind === 'update-committed',
    );
    // Its training rounds' masked inputs (the statistics phase is a secure sum too: one more).
    const ofAlpha = commits.filter((c) => c.participant === 'alpha' && c.phase === undefined);
    assert.equal(ofAlpha.length, 2, 'alpha committed one masked input per round');
    assert.equal(commits.filter((c) => c.participant === 'alpha' && c.phase === 'statistics').length, 1);
    const unknown = sha(randomBytes(32));
    const unknownErr = await expectError(
      gov.clientOf('beta').getBytes(`/v1/blobs/${unknown}`, 1 << 20),
      'NOT_FOUND',
    );
    for (const c of ofAlpha) {
      // The digest is public (the log); the bytes stay alpha's.
      for (const thief of ['beta', 'gamma']) {
        const err = await expectError(
          gov.clientOf(thief).getBytes(`/v1/blobs/${c.sha256}`, 1 << 20),
          'NOT_FOUND',
        );
        // The same answer as for a chunk that does not exist: nothing tells that this one does.
        assert.equal(err.field, unknownErr.field);
        assert.equal(
          err.message.replace(c.sha256.slice(0, 12), '<digest>'),
          unknownErr.message.replace(unknown.slice(0, 12), '<digest>'),
        );
      }
      // PUT is no existence oracle either: junk under a stored address fails as under an unknown one.
      await expectError(
        gov.clientOf('beta').putBytes(`/v1/blobs/${c.sha256}`, Buffer.from('junk')),
        'DIGEST_MISMATCH',
      );
      await expectError(
        gov.clientOf('beta').putBytes(`/v1/blobs/${unknown}`, Buffer.from('junk')),
        'DIGEST_MISMATCH',
      );
      // Its uploader may read it back, and it is what the log committed to.
      const own = await gov.clientOf('alpha').getBytes(`/v1/blobs/${c.sha256}`, 1 << 20);
      assert.equal(sha(own), c.sha256);
    }
    // A round's input model is readable by the cohort it was given to (the honest path).
    const round2 = entries.find(
      (e): e is Extract<LogEntry, { kind: 'round-started' }> => e.kind === 'round-started' && e.round === 2,
    )!;
    for (const id of INSTITUTIONS) {
      const bytes = await gov.clientOf(id).getBytes(`/v1/blobs/${round2.modelIn}`, 1 << 20);
      assert.equal(sha(bytes), round2.modelIn);
    }
  });

  it('the final model is not served before its release is approved', async () => {
    const final = view.model;
    assert.equal(final.chunks.length, 1);
    const chunk = final.chunks[0]!.sha256;
    // Its digest is public: the log records it.
    assert.ok(entries.some((e) => e.kind === 'model-released' && e.modelSha256 === final.sha256));
    for (const id of INSTITUTIONS)
      await expectError(gov.clientOf(id).getBytes(`/v1/blobs/${chunk}`, final.bytes), 'NOT_FOUND');
    await expectError(gov.operator.getBytes(`/v1/blobs/${chunk}`, final.bytes), 'FORBIDDEN');
    await expectError(
      gov.operator.getBytes(`/v1/runs/${RUN_ID}/model`, final.bytes),
      'FORBIDDEN',
      /not released/,
    );

    const p = await gov.propose('alpha', 'release-model', { run: RUN_ID });
    assert.equal((await gov.sign('alpha', p.id)).status, 'open');
    await expectError(gov.clientOf('beta').getBytes(`/v1/blobs/${chunk}`, final.bytes), 'NOT_FOUND');
    assert.equal((await gov.sign('gamma', p.id)).status, 'approved');

    // Released: members read it, by digest and through the released-model route.
    for (const id of INSTITUTIONS)
      assert.equal(sha(await gov.clientOf(id).getBytes(`/v1/blobs/${chunk}`, final.bytes)), final.sha256);
    assert.equal(sha(await gov.operator.getBytes(`/v1/runs/${RUN_ID}/model`, final.bytes)), final.sha256);
  });

  it('a flipped byte in a stored blob is never served', async () => {
    const final = view.model;
    const chunk = final.chunks[0]!.sha256;
    const path = blobPath(chunk);
    const good = readFileSync(path);
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0x10;
    writeFileSync(path, bad);
    await expectError(gov.operator.getBytes(`/v1/runs/${RUN_ID}/model`, final.bytes), 'STORE_CORRUPT');
    await expectError(gov.clientOf('alpha').getBytes(`/v1/blobs/${chunk}`, final.bytes), 'STORE_CORRUPT');
    // Logged for the operator (and not blamed on the caller as a refusal).
    const status = (
      await gov.operator.getJson<{ events: { kind: string; code: string | null; message: string }[] }>(
        '/v1/status',
      )
    ).body!;
    const corrupt = status.events.filter((e) => e.kind === 'store-corrupt');
    assert.ok(corrupt.length >= 2, JSON.stringify(status.events.slice(0, 5)));
    assert.ok(corrupt.every((e) => e.code === 'STORE_CORRUPT' && e.message.includes(chunk)));
    assert.ok(!status.events.some((e) => e.kind !== 'store-corrupt' && e.code === 'STORE_CORRUPT'));
    // A member holding the right bytes uploads them again: they are checked, and repair the copy.
    await gov.clientOf('alpha').putBytes(`/v1/blobs/${chunk}`, good);
    assert.deepEqual(readFileSync(path), good);
    assert.equal(sha(await gov.operator.getBytes(`/v1/runs/${RUN_ID}/model`, final.bytes)), final.sha256);
  });

  it('doctor finds a blob, store and log mismatch', async () => {
    await Promise.all(participants.map((p) => stopChild(p)));
    await gov.coordinator.close();
    coordinatorClosed = true;

    const healthy = await runCli('doctor', ['doctor', '--workspace', gov.dir, '--json']);
    assert.equal(healthy.code, 0, healthy.err);
    const report = JSON.parse(healthy.out.trim()) as {
      ok: boolean;
      database: string;
      chunks: { stored: number; corrupt: number };
      blobs: { referenced: number; verified: number };
      log: { entries: number; checkpoints: number; models: number };
    };
    assert.equal(report.ok, true);
    assert.equal(report.database, 'ok');
    assert.ok(report.chunks.stored > 0 && report.chunks.corrupt === 0);
    assert.ok(report.blobs.referenced > 0 && report.blobs.verified === report.blobs.referenced);
    assert.ok(report.log.entries > 0 && report.log.checkpoints > 0 && report.log.models >= 3);
    const plain = await runCli('doctor', ['doctor', '--workspace', gov.dir]);
    assert.equal(plain.code, 0, plain.err);
    assert.match(plain.out, /is consistent/);

    // Three kinds of damage: a flipped byte in the final model, the initial model's chunk gone, and an
    // edited log entry.
    const finalChunk = view.model.chunks[0]!.sha256;
    const flip = readFileSync(blobPath(finalChunk));
    flip[3]! ^= 0x01;
    writeFileSync(blobPath(finalChunk), flip);
    const initial = entries.find(
      (e): e is Extract<LogEntry, { kind: 'model-initialized' }> => e.kind === 'model-initialized',
    )!;
    unlinkSync(blobPath(initial.modelSha256));
    const dbPath = join(gov.dir, 'coordinator', 'state', 'coordinator.db');
    const edited = entries.find((e) => e.kind === 'evaluated' || e.kind === 'aggregate-computed')!;
    const db = new Database(dbPath);
    const row = db.prepare('SELECT body FROM log_entries WHERE idx = ?').get(edited.index) as {
      body: Buffer;
    };
    const text = row.body.toString('utf8').replace(RUN_ID, RUN_ID.toUpperCase());
    assert.notEqual(text, row.body.toString('utf8'));
    db.prepare('UPDATE log_entries SET body = ? WHERE idx = ?').run(Buffer.from(text), edited.index);
    db.close();

    const sick = await runCli('doctor', ['doctor', '--workspace', gov.dir]);
    assert.equal(sick.code, 7, sick.err);
    const lines = errorLines(sick.err);
    assert.ok(lines.length >= 3, sick.err);
    assert.ok(
      lines.every((l) => l.startsWith('entente: STORE_CORRUPT: ')),
      sick.err,
    );
    assert.ok(
      lines.some((l) => l.includes(`blob ${finalChunk}: its bytes do not hash`)),
      sick.err,
    );
    assert.ok(
      lines.some((l) => l.includes(initial.modelSha256) && l.includes('missing')),
      sick.err,
    );
    assert.ok(
      lines.some((l) => l.includes(`log: entry ${edited.index}:`)),
      sick.err,
    );
    assert.ok(
      lines.some((l) => l.includes(`names model ${initial.modelSha256}`)),
      sick.err,
    );
  });

  it('a corrupted SQLite file is reported at start-up', async () => {
    assert.ok(coordinatorClosed);
    const dbPath = join(gov.dir, 'coordinator', 'state', 'coordinator.db');
    assert.ok(!existsSync(`${dbPath}-wal`) || statSync(`${dbPath}-wal`).size === 0);
    const db = new Database(dbPath, { readonly: true });
    const root = (
      db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'log_entries'").get() as {
        rootpage: number;
      }
    ).rootpage;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    const fd = openSync(dbPath, 'r+');
    writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, (root - 1) * pageSize);
    closeSync(fd);

    const start = await runCli('coordinator', [
      'coordinator',
      'start',
      '--workspace',
      gov.dir,
      '--port',
      '0',
    ]);
    assert.equal(start.code, 7, start.err);
    const line = errorLines(start.err).find((l) => l.startsWith('entente: STORE_CORRUPT: '));
    assert.ok(line, start.err);
    assert.match(line, /coordinator database is damaged \(quick_check/);
    assert.ok(!existsSync(join(gov.dir, 'coordinator', 'endpoint.json')), 'it never listened');

    const doctor = await runCli('doctor', ['doctor', '--workspace', gov.dir]);
    assert.equal(doctor.code, 7);
    assert.ok(
      errorLines(doctor.err).some((l) => /^entente: STORE_CORRUPT: database: .*quick_check/.test(l)),
      doctor.err,
    );
  });
});

describe('hostile objects: file modes', { timeout: 300_000 }, () => {
  it('directories are 0700 and keys and data 0600 even when they existed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'entente-modes-'));
    const umask = process.umask(0); // inherited by the demo: nothing masked, only explicit modes count
    try {
      // The workspace and one site folder exist already, wide open, with a stale data copy in it.
      chmodSync(dir, 0o777);
      const site = join(dir, 'sites', 'hospital-a');
      mkdirSync(site, { recursive: true, mode: 0o777 });
      chmodSync(join(dir, 'sites'), 0o777);
      chmodSync(site, 0o777);
      writeFileSync(join(site, 'data.csv'), 'stale', { mode: 0o666 });
      chmodSync(join(site, 'data.csv'), 0o666);

      // The honest path: the whole demo (enrollment, policy, run, release) in that workspace.
      const demo = await runCli('demo', ['demo', '--rounds', '1', '--workspace', dir], 240_000);
      assert.equal(demo.code, 0, demo.err.slice(-3000));

      const mode = (...p: string[]): string => (statSync(join(dir, ...p)).mode & 0o777).toString(8);
      const sites = ['hospital-a', 'hospital-b', 'clinic-c'];
      for (const d of [
        [],
        ['ca'],
        ['coordinator'],
        ['coordinator', 'state'],
        ['coordinator', 'state', 'blobs'],
        ['operators', 'operator'],
        ['sites'],
        ...sites.map((s) => ['sites', s]),
      ])
        assert.equal(mode(...d), '700', `${d.join('/') || 'workspace'} is 0${mode(...d)}`);
      for (const f of [
        ['ca', 'ca.key'],
        ['coordinator', 'server.key'],
        ['coordinator', 'log.key'],
        ['coordinator', 'state', 'coordinator.db'],
        ['operators', 'operator', 'client.key'],
        ['operators', 'operator', 'identity.key'],
        ...sites.flatMap((s) => [
          ['sites', s, 'client.key'],
          ['sites', s, 'identity.key'],
          ['sites', s, 'data.csv'],
        ]),
      ])
        assert.equal(mode(...f), '600', `${f.join('/')} is 0${mode(...f)}`);
      assert.notEqual(readFileSync(join(site, 'data.csv'), 'utf8'), 'stale');

      // The workspace the honest run left is consistent.
      const doctor = await runCli('doctor', ['doctor', '--workspace', dir, '--json']);
      assert.equal(doctor.code, 0, doctor.err);
      assert.equal((JSON.parse(doctor.out.trim()) as { ok: boolean }).ok, true);
    } finally {
      process.umask(umask);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
