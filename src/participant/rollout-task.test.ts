/**
 * A rollout task at a site (rollout-task.ts, circuit-breaker.ts, serving-dir.ts) with a stand-in
 * coordinator and log check and a real serving directory: sums and serving.json when the breaker holds;
 * when it trips, the record on disk, serving reverted to production, the journal, a statement signed by
 * the site's identity key, the refusal; later tasks of that rollout refused; a failed report retried.
 */
import assert from 'node:assert/strict';
import { assignRowsToStages } from '../governance/index.ts';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { EntenteError } from '../core/errors.ts';
import { encodeSafetensors } from '../core/safetensors.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { generateEd25519KeyPem, verifyEd25519 } from '../crypto/signatures.ts';
import type { LabeledData } from '../data/index.ts';
import { createPairedOutcomeLayout } from '../evaluation/paired-outcomes.ts';
import { type RolloutView, encodeCircuitBreakerStatement, parseRolloutPlan } from '../governance/index.ts';
import { builtinTrainer } from '../models/index.ts';
import {
  type SecAggSumTask,
  buildSecureSumWire,
  declarePairedOutcomeSum,
  rolloutJobId,
} from '../protocol/index.ts';
import { decideCircuitBreaker } from './circuit-breaker.ts';
import type { ParticipantContext } from './participant-context.ts';
import { computeRolloutSum } from './rollout-task.ts';
import { openServingDir } from './serving-dir.ts';
import { parseSiteConfig } from './site-config.ts';

const root = mkdtempSync(join(tmpdir(), 'entente-rollout-task-'));
after(() => rmSync(root, { recursive: true, force: true }));

const rows: LabeledData = {
  x: Float32Array.from([2, -1, -1, 2, -2, -2, 1, 1, 0.5, 3]),
  y: Int32Array.from([1, 1, 0, 0, 1]),
  count: 5,
  dim: 2,
  featureNames: ['f0', 'f1'],
};

function modelBytes(w: [number, number], b: number): Uint8Array {
  return encodeSafetensors([
    { name: 'dense0.weight', shape: [1, 2], data: Float32Array.from(w) },
    { name: 'dense0.bias', shape: [1], data: Float32Array.from([b]) },
  ]);
}
// Production: accuracy 3/5 on the rows; the good candidate 3/5; the bad one (x0 inverted) 2/5.
const PRODUCTION = modelBytes([0, 1], 0.1);
const GOOD = modelBytes([1, 0], 0);
const BAD = modelBytes([-1, 0], 0);
const ref = (bytes: Uint8Array) => {
  const sha256 = sha256Hex(bytes);
  return { sha256, bytes: bytes.length, chunks: [{ sha256, bytes: bytes.length }] };
};
const spec = { kind: 'logistic', inputDim: 2 };
const identity = generateEd25519KeyPem();

function rolloutView(candidate: Uint8Array): { digest: string; view: RolloutView } {
  const plan = parseRolloutPlan({
    consortium: 'x',
    title: 'roll out',
    candidate: sha256Hex(candidate),
    production: sha256Hex(PRODUCTION),
    stages: [
      { name: 'canary', sites: { draw: 2 }, minRows: 10, gate: { rule: 'candidate.accuracy >= 0.5' } },
      { name: 'full', sites: ['a', 'b', 'c'], minRows: 10, gate: { rule: 'candidate.accuracy >= 0.5' } },
    ],
    createdAt: '2026-01-31T12:00:00Z',
  });
  // A digest that assigns all five rows to the canary stage (assignRowsToStages), so these tests see
  // every row; which rows a stage scores is tested with the assignment itself.
  let digest = sha256Hex(candidate).split('').reverse().join('');
  while (assignRowsToStages(digest, 5, 2).some((s) => s !== 0))
    digest = sha256Hex(new TextEncoder().encode(digest));
  return {
    digest,
    view: {
      plan,
      stage: 'canary',
      sites: ['a', 'b'],
      gate: null,
      history: [{ stage: 'canary', sites: ['a', 'b'] }],
      status: 'running',
    },
  };
}

function rolloutTask(digest: string, candidate: Uint8Array, round = 1): SecAggSumTask {
  const declaration = declarePairedOutcomeSum({
    layout: createPairedOutcomeLayout({ maxRowLoss: 5 }),
    maxRows: 1000,
    cohortSize: 3,
  });
  return {
    taskId: `t${round}`,
    runId: rolloutJobId(digest),
    round,
    attempt: 0,
    issuedAt: 0,
    kind: 'secagg-sum',
    phase: 'rollout',
    secureSum: { ...declaration, segments: [...declaration.segments] },
    model: ref(candidate),
    modelSpec: spec,
    rollout: { digest, stage: 'canary' },
    production: { model: ref(PRODUCTION), modelSpec: spec },
    paired: { maxRowLoss: 5 },
    secagg: buildSecureSumWire({
      consortium: 'x',
      attempt: 0,
      cohort: ['a', 'b', 'c'],
      threshold: 3,
      declaration,
    }),
  };
}

