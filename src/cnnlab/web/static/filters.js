// One convolution layer of a real network at work on one image (GET /api/filters).
//
// Above, the whole layer: the input channels, the outputs of eight filters and what the network
// does next (batch norm, activation, pooling). Below, one filter taken apart: each input channel
// with its slice of the filter gives one map, the maps are added together with the bias, then
// the next layers apply. Pointing at a cell shows its arithmetic with the server's numbers.
// Colours: one scale centred on zero per group of maps, blue negative, white 0, red positive.

import { t } from "./i18n.js";
import { $, api, busy, el, fmtNum, fmtPct, query, term } from "./util.js";

const NEG = [33, 102, 172], MID = [247, 247, 247], POS = [178, 24, 43];

// A colour scale centred on zero whose ends are the largest magnitude among ``maps``.
function scaleOf(...maps) {
  let max = 0, signed = false;
  const visit = (v) => {
    if (Array.isArray(v)) { for (const x of v) visit(x); return; }
    if (v < 0) signed = true;
    if (Math.abs(v) > max) max = Math.abs(v);
  };
  for (const m of maps) if (m) visit(m);
  return { max: max || 1, signed };
}

function colour(v, scale) {
  const u = Math.max(-1, Math.min(1, v / scale.max));
  const end = u >= 0 ? POS : NEG, a = Math.abs(u);
  return end.map((e, i) => Math.round(MID[i] + (e - MID[i]) * a));
}
const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;
const darkText = (v, scale) => Math.abs(v / scale.max) < 0.55;

function legend(scale, label) {
  const bar = el("span", { class: "legend-bar" + (scale.signed ? " signed" : "") });
  return el("span", { class: "legend" }, el("span", { class: "legend-label", text: label }),
    el("span", { class: "legend-end", text: scale.signed ? fmtNum(-scale.max, 3) : "0" }), bar,
    el("span", { class: "legend-end", text: fmtNum(scale.max, 3) }));
}

const crop = (m, top, left, h, w) => m.slice(top, top + h).map((row) => row.slice(left, left + w));

// A map drawn on a canvas, one square per value, with boxes laid over it to point at cells.
function mapView(values, scale, cell, { role, index, title, onHover, onLeave, onClick, inner } = {}) {
  const rows = values.length, cols = values[0].length;
  const canvas = el("canvas", { width: cols * cell, height: rows * cell, class: "map-canvas" });
  const ctx = canvas.getContext("2d");
  for (let r = 0; r < rows; r += 1) {
    for (let c = 0; c < cols; c += 1) {
      ctx.fillStyle = rgb(colour(values[r][c], scale));
      ctx.fillRect(c * cell, r * cell, cell, cell);
    }
  }
  if (cell >= 10) {
    ctx.strokeStyle = "rgba(100,110,130,0.25)";
    ctx.lineWidth = 1;
    for (let r = 0; r <= rows; r += 1) { ctx.beginPath(); ctx.moveTo(0, r * cell + 0.5); ctx.lineTo(cols * cell, r * cell + 0.5); ctx.stroke(); }
    for (let c = 0; c <= cols; c += 1) { ctx.beginPath(); ctx.moveTo(c * cell + 0.5, 0); ctx.lineTo(c * cell + 0.5, rows * cell); ctx.stroke(); }
  }
  const layer = el("div", { class: "map-marks" });
  const node = el("div", { class: "map", "data-role": role, "data-index": index === undefined ? undefined : String(index),
    "data-rows": String(rows), "data-cols": String(cols), "data-cell": String(cell), title }, canvas, layer);
  canvas.style.width = `${cols * cell}px`;
  canvas.style.height = `${rows * cell}px`;
  const box = (r0, c0, r1, c1, cls) => {
    const b = el("div", { class: `mark ${cls}` });
    b.style.left = `${c0 * cell}px`;
    b.style.top = `${r0 * cell}px`;
    b.style.width = `${(c1 - c0 + 1) * cell}px`;
    b.style.height = `${(r1 - r0 + 1) * cell}px`;
    return b;
  };
  if (inner) layer.append(box(inner.top, inner.left, inner.top + inner.h - 1, inner.left + inner.w - 1, "inner"));
  const view = {
    node, rows, cols,
    mark(rects) {
      for (const m of layer.querySelectorAll(".mark.hot")) m.remove();
      for (const [r0, c0, r1, c1] of rects) layer.append(box(r0, c0, r1, c1, "hot"));
    },
  };
  const at = (e) => {
    const rect = canvas.getBoundingClientRect();
    const r = Math.floor(((e.clientY - rect.top) / rect.height) * rows), c = Math.floor(((e.clientX - rect.left) / rect.width) * cols);
    return r >= 0 && r < rows && c >= 0 && c < cols ? [r, c] : null;
  };
  if (onHover) canvas.addEventListener("pointermove", (e) => { const p = at(e); if (p) onHover(p[0], p[1]); });
  if (onLeave) canvas.addEventListener("pointerleave", onLeave);
  if (onClick) { canvas.addEventListener("click", onClick); node.classList.add("clickable"); }
  return view;
}

