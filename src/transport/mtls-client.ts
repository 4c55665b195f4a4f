/**
 * The participant's (and operator CLI's) HTTPS client: undici 7 over mutual TLS, outbound only.
 * JSON messages and binary chunk bodies; every failure becomes an EntenteError (network failures are
 * UNAVAILABLE so callers can retry with backoff). The response size is bounded before it is read.
 */
import { Agent, request } from 'undici';
import { EntenteError } from '../core/errors.ts';
import { decodeErrorBody } from './mtls-server.ts';

export interface MtlsClientOptions {
  readonly baseUrl: string;
  /** The client certificate and key; absent only for enrollment (the caller has none yet). */
  readonly certPem?: string | undefined;
  readonly keyPem?: string | undefined;
  readonly caPem: string;
  /** Upper bound on any response body, in bytes. */
  readonly maxResponseBytes?: number;
  /** Headers sent with every request (a participant's session id). */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface HttpResult<T> {
  readonly status: number;
  readonly body: T;
}

export interface MtlsClient {
  getJson<T = unknown>(path: string, timeoutMs?: number): Promise<HttpResult<T | null>>;
  postJson<T = unknown>(path: string, body: unknown, timeoutMs?: number): Promise<HttpResult<T>>;
  getBytes(path: string, maxBytes: number, timeoutMs?: number): Promise<Buffer>;
  putBytes(path: string, bytes: Uint8Array, timeoutMs?: number): Promise<HttpResult<unknown>>;
  /** Bytes sent and received in bodies so far (for reporting). */
  readonly traffic: { sent: number; received: number };
  close(): Promise<void>;
  /** Closes at once, aborting requests in flight (a pending long poll, for example). */
  destroy(): Promise<void>;
}

export function createMtlsClient(options: MtlsClientOptions): MtlsClient {
  const agent = new Agent({
    connect: {
      ca: options.caPem,
      ...(options.certPem !== undefined && options.keyPem !== undefined
        ? { cert: options.certPem, key: options.keyPem }
        : {}),
      minVersion: 'TLSv1.3',
    },
    keepAliveTimeout: 30_000,
    connections: 8,
  });
  const maxResponse = options.maxResponseBytes ?? 8 * 1024 * 1024;
  const traffic = { sent: 0, received: 0 };

  async function send(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    body: Uint8Array | string | undefined,
    contentType: string | undefined,
    timeoutMs: number,
    maxBytes: number,
  ): Promise<{ status: number; bytes: Buffer; contentType: string }> {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(new URL(path, options.baseUrl), {
        method,
        dispatcher: agent,
        body,
        headers: { ...options.headers, ...(contentType ? { 'content-type': contentType } : {}) },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (err) {
      throw new EntenteError('UNAVAILABLE', `coordinator unreachable (${(err as Error).message})`, {
        cause: err,
      });
    }
    if (body !== undefined) traffic.sent += typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    const declared = Number(res.headers['content-length'] ?? '0');
    if (declared > maxBytes) {
      res.body.destroy();
      throw new EntenteError(
        'BODY_TOO_LARGE',
        `response of ${declared} bytes exceeds the limit of ${maxBytes}`,
      );
    }
    const parts: Buffer[] = [];
    let total = 0;
    try {
      for await (const piece of res.body) {
        total += (piece as Buffer).length;
        if (total > maxBytes) {
          res.body.destroy();
          throw new EntenteError('BODY_TOO_LARGE', `response exceeds the limit of ${maxBytes} bytes`);
        }
        parts.push(piece as Buffer);
      }
    } catch (err) {
      if (err instanceof EntenteError) throw err;
      throw new EntenteError('UNAVAILABLE', 'connection lost while reading the response', { cause: err });
    }
    traffic.received += total;
    return {
      status: res.statusCode,
      bytes: Buffer.concat(parts, total),
      contentType: String(res.headers['content-type'] ?? ''),
    };
  }

  function decodeJson(r: { status: number; bytes: Buffer; contentType: string }): unknown {
    if (r.bytes.length === 0) return null;
    try {
      return JSON.parse(r.bytes.toString('utf8'));
    } catch {
      throw new EntenteError('MALFORMED_BODY', `coordinator sent a body that is not JSON (HTTP ${r.status})`);
    }
  }

  function check(r: { status: number; bytes: Buffer; contentType: string }): void {
    if (r.status >= 400) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(r.bytes.toString('utf8'));
      } catch {
        parsed = undefined;
      }
      throw decodeErrorBody(r.status, parsed);
    }
  }

  return {
    traffic,
    async getJson<T>(path: string, timeoutMs = 30_000) {
      const r = await send('GET', path, undefined, undefined, timeoutMs, maxResponse);
      check(r);
      return { status: r.status, body: (r.status === 204 ? null : decodeJson(r)) as T | null };
    },
    async postJson<T>(path: string, body: unknown, timeoutMs = 30_000) {
      const r = await send('POST', path, JSON.stringify(body), 'application/json', timeoutMs, maxResponse);
      check(r);
      return { status: r.status, body: decodeJson(r) as T };
    },
    async getBytes(path: string, maxBytes: number, timeoutMs = 60_000) {
      const r = await send('GET', path, undefined, undefined, timeoutMs, maxBytes);
      check(r);
      return r.bytes;
    },
    async putBytes(path: string, bytes: Uint8Array, timeoutMs = 60_000) {
      const r = await send('PUT', path, bytes, 'application/octet-stream', timeoutMs, maxResponse);
      check(r);
      return { status: r.status, body: decodeJson(r) };
    },
    async close() {
      await agent.close();
    },
    async destroy() {
      await agent.destroy();
    },
  };
}

/**
 * Fetches a small text resource WITHOUT verifying the server certificate. Only for enrollment's first
 * step: reading the consortium CA certificate, whose SHA-256 the caller must then compare with the
 * fingerprint carried by its enrollment token before trusting anything (like kubeadm's CA cert hash).
 */
export async function fetchUnverifiedText(
  baseUrl: string,
  path: string,
  maxBytes = 64 * 1024,
): Promise<string> {
  const agent = new Agent({ connect: { rejectUnauthorized: false, minVersion: 'TLSv1.3' } });
  try {
    const res = await request(new URL(path, baseUrl), {
      method: 'GET',
      dispatcher: agent,
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    const bytes = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200 || bytes.length > maxBytes)
      throw new EntenteError('UNAVAILABLE', `GET ${path}: HTTP ${res.statusCode}`, { field: 'coordinator' });
    return bytes.toString('utf8');
  } catch (err) {
    if (err instanceof EntenteError) throw err;
    throw new EntenteError('UNAVAILABLE', `coordinator unreachable (${(err as Error).message})`, {
      field: 'coordinator',
    });
  } finally {
    await agent.close();
  }
}
