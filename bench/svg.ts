/** Simple SVG line charts for the scaling curves: axes, ticks, a legend; no browser needed. */
import type { Chart } from "./harness.js";

const WIDTH = 640;
const HEIGHT = 360;
const MARGIN = { left: 64, right: 24, top: 40, bottom: 52 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** 1 200 → "1.2k", 1 000 000 → "1M", 0.25 → "0.25". */
export function shortNumber(value: number): string {
  const abs = Math.abs(value);
  const trim = (n: number): string => String(Number(n.toPrecision(3)));
  if (abs >= 1e6) return `${trim(value / 1e6)}M`;
  if (abs >= 1e3) return `${trim(value / 1e3)}k`;
  return trim(value);
}

/** About `count` round tick values (steps of 1, 2 or 5 × 10^k) from 0 to at least `max`. */
function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Renders a chart as a standalone SVG document. */
export function renderChart(chart: Chart): string {
  const points = chart.lines.flatMap((line) => line.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const xs = points.map((p) => p.x);
  const logX = chart.logX === true && xs.every((x) => x > 0);
  const tx = (x: number): number => (logX ? Math.log10(x) : x);
  const xMin = xs.length === 0 ? 0 : logX ? Math.min(...xs.map(tx)) : Math.min(0, ...xs);
  const xMax = xs.length === 0 ? 1 : Math.max(...xs.map(tx));
  const xSpan = xMax - xMin || 1;
  // 10 % headroom so the highest point does not sit on the frame.
  const yTicks = niceTicks(Math.max(0, chart.goal?.y ?? 0, ...points.map((p) => p.y)) * 1.1);
  const yMax = yTicks[yTicks.length - 1]! || 1;
  const px = (x: number): number => MARGIN.left + ((tx(x) - xMin) / xSpan) * plotW;
  const py = (y: number): number => MARGIN.top + plotH - (y / yMax) * plotH;
  // X ticks: the measured x values on a log axis (the steps chosen), round values otherwise.
  const xTicks = logX ? [...new Set(xs)].sort((a, b) => a - b) : niceTicks(xMax).filter((x) => x >= xMin);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  out.push(`<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escape(chart.title)}</text>`);
  for (const y of yTicks) {
    const yy = py(y).toFixed(1);
    out.push(`<line x1="${MARGIN.left}" y1="${yy}" x2="${WIDTH - MARGIN.right}" y2="${yy}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${shortNumber(y)}</text>`);
  }
  for (const x of xTicks) {
    const xx = px(x).toFixed(1);
    out.push(`<line x1="${xx}" y1="${MARGIN.top + plotH}" x2="${xx}" y2="${MARGIN.top + plotH + 4}" stroke="#333"/>`);
    out.push(`<text x="${xx}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${shortNumber(x)}</text>`);
  }
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${WIDTH - MARGIN.right}" y2="${MARGIN.top + plotH}" stroke="#333"/>`);
  out.push(
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle">${escape(chart.xLabel)}${logX ? " (log scale)" : ""}</text>`,
  );
  out.push(
    `<text x="16" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${MARGIN.top + plotH / 2})">${escape(chart.yLabel)}</text>`,
  );
  if (chart.goal !== undefined) {
    const gy = py(chart.goal.y).toFixed(1);
    out.push(`<line x1="${MARGIN.left}" y1="${gy}" x2="${WIDTH - MARGIN.right}" y2="${gy}" stroke="#555555" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${MARGIN.left + 6}" y="${Number(gy) - 5}" fill="#555555">${escape(chart.goal.label)}</text>`);
  }
  chart.lines.forEach((line, index) => {
    const color = COLORS[index % COLORS.length]!;
    const valid = line.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (valid.length > 1) {
      const path = valid.map((p, i) => `${i === 0 ? "M" : "L"}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ");
      out.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    }
    for (const p of valid) out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${color}"/>`);
  });
  // Legend in the top-right corner of the plot, on a white box so lines under it stay readable.
  const legendW = 28 + 7 * Math.max(...chart.lines.map((line) => line.name.length), 1);
  const legendX = WIDTH - MARGIN.right - legendW - 6;
  out.push(
    `<rect x="${legendX - 4}" y="${MARGIN.top + 2}" width="${legendW + 8}" height="${chart.lines.length * 16 + 8}" fill="#ffffff" fill-opacity="0.9" stroke="#cccccc"/>`,
  );
  chart.lines.forEach((line, index) => {
    const color = COLORS[index % COLORS.length]!;
    const ly = MARGIN.top + 14 + index * 16;
    out.push(`<line x1="${legendX}" y1="${ly}" x2="${legendX + 20}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${legendX + 26}" y="${ly}" dominant-baseline="middle">${escape(line.name)}</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
