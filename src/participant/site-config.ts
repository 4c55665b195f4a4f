/**
 * A participant site's own configuration: limits the institution sets for itself and that the
 * consortium cannot override (issue 6, "site policy"; NVIDIA FLARE's site-level privacy/authorisation
 * policies are the model: the job cannot change them). It refuses every task that breaks one, names
 * the limit, and records the refusal. Limits: its differential-privacy budget (per run and in total),
 * secure aggregation required, a minimum cohort, the model kinds and trainers it runs, the data
 * schemas (by digest) it accepts, and its circuit breaker for staged rollouts.
 */
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import type { SiteBudget } from '../privacy/index.ts';

const budgetSchema = z.strictObject({
  epsilon: z.number().finite().positive(),
  delta: z.number().finite().positive().max(0.1),
});

const siteConfigSchema = z.strictObject({
  privacy: z
    .strictObject({
      perRun: budgetSchema.optional(),
      total: budgetSchema.optional(),
    })
    .optional(),
  /** Refuse to train, or to reveal its statistics and evaluation figures, except masked in a secure sum. */
  requireSecureAggregation: z.boolean().default(false),
  /**
   * Reveal this site's own evaluation figures of an approved plan that asks for them (worst site, leave
   * one site out), as a logged disclosure; and let a plain run's round view name this site as the worst
   * site or the site left out (its figures of a plain run reach the coordinator in the clear anyway).
   * Default: never.
   */
  revealEvaluation: z.boolean().default(false),
  /**
   * Add its statistics and evaluation figures only to secure sums with differential-privacy noise
   * (charged to its ledger); refuse exact ones. Default: exact sums are allowed.
   */
  requireNoisedSums: z.boolean().default(false),
  /** Refuse a secure-aggregation round with a smaller cohort. */
  minParticipants: z.number().int().min(3).max(10_000).optional(),
  /** Model kinds this site trains (default: any built-in). */
  allowedModels: z
    .array(z.enum(['logistic', 'softmax', 'mlp']))
    .min(1)
    .optional(),
  /** Trainer ids this site runs (default: any). */
  allowedTrainers: z.array(z.string().min(1).max(100)).min(1).optional(),
  /** SHA-256 digests of the trainer code this site runs (`entente participant trainer-digest`). */
  allowedTrainerDigests: z
    .array(z.string().regex(/^[0-9a-f]{64}$/, 'must be SHA-256 hex'))
    .min(1)
    .optional(),
  /** Data-schema digests this site accepts; with it, a task must name one of them. */
  acceptedSchemaDigests: z
    .array(z.string().regex(/^[0-9a-f]{64}$/, 'must be SHA-256 hex'))
    .min(1)
    .optional(),
  /**
   * During a staged rollout's canary or full stage at this site: stop serving the candidate (and ask
   * for the rollout's rollback) when its accuracy on this site's rows falls below minAccuracy, or
   * below the production model's by more than maxAccuracyDrop. At least one of the two.
   */
  circuitBreaker: z
    .strictObject({
      minAccuracy: z.number().finite().min(0).max(1).optional(),
      maxAccuracyDrop: z.number().finite().min(0).max(1).optional(),
    })
    .refine((b) => b.minAccuracy !== undefined || b.maxAccuracyDrop !== undefined, {
      message: 'needs minAccuracy, maxAccuracyDrop or both',
    })
    .optional(),
});

/** A site's circuit breaker for staged rollouts (site.circuitBreaker). */
export interface CircuitBreakerConfig {
  readonly minAccuracy?: number;
  readonly maxAccuracyDrop?: number;
}

export interface SiteConfig {
  readonly privacyBudget?: SiteBudget;
  readonly requireSecureAggregation?: boolean;
  readonly revealEvaluation?: boolean;
  readonly requireNoisedSums?: boolean;
  readonly minParticipants?: number;
  readonly allowedModels?: readonly string[];
  readonly allowedTrainers?: readonly string[];
  readonly allowedTrainerDigests?: readonly string[];
  readonly acceptedSchemaDigests?: readonly string[];
  readonly circuitBreaker?: CircuitBreakerConfig;
}

