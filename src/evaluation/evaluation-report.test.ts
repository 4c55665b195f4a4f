import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import type { ClassificationMetrics, EvaluationMetrics, ReliabilityBin } from './evaluation-metrics.ts';
import { type EvaluationReportInput, renderEvaluationReport } from './evaluation-report.ts';

const HOSTILE = `<script>alert("x")</script>"&'|*`;

/** Ten calibration bins; `filled` gives (meanPredicted, fractionPositive, count) for some of them. */
function bins(filled: Record<number, [number, number, number]>): ReliabilityBin[] {
  return Array.from({ length: 10 }, (_, k) => {
    const f = filled[k];
    return {
      lower: k / 10,
      upper: (k + 1) / 10,
      count: f?.[2] ?? 0,
      meanPredicted: f?.[0] ?? null,
      fractionPositive: f?.[1] ?? null,
    };
  });
}

/** A plausible binary result: 100 rows, confusion [[40, 5], [10, 45]]. */
function binary(overrides: Partial<ClassificationMetrics> = {}): ClassificationMetrics {
  return {
    rows: 100,
    accuracy: 0.85,
    logLoss: 0.35125,
    brier: 0.1123,
    confusion: [
      [40, 5],
      [10, 45],
    ],
    perClass: [
      { precision: 0.8, recall: 40 / 45, f1: 0.8421, support: 45 },
      { precision: 0.9, recall: 45 / 55, f1: 0.8571, support: 55 },
    ],
    macro: { precision: 0.85, recall: 0.8535, f1: 0.8496 },
    micro: { precision: 0.85, recall: 0.85, f1: 0.85 },
    rocAuc: 0.9132,
    averagePrecision: 0.9271,
    rocCurve: { fpr: [0, 0.1, 0.25, 0.5, 1], tpr: [0, 0.5, 0.75, 0.9, 1] },
    ece: 0.0412,
    mce: 0.1234,
    reliability: bins({ 1: [0.15, 0.1, 20], 4: [0.45, 0.5, 30], 8: [0.85, 0.9, 50] }),
    ...overrides,
  };
}

function metrics(): EvaluationMetrics {
  return {
    overall: binary(),
    fairness: {
      attribute: 'sex',
      groups: {
        F: { rows: 48, selectionRate: 0.5, truePositiveRate: 0.8, falsePositiveRate: 0.1, accuracy: 0.86 },
        M: { rows: 52, selectionRate: 0.4, truePositiveRate: 0.84, falsePositiveRate: 0.12, accuracy: 0.84 },
      },
      demographicParityDifference: 0.1,
      demographicParityRatio: 0.8,
      equalizedOddsDifference: 0.04,
      equalOpportunityDifference: 0.04,
    },
    slices: {
      'age>=50': binary({ rows: 30, accuracy: 0.8, rocAuc: null, averagePrecision: null }),
      'site-type-a': binary({ rows: 12 }),
    },
  };
}

function input(overrides: Partial<EvaluationReportInput> = {}): EvaluationReportInput {
  return {
    title: 'Readmission model: external validation',
    consortium: 'hospitals-eu',
    generatedAt: '2026-12-08T01:00:00Z',
    plan: {
      digest: 'ab'.repeat(32),
      hypothesis: 'The candidate is not worse than the baseline in ROC AUC by more than 0.02.',
      decisionRule: 'pass if AUC(candidate) - AUC(baseline) >= -0.02',
      metrics: ['rocAuc', 'ece', 'demographicParityDifference'],
      approvedBy: ['hospital-a', 'hospital-b'],
      loggedAt: 41,
    },
    models: [
      { label: 'model-A', sha256: 'cd'.repeat(32), metrics: metrics(), resultLogIndex: 57 },
      {
        label: 'model-B',
        metrics: { overall: binary({ accuracy: null, rocCurve: null }), fairness: null, slices: {} },
      },
    ],
    decision: { outcome: 'pass', details: ['ΔAUC = +0.0132 ≥ −0.02'] },
    blinded: true,
    notes: ['Evaluated on 3 sites.'],
    ...overrides,
  };
}

