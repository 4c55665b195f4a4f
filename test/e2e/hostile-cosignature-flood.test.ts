/**
 * A member flooding the audit log's cosignature endpoint (C2SP tlog-cosignature) during a live run,
 * with its own certificate and identity key: junk lines under unknown keys, forged lines under the
 * other witnesses' names, malformed lines, and its own valid cosignature again and again. Every line
 * that is not its own verified cosignature is refused with a coded error naming the field; its repeats
 * change nothing; each checkpoint keeps at most one line per witness, so the honest witnesses still
 * cosign every checkpoint, the run completes and `entente audit verify --strict` passes. Also: the long
 * poll hands a site its open task even when a newer checkpoint awaits its cosignature.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import {
  createCosignatureLine,
  parseNote,
  parseVerifierKey,
  verifyCosignatures,
} from '../../src/audit/index.ts';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/index.ts';
import { EntenteError } from '../../src/core/index.ts';
import { generateEd25519KeyPem } from '../../src/crypto/signatures.ts';
import { CLI_ENTRY, type ProcessFederation } from '../../src/simulation/index.ts';
import { computeWitnessName } from '../../src/storage/index.ts';
import { type MtlsClient, createMtlsClient } from '../../src/transport/index.ts';
import { createTestWorkspace, startTestFederation, waitFor, waitForRunCompleted } from './fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'];
const ATTACKER = 'gamma';
/** Lines posted per checkpoint: as many as a signed note may carry at all. */
const LINES_PER_CHECKPOINT = 100;

interface Checkpoints {
  checkpoints: { size: number; note: string }[];
}

const textOf = (note: string): string => note.slice(0, note.indexOf('\n\n') + 1);

function runCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI_ENTRY, ...args],
      { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ENTENTE_LOG_LEVEL: 'warn' } },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe('hostile cosignature flood', () => {
  let federation: ProcessFederation | undefined;
  let dir = '';
  after(async () => {
    await federation?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a member flooding cosignatures cannot stall witnesses or the run', { timeout: 240_000 }, async () => {
    const started = await startTestFederation({
      institutions: INSTITUTIONS,
      prefix: 'entente-cosign-flood-',
    });
    ({ federation } = started);
    const { setup, client: operator, port } = started;
    dir = setup.dir;
    after(() => operator.close());
    // The attacker is a member: its own certificate, and its own identity key (its witness key).
    const member = setup.ws.localMember(ATTACKER);
    const attacker = createMtlsClient({ baseUrl: `https://127.0.0.1:${port}`, ...member.tls });
    after(() => attacker.close());
    const witnessVkeys = setup.ws.consortium.witnesses ?? {};
    const witnessKeys = INSTITUTIONS.map((id) => parseVerifierKey(witnessVkeys[id]!));
    const honestKeys = INSTITUTIONS.filter((id) => id !== ATTACKER).map((id) =>
      parseVerifierKey(witnessVkeys[id]!),
    );
    const mallory = generateEd25519KeyPem();
    const own = (note: string, time: number): string =>
      createCosignatureLine({
        witnessName: computeWitnessName('test', ATTACKER),
        privateKeyPem: member.signing.keyPem,
        checkpointText: textOf(note),
        timestampSeconds: time,
      });
    const foreign = (name: string, note: string): string =>
      createCosignatureLine({
        witnessName: name,
        privateKeyPem: mallory.privateKeyPem,
        checkpointText: textOf(note),
        timestampSeconds: 1,
      });
    /** A line under an honest witness's exact name and key id with a garbage signature (poisoning). */
    const poison = (k: number): string => {
      const key = honestKeys[k % honestKeys.length]!;
      const bytes = Buffer.concat([key.keyId, Buffer.alloc(8), Buffer.alloc(64, k % 251)]);
      return `\u2014 ${key.name} ${bytes.toString('base64')}`;
    };
    const malformed = ['x', '\u2014 nobody', '\u2014 a b c', `${poison(0)}\n${poison(1)}`];

    const outcomes = { added: 0, repeated: 0, refused: new Map<string, number>() };
    const flooded = new Set<number>();
    const burst = async (cp: { size: number; note: string }): Promise<void> => {
      const t0 = Math.floor(Date.now() / 1000);
      for (let k = 0; k < LINES_PER_CHECKPOINT; k++) {
        const line =
          k % 4 === 0
            ? own(cp.note, t0 + k) // its own valid cosignature, at a new time each time
            : k % 4 === 1
              ? foreign(`junk.${cp.size}.${k}`, cp.note) // an unknown key
              : k % 4 === 2
                ? k % 8 === 2
                  ? poison(k) // an honest witness's key id, a bad signature
                  : foreign(honestKeys[k % 2]!.name, cp.note) // an honest witness's name, another key
                : malformed[(k >> 2) % malformed.length]!;
        try {
          const r = await attacker.postJson<{ accepted: boolean; added: boolean }>('/v1/log/cosignatures', {
            size: cp.size,
            line,
          });
          assert.equal(k % 4, 0, `only the attacker's own valid line is accepted (line ${k})`);
          if (r.body.added) outcomes.added++;
          else outcomes.repeated++;
        } catch (err) {
          assert.ok(err instanceof EntenteError, String(err));
          assert.equal(err.field, 'line', err.message);
          assert.ok(['PROTOCOL_VIOLATION', 'INVALID_MESSAGE'].includes(err.code), err.code);
          outcomes.refused.set(err.code, (outcomes.refused.get(err.code) ?? 0) + 1);
        }
      }
      flooded.add(cp.size);
    };
    const floodNew = async (): Promise<void> => {
      const cps = (await attacker.getJson<Checkpoints>('/v1/log/checkpoints?after=-1')).body!.checkpoints;
      for (const cp of cps) if (!flooded.has(cp.size)) await burst(cp);
    };

    const run = await operator.postJson<{ id: string }>('/v1/runs', {
      id: 'flooded',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
      rounds: 3,
      minParticipants: 3,
      secureAggregation: { protocol: 'none' },
      train: { epochs: 1, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
      evaluate: true,
      roundTimeoutMs: 120_000,
      seed: 'cosign-flood',
    });
    assert.equal(run.status, 201);
    // The flood runs alongside the run: every checkpoint published meanwhile gets its burst.
    let runDone = false;
    const flood = (async () => {
      while (!runDone) {
        await floodNew();
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    flood.catch(() => {}); // awaited below: a failed burst fails the test there
    const final = await waitForRunCompleted<{ status: string; rounds: { contributors: string[] }[] }>(
      operator,
      'flooded',
      180_000,
    ).finally(() => {
      runDone = true;
    });
    await flood;
    await floodNew(); // the checkpoints published as the run completed
    assert.equal(final.rounds.length, 3);
    for (const r of final.rounds) assert.deepEqual(r.contributors, INSTITUTIONS);

    const refusedCount = [...outcomes.refused.values()].reduce((a, b) => a + b, 0);
    const floodedCount = flooded.size;
    assert.ok(floodedCount >= 4, `checkpoints flooded: ${floodedCount}`);
    assert.equal(
      refusedCount,
      (floodedCount * (LINES_PER_CHECKPOINT * 3)) / 4,
      'every line not its own is refused',
    );
    assert.equal(outcomes.added + outcomes.repeated, floodedCount * (LINES_PER_CHECKPOINT / 4));
    assert.ok(outcomes.added <= floodedCount, 'at most one cosignature added per checkpoint');

    // The honest witnesses cosign every checkpoint (including those flooded) on their own.
    const quorum = Math.floor(INSTITUTIONS.length / 2) + 1;
    const cps = await waitFor(
      'every checkpoint cosigned by the honest witnesses',
      async () => {
        const all = (await operator.getJson<Checkpoints>('/v1/log/checkpoints?after=-1')).body!.checkpoints;
        const honestOnAll = all.every(
          (c) => verifyCosignatures(c.note, honestKeys).filter((v) => v.ok).length === honestKeys.length,
        );
        return all.length > 0 && honestOnAll ? all : undefined;
      },
      60_000,
      200,
    );
    for (const cp of cps) {
      const { signatures } = parseNote(cp.note);
      const byKey = new Map<string, number>();
      for (const s of signatures) {
        const id = `${s.name} ${Buffer.from(s.keyId).toString('hex')}`;
        byKey.set(id, (byKey.get(id) ?? 0) + 1);
      }
      assert.ok(
        [...byKey.values()].every((c) => c === 1),
        `checkpoint ${cp.size}: one line per key`,
      );
      assert.ok(
        signatures.length <= 1 + INSTITUTIONS.length,
        `checkpoint ${cp.size}: ${signatures.length} lines`,
      );
      assert.ok(
        signatures.every((s) => s.name === signatures[0]!.name || witnessKeys.some((k) => k.name === s.name)),
        `checkpoint ${cp.size}: only the log and known witnesses`,
      );
      assert.ok(verifyCosignatures(cp.note, witnessKeys).filter((v) => v.ok).length >= quorum);
    }

    // The auditor's verification (every checkpoint, the newest included, meets its quorum).
    await federation.stop();
    federation = undefined;
    const verified = await runCli(['audit', 'verify', '--log', dir, '--strict', '--json']);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const report = JSON.parse(verified.stdout) as { ok: boolean; checkpoints: number; problems: string[] };
    assert.equal(report.ok, true, report.problems.join('; '));
    assert.equal(report.checkpoints, cps.length);
    console.log(
      JSON.stringify({
        checkpointsFlooded: floodedCount,
        linesPosted: floodedCount * LINES_PER_CHECKPOINT,
        refused: Object.fromEntries(outcomes.refused),
        ownAdded: outcomes.added,
        ownRepeated: outcomes.repeated,
        checkpoints: cps.length,
        maxLinesPerNote: Math.max(...cps.map((c) => parseNote(c.note).signatures.length)),
      }),
    );
  });

  it('the long poll hands out an open task even when a newer checkpoint awaits the site', {
    timeout: 60_000,
  }, async () => {
    const setup = await createTestWorkspace(['alpha', 'beta'], 'entente-poll-order-');
    after(() => rmSync(setup.dir, { recursive: true, force: true }));
    const coordinator: RunningCoordinator = await startCoordinator({
      workspaceDir: setup.dir,
      log: pino({ level: 'silent' }),
      tickMs: 100,
    });
    after(() => coordinator.close());
    const clients: MtlsClient[] = [];
    for (const id of ['alpha', 'beta']) {
      const c = createMtlsClient({ baseUrl: coordinator.url, ...setup.ws.institutionIdentity(id) });
      after(() => c.close());
      clients.push(c);
      await c.postJson('/v1/participants/register', {
        protocol: 'entente/1',
        trainers: ['test'],
        software: 'test',
      });
    }
    const operator = createMtlsClient({ baseUrl: coordinator.url, ...setup.ws.operatorIdentity() });
    after(() => operator.close());
    await operator.postJson('/v1/runs', {
      id: 'poll',
      model: { kind: 'logistic', inputDim: 30 },
      strategy: { name: 'fedavg', minTrainParticipants: 2 },
      rounds: 1,
      minParticipants: 2,
      secureAggregation: { protocol: 'none' },
      train: {},
      evaluate: false,
      seed: 'poll',
    });
    const alpha = clients[0]!;
    // The open task exists once the run's first phase opens; a poll that has witnessed nothing yet
    // (checkpoint=-1: every published checkpoint is newer) must still get it, not an empty answer.
    const newest = (await alpha.getJson<Checkpoints>('/v1/log/checkpoints?after=-1')).body!.checkpoints.at(
      -1,
    )!;
    assert.ok(newest.size > 0);
    const task = await waitFor(
      "alpha's task through a poll with a checkpoint to witness",
      async () => {
        const r = await alpha.getJson<{ taskId: string }>('/v1/tasks/next?waitMs=0&checkpoint=-1');
        return r.status === 200 ? r.body! : undefined;
      },
      30_000,
    );
    assert.match(task.taskId, /^poll\.r1\.train\.alpha$/);
  });
});
