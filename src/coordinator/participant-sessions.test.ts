/** Tests for one live process per institution: the rules of sessions, liveness and open connections. */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { ParticipantSessions } from './participant-sessions.ts';

class FakeSocket extends EventEmitter {
  destroyed = false;
  close(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

const A = 'a'.repeat(24);
const B = 'b'.repeat(24);
const conflict = (err: unknown): boolean =>
  err instanceof EntenteError && err.code === 'CONFLICT' && err.message.includes('"alpha"');

describe('participant sessions', () => {
  const setup = () => {
    let now = 0;
    const sessions = new ParticipantSessions({ livenessMs: 15_000, now: () => now });
    return { sessions, advance: (ms: number) => (now += ms) };
  };

  it('a second live process of the same institution is refused; its own retry is not', () => {
    const { sessions, advance } = setup();
    const first = new FakeSocket();
    sessions.register('alpha', A, first);
    advance(1_000);
    assert.throws(() => sessions.register('alpha', B, new FakeSocket()), conflict);
    assert.throws(() => sessions.register('alpha', undefined, new FakeSocket()), conflict);
    sessions.register('alpha', A, new FakeSocket()); // the same process registering again
    sessions.register('beta', B, new FakeSocket()); // another institution
  });

  it('a process that died (its connections closed) is replaced at once', () => {
    const { sessions, advance } = setup();
    const first = new FakeSocket();
    sessions.register('alpha', A, first);
    advance(500);
    first.close();
    sessions.register('alpha', B, new FakeSocket());
    // The old one, if it came back, is refused while the new one is live.
    assert.throws(() => sessions.see('alpha', A, new FakeSocket()), conflict);
  });

  it('a process that holds its connections but is not seen within the liveness window is replaced', () => {
    const { sessions, advance } = setup();
    const first = new FakeSocket();
    sessions.register('alpha', A, first);
    advance(10_000);
    sessions.see('alpha', A, first); // heartbeat
    advance(14_000);
    assert.throws(() => sessions.register('alpha', B, new FakeSocket()), conflict);
    advance(2_000); // 16 s since it was last seen
    const second = new FakeSocket();
    sessions.register('alpha', B, second);
    assert.throws(() => sessions.see('alpha', A, first), conflict, 'the stalled one must stop');
    sessions.see('alpha', B, second);
  });

  it('after a coordinator restart (nothing known) the first session seen is adopted', () => {
    const { sessions } = setup();
    sessions.see('alpha', A, new FakeSocket());
    assert.ok(sessions.isLive('alpha'));
    assert.throws(() => sessions.register('alpha', B, new FakeSocket()), conflict);
    // Requests without a session id are not tracked (and refused only at registration).
    sessions.see('alpha', undefined, new FakeSocket());
  });
});
