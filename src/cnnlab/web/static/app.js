// cnnlab explorer: one page over the JSON API. No framework and no build step: plain modules,
// SVG and canvas drawn by hand. Every number shown comes from the server; this page lays it out.

import { language, onLanguageChange, setLanguage, startLanguage, t } from "./i18n.js";
import { lineChart } from "./charts.js";
import { FiltersView } from "./filters.js";
import { GraphView } from "./graph.js";
import {
  $, api, busy, clearMessage, el, fmtBig, fmtBytes, fmtInt, fmtPct, known, query, shape, showError, svgEl,
} from "./util.js";

// ---- tabs -----------------------------------------------------------------------------------

const views = {};
function showView(name) {
  if (!views[name]) name = "arch";
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.view === name);
  for (const s of document.querySelectorAll(".view")) s.classList.toggle("active", s.id === `view-${name}`);
  for (const [key, v] of Object.entries(views)) {
    if (key === name) { if (v.enter) v.enter(); } else if (v.leave) v.leave();
  }
  clearMessage();
}

// ---- model and run choices ------------------------------------------------------------------

const state = { models: [], runs: [] };

function fillSources() {
  for (const select of document.querySelectorAll("select.source")) {
    const keep = select.value;
    select.replaceChildren();
    const zoo = el("optgroup", { label: t("source.zoo") });
    for (const m of state.models) zoo.append(el("option", { value: `model:${m.name}`, text: `${m.name}  (${m.family})` }));
    const runs = el("optgroup", { label: t("source.runs") });
    for (const r of state.runs.filter((x) => x.has_checkpoint)) {
      runs.append(el("option", { value: `run:${r.name}`, text: `${r.name}  (${r.model})` }));
    }
    const groups = select.dataset.runsFirst ? [runs, zoo] : [zoo, runs];
    for (const g of groups) if (g.children.length) select.append(g);
    if (keep && [...select.options].some((o) => o.value === keep)) select.value = keep;
  }
}

function sourceParams(select) {
  const [kind, ...rest] = select.value.split(":");
  return { [kind]: rest.join(":") };
}

// What the server's ``weights`` field says, in the page's language.
const weightsText = (trained) => t(trained ? "weights.trained" : "weights.random");

async function loadChoices() {
  const [models, runs] = await Promise.all([api("/api/models"), api("/api/runs")]);
  state.models = models.models;
  state.runs = runs.runs;
  fillSources();
}

// Runs that finished since the page opened become choices when a view that takes them opens.
async function refreshRunChoices() {
  try {
    state.runs = (await api("/api/runs")).runs;
    fillSources();
  } catch (err) {
    showError(err);
  }
}

// ---- architecture ---------------------------------------------------------------------------

const arch = { report: null, selected: null, graph: null, params: null };

// Parameters the model holds but no drawn node uses (the auxiliary classifiers of GoogLeNet and
// Inception, which eval mode never runs): not in the total, named by the analyzer; null when none.
function paramsOutsideGraph(report) {
  const given = (report.totals || {}).params_outside_graph;  // {params, modules}: the analyzer's own count
  return given ? given.params : null;
}

// Bring ``target`` into view inside its scrolling ``box`` only: the page itself does not move.
function scrollWithin(box, target) {
  if (!box) return;
  const b = box.getBoundingClientRect(), r = target.getBoundingClientRect();
  if (r.top < b.top + 30 || r.bottom > b.bottom) box.scrollTop += r.top - b.top - b.height / 3;
  if (r.left < b.left || r.right > b.right) box.scrollLeft += r.left - b.left - 20;
}

const rfText = (layer) => (layer.rf_size ? `${layer.rf_size.join("×")} / ${layer.rf_stride.join("×")}` : "–");

function drawTable(report) {
  const body = $("#arch-table tbody");
  body.replaceChildren(...report.layers.map((layer, i) => {
    const tr = el("tr", { "data-name": layer.name, translate: "no" },
      el("td", { class: "num", text: String(i) }), el("td", { text: layer.name }), el("td", { text: layer.op }),
      el("td", { text: shape(layer.output_shape) }), el("td", { class: "num", text: fmtInt(layer.params) }),
      el("td", { class: "num", text: fmtInt(layer.macs) }), el("td", { class: "num", text: rfText(layer) }));
    tr.addEventListener("click", () => selectLayer(layer.name, "table"));
    return tr;
  }));
  const tot = report.totals;
  const rows = [el("tr", {},
    el("td", {}), el("td", { text: t("total") }), el("td", {}), el("td", {}),
    el("td", { class: "num", id: "arch-total-params", "data-value": String(tot.params), text: fmtInt(tot.params) }),
    el("td", { class: "num", id: "arch-total-macs", "data-value": String(tot.macs), text: fmtInt(tot.macs) }),
    el("td", { class: "num", text: tot.receptive_field ? tot.receptive_field.size.join("×") : "–" }))];
  const outside = paramsOutsideGraph(report);
  if (outside) {  // held by the model, never run by the drawn graph: below the total, not in it
    rows.push(el("tr", { class: "outside" }, el("td", {}), el("td", { colspan: 3, text: t("arch.outside_row") }),
      el("td", { class: "num", id: "arch-outside-params", "data-value": String(outside), text: fmtInt(outside) }),
      el("td", {}), el("td", {})));
  }
  $("#arch-table tfoot").replaceChildren(...rows);
}

