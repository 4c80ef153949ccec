"""The explorer in a real browser: headless Chromium (Debian's package) driven by Playwright.

The set-up installs Chromium where it can (``scripts/setup-browser.sh``); Playwright's own
browser download is never used. Without a browser these tests are skipped, unless
``CNNLAB_REQUIRE_BROWSER=1`` (continuous integration) makes that a failure. Screenshots go to
the test's folder and, when ``CNNLAB_SCREENSHOTS=DIR`` is set, to DIR as well (the README's
pictures come from there).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flask")

import torch
import torchvision
from PIL import Image

import cnnlab
from cnnlab.train.inference import predict

CHROMIUM = os.environ.get("CNNLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
REQUIRED = os.environ.get("CNNLAB_REQUIRE_BROWSER") == "1"
WAIT_MS = 120_000  # generous: on a busy 2-core machine a page update can take tens of seconds


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (scripts/setup-browser.sh installs Debian's chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(f"browser tests are required here but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def runs(trained_run: Path) -> Path:
    return trained_run.parent


@pytest.fixture(scope="module")
def url(explorer_url: str) -> str:
    return explorer_url + "/"


@pytest.fixture
def page(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    yield page
    context.close()
    assert not errors, errors


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000
    target = os.environ.get("CNNLAB_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def wait_until(check, timeout: float = WAIT_MS / 1000, what: str = "the page") -> None:
    """Poll ``check()`` from Python (the page's CSP forbids evaluating strings inside it)."""
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def number(text: str) -> int:
    return int(text.replace(",", "").strip())


def test_architecture_table_totals_and_formulas(page, tmp_path: Path) -> None:
    page.select_option("#arch-source", "model:resnet18")
    page.fill("#arch-input", "3x64x64")
    page.click("#arch-go")
    page.wait_for_selector("#arch-graph[data-ready='resnet18@3x64x64']")
    total = number(page.inner_text("#arch-total-params"))
    assert total == cnnlab.analyze("resnet18", (3, 64, 64)).params
    assert total == sum(p.numel() for p in torchvision.models.resnet18().parameters())
    report = cnnlab.analyze("resnet18", (3, 64, 64))
    assert page.locator("#arch-graph .node").count() == len(report.layers)
    assert page.locator("#arch-graph .edge").count() == sum(len(r.inputs) for r in report.layers)
    assert page.locator("#arch-table tbody tr").count() == len(report.layers)
    page.click("#arch-graph .node[data-name='layer1.0.conv1']")
    assert "OH = floor((16 + 2*1 - 1*(3-1) - 1)/1) + 1 = 16" in page.inner_text("#arch-formula")
    assert page.locator("#arch-table tr.selected").get_attribute("data-name") == "layer1.0.conv1"
    shot(page, tmp_path, "explorer-architecture")


def test_branches_of_an_inception_network_are_drawn_side_by_side(page) -> None:
    page.select_option("#arch-source", "model:googlenet")
    page.fill("#arch-input", "3x224x224")
    page.click("#arch-go")
    page.wait_for_selector("#arch-graph[data-ready='googlenet@3x224x224']")
    # The auxiliary classifiers hold parameters that eval mode never runs: the drawn boxes make the
    # total, and a labelled note below it holds the rest of what the model holds.
    aux = torchvision.models.googlenet(aux_logits=True, init_weights=False)
    outside = sum(p.numel() for m in (aux.aux1, aux.aux2) for p in m.parameters())
    assert number(page.inner_text("#arch-outside-note b")) == outside == 6_379_984
    assert number(page.inner_text("#arch-outside-params")) == outside
    drawn = sum(number(v) for v in page.locator("#arch-graph .node").evaluate_all("gs => gs.map(g => g.dataset.params)"))
    assert drawn == number(page.inner_text("#arch-total-params")) == 6_624_904
    assert drawn + outside == sum(p.numel() for p in aux.parameters()) == 13_004_888
    # 200-odd nodes start folded; unfolded, the four branches of an Inception block start at the
    # same depth, so they share a row side by side.
    assert int(page.get_attribute("#arch-graph", "data-nodes")) <= 80
    page.select_option("#graph-level", page.locator("#graph-level option").last.get_attribute("value"))
    heads = ["inception3a.branch1.conv", "inception3a.branch2.0.conv", "inception3a.branch3.0.conv",
             "inception3a.branch4.0"]
    places = [page.get_attribute(f"#arch-graph .node[data-name='{name}']", "transform") for name in heads]
    assert len({p.split(",")[1] for p in places}) == 1
    assert len({p.split(",")[0] for p in places}) == 4


def inside_box(page, selector: str, box: str = "#graph-box") -> bool:
    """Whether the element lies wholly inside the visible part of ``box``."""
    a, b = page.locator(selector).bounding_box(), page.locator(box).bounding_box()
    return (a["x"] >= b["x"] and a["y"] >= b["y"] and a["x"] + a["width"] <= b["x"] + b["width"]
            and a["y"] + a["height"] <= b["y"] + b["height"])


def drawn_boxes(page) -> int:
    return int(page.get_attribute("#arch-graph", "data-nodes"))


def test_densenet_graph_search_fold_zoom_and_fit(page, tmp_path: Path) -> None:
    from cnnlab.analysis import fold

    page.select_option("#arch-source", "model:densenet121")
    page.wait_for_selector("#arch-graph[data-ready='densenet121@3x224x224']")
    report = cnnlab.analyze("densenet121", (3, 224, 224))
    assert len(report.layers) == 429
    # It starts folded to its dense blocks and transitions, and the boxes hold every parameter.
    start = drawn_boxes(page)
    assert start == page.locator("#arch-graph .node").count() < 80
    block = page.locator("#arch-graph .node.block[data-block='features.denseblock1']")
    folded = {r.name: r for r in fold(report, 2)}["features.denseblock1"]
    assert number(block.get_attribute("data-params")) == folded.params == 335_040
    params = page.locator("#arch-graph .node").evaluate_all("gs => gs.map(g => Number(g.dataset.params))")
    assert sum(params) == report.params == number(page.inner_text("#arch-total-params"))
    assert page.locator("#arch-outside-note").count() == 0  # nothing outside DenseNet's graph
    # Search at 100%: the node is unfolded, marked, and in the middle of the view.
    page.focus("#graph-box")
    page.keyboard.press("0")
    assert page.get_attribute("#arch-graph", "data-zoom") == "100"
    name = "features.denseblock3.denselayer20.conv2"
    page.fill("#graph-search", "denseblock3.denselayer20.conv2")
    page.click("#graph-find")
    node = f"#arch-graph .node[data-name='{name}']"
    page.wait_for_selector(f"{node}.selected")
    assert inside_box(page, node)
    assert page.get_attribute("#arch-graph", "data-zoom") == "100"
    assert page.inner_text("#arch-detail h3") == name
    unfolded = drawn_boxes(page)
    assert unfolded > start
    shot(page, tmp_path, "explorer-graph-search")
    # Fold the dense block (the layer's details list the blocks around it): its 168 nodes become
    # one box, in view; unfold it again from that box, and fold a dense layer from its frame.
    page.click("#arch-detail .crumb[data-block='features.denseblock3']")
    page.wait_for_selector("#arch-graph .node.block[data-block='features.denseblock3']")
    assert drawn_boxes(page) < unfolded
    page.click("#arch-graph .node.block[data-block='features.denseblock3'] .toggle")
    wait_until(lambda: drawn_boxes(page) > start, what="the unfolded block")
    now = drawn_boxes(page)
    page.click("#arch-graph .node.block[data-block='features.denseblock3.denselayer1'] .toggle")
    wait_until(lambda: drawn_boxes(page) == now + 6 - 1, what="the dense layer's six nodes")
    frame = "#arch-graph .frame[data-block='features.denseblock3.denselayer1']"
    assert inside_box(page, f"{frame} > .toggle")
    page.click(f"{frame} > .toggle")
    wait_until(lambda: drawn_boxes(page) == now, what="the folded dense layer")
    # Zoom with the keys and the wheel, move by dragging, then fit the whole graph in the box.
    page.focus("#graph-box")
    page.keyboard.press("+")
    assert page.get_attribute("#arch-graph", "data-zoom") == "125"
    box = page.locator("#graph-box").bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.mouse.wheel(0, 300)
    wait_until(lambda: int(page.get_attribute("#arch-graph", "data-zoom")) < 125, what="zoom by the wheel")
    before = page.get_attribute("#arch-graph .viewport", "transform")
    page.mouse.move(box["x"] + 300, box["y"] + 300)
    page.mouse.down()
    page.mouse.move(box["x"] + 360, box["y"] + 250, steps=4)
    page.mouse.up()
    assert page.get_attribute("#arch-graph .viewport", "transform") != before
    page.click("#graph-fit")
    first, last = report.layers[0].name, report.layers[-1].name
    assert inside_box(page, f"#arch-graph .node[data-name='{first}']")
    assert inside_box(page, f"#arch-graph .node[data-name='{last}']")
    assert page.locator("#arch-minimap .mini-view").count() == 1


def test_bad_input_shows_the_servers_message_and_the_page_recovers(page) -> None:
    page.fill("#arch-input", "3x100000x100000")
    page.click("#arch-go")
    page.wait_for_selector("#message:not([hidden])")
    assert page.inner_text("#message") == (
        "input 3x100000x100000 is too large for the explorer: at most 64 channels and 1024 pixels a side "
        "(`cnnlab inspect` takes any size)")
    page.fill("#arch-input", "3x32x32")
    page.click("#arch-go")
    page.wait_for_selector("#arch-graph[data-ready='resnet18@3x32x32']")
    assert page.is_hidden("#message")


def test_a_runs_checkpoint_in_the_architecture_view(page, trained_run: Path) -> None:
    page.select_option("#arch-source", "run:lenet-mnist")
    page.wait_for_selector("#arch-graph[data-ready='lenet-mnist (lenet5)@1x28x28']")
    state = torch.load(trained_run / "best.pt", weights_only=True)["state_dict"]
    weights = sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                                          "num_batches_tracked")))
    assert number(page.inner_text("#arch-total-params")) == weights


