/**
 * CLI start-up benchmark: the wall time of whole `entente` processes, as a user or a test starts them
 * (`node bin/entente.js`: the bundled CLI with V8's code cache), against the bound measured in this same
 * run, the start-up of an empty Node process (`node -e 0`), and the ratio. Commands: `--help`, and a
 * `status` that fails (exit 6, one `entente: UNAVAILABLE: …` line) against a workspace with no running
 * coordinator. For comparison, the same `--help` through tsx (`node --import tsx src/cli/main.ts`, how
 * every call ran before the bundle). Runs are interleaved (A B C D A B C D …) so drift in the machine's
 * speed hits every command alike; one warm-up round first (it builds the bundle if a source changed).
 * `--runs N` (default 7), `--json` for one line. Prints one JSON object on stdout.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/entente.js', import.meta.url));
const MAIN_TS = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const TARGET_MS = 1_000;

type Stats = { median: number; min: number; max: number };
const stats = (xs: number[]): Stats => {
  const s = [...xs].sort((a, b) => a - b);
  return {
    median: Math.round(s[Math.floor(s.length / 2)]!),
    min: Math.round(s[0]!),
    max: Math.round(s.at(-1)!),
  };
};

interface Probe {
  readonly name: string;
  readonly args: readonly string[];
  /** Checks one run's outcome; returns a problem or undefined. */
  readonly check: (status: number | null, stderr: string) => string | undefined;
}

function timeOnce(probe: Probe): number {
  const start = performance.now();
  const r = spawnSync(process.execPath, probe.args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = performance.now() - start;
  const problem = probe.check(r.status, r.stderr);
  if (problem) throw new Error(`${probe.name}: ${problem}`);
  return ms;
}

export async function benchCliStartup(args: string[]): Promise<void> {
  const runsAt = args.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 7;
  if (!Number.isInteger(runs) || runs < 1 || runs > 100)
    throw new Error('--runs: expected an integer 1..100');
  const dir = mkdtempSync(join(tmpdir(), 'entente-cli-bench-'));
  try {
    const ws = join(dir, 'ws');
    const init = spawnSync(process.execPath, [BIN, 'init', ws, '--institutions', 'hospital-a,hospital-b'], {
      encoding: 'utf8',
    });
    if (init.status !== 0) throw new Error(`entente init failed: ${init.stderr}`);
    const exitsZero = (status: number | null, stderr: string) =>
      status === 0 ? undefined : `exit ${status}: ${stderr.slice(0, 300)}`;
    const probes: Probe[] = [
      { name: 'node -e 0', args: ['-e', '0'], check: exitsZero },
      { name: 'entente --help', args: [BIN, '--help'], check: exitsZero },
      {
        name: 'entente status (no coordinator)',
        args: [BIN, 'status', '--workspace', ws],
        check: (status, stderr) => {
          if (status !== 6) return `expected exit 6 (UNAVAILABLE), got ${status}: ${stderr.slice(0, 300)}`;
          if (!/^entente: UNAVAILABLE: [^\n]*\n$/.test(stderr))
            return `expected one error line, got ${stderr}`;
          return undefined;
        },
      },
      { name: 'tsx src/cli/main.ts --help', args: ['--import', 'tsx', MAIN_TS, '--help'], check: exitsZero },
    ];
    process.stderr.write(
      `bench cli-startup: warm-up, then ${runs} interleaved runs of ${probes.length} commands\n`,
    );
    for (const p of probes) timeOnce(p);
    const times = probes.map(() => [] as number[]);
    for (let i = 0; i < runs; i++) {
      probes.forEach((p, k) => {
        times[k]!.push(timeOnce(p));
      });
    }
    const [node, help, status, tsx] = times.map(stats) as [Stats, Stats, Stats, Stats];
    const round2 = (x: number) => Math.round(x * 100) / 100;
    const ratio = (x: Stats) => round2(x.median / Math.max(node.median, 1));
    const doc = {
      runs,
      boundNodeEmptyMs: node,
      help: { ms: help, ratioToBound: ratio(help) },
      statusNoCoordinator: { ms: status, ratioToBound: ratio(status) },
      viaTsxHelp: { ms: tsx, ratioToBound: ratio(tsx), bundleSpeedup: round2(tsx.median / help.median) },
      targetMs: TARGET_MS,
      targetMet: help.median < TARGET_MS && status.median < TARGET_MS,
    };
    console.log(args.includes('--json') ? JSON.stringify(doc) : JSON.stringify(doc, null, 2));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