function drawSummary(report) {
  const tot = report.totals;
  const stat = (label, value, cls = "stat", id) => el("div", { class: cls, id }, el("b", { text: value }), el("span", { text: label }));
  const items = [
    stat(t("sum.model"), report.model), stat(t("sum.input"), report.input_size.join("×")),
    stat(t("sum.params"), fmtInt(tot.params), "stat", "arch-sum-params"), stat(t("sum.macs"), known(tot.macs, fmtBig)),
    stat(t("sum.flops"), known(tot.flops, fmtBig)),
    stat(t("sum.weighted"), known(tot.weighted_depth, String)),
    stat(t("sum.rf"), tot.receptive_field ? tot.receptive_field.size.join("×")
      : report.unknown && report.unknown.receptive_field ? t("unknown") : "–"),
    stat(t("sum.activations"), fmtBytes(tot.activation_bytes)),
    stat(t("sum.memory"), fmtBytes(tot.training_memory.total)),
  ];
  const outside = paramsOutsideGraph(report);
  if (outside) {
    const note = stat(t("sum.outside"), fmtInt(outside), "stat note", "arch-outside-note");
    note.title = t("sum.outside_title");
    items.splice(3, 0, note);
  }
  for (const [total, why] of Object.entries(report.unknown || {})) {
    items.push(stat(t("sum.unknown", { what: t(`total.${total}`) }), why, "stat warn"));
  }
  if (report.misaligned.length) items.push(stat(t("sum.misaligned"), report.misaligned.join(", "), "stat warn"));
  $("#arch-summary").replaceChildren(...items);
}

function detailList(rows) {
  const dl = el("dl");
  // A third item marks a value that is data (an operator's or a module's name), never translated.
  for (const [k, v, data] of rows) dl.append(el("dt", { text: k }), el("dd", { text: v, translate: data ? "no" : undefined }));
  return dl;
}

function selectBlock(block) {
  arch.selected = block.name;
  for (const tr of document.querySelectorAll("#arch-table tbody tr")) tr.classList.remove("selected");
  const unfold = el("button", { type: "button", id: "arch-unfold", text: t("graph.unfold") });
  unfold.addEventListener("click", () => arch.graph.expand(block.name));
  $("#arch-detail").replaceChildren(el("h3", { text: block.name }), detailList([
    [t("d.kind"), t("d.block", { ops: block.ops })],
    [t("d.output_shape"), block.output_shape ? block.output_shape.join("×") : "–"],
    [t("d.params"), fmtInt(block.params)], [t("d.macs"), known(block.macs, fmtInt)], [t("d.flops"), known(block.flops, fmtInt)],
    [t("d.rf"), block.rf_size ? `${block.rf_size.join("×")} / ${block.rf_stride.join("×")}` : "–"],
  ]), el("p", { class: "hint", text: t("d.block_note") }), unfold);
}

function selectLayer(name, from, block) {
  const report = arch.report;
  if (!report) return;
  if (block) { selectBlock(block); return; }
  const layer = report.layers.find((l) => l.name === name);
  if (!layer) return;
  arch.selected = name;
  if (from === "table" || from === "search") arch.graph.reveal(name, from === "search");
  else arch.graph.select(name);
  for (const tr of document.querySelectorAll("#arch-table tbody tr")) tr.classList.toggle("selected", tr.dataset.name === name);
  const row = document.querySelector(`#arch-table tr[data-name="${CSS.escape(name)}"]`);
  if (row && from !== "table") scrollWithin(row.closest(".table-box"), row);
  const rows = [
    [t("d.op"), layer.op, true], [t("d.module"), layer.scope || "–", true], [t("d.inputs"), layer.inputs.join(", ") || "–", true],
    [t("d.input_shapes"), layer.input_shapes.map((s) => s.join("×")).join(", ") || "–"],
    [t("d.output_shape"), layer.output_shape ? layer.output_shape.join("×") : "–"],
    [t("d.params"), fmtInt(layer.params) + (layer.shared ? ` ${t("d.shared")}` : "")],
    [t("d.macs"), fmtInt(layer.macs)], [t("d.flops"), fmtInt(layer.flops)], [t("d.activation"), fmtBytes(layer.activation_bytes)],
  ];
  if (layer.rf_size) {
    rows.push([t("d.rf"), `${layer.rf_size.join("×")} ${t("unit.pixels")}${layer.rf_covers_input ? ` ${t("d.covers")}` : ""}`],
      [t("d.jump"), layer.rf_stride.join("×")], [t("d.eff_padding"), layer.rf_padding.join("×")]);
  }
  if (layer.misaligned) rows.push([t("d.misaligned"), layer.misaligned]);
  if (!layer.supported) rows.push([t("d.note"), t("d.unsupported")]);
  const children = [el("h3", { text: layer.name }), detailList(rows)];
  // The blocks around the node, each a button that folds it.
  const chain = arch.graph.chains[arch.graph.index.get(name)];
  if (chain.length) {
    children.push(el("p", { class: "crumbs" }, t("d.in_blocks"), " ", ...chain.flatMap((b, i) => {
      const button = el("button", { type: "button", class: "crumb", "data-block": b, title: t("graph.collapse", { name: b }), text: b.split(".").pop() });
      button.addEventListener("click", () => arch.graph.collapse(b));
      return i ? [" › ", button] : [button];
    })));
  }
  if (layer.explain && layer.explain.length) {
    children.push(el("h3", { text: t("d.formulas") }), el("pre", { id: "arch-formula", text: layer.explain.join("\n"), translate: "no" }));
  }
  $("#arch-detail").replaceChildren(...children);
}

function clearArch() {
  arch.report = null;
  $("#arch-summary").replaceChildren();
  $("#arch-graph").replaceChildren();
  $("#arch-minimap").replaceChildren();
  $("#arch-table tbody").replaceChildren();
  $("#arch-table tfoot").replaceChildren();
  $("#arch-downloads").replaceChildren();
  $("#graph-status").textContent = "";
  $("#arch-detail").replaceChildren();
  delete $("#arch-graph").dataset.ready;
}

