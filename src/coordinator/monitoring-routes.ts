/**
 * Drift monitoring's endpoints (monitoring-jobs.ts): the operator measures the version an alias
 * points at now (its reference first when it has none), and the members who read the audit log list
 * the monitored models and read one model's reference, measurements and reports (each report is also a
 * `monitoring-report` log entry). Each route checks the caller's role first (access.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { parseMessage } from '../protocol/index.ts';
import type { RouteName } from './access.ts';
import type { MonitoringJobs } from './monitoring-jobs.ts';

export interface MonitoringRouteDeps {
  readonly guard: (request: FastifyRequest, route: RouteName) => string;
  readonly monitoring: MonitoringJobs;
}

const runSchema = z.strictObject({ alias: z.string().min(1).max(64) });
const modelParam = z.strictObject({
  model: z.string().regex(/^[0-9a-f]{64}$/, 'must be a model SHA-256 (64 hex)'),
});

export function registerMonitoringRoutes(app: FastifyInstance, deps: MonitoringRouteDeps): void {
  const { guard, monitoring } = deps;
  app.post('/v1/monitoring/run', async (request, reply) => {
    const id = guard(request, 'POST /v1/monitoring/run');
    const { alias } = parseMessage(runSchema, request.body, 'monitoring');
    return reply.status(202).send(monitoring.measure(alias, id));
  });
  app.get('/v1/monitoring', async (request) => {
    guard(request, 'GET /v1/monitoring');
    return { models: monitoring.list() };
  });
  app.get('/v1/monitoring/:model', async (request) => {
    guard(request, 'GET /v1/monitoring/:model');
    const { model } = parseMessage(modelParam, request.params, 'path');
    const view = monitoring.describe(model);
    if (!view)
      throw new EntenteError('NOT_FOUND', `model: ${model.slice(0, 12)}… was never monitored`, {
        field: 'model',
      });
    return view;
  });
}
