// cnnlab explorer: one page over the JSON API. No framework and no build step: plain modules,
// SVG drawn by hand. Every number shown comes from the server; this file only lays it out.

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
// A total the analyzer could not give (null) is shown as unknown, never as a number.
const known = (n, fmt) => (n === null || n === undefined ? "unknown" : fmt(n));
function fmtBig(n) {
  if (n === null || n === undefined) return "–";
  for (const [unit, scale] of [["G", 1e9], ["M", 1e6], ["K", 1e3]]) {
    if (Math.abs(n) >= scale) return `${+(n / scale).toPrecision(3)} ${unit}`;
  }
  return String(n);
}
function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  for (const [unit, scale] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]]) {
    if (n >= scale) return `${(n / scale).toFixed(1)} ${unit}`;
  }
  return `${n} B`;
}
const fmtPct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(2)}%`);
const shape = (s) => (s ? s.slice(1).join("×") : "–");

// ---- messages and requests ------------------------------------------------------------------

function showError(err) {
  const box = $("#message");
  box.textContent = err.message || String(err);
  box.hidden = false;
}
function clearMessage() { $("#message").hidden = true; }

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new Error("cannot reach the cnnlab server: is `cnnlab serve` still running?");
  }
  let data = null;
  try { data = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) throw new Error(data && data.error ? data.error : `the server answered ${response.status}`);
  return data;
}

async function busy(button, work) {
  if (button) button.disabled = true;
  try {
    clearMessage();
    return await work();
  } catch (err) {
    showError(err);
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

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
    const zoo = el("optgroup", { label: "Zoo models (random weights)" });
    for (const m of state.models) zoo.append(el("option", { value: `model:${m.name}`, text: `${m.name}  (${m.family})` }));
    const runs = el("optgroup", { label: "Runs (trained checkpoints)" });
    for (const r of state.runs.filter((r) => r.has_checkpoint)) {
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

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}

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

const arch = { report: null, selected: null };

const OP_COLORS = [
  [/conv/i, "#dbe7ff"], [/pool/i, "#dcfae6"], [/norm|lrn/i, "#f2f4f7"], [/relu|sigmoid|tanh|softmax|gelu/i, "#fef7c3"],
  [/linear/i, "#ffe6d5"], [/add|cat|mul/i, "#ebe9fe"], [/input|output/i, "#d0d5dd"],
];
const opColor = (op) => (OP_COLORS.find(([re]) => re.test(op)) || [null, "#ffffff"])[1];

// Layout: a node's row is its depth (the longest path from the input) and its column a lane.
// A chain stays in its lane, a fork gives its consumers neighbouring lanes (the four branches
// of an Inception block, a projection shortcut beside its block), and a merge (an add or a
// concatenation) returns to the leftmost lane of its inputs. No two nodes share a cell.
function layout(layers) {
  const consumers = {};
  for (const l of layers) for (const i of l.inputs) (consumers[i] = consumers[i] || []).push(l.name);
  const rank = {}, lane = {}, taken = new Set();
  for (const l of layers) {
    const known = l.inputs.filter((i) => i in lane);
    const r = known.length ? Math.max(...known.map((i) => rank[i])) + 1 : 0;
    let c = 0;
    if (known.length > 1) c = Math.min(...known.map((i) => lane[i]));
    else if (known.length === 1) c = lane[known[0]] + consumers[known[0]].indexOf(l.name);
    while (taken.has(`${r},${c}`)) c += 1;
    taken.add(`${r},${c}`);
    rank[l.name] = r;
    lane[l.name] = c;
  }
  const free = (c, r0, r1) => { for (let r = r0 + 1; r < r1; r += 1) if (taken.has(`${r},${c}`)) return false; return true; };
  return { rank, lane, free };
}

function drawGraph(layers) {
  const svg = $("#arch-graph");
  svg.replaceChildren();
  const { rank, lane, free } = layout(layers);
  const W = 210, H = 38, GX = 22, GY = 20, PAD = 16, BEND = 140;
  const lanes = Math.max(...Object.values(lane)) + 1, rows = Math.max(...Object.values(rank)) + 1;
  const width = PAD * 2 + lanes * W + (lanes - 1) * GX + BEND;
  const height = PAD * 2 + rows * (H + GY);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const pos = {};
  for (const l of layers) pos[l.name] = { x: PAD + lane[l.name] * (W + GX), y: PAD + rank[l.name] * (H + GY) };
  const edges = svgEl("g");
  const nodes = svgEl("g");
  for (const layer of layers) {
    const to = pos[layer.name];
    for (const input of layer.inputs) {
      const from = pos[input];
      if (!from) continue;
      const x1 = from.x + W / 2, y1 = from.y + H, x2 = to.x + W / 2, y2 = to.y;
      let d;
      if (free(lane[input], rank[input], rank[layer.name])) {
        // Straight down the source's lane through empty cells, then into the target.
        const yTurn = Math.max(y1, y2 - GY);
        d = `M${x1},${y1} L${x1},${yTurn} C${x1},${yTurn + GY / 2} ${x2},${y2 - GY / 2} ${x2},${y2}`;
      } else {
        // Around the right of the nodes in between (an identity shortcut, a dense connection).
        const bend = Math.min(BEND - 10, 40 + 8 * (rank[layer.name] - rank[input]));
        const xs = from.x + W - 10, xt = to.x + W - 10;
        d = `M${xs},${y1 - H / 2} C${xs + bend},${y1} ${xt + bend},${y2} ${xt},${y2 + H / 2}`;
      }
      edges.append(svgEl("path", { d, class: "edge" }));
    }
    const g = svgEl("g", { class: "node", "data-name": layer.name, transform: `translate(${to.x},${to.y})` });
    g.append(svgEl("rect", { width: W, height: H, fill: opColor(layer.op) }));
    const name = layer.name.length > 30 ? `…${layer.name.slice(-29)}` : layer.name;
    g.append(svgEl("text", { x: 8, y: 15, "font-size": 11, "font-weight": 600 }, name));
    const extra = layer.params ? ` · ${fmtBig(layer.params)} p` : "";
    g.append(svgEl("text", { x: 8, y: 30, "font-size": 10, fill: "#475467" }, `${layer.op} → ${shape(layer.output_shape)}${extra}`));
    g.append(svgEl("title", {}, `${layer.name} (${layer.op})\noutput ${shape(layer.output_shape)}\nparams ${fmtInt(layer.params)}, MACs ${fmtInt(layer.macs)}`));
    g.addEventListener("click", () => selectLayer(layer.name, "graph"));
    nodes.append(g);
  }
  svg.append(edges, nodes);
}

// Bring ``target`` into view inside its scrolling ``box`` only: the page itself does not move.
function scrollWithin(box, target) {
  if (!box) return;
  const b = box.getBoundingClientRect(), t = target.getBoundingClientRect();
  if (t.top < b.top + 30 || t.bottom > b.bottom) box.scrollTop += t.top - b.top - b.height / 3;
  if (t.left < b.left || t.right > b.right) box.scrollLeft += t.left - b.left - 20;
}

function rfText(layer) {
  if (!layer.rf_size) return "–";
  return `${layer.rf_size.join("×")} / ${layer.rf_stride.join("×")}`;
}

function drawTable(report) {
  const body = $("#arch-table tbody");
  body.replaceChildren();
  report.layers.forEach((layer, i) => {
    const tr = el("tr", { "data-name": layer.name },
      el("td", { class: "num", text: String(i) }), el("td", { text: layer.name }), el("td", { text: layer.op }),
      el("td", { text: shape(layer.output_shape) }), el("td", { class: "num", text: fmtInt(layer.params) }),
      el("td", { class: "num", text: fmtInt(layer.macs) }), el("td", { class: "num", text: rfText(layer) }));
    tr.addEventListener("click", () => selectLayer(layer.name, "table"));
    body.append(tr);
  });
  const t = report.totals;
  $("#arch-table tfoot").replaceChildren(el("tr", {},
    el("td", {}), el("td", { text: "Total" }), el("td", {}), el("td", {}),
    el("td", { class: "num", id: "arch-total-params", "data-value": String(t.params), text: fmtInt(t.params) }),
    el("td", { class: "num", id: "arch-total-macs", "data-value": String(t.macs), text: fmtInt(t.macs) }),
    el("td", { class: "num", text: t.receptive_field ? t.receptive_field.size.join("×") : "–" })));
}

function drawSummary(report) {
  const t = report.totals;
  const stat = (label, value, cls = "stat") => el("div", { class: cls }, el("b", { text: value }), el("span", { text: label }));
  const items = [
    stat("model", report.model), stat("input", report.input_size.join("×")),
    stat("parameters", fmtInt(t.params)), stat("MACs", known(t.macs, fmtBig)), stat("FLOPs", known(t.flops, fmtBig)),
    stat("weighted layers", String(t.weighted_depth)),
    stat("receptive field", t.receptive_field ? t.receptive_field.size.join("×")
      : report.unknown && report.unknown.receptive_field ? "unknown" : "–"),
    stat("activations (batch 1)", fmtBytes(t.activation_bytes)),
    stat("training memory, SGD", fmtBytes(t.training_memory.total)),
  ];
  const out = t.params_outside_graph;  // e.g. GoogLeNet's auxiliary heads: held, trained, never run in eval
  if (out) items.push(stat(`parameters outside the inference graph (${out.modules.join(", ")}, training only)`, fmtInt(out.params), "stat warn"));
  for (const [total, why] of Object.entries(report.unknown || {})) {
    items.push(stat(`${total.replace("_", " ")} unknown`, why, "stat warn"));
  }
  if (report.misaligned.length) items.push(stat("misaligned branches", report.misaligned.join(", "), "stat warn"));
  $("#arch-summary").replaceChildren(...items);
}

function selectLayer(name, from) {
  const report = arch.report;
  if (!report) return;
  const layer = report.layers.find((l) => l.name === name);
  if (!layer) return;
  arch.selected = name;
  for (const n of document.querySelectorAll("#arch-graph .node")) n.classList.toggle("selected", n.dataset.name === name);
  for (const tr of document.querySelectorAll("#arch-table tbody tr")) tr.classList.toggle("selected", tr.dataset.name === name);
  const target = from === "graph" ? document.querySelector(`#arch-table tr[data-name="${CSS.escape(name)}"]`)
    : document.querySelector(`#arch-graph .node[data-name="${CSS.escape(name)}"]`);
  if (target) scrollWithin(target.closest(".table-box, .graph-box"), target);
  const dl = el("dl");
  const row = (k, v) => dl.append(el("dt", { text: k }), el("dd", { text: v }));
  row("op", layer.op);
  row("module", layer.scope || "–");
  row("inputs", layer.inputs.join(", ") || "–");
  row("input shapes", layer.input_shapes.map((s) => s.join("×")).join(", ") || "–");
  row("output shape", layer.output_shape ? layer.output_shape.join("×") : "–");
  row("parameters", fmtInt(layer.params) + (layer.shared ? " (shared, counted once)" : ""));
  row("MACs", fmtInt(layer.macs));
  row("FLOPs", fmtInt(layer.flops));
  row("activation", fmtBytes(layer.activation_bytes));
  if (layer.rf_size) {
    row("receptive field", `${layer.rf_size.join("×")} pixels${layer.rf_covers_input ? " (covers the input)" : ""}`);
    row("jump (stride to input)", layer.rf_stride.join("×"));
    row("effective padding", layer.rf_padding.join("×"));
  }
  if (layer.misaligned) row("misaligned", layer.misaligned);
  if (!layer.supported) row("note", "no counting rule for this op: totals are incomplete");
  const children = [el("h3", { text: layer.name }), dl];
  if (layer.explain && layer.explain.length) {
    children.push(el("h3", { text: "Formulas, with the numbers" }), el("pre", { id: "arch-formula", text: layer.explain.join("\n") }));
  }
  $("#arch-detail").replaceChildren(...children);
}

