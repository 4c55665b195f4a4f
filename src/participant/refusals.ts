/**
 * A participant's refusals and governance incidents: a task it will not or cannot execute is recorded
 * (in memory and in its journal) and posted once as a `refusal` result with the code and reason; a
 * broken governance rule it found in the audit log is raised as an incident, once per finding.
 */
import type { EntenteError } from '../core/errors.ts';
import type { Task } from '../protocol/index.ts';
import type { ParticipantContext } from './participant-context.ts';

/** A task this participant refused (protocol violation, site rule), as recorded locally. */
export interface Refusal {
  readonly at: number;
  readonly taskId: string;
  readonly kind: string;
  readonly round: number;
  readonly code: string;
  readonly field?: string | undefined;
  readonly message: string;
}

/**
 * Codes that mean a task cannot be executed at this site as it stands (its model does not fit the
 * records, a malformed task or result): retrying the same task gives the same answer, so it is refused
 * once, with the code and reason, and the coordinator decides what the phase does without it.
 */
export const CANNOT_EXECUTE: ReadonlySet<string> = new Set([
  'INVALID_ARGUMENT',
  'INVALID_CONFIG',
  'INVALID_MESSAGE',
  'INVALID_TENSOR',
  'INVALID_DATA',
  'MALFORMED_BODY',
  'BODY_TOO_LARGE',
]);

/** Records the refusal, posts it as the task's result, and raises a governance finding as an incident. */
export async function refuse(ctx: ParticipantContext, task: Task, err: EntenteError): Promise<void> {
  const { options, log, connection } = ctx;
  const refusal: Refusal = {
    at: Date.now(),
    taskId: task.taskId,
    kind: task.kind,
    round: task.round,
    code: err.code,
    field: err.field,
    message: err.message,
  };
  ctx.refusals.push(refusal);
  log.warn({ task: task.taskId, code: err.code, field: err.field }, `task refused: ${err.message}`);
  ctx.journal('task-refused', { ...refusal });
  await connection.withRetry(() =>
    connection.current().postJson(
      `/v1/tasks/${encodeURIComponent(task.taskId)}/result`,
      {
        kind: 'refusal',
        runId: task.runId,
        round: task.round,
        code: err.code,
        ...(err.field ? { field: err.field.slice(0, 200) } : {}),
        message: err.message.slice(0, 1000),
      },
      30_000,
    ),
  );
  if (
    options.requireApprovedRuns &&
    err.code === 'PROTOCOL_VIOLATION' &&
    err.message.startsWith('governance:')
  )
    await raiseGovernanceIncident(ctx, err.message);
}

/** A broken rule seen in the log is raised as an incident (once per finding): new rounds pause for all. */
export async function raiseGovernanceIncident(ctx: ParticipantContext, message: string): Promise<void> {
  const finding = message.replace(/^governance: /, '');
  if (ctx.raisedIncidents.has(finding)) return;
  ctx.raisedIncidents.add(finding);
  const reason = `${ctx.options.institution} found in the audit log: ${finding}`.slice(0, 2000);
  ctx.journal('incident-raised', { reason });
  await ctx.connection.withRetry(() =>
    ctx.connection.current().postJson('/v1/incidents', { reason }, 30_000),
  );
}
