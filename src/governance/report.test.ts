import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type GovernanceReportData,
  renderGovernanceReportHtml,
  renderGovernanceReportMarkdown,
} from './report.ts';

const root = '1'.repeat(64);
const policyDigest = '2'.repeat(64);
const subject = '3'.repeat(64);
const proposalId = '4'.repeat(64);

function createData(): GovernanceReportData {
  return {
    consortium: 'hospitals-eu',
    generatedAt: '2025-03-04T10:00:00Z',
    log: { size: 1234, rootHash: root, checkpointCosigners: ['hospital-a', 'hospital-b'] },
    members: [
      {
        id: 'hospital-a',
        roles: ['institution', 'data-steward'],
        enrolledAt: '2025-01-02T08:00:00Z',
        certificateExpires: '2026-01-02T08:00:00Z',
        revoked: false,
      },
      { id: 'former', roles: ['institution'], enrolledAt: null, certificateExpires: null, revoked: true },
    ],
    policies: [
      {
        version: 2,
        sha256: policyDigest,
        adoptedAt: '2025-02-01T00:00:00Z',
        approvedBy: ['hospital-a', 'auditor'],
        logIndex: 17,
      },
      {
        version: 1,
        sha256: 'a'.repeat(64),
        adoptedAt: '2025-01-01T00:00:00Z',
        approvedBy: [],
        logIndex: null,
      },
    ],
    proposals: [
      {
        id: proposalId,
        kind: 'resume-runs',
        subjectSha256: subject,
        createdAt: '2025-03-01T09:30:00Z',
        status: 'open',
        signers: ['hospital-a'],
        decidedAt: null,
        missing: '1 more of {hospital-b, hospital-c}',
      },
    ],
    runs: [
      {
        id: 'run-7',
        status: 'finished',
        rounds: 40,
        createdAt: '2025-02-10T00:00:00Z',
        finishedAt: '2025-02-11T00:00:00Z',
        approvedBy: ['hospital-a', 'hospital-b'],
      },
    ],
    privacy: [
      { institution: 'hospital-a', run: 'run-7', epsilon: 2.34567, delta: 1e-6 },
      { institution: 'hospital-b', run: 'run-7', epsilon: null, delta: 0 },
    ],
    incidents: [
      {
        id: 'inc-1',
        raisedBy: 'hospital-b',
        reason: 'unexpected survivor set',
        raisedAt: '2025-02-12T00:00:00Z',
        resolvedAt: null,
        resolvedBy: [],
      },
    ],
  };
}

const emptyData = (): GovernanceReportData => ({
  ...createData(),
  log: null,
  members: [],
  policies: [],
  proposals: [],
  runs: [],
  privacy: [],
  incidents: [],
});

const sectionOrder = [
  'Members',
  'Policy versions',
  'Approvals',
  'Runs',
  'Privacy spent per institution',
  'Incidents',
];

/** The text of one Markdown section (from its heading to the next). */
function markdownSection(md: string, heading: string): string {
  const start = md.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `no section ${heading}`);
  const next = md.indexOf('\n## ', start + 1);
  return md.slice(start, next < 0 ? undefined : next);
}

function htmlSection(html: string, heading: string): string {
  const start = html.indexOf(`>${heading}</h2>`);
  assert.ok(start >= 0, `no section ${heading}`);
  return html.slice(start, html.indexOf('</section>', start));
}

