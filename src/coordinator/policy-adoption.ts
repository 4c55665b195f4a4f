/**
 * The effect of an approved adopt-policy or admit-member proposal, inside the approving transaction:
 * the new policy logged (`policy-adopted`) and stored, the log told which policy is in force from that
 * entry, and every proposal still open under the old policy closed as superseded (each logged as
 * `proposal-decided`): it could never be approved now.
 */
import type { Policy } from '../governance/index.ts';
import { computePolicyDigest } from '../governance/index.ts';
import type { GovernanceStore } from '../storage/index.ts';
import type { AuditLog } from './audit-log.ts';

export function adoptPolicy(
  deps: { readonly gov: GovernanceStore; readonly audit: AuditLog },
  next: Policy,
  proposal: string,
  now: number,
): void {
  const { gov, audit } = deps;
  const sha256 = computePolicyDigest(next);
  const logIndex = audit.append('policy-adopted', {
    policySha256: sha256,
    policy: JSON.parse(JSON.stringify(next)),
    version: next.version,
    proposal,
  });
  gov.insertPolicy({
    version: next.version,
    sha256,
    policy_json: JSON.stringify(next),
    adopted_at: now,
    proposal,
    log_index: logIndex,
  });
  audit.setPolicy(logIndex, sha256);
  for (const row of gov.listProposals()) {
    if (row.status !== 'open' || row.id === proposal) continue;
    const missing = `superseded: made under an earlier policy; policy version ${next.version} is in force`;
    gov.setProposalStatus(row.id, 'rejected', missing, now);
    audit.append('proposal-decided', {
      proposal: row.id,
      outcome: 'rejected',
      signers: gov.listSignatures(row.id).map((x) => x.signer),
      missing,
    });
  }
}