function drawDownloads() {
  const params = arch.params;
  $("#arch-downloads").replaceChildren(`${t("arch.download")} `,
    ...[["csv", "CSV"], ["md", "Markdown"], ["json", "JSON"]].flatMap(([format, label], i) => [
      i ? " · " : "", el("a", { href: `/api/analyze?${query({ ...params, format })}`, download: "", text: label })]));
}

function fillLevels() {
  const g = arch.graph;
  const select = $("#graph-level");
  select.replaceChildren(...Array.from({ length: g.maxDepth }, (_, i) => el("option", { value: String(i + 1), text: t("graph.level_n", { n: i + 1 }) })),
    el("option", { value: String(g.maxDepth + 1), text: t("graph.level_all") }));
  select.value = String(g.level);
  $("#graph-names").replaceChildren(...g.names().map((n) => el("option", { value: n })));
}

function drawArch() {
  const report = arch.report;
  drawDownloads();
  drawSummary(report);
  drawTable(report);
  fillLevels();
}

async function analyze() {
  await busy($("#arch-go"), async () => {
    const params = { ...sourceParams($("#arch-source")), input: $("#arch-input").value.trim() };
    const report = await api(`/api/analyze?${query(params)}`);
    arch.report = report;
    arch.params = params;
    arch.graph.setReport(report);
    drawArch();
    const first = report.layers.find((l) => l.weighted) || report.layers[0];
    if (first) selectLayer(first.name, "graph");
    $("#arch-graph").dataset.ready = `${report.model}@${report.input_size.join("x")}`;
  }, clearArch);
}

function defaultInputFor(select, input) {
  const params = sourceParams(select);
  const model = state.models.find((m) => m.name === params.model);
  input.value = model ? model.default_input.join("x") : "";
}

function findInGraph() {
  const g = arch.graph;
  if (!arch.report) return;
  const text = $("#graph-search").value;
  const name = g.find(text);
  const status = $("#graph-status");
  if (!name) { status.textContent = t("graph.not_found", { text: text.trim() }); status.dataset.found = ""; return; }
  if (g.index.has(name)) selectLayer(name, "search");
  else { g.jump(name); selectBlock(g.blocks.get(name)); }
  status.dataset.found = name;
}

function graphStatus() {
  if (!arch.report) return;
  $("#graph-status").textContent = t("graph.count", { drawn: arch.graph.drawn.length, nodes: arch.report.layers.length });
}

views.arch = {
  enter() {
    arch.graph.shown();  // drawn while hidden (a run opened from the runs view): fit it now
    return refreshRunChoices();
  },
  init() {
    arch.graph = new GraphView($("#graph-box"), { onSelect: (name, from, block) => selectLayer(name, from, block) });
    $("#arch-form").addEventListener("submit", (e) => { e.preventDefault(); analyze(); });
    $("#arch-source").addEventListener("change", () => { defaultInputFor($("#arch-source"), $("#arch-input")); analyze(); });
    $("#graph-search-form").addEventListener("submit", (e) => { e.preventDefault(); findInGraph(); });
    $("#graph-level").addEventListener("change", () => arch.graph.collapseToLevel(Number($("#graph-level").value)));
    $("#graph-zoom-in").addEventListener("click", () => arch.graph.zoomBy(1.25));
    $("#graph-zoom-out").addEventListener("click", () => arch.graph.zoomBy(0.8));
    $("#graph-zoom-reset").addEventListener("click", () => arch.graph.zoomTo(1));
    $("#graph-fit").addEventListener("click", () => arch.graph.fit());
    $("#graph-box").addEventListener("zoomchange", (e) => { $("#graph-zoom").textContent = `${Math.round(e.detail.zoom * 100)}%`; });
    $("#graph-box").addEventListener("graphchange", graphStatus);
  },
  redraw() {
    if (!arch.report) return;
    const keep = arch.selected, view = { ...arch.graph.view };
    arch.graph.render();
    arch.graph.view = view;
    arch.graph.apply();
    drawArch();
    const block = arch.graph.blocks.get(keep);
    if (block) selectBlock(block); else if (keep) selectLayer(keep, "graph");
    graphStatus();
  },
};

// ---- layer calculator -------------------------------------------------------------------------

const STACK_EXAMPLES = {
  vgg: ["64x32x32", "conv 64 k3 p1 nobias\nconv 64 k3 p1 nobias", "conv 64 k5 p2 nobias"],
  inception: ["192x28x28", "conv 128 k3 p1", "conv 96 k1\nconv 128 k3 p1"],
  alexnet: ["3x227x227", "conv 96 k11 s4\nrelu\nlrn\npool k3 s2", "conv 96 k11 s4 p2\nrelu\npool k3 s2"],
  lenet: ["1x32x32", "conv 6 k5\nrelu\npool k2 avg\nconv 16 k5\nrelu\npool k2 avg\nflatten\nfc 120\nfc 84\nfc 10", ""],
  dilation: ["64x32x32", "conv 64 k3 p2 d2", "conv 64 k5 p2"],
};

const stacks = { results: null, request: 0 };  // only the latest calculation may write its tables

