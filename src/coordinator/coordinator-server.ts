/**
 * The coordinator process: wires the SQLite store, the blob store and the run engine to the mutual-TLS
 * HTTPS server, owns the timers (deadline ticks) and the long-poll waiters. Every endpoint checks the
 * caller's role (from its verified certificate) before doing anything (request-guard.ts); the store and
 * the blob store are opened and swept in coordinator-storage.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import {
  type DataShape,
  SESSION_HEADER,
  parseMessage,
  parseRunConfig,
  sessionIdSchema,
} from '../protocol/index.ts';
import {
  GovernanceStore,
  type Workspace,
  acquireWorkspaceLock,
  computeLogOrigin,
  ensurePrivateDir,
  openWorkspace,
} from '../storage/index.ts';
import { createMtlsServer } from '../transport/index.ts';
import { publicPaths } from './access.ts';
import { AuditLog } from './audit-log.ts';
import { assertPortFree, listenError, readRememberedPort } from './coordinator-port.ts';
import { collectGarbage, openCoordinatorStorage } from './coordinator-storage.ts';
import { createCoordinatorJobs } from './coordinator-jobs.ts';
import { MonitoringJobs } from './monitoring-jobs.ts';
import { registerMonitoringRoutes } from './monitoring-routes.ts';
import { Governance } from './governance.ts';
import { IncidentDrills } from './incident-drills.ts';
import { registerGovernanceRoutes } from './governance-routes.ts';
import { registerLogRoutes } from './log-routes.ts';
import { ModelRegistry } from './model-registry.ts';
import { registerRegistryRoutes } from './registry-routes.ts';
import { registerRolloutRoutes } from './rollout-routes.ts';
import { registerRunRoutes } from './run-routes.ts';
import { registerTaskRoutes } from './task-routes.ts';
import { ParticipantSessions } from './participant-sessions.ts';
import { checkRunConfigAgainstPolicy } from './run-plan.ts';
import { RunEngine } from './run-engine.ts';
import { type Traffic, installRequestGuard } from './request-guard.ts';

export interface CoordinatorOptions {
  readonly workspaceDir: string;
  readonly host?: string;
  readonly port?: number;
  readonly log: Logger;
  /** A participant counts as available for a new phase when seen within this window. */
  readonly livenessMs?: number;
  readonly heartbeatMs?: number;
  readonly tickMs?: number;
  /** Requests per minute one address may make to the enrollment paths (default 120). */
  readonly publicRequestsPerMinute?: number;
  /** Requests per minute all addresses together may make to the enrollment paths (default 1200). */
  readonly publicRequestsPerMinuteTotal?: number;
  /** Long polls (GET /v1/tasks/next) one member may hold open at once (default 4). */
  readonly maxPollsPerMember?: number;
  /**
   * Bytes of uploaded chunks one member may have stored that are not (yet) part of an accepted result
   * of its own (default 1 GiB).
   */
  readonly memberStorageBytes?: number;
  /** A member's refusals are summarized in the audit log per window of this length (default 60 s). */
  readonly refusalWindowMs?: number;
  /** Unreferenced chunks younger than this are kept (their result may be on its way; default 1 h). */
  readonly chunkGraceMs?: number;
  /** How often unreferenced chunks and stale temporary uploads are removed (default 10 min). */
  readonly gcIntervalMs?: number;
  /** Start an incident drill when none started within this many ms (no schedule when absent). */
  readonly drillEveryMs?: number;
  /** The alias whose rollback scheduled drills rehearse (default `production`). */
  readonly drillAlias?: string;
  /** Measure drift of the model `monitorAlias` points at this often (absent: only on request). */
  readonly monitorEveryMs?: number;
  /** The alias scheduled monitoring follows (default `production`). */
  readonly monitorAlias?: string;
}

export const DEFAULT_MAX_POLLS_PER_MEMBER = 4;
export const DEFAULT_MEMBER_STORAGE_BYTES = 1024 * 1024 * 1024;

export interface RunningCoordinator {
  readonly url: string;
  readonly engine: RunEngine;
  close(): Promise<void>;
}

