/**
 * The governance report (issue 6): who the members are, which policy versions were adopted and by whom,
 * every proposal and its approvals, the runs, the privacy each institution spent, and the incidents —
 * fit to publish. Rendered from plain data the coordinator gathers, as GitHub-flavoured Markdown (GFM
 * tables) or one self-contained HTML document (no scripts, no external resources, a CSP that forbids
 * both). Both renderings come from one table model, so they always say the same thing. Every text value
 * is escaped (HTML: & < > " '; Markdown: table and inline syntax, raw HTML); control and bidirectional
 * override characters are dropped; a PEM block found in any text is replaced, never printed.
 */
import { EntenteError } from '../core/errors.ts';
import { escapeHtml, escapeMarkdown } from '../core/markup-escape.ts';

export interface GovernanceReportData {
  readonly consortium: string;
  /** RFC 3339, passed in. */
  readonly generatedAt: string;
  readonly log: {
    readonly size: number;
    readonly rootHash: string;
    readonly checkpointCosigners: readonly string[];
  } | null;
  readonly members: ReadonlyArray<{
    id: string;
    roles: readonly string[];
    enrolledAt: string | null;
    certificateExpires: string | null;
    revoked: boolean;
  }>;
  readonly policies: ReadonlyArray<{
    version: number;
    sha256: string;
    adoptedAt: string;
    approvedBy: readonly string[];
    logIndex: number | null;
  }>;
  readonly proposals: ReadonlyArray<{
    id: string;
    kind: string;
    subjectSha256: string;
    createdAt: string;
    status: 'open' | 'approved' | 'rejected' | 'expired';
    signers: readonly string[];
    decidedAt: string | null;
    missing: string;
  }>;
  readonly runs: ReadonlyArray<{
    id: string;
    status: string;
    rounds: number;
    createdAt: string;
    finishedAt: string | null;
    approvedBy: readonly string[];
  }>;
  readonly privacy: ReadonlyArray<{
    institution: string;
    run: string;
    epsilon: number | null;
    delta: number;
  }>;
  readonly incidents: ReadonlyArray<{
    id: string;
    raisedBy: string;
    reason: string;
    raisedAt: string;
    resolvedAt: string | null;
    resolvedBy: readonly string[];
  }>;
}

/** A table cell: plain text, or an identifier shown as code (digests). */
type Cell = string | { readonly code: string };

interface ReportTable {
  readonly heading: string;
  readonly caption: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly Cell[])[];
  /** What the section says when it has no rows. */
  readonly empty: string;
}

interface ReportModel {
  readonly title: string;
  readonly facts: ReadonlyArray<readonly [string, Cell]>;
  readonly tables: readonly ReportTable[];
}

const NONE = '—';
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
const UNPRINTABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u202a-\u202e\u2066-\u2069]/g;
const PEM_BLOCK = /-----BEGIN [^\r\n]{1,80}?-----[\s\S]*?(?:-----END [^\r\n]{1,80}?-----|$)/g;
/** Characters that may appear unescaped inside a Markdown code span in a table cell. */
const PLAIN_CODE = /^[0-9A-Za-z._:+/=-]*$/;