function stackTable(d, which) {
  const body = el("tbody", {}, ...d.layers.map((l, i) => {
    const rf = l.receptive_field ? `${l.receptive_field.size.join("×")} / ${l.receptive_field.stride.join("×")}` : "–";
    const tr = el("tr", { "data-index": String(i) },
      el("td", { text: l.spec }), el("td", { text: l.output_shape.join("×") }),
      el("td", { class: "num", text: fmtInt(l.params) }), el("td", { class: "num", text: fmtInt(l.macs) }),
      el("td", { class: "num", text: rf }));
    tr.addEventListener("click", () => {
      for (const row of document.querySelectorAll(".stacks tr.selected")) row.classList.remove("selected");
      tr.classList.add("selected");
      $("#stack-formula").textContent = [t("stack.formula_head", { which, n: i + 1, spec: l.spec }), ...l.explain, ...l.notes].join("\n");
    });
    return tr;
  }));
  const tot = d.totals;
  return el("div", { class: "table-box" }, el("table", { id: `stack-${which.toLowerCase()}-table` },
    el("thead", {}, el("tr", {}, ...["col.layer", "col.output", "col.params", "col.macs", "col.rf"].map((h, i) =>
      el("th", { class: i > 1 ? "num" : "", text: t(h) })))),
    body,
    el("tfoot", {}, el("tr", {}, el("td", { text: t("total") }), el("td", { text: d.output_shape.join("×") }),
      el("td", { class: "num", "data-key": "params", text: fmtInt(tot.params) }),
      el("td", { class: "num", "data-key": "macs", text: fmtInt(tot.macs) }),
      el("td", { class: "num", "data-key": "rf", text: tot.receptive_field ? tot.receptive_field.size.join("×") : "–" })))));
}

function drawStacks() {
  ["A", "B"].forEach((which, i) => {
    const r = stacks.results[i];
    $(`#stack-${which.toLowerCase()}-out`).replaceChildren(r ? stackTable(r, which) : el("p", { class: "hint", text: t("stack.empty") }));
  });
  $("#stack-formula").textContent = t("stack.click_row");
}

function clearStacks() {
  stacks.results = null;
  $("#stack-a-out").replaceChildren();
  $("#stack-b-out").replaceChildren();
  $("#stack-formula").textContent = "";
}

async function calculateStacks() {
  const mine = ++stacks.request;
  await busy($("#stack-go"), async () => {
    const input = $("#stack-input").value.trim();
    const results = [];
    for (const which of ["a", "b"]) {
      const text = $(`#stack-${which}`).value;
      results.push(text.trim() ? await api("/api/stack", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ input, layers: text }),
      }) : null);
    }
    if (mine !== stacks.request) return;
    stacks.results = results;
    drawStacks();
  }, () => { if (mine === stacks.request) clearStacks(); });
}

views.stack = {
  async init() {
    $("#stack-form").addEventListener("submit", (e) => { e.preventDefault(); calculateStacks(); });
    $("#stack-example").addEventListener("change", () => {
      const example = STACK_EXAMPLES[$("#stack-example").value];
      if (!example) return;
      [$("#stack-input").value, $("#stack-a").value, $("#stack-b").value] = example;
      calculateStacks();
    });
  },
  async enter() {
    if (!$("#stack-grammar").textContent) {
      try { $("#stack-grammar").textContent = (await api("/api")).stack_grammar; } catch (err) { showError(err); }
    }
    if (!stacks.results) calculateStacks();
  },
  redraw() { if (stacks.results) drawStacks(); },
};

// ---- convolution: in a network, and by hand -----------------------------------------------------

const conv = { data: null, step: 0, timer: null, mode: "net" };
let filters = null;

function convBody() {
  const num = (id) => $(id).value.trim();
  return {
    input: $("#conv-input").value, kernel: $("#conv-kernel").value,
    stride: num("#conv-stride"), padding: num("#conv-padding"), dilation: num("#conv-dilation"),
    bias: num("#conv-bias") === "" ? 0 : Number(num("#conv-bias")),
  };
}

function gridTable(table, matrix, cellClass) {
  table.replaceChildren(...matrix.map((row, r) => el("tr", {}, ...row.map((v, c) => {
    const td = el("td", { text: v === null ? "" : String(v) });
    const cls = cellClass ? cellClass(r, c) : "";
    if (cls) td.className = cls;
    return td;
  }))));
}

function drawConv() {
  const d = conv.data;
  if (!d) return;
  const total = d.placements.length;
  const now = conv.step > 0 ? d.placements[conv.step - 1] : null;
  const [pr, pc] = d.padding;
  const h = d.input.length, w = d.input[0].length;
  const rows = new Set(now ? now.rows : []), cols = new Set(now ? now.cols : []);
  gridTable($("#conv-padded"), d.padded_input, (r, c) => {
    const pad = r < pr || r >= pr + h || c < pc || c >= pc + w;
    if (rows.has(r) && cols.has(c)) return "win";
    return pad ? "pad" : "";
  });
  gridTable($("#conv-kernel-view"), d.kernel);
  const [oh, ow] = d.output_size;
  const shown = Array.from({ length: oh }, () => Array(ow).fill(null));
  for (const p of d.placements.slice(0, conv.step)) shown[p.output[0]][p.output[1]] = p.value;
  gridTable($("#conv-output"), shown, (r, c) => {
    if (now && now.output[0] === r && now.output[1] === c) return "current";
    return shown[r][c] === null ? "" : "filled";
  });
  $("#conv-counter").textContent = t("conv.counter", { step: conv.step, total });
  $("#conv-expression").textContent = now ? `${t("conv.output_at", { i: now.output[0], j: now.output[1] })} = ${now.expression}` : t("conv.explain");
  $("#conv-next").disabled = conv.step >= total;
  $("#conv-end").disabled = conv.step >= total;
  $("#conv-prev").disabled = conv.step <= 0;
  $("#conv-first").disabled = conv.step <= 0;
  $("#conv-output").dataset.complete = conv.step >= total ? "1" : "0";
  $("#conv-formulas").textContent = [
    t("conv.setup", { ih: d.input.length, iw: d.input[0].length, kh: d.kernel.length, kw: d.kernel[0].length,
      stride: d.stride.join("×"), padding: d.padding.join("×"), dilation: d.dilation.join("×") })
      + (d.bias ? t("conv.setup_bias", { bias: d.bias }) : ""),
    ...d.output_size_formulas,
  ].join("\n");
}

