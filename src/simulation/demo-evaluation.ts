/**
 * The demo's private evaluation of the released model: a pre-registered plan approved by the
 * consortium's quorum, then evaluated under secure aggregation on every site's own evaluation rows
 * (blinded label committed first), with fairness over a sensitive attribute and a covariate-shifted
 * slice. Also the demo's data additions, stated plainly:
 *
 * - The UCI breast cancer data has no demographic column. The demo adds a SYNTHETIC attribute `group`
 *   (values A and B) to its copy of the rows: drawn with a fixed seed, P(group = B) = 0.3 for a benign
 *   and 0.7 for a malignant row, so it is correlated with the label (and hence with the model's
 *   predictions) but carries no real-world meaning. It is not a model input.
 * - The slice `large-tumours` (mean_radius ≥ 15) is a covariate-shifted subset: its feature
 *   distribution and label mix differ from the whole.
 */
import { join } from 'node:path';
import type { Weights } from '../core/tensor.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import { type DataSchema, type LabeledData, applyStandardization } from '../data/index.ts';
import {
  type EvaluationMetrics,
  type EvaluationSpec,
  accumulateEvaluation,
  createEvaluationLayout,
  finalizeEvaluation,
  parseEvaluationSpec,
  renderEvaluationReport,
} from '../evaluation/index.ts';
import { computeEvaluationPlanDigest, parseEvaluationPlan } from '../governance/index.ts';
import { type ModelSpec, predictProbabilities } from '../models/index.ts';
import { writePrivateFile } from '../storage/index.ts';
import type { MtlsClient } from '../transport/index.ts';
import { type DemoMembers, approveByQuorum } from './demo-governance.ts';

export const DEMO_SENSITIVE = { name: 'group', values: ['A', 'B'] } as const;
export const DEMO_SLICE = { name: 'large-tumours', column: 'mean_radius', min: 15 } as const;

/** Adds the synthetic `group` column (see the header) to every row of the CSV table. */
export function addDemoAttribute(
  header: readonly string[],
  rows: readonly string[][],
  labelColumn: string,
  positiveValue: string,
  seed: string,
): { header: string[]; rows: string[][] } {
  const label = header.indexOf(labelColumn);
  const rng = createSeededRng(`${seed}/synthetic-group`);
  return {
    header: [...header, DEMO_SENSITIVE.name],
    rows: rows.map((r) => {
      const pB = r[label] === positiveValue ? 0.7 : 0.3;
      return [...r, rng.nextFloat64() < pB ? 'B' : 'A'];
    }),
  };
}

/** The demo's data schema: the dataset's own, plus the sensitive attribute and the shifted slice. */
export function demoEvaluationSchema(base: DataSchema): Record<string, unknown> {
  return {
    ...JSON.parse(JSON.stringify(base)),
    sensitive: { ...DEMO_SENSITIVE, values: [...DEMO_SENSITIVE.values] },
    slices: [{ ...DEMO_SLICE }],
  };
}

export const DEMO_EVALUATION_SPEC: EvaluationSpec = parseEvaluationSpec({
  numClasses: 2,
  scoreBins: 1000,
  calibrationBins: 10,
  sensitive: { attribute: DEMO_SENSITIVE.name, values: [...DEMO_SENSITIVE.values] },
  slices: [DEMO_SLICE.name],
});

/** What `entente demo --json` reports of the private evaluation (computed under secure aggregation). */
export interface PrivateEvaluationSummary {
  rows: number;
  accuracy: number | null;
  logLoss: number | null;
  brier: number | null;
  ece: number | null;
  rocAuc: number | null;
  averagePrecision: number | null;
  demographicParityDifference: number | null;
  equalizedOddsDifference: number | null;
  sensitiveAttribute: string;
  plan: string;
  decision: string;
  /** The same figures computed centrally on the union of the sites' evaluation rows agree. */
  matchesCentralized: boolean;
}

interface JobView {
  status: string;
  failure: string | null;
  results: { label: string; metrics: EvaluationMetrics; logIndex: number }[];
  unblinding: { label: string; name: string; sha256: string }[] | null;
  decision: {
    outcome: 'pass' | 'fail' | 'undetermined';
    clauses: { text: string; holds: boolean | null }[];
  } | null;
}

/**
 * Pre-registers the plan (released model, metrics, the rule), has the quorum approve it, runs it and
 * waits for the decision. Writes evaluation-report.md/html into `dir`.
 */
