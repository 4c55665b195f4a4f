/**
 * The evaluation report: what a private evaluation declared before it looked at any row (the plan, its
 * hypothesis and decision rule, who approved it) and what it measured for each model — headline
 * figures, per-class precision/recall/F1, the confusion matrix, fairness over the sensitive attribute,
 * every declared slice, and the decision. Rendered from plain data as GitHub-flavoured Markdown and as
 * one self-contained HTML document (no script, no external resource, a Content-Security-Policy that
 * forbids both) which adds, per model, a reliability diagram and a ROC curve as inline SVG. Both
 * renderings come from one block model, so they say the same thing.
 *
 * Every text value is escaped (HTML: & < > " '; Markdown: inline syntax, table pipes, raw HTML);
 * control and bidirectional override characters are dropped. Numbers are shown with fixed precision
 * (4 decimals for rates and scores, integers for counts); a null metric is "—". A blinded report
 * identifies models by label only and refuses a model name, so a name cannot leak before unblinding.
 * Pure: the same input gives the same bytes.
 */
import { EntenteError } from '../core/errors.ts';
import { escapeHtml, escapeMarkdown } from '../core/markup-escape.ts';
import type {
  ClassificationMetrics,
  EvaluationMetrics,
  FairnessMetrics,
  ReliabilityBin,
} from './evaluation-metrics.ts';

export interface EvaluationReportInput {
  readonly title: string;
  readonly consortium: string;
  /** RFC 3339, passed in. */
  readonly generatedAt: string;
  readonly plan: {
    /** Digest of the approved evaluation plan. */
    readonly digest: string;
    readonly hypothesis: string;
    readonly decisionRule: string;
    /** The metrics the plan declared, by name. */
    readonly metrics: readonly string[];
    readonly approvedBy: readonly string[];
    /** Index of the plan's entry in the audit log. */
    readonly loggedAt?: number;
  };
  readonly models: ReadonlyArray<{
    /** Blinded label, e.g. 'model-A'. */
    readonly label: string;
    /** The model's name, revealed after unblinding (refused while `blinded`). */
    readonly name?: string;
    readonly sha256?: string;
    readonly metrics: EvaluationMetrics;
    /** Index of the result's entry in the audit log. */
    readonly resultLogIndex?: number;
  }>;
  /** Names of the label classes, in index order (default: the indexes). */
  readonly classes?: readonly string[];
  readonly decision?: {
    readonly outcome: 'pass' | 'fail' | 'undetermined';
    readonly details: readonly string[];
  };
  readonly blinded: boolean;
  readonly notes?: readonly string[];
}

export interface EvaluationReport {
  readonly markdown: string;
  readonly html: string;
}

/** A table cell: plain text, or an identifier shown as code (digests). */
type Cell = string | { readonly code: string };

type Block =
  | { readonly kind: 'heading'; readonly level: 2 | 3; readonly text: string; readonly id: string }
  | { readonly kind: 'facts'; readonly items: ReadonlyArray<readonly [string, Cell]> }
  | { readonly kind: 'paragraph'; readonly text: string }
  | { readonly kind: 'list'; readonly items: readonly string[] }
  | {
      readonly kind: 'table';
      readonly caption: string;
      readonly columns: readonly string[];
      readonly rows: readonly (readonly Cell[])[];
      /** The first cell of each row heads the row. */
      readonly rowHeaders: boolean;
    }
  /** HTML only: an inline SVG chart (already escaped) with its caption (the Markdown has the data as a table). */
  | { readonly kind: 'figure'; readonly svg: string; readonly caption: string };

const NONE = '—';
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
const UNPRINTABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u202a-\u202e\u2066-\u2069]/g;
/** Characters that may appear unescaped inside a Markdown code span in a table cell. */
const PLAIN_CODE = /^[0-9A-Za-z._:+/=-]*$/;
const OUTCOMES = new Set(['pass', 'fail', 'undetermined']);