function clearConv() {
  conv.data = null;
  for (const id of ["#conv-padded", "#conv-kernel-view", "#conv-output"]) $(id).replaceChildren();
  $("#conv-formulas").textContent = "";
  $("#conv-expression").textContent = "";
  $("#conv-counter").textContent = "";
}

function stopPlay() {
  if (conv.timer) clearInterval(conv.timer);
  conv.timer = null;
  $("#conv-play").textContent = t("conv.play");
}

async function computeConv() {
  stopPlay();
  await busy($("#conv-compute"), async () => {
    const data = await api("/api/conv", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(convBody()),
    });
    conv.data = data;
    conv.step = 0;
    drawConv();
  }, clearConv);
}

function setStep(step) {
  if (!conv.data) return;
  conv.step = Math.max(0, Math.min(conv.data.placements.length, step));
  drawConv();
}

function setConvMode(mode) {
  conv.mode = mode;
  for (const b of document.querySelectorAll("#view-conv .mode")) b.classList.toggle("active", b.dataset.mode === mode);
  $("#conv-net").hidden = mode !== "net";
  $("#conv-hand").hidden = mode !== "hand";
  if (mode === "net") filters.enter(); else stopPlay();
  if (mode === "hand" && !conv.data) computeConv();
}

views.conv = {
  init() {
    filters = new FiltersView({ sourceParams, refreshRunChoices });
    for (const b of document.querySelectorAll("#view-conv .mode")) b.addEventListener("click", () => setConvMode(b.dataset.mode));
    $("#conv-form").addEventListener("submit", (e) => { e.preventDefault(); computeConv(); });
    for (const id of ["#conv-stride", "#conv-padding", "#conv-dilation", "#conv-bias"]) {
      $(id).addEventListener("change", computeConv);
    }
    $("#conv-first").addEventListener("click", () => { stopPlay(); setStep(0); });
    $("#conv-prev").addEventListener("click", () => { stopPlay(); setStep(conv.step - 1); });
    $("#conv-next").addEventListener("click", () => { stopPlay(); setStep(conv.step + 1); });
    $("#conv-end").addEventListener("click", () => { stopPlay(); setStep(Infinity); });
    $("#conv-play").addEventListener("click", () => {
      if (conv.timer) { stopPlay(); return; }
      if (!conv.data) return;
      if (conv.step >= conv.data.placements.length) setStep(0);
      $("#conv-play").textContent = t("conv.pause");
      conv.timer = setInterval(() => {
        if (conv.step >= conv.data.placements.length) { stopPlay(); return; }
        setStep(conv.step + 1);
      }, 700);
    });
    // Arrow keys step too, unless the cursor is in a field.
    document.addEventListener("keydown", (e) => {
      if (!$("#view-conv").classList.contains("active") || conv.mode !== "hand" || e.target.closest("input, textarea, select")) return;
      if (e.key === "ArrowRight") { stopPlay(); setStep(conv.step + 1); e.preventDefault(); }
      if (e.key === "ArrowLeft") { stopPlay(); setStep(conv.step - 1); e.preventDefault(); }
    });
  },
  async enter() {
    await refreshRunChoices();
    setConvMode(conv.mode);
  },
  leave: stopPlay,
  redraw() { drawConv(); if (!conv.timer) stopPlay(); filters.redraw(); },
};

// ---- receptive field --------------------------------------------------------------------------

const rf = { data: null, params: null };

// The field's box in input pixels over a picture of the input, and a dot at the field's centre.
function drawBox(svg, size, box) {
  const [h, w] = size;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.replaceChildren(svgEl("rect", { class: "field", x: box.left, y: box.top, width: box.width, height: box.height }));
  svg.append(svgEl("circle", { cx: box.left + box.width / 2, cy: box.top + box.height / 2, r: Math.max(0.6, Math.min(h, w) / 90) }));
}

function drawRf() {
  const d = rf.data;
  const select = $("#rf-layer");
  select.replaceChildren(el("option", { value: "", text: t("rf.deepest") }),
    ...d.layers.map((l) => el("option", { value: l.name, text: t("rf.option", { name: l.name, op: l.op, field: l.rf_size.join("×") }) })));
  if (rf.params.layer) select.value = d.layer.name;
  $("#rf-image").src = d.image;
  $("#rf-erf").src = d.erf;
  const size = d.input_size.slice(1);
  drawBox($("#rf-image-svg"), size, d.box);
  drawBox($("#rf-erf-svg"), size, d.box);
  const L = d.layer;
  const beyond = L.rf_size[0] > size[0] || L.rf_size[1] > size[1];
  const rows = [
    [t("rf.model"), `${d.model}, ${weightsText("run" in rf.params)}`],
    [t("sum.input"), d.input_size.join("×")],
    [t("rf.layer"), t("rf.layer_text", { name: L.name, op: L.op, output: L.output_shape.slice(1).join("×") })],
    [t("rf.unit"), t("rf.unit_text", { unit: d.unit.join(", "), map: d.output_spatial.join("×") })],
    [t("rf.field"), `${L.rf_size.join("×")} ${t("unit.pixels")}${beyond ? ` ${t("rf.beyond")}` : ""}`],
    [t("d.jump"), t("rf.jump_text", { jump: L.rf_stride.join("×") })],
    [t("rf.covers"), t("rf.covers_text", { r0: d.box.top, r1: d.box.top + d.box.height - 1, c0: d.box.left, c1: d.box.left + d.box.width - 1 })],
    [t("rf.inside"), fmtPct(d.erf_mass_inside_box)],
    [t("rf.samples"), String(d.samples)],
  ];
  const children = [el("h3", { text: t("tab.rf") }), detailList(rows), el("p", { class: "hint", text: t("rf.note") })];
  if (L.explain && L.explain.length) children.push(el("pre", { text: L.explain.join("\n"), translate: "no" }));
  $("#rf-detail").replaceChildren(...children);
  $("#rf-detail").dataset.ready = L.name;
}

