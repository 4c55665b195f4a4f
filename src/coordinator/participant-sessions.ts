/**
 * One live participant process per institution. Each participant process picks a random session id
 * and sends it (header `entente-session`) when it registers, polls and sends heartbeats. A session is
 * live while it was seen within the liveness window and still holds an open connection (a live
 * participant always does: its long poll, or keep-alive sockets kept busy by its heartbeats); a process
 * that dies closes its sockets at once, so a restart after a crash is accepted without waiting.
 * Another session of the same institution is refused with CONFLICT while one is live; a session that
 * was replaced after it stopped being live is refused with CONFLICT when it comes back.
 */
import { EntenteError } from '../core/errors.ts';

/** What is needed of a connection: whether it is still open, and to hear when it closes. */
export interface SessionSocket {
  readonly destroyed: boolean;
  once(event: 'close', listener: () => void): unknown;
}

interface Session {
  readonly id: string;
  lastSeen: number;
  readonly sockets: Set<SessionSocket>;
}

export class ParticipantSessions {
  readonly #sessions = new Map<string, Session>();
  readonly #livenessMs: number;
  readonly #now: () => number;

  constructor(options: { livenessMs: number; now: () => number }) {
    this.#livenessMs = options.livenessMs;
    this.#now = options.now;
  }

  /** True while `institution`'s current session was seen recently and holds an open connection. */
  isLive(institution: string): boolean {
    const s = this.#sessions.get(institution);
    if (!s) return false;
    for (const socket of s.sockets) if (socket.destroyed) s.sockets.delete(socket);
    return s.sockets.size > 0 && this.#now() - s.lastSeen <= this.#livenessMs;
  }

  /**
   * A registration: becomes the institution's session unless another one is live (CONFLICT). Without a
   * session id (a client that does not send one) it is accepted only when no session is live.
   */
  register(institution: string, session: string | undefined, socket: SessionSocket): void {
    const current = this.#sessions.get(institution);
    if (current && current.id !== session && this.isLive(institution))
      throw new EntenteError(
        'CONFLICT',
        `institution: "${institution}" is already taking part from another live process (seen ${this.#now() - current.lastSeen} ms ago); stop that one first, or start this one after it stops`,
        { field: 'institution' },
      );
    if (session === undefined) {
      this.#sessions.delete(institution);
      return;
    }
    this.#adopt(institution, session, socket);
  }

  /**
   * A poll or heartbeat of `session`: refreshes it; a session the coordinator does not know (it
   * restarted) becomes current unless another one is live; one replaced by another is refused.
   */
  see(institution: string, session: string | undefined, socket: SessionSocket): void {
    if (session === undefined) return;
    const current = this.#sessions.get(institution);
    if (current?.id === session) {
      current.lastSeen = this.#now();
      this.#track(current, socket);
      return;
    }
    if (current && this.isLive(institution))
      throw new EntenteError(
        'CONFLICT',
        `institution: another process registered as "${institution}" and is taking part; this one must stop`,
        { field: 'institution' },
      );
    this.#adopt(institution, session, socket);
  }

  #adopt(institution: string, id: string, socket: SessionSocket): void {
    const s: Session = { id, lastSeen: this.#now(), sockets: new Set() };
    this.#track(s, socket);
    this.#sessions.set(institution, s);
  }

  #track(s: Session, socket: SessionSocket): void {
    if (socket.destroyed || s.sockets.has(socket)) return;
    s.sockets.add(socket);
    socket.once('close', () => s.sockets.delete(socket));
  }
}
