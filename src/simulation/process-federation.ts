/**
 * Starts a federation of real processes on loopback: one coordinator and N participants, each an
 * `entente` CLI process speaking HTTPS with mutual TLS. Used by the demo, the end-to-end tests and the
 * benchmark. `stop()` terminates every child (SIGTERM, then SIGKILL after a grace period), so nothing
 * is left behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EntenteError } from '../core/errors.ts';

export const CLI_ENTRY = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
/** The `entente` command (bin/entente.js): the CLI bundled from src/, rebuilt first when a source changed. */
export const CLI_BIN = fileURLToPath(new URL('../../bin/entente.js', import.meta.url));

export interface ChildHandle {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Everything the child wrote to stderr (its log), for diagnostics. */
  readonly stderr: () => string;
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of children) c.kill('SIGKILL');
  });
}

/** Spawns `entente <args>` as a child process, through bin/entente.js as a user would run it. */
export function spawnEntente(
  name: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; keepLog?: boolean } = {},
): ChildHandle {
  installExitHook();
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ENTENTE_LOG_LEVEL: process.env.ENTENTE_LOG_LEVEL ?? 'info', ...options.env },
  });
  children.add(child);
  let log = '';
  child.stderr?.setEncoding('utf8');
  // Diagnostics: ENTENTE_CHILD_LOG_DIR keeps every child's log in <dir>/<name>.log as well.
  const keepIn = process.env.ENTENTE_CHILD_LOG_DIR;
  child.stderr?.on('data', (d: string) => {
    if (keepIn)
      appendFileSync(join(keepIn, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.log`), d, { mode: 0o600 });
    log += d;
    if (log.length > 2_000_000) log = log.slice(-1_000_000);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      children.delete(child);
      resolve(code);
    });
  });
  return { name, child, exited, stderr: () => log };
}

/**
 * Waits for the first JSON line on the child's stdout that has a `url`. The bound only catches a child
 * that never starts (a loaded machine can take many seconds to load and open the store); it rejects with
 * TIMEOUT, or with the child's exit when it exits first.
 */
export function waitForUrl(handle: ChildHandle, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(
      () =>
        reject(
          new EntenteError(
            'TIMEOUT',
            `${handle.name} did not report its URL in ${timeoutMs} ms:\n${handle.stderr().slice(-2000)}`,
          ),
        ),
      timeoutMs,
    );
    handle.child.stdout?.setEncoding('utf8');
    handle.child.stdout?.on('data', (d: string) => {
      buf += d;
      for (const line of buf.split('\n')) {
        try {
          const parsed = JSON.parse(line) as { url?: string };
          if (typeof parsed.url === 'string') {
            clearTimeout(timer);
            resolve(parsed.url);
            return;
          }
        } catch {
          // not a JSON line yet
        }
      }
    });
    void handle.exited.then((code) => {
      clearTimeout(timer);
      reject(
        new EntenteError(
          'UNAVAILABLE',
          `${handle.name} exited with ${code} before listening:\n${handle.stderr().slice(-2000)}`,
        ),
      );
    });
  });
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(handle: ChildHandle, graceMs = 5_000): Promise<void> {
  if (handle.child.exitCode !== null || handle.child.signalCode !== null) return;
  handle.child.kill('SIGTERM');
  const timer = setTimeout(() => handle.child.kill('SIGKILL'), graceMs);
  await handle.exited;
  clearTimeout(timer);
}

export interface ProcessFederation {
  readonly coordinator: ChildHandle;
  readonly url: string;
  readonly participants: Map<string, ChildHandle>;
  startCoordinator(port?: number): Promise<string>;
  /** Starts a participant from the local workspace, or from its own site directory when `site` is given. */
  startParticipant(institution: string, args: readonly string[], site?: string): ChildHandle;
  stop(): Promise<void>;
}

export async function startProcessFederation(input: {
  workspace: string;
  port?: number;
  /** Extra flags for `coordinator start` (limits, windows), on every (re)start. */
  coordinatorArgs?: readonly string[];
  participants: ReadonlyArray<{ institution: string; args: readonly string[]; site?: string }>;
}): Promise<ProcessFederation> {
  const participants = new Map<string, ChildHandle>();
  let coordinator: ChildHandle;
  let url = '';
  const startCoordinatorProcess = async (port = input.port ?? 0): Promise<string> => {
    coordinator = spawnEntente('coordinator', [
      'coordinator',
      'start',
      '--workspace',
      input.workspace,
      '--port',
      String(port),
      ...(input.coordinatorArgs ?? []),
    ]);
    url = await waitForUrl(coordinator);
    return url;
  };
  await startCoordinatorProcess();
  const startParticipantProcess = (
    institution: string,
    args: readonly string[],
    site?: string,
  ): ChildHandle => {
    const where = site ? ['--site', site] : ['--workspace', input.workspace, '--institution', institution];
    const h = spawnEntente(institution, ['participant', 'start', ...where, ...args]);
    participants.set(institution, h);
    return h;
  };
  for (const p of input.participants) startParticipantProcess(p.institution, p.args, p.site);
  return {
    get coordinator() {
      return coordinator;
    },
    get url() {
      return url;
    },
    participants,
    startCoordinator: startCoordinatorProcess,
    startParticipant: startParticipantProcess,
    async stop() {
      await Promise.all([...participants.values()].map((p) => stopChild(p)));
      await stopChild(coordinator);
    },
  };
}
