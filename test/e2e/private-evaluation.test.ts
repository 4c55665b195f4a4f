/**
 * Private evaluation end to end, over real mutual TLS with `entente` participant processes:
 *
 * 1. Two governed runs under secure aggregation. Their statistics and every round's evaluation reach
 *    the coordinator only as secure sums: its store holds no site's statistics or evaluation row, and
 *    each round's metrics (ROC AUC, calibration, fairness, the slice) come from the unmasked sum.
 * 2. A plain run (the policy allows it, and per-site evaluation figures): each round's worst site and
 *    leave-one-site-out figures, a site named only when its own policy consents.
 * 3. A blinded comparison of the two final models by a pre-registered plan: the coordinator refuses to
 *    run a plan before its quorum approved it; after approval `entente eval run --wait` commits the
 *    blinded labels, evaluates each model under secure aggregation on every site's `--eval-data`
 *    rows, logs the results, then the unblinding and the decision, in that order; the governance trail
 *    of the log replays without a problem; the figures equal the centralized computation on the union
 *    of the sites' evaluation rows; `entente eval report` writes the Markdown and HTML report.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type LogEntry, parseLogEntry } from '../../src/audit/index.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import { createSeededRng } from '../../src/crypto/index.ts';
import { computeSchemaDigest, loadTable, parseCsv, parseDataSchema } from '../../src/data/index.ts';
import {
  type EvaluationMetrics,
  createEvaluationLayout,
  parseEvaluationSpec,
} from '../../src/evaluation/index.ts';
import {
  type TrailEntry,
  computeEvaluationPlanDigest,
  parseEvaluationPlan,
  verifyGovernanceTrail,
} from '../../src/governance/index.ts';
import { describeLayout, parseModelSpec } from '../../src/models/index.ts';
import { SECURE_SUM_DEFAULTS, declareEvaluationSum, planSecureSumNoise } from '../../src/protocol/index.ts';
import {
  CLI_ENTRY,
  type ChildHandle,
  DATASET_DIR,
  demoRunConfig,
  spawnEntente,
  stopChild,
} from '../../src/simulation/index.ts';
import {
  addDemoAttribute,
  demoEvaluationSchema,
  evaluateCentrally,
  sameFigures,
} from '../../src/simulation/demo-evaluation.ts';
import { writePrivateFile } from '../../src/storage/index.ts';
import { waitFor } from './fixtures.ts';
import {
  type GovernedConsortium,
  OPERATOR,
  createTestPolicy,
  startGovernedConsortium,
} from './governance-fixtures.ts';

const INSTITUTIONS = ['alpha', 'beta', 'gamma'] as const;

function runCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI_ENTRY, ...args],
      { env: { ...process.env, ENTENTE_LOG_LEVEL: 'warn' }, maxBuffer: 64 * 1024 * 1024, timeout: 180_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
}

interface RunView {
  status: string;
  model: { sha256: string };
  standardization: { mean: number[]; std: number[] };
  rounds: { round: number; evalMetrics?: unknown }[];
}

describe('private evaluation under secure aggregation', () => {
  let gov: GovernedConsortium;
  const children: ChildHandle[] = [];
  let schemaPath: string;
  let schemaDigest: string;
  const evalFiles = new Map<string, string>();

  before(async () => {
    // The breast cancer rows with the demo's synthetic sensitive attribute, split IID over the sites;
    // each site keeps a quarter of its rows as its evaluation rows.
    const raw = parseCsv(readFileSync(join(DATASET_DIR, 'breast-cancer.csv'), 'utf8'));
    const table = addDemoAttribute(raw.header, raw.rows, 'diagnosis', 'malignant', 'e2e-private-eval');
    const schemaJson = demoEvaluationSchema(
      parseDataSchema(JSON.parse(readFileSync(join(DATASET_DIR, 'schema.json'), 'utf8'))),
    );
    schemaDigest = computeSchemaDigest(parseDataSchema(schemaJson));
    gov = await startGovernedConsortium({
      institutions: INSTITUTIONS,
      policy: {
        ...createTestPolicy({ institutions: INSTITUTIONS, dataSchemaDigest: schemaDigest }),
        exchange: {
          ...(createTestPolicy({ institutions: INSTITUTIONS, dataSchemaDigest: schemaDigest })
            .exchange as object),
          // Plain runs allowed too: their per-site evaluation figures are the last case.
          secureAggregation: 'optional',
          perSiteEvaluation: true,
        },
      },
    });
    schemaPath = join(gov.dir, 'schema.json');
    writeFileSync(schemaPath, JSON.stringify(schemaJson));
    const rng = createSeededRng('e2e-private-eval/split');
    const order = table.rows.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng.nextFloat64() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    INSTITUTIONS.forEach((id, k) => {
      const mine = order.filter((_, i) => i % INSTITUTIONS.length === k);
      const cut = Math.floor(mine.length * 0.75);
      const write = (name: string, rows: number[]) => {
        const path = join(gov.sites.get(id)!.dir, name);
        writePrivateFile(
          path,
          `${[table.header, ...rows.map((r) => table.rows[r]!)].map((r) => r.join(',')).join('\n')}\n`,
        );
        return path;
      };
      const data = write('data.csv', mine.slice(0, cut));
      // alpha and beta reveal their own figures when a plan asks and the policy allows; gamma never does.
      const siteConfig = join(gov.sites.get(id)!.dir, 'site-config.json');
      writePrivateFile(siteConfig, JSON.stringify({ revealEvaluation: id !== 'gamma' }));
      evalFiles.set(id, write('evaluation.csv', mine.slice(cut)));
      children.push(
        spawnEntente(id, [
          'participant',
          'start',
          '--site',
          gov.sites.get(id)!.dir,
          '--data',
          data,
          '--eval-data',
          evalFiles.get(id)!,
          '--schema',
          schemaPath,
          '--site-config',
          siteConfig,
        ]),
      );
    });
  });
  after(async () => {
    await Promise.all(children.map((c) => stopChild(c)));
    await gov?.close();
  });

  const approve = async (kind: string, subject: unknown): Promise<string> => {
    const p = await gov.propose(OPERATOR, kind, subject);
    await gov.sign(OPERATOR, p.id).catch(() => undefined);
    await gov.sign('alpha', p.id);
    const done = await gov.sign('beta', p.id);
    assert.equal(done.status, 'approved', `${kind}: ${done.missing}`);
    return p.id;
  };

  const startRun = async (id: string, rounds: number, learningRate: number): Promise<RunView> => {
    const config = {
      ...demoRunConfig(rounds, id),
      id,
      train: { epochs: 1, batchSize: 16, learningRate, optimizer: 'sgd' },
      dataSchemaDigest: schemaDigest,
      evaluation: {
        scoreBins: 1000,
        sensitive: { attribute: 'group', values: ['A', 'B'] },
        slices: ['large-tumours'],
      },
    };
    const posted = await gov.operator.postJson<{ proposal: string }>('/v1/runs', config);
    await gov.sign(OPERATOR, posted.body.proposal);
    await gov.sign('alpha', posted.body.proposal);
    assert.equal((await gov.sign('beta', posted.body.proposal)).status, 'approved');
    const view = await waitFor(
      `run ${id} to complete`,
      async () => {
        const r = (await gov.operator.getJson<RunView>(`/v1/runs/${id}`).catch(() => undefined))?.body;
        return r && r.status !== 'running' ? r : undefined;
      },
      150_000,
    );
    assert.equal(view.status, 'completed');
    await approve('release-model', { run: id });
    return view;
  };

  let candidate: RunView;
  let baseline: RunView;

  it('runs under secure aggregation reveal no site figures: statistics and evaluations are secure sums', {
    timeout: 400_000,
  }, async () => {
    candidate = await startRun('candidate-run', 3, 0.1);
    baseline = await startRun('baseline-run', 1, 0.01);
    const last = candidate.rounds.at(-1)!.evalMetrics as EvaluationMetrics & { secure: boolean };
    assert.equal(last.secure, true);
    assert.ok(last.overall.rocAuc! > 0.9, `ROC AUC ${last.overall.rocAuc}`);
    assert.equal(last.fairness?.attribute, 'group');
    assert.ok(Object.hasOwn(last.slices, 'large-tumours'));
    // The coordinator's own store: no per-site statistics or evaluation row, only sums of >= 3 sites.
    const db = new Database(join(gov.dir, 'coordinator', 'state', 'coordinator.db'), { readonly: true });
    try {
      assert.equal((db.prepare('SELECT count(*) AS n FROM statistics').get() as { n: number }).n, 0);
      assert.equal((db.prepare('SELECT count(*) AS n FROM evaluations').get() as { n: number }).n, 0);
      const sums = db
        .prepare("SELECT phase, outcome, survivors_json FROM secagg_attempts WHERE run_id = 'candidate-run'")
        .all() as { phase: string; outcome: string; survivors_json: string }[];
      assert.deepEqual([...new Set(sums.map((s) => s.phase))].sort(), ['evaluate', 'statistics', 'train']);
      for (const s of sums) assert.equal(JSON.parse(s.survivors_json).length, 3);
    } finally {
      db.close();
    }
  });

  it('a plain run where the policy allows per-site figures: worst site and leave-one-site-out, named by consent', {
    timeout: 200_000,
  }, async () => {
    // Under secure aggregation the coordinator holds no site's figures: no per-site figures in its rounds.
    for (const r of [...candidate.rounds, ...baseline.rounds])
      assert.equal(Object.hasOwn(r, 'evalPerSite'), false);
    const id = 'plain-run';
    const posted = await gov.operator.postJson<{ proposal: string }>('/v1/runs', {
      ...demoRunConfig(1, id),
      id,
      dataSchemaDigest: schemaDigest,
      secureAggregation: { protocol: 'none' },
    });
    await gov.sign(OPERATOR, posted.body.proposal);
    await gov.sign('alpha', posted.body.proposal);
    assert.equal((await gov.sign('beta', posted.body.proposal)).status, 'approved');
    await waitFor(
      `run ${id} to complete`,
      async () => {
        const r = (await gov.operator.getJson<RunView>(`/v1/runs/${id}`).catch(() => undefined))?.body;
        return r && r.status !== 'running' ? r : undefined;
      },
      150_000,
    );
    // What `status --run --json` shows: the run view with each round's per-site figures.
    const status = await runCli(['status', '--run', id, '--json', '--workspace', gov.dir]);
    assert.equal(status.code, 0, status.stderr);
    const view = JSON.parse(status.stdout) as {
      status: string;
      rounds: {
        evalLoss: number;
        evalAccuracy: number;
        evalExamples: number;
        evalPerSite?: {
          sites: number;
          worstLoss: { value: number; participant: string | null };
          worstAccuracy: { value: number; participant: string | null };
          leaveOneSiteOut: {
            participant: string | null;
            numExamples: number;
            loss: number;
            accuracy: number;
          }[];
        };
      }[];
    };
    assert.equal(view.status, 'completed');
    const round = view.rounds.at(-1)!;
    const f = round.evalPerSite!;
    assert.ok(f, 'the round has per-site figures');
    assert.equal(f.sites, 3);
    // The sites' own results as the coordinator received them (in the clear: a plain run).
    const db = new Database(join(gov.dir, 'coordinator', 'state', 'coordinator.db'), { readonly: true });
    let sites: { participant: string; num_examples: number; loss: number; accuracy: number }[];
    try {
      sites = db
        .prepare(
          "SELECT participant, num_examples, loss, accuracy FROM evaluations WHERE run_id = 'plain-run'",
        )
        .all() as typeof sites;
    } finally {
      db.close();
    }
    assert.equal(sites.length, 3);
    const accuracies = sites.map((s) => s.accuracy);
    const total = sites.reduce((n, s) => n + s.num_examples, 0);
    assert.equal(total, round.evalExamples);
    assert.equal(f.worstLoss.value, Math.max(...sites.map((s) => s.loss)));
    assert.equal(f.worstAccuracy.value, Math.min(...accuracies));
    // The worst site is named only when it consented (alpha and beta did, gamma did not).
    const worst = sites.find((s) => s.accuracy === f.worstAccuracy.value)!;
    assert.equal(f.worstAccuracy.participant, worst.participant === 'gamma' ? null : worst.participant);
    // One leave-one-site-out entry per site: gamma's without its name, each within the sites' range.
    assert.deepEqual(
      f.leaveOneSiteOut.map((e) => e.participant),
      ['alpha', 'beta', null],
    );
    for (const e of f.leaveOneSiteOut) {
      assert.ok(
        e.accuracy >= Math.min(...accuracies) - 1e-12 && e.accuracy <= Math.max(...accuracies) + 1e-12,
      );
      const left = e.participant ?? 'gamma';
      const site = sites.find((s) => s.participant === left)!;
      assert.equal(e.numExamples, total - site.num_examples);
      // The round's figure is the example-weighted mean of the left-out site's and the rest's.
      const recombined = (e.accuracy * e.numExamples + site.accuracy * site.num_examples) / total;
      assert.ok(
        Math.abs(recombined - round.evalAccuracy) <= 1e-9,
        `${left}: ${recombined} vs ${round.evalAccuracy}`,
      );
    }
  });

  it('a blinded comparison by a pre-registered plan: labels committed, results, unblinding, decision', {
    timeout: 300_000,
  }, async () => {
    const plan = parseEvaluationPlan({
      consortium: 'test',
      title: 'candidate vs baseline',
      models: [
        { name: 'candidate', sha256: candidate.model.sha256 },
        { name: 'baseline', sha256: baseline.model.sha256 },
      ],
      metrics: ['rocAuc', 'ece', 'accuracy', 'demographicParityDifference'],
      evaluation: {
        numClasses: 2,
        scoreBins: 1000,
        calibrationBins: 10,
        sensitive: { attribute: 'group', values: ['A', 'B'] },
        slices: ['large-tumours'],
      },
      hypothesis: 'three rounds beat one slow round and stay calibrated',
      decisionRule: 'candidate.rocAuc >= baseline.rocAuc - 0.01 and candidate.ece <= 0.2',
      dataSchemaDigest: schemaDigest,
      perSite: true,
      createdAt: '2026-12-08T02:00:00Z',
    });
    const digest = computeEvaluationPlanDigest(plan);
    // Not approved yet: the coordinator refuses to evaluate it.
    const early = await runCli(['eval', 'run', digest, '--workspace', gov.dir]);
    assert.equal(early.code, 4, early.stderr);
    assert.match(early.stderr, /^entente: NOT_FOUND: plan: .* is not an approved evaluation plan/m);
    await approve('approve-evaluation-plan', plan);
    const run = await runCli(['eval', 'run', digest, '--wait', '--json', '--workspace', gov.dir]);
    assert.equal(run.code, 0, run.stderr);
    const job = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      status: string;
      results: { label: string; rows: number; metrics: EvaluationMetrics }[];
      unblinding: { label: string; name: string; sha256: string }[];
      decision: { outcome: string };
    };
    assert.equal(job.status, 'completed');
    assert.deepEqual(job.results.map((r) => r.label).sort(), ['model-A', 'model-B']);
    assert.deepEqual(job.unblinding.map((o) => o.name).sort(), ['baseline', 'candidate']);
    assert.equal(job.decision.outcome, 'pass');

    // The log: blinding, then both results, then the unblinding, then the decision; the trail replays.
    const entries = (
      await gov.operator.getJson<{ entries: { index: number; body: string }[] }>(
        '/v1/log/entries?start=0&end=10000',
      )
    ).body!.entries.map((e) => parseLogEntry(Buffer.from(e.body, 'base64'), `entry ${e.index}`));
    const kinds = entries.filter((e) => e.kind.startsWith('evaluation-')).map((e) => e.kind);
    // Per label: its secure result, then the disclosures of the two sites that consented (gamma did not).
    assert.deepEqual(kinds, [
      'evaluation-blinded',
      'evaluation-result',
      'evaluation-disclosure',
      'evaluation-disclosure',
      'evaluation-result',
      'evaluation-disclosure',
      'evaluation-disclosure',
      'evaluation-unblinded',
      'evaluation-decision',
    ]);
    const disclosed = entries.filter((e) => e.kind === 'evaluation-disclosure') as (LogEntry & {
      site: string;
    })[];
    assert.deepEqual([...new Set(disclosed.map((d) => d.site))].sort(), ['alpha', 'beta']);
    for (const r of job.results) {
      const per = (
        r as unknown as {
          perSite: {
            sites: Record<string, { rows: number }>;
            withheld: string[];
            worstSite: Record<string, { site: string } | null>;
            leaveOneOut: Record<string, unknown>;
          };
        }
      ).perSite;
      assert.deepEqual(Object.keys(per.sites).sort(), ['alpha', 'beta']);
      assert.deepEqual(per.withheld, ['gamma']);
      assert.ok(['alpha', 'beta'].includes(per.worstSite.rocAuc!.site));
      assert.ok(per.leaveOneOut.alpha && per.leaveOneOut.beta);
      // The revealed rows are each site's evaluation rows; gamma's stay inside the secure total only.
      const rows = Object.values(per.sites).reduce((n, s) => n + s.rows, 0);
      assert.ok(rows < r.rows);
    }
    const trail = verifyGovernanceTrail(entries as unknown as TrailEntry[]);
    assert.deepEqual(trail.problems, []);
    assert.ok(trail.approvedPlans.has(digest));
    const blinded = entries.find((e) => e.kind === 'evaluation-blinded') as LogEntry & { plan: string };
    assert.equal(blinded.plan, digest);

    // Each model's secure figures equal the centralized computation on the union of the evaluation rows.
    const schema = parseDataSchema(JSON.parse(readFileSync(schemaPath, 'utf8')));
    const texts = INSTITUTIONS.map((id) => readFileSync(evalFiles.get(id)!, 'utf8').trim().split('\n'));
    const union = loadTable(`${[texts[0]![0]!, ...texts.flatMap((t) => t.slice(1))].join('\n')}\n`, schema);
    for (const [name, view] of [
      ['candidate', candidate],
      ['baseline', baseline],
    ] as const) {
      const label = job.unblinding.find((o) => o.name === name)!.label;
      const secure = job.results.find((r) => r.label === label)!.metrics;
      const runId = name === 'candidate' ? 'candidate-run' : 'baseline-run';
      const bytes = await gov.operator.getBytes(`/v1/runs/${runId}/model`, 1 << 20);
      const spec = parseModelSpec({ kind: 'logistic', inputDim: 30 });
      const { weights } = decodeSafetensors(bytes, { expected: describeLayout(spec) });
      const central = evaluateCentrally(spec, weights, union, {
        mean: Float64Array.from(view.standardization.mean),
        std: Float64Array.from(view.standardization.std),
      });
      assert.equal(secure.overall.rows, union.count);
      assert.ok(sameFigures(secure, central), `${name}: secure and centralized figures differ`);
    }

    // The report: Markdown and self-contained HTML with the unblinded names and the decision.
    const out = join(gov.dir, 'report');
    const report = await runCli(['eval', 'report', digest, '--out', out, '--workspace', gov.dir]);
    assert.equal(report.code, 0, report.stderr);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    assert.match(md, /candidate/);
    assert.match(md, /pass/);
    assert.ok(existsSync(join(out, 'report.html')));
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /<svg/);
    // A coordinator that tries to sum a label twice (another run id), or to run a plan no quorum approved,
    // gets refusals from the sites before any row is touched. The tasks are written straight into the
    // coordinator's store, as a malicious coordinator would.
    const db = new Database(join(gov.dir, 'coordinator', 'state', 'coordinator.db'));
    try {
      const legit = db
        .prepare(
          "SELECT task_json FROM tasks WHERE kind = 'secagg-sum' AND participant = 'alpha' AND run_id LIKE 'eval-%'",
        )
        .get() as { task_json: string };
      const base = JSON.parse(legit.task_json) as Record<string, unknown> & {
        plan: { digest: string; label: string };
      };
      const rogue = (id: string, task: Record<string, unknown>) =>
        db
          .prepare(
            "INSERT INTO tasks (id, run_id, round, kind, participant, status, task_json, created_at) VALUES (?, ?, ?, 'secagg-sum', 'alpha', 'open', ?, ?)",
          )
          .run(id, task.runId, task.round, JSON.stringify({ ...task, taskId: id }), Date.now());
      rogue('rogue.again.alpha', { ...base, runId: 'eval-again', attempt: 0 });
      rogue('rogue.unapproved.alpha', {
        ...base,
        runId: `eval-${'9'.repeat(16)}`,
        plan: { digest: '9'.repeat(64), label: 'model-A' },
      });
    } finally {
      db.close();
    }
    const journal = () =>
      readFileSync(join(gov.sites.get('alpha')!.dir, 'journal.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { event: string; taskId?: string; code?: string; message?: string });
    const twice = await waitFor(
      'alpha to refuse the second sum of a label',
      async () => journal().find((e) => e.event === 'task-refused' && e.taskId === 'rogue.again.alpha'),
      30_000,
    );
    assert.equal(twice.code, 'PROTOCOL_VIOLATION');
    assert.match(twice.message ?? '', /runId: is not the plan's evaluation run/);
    const unapproved = await waitFor(
      'alpha to refuse an unapproved plan',
      async () => journal().find((e) => e.event === 'task-refused' && e.taskId === 'rogue.unapproved.alpha'),
      30_000,
    );
    assert.equal(unapproved.code, 'PROTOCOL_VIOLATION');
    assert.match(unapproved.message ?? '', /governance: evaluation plan 999999999999… is not approved/);

    // Evaluated once: the same plan cannot run again.
    const again = await runCli(['eval', 'run', digest, '--workspace', gov.dir]);
    assert.equal(again.code, 5, again.stderr);
    assert.match(again.stderr, /CONFLICT/);
  });

  it('a plan with differential privacy: each site adds noise to its sums and charges its own ledger', {
    timeout: 300_000,
  }, async () => {
    const fields = {
      consortium: 'test',
      title: 'candidate under noise',
      models: [{ name: 'candidate', sha256: candidate.model.sha256 }],
      metrics: ['rocAuc', 'accuracy', 'logLoss'],
      evaluation: {
        numClasses: 2,
        scoreBins: 20,
        calibrationBins: 10,
        dp: { noiseMultiplier: 0.3, maxRowLogLoss: 5 },
      },
      hypothesis: 'the released model still separates the classes when every sum is noised',
      decisionRule: 'candidate.rocAuc >= 0.8',
      dataSchemaDigest: schemaDigest,
      createdAt: '2026-12-08T04:00:00Z',
    };
    // Per-site figures would carry no noise: such a plan is refused when it is written.
    assert.throws(() => parseEvaluationPlan({ ...fields, perSite: true }), { field: 'plan.perSite' });
    const plan = parseEvaluationPlan(fields);
    const digest = computeEvaluationPlanDigest(plan);
    // The rogue tasks of the test before stay open in the store (their refusals answer no known job) and
    // would be handed to alpha again: close them, as an honest coordinator never writes them.
    const db = new Database(join(gov.dir, 'coordinator', 'state', 'coordinator.db'));
    try {
      db.prepare("UPDATE tasks SET status = 'refused' WHERE id LIKE 'rogue.%'").run();
    } finally {
      db.close();
    }
    // The unapproved plan's task made alpha raise an incident, which pauses new work until a quorum
    // resumes it.
    const incidents = (
      await gov.operator.getJson<{ paused: boolean; incidents: { id: string; resolvedAt: string | null }[] }>(
        '/v1/incidents',
      )
    ).body!;
    if (incidents.paused)
      await approve('resume-runs', {
        incidents: incidents.incidents.filter((i) => i.resolvedAt === null).map((i) => i.id),
      });
    await approve('approve-evaluation-plan', plan);
    const run = await runCli(['eval', 'run', digest, '--wait', '--json', '--workspace', gov.dir]);
    assert.equal(run.code, 0, run.stderr);
    const job = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      id: string;
      status: string;
      results: { label: string; rows: number; metrics: EvaluationMetrics }[];
    };
    assert.equal(job.status, 'completed');
    const noisy = job.results[0]!.metrics.overall;

    // The figures are near the centralized ones on the union of the evaluation rows, and not equal.
    const schema = parseDataSchema(JSON.parse(readFileSync(schemaPath, 'utf8')));
    const texts = INSTITUTIONS.map((id) => readFileSync(evalFiles.get(id)!, 'utf8').trim().split('\n'));
    const union = loadTable(`${[texts[0]![0]!, ...texts.flatMap((t) => t.slice(1))].join('\n')}\n`, schema);
    const bytes = await gov.operator.getBytes('/v1/runs/candidate-run/model', 1 << 20);
    const spec = parseModelSpec({ kind: 'logistic', inputDim: 30 });
    const { weights } = decodeSafetensors(bytes, { expected: describeLayout(spec) });
    const central = evaluateCentrally(spec, weights, union, {
      mean: Float64Array.from(candidate.standardization.mean),
      std: Float64Array.from(candidate.standardization.std),
    }).overall;
    assert.ok(Math.abs(noisy.rows - union.count) <= 15, `rows ${noisy.rows} vs ${union.count}`);
    assert.ok(
      Math.abs(noisy.accuracy! - central.accuracy!) < 0.1,
      `accuracy ${noisy.accuracy} vs ${central.accuracy}`,
    );
    assert.ok(
      Math.abs(noisy.rocAuc! - central.rocAuc!) < 0.1,
      `ROC AUC ${noisy.rocAuc} vs ${central.rocAuc}`,
    );
    assert.notEqual(noisy.logLoss, central.logLoss);

    // Each site charged its own ledger what the plan's noise costs one of its records (ρ-zCDP), and the
    // coordinator logged it as privacy spent on the plan's evaluation, phase evaluate.
    const declaration = declareEvaluationSum({
      layout: createEvaluationLayout(parseEvaluationSpec(fields.evaluation)),
      maxRows: SECURE_SUM_DEFAULTS.maxRowsPerSite,
      cohortSize: 3,
    });
    const rho = planSecureSumNoise(declaration, 3).rho;
    // At most 1/(2z²); less here, as every count's share of noise is at least 1 (more noise than z asks).
    assert.ok(rho <= (1 / (2 * 0.3 ** 2)) * 1.001 && rho > 1, `ρ ${rho}`);
    for (const id of INSTITUTIONS) {
      const ledger = readFileSync(join(gov.sites.get(id)!.dir, 'privacy-ledger.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { run: string; mechanism: string; rho?: number; neighbouring: string });
      const charged = ledger.filter((e) => e.run === job.id);
      assert.equal(charged.length, 1, `${id}: ${JSON.stringify(ledger)}`);
      assert.equal(charged[0]!.mechanism, 'zcdp');
      assert.equal(charged[0]!.neighbouring, 'add-remove-record');
      assert.ok(Math.abs(charged[0]!.rho! - rho) < 1e-12);
    }
    const entries = (
      await gov.operator.getJson<{ entries: { index: number; body: string }[] }>(
        '/v1/log/entries?start=0&end=10000',
      )
    ).body!.entries.map((e) => parseLogEntry(Buffer.from(e.body, 'base64'), `entry ${e.index}`));
    const spent = entries.filter(
      (e) => e.kind === 'privacy-spent' && (e as unknown as { run: string }).run === job.id,
    ) as unknown as { participant: string; phase: string; rho: number }[];
    assert.deepEqual(spent.map((e) => e.participant).sort(), [...INSTITUTIONS]);
    for (const e of spent) {
      assert.equal(e.phase, 'evaluate');
      assert.ok(Math.abs(e.rho - rho) < 1e-12);
    }
    // No disclosure for this plan; the governance trail still replays.
    assert.equal(
      entries.filter(
        (e) => e.kind === 'evaluation-disclosure' && (e as unknown as { plan: string }).plan === digest,
      ).length,
      0,
    );
    assert.deepEqual(verifyGovernanceTrail(entries as unknown as TrailEntry[]).problems, []);
    // The report says its figures are noisy estimates.
    const out = join(gov.dir, 'report-dp');
    const report = await runCli(['eval', 'report', digest, '--out', out, '--workspace', gov.dir]);
    assert.equal(report.code, 0, report.stderr);
    assert.match(
      readFileSync(join(out, 'report.md'), 'utf8'),
      /differential-privacy noise \(noise multiplier 0\.3/,
    );
  });
});
