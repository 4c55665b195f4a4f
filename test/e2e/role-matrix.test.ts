/**
 * Least privilege (issue 6), table-driven. Proves, over real mutual TLS against a governed consortium
 * with an adopted policy, that every coordinator endpoint admits exactly the roles declared for it:
 * the operator, an institution, a data steward, an auditor and an observer each reach the endpoints
 * their role allows (the answer, if an error, is about the request), and get FORBIDDEN from the role
 * check elsewhere; a certificate from the consortium CA naming no member gets UNKNOWN_PARTICIPANT; a
 * caller without a certificate gets UNAUTHENTICATED everywhere except on the public enrollment paths.
 * The table below is written independently of src/coordinator/access.ts and checked against it (and
 * against the routes the server source registers), so neither can drift. Every call is harmless (bad
 * bodies, unknown ids), and the last case checks that the matrix changed no governance state. A small
 * second suite checks that on a LOCAL workspace (no policy) roles come from consortium.json.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { publicPaths, routeAccess } from '../../src/coordinator/access.ts';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/index.ts';
import { EntenteError } from '../../src/core/index.ts';
import { issueCertificate } from '../../src/crypto/index.ts';
import { type MtlsClient, createMtlsClient } from '../../src/transport/index.ts';
import { createTestWorkspace } from './fixtures.ts';
import { type GovernedConsortium, OPERATOR, startGovernedConsortium } from './governance-fixtures.ts';

type Role = 'operator' | 'institution' | 'data-steward' | 'auditor' | 'observer';
type Caller = Role | 'non-member' | 'no-certificate';
const CALLERS: readonly Caller[] = [
  'operator',
  'institution',
  'data-steward',
  'auditor',
  'observer',
  'non-member',
  'no-certificate',
];
/** The member that plays each role in the governed consortium. */
const MEMBER_OF: Record<Role, string> = {
  operator: OPERATOR,
  institution: 'alpha',
  'data-steward': 'stew',
  auditor: 'aud',
  observer: 'obs',
};

const ALL: readonly Role[] = ['operator', 'institution', 'data-steward', 'auditor', 'observer'];
const LOG_READERS: readonly Role[] = ['operator', 'institution', 'data-steward', 'auditor'];
const unknownSha = createHash('sha256').update('no such blob').digest('hex');
const unknownProposal = '0'.repeat(64);

/**
 * What an allowed caller gets: 'OK' or an error code about the request (with, for a FORBIDDEN that is
 * not about the caller's role, a pattern its message must match).
 */
interface Outcome {
  code: string;
  message?: RegExp;
}
interface Route {
  name: string;
  allowed: readonly Role[];
  call: (c: MtlsClient) => Promise<unknown>;
  expect: Outcome;
}

const ok: Outcome = { code: 'OK' };
const invalid: Outcome = { code: 'INVALID_MESSAGE' };
const notFound: Outcome = { code: 'NOT_FOUND' };

