/**
 * Sites whose data schemas differ, with real processes. Gamma declares the label classes of the breast
 * cancer data in the other order (its class 0 is alpha's and beta's class 1): its schema digest differs,
 * and the run must not start. `entente schema digest` prints both digests; `entente run plan` for a run
 * that names no schema says no-go naming gamma and both digests; `run start` of the same run is
 * accepted but its first phase does not open (a `schema-mismatch` event names gamma and both digests,
 * no task is issued). Once gamma restarts with the consortium's schema the same run completes, its
 * tasks naming that schema (every site refuses a task that names another or none). The honest run's
 * file omits `train:` (the documented defaults apply).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { computeSchemaDigest, parseDataSchema } from '../../src/data/index.ts';
import { demoRunConfig, spawnEntente, stopChild } from '../../src/simulation/index.ts';
import type { MtlsClient } from '../../src/transport/index.ts';
import {
  SCHEMA_PATH,
  startTestFederation,
  waitFor,
  waitForAllAvailable,
  waitForRunCompleted,
} from './fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;

async function runCli(
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const h = spawnEntente(`entente ${args.slice(0, 2).join(' ')}`, args);
  let stdout = '';
  h.child.stdout?.setEncoding('utf8');
  h.child.stdout?.on('data', (d: string) => {
    stdout += d;
  });
  const closed = new Promise<void>((resolve) => h.child.once('close', () => resolve()));
  const code = await h.exited;
  await closed;
  return { code, stdout, stderr: h.stderr() };
}

interface StatusView {
  events: { kind: string; run_id: string | null; code: string | null; message: string }[];
}

describe('sites whose data schemas differ (label classes in another order)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'entente-schema-'));
  const original = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as { label: { classes: string[] } };
  const reordered = {
    ...original,
    label: { ...original.label, classes: [...original.label.classes].reverse() },
  };
  const reorderedPath = join(tmp, 'schema-reordered.json');
  writeFileSync(reorderedPath, JSON.stringify(reordered));
  const good = computeSchemaDigest(parseDataSchema(original));
  const bad = computeSchemaDigest(parseDataSchema(reordered));
  let fed: Awaited<ReturnType<typeof startTestFederation>>;
  let client: MtlsClient;
  const runFile = join(tmp, 'run.json');
  const { train: _defaults, ...withoutTrain } = demoRunConfig(2, 'schema-e2e');
  const runConfig = { ...withoutTrain, id: 'schema-run', secureAggregation: { protocol: 'none' } };
  writeFileSync(runFile, JSON.stringify(runConfig));

  before(async () => {
    fed = await startTestFederation({
      institutions: INSTITUTIONS,
      prefix: 'entente-schema-e2e-',
      extraArgs: (id) => (id === 'gamma' ? ['--schema', reorderedPath] : []),
    });
    client = fed.client;
  });

  after(async () => {
    await client?.close();
    await fed?.federation.stop();
    if (fed) rmSync(fed.setup.dir, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  });

  it('entente schema digest prints each schema digest (they differ)', async () => {
    assert.notEqual(good, bad);
    const a = await runCli(['schema', 'digest', SCHEMA_PATH]);
    const b = await runCli(['schema', 'digest', reorderedPath]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout.trim(), good);
    assert.equal(b.stdout.trim(), bad);
  });

  it('run plan says no-go (exit 5) naming gamma and both digests', { timeout: 60_000 }, async () => {
    const out = await runCli(['run', 'plan', runFile, '--workspace', fed.setup.dir, '--json']);
    assert.equal(out.code, 5, out.stderr);
    const plan = JSON.parse(out.stdout.trim()) as { go: boolean; reasons: string[] };
    assert.equal(plan.go, false);
    const reason = plan.reasons.find((r) => r.includes('different data schemas'));
    assert.ok(reason, plan.reasons.join('\n'));
    assert.ok(
      reason.includes(`alpha, beta follow ${good}`) && reason.includes(`gamma follows ${bad}`),
      reason,
    );
  });

  it('run start is accepted but its first phase does not open; a schema-mismatch event names gamma', {
    timeout: 120_000,
  }, async () => {
    const created = await client.postJson<{ runId: string }>('/v1/runs', runConfig);
    assert.equal(created.status, 201);
    const event = await waitFor(
      'a schema-mismatch event',
      async () => {
        const st = (await client.getJson<StatusView>('/v1/status')).body!;
        return st.events.find((e) => e.kind === 'schema-mismatch' && e.run_id === 'schema-run');
      },
      60_000,
    );
    assert.equal(event.code, 'SCHEMA_MISMATCH');
    assert.ok(
      event.message.includes(`gamma follows ${bad}`) && event.message.includes(`alpha, beta follow ${good}`),
    );
    const run = (
      await client.getJson<{ status: string; rounds: unknown[]; round: number }>('/v1/runs/schema-run')
    ).body!;
    assert.equal(run.status, 'running');
    assert.deepEqual(run.rounds, []);
    // The planner and the engine apply one rule: with a named digest, gamma is still the one named.
    const named = await runCli([
      'run',
      'plan',
      writeRun({ ...runConfig, id: 'named', dataSchemaDigest: good }),
      '--workspace',
      fed.setup.dir,
      '--json',
    ]);
    assert.equal(named.code, 5);
    assert.match(named.stdout, new RegExp(`the run requires data schema ${good}; gamma follows ${bad}`));
  });

  it('after gamma restarts with the consortium schema, the same run completes', {
    timeout: 180_000,
  }, async () => {
    await stopChild(fed.federation.participants.get('gamma')!);
    fed.federation.startParticipant('gamma', [
      '--data',
      fed.setup.dataPath('gamma'),
      '--schema',
      SCHEMA_PATH,
    ]);
    await waitForAllAvailable(client);
    const done = await waitForRunCompleted<{
      status: string;
      rounds: { round: number; evalAccuracy: number | null }[];
    }>(client, 'schema-run', 150_000);
    assert.equal(done.rounds.length, 2);
    // The same run (another id) now plans as go: plan and start agree.
    const plan = await runCli([
      'run',
      'plan',
      writeRun({ ...runConfig, id: 'schema-run-2' }),
      '--workspace',
      fed.setup.dir,
      '--json',
    ]);
    assert.equal(plan.code, 0, plan.stdout);
    assert.match(plan.stdout, new RegExp(`every site follows ${good}`));
  });

  function writeRun(config: Record<string, unknown>): string {
    const path = join(tmp, `${String(config.id)}.json`);
    writeFileSync(path, JSON.stringify(config));
    return path;
  }
});
