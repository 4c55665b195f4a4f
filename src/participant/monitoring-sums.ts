/**
 * What this site adds to a deployed model's monitoring secure sum (phase `monitor`): its monitoring
 * vector (evaluation/monitoring-layout.ts) of the model the task names. Window `reference`: its own
 * training rows scored with the model, binned against the task's standardization (the model's
 * training reference); window `current`: the counts its monitoring file holds for the model
 * (`<monitoringDir>/<model sha256>.json`, written by `participant serve|score`), never a row; a site
 * without such a file adds zeros. Before anything is computed the site checks that the verified audit
 * log records the model as a version, that the task's model spec is the one the log records for it,
 * and derives the declaration itself from the monitoring spec, refusing any other.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { type LabeledData, applyStandardization } from '../data/index.ts';
import {
  MONITORING_FORMAT,
  type MonitoringLayout,
  type MonitoringSpec,
  accumulateMonitoring,
  checkMonitoringSums,
  createMonitoringLayout,
  createMonitoringSums,
  parseMonitoringSpec,
} from '../evaluation/index.ts';
import {
  type ModelSpec,
  countClasses,
  isRegressionSpec,
  parseModelSpec,
  predictProbabilities,
} from '../models/index.ts';
import {
  type SecAggSumTask,
  checkModelFitsData,
  declareMonitoringSum,
  monitoringJobId,
} from '../protocol/index.ts';
import type { RegistryView } from '../registry/index.ts';
import type { Weights } from '../core/tensor.ts';
import type { ParticipantContext } from './participant-context.ts';

/** A monitoring file larger than this is refused (as the CLI does). */
const MAX_MONITORING_FILE_BYTES = 64 * 1024 * 1024;

function refuse(field: string, message: string): never {
  throw new EntenteError('PROTOCOL_VIOLATION', `${field}: ${message}`, { field });
}

/**
 * The checks that need no data: the task's shape (run id of its model, reference in round 0 and each
 * current window in a later round), its monitoring spec against the model and this site's columns, and
 * the declaration this site derives. Returns the spec, layout and model spec. Throws PROTOCOL_VIOLATION
 * naming the field.
 */
export function checkMonitoringTask(
  task: SecAggSumTask,
  features: number,
): { spec: MonitoringSpec; layout: MonitoringLayout; modelSpec: ModelSpec } {
  const m = task.monitoring;
  if (task.phase !== 'monitor' || !m || !task.model)
    refuse('monitoring', 'a monitoring sum names its window');
  if (m.model !== task.model.sha256) refuse('monitoring.model', "is not the task's model");
  if (task.runId !== monitoringJobId(m.model))
    refuse('runId', "is not the monitoring run of the task's model");
  if ((m.window === 'reference') !== (task.round === 0))
    refuse('round', 'the reference window is round 0, each current window a later round');
  let spec: MonitoringSpec;
  try {
    spec = parseMonitoringSpec(m.spec);
  } catch (e) {
    if (!(e instanceof EntenteError)) throw e;
    refuse('monitoring.spec', e.message);
  }
  const modelSpec = parseModelSpec(task.modelSpec);
  if (isRegressionSpec(modelSpec)) refuse('modelSpec', 'monitoring measures a classifier');
  if (spec.numClasses !== countClasses(modelSpec))
    refuse('monitoring.spec.numClasses', `the model has ${countClasses(modelSpec)} classes`);
  if (spec.numFeatures !== features)
    refuse('monitoring.spec.numFeatures', `this site's records have ${features} model inputs`);
  const layout = createMonitoringLayout(spec);
  const derived = declareMonitoringSum({
    layout,
    maxRows: task.secureSum.maxRows,
    cohortSize: task.secagg.cohort.length,
    noise: task.secureSum.noise,
  });
  if (canonicalizeJson(task.secureSum) !== canonicalizeJson(derived))
    refuse('secureSum', 'is not the monitoring declaration this site derives from the monitoring spec');
  return { spec, layout, modelSpec };
}

/**
 * The model must be a version the verified log records, with the model spec the log records for its
 * run (the coordinator cannot have the site score with another architecture). Returns the aliases
 * pointing at it (for the site's own log line).
 */
export function checkMonitoredModel(view: RegistryView, task: SecAggSumTask): string[] {
  const sha = task.model!.sha256;
  const version = view.versions.find((v) => v.id === sha);
  if (!version) refuse('model', 'is not a model version the audit log this site verified records');
  const logged = version.modelSpecSha256;
  const sent = sha256Hex(new TextEncoder().encode(canonicalizeJson(task.modelSpec)));
  if (logged !== null && logged !== sent)
    refuse('modelSpec', 'is not the model spec the audit log records for this version');
  return view.aliases.filter((a) => a.version === sha).map((a) => a.alias);
}

function checkRowCount(task: SecAggSumTask, count: number): void {
  if (count > task.secureSum.maxRows)
    throw new EntenteError(
      'INVALID_DATA',
      `secureSum.maxRows: this site holds ${count} rows for this sum, more than the declared ${task.secureSum.maxRows}`,
      { field: 'secureSum.maxRows' },
    );
}

