// The architecture graph: blocks that fold and unfold, zoom and pan, an overview map, search.
//
// The analyzer's nodes carry the module path they ran in (``scope``: features.denseblock1.
// denselayer1.conv1). Every module with children whose nodes run one after another is a block
// (Inception, Bottleneck, DenseLayer, a Sequential stage...). A folded block is drawn as one box
// with the sum of its nodes' parameters and MACs; an unfolded one as a frame around its nodes.

import { t } from "./i18n.js";
import { fmtBig, fmtInt, shape, svgEl } from "./util.js";

const W = 220, H = 40, GX = 30, GY = 34, PAD = 28, BEND = 140;
const MIN_ZOOM = 0.02, MAX_ZOOM = 4;
export const START_NODES = 80;  // a network with more nodes than this starts folded

const OP_COLORS = [
  [/conv/i, "#dbe7ff"], [/pool/i, "#dcfae6"], [/norm|lrn/i, "#f2f4f7"], [/relu|sigmoid|tanh|softmax|gelu|silu/i, "#fef7c3"],
  [/linear/i, "#ffe6d5"], [/add|cat|mul/i, "#ebe9fe"], [/input|output/i, "#d0d5dd"],
];
const opColor = (op) => (OP_COLORS.find(([re]) => re.test(op)) || [null, "#ffffff"])[1];

// ---- the blocks -------------------------------------------------------------------------------

// Sum of a cost over nodes: unknown (null) as soon as one node's is.
const sum = (values) => (values.some((v) => v === null || v === undefined) ? null : values.reduce((a, b) => a + b, 0));

// Parameters a list of nodes holds: a shared module's are counted once, at its first use.
export function paramsOf(nodes) {
  return nodes.reduce((acc, n) => acc + (n.shared ? 0 : n.params || 0), 0);
}

export function blocksOf(layers) {
  const groups = new Map();
  layers.forEach((l, i) => {
    if (!l.scope || l.kind === "input" || l.kind === "output") return;
    const parts = l.scope.split(".");
    for (let k = 1; k <= parts.length; k += 1) {
      const name = parts.slice(0, k).join(".");
      if (!groups.has(name)) groups.set(name, { name, members: [], container: false });
      const g = groups.get(name);
      g.members.push(i);
      if (k < parts.length) g.container = true;
    }
  });
  // A block: a module with children, at least two nodes, run without interruption (so folding it
  // keeps the graph acyclic), and not the same nodes as the block around it.
  const blocks = new Map();
  const sorted = [...groups.values()].sort((a, b) => a.name.split(".").length - b.name.split(".").length);
  for (const g of sorted) {
    const m = g.members;
    if (!g.container || m.length < 2 || m[m.length - 1] - m[0] + 1 !== m.length) continue;
    const parts = g.name.split(".");
    let parent = null;
    for (let k = parts.length - 1; k >= 1 && !parent; k -= 1) parent = blocks.get(parts.slice(0, k).join(".")) || null;
    if (parent && parent.members.length === m.length) continue;
    const nodes = m.map((i) => layers[i]);
    const last = nodes[nodes.length - 1];
    blocks.set(g.name, {
      name: g.name, depth: parts.length, parent: parent ? parent.name : null, members: m,
      params: paramsOf(nodes), macs: sum(nodes.map((n) => n.macs)), flops: sum(nodes.map((n) => n.flops)),
      output_shape: last.output_shape, rf_size: last.rf_size, rf_stride: last.rf_stride, ops: nodes.length,
    });
  }
  // Each node's blocks, outermost first.
  const chains = layers.map(() => []);
  for (const b of [...blocks.values()].sort((x, y) => x.depth - y.depth)) for (const i of b.members) chains[i].push(b.name);
  return { blocks, chains };
}

// ---- layout -----------------------------------------------------------------------------------

// A node's row is its depth (the longest path from the input) and its column a lane. A chain
// stays in its lane, a fork gives its consumers neighbouring lanes (the four branches of an
// Inception block, a projection shortcut beside its block), and a merge (an add or a
// concatenation) returns to the leftmost lane of its inputs. No two nodes share a cell.
function layout(items) {
  const consumers = {};
  for (const l of items) for (const i of l.inputs) (consumers[i] = consumers[i] || []).push(l.id);
  const rank = {}, lane = {}, taken = new Set();
  for (const l of items) {
    const seen = l.inputs.filter((i) => i in lane);
    const r = seen.length ? Math.max(...seen.map((i) => rank[i])) + 1 : 0;
    let c = 0;
    if (seen.length > 1) c = Math.min(...seen.map((i) => lane[i]));
    else if (seen.length === 1) c = lane[seen[0]] + consumers[seen[0]].indexOf(l.id);
    while (taken.has(`${r},${c}`)) c += 1;
    taken.add(`${r},${c}`);
    rank[l.id] = r;
    lane[l.id] = c;
  }
  const free = (c, r0, r1) => { for (let r = r0 + 1; r < r1; r += 1) if (taken.has(`${r},${c}`)) return false; return true; };
  return { rank, lane, free };
}