function invalid(field: string, what: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${what}`, { field });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function object<T>(value: T, field: string): T {
  if (!isRecord(value)) invalid(field, 'must be an object');
  return value;
}

/** Text fit to print: a string, without control characters or bidi overrides. */
function text(value: unknown, field: string): string {
  if (typeof value !== 'string') invalid(field, 'must be a string');
  return value.replace(UNPRINTABLE, '');
}

function code(value: unknown, field: string): Cell {
  const t = text(value, field);
  return t !== '' && PLAIN_CODE.test(t) ? { code: t } : t;
}

function strings(value: unknown, field: string): string[] {
  if (!Array.isArray(value)) invalid(field, 'must be an array of strings');
  return value.map((v, i) => text(v, `${field}[${i}]`));
}

function list(value: unknown, field: string): string {
  const items = strings(value, field);
  return items.length === 0 ? NONE : items.join(', ');
}

function count(value: unknown, field: string): string {
  if (!(Number.isSafeInteger(value) && (value as number) >= 0)) invalid(field, 'must be an integer ≥ 0');
  return String(value);
}

/** A rate or score with 4 decimals; null is "—". */
function fixed(value: unknown, field: string): string {
  if (value === null) return NONE;
  if (!(typeof value === 'number' && Number.isFinite(value)))
    invalid(field, 'must be a finite number or null');
  return (value === 0 ? 0 : value).toFixed(4);
}

/** A probability in [0, 1], or null. */
function probability(value: unknown, field: string): number | null {
  if (value === null) return null;
  if (!(typeof value === 'number' && value >= 0 && value <= 1))
    invalid(field, 'must be a number in [0, 1] or null');
  return value;
}

function entries<T>(value: Readonly<Record<string, T>>, field: string): [string, T][] {
  if (!isRecord(value)) invalid(field, 'must be an object');
  return Object.keys(value).map((k): [string, T] => [k, value[k] as T]);
}

function array<T>(value: readonly T[], field: string): readonly T[] {
  if (!Array.isArray(value)) invalid(field, 'must be an array');
  return value;
}

/** Name of class `k`. */
function className(classes: readonly string[] | undefined, k: number): string {
  return classes?.[k] ?? String(k);
}

const HEADLINE_COLUMNS = ['Rows', 'Accuracy', 'Log loss', 'Brier', 'ECE', 'MCE', 'ROC AUC', 'AP'] as const;

function headlineCells(m: ClassificationMetrics, at: string): string[] {
  object(m, at);
  return [
    count(m.rows, `${at}.rows`),
    fixed(m.accuracy, `${at}.accuracy`),
    fixed(m.logLoss, `${at}.logLoss`),
    fixed(m.brier, `${at}.brier`),
    fixed(m.ece, `${at}.ece`),
    fixed(m.mce, `${at}.mce`),
    fixed(m.rocAuc, `${at}.rocAuc`),
    fixed(m.averagePrecision, `${at}.averagePrecision`),
  ];
}

function fairnessGaps(f: FairnessMetrics | null, at: string): string[] {
  if (f === null) return [NONE, NONE];
  object(f, at);
  return [
    fixed(f.demographicParityDifference, `${at}.demographicParityDifference`),
    fixed(f.equalizedOddsDifference, `${at}.equalizedOddsDifference`),
  ];
}

/** The reliability bins, checked: bounds and means in [0, 1], counts integers. */
function checkBins(bins: readonly ReliabilityBin[], at: string): ReliabilityBin[] {
  if (!Array.isArray(bins)) invalid(at, 'must be an array');
  return bins.map((b, i) => {
    const f = `${at}[${i}]`;
    object(b, f);
    const lower = probability(b.lower, `${f}.lower`);
    const upper = probability(b.upper, `${f}.upper`);
    if (lower === null || upper === null || !(lower < upper)) invalid(f, 'needs 0 ≤ lower < upper ≤ 1');
    count(b.count, `${f}.count`);
    return {
      lower,
      upper,
      count: b.count,
      meanPredicted: probability(b.meanPredicted, `${f}.meanPredicted`),
      fractionPositive: probability(b.fractionPositive, `${f}.fractionPositive`),
    };
  });
}

/** The ROC curve, checked: two arrays of the same length with values in [0, 1]. */
function checkCurve(
  curve: ClassificationMetrics['rocCurve'],
  at: string,
): { fpr: number[]; tpr: number[] } | null {
  if (curve === null) return null;
  object(curve, at);
  if (!Array.isArray(curve.fpr) || !Array.isArray(curve.tpr) || curve.fpr.length !== curve.tpr.length)
    invalid(at, 'fpr and tpr must be arrays of the same length');
  const point = (v: unknown, f: string): number => {
    const p = probability(v, f);
    if (p === null) invalid(f, 'must be a number in [0, 1]');
    return p;
  };
  return {
    fpr: curve.fpr.map((v, i) => point(v, `${at}.fpr[${i}]`)),
    tpr: curve.tpr.map((v, i) => point(v, `${at}.tpr[${i}]`)),
  };
}

/**
 * The geometry of both charts, in SVG user units: a 240 × 240 plot whose origin (0, 0) is at
 * (60, 256) and whose (1, 1) is at (300, 16), so a value v maps to x = 60 + 240·v, y = 256 − 240·v.
 */
const CHART = { width: 320, height: 306, left: 60, top: 16, size: 240 } as const;
const sx = (v: number): string => (CHART.left + CHART.size * v).toFixed(2);
const sy = (v: number): string => (CHART.top + CHART.size * (1 - v)).toFixed(2);

/** Axes with ticks at 0, 0.2, …, 1 and their labels, the diagonal y = x, and axis titles. */
function chartFrame(xTitle: string, yTitle: string, diagonal: string): string[] {
  const bottom = CHART.top + CHART.size;
  const right = CHART.left + CHART.size;
  const out = [
    `<rect x="${CHART.left}" y="${CHART.top}" width="${CHART.size}" height="${CHART.size}" fill="#fafafa" stroke="none"/>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = i / 5;
    const label = v.toFixed(1);
    out.push(
      `<line class="grid" x1="${sx(v)}" y1="${CHART.top}" x2="${sx(v)}" y2="${bottom}"/>`,
      `<line class="grid" x1="${CHART.left}" y1="${sy(v)}" x2="${right}" y2="${sy(v)}"/>`,
      `<line class="tick" x1="${sx(v)}" y1="${bottom}" x2="${sx(v)}" y2="${bottom + 5}"/>`,
      `<line class="tick" x1="${CHART.left - 5}" y1="${sy(v)}" x2="${CHART.left}" y2="${sy(v)}"/>`,
      `<text x="${sx(v)}" y="${bottom + 18}" text-anchor="middle">${label}</text>`,
      `<text x="${CHART.left - 8}" y="${sy(v)}" text-anchor="end" dominant-baseline="middle">${label}</text>`,
    );
  }
  out.push(
    `<line class="axis" x1="${CHART.left}" y1="${bottom}" x2="${right}" y2="${bottom}"/>`,
    `<line class="axis" x1="${CHART.left}" y1="${CHART.top}" x2="${CHART.left}" y2="${bottom}"/>`,
    `<line class="diagonal" x1="${sx(0)}" y1="${sy(0)}" x2="${sx(1)}" y2="${sy(1)}"><title>${escapeHtml(diagonal)}</title></line>`,
    `<text class="axis-title" x="${CHART.left + CHART.size / 2}" y="${CHART.top + CHART.size + 42}" text-anchor="middle">${escapeHtml(xTitle)}</text>`,
    `<text class="axis-title" x="16" y="${CHART.top + CHART.size / 2}" text-anchor="middle" transform="rotate(-90 16 ${CHART.top + CHART.size / 2})">${escapeHtml(yTitle)}</text>`,
  );
  return out;
}

