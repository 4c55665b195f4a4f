/**
 * The coordinator's HTTPS server: Fastify 5 over TLS 1.3 requiring a client certificate signed by the
 * consortium CA (mutual TLS). The verified certificate's common name is the caller's identity. Errors
 * are mapped to HTTP here, at the edge, from the one error registry; bodies never echo secrets.
 */
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { safeCallerText } from '../core/caller-text.ts';
import { EntenteError, httpStatusOf, isErrorCode } from '../core/errors.ts';
import { RequestLimiter } from './request-limiter.ts';

export interface MtlsServerOptions {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
  /** Largest JSON body accepted (binary bodies are limited per route). */
  readonly jsonBodyLimit?: number;
  /** A pino logger instance for Fastify, or undefined for none. */
  readonly logger?: unknown;
  /** Paths served without a client certificate (enrollment: the caller has none yet). */
  readonly publicPaths?: readonly string[];
  /** Requests per minute one address may make to the public paths (default 120). */
  readonly publicRequestsPerMinute?: number;
  /** Requests per minute all addresses together may make to the public paths (default 1200). */
  readonly publicRequestsPerMinuteTotal?: number;
  /**
   * Checked on every request with a verified client certificate: the reason its serial (lower-case hex,
   * no leading zeros) was revoked, or undefined. A revoked certificate is refused before any route runs.
   */
  readonly revocationReason?: (serialHex: string, commonName: string) => string | undefined;
}

/** A certificate serial as compared everywhere: lower-case hex without leading zeros. */
export function normalizeSerial(serialHex: string): string {
  return serialHex.toLowerCase().replace(/^0+(?=.)/, '');
}

/** Why the TLS stack did not verify the client certificate, in words (OpenSSL's codes are terse). */
function describeAuthorizationError(socket: TLSSocket): string {
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return 'no client certificate was presented';
  const code = String(socket.authorizationError ?? '');
  if (code === 'CERT_HAS_EXPIRED') return `the client certificate expired at ${cert.valid_to}`;
  if (code === 'CERT_NOT_YET_VALID') return `the client certificate is not valid before ${cert.valid_from}`;
  if (
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' ||
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    code === 'CERT_SIGNATURE_FAILURE'
  )
    return "the client certificate was not issued by this consortium's CA";
  return `the client certificate was not verified (${code || 'unknown reason'})`;
}

/** The identity of the verified client certificate (its subject CN). Throws UNAUTHENTICATED. */
export function readPeerIdentity(request: FastifyRequest): string {
  const socket = request.raw.socket as TLSSocket;
  if (!socket.authorized) throw new EntenteError('UNAUTHENTICATED', 'client certificate was not verified');
  const cert = socket.getPeerCertificate();
  const cn = cert?.subject?.CN;
  if (typeof cn !== 'string' || cn.length === 0) {
    throw new EntenteError('UNAUTHENTICATED', 'client certificate has no common name');
  }
  return cn;
}

export function createMtlsServer(options: MtlsServerOptions): FastifyInstance {
  const app = Fastify({
    https: {
      key: options.keyPem,
      cert: options.certPem,
      ca: options.caPem,
      requestCert: true,
      // Verified by OpenSSL against `ca` all the same; refusing in onRequest lets the caller read why,
      // and lets enrollment (no certificate yet) through on its public paths.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    },
    bodyLimit: options.jsonBodyLimit ?? 1024 * 1024,
    ...(options.logger
      ? // biome-ignore lint/suspicious/noExplicitAny: Fastify's logger instance type is its own interface.
        { loggerInstance: options.logger as any }
      : { logger: false }),
    return503OnClosing: true,
    forceCloseConnections: true,
    keepAliveTimeout: 65_000,
    requestTimeout: 120_000,
  });

  const publicPaths = new Set(options.publicPaths ?? []);
  // Anyone can reach the public paths: a fixed window per address and one over all addresses keep
  // them from being flooded, from one address or from many.
  const perMinute = options.publicRequestsPerMinute ?? 120;
  const perMinuteTotal = options.publicRequestsPerMinuteTotal ?? 1200;
  const limiter = new RequestLimiter({ perKey: perMinute, total: perMinuteTotal, windowMs: 60_000 });
  app.addHook('onRequest', async (request) => {
    if (publicPaths.has(request.url.split('?')[0]!)) {
      const verdict = limiter.check(request.ip, Date.now());
      if (verdict === 'per-key')
        throw new EntenteError(
          'RATE_LIMITED',
          `more than ${perMinute} enrollment requests a minute from this address`,
        );
      if (verdict !== null)
        throw new EntenteError(
          'RATE_LIMITED',
          `more than ${perMinuteTotal} enrollment requests a minute from all addresses together`,
        );
      return;
    }
    const socket = request.raw.socket as TLSSocket;
    if (!socket.authorized) throw new EntenteError('UNAUTHENTICATED', describeAuthorizationError(socket));
    if (options.revocationReason) {
      const cert = socket.getPeerCertificate();
      const serial = normalizeSerial(cert.serialNumber ?? '');
      const why = options.revocationReason(serial, String(cert.subject?.CN ?? ''));
      if (why !== undefined)
        throw new EntenteError(
          'UNAUTHENTICATED',
          `the client certificate (serial ${serial}) was revoked: ${why}`,
        );
    }
  });

  // Binary bodies are handed to routes as the raw stream; each route enforces its own size limit.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

  app.setErrorHandler((err, request, reply) => {
    let code: EntenteError['code'] = 'INTERNAL';
    let message = 'internal error';
    let field: string | undefined;
    if (err instanceof EntenteError) {
      code = err.code;
      message = err.message;
      field = err.field;
    } else {
      const fcode = (err as { code?: string }).code;
      if (fcode === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        code = 'BODY_TOO_LARGE';
        message = 'request body is too large';
      } else if (
        fcode === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
        fcode === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
        err instanceof SyntaxError
      ) {
        code = 'MALFORMED_BODY';
        message = 'request body is not valid JSON';
      } else if (
        fcode === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ||
        fcode === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH'
      ) {
        code = 'MALFORMED_BODY';
        message = 'unsupported or inconsistent body';
      } else if (
        typeof (err as { statusCode?: number }).statusCode === 'number' &&
        (err as { statusCode: number }).statusCode < 500
      ) {
        code = 'INVALID_ARGUMENT';
        message = 'bad request';
      } else {
        request.log.error({ err }, 'unhandled error');
      }
    }
    // Messages and fields may quote what the caller sent: bounded, control characters escaped.
    const body: { error: { code: string; message: string; field?: string } } = {
      error: { code, message: safeCallerText(message, 1000) },
    };
    if (field !== undefined) body.error.field = safeCallerText(field, 200);
    void reply.status(httpStatusOf(code)).send(body);
  });

  app.setNotFoundHandler((_request, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
  });

  return app;
}

/** Decodes an error body from the wire into an EntenteError (unknown codes become INTERNAL). */
export function decodeErrorBody(status: number, body: unknown): EntenteError {
  const e = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } } | undefined)?.error;
  const code = isErrorCode(e?.code) ? e.code : status === 404 ? 'NOT_FOUND' : 'INTERNAL';
  const message = typeof e?.message === 'string' ? e.message : `HTTP ${status}`;
  return new EntenteError(code, message, typeof e?.field === 'string' ? { field: e.field } : undefined);
}