async function analyze() {
  await busy($("#arch-go"), async () => {
    const params = { ...sourceParams($("#arch-source")), input: $("#arch-input").value.trim() };
    const report = await api(`/api/analyze?${query(params)}`);
    arch.report = report;
    $("#arch-downloads").replaceChildren("Download the table: ",
      ...[["csv", "CSV"], ["md", "Markdown"], ["json", "JSON"]].flatMap(([format, label], i) => [
        i ? " · " : "", el("a", { href: `/api/analyze?${query({ ...params, format })}`, download: "", text: label })]));
    drawSummary(report);
    drawGraph(report.layers);
    drawTable(report);
    const first = report.layers.find((l) => l.weighted) || report.layers[0];
    if (first) selectLayer(first.name, "graph");
    $("#arch-graph").dataset.ready = `${report.model}@${report.input_size.join("x")}`;
  });
}

function defaultInputFor(select, input) {
  const params = sourceParams(select);
  const model = state.models.find((m) => m.name === params.model);
  input.value = model ? model.default_input.join("x") : "";
}

views.arch = {
  enter: refreshRunChoices,
  init() {
    $("#arch-form").addEventListener("submit", (e) => { e.preventDefault(); analyze(); });
    $("#arch-source").addEventListener("change", () => { defaultInputFor($("#arch-source"), $("#arch-input")); analyze(); });
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
      $("#stack-formula").textContent = [`Stack ${which}, layer ${i + 1}: ${l.spec}`, ...l.explain, ...l.notes].join("\n");
    });
    return tr;
  }));
  const t = d.totals;
  return el("div", { class: "table-box" }, el("table", { id: `stack-${which.toLowerCase()}-table` },
    el("thead", {}, el("tr", {}, ...["Layer", "Output", "Params", "MACs", "RF (size / jump)"].map((h, i) =>
      el("th", { class: i > 1 ? "num" : "", text: h })))),
    body,
    el("tfoot", {}, el("tr", {}, el("td", { text: "Total" }), el("td", { text: d.output_shape.join("×") }),
      el("td", { class: "num", "data-key": "params", text: fmtInt(t.params) }),
      el("td", { class: "num", "data-key": "macs", text: fmtInt(t.macs) }),
      el("td", { class: "num", "data-key": "rf", text: t.receptive_field ? t.receptive_field.size.join("×") : "–" })))));
}