/** Parses a site configuration; throws INVALID_CONFIG naming the field (e.g. site.privacy.total.epsilon). */
export function parseSiteConfig(input: unknown): SiteConfig {
  const r = siteConfigSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = ['site', ...issue.path.map(String)].join('.');
    throw new EntenteError('INVALID_CONFIG', `${field}: ${issue.message}`, { field });
  }
  const c = r.data;
  const p = c.privacy;
  return {
    ...(p && (p.perRun || p.total)
      ? {
          privacyBudget: {
            ...(p.perRun ? { perRun: p.perRun } : {}),
            ...(p.total ? { total: p.total } : {}),
          },
        }
      : {}),
    ...(c.requireSecureAggregation ? { requireSecureAggregation: true } : {}),
    ...(c.revealEvaluation ? { revealEvaluation: true } : {}),
    ...(c.requireNoisedSums ? { requireNoisedSums: true } : {}),
    ...(c.minParticipants !== undefined ? { minParticipants: c.minParticipants } : {}),
    ...(c.allowedModels ? { allowedModels: c.allowedModels } : {}),
    ...(c.allowedTrainers ? { allowedTrainers: c.allowedTrainers } : {}),
    ...(c.allowedTrainerDigests ? { allowedTrainerDigests: c.allowedTrainerDigests } : {}),
    ...(c.acceptedSchemaDigests ? { acceptedSchemaDigests: c.acceptedSchemaDigests } : {}),
    ...(c.circuitBreaker
      ? {
          circuitBreaker: {
            ...(c.circuitBreaker.minAccuracy !== undefined
              ? { minAccuracy: c.circuitBreaker.minAccuracy }
              : {}),
            ...(c.circuitBreaker.maxAccuracyDrop !== undefined
              ? { maxAccuracyDrop: c.circuitBreaker.maxAccuracyDrop }
              : {}),
          },
        }
      : {}),
  };
}

/** What the site policy looks at in a task. */
export interface TaskFacts {
  readonly kind: string;
  readonly secureAggregation: boolean;
  readonly cohortSize?: number | undefined;
  readonly modelKind?: string | undefined;
  readonly trainerId: string;
  /** SHA-256 of the trainer code (undefined: unknown, e.g. an external trainer). */
  readonly trainerDigest?: string | undefined;
  readonly dataSchemaDigest?: string | undefined;
}

/** Throws SITE_POLICY_REFUSED naming the limit the task breaks. */
export function checkSitePolicy(site: SiteConfig, task: TaskFacts): void {
  const refuse = (field: string, message: string): never => {
    throw new EntenteError('SITE_POLICY_REFUSED', `site.${field}: ${message}`, { field: `site.${field}` });
  };
  const trains = task.kind === 'train' || task.kind === 'secagg-train';
  if (trains && site.requireSecureAggregation && !task.secureAggregation)
    refuse(
      'requireSecureAggregation',
      'this site trains only under secure aggregation; the task sends a plain update',
    );
  // Its statistics and evaluation figures, too, leave only inside a secure sum.
  if ((task.kind === 'statistics' || task.kind === 'evaluate') && site.requireSecureAggregation)
    refuse(
      'requireSecureAggregation',
      `this site reveals its own ${task.kind === 'statistics' ? 'feature statistics' : 'evaluation figures'} only inside a secure sum; the task asks for them in the clear`,
    );
  if (
    site.minParticipants !== undefined &&
    task.cohortSize !== undefined &&
    task.cohortSize < site.minParticipants
  )
    refuse(
      'minParticipants',
      `the round has ${task.cohortSize} participants, this site requires at least ${site.minParticipants}`,
    );
  if (site.allowedModels && task.modelKind !== undefined && !site.allowedModels.includes(task.modelKind))
    refuse('allowedModels', `model kind "${task.modelKind}" is not one this site trains`);
  if (site.allowedTrainers && !site.allowedTrainers.includes(task.trainerId))
    refuse('allowedTrainers', `trainer "${task.trainerId}" is not one this site runs`);
  if (
    site.allowedTrainerDigests &&
    !(task.trainerDigest !== undefined && site.allowedTrainerDigests.includes(task.trainerDigest))
  )
    refuse(
      'allowedTrainerDigests',
      `this site's trainer code (${task.trainerDigest?.slice(0, 12) ?? 'unknown'}…) is not one it pinned`,
    );
  if (
    site.acceptedSchemaDigests &&
    !(task.dataSchemaDigest && site.acceptedSchemaDigests.includes(task.dataSchemaDigest))
  )
    refuse('acceptedSchemaDigests', 'the task does not name a data schema this site accepts');
}
