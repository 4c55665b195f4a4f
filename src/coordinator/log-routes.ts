/**
 * The audit log's endpoints: members read its checkpoints, entries and proofs; institutions (its
 * witnesses) post cosignatures, verified against their own witness key. Each checks the caller's role
 * first (access.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { parseMessage } from '../protocol/index.ts';
import type { RouteName } from './access.ts';
import type { AuditLog } from './audit-log.ts';

export interface LogRouteDeps {
  readonly guard: (request: FastifyRequest, route: RouteName) => string;
  readonly audit: AuditLog;
}

export function registerLogRoutes(app: FastifyInstance, deps: LogRouteDeps): void {
  const { guard, audit } = deps;
  // ---- The audit log: members read it and its proofs; institutions (its witnesses) cosign it. ----
  const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
  app.get('/v1/log/checkpoint', async (request, reply) => {
    guard(request, 'GET /v1/log/checkpoint');
    const cp = audit.latestCheckpoint();
    if (!cp) throw new EntenteError('NOT_FOUND', 'no checkpoint yet', { field: 'checkpoint' });
    return reply.type('text/plain; charset=utf-8').send(cp.note);
  });
  app.get('/v1/log/vkey', async (request, reply) => {
    guard(request, 'GET /v1/log/vkey');
    return reply.type('text/plain; charset=utf-8').send(`${audit.verifierKey}\n`);
  });
  const afterQuery = z.strictObject({ after: z.coerce.number().int().min(-1).default(-1) });
  app.get('/v1/log/checkpoints', async (request) => {
    guard(request, 'GET /v1/log/checkpoints');
    const { after } = parseMessage(afterQuery, request.query, 'query');
    return { checkpoints: audit.checkpoints().filter((c) => c.size > after) };
  });
  const rangeQuery = z.strictObject({
    start: z.coerce.number().int().min(0),
    end: z.coerce.number().int().min(0),
  });
  app.get('/v1/log/entries', async (request) => {
    guard(request, 'GET /v1/log/entries');
    const { start, end } = parseMessage(rangeQuery, request.query, 'query');
    if (end < start || end - start > 10_000)
      throw new EntenteError('INVALID_ARGUMENT', 'end: must be within 10000 entries after start', {
        field: 'end',
      });
    return { entries: audit.entries(start, end).map((e) => ({ index: e.index, body: b64(e.body) })) };
  });
  const inclusionQuery = z.strictObject({
    index: z.coerce.number().int().min(0),
    size: z.coerce.number().int().min(1),
  });
  app.get('/v1/log/proof/inclusion', async (request) => {
    guard(request, 'GET /v1/log/proof/inclusion');
    const { index, size } = parseMessage(inclusionQuery, request.query, 'query');
    return { index, size, proof: audit.inclusionProof(index, size).map(b64) };
  });
  const consistencyQuery = z.strictObject({
    from: z.coerce.number().int().min(0),
    to: z.coerce.number().int().min(0),
  });
  app.get('/v1/log/proof/consistency', async (request) => {
    guard(request, 'GET /v1/log/proof/consistency');
    const { from, to } = parseMessage(consistencyQuery, request.query, 'query');
    return { from, to, proof: audit.consistencyProof(from, to).map(b64) };
  });
  app.get('/v1/log/provenance', async (request) => {
    guard(request, 'GET /v1/log/provenance');
    return { provenance: audit.provenance() };
  });
  const cosignBody = z.strictObject({ size: z.number().int().min(0), line: z.string().min(1).max(1000) });
  app.post('/v1/log/cosignatures', async (request) => {
    const id = guard(request, 'POST /v1/log/cosignatures');
    const { size, line } = parseMessage(cosignBody, request.body, 'cosignature');
    // Verified against the caller's own witness key only; a repeat is accepted and changes nothing.
    const { added } = audit.addCosignature(id, size, line);
    return { accepted: true, added };
  });
}
