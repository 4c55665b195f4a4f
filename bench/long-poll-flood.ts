/**
 * Long-poll flood: how long the operator's `GET /v1/status` takes while one member opens N long polls
 * (`GET /v1/tasks/next`, each on its own TLS connection) against an in-process coordinator, compared
 * with no flood. With the per-member cap, all but a few polls are refused at once. Prints one JSON
 * document on stdout: median and max status latency (ms) without and with the flood, how many polls
 * were refused, how many were held and how many were still open when the status was measured.
 * `--polls N` (default 1000).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startCoordinator } from '../src/coordinator/index.ts';
import { createWorkspace } from '../src/storage/index.ts';
import { createMtlsClient } from '../src/transport/index.ts';

const argIndex = process.argv.indexOf('--polls');
const POLLS = argIndex > 0 ? Number(process.argv[argIndex + 1]) : 1000;

const dir = mkdtempSync(join(tmpdir(), 'entente-bench-flood-'));
const ws = await createWorkspace(dir, {
  consortium: 'bench',
  institutions: ['alpha', 'beta', 'gamma'],
  now: new Date(),
});
const coordinator = await startCoordinator({ workspaceDir: dir, port: 0, log: pino({ level: 'silent' }) });
const port = Number(new URL(coordinator.url).port);
const operator = createMtlsClient({ baseUrl: coordinator.url, ...ws.operatorIdentity() });

async function statusLatencies(n: number): Promise<{ medianMs: number; maxMs: number }> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await operator.getJson('/v1/status');
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { medianMs: +times[Math.floor(n / 2)]!.toFixed(1), maxMs: +times[n - 1]!.toFixed(1) };
}

const quiet = await statusLatencies(20);
const gamma = ws.institutionIdentity('gamma');
let refused = 0;
let answered = 0;
const requests = Array.from({ length: POLLS }, () => {
  const req = request({
    host: '127.0.0.1',
    port,
    path: '/v1/tasks/next?waitMs=60000',
    agent: false,
    ca: gamma.caPem,
    cert: gamma.certPem,
    key: gamma.keyPem,
  });
  req.on('response', (res) => {
    answered++;
    if (res.statusCode === 429) refused++;
    res.resume();
  });
  req.on('error', () => {});
  req.end();
  return req;
});
const t0 = performance.now();
// Measured while the flood is open: once all but the few held polls are answered, or after 15 s
// (without a cap nothing is answered until the polls' own 60 s wait ends).
while (answered < POLLS - 4 && performance.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
const floodSeconds = (performance.now() - t0) / 1000;
const flooded = await statusLatencies(20);
const stillOpen = POLLS - answered;
for (const r of requests) r.destroy();
await operator.close();
await coordinator.close();
rmSync(dir, { recursive: true, force: true });
console.log(
  JSON.stringify(
    {
      polls: POLLS,
      refused,
      held: POLLS - answered,
      secondsWaited: +floodSeconds.toFixed(1),
      openWhileMeasured: stillOpen,
      statusWithoutFlood: quiet,
      statusDuringFlood: flooded,
    },
    null,
    2,
  ),
);
