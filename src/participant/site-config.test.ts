import assert from 'node:assert/strict';
import { computeBuiltinTrainerDigest } from './trainer-digest.ts';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { type TaskFacts, checkSitePolicy, parseSiteConfig } from './site-config.ts';

const task: TaskFacts = {
  kind: 'secagg-train',
  secureAggregation: true,
  cohortSize: 5,
  modelKind: 'logistic',
  trainerId: 'builtin/float32@1',
  dataSchemaDigest: 'ab'.repeat(32),
};
const refusedFor = (site: unknown, facts: TaskFacts): string | undefined => {
  try {
    checkSitePolicy(parseSiteConfig(site), facts);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof EntenteError && err.code === 'SITE_POLICY_REFUSED');
    return err.field;
  }
};

describe('site policy', () => {
  it('accepts a task within every limit, and any task when no limit is set', () => {
    const site = {
      requireSecureAggregation: true,
      minParticipants: 5,
      allowedModels: ['logistic'],
      allowedTrainers: ['builtin/float32@1'],
      acceptedSchemaDigests: ['ab'.repeat(32)],
    };
    assert.equal(refusedFor(site, task), undefined);
    assert.equal(
      refusedFor({}, { ...task, secureAggregation: false, kind: 'train', cohortSize: undefined }),
      undefined,
    );
  });

  it('refuses each broken limit, naming it', () => {
    assert.equal(
      refusedFor({ requireSecureAggregation: true }, { ...task, kind: 'train', secureAggregation: false }),
      'site.requireSecureAggregation',
    );
    assert.equal(refusedFor({ minParticipants: 6 }, task), 'site.minParticipants');
    assert.equal(refusedFor({ allowedModels: ['mlp'] }, task), 'site.allowedModels');
    assert.equal(refusedFor({ allowedTrainers: ['external/x'] }, task), 'site.allowedTrainers');
    assert.equal(
      refusedFor({ acceptedSchemaDigests: ['cd'.repeat(32)] }, task),
      'site.acceptedSchemaDigests',
    );
    assert.equal(
      refusedFor({ acceptedSchemaDigests: ['ab'.repeat(32)] }, { ...task, dataSchemaDigest: undefined }),
      'site.acceptedSchemaDigests',
    );
  });

  it('refuses trainer code whose digest the site did not pin, and an unknown digest', () => {
    const digest = computeBuiltinTrainerDigest();
    assert.match(digest, /^[0-9a-f]{64}$/);
    const pinned = parseSiteConfig({ allowedTrainerDigests: [digest] });
    assert.equal(refusedFor(pinned, { ...task, trainerDigest: digest }), undefined);
    assert.equal(
      refusedFor({ allowedTrainerDigests: ['cd'.repeat(32)] }, { ...task, trainerDigest: digest }),
      'site.allowedTrainerDigests',
    );
    assert.equal(refusedFor(pinned, { ...task, trainerDigest: undefined }), 'site.allowedTrainerDigests');
  });

  it('reveals statistics and evaluation figures only inside a secure sum when it requires secure aggregation', () => {
    for (const kind of ['evaluate', 'statistics'])
      assert.equal(
        refusedFor({ requireSecureAggregation: true }, { ...task, kind, secureAggregation: false }),
        'site.requireSecureAggregation',
      );
    assert.equal(
      refusedFor(
        { requireSecureAggregation: true },
        { ...task, kind: 'secagg-sum', secureAggregation: true },
      ),
      undefined,
    );
    assert.equal(refusedFor({}, { ...task, kind: 'evaluate', secureAggregation: false }), undefined);
  });

  it('names the field of a malformed site configuration', () => {
    assert.throws(
      () => parseSiteConfig({ minParticipants: 2 }),
      (e: unknown) => e instanceof EntenteError && e.field === 'site.minParticipants',
    );
    assert.throws(
      () => parseSiteConfig({ privacy: { total: { epsilon: -1, delta: 1e-5 } } }),
      (e: unknown) => e instanceof EntenteError && e.field === 'site.privacy.total.epsilon',
    );
    assert.throws(
      () => parseSiteConfig({ extra: 1 }),
      (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_CONFIG',
    );
  });

  it('reads a circuit breaker with at least one bound in [0, 1], naming the field of a bad one', () => {
    assert.deepEqual(parseSiteConfig({ circuitBreaker: { minAccuracy: 0.8 } }).circuitBreaker, {
      minAccuracy: 0.8,
    });
    assert.deepEqual(
      parseSiteConfig({ circuitBreaker: { minAccuracy: 0, maxAccuracyDrop: 0.05 } }).circuitBreaker,
      { minAccuracy: 0, maxAccuracyDrop: 0.05 },
    );
    assert.equal(parseSiteConfig({}).circuitBreaker, undefined);
    for (const [input, field] of [
      [{}, 'site.circuitBreaker'],
      [{ minAccuracy: 1.5 }, 'site.circuitBreaker.minAccuracy'],
      [{ maxAccuracyDrop: -0.1 }, 'site.circuitBreaker.maxAccuracyDrop'],
      [{ minAccuracy: 0.5, other: 1 }, 'site.circuitBreaker'],
    ] as const)
      assert.throws(
        () => parseSiteConfig({ circuitBreaker: input }),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_CONFIG' && e.field === field,
      );
  });
});