function svgOpen(id: string, title: string, description: string): string[] {
  return [
    `<svg class="chart" id="${id}" viewBox="0 0 ${CHART.width} ${CHART.height}" role="img" aria-labelledby="${id}-title ${id}-desc">`,
    `<title id="${id}-title">${escapeHtml(title, ' ')}</title>`,
    `<desc id="${id}-desc">${escapeHtml(description, ' ')}</desc>`,
  ];
}

/**
 * Reliability diagram (DeGroot & Fienberg 1983; Niculescu-Mizil & Caruana 2005): per bin, a bar over
 * [lower, upper) as high as the fraction of positives, and a point at (mean predicted, fraction
 * positive), joined in bin order; the diagonal is perfect calibration. Empty bins are drawn as nothing.
 */
function reliabilitySvg(id: string, model: string, bins: readonly ReliabilityBin[]): string {
  const filled = bins.filter((b) => b.meanPredicted !== null && b.fractionPositive !== null);
  const out = svgOpen(
    id,
    `Reliability diagram: ${model}`,
    `Fraction of positives against mean predicted probability in ${bins.length} bins (${filled.length} with rows); the diagonal is perfect calibration.`,
  );
  out.push(...chartFrame('Mean predicted probability', 'Fraction positive', 'Perfect calibration'));
  for (const b of filled) {
    const top = sy(b.fractionPositive!);
    const height = (CHART.size * b.fractionPositive!).toFixed(2);
    out.push(
      `<rect class="bin" x="${sx(b.lower)}" y="${top}" width="${(CHART.size * (b.upper - b.lower)).toFixed(2)}" height="${height}"/>`,
    );
  }
  out.push(
    `<polyline class="series" points="${filled.map((b) => `${sx(b.meanPredicted!)},${sy(b.fractionPositive!)}`).join(' ')}"/>`,
  );
  for (const b of filled)
    out.push(
      `<circle class="point" cx="${sx(b.meanPredicted!)}" cy="${sy(b.fractionPositive!)}" r="3.5"><title>${b.lower.toFixed(2)}–${b.upper.toFixed(2)}: ${b.count} rows, mean predicted ${b.meanPredicted!.toFixed(4)}, fraction positive ${b.fractionPositive!.toFixed(4)}</title></circle>`,
    );
  out.push('</svg>');
  return out.join('\n');
}

