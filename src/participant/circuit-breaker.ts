/**
 * A site's circuit breaker for staged rollouts (site.circuitBreaker), enforced whatever the coordinator
 * says. While a canary or full stage runs at this site, it compares the candidate's and the production
 * model's accuracy on its own rows; when the breaker trips, in this order: the trip is recorded durably
 * (`rollouts/<digest>.json`), this site serves the production version again (`serving.json`), the trip
 * is journaled, the signed circuit-breaker statement is posted to the coordinator (a failed post is
 * logged and retried with the next rollout task; it never holds back the revert), and the task is
 * refused. Every later task of that rollout is refused the same way: the site never serves that
 * candidate again.
 */
import { EntenteError } from '../core/errors.ts';
import { signEd25519 } from '../crypto/signatures.ts';
import { encodeCircuitBreakerStatement } from '../governance/index.ts';
import type { ParticipantContext } from './participant-context.ts';
import type { TripRecord } from './serving-dir.ts';
import type { CircuitBreakerConfig } from './site-config.ts';

const fmt = (x: number): string => String(Math.round(x * 10_000) / 10_000);
/** Accuracies are ratios of counts: a difference equal to the bound up to rounding does not trip. */
const ROUNDING = 1e-12;

/**
 * Why the breaker trips on these accuracies, or undefined when it holds (or there are no rows to judge
 * by). Pure.
 */
export function decideCircuitBreaker(
  config: CircuitBreakerConfig,
  accuracy: { candidateAccuracy: number | null; productionAccuracy: number | null },
): string | undefined {
  const c = accuracy.candidateAccuracy;
  const p = accuracy.productionAccuracy;
  if (c === null) return undefined;
  if (config.minAccuracy !== undefined && c < config.minAccuracy - ROUNDING)
    return `the candidate's accuracy on this site's rows, ${fmt(c)}, is below minAccuracy ${config.minAccuracy}`;
  if (config.maxAccuracyDrop !== undefined && p !== null && p - c > config.maxAccuracyDrop + ROUNDING)
    return `the candidate's accuracy on this site's rows, ${fmt(c)}, is ${fmt(p - c)} below the production model's ${fmt(p)}, more than maxAccuracyDrop ${config.maxAccuracyDrop}`;
  return undefined;
}

function refusal(message: string): EntenteError {
  return new EntenteError('SITE_POLICY_REFUSED', `site.circuitBreaker: ${message}`, {
    field: 'site.circuitBreaker',
  });
}

/** The refusal of any task of a rollout whose breaker tripped here. */
export function trippedRefusal(digest: string, trip: TripRecord): EntenteError {
  return refusal(
    `this site's circuit breaker tripped for rollout ${digest.slice(0, 12)}… in its ${trip.stage} stage (${trip.reason}); it never serves that candidate again`,
  );
}

/** Signs and posts the circuit-breaker statement of `digest`; true when the coordinator answered. */
async function report(ctx: ParticipantContext, digest: string, stage: string): Promise<boolean> {
  const { options, log } = ctx;
  if (!options.signing) {
    log.warn({ rollout: digest }, 'circuit breaker tripped, but this site has no identity key to sign it');
    return false;
  }
  try {
    const statement = encodeCircuitBreakerStatement(digest, stage, options.institution);
    const signature = Buffer.from(signEd25519(options.signing.keyPem, statement)).toString('base64');
    const { rolledBack } = await ctx.connection.reportCircuitBreaker(digest, { stage, signature });
    ctx.serving.markReported(digest, new Date().toISOString());
    ctx.journal('circuit-breaker-reported', { rollout: digest, stage, rolledBack });
    log.info({ rollout: digest, stage, rolledBack }, 'circuit breaker reported to the coordinator');
    return true;
  } catch (err) {
    log.warn(
      { rollout: digest, code: (err as EntenteError).code },
      `circuit breaker not reported yet (retried with the next rollout task): ${(err as Error).message}`,
    );
    return false;
  }
}

/** Posts every trip the coordinator has not acknowledged yet (best effort; never throws). */
export async function reportPendingTrips(ctx: ParticipantContext): Promise<void> {
  for (const { digest, stage } of ctx.serving.unreported()) await report(ctx, digest, stage);
}

/**
 * Trips the breaker for rollout `digest` at `stage`: records it, reverts serving (`revert`, whose
 * failure is logged), journals it, reports it, then throws the refusal.
 */
export async function tripCircuitBreaker(
  ctx: ParticipantContext,
  input: {
    readonly digest: string;
    readonly stage: string;
    readonly candidateAccuracy: number;
    readonly productionAccuracy: number;
    readonly reason: string;
    readonly revert: () => Promise<void>;
  },
): Promise<never> {
  const { digest, stage, reason } = input;
  const trip: TripRecord = {
    stage,
    at: new Date().toISOString(),
    candidateAccuracy: input.candidateAccuracy,
    productionAccuracy: input.productionAccuracy,
    reason,
  };
  ctx.serving.recordTrip(digest, trip);
  try {
    await input.revert();
  } catch (err) {
    ctx.log.error(
      { rollout: digest, code: (err as EntenteError).code },
      `could not rewrite serving.json: ${(err as Error).message}`,
    );
  }
  ctx.journal('circuit-breaker-tripped', { rollout: digest, ...trip });
  ctx.log.warn({ rollout: digest, stage }, `circuit breaker tripped: ${reason}`);
  await report(ctx, digest, stage);
  throw refusal(
    `${reason}; this site serves the production version again and asked for the rollout's rollback`,
  );
}