let stackRequest = 0;  // only the latest calculation may write its tables

async function calculateStacks() {
  const mine = ++stackRequest;
  await busy($("#stack-go"), async () => {
    const input = $("#stack-input").value.trim();
    const results = [];
    for (const which of ["A", "B"]) {
      const text = $(`#stack-${which.toLowerCase()}`).value;
      results.push(text.trim() ? await api("/api/stack", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ input, layers: text }),
      }) : null);
    }
    if (mine !== stackRequest) return;
    ["A", "B"].forEach((which, i) => {
      $(`#stack-${which.toLowerCase()}-out`).replaceChildren(
        results[i] ? stackTable(results[i], which) : el("p", { class: "hint", text: "(empty)" }));
    });
    $("#stack-formula").textContent = "Click a row to see its formulas with the numbers in them.";
  });
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
    if (!$("#stack-a-out").children.length) calculateStacks();
  },
};

// ---- convolution stepper ----------------------------------------------------------------------

const conv = { data: null, step: 0, timer: null };

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
  const current = conv.step > 0 ? d.placements[conv.step - 1] : null;
  const [pr, pc] = d.padding;
  const h = d.input.length, w = d.input[0].length;
  const rows = new Set(current ? current.rows : []), cols = new Set(current ? current.cols : []);
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
    if (current && current.output[0] === r && current.output[1] === c) return "current";
    return shown[r][c] === null ? "" : "filled";
  });
  $("#conv-counter").textContent = `placement ${conv.step} of ${total}`;
  $("#conv-expression").textContent = current
    ? `output[${current.output[0]}][${current.output[1]}] = ${current.expression}`
    : "Step through the placements: each output value is the inner product of the kernel with the window under it.";
  $("#conv-next").disabled = conv.step >= total;
  $("#conv-end").disabled = conv.step >= total;
  $("#conv-prev").disabled = conv.step <= 0;
  $("#conv-first").disabled = conv.step <= 0;
  $("#conv-output").dataset.complete = conv.step >= total ? "1" : "0";
}

