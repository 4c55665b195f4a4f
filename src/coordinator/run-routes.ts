/**
 * The run, evaluation and status endpoints of the coordinator: start or propose a run, cancel it, list
 * and describe runs, start and read evaluation jobs, and the operator's status view. Each checks the
 * caller's role first (access.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { parseMessage } from '../protocol/index.ts';
import type { SqliteStore, Workspace } from '../storage/index.ts';
import type { RouteName } from './access.ts';
import type { EvaluationJobs } from './evaluation-jobs.ts';
import type { Governance } from './governance.ts';
import type { Traffic } from './request-guard.ts';
import type { RunEngine } from './run-engine.ts';

const evaluationStartSchema = z.strictObject({
  plan: z.string().regex(/^[0-9a-f]{64}$/, 'must be a plan digest'),
});
const runParam = z.strictObject({ runId: z.string().min(1).max(64) });

export interface RunRouteDeps {
  readonly guard: (request: FastifyRequest, route: RouteName) => string;
  readonly governance: Governance;
  readonly engine: RunEngine;
  readonly evaluations: EvaluationJobs;
  readonly store: SqliteStore;
  readonly ws: Workspace;
  readonly institutions: () => string[];
  readonly available: () => string[];
  readonly traffic: Readonly<Traffic>;
  /** Long polls each member holds open now. */
  readonly openPolls: ReadonlyMap<string, number>;
}

export function registerRunRoutes(app: FastifyInstance, deps: RunRouteDeps): void {
  const { guard, governance, engine, evaluations, store, ws, institutions, available, traffic, openPolls } =
    deps;
  app.post('/v1/runs', async (request, reply) => {
    const id = guard(request, 'POST /v1/runs');
    // Under a policy, a run starts only when the start-run quorum approves it: this makes the proposal.
    if (governance.policy) {
      const view = governance.propose(id, 'start-run', request.body);
      return reply.status(202).send({ proposal: view.id, status: view.status, missing: view.missing });
    }
    // A consortium whose members enroll is governed: no run before its policy is adopted.
    if (ws.consortium.enrollment)
      throw new EntenteError(
        'CONFLICT',
        'no policy is in force yet: adopt one (entente proposal create --kind adopt-policy) before starting runs',
        {
          field: 'policy',
        },
      );
    const out = engine.createRun(request.body);
    return reply.status(201).send(out);
  });

  app.post('/v1/runs/:runId/cancel', async (request, reply) => {
    const id = guard(request, 'POST /v1/runs/:runId/cancel');
    const { runId } = request.params as { runId: string };
    // Under a policy, a run stops only when the cancel-run quorum approves it: this makes the proposal.
    if (governance.policy) {
      const view = governance.propose(id, 'cancel-run', { run: runId });
      return reply.status(202).send({ proposal: view.id, status: view.status, missing: view.missing });
    }
    return reply.status(200).send(engine.cancelRun(runId, { by: id }));
  });

  app.get('/v1/runs', async (request) => {
    guard(request, 'GET /v1/runs');
    return {
      runs: store
        .listRuns()
        .map((r) => ({ id: r.id, status: r.status, createdAt: r.created_at, finishedAt: r.finished_at })),
    };
  });

  // ---- Evaluation jobs: an approved evaluation plan evaluated under secure aggregation. ----
  app.post('/v1/evaluations', async (request, reply) => {
    const id = guard(request, 'POST /v1/evaluations');
    const { plan } = parseMessage(evaluationStartSchema, request.body, 'evaluation');
    return reply.status(201).send(evaluations.start(plan, id));
  });
  app.get('/v1/evaluations', async (request) => {
    guard(request, 'GET /v1/evaluations');
    return { evaluations: evaluations.list() };
  });
  app.get('/v1/evaluations/:plan', async (request) => {
    guard(request, 'GET /v1/evaluations/:plan');
    const { plan } = parseMessage(evaluationStartSchema, request.params, 'path');
    const view = evaluations.describe(plan);
    if (!view)
      throw new EntenteError('NOT_FOUND', `plan ${plan.slice(0, 12)}… has no evaluation job`, {
        field: 'plan',
      });
    return view;
  });

  app.get('/v1/runs/:runId', async (request) => {
    guard(request, 'GET /v1/runs/:runId');
    const { runId } = parseMessage(runParam, request.params, 'path');
    return engine.describeRun(runId);
  });

  app.get('/v1/status', async (request) => {
    guard(request, 'GET /v1/status');
    const now = Date.now();
    return {
      consortium: ws.consortium.consortium,
      paused: governance.isPaused(),
      participants: institutions().map((id) => {
        const p = store.listParticipants().find((x) => x.id === id);
        return {
          id,
          registered: p !== undefined,
          lastSeenMsAgo: p?.last_seen_at ? now - p.last_seen_at : null,
          available: available().includes(id),
        };
      }),
      runs: store.listRuns().map((r) => ({ id: r.id, status: r.status })),
      traffic,
      /** Long polls each member holds open now. */
      openPolls: Object.fromEntries(openPolls),
      events: store.listEvents(50),
    };
  });
}
