"""The explorer's JSON API: every endpoint, its numbers against independent sources, and every bad request.

Most tests use Flask's test client (no socket); the last ones start the real threaded server
and ``cnnlab serve`` to check that bad requests never stop it and that Ctrl-C shuts it down.
"""

from __future__ import annotations

import base64
import io
import json
import math
import select
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("flask")

import torch
import torchvision
from PIL import Image

import cnnlab
from cnnlab.lab import LIMITS
from cnnlab.runs import RunDir
from cnnlab.train.inference import predict
from cnnlab.web.app import ENDPOINTS, create_app

WAIT_S = 120  # generous: a busy 2-core machine can take tens of seconds to import torch


@pytest.fixture(scope="module")
def runs(trained_run: Path) -> Path:
    return trained_run.parent


@pytest.fixture(scope="module")
def client(runs: Path):
    return create_app(runs).test_client()


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def decode_data_url(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def error(response, status: int) -> str:
    """The one-line message of a JSON error answer with ``status``."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error", "status"} and body["status"] == status
    assert "Traceback" not in body["error"] and "\n" not in body["error"]
    return body["error"]


def still_answers(client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200 and response.get_json()["ok"] is True


# --------------------------------------------------------------------------------------
# Page, listing, models
# --------------------------------------------------------------------------------------


def test_page_and_static_files_are_served_with_safe_headers(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and b"cnnlab" in page.data and b"/static/app.js" in page.data
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_api_lists_every_endpoint_and_the_limits(client) -> None:
    body = client.get("/api").get_json()
    assert body["endpoints"] == ENDPOINTS
    assert body["limits"]["upload_bytes"] == 5 * 2**20
    assert body["work"]["deadline_s"] == 30 and body["work"]["queue_size"] == 16
    assert body["work"]["memory_budget_bytes"] >= 512 * 2**20
    # Every documented route answers something other than 404.
    for route in ENDPOINTS:
        method, path = route.split(" ")
        path = path.split("?")[0].replace("<name>", "lenet-mnist")
        response = client.open(path, method=method)
        assert response.status_code != 404, route


def test_health_names_the_runs_folder_but_no_absolute_path(client, runs: Path) -> None:
    body = client.get("/api/health").get_json()
    assert body == {"ok": True, "version": cnnlab.__version__, "runs": runs.name,
                    "work": {"running": 0, "queued": 0, "queue_size": 16, "done": body["work"]["done"]}}


def test_models_are_the_registry(client) -> None:
    models = client.get("/api/models").get_json()["models"]
    assert [m["name"] for m in models] == cnnlab.list_models()
    by_name = {m["name"]: m for m in models}
    assert by_name["resnet18"]["default_input"] == [3, 224, 224]
    assert by_name["resnet18"]["torchvision"] == "resnet18"
    assert by_name["lenet5"]["default_input"] == [1, 28, 28]


# --------------------------------------------------------------------------------------
# Architecture
# --------------------------------------------------------------------------------------


def test_analyze_matches_torchvision_and_real_shapes(client) -> None:
    body = client.get("/api/analyze?model=resnet18&input=3x64x64").get_json()
    reference = torchvision.models.resnet18()
    assert body["totals"]["params"] == sum(p.numel() for p in reference.parameters()) == 11_689_512
    assert body["input_size"] == [3, 64, 64]
    # Output shapes of every module against a real forward pass with hooks.
    seen: dict[str, list[int]] = {}
    handles = [m.register_forward_hook(lambda _m, _i, o, n=n: seen.__setitem__(n, list(o.shape)))
               for n, m in reference.named_modules() if n and not list(m.children())]
    reference.eval()
    with torch.no_grad():
        reference(torch.zeros(1, 3, 64, 64))
    for h in handles:
        h.remove()
    modules = {layer["scope"]: layer for layer in body["layers"] if layer["kind"] == "module"}
    for name, shape in seen.items():
        assert modules[name]["output_shape"] == shape, name
    conv = modules["layer1.0.conv1"]
    assert conv["explain"][2] == "OH = floor((16 + 2*1 - 1*(3-1) - 1)/1) + 1 = 16"
    assert conv["rf_size"] == [19, 19] and conv["rf_stride"] == [4, 4]
    # Branches are visible: the residual adds have two inputs.
    adds = [layer for layer in body["layers"] if len(layer["inputs"]) == 2]
    assert len(adds) == 8


def test_analyze_downloads_csv_and_markdown(client) -> None:
    import csv

    body = client.get("/api/analyze?model=resnet18&input=3x64x64").get_json()
    response = client.get("/api/analyze?model=resnet18&input=3x64x64&format=csv")
    assert response.headers["Content-Disposition"] == 'attachment; filename="resnet18-3x64x64.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["name"] for r in rows] == [layer["name"] for layer in body["layers"]]
    assert sum(int(r["params"]) for r in rows) == body["totals"]["params"]
    markdown = client.get("/api/analyze?model=resnet18&input=3x64x64&format=md").get_data(as_text=True)
    assert markdown.startswith("### resnet18 at 1x3x64x64\n\n| name | op | output | params |")
    assert error(client.get("/api/analyze?model=resnet18&format=xml"), 400) == "format must be json, csv or md, got 'xml'"


def test_analyze_a_runs_checkpoint(client, trained_run: Path) -> None:
    body = client.get("/api/analyze?run=lenet-mnist").get_json()
    state = torch.load(trained_run / "best.pt", weights_only=True)["state_dict"]
    assert body["model"] == "lenet-mnist (lenet5)"
    assert body["input_size"] == [1, 28, 28]  # the run's data, not a guess
    assert body["totals"]["params"] == sum(v.numel() for k, v in state.items() if "running" not in k
                                           and "num_batches" not in k)


def test_analyze_bad_requests(client, tmp_path: Path) -> None:
    assert error(client.get("/api/analyze?model=resnet19"), 400) == (
        "unknown model 'resnet19': did you mean resnet18, resnet152, resnet110? `cnnlab models` lists every model")
    assert error(client.get("/api/analyze?model=resnet18&input=3x100000x100000"), 400) == (
        "input 3x100000x100000 is too large for the explorer: at most 64 channels and 1024 pixels a side "
        "(`cnnlab inspect` takes any size)")
    assert error(client.get("/api/analyze?model=alexnet&input=3x8x8"), 400) == (
        "input 3x8x8 is too small for alexnet: the spatial size runs out at layer 'features.2' (its input would "
        "be 64x1x1); the smallest input that works is 3x63x63")
    assert error(client.get("/api/analyze?model=resnet18&input=abc"), 400) == (
        "cannot read shape 'abc': write it as CxHxW, e.g. 3x224x224")
    assert error(client.get("/api/analyze?model=resnet18&run=lenet-mnist"), 400) == (
        "give either model=NAME (a zoo model) or run=NAME (a run's checkpoint), not both")
    assert error(client.get("/api/analyze?input=3x32x32"), 400) == (
        "no model: give model=NAME (a zoo model, see /api/models) or run=NAME (a run's checkpoint, see /api/runs)")
    assert error(client.get("/api/analyze?model=resnet18&level=2"), 400) == (
        "unknown parameter 'level': this endpoint takes model, run, input, batch, optimizer, depth, format")
    assert error(client.get("/api/analyze?model=resnet18&depth=0"), 400) == "depth must be from 1 to 64, got 0"
    assert error(client.get("/api/analyze?model=resnet18&batch=x"), 400) == (
        "batch must be a whole number from 1 to 1,048,576, got 'x'")
    assert error(client.get("/api/analyze?model=resnet18&optimizer=lbfgs"), 400) == (
        "optimizer must be one of sgd, sgd-nomomentum, adam, adamw, none, got 'lbfgs'")
    # A user-code spec is only a name here: the file is never imported.
    evil = tmp_path / "evil.py"
    marker = tmp_path / "ran"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\nimport torch\nnet = torch.nn.Conv2d(3, 3, 3)\n")
    assert error(client.get(f"/api/analyze?model={evil}:net"), 400).startswith(f"unknown model '{evil}:net'")
    assert not marker.exists()
    still_answers(client)


def test_a_checkpoint_naming_user_code_is_refused(tmp_path: Path) -> None:
    from cnnlab.checkpoint import save_checkpoint

    evil = tmp_path / "evil.py"
    marker = tmp_path / "ran"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\nimport torch\nnet = torch.nn.Conv2d(3, 3, 3)\n")
    runs = tmp_path / "runs"
    (runs / "odd").mkdir(parents=True)
    (runs / "odd" / "config.json").write_text(json.dumps({"model": "lenet5"}))
    save_checkpoint(runs / "odd" / "best.pt", f"{evil}:net", {}, {})
    client = create_app(runs).test_client()
    for url in ("/api/analyze?run=odd", "/api/rf?run=odd&samples=1"):
        assert error(client.get(url), 400).startswith(f"unknown model '{evil}:net'"), url
    assert error(client.post("/api/inside", data={"run": "odd"}), 400).startswith(f"unknown model '{evil}:net'")
    assert not marker.exists()


# --------------------------------------------------------------------------------------
# Runs and path safety
# --------------------------------------------------------------------------------------


def test_runs_list_and_detail(client, trained_run: Path) -> None:
    listed = {r["name"]: r for r in client.get("/api/runs").get_json()["runs"]}
    run = listed["lenet-mnist"]
    result = json.loads((trained_run / "result.json").read_text())
    assert run["status"] == "finished" and run["model"] == "lenet5" and run["dataset"] == "mnist-5k"
    assert run["epochs_done"] == 2 and run["has_checkpoint"] is True
    assert run["test_top1"] == result["test"]["top1"]
    detail = client.get("/api/runs/lenet-mnist").get_json()
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert detail["metrics"] == records
    assert detail["config"]["model"] == "lenet5"


def test_a_run_in_progress_is_read_live(tmp_path: Path) -> None:
    folder = tmp_path / "live"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": "lenet5", "dataset": "mnist", "epochs": 5}))
    first = {"epoch": 1, "step": 10, "train_loss": 1.0, "val_loss": 0.9, "train_top1": 0.6, "val_top1": 0.7}
    # The second line is still being written: it is left for the next read, not reported as damage.
    (folder / "metrics.jsonl").write_text(json.dumps(first) + "\n" + '{"epoch": 2, "step"')
    client = create_app(tmp_path).test_client()
    writer = RunDir(folder).acquire()  # what a training process holds while it writes the run
    try:
        detail = client.get("/api/runs/live").get_json()
        assert detail["metrics"] == [first] and detail["status"] == "running" and detail["epochs_done"] == 1
    finally:
        writer.release()
    assert client.get("/api/runs/live").get_json()["status"] == "stopped"
    assert error(client.get("/api/analyze?run=live"), 400) == (
        "run 'live' has no checkpoint yet (best.pt or last.pt): wait for its first epoch")


def test_path_traversal_is_refused(client, runs: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({"model": "lenet5"}))
    link = runs / "escape"
    link.symlink_to(outside, target_is_directory=True)
    try:
        not_a_name = ("run {!r} is not a run name: give the name of a folder inside the runs folder "
                      "(letters, digits, '.', '_', '-'), or EXPERIMENT/RUN for an experiment's run; no other paths")
        assert error(client.get("/api/runs/.."), 400) == not_a_name.format("..")
        assert error(client.get("/api/runs/..%2F..%2Fetc%2Fpasswd"), 400) == not_a_name.format("../../etc/passwd")
        assert error(client.get("/api/runs/%2Fetc"), 404) == (
            "no such page or endpoint /api/runs//etc: GET /api lists the endpoints")
        assert error(client.get("/api/analyze?run=../lenet-mnist"), 400) == not_a_name.format("../lenet-mnist")
        assert error(client.get("/api/rf?run=/etc/passwd"), 400) == not_a_name.format("/etc/passwd")
        assert error(client.post("/api/inside", data={"run": "..\\..\\x"}), 400) == not_a_name.format("..\\..\\x")
        assert error(client.get("/api/runs/escape"), 400) == (
            f"run 'escape' points outside the runs folder {runs.name}: only runs inside it can be opened")
        assert "escape" not in [r["name"] for r in client.get("/api/runs").get_json()["runs"]]
        assert error(client.get("/api/runs/nothing-here"), 400) == (
            f"no run 'nothing-here' in {runs.name}: pick one from the runs list")
    finally:
        link.unlink()
    still_answers(client)


# --------------------------------------------------------------------------------------
# Layer calculator
# --------------------------------------------------------------------------------------


def test_stack_two_3x3_against_one_5x5_matches_torch(client) -> None:
    two = client.post("/api/stack", json={"input": "64x32x32",
                                          "layers": ["conv 64 k3 p1 nobias", "conv 64 k3 p1 nobias"]}).get_json()
    one = client.post("/api/stack", json={"input": "64x32x32", "layers": "conv 64 k5 p2 nobias\n# a comment\n"})
    one = one.get_json()
    # By hand: 2 * (64*64*3*3) = 73,728 against 64*64*5*5 = 102,400; both see 5x5 pixels.
    assert two["totals"]["params"] == 73_728 and one["totals"]["params"] == 102_400
    assert two["totals"]["receptive_field"]["size"] == one["totals"]["receptive_field"]["size"] == [5, 5]
    stack3 = torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3, padding=1, bias=False),
                                 torch.nn.Conv2d(64, 64, 3, padding=1, bias=False))
    assert sum(p.numel() for p in stack3.parameters()) == 73_728
    assert list(stack3(torch.zeros(1, 64, 32, 32)).shape[1:]) == two["output_shape"] == [64, 32, 32]
    assert two["layers"][0]["explain"][-1] == "MACs = C_out*OH*OW * C_in/groups*KH*KW = 64*32*32 * 64*3*3 = 37,748,736"
    grammar = client.get("/api").get_json()["stack_grammar"]
    assert grammar.startswith("Layer grammar") and "conv OUT kK" in grammar


def test_stack_bad_requests(client) -> None:
    def post(body):
        return client.post("/api/stack", json=body)

    assert error(post({"input": "64x32x32", "layers": ["conv x"]}), 400) == (
        "layer 1 (conv x): cannot read 'x' in layer 'conv x'; see `cnnlab calc stack --help` for the grammar")
    assert error(post({"input": "64x32x32", "layers": ["pool k40"]}), 400) == (
        "layer 1 (pool k40): the pooling window (effective size 40) does not fit in the padded input along H "
        "(32 + 2*0 = 32): the input must be at least 40 along H")
    assert error(post({"input": "64x32x32", "layers": []}), 400) == (
        'layers is empty: write one layer per line, e.g. "conv 64 k3 p1"')
    assert error(post({"input": "64x32x32", "layers": ["relu"] * 65}), 400) == (
        "at most 64 layers of up to 200 characters each")
    assert error(post({"input": "3x9999999x3", "layers": ["relu"]}), 400) == (
        "input 3x9999999x3 is out of range: CxL, CxHxW or CxDxHxW with sizes up to 1,000,000")
    assert error(post({"layers": ["relu"]}), 400) == "input is missing: give the input shape as CxHxW, e.g. 3x32x32"
    assert error(post({"input": "64x32x32", "layers": [1, 2]}), 400) == (
        'layers must be a list of strings like "conv 64 k3 p1" (or one per line)')
    assert error(post({"input": "64x32x32", "layers": ["relu"], "x": 1}), 400) == (
        "unknown field 'x': use input, layers")
    assert error(client.post("/api/stack", data="{"), 400) == (
        'send a JSON body (Content-Type: application/json) like {"input": "3x32x32", "layers": ["conv 64 k3 p1"]}')
    still_answers(client)


# --------------------------------------------------------------------------------------
# Convolution stepper
# --------------------------------------------------------------------------------------


def test_conv_steps_are_the_hand_calculation(client) -> None:
    x = [[1, 2, 0, 1], [3, 1, 2, 0], [0, 2, 1, 3], [1, 0, 2, 1]]
    k = [[1, 2], [0, -1]]
    body = client.post("/api/conv", json={"input": "1,2,0,1;3,1,2,0;0,2,1,3;1,0,2,1", "kernel": k}).get_json()
    # out[i][j] = x[i][j] + 2*x[i][j+1] - x[i+1][j+1], e.g. out[0][0] = 1 + 2*2 - 1 = 4, out[1][2] = 2 + 0 - 3 = -1
    assert body["output"] == [[4, 0, 2], [3, 4, -1], [4, 2, 6]]
    assert len(body["placements"]) == 9
    assert body["placements"][5]["expression"] == "2*1 + 0*2 + 1*0 + 3*(-1) = -1"
    assert body["output_size_formulas"] == ["OH = floor((4 + 2*0 - (2-1) - 1)/1) + 1 = 3",
                                            "OW = floor((4 + 2*0 - (2-1) - 1)/1) + 1 = 3"]
    torch_out = torch.nn.functional.conv2d(torch.tensor(x).float()[None, None], torch.tensor(k).float()[None, None])
    assert torch_out[0, 0].int().tolist() == body["output"]
    strided = client.post("/api/conv", json={"input": x, "kernel": "1,1;1,1", "stride": 2, "padding": "1",
                                             "dilation": [1, 1], "bias": 1}).get_json()
    ref = torch.nn.functional.conv2d(torch.tensor(x).float()[None, None], torch.ones(1, 1, 2, 2), torch.ones(1),
                                     stride=2, padding=1)
    assert strided["output"] == ref[0, 0].int().tolist() == [[2, 3, 2], [4, 7, 4], [2, 3, 2]]


def test_conv_bad_requests(client) -> None:
    assert error(client.post("/api/conv", data="not json"), 400) == (
        'send a JSON body (Content-Type: application/json) like {"input": "1,2;3,4", "kernel": "1,0;0,1"}')
    assert error(client.post("/api/conv", json={"input": "1,2;3", "kernel": "1"}), 400) == (
        "input: every row needs the same number of values, got rows of [1, 2] values")
    assert error(client.post("/api/conv", json={"input": "1,2;3,4", "kernel": "1,1,1;1,1,1;1,1,1"}), 400) == (
        "the 3x3 kernel (dilation 1) does not fit the 2x2 padded input: use a smaller kernel or more padding")
    assert error(client.post("/api/conv", json={"stride": 0}), 400) == "stride must be from 1 to 32, got 0"
    assert error(client.post("/api/conv", json={"stride": [1, 2, 3]}), 400) == (
        "stride must be one whole number or two (rows, columns), got [1, 2, 3]")
    assert error(client.post("/api/conv", json={"input": "1,x;3,4"}), 400) == (
        "input: 'x' is not a number (write rows like '1,2,3;4,5,6')")
    assert error(client.post("/api/conv", json={"kernel": {"a": 1}}), 400) == (
        "kernel must be rows like '1,2,3;4,5,6' or a list of lists of numbers")
    assert error(client.post("/api/conv", json={"weights": 1}), 400) == (
        "unknown field 'weights': use input, kernel, stride, padding, dilation, bias")
    assert error(client.post("/api/conv", json=[1, 2]), 400) == (
        'send a JSON object like {"input": "1,2;3,4", "kernel": "1,0;0,1"}')
    big = ";".join([",".join(["1"] * 40)] * 40)
    assert error(client.post("/api/conv", json={"input": big}), 400) == (
        "input is 40x40: explain is for small examples, at most 32x32")
    assert error(client.get("/api/conv"), 405) == "GET is not allowed on /api/conv: GET /api lists the endpoints"
    still_answers(client)


# --------------------------------------------------------------------------------------
# Receptive field
# --------------------------------------------------------------------------------------


def test_rf_box_is_the_analyzers_field_and_holds_all_the_gradient(client) -> None:
    body = client.get("/api/rf?model=resnet18&input=3x64x64&layer=layer2.0.conv1&samples=2").get_json()
    record = next(r for r in cnnlab.analyze("resnet18", (3, 64, 64)).layers if r.name == "layer2.0.conv1")
    # By hand: conv1 7 (jump 2, padding 3); max pool 7 + 2*2 = 11 (jump 4, padding 3 + 1*2 = 5); four 3x3
    # convolutions of layer1 add 2*4 each: 43 (padding 5 + 4*4 = 21); layer2.0.conv1 adds 2*4: 51 (padding 25),
    # and its stride 2 makes the jump 8.
    assert body["layer"]["rf_size"] == record.rf_size == [51, 51]
    # The centre unit of the 8x8 map is (4, 4): its field starts at 4 * jump 8 - padding 25 = 7.
    assert body["unit"] == [4, 4] and body["layer"]["rf_stride"] == [8, 8] and body["layer"]["rf_padding"] == [25, 25]
    assert body["box"] == {"top": 7, "left": 7, "height": 51, "width": 51}
    # No gradient can reach a pixel outside the theoretical field. The two float32 sums (box and
    # whole map) round differently, so equal masses agree to about 1e-7, not exactly.
    assert body["erf_mass_inside_box"] == pytest.approx(1.0, abs=1e-5)
    assert decode_data_url(body["erf"]).size == (64, 64)
    assert decode_data_url(body["image"]).size == (64, 64)
    default = client.get("/api/rf?model=resnet18&input=3x64x64&samples=1").get_json()
    assert default["layer"]["rf_size"][0] <= 64  # the deepest layer whose field fits
    names = [layer["name"] for layer in default["layers"]]
    assert names.index(default["layer"]["name"]) >= names.index("layer2.0.conv1")


def test_rf_of_a_trained_checkpoint_and_bad_requests(client) -> None:
    body = client.get("/api/rf?run=lenet-mnist&samples=2").get_json()
    assert body["input_size"] == [1, 28, 28] and body["weights"] == "trained (checkpoint)"
    assert error(client.get("/api/rf?model=resnet18&input=3x512x512"), 400) == (
        "input 3x512x512 is too large for the explorer: at most 64 channels and 256 pixels a side "
        "(`cnnlab inspect` takes any size)")
    assert error(client.get("/api/rf?model=resnet18&input=3x64x64&samples=1000"), 400) == (
        "samples must be from 1 to 32, got 1000")
    message = error(client.get("/api/rf?model=lenet5&layer=fc1"), 400)
    assert message.startswith("lenet5 has no convolution or pooling layer 'fc1': choose one of ")
    still_answers(client)


# --------------------------------------------------------------------------------------
# One convolution, channel by channel
# --------------------------------------------------------------------------------------


def test_filters_of_a_trained_run_add_up_to_torchs_convolution(client, trained_run: Path) -> None:
    from cnnlab.data.bundled import SAMPLES
    from cnnlab.viz.common import model_or_checkpoint, prepare_input

    body = client.get("/api/filters?run=lenet-mnist&filter=9&image=mnist-3").get_json()
    layer = body["layer"]
    # The default: LeNet-5's first convolution that reads several channels (6 maps of 14x14).
    assert layer["name"] == "features.3" and layer["input_shape"] == [6, 14, 14]
    assert layer["output_shape"] == [16, 10, 10] and layer["kernel_size"] == [5, 5] and layer["bias"] is True
    assert body["trained"] is True and body["image_name"] == "mnist-3" and len(body["images"]) == 10
    assert body["filters"] == list(range(8, 16))  # the eight filters around the one in detail
    assert [(s["name"], s["op"]) for s in body["stages"]] == [("features.4", "ReLU"), ("features.5", "MaxPool2d")]
    assert body["stages"][1]["kernel_size"] == [2, 2] and body["stages"][1]["stride"] == [2, 2]
    assert body["predictions"][0]["class"] == predict(trained_run, [SAMPLES / "mnist-3.png"], top=1)[0]["top"][0]["class"]

    # Independently: the same checkpoint, the input of features.3 by a hook, torch's conv2d.
    model, meta = model_or_checkpoint(trained_run)
    x, _ = prepare_input(SAMPLES / "mnist-3.png", model, meta)
    seen = {}
    model.features[3].register_forward_hook(lambda _m, i, o: seen.update(x=i[0], z=o))
    with torch.no_grad():
        model(x)
    conv = model.features[3]
    z = torch.nn.functional.conv2d(seen["x"], conv.weight, conv.bias)[0].detach()
    f = body["filter"]
    assert f["index"] == 9 and f["channels"] == list(range(6)) and f["rest"] is None
    assert f["bias"] == pytest.approx(float(conv.bias[9].detach()), abs=1e-6)
    tol = dict(rtol=1e-4, atol=1e-4)
    assert torch.allclose(torch.tensor(f["output"]), z[9], **tol)
    assert torch.allclose(torch.tensor(body["output"]), z[8:16], **tol)
    assert torch.allclose(torch.tensor(f["weights"]), conv.weight[9].detach(), **tol)
    assert torch.allclose(torch.tensor(body["input"]["padded"]), seen["x"][0], **tol)  # no padding in features.3
    # The output is the sum over the channels of each channel's map, plus the bias.
    assert torch.allclose(torch.tensor(f["partials"]).sum(0) + f["bias"], z[9], **tol)
    # One partial by hand: channel 2 at output (4, 6) is the 5x5 window times the kernel slice.
    window = torch.tensor(body["input"]["padded"][2])[4:9, 6:11]
    assert float((window * torch.tensor(f["weights"][2])).sum()) == pytest.approx(f["partials"][2][4][6], abs=1e-3)
    relu, pool = (torch.tensor(s["values"]) for s in body["stages"])
    assert torch.allclose(relu, z[8:16].clamp(min=0), **tol)
    assert torch.allclose(pool, torch.nn.functional.max_pool2d(z[8:16].clamp(min=0), 2), **tol)


def test_filters_of_a_zoo_model_and_bad_requests(client) -> None:
    body = client.get("/api/filters?model=resnet18&layer=layer1.0.conv1").get_json()
    assert body["input_size"] == [3, 64, 64]  # the view's inputs are at most 64 pixels a side
    assert body["trained"] is False and body["images"] == [] and body["image_name"] is None
    f = body["filter"]
    # 64 input channels: 8 shown, the other 56 summed in one map, so the terms still add up.
    assert len(f["partials"]) == 8 and f["rest_channels"] == 56 and f["bias"] == 0
    total = torch.tensor(f["partials"]).sum(0) + torch.tensor(f["rest"])
    assert torch.allclose(total, torch.tensor(f["output"]), rtol=1e-3, atol=1e-3)
    assert body["layer"]["padding"] == {"top": 1, "bottom": 1, "left": 1, "right": 1}
    assert [s["op"] for s in body["stages"]] == ["BatchNorm2d", "ReLU"]  # then conv2: the chain stops
    assert error(client.get("/api/filters?run=lenet-mnist&layer=features.3&filter=16"), 400) == (
        "filter must be from 0 to 15: features.3 has 16 filters, got 16")
    assert error(client.get("/api/filters?run=lenet-mnist&layer=classifier.0"), 400) == (
        "the model has no convolution 'classifier.0': valid names are features.0, features.3")
    assert error(client.get("/api/filters?run=lenet-mnist&image=cat"), 400).startswith(
        "image 'cat' is not a bundled test image of this network's data: choose one of mnist-0, mnist-1")
    assert error(client.get("/api/filters?model=resnet18&image=mnist-3"), 400) == (
        "image 'mnist-3' is not a bundled test image of this network's data: it sees the sample photo, "
        "leave image out")
    assert error(client.get("/api/filters?model=resnet18&filter=-1"), 400) == (
        "filter must be from 0 to 1,000,000, got -1")
    still_answers(client)


# --------------------------------------------------------------------------------------
# Inside a trained network
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit(tmp_path_factory) -> Path:
    """The first test digit of MNIST-5k as a PNG file."""
    from cnnlab.data import load_dataset

    ds = load_dataset("mnist-5k", limit=10)
    path = tmp_path_factory.mktemp("img") / "digit.png"
    Image.fromarray(ds.test.images[0, 0].numpy()).save(path)
    return path


def test_inside_prediction_matches_predict_and_shows_maps(client, trained_run: Path, digit: Path) -> None:
    response = client.post("/api/inside", data={"run": "lenet-mnist", "top": "3",
                                                "image": (io.BytesIO(digit.read_bytes()), "digit.png")})
    body = response.get_json()
    assert response.status_code == 200, body
    expected = predict(trained_run, [digit], top=3)[0]["top"]
    assert [p["class"] for p in body["predictions"]] == [p["class"] for p in expected]
    for got, want in zip(body["predictions"], expected, strict=True):
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-5)
    assert body["weights"] == "trained (checkpoint)"
    layers = [f["layer"] for f in body["features"]]
    assert layers == ["features.0", "features.3"]  # LeNet-5's first and last convolution
    assert [len(f["images"]) for f in body["features"]] == [6, 8]  # 6 maps, then the first 8 of 16
    assert decode_data_url(body["features"][1]["images"][0]).size == (10, 10)
    assert body["conv_layers"] == ["features.0", "features.3"]
    assert body["gradcam"]["class"] == body["predictions"][0]["class"]
    assert decode_data_url(body["gradcam"]["image"]).size == (28, 28)


def test_inside_named_layers(client) -> None:
    body = client.post("/api/inside", data={"model": "resnet20", "layers": "layer2.0.conv1, layer3"}).get_json()
    assert [(f["layer"], f["shape"]) for f in body["features"]] == [("layer2.0.conv1", [32, 16, 16]),
                                                                   ("layer3", [64, 8, 8])]


def test_inside_zoo_model_with_the_sample_photo(client) -> None:
    body = client.post("/api/inside", data={"model": "resnet20"}).get_json()
    assert body["input_size"] == [3, 32, 32] and len(body["predictions"]) == 5
    assert body["predictions"][0]["class"].startswith("class ")
    assert body["weights"].startswith("random (seed 0)")


def test_inside_bad_uploads(client) -> None:
    def post(data: bytes, name: str = "x.png", mimetype: str = "image/png", **form: str):
        return client.post("/api/inside", data={"run": "lenet-mnist", **form,
                                                "image": (io.BytesIO(data), name, mimetype)})

    assert error(post(b"hello, not a picture"), 400) == "the upload is not an image: send PNG, JPEG, GIF, BMP or WebP"
    assert error(post(b"%PDF-1.4", "x.pdf", "application/pdf"), 400) == (
        "the upload is application/pdf, not an image: send PNG, JPEG, GIF, BMP or WebP")
    tiff = png_bytes(Image.new("L", (8, 8)), "TIFF")
    assert error(post(tiff, "x.tif", "image/tiff"), 400) == "the upload is a TIFF file: send PNG, JPEG, GIF, BMP or WebP"
    huge = png_bytes(Image.new("1", (8000, 6000)))  # a small file that would decode to 48 million pixels
    assert error(post(huge), 400) == "the image is 8000x6000 pixels: at most 40 million pixels"
    assert error(post(b"x" * (LIMITS["upload_bytes"] + 100 * 1024)), 413) == (
        "the upload is larger than the 5 MB limit: send a smaller image")
    assert error(post(b""), 400) == "the upload is empty: choose an image file (PNG, JPEG, GIF, BMP or WebP)"
    assert error(post(png_bytes(Image.new("L", (8, 8))), top="0"), 400) == "top must be from 1 to 20, got 0"
    assert error(client.post("/api/inside", data={"run": "lenet-mnist", "path": "/etc/passwd"}), 400) == (
        "unknown field 'path': send model, run, top, layers and an image file")
    assert error(client.post("/api/inside", data={"model": "lenet5", "layers": "nope"}), 400) == (
        "the model has no layer 'nope': valid names are features.0, features.3")
    still_answers(client)


# --------------------------------------------------------------------------------------
# Compare, unknown routes, internal errors, host check
# --------------------------------------------------------------------------------------


def test_compare_rows_are_the_analyzers(client) -> None:
    body = client.get("/api/compare?models=resnet18,vgg11&input=3x64x64").get_json()
    for row, name in zip(body["rows"], ["resnet18", "vgg11"], strict=True):
        report = cnnlab.analyze(name, (3, 64, 64))
        assert row["model"] == name and row["params"] == report.params and row["macs"] == report.macs
    assert body["rows"][1]["params"] == sum(p.numel() for p in torchvision.models.vgg11().parameters())
    too_many = ",".join(["resnet18"] * 13)
    assert error(client.get(f"/api/compare?models={too_many}"), 400) == (
        "13 models is too many to compare at once: at most 12")
    assert error(client.get("/api/compare"), 400) == (
        "models is missing: give zoo model names separated by commas, e.g. resnet18,vgg11")
    assert error(client.get("/api/compare?models=resnet18,vgg99"), 400).startswith("unknown model 'vgg99'")


def test_unknown_routes_and_internal_errors_are_json(runs: Path, monkeypatch) -> None:
    app = create_app(runs)
    client = app.test_client()
    assert error(client.get("/api/nothing"), 404) == "no such page or endpoint /api/nothing: GET /api lists the endpoints"
    assert error(client.delete("/api/models"), 405) == (
        "DELETE is not allowed on /api/models: GET /api lists the endpoints")
    explorer = app.extensions["cnnlab_lab"]

    def broken() -> None:
        raise RuntimeError("something deep broke\nsecond line")

    monkeypatch.setattr(explorer, "models", broken)
    assert error(client.get("/api/models"), 500) == (
        "internal error (RuntimeError: something deep broke); the server keeps running")
    still_answers(client)


def test_host_header_must_be_loopback(runs: Path) -> None:
    client = create_app(runs).test_client()
    assert error(client.get("/api/health", headers={"Host": "attacker.example:8765"}), 400) == (
        "host 'attacker.example:8765' is not a loopback name: open the page at http://127.0.0.1:PORT/ "
        "(or start cnnlab serve with --host)")
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "127.0.0.2"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200, host
    open_client = create_app(runs, loopback_only=False).test_client()
    assert open_client.get("/api/health", headers={"Host": "lab.example:8765"}).status_code == 200


# --------------------------------------------------------------------------------------
# The real server
# --------------------------------------------------------------------------------------


@pytest.fixture
def live(explorer_url: str) -> str:
    return explorer_url


def fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_real_server_keeps_answering_after_bad_requests(live: str) -> None:
    assert fetch(f"{live}/api/runs/..%2F..%2Fetc")[0] == 400
    assert fetch(f"{live}/api/analyze?model=resnet18&input=3x99999x99999")[0] == 400
    assert fetch(f"{live}/api/conv", b"{not json", {"Content-Type": "application/json"})[0] == 400
    boundary = "cnnlabtest"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + b"\0" * (6 * 2**20) + f"\r\n--{boundary}--\r\n".encode()
    status, answer = fetch(f"{live}/api/inside", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 413 and answer["error"] == "the upload is larger than the 5 MB limit: send a smaller image"
    status, answer = fetch(f"{live}/api/analyze?model=resnet18&input=3x64x64")
    assert status == 200 and answer["totals"]["params"] == 11_689_512


def test_cli_serve_prints_the_url_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    # Ctrl-C as a terminal sends it, whatever this process inherited: a suite started in the
    # background of a script has SIGINT ignored, and Python then never turns it into KeyboardInterrupt.
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "serve", "--port", "0", "--runs", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # A bounded wait for the first line, so a server that never prints fails instead of hanging.
        assert select.select([proc.stdout], [], [], WAIT_S)[0], "no address line on stdout"
        line = proc.stdout.readline()
        assert line.startswith("cnnlab explorer at http://127.0.0.1:"), line
        url = line.split()[3]
        assert fetch(f"{url}api/health")[1]["runs"] == tmp_path.name
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.strip() == "cnnlab explorer stopped" and "Traceback" not in err


def test_serve_binds_before_loading_torch(tmp_path: Path) -> None:
    """The address comes first: torch, torchvision and the analyzer load on the first request needing them."""
    code = ("import sys\n"
            "from cnnlab.web.server import make_server\n"
            f"server = make_server('127.0.0.1', 0, {str(tmp_path)!r})\n"
            "server.server_close()\n"
            "print([m for m in ('torch', 'torchvision', 'cnnlab.analysis') if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT_S)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_cli_serve_port_in_use_is_one_line(cli, live: str) -> None:
    port = live.rsplit(":", 1)[1]
    code, _out, err = cli("serve", "--port", port)
    assert code == 2
    assert err == (f"cnnlab: error: port {port} on 127.0.0.1 is already in use: choose another with --port "
                   "(--port 0 picks a free one)\n")


def test_concurrent_analysis_requests_are_all_answered_correctly(live: str) -> None:
    """A small version of bench/serve_load.py: 16 client threads, every answer checked."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("serve_load", Path(__file__).parents[1] / "bench" / "serve_load.py")
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    sides = [64] * 48 + list(range(40, 56))
    expected = load.expected_for(sorted(set(sides)))
    result = load.run_load(live, sides, expected, concurrency=16)
    assert result["failures"] == [] and result["correct"] == len(sides) == 64


def test_cli_serve_help_and_missing_flask(cli, monkeypatch) -> None:
    code, out, _err = cli("serve", "--help")
    assert code == 0
    for flag in ("--host", "--port", "--runs", "default 127.0.0.1", "default 8765", "default ./runs",
                 "--memory-budget", "--deadline", "--queue", "default 30", "default 16"):
        assert flag in " ".join(out.split()), flag
    code, _out, err = cli("serve", "--port", "0", "--memory-budget", "lots")
    assert code == 2 and err == "cnnlab: error: --memory-budget 'lots' is not a size: write it like 8G, 512M or 1.5G\n"
    monkeypatch.setitem(sys.modules, "flask", None)  # as if Flask were not installed
    code, _out, err = cli("serve", "--port", "0")
    assert code == 2
    assert err == "cnnlab: error: the explorer needs Flask: pip install 'cnnlab[web]' (make run installs it)\n"


# --------------------------------------------------------------------------------------
# Hostile requests: each is one line and a 4xx, and the server stays up
# --------------------------------------------------------------------------------------


def strict_json(data: bytes):
    """The body parsed as JSON proper: NaN, Infinity and -Infinity are not JSON, and fail here."""
    def refuse(token: str):
        raise AssertionError(f"the body holds {token}, which no browser parses")

    return json.loads(data, parse_constant=refuse)


@pytest.fixture
def hurt_runs(tmp_path: Path, trained_run: Path) -> Path:
    """A runs folder of damaged runs: bad metrics lines, a damaged and a malformed checkpoint, NaN weights,
    files linking out of the run, and one healthy run."""
    from cnnlab.checkpoint import load_checkpoint, save_checkpoint

    runs = tmp_path / "runs"
    shutil.copytree(trained_run, runs / "good", ignore=shutil.ignore_patterns(".lock", "tensorboard"))
    config = (trained_run / "config.json").read_text()
    good_line = json.dumps({"epoch": 1, "step": 40, "train_loss": 0.5, "val_top1": 0.9}).encode()
    for name, damage in [("string-epoch", b'{"epoch": "5", "step": 1, "train_loss": 1.0}'),
                         ("null-accuracy", b'{"epoch": 2, "step": 80, "train_loss": 0.4, "val_top1": null}'),
                         ("nan-loss", b'{"epoch": 2, "step": 80, "train_loss": NaN, "val_top1": Infinity}'),
                         ("binary", b"\x00\xff\xfe\x80 not text at all"), ("deep", b"[" * 100_000)]:
        (runs / name).mkdir()
        (runs / name / "config.json").write_text(config)
        (runs / name / "metrics.jsonl").write_bytes(good_line + b"\n" + damage + b"\n")
    ckpt = load_checkpoint(trained_run / "best.pt")
    for name in ("damaged", "malformed", "nan-weights"):
        (runs / name).mkdir()
        (runs / name / "config.json").write_text(config)
    data = bytearray((trained_run / "best.pt").read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\x00" * 64  # bytes changed inside a tensor: the checksum says so
    (runs / "damaged" / "best.pt").write_bytes(bytes(data))
    save_checkpoint(runs / "malformed" / "best.pt", "lenet5", ckpt["model"]["kwargs"], ckpt["state_dict"],
                    data={**ckpt["data"], "input_size": "abc"})
    nan = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    save_checkpoint(runs / "nan-weights" / "best.pt", "lenet5", ckpt["model"]["kwargs"], nan, data=ckpt["data"])
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps({"model": "lenet5", "secret": "do not serve"}))
    (runs / "config-link").mkdir()
    (runs / "config-link" / "config.json").symlink_to(outside / "secret.json")
    (runs / "weights-link").mkdir()
    (runs / "weights-link" / "config.json").write_text(config)
    (runs / "weights-link" / "best.pt").symlink_to(trained_run / "best.pt")
    return runs


def test_damaged_runs_still_list_and_open(hurt_runs: Path) -> None:
    client = create_app(hurt_runs).test_client()
    response = client.get("/api/runs")
    assert response.status_code == 200
    listed = {r["name"]: r for r in strict_json(response.data)["runs"]}
    assert set(listed) >= {"good", "string-epoch", "null-accuracy", "nan-loss", "binary", "deep", "damaged"}
    assert "config-link" not in listed  # its config is a file outside the run: never read
    for name in ("string-epoch", "binary", "deep"):
        assert listed[name]["epochs_done"] == 1 and listed[name]["damaged_lines"] == 1, name
    assert listed["null-accuracy"]["damaged_lines"] == 0 and listed["null-accuracy"]["best_val_top1"] == 0.9
    assert listed["good"]["damaged_lines"] == 0
    for name in ("string-epoch", "null-accuracy", "nan-loss", "binary", "deep"):
        response = client.get(f"/api/runs/{name}")
        assert response.status_code == 200, name
        doc = strict_json(response.data)
        assert doc["metrics"][0]["val_top1"] == 0.9
    nan = strict_json(client.get("/api/runs/nan-loss").data)
    assert nan["metrics"][1]["train_loss"] is None and nan["metrics"][1]["val_top1"] is None
    assert nan["notes"] == ["metrics.jsonl line 2 holds a number that is not finite (NaN or infinity): such "
                            "numbers read as null"]
    assert strict_json(client.get("/api/runs/binary").data)["notes"] == [
        "metrics.jsonl line 2 is damaged (not JSON); damaged lines are skipped"]


def test_damaged_checkpoints_are_one_line_with_the_cause(hurt_runs: Path) -> None:
    client = create_app(hurt_runs).test_client()
    for url in ("/api/analyze?run=damaged", "/api/rf?run=damaged&samples=1"):
        assert error(client.get(url), 400) == (
            "damaged/best.pt is damaged: its contents no longer match the checksum written with it; use another "
            "copy (a run keeps previous.pt beside last.pt)"), url
    assert error(client.post("/api/inside", data={"run": "damaged"}), 400).startswith("damaged/best.pt is damaged")
    assert error(client.get("/api/analyze?run=malformed"), 400) == (
        "malformed/best.pt is a malformed cnnlab checkpoint (an input size abc that is not C x H x W whole numbers "
        "within bounds): re-save it with cnnlab, or give a run's last.pt or best.pt")
    # NaN weights are the network's, not an error: the answers say null where a number is not finite.
    response = client.post("/api/inside", data={"run": "nan-weights"})
    assert response.status_code == 200
    body = strict_json(response.data)
    assert body["predictions"][0]["probability"] is None and body["gradcam"]["score"] is None
    assert body["non_finite"]["count"] == 6 and body["non_finite"]["at"][0] == "predictions[0].probability: nan"
    still_answers(client)


def test_links_out_of_a_run_are_refused(hurt_runs: Path) -> None:
    client = create_app(hurt_runs).test_client()
    response = client.get("/api/runs/config-link")
    assert error(response, 400) == ("config-link/config.json is a link to a file outside the run folder, which "
                                    "cnnlab does not follow: replace the link with the file itself")
    assert b"do not serve" not in response.data
    for response in (client.get("/api/analyze?run=weights-link"), client.post("/api/inside", data={"run": "weights-link"})):
        assert error(response, 400) == ("weights-link/best.pt is a link to a file outside the run folder, which "
                                        "cnnlab does not follow: replace the link with the file itself")


def test_no_answer_holds_nan_or_infinity(client) -> None:
    # A convolution whose products would overflow a float is refused; one within range is exact.
    assert error(client.post("/api/conv", json={"input": "1e308,1e308;1e308,1e308", "kernel": "1e308,1;1,1"}),
                 400) == "input holds 1e+308: explain is for small examples, use numbers of at most 1e+15 in size"
    response = client.post("/api/conv", data='{"input": [[NaN, 1], [1, 1]], "kernel": "1"}',
                           content_type="application/json")
    assert error(response, 400) == "input contains nan, not a finite number"
    assert error(client.post("/api/conv", data='{"bias": Infinity}', content_type="application/json"), 400) == (
        "bias contains inf, not a finite number")
    for url in ("/api/models", "/api/runs", "/api/runs/lenet-mnist", "/api/analyze?run=lenet-mnist",
                "/api/compare?models=lenet5,googlenet", "/api/layer?input=3x32x32&layer=conv%208%20k3"):
        response = client.get(url)
        assert response.status_code == 200, url
        strict_json(response.data)


def test_deep_or_huge_json_bodies_are_one_line(client) -> None:
    response = client.post("/api/stack", data="[" * 100_000, content_type="application/json")
    assert error(response, 400) == (
        'the JSON body nests too deeply: send one flat object like {"input": "3x32x32", "layers": ["conv 64 k3 p1"]}')
    big = json.dumps({"input": "3x32x32", "layers": ["relu"] * 40_000})
    assert error(client.post("/api/stack", data=big, content_type="application/json"), 400) == (
        f"the JSON body is {len(big):,} bytes: at most 256 KB")
    still_answers(client)


# --------------------------------------------------------------------------------------
# Security: other sites, headers, paths
# --------------------------------------------------------------------------------------


def test_cross_site_requests_are_refused(client, digit: Path) -> None:
    def inside(headers: dict[str, str]):
        return client.post("/api/inside", headers=headers, data={
            "run": "lenet-mnist", "image": (io.BytesIO(digit.read_bytes()), "digit.png")})

    assert error(inside({"Origin": "http://evil.example"}), 403) == (
        "cross-site request refused (it comes from 'http://evil.example'): the explorer answers its own page only; "
        "open it at this server's address")
    assert error(inside({"Origin": "null"}), 403).startswith("cross-site request refused (it comes from 'null')")
    assert error(inside({"Sec-Fetch-Site": "cross-site"}), 403).startswith(
        "cross-site request refused (Sec-Fetch-Site is 'cross-site')")
    # Another port of this machine is the same site but another origin: refused too.
    assert error(client.get("/api/rf?model=lenet5&samples=1", headers={"Sec-Fetch-Site": "same-site"}), 403)
    assert error(client.post("/api/stack", json={"input": "3x8x8", "layers": ["relu"]},
                             headers={"Origin": "http://localhost:9999"}), 403)
    # The page itself, a same-origin script and a request typed in (no Origin) are answered.
    assert inside({"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert client.get("/api/analyze?model=lenet5", headers={"Sec-Fetch-Site": "none"}).status_code == 200
    assert client.get("/", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # a link to the page
    assert client.get("/api/health", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_security_headers_and_no_absolute_paths(client, runs: Path) -> None:
    for path in ("/", "/api/health", "/api/nothing"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
    page = client.get("/").get_data(as_text=True)
    # The policy allows no inline script or style: the page has none.
    assert "<style" not in page and " style=" not in page and "<script>" not in page and " on" + "click=" not in page
    for url in ("/api/health", "/api/runs", "/api/runs/nothing-here", "/api/analyze?run=nothing"):
        assert str(runs.resolve()) not in client.get(url).get_data(as_text=True), url


# --------------------------------------------------------------------------------------
# Costs: budget, deadline, queue, single flight, caches
# --------------------------------------------------------------------------------------


def largest_input(message: str) -> str:
    return message.split("the largest input that fits is about ")[1].split(" ")[0]


def test_a_request_over_the_memory_budget_is_refused_with_the_largest_input_that_fits(runs: Path,
                                                                                      monkeypatch) -> None:
    import cnnlab.viz.rf

    calls = []
    real = cnnlab.viz.rf.erf_details
    monkeypatch.setattr(cnnlab.viz.rf, "erf_details", lambda *a, **k: calls.append(k["chunk"]) or real(*a, **k))
    assert cnnlab.limits.parse_bytes("160M") == 160 * 2**20 and cnnlab.limits.parse_bytes("1.5G") == 3 * 2**29
    client = create_app(runs, memory_budget=cnnlab.limits.parse_bytes("160M")).test_client()
    explorer = client.application.extensions["cnnlab_lab"]
    monkeypatch.setattr(explorer._speed, "rate", lambda: 1e12)  # this test is about memory, not time
    report = cnnlab.analyze("resnet18", (3, 256, 256))
    one = report.memory.parameters + report.memory.gradients + 2 * report.activation_bytes
    message = error(client.get("/api/rf?model=resnet18&input=3x256x256&samples=32"), 413)
    assert message.startswith(f"the effective field of resnet18 at 3x256x256 with 32 samples needs about "
                              f"{cnnlab.limits.human_bytes(one)} of memory for one sample, more than the 120.0 MiB")
    assert message.endswith("(cnnlab serve --memory-budget sets the budget)") and calls == []  # refused, not run
    fits = largest_input(message)
    side = int(fits.split("x")[1])
    assert 128 <= side < 256 and side % 8 == 0
    # The size it names does fit: it runs, one sample at a time (the chunks the budget holds).
    response = client.get(f"/api/rf?model=resnet18&input={fits}&samples=2")
    assert response.status_code == 200, response.get_json()
    assert calls == [1]
    # A model whose weights alone exceed the budget cannot fit at any input.
    assert "does not fit even at the smallest input" in error(client.get("/api/rf?model=vgg11&input=3x32x32"), 413)


def test_a_request_past_the_deadline_is_refused_with_the_samples_that_fit(runs: Path, monkeypatch) -> None:
    client = create_app(runs, deadline_s=30).test_client()
    explorer = client.application.extensions["cnnlab_lab"]
    monkeypatch.setattr(explorer._speed, "rate", lambda: 1e9)  # 1 G multiply-accumulates a second
    macs = cnnlab.analyze("vgg11", (3, 128, 128)).macs
    seconds = 3 * macs * 32 / 1e9  # a forward and a backward pass per sample
    # Time grows with the pixels: the side that fits scales by the square root of the share that fits.
    side = int(128 * math.sqrt(30 / seconds)) // 8 * 8
    assert error(client.get("/api/rf?model=vgg11&input=3x128x128&samples=32"), 413) == (
        f"the effective field of vgg11 at 3x128x128 with 32 samples would take about {seconds:.0f} s here, more "
        f"than the 30 s deadline: at most {int(32 * 30 / seconds)} samples fit at 3x128x128, or about "
        f"3x{side}x{side} with 32 samples (cnnlab serve --deadline sets the deadline)")


def test_identical_concurrent_requests_compute_once_and_are_kept(runs: Path, monkeypatch) -> None:
    import threading
    import time

    import cnnlab.viz.rf

    calls = []
    real = cnnlab.viz.rf.erf_details

    def slow(*args, **kwargs):
        calls.append(1)
        time.sleep(0.5)  # long enough for every request below to arrive while it runs
        return real(*args, **kwargs)

    monkeypatch.setattr(cnnlab.viz.rf, "erf_details", slow)
    client = create_app(runs).test_client()
    answers: list = []
    url = "/api/rf?model=resnet20&samples=2"
    threads = [threading.Thread(target=lambda: answers.append(client.get(url))) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in answers] == [200] * 10
    assert len({r.data for r in answers}) == 1 and calls == [1]
    assert client.get("/api/rf?samples=2&model=resnet20").data == answers[0].data and calls == [1]  # kept
    first = client.post("/api/inside", data={"model": "resnet20"}).data
    assert client.post("/api/inside", data={"model": "resnet20"}).data == first  # kept too


def test_health_answers_while_heavy_work_runs_and_a_full_queue_says_when_to_retry(runs: Path,
                                                                                   monkeypatch) -> None:
    import threading
    import time

    import cnnlab.viz.rf
    from cnnlab.web.server import make_server

    release = threading.Event()
    started = threading.Event()
    real = cnnlab.viz.rf.erf_details

    def held(*args, **kwargs):  # a slow computation: it holds the model work until released
        started.set()
        release.wait(WAIT_S)
        return real(*args, **kwargs)

    monkeypatch.setattr(cnnlab.viz.rf, "erf_details", held)
    server = make_server("127.0.0.1", 0, runs, queue_size=1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.port}"
    answers: dict[int, tuple[int, dict]] = {}
    try:
        heavy = [threading.Thread(target=lambda i=i: answers.__setitem__(
            i, fetch(f"{base}/api/rf?model=resnet20&samples={i}"))) for i in (1, 2)]
        heavy[0].start()
        assert started.wait(WAIT_S)
        heavy[1].start()  # waits in the queue (size 1)
        deadline = time.monotonic() + WAIT_S
        while server.app.extensions["cnnlab_work"].status()["queued"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        # The model work is held until this test ends: an answer at all shows health never waits on it
        # (no wall-clock bound, which a busy machine could break).
        status, body = fetch(f"{base}/api/health")
        assert status == 200 and body["work"] == {"running": 1, "queued": 1, "queue_size": 1, "done": 0}
        assert fetch(f"{base}/api/runs")[0] == 200
        request = urllib.request.Request(f"{base}/api/rf?model=resnet20&samples=3")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=WAIT_S)
        assert info.value.code == 503 and int(info.value.headers["Retry-After"]) >= 1
        assert json.loads(info.value.read())["error"] == (
            "the explorer is busy: 1 request already waits for the model work; try again in a moment")
        with urllib.request.urlopen(f"{base}/api/health", timeout=WAIT_S) as response:
            assert response.headers["Server"] == "cnnlab"  # no Werkzeug or Python version
    finally:
        release.set()
        for t in heavy:
            t.join(WAIT_S)
        server.shutdown()
        server.server_close()
    assert answers[1][0] == answers[2][0] == 200


def test_work_past_its_deadline_answers_504(runs: Path, monkeypatch) -> None:
    import time

    import cnnlab.viz.rf

    real = cnnlab.viz.rf.erf_details

    def late(*args, **kwargs):
        time.sleep(1.5)
        kwargs["between"]()  # the check between chunks stops it
        return real(*args, **kwargs)

    monkeypatch.setattr(cnnlab.viz.rf, "erf_details", late)
    client = create_app(runs, deadline_s=1).test_client()
    assert error(client.get("/api/rf?model=lenet5&samples=1"), 504) == (
        "no answer within the 1 s deadline (the model work was busy or the question is too large): try again, ask "
        "for less, or start cnnlab serve with a longer --deadline")
    still_answers(client)


# --------------------------------------------------------------------------------------
# GoogLeNet: what is drawn adds up, and the inside view shows layers that run
# --------------------------------------------------------------------------------------


def test_googlenet_totals_add_up_and_name_the_auxiliary_heads(client) -> None:
    body = client.get("/api/analyze?model=googlenet").get_json()
    totals = body["totals"]
    assert totals["params"] == sum(r["params"] for r in body["layers"] if not r["shared"]) == 6_624_904
    assert totals["params_outside_graph"]["modules"] == ["aux1", "aux2"]
    assert totals["params_outside_graph"]["params"] == 6_379_984 and totals["model_params"] == 13_004_888
    row = client.get("/api/compare?models=googlenet,resnet18").get_json()["rows"][0]
    assert row["params"] == 6_624_904 and row["params_outside_graph"] == 6_379_984


def test_googlenet_inside_shows_layers_that_run_and_explains_the_top_class(client) -> None:
    body = client.post("/api/inside", data={"model": "googlenet"}).get_json()
    layers = [f["layer"] for f in body["features"]]
    assert layers == ["conv1.conv", "inception4c.branch2.0.conv", "inception5b.branch4.1.conv"]
    assert not any(name.startswith("aux") for name in body["conv_layers"])
    # Random weights give near-equal logits; the ranking and Grad-CAM are one decision.
    assert body["gradcam"]["index"] == body["predictions"][0]["index"]
    assert error(client.post("/api/inside", data={"model": "googlenet", "layers": "aux2.conv.conv"}), 400).startswith(
        "the model has no layer that runs in eval mode 'aux2.conv.conv': valid names are conv1.conv, conv2.conv")