/** Every guarded route of the coordinator, who may call it, and a harmless call. */
const ROUTES: readonly Route[] = [
  {
    name: 'POST /v1/participants/register',
    allowed: ['institution'],
    call: (c) => c.postJson('/v1/participants/register', {}),
    expect: invalid,
  },
  {
    name: 'POST /v1/heartbeat',
    allowed: ['institution'],
    call: (c) => c.postJson('/v1/heartbeat', {}),
    expect: ok,
  },
  {
    name: 'GET /v1/tasks/next',
    allowed: ['institution'],
    call: (c) => c.getJson('/v1/tasks/next?waitMs=0'),
    expect: ok,
  },
  {
    name: 'PUT /v1/blobs/:sha256',
    allowed: ['institution'],
    // Not a sha256: refused by the path check after the role check, nothing is stored.
    call: (c) => c.putBytes('/v1/blobs/not-a-digest', new TextEncoder().encode('x')),
    expect: invalid,
  },
  {
    name: 'GET /v1/blobs/:sha256',
    allowed: ['institution'],
    call: (c) => c.getBytes(`/v1/blobs/${unknownSha}`, 1024),
    expect: notFound,
  },
  {
    name: 'POST /v1/tasks/:taskId/result',
    allowed: ['institution'],
    call: (c) => c.postJson('/v1/tasks/none/result', { kind: 'x' }),
    expect: invalid,
  },
  {
    name: 'POST /v1/runs',
    allowed: ['operator'],
    // Under a policy this proposes a start-run; an empty config is refused before anything is stored.
    call: (c) => c.postJson('/v1/runs', {}),
    expect: { code: 'INVALID_CONFIG' },
  },
  {
    name: 'POST /v1/runs/plan',
    allowed: ['operator', 'data-steward'],
    call: (c) => c.postJson('/v1/runs/plan', { bogus: 1 }),
    expect: invalid,
  },
  {
    name: 'POST /v1/runs/:runId/cancel',
    allowed: ['operator'],
    // Under a policy this proposes a cancel-run; a run that does not exist is refused first.
    call: (c) => c.postJson('/v1/runs/none/cancel', {}),
    expect: notFound,
  },
  {
    name: 'GET /v1/runs',
    allowed: ['operator', 'data-steward'],
    call: (c) => c.getJson('/v1/runs'),
    expect: ok,
  },
  {
    name: 'GET /v1/runs/:runId',
    allowed: ['operator', 'data-steward'],
    call: (c) => c.getJson('/v1/runs/none'),
    expect: notFound,
  },
  {
    name: 'GET /v1/runs/:runId/model',
    allowed: ['operator', 'institution', 'data-steward'],
    call: (c) => c.getBytes('/v1/runs/none/model', 1024),
    expect: notFound,
  },
  {
    name: 'POST /v1/evaluations',
    allowed: ['operator'],
    // No approved plan has this digest: refused after the role check, nothing is started.
    call: (c) => c.postJson('/v1/evaluations', { plan: unknownProposal }),
    expect: notFound,
  },
  {
    name: 'GET /v1/evaluations',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/evaluations'),
    expect: ok,
  },
  {
    name: 'GET /v1/evaluations/:plan',
    allowed: LOG_READERS,
    call: (c) => c.getJson(`/v1/evaluations/${unknownProposal}`),
    expect: notFound,
  },
  { name: 'GET /v1/status', allowed: ['operator'], call: (c) => c.getJson('/v1/status'), expect: ok },
  { name: 'GET /v1/summary', allowed: ALL, call: (c) => c.getJson('/v1/summary'), expect: ok },
  {
    name: 'GET /v1/log/checkpoint',
    allowed: LOG_READERS,
    call: (c) => c.getBytes('/v1/log/checkpoint', 65536),
    expect: ok,
  },
  {
    name: 'GET /v1/log/vkey',
    allowed: LOG_READERS,
    call: (c) => c.getBytes('/v1/log/vkey', 65536),
    expect: ok,
  },
  {
    name: 'GET /v1/log/checkpoints',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/log/checkpoints'),
    expect: ok,
  },
  {
    name: 'GET /v1/log/entries',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/log/entries?start=0&end=1'),
    expect: ok,
  },
  {
    name: 'GET /v1/log/proof/inclusion',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/log/proof/inclusion?index=0&size=1'),
    expect: ok,
  },
  {
    name: 'GET /v1/log/proof/consistency',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/log/proof/consistency?from=1&to=1'),
    expect: ok,
  },
  {
    name: 'GET /v1/log/provenance',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/log/provenance'),
    expect: ok,
  },
  {
    name: 'GET /v1/registry/models',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/registry/models'),
    expect: ok,
  },
  {
    name: 'GET /v1/registry/models/:ref',
    allowed: LOG_READERS,
    call: (c) => c.getJson(`/v1/registry/models/${unknownSha}`),
    expect: notFound,
  },
  {
    name: 'GET /v1/registry/aliases',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/registry/aliases'),
    expect: ok,
  },
  {
    name: 'POST /v1/monitoring/run',
    allowed: ['operator'],
    call: (c) => c.postJson('/v1/monitoring/run', { alias: 'production' }),
    expect: notFound,
  },
  {
    name: 'GET /v1/monitoring',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/monitoring'),
    expect: ok,
  },
  {
    name: 'GET /v1/monitoring/:model',
    allowed: LOG_READERS,
    call: (c) => c.getJson(`/v1/monitoring/${unknownSha}`),
    expect: notFound,
  },
  {
    name: 'POST /v1/rollouts',
    allowed: ['operator'],
    call: (c) => c.postJson('/v1/rollouts', { rollout: unknownSha }),
    expect: notFound,
  },
  {
    name: 'GET /v1/rollouts',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/rollouts'),
    expect: ok,
  },
  {
    name: 'GET /v1/rollouts/:rollout',
    allowed: LOG_READERS,
    call: (c) => c.getJson(`/v1/rollouts/${unknownSha}`),
    expect: notFound,
  },
  {
    name: 'POST /v1/rollouts/:rollout/circuit-breaker',
    allowed: ['institution'],
    call: (c) =>
      c.postJson(`/v1/rollouts/${unknownSha}/circuit-breaker`, { stage: 'canary', signature: 'x' }),
    expect: notFound,
  },
  {
    name: 'POST /v1/log/cosignatures',
    allowed: ['institution'],
    call: (c) => c.postJson('/v1/log/cosignatures', { size: -1, line: 'x' }),
    expect: invalid,
  },
  {
    name: 'POST /v1/enrollment/tokens',
    allowed: ['operator'],
    call: (c) => c.postJson('/v1/enrollment/tokens', {}),
    expect: invalid,
  },
  {
    name: 'POST /v1/certificates/renew',
    allowed: ALL,
    call: (c) => c.postJson('/v1/certificates/renew', {}),
    expect: invalid,
  },
  {
    name: 'POST /v1/certificates/revoke',
    allowed: ['operator'],
    // No member and no reason: refused before anything could be revoked.
    call: (c) => c.postJson('/v1/certificates/revoke', {}),
    expect: invalid,
  },
  {
    name: 'GET /v1/certificates/revoked',
    allowed: ALL,
    call: (c) => c.getJson('/v1/certificates/revoked'),
    expect: ok,
  },
  {
    name: 'POST /v1/proposals',
    allowed: ['operator', 'institution', 'data-steward'],
    call: (c) => c.postJson('/v1/proposals', {}),
    expect: invalid,
  },
  {
    name: 'GET /v1/proposals',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/proposals'),
    expect: ok,
  },
  {
    name: 'GET /v1/proposals/:id',
    allowed: LOG_READERS,
    call: (c) => c.getJson(`/v1/proposals/${unknownProposal}`),
    expect: notFound,
  },
  {
    name: 'POST /v1/proposals/:id/signatures',
    allowed: LOG_READERS,
    call: (c) => c.postJson(`/v1/proposals/${unknownProposal}/signatures`, { signature: 'AAAA' }),
    expect: notFound,
  },
  {
    name: 'POST /v1/incidents',
    allowed: ALL,
    // A valid reason would pause the consortium: no reason at all is refused first.
    call: (c) => c.postJson('/v1/incidents', {}),
    expect: invalid,
  },
  {
    name: 'GET /v1/incidents',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/incidents'),
    expect: ok,
  },
  {
    name: 'POST /v1/incidents/resume',
    allowed: ['operator'],
    // Under a policy resuming needs a resume-runs proposal: refused for the request, not the role.
    call: (c) => c.postJson('/v1/incidents/resume', {}),
    expect: { code: 'FORBIDDEN', message: /resume-runs proposal/ },
  },
  {
    name: 'POST /v1/incidents/drills',
    allowed: ALL,
    // A drill would pause the consortium: a bad alias name is refused first.
    call: (c) => c.postJson('/v1/incidents/drills', { alias: 'Not An Alias!' }),
    expect: { code: 'INVALID_ARGUMENT', message: /^alias: / },
  },
  {
    name: 'GET /v1/incidents/drills',
    allowed: LOG_READERS,
    call: (c) => c.getJson('/v1/incidents/drills'),
    expect: ok,
  },
  { name: 'GET /v1/policy', allowed: LOG_READERS, call: (c) => c.getJson('/v1/policy'), expect: ok },
  {
    name: 'GET /v1/report/governance',
    allowed: ['operator', 'data-steward', 'auditor'],
    call: (c) => c.getJson('/v1/report/governance'),
    expect: ok,
  },
];