// A small grid of numbers (a filter's slice), coloured on ``scale``.
function numberGrid(values, scale, cls = "kernel") {
  return el("table", { class: `numgrid ${cls}` }, ...values.map((row) => el("tr", {}, ...row.map((v) => {
    const td = el("td", { text: fmtNum(v, 2), title: fmtNum(v, 5) });
    td.style.background = rgb(colour(v, scale));
    if (!darkText(v, scale)) td.classList.add("light");
    return td;
  }))));
}

const cellFor = (rows, cols, target) => Math.max(2, Math.min(28, Math.floor(target / Math.max(rows, cols))));

export class FiltersView {
  constructor({ sourceParams, refreshRunChoices }) {
    this.sourceParams = sourceParams;
    this.refreshRunChoices = refreshRunChoices;
    this.data = null;
    this.stale = true;
    this.channel = 0;  // the channel whose products the arithmetic lists
    this.request = 0;
    $("#filters-form").addEventListener("submit", (e) => { e.preventDefault(); this.load(); });
    $("#filters-source").addEventListener("change", () => {
      $("#filters-layer").replaceChildren();
      $("#filters-filter").value = "0";
      $("#filters-image").replaceChildren();
      this.stale = true;
      if ($("#view-conv").classList.contains("active") && !$("#conv-net").hidden) this.load();
    });
    $("#filters-layer").addEventListener("change", () => { $("#filters-filter").value = "0"; this.load(); });
    $("#filters-filter").addEventListener("change", () => this.load());
    $("#filters-image").addEventListener("change", () => this.load());
  }

  enter() { if (this.stale || !this.data) this.load(); }

  params() {
    return {
      ...this.sourceParams($("#filters-source")), layer: $("#filters-layer").value, filter: $("#filters-filter").value.trim(),
      image: $("#filters-image").value,
    };
  }

  clear() {
    this.data = null;
    for (const id of ["#filters-head", "#filters-overview", "#filters-detail", "#filters-arith"]) $(id).replaceChildren();
    delete $("#filters-detail").dataset.ready;
  }

  async load(overrides = {}) {
    const mine = ++this.request;
    this.stale = false;
    delete $("#filters-detail").dataset.ready;  // ready again when this answer is drawn
    await busy($("#filters-go"), async () => {
      const d = await api(`/api/filters?${query({ ...this.params(), ...overrides })}`);
      if (mine !== this.request) return;
      this.data = d;
      this.channel = 0;
      this.fillControls();
      this.draw();
    }, () => { if (mine === this.request) this.clear(); });
  }

  fillControls() {
    const d = this.data;
    $("#filters-layer").replaceChildren(...d.layers.map((l) => el("option", { value: l.name,
      text: t("filters.layer_option", { name: l.name, cin: l.in_channels, cout: l.out_channels, k: l.kernel_size.join("×") }) })));
    $("#filters-layer").value = d.layer.name;
    $("#filters-filter").max = String(d.layer.out_channels - 1);
    $("#filters-filter").value = String(d.filter.index);
    $("#filters-image-label").hidden = !d.images.length;
    $("#filters-image").replaceChildren(...d.images.map((n) => el("option", { value: n, text: n })));
    if (d.image_name) $("#filters-image").value = d.image_name;
  }

