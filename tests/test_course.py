"""The course's own pieces: the Korean calculator tour, the exercise's network as a file, the pages' commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from cnnlab import shapes
from cnnlab.tour import HOMEWORK_INPUT, HOMEWORK_LAYERS, OWN_NETWORK, calculator_tour

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MYNET = "docs/examples/mynet.py"
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def test_the_korean_calculator_tour_translates_every_stop(cli) -> None:
    en, ko = calculator_tour("en"), calculator_tour("ko")
    assert (en["lang"], ko["lang"]) == ("en", "ko")
    assert len(ko["stops"]) == len(en["stops"]) >= 9
    for e, k in zip(en["stops"], ko["stops"], strict=True):
        assert k["command"] == e["command"] and k["results"] == e["results"]  # the same numbers
        for field in ("title", "question", "answer", "note"):
            if e[field] is None:
                assert k[field] is None
                continue
            assert HANGUL.search(k[field]), (field, k[field])
            assert k[field] != e[field]
    code, out, err = cli("calc", "tour", "--lang", "ko")
    assert code == 0 and err == ""
    titles = re.findall(r"^(\d+)\. (.+)$", out, re.MULTILINE)
    assert [t for _, t in titles] == [s["title"] for s in ko["stops"]]
    assert all(HANGUL.search(t) for _, t in titles)
    assert "답:" in out and "answer:" not in out
    code, out, _ = cli("calc", "tour", "--lang", "ko", "--json")
    assert json.loads(out) == ko


def test_the_homework_stop_points_to_inspect_for_ones_own_network() -> None:
    for lang in ("en", "ko"):
        note = calculator_tour(lang)["stops"][-1]["note"]
        assert OWN_NETWORK in note and "torch.Size([64, 32, 24, 24])" in note


def _forward_shapes(model: torch.nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, y, name=name: seen.__setitem__(name, tuple(y.shape)))
             for name, m in model.named_children()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_inspect_of_a_students_file_shows_the_batch_as_torch_does(cli, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the command as the course and the tour write it, from the repository root
    spec = OWN_NETWORK.replace("mynet.py", MYNET).split()[2:]
    code, out, err = cli("inspect", *spec, "--json")
    assert code == 0, err
    doc = json.loads(out)
    got = {layer["name"]: tuple(layer["output_shape"]) for layer in doc["layers"]}

    import importlib.util

    module_spec = importlib.util.spec_from_file_location("course_mynet", ROOT / MYNET)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    model = module.Net()
    real = _forward_shapes(model, torch.zeros(64, *HOMEWORK_INPUT))
    assert real == {"conv1": (64, 32, 24, 24), "conv2": (64, 64, 12, 12), "fc1": (64, 128), "fc2": (64, 10)}
    assert {name: got[name] for name in real} == real  # torch.Size, batch first
    assert got["flatten"] == (64, 2304)
    assert doc["totals"]["params"] == sum(p.numel() for p in model.parameters())

    code, text, _ = cli("inspect", *spec)
    assert "docs/examples/mynet.py:Net at 64x1x28x28" in text and "64x32x24x24" in text


def test_the_example_file_is_the_exercise_the_calculator_states(cli, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = cli("inspect", f"{MYNET}:Net", "--input", "1x28x28", "--json")
    assert code == 0, err
    layers = [x for x in json.loads(out)["layers"] if x["op"] not in ("relu", "placeholder", "output")
              and x["name"] not in ("x", "output")]
    stack = shapes.stack(HOMEWORK_INPUT, list(HOMEWORK_LAYERS))
    assert [tuple(x["output_shape"][1:]) for x in layers] == [r.layer.output_shape for r in stack.rows]
    assert json.loads(out)["totals"]["params"] == stack.params == 348_426


@pytest.mark.parametrize("page", ["tour.md", "ko/tour.md"])
def test_the_tours_pooling_block_is_what_its_command_prints(cli, page: str) -> None:
    from cnnlab.viz.tour import POOL_COMMAND

    text = (DOCS / page).read_text(encoding="utf-8")
    assert "--input 1x4x4" not in text
    shown = re.search(r"```sh\n(?:cnnlab viz pool [^\n]*\n)?" + re.escape(f"{POOL_COMMAND}\n```") + r"\n\n```text\n(.*?)\n```",
                      text, re.DOTALL)
    assert shown, f"{page} lacks the pooling command: regenerate it with scripts/make-tour.py"
    values = re.search(r'--values "([^"]+)"', POOL_COMMAND).group(1)
    code, out, _ = cli("calc", "pool", "--values", values, "--kernel", "2", "--mode", "all", "--explain")
    assert code == 0 and shown.group(1) == out.rstrip("\n")
    assert "max 6, avg 14/4 = 3.5, min 1" in out


def _commands(page: Path) -> list[str]:
    return re.findall(r"^\$ (.+)$", page.read_text(encoding="utf-8"), re.MULTILINE)


def test_the_course_runs_the_same_commands_in_both_languages() -> None:
    en, ko = DOCS / "course.md", DOCS / "ko" / "course.md"
    assert _commands(en) == _commands(ko) and len(_commands(en)) >= 25
    for page in (en, ko):
        text = page.read_text(encoding="utf-8")
        assert f"{MYNET}:Net --input 1x28x28 --batch 64" in text
        for wrong, right in (("110M", "143,667,240"), ("4M", "6,624,904"), ("80%", "89.4%")):
            assert wrong in text and right in text
