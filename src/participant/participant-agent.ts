/**
 * The participant: an institution's agent. It only makes outbound connections (mutual TLS): registers,
 * long-polls for tasks, sends heartbeats, and reconnects by itself with exponential backoff. For each
 * task it fetches the model chunk by chunk, checks every chunk and the whole against their SHA-256
 * addresses, trains or evaluates locally through the `Trainer` interface, and uploads the update as a
 * chunked safetensors blob. Raw records never leave this process.
 *
 * This file holds its lifecycle: the context created once (participant-context.ts), registration,
 * heartbeats, witnessing the audit log, the polling loop, and each task's handling and upload. How a
 * task is computed is in task-dispatch.ts; the connection in coordinator-connection.ts; refusals in
 * refusals.ts.
 */
import { appendFileSync } from 'node:fs';
import { EntenteError } from '../core/errors.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { splitTrainTest } from '../data/index.ts';
import { type DpNoiseSource, builtinTrainer } from '../models/index.ts';
import {
  PROTOCOL_VERSION,
  type Task,
  type DataShape,
  parseMessage,
  registerResponseSchema,
  taskSchema,
} from '../protocol/index.ts';
import { createCryptoRandomBits, sampleSecureGaussian } from '../privacy/index.ts';
import { openCoordinatorConnection, sleep } from './coordinator-connection.ts';
import { LogWitness } from './log-witness.ts';
import type { ParticipantContext, ParticipantOptions, TaskOutput } from './participant-context.ts';
import { openPrivacyLedgerFile } from './privacy-ledger-file.ts';
import { CANNOT_EXECUTE, type Refusal, refuse } from './refusals.ts';
import { reportPendingTrips } from './circuit-breaker.ts';
import { refreshServing } from './rollout-task.ts';
import { createRunApprovalCheck } from './run-approval.ts';
import { toEvaluationRows } from './secure-sum-vector.ts';
import { openServingDir } from './serving-dir.ts';
import { computeTask } from './task-dispatch.ts';
import { openUnmaskedRounds } from './unmasked-rounds.ts';

export type { ParticipantOptions } from './participant-context.ts';
export type { Refusal } from './refusals.ts';

export interface ParticipantHandle {
  readonly done: Promise<void>;
  /** Tasks refused so far (also in the journal file when one is configured). */
  readonly refusals: () => readonly Refusal[];
  readonly traffic: () => { sent: number; received: number };
  stop(): Promise<void>;
}

/** The state a participant keeps for its whole life, created once (see ParticipantContext). */
function createContext(options: ParticipantOptions, signal: AbortSignal): ParticipantContext {
  const log = options.log;
  const trainer = options.trainer ?? builtinTrainer;
  const split = options.evaluationData
    ? { train: options.data, test: options.evaluationData }
    : splitTrainTest(
        options.data,
        options.holdoutFraction ?? 0.2,
        createSeededRng(`${options.institution}/holdout`),
      );
  /** What this site's records look like (declared at registration; every task's model must fit it). */
  const dataShape: DataShape = {
    features: options.data.dim,
    classes:
      options.dataClasses ??
      Math.max(
        2,
        options.data.y.reduce((m, v) => Math.max(m, v + 1), 0),
      ),
  };
  const evaluationRows = toEvaluationRows(split.test, options.evaluationAnnotations);
  const connection = openCoordinatorConnection({
    coordinatorUrl: options.coordinatorUrl,
    identity: options.identity,
    log,
    trainer,
    signal,
    maxBackoffMs: options.maxBackoffMs,
  });
  const witness =
    options.witness && options.signing
      ? new LogWitness({
          client: () => connection.current(),
          institution: options.institution,
          logKey: options.witness.logKey,
          origin: options.witness.origin,
          witnessName: options.witness.witnessName,
          witnessKeyPem: options.signing.keyPem,
          stateFile: options.witness.stateFile,
          log,
          now: () => Date.now(),
        })
      : undefined;
  const noiseBits = createCryptoRandomBits();
  /** DP noise from node:crypto through the discrete-Gaussian lattice sampler (privacy/secure-gaussian.ts). */
  const secureNoise: DpNoiseSource = (out, std) => {
    out.set(sampleSecureGaussian(std, noiseBits, out.length));
  };
  return {
    options,
    log,
    trainer,
    split,
    dataShape,
    evaluationRows,
    ledger: openPrivacyLedgerFile(options.privacyLedgerFile),
    unmasked: openUnmaskedRounds(options.unmaskedRoundsFile),
    sessions: new Map(),
    updateCache: new Map(),
    witness,
    checkRunApproved: witness
      ? createRunApprovalCheck({ witness, client: () => connection.current() })
      : undefined,
    connection,
    serving: openServingDir(options.servingDir),
    noiseBits,
    secureNoise,
    refusals: [],
    raisedIncidents: new Set(),
    consortium: '',
    journal: (event, fields) => {
      if (options.journalFile)
        appendFileSync(options.journalFile, `${JSON.stringify({ event, at: Date.now(), ...fields })}\n`, {
          mode: 0o600,
        });
    },
  };
}