function stopPlay() {
  if (conv.timer) clearInterval(conv.timer);
  conv.timer = null;
  $("#conv-play").textContent = "Play";
}

async function computeConv() {
  stopPlay();
  await busy($("#conv-compute"), async () => {
    const data = await api("/api/conv", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(convBody()),
    });
    conv.data = data;
    conv.step = 0;
    $("#conv-formulas").textContent = [
      `${data.input.length}×${data.input[0].length} input, ${data.kernel.length}×${data.kernel[0].length} kernel, ` +
      `stride ${data.stride.join("×")}, padding ${data.padding.join("×")}, dilation ${data.dilation.join("×")}` +
      (data.bias ? `, bias ${data.bias}` : ""),
      ...data.output_size_formulas,
    ].join("\n");
    drawConv();
  });
}

function setStep(step) {
  if (!conv.data) return;
  conv.step = Math.max(0, Math.min(conv.data.placements.length, step));
  drawConv();
}

views.conv = {
  init() {
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
      $("#conv-play").textContent = "Pause";
      conv.timer = setInterval(() => {
        if (conv.step >= conv.data.placements.length) { stopPlay(); return; }
        setStep(conv.step + 1);
      }, 700);
    });
    // Arrow keys step too, unless the cursor is in a field.
    document.addEventListener("keydown", (e) => {
      if (!$("#view-conv").classList.contains("active") || e.target.closest("input, textarea, select")) return;
      if (e.key === "ArrowRight") { stopPlay(); setStep(conv.step + 1); e.preventDefault(); }
      if (e.key === "ArrowLeft") { stopPlay(); setStep(conv.step - 1); e.preventDefault(); }
    });
    computeConv();
  },
  leave: stopPlay,
};

