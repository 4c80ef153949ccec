// The page's words in English and Korean, and the switch between them.
//
// Static text in index.html names its entry with data-i18n (text), data-i18n-title,
// data-i18n-placeholder, data-i18n-alt or data-i18n-aria-label; the scripts call t(key, values).
// An entry is a string with {name} slots, or a function of the values (for English plurals).
// Names of models, layers and operators, numbers and units are data, not words: they stay as
// they are. Korean is chosen when the browser's first language that the page speaks is Korean;
// a choice made with the switch is remembered in localStorage.

const en = {
  "app.explorer": "explorer",
  "nav.views": "views",
  "lang.choose": "language",
  "tab.arch": "Architecture", "tab.stack": "Layer calculator", "tab.conv": "Convolution", "tab.rf": "Receptive field",
  "tab.inside": "Inside a network", "tab.runs": "Runs", "tab.compare": "Compare",
  "error.unreachable": "cannot reach the cnnlab server: is `cnnlab serve` still running?",
  "error.status": "the server answered {status}",
  unknown: "unknown", total: "Total", "unit.pixels": "pixels",
  "field.model": "Model", "field.network": "Network", "field.input": "Input (CxHxW)", "field.default": "default",
  "source.zoo": "Zoo models (random weights)", "source.runs": "Runs (trained checkpoints)",
  "weights.trained": "trained weights (checkpoint)", "weights.random": "random weights (seed 0): pick a run for a trained network",

  // architecture
  "arch.go": "Analyze",
  "arch.hint": "Every number comes from cnnlab's analyzer (traced on the meta device: no weights, no memory).",
  "arch.download": "Download the table:",
  "arch.detail_hint": "Click a node or a table row to see its formulas.",
  "arch.outside_row": "Not in the total: parameters outside the drawn graph (modules eval mode never runs, e.g. auxiliary classifiers)",
  "col.layer": "Layer", "col.op": "Op", "col.output": "Output", "col.params": "Params", "col.macs": "MACs",
  "col.rf": "RF (size / jump)", "col.flops": "FLOPs", "col.weighted": "Weighted layers", "col.rf_size": "Receptive field",
  "col.activations": "Activations", "col.model": "Model", "col.run": "Run", "col.data": "Data", "col.status": "Status",
  "col.epochs": "Epochs", "col.best_val": "Best val", "col.test": "Test",
  "sum.model": "model", "sum.input": "input", "sum.params": "parameters", "sum.macs": "MACs", "sum.flops": "FLOPs",
  "sum.weighted": "weighted layers", "sum.rf": "receptive field", "sum.activations": "activations (batch 1)",
  "sum.memory": "training memory, SGD", "sum.outside": "more outside the graph (training only)",
  "sum.outside_title": "not in the total: held by modules the traced eval-mode graph does not run (auxiliary classifiers run only in training)",
  "sum.unknown": "{what} unknown", "sum.misaligned": "misaligned branches",
  "total.params": "parameters", "total.macs": "MACs", "total.flops": "FLOPs", "total.receptive_field": "receptive field",
  "total.activation_bytes": "activations",
  "d.op": "op", "d.module": "module", "d.inputs": "inputs", "d.input_shapes": "input shapes", "d.output_shape": "output shape",
  "d.params": "parameters", "d.shared": "(shared, counted once)", "d.macs": "MACs", "d.flops": "FLOPs",
  "d.activation": "activation", "d.rf": "receptive field", "d.covers": "(covers the input)", "d.jump": "jump (stride to input)",
  "d.eff_padding": "effective padding", "d.misaligned": "misaligned", "d.note": "note",
  "d.unsupported": "no counting rule for this op: totals are incomplete", "d.formulas": "Formulas, with the numbers",
  "d.kind": "kind", "d.block": "a block of {ops} operations", "d.in_blocks": "Inside (click to fold):",
  "d.block_note": "The numbers are the sums over the block's operations (shared parameters counted once); its output and field are its last operation's.",
  "graph.tools": "graph tools", "graph.label": "network graph", "graph.overview": "overview",
  "graph.search": "find a layer by name", "graph.find": "Find", "graph.level": "Unfold to",
  "graph.level_n": "level {n}", "graph.level_all": "everything",
  "graph.zoom_in": "zoom in (+)", "graph.zoom_out": "zoom out (−)", "graph.zoom_reset": "100% (0)",
  "graph.fit": "Fit", "graph.fit_title": "the whole graph (F)",
  "graph.keys": "Wheel: zoom · drag: move · keys + − 0 F and arrows · + on a block unfolds it, − on a frame folds it",
  "graph.count": "{drawn} boxes for {nodes} nodes", "graph.not_found": "no layer or block matches “{text}”",
  "graph.expand": "unfold {name}", "graph.collapse": "fold {name}", "graph.unfold": "Unfold",
  "graph.params_short": "params",
  "graph.block_line": "{ops} ops · {params} params · {macs} MACs",
  "graph.block_title": "{ops} operations, output {output}\nparameters {params}, MACs {macs}\ndouble-click or + to unfold",
  "graph.node_title": "output {output}\nparameters {params}, MACs {macs}",

  // layer calculator
  "stack.a": "Stack A", "stack.b": "Stack B", "stack.b_optional": "Stack B (optional)", "stack.examples": "Examples",
  "stack.choose": "choose…", "stack.ex_vgg": "two 3x3 against one 5x5 (VGG)",
  "stack.ex_inception": "1x1 reduction before a 3x3 (GoogLeNet)", "stack.ex_alexnet": "AlexNet's first layer: 11x11, stride 4",
  "stack.ex_lenet": "LeNet-5 on 1x32x32", "stack.ex_dilation": "dilated 3x3 against a plain 5x5",
  "stack.go": "Calculate", "stack.grammar": "Layer grammar", "stack.empty": "(empty)",
  "stack.click_row": "Click a row to see its formulas with the numbers in them.",
  "stack.formula_head": "Stack {which}, layer {n}: {spec}",

  // convolution by hand
  "conv.mode_net": "In a network, on an image", "conv.mode_hand": "By hand, step by step",
  "conv.input": "Input", "conv.kernel": "Kernel", "conv.stride": "Stride", "conv.padding": "Padding",
  "conv.dilation": "Dilation", "conv.bias": "Bias", "conv.compute": "Compute", "conv.play": "Play", "conv.pause": "Pause",
  "conv.first": "before the first placement", "conv.prev": "previous placement", "conv.next": "next placement",
  "conv.end": "all placements", "conv.padded": "Input (padded)", "conv.output": "Output",
  "conv.counter": "placement {step} of {total}",
  "conv.explain": "Step through the placements: each output value is the inner product of the kernel with the window under it.",
  "conv.setup": "{ih}×{iw} input, {kh}×{kw} kernel, stride {stride}, padding {padding}, dilation {dilation}",
  "conv.setup_bias": ", bias {bias}", "conv.output_at": "output[{i}][{j}]",

  // convolution in a network
  "filters.layer": "Convolution layer", "filters.filter": "Filter", "filters.image": "Image", "filters.go": "Show",
  "filters.hint": "Point at any cell to see its arithmetic; click a filter's map to look at it in detail.",
  "filters.layer_option": "{name}: {cin} → {cout} channels, {k}",
  "filters.picture": "the image the network sees", "filters.sample_photo": "sample photo",
  "filters.prediction": "The network's answer for this image:",
  "filters.setup": "{name}: {cin} input channels → {cout} filters, kernel {k}, stride {s}, padding {p}, dilation {d}",
  "filters.groups": "in {g} groups", "filters.with_bias": "with a bias per filter.", "filters.no_bias": "without bias.",
  "filters.rule": "Each filter has one kernel slice per input channel. Its output at one position is the sum, over all input channels, of the window under the slice times the slice, plus the filter's bias.",
  "filters.colours": "Colours: blue negative, white zero, red positive; each group of maps has its own scale (its ends are shown).",
  "filters.input_col": "Input channels", "filters.conv_col": "Convolution {name}", "filters.shape": "{shape}",
  "filters.channel_n": "channel {c}", "filters.filter_n": "filter {f}", "filters.pick": "look at filter {f} in detail",
  "filters.more_channels": "and {n} more channels",
  "filters.filters_shown": "Filters {a} to {b} of {n} shown; choose another filter number to see the others.",
  "filters.detail_title": "Filter {f} of {name}, taken apart",
  "filters.legend_input": "input", "filters.legend_weights": "weights", "filters.legend_partials": "per channel",
  "filters.legend_output": "output",
  "filters.channel_card": "Input channel {c}", "filters.input_channel": "channel {c} with its padding",
  "filters.padded_title": "the channel with its padding; the inner frame is the image area",
  "filters.slice": "filter {f}, slice {c} ({k})", "filters.partial": "channel {c} ⊛ its slice",
  "filters.rest_card": "the other {n} channels", "filters.rest_caption": "their maps added together",
  "filters.sum_op": "Σ over {n} channels", "filters.bias": "bias", "filters.output_caption": "output of filter {f} (z)",
  "filters.arith": "Arithmetic", "filters.arith_hint": "Point at a cell of any map to see how its value is computed.",
  "filters.window_sum": "window × slice, {n} products", "filters.sum_all": "sum of the rows above",
  "filters.unit_title": "Filter {f}, output row {i}, column {j}",
  "filters.products_title": "Channel {c}: the window (rows {r0}–{r1}, columns {c0}–{c1} of the padded input) times the slice, weight × input",
  "filters.products_note": "These products add up to channel {c}'s term, {value}. Point at another channel's map to list its products.",
  "filters.bn_formula": "γ·({z} − μ)/σ + β",
  "filters.pool_title": "{name}: output row {a}, column {b}",
  "filters.pool_window": "Window {k}, stride {s}, on the map before it:", "filters.mean": "mean",
  "filters.input_title": "Input channel {c}, row {r}, column {col}",
  "filters.input_note": "A value of the image area: what the previous layer produced (for the first layer, the normalised image).",
  "filters.padding_note": "A padding cell: the convolution adds it around the image.",
  "op.ReLU": "ReLU", "op.BatchNorm2d": "batch norm", "op.MaxPool2d": "max pooling", "op.AvgPool2d": "average pooling",

  // receptive field
  "rf.layer": "Layer", "rf.deepest": "(deepest that fits)", "rf.samples": "Samples", "rf.go": "Measure",
  "rf.theory": "Theoretical field of the centre unit, on the input",
  "rf.measured": "Measured effective field (|gradient| of the centre unit)",
  "rf.image_alt": "input image", "rf.erf_alt": "effective receptive field",
  "rf.option": "{name} ({op}, field {field})", "rf.model": "model",
  "rf.layer_text": "{name} ({op}), output {output}", "rf.unit": "unit", "rf.unit_text": "({unit}), the centre of the {map} map",
  "rf.field": "theoretical field", "rf.beyond": "(larger than the input: the border is padding)",
  "rf.jump_text": "{jump} pixels between neighbouring units", "rf.covers": "field covers rows",
  "rf.covers_text": "{r0} … {r1}, columns {c0} … {c1}", "rf.inside": "gradient inside the field",
  "rf.note": "The effective field is where the unit's gradient actually lands; it is concentrated near the centre of the theoretical field, and no gradient can fall outside it.",

  // inside
  "inside.image": "Image", "inside.layers": "Layers", "inside.layers_default": "first, middle, last convolution",
  "inside.top": "Top", "inside.go": "Look inside",
  "inside.hint": "No file: the sample photo. Images up to 5 MB (PNG, JPEG, GIF, BMP, WebP).",
  "inside.input": "Input as the network sees it", "inside.prediction": "Prediction", "inside.maps": "Feature maps, shallow to deep",
  "inside.gradcam_for": "Grad-CAM for “{name}”", "inside.channel": "channel {i}", "inside.channel_of": "{layer} channel {i}",

  // runs
  "runs.in": "Runs in", "runs.refresh": ", refreshed every 2 seconds while this view is open.",
  "runs.compare": "Compare checked runs", "runs.check": "compare {name}",
  "runs.experiment": (v) => `experiment ${v.name}: ${v.n} run${v.n === 1 ? "" : "s"} (results.md and plots in its folder)`,
  "runs.none": "No runs yet: `cnnlab train --out DIR` writes them; this list updates by itself.",
  "runs.head": "{name}: {model} on {dataset}, {status}, epoch {done} of {epochs}", "runs.config": "Configuration",
  "runs.open_arch": "Architecture of its checkpoint", "runs.open_inside": "Look inside it", "runs.open_filters": "Its convolutions at work",
  "runs.test": "test top-1 {top1}, top-5 {top5}", "runs.check_first": "Check one or more runs first.",
  "runs.best_val": "best val top-1", "runs.test_top1": "test top-1", "runs.side_by_side": "Side by side",
  "status.finished": "finished", "status.running": "running", "status.stopped": "stopped",
  "chart.empty": "no epochs yet", "chart.loss": "Loss", "chart.loss_axis": "loss", "chart.epoch": "epoch",
  "chart.top1": "Top-1 accuracy", "chart.accuracy": "accuracy", "chart.train": "train", "chart.validation": "validation",
  "chart.val_loss": "Validation loss", "chart.val_top1": "Validation top-1",

  // compare
  "compare.models": "Models", "compare.go": "Compare", "compare.plot_label": "parameters against MACs",
  "compare.plot_title": "Parameters against MACs at {input} (log scales)", "compare.own_input": "each model's own input",
  "compare.params_axis": "parameters",
};