// ---- text that fits its box ---------------------------------------------------------------------

let measureCtx = null;
function textWidth(text, font) {
  if (!measureCtx) measureCtx = document.createElement("canvas").getContext("2d");
  measureCtx.font = font;
  return measureCtx.measureText(text).width;
}

// ``text`` cut to ``max`` pixels with an ellipsis: at the start for a dotted name (its end says
// most), else at the end.
export function fitText(text, font, max, keepEnd = true) {
  if (textWidth(text, font) <= max) return text;
  let lo = 0, hi = text.length;
  const cut = (n) => (keepEnd ? `…${text.slice(text.length - n)}` : `${text.slice(0, n)}…`);
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (textWidth(cut(mid), font) <= max) lo = mid; else hi = mid - 1;
  }
  return cut(lo);
}

// ---- the view ---------------------------------------------------------------------------------

export class GraphView {
  constructor(box, { onSelect }) {
    this.box = box;
    this.svg = box.querySelector("svg.graph");
    this.mini = box.querySelector("svg.minimap");
    this.onSelect = onSelect;
    this.report = null;
    this.collapsed = new Set();
    this.view = { k: 1, x: 0, y: 0 };
    this.selected = null;
    this.dragged = false;
    this.bindEvents();
  }

  // -- data

  setReport(report) {
    this.report = report;
    const { blocks, chains } = blocksOf(report.layers);
    this.blocks = blocks;
    this.chains = chains;
    this.index = new Map(report.layers.map((l, i) => [l.name, i]));
    this.maxDepth = Math.max(0, ...[...blocks.values()].map((b) => b.depth));
    this.collapsed = new Set();
    this.level = this.startLevel();
    this.collapseToLevel(this.level, false);
    this.selected = null;
    this.render();
    this.fitOrTop();
  }

  // The most detailed level of folding that still draws at most START_NODES boxes.
  startLevel() {
    for (let level = this.maxDepth + 1; level >= 1; level -= 1) {
      if (this.itemsAt(level) <= START_NODES) return level;
    }
    return 1;
  }

  itemsAt(level) {
    const reps = new Set(this.report.layers.map((l, i) => {
      const folded = this.chains[i].find((b) => this.blocks.get(b).depth >= level);
      return folded ? `b:${folded}` : l.name;
    }));
    return reps.size;
  }

  // Fold every block ``level`` or more levels deep (maxDepth + 1: none).
  collapseToLevel(level, redraw = true) {
    this.level = level;
    this.collapsed = new Set([...this.blocks.values()].filter((b) => b.depth >= level).map((b) => b.name));
    if (redraw) { this.render(); this.fitOrTop(); }
  }

  collapse(name) { this.collapsed.add(name); this.render(); this.centerOn(`b:${name}`); }

  expand(name) {
    // Unfold the block and the blocks around it; the blocks inside stay as they were.
    for (let b = name; b; b = this.blocks.get(b).parent) this.collapsed.delete(b);
    this.render();
    const first = this.repOf(this.blocks.get(name).members[0]);
    this.centerOn(first);
  }

  // The box that shows node i: the outermost folded block around it, else the node itself.
  repOf(i) {
    const folded = this.chains[i].find((b) => this.collapsed.has(b));
    return folded ? `b:${folded}` : this.report.layers[i].name;
  }

  // Unfold what hides node ``name``, mark it and bring it to the middle of the view.
  reveal(name, zoom = true) {
    const i = this.index.get(name);
    if (i === undefined) return false;
    let changed = false;
    for (const b of this.chains[i]) if (this.collapsed.delete(b)) changed = true;
    this.selected = name;
    if (changed) this.render(); else this.markSelected();
    if (zoom && this.view.k < 0.75) this.view.k = 1;
    this.centerOn(name);
    return true;
  }

