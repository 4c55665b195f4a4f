/**
 * Incidents: any member raises one and no new round or phase opens while one is open; they are
 * resolved by a resume-runs quorum (governance.ts) or, without a policy in force, by an operator.
 * Each change is an audit-log entry in the transaction that stores it.
 */
import { randomBytes } from 'node:crypto';
import { safeCallerText } from '../core/caller-text.ts';
import { EntenteError } from '../core/errors.ts';
import type { GovernanceDeps } from './governance.ts';

/** What incidents touch: the stores, the audit log, the logger, the clock and the drills' hook. */
export type IncidentDeps = Pick<
  GovernanceDeps,
  'store' | 'gov' | 'audit' | 'log' | 'now' | 'onIncidentResolved'
>;

/**
 * Any member raises an incident: no new round or phase opens until a quorum resumes. `alongside` runs
 * in the same transaction, right after the incident-raised entry (a drill names its incident there).
 */
export function raiseIncident(
  deps: IncidentDeps,
  by: string,
  reason: unknown,
  alongside?: (incident: string) => void,
): { incident: string; paused: boolean } {
  if (typeof reason !== 'string' || reason.trim().length === 0 || reason.length > 2000)
    throw new EntenteError('INVALID_ARGUMENT', 'reason: must be 1 to 2000 characters', { field: 'reason' });
  const id = `inc-${new Date(deps.now()).toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`;
  // Quoted later to operators and auditors: control characters escaped, bounded (the log's text limit).
  const said = safeCallerText(reason, 1900);
  deps.store.transaction(() => {
    deps.gov.insertIncident({ id, raised_by: by, reason: said, raised_at: deps.now() });
    deps.audit.append('incident-raised', { incident: id, raisedBy: by, reason: said });
    alongside?.(id);
  });
  deps.audit.publishCheckpoint();
  deps.log.warn({ incident: id, by }, 'incident raised: new rounds are paused');
  return { incident: id, paused: true };
}

/** Without a policy in force (a local workspace) an operator resumes directly; with one, only a quorum. */
export function resumeWithoutPolicy(deps: IncidentDeps, policyInForce: boolean, by: string): string[] {
  if (policyInForce)
    throw new EntenteError(
      'FORBIDDEN',
      'resuming needs a resume-runs proposal approved by the policy quorum',
      {
        field: 'kind',
      },
    );
  let closed: string[] = [];
  deps.store.transaction(() => {
    closed = deps.gov.resolveIncidents(deps.now(), [by], null);
    logResolutions(deps, closed, null, [by]);
  });
  deps.audit.publishCheckpoint();
  return closed;
}

/**
 * In the resolving transaction: one incident-resolved entry per closed incident, each followed by what
 * the drills log when the incident was a drill's (drill-completed).
 */
export function logResolutions(
  deps: IncidentDeps,
  closed: readonly string[],
  proposal: string | null,
  resolvedBy: readonly string[],
): void {
  for (const incident of closed) {
    const entry = deps.audit.append('incident-resolved', { incident, proposal, resolvedBy: [...resolvedBy] });
    deps.onIncidentResolved?.(incident, entry);
  }
}

/** Every incident, open or resolved, as the status view shows it. */
export function listIncidents(deps: IncidentDeps) {
  return deps.gov.listIncidents().map((i) => ({
    id: i.id,
    raisedBy: i.raised_by,
    reason: i.reason,
    raisedAt: new Date(i.raised_at).toISOString(),
    resolvedAt: i.resolved_at === null ? null : new Date(i.resolved_at).toISOString(),
    resolvedBy: i.resolved_by_json ? (JSON.parse(i.resolved_by_json) as string[]) : [],
    proposal: i.proposal,
  }));
}