const ko = {
  "app.explorer": "탐색기",
  "nav.views": "화면",
  "lang.choose": "언어",
  "tab.arch": "구조", "tab.stack": "층 계산기", "tab.conv": "합성곱", "tab.rf": "수용 영역",
  "tab.inside": "신경망 들여다보기", "tab.runs": "학습 기록", "tab.compare": "모델 비교",
  "error.unreachable": "cnnlab 서버에 연결할 수 없습니다. `cnnlab serve`가 아직 실행 중인지 확인하세요.",
  "error.status": "서버가 {status} 상태로 응답했습니다",
  unknown: "알 수 없음", total: "합계", "unit.pixels": "픽셀",
  "field.model": "모델", "field.network": "신경망", "field.input": "입력 (C×H×W)", "field.default": "기본값",
  "source.zoo": "모델 모음 (무작위 가중치)", "source.runs": "학습 기록 (학습된 체크포인트)",
  "weights.trained": "학습된 가중치 (체크포인트)", "weights.random": "무작위 가중치 (시드 0): 학습된 신경망을 보려면 학습 기록을 고르세요",

  "arch.go": "분석",
  "arch.hint": "모든 수치는 cnnlab 분석기가 계산합니다 (meta 장치에서 추적하므로 가중치도 메모리도 쓰지 않습니다).",
  "arch.download": "표 내려받기:",
  "arch.detail_hint": "노드나 표의 행을 누르면 그 층의 공식을 볼 수 있습니다.",
  "arch.outside_row": "합계 밖: 그래프에 그려지지 않은 파라미터 (평가 모드에서 실행되지 않는 모듈, 예: 보조 분류기)",
  "col.layer": "층", "col.op": "연산", "col.output": "출력", "col.params": "파라미터", "col.macs": "MACs",
  "col.rf": "수용 영역 (크기 / 점프)", "col.flops": "FLOPs", "col.weighted": "가중치 층 수", "col.rf_size": "수용 영역",
  "col.activations": "활성값 메모리", "col.model": "모델", "col.run": "학습 기록", "col.data": "데이터", "col.status": "상태",
  "col.epochs": "에폭", "col.best_val": "최고 검증 정확도", "col.test": "테스트",
  "sum.model": "모델", "sum.input": "입력", "sum.params": "파라미터", "sum.macs": "MACs", "sum.flops": "FLOPs",
  "sum.weighted": "가중치 층 수", "sum.rf": "수용 영역", "sum.activations": "활성값 메모리 (배치 1)",
  "sum.memory": "학습 메모리 (SGD)", "sum.outside": "그래프 밖 파라미터 (학습 전용)",
  "sum.outside_title": "합계에는 들어가지 않습니다. 추적한 평가 모드 그래프가 실행하지 않는 모듈의 파라미터입니다 (보조 분류기는 학습할 때만 실행됩니다)",
  "sum.unknown": "{what}: 알 수 없음", "sum.misaligned": "정렬되지 않은 분기",
  "total.params": "파라미터", "total.macs": "MACs", "total.flops": "FLOPs", "total.receptive_field": "수용 영역",
  "total.activation_bytes": "활성값 메모리",
  "d.op": "연산", "d.module": "모듈", "d.inputs": "입력", "d.input_shapes": "입력 모양", "d.output_shape": "출력 모양",
  "d.params": "파라미터", "d.shared": "(공유됨, 한 번만 셈)", "d.macs": "MACs", "d.flops": "FLOPs",
  "d.activation": "활성값", "d.rf": "수용 영역", "d.covers": "(입력 전체를 덮음)", "d.jump": "점프 (입력 기준 스트라이드)",
  "d.eff_padding": "유효 패딩", "d.misaligned": "정렬 어긋남", "d.note": "참고",
  "d.unsupported": "이 연산에는 계산 규칙이 없어 합계가 완전하지 않습니다", "d.formulas": "숫자를 넣은 공식",
  "d.kind": "종류", "d.block": "연산 {ops}개로 이루어진 블록", "d.in_blocks": "속한 블록 (누르면 접힘):",
  "d.block_note": "수치는 블록 안 연산들의 합입니다 (공유 파라미터는 한 번만 셉니다). 출력 모양과 수용 영역은 마지막 연산의 것입니다.",
  "graph.tools": "그래프 도구", "graph.label": "신경망 그래프", "graph.overview": "전체 보기",
  "graph.search": "층 이름으로 찾기", "graph.find": "찾기", "graph.level": "펼칠 깊이",
  "graph.level_n": "{n}단계", "graph.level_all": "모두 펼치기",
  "graph.zoom_in": "확대 (+)", "graph.zoom_out": "축소 (−)", "graph.zoom_reset": "100% (0)",
  "graph.fit": "화면에 맞춤", "graph.fit_title": "그래프 전체 보기 (F)",
  "graph.keys": "휠: 확대·축소 · 끌기: 이동 · 키보드 + − 0 F 와 화살표 · 블록의 +는 펼치기, 테두리의 −는 접기",
  "graph.count": "노드 {nodes}개를 상자 {drawn}개로 표시", "graph.not_found": "“{text}”에 맞는 층이나 블록이 없습니다",
  "graph.expand": "{name} 펼치기", "graph.collapse": "{name} 접기", "graph.unfold": "펼치기",
  "graph.params_short": "파라미터",
  "graph.block_line": "연산 {ops}개 · 파라미터 {params} · MACs {macs}",
  "graph.block_title": "연산 {ops}개, 출력 {output}\n파라미터 {params}, MACs {macs}\n두 번 누르거나 +를 누르면 펼쳐집니다",
  "graph.node_title": "출력 {output}\n파라미터 {params}, MACs {macs}",

  "stack.a": "스택 A", "stack.b": "스택 B", "stack.b_optional": "스택 B (선택)", "stack.examples": "예제",
  "stack.choose": "고르세요…", "stack.ex_vgg": "3×3 두 개와 5×5 하나 (VGG)",
  "stack.ex_inception": "3×3 앞의 1×1 채널 축소 (GoogLeNet)", "stack.ex_alexnet": "AlexNet의 첫 층: 11×11, 스트라이드 4",
  "stack.ex_lenet": "1×32×32 입력의 LeNet-5", "stack.ex_dilation": "팽창 3×3과 일반 5×5",
  "stack.go": "계산", "stack.grammar": "층 작성 문법", "stack.empty": "(비어 있음)",
  "stack.click_row": "행을 누르면 숫자를 넣은 공식이 나옵니다.",
  "stack.formula_head": "스택 {which}, {n}번째 층: {spec}",

  "conv.mode_net": "신경망 안에서, 실제 이미지로", "conv.mode_hand": "손으로, 한 단계씩",
  "conv.input": "입력", "conv.kernel": "커널", "conv.stride": "스트라이드", "conv.padding": "패딩",
  "conv.dilation": "팽창", "conv.bias": "편향", "conv.compute": "계산", "conv.play": "재생", "conv.pause": "일시 정지",
  "conv.first": "첫 위치 이전으로", "conv.prev": "이전 위치", "conv.next": "다음 위치",
  "conv.end": "모든 위치", "conv.padded": "입력 (패딩 포함)", "conv.output": "출력",
  "conv.counter": "커널 위치 {total}개 중 {step}번째",
  "conv.explain": "커널을 한 칸씩 옮겨 보세요. 출력값 하나하나는 커널과 그 아래 윈도우의 내적입니다.",
  "conv.setup": "입력 {ih}×{iw}, 커널 {kh}×{kw}, 스트라이드 {stride}, 패딩 {padding}, 팽창 {dilation}",
  "conv.setup_bias": ", 편향 {bias}", "conv.output_at": "출력[{i}][{j}]",

  "filters.layer": "합성곱 층", "filters.filter": "필터", "filters.image": "이미지", "filters.go": "보기",
  "filters.hint": "칸 위에 마우스를 올리면 그 값의 계산 과정이 나오고, 필터의 특징 맵을 누르면 그 필터를 자세히 봅니다.",
  "filters.layer_option": "{name}: 채널 {cin}개 → {cout}개, {k}",
  "filters.picture": "신경망이 보는 이미지", "filters.sample_photo": "예시 사진",
  "filters.prediction": "이 이미지에 대한 신경망의 예측:",
  "filters.setup": "{name}: 입력 채널 {cin}개 → 필터 {cout}개, 커널 {k}, 스트라이드 {s}, 패딩 {p}, 팽창 {d}.",
  "filters.groups": "(그룹 {g}개)", "filters.with_bias": "필터마다 편향이 하나씩 있습니다.", "filters.no_bias": "편향은 없습니다.",
  "filters.rule": "필터는 입력 채널마다 커널을 하나씩 가집니다. 한 위치의 출력값은 채널마다 커널과 그 아래 윈도우를 원소별로 곱해 더한 값을 모든 입력 채널에 대해 합하고, 필터의 편향을 더한 것입니다.",
  "filters.colours": "색: 파랑은 음수, 흰색은 0, 빨강은 양수입니다. 맵 묶음마다 따로 눈금을 맞추며, 양 끝값을 함께 표시합니다.",
  "filters.input_col": "입력 채널", "filters.conv_col": "합성곱 {name}", "filters.shape": "{shape}",
  "filters.channel_n": "채널 {c}", "filters.filter_n": "필터 {f}", "filters.pick": "필터 {f} 자세히 보기",
  "filters.more_channels": "외 채널 {n}개",
  "filters.filters_shown": "필터 {n}개 중 {a}~{b}번을 표시합니다. 다른 필터를 보려면 필터 번호를 바꾸세요.",
  "filters.detail_title": "{name}의 필터 {f} 분해해 보기",
  "filters.legend_input": "입력", "filters.legend_weights": "가중치", "filters.legend_partials": "채널별 결과",
  "filters.legend_output": "출력",
  "filters.channel_card": "입력 채널 {c}", "filters.input_channel": "패딩을 더한 채널 {c}",
  "filters.padded_title": "패딩을 더한 채널입니다. 안쪽 테두리가 원래 이미지 영역입니다",
  "filters.slice": "필터 {f}, 채널 {c}의 커널 ({k})", "filters.partial": "채널 {c} ⊛ 그 커널",
  "filters.rest_card": "나머지 채널 {n}개", "filters.rest_caption": "이 채널들의 결과를 합한 맵",
  "filters.sum_op": "채널 {n}개에 대해 Σ", "filters.bias": "편향", "filters.output_caption": "필터 {f}의 출력 (z)",
  "filters.arith": "계산 과정", "filters.arith_hint": "어느 맵이든 칸 위에 마우스를 올리면 그 값이 어떻게 계산되는지 보여 줍니다.",
  "filters.window_sum": "윈도우 × 커널, 곱 {n}개", "filters.sum_all": "위 행들의 합",
  "filters.unit_title": "필터 {f}, 출력 {i}행 {j}열",
  "filters.products_title": "채널 {c}: 윈도우(패딩 포함 입력의 {r0}~{r1}행, {c0}~{c1}열)와 커널의 원소별 곱 (가중치 × 입력)",
  "filters.products_note": "이 곱들을 모두 더한 값이 채널 {c}의 항({value})입니다. 다른 채널의 맵에 마우스를 올리면 그 채널의 곱이 나옵니다.",
  "filters.bn_formula": "γ·({z} − μ)/σ + β",
  "filters.pool_title": "{name}: 출력 {a}행 {b}열",
  "filters.pool_window": "앞 맵 위의 윈도우 {k}, 스트라이드 {s}:", "filters.mean": "평균",
  "filters.input_title": "입력 채널 {c}, {r}행 {col}열",
  "filters.input_note": "이미지 영역의 값입니다. 앞 층이 만든 값이며, 첫 층이라면 정규화한 이미지입니다.",
  "filters.padding_note": "패딩 칸입니다. 합성곱이 이미지 둘레에 덧붙인 값입니다.",
  "op.ReLU": "ReLU", "op.BatchNorm2d": "배치 정규화", "op.MaxPool2d": "최대 풀링", "op.AvgPool2d": "평균 풀링",

  "rf.layer": "층", "rf.deepest": "(입력에 들어맞는 가장 깊은 층)", "rf.samples": "표본 수", "rf.go": "측정",
  "rf.theory": "가운데 유닛의 이론적 수용 영역 (입력 위에 표시)",
  "rf.measured": "측정한 유효 수용 영역 (가운데 유닛 기울기의 절댓값)",
  "rf.image_alt": "입력 이미지", "rf.erf_alt": "유효 수용 영역",
  "rf.option": "{name} ({op}, 수용 영역 {field})", "rf.model": "모델",
  "rf.layer_text": "{name} ({op}), 출력 {output}", "rf.unit": "유닛", "rf.unit_text": "({unit}), {map} 맵의 가운데",
  "rf.field": "이론적 수용 영역", "rf.beyond": "(입력보다 커서 가장자리는 패딩입니다)",
  "rf.jump_text": "이웃한 유닛 사이 {jump} 픽셀", "rf.covers": "수용 영역이 덮는 행",
  "rf.covers_text": "{r0} … {r1}, 열 {c0} … {c1}", "rf.inside": "수용 영역 안에 떨어진 기울기",
  "rf.note": "유효 수용 영역은 유닛의 기울기가 실제로 닿는 곳입니다. 이론적 수용 영역의 가운데에 몰려 있고, 그 바깥으로는 기울기가 전혀 떨어지지 않습니다.",

  "inside.image": "이미지", "inside.layers": "층", "inside.layers_default": "첫째, 가운데, 마지막 합성곱 층",
  "inside.top": "상위 클래스 수", "inside.go": "들여다보기",
  "inside.hint": "파일이 없으면 예시 사진을 씁니다. 5 MB 이하 이미지 (PNG, JPEG, GIF, BMP, WebP).",
  "inside.input": "신경망이 보는 입력", "inside.prediction": "예측", "inside.maps": "특징 맵, 얕은 층에서 깊은 층으로",
  "inside.gradcam_for": "“{name}”에 대한 Grad-CAM", "inside.channel": "채널 {i}", "inside.channel_of": "{layer} 채널 {i}",

  "runs.in": "학습 기록 폴더:", "runs.refresh": " — 이 화면이 열려 있는 동안 2초마다 새로 읽습니다.",
  "runs.compare": "선택한 학습 기록 비교", "runs.check": "{name} 비교에 넣기",
  "runs.experiment": "실험 {name}: 학습 기록 {n}개 (결과 표 results.md와 그래프는 실험 폴더에 있습니다)",
  "runs.none": "아직 학습 기록이 없습니다. `cnnlab train --out DIR`로 만들면 이 목록이 저절로 갱신됩니다.",
  "runs.head": "{name}: {dataset} 데이터로 학습한 {model} · {status} · 에폭 {done}/{epochs}", "runs.config": "설정",
  "runs.open_arch": "체크포인트의 구조 보기", "runs.open_inside": "이 신경망 들여다보기", "runs.open_filters": "이 신경망의 합성곱 보기",
  "runs.test": "테스트 top-1 {top1}, top-5 {top5}", "runs.check_first": "먼저 학습 기록을 하나 이상 선택하세요.",
  "runs.best_val": "최고 검증 top-1", "runs.test_top1": "테스트 top-1", "runs.side_by_side": "나란히 비교",
  "status.finished": "완료", "status.running": "학습 중", "status.stopped": "중단됨",
  "chart.empty": "아직 끝난 에폭이 없습니다", "chart.loss": "손실", "chart.loss_axis": "손실", "chart.epoch": "에폭",
  "chart.top1": "Top-1 정확도", "chart.accuracy": "정확도", "chart.train": "학습", "chart.validation": "검증",
  "chart.val_loss": "검증 손실", "chart.val_top1": "검증 top-1",

  "compare.models": "모델", "compare.go": "비교", "compare.plot_label": "MACs에 따른 파라미터 수",
  "compare.plot_title": "{input} 입력에서 MACs에 따른 파라미터 수 (로그 눈금)", "compare.own_input": "모델마다 기본 입력",
  "compare.params_axis": "파라미터",
};