  redraw() {
    if (!this.data) return;
    this.fillControls();
    this.draw();
  }

  draw() {
    const d = this.data, L = d.layer, f = d.filter;
    const pad = L.padding;
    const [, ih, iw] = L.input_shape;
    const inner = { top: pad.top, left: pad.left, h: ih, w: iw };
    this.scales = {
      input: scaleOf(d.input.padded), weights: scaleOf(f.weights), partials: scaleOf(f.partials, f.rest),
      output: scaleOf(d.output, f.output), stages: d.stages.map((s) => scaleOf(s.values, s.filter)),
    };
    this.drawHead();
    this.drawOverview(inner);
    this.drawDetail(inner);
    this.showHint();
    $("#filters-detail").dataset.ready = `${L.name}:${f.index}`;
  }

  drawHead() {
    const d = this.data, L = d.layer;
    const preds = d.predictions.map((p, i) => el("li", { "data-class": p.class, class: i ? "" : "top" }, `${p.class} — ${fmtPct(p.probability)}`));
    const setup = t("filters.setup", {
      name: L.name, cin: L.in_channels, cout: L.out_channels, k: L.kernel_size.join("×"), s: L.stride.join("×"),
      p: `${L.padding.top}×${L.padding.left}`, d: L.dilation.join("×"),
    }) + (L.groups > 1 ? ` ${t("filters.groups", { g: L.groups })}` : "") + (L.bias ? ` ${t("filters.with_bias")}` : ` ${t("filters.no_bias")}`);
    $("#filters-head").replaceChildren(
      el("figure", {}, el("img", { src: d.image, class: "filters-picture", alt: t("filters.picture") }),
        el("figcaption", { text: d.image_name || t("filters.sample_photo") })),
      el("div", { class: "filters-about" },
        el("p", { class: "filters-model" }, el("b", { text: d.model }), ` · ${t(d.trained ? "weights.trained" : "weights.random")}`),
        el("p", { class: "hint", text: t("filters.prediction") }), el("ol", { class: "filters-preds" }, ...preds),
        el("p", { id: "filters-setup", text: setup }),
        el("p", { class: "filters-rule", text: t("filters.rule") }),
        el("p", { class: "hint", text: t("filters.colours") })));
  }

  // The whole layer: input channels, eight filters' outputs, then each stage after the layer.
  drawOverview(inner) {
    const d = this.data, f = d.filter;
    const small = (rows, cols) => cellFor(rows, cols, 58);
    const column = (title, sub, maps, scale) => el("div", { class: "ov-col" }, el("h4", { text: title }),
      el("div", { class: "hint ov-sub", text: sub }), legend(scale, ""), ...maps);
    const inputs = d.input.channels.map((c, k) => {
      const m = crop(d.input.padded[k], inner.top, inner.left, inner.h, inner.w);
      return el("figure", { class: "ov-map" }, mapView(m, this.scales.input, small(inner.h, inner.w), { role: "ov-input", index: c }).node,
        el("figcaption", { text: t("filters.channel_n", { c }) }));
    });
    const moreIn = d.layer.in_channels > d.input.channels.length
      ? [el("p", { class: "hint", text: t("filters.more_channels", { n: d.layer.in_channels - d.input.channels.length }) })] : [];
    const outputs = (values, role, scale) => values.map((m, k) => {
      const index = d.filters[k];
      const view = mapView(m, scale, small(m.length, m[0].length), { role, index, title: t("filters.pick", { f: index }),
        onClick: () => { $("#filters-filter").value = String(index); this.load(); } });
      const fig = el("figure", { class: `ov-map${index === f.index ? " chosen" : ""}`, "data-filter": String(index) }, view.node,
        el("figcaption", { text: t("filters.filter_n", { f: index }) }));
      return fig;
    });
    const cols = [
      column(t("filters.input_col"), t("filters.shape", { shape: d.layer.input_shape.join("×") }), [...inputs, ...moreIn], this.scales.input),
      el("div", { class: "ov-arrow", text: "→" }),
      column(t("filters.conv_col", { name: d.layer.name }), t("filters.shape", { shape: d.layer.output_shape.join("×") }),
        outputs(d.output, "ov-output", this.scales.output), this.scales.output),
    ];
    d.stages.forEach((s, k) => {
      cols.push(el("div", { class: "ov-arrow", text: "→" }),
        column(`${this.stageName(s)}`, t("filters.shape", { shape: s.shape.join("×") }), outputs(s.values, `ov-stage-${k}`, this.scales.stages[k]), this.scales.stages[k]));
    });
    const more = d.layer.out_channels > d.filters.length
      ? el("p", { class: "hint", text: t("filters.filters_shown", { a: d.filters[0], b: d.filters[d.filters.length - 1], n: d.layer.out_channels }) }) : null;
    $("#filters-overview").replaceChildren(el("div", { class: "ov-cols" }, ...cols), more || "");
  }