def test_layer_calculator_compares_two_stacks(page, tmp_path: Path) -> None:
    page.click("#tabs button[data-view='stack']")
    page.select_option("#stack-example", "vgg")
    page.wait_for_selector("#stack-b-table")
    # Two 3x3 convolutions: 2 * 64*64*9 = 73,728 weights; one 5x5: 64*64*25 = 102,400; both see 5x5.
    assert number(page.inner_text("#stack-a-table td[data-key='params']")) == 73_728
    assert number(page.inner_text("#stack-b-table td[data-key='params']")) == 102_400
    assert page.inner_text("#stack-a-table td[data-key='rf']") == page.inner_text("#stack-b-table td[data-key='rf']") == "5×5"
    page.click("#stack-a-table tbody tr[data-index='1']")
    assert "weights = C_out * C_in/groups * KH*KW = 64 * 64/1 * 3*3 = 36,864" in page.inner_text("#stack-formula")
    shot(page, tmp_path, "explorer-calculator")


def test_convolution_stepper_reaches_the_hand_computed_output(page, tmp_path: Path) -> None:
    page.click("#tabs button[data-view='conv']")
    page.click("#conv-mode-hand")
    page.fill("#conv-input", "1,2,0,1\n3,1,2,0\n0,2,1,3\n1,0,2,1")
    page.fill("#conv-kernel", "1,2\n0,-1")
    page.click("#conv-compute")
    wait_until(lambda: page.inner_text("#conv-counter") == "placement 0 of 9", what="the stepper")
    page.click("#conv-next")
    assert page.inner_text("#conv-counter") == "placement 1 of 9"
    assert page.inner_text("#conv-expression") == "output[0][0] = 1*1 + 2*2 + 3*0 + 1*(-1) = 4"
    assert page.locator("#conv-padded td.win").count() == 4
    page.click("#conv-next")
    page.click("#conv-next")
    shot(page, tmp_path, "explorer-convolution")
    page.keyboard.press("ArrowRight")  # from the page, not a field: the arrow keys step
    assert page.inner_text("#conv-counter") == "placement 4 of 9"
    page.click("#conv-end")
    assert page.inner_text("#conv-counter") == "placement 9 of 9"
    cells = [[number(td) for td in row.locator("td").all_inner_texts()] for row in page.locator("#conv-output tr").all()]
    # out[i][j] = x[i][j] + 2*x[i][j+1] - x[i+1][j+1]: out[0][0] = 1 + 4 - 1 = 4, out[1][2] = 2 + 0 - 3 = -1, ...
    assert cells == [[4, 0, 2], [3, 4, -1], [4, 2, 6]]
    x = torch.tensor([[1, 2, 0, 1], [3, 1, 2, 0], [0, 2, 1, 3], [1, 0, 2, 1]]).float()
    k = torch.tensor([[1, 2], [0, -1]]).float()
    assert torch.nn.functional.conv2d(x[None, None], k[None, None])[0, 0].int().tolist() == cells
    page.click("#conv-first")
    assert page.locator("#conv-output td.filled").count() == 0