export const STRINGS = { en, ko };
export const LANGUAGES = ["ko", "en"];
const STORE = "cnnlab.language";

let current = "en";
const listeners = [];

export const language = () => current;

export function t(key, values = {}) {
  const entry = STRINGS[current][key] ?? STRINGS.en[key];
  if (entry === undefined) return key;
  if (typeof entry === "function") return entry(values);
  return entry.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// The language to start in: the one chosen before, else the browser's first that the page speaks.
export function preferred() {
  try {
    const saved = localStorage.getItem(STORE);
    if (LANGUAGES.includes(saved)) return saved;
  } catch { /* storage may be off */ }
  for (const tag of navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"]) {
    const primary = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(primary)) return primary;
  }
  return "en";
}

export function translate(root = document) {
  const set = (attr, apply) => {
    for (const node of root.querySelectorAll(`[${attr}]`)) apply(node, t(node.getAttribute(attr)));
  };
  set("data-i18n", (n, v) => { n.textContent = v; });
  set("data-i18n-title", (n, v) => { n.title = v; });
  set("data-i18n-placeholder", (n, v) => { n.placeholder = v; });
  set("data-i18n-alt", (n, v) => { n.alt = v; });
  set("data-i18n-aria-label", (n, v) => { n.setAttribute("aria-label", v); });
  document.documentElement.lang = current;
  document.title = current === "ko" ? "cnnlab 탐색기" : "cnnlab explorer";
}

export function onLanguageChange(listener) { listeners.push(listener); }

export function setLanguage(lang, remember = false) {
  if (!LANGUAGES.includes(lang)) return;
  const changed = lang !== current;
  current = lang;
  if (remember) {
    try { localStorage.setItem(STORE, lang); } catch { /* storage may be off */ }
  }
  translate();
  if (changed) for (const listener of listeners) listener(lang);
}

export function startLanguage() {
  current = preferred();
  translate();
}
