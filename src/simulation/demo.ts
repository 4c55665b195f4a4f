/**
 * The main job, `entente demo`: a local federation of real processes on loopback with mutual TLS.
 * Breast cancer data (UCI, CC BY 4.0) — 20% of all rows held out as a common test set, the rest split
 * across three institutions by label skew (Dirichlet alpha = 0.5, fixed seed). One coordinator and
 * three participant processes train a logistic regression with FedAvg; the demo then compares the
 * global model on the common test set with each institution training alone on its own split.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import { parseVerifierKey, verifyCosignatures } from '../audit/index.ts';
import { decodeSafetensors } from '../core/safetensors.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import {
  type LabeledData,
  applyStandardization,
  computeFeatureStats,
  computeSchemaDigest,
  deriveStandardization,
  loadTable,
  parseCsv,
  parseDataSchema,
  partitionByLabelDirichlet,
  selectRows,
  splitTrainTest,
} from '../data/index.ts';
import { builtinTrainer, computeDpStepsPerEpoch, describeLayout, parseModelSpec } from '../models/index.ts';
import { calibrateNoiseMultiplier } from '../privacy/index.ts';
import type { BlobRef } from '../protocol/index.ts';
import { createWorkspace, ensurePrivateDir, writePrivateFile } from '../storage/index.ts';
import {
  type GovernanceReportData,
  renderGovernanceReportHtml,
  renderGovernanceReportMarkdown,
} from '../governance/index.ts';
import {
  DEMO_AUDITOR,
  type DemoMembers,
  approveByQuorum,
  createDemoPolicy,
  enrollDemoMembers,
} from './demo-governance.ts';
import { createMtlsClient } from '../transport/index.ts';
import { type DemoSummary, auditDemoLog, printSummary } from './demo-summary.ts';
import { startProcessFederation } from './process-federation.ts';
import {
  DEMO_SENSITIVE,
  addDemoAttribute,
  demoEvaluationSchema,
  evaluateCentrally,
  runDemoEvaluation,
  sameFigures,
} from './demo-evaluation.ts';

export const DATASET_DIR = fileURLToPath(new URL('../../datasets/breast-cancer/', import.meta.url));
export const DEMO_INSTITUTIONS = ['hospital-a', 'hospital-b', 'clinic-c'] as const;

export interface DemoOptions {
  readonly rounds: number;
  readonly json: boolean;
  readonly workspace?: string;
  readonly seed?: string;
  /** Sample-level DP-SGD with this target ε per institution for the whole run (δ = 1e-5). */
  readonly dpEpsilon?: number;
}

/** DP settings of the demo: Poisson rate and clip; the noise is calibrated to the target ε. */
export const DEMO_DP = { samplingRate: 0.05, clipNorm: 1, delta: 1e-5 } as const;

interface RunView {
  status: string;
  phase: string;
  round: number;
  totalRounds: number;
  model: BlobRef;
  standardization: { mean: number[]; std: number[] } | null;
  rounds: { round: number; evalAccuracy: number | null; trainLoss: number | null; modelOut: string | null }[];
  secureAggregation: {
    round: number;
    phase?: string;
    threshold: number;
    outcome: string;
    cohort: string[];
  }[];
  privacy: Record<string, { epsilonRun: number | null }>;
}

export function demoRunConfig(
  rounds: number,
  seed: string,
  dp?: { noiseMultiplier: number },
): Record<string, unknown> {
  const config = {
    id: 'demo',
    model: { kind: 'logistic', inputDim: 30 },
    strategy: { name: 'fedavg', minTrainParticipants: 3, minEvaluateParticipants: 3 },
    rounds,
    minParticipants: 3,
    train: { epochs: 2, batchSize: 16, learningRate: 0.1, optimizer: 'sgd' },
    standardize: 'federated',
    evaluate: true,
    roundTimeoutMs: 60_000,
    seed,
    secureAggregation: { protocol: 'secagg', stageTimeoutMs: 20_000, maxParticipants: 10, maxWeight: 1_000 },
  };
  if (!dp) return config;
  return {
    ...config,
    train: {
      ...config.train,
      dp: {
        clipNorm: DEMO_DP.clipNorm,
        noiseMultiplier: dp.noiseMultiplier,
        samplingRate: DEMO_DP.samplingRate,
      },
    },
  };
}

