/** Shared setup for end-to-end tests: a workspace with IID splits of the vendored breast cancer data. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSeededRng } from '../../src/crypto/index.ts';
import { parseCsv, partitionIid } from '../../src/data/index.ts';
import { DATASET_DIR, type ProcessFederation, startProcessFederation } from '../../src/simulation/index.ts';
import { type Workspace, createWorkspace, writePrivateFile } from '../../src/storage/index.ts';
import { type MtlsClient, createMtlsClient } from '../../src/transport/index.ts';

export const SCHEMA_PATH = join(DATASET_DIR, 'schema.json');

export async function createTestWorkspace(
  institutions: readonly string[],
  prefix = 'entente-e2e-',
): Promise<{ dir: string; ws: Workspace; dataPath: (id: string) => string }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const ws = await createWorkspace(dir, { consortium: 'test', institutions, now: new Date() });
  const table = parseCsv(readFileSync(join(DATASET_DIR, 'breast-cancer.csv'), 'utf8'));
  const parts = partitionIid(table.rows.length, institutions.length, createSeededRng('e2e/partition'));
  institutions.forEach((id, k) => {
    const lines = [table.header.join(','), ...parts[k]!.map((i) => table.rows[i]!.join(','))];
    writePrivateFile(join(dir, 'institutions', id, 'data.csv'), lines.join('\n') + '\n');
  });
  return { dir, ws, dataPath: (id) => join(dir, 'institutions', id, 'data.csv') };
}

export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`,
  );
}

/** Waits until every institution of the consortium is available for a new phase (operator client). */
export function waitForAllAvailable(operator: MtlsClient, timeoutMs = 60_000): Promise<true> {
  return waitFor(
    'every participant to be available',
    async () => {
      const st = (await operator.getJson<{ participants: { available: boolean }[] }>('/v1/status')).body!;
      return st.participants.every((p) => p.available) ? true : undefined;
    },
    timeoutMs,
  );
}

/** Waits until run `runId` has completed and returns its view (GET /v1/runs/:runId). */
export function waitForRunCompleted<T extends { status: string }>(
  operator: MtlsClient,
  runId: string,
  timeoutMs: number,
): Promise<T> {
  return waitFor(
    `run ${runId} to complete`,
    async () => {
      const v = (await operator.getJson<T>(`/v1/runs/${encodeURIComponent(runId)}`)).body!;
      return v.status === 'completed' ? v : undefined;
    },
    timeoutMs,
    200,
  );
}

/**
 * A local workspace (IID splits of the breast cancer data), one coordinator and one participant process
 * per institution on a free port, and the operator's client once every institution is available.
 * `extraArgs(id, workspaceDir)` adds per-institution flags (e.g. `--site-config`); `siteConfigs` writes
 * each given site configuration into the institution's folder first and passes it; `coordinatorArgs` are
 * added to `coordinator start`. The caller stops `federation`
 * and removes `setup.dir`.
 */
export async function startTestFederation(input: {
  institutions: readonly string[];
  prefix: string;
  siteConfigs?: Readonly<Record<string, { name: string; text: string }>>;
  extraArgs?: (id: string, workspaceDir: string) => readonly string[];
  /** Extra flags for `coordinator start`. */
  coordinatorArgs?: readonly string[];
}): Promise<{
  setup: Awaited<ReturnType<typeof createTestWorkspace>>;
  federation: ProcessFederation;
  port: number;
  client: MtlsClient;
}> {
  const setup = await createTestWorkspace(input.institutions, input.prefix);
  const siteArgs = (id: string): string[] => {
    const site = input.siteConfigs?.[id];
    if (!site) return [];
    const path = join(setup.dir, 'institutions', id, site.name);
    writeFileSync(path, site.text);
    return ['--site-config', path];
  };
  const port = await findFreePort();
  const federation = await startProcessFederation({
    workspace: setup.dir,
    port,
    ...(input.coordinatorArgs ? { coordinatorArgs: input.coordinatorArgs } : {}),
    participants: input.institutions.map((id) => ({
      institution: id,
      args: [
        '--data',
        setup.dataPath(id),
        '--schema',
        SCHEMA_PATH,
        ...siteArgs(id),
        ...(input.extraArgs?.(id, setup.dir) ?? []),
      ],
    })),
  });
  const client = createMtlsClient({ baseUrl: `https://127.0.0.1:${port}`, ...setup.ws.operatorIdentity() });
  await waitForAllAvailable(client);
  return { setup, federation, port, client };
}