  stageName(s) {
    const key = `op.${s.op}`;
    const name = t(key);
    return `${name === key ? s.op : name} (${s.name})`;
  }

  // One filter taken apart: a card per input channel, then the sum, the bias and the stages.
  drawDetail(inner) {
    const d = this.data, L = d.layer, f = d.filter;
    const [kh, kw] = L.kernel_size;
    const [, oh, ow] = L.output_shape;
    const inCell = cellFor(d.input.padded[0].length, d.input.padded[0][0].length, 100);
    const outCell = cellFor(oh, ow, 100);
    this.views = { input: [], partials: [], rest: null, z: null, stages: [] };
    const cards = d.input.channels.map((c, k) => {
      const input = mapView(d.input.padded[k], this.scales.input, inCell, {
        role: "input", index: c, inner, title: t("filters.padded_title"),
        onHover: (r, col) => this.hoverInput(k, r, col), onLeave: () => this.showHint() });
      const partial = mapView(f.partials[k], this.scales.partials, outCell, {
        role: "partial", index: c, onHover: (i, j) => { this.channel = k; this.hoverUnit(i, j); }, onLeave: () => this.showHint() });
      this.views.input.push(input);
      this.views.partials.push(partial);
      return el("div", { class: "card", "data-channel": String(c) },
        el("h4", { text: t("filters.channel_card", { c }) }),
        el("div", { class: "card-row" },
          el("figure", {}, input.node, el("figcaption", { text: t("filters.input_channel", { c }) })),
          el("span", { class: "op", text: "⊛" }),
          el("figure", {}, numberGrid(f.weights[k], this.scales.weights), el("figcaption", { text: t("filters.slice", { f: f.index, c, k: `${kh}×${kw}` }) })),
          el("span", { class: "op", text: "=" }),
          el("figure", {}, partial.node, el("figcaption", { text: t("filters.partial", { c }) }))));
    });
    if (f.rest) {
      const rest = mapView(f.rest, this.scales.partials, outCell, { role: "rest", onHover: (i, j) => this.hoverUnit(i, j), onLeave: () => this.showHint() });
      this.views.rest = rest;
      cards.push(el("div", { class: "card rest" }, el("h4", { text: t("filters.rest_card", { n: f.rest_channels }) }),
        el("div", { class: "card-row" }, el("figure", {}, rest.node, el("figcaption", { text: t("filters.rest_caption") })))));
    }
    const z = mapView(f.output, this.scales.output, outCell, { role: "z", onHover: (i, j) => this.hoverUnit(i, j), onLeave: () => this.showHint() });
    this.views.z = z;
    const chain = [el("span", { class: "op wide", text: t("filters.sum_op", { n: L.in_channels / L.groups }) }),
      el("span", { class: "op wide", "data-role": "bias", text: `+ ${t("filters.bias")} ${fmtNum(f.bias, 4)} =` }),
      el("figure", {}, z.node, el("figcaption", { text: t("filters.output_caption", { f: f.index }) }))];
    d.stages.forEach((s, k) => {
      const cell = cellFor(s.filter.length, s.filter[0].length, 110);
      const pool = Boolean(s.kernel_size);
      const view = mapView(s.filter, this.scales.stages[k], cell, { role: `stage-${k}`,
        onHover: (i, j) => (pool ? this.hoverPool(k, i, j) : this.hoverUnit(i, j)), onLeave: () => this.showHint() });
      this.views.stages.push(view);
      chain.push(el("span", { class: "op", text: "→" }), el("figure", {}, view.node, el("figcaption", { text: this.stageName(s) })));
    });
    $("#filters-detail").replaceChildren(
      el("h3", { text: t("filters.detail_title", { f: f.index, name: L.name }) }),
      el("div", { class: "legends" }, legend(this.scales.input, t("filters.legend_input")), legend(this.scales.weights, t("filters.legend_weights")),
        legend(this.scales.partials, t("filters.legend_partials")), legend(this.scales.output, t("filters.legend_output"))),
      el("div", { class: "cards" }, ...cards),
      el("div", { class: "sum-row" }, ...chain));
  }

