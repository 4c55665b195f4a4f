/**
 * `entente participant serve`'s loopback HTTP endpoint (node:http, plain HTTP bound to a loopback
 * address only: it serves the site's own applications on the same machine, never the network).
 *
 * - `GET /v1/health` → `{"status": "ok", "model": "<sha256>", "rows": <rows recorded so far>}` (what
 *   the `health` option returns: following a serving directory, also the version's rollout and stage).
 * - `POST /v1/score` with `Content-Type: application/json` and `{"rows": [{column: value, …}, …]}`
 *   (each value a number or a string as the CSV cell would hold it; every row the same columns: the
 *   schema's features, optionally its label) or `Content-Type: text/csv` and a CSV with a header line
 *   (as `model predict --data` reads). Answer: `{"probabilities": [[p_class0, …], …], "classes": […],
 *   "model": "<sha256>", "rows": n}` in row order, the same numbers `model predict --json` prints.
 *   Rows that carry the label add to the confusion matrix of the monitoring sums.
 *
 * Every accepted request adds its rows (and one latency count) to the monitoring sums in memory
 * (monitoring-file.ts); nothing of a request is kept. A refused request changes nothing and gets
 * `{"error": {"code", "message", "field"}}` with its code's HTTP status from core/errors.ts:
 * INVALID_ARGUMENT 400 (not JSON, not `{"rows": [...]}`, a column the schema does not declare, a value
 * that is neither number nor string, more than `maxRows` rows, another content type), INVALID_DATA 422
 * (a cell the schema refuses, a missing column), BODY_TOO_LARGE 413 (more than `maxBodyBytes`),
 * NOT_FOUND 404 (another path or method), UNAVAILABLE 503 (no model to serve yet: a followed serving
 * directory has not assigned one). Errors never echo a submitted value.
 *
 * The model is asked for once per request, after its body is read (`serving`): a followed directory may
 * swap it between requests, never within one, and the request's counts go to the recorder of the model
 * that scored it.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { safeCallerText } from '../core/caller-text.ts';
import { EntenteError, errorCodes } from '../core/errors.ts';
import { parseCsv } from '../data/index.ts';
import {
  type ScoringModel,
  loadRows,
  monitoringInput,
  quoteCsv,
  scoreClasses,
  standardizeForModel,
} from './scoring-model.ts';
import type { ServedModel } from './serving-follower.ts';

export const DEFAULT_MAX_SCORE_ROWS = 5_000;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** Past this many bytes a too-large body is no longer drained: the connection is closed. */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;

export interface ScoringServerOptions {
  /** The model to score a request with, its monitoring reference and recorder (throws UNAVAILABLE when none). */
  readonly serving: () => ServedModel;
  /** The body of GET /v1/health. */
  readonly health: () => object;
  readonly maxRows: number;
  readonly maxBodyBytes: number;
}

function refuse(code: 'INVALID_ARGUMENT' | 'INVALID_DATA', field: string, message: string): EntenteError {
  return new EntenteError(code, `${field}: ${message}`, { field });
}

/** CSV text of JSON rows (every row the same columns, each declared by the schema). */
export function rowsToCsv(body: unknown, model: ScoringModel, maxRows: number): string {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw refuse('INVALID_ARGUMENT', 'body', 'must be an object {"rows": [...]}');
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0] !== 'rows')
    throw refuse('INVALID_ARGUMENT', 'body', 'must have exactly one field, rows');
  const rows = (body as { rows: unknown }).rows;
  if (!Array.isArray(rows)) throw refuse('INVALID_ARGUMENT', 'rows', 'must be an array of objects');
  if (rows.length === 0) throw refuse('INVALID_ARGUMENT', 'rows', 'must hold at least one row');
  if (rows.length > maxRows) throw refuse('INVALID_ARGUMENT', 'rows', `must hold at most ${maxRows} rows`);
  const schema = model.schema;
  const declared = new Set([
    ...schema.features.map((f) => f.name),
    schema.label.name,
    ...(schema.sensitive ? [schema.sensitive.name] : []),
    ...(schema.slices ?? []).map((s) => s.column),
    ...schema.ignore,
  ]);
  let header: string[] | undefined;
  const lines: string[] = [];
  for (const [i, row] of rows.entries()) {
    if (typeof row !== 'object' || row === null || Array.isArray(row))
      throw refuse('INVALID_ARGUMENT', `rows[${i}]`, 'must be an object {column: value}');
    const columns = Object.keys(row);
    for (const c of columns)
      if (!declared.has(c))
        throw refuse(
          'INVALID_ARGUMENT',
          `rows[${i}]`,
          `has a column the schema does not declare (${safeCallerText(c, 80)})`,
        );
    if (header === undefined) header = columns;
    else if (columns.length !== header.length || columns.some((c) => !Object.hasOwn(rows[0], c)))
      throw refuse('INVALID_ARGUMENT', `rows[${i}]`, 'must have the same columns as rows[0]');
    const cells = header.map((c) => {
      const v = (row as Record<string, unknown>)[c];
      if (typeof v === 'number' && Number.isFinite(v)) return String(v);
      if (typeof v === 'string') return v;
      throw refuse(
        'INVALID_ARGUMENT',
        `rows[${i}].${safeCallerText(c, 80)}`,
        'must be a finite number or a string',
      );
    });
    lines.push(cells.map(quoteCsv).join(','));
  }
  return `${[header!.map(quoteCsv).join(','), ...lines].join('\n')}\n`;
}