interface Harness {
  ctx: ParticipantContext;
  fetched: string[];
  reports: { rollout: string; stage: string; signature: string }[];
  journal: { event: string; fields: Record<string, unknown> }[];
  failReports: { value: boolean };
}

function harness(dir: string, digest: string, view: RolloutView, site: unknown): Harness {
  const blobs = new Map([PRODUCTION, GOOD, BAD].map((b) => [sha256Hex(b), Buffer.from(b)]));
  const h: Omit<Harness, 'ctx'> = { fetched: [], reports: [], journal: [], failReports: { value: false } };
  const ctx = {
    options: {
      institution: 'a',
      signing: { certPem: '', keyPem: identity.privateKeyPem, caPem: '' },
      site: parseSiteConfig(site),
      servingDir: dir,
    },
    log: pino({ level: 'silent' }),
    trainer: builtinTrainer,
    dataShape: { features: 2, classes: 2 },
    evaluationRows: { data: rows },
    serving: openServingDir(dir),
    checkRunApproved: {
      approvedRollout: async (d: string) => {
        assert.equal(d, digest);
        return view;
      },
      rollouts: async () => new Map([[digest, view]]),
      aliases: async () => new Map([['production', view.plan.production!]]),
    },
    connection: {
      fetchModelBytes: async (r: { sha256: string }) => {
        h.fetched.push(r.sha256);
        return blobs.get(r.sha256)!;
      },
      reportCircuitBreaker: async (rollout: string, report: { stage: string; signature: string }) => {
        if (h.failReports.value) throw new EntenteError('UNAVAILABLE', 'coordinator down');
        h.reports.push({ rollout, ...report });
        return { rolledBack: true };
      },
    },
    journal: (event: string, fields: Record<string, unknown>) => h.journal.push({ event, fields }),
  } as unknown as ParticipantContext;
  return { ctx, ...h };
}

const refusalOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof EntenteError, String(err));
    return `${err.code} ${err.field}`;
  }
  return 'accepted';
};

const servingOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'serving.json'), 'utf8'));