/** The noise multiplier that spends `epsilon` (δ = 1e-5) over the whole demo run (RDP accountant). */
export function calibrateDemoNoise(rounds: number, epsilon: number): number {
  const epochs = (demoRunConfig(rounds, '') as { train: { epochs: number } }).train.epochs;
  return calibrateNoiseMultiplier({
    accountant: 'rdp',
    targetEpsilon: epsilon,
    delta: DEMO_DP.delta,
    samplingRate: DEMO_DP.samplingRate,
    steps: rounds * epochs * computeDpStepsPerEpoch(DEMO_DP.samplingRate),
  });
}

/** Writes the rows `indices` of the CSV table as a CSV file (a copy of personal data: mode 0600). */
function writeRows(path: string, header: string[], rows: string[][], indices: readonly number[]): void {
  const lines = [header.join(',')];
  for (const i of indices) lines.push(rows[i]!.join(','));
  writePrivateFile(path, lines.join('\n') + '\n');
}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const started = performance.now();
  const seed = options.seed ?? 'entente-demo-v1';
  const csvText = readFileSync(join(DATASET_DIR, 'breast-cancer.csv'), 'utf8');
  const baseSchema = parseDataSchema(JSON.parse(readFileSync(join(DATASET_DIR, 'schema.json'), 'utf8')));
  // The demo's copy of the rows gains a synthetic sensitive attribute (demo-evaluation.ts says how).
  const table = addDemoAttribute(
    parseCsv(csvText).header,
    parseCsv(csvText).rows,
    baseSchema.label.name,
    'malignant',
    seed,
  );
  const schemaJson = demoEvaluationSchema(baseSchema);
  const schema = parseDataSchema(schemaJson);
  const all = loadTable(`${[table.header, ...table.rows].map((r) => r.join(',')).join('\n')}\n`, schema);

  // 20% of all rows: the common test set; the rest split by label skew across institutions.
  const outer = splitTrainTest(all, 0.2, createSeededRng(`${seed}/test-split`));
  const parts = partitionByLabelDirichlet(
    outer.train.y,
    2,
    DEMO_INSTITUTIONS.length,
    0.5,
    createSeededRng(`${seed}/partition`),
    {
      minPerPart: 40,
    },
  );

  const dp =
    options.dpEpsilon === undefined
      ? undefined
      : { noiseMultiplier: calibrateDemoNoise(options.rounds, options.dpEpsilon) };
  const keep = options.workspace !== undefined;
  const dir = options.workspace ?? mkdtempSync(join(tmpdir(), 'entente-demo-'));
  mkdirSync(dir, { recursive: true });
  // The coordinator's side only: members enroll on their own machines (here: their own site folders).
  const ws = await createWorkspace(dir, {
    consortium: 'demo',
    institutions: [...DEMO_INSTITUTIONS],
    members: { [DEMO_AUDITOR]: ['auditor'] },
    enrollment: true,
    now: new Date(),
  });
  const sitesDir = join(dir, 'sites');
  ensurePrivateDir(sitesDir);
  const schemaPath = join(dir, 'schema.json');
  writeFileSync(schemaPath, `${JSON.stringify(schemaJson, null, 2)}\n`);
  // The common test rows are the sites' evaluation rows: each site evaluates privately on its share.
  const evalOrder = [...outer.testIndices];
  const shuffle = createSeededRng(`${seed}/evaluation-rows`);
  for (let i = evalOrder.length - 1; i > 0; i--) {
    const j = Math.floor(shuffle.nextFloat64() * (i + 1));
    [evalOrder[i], evalOrder[j]] = [evalOrder[j]!, evalOrder[i]!];
  }
  const participants: DemoSummary['participants'] = {};
  const partData = new Map<string, LabeledData>();
  DEMO_INSTITUTIONS.forEach((id, k) => {
    const rows = parts[k]!.map((i) => outer.trainIndices[i]!);
    ensurePrivateDir(join(sitesDir, id));
    writeRows(join(sitesDir, id, 'data.csv'), table.header, table.rows, rows);
    writeRows(
      join(sitesDir, id, 'evaluation.csv'),
      table.header,
      table.rows,
      evalOrder.filter((_, i) => i % DEMO_INSTITUTIONS.length === k).sort((a, b) => a - b),
    );
    const local = selectRows(all, rows);
    partData.set(id, local);
    let malignant = 0;
    for (let i = 0; i < local.count; i++)
      if (local.y[i] === schema.label.classes.indexOf('malignant')) malignant++;
    participants[id] = { trainRows: local.count, malignant, benign: local.count - malignant };
  });

  const federation = await startProcessFederation({ workspace: dir, participants: [] });
  const client = createMtlsClient({
    baseUrl: federation.url,
    ...ws.operatorIdentity(),
    maxResponseBytes: 64 * 1024 * 1024,
  });
  const say = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const operatorId = ws.consortium.operators[0]!;
  let members: DemoMembers | undefined;
  let governance: DemoSummary['governance'];
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        {
          format: 'federating [{bar}] {value}/{total} rounds | {phase} | eval acc {acc}',
          stream: process.stderr,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let view: RunView;
  let finalBytes: Buffer;
  let traffic = { bytesSent: 0, bytesReceived: 0 };
  let privateEvaluation: Awaited<ReturnType<typeof runDemoEvaluation>> | undefined;
  try {
    // 1. Enrollment with one-time tokens; keys are made in each member's own folder.
    members = await enrollDemoMembers({
      url: federation.url,
      ws,
      operator: client,
      members: [...DEMO_INSTITUTIONS, DEMO_AUDITOR],
      dir,
    });
    say(`enrolled ${[...members.sites.keys()].join(', ')} with one-time tokens (keys made on site)`);
    // 2. The founding policy, adopted once every member it lists has signed it.
    const dataSchemaDigest = computeSchemaDigest(schema);
    const policy = createDemoPolicy({
      consortium: 'demo',
      operator: operatorId,
      institutions: DEMO_INSTITUTIONS,
      dataSchemaDigest,
    });
    const adopt = (
      await client.postJson<{ id: string; missing: string }>('/v1/proposals', {
        kind: 'adopt-policy',
        subject: policy,
      })
    ).body;
    say(`policy v1 proposed (${adopt.id.slice(0, 12)}…), needs ${adopt.missing}`);
    // A founding policy needs every member it lists (each consents to the roster and its pinned keys).
    const adopted = await approveByQuorum(
      members,
      adopt.id,
      [...DEMO_INSTITUTIONS, DEMO_AUDITOR, operatorId],
      say,
    );
    for (const id of DEMO_INSTITUTIONS)
      federation.startParticipant(
        id,
        [
          '--data',
          join(sitesDir, id, 'data.csv'),
          '--eval-data',
          join(sitesDir, id, 'evaluation.csv'),
          '--schema',
          schemaPath,
        ],
        join(sitesDir, id),
      );
    // 3. The run, started only when the startRun quorum signed.
    const config = { ...demoRunConfig(options.rounds, seed, dp), dataSchemaDigest };
    const proposed = (await client.postJson<{ proposal: string; missing: string }>('/v1/runs', config)).body;
    say(`run proposed (${proposed.proposal.slice(0, 12)}…), needs ${proposed.missing}`);
    const approved = await approveByQuorum(
      members,
      proposed.proposal,
      [operatorId, 'hospital-b', 'hospital-a'],
      say,
    );
    governance = {
      enrolled: [...members.sites.keys()],
      policy: { version: 1, approvedBy: adopted.signers },
      runApprovedBy: approved.signers,
      releaseApprovedBy: [],
      report: join(dir, 'governance-report.html'),
    };
    for (;;) {
      const r = await client.getJson('/v1/runs/demo').catch(() => undefined);
      if (r?.body) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    bar?.start(options.rounds, 0, { phase: 'starting', acc: '-' });
    let lastReported = -1;
    for (;;) {
      const r = await client.getJson<RunView>('/v1/runs/demo');
      view = r.body!;
      const done = view.rounds.filter((x) => x.evalAccuracy !== null).length;
      const last = view.rounds.filter((x) => x.evalAccuracy !== null).at(-1);
      const acc = last?.evalAccuracy != null ? last.evalAccuracy.toFixed(3) : '-';
      if (bar) bar.update(done, { phase: `${view.phase} r${view.round}`, acc });
      else if (done !== lastReported) {
        process.stderr.write(`round ${done}/${options.rounds} federated eval accuracy ${acc}\n`);
        lastReported = done;
      }
      if (view.status !== 'running') break;
      await new Promise((res) => setTimeout(res, 200));
    }
    bar?.stop();
    const status = await client.getJson<{ traffic: { bytesSent: number; bytesReceived: number } }>(
      '/v1/status',
    );
    traffic = status.body!.traffic;
    // 4. The final model leaves the consortium only when the releaseModel quorum signed.
    if (view.status === 'completed') {
      const release = (
        await client.postJson<{ id: string; missing: string }>('/v1/proposals', {
          kind: 'release-model',
          subject: { run: 'demo' },
        })
      ).body;
      say(`release of the final model proposed, needs ${release.missing}`);
      governance.releaseApprovedBy = (
        await approveByQuorum(members, release.id, [DEMO_AUDITOR, 'hospital-a'], say)
      ).signers;
    }
    // 5. The released model, evaluated privately on every site's evaluation rows under a pre-registered plan.
    if (view.status === 'completed')
      privateEvaluation = await runDemoEvaluation({
        client,
        members,
        signers: [operatorId, 'hospital-a', 'hospital-b'],
        modelSha256: view.model.sha256,
        dataSchemaDigest,
        dir,
        say,
      });
    // Fetch the released global model over the same authenticated API and check its address.
    const bytes = await client.getBytes('/v1/runs/demo/model', view.model.bytes);
    if (sha256Hex(bytes) !== view.model.sha256) throw new Error('final model does not match its digest');
    finalBytes = bytes;
    // The governance report, as an auditor would publish it.
    const auditor = members.sites.get(DEMO_AUDITOR)!;
    const auditorClient = createMtlsClient({ baseUrl: federation.url, ...auditor.tlsIdentity() });
    try {
      const data = (await auditorClient.getJson<GovernanceReportData>('/v1/report/governance')).body!;
      writeFileSync(join(dir, 'governance-report.md'), renderGovernanceReportMarkdown(data));
      writeFileSync(join(dir, 'governance-report.html'), renderGovernanceReportHtml(data));
    } finally {
      await auditorClient.close();
    }
    // The witnesses cosign the final checkpoint on their own; give them a moment to reach a quorum.
    const witnesses = members.witnesses.map((k) => parseVerifierKey(k));
    const quorum = Math.floor(witnesses.length / 2) + 1;
    for (let i = 0; i < 100; i++) {
      const r = await client.getJson<{ checkpoints: { size: number; note: string }[] }>(
        '/v1/log/checkpoints',
      );
      const newest = r.body!.checkpoints.at(-1);
      const cosigned = newest ? verifyCosignatures(newest.note, witnesses).filter((v) => v.ok).length : 0;
      if (cosigned >= Math.min(quorum, witnesses.length) && cosigned === witnesses.length) break;
      if (i >= 50 && cosigned >= quorum) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  } finally {
    await members?.close();
    await client.close();
    await federation.stop();
  }
  if (view.status !== 'completed') throw new Error(`run ended as ${view.status}`);
  const audit = auditDemoLog(dir, members.witnesses);

  const spec = parseModelSpec({ kind: 'logistic', inputDim: 30 });
  const globalWeights = decodeSafetensors(finalBytes, { expected: describeLayout(spec) }).weights;
  const fedStd = view.standardization!;
  const testFed = applyStandardization(outer.test, {
    mean: Float64Array.from(fedStd.mean),
    std: Float64Array.from(fedStd.std),
  });
  const globalAccuracy = builtinTrainer.evaluate(spec, globalWeights, testFed).accuracy;

  // Each institution alone: same trainer, same number of epochs, its own 80% and its own statistics.
  const localOnlyAccuracy: Record<string, number> = {};
  const cfg = demoRunConfig(options.rounds, seed) as {
    train: { epochs: number; batchSize: number; learningRate: number };
  };
  for (const id of DEMO_INSTITUTIONS) {
    const local = splitTrainTest(partData.get(id)!, 0.2, createSeededRng(`${id}/holdout`)).train;
    const std = deriveStandardization(computeFeatureStats(local));
    const init = builtinTrainer.initializeWeights(spec, createSeededRng(`${seed}/init`));
    const trained = builtinTrainer.train(
      spec,
      init,
      applyStandardization(local, std),
      {
        epochs: cfg.train.epochs * options.rounds,
        batchSize: cfg.train.batchSize,
        learningRate: cfg.train.learningRate,
        optimizer: 'sgd',
      },
      createSeededRng(`${seed}/local/${id}`),
    );
    localOnlyAccuracy[id] = builtinTrainer.evaluate(
      spec,
      trained.weights,
      applyStandardization(outer.test, std),
    ).accuracy;
  }
  const meanLocal = Object.values(localOnlyAccuracy).reduce((a, b) => a + b, 0) / DEMO_INSTITUTIONS.length;
  const lastEval = view.rounds.filter((x) => x.evalAccuracy !== null).at(-1)?.evalAccuracy ?? null;
  const fedParams = { mean: Float64Array.from(fedStd.mean), std: Float64Array.from(fedStd.std) };
  const central = evaluateCentrally(spec, globalWeights, outer.test, fedParams);
  const secure = privateEvaluation!.metrics;
  const summary: DemoSummary = {
    runId: 'demo',
    privateEvaluation: {
      rows: secure.overall.rows,
      accuracy: secure.overall.accuracy,
      logLoss: secure.overall.logLoss,
      brier: secure.overall.brier,
      ece: secure.overall.ece,
      rocAuc: secure.overall.rocAuc,
      averagePrecision: secure.overall.averagePrecision,
      demographicParityDifference: secure.fairness?.demographicParityDifference ?? null,
      equalizedOddsDifference: secure.fairness?.equalizedOddsDifference ?? null,
      sensitiveAttribute: DEMO_SENSITIVE.name,
      plan: privateEvaluation!.plan,
      decision: privateEvaluation!.decision,
      matchesCentralized: sameFigures(secure, central),
    },
    globalAccuracy,
    localOnlyAccuracy,
    meanLocalOnlyAccuracy: meanLocal,
    rounds: view.rounds.filter((x) => x.modelOut !== null).length,
    bytesSent: traffic.bytesSent,
    bytesReceived: traffic.bytesReceived,
    wallMs: Math.round(performance.now() - started),
    federatedEvalAccuracy: lastEval,
    participants,
    governance: governance!,
    audit,
    privacy:
      dp && options.dpEpsilon !== undefined
        ? {
            noiseMultiplier: dp.noiseMultiplier,
            samplingRate: DEMO_DP.samplingRate,
            clipNorm: DEMO_DP.clipNorm,
            targetEpsilon: options.dpEpsilon,
            delta: DEMO_DP.delta,
            epsilonSpent: Object.fromEntries(
              DEMO_INSTITUTIONS.map((id) => [id, view.privacy[id]?.epsilonRun ?? null]),
            ),
          }
        : null,
    secureAggregation: {
      protocol: view.secureAggregation.length > 0 ? 'secagg' : 'none',
      thresholds: [...new Set(view.secureAggregation.map((a) => a.threshold))],
      completed: view.secureAggregation.filter(
        (a) => a.outcome === 'completed' && (a.phase ?? 'train') === 'train',
      ).length,
      aborted: view.secureAggregation.filter((a) => a.outcome === 'aborted').length,
    },
  };
  printSummary(summary, options.rounds, all.count, outer.test.count);
  if (options.json) console.log(JSON.stringify(summary));
  if (!keep) rmSync(dir, { recursive: true, force: true });
  else console.error(`workspace kept in ${dir}`);
  return summary;
}
