/** The main job meets its target: global accuracy >= 0.95 and above the institutions' mean alone. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { runDemo } from '../../src/simulation/index.ts';

describe('demo federation', () => {
  it('trains 20 rounds over mutual TLS and beats every institution alone on average', {
    timeout: 120_000,
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
    // No coordinator or participant process (spawned as `node bin/entente.js …`) is left behind.
    const left = execFileSync('ps', ['-eo', 'args'])
      .toString()
      .split('\n')
      .filter((l) => /bin\/entente\.js (coordinator|participant) start.*entente-demo-/.test(l));
    assert.deepEqual(left, []);
  });
});