  select(name) {
    this.selected = name;
    this.markSelected();
  }

  markSelected() {
    const i = this.index.get(this.selected);
    const rep = i === undefined ? null : this.repOf(i);
    for (const g of this.svg.querySelectorAll(".node")) g.classList.toggle("selected", g.dataset.id === rep);
  }

  // -- drawing

  items() {
    const layers = this.report.layers;
    const byId = new Map(), order = [];
    layers.forEach((l, i) => {
      const id = this.repOf(i);
      if (!byId.has(id)) {
        const block = id.startsWith("b:") ? this.blocks.get(id.slice(2)) : null;
        byId.set(id, { id, layer: block ? null : l, block, inputs: [], members: [] });
        order.push(byId.get(id));
      }
      byId.get(id).members.push(i);
    });
    layers.forEach((l, i) => {
      const to = byId.get(this.repOf(i));
      for (const input of l.inputs) {
        const j = this.index.get(input);
        if (j === undefined) continue;
        const from = this.repOf(j);
        if (from !== to.id && !to.inputs.includes(from)) to.inputs.push(from);
      }
    });
    return order;
  }

  render() {
    const items = this.items();
    this.drawn = items;
    const { rank, lane, free } = layout(items);
    const lanes = Math.max(...Object.values(lane)) + 1, rows = Math.max(...Object.values(rank)) + 1;
    this.size = { w: PAD * 2 + lanes * W + (lanes - 1) * GX + BEND, h: PAD * 2 + rows * (H + GY) };
    const pos = {};
    for (const it of items) pos[it.id] = { x: PAD + lane[it.id] * (W + GX), y: PAD + rank[it.id] * (H + GY) };
    this.pos = pos;
    const frames = this.drawFrames(items, pos);
    const edges = svgEl("g", { class: "edges" });
    const nodes = svgEl("g", { class: "nodes" });
    for (const it of items) {
      const to = pos[it.id];
      for (const input of it.inputs) {
        const from = pos[input];
        const x1 = from.x + W / 2, y1 = from.y + H, x2 = to.x + W / 2, y2 = to.y;
        let d;
        if (free(lane[input], rank[input], rank[it.id])) {
          // Straight down the source's lane through empty cells, then into the target.
          const yTurn = Math.max(y1, y2 - GY);
          d = `M${x1},${y1} L${x1},${yTurn} C${x1},${yTurn + GY / 2} ${x2},${y2 - GY / 2} ${x2},${y2}`;
        } else {
          // Around the right of the nodes in between (an identity shortcut, a dense connection).
          const bend = Math.min(BEND - 10, 40 + 8 * (rank[it.id] - rank[input]));
          const xs = from.x + W - 10, xt = to.x + W - 10;
          d = `M${xs},${y1 - H / 2} C${xs + bend},${y1} ${xt + bend},${y2} ${xt},${y2 + H / 2}`;
        }
        edges.append(svgEl("path", { d, class: "edge" }));
      }
      nodes.append(this.drawNode(it, to));
    }
    this.viewport = svgEl("g", { class: "viewport" });
    this.viewport.append(frames, edges, nodes);
    this.svg.replaceChildren(this.viewport);
    this.svg.dataset.nodes = String(items.length);
    this.markSelected();
    this.apply();
    this.drawMinimap();
    this.box.dispatchEvent(new CustomEvent("graphchange", { detail: { drawn: items.length } }));
  }

  // Where a name is drawn inside its frame, only its part below the frame's name is written.
  shortName(name, frame) {
    return frame && name.startsWith(`${frame}.`) ? name.slice(frame.length + 1) : name;
  }

  innermostFrame(i) {
    const chain = this.chains[i].filter((b) => this.frames && this.frames.has(b));
    return chain.length ? chain[chain.length - 1] : null;
  }

