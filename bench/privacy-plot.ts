/**
 * A hand-written SVG line chart for the privacy–utility study (bench/privacy-utility.ts): y against a
 * log-scale x, curves with min–max error bars and a marker at the mean, dashed horizontal reference
 * lines, axes with ticks and a legend. No dependencies; the output is a small, diffable text file.
 */

export interface PlotPoint {
  readonly x: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
}

export interface PlotCurve {
  readonly label: string;
  readonly color: string;
  /** Optional second legend line (in grey). */
  readonly note?: string;
  readonly points: readonly PlotPoint[];
}

export interface PlotReferenceLine {
  readonly label: string;
  readonly color: string;
  readonly y: number;
}

export interface PlotInput {
  readonly title: string;
  readonly subtitle: string;
  readonly xLabel: string;
  readonly yLabel: string;
  /** x ticks (all > 0), drawn on a log scale; the x range spans them. */
  readonly xTicks: readonly number[];
  readonly curves: readonly PlotCurve[];
  readonly lines: readonly PlotReferenceLine[];
}

const WIDTH_PX = 820;
const HEIGHT_PX = 500;
const MARGIN = { left: 70, right: 290, top: 62, bottom: 58 } as const;

const escapeXml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (v: number): string => (Math.round(v * 10) / 10).toString();

/** The y range: from the lowest value (rounded down to 0.1) to 1, so every bar and line is inside. */
function computeYRange(input: PlotInput): { lo: number; hi: number } {
  let lo = 1;
  for (const c of input.curves) for (const p of c.points) lo = Math.min(lo, p.min);
  for (const l of input.lines) lo = Math.min(lo, l.y);
  return { lo: Math.max(0, Math.floor(lo * 10 - 1e-9) / 10), hi: 1 };
}

/**
 * The chart as an SVG document. Preconditions: xTicks non-empty and positive, every point's x > 0
 * and its values in [0, 1] (accuracies). Curves are drawn in order, each shifted a few pixels
 * sideways so that error bars at the same x do not hide each other.
 */
export function renderPrivacyUtilitySvg(input: PlotInput): string {
  const plotW = WIDTH_PX - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT_PX - MARGIN.top - MARGIN.bottom;
  const logLo = Math.log10(Math.min(...input.xTicks)) - 0.12;
  const logHi = Math.log10(Math.max(...input.xTicks)) + 0.12;
  const { lo, hi } = computeYRange(input);
  const sx = (x: number): number => MARGIN.left + ((Math.log10(x) - logLo) / (logHi - logLo)) * plotW;
  const sy = (y: number): number => MARGIN.top + ((hi - y) / (hi - lo)) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH_PX}" height="${HEIGHT_PX}" viewBox="0 0 ${WIDTH_PX} ${HEIGHT_PX}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(input.title)}</title>`,
    `<rect width="${WIDTH_PX}" height="${HEIGHT_PX}" fill="#ffffff"/>`,
    `<text x="${MARGIN.left}" y="24" font-size="15" font-weight="bold">${escapeXml(input.title)}</text>`,
    `<text x="${MARGIN.left}" y="42" fill="#555555">${escapeXml(input.subtitle)}</text>`,
  );
  // Grid and y axis: a tick every 0.05 (labelled every 0.1).
  for (let k = Math.round(lo * 20); k <= Math.round(hi * 20); k++) {
    const y = sy(k / 20);
    const major = k % 2 === 0;
    out.push(
      `<line x1="${MARGIN.left}" y1="${fmt(y)}" x2="${MARGIN.left + plotW}" y2="${fmt(y)}" stroke="${major ? '#dddddd' : '#f0f0f0'}"/>`,
    );
    if (major) {
      out.push(
        `<text x="${MARGIN.left - 8}" y="${fmt(y + 4)}" text-anchor="end">${(k / 20).toFixed(1)}</text>`,
      );
    }
  }
  for (const t of input.xTicks) {
    const x = sx(t);
    out.push(
      `<line x1="${fmt(x)}" y1="${MARGIN.top}" x2="${fmt(x)}" y2="${MARGIN.top + plotH}" stroke="#eeeeee"/>`,
      `<line x1="${fmt(x)}" y1="${MARGIN.top + plotH}" x2="${fmt(x)}" y2="${MARGIN.top + plotH + 5}" stroke="#333333"/>`,
      `<text x="${fmt(x)}" y="${MARGIN.top + plotH + 19}" text-anchor="middle">${t}</text>`,
    );
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT_PX - 14}" text-anchor="middle">${escapeXml(input.xLabel)}</text>`,
    `<text transform="translate(20 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(input.yLabel)}</text>`,
  );
  for (const l of input.lines) {
    const y = fmt(sy(l.y));
    out.push(
      `<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotW}" y2="${y}" stroke="${l.color}" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
  }
  input.curves.forEach((c, i) => {
    const dx = (i - (input.curves.length - 1) / 2) * 6;
    const pts = [...c.points].sort((a, b) => a.x - b.x);
    const path = pts.map((p) => `${fmt(sx(p.x) + dx)},${fmt(sy(p.mean))}`).join(' ');
    out.push(`<polyline points="${path}" fill="none" stroke="${c.color}" stroke-width="2"/>`);
    for (const p of pts) {
      const x = fmt(sx(p.x) + dx);
      const capL = fmt(sx(p.x) + dx - 4);
      const capR = fmt(sx(p.x) + dx + 4);
      out.push(
        `<line x1="${x}" y1="${fmt(sy(p.min))}" x2="${x}" y2="${fmt(sy(p.max))}" stroke="${c.color}" stroke-width="1.5"/>`,
        `<line x1="${capL}" y1="${fmt(sy(p.min))}" x2="${capR}" y2="${fmt(sy(p.min))}" stroke="${c.color}" stroke-width="1.5"/>`,
        `<line x1="${capL}" y1="${fmt(sy(p.max))}" x2="${capR}" y2="${fmt(sy(p.max))}" stroke="${c.color}" stroke-width="1.5"/>`,
        `<circle cx="${x}" cy="${fmt(sy(p.mean))}" r="3.5" fill="${c.color}"/>`,
      );
    }
  });
  // Legend, right of the plot.
  const lx = MARGIN.left + plotW + 16;
  let ly = MARGIN.top + 10;
  const legendLine = (color: string, dashed: boolean, label: string, note?: string): void => {
    const dash = dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 26}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`,
    );
    if (!dashed) out.push(`<circle cx="${lx + 13}" cy="${ly}" r="3.5" fill="${color}"/>`);
    out.push(`<text x="${lx + 34}" y="${ly + 4}">${escapeXml(label)}</text>`);
    if (note !== undefined) {
      ly += 16;
      out.push(`<text x="${lx + 34}" y="${ly + 4}" font-size="11" fill="#555555">${escapeXml(note)}</text>`);
    }
    ly += 22;
  };
  for (const c of input.curves) legendLine(c.color, false, c.label, c.note);
  for (const l of input.lines) legendLine(l.color, true, `${l.label} (${(l.y * 100).toFixed(1)}%)`);
  out.push(`<text x="${lx}" y="${ly + 6}" fill="#555555">bars: min–max over seeds; dot: mean</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
