/**
 * Round benchmark: for n synthetic participant processes and models of P float32 parameters, the
 * loopback round time, the coordinator's aggregation time (folding streamed updates plus the strategy
 * step), the coordinator's peak RSS, and — measured in this same run — a plain in-memory sum of the
 * same n vectors, with the ratio. Prints one JSON object.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ChildHandle, spawnEntente, stopChild, waitForUrl } from '../src/simulation/index.ts';
import { createWorkspace } from '../src/storage/index.ts';
import { createMtlsClient } from '../src/transport/index.ts';

const PARTICIPANT = fileURLToPath(new URL('./synthetic-participant.ts', import.meta.url));

interface Case {
  participants: number;
  parameters: number;
  rounds: number;
  roundMs: { median: number; min: number; max: number };
  aggregateMs: { median: number; min: number; max: number };
  plainSumMs: number;
  aggregateOverPlainSum: number;
  coordinatorPeakRssMb: number;
  modelMb: number;
  memoryTargetMb: number;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s.at(-1)! };
};

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** The bound: sum n float32 vectors into a float64 accumulator, all in memory, best of 3. */
function measurePlainSum(n: number, p: number): number {
  const vectors = Array.from({ length: n }, (_, k) => new Float32Array(p).fill(k + 0.5));
  const acc = new Float64Array(p);
  let best = Number.POSITIVE_INFINITY;
  for (let rep = 0; rep < 3; rep++) {
    acc.fill(0);
    const t0 = performance.now();
    for (const v of vectors) for (let i = 0; i < p; i++) acc[i]! += v[i]! * 100;
    best = Math.min(best, performance.now() - t0);
  }
  if (acc[0] === -1) console.error('unreachable');
  return best;
}

/** A built-in model with about `p` parameters: logistic regression up to 2^20 inputs, else a wide MLP. */
function modelFor(p: number): Record<string, unknown> {
  if (p - 1 <= 1_048_576) return { kind: 'logistic', inputDim: p - 1 };
  return {
    kind: 'mlp',
    inputDim: 1000,
    numClasses: 2,
    hidden: [Math.round((p - 2) / 1003)],
    activation: 'relu',
  };
}

async function runCase(n: number, p: number, rounds: number): Promise<Case> {
  const dir = mkdtempSync(join(tmpdir(), 'entente-bench-'));
  const institutions = Array.from({ length: n }, (_, i) => `site-${String(i).padStart(2, '0')}`);
  const ws = await createWorkspace(dir, { consortium: 'bench', institutions, now: new Date() });
  const coordinator: ChildHandle = spawnEntente('coordinator', ['coordinator', 'start', '--workspace', dir], {
    env: { ENTENTE_LOG_LEVEL: 'warn' },
  });
  const url = await waitForUrl(coordinator);
  const participants = institutions.map((id) =>
    spawn(process.execPath, ['--import', 'tsx', PARTICIPANT, dir, id], {
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  );
  const client = createMtlsClient({ baseUrl: url, ...ws.operatorIdentity() });
  try {
    // Wait until every participant has registered.
    for (;;) {
      const s = (await client.getJson<{ participants: { available: boolean }[] }>('/v1/status')).body!;
      if (s.participants.every((x) => x.available)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await client.postJson('/v1/runs', {
      id: 'bench',
      model: modelFor(p),
      strategy: { name: 'fedavg', minTrainParticipants: n },
      rounds,
      minParticipants: n,
      // Plain updates: this benchmark measures plain aggregation (secure aggregation: bench secagg).
      secureAggregation: { protocol: 'none' },
      train: {},
      evaluate: false,
      roundTimeoutMs: 600_000,
      seed: 'bench',
    });
    let view: {
      status: string;
      rounds: { startedAt: number; trainedAt: number | null; aggregateMs: number | null }[];
    };
    for (;;) {
      view = (await client.getJson<typeof view>('/v1/runs/bench')).body!;
      if (view.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const peak = peakRssMb(coordinator.child.pid!);
    const done = view.rounds.filter((r) => r.trainedAt !== null);
    const roundMs = done.map((r) => r.trainedAt! - r.startedAt);
    const aggregateMs = done.map((r) => r.aggregateMs!);
    const plainSumMs = measurePlainSum(n, p);
    const modelMb = (p * 4) / 2 ** 20;
    return {
      participants: n,
      parameters: p,
      rounds: done.length,
      roundMs: stats(roundMs),
      aggregateMs: stats(aggregateMs),
      plainSumMs: Math.round(plainSumMs * 100) / 100,
      aggregateOverPlainSum: Math.round((stats(aggregateMs).median / plainSumMs) * 10) / 10,
      coordinatorPeakRssMb: Math.round(peak),
      modelMb: Math.round(modelMb * 10) / 10,
      memoryTargetMb: Math.round(4 * modelMb + 150),
    };
  } finally {
    await client.close();
    for (const c of participants) c.kill('SIGTERM');
    await Promise.all(
      participants.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.on('exit', r)))),
    );
    await stopChild(coordinator);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchRound(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);
  const sizes = only
    ? [Number(only.split(':')[1])]
    : quick
      ? [10_000, 1_000_000]
      : [10_000, 1_000_000, 10_000_000];
  const ns = only ? [Number(only.split(':')[0])] : [3, 10];
  const cases: Case[] = [];
  for (const n of ns) {
    for (const p of sizes) {
      const rounds = p >= 10_000_000 ? 2 : 3;
      process.stderr.write(`bench round: n=${n} parameters=${p} ...\n`);
      cases.push(await runCase(n, p, rounds));
    }
  }
  const at = (n: number, p: number) => cases.find((c) => c.participants === n && c.parameters === p);
  const big = at(10, 10_000_000);
  const mid = at(10, 1_000_000);
  const out = {
    benchmark: 'round',
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
    cases,
    targets: {
      peakRssBelow4xModelPlus150MbAtN10P1e7: big ? big.coordinatorPeakRssMb < big.memoryTargetMb : null,
      roundUnder3sAtN10P1e6: mid ? mid.roundMs.median < 3000 : null,
    },
  };
  console.log(args.includes('--json') ? JSON.stringify(out) : JSON.stringify(out, null, 2));
}
