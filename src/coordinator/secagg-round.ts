/**
 * One secure-aggregation attempt on the coordinator: the I/O shell of the sans-I/O
 * `SecAggServerMachine` (protocol/secagg-server-machine.ts), which decides the stages, deadlines,
 * masked-input checks and folding, and the unmasking. This file passes it the time and the blob store
 * to read masked inputs from, and performs what it asks: tasks written and closed in the store,
 * participants woken, audit entries, event records, the durable unmasking mark, the operator's log.
 * `createSecAggRoundDeps` is the one place the three kinds of attempt (train rounds, a run's secure
 * sums, evaluation jobs) build these dependencies from the engine's.
 */
import type { Logger } from 'pino';
import {
  type SecAggOutcome,
  type SecAggServerEffect,
  SecAggServerMachine,
  type SumPhase,
  type Task,
  type TaskResult,
} from '../protocol/index.ts';
import type { PinnedKeyResolver, SecAggRoundContext, SecAggStage, ServerSession } from '../secagg/index.ts';
import type { BlobStore, SqliteStore } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';

export { SECAGG_TASK_KINDS, type SecAggOutcome, type SumPhase } from '../protocol/index.ts';

export interface SecAggRoundDeps {
  readonly store: SqliteStore;
  readonly blobs: BlobStore;
  readonly log: Logger;
  readonly now: () => number;
  readonly notify: (participant: string) => void;
  readonly record: (kind: string, participant: string | null, code: string | null, message: string) => void;
  readonly audit: AuditLog;
}

/** The attempt's dependencies from the engine's: `record` says where its event records go. */
export function createSecAggRoundDeps(
  deps: Pick<SecAggRoundDeps, 'store' | 'blobs' | 'log' | 'now' | 'notify' | 'audit'>,
  record: SecAggRoundDeps['record'],
): SecAggRoundDeps {
  return {
    store: deps.store,
    blobs: deps.blobs,
    log: deps.log,
    now: deps.now,
    notify: deps.notify,
    record,
    audit: deps.audit,
  };
}

export class SecAggRound {
  private readonly deps: SecAggRoundDeps;
  private readonly machine: SecAggServerMachine;
  private readonly onDone: (outcome: SecAggOutcome) => void;

  constructor(input: {
    deps: SecAggRoundDeps;
    context: SecAggRoundContext;
    /** A secure sum of this phase instead of a training delta (first-stage task kind 'secagg-sum'). */
    phase?: SumPhase;
    /** Members' identity keys as pinned in the audit log (adverts are verified against them). */
    pinnedKeyOf: PinnedKeyResolver;
    firstStageTimeoutMs: number;
    stageTimeoutMs: number;
    firstTask: (participant: string, taskId: string, issuedAt: number) => Task;
    onDone: (outcome: SecAggOutcome) => void;
  }) {
    this.deps = input.deps;
    this.onDone = input.onDone;
    this.machine = new SecAggServerMachine({
      context: input.context,
      phase: input.phase,
      pinnedKeyOf: input.pinnedKeyOf,
      firstStageTimeoutMs: input.firstStageTimeoutMs,
      stageTimeoutMs: input.stageTimeoutMs,
      firstTask: input.firstTask,
    });
  }

  get session(): ServerSession {
    return this.machine.session;
  }

  get phase(): SumPhase | undefined {
    return this.machine.phase;
  }

  /** Writes the stage-1 tasks (secagg-train or secagg-sum) for the cohort. */
  start(): void {
    this.perform(this.machine.start(this.deps.now()));
  }

  taskId(stage: SecAggStage, participant: string): string {
    return this.machine.taskId(stage, participant);
  }

  /** Accepts one stage result (already matched to its open task). Throws a coded error when refused. */
  async accept(participant: string, result: TaskResult): Promise<void> {
    this.perform(
      await this.machine.accept(participant, result, { now: this.deps.now(), chunks: this.deps.blobs }),
    );
  }

  /** A participant refused its task of the current stage: the stage may close without it. */
  async noteRefusal(participant: string, taskId: string, reason: string): Promise<void> {
    this.perform(await this.machine.noteRefusal(participant, taskId, reason, this.deps.now()));
  }

  /** Enforces the stage deadline. */
  async tick(now: number): Promise<void> {
    this.perform(await this.machine.tick(now));
  }

  /** Abandons the attempt (run stopped, coordinator shutting down); its open tasks are closed by the caller. */
  expire(): void {
    this.machine.expire();
  }

  private perform(effects: readonly SecAggServerEffect[]): void {
    const { store, audit, now } = this.deps;
    const ctx = this.machine.context;
    for (const e of effects) {
      switch (e.type) {
        case 'write-tasks': {
          const at = now();
          store.transaction(() => {
            for (const { participant, task } of e.tasks)
              store.insertTask({
                id: task.taskId,
                run_id: ctx.runId,
                round: ctx.round,
                kind: task.kind,
                participant,
                status: 'open',
                task_json: JSON.stringify(task),
                created_at: at,
                completed_at: null,
              });
          });
          for (const { participant } of e.tasks) this.deps.notify(participant);
          break;
        }
        case 'task-done':
          store.setTaskStatus(e.taskId, 'done', now());
          break;
        case 'expire-open-tasks': {
          const at = now();
          for (const id of e.taskIds)
            if (store.getTask(id)?.status === 'open') store.setTaskStatus(id, 'expired', at);
          break;
        }
        case 'release-chunks':
          store.releaseChunkUploads(e.participant, [...e.chunks]);
          break;
        case 'audit':
          audit.append(e.kind, e.body);
          break;
        case 'dropped':
          this.deps.record('secagg-dropped', null, null, e.message);
          break;
        case 'stage-opened':
          this.deps.log.info(
            {
              run: ctx.runId,
              round: ctx.round,
              attempt: ctx.attempt,
              stage: e.stage,
              participants: e.participants,
            },
            'secure aggregation stage opened',
          );
          break;
        case 'mark-unmasking':
          store.markSecAggAttemptUnmasking({
            run_id: ctx.runId,
            round: ctx.round,
            attempt: ctx.attempt,
            ...(this.machine.phase ? { phase: this.machine.phase } : {}),
          });
          break;
        case 'deadline':
          break; // the machine keeps it; the engine's tick timer calls `tick`
        case 'done':
          this.onDone(e.outcome);
          break;
      }
    }
  }
}
