/**
 * A site's answer to a dry run (`entente run plan`, issue 6): the proposed run checked against this
 * institution's own policy, its privacy budget (its ledger composed with every round of the run) and
 * its data schema, before any data is touched. Each participant answers for itself; the coordinator
 * only relays the answer.
 */
import { EntenteError } from '../core/errors.ts';
import { type PrivacyEvent, type SiteBudget, checkPrivacyBudget } from '../privacy/index.ts';
import {
  type DataShape,
  type PlanResult,
  checkModelFitsData,
  createRoundPrivacyEvents,
  parseRunConfig,
} from '../protocol/index.ts';
import { type SiteConfig, checkSitePolicy } from './site-config.ts';

export interface SitePlanInput {
  readonly institution: string;
  readonly config: unknown;
  readonly cohortSize: number;
  readonly site?: SiteConfig | undefined;
  readonly budget?: SiteBudget | undefined;
  readonly ledger: readonly PrivacyEvent[];
  readonly trainerId: string;
  readonly trainerDigest?: string | undefined;
  /** SHA-256 of the data schema this site's records follow (undefined when unknown). */
  readonly dataSchemaDigest?: string | undefined;
  /** What this site's records look like (feature count, classes); the model must fit them. */
  readonly dataShape?: DataShape | undefined;
}

type Reason = PlanResult['reasons'][number];

export function answerPlan(input: SitePlanInput): { go: boolean; reasons: Reason[] } {
  const reasons: Reason[] = [];
  const who = input.institution;
  let config: ReturnType<typeof parseRunConfig>;
  try {
    config = parseRunConfig(input.config);
  } catch (err) {
    return {
      go: false,
      reasons: [{ check: 'run', ok: false, message: `${who}: ${(err as Error).message}` }],
    };
  }
  // Site policy: the limits this institution set for itself.
  try {
    checkSitePolicy(input.site ?? {}, {
      kind: config.secureAggregation.protocol === 'secagg' ? 'secagg-train' : 'train',
      secureAggregation: config.secureAggregation.protocol === 'secagg',
      cohortSize: input.cohortSize,
      modelKind: String((config.model as { kind?: unknown }).kind),
      trainerId: input.trainerId,
      trainerDigest: input.trainerDigest,
      dataSchemaDigest: config.dataSchemaDigest,
    });
    reasons.push({
      check: 'site-policy',
      ok: true,
      message: `${who}: the run is within this site's own limits`,
    });
  } catch (err) {
    if (!(err instanceof EntenteError)) throw err;
    reasons.push({ check: err.field ?? 'site-policy', ok: false, message: `${who}: ${err.message}` });
  }
  // The model against this site's records: a run it could not execute is a no-go now, not a failure later.
  if (input.dataShape) {
    try {
      checkModelFitsData(config.model, input.dataShape, who);
      reasons.push({
        check: 'model',
        ok: true,
        message: `${who}: the model fits this site's records (${input.dataShape.features} features, ${input.dataShape.classes} classes)`,
      });
    } catch (err) {
      if (!(err instanceof EntenteError)) throw err;
      reasons.push({ check: err.field ?? 'model', ok: false, message: `${who}: ${err.message}` });
    }
  }
  // Privacy budget over the whole run.
  const events: PrivacyEvent[] = [];
  for (let round = 1; round <= config.rounds; round++)
    events.push(...createRoundPrivacyEvents(config, round));
  if (!input.budget) {
    reasons.push({ check: 'site.privacy', ok: true, message: `${who}: this site set no privacy budget` });
  } else if (events.length === 0) {
    reasons.push({
      check: 'site.privacy',
      ok: false,
      message: `${who}: the run has no differential privacy (ε unbounded) and this site has a privacy budget`,
    });
  } else {
    const verdict = checkPrivacyBudget({
      ledger: [...input.ledger, ...events.slice(0, -1)],
      proposed: events.at(-1)!,
      budget: input.budget,
    });
    const spent = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : 'n/a');
    reasons.push(
      verdict.ok
        ? {
            check: 'site.privacy',
            ok: true,
            message: `${who}: after the run this site's ledger would be at ε = ${spent(verdict.epsilonRun)} for the run and ${spent(verdict.epsilonTotal)} in total, within its budget`,
          }
        : { check: 'site.privacy', ok: false, message: `${who}: ${verdict.reason}` },
    );
  }
  // Data schema compatibility.
  if (input.dataSchemaDigest === undefined) {
    reasons.push({
      check: 'data-schema',
      ok: false,
      message: `${who}: this site does not know its data schema digest`,
    });
  } else if (config.dataSchemaDigest === undefined) {
    // The coordinator holds every site of such a run to one shared schema (checked before the first
    // phase opens), and this site refuses any task that does not name its own.
    reasons.push({
      check: 'data-schema',
      ok: true,
      message: `${who}: the run names no data schema; its tasks must name this site's (${input.dataSchemaDigest})`,
    });
  } else if (input.dataSchemaDigest !== config.dataSchemaDigest) {
    reasons.push({
      check: 'data-schema',
      ok: false,
      message: `${who}: its records follow schema ${input.dataSchemaDigest.slice(0, 12)}…, the run asks for ${config.dataSchemaDigest.slice(0, 12)}…`,
    });
  } else {
    reasons.push({
      check: 'data-schema',
      ok: true,
      message: `${who}: its records follow the run's data schema`,
    });
  }
  return { go: reasons.every((r) => r.ok), reasons };
}