  drawNode(it, at) {
    const font1 = `600 11px ${getComputedStyle(this.svg).fontFamily}`;
    const font2 = `400 10px ${getComputedStyle(this.svg).fontFamily}`;
    const g = svgEl("g", { class: it.block ? "node block" : "node", "data-id": it.id, transform: `translate(${at.x},${at.y})` });
    if (it.block) {
      const b = it.block;
      g.dataset.block = b.name;
      g.dataset.params = String(b.params);
      const frame = this.innermostFrame(b.members[0]);
      g.append(svgEl("rect", { class: "shadow", x: 4, y: 4, width: W, height: H }));
      g.append(svgEl("rect", { width: W, height: H, fill: "#eef2ff" }));
      g.append(svgEl("text", { x: 8, y: 16, class: "name", translate: "no" }, fitText(this.shortName(b.name, frame), font1, W - 34)));
      const line = t("graph.block_line", { ops: b.ops, params: fmtBig(b.params), macs: b.macs === null ? t("unknown") : fmtBig(b.macs) });
      g.append(svgEl("text", { x: 8, y: 31, class: "info" }, fitText(line, font2, W - 34, false)));
      const button = svgEl("g", { class: "toggle", transform: `translate(${W - 22},${H / 2 - 8})` });
      button.append(svgEl("rect", { width: 16, height: 16, rx: 3 }), svgEl("text", { x: 8, y: 12.5, "text-anchor": "middle" }, "+"),
        svgEl("title", {}, t("graph.expand", { name: b.name })));
      button.addEventListener("click", (e) => { e.stopPropagation(); if (!this.dragged) this.expand(b.name); });
      g.append(button);
      g.append(svgEl("title", {}, `${b.name}\n${t("graph.block_title", {
        ops: b.ops, output: shape(b.output_shape), params: fmtInt(b.params), macs: b.macs === null ? t("unknown") : fmtInt(b.macs) })}`));
      g.addEventListener("dblclick", (e) => { e.stopPropagation(); this.expand(b.name); });
      g.addEventListener("click", () => { if (!this.dragged) this.onSelect(b.name, "graph", b); });
      return g;
    }
    const layer = it.layer;
    g.dataset.name = layer.name;
    g.dataset.params = String(paramsOf([layer]));  // a shared module's second use holds none of its own
    const i = this.index.get(layer.name);
    const frame = this.innermostFrame(i);
    g.append(svgEl("rect", { width: W, height: H, fill: opColor(layer.op) }));
    g.append(svgEl("text", { x: 8, y: 16, class: "name", translate: "no" }, fitText(this.shortName(layer.name, frame), font1, W - 14)));
    const extra = layer.params ? ` · ${fmtBig(layer.params)} ${t("graph.params_short")}` : "";
    g.append(svgEl("text", { x: 8, y: 31, class: "info" }, fitText(`${layer.op} → ${shape(layer.output_shape)}${extra}`, font2, W - 14, false)));
    g.append(svgEl("title", {}, `${layer.name} (${layer.op})\n${t("graph.node_title", {
      output: shape(layer.output_shape), params: fmtInt(layer.params), macs: fmtInt(layer.macs) })}`));
    g.addEventListener("click", () => { if (!this.dragged) this.onSelect(layer.name, "graph"); });
    return g;
  }

  // A frame around the boxes of each unfolded block that shows two or more boxes, with a tab that folds it.
  drawFrames(items, pos) {
    const group = svgEl("g", { class: "frames" });
    const inside = new Map();
    for (const it of items) {
      const chain = this.chains[it.members[0]];
      for (const b of chain) {
        if (this.collapsed.has(b)) break;
        if (!inside.has(b)) inside.set(b, []);
        inside.get(b).push(it.id);
      }
    }
    this.frames = new Set([...inside].filter(([, ids]) => ids.length >= 2).map(([b]) => b));
    const level = new Map([...this.frames].map((b) => [b, 0]));
    const parentFrame = (b) => { let p = this.blocks.get(b).parent; while (p && !this.frames.has(p)) p = this.blocks.get(p).parent; return p; };
    for (const b of [...this.frames].sort((x, y) => this.blocks.get(y).depth - this.blocks.get(x).depth)) {
      const p = parentFrame(b);
      if (p) level.set(p, Math.max(level.get(p), level.get(b) + 1));
    }
    const font = `500 10px ${getComputedStyle(this.svg).fontFamily}`;
    const placed = new Map();  // frame -> its tab's x, top and the end of its label
    for (const b of [...this.frames].sort((x, y) => this.blocks.get(x).depth - this.blocks.get(y).depth)) {
      const ids = inside.get(b);
      const xs = ids.map((id) => pos[id].x), ys = ids.map((id) => pos[id].y);
      const px = 6 + 7 * level.get(b), py = 5 + 5 * level.get(b);
      const x0 = Math.min(...xs) - px, y0 = Math.min(...ys) - py;
      const x1 = Math.max(...xs) + W + px, y1 = Math.max(...ys) + H + py;
      // A frame that starts on its parent's row puts its tab after the parent's label, not on it.
      const parent = placed.get(parentFrame(b));
      const tabX = parent && Math.abs(parent.y - y0) < 20 ? Math.max(x0 + 6, parent.end + 10) : x0 + 6;
      const label = fitText(this.shortName(b, parentFrame(b)), font, Math.max(40, x1 - tabX - 30));
      placed.set(b, { y: y0, end: tabX + 22 + textWidth(label, font) });
      const g = svgEl("g", { class: "frame", "data-block": b });
      g.append(svgEl("rect", { class: "box", x: x0, y: y0, width: x1 - x0, height: y1 - y0, rx: 8 }));
      const tab = svgEl("g", { class: "toggle", transform: `translate(${tabX},${y0 - 8})` });
      tab.append(svgEl("rect", { width: 16, height: 16, rx: 3 }), svgEl("text", { x: 8, y: 12, "text-anchor": "middle" }, "−"),
        svgEl("title", {}, t("graph.collapse", { name: b })));
      tab.addEventListener("click", (e) => { e.stopPropagation(); if (!this.dragged) this.collapse(b); });
      g.append(svgEl("text", { class: "frame-label", x: tabX + 20, y: y0 + 4, translate: "no" }, label), tab);
      group.append(g);
    }
    return group;
  }