/** ROC curve: true positive rate against false positive rate at each threshold; the diagonal is chance. */
function rocSvg(id: string, model: string, curve: { fpr: number[]; tpr: number[] }, auc: string): string {
  const out = svgOpen(
    id,
    `ROC curve: ${model}`,
    `True positive rate against false positive rate, ${curve.fpr.length} points, area ${auc}; the diagonal is chance.`,
  );
  out.push(...chartFrame('False positive rate', 'True positive rate', 'Chance'));
  out.push(
    `<polyline class="series roc" points="${curve.fpr.map((f, i) => `${sx(f)},${sy(curve.tpr[i]!)}`).join(' ')}"/>`,
    `<text class="legend" x="${sx(0.95)}" y="${sy(0.05)}" text-anchor="end">AUC ${auc}</text>`,
    '</svg>',
  );
  return out.join('\n');
}

/** The Markdown/HTML-independent report: validates `input` and lays it out as blocks. */
function buildBlocks(input: EvaluationReportInput): { title: string; blocks: Block[] } {
  object(input, 'input');
  const title = text(input.title, 'input.title');
  if (typeof input.blinded !== 'boolean') invalid('input.blinded', 'must be a boolean');
  const blinded = input.blinded;
  const classes = input.classes === undefined ? undefined : strings(input.classes, 'input.classes');
  const plan = object(input.plan, 'input.plan');
  const blocks: Block[] = [];
  let ids = 0;
  const heading = (level: 2 | 3, t: string): void => {
    blocks.push({ kind: 'heading', level, text: t, id: `s${ids++}` });
  };

  blocks.push({
    kind: 'facts',
    items: [
      ['Consortium', text(input.consortium, 'input.consortium')],
      ['Generated at', text(input.generatedAt, 'input.generatedAt')],
      [
        'Blinding',
        blinded ? 'blinded: models are identified by label only' : 'unblinded: model names are revealed',
      ],
    ],
  });

  heading(2, 'Plan');
  blocks.push({
    kind: 'facts',
    items: [
      ['Plan digest', code(plan.digest, 'input.plan.digest')],
      ['Hypothesis', text(plan.hypothesis, 'input.plan.hypothesis')],
      ['Decision rule', text(plan.decisionRule, 'input.plan.decisionRule')],
      ['Declared metrics', list(plan.metrics, 'input.plan.metrics')],
      ['Approved by', list(plan.approvedBy, 'input.plan.approvedBy')],
      [
        'Audit log entry',
        plan.loggedAt === undefined ? 'not logged' : count(plan.loggedAt, 'input.plan.loggedAt'),
      ],
    ],
  });

  const labels = new Set<string>();
  const models = array(input.models, 'input.models').map((m, i) => {
    const at = `input.models[${i}]`;
    object(m, at);
    const label = text(m.label, `${at}.label`);
    if (label === '') invalid(`${at}.label`, 'must not be empty');
    if (labels.has(label)) invalid(`${at}.label`, `duplicate label ${JSON.stringify(label)}`);
    labels.add(label);
    if (blinded && m.name !== undefined) invalid(`${at}.name`, 'must be absent while the report is blinded');
    const name = m.name === undefined ? undefined : text(m.name, `${at}.name`);
    const metrics = object(m.metrics, `${at}.metrics`);
    object(metrics.overall, `${at}.metrics.overall`);
    if (metrics.fairness !== null) object(metrics.fairness, `${at}.metrics.fairness`);
    return { ...m, label, name, metrics, at, display: name === undefined ? label : `${label} (${name})` };
  });

  heading(2, 'Models');
  blocks.push({
    kind: 'table',
    caption: 'Models evaluated',
    columns: blinded
      ? ['Model', 'SHA-256', 'Result log entry']
      : ['Model', 'Name', 'SHA-256', 'Result log entry'],
    rows: models.map((m) => [
      m.label,
      ...(blinded ? [] : [m.name ?? NONE]),
      m.sha256 === undefined ? NONE : code(m.sha256, `${m.at}.sha256`),
      m.resultLogIndex === undefined ? 'not logged' : count(m.resultLogIndex, `${m.at}.resultLogIndex`),
    ]),
    rowHeaders: true,
  });

  heading(2, 'Headline metrics');
  blocks.push({
    kind: 'table',
    caption: 'Headline metrics per model (all rows)',
    columns: ['Model', ...HEADLINE_COLUMNS, 'DP difference', 'EO difference'],
    rows: models.map((m) => [
      m.display,
      ...headlineCells(m.metrics.overall, `${m.at}.metrics.overall`),
      ...fairnessGaps(m.metrics.fairness, `${m.at}.metrics.fairness`),
    ]),
    rowHeaders: true,
  });
  blocks.push({
    kind: 'paragraph',
    text: 'ECE and MCE: expected and maximum calibration error. AP: average precision. DP difference: demographic parity difference; EO difference: equalized odds difference (both between groups of the sensitive attribute).',
  });

  models.forEach((m, i) => {
    const overall = m.metrics.overall;
    const at = `${m.at}.metrics.overall`;
    heading(2, `Model ${m.display}`);

    heading(3, 'Per class');
    const perClass = array(overall.perClass, `${at}.perClass`);
    const macro = object(overall.macro, `${at}.macro`);
    const micro = object(overall.micro, `${at}.micro`);
    blocks.push({
      kind: 'table',
      caption: 'Precision, recall and F1 per class',
      columns: ['Class', 'Precision', 'Recall', 'F1', 'Support'],
      rows: [
        ...perClass.map((c, k) => {
          const f = `${at}.perClass[${k}]`;
          object(c, f);
          return [
            className(classes, k),
            fixed(c.precision, `${f}.precision`),
            fixed(c.recall, `${f}.recall`),
            fixed(c.f1, `${f}.f1`),
            count(c.support, `${f}.support`),
          ];
        }),
        ...(
          [
            ['Macro average', macro, `${at}.macro`],
            ['Micro average', micro, `${at}.micro`],
          ] as const
        ).map(([label, avg, f]) => [
          label,
          fixed(avg.precision, `${f}.precision`),
          fixed(avg.recall, `${f}.recall`),
          fixed(avg.f1, `${f}.f1`),
          NONE,
        ]),
      ],
      rowHeaders: true,
    });

    heading(3, 'Confusion matrix');
    const confusion = array(overall.confusion, `${at}.confusion`);
    const n = confusion.length;
    blocks.push({
      kind: 'table',
      caption: 'Confusion matrix (rows: true class, columns: predicted class)',
      columns: ['True \\ predicted', ...Array.from({ length: n }, (_, k) => className(classes, k))],
      rows: confusion.map((row, t) => {
        if (array(row, `${at}.confusion[${t}]`).length !== n)
          invalid(`${at}.confusion[${t}]`, `must be an array of ${n} counts`);
        return [className(classes, t), ...row.map((c, p) => count(c, `${at}.confusion[${t}][${p}]`))];
      }),
      rowHeaders: true,
    });

    heading(3, 'Calibration');
    const bins = checkBins(overall.reliability, `${at}.reliability`);
    blocks.push({
      kind: 'table',
      caption: 'Reliability bins (lower bound included, upper excluded but for the last bin)',
      columns: ['Bin', 'Rows', 'Mean predicted', 'Fraction positive'],
      rows: bins.map((b) => [
        `${b.lower.toFixed(2)}–${b.upper.toFixed(2)}`,
        String(b.count),
        fixed(b.meanPredicted, ''),
        fixed(b.fractionPositive, ''),
      ]),
      rowHeaders: true,
    });
    blocks.push({
      kind: 'figure',
      svg: reliabilitySvg(`model-${i}-reliability`, m.display, bins),
      caption: `Reliability diagram. ECE ${fixed(overall.ece, `${at}.ece`)}, MCE ${fixed(overall.mce, `${at}.mce`)}.`,
    });
    const curve = checkCurve(overall.rocCurve, `${at}.rocCurve`);
    const auc = fixed(overall.rocAuc, `${at}.rocAuc`);
    if (curve)
      blocks.push({
        kind: 'figure',
        svg: rocSvg(`model-${i}-roc`, m.display, curve, auc),
        caption: `ROC curve, ${curve.fpr.length} points. AUC ${auc}.`,
      });
    else
      blocks.push({
        kind: 'paragraph',
        text: 'No ROC curve (a multi-class model, or a single class present).',
      });

    heading(3, 'Fairness');
    const fairness = m.metrics.fairness;
    if (fairness === null) blocks.push({ kind: 'paragraph', text: 'No sensitive attribute declared.' });
    else {
      const f = `${m.at}.metrics.fairness`;
      blocks.push({
        kind: 'facts',
        items: [
          ['Sensitive attribute', text(fairness.attribute, `${f}.attribute`)],
          [
            'Demographic parity difference',
            fixed(fairness.demographicParityDifference, `${f}.demographicParityDifference`),
          ],
          ['Demographic parity ratio', fixed(fairness.demographicParityRatio, `${f}.demographicParityRatio`)],
          [
            'Equalized odds difference',
            fixed(fairness.equalizedOddsDifference, `${f}.equalizedOddsDifference`),
          ],
          [
            'Equal opportunity difference',
            fixed(fairness.equalOpportunityDifference, `${f}.equalOpportunityDifference`),
          ],
        ],
      });
      blocks.push({
        kind: 'table',
        caption: `Per group of ${fairness.attribute}`,
        columns: ['Group', 'Rows', 'Selection rate', 'True positive rate', 'False positive rate', 'Accuracy'],
        rows: entries(fairness.groups, `${f}.groups`).map(([group, g]) => {
          const gf = `${f}.groups.${group}`;
          object(g, gf);
          return [
            text(group, gf),
            count(g.rows, `${gf}.rows`),
            fixed(g.selectionRate, `${gf}.selectionRate`),
            fixed(g.truePositiveRate, `${gf}.truePositiveRate`),
            fixed(g.falsePositiveRate, `${gf}.falsePositiveRate`),
            fixed(g.accuracy, `${gf}.accuracy`),
          ];
        }),
        rowHeaders: true,
      });
    }

    heading(3, 'Slices');
    const slices = entries(m.metrics.slices, `${m.at}.metrics.slices`);
    if (slices.length === 0) blocks.push({ kind: 'paragraph', text: 'No slices declared.' });
    else
      blocks.push({
        kind: 'table',
        caption: 'Metrics per slice',
        columns: ['Slice', ...HEADLINE_COLUMNS],
        rows: slices.map(([slice, s]) => {
          const sf = `${m.at}.metrics.slices.${slice}`;
          return [text(slice, sf), ...headlineCells(s, sf)];
        }),
        rowHeaders: true,
      });
  });

  heading(2, 'Decision');
  if (input.decision === undefined) blocks.push({ kind: 'paragraph', text: 'No decision recorded.' });
  else {
    const decision = object(input.decision, 'input.decision');
    if (!OUTCOMES.has(decision.outcome as string))
      invalid('input.decision.outcome', "must be 'pass', 'fail' or 'undetermined'");
    blocks.push({ kind: 'facts', items: [['Outcome', decision.outcome]] });
    const details = strings(decision.details, 'input.decision.details');
    if (details.length > 0) blocks.push({ kind: 'list', items: details });
  }

  if (input.notes !== undefined) {
    const notes = strings(input.notes, 'input.notes');
    if (notes.length > 0) {
      heading(2, 'Notes');
      blocks.push({ kind: 'list', items: notes });
    }
  }
  return { title, blocks };
}