describe('a rollout task at a site', () => {
  it('the breaker decides from this site’s accuracies, and holds without rows', () => {
    const acc = { candidateAccuracy: 0.7, productionAccuracy: 0.8 };
    assert.equal(decideCircuitBreaker({ minAccuracy: 0.7 }, acc), undefined);
    assert.match(decideCircuitBreaker({ minAccuracy: 0.71 }, acc)!, /below minAccuracy 0\.71/);
    assert.equal(decideCircuitBreaker({ maxAccuracyDrop: 0.1 }, acc), undefined);
    assert.match(decideCircuitBreaker({ maxAccuracyDrop: 0.09 }, acc)!, /more than maxAccuracyDrop/);
    assert.equal(
      decideCircuitBreaker({ minAccuracy: 1 }, { candidateAccuracy: null, productionAccuracy: null }),
      undefined,
    );
  });

  it('scores only the rows the rollout assigns to the stage', async () => {
    const { view } = rolloutView(GOOD);
    // A digest that splits the five rows between the two stages.
    let digest = 'f'.repeat(64);
    const split = (d: string) => assignRowsToStages(d, 5, 2).filter((s) => s === 0).length;
    while (split(digest) === 0 || split(digest) === 5) digest = sha256Hex(new TextEncoder().encode(digest));
    const h = harness(join(root, 'split'), digest, view, {});
    const values = await computeRolloutSum(h.ctx, rolloutTask(digest, GOOD));
    assert.equal(values[0], split(digest));
  });

  it('the breaker holding: the sums, both models stored, serving.json names the candidate', async () => {
    const dir = join(root, 'holds');
    const { digest, view } = rolloutView(GOOD);
    const h = harness(dir, digest, view, { circuitBreaker: { minAccuracy: 0.5, maxAccuracyDrop: 0.05 } });
    const values = await computeRolloutSum(h.ctx, rolloutTask(digest, GOOD));
    assert.equal(values[0], 5);
    for (const b of [GOOD, PRODUCTION]) {
      const sha = sha256Hex(b);
      assert.equal(sha256Hex(readFileSync(join(dir, 'models', `${sha}.safetensors`))), sha);
      const meta = JSON.parse(readFileSync(join(dir, 'models', `${sha}.json`), 'utf8'));
      assert.deepEqual(meta, {
        format: 'entente-site-model/1',
        sha256: sha,
        modelSpec: spec,
        standardization: null,
        dataSchemaDigest: null,
      });
    }
    const serving = servingOf(dir);
    assert.equal(serving.format, 'entente-serving/1');
    assert.deepEqual([serving.version, serving.rollout, serving.stage], [sha256Hex(GOOD), digest, 'canary']);
    // A second measurement reads both models from the serving directory.
    await computeRolloutSum(h.ctx, rolloutTask(digest, GOOD, 2));
    assert.equal(h.fetched.length, 2);
    assert.equal(h.reports.length, 0);
  });

  it('tripped: recorded, serving reverted, journaled, signed and reported, refused; never again', async () => {
    const dir = join(root, 'trips');
    const { digest, view } = rolloutView(BAD);
    const h = harness(dir, digest, view, { circuitBreaker: { maxAccuracyDrop: 0.1 } });
    assert.equal(
      await refusalOf(computeRolloutSum(h.ctx, rolloutTask(digest, BAD))),
      'SITE_POLICY_REFUSED site.circuitBreaker',
    );
    const record = JSON.parse(readFileSync(join(dir, 'rollouts', `${digest}.json`), 'utf8'));
    assert.equal(record.tripped.stage, 'canary');
    assert.equal(record.tripped.candidateAccuracy, 0.4);
    assert.equal(record.tripped.productionAccuracy, 0.6);
    assert.equal(typeof record.reportedAt, 'string');
    assert.equal(servingOf(dir).version, sha256Hex(PRODUCTION));
    assert.deepEqual(
      h.journal.map((j) => j.event),
      ['circuit-breaker-tripped', 'circuit-breaker-reported'],
    );
    assert.equal(h.reports.length, 1);
    const statement = encodeCircuitBreakerStatement(digest, 'canary', 'a');
    assert.ok(verifyEd25519(identity.publicKey, statement, Buffer.from(h.reports[0]!.signature, 'base64')));
    // Every later task of that rollout is refused before any model is fetched, across a restart.
    const restarted = harness(dir, digest, view, {});
    assert.equal(
      await refusalOf(computeRolloutSum(restarted.ctx, rolloutTask(digest, BAD, 2))),
      'SITE_POLICY_REFUSED site.circuitBreaker',
    );
    assert.equal(restarted.fetched.length, 0);
    assert.equal(servingOf(dir).version, sha256Hex(PRODUCTION));
  });

  it('a failed report never holds back the revert and is retried with the next rollout task', async () => {
    const dir = join(root, 'retry');
    const { digest, view } = rolloutView(BAD);
    const h = harness(dir, digest, view, { circuitBreaker: { minAccuracy: 0.5 } });
    h.failReports.value = true;
    assert.equal(
      await refusalOf(computeRolloutSum(h.ctx, rolloutTask(digest, BAD))),
      'SITE_POLICY_REFUSED site.circuitBreaker',
    );
    assert.equal(servingOf(dir).version, sha256Hex(PRODUCTION));
    assert.equal(h.ctx.serving.record(digest)?.reportedAt, undefined);
    assert.deepEqual(h.ctx.serving.unreported(), [{ digest, stage: 'canary' }]);
    h.failReports.value = false;
    await refusalOf(computeRolloutSum(h.ctx, rolloutTask(digest, BAD, 2)));
    assert.equal(h.reports.length, 1);
    assert.deepEqual(h.ctx.serving.unreported(), []);
  });

  it('shadow never trips; without the log check a rollout task is refused', async () => {
    const dir = join(root, 'shadow');
    const { digest, view } = rolloutView(BAD);
    const shadowView = { ...view, stage: 'shadow' as const, history: [{ stage: 'shadow', sites: ['a'] }] };
    const h = harness(dir, digest, shadowView, { circuitBreaker: { minAccuracy: 0.9 } });
    const task = { ...rolloutTask(digest, BAD), rollout: { digest, stage: 'shadow' as const } };
    assert.equal(await refusalOf(computeRolloutSum(h.ctx, task)), 'accepted');
    assert.equal(existsSync(join(dir, 'rollouts', `${digest}.json`)), false);
    assert.equal(servingOf(dir).version, sha256Hex(PRODUCTION));
    const noLog = { ...h.ctx, checkRunApproved: undefined } as ParticipantContext;
    assert.equal(await refusalOf(computeRolloutSum(noLog, task)), 'PROTOCOL_VIOLATION rollout');
  });
});