def hover_cell(page, selector: str, row: int, col: int) -> None:
    """Point at cell (row, col) of the map drawn on the canvas of ``selector``."""
    cell = int(page.get_attribute(selector, "data-cell"))
    page.locator(f"{selector} canvas").hover(position={"x": (col + 0.5) * cell, "y": (row + 0.5) * cell})


def arith(page, role: str) -> list[float]:
    return [float(v) for v in page.locator(f"#filters-arith [data-role='{role}']").evaluate_all(
        "cells => cells.map(c => c.dataset.value)")]


def test_a_trained_convolution_taken_apart_adds_up_to_torch(page, trained_run: Path, tmp_path: Path) -> None:
    from cnnlab.data.bundled import SAMPLES
    from cnnlab.viz.common import model_or_checkpoint, prepare_input

    page.click("#tabs button[data-view='conv']")
    page.select_option("#filters-source", "run:lenet-mnist")
    # LeNet-5's second convolution: 6 input channels, 16 filters of 5x5, a bias, ReLU, 2x2 max pooling.
    page.wait_for_selector("#filters-detail[data-ready='features.3:0']")
    assert page.input_value("#filters-layer") == "features.3" and page.input_value("#filters-image") == "mnist-7"
    page.fill("#filters-filter", "5")
    page.dispatch_event("#filters-filter", "change")
    page.wait_for_selector("#filters-detail[data-ready='features.3:5']")
    assert page.locator("#filters-detail .card[data-channel]").count() == 6
    assert page.locator("#filters-overview .map[data-role='ov-input']").count() == 6
    assert page.locator("#filters-overview .map[data-role='ov-output']").count() == 8
    assert page.locator("#filters-overview .ov-map.chosen").first.get_attribute("data-filter") == "5"
    assert page.locator("#filters-detail .map[data-role='stage-1']").count() == 1  # the pooled map
    assert "ReLU" in page.inner_text("#filters-detail .sum-row") and "max pooling" in page.inner_text("#filters-detail")

    # The same numbers from torch: the checkpoint, the bundled 7, the input of features.3 by a hook.
    model, meta = model_or_checkpoint(trained_run)
    x, _ = prepare_input(SAMPLES / "mnist-7.png", model, meta)
    seen = {}
    model.features[3].register_forward_hook(lambda _m, i, o: seen.update(x=i[0].detach()))
    with torch.no_grad():
        model(x)
    conv = model.features[3]
    w, b = conv.weight.detach()[5], float(conv.bias.detach()[5])
    z = torch.nn.functional.conv2d(seen["x"], w[None])[0, 0] + b

    # Point at output (3, 4): one term per channel, the bias, their sum z and ReLU(z).
    hover_cell(page, "#filters-detail .map[data-role='z']", 3, 4)
    shot(page, tmp_path, "explorer-filters")
    assert page.get_attribute("#filters-arith", "data-unit") == "5,3,4"
    terms = [float((seen["x"][0, c, 3:8, 4:9] * w[c]).sum()) for c in range(6)]
    assert arith(page, "partial") == pytest.approx(terms, abs=1e-3)
    assert arith(page, "bias") == pytest.approx([b], abs=1e-5)
    assert arith(page, "z") == pytest.approx([float(z[3, 4])], abs=1e-3)
    assert arith(page, "stage") == pytest.approx([max(0.0, float(z[3, 4]))], abs=1e-3)
    assert sum(terms) + b == pytest.approx(float(z[3, 4]), abs=1e-4)
    assert page.locator("#filters-detail .map[data-role='input'] .mark.hot").count() == 6  # the window, on each channel
    assert page.locator("#filters-arith table.products td").count() == 25
    # Point at the pooled map: the 2x2 window's maximum of ReLU(z).
    hover_cell(page, "#filters-detail .map[data-role='stage-1']", 1, 2)
    pooled = float(torch.nn.functional.max_pool2d(z.clamp(min=0)[None], 2)[0, 1, 2])
    assert arith(page, "pool") == pytest.approx([pooled], abs=1e-3)
    # Another filter from the overview.
    page.click("#filters-overview .map[data-role='ov-output'][data-index='2'] canvas")
    page.wait_for_selector("#filters-detail[data-ready='features.3:2']")