// ---- receptive field --------------------------------------------------------------------------

// The field's box in input pixels over a picture of the input, and a dot at the field's centre.
function drawBox(svg, size, box) {
  const [h, w] = size;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.replaceChildren(svgEl("rect", { class: "field", x: box.left, y: box.top, width: box.width, height: box.height }));
  svg.append(svgEl("circle", { cx: box.left + box.width / 2, cy: box.top + box.height / 2, r: Math.max(0.6, Math.min(h, w) / 90) }));
}

async function measureRf() {
  await busy($("#rf-go"), async () => {
    const params = {
      ...sourceParams($("#rf-source")), input: $("#rf-input").value.trim(), layer: $("#rf-layer").value,
      samples: $("#rf-samples").value,
    };
    const d = await api(`/api/rf?${query(params)}`);
    const select = $("#rf-layer");
    const keep = d.layer.name;
    select.replaceChildren(el("option", { value: "", text: "(deepest that fits)" }),
      ...d.layers.map((l) => el("option", { value: l.name, text: `${l.name} (${l.op}, field ${l.rf_size.join("×")})` })));
    if (params.layer) select.value = keep;
    $("#rf-image").src = d.image;
    $("#rf-erf").src = d.erf;
    const size = d.input_size.slice(1);
    drawBox($("#rf-image-svg"), size, d.box);
    drawBox($("#rf-erf-svg"), size, d.box);
    const L = d.layer;
    const beyond = L.rf_size[0] > size[0] || L.rf_size[1] > size[1];
    const dl = el("dl");
    const row = (k, v) => dl.append(el("dt", { text: k }), el("dd", { text: v }));
    row("model", `${d.model}, ${d.weights}`);
    row("input", d.input_size.join("×"));
    row("layer", `${L.name} (${L.op}), output ${L.output_shape.slice(1).join("×")}`);
    row("unit", `(${d.unit.join(", ")}), the centre of the ${d.output_spatial.join("×")} map`);
    row("theoretical field", `${L.rf_size.join("×")} pixels${beyond ? " (larger than the input: the border is padding)" : ""}`);
    row("jump", `${L.rf_stride.join("×")} pixels between neighbouring units`);
    row("field covers rows", `${d.box.top} … ${d.box.top + d.box.height - 1}, columns ${d.box.left} … ${d.box.left + d.box.width - 1}`);
    row("gradient inside the field", fmtPct(d.erf_mass_inside_box));
    row("samples", String(d.samples));
    const note = el("p", { class: "hint", text: "The effective field is where the unit's gradient actually lands; it is " +
      "concentrated near the centre of the theoretical field, and no gradient can fall outside it." });
    const children = [el("h3", { text: "Receptive field" }), dl, note];
    if (L.explain && L.explain.length) children.push(el("pre", { text: L.explain.join("\n") }));
    $("#rf-detail").replaceChildren(...children);
    $("#rf-detail").dataset.ready = L.name;
  });
}

views.rf = {
  enter: refreshRunChoices,
  init() {
    $("#rf-form").addEventListener("submit", (e) => { e.preventDefault(); measureRf(); });
    $("#rf-source").addEventListener("change", () => {
      $("#rf-layer").replaceChildren(el("option", { value: "", text: "(deepest that fits)" }));
      $("#rf-input").value = "";
    });
    $("#rf-layer").addEventListener("change", measureRf);
  },
};

// ---- inside a trained network -----------------------------------------------------------------

