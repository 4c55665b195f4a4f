/**
 * What every request to the coordinator goes through besides its route: the role check (`guard`: the
 * caller's member id once one of its roles may call the route, least privilege), the traffic counters,
 * and refusals recorded for verified members (a caller without a valid certificate is only counted).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { EntenteError } from '../core/errors.ts';
import { readPeerIdentity } from '../transport/index.ts';
import { type RouteName, routeAccess } from './access.ts';

export interface Traffic {
  bytesReceived: number;
  bytesSent: number;
  unauthenticatedRefusals: number;
}

export interface RequestGuardDeps {
  readonly rolesOf: (member: string) => readonly string[];
  readonly recordRefusal: (member: string, code: string, message: string) => void;
  readonly traffic: Traffic;
}

export type Guard = (request: FastifyRequest, route: RouteName) => string;

/** Adds the traffic and refusal hooks to `app` and returns the guard every route calls first. */
export function installRequestGuard(app: FastifyInstance, deps: RequestGuardDeps): Guard {
  const { rolesOf, recordRefusal, traffic } = deps;
  const guard: Guard = (request, route) => {
    const id = readPeerIdentity(request);
    const roles = rolesOf(id);
    if (roles.length === 0) {
      recordRefusal(id, 'UNKNOWN_PARTICIPANT', `certificate "${id}" is not a member of the consortium`);
      throw new EntenteError(
        'UNKNOWN_PARTICIPANT',
        'the certificate does not belong to a member of this consortium',
      );
    }
    const allowed: readonly string[] = routeAccess[route];
    if (!roles.some((r) => allowed.includes(r)))
      throw new EntenteError('FORBIDDEN', `${route} is for the roles: ${allowed.join(', ')}`);
    return id;
  };

  app.addHook('onResponse', async (request, reply) => {
    traffic.bytesReceived += Number(request.headers['content-length'] ?? 0) || 0;
    traffic.bytesSent += Number(reply.getHeader('content-length') ?? 0) || 0;
  });
  app.addHook('onError', async (request, _reply, err) => {
    // STORE_CORRUPT is the coordinator's own fault, logged where it is found: not the caller's refusal.
    if (err instanceof EntenteError && err.code !== 'UNKNOWN_PARTICIPANT' && err.code !== 'STORE_CORRUPT') {
      let who: string | null = null;
      try {
        who = readPeerIdentity(request);
      } catch {
        who = null;
      }
      // Only refusals of verified members are recorded (events and the audit log): a caller without a
      // valid certificate could otherwise grow the log at will. Those are only counted.
      if (who === null) traffic.unauthenticatedRefusals++;
      else if (!request.url.includes('/result'))
        recordRefusal(who, err.code, `${request.method} ${request.routeOptions.url ?? ''}: ${err.message}`);
    }
  });
  return guard;
}