export async function startCoordinator(options: CoordinatorOptions): Promise<RunningCoordinator> {
  const ws = openWorkspace(options.workspaceDir);
  // One coordinator per workspace: a second one is refused here, before it touches anything (the
  // endpoint file, the store, temporary uploads). A lock left by a coordinator that died is taken over.
  const lock = acquireWorkspaceLock(ws.coordinatorLockFile(), { now: Date.now() });
  if (lock.tookOver)
    options.log.warn(
      { stalePid: lock.tookOver.pid, lockedAt: lock.tookOver.lockedAt },
      `took over a stale workspace lock: coordinator pid ${lock.tookOver.pid} is no longer running`,
    );
  // Released at exit whatever the path (process.exit after an uncaught error included).
  const releaseAtExit = (): void => lock.release();
  process.on('exit', releaseAtExit);
  try {
    return await serve(options, ws, () => {
      process.off('exit', releaseAtExit);
      lock.release();
    });
  } catch (err) {
    process.off('exit', releaseAtExit);
    lock.release();
    throw err;
  }
}

async function serve(
  options: CoordinatorOptions,
  ws: Workspace,
  releaseLock: () => void,
): Promise<RunningCoordinator> {
  const log = options.log;
  const stateDir = ws.coordinatorStateDir();
  ensurePrivateDir(stateDir);
  // Enrolled sites keep the URL they enrolled with: without an explicit port the coordinator comes
  // back on the port it was served on before (kept in the state directory), or fails naming it. The
  // port is checked before the state is opened (a coordinator that cannot serve changes nothing).
  const host = options.host ?? '127.0.0.1';
  const portFile = join(stateDir, 'port.json');
  const remembered = options.port === undefined ? readRememberedPort(portFile) : undefined;
  const port = options.port ?? remembered ?? 0;
  if (port !== 0) await assertPortFree(host, port, remembered !== undefined);
  const storage = openCoordinatorStorage(stateDir, log);
  const { store, blobs } = storage;
  store.setMeta('consortium', ws.consortium.consortium);
  const livenessMs = options.livenessMs ?? 15_000;
  const heartbeatMs = options.heartbeatMs ?? 5_000;
  const traffic: Traffic = { bytesReceived: 0, bytesSent: 0, unauthenticatedRefusals: 0 };

  /** One live process per institution (the session id its participant sends). */
  const sessions = new ParticipantSessions({ livenessMs, now: () => Date.now() });
  const sessionOf = (request: FastifyRequest): string | undefined => {
    const raw = request.headers[SESSION_HEADER];
    if (raw === undefined) return undefined;
    return parseMessage(sessionIdSchema, raw, SESSION_HEADER);
  };
  const waiters = new Map<string, Set<() => void>>();
  let closing = false;
  const notify = (participant: string): void => {
    const set = waiters.get(participant);
    if (!set) return;
    waiters.delete(participant);
    for (const wake of set) wake();
  };
  // Set once governance is constructed (it needs the audit log, which needs the store).
  let institutions = (): string[] => [...ws.consortium.institutions];
  const available = (): string[] => {
    const now = Date.now();
    const members = institutions();
    return store
      .listParticipants()
      .filter((p) => members.includes(p.id) && p.last_seen_at !== null && now - p.last_seen_at <= livenessMs)
      .map((p) => p.id);
  };
  const audit = new AuditLog({
    store,
    log: log.child({ component: 'audit' }),
    now: () => Date.now(),
    origin: ws.consortium.log?.origin ?? computeLogOrigin(ws.consortium.consortium),
    consortium: ws.consortium.consortium,
    logKeyPem: ws.logSigningKey(),
    witnesses: ws.consortium.witnesses ?? {},
    policy: {
      consortium: ws.consortium.consortium,
      institutions: ws.consortium.institutions,
      operators: ws.consortium.operators,
      log: ws.consortium.log ?? null,
      witnesses: ws.consortium.witnesses ?? {},
    },
  });
  const gov = new GovernanceStore(store.db);
  let engineRef: RunEngine | undefined;
  // Set once the rollout jobs exist (they need governance, which needs this hook).
  let rollBack = (_rollout: string, _proposal: string): void => {};
  // The model registry: a view of the audit log (versions, lineage, aliases moved by quorum).
  const registry = new ModelRegistry(audit);
  let drillsRef: IncidentDrills | undefined;
  const governance = new Governance({
    onIncidentResolved: (incident, entry) => drillsRef?.onIncidentResolved(incident, entry),
    registryView: () => registry.view(),
    ws,
    store,
    gov,
    audit,
    log: log.child({ component: 'governance' }),
    now: () => Date.now(),
    ca: ws.certificateAuthority(),
    certificateDays: ws.consortium.certificateDays ?? 7,
    startRun: (config, proposal) => engineRef!.createRun(config, { proposal }),
    checkRun: (config, policy) => {
      checkRunConfigAgainstPolicy(config, policy);
      // A run no declared site could execute is refused before anyone signs it.
      engineRef?.checkAgainstSites(parseRunConfig(config));
    },
    cancelRun: (runId, proposal) => engineRef?.cancelRun(runId, { by: 'quorum', proposal }),
    rollBack: (rollout, proposal) => rollBack(rollout, proposal),
    finalModelOf: (runId) => engineRef?.finalModelOf(runId),
    onMembershipChange: () => engineRef?.tick(),
  });
  institutions = () => governance.institutions();
  for (const [id, key] of Object.entries(governance.enrollment.enrolledWitnesses()))
    audit.addWitness(id, key);
  const engine = new RunEngine({
    audit,
    isPaused: () => governance.isPaused(),
    onCheckpoint: () => {
      for (const id of institutions()) notify(id);
    },
    store,
    blobs,
    log,
    now: () => Date.now(),
    available,
    notify,
    consortium: ws.consortium.consortium,
    pinnedKeyOf: (member) => governance.enrollment.pinnedKeyOf(member),
    schemaDigestOf: (participant) => store.getParticipantSchemaDigest(participant),
    declaredData: () => {
      const members = new Set(institutions());
      const out: { participant: string; shape: DataShape }[] = [];
      for (const row of store.listParticipantInfo()) {
        if (!members.has(row.id) || row.info_json === null) continue;
        const info = JSON.parse(row.info_json) as { data?: DataShape };
        if (info.data) out.push({ participant: row.id, shape: info.data });
      }
      return out;
    },
    ...(options.refusalWindowMs ? { refusalWindowMs: options.refusalWindowMs } : {}),
    perSiteEvaluationAllowed: () => governance.policy?.exchange.perSiteEvaluation === true,
  });
  const { evaluations, rollouts, knownModel } = createCoordinatorJobs({
    store,
    blobs,
    gov,
    log,
    audit,
    governance,
    engine,
    consortium: ws.consortium.consortium,
    notify,
    available,
    institutions: () => institutions(),
  });
  rollBack = (rollout, proposal) => rollouts.rollBackByQuorum(rollout, proposal);
  const monitoring = new MonitoringJobs({
    store,
    blobs,
    log: log.child({ component: 'monitoring' }),
    audit,
    now: () => Date.now(),
    notify,
    available,
    consortium: ws.consortium.consortium,
    pinnedKeyOf: (member) => governance.enrollment.pinnedKeyOf(member),
    registry: () => registry.view(),
    knownModel,
    settings: () => governance.policy?.monitoring,
    raiseIncident: (reason) => governance.raiseIncident('coordinator', reason).incident,
    openIncidentReasons: () =>
      gov
        .listIncidents()
        .filter((i) => i.resolved_at === null)
        .map((i) => i.reason),
    publishCheckpoint: () => {
      audit.publishCheckpoint();
      for (const id of institutions()) notify(id);
    },
    everyMs: options.monitorEveryMs,
    alias: options.monitorAlias,
  });
  /** Every engine's deadlines and next steps: runs, evaluation jobs, rollouts, monitoring. */
  const tick = (): void => {
    engine.tick();
    evaluations.tick();
    rollouts.tick();
    monitoring.tick();
  };
  const drills = new IncidentDrills({
    store,
    blobs,
    audit,
    log: log.child({ component: 'drills' }),
    now: () => Date.now(),
    isPaused: () => governance.isPaused(),
    raise: (by, reason, alongside) => governance.raiseIncident(by, reason, alongside),
    tick,
    registry: () => registry.snapshot(),
    publishCheckpoint: () => {
      audit.publishCheckpoint();
      for (const id of institutions()) notify(id);
    },
    everyMs: options.drillEveryMs,
    scheduledAlias: options.drillAlias,
  });
  drillsRef = drills;
  const maxPolls = options.maxPollsPerMember ?? DEFAULT_MAX_POLLS_PER_MEMBER;
  const quota = options.memberStorageBytes ?? DEFAULT_MEMBER_STORAGE_BYTES;
  const openPolls = new Map<string, number>();
  /** Bytes of uploads in progress per member (counted against its quota until they end). */
  const uploading = new Map<string, number>();

  const collect = (): void => collectGarbage(storage, options.chunkGraceMs ?? 3_600_000, log);
  collect();

  engineRef = engine;
  const identity = ws.coordinatorIdentity();
  const app = createMtlsServer({
    ...identity,
    logger: log.child({ component: 'http' }, { level: 'warn' }),
    publicPaths,
    ...(options.publicRequestsPerMinute ? { publicRequestsPerMinute: options.publicRequestsPerMinute } : {}),
    ...(options.publicRequestsPerMinuteTotal
      ? { publicRequestsPerMinuteTotal: options.publicRequestsPerMinuteTotal }
      : {}),
    revocationReason: (serial) => governance.enrollment.revocationReason(serial),
  });

  const guard = installRequestGuard(app, {
    rolesOf: (id) => governance.rolesOf(id),
    recordRefusal: (id, code, message) => engine.recordRefusal(id, code, message),
    traffic,
  });

  registerTaskRoutes(app, {
    guard,
    sessions,
    sessionOf,
    store,
    blobs,
    audit,
    engine,
    evaluations,
    rollouts,
    monitoring,
    governance,
    planner: () => planner,
    ws,
    log,
    tick,
    isClosing: () => closing,
    heartbeatMs,
    maxPolls,
    quota,
    openPolls,
    uploading,
    waiters,
  });
  registerRunRoutes(app, {
    guard,
    governance,
    engine,
    evaluations,
    store,
    ws,
    institutions: () => institutions(),
    available,
    traffic,
    openPolls,
  });
  registerLogRoutes(app, { guard, audit });
  registerRegistryRoutes(app, { guard, registry });
  registerRolloutRoutes(app, { guard, rollouts });
  registerMonitoringRoutes(app, { guard, monitoring });

  const planner = registerGovernanceRoutes(app, {
    guard,
    governance,
    engine,
    store,
    blobs,
    audit,
    ws,
    institutions: () => institutions(),
    available,
    notify,
    drills,
  });

  let address: string;
  try {
    address = await app.listen({ host, port });
  } catch (err) {
    await app.close().catch(() => {});
    store.close();
    throw listenError(err, port, remembered !== undefined);
  }
  const url = address.replace('0.0.0.0', '127.0.0.1').replace('[::1]', '127.0.0.1');
  const bound = Number(new URL(url).port);
  writeFileSync(portFile, `${JSON.stringify({ port: bound })}\n`);
  ws.writeEndpoint(url, process.pid);
  log.info({ url }, 'coordinator listening');
  const collector = setInterval(
    () => {
      try {
        collect();
      } catch (err) {
        log.error({ err }, 'garbage collection failed');
      }
    },
    options.gcIntervalMs ?? 10 * 60_000,
  );
  const ticker = setInterval(() => {
    try {
      tick();
      engine.flushRefusalSummaries();
      drills.tickSchedule();
    } catch (err) {
      log.error({ err }, 'tick failed');
    }
  }, options.tickMs ?? 500);

  return {
    url,
    engine,
    async close() {
      if (closing) return;
      clearInterval(ticker);
      clearInterval(collector);
      closing = true;
      evaluations.close();
      rollouts.close();
      monitoring.close();
      try {
        for (const p of [...waiters.keys()]) notify(p);
        await app.close();
        engine.flushRefusalSummaries(Date.now(), true);
        store.close();
        ws.removeEndpoint(process.pid);
      } finally {
        releaseLock();
      }
    },
  };
}