function markdownCell(cell: Cell): string {
  return typeof cell === 'string' ? escapeMarkdown(cell) : `\`${cell.code}\``;
}

function renderMarkdown(title: string, blocks: readonly Block[]): string {
  const out = [`# ${escapeMarkdown(title)}`];
  for (const block of blocks) {
    switch (block.kind) {
      case 'heading':
        out.push('', `${'#'.repeat(block.level)} ${escapeMarkdown(block.text)}`);
        break;
      case 'facts':
        out.push(
          '',
          ...block.items.map(([label, value]) => `- ${escapeMarkdown(label)}: ${markdownCell(value)}`),
        );
        break;
      case 'paragraph':
        out.push('', escapeMarkdown(block.text));
        break;
      case 'list':
        out.push('', ...block.items.map((item) => `- ${escapeMarkdown(item)}`));
        break;
      case 'table': {
        const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
        out.push('', `*${escapeMarkdown(block.caption)}*`, '');
        out.push(line(block.columns.map(escapeMarkdown)), line(block.columns.map(() => '---')));
        if (block.rows.length === 0) out.push(line(block.columns.map((_, i) => (i === 0 ? 'none' : NONE))));
        for (const row of block.rows) out.push(line(row.map(markdownCell)));
        break;
      }
      case 'figure':
        break;
    }
  }
  return `${out.join('\n')}\n`;
}

