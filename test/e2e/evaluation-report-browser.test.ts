/**
 * The evaluation report's HTML in a real browser (Debian chromium driven by playwright-core): two
 * models with fairness and slices render their tables and charts; the charts are visible, sized and
 * styled (the CSP lets the inline style through and blocks nothing else the page needs); no request
 * besides the file, no script runs (hostile model, group and slice names show as text), no console
 * error; at 400 px and 1280 px the page never scrolls sideways (wide tables scroll in their own box).
 * Screenshots go to a temporary directory, kept when ENTENTE_KEEP_SCREENSHOTS is set.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import type {
  ClassificationMetrics,
  EvaluationMetrics,
  EvaluationReportInput,
  ReliabilityBin,
} from '../../src/evaluation/index.ts';
import { renderEvaluationReport } from '../../src/evaluation/index.ts';

const CHROMIUM = '/usr/bin/chromium';
/** The page's getComputedStyle, typed without the DOM library. */
type Styles = { getComputedStyle(element: unknown): { stroke: string } };
const HOSTILE = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">"&'`;

/** Calibration bins of a fairly calibrated model: mean predicted near the bin centre. */
function reliability(skew: number): ReliabilityBin[] {
  return Array.from({ length: 10 }, (_, k) => {
    const centre = (k + 0.5) / 10;
    const count = k === 9 ? 0 : 20 + ((k * 7) % 13);
    return {
      lower: k / 10,
      upper: (k + 1) / 10,
      count,
      meanPredicted: count === 0 ? null : centre,
      fractionPositive: count === 0 ? null : Math.min(1, Math.max(0, centre + skew * (centre - 0.5))),
    };
  });
}

function classification(auc: number, skew: number, rows: number): ClassificationMetrics {
  const fpr = [0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1];
  const tpr = fpr.map((f, i) => (i === 0 ? 0 : Math.min(1, f ** (1 / (1 + 4 * (auc - 0.5))))));
  return {
    rows,
    accuracy: 0.84,
    logLoss: 0.3712,
    brier: 0.1174,
    confusion: [
      [Math.round(rows * 0.42), Math.round(rows * 0.08)],
      [Math.round(rows * 0.08), rows - Math.round(rows * 0.58)],
    ],
    perClass: [
      { precision: 0.84, recall: 0.84, f1: 0.84, support: Math.round(rows * 0.5) },
      { precision: 0.84, recall: 0.84, f1: 0.84, support: rows - Math.round(rows * 0.5) },
    ],
    macro: { precision: 0.84, recall: 0.84, f1: 0.84 },
    micro: { precision: 0.84, recall: 0.84, f1: 0.84 },
    rocAuc: auc,
    averagePrecision: auc - 0.01,
    rocCurve: { fpr, tpr },
    ece: 0.031 + Math.abs(skew) / 10,
    mce: 0.09 + Math.abs(skew) / 5,
    reliability: reliability(skew),
  };
}

function metrics(auc: number, skew: number): EvaluationMetrics {
  return {
    overall: classification(auc, skew, 569),
    fairness: {
      attribute: 'sex',
      groups: {
        F: {
          rows: 290,
          selectionRate: 0.41,
          truePositiveRate: 0.86,
          falsePositiveRate: 0.07,
          accuracy: 0.88,
        },
        M: {
          rows: 270,
          selectionRate: 0.36,
          truePositiveRate: 0.81,
          falsePositiveRate: 0.09,
          accuracy: 0.85,
        },
        [HOSTILE]: {
          rows: 9,
          selectionRate: null,
          truePositiveRate: null,
          falsePositiveRate: null,
          accuracy: null,
        },
      },
      demographicParityDifference: 0.05,
      demographicParityRatio: 0.878,
      equalizedOddsDifference: 0.05,
      equalOpportunityDifference: 0.05,
    },
    slices: {
      'age>=50': classification(auc - 0.03, skew, 201),
      'site-type-a': classification(auc + 0.01, skew, 144),
      [HOSTILE]: classification(auc, skew, 31),
    },
  };
}

function createInput(): EvaluationReportInput {
  return {
    title: 'External validation of the readmission model',
    consortium: 'hospitals-eu',
    generatedAt: '2026-12-08T01:00:00Z',
    plan: {
      digest: '7f'.repeat(32),
      hypothesis: 'The candidate model is not worse than the baseline in ROC AUC by more than 0.02.',
      decisionRule: 'pass when AUC(candidate) − AUC(baseline) ≥ −0.02 and DP difference ≤ 0.1',
      metrics: ['rocAuc', 'ece', 'demographicParityDifference'],
      approvedBy: ['hospital-a', 'hospital-b', 'auditor'],
      loggedAt: 212,
    },
    models: [
      {
        label: 'model-A',
        name: HOSTILE,
        sha256: 'a1'.repeat(32),
        metrics: metrics(0.93, 0.1),
        resultLogIndex: 230,
      },
      {
        label: 'model-B',
        name: 'baseline',
        sha256: 'b2'.repeat(32),
        metrics: metrics(0.9, -0.3),
        resultLogIndex: 231,
      },
    ],
    decision: { outcome: 'pass', details: ['ΔAUC = +0.0300 ≥ −0.02', 'DP difference 0.0500 ≤ 0.1'] },
    blinded: false,
    notes: ['Three sites; 569 held-out rows.'],
  };
}