describe('renderGovernanceReportMarkdown', () => {
  const md = renderGovernanceReportMarkdown(createData());

  it('has the title, the head facts and every section, in order', () => {
    assert.ok(md.startsWith('# Governance report: hospitals-eu\n'));
    assert.match(md, /^- Generated at: 2025-03-04T10:00:00Z$/m);
    assert.match(md, /^- Audit log size: 1234 entries$/m);
    assert.match(md, new RegExp(`^- Audit log root hash: \`${root}\`$`, 'm'));
    assert.match(md, /^- Checkpoint cosigners: hospital-a, hospital-b$/m);
    const positions = sectionOrder.map((h) => md.indexOf(`\n## ${h}\n`));
    assert.ok(positions.every((p) => p > 0));
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
    );
  });

  it('renders every row as a GitHub table row with the given values', () => {
    const members = markdownSection(md, 'Members');
    assert.match(members, /^\| Member \| Roles \| Enrolled \| Certificate expires \| Status \|$/m);
    assert.match(members, /^\| --- \| --- \| --- \| --- \| --- \|$/m);
    assert.match(
      members,
      /^\| hospital-a \| institution, data-steward \| 2025-01-02T08:00:00Z \| 2026-01-02T08:00:00Z \| active \|$/m,
    );
    assert.match(members, /^\| former \| institution \| not enrolled \| — \| revoked \|$/m);
    const policies = markdownSection(md, 'Policy versions');
    assert.ok(
      policies.includes(`| 2 | \`${policyDigest}\` | 2025-02-01T00:00:00Z | hospital-a, auditor | 17 |`),
    );
    assert.ok(policies.includes('| — | not logged |'));
    const approvals = markdownSection(md, 'Approvals');
    assert.ok(
      approvals.includes(
        `| \`${proposalId}\` | resume-runs | \`${subject}\` | 2025-03-01T09:30:00Z | open |`,
      ),
    );
    assert.ok(approvals.includes('| undecided | 1 more of {hospital-b, hospital-c} |'));
    assert.ok(markdownSection(md, 'Runs').includes('| run-7 | finished | 40 | 2025-02-10T00:00:00Z |'));
    const incidents = markdownSection(md, 'Incidents');
    assert.ok(
      incidents.includes(
        '| inc-1 | hospital-b | unexpected survivor set | 2025-02-12T00:00:00Z | unresolved | — |',
      ),
    );
  });

  it('formats ε with 3 decimals, unbounded for null, and δ in exponent form', () => {
    const privacy = markdownSection(md, 'Privacy spent per institution');
    assert.match(privacy, /^\| hospital-a \| run-7 \| 2\.346 \| 1e-6 \|$/m);
    assert.match(privacy, /^\| hospital-b \| run-7 \| unbounded \(no DP\) \| 0 \|$/m);
  });

  it('says so for each empty list, and for a log with no checkpoint', () => {
    const empty = renderGovernanceReportMarkdown(emptyData());
    assert.match(empty, /^- Audit log: no signed checkpoint yet$/m);
    assert.match(markdownSection(empty, 'Members'), /No members\./);
    assert.match(markdownSection(empty, 'Policy versions'), /No policy versions\./);
    assert.match(markdownSection(empty, 'Approvals'), /No proposals\./);
    assert.match(markdownSection(empty, 'Runs'), /No runs\./);
    assert.match(markdownSection(empty, 'Privacy spent per institution'), /No privacy spent\./);
    assert.equal(markdownSection(empty, 'Incidents'), '\n## Incidents\n\nNone.\n');
    assert.ok(!empty.includes('| --- |'));
  });
});

describe('renderGovernanceReportHtml', () => {
  const html = renderGovernanceReportHtml(createData());

  it('is one self-contained document with no scripts and no external resources', () => {
    assert.ok(html.startsWith('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'));
    assert.match(html, /<title>Governance report: hospitals-eu<\/title>/);
    assert.match(html, /<style>[\s\S]+<\/style>/);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"/);
    assert.ok(html.trimEnd().endsWith('</html>'));
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import|https?:/i);
  });

  it('has every section in order, each a captioned table with column headers', () => {
    const positions = sectionOrder.map((h) => html.indexOf(`>${h}</h2>`));
    assert.ok(positions.every((p) => p > 0));
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
    );
    assert.equal(html.match(/<table>/g)?.length, 6);
    assert.equal(html.match(/<caption>/g)?.length, 6);
    assert.match(htmlSection(html, 'Members'), /<th scope="col">Member<\/th><th scope="col">Roles<\/th>/);
    assert.ok(html.includes(`<dt>Audit log root hash</dt><dd><code>${root}</code></dd>`));
    assert.ok(html.includes('<dt>Audit log size</dt><dd>1234 entries</dd>'));
    assert.ok(
      htmlSection(html, 'Privacy spent per institution').includes(
        '<tr><td>hospital-a</td><td>run-7</td><td>2.346</td><td>1e-6</td></tr>',
      ),
    );
    assert.ok(htmlSection(html, 'Privacy spent per institution').includes('<td>unbounded (no DP)</td>'));
    assert.ok(htmlSection(html, 'Runs').includes('<td>run-7</td><td>finished</td><td>40</td>'));
    assert.ok(htmlSection(html, 'Approvals').includes(`<td><code>${subject}</code></td>`));
  });

  it('says so for each empty list', () => {
    const empty = renderGovernanceReportHtml(emptyData());
    assert.equal(empty.match(/<table>/g), null);
    assert.ok(htmlSection(empty, 'Incidents').includes('<p>None.</p>'));
    assert.ok(htmlSection(empty, 'Members').includes('<p>No members.</p>'));
    assert.ok(empty.includes('<dd>no signed checkpoint yet</dd>'));
  });
});