function htmlCell(cell: Cell): string {
  return typeof cell === 'string' ? escapeHtml(cell) : `<code>${escapeHtml(cell.code)}</code>`;
}

/** Numbers, ranges of numbers and "—": right-aligned, never wrapped. */
const NUMERIC = /^(?:-?\d+(?:\.\d+)?(?:–\d+(?:\.\d+)?)?|—)$/;

/** A table cell element: `th` heading its row, or `td`; numeric cells carry class "n". */
function htmlTableCell(cell: Cell, header: boolean): string {
  const tag = header ? 'th scope="row"' : 'td';
  const numeric = typeof cell === 'string' && NUMERIC.test(cell) ? ' class="n"' : '';
  return `<${tag}${numeric}>${htmlCell(cell)}</${header ? 'th' : 'td'}>`;
}

const STYLE = [
  'body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1b1b;line-height:1.4}',
  'h1,h2,h3,p,li,dd,figcaption{overflow-wrap:anywhere}',
  'h2{border-bottom:1px solid #c8c8c8;padding-bottom:0.2rem;margin-top:2rem}',
  'table{border-collapse:collapse;margin:0.5rem 0 1rem;font-variant-numeric:tabular-nums}',
  'caption{text-align:left;font-weight:600;padding:0.25rem 0}',
  'th,td{border:1px solid #c8c8c8;padding:0.3rem 0.5rem;text-align:left;vertical-align:top}',
  'th.n,td.n{text-align:right;white-space:nowrap}',
  'thead th{background:#f0f0f0}',
  'tbody th{font-weight:600;background:#f8f8f8}',
  'code{font-size:0.85em;word-break:break-all}',
  'td code{white-space:nowrap;word-break:normal}',
  '.table-scroll{overflow-x:auto;max-width:100%}',
  'dl{display:grid;grid-template-columns:minmax(8rem,max-content) minmax(0,1fr);gap:0.2rem 0.75rem}',
  'dt{font-weight:600}',
  'dd{margin:0;min-width:0}',
  '.figures{display:flex;flex-wrap:wrap;gap:1rem}',
  'figure{flex:1 1 16rem;max-width:28rem;min-width:0;margin:0}',
  'svg.chart{display:block;width:100%;height:auto}',
  'svg.chart text{font-size:11px;fill:#1b1b1b}',
  'svg.chart .axis-title{font-size:12px;font-weight:600}',
  'svg.chart .grid{stroke:#e4e4e4;stroke-width:1}',
  'svg.chart .axis,svg.chart .tick{stroke:#1b1b1b;stroke-width:1}',
  'svg.chart .diagonal{stroke:#888;stroke-width:1;stroke-dasharray:4 3}',
  'svg.chart .bin{fill:#9ecae1;fill-opacity:0.6;stroke:#6baed6}',
  'svg.chart .series{fill:none;stroke:#08519c;stroke-width:2}',
  'svg.chart .point{fill:#08519c}',
  'svg.chart .legend{font-weight:600}',
  '@media (max-width:30rem){dl{grid-template-columns:minmax(0,1fr)}dd{margin-bottom:0.4rem}}',
].join('\n');

