/**
 * What a site adds to a monitoring secure sum and what it refuses: the reference window is its
 * training rows scored and binned exactly as accumulateMonitoring bins them; the current window is its
 * monitoring file's counts (zeros without a file); a declaration, round, run id or spec it does not
 * derive itself, a model the verified log does not record or with another spec, a file of another
 * model or spec, are refused naming the field.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { type LabeledData, applyStandardization } from '../data/index.ts';
import {
  MONITORING_FORMAT,
  type MonitoringSpec,
  accumulateMonitoring,
  compareMonitoring,
  createMonitoringLayout,
  createMonitoringSums,
  monitoringSlice,
  projectMonitoringSums,
} from '../evaluation/index.ts';
import { builtinTrainer, parseModelSpec, predictProbabilities } from '../models/index.ts';
import {
  type SecAggSumTask,
  buildSecureSumContext,
  buildSecureSumWire,
  declareMonitoringSum,
  monitoringJobId,
} from '../protocol/index.ts';
import type { RegistryView } from '../registry/index.ts';
import {
  checkMonitoredModel,
  checkMonitoringTask,
  computeReferenceMonitoring,
  readCurrentMonitoring,
} from './monitoring-sums.ts';

const fieldOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof EntenteError ? `${err.code} ${err.field}` : String(err);
  }
  return undefined;
};

const SHA = 'ab'.repeat(32);
const modelSpecJson = { kind: 'logistic', inputDim: 3 };
const modelSpec = parseModelSpec(modelSpecJson);
const modelRef = { sha256: SHA, bytes: 10, chunks: [{ sha256: SHA, bytes: 10 }] };
const spec: MonitoringSpec = { numFeatures: 3, numClasses: 2, featureBins: 16, scoreBins: 10 };
const layout = createMonitoringLayout(spec);
const weights = builtinTrainer.initializeWeights(modelSpec, createSeededRng('w'));
const std = { mean: Float64Array.from([0.5, -0.2, 0]), std: Float64Array.from([1.5, 0.7, 2]) };

function rows(n: number, seed: string): LabeledData {
  const rng = createSeededRng(seed);
  const x = Float32Array.from({ length: n * 3 }, () => rng.nextFloat64() * 4 - 2);
  const y = Int32Array.from({ length: n }, (_, i) => (x[i * 3]! > 0 ? 1 : 0));
  return { x, y, count: n, dim: 3, featureNames: ['f0', 'f1', 'f2'] };
}

function monitorTask(
  over: Partial<SecAggSumTask> = {},
  window: 'reference' | 'current' = 'reference',
): SecAggSumTask {
  const declaration = declareMonitoringSum({ layout, maxRows: 1000, cohortSize: 3 });
  return {
    taskId: 't',
    runId: monitoringJobId(SHA),
    round: window === 'reference' ? 0 : 1,
    attempt: 0,
    issuedAt: 0,
    kind: 'secagg-sum',
    phase: 'monitor',
    secureSum: { ...declaration, segments: [...declaration.segments] },
    model: modelRef,
    modelSpec: modelSpecJson,
    monitoring: { model: SHA, window, spec: { ...spec } },
    secagg: buildSecureSumWire({
      consortium: 'x',
      attempt: 0,
      cohort: ['a', 'b', 'c'],
      threshold: 3,
      declaration,
    }),
    ...over,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'entente-monitoring-sums-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A monitoring file as `participant serve|score` writes it. */
function writeFile(sums: Float64Array, over: Record<string, unknown> = {}): void {
  const bySegment: Record<string, number[]> = {};
  for (const s of layout.segments)
    bySegment[s.name] = Array.from(monitoringSlice(layout, sums, s.name as never));
  writeFileSync(
    join(dir, `${SHA}.json`),
    JSON.stringify({
      format: MONITORING_FORMAT,
      model: SHA,
      spec,
      inputColumns: ['f0', 'f1', 'f2'],
      classes: ['no', 'yes'],
      sums: bySegment,
      updatedAt: '2026-01-01T00:00:00.000Z',
      ...over,
    }),
  );
}

