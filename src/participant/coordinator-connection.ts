/**
 * A participant's connection to its coordinator: the mTLS client for the coordinator's current URL and
 * identity (reconnecting when either changes), jittered exponential backoff, retries while the
 * coordinator is unavailable, model fetching chunk by chunk with every chunk and the whole checked
 * against their SHA-256 addresses, and the site's circuit-breaker statements for staged rollouts.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { EntenteError } from '../core/errors.ts';
import { decodeSafetensors } from '../core/safetensors.ts';
import type { Tensor } from '../core/tensor.ts';
import { sha256Hex } from '../crypto/digest.ts';
import type { Trainer, parseModelSpec } from '../models/index.ts';
import { type BlobRef, SESSION_HEADER } from '../protocol/index.ts';
import type { TlsIdentity } from '../storage/index.ts';
import { type MtlsClient, createMtlsClient } from '../transport/index.ts';

export interface CoordinatorConnection {
  /**
   * The client for the coordinator's current URL. Throws UNAVAILABLE while no coordinator is recorded
   * in the workspace (stopped or restarting): callers back off and retry.
   */
  current(): MtlsClient;
  /** Waits a jittered, growing delay after a failure (logged). */
  backoff(err: unknown): Promise<void>;
  /** Resets the backoff after a success. */
  succeeded(): void;
  /** Retries `fn` on UNAVAILABLE (coordinator down or restarting) until it succeeds or we stop. */
  withRetry<T>(fn: () => Promise<T>): Promise<T | undefined>;
  fetchModel(ref: BlobRef, spec: ReturnType<typeof parseModelSpec>): Promise<Tensor[]>;
  /** A model's bytes, every chunk and the whole checked against their SHA-256 addresses. */
  fetchModelBytes(ref: BlobRef): Promise<Buffer>;
  /**
   * Posts this site's signed circuit-breaker statement for a rollout (one attempt, no retry): the
   * coordinator's answer whether it rolled the rollout back.
   */
  reportCircuitBreaker(
    rollout: string,
    report: { readonly stage: string; readonly signature: string },
  ): Promise<{ rolledBack: boolean }>;
  traffic(): { sent: number; received: number };
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

export function openCoordinatorConnection(input: {
  readonly coordinatorUrl: string | (() => string);
  readonly identity: TlsIdentity | (() => TlsIdentity);
  readonly log: Logger;
  readonly trainer: Trainer;
  readonly signal: AbortSignal;
  readonly maxBackoffMs?: number | undefined;
}): CoordinatorConnection {
  const { log, trainer, signal } = input;
  const maxBackoff = input.maxBackoffMs ?? 5_000;
  let client: MtlsClient | undefined;
  let clientUrl = '';
  let clientCert = '';
  const trafficBase = { sent: 0, received: 0 };
  const modelCache = new Map<string, Tensor[]>();
  /** This process's session: the coordinator refuses a second live process of the same institution. */
  const session = randomBytes(18).toString('base64url');

  const current = (): MtlsClient => {
    const url = typeof input.coordinatorUrl === 'function' ? input.coordinatorUrl() : input.coordinatorUrl;
    const identity = typeof input.identity === 'function' ? input.identity() : input.identity;
    // A new URL, or a renewed certificate (participant rotate): connect afresh with it.
    if (!client || url !== clientUrl || identity.certPem !== clientCert) {
      if (client) {
        trafficBase.sent += client.traffic.sent;
        trafficBase.received += client.traffic.received;
        void client.close().catch(() => {});
      }
      client = createMtlsClient({
        baseUrl: url,
        ...identity,
        maxResponseBytes: 8 * 1024 * 1024,
        headers: { [SESSION_HEADER]: session },
      });
      clientUrl = url;
      clientCert = identity.certPem;
    }
    return client;
  };

  let failures = 0;
  const backoff = async (err: unknown): Promise<void> => {
    failures++;
    const base = Math.min(maxBackoff, 100 * 2 ** Math.min(failures, 10));
    const wait = base / 2 + randomInt(Math.max(1, Math.floor(base / 2)));
    log.warn({ code: (err as EntenteError).code, retryInMs: Math.round(wait) }, (err as Error).message);
    await sleep(wait, signal);
  };

  async function withRetry<T>(fn: () => Promise<T>): Promise<T | undefined> {
    for (;;) {
      if (signal.aborted) return undefined;
      try {
        const out = await fn();
        failures = 0;
        return out;
      } catch (err) {
        if (
          err instanceof EntenteError &&
          (err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT' || err.code === 'INTERNAL')
        ) {
          await backoff(err);
          continue;
        }
        throw err;
      }
    }
  }

  async function fetchModelBytes(ref: BlobRef): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (const [i, c] of ref.chunks.entries()) {
      const bytes = await current().getBytes(`/v1/blobs/${c.sha256}`, c.bytes);
      if (bytes.length !== c.bytes || sha256Hex(bytes) !== c.sha256) {
        throw new EntenteError('DIGEST_MISMATCH', `model.chunks.${i} does not match its address`, {
          field: `model.chunks.${i}`,
        });
      }
      parts.push(bytes);
    }
    const all = Buffer.concat(parts);
    if (sha256Hex(all) !== ref.sha256)
      throw new EntenteError('DIGEST_MISMATCH', 'model does not match model.sha256', {
        field: 'model.sha256',
      });
    return all;
  }

  async function fetchModel(ref: BlobRef, spec: ReturnType<typeof parseModelSpec>): Promise<Tensor[]> {
    const cached = modelCache.get(ref.sha256);
    if (cached) return cached;
    const all = await fetchModelBytes(ref);
    const weights = decodeSafetensors(all, { expected: trainer.describeLayout(spec) }).weights;
    modelCache.clear();
    modelCache.set(ref.sha256, weights);
    return weights;
  }

  return {
    current,
    backoff,
    succeeded: () => {
      failures = 0;
    },
    withRetry,
    fetchModel,
    fetchModelBytes,
    async reportCircuitBreaker(rollout, report) {
      const r = await current().postJson<{ rolledBack?: unknown }>(
        `/v1/rollouts/${encodeURIComponent(rollout)}/circuit-breaker`,
        { stage: report.stage, signature: report.signature },
        10_000,
      );
      return { rolledBack: r.body?.rolledBack === true };
    },
    traffic: () => ({
      sent: trafficBase.sent + (client?.traffic.sent ?? 0),
      received: trafficBase.received + (client?.traffic.received ?? 0),
    }),
    async close() {
      await client?.close().catch(() => {});
    },
    async destroy() {
      await client?.destroy().catch(() => {});
    },
  };
}
