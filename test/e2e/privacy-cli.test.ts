/**
 * `entente privacy epsilon|calibrate` end to end: the CLI as a separate process, its JSON checked
 * against the shared DP reference vectors (v39 with dp_accounting's default orders; v35 with `--orders`,
 * read from the human line), the PLD accountant, usage errors (exit 2), and a calibration round trip
 * (ε at the returned z ≤ target, at 0.99·z > target).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { computeGaussianEpsilon } from '../../src/privacy/calibrate.ts';
import { TF_PRIVACY_RDP_ORDERS } from '../../src/privacy/rdp.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}
function runCli(args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI, 'privacy', ...args],
      { cwd: ROOT, timeout: 60_000, env: { ...process.env, ENTENTE_LOG_LEVEL: 'warn' } },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

const vectors = (
  JSON.parse(readFileSync(join(ROOT, 'test', 'vectors', 'dp', 'reference_vectors.json'), 'utf8')) as {
    vectors: Array<{ id: string; expected: Record<string, number> }>;
  }
).vectors;
const expected = (id: string, key: string) => vectors.find((v) => v.id === id)!.expected[key]!;

const V39 = ['--noise-multiplier', '0.7', '--sampling-rate', '0.01', '--steps', '120', '--delta', '1e-5'];
const CALIBRATION = { targetEpsilon: 8, delta: 1e-5, samplingRate: 0.04, steps: 2000 };
const runs: Record<string, Promise<CliResult>> = {};

describe('entente privacy (CLI)', { timeout: 120_000 }, () => {
  before(() => {
    // All processes at once: each spends most of its time loading the program.
    Object.assign(runs, {
      v39: runCli(['epsilon', '--accountant', 'rdp', ...V39, '--json']),
      v35: runCli([
        'epsilon',
        '--accountant',
        'rdp',
        ...['--noise-multiplier', '1', '--sampling-rate', '0.001', '--steps', '30000', '--delta', '1e-7'],
        ...['--orders', TF_PRIVACY_RDP_ORDERS.join(',')],
      ]),
      pld: runCli(['epsilon', '--accountant', 'pld', ...V39, '--json']),
      calibrate: runCli([
        'calibrate',
        ...['--accountant', 'rdp', '--target-epsilon', '8', '--delta', '1e-5'],
        ...['--sampling-rate', '0.04', '--steps', '2000', '--json'],
      ]),
      missingFlag: runCli([
        'epsilon',
        '--accountant',
        'prv',
        '--noise-multiplier',
        '1',
        '--sampling-rate',
        '0.1',
      ]),
      badValue: runCli([
        'epsilon',
        '--accountant',
        'rdp',
        ...V39.slice(0, 2),
        '--sampling-rate',
        '1.5',
        ...V39.slice(4),
      ]),
    });
  });

  it('epsilon --json prints exactly one object that matches v39 (dp_accounting default orders)', async () => {
    const r = await runs.v39!;
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const out = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(out), ['epsilon', 'delta', 'accountant', 'order']);
    assert.ok(Math.abs((out.epsilon as number) - expected('v39', 'epsilon')) < 0.5e-7, String(out.epsilon));
    assert.equal(out.delta, 1e-5);
    assert.equal(out.accountant, 'rdp');
    assert.equal(out.order, 4.4);
  });

  it('the human line names ε, δ, the accountant and the best order; --orders is used (v35, TF Privacy list)', async () => {
    const r = await runs.v35!;
    assert.equal(r.code, 0, r.stderr);
    const m = /^ε = (\S+) at δ = 1e-7 \(rdp accountant, best order (\S+)\)$/.exec(r.stdout.trim());
    assert.ok(m, r.stdout);
    assert.ok(Math.abs(Number(m[1]) - expected('v35', 'epsilon')) < 0.5e-7, m[1]);
    assert.equal(Number(m[2]), expected('v35', 'optimal_order'));
  });

  it('epsilon --accountant pld prints no order and is tighter than RDP', async () => {
    const r = await runs.pld!;
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(out), ['epsilon', 'delta', 'accountant']);
    assert.equal(out.accountant, 'pld');
    assert.ok((out.epsilon as number) > 0 && (out.epsilon as number) < expected('v39', 'epsilon'));
  });

  it('usage errors exit 2: an unknown accountant or missing flags (commander), an out-of-range value', async () => {
    const usage = await runs.missingFlag!;
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--accountant|--steps|--delta/);
    assert.equal(usage.stdout, '');
    const value = await runs.badValue!;
    assert.equal(value.code, 2);
    assert.match(value.stderr, /^entente: INVALID_ARGUMENT: --sampling-rate: /m);
    assert.equal(value.stdout, '');
  });

  it('calibrate --json round-trips: ε at z ≤ target, ε at 0.99·z > target', async () => {
    const r = await runs.calibrate!;
    assert.equal(r.code, 0, r.stderr);
    const { noiseMultiplier } = JSON.parse(r.stdout) as { noiseMultiplier: number };
    const { targetEpsilon, ...rest } = CALIBRATION;
    const epsilonAt = (z: number) =>
      computeGaussianEpsilon({ accountant: 'rdp', noiseMultiplier: z, ...rest });
    assert.ok(
      epsilonAt(noiseMultiplier) <= targetEpsilon,
      `ε(${noiseMultiplier}) = ${epsilonAt(noiseMultiplier)}`,
    );
    assert.ok(epsilonAt(0.99 * noiseMultiplier) > targetEpsilon);
  });

  it('plan prints ε after each round of a run config, ending where one accountant call over all steps ends', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'entente-plan-')), 'run.json');
    writeFileSync(
      file,
      JSON.stringify({
        id: 'plan',
        model: { kind: 'logistic', inputDim: 30 },
        strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
        rounds: 4,
        train: { epochs: 2, dp: { clipNorm: 1, noiseMultiplier: 1.3, samplingRate: 0.1 } },
      }),
    );
    const plan = await runCli(['plan', file, '--json', '--institutions', 'a,b,c']);
    assert.equal(plan.code, 0, plan.stderr);
    const out = JSON.parse(plan.stdout) as {
      rounds: { round: number; epsilon: number }[];
      institutions: string[];
    };
    assert.deepEqual(out.institutions, ['a', 'b', 'c']);
    assert.deepEqual(
      out.rounds.map((r) => r.round),
      [1, 2, 3, 4],
    );
    for (let i = 1; i < out.rounds.length; i++)
      assert.ok(out.rounds[i]!.epsilon > out.rounds[i - 1]!.epsilon);
    const all = await runCli([
      'epsilon',
      '--accountant',
      'rdp',
      '--noise-multiplier',
      '1.3',
      '--sampling-rate',
      '0.1',
      '--steps',
      '80',
      '--delta',
      '1e-5',
      '--json',
    ]);
    assert.ok(
      Math.abs(out.rounds[3]!.epsilon - (JSON.parse(all.stdout) as { epsilon: number }).epsilon) < 1e-12,
    );
    const bad = await runCli(['plan', join(tmpdir(), 'no-such-run.yaml')]);
    assert.equal(bad.code, 2);
  });
});
