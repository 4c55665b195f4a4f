/**
 * The task must be the run the quorum approved (issue 6): an enrolled site compares every train and
 * evaluate task with the run configuration recorded in the audit log it verified — the protocol (secure
 * aggregation or not), the model, every training option including DP-SGD's noise and sampling, the data
 * schema, client-level DP's noise and clip, a fixed secure-aggregation threshold, and no more attempts
 * of a round than maxAttemptsPerRound. A coordinator that
 * relays different settings than the approved ones (less noise, no masking, another model) is refused.
 */
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { computeUpdateNoiseMultiplier, type RunConfig, type Task } from '../protocol/index.ts';

function refuse(field: string, message: string): never {
  throw new EntenteError('PROTOCOL_VIOLATION', `${field}: ${message} than the run the quorum approved`, {
    field,
  });
}

const same = (a: unknown, b: unknown): boolean => canonicalizeJson(a ?? null) === canonicalizeJson(b ?? null);

/** Throws PROTOCOL_VIOLATION naming the first setting of `task` that differs from the approved `config`. */
export function checkTaskConformance(task: Task, config: RunConfig): void {
  if (task.kind !== 'train' && task.kind !== 'secagg-train' && task.kind !== 'evaluate') return;
  if (!same(task.modelSpec, config.model)) refuse('modelSpec', 'the task names another model');
  if (task.kind === 'evaluate') return;
  const secagg = config.secureAggregation.protocol === 'secagg';
  if (secagg !== (task.kind === 'secagg-train'))
    refuse(
      'kind',
      secagg ? 'the task asks for a plain update, a weaker protocol' : 'the task uses another protocol',
    );
  for (const [key, value] of Object.entries(config.train))
    if (!same((task.train as Record<string, unknown>)[key], value))
      refuse(`train.${key}`, 'the task has other training settings');
  if (config.train.dp === undefined && task.train.dp !== undefined)
    refuse('train.dp', 'the task has other DP settings');
  if (config.dataSchemaDigest !== undefined && task.dataSchemaDigest !== config.dataSchemaDigest)
    refuse('dataSchemaDigest', 'the task names another data schema');
  if (task.kind !== 'secagg-train') return;
  // Every attempt trains and may spend privacy: no more attempts of a round than the run allows.
  if (task.attempt >= config.maxAttemptsPerRound)
    refuse(
      'attempt',
      `the task is attempt ${task.attempt + 1} of round ${task.round} (maxAttemptsPerRound ${config.maxAttemptsPerRound}): more attempts`,
    );
  const cdp = config.clientDp;
  if (!cdp) {
    if (task.clientDp) refuse('clientDp', 'the task has other client-level DP settings');
  } else {
    if (!task.clientDp) refuse('clientDp', 'the task drops client-level DP, a weaker protection');
    if (task.clientDp.noiseMultiplier !== computeUpdateNoiseMultiplier(cdp))
      refuse('clientDp.noiseMultiplier', 'the task has another noise multiplier');
    const growth = cdp.adaptive?.maxGrowth ?? 1;
    const clip = task.clientDp.clipNorm;
    if (!(clip >= cdp.clipNorm / growth && clip <= cdp.clipNorm * growth))
      refuse('clientDp.clipNorm', 'the task has a clip outside the bounds');
  }
  const t = config.secureAggregation.threshold;
  if (t !== undefined && task.secagg.threshold !== t)
    refuse('secagg.threshold', 'the task has another threshold');
}
