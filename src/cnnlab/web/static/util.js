// Small helpers every view uses: elements, number formats, requests and the message line.

import { t } from "./i18n.js";

export const $ = (sel) => document.querySelector(sel);
export const SVG = "http://www.w3.org/2000/svg";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

export const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
// A total the analyzer could not give (null) is shown as unknown, never as a number.
export const known = (n, fmt) => (n === null || n === undefined ? t("unknown") : fmt(n));
export function fmtBig(n) {
  if (n === null || n === undefined) return "–";
  for (const [unit, scale] of [["G", 1e9], ["M", 1e6], ["K", 1e3]]) {
    if (Math.abs(n) >= scale) return `${+(n / scale).toPrecision(3)} ${unit}`;
  }
  return String(n);
}
export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  for (const [unit, scale] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]]) {
    if (n >= scale) return `${(n / scale).toFixed(1)} ${unit}`;
  }
  return `${n} B`;
}
export const fmtPct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(2)}%`);
export const shape = (s) => (s ? s.slice(1).join("×") : "–");
// A real number to a few significant digits, with a true minus sign.
export function fmtNum(x, digits = 4) {
  if (x === null || x === undefined) return "–";
  if (x === 0) return "0";
  const s = Math.abs(x) >= 1e-3 && Math.abs(x) < 1e5 ? String(+x.toPrecision(digits)) : x.toExponential(digits - 1);
  return s.replace("-", "−");
}
// A term of a sum: negative numbers in parentheses.
export const term = (x, digits = 3) => (x < 0 ? `(${fmtNum(x, digits)})` : fmtNum(x, digits));

// ---- messages and requests ------------------------------------------------------------------

export function showError(err) {
  const box = $("#message");
  box.textContent = err.message || String(err);
  box.hidden = false;
}
export function clearMessage() { $("#message").hidden = true; }

export async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new Error(t("error.unreachable"));
  }
  let data = null;
  try { data = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) throw new Error(data && data.error ? data.error : t("error.status", { status: response.status }));
  return data;
}

// Run one request of a view: the button is disabled meanwhile; on failure the message shows and
// ``clear`` empties what the view showed before, so no stale result stays under the message.
export async function busy(button, work, clear) {
  if (button) button.disabled = true;
  try {
    const result = await work();
    clearMessage();
    return result;
  } catch (err) {
    if (clear) clear();
    showError(err);
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}