describe('a site’s monitoring vector', () => {
  it('reference window: its training rows scored, equal to accumulateMonitoring on them', () => {
    const train = rows(200, 'train');
    const task = monitorTask();
    const checked = checkMonitoringTask(task, 3);
    const got = computeReferenceMonitoring(task, checked.layout, checked.modelSpec, weights, train, std);
    const z = applyStandardization(train, std);
    const p = predictProbabilities(modelSpec, weights, z.x);
    const probabilities = new Float64Array(200 * 2);
    for (let i = 0; i < 200; i++) {
      probabilities[2 * i] = 1 - p[i]!;
      probabilities[2 * i + 1] = p[i]!;
    }
    const expected = createMonitoringSums(layout);
    accumulateMonitoring(layout, expected, { count: 200, z: z.x, probabilities, labels: train.y });
    assert.deepEqual(Array.from(got), Array.from(expected));
    assert.equal(got[0], 200);
    // Labels were added: the confusion matrix holds every row, no latency count.
    assert.equal(
      monitoringSlice(layout, got, 'confusion').reduce((a, b) => a + b, 0),
      200,
    );
    assert.equal(
      monitoringSlice(layout, got, 'latency').reduce((a, b) => a + b, 0),
      0,
    );
  });

  it("current window: the monitoring file's counts, zeros without a file", () => {
    const task = monitorTask({}, 'current');
    const none = readCurrentMonitoring(task, layout, dir);
    assert.equal(none.file, null);
    assert.ok(none.sums.every((v) => v === 0));
    assert.equal(readCurrentMonitoring(task, layout, undefined).file, null);
    const served = createMonitoringSums(layout);
    const batch = rows(30, 'served');
    const p = predictProbabilities(modelSpec, weights, batch.x);
    accumulateMonitoring(layout, served, {
      count: 30,
      z: batch.x,
      probabilities: Float64Array.from({ length: 60 }, (_, i) => (i % 2 ? p[i >> 1]! : 1 - p[i >> 1]!)),
      latencyMs: 3.5,
    });
    writeFile(served);
    const got = readCurrentMonitoring(task, layout, dir);
    assert.equal(got.file, join(dir, `${SHA}.json`));
    assert.deepEqual(Array.from(got.sums), Array.from(served));
    // The reference and the file compare: the drift of this site's served rows against its training rows.
    const reference = computeReferenceMonitoring(
      monitorTask(),
      layout,
      modelSpec,
      weights,
      rows(200, 'train'),
      undefined,
    );
    const drift = compareMonitoring(layout, reference, got.sums);
    assert.equal(drift.currentRows, 30);
    assert.ok(drift.latencyMs !== null);
  });

  it('refuses a file of another model or spec, or with inconsistent counts, naming the file', () => {
    const task = monitorTask({}, 'current');
    const served = createMonitoringSums(layout);
    served[0] = 1;
    writeFile(served, { model: 'cd'.repeat(32) });
    assert.equal(
      fieldOf(() => readCurrentMonitoring(task, layout, dir)),
      'INVALID_DATA monitoring',
    );
    writeFile(served, { spec: { ...spec, featureBins: 8 } });
    assert.match(
      String(
        (() => {
          try {
            readCurrentMonitoring(task, layout, dir);
          } catch (e) {
            return (e as Error).message;
          }
        })(),
      ),
      /another monitoring spec/,
    );
    writeFile(served);
    assert.equal(
      fieldOf(() => readCurrentMonitoring(task, layout, dir)),
      'INVALID_DATA monitoring.features',
    );
    // More rows than the declaration bounds.
    const many = createMonitoringSums(layout);
    const big = rows(1001, 'many');
    accumulateMonitoring(layout, many, {
      count: 1001,
      z: big.x,
      probabilities: new Float64Array(2002).fill(0.5),
    });
    writeFile(many);
    assert.equal(
      fieldOf(() => readCurrentMonitoring(task, layout, dir)),
      'INVALID_DATA secureSum.maxRows',
    );
    rmSync(join(dir, `${SHA}.json`));
  });

  it('refuses a hostile declaration, round, run id, spec or window, naming the field', () => {
    assert.equal(
      fieldOf(() => checkMonitoringTask(monitorTask(), 3)),
      undefined,
    );
    const wider = monitorTask();
    wider.secureSum.segments[1] = { ...wider.secureSum.segments[1]!, maxRowL2: 0.5 };
    assert.equal(
      fieldOf(() => checkMonitoringTask(wider, 3)),
      'PROTOCOL_VIOLATION secureSum',
    );
    const extra = monitorTask();
    extra.secureSum.segments.push({ ...extra.secureSum.segments[0]!, name: 'extra' });
    assert.equal(
      fieldOf(() => checkMonitoringTask(extra, 3)),
      'PROTOCOL_VIOLATION secureSum',
    );
    // Noise the coordinator declares is derived alike (the site's budget is charged for it when encoding).
    const honest = declareMonitoringSum({
      layout,
      maxRows: 1000,
      cohortSize: 3,
      noise: { noiseMultiplier: 1 },
    });
    assert.equal(
      fieldOf(() =>
        checkMonitoringTask(monitorTask({ secureSum: { ...honest, segments: [...honest.segments] } }), 3),
      ),
      undefined,
    );
    assert.equal(
      fieldOf(() => checkMonitoringTask(monitorTask({ round: 2 }), 3)),
      'PROTOCOL_VIOLATION round',
    );
    assert.equal(
      fieldOf(() => checkMonitoringTask(monitorTask({ round: 0 }, 'current'), 3)),
      'PROTOCOL_VIOLATION round',
    );
    assert.equal(
      fieldOf(() => checkMonitoringTask(monitorTask({ runId: 'monitor-x' }), 3)),
      'PROTOCOL_VIOLATION runId',
    );
    assert.equal(
      fieldOf(() =>
        checkMonitoringTask(
          monitorTask({ monitoring: { model: SHA, window: 'reference', spec: { ...spec, numClasses: 3 } } }),
          3,
        ),
      ),
      'PROTOCOL_VIOLATION monitoring.spec.numClasses',
    );
    assert.equal(
      fieldOf(() => checkMonitoringTask(monitorTask(), 4)),
      'PROTOCOL_VIOLATION monitoring.spec.numFeatures',
    );
    assert.equal(
      fieldOf(() =>
        checkMonitoringTask(
          monitorTask({ monitoring: { model: 'cd'.repeat(32), window: 'reference', spec } }),
          3,
        ),
      ),
      'PROTOCOL_VIOLATION monitoring.model',
    );
    // The protocol's own check: only a monitor sum carries a monitoring section, for its own model.
    assert.equal(
      fieldOf(() => buildSecureSumContext(monitorTask({ phase: 'evaluate' }))),
      'INVALID_MESSAGE monitoring',
    );
    assert.equal(
      fieldOf(() => buildSecureSumContext(monitorTask())),
      undefined,
    );
  });

  it('refuses a model the verified log does not record, or with another model spec', () => {
    const version = {
      id: SHA,
      modelSpecSha256: sha256Hex(new TextEncoder().encode(canonicalizeJson(modelSpecJson))),
    };
    const view = {
      versions: [version],
      aliases: [{ alias: 'production', version: SHA }],
    } as unknown as RegistryView;
    assert.deepEqual(checkMonitoredModel(view, monitorTask()), ['production']);
    const unknown = { versions: [], aliases: [] } as unknown as RegistryView;
    assert.equal(
      fieldOf(() => checkMonitoredModel(unknown, monitorTask())),
      'PROTOCOL_VIOLATION model',
    );
    assert.equal(
      fieldOf(() =>
        checkMonitoredModel(view, monitorTask({ modelSpec: { kind: 'logistic', inputDim: 3, l2: 1 } })),
      ),
      'PROTOCOL_VIOLATION modelSpec',
    );
  });

  it('a noised total is projected onto consistent counts (every histogram sums to the rows)', () => {
    const exact = computeReferenceMonitoring(
      monitorTask(),
      layout,
      modelSpec,
      weights,
      rows(300, 'p'),
      undefined,
    );
    const rng = createSeededRng('noise');
    const noisy = Float64Array.from(exact, (v) => v + (rng.nextFloat64() - 0.5) * 6);
    noisy[5] = -4;
    const projected = projectMonitoringSums(layout, noisy);
    assert.equal(projected[0], Math.round(noisy[0]!));
    assert.ok(projected.every((v) => Number.isInteger(v) && v >= 0));
    const drift = compareMonitoring(layout, exact, projected);
    assert.ok(
      drift.features.every((f) => f.psi < 0.2),
      JSON.stringify(drift.features),
    );
  });
});
