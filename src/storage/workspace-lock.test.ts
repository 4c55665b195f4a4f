/** Tests for the coordinator's workspace lock: exclusive, stale locks taken over, released only by its owner. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { type ProcessProbe, acquireWorkspaceLock, systemProcessProbe } from './workspace-lock.ts';

describe('workspace lock', () => {
  let dir = '';
  let path = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'entente-lock-'));
    path = join(dir, 'coordinator.lock');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const running = (pids: number[], marks: Record<number, string> = {}): ProcessProbe => ({
    isRunning: (pid) => pids.includes(pid),
    startMark: (pid) => marks[pid],
  });

  it('a second owner is refused with WORKSPACE_LOCKED naming the first pid, and the file is unchanged', () => {
    const first = acquireWorkspaceLock(path, { now: 1_000, pid: 4242, probe: running([4242]) });
    const before = readFileSync(path, 'utf8');
    assert.deepEqual(JSON.parse(before).pid, 4242);
    assert.throws(
      () => acquireWorkspaceLock(path, { now: 2_000, pid: 5151, probe: running([4242, 5151]) }),
      (err: unknown) =>
        err instanceof EntenteError && err.code === 'WORKSPACE_LOCKED' && err.message.includes('pid 4242'),
    );
    assert.equal(readFileSync(path, 'utf8'), before);
    first.release();
    assert.equal(existsSync(path), false);
    const next = acquireWorkspaceLock(path, { now: 3_000, pid: 5151, probe: running([5151]) });
    assert.equal(next.tookOver, undefined);
    next.release();
  });

  it('a lock whose pid is not running is taken over and reported', () => {
    acquireWorkspaceLock(path, { now: 1_000, pid: 4242, probe: running([4242]) }); // never released: killed
    const lock = acquireWorkspaceLock(path, { now: 2_000, pid: 5151, probe: running([5151]) });
    assert.equal(lock.tookOver?.pid, 4242);
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).pid, 5151);
    lock.release();
  });

  it('a pid reused by another process (a different start mark) is stale', () => {
    acquireWorkspaceLock(path, { now: 1_000, pid: 4242, probe: running([4242], { 4242: '700' }) });
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).processStart, '700');
    // The same pid, the same process: refused.
    assert.throws(
      () =>
        acquireWorkspaceLock(path, { now: 2_000, pid: 5151, probe: running([4242, 5151], { 4242: '700' }) }),
      (err: unknown) => err instanceof EntenteError && err.code === 'WORKSPACE_LOCKED',
    );
    // The same pid, now held by a process that started at another time: the owner is gone.
    const lock = acquireWorkspaceLock(path, {
      now: 3_000,
      pid: 5151,
      probe: running([4242, 5151], { 4242: '9100' }),
    });
    assert.equal(lock.tookOver?.pid, 4242);
    lock.release();
  });

  it('release removes only its own lock', () => {
    const first = acquireWorkspaceLock(path, { now: 1_000, pid: 4242, probe: running([]) });
    // Taken over while the first one still believes it holds it (it was thought dead).
    const second = acquireWorkspaceLock(path, { now: 2_000, pid: 5151, probe: running([5151]) });
    first.release();
    assert.equal(
      JSON.parse(readFileSync(path, 'utf8')).pid,
      5151,
      "the first did not remove the second's lock",
    );
    second.release();
    assert.equal(existsSync(path), false);
  });

  it('a lock file being written (no owner record yet) is respected while young, taken over when old', () => {
    writeFileSync(path, '');
    const now = Date.now();
    assert.throws(
      () => acquireWorkspaceLock(path, { now, pid: 5151, probe: running([5151]) }),
      (err: unknown) => err instanceof EntenteError && err.code === 'WORKSPACE_LOCKED',
    );
    const old = new Date(now - 60_000);
    utimesSync(path, old, old);
    const lock = acquireWorkspaceLock(path, { now, pid: 5151, probe: running([5151]) });
    assert.ok(lock.tookOver);
    lock.release();
  });

  it('the real process probe: a running process holds its lock, an exited one does not', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => child.once('spawn', resolve));
      const pid = child.pid!;
      // Its lock, with its own start mark from /proc.
      const held = { pid, lockedAt: Date.now(), token: 'x', processStart: systemProcessProbe.startMark(pid) };
      assert.match(held.processStart ?? '', /^\d+$/);
      writeFileSync(path, JSON.stringify(held));
      assert.throws(
        () => acquireWorkspaceLock(path, { now: Date.now() }),
        (err: unknown) =>
          err instanceof EntenteError &&
          err.code === 'WORKSPACE_LOCKED' &&
          err.message.includes(`pid ${pid}`),
      );
      // Taken by an earlier process that held the same pid: a reused pid, stale.
      writeFileSync(path, JSON.stringify({ ...held, processStart: '1' }));
      const reused = acquireWorkspaceLock(path, { now: Date.now() });
      assert.equal(reused.tookOver?.pid, pid);
      reused.release();
      writeFileSync(path, JSON.stringify(held));
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      const lock = acquireWorkspaceLock(path, { now: Date.now() });
      assert.equal(lock.tookOver?.pid, pid);
      assert.equal(JSON.parse(readFileSync(path, 'utf8')).pid, process.pid);
      lock.release();
    } finally {
      child.kill('SIGKILL');
    }
  });
});