function clearRf() {
  rf.data = null;
  for (const id of ["#rf-image", "#rf-erf"]) $(id).removeAttribute("src");
  $("#rf-image-svg").replaceChildren();
  $("#rf-erf-svg").replaceChildren();
  $("#rf-detail").replaceChildren();
  delete $("#rf-detail").dataset.ready;
}

async function measureRf() {
  await busy($("#rf-go"), async () => {
    const params = {
      ...sourceParams($("#rf-source")), input: $("#rf-input").value.trim(), layer: $("#rf-layer").value,
      samples: $("#rf-samples").value,
    };
    rf.data = await api(`/api/rf?${query(params)}`);
    rf.params = params;
    drawRf();
  }, clearRf);
}

views.rf = {
  enter: refreshRunChoices,
  init() {
    $("#rf-form").addEventListener("submit", (e) => { e.preventDefault(); measureRf(); });
    $("#rf-source").addEventListener("change", () => {
      $("#rf-layer").replaceChildren(el("option", { value: "", text: t("rf.deepest") }));
      $("#rf-input").value = "";
    });
    $("#rf-layer").addEventListener("change", measureRf);
  },
  redraw() {
    if (rf.data) drawRf();
    else if ($("#rf-layer").options.length === 1) $("#rf-layer").options[0].textContent = t("rf.deepest");
  },
};

// ---- inside a trained network -----------------------------------------------------------------

const inside = { data: null, trained: false };

function drawInside() {
  const d = inside.data;
  $("#inside-layer-names").replaceChildren(...d.conv_layers.map((name) => el("option", { value: name })));
  $("#inside-input").src = d.image;
  $("#inside-gradcam").src = d.gradcam.image;
  $("#inside-gradcam-caption").textContent = t("inside.gradcam_for", { name: d.gradcam.class });
  $("#inside-weights").textContent = `${d.model}: ${weightsText(inside.trained)}; ${t("sum.input")} ${d.input_size.join("×")}`;
  $("#inside-predictions").replaceChildren(...d.predictions.map((p) => {
    const bar = el("span", { class: "bar" });
    bar.style.width = `${Math.max(1, 100 * p.probability)}%`;
    return el("li", { "data-class": p.class }, el("span", { text: `${p.class} — ${fmtPct(p.probability)}` }), bar);
  }));
  $("#inside-features").replaceChildren(...d.features.map((f) => el("div", { class: "fmap-row", "data-layer": f.layer },
    el("div", { class: "label", text: `${f.layer} · ${f.shape.join("×")}` }),
    ...f.images.map((src, i) => el("img", { src, class: "fmap", alt: t("inside.channel_of", { layer: f.layer, i }), title: t("inside.channel", { i }) })))));
}

function clearInside() {
  inside.data = null;
  for (const id of ["#inside-input", "#inside-gradcam"]) $(id).removeAttribute("src");
  $("#inside-gradcam-caption").textContent = "Grad-CAM";
  $("#inside-weights").textContent = "";
  $("#inside-predictions").replaceChildren();
  $("#inside-features").replaceChildren();
}

async function lookInside() {
  await busy($("#inside-go"), async () => {
    const form = new FormData();
    for (const [k, v] of Object.entries(sourceParams($("#inside-source")))) form.set(k, v);
    form.set("top", $("#inside-top").value);
    if ($("#inside-layers").value.trim()) form.set("layers", $("#inside-layers").value.trim());
    const file = $("#inside-file").files[0];
    if (file) form.set("image", file);
    inside.data = await api("/api/inside", { method: "POST", body: form });
    inside.trained = form.has("run");  // a run's checkpoint holds trained weights, a zoo model random ones
    drawInside();
  }, clearInside);
}

views.inside = {
  enter: refreshRunChoices,
  init() {
    $("#inside-form").addEventListener("submit", (e) => { e.preventDefault(); lookInside(); });
    $("#inside-source").addEventListener("change", () => { $("#inside-layers").value = ""; });
  },
  redraw() { if (inside.data) drawInside(); },
};

// ---- runs ---------------------------------------------------------------------------------------

const runs = { selected: null, timer: null, checked: new Set(), comparing: false, list: null, detail: null, details: null,
  failed: false };

function runRow(r) {
  const check = el("input", { type: "checkbox", class: "run-check", "aria-label": t("runs.check", { name: r.name }) });
  check.checked = runs.checked.has(r.name);
  check.addEventListener("click", (e) => {
    e.stopPropagation();
    if (check.checked) runs.checked.add(r.name); else runs.checked.delete(r.name);
  });
  const tr = el("tr", { "data-name": r.name },
    el("td", {}, check), el("td", { text: r.name }), el("td", { text: r.model || "–" }), el("td", { text: r.dataset || "–" }),
    el("td", {}, el("span", { class: `status ${r.status}`, "data-status": r.status, text: t(`status.${r.status}`) })),
    el("td", { class: "num", text: `${r.epochs_done}/${r.epochs ?? "?"}` }),
    el("td", { class: "num", text: fmtPct(r.best_val_top1) }), el("td", { class: "num", text: fmtPct(r.test_top1) }));
  if (r.name === runs.selected) tr.classList.add("selected");
  tr.addEventListener("click", () => { runs.selected = r.name; refreshRuns(); });
  return tr;
}