def test_receptive_field_box_is_drawn_where_the_analyzer_puts_it(page, tmp_path: Path) -> None:
    page.click("#tabs button[data-view='rf']")
    page.select_option("#rf-source", "model:resnet18")
    page.fill("#rf-input", "3x64x64")
    page.fill("#rf-samples", "2")
    page.click("#rf-go")
    page.wait_for_selector("#rf-detail[data-ready]")
    page.select_option("#rf-layer", "layer2.0.conv1")
    page.wait_for_selector("#rf-detail[data-ready='layer2.0.conv1']")
    rect = page.locator("#rf-image-svg rect.field")
    # layer2.0.conv1 at 64x64: field 51, jump 8, padding 25; centre unit (4, 4) -> 4*8 - 25 = 7.
    assert [rect.get_attribute(a) for a in ("x", "y", "width", "height")] == ["7", "7", "51", "51"]
    assert page.locator("#rf-erf-svg rect.field").get_attribute("width") == "51"
    assert page.evaluate("document.querySelector('#rf-erf').naturalWidth") == 64
    assert "100.00%" in page.inner_text("#rf-detail")
    shot(page, tmp_path, "explorer-receptive-field")


def test_inside_a_trained_checkpoint_with_an_uploaded_digit(page, trained_run: Path, tmp_path: Path) -> None:
    from cnnlab.data import load_dataset

    digit = tmp_path / "digit.png"
    Image.fromarray(load_dataset("mnist-5k", limit=10).test.images[3, 0].numpy()).save(digit)
    page.click("#tabs button[data-view='inside']")
    page.select_option("#inside-source", "run:lenet-mnist")
    page.set_input_files("#inside-file", str(digit))
    page.click("#inside-go")
    page.wait_for_selector("#inside-features .fmap-row")
    expected = predict(trained_run, [digit], top=5)[0]["top"]
    shown = page.locator("#inside-predictions li").evaluate_all("items => items.map(li => li.dataset.class)")
    assert shown == [p["class"] for p in expected]
    assert page.locator("#inside-features .fmap-row").count() == 2
    assert page.locator("#inside-features img.fmap").count() == 6 + 8
    widths = page.locator("#inside-features img.fmap").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [28] * 6 + [10] * 8  # LeNet-5's first (6x28x28) and last (16x10x10) convolutions
    assert page.evaluate("document.querySelector('#inside-gradcam').naturalWidth") == 28
    shot(page, tmp_path, "explorer-inside")
    page.fill("#inside-layers", "features.3")
    page.click("#inside-go")
    wait_until(lambda: page.locator("#inside-features .fmap-row").count() == 1, what="one layer's maps")
    assert page.get_attribute("#inside-features .fmap-row", "data-layer") == "features.3"