function invalid(field: string, what: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${what}`, { field });
}

/** Text fit to print: a string, without control characters, bidi overrides or key material. */
function text(value: unknown, field: string): string {
  if (typeof value !== 'string') invalid(field, 'must be a string');
  return value.replace(PEM_BLOCK, '(key material removed)').replace(UNPRINTABLE, '');
}

function textOrNone(value: unknown, field: string, none: string): string {
  return value === null ? none : text(value, field);
}

function code(value: unknown, field: string): Cell {
  const t = text(value, field);
  return t !== '' && PLAIN_CODE.test(t) ? { code: t } : t;
}

function list(value: unknown, field: string): string {
  if (!Array.isArray(value)) invalid(field, 'must be an array of strings');
  return value.length === 0 ? NONE : value.map((v, i) => text(v, `${field}.${i}`)).join(', ');
}

function count(value: unknown, field: string): string {
  if (!(Number.isSafeInteger(value) && (value as number) >= 0)) invalid(field, 'must be an integer ≥ 0');
  return String(value);
}

function rows<T>(value: readonly T[], field: string, row: (item: T, at: string) => Cell[]): Cell[][] {
  if (!Array.isArray(value)) invalid(field, 'must be an array');
  return value.map((item, i) => {
    const at = `${field}.${i}`;
    if (item === null || typeof item !== 'object') invalid(at, 'must be an object');
    return row(item, at);
  });
}

/** ε with 3 decimals; null or +∞ is unbounded. */
function formatEpsilon(value: unknown, field: string): string {
  if (value === null || value === Number.POSITIVE_INFINITY) return 'unbounded (no DP)';
  if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0))
    invalid(field, 'must be a number ≥ 0 or null');
  return value.toFixed(3);
}

/** δ in exponent form with at most 3 significant digits, e.g. 1e-6, 2.5e-7; 0 as 0. */
function formatDelta(value: unknown, field: string): string {
  if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0 && value < 1))
    invalid(field, 'must be a number in [0, 1)');
  return value === 0 ? '0' : Number(value.toPrecision(3)).toExponential();
}

/** Validates `data` and lays the report out as tables; throws INVALID_ARGUMENT naming the field. */
function buildReportModel(data: GovernanceReportData): ReportModel {
  if (data === null || typeof data !== 'object') invalid('data', 'must be an object');
  const consortium = text(data.consortium, 'data.consortium');
  const facts: Array<readonly [string, Cell]> = [
    ['Consortium', consortium],
    ['Generated at', text(data.generatedAt, 'data.generatedAt')],
  ];
  const log = data.log;
  if (log === null) facts.push(['Audit log', 'no signed checkpoint yet']);
  else if (typeof log !== 'object') invalid('data.log', 'must be an object or null');
  else
    facts.push(
      ['Audit log size', `${count(log.size, 'data.log.size')} entries`],
      ['Audit log root hash', code(log.rootHash, 'data.log.rootHash')],
      ['Checkpoint cosigners', list(log.checkpointCosigners, 'data.log.checkpointCosigners')],
    );
  const tables: ReportTable[] = [
    {
      heading: 'Members',
      caption: `Members of ${consortium}`,
      columns: ['Member', 'Roles', 'Enrolled', 'Certificate expires', 'Status'],
      rows: rows(data.members, 'data.members', (m, at) => [
        text(m.id, `${at}.id`),
        list(m.roles, `${at}.roles`),
        textOrNone(m.enrolledAt, `${at}.enrolledAt`, 'not enrolled'),
        textOrNone(m.certificateExpires, `${at}.certificateExpires`, NONE),
        m.revoked === true
          ? 'revoked'
          : m.revoked === false
            ? 'active'
            : invalid(`${at}.revoked`, 'must be a boolean'),
      ]),
      empty: 'No members.',
    },
    {
      heading: 'Policy versions',
      caption: 'Adopted policy versions',
      columns: ['Version', 'SHA-256', 'Adopted', 'Approved by', 'Log index'],
      rows: rows(data.policies, 'data.policies', (p, at) => [
        count(p.version, `${at}.version`),
        code(p.sha256, `${at}.sha256`),
        text(p.adoptedAt, `${at}.adoptedAt`),
        list(p.approvedBy, `${at}.approvedBy`),
        p.logIndex === null ? 'not logged' : count(p.logIndex, `${at}.logIndex`),
      ]),
      empty: 'No policy versions.',
    },
    {
      heading: 'Approvals',
      caption: 'Proposals and their approvals',
      columns: ['Proposal', 'Kind', 'Subject SHA-256', 'Created', 'Status', 'Signers', 'Decided', 'Missing'],
      rows: rows(data.proposals, 'data.proposals', (p, at) => [
        code(p.id, `${at}.id`),
        text(p.kind, `${at}.kind`),
        code(p.subjectSha256, `${at}.subjectSha256`),
        text(p.createdAt, `${at}.createdAt`),
        text(p.status, `${at}.status`),
        list(p.signers, `${at}.signers`),
        textOrNone(p.decidedAt, `${at}.decidedAt`, 'undecided'),
        text(p.missing, `${at}.missing`) || NONE,
      ]),
      empty: 'No proposals.',
    },
    {
      heading: 'Runs',
      caption: 'Training runs',
      columns: ['Run', 'Status', 'Rounds', 'Created', 'Finished', 'Approved by'],
      rows: rows(data.runs, 'data.runs', (r, at) => [
        text(r.id, `${at}.id`),
        text(r.status, `${at}.status`),
        count(r.rounds, `${at}.rounds`),
        text(r.createdAt, `${at}.createdAt`),
        textOrNone(r.finishedAt, `${at}.finishedAt`, 'not finished'),
        list(r.approvedBy, `${at}.approvedBy`),
      ]),
      empty: 'No runs.',
    },
    {
      heading: 'Privacy spent per institution',
      caption: 'Privacy loss (ε at δ) spent per institution and run',
      columns: ['Institution', 'Run', 'ε', 'δ'],
      rows: rows(data.privacy, 'data.privacy', (p, at) => [
        text(p.institution, `${at}.institution`),
        text(p.run, `${at}.run`),
        formatEpsilon(p.epsilon, `${at}.epsilon`),
        formatDelta(p.delta, `${at}.delta`),
      ]),
      empty: 'No privacy spent.',
    },
    {
      heading: 'Incidents',
      caption: 'Incidents raised',
      columns: ['Incident', 'Raised by', 'Reason', 'Raised', 'Resolved', 'Resolved by'],
      rows: rows(data.incidents, 'data.incidents', (x, at) => [
        text(x.id, `${at}.id`),
        text(x.raisedBy, `${at}.raisedBy`),
        text(x.reason, `${at}.reason`),
        text(x.raisedAt, `${at}.raisedAt`),
        textOrNone(x.resolvedAt, `${at}.resolvedAt`, 'unresolved'),
        list(x.resolvedBy, `${at}.resolvedBy`),
      ]),
      empty: 'None.',
    },
  ];
  return { title: `Governance report: ${consortium}`, facts, tables };
}

function renderMarkdownCell(cell: Cell): string {
  return typeof cell === 'string' ? escapeMarkdown(cell) : `\`${cell.code}\``;
}

