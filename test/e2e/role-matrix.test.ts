/**
 * Least privilege, table-driven: every coordinator endpoint called with every kind of caller (an
 * institution, an operator, and a certificate from the consortium CA whose name is not a member). Each
 * endpoint's allowed roles are declared here; a caller outside them gets FORBIDDEN (or
 * UNKNOWN_PARTICIPANT for a non-member) before the endpoint does anything. Auditor and observer roles
 * arrive with governance; this table will grow with them.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/index.ts';
import { EntenteError } from '../../src/core/index.ts';
import { issueCertificate } from '../../src/crypto/index.ts';
import { type MtlsClient, createMtlsClient } from '../../src/transport/index.ts';
import { createTestWorkspace } from './fixtures.ts';

type Caller = 'institution' | 'operator' | 'non-member';
const sha = createHash('sha256').update('x').digest('hex');

/** Every route of coordinator-server.ts and who may call it. */
const ROUTES: { name: string; allowed: readonly Caller[]; call: (c: MtlsClient) => Promise<unknown> }[] = [
  {
    name: 'POST /v1/participants/register',
    allowed: ['institution'],
    call: (c) =>
      c.postJson('/v1/participants/register', { protocol: 'entente/1', trainers: [], software: 't' }),
  },
  { name: 'POST /v1/heartbeat', allowed: ['institution'], call: (c) => c.postJson('/v1/heartbeat', {}) },
  { name: 'GET /v1/tasks/next', allowed: ['institution'], call: (c) => c.getJson('/v1/tasks/next?waitMs=0') },
  {
    name: 'PUT /v1/blobs/:sha256',
    allowed: ['institution'],
    call: (c) => c.putBytes(`/v1/blobs/${sha}`, new TextEncoder().encode('x')),
  },
  {
    name: 'GET /v1/blobs/:sha256',
    allowed: ['institution'],
    call: (c) => c.getBytes(`/v1/blobs/${sha}`, 1024),
  },
  {
    name: 'POST /v1/tasks/:taskId/result',
    allowed: ['institution'],
    call: (c) => c.postJson('/v1/tasks/none/result', { kind: 'x' }),
  },
  { name: 'POST /v1/runs', allowed: ['operator'], call: (c) => c.postJson('/v1/runs', {}) },
  { name: 'GET /v1/runs', allowed: ['operator'], call: (c) => c.getJson('/v1/runs') },
  { name: 'GET /v1/runs/:runId', allowed: ['operator'], call: (c) => c.getJson('/v1/runs/none') },
  { name: 'GET /v1/status', allowed: ['operator'], call: (c) => c.getJson('/v1/status') },
  {
    name: 'GET /v1/log/checkpoint',
    allowed: ['institution', 'operator'],
    call: (c) => c.getBytes('/v1/log/checkpoint', 65536),
  },
  {
    name: 'GET /v1/log/vkey',
    allowed: ['institution', 'operator'],
    call: (c) => c.getBytes('/v1/log/vkey', 65536),
  },
  {
    name: 'GET /v1/log/checkpoints',
    allowed: ['institution', 'operator'],
    call: (c) => c.getJson('/v1/log/checkpoints'),
  },
  {
    name: 'GET /v1/log/entries',
    allowed: ['institution', 'operator'],
    call: (c) => c.getJson('/v1/log/entries?start=0&end=1'),
  },
  {
    name: 'GET /v1/log/proof/inclusion',
    allowed: ['institution', 'operator'],
    call: (c) => c.getJson('/v1/log/proof/inclusion?index=0&size=1'),
  },
  {
    name: 'GET /v1/log/proof/consistency',
    allowed: ['institution', 'operator'],
    call: (c) => c.getJson('/v1/log/proof/consistency?from=0&to=1'),
  },
  {
    name: 'GET /v1/log/provenance',
    allowed: ['institution', 'operator'],
    call: (c) => c.getJson('/v1/log/provenance'),
  },
  {
    name: 'POST /v1/log/cosignatures',
    allowed: ['institution'],
    call: (c) => c.postJson('/v1/log/cosignatures', { size: 0, line: 'x' }),
  },
];

describe('role matrix', () => {
  let dir = '';
  let coordinator: RunningCoordinator | undefined;
  const clients = new Map<Caller, MtlsClient>();
  before(async () => {
    const setup = await createTestWorkspace(['alpha', 'beta', 'gamma'], 'entente-roles-');
    dir = setup.dir;
    coordinator = await startCoordinator({ workspaceDir: dir, port: 0, log: pino({ level: 'silent' }) });
    const caPem = readFileSync(join(dir, 'ca', 'ca.crt'), 'utf8');
    const stranger = await issueCertificate(
      { certPem: caPem, keyPem: readFileSync(join(dir, 'ca', 'ca.key'), 'utf8') },
      { commonName: 'mallory', role: 'client', notBefore: new Date(Date.now() - 60_000), validityDays: 1 },
    );
    const base = { baseUrl: coordinator.url };
    clients.set('institution', createMtlsClient({ ...base, ...setup.ws.institutionIdentity('alpha') }));
    clients.set('operator', createMtlsClient({ ...base, ...setup.ws.operatorIdentity() }));
    clients.set(
      'non-member',
      createMtlsClient({ ...base, certPem: stranger.certPem, keyPem: stranger.keyPem, caPem }),
    );
  });
  after(async () => {
    for (const c of clients.values()) await c.close();
    await coordinator?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const route of ROUTES) {
    for (const caller of ['institution', 'operator', 'non-member'] as const) {
      const allowed = route.allowed.includes(caller);
      it(`${route.name} as ${caller}: ${allowed ? 'allowed' : 'denied'}`, async () => {
        let code = 'OK';
        try {
          await route.call(clients.get(caller)!);
        } catch (err) {
          assert.ok(err instanceof EntenteError, String(err));
          code = err.code;
        }
        if (allowed) {
          // Past the role check: success or an error about the request itself, never about who asked.
          assert.ok(
            !['FORBIDDEN', 'UNKNOWN_PARTICIPANT', 'UNAUTHENTICATED'].includes(code),
            `${route.name} refused ${caller}: ${code}`,
          );
        } else {
          assert.equal(code, caller === 'non-member' ? 'UNKNOWN_PARTICIPANT' : 'FORBIDDEN');
        }
      });
    }
  }
});