def test_a_bad_upload_is_a_visible_message(page, tmp_path: Path) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture, whatever the name says")
    page.click("#tabs button[data-view='inside']")
    page.select_option("#inside-source", "run:lenet-mnist")
    page.set_input_files("#inside-file", str(notes))
    page.click("#inside-go")
    page.wait_for_selector("#message:not([hidden])")
    assert page.inner_text("#message") == "the upload is not an image: send PNG, JPEG, GIF, BMP or WebP"


def test_a_runs_curve_appears_while_it_trains(page, runs: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "cnnlab.cli", "train", "--dataset", "mnist-5k", "--limit", "2000", "--epochs", "500",
           "--batch-size", "50", "--eval-batch-size", "500", "--device", "cpu", "--out", str(runs), "--name",
           "live-run", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        page.click("#tabs button[data-view='runs']")
        page.wait_for_selector("#runs-table tr[data-name='live-run']")
        page.click("#runs-table tr[data-name='live-run'] td:nth-child(2)")
        page.wait_for_selector("#run-curves path.series")
        first = int(page.get_attribute("#run-detail", "data-epochs"))
        # The page refreshes by itself: later epochs arrive without a reload.
        wait_until(lambda: int(page.get_attribute("#run-detail", "data-epochs")) > first,
                   what="a later epoch on the page")
        assert proc.poll() is None, "the run finished before the page showed its curve"
        assert page.inner_text("#runs-table tr[data-name='live-run'] .status") == "running"
        page.check("#runs-table tr[data-name='live-run'] .run-check")
        page.check("#runs-table tr[data-name='lenet-mnist'] .run-check")
        page.click("#runs-compare-go")
        page.wait_for_selector("#runs-compare-table")
        assert page.locator("#runs-compare-table thead th").all_inner_texts()[1:] == ["live-run", "lenet-mnist"]
        shot(page, tmp_path, "explorer-runs")
        page.click("#run-detail button.run-open[data-view='arch']")
        page.wait_for_selector("#arch-graph[data-ready='live-run (lenet5)@1x28x28']")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=WAIT_MS / 1000)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # The process has ended, so whatever it saved on Ctrl-C is on disk now.
    assert (runs / "live-run" / "last.pt").exists()