describe('evaluation report in a browser', () => {
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
    dir = mkdtempSync(join(tmpdir(), 'entente-evaluation-report-'));
  });
  after(async () => {
    await browser?.close();
    if (dir && process.env.ENTENTE_KEEP_SCREENSHOTS === undefined)
      rmSync(dir, { recursive: true, force: true });
  });

  it('shows tables and visible charts, runs no script, requests nothing, fits 400 px and 1280 px', {
    timeout: 60_000,
  }, async (t) => {
    const file = join(dir, 'evaluation-report.html');
    writeFileSync(file, renderEvaluationReport(createInput()).html);
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    const requests: string[] = [];
    const errors: string[] = [];
    let dialogs = 0;
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', async (dlg) => {
      dialogs++;
      await dlg.dismiss();
    });
    const url = pathToFileURL(file).href;
    await page.goto(url);
    await page.waitForLoadState('load');

    assert.equal(await page.title(), 'External validation of the readmission model');
    const h2 = await page.locator('h2').allTextContents();
    assert.deepEqual(h2, [
      'Plan',
      'Models',
      'Headline metrics',
      `Model model-A (${HOSTILE})`,
      'Model model-B (baseline)',
      'Decision',
      'Notes',
    ]);
    // Headline table: one row per model; fairness and slice tables: one row per group and slice.
    const headline = page.locator('table', { has: page.locator('caption', { hasText: 'Headline metrics' }) });
    assert.equal(await headline.locator('tbody tr').count(), 2);
    assert.match((await headline.locator('tbody tr').nth(1).textContent()) ?? '', /0\.9000/);
    assert.equal(
      await page.locator('table', { has: page.locator('caption', { hasText: 'Per group' }) }).count(),
      2,
    );
    for (const caption of ['Per group', 'Metrics per slice']) {
      const table = page.locator('table', { has: page.locator('caption', { hasText: caption }) }).first();
      assert.equal(await table.locator('tbody tr').count(), 3, caption);
    }

    // Two charts per model, visible with a real size, styled by the inline stylesheet.
    const charts = page.locator('svg.chart');
    assert.equal(await charts.count(), 4);
    for (let i = 0; i < 4; i++) {
      const chart = charts.nth(i);
      assert.ok(await chart.isVisible(), `chart ${i} visible`);
      const box = await chart.boundingBox();
      assert.ok(box && box.width > 200 && box.height > 200, `chart ${i} is ${box?.width}×${box?.height}`);
      // viewBox 320 × 306, width 100%, height auto: the chart keeps its aspect ratio.
      assert.ok(Math.abs(box.height - (box.width * 306) / 320) < 1, `aspect of ${box.width}×${box.height}`);
      const line = chart.locator('polyline.series');
      const stroke = await line.evaluate(
        (el) => (globalThis as unknown as Styles).getComputedStyle(el).stroke,
      );
      assert.equal(stroke, 'rgb(8, 81, 156)', 'the inline style applies (the CSP allows it)');
      const lineBox = await line.boundingBox();
      assert.ok(lineBox && lineBox.width > 50 && lineBox.height > 50, 'the curve spans the plot');
    }
    // The ROC curve of model A has one vertex per curve point.
    const rocPoints = await page
      .locator('#model-0-roc polyline.series')
      .evaluate((el) => (el as unknown as { points: { numberOfItems: number } }).points.numberOfItems);
    assert.equal(rocPoints, 10);
    // Nine non-empty calibration bins: nine points.
    assert.equal(await page.locator('#model-1-reliability circle.point').count(), 9);

    // Hostile names are text; nothing ran and nothing was fetched.
    const text = (await page.locator('body').textContent()) ?? '';
    assert.ok(text.includes(HOSTILE), 'the hostile name is visible as text');
    assert.equal(await page.evaluate('window.__pwned'), undefined);
    assert.equal(await page.locator('script, img, iframe, object, link').count(), 0);
    assert.equal(dialogs, 0);
    assert.deepEqual(requests, [url], 'no request besides the page itself');

    // Wide tables scroll inside their box; the page itself never scrolls sideways.
    for (const width of [400, 1280]) {
      await page.setViewportSize({ width, height: 900 });
      const overflow = Number(
        await page.evaluate('document.documentElement.scrollWidth - window.innerWidth'),
      );
      assert.ok(overflow <= 0, `page overflows a ${width} px screen by ${overflow} px`);
      for (let i = 0; i < 4; i++) {
        const box = await charts.nth(i).boundingBox();
        assert.ok(
          box && box.width > 150 && box.x >= 0 && box.x + box.width <= width,
          `chart ${i} fits ${width} px`,
        );
      }
      const shot = join(dir, `evaluation-report-${width}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      assert.deepEqual([...readFileSync(shot).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG');
    }
    const scrolls = await headline.evaluate((el) => {
      const box = el.parentElement!;
      return { className: box.className, scrollWidth: box.scrollWidth, clientWidth: box.clientWidth };
    });
    assert.equal(scrolls.className, 'table-scroll');
    await page.setViewportSize({ width: 400, height: 900 });
    const narrow = await headline.evaluate(
      (el) => el.parentElement!.scrollWidth > el.parentElement!.clientWidth,
    );
    assert.ok(narrow, 'at 400 px the headline table scrolls inside its box');
    assert.deepEqual(errors, []);
    t.diagnostic(`screenshots in ${dir}`);
    await page.close();
  });
});
