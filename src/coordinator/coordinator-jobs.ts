/**
 * The coordinator's jobs outside runs, wired to its store, audit log, governance and run engine:
 * evaluation jobs (pre-registered evaluation plans) and staged rollouts. Both hand out the models of
 * completed runs (knownModel) and read the proposals approved by quorum.
 */
import type { Logger } from 'pino';
import { parseEvaluationPlan, parseRolloutPlan } from '../governance/index.ts';
import { parseRunConfig } from '../protocol/index.ts';
import type { BlobStore, GovernanceStore, SqliteStore } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';
import type { KnownModel } from './evaluation-job-state.ts';
import { EvaluationJobs } from './evaluation-jobs.ts';
import type { Governance } from './governance.ts';
import { RolloutJobs } from './rollout-jobs.ts';
import type { RunEngine } from './run-engine.ts';

export interface CoordinatorJobsInput {
  readonly store: SqliteStore;
  readonly blobs: BlobStore;
  readonly gov: GovernanceStore;
  readonly log: Logger;
  readonly audit: AuditLog;
  readonly governance: Governance;
  readonly engine: RunEngine;
  readonly consortium: string;
  readonly notify: (participant: string) => void;
  readonly available: () => string[];
  readonly institutions: () => string[];
}

/** The subject of the approved proposal of `kind` whose subject digest is `digest`, with its id. */
function approvedSubject(
  gov: GovernanceStore,
  kind: string,
  digest: string,
): { id: string; subject: unknown } | undefined {
  for (const row of gov.listProposals()) {
    if (row.kind !== kind || row.status !== 'approved') continue;
    if ((JSON.parse(row.proposal_json) as { subjectSha256: string }).subjectSha256 !== digest) continue;
    return { id: row.id, subject: JSON.parse(row.subject_json) };
  }
  return undefined;
}

export function createCoordinatorJobs(input: CoordinatorJobsInput): {
  evaluations: EvaluationJobs;
  rollouts: RolloutJobs;
  knownModel: (sha256: string) => KnownModel | undefined;
} {
  const { store, blobs, gov, audit, governance, engine, notify, available } = input;
  const knownModel = (sha256: string): KnownModel | undefined => {
    for (const row of store.listRuns()) {
      if (row.status !== 'completed' || engine.finalModelOf(row.id) !== sha256) continue;
      const ref = engine.finalModelRef(row.id);
      if (!ref) continue;
      const config = parseRunConfig(JSON.parse(row.config_json));
      return {
        ref,
        modelSpec: config.model,
        ...(config.dataSchemaDigest ? { dataSchemaDigest: config.dataSchemaDigest } : {}),
        ...(row.standardization_json ? { standardization: JSON.parse(row.standardization_json) } : {}),
      };
    }
    return undefined;
  };
  const publishCheckpoint = (): void => {
    audit.publishCheckpoint();
    for (const id of input.institutions()) notify(id);
  };
  const common = {
    store,
    blobs,
    audit,
    now: () => Date.now(),
    notify,
    available,
    isPaused: () => governance.isPaused(),
    consortium: input.consortium,
    pinnedKeyOf: (member: string) => governance.enrollment.pinnedKeyOf(member),
    knownModel,
    publishCheckpoint,
  };
  const evaluations = new EvaluationJobs({
    ...common,
    log: input.log.child({ component: 'evaluation' }),
    approvedPlan: (digest) => {
      const found = approvedSubject(gov, 'approve-evaluation-plan', digest);
      return found ? parseEvaluationPlan(found.subject) : undefined;
    },
    perSiteAllowed: () => governance.policy?.exchange.perSiteEvaluation === true,
  });
  const rollouts = new RolloutJobs({
    ...common,
    log: input.log.child({ component: 'rollout' }),
    approvedRollout: (digest) => {
      const found = approvedSubject(gov, 'approve-rollout', digest);
      return found ? { plan: parseRolloutPlan(found.subject), proposal: found.id } : undefined;
    },
    institutions: input.institutions,
    evaluationOutcome: (plan) => {
      const outcome = evaluations.describe(plan)?.decision?.outcome;
      return outcome === 'pass' || outcome === 'fail' || outcome === 'undetermined' ? outcome : undefined;
    },
  });
  return { evaluations, rollouts, knownModel };
}