async function lookInside() {
  await busy($("#inside-go"), async () => {
    const form = new FormData();
    for (const [k, v] of Object.entries(sourceParams($("#inside-source")))) form.set(k, v);
    form.set("top", $("#inside-top").value);
    if ($("#inside-layers").value.trim()) form.set("layers", $("#inside-layers").value.trim());
    const file = $("#inside-file").files[0];
    if (file) form.set("image", file);
    const d = await api("/api/inside", { method: "POST", body: form });
    $("#inside-layer-names").replaceChildren(...d.conv_layers.map((name) => el("option", { value: name })));
    $("#inside-input").src = d.image;
    $("#inside-gradcam").src = d.gradcam.image;
    $("#inside-gradcam-caption").textContent = `Grad-CAM for “${d.gradcam.class}”`;
    $("#inside-weights").textContent = `${d.model}: ${d.weights}; input ${d.input_size.join("×")}`;
    $("#inside-predictions").replaceChildren(...d.predictions.map((p) => {
      const bar = el("span", { class: "bar" });
      bar.style.width = `${Math.max(1, 100 * p.probability)}%`;
      return el("li", { "data-class": p.class }, el("span", { text: `${p.class} — ${fmtPct(p.probability)}` }), bar);
    }));
    $("#inside-features").replaceChildren(...d.features.map((f) => el("div", { class: "fmap-row", "data-layer": f.layer },
      el("div", { class: "label", text: `${f.layer} · ${f.shape.join("×")}` }),
      ...f.images.map((src, i) => el("img", { src, class: "fmap", alt: `${f.layer} channel ${i}`, title: `channel ${i}` })))));
  });
}

views.inside = {
  enter: refreshRunChoices,
  init() {
    $("#inside-form").addEventListener("submit", (e) => { e.preventDefault(); lookInside(); });
    $("#inside-source").addEventListener("change", () => { $("#inside-layers").value = ""; });
  },
};

// ---- charts -----------------------------------------------------------------------------------

const COLORS = ["#2458d3", "#e8590c", "#0ca678", "#ae3ec9", "#d6336c", "#1098ad", "#f59f00", "#495057"];

function ticks(lo, hi, n = 5) {
  if (hi === lo) { hi = lo + 1; }
  const step0 = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(+v.toPrecision(12));
  return out;
}

// Ticks of a log10 axis (lo, hi are exponents): powers of ten, with 2 and 5 between when the
// range spans less than a few decades.
function logTicks(lo, hi) {
  const out = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k += 1) {
    for (const m of [1, 2, 5]) {
      const v = k + Math.log10(m);
      if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push({ v, m });
    }
  }
  return out.filter((t) => t.m === 1).length >= 3 ? out.filter((t) => t.m === 1).map((t) => t.v) : out.map((t) => t.v);
}

// series: [{name, color, dash, points: [[x, y], ...]}]
function lineChart({ title, xlabel, ylabel, series, width = 440, height = 260, log = false, percent = false }) {
  const svg = svgEl("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}` });
  const m = { l: 56, r: 12, t: 24, b: 40 };
  const all = series.flatMap((s) => s.points);
  svg.append(svgEl("text", { x: m.l, y: 15, class: "label", "font-weight": 600 }, title));
  if (!all.length) {
    svg.append(svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "tick" }, "no epochs yet"));
    return svg;
  }
  const tx = (v) => (log ? Math.log10(v) : v);
  const xs = all.map((p) => tx(p[0])), ys = all.map((p) => tx(p[1]));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 0.5; x1 += 0.5; }
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const padY = (y1 - y0) * 0.08; y0 -= padY; y1 += padY;
  if (log) { const padX = (x1 - x0) * 0.08; x0 -= padX; x1 += padX; }
  const X = (v) => m.l + ((tx(v) - x0) / (x1 - x0)) * (width - m.l - m.r);
  const Y = (v) => height - m.b - ((tx(v) - y0) / (y1 - y0)) * (height - m.t - m.b);
  const xLabel = (v) => (log ? fmtBig(Math.round(10 ** v)) : String(+v.toPrecision(3)));
  const label = (v) => (log ? fmtBig(Math.round(10 ** v)) : percent ? `${(100 * v).toFixed(0)}%` : String(+v.toPrecision(3)));
  for (const v of log ? logTicks(y0, y1) : ticks(y0, y1)) {
    const y = height - m.b - ((v - y0) / (y1 - y0)) * (height - m.t - m.b);
    svg.append(svgEl("line", { x1: m.l, x2: width - m.r, y1: y, y2: y, class: "grid-line" }));
    svg.append(svgEl("text", { x: m.l - 4, y: y + 3, "text-anchor": "end", class: "tick" }, label(v)));
  }
  for (const v of log ? logTicks(x0, x1) : ticks(x0, x1, 6)) {
    if (!log && !Number.isInteger(v)) continue;
    const x = m.l + ((v - x0) / (x1 - x0)) * (width - m.l - m.r);
    svg.append(svgEl("text", { x, y: height - m.b + 14, "text-anchor": "middle", class: "tick" }, xLabel(v)));
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
  for (const s of series.filter((t) => t.name && !t.scatter).reverse()) {
    const color = s.color || COLORS[series.indexOf(s) % COLORS.length];
    const text = svgEl("text", { x: right, y: 15, "text-anchor": "end", class: "tick" }, s.name);
    const x = right - 6.2 * s.name.length - 24;
    const line = { x1: x, x2: x + 18, y1: 12, y2: 12, stroke: color, "stroke-width": 2 };
    if (s.dash) line["stroke-dasharray"] = "5 4";
    svg.append(svgEl("line", line), text);
    right = x - 12;
  }
  return svg;
}