describe('escaping and hostile text', () => {
  const hostile: GovernanceReportData = {
    ...createData(),
    members: [
      {
        id: '<script>alert(1)</script>|x',
        roles: ['a|b'],
        enrolledAt: null,
        certificateExpires: null,
        revoked: false,
      },
    ],
    incidents: [
      {
        id: 'inc-2',
        raisedBy: 'hospital-b',
        reason: `line one | <script>"x" & 'y'</script>\nline two [link](javascript:alert(1)) *bold*`,
        raisedAt: '2025-02-12T00:00:00Z',
        resolvedAt: null,
        resolvedBy: [],
      },
    ],
  };

  it('escapes HTML in both outputs and table syntax in Markdown', () => {
    const md = renderGovernanceReportMarkdown(hostile);
    const html = renderGovernanceReportHtml(hostile);
    for (const out of [md, html]) {
      assert.ok(!out.includes('<script'), 'raw <script> in output');
      assert.ok(out.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    }
    assert.ok(md.includes('| &lt;script&gt;alert(1)&lt;/script&gt;\\|x | a\\|b |'));
    assert.ok(
      md.includes(
        'line one \\| &lt;script&gt;"x" &amp; \'y\'&lt;/script&gt;<br>line two \\[link\\](javascript:alert(1)) \\*bold\\* |',
      ),
    );
    // Each Markdown table row keeps its column count: the pipes in the text are escaped.
    const row = md.split('\n').find((l) => l.startsWith('| inc-2 '))!;
    assert.equal(row.replace(/\\\|/g, '').split('|').length - 2, 6);
    assert.ok(
      html.includes(
        'line one | &lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;<br>line two [link](javascript:alert(1)) *bold*',
      ),
    );
    assert.doesNotMatch(html, /<a\b/);
  });

  it('never prints key material, control or bidi-override characters', () => {
    const pem =
      '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBd3bSecretSecretSecret\n-----END PRIVATE KEY-----';
    const data: GovernanceReportData = {
      ...createData(),
      incidents: [{ ...createData().incidents[0]!, reason: `leaked ${pem} oops\u0000\u202e` }],
    };
    for (const out of [renderGovernanceReportMarkdown(data), renderGovernanceReportHtml(data)]) {
      assert.ok(!out.includes('Secret'));
      assert.ok(!out.includes('BEGIN PRIVATE KEY'));
      assert.ok(out.includes('leaked (key material removed) oops'));
      assert.ok(!out.includes('\u0000') && !out.includes('\u202e'));
    }
  });

  it('no text value can open an HTML tag or a Markdown table cell (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('<', '>', '|', '&', '"', "'", '\n', 'a', 's', ' ') }),
        (s) => {
          const data: GovernanceReportData = {
            ...emptyData(),
            incidents: [{ ...createData().incidents[0]!, reason: s }],
          };
          const html = renderGovernanceReportHtml(data);
          const cell = htmlSection(html, 'Incidents').match(/<td>hospital-b<\/td><td>([\s\S]*?)<\/td>/)![1]!;
          assert.doesNotMatch(cell.replace(/<br>/g, ''), /[<>"']/);
          const md = renderGovernanceReportMarkdown(data);
          const row = md.split('\n').find((l) => l.startsWith('| inc-1 '))!;
          assert.equal(row.replace(/\\\|/g, '').split('|').length - 2, 6);
          assert.doesNotMatch(row.replace(/<br>/g, ''), /[<>]/);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('determinism and input checks', () => {
  it('renders the same bytes for the same data', () => {
    assert.equal(renderGovernanceReportMarkdown(createData()), renderGovernanceReportMarkdown(createData()));
    assert.equal(renderGovernanceReportHtml(createData()), renderGovernanceReportHtml(createData()));
    assert.notEqual(
      renderGovernanceReportHtml(createData()),
      renderGovernanceReportHtml({ ...createData(), generatedAt: '2025-03-04T10:00:01Z' }),
    );
  });

  it('refuses data not of the declared shape, naming the field', () => {
    const cases: Array<[unknown, string]> = [
      [{ ...createData(), consortium: 7 }, 'data.consortium'],
      [{ ...createData(), log: { ...createData().log, size: -1 } }, 'data.log.size'],
      [
        { ...createData(), privacy: [{ institution: 'a', run: 'r', epsilon: Number.NaN, delta: 0 }] },
        'data.privacy.0.epsilon',
      ],
      [
        { ...createData(), privacy: [{ institution: 'a', run: 'r', epsilon: 1, delta: 2 }] },
        'data.privacy.0.delta',
      ],
      [{ ...createData(), runs: [{ ...createData().runs[0], rounds: 1.5 }] }, 'data.runs.0.rounds'],
      [
        { ...createData(), members: [{ ...createData().members[0], roles: 'institution' }] },
        'data.members.0.roles',
      ],
      [{ ...createData(), incidents: null }, 'data.incidents'],
    ];
    for (const [data, field] of cases) {
      for (const render of [renderGovernanceReportMarkdown, renderGovernanceReportHtml])
        assert.throws(() => render(data as GovernanceReportData), { code: 'INVALID_ARGUMENT', field });
    }
  });
});