function refuses(value: EvaluationReportInput, field: string): void {
  assert.throws(
    () => renderEvaluationReport(value),
    (e: unknown) =>
      e instanceof EntenteError &&
      e.code === 'INVALID_ARGUMENT' &&
      e.field === field &&
      e.message.startsWith(field),
  );
}

/** The `points` of the polyline(s) inside the SVG with `id`, as [x, y] pairs. */
function polylinePoints(html: string, id: string): [number, number][] {
  const svg = html.slice(html.indexOf(`<svg class="chart" id="${id}"`));
  const body = svg.slice(0, svg.indexOf('</svg>'));
  const match = /<polyline class="series[^"]*" points="([^"]*)"/.exec(body);
  assert.ok(match, `a polyline in ${id}`);
  return match[1]!
    .split(' ')
    .filter((p) => p !== '')
    .map((p) => p.split(',').map(Number) as [number, number]);
}

describe('renderEvaluationReport: Markdown', () => {
  it('has the plan, the headline table, per-class, confusion, fairness, slices and the decision', () => {
    const { markdown } = renderEvaluationReport(input());
    const headings = markdown.split('\n').filter((l) => l.startsWith('#'));
    assert.deepEqual(headings, [
      '# Readmission model: external validation',
      '## Plan',
      '## Models',
      '## Headline metrics',
      '## Model model-A',
      '### Per class',
      '### Confusion matrix',
      '### Calibration',
      '### Fairness',
      '### Slices',
      '## Model model-B',
      '### Per class',
      '### Confusion matrix',
      '### Calibration',
      '### Fairness',
      '### Slices',
      '## Decision',
      '## Notes',
    ]);
    assert.ok(markdown.includes(`- Plan digest: \`${'ab'.repeat(32)}\``));
    assert.ok(markdown.includes('- Audit log entry: 41'));
    assert.ok(
      markdown.includes(
        '| Model | Rows | Accuracy | Log loss | Brier | ECE | MCE | ROC AUC | AP | DP difference | EO difference |',
      ),
    );
    // 4 decimals, rounded; a null metric and a model without fairness are "—".
    assert.ok(
      markdown.includes(
        '| model-A | 100 | 0.8500 | 0.3513 | 0.1123 | 0.0412 | 0.1234 | 0.9132 | 0.9271 | 0.1000 | 0.0400 |',
      ),
    );
    assert.ok(
      markdown.includes(
        '| model-B | 100 | — | 0.3513 | 0.1123 | 0.0412 | 0.1234 | 0.9132 | 0.9271 | — | — |',
      ),
    );
    assert.ok(markdown.includes('| 0 | 0.8000 | 0.8889 | 0.8421 | 45 |'));
    assert.ok(markdown.includes('| Macro average | 0.8500 | 0.8535 | 0.8496 | — |'));
    assert.ok(markdown.includes('| True \\\\ predicted | 0 | 1 |'));
    assert.ok(markdown.includes('| 1 | 10 | 45 |'));
    assert.ok(markdown.includes('| 0.10–0.20 | 20 | 0.1500 | 0.1000 |'));
    assert.ok(markdown.includes('| 0.90–1.00 | 0 | — | — |'));
    assert.ok(markdown.includes('| F | 48 | 0.5000 | 0.8000 | 0.1000 | 0.8600 |'));
    assert.ok(markdown.includes('- Demographic parity ratio: 0.8000'));
    assert.ok(markdown.includes('| age&gt;=50 | 30 | 0.8000 | 0.3513 | 0.1123 | 0.0412 | 0.1234 | — | — |'));
    assert.ok(markdown.includes('No sensitive attribute declared.'));
    assert.ok(markdown.includes('No slices declared.'));
    assert.ok(markdown.includes('- Outcome: pass'));
    assert.ok(markdown.includes('- ΔAUC = +0.0132 ≥ −0.02'));
    assert.ok(markdown.includes('- Evaluated on 3 sites.'));
    assert.ok(!markdown.includes('<svg'));
  });

  it('says when there is no decision, and names classes when given', () => {
    const { markdown } = renderEvaluationReport(
      input({ decision: undefined, classes: ['stay', 'readmitted'] }),
    );
    assert.ok(markdown.includes('No decision recorded.'));
    assert.ok(markdown.includes('| readmitted | 10 | 45 |'));
    assert.ok(markdown.includes('| True \\\\ predicted | stay | readmitted |'));
  });

  it('shows model names only when unblinded, and refuses a name in a blinded report', () => {
    const named = input();
    const models = [
      { ...named.models[0]!, name: 'candidate' },
      { ...named.models[1]!, name: 'baseline' },
    ];
    refuses({ ...named, models }, 'input.models[0].name');
    const { markdown, html } = renderEvaluationReport({ ...named, models, blinded: false });
    assert.ok(markdown.includes('| Model | Name | SHA-256 | Result log entry |'));
    assert.ok(markdown.includes('| model-B | baseline | — | not logged |'));
    assert.ok(markdown.includes('## Model model-A (candidate)'));
    assert.ok(html.includes('<th scope="row">model-A (candidate)</th>'));
    const blinded = renderEvaluationReport(named);
    assert.ok(!blinded.markdown.includes('model-A (candidate)') && !blinded.html.includes('Name</th>'));
    assert.ok(blinded.markdown.includes('blinded: models are identified by label only'));
  });
});

describe('renderEvaluationReport: escaping and validation', () => {
  it('escapes user text everywhere in both renderings', () => {
    const m = metrics();
    const hostile = input({
      title: HOSTILE,
      consortium: HOSTILE,
      plan: { ...input().plan, hypothesis: HOSTILE, approvedBy: [HOSTILE] },
      models: [
        {
          label: HOSTILE,
          metrics: {
            overall: m.overall,
            fairness: { ...m.fairness!, attribute: HOSTILE, groups: { [HOSTILE]: m.fairness!.groups.F! } },
            slices: { [HOSTILE]: m.overall },
          },
        },
      ],
      decision: { outcome: 'fail', details: [HOSTILE] },
      notes: [`${HOSTILE}\nsecond line\u202e`],
    });
    const { markdown, html } = renderEvaluationReport(hostile);
    assert.ok(!/<script/i.test(html), 'no script element');
    assert.ok(!html.includes(HOSTILE));
    const escaped = '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&quot;&amp;&#39;|*';
    // title, h1, consortium, hypothesis, approvedBy, headline row, model heading, svg titles and
    // descriptions, figure captions, attribute, group, slice, decision detail, note
    const occurrences = html.split(escaped).length - 1;
    assert.ok(occurrences >= 15, `escaped ${occurrences} times`);
    assert.ok(
      html.includes(`<th scope="row">${escaped}</th>`),
      'a hostile label, group or slice as a row header',
    );
    assert.ok(html.includes(`<li>${escaped}<br>second line</li>`), 'line break kept, bidi override dropped');
    assert.ok(!markdown.includes('<script') && !/(^|[^\\])\|\*/.test(markdown));
    assert.ok(markdown.includes('&lt;script&gt;alert("x")&lt;/script&gt;"&amp;\'\\|\\*'));
    assert.ok(!markdown.includes('\u202e'));
  });

  it('refuses input not of the declared shape, naming the field', () => {
    const base = input();
    const a = base.models[0]!;
    const withOverall = (overall: ClassificationMetrics) => ({
      ...base,
      models: [{ ...a, metrics: { ...a.metrics, overall } }],
    });
    refuses(withOverall(binary({ ece: Number.NaN })), 'input.models[0].metrics.overall.ece');
    refuses(
      withOverall(binary({ logLoss: Number.POSITIVE_INFINITY })),
      'input.models[0].metrics.overall.logLoss',
    );
    refuses(withOverall(binary({ rows: -1 })), 'input.models[0].metrics.overall.rows');
    refuses(
      withOverall(binary({ rocCurve: { fpr: [0, 1], tpr: [0] } })),
      'input.models[0].metrics.overall.rocCurve',
    );
    refuses(
      withOverall(binary({ rocCurve: { fpr: [0, 1.5], tpr: [0, 1] } })),
      'input.models[0].metrics.overall.rocCurve.fpr[1]',
    );
    refuses(
      withOverall(binary({ confusion: [[1, 2], [3]] })),
      'input.models[0].metrics.overall.confusion[1]',
    );
    const badBin = binary().reliability.map((b, k) => (k === 2 ? { ...b, meanPredicted: 2 } : b));
    refuses(
      withOverall(binary({ reliability: badBin })),
      'input.models[0].metrics.overall.reliability[2].meanPredicted',
    );
    refuses({ ...base, models: [a, { ...a }] }, 'input.models[1].label');
    refuses({ ...base, decision: { outcome: 'maybe' as 'pass', details: [] } }, 'input.decision.outcome');
    refuses({ ...base, blinded: 'no' as unknown as boolean }, 'input.blinded');
    refuses({ ...base, plan: { ...base.plan, loggedAt: 1.5 } }, 'input.plan.loggedAt');
  });

  it('is deterministic', () => {
    assert.deepEqual(renderEvaluationReport(input()), renderEvaluationReport(input()));
  });
});

describe('renderEvaluationReport: HTML', () => {
  it('is one self-contained document with a strict CSP and no external resource', () => {
    const { html } = renderEvaluationReport(input());
    assert.ok(html.startsWith('<!doctype html>\n<html lang="en">'));
    assert.ok(
      html.includes(
        `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
      ),
    );
    assert.ok(!/<script|\ssrc=|\shref=|url\(|@import|<link|<iframe|<object|<img/i.test(html));
    assert.equal(html.split('<table>').length - 1, html.split('class="table-scroll"').length - 1);
    // Model A: reliability and ROC; model B: reliability only (its curve is null).
    assert.deepEqual(
      [...html.matchAll(/<svg class="chart" id="([^"]+)" viewBox="0 0 320 306"/g)].map((m) => m[1]),
      ['model-0-reliability', 'model-0-roc', 'model-1-reliability'],
    );
    assert.ok(html.includes('No ROC curve'));
  });

  it('draws the ROC curve through every curve point, mapped to the plot', () => {
    const { html } = renderEvaluationReport(input());
    const points = polylinePoints(html, 'model-0-roc');
    const curve = binary().rocCurve!;
    assert.equal(points.length, curve.fpr.length);
    // The plot is 240 units square with (0, 0) at (60, 256): x = 60 + 240·fpr, y = 256 − 240·tpr.
    assert.deepEqual(points[0], [60, 256]);
    assert.deepEqual(points[2], [120, 76]); // fpr 0.25, tpr 0.75
    assert.deepEqual(points[4], [300, 16]);
    points.forEach(([x, y], i) => {
      assert.ok(Math.abs(x - (60 + 240 * curve.fpr[i]!)) < 0.01);
      assert.ok(Math.abs(y - (256 - 240 * curve.tpr[i]!)) < 0.01);
    });
    // The chance diagonal joins the same corners.
    assert.ok(html.includes('<line class="diagonal" x1="60.00" y1="256.00" x2="300.00" y2="16.00">'));
    assert.ok(html.includes('>AUC 0.9132</text>'));
  });

  it('draws one reliability point and bar per non-empty bin', () => {
    const { html } = renderEvaluationReport(input());
    const points = polylinePoints(html, 'model-0-reliability');
    // Bins 1, 4 and 8 have rows: (0.15, 0.1), (0.45, 0.5), (0.85, 0.9).
    assert.deepEqual(points, [
      [96, 232],
      [168, 136],
      [264, 40],
    ]);
    const svg = html.slice(html.indexOf('id="model-0-reliability"'), html.indexOf('id="model-0-roc"'));
    assert.equal(svg.split('<circle class="point"').length - 1, 3);
    assert.equal(svg.split('<rect class="bin"').length - 1, 3);
    // Bin 4 spans [0.4, 0.5): x 156 to 180, as high as 0.5.
    assert.ok(svg.includes('<rect class="bin" x="156.00" y="136.00" width="24.00" height="120.00"/>'));
    // Axes with six ticks each and their titles.
    assert.equal(svg.split('<line class="tick"').length - 1, 12);
    assert.ok(
      svg.includes('>Mean predicted probability</text>') && svg.includes('>Fraction positive</text>'),
    );
  });

  it('draws a reliability diagram with no points when every bin is empty', () => {
    const base = input();
    const a = base.models[0]!;
    const { html } = renderEvaluationReport({
      ...base,
      models: [{ ...a, metrics: { ...a.metrics, overall: binary({ reliability: bins({}) }) } }],
    });
    assert.deepEqual(polylinePoints(html, 'model-0-reliability'), []);
  });
});
