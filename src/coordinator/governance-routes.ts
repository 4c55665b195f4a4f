/**
 * The coordinator's governance endpoints (issue 6): enrollment (public: the caller has no certificate
 * yet, it proves itself with a one-time token and CSRs), tokens, renewal, revocation, proposals and their
 * signatures, incidents, the policy in force, dry runs, released models, summaries for observers and
 * the governance report's data. Each endpoint is guarded by routeAccess (access.ts).
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { type GovernanceReportData, memberIdSchema } from '../governance/index.ts';
import { parseMessage } from '../protocol/index.ts';
import type { BlobStore, SqliteStore, Workspace } from '../storage/index.ts';
import type { RouteName } from './access.ts';
import type { AuditLog } from './audit-log.ts';
import { mayReadFinalModel } from './blob-access.ts';
import type { Governance } from './governance.ts';
import type { IncidentDrills } from './incident-drills.ts';
import { RunPlanner } from './run-plan.ts';
import type { RunEngine } from './run-engine.ts';

export interface GovernanceRouteDeps {
  readonly guard: (request: FastifyRequest, route: RouteName) => string;
  readonly governance: Governance;
  readonly engine: RunEngine;
  readonly store: SqliteStore;
  readonly blobs: BlobStore;
  readonly audit: AuditLog;
  readonly ws: Workspace;
  readonly institutions: () => string[];
  readonly available: () => string[];
  readonly notify: (participant: string) => void;
  readonly drills: IncidentDrills;
}

const pem = z.string().min(1).max(16_384);
const enrollBody = z.strictObject({
  token: z.string().min(1).max(1024),
  tlsCsr: pem,
  identityCsr: pem,
  /** Re-enrollment with a new identity key: the rotation statement signed by the key pinned until now. */
  rotationSignature: z
    .string()
    .regex(/^[A-Za-z0-9+/]{86}==$/, 'must be a base64 Ed25519 signature')
    .optional(),
});
const renewBody = z.strictObject({ tlsCsr: pem, identityCsr: pem });
const tokenBody = z.strictObject({
  member: memberIdSchema,
  ttlMinutes: z.number().int().min(1).max(10_080).default(60),
});
const revokeBody = z.strictObject({
  member: memberIdSchema,
  serial: z
    .string()
    .regex(/^[0-9a-f]{1,64}$/)
    .optional(),
  reason: z.string().min(1).max(500),
});
const proposalBody = z.strictObject({ kind: z.string().max(64), subject: z.unknown() });
const signatureBody = z.strictObject({ signature: z.string().max(200) });
const idParam = z.strictObject({ id: z.string().regex(/^[0-9a-f]{64}$/, 'must be a proposal id') });
const incidentBody = z.strictObject({ reason: z.string().max(2000) });
const drillBody = z.strictObject({ alias: z.string().max(64).optional() });
const planBody = z.strictObject({
  config: z.unknown(),
  waitMs: z.number().int().min(0).max(120_000).default(15_000),
});
const runParam = z.strictObject({ runId: z.string().min(1).max(64) });

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function registerGovernanceRoutes(app: FastifyInstance, deps: GovernanceRouteDeps): RunPlanner {
  const { guard, governance, store, ws } = deps;
  const planner = new RunPlanner({
    store,
    now: () => Date.now(),
    policy: () => governance.policy,
    institutions: deps.institutions,
    available: deps.available,
    notify: deps.notify,
    schemaDigestOf: (participant) => store.getParticipantSchemaDigest(participant),
  });

  // ---- Enrollment: public paths (no client certificate yet) ----
  app.get('/v1/enroll/ca', async (_request, reply) =>
    reply.type('text/plain; charset=utf-8').send(ws.certificateAuthority().certPem),
  );
  app.post('/v1/enroll', async (request) => {
    const body = parseMessage(enrollBody, request.body, 'enroll');
    return governance.enrollment.enroll(body);
  });

  app.post('/v1/enrollment/tokens', async (request) => {
    guard(request, 'POST /v1/enrollment/tokens');
    const body = parseMessage(tokenBody, request.body, 'token');
    return { member: body.member, ...governance.enrollment.createToken(body.member, body.ttlMinutes) };
  });
  app.post('/v1/certificates/renew', async (request) => {
    const id = guard(request, 'POST /v1/certificates/renew');
    return governance.enrollment.renew(id, parseMessage(renewBody, request.body, 'renew'));
  });
  app.post('/v1/certificates/revoke', async (request) => {
    const id = guard(request, 'POST /v1/certificates/revoke');
    const body = parseMessage(revokeBody, request.body, 'revoke');
    return { revoked: governance.enrollment.revoke(id, body, body.reason) };
  });
  app.get('/v1/certificates/revoked', async (request) => {
    guard(request, 'GET /v1/certificates/revoked');
    return { revoked: governance.enrollment.revocationList() };
  });

  // ---- Proposals ----
  app.post('/v1/proposals', async (request, reply) => {
    const id = guard(request, 'POST /v1/proposals');
    const body = parseMessage(proposalBody, request.body, 'proposal');
    return reply.status(201).send(governance.propose(id, body.kind, body.subject));
  });
  app.get('/v1/proposals', async (request) => {
    guard(request, 'GET /v1/proposals');
    return { proposals: governance.listProposals() };
  });
  app.get('/v1/proposals/:id', async (request) => {
    guard(request, 'GET /v1/proposals/:id');
    const { id } = parseMessage(idParam, request.params, 'path');
    governance.expireDue();
    return governance.describeProposal(id);
  });
  app.post('/v1/proposals/:id/signatures', async (request) => {
    const signer = guard(request, 'POST /v1/proposals/:id/signatures');
    const { id } = parseMessage(idParam, request.params, 'path');
    const body = parseMessage(signatureBody, request.body, 'signature');
    return governance.sign(signer, id, body.signature);
  });
  app.get('/v1/policy', async (request) => {
    guard(request, 'GET /v1/policy');
    const policy = governance.policy;
    return {
      policy: policy ?? null,
      versions: governance.records().policies.map((p) => ({
        version: p.version,
        sha256: p.sha256,
        adoptedAt: iso(p.adopted_at),
        proposal: p.proposal,
      })),
    };
  });

  // ---- Incidents ----
  app.post('/v1/incidents', async (request, reply) => {
    const id = guard(request, 'POST /v1/incidents');
    const body = parseMessage(incidentBody, request.body, 'incident');
    return reply.status(201).send(governance.raiseIncident(id, body.reason));
  });
  app.get('/v1/incidents', async (request) => {
    guard(request, 'GET /v1/incidents');
    return { paused: governance.isPaused(), incidents: governance.listIncidents() };
  });
  app.post('/v1/incidents/resume', async (request) => {
    const id = guard(request, 'POST /v1/incidents/resume');
    const closed = governance.resumeWithoutPolicy(id);
    deps.engine.tick();
    return { resumed: closed };
  });
  app.post('/v1/incidents/drills', async (request, reply) => {
    const id = guard(request, 'POST /v1/incidents/drills');
    const body = parseMessage(drillBody, request.body ?? {}, 'drill');
    return reply.status(201).send({ drill: deps.drills.start(id, body.alias) });
  });
  app.get('/v1/incidents/drills', async (request) => {
    guard(request, 'GET /v1/incidents/drills');
    return { paused: governance.isPaused(), drills: deps.drills.list() };
  });

  // ---- Dry run, released models, summaries ----
  app.post('/v1/runs/plan', async (request) => {
    guard(request, 'POST /v1/runs/plan');
    const body = parseMessage(planBody, request.body, 'plan');
    return planner.plan(body.config, body.waitMs);
  });
  app.get('/v1/runs/:runId/model', async (request, reply) => {
    const id = guard(request, 'GET /v1/runs/:runId/model');
    const { runId } = parseMessage(runParam, request.params, 'path');
    const ref = deps.engine.finalModelRef(runId);
    if (!ref)
      throw new EntenteError('NOT_FOUND', `run "${runId}" has no final model yet`, { field: 'runId' });
    const reader = { id, roles: governance.rolesOf(id) };
    const context = {
      governed: governance.policy !== undefined,
      releasedModelOf: (run: string) => governance.releasedModel(run),
    };
    if (!mayReadFinalModel(reader, runId, ref.sha256, context)) {
      if (governance.policy)
        throw new EntenteError(
          'FORBIDDEN',
          `the model of run "${runId}" is not released: a release-model proposal needs policy.approvals.releaseModel`,
          { field: 'runId' },
        );
      throw new EntenteError('FORBIDDEN', 'without a policy only an operator may fetch a final model', {
        field: 'runId',
      });
    }
    // Every chunk is hashed before the first byte is sent (a damaged one is refused, STORE_CORRUPT),
    // then streamed chunk by chunk, each checked again as it is read: a large model is never held in
    // memory whole, and bytes that do not match their address never leave.
    const chunks = ref.chunks.map((c) => c.sha256);
    for (const sha of chunks) deps.blobs.verify(sha);
    const body = Readable.from(
      (function* () {
        for (const sha of chunks) yield deps.blobs.read(sha);
      })(),
    );
    return reply
      .type('application/octet-stream')
      .header('content-length', ref.bytes)
      .header('x-model-sha256', ref.sha256)
      .send(body);
  });
  app.get('/v1/summary', async (request) => {
    guard(request, 'GET /v1/summary');
    return {
      consortium: ws.consortium.consortium,
      paused: governance.isPaused(),
      policyVersion: governance.policy?.version ?? null,
      institutions: deps.institutions().length,
      runs: store.listRuns().map((r) => {
        const config = JSON.parse(r.config_json) as { rounds: number };
        const state = JSON.parse(r.state_json) as { round?: number };
        return { id: r.id, status: r.status, round: state.round ?? 0, totalRounds: config.rounds };
      }),
    };
  });
  app.get('/v1/report/governance', async (request) => {
    guard(request, 'GET /v1/report/governance');
    return collectReport(deps);
  });
  return planner;
}