  unmark() {
    const v = this.views;
    for (const m of [...v.input, ...v.partials, v.rest, v.z, ...v.stages]) if (m) m.mark([]);
  }

  showHint() {
    if (!this.views) return;
    this.unmark();
    const box = $("#filters-arith");
    box.replaceChildren(el("h3", { text: t("filters.arith") }), el("p", { class: "hint", text: t("filters.arith_hint") }));
    delete box.dataset.unit;
  }

  // Output (i, j) of the filter: each channel's window times its slice, the sum, the bias, the stages.
  hoverUnit(i, j) {
    const d = this.data, L = d.layer, f = d.filter;
    const [kh, kw] = L.kernel_size, [sh, sw] = L.stride, [dh, dw] = L.dilation;
    const r0 = i * sh, c0 = j * sw, r1 = r0 + (kh - 1) * dh, c1 = c0 + (kw - 1) * dw;
    this.unmark();
    for (const v of this.views.input) v.mark([[r0, c0, r1, c1]]);
    for (const v of [...this.views.partials, this.views.rest, this.views.z]) if (v) v.mark([[i, j, i, j]]);
    const value = (role, v, extra = {}) => el("td", { class: "num", "data-role": role, "data-value": String(v), ...extra, text: fmtNum(v, 5) });
    const rows = d.input.channels.map((c, k) => el("tr", { class: k === this.channel ? "chosen" : "" },
      el("td", { text: t("filters.channel_n", { c }) }), el("td", { class: "hint", text: t("filters.window_sum", { n: kh * kw }) }),
      value("partial", f.partials[k][i][j], { "data-channel": String(c) })));
    const terms = d.input.channels.map((_, k) => f.partials[k][i][j]);
    if (f.rest) {
      rows.push(el("tr", {}, el("td", { text: t("filters.rest_card", { n: f.rest_channels }) }), el("td", {}), value("rest", f.rest[i][j])));
      terms.push(f.rest[i][j]);
    }
    rows.push(el("tr", {}, el("td", { text: t("filters.bias") }), el("td", {}), value("bias", f.bias)));
    terms.push(f.bias);
    const z = f.output[i][j];
    rows.push(el("tr", { class: "total" }, el("td", { text: "z" }), el("td", { class: "hint", text: t("filters.sum_all") }), value("z", z)));
    let previous = z;
    d.stages.forEach((s, k) => {
      if (s.kernel_size) return;
      const y = s.filter[i][j];
      this.views.stages[k].mark([[i, j, i, j]]);
      rows.push(el("tr", {}, el("td", { text: this.stageName(s) }), el("td", { class: "hint", text: this.stageFormula(s, previous) }),
        value("stage", y, { "data-stage": s.name })));
      previous = y;
    });
    // A pooling stage: the windows that contain this unit.
    d.stages.forEach((s, k) => {
      if (!s.kernel_size) return;
      const cells = [];
      const [ph, pw] = s.shape.slice(1);
      for (let a = 0; a < ph; a += 1) for (let b = 0; b < pw; b += 1) {
        const top = a * s.stride[0] - s.padding[0], left = b * s.stride[1] - s.padding[1];
        if (i >= top && i < top + s.kernel_size[0] && j >= left && j < left + s.kernel_size[1]) cells.push([a, b, a, b]);
      }
      this.views.stages[k].mark(cells);
    });
    const expr = `z = ${terms.map((x) => term(x, 4)).join(" + ")} = ${fmtNum(z, 5)}`;
    const k = Math.min(this.channel, d.input.channels.length - 1);
    const c = d.input.channels[k];
    const products = el("table", { class: "numgrid products" }, ...Array.from({ length: kh }, (_, u) => el("tr", {},
      ...Array.from({ length: kw }, (_, v) => {
        const x = d.input.padded[k][r0 + u * dh][c0 + v * dw], w = f.weights[k][u][v];
        return el("td", { text: `${fmtNum(w, 2)}×${fmtNum(x, 2)}`, title: `${fmtNum(w, 5)} × ${fmtNum(x, 5)} = ${fmtNum(w * x, 5)}` });
      }))));
    const box = $("#filters-arith");
    box.dataset.unit = `${f.index},${i},${j}`;
    box.replaceChildren(
      el("h3", { text: t("filters.unit_title", { f: f.index, i, j }) }),
      el("table", { class: "arith-table" }, el("tbody", {}, ...rows)),
      el("p", { class: "expression", text: expr }),
      el("h4", { text: t("filters.products_title", { c, r0, r1, c0, c1 }) }),
      products,
      el("p", { class: "hint", text: t("filters.products_note", { c, value: fmtNum(f.partials[k][i][j], 5) }) }));
  }