def test_a_link_opens_its_view(page, url: str) -> None:
    page.goto("about:blank")
    page.goto(url + "#conv")  # a fresh load of a link
    page.wait_for_selector("body[data-ready='1']")
    assert page.is_visible("#view-conv") and page.is_hidden("#view-arch")
    page.click("#tabs button[data-view='runs']")
    assert page.url.endswith("#runs")
    page.go_back()  # the address changes view without a reload
    wait_until(lambda: page.is_visible("#view-conv"), what="the convolution view after going back")


def test_compare_view_table_and_plot(page, tmp_path: Path) -> None:
    page.click("#tabs button[data-view='compare']")
    page.wait_for_selector("#compare-table tbody tr")
    page.fill("#compare-models", "resnet18,vgg11,densenet121")
    page.fill("#compare-input", "3x64x64")
    page.click("#compare-go")
    page.wait_for_selector("#compare-table tbody tr[data-name='densenet121']")
    for name in ("resnet18", "vgg11", "densenet121"):
        cell = page.inner_text(f"#compare-table tr[data-name='{name}'] td[data-key='params']")
        assert number(cell) == cnnlab.analyze(name, (3, 64, 64)).params
    assert page.locator("#compare-plot circle.point").count() == 3
    shot(page, tmp_path, "explorer-compare")