/** Everything the governance report shows, from the coordinator's records (no secrets). */
function collectReport(deps: GovernanceRouteDeps): GovernanceReportData {
  const { governance, store, audit, ws } = deps;
  const gov = governance.records();
  const proposals = governance.listProposals();
  const signersOf = (id: string | null): string[] =>
    proposals.find((p) => p.id === id)?.signers.slice() ?? [];
  const ids = new Set<string>([
    ...ws.consortium.institutions,
    ...ws.consortium.operators,
    ...Object.keys(ws.consortium.members ?? {}),
    ...Object.keys(governance.policy?.members ?? {}),
  ]);
  // The newest checkpoint that witnesses have cosigned (else the newest): what the log head stands on.
  const all = audit.checkpoints();
  const cp = [...all].reverse().find((c) => audit.cosignersOf(c.note).length > 0) ?? all.at(-1);
  const runs = store.listRuns();
  return {
    consortium: ws.consortium.consortium,
    generatedAt: new Date().toISOString(),
    log: cp
      ? {
          size: cp.size,
          rootHash: Buffer.from(audit.root(cp.size)).toString('base64'),
          checkpointCosigners: audit.cosignersOf(cp.note),
        }
      : null,
    members: [...ids].sort().map((id) => {
      const certs = gov.certificates.filter((c) => c.member === id && c.kind === 'tls');
      const live = certs.filter((c) => c.revoked_at === null);
      const member = gov.members.find((m) => m.id === id);
      return {
        id,
        roles: [...governance.rolesOf(id)],
        enrolledAt: iso(member?.enrolled_at ?? null),
        certificateExpires: iso(live.length > 0 ? Math.max(...live.map((c) => c.not_after)) : null),
        revoked: certs.length > 0 && live.length === 0,
      };
    }),
    policies: gov.policies.map((p) => ({
      version: p.version,
      sha256: p.sha256,
      adoptedAt: iso(p.adopted_at)!,
      approvedBy: signersOf(p.proposal),
      logIndex: p.log_index,
    })),
    proposals: proposals.map((p) => ({
      id: p.id,
      kind: p.proposal.kind,
      subjectSha256: p.proposal.subjectSha256,
      createdAt: p.proposal.createdAt,
      status: p.status as 'open' | 'approved' | 'rejected' | 'expired',
      signers: [...p.signers],
      decidedAt: iso(p.decidedAt),
      missing: p.missing,
    })),
    runs: runs.map((r) => {
      const config = JSON.parse(r.config_json) as { rounds: number };
      const approval = proposals.find(
        (p) =>
          p.proposal.kind === 'start-run' &&
          p.status === 'approved' &&
          (p.subject as { id?: unknown } | null)?.id === r.id,
      );
      return {
        id: r.id,
        status: r.status,
        rounds: config.rounds,
        createdAt: iso(r.created_at)!,
        finishedAt: iso(r.finished_at),
        approvedBy: approval ? [...approval.signers] : [],
      };
    }),
    privacy: runs.flatMap((r) => {
      const last = new Map<string, { epsilon: number | null; delta: number }>();
      for (const row of store.listPrivacyReports(r.id)) {
        const report = JSON.parse(row.report_json) as { epsilonRun: number | null; delta: number };
        last.set(row.participant, { epsilon: report.epsilonRun, delta: report.delta });
      }
      if (last.size === 0) {
        // A run without differential privacy: ε is unbounded for every institution that took part.
        const config = JSON.parse(r.config_json) as { train?: { dp?: unknown }; clientDp?: unknown };
        if (config.train?.dp === undefined && config.clientDp === undefined) {
          const took = new Set(
            store.listRounds(r.id).flatMap((x) => JSON.parse(x.contributors_json ?? '[]') as string[]),
          );
          return [...took].sort().map((institution) => ({ institution, run: r.id, epsilon: null, delta: 0 }));
        }
      }
      return [...last].map(([institution, v]) => ({ institution, run: r.id, ...v }));
    }),
    incidents: governance.listIncidents().map((i) => ({
      id: i.id,
      raisedBy: i.raisedBy,
      reason: i.reason,
      raisedAt: i.raisedAt,
      resolvedAt: i.resolvedAt,
      resolvedBy: i.resolvedBy,
    })),
  };
}