/** The report as GitHub-flavoured Markdown. Throws INVALID_ARGUMENT (field 'data.<path>') for data not of
 *  the declared shape. Deterministic: the same data gives the same bytes. */
export function renderGovernanceReportMarkdown(data: GovernanceReportData): string {
  const model = buildReportModel(data);
  const out = [`# ${escapeMarkdown(model.title)}`, ''];
  for (const [label, value] of model.facts) out.push(`- ${label}: ${renderMarkdownCell(value)}`);
  for (const table of model.tables) {
    out.push('', `## ${table.heading}`, '');
    if (table.rows.length === 0) {
      out.push(table.empty);
      continue;
    }
    const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
    out.push(line(table.columns), line(table.columns.map(() => '---')));
    for (const row of table.rows) out.push(line(row.map(renderMarkdownCell)));
  }
  return `${out.join('\n')}\n`;
}

function renderHtmlCell(cell: Cell): string {
  return typeof cell === 'string' ? escapeHtml(cell) : `<code>${escapeHtml(cell.code)}</code>`;
}

const STYLE = [
  'body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1b1b}',
  'table{border-collapse:collapse;width:100%;margin:0.5rem 0 1.5rem}',
  'caption{text-align:left;font-weight:600;padding:0.25rem 0}',
  'th,td{border:1px solid #c8c8c8;padding:0.3rem 0.5rem;text-align:left;vertical-align:top}',
  'th{background:#f0f0f0}',
  'code{font-size:0.85em;word-break:break-all}',
  '.table-scroll{overflow-x:auto;max-width:100%}',
  'td{overflow-wrap:anywhere}',
  'dt{font-weight:600;float:left;clear:left;margin-right:0.5rem}',
].join('\n');

/** The report as one self-contained HTML document (no scripts, no external resources). Throws
 *  INVALID_ARGUMENT (field 'data.<path>') for data not of the declared shape. Deterministic. */
export function renderGovernanceReportHtml(data: GovernanceReportData): string {
  const model = buildReportModel(data);

  const out = [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(model.title, ' ')}</title>`,
    `<style>\n${STYLE}\n</style>`,
    '</head>',
    '<body>',
    '<main>',
    `<h1>${escapeHtml(model.title)}</h1>`,
    '<dl>',
  ];
  for (const [label, value] of model.facts)
    out.push(`<dt>${escapeHtml(label)}</dt><dd>${renderHtmlCell(value)}</dd>`);
  out.push('</dl>');
  model.tables.forEach((table, i) => {
    out.push(
      `<section aria-labelledby="section-${i}">`,
      `<h2 id="section-${i}">${escapeHtml(table.heading)}</h2>`,
    );
    if (table.rows.length === 0) {
      out.push(`<p>${escapeHtml(table.empty)}</p>`, '</section>');
      return;
    }
    // Wide tables scroll inside their own box on narrow screens (the page itself never does).
    out.push(
      `<div class="table-scroll" role="region" aria-labelledby="section-${i}" tabindex="0">`,
      '<table>',
      `<caption>${escapeHtml(table.caption)}</caption>`,
      '<thead>',
    );
    out.push(`<tr>${table.columns.map((c) => `<th scope="col">${escapeHtml(c)}</th>`).join('')}</tr>`);
    out.push('</thead>', '<tbody>');
    for (const row of table.rows)
      out.push(`<tr>${row.map((c) => `<td>${renderHtmlCell(c)}</td>`).join('')}</tr>`);
    out.push('</tbody>', '</table>', '</div>', '</section>');
  });
  out.push('</main>', '</body>', '</html>');
  return `${out.join('\n')}\n`;
}
