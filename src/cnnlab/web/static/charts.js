// Line and scatter charts drawn as SVG, with axis ticks whose labels are always distinct.

import { t } from "./i18n.js";
import { fmtBig, svgEl } from "./util.js";

export const COLORS = ["#2458d3", "#e8590c", "#0ca678", "#ae3ec9", "#d6336c", "#1098ad", "#f59f00", "#495057"];

// Ticks at multiples of 1, 2 or 5 times a power of ten, about n of them between lo and hi.
export function ticks(lo, hi, n = 5) {
  if (hi === lo) { hi = lo + 1; }
  const step0 = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0 * (1 - 1e-9));
  const values = [];
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i += 1) values.push(+(i * step).toPrecision(12));
  return { values, step };
}

// Decimals enough to tell neighbouring ticks apart: a step of 0.002 as a percentage (0.2%) needs one.
function decimals(step) {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

// The labels of a linear axis from lo to hi: numbers, or fractions shown as percentages.
export function tickLabels(lo, hi, { n = 5, percent = false } = {}) {
  const { values, step } = ticks(lo, hi, n);
  if (percent) {
    const d = decimals(step * 100);
    return values.map((v) => ({ v, text: `${(100 * v).toFixed(d)}%` }));
  }
  const d = decimals(step);
  return values.map((v) => ({ v, text: v.toFixed(d) }));
}

// Ticks of a log10 axis (lo, hi are exponents): powers of ten, with 2 and 5 between when the
// range spans less than a few decades.
export function logTicks(lo, hi) {
  const out = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k += 1) {
    for (const m of [1, 2, 5]) {
      const v = k + Math.log10(m);
      if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push({ v, m });
    }
  }
  const decades = out.filter((x) => x.m === 1);
  return (decades.length >= 3 ? decades : out).map((x) => ({ v: x.v, text: fmtBig(Math.round(10 ** x.v)) }));
}

// series: [{name, color, dash, scatter, points: [[x, y(, label)], ...]}]
export function lineChart({ title, xlabel, ylabel, series, width = 440, height = 260, log = false, percent = false }) {
  const svg = svgEl("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}` });
  const m = { l: 60, r: 12, t: 24, b: 40 };
  const all = series.flatMap((s) => s.points);
  svg.append(svgEl("text", { x: m.l, y: 15, class: "label", "font-weight": 600 }, title));
  if (!all.length) {
    svg.append(svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "tick" }, t("chart.empty")));
    return svg;
  }
  const tx = (v) => (log ? Math.log10(v) : v);
  const xs = all.map((p) => tx(p[0])), ys = all.map((p) => tx(p[1]));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 0.5; x1 += 0.5; }
  if (y0 === y1) { y0 -= percent ? 0.005 : 0.5; y1 += percent ? 0.005 : 0.5; }
  const padY = (y1 - y0) * 0.08; y0 -= padY; y1 += padY;
  if (log) { const padX = (x1 - x0) * 0.08; x0 -= padX; x1 += padX; }
  const X = (v) => m.l + ((tx(v) - x0) / (x1 - x0)) * (width - m.l - m.r);
  const Y = (v) => height - m.b - ((tx(v) - y0) / (y1 - y0)) * (height - m.t - m.b);
  for (const { v, text } of log ? logTicks(y0, y1) : tickLabels(y0, y1, { percent })) {
    const y = height - m.b - ((v - y0) / (y1 - y0)) * (height - m.t - m.b);
    svg.append(svgEl("line", { x1: m.l, x2: width - m.r, y1: y, y2: y, class: "grid-line" }));
    svg.append(svgEl("text", { x: m.l - 4, y: y + 3, "text-anchor": "end", class: "tick y-tick" }, text));
  }
  for (const { v, text } of log ? logTicks(x0, x1) : tickLabels(x0, x1, { n: 6 }).filter((x) => Number.isInteger(x.v))
    .map((x) => ({ v: x.v, text: String(x.v) }))) {  // epochs: whole numbers
    const x = m.l + ((v - x0) / (x1 - x0)) * (width - m.l - m.r);
    svg.append(svgEl("text", { x, y: height - m.b + 14, "text-anchor": "middle", class: "tick x-tick" }, text));
  }
  svg.append(svgEl("line", { x1: m.l, x2: width - m.r, y1: height - m.b, y2: height - m.b, class: "axis" }));
  svg.append(svgEl("line", { x1: m.l, x2: m.l, y1: m.t, y2: height - m.b, class: "axis" }));
  svg.append(svgEl("text", { x: (width + m.l) / 2, y: height - 6, "text-anchor": "middle", class: "label" }, xlabel));
  svg.append(svgEl("text", { x: 12, y: (height - m.b + m.t) / 2, "text-anchor": "middle", class: "label",
    transform: `rotate(-90 12 ${(height - m.b + m.t) / 2})` }, ylabel));
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const color = s.color || COLORS[i % COLORS.length];
    if (s.scatter) {
      for (const [x, y, text] of s.points) {
        svg.append(svgEl("circle", { cx: X(x), cy: Y(y), r: 5, fill: color, class: "point" }));
        svg.append(svgEl("text", { x: X(x) + 7, y: Y(y) - 6, class: "tick" }, text));
      }
      return;
    }
    const d = s.points.map(([x, y], j) => `${j ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
    const attrs = { d, class: "series", stroke: color, "data-name": s.name };
    if (s.dash) attrs["stroke-dasharray"] = "5 4";
    svg.append(svgEl("path", attrs));
    for (const [x, y] of s.points) svg.append(svgEl("circle", { cx: X(x), cy: Y(y), r: 2.5, fill: color }));
  });
  // The legend sits in the title row, right-aligned, so it never covers a curve.
  let right = width - m.r;
  for (const s of series.filter((x) => x.name && !x.scatter).reverse()) {
    const color = s.color || COLORS[series.indexOf(s) % COLORS.length];
    const text = svgEl("text", { x: right, y: 15, "text-anchor": "end", class: "tick" }, s.name);
    const x = right - 6.2 * [...s.name].length * (/[^\x00-\x7f]/.test(s.name) ? 1.8 : 1) - 24;
    const line = { x1: x, x2: x + 18, y1: 12, y2: 12, stroke: color, "stroke-width": 2 };
    if (s.dash) line["stroke-dasharray"] = "5 4";
    svg.append(svgEl("line", line), text);
    right = x - 12;
  }
  return svg;
}
