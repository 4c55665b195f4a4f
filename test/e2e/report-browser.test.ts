/**
 * The governance report's HTML in a real browser (Debian chromium driven by playwright-core): it renders
 * every section as a table with the data's rows, makes no network request and runs no script (a hostile
 * incident reason shows as text), and logs no console error. `.ci/run` installs chromium.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { type GovernanceReportData, renderGovernanceReportHtml } from '../../src/governance/index.ts';

const CHROMIUM = '/usr/bin/chromium';
const HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';

function createData(): GovernanceReportData {
  const d = (n: number) => String(n).repeat(64);
  return {
    consortium: 'hospitals-eu',
    generatedAt: '2026-11-27T10:00:00Z',
    log: {
      size: 412,
      rootHash: 'MDHzfhnllTWPJF71vuaMUi5JC83bHL/aWdoKwqt3DB8=',
      checkpointCosigners: ['hospital-a', 'hospital-b'],
    },
    members: [
      {
        id: 'auditor',
        roles: ['auditor'],
        enrolledAt: '2026-11-01T08:00:00Z',
        certificateExpires: '2026-12-01T08:00:00Z',
        revoked: false,
      },
      {
        id: 'hospital-a',
        roles: ['institution'],
        enrolledAt: '2026-11-01T08:00:00Z',
        certificateExpires: '2026-12-01T08:00:00Z',
        revoked: false,
      },
      {
        id: 'hospital-b',
        roles: ['institution'],
        enrolledAt: '2026-11-01T08:01:00Z',
        certificateExpires: null,
        revoked: true,
      },
    ],
    policies: [
      {
        version: 1,
        sha256: d(1),
        adoptedAt: '2026-11-01T09:00:00Z',
        approvedBy: ['hospital-a', 'auditor'],
        logIndex: 12,
      },
      {
        version: 2,
        sha256: d(2),
        adoptedAt: '2026-11-10T09:00:00Z',
        approvedBy: ['hospital-a', 'hospital-b'],
        logIndex: 80,
      },
    ],
    proposals: [
      {
        id: d(3),
        kind: 'adopt-policy',
        subjectSha256: d(1),
        createdAt: '2026-11-01T08:59:00Z',
        status: 'approved',
        signers: ['hospital-a', 'auditor'],
        decidedAt: '2026-11-01T09:00:00Z',
        missing: '',
      },
      {
        id: d(4),
        kind: 'start-run',
        subjectSha256: d(5),
        createdAt: '2026-11-11T08:00:00Z',
        status: 'open',
        signers: ['operator'],
        decidedAt: null,
        missing: '1 more of {hospital-a, hospital-b}',
      },
    ],
    runs: [
      {
        id: 'trial-1',
        status: 'completed',
        rounds: 20,
        createdAt: '2026-11-02T10:00:00Z',
        finishedAt: '2026-11-02T10:05:00Z',
        approvedBy: ['operator', 'hospital-a'],
      },
    ],
    privacy: [
      { institution: 'hospital-a', run: 'trial-1', epsilon: 3.9871, delta: 1e-5 },
      { institution: 'hospital-b', run: 'trial-1', epsilon: null, delta: 0 },
    ],
    incidents: [
      {
        id: 'inc-1',
        raisedBy: 'hospital-b',
        reason: HOSTILE,
        raisedAt: '2026-11-03T00:00:00Z',
        resolvedAt: '2026-11-03T02:00:00Z',
        resolvedBy: ['hospital-a', 'auditor'],
      },
    ],
  };
}

describe('governance report in a browser', () => {
  let browser: Browser | undefined;
  let dir = '';
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is required (apt-get install chromium; .ci/run does it)`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    dir = mkdtempSync(join(tmpdir(), 'entente-report-'));
  });
  after(async () => {
    await browser?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('renders every section as a table, runs no script, requests nothing, logs no error', {
    timeout: 60_000,
  }, async () => {
    const data = createData();
    const file = join(dir, 'governance-report.html');
    writeFileSync(file, renderGovernanceReportHtml(data));
    const page = await browser!.newPage();
    const requests: string[] = [];
    const errors: string[] = [];
    let dialogs = 0;
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', async (dlg) => {
      dialogs++;
      await dlg.dismiss();
    });
    const url = pathToFileURL(file).href;
    await page.goto(url);
    await page.waitForLoadState('load');

    assert.equal(await page.title(), 'Governance report: hospitals-eu');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    const headings = await page.locator('h2').allTextContents();
    assert.deepEqual(headings, [
      'Members',
      'Policy versions',
      'Approvals',
      'Runs',
      'Privacy spent per institution',
      'Incidents',
    ]);
    // One table per section, each with a caption, column headers, and one row per record.
    const tables = page.locator('table');
    const rows: { caption: string; headers: number; rows: number }[] = [];
    for (let i = 0; i < (await tables.count()); i++) {
      const t = tables.nth(i);
      rows.push({
        caption: (await t.locator('caption').textContent()) ?? '',
        headers: await t.locator('th[scope="col"]').count(),
        rows: await t.locator('tbody tr').count(),
      });
    }
    assert.deepEqual(
      rows.map((r) => r.rows),
      [
        data.members.length,
        data.policies.length,
        data.proposals.length,
        data.runs.length,
        data.privacy.length,
        data.incidents.length,
      ],
    );
    for (const r of rows) {
      assert.ok(r.caption.length > 0, 'every table has a caption');
      assert.ok(r.headers > 0, 'every table has column headers');
    }
    const text = (await page.locator('body').textContent()) ?? '';
    assert.match(text, /3\.987/, 'ε with three decimals');
    assert.match(text, /unbounded \(no DP\)/);
    // The hostile reason is shown as text; nothing ran and nothing was fetched.
    assert.ok(text.includes('<script>window.__pwned = 1</script>'), 'the reason is visible as text');
    assert.equal(await page.evaluate('window.__pwned'), undefined);
    assert.equal(await page.locator('body script, body img').count(), 0);
    assert.equal(dialogs, 0);
    assert.deepEqual(requests, [url], 'no request besides the page itself');
    assert.deepEqual(errors, []);
    // The page is readable on a phone-sized screen: nothing wider than the viewport except table scroll.
    await page.setViewportSize({ width: 400, height: 800 });
    const overflow = Number(await page.evaluate('document.documentElement.scrollWidth - window.innerWidth'));
    assert.ok(overflow <= 1, `page overflows a 400 px screen by ${overflow} px`);
    await page.close();
  });
});
