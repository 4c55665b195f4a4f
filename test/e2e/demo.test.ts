/** The main job meets its target: global accuracy >= 0.95 and above the institutions' mean alone. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { runDemo } from '../../src/simulation/index.ts';

describe('demo federation', () => {
  it('trains 20 rounds over mutual TLS and beats every institution alone on average', {
    timeout: 180_000,
  }, async () => {
    const s = await runDemo({ rounds: 20, json: false });
    assert.equal(s.rounds, 20);
    assert.ok(s.globalAccuracy >= 0.95, `global accuracy ${s.globalAccuracy}`);
    assert.ok(
      s.globalAccuracy > s.meanLocalOnlyAccuracy,
      `global ${s.globalAccuracy} vs local mean ${s.meanLocalOnlyAccuracy}`,
    );
    assert.deepEqual(Object.keys(s.localOnlyAccuracy).sort(), ['clinic-c', 'hospital-a', 'hospital-b']);
    assert.ok(s.bytesSent > 0 && s.bytesReceived > 0);
    assert.equal(s.secureAggregation.protocol, 'secagg');
    assert.equal(s.secureAggregation.completed, 20);
    assert.ok(s.audit.ok, `audit verify: ${s.audit.problems.join('; ')}`);
    assert.equal(s.audit.cosignatures, 3, 'every institution cosigned the final checkpoint');
    // The governance path: enrolled with tokens, policy adopted, run started and model released by quorum.
    assert.deepEqual([...s.governance.enrolled].sort(), ['auditor', 'clinic-c', 'hospital-a', 'hospital-b']);
    assert.ok(s.governance.policy.approvedBy.includes('auditor'), 'adoptPolicy needs the auditor');
    assert.ok(s.governance.runApprovedBy.includes('operator'), 'startRun needs the operator');
    assert.ok(s.governance.releaseApprovedBy.includes('auditor'), 'releaseModel needs the auditor');
    // The released model, evaluated privately (secure aggregation) on every site's evaluation rows by a
    // pre-registered plan: the union of those rows is the common test set, and the secure figures equal
    // the centralized computation on it.
    assert.equal(s.runId, 'demo');
    const pe = s.privateEvaluation;
    assert.equal(pe.rows, 114);
    assert.equal(pe.accuracy, s.globalAccuracy, 'private accuracy = accuracy on the common test set');
    assert.equal(pe.matchesCentralized, true);
    assert.equal(pe.sensitiveAttribute, 'group');
    for (const k of ['logLoss', 'brier', 'ece', 'rocAuc', 'averagePrecision'] as const)
      assert.ok(typeof pe[k] === 'number' && Number.isFinite(pe[k]), `${k}: ${pe[k]}`);
    assert.ok(pe.rocAuc! > 0.95, `ROC AUC ${pe.rocAuc}`);
    assert.ok(pe.demographicParityDifference !== null && pe.equalizedOddsDifference !== null);
    assert.equal(pe.decision, 'pass');
    // No coordinator or participant process (spawned as `node bin/entente.js …`) is left behind.
    const left = execFileSync('ps', ['-eo', 'args'])
      .toString()
      .split('\n')
      .filter((l) => /bin\/entente\.js (coordinator|participant) start.*entente-demo-/.test(l));
    assert.deepEqual(left, []);
  });
});