/**
 * Window `reference`: `rows` (this site's training rows) standardized with the training reference,
 * scored with the model and accumulated with their labels, exactly as `participant serve|score` bins
 * what they score.
 */
export function computeReferenceMonitoring(
  task: SecAggSumTask,
  layout: MonitoringLayout,
  modelSpec: ModelSpec,
  weights: Weights,
  rows: LabeledData,
  standardization: { mean: Float64Array; std: Float64Array } | undefined,
): Float64Array {
  checkRowCount(task, rows.count);
  const data = standardization ? applyStandardization(rows, standardization) : rows;
  const k = layout.spec.numClasses;
  const raw = predictProbabilities(modelSpec, weights, data.x);
  // Logistic regression gives P(y = 1) only: the two columns are [1 − p, p].
  const probabilities = new Float64Array(data.count * k);
  if (raw.length === data.count && k === 2)
    for (let i = 0; i < data.count; i++) {
      probabilities[2 * i] = 1 - raw[i]!;
      probabilities[2 * i + 1] = raw[i]!;
    }
  else probabilities.set(raw);
  const sums = createMonitoringSums(layout);
  accumulateMonitoring(layout, sums, { count: data.count, z: data.x, probabilities, labels: data.y });
  return sums;
}

/**
 * Window `current`: the counts of `<dir>/<model>.json` when it exists (checked: its format, its model,
 * the task's spec, every segment's length, the layout's consistency), zeros otherwise.
 */
export function readCurrentMonitoring(
  task: SecAggSumTask,
  layout: MonitoringLayout,
  dir: string | undefined,
): { sums: Float64Array; file: string | null } {
  const sums = createMonitoringSums(layout);
  const model = task.model!.sha256;
  const path = dir === undefined ? undefined : join(dir, `${model}.json`);
  if (path === undefined || !existsSync(path)) return { sums, file: null };
  function bad(message: string): never {
    throw new EntenteError('INVALID_DATA', `monitoring: ${path}: ${message}`, { field: 'monitoring' });
  }
  let value: unknown;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_MONITORING_FILE_BYTES) bad('larger than a monitoring file can be');
    value = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    if (e instanceof EntenteError) throw e;
    bad('not readable JSON');
  }
  const file = value as { format?: unknown; model?: unknown; spec?: unknown; sums?: unknown };
  if (typeof file !== 'object' || file === null || file.format !== MONITORING_FORMAT)
    bad('not an entente monitoring file');
  if (file.model !== model) bad('records another model');
  if (canonicalizeJson(file.spec ?? null) !== canonicalizeJson({ ...layout.spec }))
    bad('records another monitoring spec than the task asks for');
  const recorded = file.sums as Record<string, unknown> | undefined;
  if (typeof recorded !== 'object' || recorded === null) bad('has no sums');
  if (Object.keys(recorded).length !== layout.segments.length) bad('sums has an unknown or missing segment');
  for (const s of layout.segments) {
    const values = recorded[s.name];
    if (!Array.isArray(values) || values.length !== s.length)
      bad(`sums.${s.name} must have ${s.length} counts`);
    for (const [i, v] of values.entries()) {
      if (typeof v !== 'number') bad(`sums.${s.name} must hold numbers`);
      sums[s.offset + i] = v;
    }
  }
  checkMonitoringSums(layout, sums, 'monitoring');
  checkRowCount(task, sums[0]!);
  return { sums, file: path };
}

/**
 * This site's monitoring vector for a `monitor` task: the task checked, the model checked against the
 * verified log, then the reference or current window (secagg-stages.ts encodes it, with noise when the
 * declaration asks for it).
 */
export async function computeMonitoringSum(
  ctx: ParticipantContext,
  task: SecAggSumTask,
  standardization: { mean: Float64Array; std: Float64Array } | undefined,
): Promise<Float64Array> {
  const { layout, modelSpec } = checkMonitoringTask(task, ctx.split.train.dim);
  if (!ctx.checkRunApproved)
    refuse('model', 'this site needs the verified audit log to check which models it monitors');
  const aliases = checkMonitoredModel(await ctx.checkRunApproved.registry(), task);
  const window = task.monitoring!.window;
  if (window === 'reference') {
    checkModelFitsData(modelSpec, ctx.dataShape, ctx.options.institution);
    const weights = await ctx.connection.fetchModel(task.model!, modelSpec);
    const sums = computeReferenceMonitoring(
      task,
      layout,
      modelSpec,
      weights,
      ctx.split.train,
      standardization,
    );
    ctx.log.info(
      { run: task.runId, model: task.model!.sha256.slice(0, 12), aliases, rows: sums[0] },
      'monitoring reference: training rows scored into bin counts',
    );
    return sums;
  }
  const { sums, file } = readCurrentMonitoring(task, layout, ctx.options.monitoringDir);
  ctx.log.info(
    {
      run: task.runId,
      round: task.round,
      model: task.model!.sha256.slice(0, 12),
      aliases,
      rows: sums[0],
      file,
    },
    file ? 'monitoring counts of this site added' : 'no monitoring file for this model here: zeros added',
  );
  return sums;
}
