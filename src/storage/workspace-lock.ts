/**
 * The coordinator's exclusive lock on a workspace (coordinator/coordinator.lock): created with O_EXCL,
 * holding the owner's pid, the time it took the lock, its process start mark and a random token. A
 * second coordinator of the same workspace finds it and is refused with WORKSPACE_LOCKED naming the
 * owner's pid, before it touches anything. A lock whose owner is gone (killed with -9, a crash) is
 * stale and taken over: its pid is not running, or (Linux) the process now holding that pid is another
 * one (its start time in clock ticks after boot, which no wall-clock change moves, differs).
 * The lock is released only by its owner (its token), on a clean exit or a signal.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { EntenteError } from '../core/errors.ts';

export interface LockOwner {
  readonly pid: number;
  /** When the owner took the lock (ms since the epoch). */
  readonly lockedAt: number;
  readonly token: string;
  /** The owner process's start mark (see ProcessProbe.startMark), when the platform gives one. */
  readonly processStart?: string | undefined;
}

export interface WorkspaceLock {
  readonly path: string;
  readonly owner: LockOwner;
  /** The stale lock this one replaced (its owner was no longer running), if any. */
  readonly tookOver: LockOwner | undefined;
  /** Removes the lock file if it is still this owner's. Idempotent. */
  release(): void;
}

/** How a lock's owner is checked; replaceable in tests. */
export interface ProcessProbe {
  /** False when no process has `pid`. */
  isRunning(pid: number): boolean;
  /** An opaque mark of when the process now holding `pid` started, if the platform gives one. */
  startMark(pid: number): string | undefined;
}

export const systemProcessProbe: ProcessProbe = {
  isRunning(pid) {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      // EPERM: a process of another user holds the pid; it is running.
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  },
  startMark(pid) {
    // Linux: field 22 of /proc/<pid>/stat, the start time in clock ticks after boot.
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ticks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      return ticks !== undefined && /^\d+$/.test(ticks) ? ticks : undefined;
    } catch {
      return undefined;
    }
  },
};

/** A lock file without a complete owner record is being written; older than this, its writer died. */
const PARTIAL_LOCK_MS = 10_000;

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (
      typeof o.pid === 'number' &&
      Number.isInteger(o.pid) &&
      o.pid > 0 &&
      typeof o.lockedAt === 'number' &&
      typeof o.token === 'string'
    )
      return {
        pid: o.pid,
        lockedAt: o.lockedAt,
        token: o.token,
        processStart: typeof o.processStart === 'string' ? o.processStart : undefined,
      };
  } catch {
    // not JSON: a lock file cut short by a crash while it was written
  }
  return undefined;
}

function readOwner(path: string): { text: string; owner: LockOwner | undefined } | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    return { text, owner: parseOwner(text) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * True when the lock's owner no longer runs: its pid is free, or held by another process (a different
 * start mark). A file without a complete owner record is stale once it is old (its writer died).
 */
function isStale(path: string, owner: LockOwner | undefined, probe: ProcessProbe, now: number): boolean {
  if (owner === undefined) {
    try {
      return now - statSync(path).mtimeMs > PARTIAL_LOCK_MS;
    } catch {
      return true;
    }
  }
  if (owner.pid === process.pid) return false;
  if (!probe.isRunning(owner.pid)) return true;
  if (owner.processStart === undefined) return false;
  const mark = probe.startMark(owner.pid);
  return mark !== undefined && mark !== owner.processStart;
}

/**
 * Takes the lock at `path` or throws WORKSPACE_LOCKED naming the pid that holds it. `now` is the time
 * recorded as the lock's start.
 */
export function acquireWorkspaceLock(
  path: string,
  input: { now: number; pid?: number; probe?: ProcessProbe },
): WorkspaceLock {
  const probe = input.probe ?? systemProcessProbe;
  const owner: LockOwner = {
    pid: input.pid ?? process.pid,
    lockedAt: input.now,
    token: randomBytes(16).toString('hex'),
    processStart: probe.startMark(input.pid ?? process.pid),
  };
  let tookOver: LockOwner | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const found = readOwner(path);
      if (found === undefined) continue; // released meanwhile: try again
      if (!isStale(path, found.owner, probe, input.now)) throw lockedBy(path, found.owner);
      // Stale: move it aside (only one contender's rename succeeds), then check that what was moved is
      // the stale lock that was judged, not a fresh one another contender created meanwhile.
      const aside = `${path}.stale-${owner.token}`;
      try {
        renameSync(path, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const moved = readOwner(aside);
      if (moved !== undefined && moved.text !== found.text) {
        // A live lock was moved by mistake: put it back (link fails if yet another one appeared) and yield.
        try {
          linkSync(aside, path);
        } catch {
          // another lock is in place: leave it
        } finally {
          rmSync(aside, { force: true });
        }
        throw lockedBy(path, moved.owner);
      }
      rmSync(aside, { force: true });
      tookOver = found.owner ?? { pid: 0, lockedAt: 0, token: '' };
      continue;
    }
    try {
      writeSync(fd, `${JSON.stringify(owner)}\n`);
    } finally {
      closeSync(fd);
    }
    let released = false;
    return {
      path,
      owner,
      tookOver,
      release() {
        if (released) return;
        released = true;
        const current = readOwner(path);
        if (current?.owner?.token === owner.token) rmSync(path, { force: true });
      },
    };
  }
  throw lockedBy(path, readOwner(path)?.owner);
}

function lockedBy(path: string, holder: LockOwner | undefined): EntenteError {
  const who =
    holder !== undefined
      ? `another coordinator (pid ${holder.pid}, since ${new Date(holder.lockedAt).toISOString()})`
      : 'another coordinator (starting now)';
  return new EntenteError(
    'WORKSPACE_LOCKED',
    `workspace: ${who} is running on this workspace (${path}); stop it first (nothing was changed)`,
    { field: 'workspace' },
  );
}
