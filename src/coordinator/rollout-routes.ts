/**
 * The staged-rollout endpoints: an operator starts a rollout plan approved by quorum; members who read
 * the audit log see each rollout's stage, sites, gates and outcome; a site of the running stage reports
 * its circuit breaker with its signed statement (rollout-jobs.ts). Each route checks the caller's role
 * first (access.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { parseMessage } from '../protocol/index.ts';
import type { RouteName } from './access.ts';
import type { RolloutJobs } from './rollout-jobs.ts';

export interface RolloutRouteDeps {
  readonly guard: (request: FastifyRequest, route: RouteName) => string;
  readonly rollouts: RolloutJobs;
}

const digest = z.string().regex(/^[0-9a-f]{64}$/, 'must be a rollout plan digest (64 hex)');
const rolloutParam = z.strictObject({ rollout: digest });
const startBody = z.strictObject({ rollout: digest });
const breakerBody = z.strictObject({
  stage: z.enum(['shadow', 'canary', 'full']),
  signature: z.string().min(1).max(200),
});

export function registerRolloutRoutes(app: FastifyInstance, deps: RolloutRouteDeps): void {
  const { guard, rollouts } = deps;
  app.post('/v1/rollouts', async (request, reply) => {
    const id = guard(request, 'POST /v1/rollouts');
    const { rollout } = parseMessage(startBody, request.body, 'body');
    return reply.status(201).send(rollouts.start(rollout, id));
  });
  app.get('/v1/rollouts', async (request) => {
    guard(request, 'GET /v1/rollouts');
    return { rollouts: rollouts.list() };
  });
  app.get('/v1/rollouts/:rollout', async (request) => {
    guard(request, 'GET /v1/rollouts/:rollout');
    const { rollout } = parseMessage(rolloutParam, request.params, 'path');
    const view = rollouts.describe(rollout);
    if (!view)
      throw new EntenteError('NOT_FOUND', 'rollout: not a rollout this coordinator started', {
        field: 'rollout',
      });
    return view;
  });
  app.post('/v1/rollouts/:rollout/circuit-breaker', async (request) => {
    const site = guard(request, 'POST /v1/rollouts/:rollout/circuit-breaker');
    const { rollout } = parseMessage(rolloutParam, request.params, 'path');
    const body = parseMessage(breakerBody, request.body, 'body');
    return rollouts.circuitBreaker(site, rollout, body);
  });
}