/** The public enrollment paths: everyone reaches them, with or without a certificate. */
const PUBLIC_ROUTES: readonly { name: string; path: string; call: (c: MtlsClient) => Promise<unknown> }[] = [
  {
    name: 'GET /v1/enroll/ca',
    path: '/v1/enroll/ca',
    call: async (c) => {
      const pem = (await c.getBytes('/v1/enroll/ca', 65536)).toString('utf8');
      assert.match(pem, /-----BEGIN CERTIFICATE-----/);
    },
  },
  {
    name: 'POST /v1/enroll',
    path: '/v1/enroll',
    call: (c) => c.postJson('/v1/enroll', { token: 'x' }),
  },
];

const ROLE_NAME: Record<Role, string> = {
  operator: 'coordinator-operator',
  institution: 'institution',
  'data-steward': 'data-steward',
  auditor: 'auditor',
  observer: 'observer',
};

/** Calls and returns the outcome: 'OK' or the error (which must be an EntenteError). */
async function callRoute(
  call: (c: MtlsClient) => Promise<unknown>,
  client: MtlsClient,
): Promise<{ code: string; message: string }> {
  try {
    await call(client);
    return { code: 'OK', message: '' };
  } catch (err) {
    assert.ok(err instanceof EntenteError, String(err));
    return { code: err.code, message: err.message };
  }
}