export async function runDemoEvaluation(input: {
  client: MtlsClient;
  members: DemoMembers;
  signers: readonly string[];
  modelSha256: string;
  dataSchemaDigest: string;
  dir: string;
  say: (line: string) => void;
}): Promise<{ metrics: EvaluationMetrics; plan: string; decision: string }> {
  const plan = parseEvaluationPlan({
    consortium: 'demo',
    title: "The released model on every site's own evaluation rows",
    models: [{ name: 'released', sha256: input.modelSha256 }],
    metrics: [
      'accuracy',
      'logLoss',
      'brier',
      'ece',
      'rocAuc',
      'averagePrecision',
      'demographicParityDifference',
      'equalizedOddsDifference',
    ],
    evaluation: DEMO_EVALUATION_SPEC,
    hypothesis:
      'The released model separates the classes well (ROC AUC at least 0.9), is calibrated (ECE at most 0.1), on the large-tumour slice too.',
    decisionRule:
      'released.rocAuc >= 0.9 and released.ece <= 0.1 and released.slice["large-tumours"].accuracy >= 0.8',
    dataSchemaDigest: input.dataSchemaDigest,
    createdAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
  });
  const digest = computeEvaluationPlanDigest(plan);
  const proposal = (
    await input.client.postJson<{ id: string; missing: string }>('/v1/proposals', {
      kind: 'approve-evaluation-plan',
      subject: plan,
    })
  ).body;
  input.say(`evaluation plan ${digest.slice(0, 12)}… pre-registered, needs ${proposal.missing}`);
  const approval = await approveByQuorum(input.members, proposal.id, input.signers, input.say);
  await input.client.postJson('/v1/evaluations', { plan: digest });
  let view: JobView;
  for (;;) {
    view = (await input.client.getJson<JobView>(`/v1/evaluations/${digest}`)).body!;
    if (view.status !== 'running') break;
    await new Promise((res) => setTimeout(res, 200));
  }
  if (view.status !== 'completed' || !view.decision || view.results.length !== 1)
    throw new Error(`the private evaluation ended as ${view.status}: ${view.failure ?? ''}`);
  const metrics = view.results[0]!.metrics;
  input.say(
    `private evaluation (secure aggregation, ${metrics.overall.rows} rows): ROC AUC ${metrics.overall.rocAuc?.toFixed(4)}, decision ${view.decision.outcome}`,
  );
  const report = renderEvaluationReport({
    title: `Evaluation: ${plan.title}`,
    consortium: 'demo',
    generatedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    plan: {
      digest,
      hypothesis: plan.hypothesis,
      decisionRule: plan.decisionRule,
      metrics: [...plan.metrics],
      approvedBy: approval.signers,
    },
    models: view.results.map((r) => {
      const o = view.unblinding?.find((u) => u.label === r.label);
      return {
        label: r.label,
        ...(o ? { name: o.name, sha256: o.sha256 } : {}),
        metrics: r.metrics,
        resultLogIndex: r.logIndex,
      };
    }),
    classes: ['malignant', 'benign'],
    decision: {
      outcome: view.decision.outcome,
      details: view.decision.clauses.map(
        (c) => `${c.text}: ${c.holds === null ? 'undetermined' : c.holds ? 'holds' : 'does not hold'}`,
      ),
    },
    blinded: view.unblinding === null,
    notes: [
      `The sensitive attribute "${DEMO_SENSITIVE.name}" is synthetic (drawn with a fixed seed, correlated with the label); the breast cancer data has no demographic column.`,
    ],
  });
  writePrivateFile(join(input.dir, 'evaluation-report.md'), report.markdown);
  writePrivateFile(join(input.dir, 'evaluation-report.html'), report.html);
  return { metrics, plan: digest, decision: view.decision.outcome };
}

/** The same metrics computed centrally on the union of the evaluation rows (a cross-check, not a reveal). */
export function evaluateCentrally(
  spec: ModelSpec,
  weights: Weights,
  rows: LabeledData,
  standardization: { mean: Float64Array; std: Float64Array },
): EvaluationMetrics {
  const data = applyStandardization(rows, standardization);
  const p = predictProbabilities(spec, weights, data.x);
  const probabilities = new Float64Array(data.count * 2);
  for (let i = 0; i < data.count; i++) {
    probabilities[2 * i] = 1 - p[i]!;
    probabilities[2 * i + 1] = p[i]!;
  }
  const layout = createEvaluationLayout(DEMO_EVALUATION_SPEC);
  return finalizeEvaluation(
    layout,
    accumulateEvaluation(layout, {
      count: data.count,
      probabilities,
      labels: data.y,
      ...(data.groups ? { groups: data.groups } : {}),
      ...(data.slices ? { slices: data.slices } : {}),
    }),
  );
}

/** Whether two metric reports agree: counts exactly, real figures to 1e-9 (secure sums round at 2^-32). */
export function sameFigures(a: EvaluationMetrics, b: EvaluationMetrics): boolean {
  const close = (x: number | null, y: number | null) =>
    x === y || (x !== null && y !== null && Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(x)));
  const o = a.overall;
  const p = b.overall;
  return (
    o.rows === p.rows &&
    JSON.stringify(o.confusion) === JSON.stringify(p.confusion) &&
    close(o.accuracy, p.accuracy) &&
    close(o.logLoss, p.logLoss) &&
    close(o.brier, p.brier) &&
    close(o.ece, p.ece) &&
    close(o.rocAuc, p.rocAuc) &&
    close(o.averagePrecision, p.averagePrecision) &&
    close(a.fairness?.demographicParityDifference ?? null, b.fairness?.demographicParityDifference ?? null) &&
    close(a.fairness?.equalizedOddsDifference ?? null, b.fairness?.equalizedOddsDifference ?? null)
  );
}