def test_an_error_clears_the_views_result_and_a_success_clears_the_error(page) -> None:
    page.fill("#arch-input", "3x32x32")
    page.click("#arch-go")
    page.wait_for_selector("#arch-graph[data-ready='resnet18@3x32x32']")
    page.fill("#arch-input", "3x100000x100000")
    page.click("#arch-go")
    page.wait_for_selector("#message:not([hidden])")
    # Nothing of the previous result stays under the message.
    assert page.locator("#arch-graph .node").count() == 0
    assert page.locator("#arch-table tbody tr").count() == 0
    assert page.inner_text("#arch-summary") == "" and page.get_attribute("#arch-graph", "data-ready") is None
    page.fill("#arch-input", "3x64x64")
    page.click("#arch-go")
    page.wait_for_selector("#arch-graph[data-ready='resnet18@3x64x64']")
    assert page.is_hidden("#message")
    page.click("#tabs button[data-view='stack']")
    page.wait_for_selector("#stack-b-table")
    page.fill("#stack-a", "conv 64 k99")
    page.click("#stack-go")
    page.wait_for_selector("#message:not([hidden])")
    assert page.locator("#stack-a-table, #stack-b-table").count() == 0
    page.fill("#stack-a", "conv 64 k3 p1")
    page.click("#stack-go")
    page.wait_for_selector("#stack-a-table")
    assert page.is_hidden("#message")


def test_narrow_window_and_distinct_axis_ticks(page, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 800, "height": 900})
    page.click("#tabs button[data-view='stack']")
    page.wait_for_selector("#stack-b-table")
    table = page.locator("#stack-b-table").bounding_box()
    assert table["x"] >= 0 and table["x"] + table["width"] <= 800  # Stack B is not cut off
    assert page.evaluate("document.documentElement.scrollWidth") <= 800  # nor is anything else
    # Close accuracies (98.1% to 99.5%) get labels with a decimal, never the same label twice.
    labels = page.evaluate("import('/static/charts.js').then(m => m.tickLabels(0.981, 0.995, {percent: true}).map(t => t.text))")
    assert len(labels) >= 3 and len(set(labels)) == len(labels) and "98.5%" in labels
    page.set_viewport_size({"width": 1400, "height": 900})
    page.click("#tabs button[data-view='runs']")
    page.click("#runs-table tr[data-name='lenet-mnist'] td:nth-child(2)")
    page.wait_for_selector("#run-curves path.series")
    for chart in page.locator("#run-curves svg.chart").all():
        ticks = chart.locator(".y-tick").all_text_contents()
        assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), ticks


# English words of the page: every dictionary entry whose Korean differs, as a pattern ({slots} match anything).
ENGLISH_LEFT = r"""
async () => {
  const { STRINGS } = await import('/static/i18n.js');
  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const slot = /\{\w+\}/g;
  const patterns = Object.entries(STRINGS.en)
    .filter(([k, v]) => typeof v === 'string' && v !== STRINGS.ko[k] && /[A-Za-z]{2}/.test(v.replace(slot, '')))
    .map(([k, v]) => [k, new RegExp('^' + v.split(slot).map(escape).join('[\\s\\S]*') + '$')]);
  const found = [];
  const check = (text, where) => {
    const s = text.trim();
    if (!s) return;
    for (const [k, re] of patterns) if (re.test(s)) found.push(`${k}: ${s} (${where})`);
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const host = n.parentElement;
    if (!host || host.closest('[translate=no], option, script, style, #lang') || !host.checkVisibility()) continue;
    check(n.textContent, host.tagName);
  }
  for (const e of document.querySelectorAll('[placeholder], [title], img[alt]')) {
    if (!e.checkVisibility() || e.closest('[translate=no], #lang')) continue;
    for (const a of ['placeholder', 'title', 'alt']) if (e.getAttribute(a)) check(e.getAttribute(a), `${e.tagName}@${a}`);
  }
  for (const s of document.querySelectorAll('select')) {
    if (s.checkVisibility() && s.selectedOptions[0]) check(s.selectedOptions[0].text, 'select');
  }
  return found;
}
"""