/** Scores one request's CSV text and records it; returns the response body. */
export function scoreAndRecord(
  served: ServedModel,
  maxRows: number,
  csv: string,
  startedAt: number,
  now: () => number,
): { probabilities: number[][]; classes: readonly string[]; model: string; rows: number } {
  const { model, recorder } = served;
  const submitted = parseCsv(csv).rows.length;
  if (submitted > maxRows) throw refuse('INVALID_ARGUMENT', 'rows', `must hold at most ${maxRows} rows`);
  const { data: raw, labelled } = loadRows(csv, model.schema);
  if (raw.count !== submitted)
    throw refuse('INVALID_DATA', 'rows', 'a row has a missing cell and the schema drops such rows');
  const data = standardizeForModel(model, raw);
  const { probabilities } = scoreClasses(model, data);
  const k = model.classNames.length;
  const flat = new Float64Array(data.count * k);
  for (let i = 0; i < data.count; i++) flat.set(probabilities[i]!, i * k);
  recorder.record({
    count: data.count,
    z: monitoringInput(served.reference, raw),
    probabilities: flat,
    labels: labelled ? data.y : undefined,
    latencyMs: Math.max(0, now() - startedAt),
  });
  return { probabilities, classes: model.classNames, model: model.sha256, rows: data.count };
}

function send(res: ServerResponse, status: number, body: unknown, close = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown, close = false): void {
  const e =
    err instanceof EntenteError ? err : new EntenteError('INTERNAL', 'the request could not be scored');
  const status = errorCodes[e.code].http;
  send(
    res,
    status,
    {
      error: {
        code: e.code,
        message: safeCallerText(e.message, 1000),
        ...(e.field === undefined ? {} : { field: e.field }),
      },
    },
    close,
  );
}

/** Reads a body up to `limit` bytes; a longer body is drained (up to a hard cap) and refused. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    const tooLargeError = () =>
      new EntenteError('BODY_TOO_LARGE', `body: must be at most ${limit} bytes`, { field: 'body' });
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > DRAIN_LIMIT_BYTES) {
      reject(Object.assign(tooLargeError(), { closeConnection: true }));
      return;
    }
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > DRAIN_LIMIT_BYTES) {
        req.destroy();
        return;
      }
      if (size > limit) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    req.on('end', () => (tooLarge ? reject(tooLargeError()) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

async function handle(
  options: ScoringServerOptions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const startedAt = performance.now();
  const path = (req.url ?? '').split('?')[0];
  if (req.method === 'GET' && path === '/v1/health') {
    send(res, 200, options.health());
    return;
  }
  if (req.method !== 'POST' || path !== '/v1/score') {
    req.resume();
    send(res, 404, {
      error: { code: 'NOT_FOUND', message: 'no such endpoint (GET /v1/health, POST /v1/score)' },
    });
    return;
  }
  let body: Buffer;
  try {
    body = await readBody(req, options.maxBodyBytes);
  } catch (err) {
    sendError(res, err, (err as { closeConnection?: boolean }).closeConnection === true);
    return;
  }
  try {
    const served = options.serving();
    const type = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase();
    let csv: string;
    if (type === 'application/json') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw refuse('INVALID_ARGUMENT', 'body', 'is not JSON');
      }
      csv = rowsToCsv(parsed, served.model, options.maxRows);
    } else if (type === 'text/csv') {
      csv = body.toString('utf8');
    } else {
      throw refuse('INVALID_ARGUMENT', 'content-type', 'must be application/json or text/csv');
    }
    send(
      res,
      200,
      scoreAndRecord(served, options.maxRows, csv, startedAt, () => performance.now()),
    );
  } catch (err) {
    sendError(res, err);
  }
}

/** An HTTP server answering the endpoints above (not listening yet). */
export function createScoringServer(options: ScoringServerOptions): Server {
  const server = createServer((req, res) => {
    handle(options, req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, err);
      else res.destroy();
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.maxHeadersCount = 100;
  return server;
}
