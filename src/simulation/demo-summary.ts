/**
 * What `entente demo` reports: the summary object (also printed as JSON with --json), the table it
 * prints, and the verification of its own audit log (what `entente audit verify` does, with the
 * institutions' own witness keys as the trusted keys).
 */
import { join } from 'node:path';
import { parseVerifierKey, verifyCosignatures, verifyLog } from '../audit/index.ts';
import { SqliteStore, openWorkspace } from '../storage/index.ts';
import type { PrivateEvaluationSummary } from './demo-evaluation.ts';

export interface DemoSummary {
  /** The training run's id. */
  runId: string;
  /**
   * The released model evaluated under secure aggregation on the union of every site's evaluation rows
   * (sites/<id>/evaluation.csv), by a pre-registered plan; the sensitive attribute is synthetic.
   */
  privateEvaluation: PrivateEvaluationSummary;
  globalAccuracy: number;
  localOnlyAccuracy: Record<string, number>;
  meanLocalOnlyAccuracy: number;
  rounds: number;
  bytesSent: number;
  bytesReceived: number;
  wallMs: number;
  federatedEvalAccuracy: number | null;
  participants: Record<string, { trainRows: number; malignant: number; benign: number }>;
  /** `entente audit verify` on the demo's own log, after the coordinator stopped. */
  audit: {
    ok: boolean;
    entries: number;
    checkpoints: number;
    cosignatures: number;
    witnesses: number;
    problems: string[];
  };
  /** Who enrolled, and which members' signatures adopted the policy, started the run and released the model. */
  governance: {
    enrolled: string[];
    policy: { version: number; approvedBy: string[] };
    runApprovedBy: string[];
    releaseApprovedBy: string[];
    report: string;
  };
  /** How updates were combined: protocol, thresholds used, aborted attempts. */
  secureAggregation: { protocol: string; thresholds: number[]; completed: number; aborted: number };
  /** With --dp: the noise multiplier used and ε spent per institution (from each site's own ledger). */
  privacy: {
    noiseMultiplier: number;
    samplingRate: number;
    clipNorm: number;
    targetEpsilon: number;
    delta: number;
    epsilonSpent: Record<string, number | null>;
  } | null;
}

/**
 * What `entente audit verify --log <workspace>` does, on the demo's own log: read the coordinator's
 * store (read-only, after it stopped) and verify everything with the keys from the consortium file.
 */
export function auditDemoLog(dir: string, witnesses: readonly string[]): DemoSummary['audit'] {
  const ws = openWorkspace(dir);
  const store = new SqliteStore(join(ws.coordinatorStateDir(), 'coordinator.db'));
  try {
    const rows = store.listLogEntries();
    const checkpoints = store.listCheckpoints().map((c) => c.note);
    const report = verifyLog(
      {
        entries: rows.map((r) => new Uint8Array(r.body)),
        storedLeafHashes: rows.map((r) => new Uint8Array(r.leaf_hash)),
        checkpoints,
      },
      {
        log: ws.consortium.log!.key,
        witnesses: [...witnesses],
        quorum: Math.floor(witnesses.length / 2) + 1,
      },
    );
    const newest = checkpoints.at(-1);
    const cosignatures = newest
      ? verifyCosignatures(
          newest,
          witnesses.map((k) => parseVerifierKey(k)),
        ).filter((v) => v.ok).length
      : 0;
    return {
      ok: report.ok,
      entries: report.entries,
      checkpoints: report.checkpoints,
      cosignatures,
      witnesses: witnesses.length,
      problems: [...report.problems],
    };
  } finally {
    store.close();
  }
}

const num = (v: number | null): string => (v === null ? '—' : v.toFixed(4));

export function printSummary(s: DemoSummary, rounds: number, rows: number, testRows: number): void {
  const pct = (v: number): string => (v * 100).toFixed(1).padStart(6) + '%';
  const lines = [
    '',
    `Entente demo: ${rounds} rounds of FedAvg, logistic regression, UCI breast cancer (${rows} rows, ${testRows} held out as a common test set)`,
    '',
    '  model                          test accuracy   local rows (malignant/benign)',
    `  federated (global)            ${pct(s.globalAccuracy)}`,
    ...Object.entries(s.localOnlyAccuracy).map(
      ([id, acc]) =>
        `  ${(id + ' alone').padEnd(28)}  ${pct(acc)}        ${s.participants[id]!.trainRows} (${s.participants[id]!.malignant}/${s.participants[id]!.benign})`,
    ),
    `  mean of institutions alone    ${pct(s.meanLocalOnlyAccuracy)}`,
    '',
    `  rounds completed   ${s.rounds}`,
    s.secureAggregation.protocol === 'secagg'
      ? `  aggregation        secure aggregation (Bonawitz et al. 2017, full graph, ring 2^32), threshold ${s.secureAggregation.thresholds.join('/')} of 3; ${s.secureAggregation.completed} rounds unmasked as a sum only, ${s.secureAggregation.aborted} attempts aborted`
      : '  aggregation        plain (the coordinator saw each update)',
    `  federated eval     ${s.federatedEvalAccuracy === null ? '-' : pct(s.federatedEvalAccuracy)} (last round, sites' evaluation rows, secure sum)`,
    `  private eval       ${s.privateEvaluation.rows} rows under secure aggregation: accuracy ${num(s.privateEvaluation.accuracy)}, ROC AUC ${num(s.privateEvaluation.rocAuc)}, ECE ${num(s.privateEvaluation.ece)}, Brier ${num(s.privateEvaluation.brier)}; demographic parity difference ${num(s.privateEvaluation.demographicParityDifference)} over synthetic "${s.privateEvaluation.sensitiveAttribute}"; decision ${s.privateEvaluation.decision}; ${s.privateEvaluation.matchesCentralized ? 'equals' : 'DIFFERS FROM'} the centralized computation`,
    `  bytes sent         ${s.bytesSent.toLocaleString('en-US')} (coordinator -> participants)`,
    `  bytes received     ${s.bytesReceived.toLocaleString('en-US')} (participants -> coordinator)`,
    `  wall time          ${(s.wallMs / 1000).toFixed(1)} s`,
    `  governance         ${s.governance.enrolled.length} members enrolled with one-time tokens; policy v${s.governance.policy.version} adopted by ${s.governance.policy.approvedBy.join(', ')}; run approved by ${s.governance.runApprovedBy.join(', ')}; model released by ${s.governance.releaseApprovedBy.join(', ')}`,
    `  audit log          ${s.audit.ok ? 'VERIFIED' : 'FAILED'}: ${s.audit.entries} entries, ${s.audit.checkpoints} signed checkpoints, newest cosigned by ${s.audit.cosignatures} of ${s.audit.witnesses} institutions (entente audit verify --log ${'<workspace>'})`,
    ...s.audit.problems.map((p) => `    problem: ${p}`),
    ...(s.privacy
      ? [
          `  privacy            DP-SGD per institution, target ε = ${s.privacy.targetEpsilon} at δ = ${s.privacy.delta} (noise multiplier ${s.privacy.noiseMultiplier.toFixed(3)}, q = ${s.privacy.samplingRate}, clip ${s.privacy.clipNorm})`,
          ...Object.entries(s.privacy.epsilonSpent).map(
            ([id, e]) => `    ${id.padEnd(12)} ε spent ${e === null ? '-' : e.toFixed(3)} (its own ledger)`,
          ),
        ]
      : []),
    '',
  ];
  console.log(lines.join('\n'));
}