export function startParticipant(options: ParticipantOptions): ParticipantHandle {
  const controller = new AbortController();
  const signal = controller.signal;
  const ctx = createContext(options, signal);
  const { log, trainer, witness, connection, journal } = ctx;

  async function handle(task: Task): Promise<void> {
    log.info({ task: task.taskId, kind: task.kind, round: task.round }, 'task received');
    let computed: TaskOutput;
    try {
      computed = await computeTask(ctx, task);
    } catch (err) {
      if (
        err instanceof EntenteError &&
        (err.code === 'PROTOCOL_VIOLATION' ||
          err.code === 'PRIVACY_BUDGET_EXCEEDED' ||
          err.code === 'SITE_POLICY_REFUSED' ||
          CANNOT_EXECUTE.has(err.code))
      ) {
        await refuse(ctx, task, err);
        return;
      }
      if (!(err instanceof EntenteError)) {
        // Not a coded outcome: the trainer or a decoder failed on this task; the same task fails again.
        await refuse(
          ctx,
          task,
          new EntenteError(
            'INTERNAL',
            `the task failed at this site: ${String((err as Error)?.message ?? err).slice(0, 300)}`,
          ),
        );
        return;
      }
      throw err;
    }
    const { result, chunks } = computed;
    const delayMs = typeof options.slowMs === 'number' ? options.slowMs : (options.slowMs?.[task.kind] ?? 0);
    if (delayMs > 0) await sleep(delayMs, signal);
    try {
      await connection.withRetry(async () => {
        for (const c of chunks) await connection.current().putBytes(`/v1/blobs/${sha256Hex(c)}`, c, 120_000);
        await connection
          .current()
          .postJson(`/v1/tasks/${encodeURIComponent(task.taskId)}/result`, result, 120_000);
      });
    } catch (err) {
      // The coordinator refused this result for good (its shape, not the moment): computing it again
      // would give the same answer, so the task is reported once as one this site cannot execute.
      if (err instanceof EntenteError && CANNOT_EXECUTE.has(err.code)) {
        await refuse(
          ctx,
          task,
          new EntenteError(err.code, `the coordinator refused its result: ${err.message}`, {
            ...(err.field ? { field: err.field } : {}),
          }),
        );
        return;
      }
      throw err;
    }
    log.info({ task: task.taskId }, 'result accepted');
    // Commitments of training rounds are followed until the log closes their round; those of secure sums
    // (statistics, evaluation) are logged with their phase and not followed yet.
    if (witness && result.kind === 'secagg-masked-input' && !('phase' in task && task.phase)) {
      witness.recordCommitment({
        run: result.runId,
        round: result.round,
        attempt: result.attempt,
        sha256: result.maskedInput.sha256,
      });
    } else if (witness && result.kind === 'train') {
      witness.recordCommitment({
        run: result.runId,
        round: result.round,
        attempt: 0,
        sha256: result.update.sha256,
      });
    }
  }

  async function loop(): Promise<void> {
    const registered = await connection.withRetry(() =>
      connection.current().postJson('/v1/participants/register', {
        protocol: PROTOCOL_VERSION,
        trainers: [trainer.id],
        software: 'entente/0.1.0',
        ...(options.dataSchemaDigest ? { dataSchemaDigest: options.dataSchemaDigest } : {}),
        data: ctx.dataShape,
        ...(options.site?.revealEvaluation ? { revealEvaluation: true } : {}),
      }),
    );
    if (!registered) return;
    const info = parseMessage(registerResponseSchema, registered.body, 'register');
    ctx.consortium = info.consortium;
    log.info({ consortium: info.consortium }, 'registered');
    // Best effort at start: trips not yet acknowledged are reported, and serving.json follows the log.
    if (ctx.checkRunApproved && options.servingDir) {
      await reportPendingTrips(ctx);
      await refreshServing(ctx).catch((err: unknown) =>
        log.warn(
          { code: (err as EntenteError).code },
          `serving.json not recomputed: ${(err as Error).message}`,
        ),
      );
    }
    // Best effort: a missed heartbeat (coordinator down, or no endpoint recorded while it restarts) is
    // made up by the next one; the poll loop below notices and backs off.
    const heartbeat = setInterval(() => {
      void (async () => connection.current().postJson('/v1/heartbeat', {}, 5_000))().catch((err: unknown) =>
        log.debug({ code: (err as EntenteError).code }, `heartbeat not delivered: ${(err as Error).message}`),
      );
    }, info.heartbeatMs);
    /** False after a failed attempt: the next poll is then not woken by the checkpoint that failed. */
    let witnessOk = true;
    /** Witnesses the newest checkpoint; a split view or rollback stops this site for good. */
    const witnessLog = async (): Promise<void> => {
      if (!witness || signal.aborted) return;
      try {
        await witness.cosignPending();
        witnessOk = true;
      } catch (err) {
        witnessOk = false;
        if (witness.halted) {
          log.error(
            { code: 'PROTOCOL_VIOLATION' },
            `audit log incident, this site stops taking part: ${witness.halted}`,
          );
          journal('incident', { kind: 'audit-log', message: witness.halted });
          throw err;
        }
        log.warn(
          { code: (err as EntenteError).code },
          `could not witness the audit log: ${(err as Error).message}`,
        );
        await sleep(1_000, signal); // a short pause before polling again
      }
    };
    /** The checkpoint size serving.json was last recomputed at: a stage started or ended since changes it. */
    let servingAt = -1;
    const followLog = async (): Promise<void> => {
      if (!witness || !witnessOk || !ctx.checkRunApproved || !options.servingDir) return;
      if (witness.witnessedSize === servingAt) return;
      servingAt = witness.witnessedSize;
      await refreshServing(ctx).catch((err: unknown) =>
        log.warn(
          { code: (err as EntenteError).code },
          `serving.json not recomputed: ${(err as Error).message}`,
        ),
      );
    };
    try {
      while (!signal.aborted) {
        await witnessLog();
        // What this site serves follows the log as soon as it has witnessed it (a canary stage starting
        // with this site, a completion, a rollback), not only when a rollout task arrives.
        await followLog();
        let task: Task | undefined;
        try {
          const waitMs = options.pollWaitMs ?? 20_000;
          // The newest checkpoint this site is done with (cosigned or refused): only a newer one, when
          // there is no task, ends the wait. After a failed attempt the coordinator's current one counts
          // as seen (the parameter is left out), so the site retries when a newer one appears or after
          // its next task, never in a loop on the same one.
          const seen = witness && witnessOk ? `&checkpoint=${witness.witnessedSize}` : '';
          const r = await connection
            .current()
            .getJson(`/v1/tasks/next?waitMs=${waitMs}${seen}`, waitMs + 10_000);
          connection.succeeded();
          if (r.status === 204 || r.body === null) continue;
          task = parseMessage(taskSchema, r.body, 'task');
        } catch (err) {
          if (signal.aborted) break;
          if (err instanceof EntenteError && (err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT')) {
            await connection.backoff(err);
            continue;
          }
          // Not a member, or another live process of this institution took its place: stop, coded.
          if (err instanceof EntenteError && (err.code === 'UNKNOWN_PARTICIPANT' || err.code === 'CONFLICT'))
            throw err;
          await connection.backoff(err);
          continue;
        }
        try {
          await handle(task);
        } catch (err) {
          if (
            err instanceof EntenteError &&
            (err.code === 'DUPLICATE_RESULT' || err.code === 'STALE_ROUND')
          ) {
            log.info({ task: task.taskId, code: err.code }, 'task no longer needs a result');
            continue;
          }
          log.error(
            { task: task.taskId, code: (err as EntenteError).code },
            `task failed: ${(err as Error).message}`,
          );
          await sleep(1_000, signal);
        }
      }
    } finally {
      clearInterval(heartbeat);
    }
  }

  const done = loop().finally(async () => {
    await connection.close();
  });
  return {
    done,
    refusals: () => [...ctx.refusals],
    traffic: () => connection.traffic(),
    async stop() {
      controller.abort();
      await connection.destroy();
      await done.catch(() => {});
    },
  };
}
