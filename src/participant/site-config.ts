/**
 * A participant site's own configuration: limits the institution sets for itself and that the
 * consortium cannot override. Today: its differential-privacy budget, per run and in total (ε, δ).
 * (Governance will add allowed models, trainer digests, minimum participants and the accepted schema.)
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
});

export interface SiteConfig {
  readonly privacyBudget?: SiteBudget;
}

/** Parses a site configuration; throws INVALID_CONFIG naming the field (e.g. site.privacy.total.epsilon). */
export function parseSiteConfig(input: unknown): SiteConfig {
  const r = siteConfigSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = ['site', ...issue.path.map(String)].join('.');
    throw new EntenteError('INVALID_CONFIG', `${field}: ${issue.message}`, { field });
  }
  const p = r.data.privacy;
  if (!p || (!p.perRun && !p.total)) return {};
  return {
    privacyBudget: {
      ...(p.perRun ? { perRun: p.perRun } : {}),
      ...(p.total ? { total: p.total } : {}),
    },
  };
}