describe('role matrix: the table', () => {
  it('names exactly the routes of access.ts, with the same roles', () => {
    assert.deepEqual(ROUTES.map((r) => r.name).sort(), Object.keys(routeAccess).sort());
    const table = routeAccess as Record<string, readonly string[]>;
    for (const route of ROUTES) {
      assert.deepEqual(
        route.allowed.map((r) => ROLE_NAME[r]).sort(),
        [...table[route.name]!].sort(),
        route.name,
      );
    }
    assert.deepEqual(PUBLIC_ROUTES.map((r) => r.path).sort(), [...publicPaths].sort());
  });

  it('covers every route the coordinator source registers', () => {
    const registered = new Set<string>();
    const dir = new URL('../../src/coordinator/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f === 'coordinator-server.ts' || f.endsWith('-routes.ts'));
    assert.ok(files.length >= 4, `route files: ${files.join(', ')}`);
    for (const file of files) {
      const text = readFileSync(new URL(`../../src/coordinator/${file}`, import.meta.url), 'utf8');
      for (const m of text.matchAll(/\bapp\.(get|post|put|delete|patch)\(\s*'([^']+)'/g))
        registered.add(`${m[1]!.toUpperCase()} ${m[2]!}`);
    }
    assert.ok(registered.size > 30, `found only ${registered.size} routes`);
    const declared = [...ROUTES.map((r) => r.name), ...PUBLIC_ROUTES.map((r) => r.name)];
    assert.deepEqual([...registered].sort(), declared.sort());
  });
});

describe('role matrix: governed consortium', () => {
  let gov: GovernedConsortium | undefined;
  const clients = new Map<Caller, MtlsClient>();
  const own: MtlsClient[] = [];
  let before_: unknown;

  /** The governance state the matrix must leave alone. */
  const snapshot = async (): Promise<unknown> => {
    const op = gov!.operator;
    const proposals = (
      await op.getJson<{ proposals: { id: string; status: string; signers: string[] }[] }>('/v1/proposals')
    ).body!.proposals.map((p) => [p.id, p.status, p.signers]);
    const incidents = (await op.getJson<{ paused: boolean; incidents: unknown[] }>('/v1/incidents')).body!;
    const revoked = (await op.getJson<{ revoked: unknown[] }>('/v1/certificates/revoked')).body!.revoked;
    const policy = (await op.getJson<{ versions: unknown[] }>('/v1/policy')).body!.versions;
    const runs = (await op.getJson<{ runs: unknown[] }>('/v1/runs')).body!.runs;
    return { proposals, incidents, revoked, policy, runs };
  };

  before(async () => {
    gov = await startGovernedConsortium({ auditors: ['aud'], observers: ['obs'], stewards: ['stew'] });
    for (const role of ALL) clients.set(role, gov.clientOf(MEMBER_OF[role]));
    const ca = gov.ws.certificateAuthority();
    const stranger = await issueCertificate(ca, {
      commonName: 'mallory',
      role: 'client',
      notBefore: new Date(Date.now() - 60_000),
      validityDays: 1,
    });
    const nonMember = createMtlsClient({
      baseUrl: gov.url,
      certPem: stranger.certPem,
      keyPem: stranger.keyPem,
      caPem: ca.certPem,
    });
    const anonymous = createMtlsClient({ baseUrl: gov.url, caPem: ca.certPem });
    own.push(nonMember, anonymous);
    clients.set('non-member', nonMember);
    clients.set('no-certificate', anonymous);
    before_ = await snapshot();
  });
  after(async () => {
    for (const c of own) await c.close();
    await gov?.close();
  });

  it('the policy in force gives each caller the role it plays here', async () => {
    const { policy } = (
      await gov!.operator.getJson<{ policy: { members: Record<string, { roles: string[] }> } }>('/v1/policy')
    ).body!;
    for (const role of ALL) assert.deepEqual(policy.members[MEMBER_OF[role]]?.roles, [ROLE_NAME[role]]);
    assert.equal(policy.members.mallory, undefined);
  });

  for (const route of ROUTES) {
    for (const caller of CALLERS) {
      const allowed = (route.allowed as readonly string[]).includes(caller);
      it(`${route.name} as ${caller}: ${allowed ? 'allowed' : 'denied'}`, async () => {
        const got = await callRoute(route.call, clients.get(caller)!);
        if (allowed) {
          // Past the role check: the answer is about the request itself, never about who asked.
          assert.equal(got.code, route.expect.code, `${route.name} as ${caller}: ${got.message}`);
          if (route.expect.message) assert.match(got.message, route.expect.message);
          assert.doesNotMatch(got.message, /is for the roles/);
        } else if (caller === 'no-certificate') {
          assert.equal(got.code, 'UNAUTHENTICATED', got.message);
        } else if (caller === 'non-member') {
          assert.equal(got.code, 'UNKNOWN_PARTICIPANT', got.message);
        } else {
          assert.equal(got.code, 'FORBIDDEN', got.message);
          assert.ok(got.message.includes(`${route.name} is for the roles`), got.message);
        }
      });
    }
  }

  for (const route of PUBLIC_ROUTES) {
    for (const caller of CALLERS) {
      it(`${route.name} (public) as ${caller}: reachable`, async () => {
        const got = await callRoute(route.call, clients.get(caller)!);
        if (route.name === 'GET /v1/enroll/ca') assert.equal(got.code, 'OK', got.message);
        // A bad enrollment body is refused as a bad request, never for the caller's identity.
        else
          assert.ok(
            ['INVALID_MESSAGE', 'INVALID_ARGUMENT'].includes(got.code),
            `${got.code}: ${got.message}`,
          );
      });
    }
  }

  it('the matrix changed no governance state', async () => {
    assert.deepEqual(await snapshot(), before_);
    const incidents = (before_ as { incidents: { paused: boolean; incidents: unknown[] } }).incidents;
    assert.equal(incidents.paused, false);
    assert.equal(incidents.incidents.length, 0);
  });
});

describe('role matrix: local workspace (roles from consortium.json)', () => {
  let dir = '';
  let coordinator: RunningCoordinator | undefined;
  let institution: MtlsClient | undefined;
  let operator: MtlsClient | undefined;
  before(async () => {
    const setup = await createTestWorkspace(['alpha', 'beta', 'gamma'], 'entente-roles-');
    dir = setup.dir;
    coordinator = await startCoordinator({ workspaceDir: dir, port: 0, log: pino({ level: 'silent' }) });
    institution = createMtlsClient({ baseUrl: coordinator.url, ...setup.ws.institutionIdentity('alpha') });
    operator = createMtlsClient({ baseUrl: coordinator.url, ...setup.ws.operatorIdentity() });
  });
  after(async () => {
    await institution?.close();
    await operator?.close();
    await coordinator?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('no policy is in force', async () => {
    const { policy } = (await operator!.getJson<{ policy: unknown }>('/v1/policy')).body!;
    assert.equal(policy, null);
  });
  it('an institution of consortium.json may poll for tasks', async () => {
    const got = await callRoute((c) => c.getJson('/v1/tasks/next?waitMs=0'), institution!);
    assert.equal(got.code, 'OK', got.message);
  });
  it('the operator of consortium.json may read the status', async () => {
    const got = await callRoute((c) => c.getJson('/v1/status'), operator!);
    assert.equal(got.code, 'OK', got.message);
  });
  it('the operator may not poll for tasks', async () => {
    const got = await callRoute((c) => c.getJson('/v1/tasks/next?waitMs=0'), operator!);
    assert.equal(got.code, 'FORBIDDEN');
    assert.match(got.message, /GET \/v1\/tasks\/next is for the roles: institution/);
  });
  it('an institution may not read the status', async () => {
    const got = await callRoute((c) => c.getJson('/v1/status'), institution!);
    assert.equal(got.code, 'FORBIDDEN');
  });
});
