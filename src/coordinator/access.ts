/**
 * Least privilege (issue 6): every coordinator endpoint declares the roles that may call it. The
 * caller's identity is the common name of its verified, unrevoked client certificate; its roles come
 * from the policy in force (before one is adopted: from the consortium file's roster). A caller with
 * none of the declared roles gets FORBIDDEN before the endpoint does anything; a certificate that
 * names no member gets UNKNOWN_PARTICIPANT. test/e2e/role-matrix.test.ts calls every endpoint with
 * every role and checks this table from the outside.
 */
import type { MemberRole } from '../governance/index.ts';

const operator: MemberRole = 'coordinator-operator';
const everyone: readonly MemberRole[] = [
  'coordinator-operator',
  'institution',
  'data-steward',
  'auditor',
  'observer',
];
/** Members who read the audit log (observers see summaries only). */
const logReaders: readonly MemberRole[] = ['coordinator-operator', 'institution', 'data-steward', 'auditor'];
/** Members who take part in decisions (auditors sign when a quorum names them). */
const signers: readonly MemberRole[] = ['coordinator-operator', 'institution', 'data-steward', 'auditor'];

export const routeAccess = {
  'POST /v1/participants/register': ['institution'],
  'POST /v1/heartbeat': ['institution'],
  'GET /v1/tasks/next': ['institution'],
  'PUT /v1/blobs/:sha256': ['institution'],
  'GET /v1/blobs/:sha256': ['institution'],
  'POST /v1/tasks/:taskId/result': ['institution'],
  'POST /v1/runs': [operator],
  'POST /v1/runs/plan': [operator, 'data-steward'],
  'POST /v1/runs/:runId/cancel': [operator],
  'GET /v1/runs': [operator, 'data-steward'],
  'GET /v1/runs/:runId': [operator, 'data-steward'],
  'GET /v1/runs/:runId/model': [operator, 'institution', 'data-steward'],
  'POST /v1/evaluations': [operator],
  'GET /v1/evaluations': [operator, 'institution', 'data-steward', 'auditor'],
  'GET /v1/evaluations/:plan': [operator, 'institution', 'data-steward', 'auditor'],
  'GET /v1/status': [operator],
  'GET /v1/summary': everyone,
  'GET /v1/log/checkpoint': logReaders,
  'GET /v1/log/vkey': logReaders,
  'GET /v1/log/checkpoints': logReaders,
  'GET /v1/log/entries': logReaders,
  'GET /v1/log/proof/inclusion': logReaders,
  'GET /v1/log/proof/consistency': logReaders,
  'GET /v1/log/provenance': logReaders,
  'POST /v1/log/cosignatures': ['institution'],
  'POST /v1/enrollment/tokens': [operator],
  'POST /v1/certificates/renew': everyone,
  'POST /v1/certificates/revoke': [operator],
  'GET /v1/certificates/revoked': everyone,
  'POST /v1/proposals': [operator, 'institution', 'data-steward'],
  'GET /v1/proposals': signers,
  'GET /v1/proposals/:id': signers,
  'POST /v1/proposals/:id/signatures': signers,
  'POST /v1/incidents': everyone,
  'GET /v1/incidents': logReaders,
  'POST /v1/incidents/resume': [operator],
  // A drill pauses new rounds like an incident: anyone who may raise one may rehearse the playbook.
  'POST /v1/incidents/drills': everyone,
  'GET /v1/incidents/drills': logReaders,
  'GET /v1/policy': logReaders,
  'GET /v1/report/governance': [operator, 'data-steward', 'auditor'],
  // The model registry is a view of the audit log: its readers.
  'GET /v1/registry/models': logReaders,
  'GET /v1/registry/models/:ref': logReaders,
  'GET /v1/registry/aliases': logReaders,
  // Staged rollouts: an operator starts an approved plan; a stage site reports its circuit breaker.
  'POST /v1/rollouts': [operator],
  'GET /v1/rollouts': logReaders,
  'GET /v1/rollouts/:rollout': logReaders,
  'POST /v1/rollouts/:rollout/circuit-breaker': ['institution'],
  // Drift monitoring: the operator measures; the log's readers read the reports (also logged).
  'POST /v1/monitoring/run': [operator],
  'GET /v1/monitoring': logReaders,
  'GET /v1/monitoring/:model': logReaders,
} as const satisfies Record<string, readonly MemberRole[]>;

export type RouteName = keyof typeof routeAccess;

/** Paths served without a client certificate: enrollment (the caller has none yet). */
export const publicPaths = ['/v1/enroll/ca', '/v1/enroll'] as const;
