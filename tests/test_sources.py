"""Every way of naming a network, through every command that takes one: accepted, or refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.sources import kind_of, resolve

NET = '''
import torch
from torch import nn


class Net(nn.Module):
    """A small user network: any input size (global pooling before the classifier)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1),
                                      nn.ReLU())
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))
'''

# command -> (argv with {m} for the network, the kinds it takes)
ALL = ("zoo", "code", "checkpoint", "run")
TRAINED = ("checkpoint", "run")
COMMANDS = {
    "inspect": (["inspect", "{m}", "--input", "1x28x28", "--json"], ALL),
    "compare": (["compare", "{m}", "lenet5", "--input", "1x28x28", "--json"], ALL),
    "export": (["export", "{m}", "--format", "safetensors", "--input", "1x28x28", "--out", "{out}/w.safetensors",
                "--json"], ALL),
    "eval": (["eval", "{m}", "--json"], TRAINED),
    "predict": (["predict", "{m}", "{out}/digit.png", "--json"], TRAINED),
    "viz-filters": (["viz", "filters", "{m}", "--out", "{out}/f.png", "--json"], ALL),
    "viz-features": (["viz", "features", "{m}", "{out}/digit.png", "--out", "{out}/f.png", "--json"], ALL),
    "viz-gradcam": (["viz", "gradcam", "{m}", "{out}/digit.png", "--out", "{out}/g.png", "--json"], ALL),
    "viz-rf": (["viz", "rf", "{m}", "--input", "1x28x28", "--out", "{out}/r.png", "--json"], ALL),
}


@pytest.fixture(scope="module")
def networks(trained_run: Path, tmp_path_factory) -> dict[str, str]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("sources")
    (folder / "net.py").write_text(NET)
    Image.new("L", (28, 28), 0).save(folder / "digit.png")
    return {"zoo": "lenet5", "code": f"{folder / 'net.py'}:Net", "checkpoint": str(trained_run / "best.pt"),
            "run": str(trained_run), "out": str(folder)}


@pytest.mark.parametrize("kind", ALL)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_takes_the_kinds_that_make_sense(cli, networks: dict[str, str], command: str,
                                                      kind: str) -> None:
    argv, accepted = COMMANDS[command]
    code, out, err = cli(*[a.format(m=networks[kind], out=networks["out"]) for a in argv])
    if kind in accepted:
        assert code == 0, err
        json.loads(out)
    else:
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert "takes a cnnlab checkpoint file or a run folder" in err


def test_kinds_and_labels(networks: dict[str, str]) -> None:
    assert [kind_of(networks[k]) for k in ALL] == list(ALL)
    run = resolve(networks["run"])
    assert run.checkpoint.name == "best.pt" and run.name == "lenet5" and run.default_input == (1, 28, 28)
    assert run.data["classes"] == [str(i) for i in range(10)]
    assert resolve("resnet20", in_channels=1).default_input == (1, 32, 32)
    with pytest.raises(CnnlabError, match="already fixes the architecture"):
        resolve(networks["checkpoint"], num_classes=3)
    with pytest.raises(CnnlabError, match=r"unknown model 'lenet6'"):
        resolve("lenet6")
    with pytest.raises(CnnlabError, match="does not exist"):
        resolve("runs/nothing-here")


LAZY = '''
from torch import nn


class Net(nn.Module):
    """Lazy layers: the first input sets their sizes."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.ReLU())
        self.fc = nn.LazyLinear(10)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))
'''


def test_lazy_layers_in_user_code_are_sized_by_the_input_where_the_command_has_one(cli, tmp_path: Path) -> None:
    (tmp_path / "lazy.py").write_text(LAZY)
    spec = f"{tmp_path / 'lazy.py'}:Net"
    code, out, err = cli("inspect", spec, "--input", "1x28x28", "--json")
    assert code == 0, err
    # by hand: conv 4x1x3x3 + 4 biases, batch norm 4 scales + 4 shifts, linear 10 x (4 x 26 x 26) + 10
    assert json.loads(out)["totals"]["params"] == (36 + 4) + (4 + 4) + (10 * 4 * 26 * 26 + 10) == 27_098
    code, out, err = cli("inspect", spec, "--input", "1x2x2")  # too small for its 3x3: one line, not a traceback
    assert code == 2 and err.startswith(f"cnnlab: error: {spec} cannot run on input 1x2x2: ") and err[-1:] == "\n"
    assert err.count("\n") == 1
    code, out, err = cli("viz", "rf", spec, "--input", "1x28x28", "--out", str(tmp_path / "r.png"), "--json")
    assert code == 0, err
    code, out, err = cli("export", spec, "--format", "safetensors", "--input", "1x28x28", "--out",
                         str(tmp_path / "w.safetensors"), "--json")
    assert code == 0, err
    code, out, err = cli("viz", "filters", spec, "--out", str(tmp_path / "f.png"))  # no input size to go by
    assert code == 2 and err == (
        f"cnnlab: error: {spec} has lazy parameters (features.0.weight, features.0.bias, features.1.weight and 5 "
        "more) whose sizes its first forward pass sets: run it once in the file, e.g. "
        "model(torch.zeros(1, 3, 32, 32)), before returning it\n")


def test_a_callers_lazy_model_is_left_as_it_is_with_the_fix_in_one_line() -> None:
    import torch
    from torch import nn

    from cnnlab import analyze

    model = nn.Sequential(nn.LazyLinear(3))
    with pytest.raises(CnnlabError) as info:
        analyze(model, "16")
    assert str(info.value) == ("Sequential has lazy parameters (0.weight, 0.bias) whose sizes its first forward pass "
                               "sets: run it once on an input, e.g. model(torch.zeros(1, 16)), then analyse it")
    model(torch.zeros(1, 16))
    assert analyze(model, "16").params == 16 * 3 + 3