function renderHtml(title: string, blocks: readonly Block[]): string {
  const out = [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title, ' ')}</title>`,
    `<style>\n${STYLE}\n</style>`,
    '</head>',
    '<body>',
    '<main>',
    `<h1>${escapeHtml(title)}</h1>`,
  ];
  let section = '';
  let inFigures = false;
  const closeFigures = (): void => {
    if (inFigures) out.push('</div>');
    inFigures = false;
  };
  for (const block of blocks) {
    if (block.kind !== 'figure') closeFigures();
    switch (block.kind) {
      case 'heading':
        section = block.id;
        out.push(`<h${block.level} id="${block.id}">${escapeHtml(block.text)}</h${block.level}>`);
        break;
      case 'facts':
        out.push(
          '<dl>',
          ...block.items.map(([label, value]) => `<dt>${escapeHtml(label)}</dt><dd>${htmlCell(value)}</dd>`),
          '</dl>',
        );
        break;
      case 'paragraph':
        out.push(`<p>${escapeHtml(block.text)}</p>`);
        break;
      case 'list':
        out.push('<ul>', ...block.items.map((item) => `<li>${escapeHtml(item)}</li>`), '</ul>');
        break;
      case 'table':
        // Wide tables scroll inside their own box on narrow screens (the page itself never does).
        out.push(
          `<div class="table-scroll" role="region" aria-labelledby="${section}" tabindex="0">`,
          '<table>',
          `<caption>${escapeHtml(block.caption)}</caption>`,
          '<thead>',
          `<tr>${block.columns.map((c) => `<th scope="col">${escapeHtml(c)}</th>`).join('')}</tr>`,
          '</thead>',
          '<tbody>',
        );
        if (block.rows.length === 0) out.push(`<tr><td colspan="${block.columns.length}">none</td></tr>`);
        for (const row of block.rows)
          out.push(`<tr>${row.map((c, i) => htmlTableCell(c, i === 0 && block.rowHeaders)).join('')}</tr>`);
        out.push('</tbody>', '</table>', '</div>');
        break;
      case 'figure':
        if (!inFigures) out.push('<div class="figures">');
        inFigures = true;
        out.push('<figure>', block.svg, `<figcaption>${escapeHtml(block.caption)}</figcaption>`, '</figure>');
        break;
    }
  }
  closeFigures();
  out.push('</main>', '</body>', '</html>');
  return `${out.join('\n')}\n`;
}

/**
 * Renders the evaluation report as Markdown and as one self-contained HTML document. Throws
 * EntenteError('INVALID_ARGUMENT') naming the field (e.g. `input.models[1].metrics.overall.ece`) for
 * input not of the declared shape, a non-finite number, or a model name in a blinded report.
 */
export function renderEvaluationReport(input: EvaluationReportInput): EvaluationReport {
  const { title, blocks } = buildBlocks(input);
  return { markdown: renderMarkdown(title, blocks), html: renderHtml(title, blocks) };
}