// An experiment's runs come together under one heading row (`cnnlab experiment` writes them).
function runRows(list) {
  const rows = [];
  let group = null;
  for (const r of list) {
    if (r.experiment && r.experiment !== group) {
      const count = list.filter((x) => x.experiment === r.experiment).length;
      rows.push(el("tr", { class: "run-group", "data-experiment": r.experiment },
        el("td", { colspan: 8, text: t("runs.experiment", { name: r.experiment, n: count }) })));
    }
    group = r.experiment || null;
    rows.push(runRow(r));
  }
  return rows;
}

function curveCharts(metrics) {
  const ep = (key) => metrics.filter((m) => m[key] !== undefined).map((m) => [m.epoch, m[key]]);
  return el("div", { class: "charts", id: "run-curves" },
    lineChart({ title: t("chart.loss"), xlabel: t("chart.epoch"), ylabel: t("chart.loss_axis"), series: [
      { name: t("chart.train"), points: ep("train_loss") }, { name: t("chart.validation"), points: ep("val_loss"), dash: true }] }),
    lineChart({ title: t("chart.top1"), xlabel: t("chart.epoch"), ylabel: t("chart.accuracy"), percent: true, series: [
      { name: t("chart.train"), points: ep("train_top1") }, { name: t("chart.validation"), points: ep("val_top1"), dash: true }] }));
}

function drawRunList() {
  const list = runs.list;
  $("#runs-dir").textContent = list.runs_dir;
  $("#runs-table tbody").replaceChildren(...runRows(list.runs));
  if (!list.runs.length) {
    $("#runs-table tbody").replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "hint", text: t("runs.none") })));
  }
}

function drawRunDetail() {
  const run = runs.detail;
  const head = el("h3", { text: t("runs.head", { name: run.name, model: run.model, dataset: run.dataset, status: t(`status.${run.status}`),
    done: run.epochs_done, epochs: run.epochs }) });
  const cfg = el("details", {}, el("summary", { text: t("runs.config") }), el("pre", { text: JSON.stringify(run.config, null, 2), translate: "no" }));
  const open = (view, select, label) => {
    const button = el("button", { type: "button", class: "run-open", "data-view": view, text: label });
    button.addEventListener("click", () => {
      if (view === "conv") conv.mode = "net";  // the network's own convolutions, not the stepper
      fillSources();
      $(select).value = `run:${run.name}`;
      $(select).dispatchEvent(new Event("change"));  // as if chosen by hand: default input, then analyze
      location.hash = view;
    });
    return button;
  };
  const actions = run.has_checkpoint ? el("div", { class: "buttons" },
    open("arch", "#arch-source", t("runs.open_arch")), open("inside", "#inside-source", t("runs.open_inside")),
    open("conv", "#filters-source", t("runs.open_filters")))
    : el("span");
  const blocks = [head, actions, curveCharts(run.metrics), cfg];
  if (run.result && run.result.test) {
    blocks.splice(2, 0, el("p", { text: t("runs.test", { top1: fmtPct(run.result.test.top1), top5: fmtPct(run.result.test.top5) }) }));
  }
  $("#run-detail").replaceChildren(...blocks);
  $("#run-detail").dataset.epochs = String(run.metrics.length);
}

async function refreshRuns() {
  try {
    runs.list = await api("/api/runs");
    state.runs = runs.list.runs;
    drawRunList();
    if (runs.selected && runs.list.runs.some((r) => r.name === runs.selected)) {
      runs.detail = await api(`/api/runs/${encodeURIComponent(runs.selected)}`);
      drawRunDetail();
    }
    if (runs.comparing) await compareRuns();
    if (runs.failed) { runs.failed = false; clearMessage(); }  // the refresh works again
  } catch (err) {
    runs.failed = true;
    showError(err);
  }
}