  stageFormula(s, z) {
    if (s.op === "ReLU") return `max(0, ${fmtNum(z, 4)})`;
    if (s.op === "BatchNorm2d") return t("filters.bn_formula", { z: fmtNum(z, 4) });
    return `${s.op}(${fmtNum(z, 4)})`;
  }

  // A pooling output: its window on the map before it.
  hoverPool(k, a, b) {
    const d = this.data, f = d.filter, s = d.stages[k];
    const before = k > 0 ? d.stages[k - 1].filter : f.output;
    const beforeView = k > 0 ? this.views.stages[k - 1] : this.views.z;
    const top = a * s.stride[0] - s.padding[0], left = b * s.stride[1] - s.padding[1];
    const values = [];
    for (let r = top; r < top + s.kernel_size[0]; r += 1) {
      for (let c = left; c < left + s.kernel_size[1]; c += 1) {
        if (r >= 0 && c >= 0 && r < before.length && c < before[0].length) values.push(before[r][c]);
      }
    }
    this.unmark();
    beforeView.mark([[Math.max(0, top), Math.max(0, left), Math.min(before.length - 1, top + s.kernel_size[0] - 1),
      Math.min(before[0].length - 1, left + s.kernel_size[1] - 1)]]);
    this.views.stages[k].mark([[a, b, a, b]]);
    const fn = s.op === "MaxPool2d" ? "max" : t("filters.mean");
    const y = s.filter[a][b];
    const box = $("#filters-arith");
    box.dataset.unit = `pool:${f.index},${a},${b}`;
    box.replaceChildren(
      el("h3", { text: t("filters.pool_title", { name: this.stageName(s), a, b }) }),
      el("p", { text: t("filters.pool_window", { k: s.kernel_size.join("×"), s: s.stride.join("×") }) }),
      el("p", { class: "expression" }, `${fn}(${values.map((v) => fmtNum(v, 4)).join(", ")}) = `,
        el("b", { "data-role": "pool", "data-value": String(y), text: fmtNum(y, 5) })));
  }

  hoverInput(k, r, c) {
    const d = this.data, L = d.layer;
    const value = d.input.padded[k][r][c];
    const inside = r >= L.padding.top && r < L.padding.top + L.input_shape[1] && c >= L.padding.left && c < L.padding.left + L.input_shape[2];
    this.unmark();
    this.views.input[k].mark([[r, c, r, c]]);
    const box = $("#filters-arith");
    box.dataset.unit = `input:${d.input.channels[k]},${r},${c}`;
    box.replaceChildren(el("h3", { text: t("filters.input_title", { c: d.input.channels[k], r: r - L.padding.top, col: c - L.padding.left }) }),
      el("p", { class: "expression", text: `x = ${fmtNum(value, 5)}` }),
      el("p", { class: "hint", text: inside ? t("filters.input_note") : t("filters.padding_note") }));
  }
}
