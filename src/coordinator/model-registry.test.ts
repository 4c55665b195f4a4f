import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeLogEntry, type LogEntry } from '../audit/index.ts';
import type { AuditLog } from './audit-log.ts';
import { ModelRegistry } from './model-registry.ts';

const entry = (index: number, run: string, model: string): Uint8Array =>
  encodeLogEntry({
    kind: 'model-initialized',
    index,
    at: 0,
    prev: '',
    run,
    round: 0,
    modelSha256: model.repeat(64),
  } as LogEntry);

/** A stand-in for the audit log: its size and entries, editable to simulate a rolled-back append. */
function fakeLog(bodies: Uint8Array[]): AuditLog {
  return {
    get size() {
      return bodies.length;
    },
    entries: (start: number, end: number) =>
      bodies.slice(start, end).map((body, i) => ({ index: start + i, body })),
  } as unknown as AuditLog;
}

describe('ModelRegistry', () => {
  it('follows the log as it grows, and rebuilds when entries it read were replaced', () => {
    const bodies = [entry(0, 'run-a', '1')];
    const registry = new ModelRegistry(fakeLog(bodies));
    assert.deepEqual(
      registry.view().versions.map((v) => v.run),
      ['run-a'],
    );
    bodies.push(entry(1, 'run-b', '2'));
    assert.deepEqual(
      registry.view().versions.map((v) => v.run),
      ['run-a', 'run-b'],
    );
    // A transaction that appended entry 1 rolled back and another entry took its index: same size.
    bodies[1] = entry(1, 'run-c', '3');
    assert.deepEqual(
      registry.view().versions.map((v) => v.run),
      ['run-a', 'run-c'],
    );
    // Shrunk (rolled back) and grown again past the old size.
    bodies.splice(1);
    bodies.push(entry(1, 'run-d', '4'), entry(2, 'run-e', '5'));
    assert.deepEqual(
      registry.view().versions.map((v) => v.run),
      ['run-a', 'run-d', 'run-e'],
    );
  });
});