// ---- runs ---------------------------------------------------------------------------------------

const runs = { selected: null, timer: null, checked: new Set(), comparing: false };

function runRow(r) {
  const check = el("input", { type: "checkbox", class: "run-check", "aria-label": `compare ${r.name}` });
  check.checked = runs.checked.has(r.name);
  check.addEventListener("click", (e) => {
    e.stopPropagation();
    if (check.checked) runs.checked.add(r.name); else runs.checked.delete(r.name);
  });
  const tr = el("tr", { "data-name": r.name },
    el("td", {}, check), el("td", { text: r.name }), el("td", { text: r.model || "–" }), el("td", { text: r.dataset || "–" }),
    el("td", {}, el("span", { class: `status ${r.status}`, text: r.status })),
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
        el("td", { colspan: 8, text: `experiment ${r.experiment}: ${count} run${count === 1 ? "" : "s"} (results.md and plots in its folder)` })));
    }
    group = r.experiment || null;
    rows.push(runRow(r));
  }
  return rows;
}

function curveCharts(metrics) {
  const ep = (key) => metrics.filter((m) => m[key] !== undefined).map((m) => [m.epoch, m[key]]);
  return el("div", { class: "charts", id: "run-curves" },
    lineChart({ title: "Loss", xlabel: "epoch", ylabel: "loss", series: [
      { name: "train", points: ep("train_loss") }, { name: "validation", points: ep("val_loss"), dash: true }] }),
    lineChart({ title: "Top-1 accuracy", xlabel: "epoch", ylabel: "accuracy", percent: true, series: [
      { name: "train", points: ep("train_top1") }, { name: "validation", points: ep("val_top1"), dash: true }] }));
}

async function refreshRuns() {
  try {
    const list = await api("/api/runs");
    $("#runs-dir").textContent = list.runs_dir;
    state.runs = list.runs;
    $("#runs-table tbody").replaceChildren(...runRows(list.runs));
    if (!list.runs.length) {
      $("#runs-table tbody").replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "hint",
        text: "No runs yet: `cnnlab train --out DIR` writes them; this list updates by itself." })));
    }
    if (runs.selected && list.runs.some((r) => r.name === runs.selected)) {
      const run = await api(`/api/runs/${encodeURIComponent(runs.selected)}`);
      const head = el("h3", { text: `${run.name}: ${run.model} on ${run.dataset}, ${run.status}, epoch ${run.epochs_done} of ${run.epochs}` });
      const cfg = el("details", {}, el("summary", { text: "Configuration" }), el("pre", { text: JSON.stringify(run.config, null, 2) }));
      const open = (view, select, label) => {
        const button = el("button", { type: "button", class: "run-open", "data-view": view, text: label });
        button.addEventListener("click", () => {
          fillSources();
          $(select).value = `run:${run.name}`;
          $(select).dispatchEvent(new Event("change"));  // as if chosen by hand: default input, then analyze
          location.hash = view;
        });
        return button;
      };
      const actions = run.has_checkpoint ? el("div", { class: "buttons" },
        open("arch", "#arch-source", "Architecture of its checkpoint"), open("inside", "#inside-source", "Look inside it"))
        : el("span");
      const blocks = [head, actions, curveCharts(run.metrics), cfg];
      if (run.result && run.result.test) blocks.splice(2, 0, el("p", { text: `test top-1 ${fmtPct(run.result.test.top1)}, top-5 ${fmtPct(run.result.test.top5)}` }));
      $("#run-detail").replaceChildren(...blocks);
      $("#run-detail").dataset.epochs = String(run.metrics.length);
    }
    if (runs.comparing) await compareRuns();
  } catch (err) {
    showError(err);
  }
}

