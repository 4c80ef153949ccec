"""The papers' experiments: the kernel-study network, protocols, resumable runs, tables, plots, grouping."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import cnnlab.experiments as experiments
from cnnlab.errors import CnnlabError
from cnnlab.experiments import EXPERIMENTS, Arm, results_markdown, run_experiment
from cnnlab.lab import Lab
from cnnlab.models import create_model
from cnnlab.train.loop import fit
from runlib import small_config

CPU = torch.device("cpu")
DOCS = Path(__file__).resolve().parents[1] / "docs"


small = small_config


# --------------------------------------------------------------------------------------
# The kernel-size network and the narrower classifiers
# --------------------------------------------------------------------------------------


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_kernelnet_blocks_match_parameters_and_receptive_fields_as_the_papers_say() -> None:
    from cnnlab.analysis import analyze

    nets = {b: create_model("kernelnet", block=b, width=w) for b, w in
            (("5x5", 48), ("3x3x2", 56), ("3x3", 48), ("bottleneck", 136))}
    # One 5x5 block at width 48: 25 * 48 * 48 weights + 2 * 48 batch norm; two 3x3 at 56: 2 * (9 * 56 * 56 + 2 * 56).
    five = nets["5x5"].features[3]
    three = nets["3x3x2"].features[3]
    assert _params(five) == 25 * 48 * 48 + 2 * 48 == 57_696
    assert _params(three) == 2 * (9 * 56 * 56 + 2 * 56) == 56_672
    # A bottleneck at 136: 136->34 (1x1), 34->34 (3x3), 34->136 (1x1), each with batch norm.
    assert _params(nets["bottleneck"].features[3]) == 136 * 34 + 9 * 34 * 34 + 34 * 136 + 2 * (34 + 34 + 136)
    # The totals docs/models.md quotes, and matched pairs within 3% of each other's parameters.
    assert {b: _params(n) for b, n in nets.items()} == {"5x5": 174_106, "3x3x2": 171_202, "3x3": 63_514,
                                                         "bottleneck": 63_046}
    for a, b in (("5x5", "3x3x2"), ("3x3", "bottleneck")):
        assert abs(_params(nets[a]) - _params(nets[b])) / _params(nets[a]) < 0.03
    # Two stacked 3x3 see exactly what one 5x5 sees.
    fields = {b: analyze(nets[b], (1, 28, 28)).receptive_field["size"] for b in ("5x5", "3x3x2")}
    assert fields["5x5"] == fields["3x3x2"]
    with pytest.raises(CnnlabError, match="kernelnet has no block '7x7'"):
        create_model("kernelnet", block="7x7")
    with pytest.raises(CnnlabError, match="width"):
        create_model("kernelnet", width=0)


def test_fc_width_narrows_only_the_hidden_classifier_layers() -> None:
    wide, narrow = create_model("vgg11_bn", num_classes=10), create_model("vgg11_bn", num_classes=10, fc_width=512)
    fc = lambda m: _params(m.classifier)  # noqa: E731
    assert fc(narrow) == (25088 * 512 + 512) + (512 * 512 + 512) + (512 * 10 + 10)
    assert _params(wide) - fc(wide) == _params(narrow) - fc(narrow)
    # The figures docs/models.md quotes.
    gray = {w: _params(create_model("vgg11_bn", num_classes=10, in_channels=1, fc_width=w)) for w in (4096, 512)}
    assert gray == {4096: 128_811_658, 512: 22_338_186}
    assert 25088 * 4096 + 4096 == 102_764_544
    alex = create_model("alexnet", num_classes=10, fc_width=256)
    assert _params(alex.classifier) == (9216 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)


# --------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------


@pytest.fixture
def tiny(monkeypatch):
    """A two-model protocol on 200 Fashion-MNIST images per split, one epoch: a run takes a second."""
    protocol = dataclasses.replace(
        EXPERIMENTS["kernels"], name="tiny", arms=(Arm("LeNet-5", "lenet5"),
                                                   Arm("3x3, width 8", "kernelnet", {"block": "3x3", "width": 8})),
        budgets={"quick": dict(limit=200, val_size=100, epochs=2, batch_size=50, lr=0.05), "full": {}})
    monkeypatch.setitem(EXPERIMENTS, "tiny", protocol)
    return protocol


def test_an_experiment_runs_every_run_and_writes_its_table_and_plots(tiny, tmp_path: Path) -> None:
    doc = run_experiment("tiny", "quick", 2, tmp_path, quiet=True)
    folder = tmp_path / "tiny-quick"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [
        "3x3-width-8-s0", "3x3-width-8-s1", "lenet-5-s0", "lenet-5-s1"]
    lenet, kernel = doc["models"]
    # The counts are the analyzer's, which agree with torch's own parameter count.
    assert lenet["params"] == _params(create_model("lenet5", num_classes=10, in_channels=1)) == 61_706
    assert kernel["params"] == _params(create_model("kernelnet", block="3x3", width=8))
    # conv 5x5 -> 5; pool 2/2 -> 5 + 1 = 6 (jump 2); conv 5x5 -> 6 + 4 * 2 = 14; pool 2/2 -> 14 + 1 * 2 = 16
    assert lenet["macs"] == 416_520 and lenet["receptive_field"] == [16, 16]
    for m in doc["models"]:
        runs = [json.loads((folder / name / "result.json").read_text()) for name in m["runs"]]
        tests = [r["test"]["top1"] for r in runs]
        assert m["test_top1"] == tests and m["test_top1_mean"] == pytest.approx(sum(tests) / 2)
        assert m["test_top1_std"] == pytest.approx(abs(tests[0] - tests[1]) / 2 ** 0.5)
        assert m["curves"]["epoch"] == [1, 2]
        first = [1 - r["history"][0]["val_top1"] for r in runs]
        assert m["curves"]["val_error"]["low"][0] == min(first) and m["curves"]["val_error"]["high"][0] == max(first)
    assert json.loads((folder / "results.json").read_text())["models"][0]["label"] == "LeNet-5"
    table = (folder / "results.md").read_text()
    assert "| LeNet-5 | 61,706 | 416,520 | 16x16 |" in table
    for plot in ("curves.png", "accuracy_params.png", "accuracy_macs.png"):
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_call_skips_finished_runs_and_resumes_an_interrupted_one(tiny, tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="run the same command again"):
        run_experiment("tiny", "quick", 1, tmp_path, quiet=True,
                       on_step=lambda name, step: name == "3x3-width-8-s0" and step == 3)
    folder = tmp_path / "tiny-quick"
    finished = folder / "lenet-5-s0" / "last.pt"
    stamp = finished.stat().st_mtime_ns
    assert not (folder / "3x3-width-8-s0" / "result.json").exists()
    doc = run_experiment("tiny", "quick", 1, tmp_path, quiet=True)
    assert finished.stat().st_mtime_ns == stamp  # not trained again
    resumed = json.loads((folder / "3x3-width-8-s0" / "result.json").read_text())
    assert resumed["status"] == "finished" and resumed["steps"] == 8
    again = run_experiment("tiny", "quick", 1, tmp_path, quiet=True)
    assert [m["test_top1"] for m in again["models"]] == [m["test_top1"] for m in doc["models"]]


def test_runs_of_another_protocol_are_not_mixed_in(tiny, tmp_path: Path, monkeypatch) -> None:
    run_experiment("tiny", "quick", 1, tmp_path, quiet=True, plots=False)
    changed = dataclasses.replace(tiny, budgets={**tiny.budgets, "quick": {**tiny.budgets["quick"], "epochs": 3}})
    monkeypatch.setitem(EXPERIMENTS, "tiny", changed)
    with pytest.raises(CnnlabError, match=r"other settings \(epochs\)"):
        run_experiment("tiny", "quick", 1, tmp_path, quiet=True)


def test_every_protocol_builds_its_runs_and_states_its_time(tmp_path: Path) -> None:
    assert set(EXPERIMENTS) == {"degradation", "families", "kernels"}
    for protocol in EXPERIMENTS.values():
        for budget in experiments.BUDGETS:
            plan = experiments._configs(protocol, budget, 2, tmp_path)
            assert len(plan) == 2 * len(protocol.arms)
            assert "minutes" in protocol.minutes[budget] or "hour" in protocol.minutes[budget]
    labels = [a.model for a in EXPERIMENTS["degradation"].arms]
    assert labels == ["plain20", "plain56", "resnet20", "resnet56"]


def test_experiment_command(cli, tiny, tmp_path: Path) -> None:
    code, out, _ = cli("experiment", "--list", "--json")
    doc = json.loads(out)
    assert code == 0 and [e["name"] for e in doc["experiments"]][:3] == ["degradation", "families", "kernels"]
    assert doc["experiments"][0]["budgets"]["quick"]["limit"] == 10_000
    code, out, _ = cli("experiment", "--list")
    assert code == 0 and "degradation: Plain against residual networks" in out
    code, out, err = cli("experiment", "bogus")
    assert code == 2 and "unknown experiment 'bogus'" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("experiment", "tiny", "--seeds", "0")
    assert code == 2 and "--seeds" in err
    code, out, _ = cli("experiment", "tiny", "--seeds", "1", "--out", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["models"][0]["label"] == "LeNet-5"
    code, out, _ = cli("experiment", "tiny", "--seeds", "1", "--out", str(tmp_path), "--quiet")
    assert code == 0 and "| LeNet-5 | 61,706 |" in out


def test_the_explorer_groups_an_experiments_runs(tiny, tmp_path: Path) -> None:
    run_experiment("tiny", "quick", 1, tmp_path, quiet=True, plots=False)
    fit(small(tmp_path, name="alone", epochs=1), quiet=True)
    lab = Lab(tmp_path, scope="explorer")
    listed = lab.runs()["runs"]
    assert [(r["name"], r["experiment"]) for r in listed] == [
        ("alone", None), ("tiny-quick/3x3-width-8-s0", "tiny-quick"), ("tiny-quick/lenet-5-s0", "tiny-quick")]
    one = lab.run("tiny-quick/lenet-5-s0")
    assert one["name"] == "tiny-quick/lenet-5-s0" and one["status"] == "finished"
    for bad in ("tiny-quick/../alone", "alone/x", "tiny-quick/a/b", "../tiny-quick"):
        with pytest.raises(CnnlabError):
            lab.run(bad)
    pytest.importorskip("flask")
    from cnnlab.web.app import create_app

    client = create_app(tmp_path).test_client()
    listed = client.get("/api/runs").get_json()["runs"]
    assert [r["experiment"] for r in listed] == [None, "tiny-quick", "tiny-quick"]
    for path in ("/api/runs/tiny-quick/lenet-5-s0", "/api/runs/tiny-quick%2Flenet-5-s0"):
        answer = client.get(path)
        assert answer.status_code == 200 and answer.get_json()["model"] == "lenet5"
    assert client.get("/api/runs/tiny-quick/..%2Falone").status_code == 400


def test_the_results_page_shows_the_tables_its_results_files_hold() -> None:
    """docs/results.md quotes each experiment's table as results_markdown writes it from results.json."""
    page = (DOCS / "results.md").read_text()
    folders = sorted(p for p in (DOCS / "results").iterdir() if p.is_dir())
    assert [f.name for f in folders] == ["degradation-quick", "families-quick", "kernels-quick"]
    for folder in folders:
        doc = json.loads((folder / "results.json").read_text())
        assert doc["seeds"] >= 3 and all(len(m["test_top1"]) == doc["seeds"] for m in doc["models"])
        table = "\n".join(line for line in results_markdown(doc).splitlines() if line.startswith("|"))
        assert table in page, folder.name
        assert doc["command"] in page
        for plot in doc["plots"]:
            assert (folder / plot).is_file() and f"results/{folder.name}/{plot}" in page