  // -- zoom and pan

  apply() {
    const { k, x, y } = this.view;
    if (this.viewport) this.viewport.setAttribute("transform", `translate(${x.toFixed(2)},${y.toFixed(2)}) scale(${k})`);
    this.svg.dataset.zoom = String(Math.round(k * 100));
    this.updateMinimapView();
    this.box.dispatchEvent(new CustomEvent("zoomchange", { detail: { zoom: k } }));
  }

  boxSize() {
    if (!this.svg.clientWidth) this.needsFit = true;  // hidden: sizes are guesses until it is shown
    return { w: this.svg.clientWidth || 800, h: this.svg.clientHeight || 560 };
  }

  shown() {
    if (!this.needsFit || !this.report || !this.svg.clientWidth) return;
    this.needsFit = false;
    this.drawMinimap();
    this.fitOrTop();
  }

  zoomAt(k, cx, cy) {
    const v = this.view;
    const nk = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, k));
    v.x = cx - ((cx - v.x) * nk) / v.k;
    v.y = cy - ((cy - v.y) * nk) / v.k;
    v.k = nk;
    this.apply();
  }

  zoomBy(factor) {
    const { w, h } = this.boxSize();
    this.zoomAt(this.view.k * factor, w / 2, h / 2);
  }

  zoomTo(k) {
    const { w, h } = this.boxSize();
    this.zoomAt(k, w / 2, h / 2);
  }

  panBy(dx, dy) { this.view.x += dx; this.view.y += dy; this.apply(); }

  // The whole graph in the box (never above 100%).
  fit() {
    const { w, h } = this.boxSize();
    const k = Math.max(MIN_ZOOM, Math.min(1, w / this.size.w, h / this.size.h));
    this.view = { k, x: (w - this.size.w * k) / 2, y: Math.max(0, (h - this.size.h * k) / 2) };
    this.apply();
  }

  // A graph that fits at a readable zoom is fitted; a long one starts at its top, at 100%.
  fitOrTop() {
    const { w, h } = this.boxSize();
    if (Math.min(w / this.size.w, h / this.size.h) >= 0.45) { this.fit(); return; }
    const k = Math.min(1, w / this.size.w);
    this.view = { k, x: (w - this.size.w * k) / 2, y: 0 };
    this.apply();
  }

  centerOn(id) {
    const p = this.pos[id];
    if (!p) return;
    const { w, h } = this.boxSize();
    this.view.x = w / 2 - (p.x + W / 2) * this.view.k;
    this.view.y = h / 2 - (p.y + H / 2) * this.view.k;
    this.apply();
  }

  bindEvents() {
    const svg = this.svg;
    svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = svg.getBoundingClientRect();
      this.zoomAt(this.view.k * Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    let start = null;
    svg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      start = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y, id: e.pointerId };
      this.dragged = false;
    });
    svg.addEventListener("pointermove", (e) => {
      if (!start || e.pointerId !== start.id) return;
      const dx = e.clientX - start.x, dy = e.clientY - start.y;
      if (!this.dragged && Math.hypot(dx, dy) < 4) return;
      if (!this.dragged) { this.dragged = true; svg.setPointerCapture(e.pointerId); svg.classList.add("dragging"); }
      this.view.x = start.vx + dx;
      this.view.y = start.vy + dy;
      this.apply();
    });
    const end = (e) => {
      if (!start || e.pointerId !== start.id) return;
      start = null;
      svg.classList.remove("dragging");
      if (this.dragged) setTimeout(() => { this.dragged = false; }, 0);  // the click that ends a drag selects nothing
    };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    this.box.addEventListener("keydown", (e) => {
      if (e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
      const step = 80;
      const keys = {
        "+": () => this.zoomBy(1.25), "=": () => this.zoomBy(1.25), "-": () => this.zoomBy(0.8), _: () => this.zoomBy(0.8),
        0: () => this.zoomTo(1), f: () => this.fit(), F: () => this.fit(),
        ArrowLeft: () => this.panBy(step, 0), ArrowRight: () => this.panBy(-step, 0),
        ArrowUp: () => this.panBy(0, step), ArrowDown: () => this.panBy(0, -step),
      };
      if (keys[e.key]) { keys[e.key](); e.preventDefault(); }
    });
    // The overview map: a press or a drag centres the view there.
    let miniDrag = false;
    const moveTo = (e) => {
      if (!this.mm) return;
      const r = this.mini.getBoundingClientRect();
      const cx = (e.clientX - r.left - this.mm.ox) / this.mm.s, cy = (e.clientY - r.top - this.mm.oy) / this.mm.s;
      const { w, h } = this.boxSize();
      this.view.x = w / 2 - cx * this.view.k;
      this.view.y = h / 2 - cy * this.view.k;
      this.apply();
    };
    this.mini.addEventListener("pointerdown", (e) => { miniDrag = true; this.mini.setPointerCapture(e.pointerId); moveTo(e); e.stopPropagation(); });
    this.mini.addEventListener("pointermove", (e) => { if (miniDrag) moveTo(e); });
    this.mini.addEventListener("pointerup", () => { miniDrag = false; });
    this.mini.addEventListener("wheel", (e) => e.stopPropagation(), { passive: true });
  }

  // -- overview map

  drawMinimap() {
    const mw = this.mini.clientWidth || 150, mh = this.mini.clientHeight || 180;
    const s = Math.min(mw / this.size.w, mh / this.size.h);
    this.mm = { s, ox: (mw - this.size.w * s) / 2, oy: (mh - this.size.h * s) / 2 };
    const g = svgEl("g", { transform: `translate(${this.mm.ox},${this.mm.oy}) scale(${s})` });
    for (const it of this.drawn) {
      const p = this.pos[it.id];
      g.append(svgEl("rect", { x: p.x, y: p.y, width: W, height: H, class: it.block ? "mini-block" : "mini-node",
        fill: it.block ? "#9db4ee" : opColor(it.layer.op) }));
    }
    this.miniView = svgEl("rect", { class: "mini-view", "vector-effect": "non-scaling-stroke" });
    g.append(this.miniView);
    this.mini.replaceChildren(g);
    this.updateMinimapView();
  }

  updateMinimapView() {
    if (!this.miniView) return;
    const { w, h } = this.boxSize();
    const { k, x, y } = this.view;
    this.miniView.setAttribute("x", -x / k);
    this.miniView.setAttribute("y", -y / k);
    this.miniView.setAttribute("width", w / k);
    this.miniView.setAttribute("height", h / k);
  }

  // All names a search can find: nodes and blocks.
  names() {
    return [...this.report.layers.map((l) => l.name), ...this.blocks.keys()];
  }

  // The node or block a search text means: an exact name, else the first name that contains it.
  find(text) {
    const q = text.trim().toLowerCase();
    if (!q) return null;
    const names = this.names();
    return names.find((n) => n.toLowerCase() === q) || names.find((n) => n.toLowerCase().includes(q)) || null;
  }

  // Jump to a node (unfolding what hides it) or to a block (unfolding what is around it).
  jump(name) {
    if (this.index.has(name)) return this.reveal(name);
    const b = this.blocks.get(name);
    if (!b) return false;
    for (let p = b.parent; p; p = this.blocks.get(p).parent) this.collapsed.delete(p);
    this.render();
    if (this.view.k < 0.75) this.view.k = 1;
    const id = this.collapsed.has(name) ? `b:${name}` : this.repOf(b.members[0]);
    this.centerOn(id);
    for (const g of this.svg.querySelectorAll(".node")) g.classList.toggle("selected", g.dataset.id === id);
    return true;
  }
}