function drawRunsCompare() {
  const details = runs.details;
  if (!details) { $("#runs-compare").replaceChildren(el("p", { class: "hint", text: t("runs.check_first") })); return; }
  const series = (key) => details.map((d) => ({ name: d.name, points: d.metrics.filter((m) => m[key] !== undefined).map((m) => [m.epoch, m[key]]) }));
  // The model, data and length, then every other setting on which the runs differ.
  const fixed = ["model", "dataset", "epochs"];
  const differ = Object.keys(details[0].config).filter((k) => !fixed.includes(k) && k !== "name"
    && details.some((d) => JSON.stringify(d.config[k]) !== JSON.stringify(details[0].config[k])));
  const keys = [...fixed, ...differ];
  const head = el("tr", {}, el("th", { text: "" }), ...details.map((d) => el("th", { text: d.name })));
  const show = (v) => (v === undefined || v === null ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const label = { model: t("col.model"), dataset: t("col.data"), epochs: t("col.epochs") };
  const rows = keys.map((k) => el("tr", {}, el("td", label[k] ? { text: label[k] } : { text: k, translate: "no" }),
    ...details.map((d) => el("td", { text: show(d.config[k]), translate: "no" }))));
  rows.push(el("tr", {}, el("td", { text: t("runs.best_val") }), ...details.map((d) => el("td", { text: fmtPct(d.best_val_top1) }))));
  rows.push(el("tr", {}, el("td", { text: t("runs.test_top1") }), ...details.map((d) => el("td", { text: fmtPct(d.test_top1) }))));
  $("#runs-compare").replaceChildren(el("h3", { text: t("runs.side_by_side") }),
    el("div", { class: "charts" },
      lineChart({ title: t("chart.val_loss"), xlabel: t("chart.epoch"), ylabel: t("chart.loss_axis"), series: series("val_loss") }),
      lineChart({ title: t("chart.val_top1"), xlabel: t("chart.epoch"), ylabel: t("chart.accuracy"), percent: true, series: series("val_top1") })),
    el("div", { class: "table-box" }, el("table", { id: "runs-compare-table" }, el("thead", {}, head), el("tbody", {}, ...rows))));
}

async function compareRuns() {
  const names = [...runs.checked].filter((n) => state.runs.some((r) => r.name === n));
  runs.details = names.length ? await Promise.all(names.map((n) => api(`/api/runs/${encodeURIComponent(n)}`))) : null;
  drawRunsCompare();
}

views.runs = {
  init() {
    $("#runs-compare-go").addEventListener("click", async () => {
      runs.comparing = true;
      await busy($("#runs-compare-go"), compareRuns, () => { runs.details = null; $("#runs-compare").replaceChildren(); });
    });
  },
  enter() {
    refreshRuns();
    if (!runs.timer) runs.timer = setInterval(refreshRuns, 2000);
  },
  leave() {
    if (runs.timer) clearInterval(runs.timer);
    runs.timer = null;
  },
  redraw() {
    if (runs.list) drawRunList();
    if (runs.detail && runs.selected) drawRunDetail();
    if (runs.comparing) drawRunsCompare();
  },
};

// ---- compare models -------------------------------------------------------------------------------

const compare = { data: null };

function drawCompare() {
  const d = compare.data;
  const cols = [["model", "col.model", (r) => r.model], ["params", "col.params", (r) => fmtInt(r.params)],
    ["macs", "col.macs", (r) => known(r.macs, fmtInt)], ["flops", "col.flops", (r) => known(r.flops, fmtBig)],
    ["weighted_depth", "col.weighted", (r) => known(r.weighted_depth, String)],
    ["receptive_field", "col.rf_size", (r) => (r.receptive_field ? r.receptive_field.join("×") : "–")],
    ["activation_bytes", "col.activations", (r) => fmtBytes(r.activation_bytes)]];
  $("#compare-table thead").replaceChildren(el("tr", {}, ...cols.map(([, h], i) => el("th", { class: i ? "num" : "", text: t(h) }))));
  $("#compare-table tbody").replaceChildren(...d.rows.map((r) => el("tr", { "data-name": r.model },
    ...cols.map(([key, , f], i) => el("td", { class: i ? "num" : "", "data-key": key, text: f(r) })))));
  const plot = lineChart({
    title: t("compare.plot_title", { input: d.input_size ? d.input_size.join("×") : t("compare.own_input") }),
    xlabel: "MACs", ylabel: t("compare.params_axis"), log: true, width: 720, height: 380,
    series: [{ scatter: true, points: d.rows.filter((r) => r.macs !== null).map((r) => [Math.max(r.macs, 1), Math.max(r.params, 1), r.model]) }],
  });
  plot.id = "compare-plot";
  $("#compare-plot").replaceWith(plot);
}

function clearCompare() {
  compare.data = null;
  $("#compare-table thead").replaceChildren();
  $("#compare-table tbody").replaceChildren();
  $("#compare-plot").replaceChildren();
}

async function compareModels() {
  await busy($("#compare-go"), async () => {
    compare.data = await api(`/api/compare?${query({ models: $("#compare-models").value, input: $("#compare-input").value.trim() })}`);
    drawCompare();
  }, clearCompare);
}

views.compare = {
  init() { $("#compare-form").addEventListener("submit", (e) => { e.preventDefault(); compareModels(); }); },
  enter() { if (!compare.data) compareModels(); },
  redraw() { if (compare.data) drawCompare(); },
};

// ---- language -----------------------------------------------------------------------------------

function markLanguage() {
  for (const b of document.querySelectorAll("#lang button")) {
    b.classList.toggle("active", b.dataset.lang === language());
    b.setAttribute("aria-pressed", String(b.dataset.lang === language()));
  }
}

onLanguageChange(() => {
  markLanguage();
  fillSources();
  for (const v of Object.values(views)) if (v.redraw) v.redraw();
});

// ---- start --------------------------------------------------------------------------------------

async function start() {
  startLanguage();
  markLanguage();
  for (const b of document.querySelectorAll("#lang button")) b.addEventListener("click", () => setLanguage(b.dataset.lang, true));
  // A tab sets the address (#runs, ...), so links open a view and Back returns to the last one.
  for (const b of document.querySelectorAll("#tabs button")) {
    b.addEventListener("click", () => {
      if (location.hash === `#${b.dataset.view}`) showView(b.dataset.view);
      else location.hash = b.dataset.view;
    });
  }
  window.addEventListener("hashchange", () => showView(location.hash.slice(1)));
  for (const v of Object.values(views)) if (v.init) v.init();
  try {
    await loadChoices();
  } catch (err) {
    showError(err);
    return;
  }
  const resnet = state.models.find((m) => m.name === "resnet18");
  if (resnet) $("#arch-source").value = "model:resnet18";
  defaultInputFor($("#arch-source"), $("#arch-input"));
  $("#rf-source").value = "model:resnet18";
  await analyze();
  const first = location.hash.slice(1);
  if (first && first !== "arch") showView(first);  // a link such as /#runs opens that view
  document.body.dataset.ready = "1";
}

start();