async function compareRuns() {
  const names = [...runs.checked].filter((n) => state.runs.some((r) => r.name === n));
  if (names.length < 1) { $("#runs-compare").replaceChildren(el("p", { class: "hint", text: "Check one or more runs first." })); return; }
  const details = await Promise.all(names.map((n) => api(`/api/runs/${encodeURIComponent(n)}`)));
  const series = (key) => details.map((d) => ({ name: d.name, points: d.metrics.map((m) => [m.epoch, m[key]]) }));
  // The model, data and length, then every other setting on which the runs differ.
  const fixed = ["model", "dataset", "epochs"];
  const differ = Object.keys(details[0].config).filter((k) => !fixed.includes(k) && k !== "name"
    && details.some((d) => JSON.stringify(d.config[k]) !== JSON.stringify(details[0].config[k])));
  const keys = [...fixed, ...differ];
  const head = el("tr", {}, el("th", { text: "" }), ...details.map((d) => el("th", { text: d.name })));
  const show = (v) => (v === undefined || v === null ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const rows = keys.map((k) => el("tr", {}, el("td", { text: k }), ...details.map((d) => el("td", { text: show(d.config[k]) }))));
  rows.push(el("tr", {}, el("td", { text: "best val top-1" }), ...details.map((d) => el("td", { text: fmtPct(d.best_val_top1) }))));
  rows.push(el("tr", {}, el("td", { text: "test top-1" }), ...details.map((d) => el("td", { text: fmtPct(d.test_top1) }))));
  $("#runs-compare").replaceChildren(el("h3", { text: "Side by side" }),
    el("div", { class: "charts" },
      lineChart({ title: "Validation loss", xlabel: "epoch", ylabel: "loss", series: series("val_loss") }),
      lineChart({ title: "Validation top-1", xlabel: "epoch", ylabel: "accuracy", percent: true, series: series("val_top1") })),
    el("div", { class: "table-box" }, el("table", { id: "runs-compare-table" }, el("thead", {}, head), el("tbody", {}, ...rows))));
}

views.runs = {
  init() {
    $("#runs-compare-go").addEventListener("click", async () => { runs.comparing = true; await busy($("#runs-compare-go"), compareRuns); });
  },
  enter() {
    refreshRuns();
    if (!runs.timer) runs.timer = setInterval(refreshRuns, 2000);
  },
  leave() {
    if (runs.timer) clearInterval(runs.timer);
    runs.timer = null;
  },
};

// ---- compare models -------------------------------------------------------------------------------

async function compareModels() {
  await busy($("#compare-go"), async () => {
    const d = await api(`/api/compare?${query({ models: $("#compare-models").value, input: $("#compare-input").value.trim() })}`);
    const cols = [["model", "Model", (r) => r.model], ["params", "Params", (r) => fmtInt(r.params)],
      ["macs", "MACs", (r) => known(r.macs, fmtInt)], ["flops", "FLOPs", (r) => known(r.flops, fmtBig)],
      ["weighted_depth", "Weighted layers", (r) => String(r.weighted_depth)],
      ["receptive_field", "Receptive field", (r) => (r.receptive_field ? r.receptive_field.join("×") : "–")],
      ["activation_bytes", "Activations", (r) => fmtBytes(r.activation_bytes)]];
    $("#compare-table thead").replaceChildren(el("tr", {}, ...cols.map(([, h], i) => el("th", { class: i ? "num" : "", text: h }))));
    $("#compare-table tbody").replaceChildren(...d.rows.map((r) => el("tr", { "data-name": r.model },
      ...cols.map(([key, , f], i) => el("td", { class: i ? "num" : "", "data-key": key, text: f(r) })))));
    const plot = lineChart({ title: `Parameters against MACs at ${d.input_size ? d.input_size.join("×") : "each model's own input"} (log scales)`, xlabel: "MACs",
      ylabel: "parameters", log: true, width: 720, height: 380,
      series: [{ scatter: true, points: d.rows.filter((r) => r.macs !== null)
        .map((r) => [Math.max(r.macs, 1), Math.max(r.params, 1), r.model]) }] });
    plot.id = "compare-plot";
    $("#compare-plot").replaceWith(plot);
  });
}

views.compare = {
  init() { $("#compare-form").addEventListener("submit", (e) => { e.preventDefault(); compareModels(); }); },
  enter() { if (!$("#compare-table tbody").children.length) compareModels(); },
};

// ---- start --------------------------------------------------------------------------------------

async function start() {
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