def test_korean_by_default_for_a_korean_browser_switch_and_remembered(browser, url: str, trained_run: Path,
                                                                       tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ko-KR")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        assert page.get_attribute("html", "lang") == "ko"
        assert page.inner_text("#tabs button[data-view='arch']") == "구조"
        # Each view, with its results drawn, has no English word of the page left.
        english: list[str] = page.evaluate(ENGLISH_LEFT)
        views = [("stack", "#stack-b-table"), ("conv", "#filters-detail[data-ready]"), ("rf", None),
                 ("inside", None), ("runs", "#runs-table tr[data-name='lenet-mnist']"), ("compare", None)]
        page.evaluate("document.querySelector('#compare-models').value = 'resnet18,vgg11'")
        page.evaluate("document.querySelector('#compare-input').value = '3x32x32'")
        for view, ready in views:
            page.click(f"#tabs button[data-view='{view}']")
            if view == "conv":
                page.select_option("#filters-source", "run:lenet-mnist")
                page.wait_for_selector(ready)
                hover_cell(page, "#filters-detail .map[data-role='z']", 2, 2)
                english += page.evaluate(ENGLISH_LEFT)
                hover_cell(page, "#filters-detail .map[data-role='stage-1']", 1, 1)
                english += page.evaluate(ENGLISH_LEFT)
                page.click("#conv-mode-hand")
                page.wait_for_selector("#conv-output tr")
                page.click("#conv-next")
            elif view == "rf":
                page.fill("#rf-input", "3x32x32")
                page.fill("#rf-samples", "1")
                page.click("#rf-go")
                page.wait_for_selector("#rf-detail[data-ready]")
            elif view == "inside":
                page.select_option("#inside-source", "run:lenet-mnist")
                page.click("#inside-go")
                page.wait_for_selector("#inside-features .fmap-row")
            elif view == "runs":
                page.wait_for_selector(ready)
                page.click("#runs-table tr[data-name='lenet-mnist'] td:nth-child(2)")
                page.wait_for_selector("#run-curves path.series")
                page.check("#runs-table tr[data-name='lenet-mnist'] .run-check")
                page.click("#runs-compare-go")
                page.wait_for_selector("#runs-compare-table")
            elif view == "compare":
                page.wait_for_selector("#compare-table tbody tr[data-name='vgg11']")
            else:
                page.wait_for_selector(ready)
            english += page.evaluate(ENGLISH_LEFT)
        assert not english, english
        page.click("#tabs button[data-view='conv']")
        page.click("#conv-mode-net")
        shot(page, tmp_path, "explorer-korean")
        # Switch to English, and the choice outlives a reload; then back to Korean.
        page.click("#lang button[data-lang='en']")
        assert page.inner_text("#tabs button[data-view='arch']") == "Architecture"
        assert page.get_attribute("html", "lang") == "en"
        assert page.inner_text("#filters-detail h3").startswith("Filter 0 of features.3")
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        assert page.inner_text("#tabs button[data-view='compare']") == "Compare"
        page.click("#lang button[data-lang='ko']")
        assert page.inner_text("#tabs button[data-view='compare']") == "모델 비교"
        assert page.evaluate("localStorage.getItem('cnnlab.language')") == "ko"
        # Every entry has both languages.
        keys = page.evaluate("import('/static/i18n.js').then(m => [Object.keys(m.STRINGS.en), Object.keys(m.STRINGS.ko)])")
        assert sorted(keys[0]) == sorted(keys[1])
    finally:
        context.close()
    assert not errors, errors


def test_a_stopped_server_is_one_clear_message(browser, runs: Path) -> None:
    from cnnlab.web.server import serving

    context = browser.new_context()
    page = context.new_page()
    try:
        with serving(runs) as url:
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
        page.click("#arch-go")  # the server has stopped
        page.wait_for_selector("#message:not([hidden])")
        assert page.inner_text("#message") == "cannot reach the cnnlab server: is `cnnlab serve` still running?"
    finally:
        context.close()
