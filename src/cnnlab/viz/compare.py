"""Compare architectures: parameters against MACs, and accuracy against MACs, one point per model.

    draw_compare(["alexnet", "vgg16", "googlenet", "resnet50", "densenet121"], (3, 224, 224), "cmp.png")

Parameters and MACs come from :func:`cnnlab.analyze` (multiply-accumulates of convolutions and
linear layers, per image). Accuracies come from a dict ``{model: top-1}`` or from run folders'
``result.json`` (their test top-1 and the model named in their config).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.shapes import fmt_shape
from cnnlab.viz.common import save_figure
from cnnlab.viz.rf import _size3

__all__ = ["ModelCost", "draw_compare", "model_costs", "run_accuracies"]

FIGSIZE = (11.0, 4.5)  # inches; with DPI: 990x405 pixels
DPI = 90

Accuracies = Mapping[str, float] | Sequence[str | os.PathLike[str]]


class ModelCost(NamedTuple):
    name: str
    params: int
    macs: int


def model_costs(models: Sequence[str | nn.Module], input_size: Sequence[int] | str) -> list[ModelCost]:
    """Parameters and MACs of each model at one input size (the numbers the plot shows)."""
    from cnnlab.analysis import analyze

    size = _size3(input_size)
    costs = []
    for model in models:
        report = analyze(model, size)
        name = model if isinstance(model, str) else type(model).__name__
        if report.macs is None:
            raise CnnlabError(f"the MACs of {name} are unknown ({report.unknown['macs']}): it cannot be placed on "
                              "the plot; `cnnlab inspect` shows which node stops them")
        costs.append(ModelCost(name, report.params, report.macs))
    return costs


def run_accuracies(run_dirs: Sequence[str | os.PathLike[str]]) -> dict[str, float]:
    """{model: test top-1} from run folders' ``result.json`` (the best run when a model repeats)."""
    from cnnlab.runs import RunDir

    accs: dict[str, float] = {}
    for folder in run_dirs:
        run = RunDir(folder)
        result = run.read_result()
        if result is None:
            raise CnnlabError(f"{folder} has no readable result.json: give finished cnnlab run folders")
        try:
            model = str(result["config"]["model"])
            top1 = float(result["test"]["top1"])
        except (KeyError, TypeError, ValueError):
            raise CnnlabError(f"{run.result_file} has no test top-1 and model: did the run finish with a test "
                              "set?") from None
        accs[model] = max(top1, accs.get(model, top1))
    return accs


def _percent(values: Mapping[str, float]) -> dict[str, float]:
    # Accept fractions (0.76) or percentages (76.1); all on one scale.
    fractions = all(0 <= v <= 1 for v in values.values())
    return {k: 100 * v if fractions else v for k, v in values.items()}


def _fmt(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def draw_compare(models: Sequence[str | nn.Module], input_size: Sequence[int] | str,
                 out: str | os.PathLike[str], accuracies: Accuracies | None = None) -> Path:
    """Parameters vs MACs on log axes (and top-1 accuracy vs MACs when accuracies are given)."""
    if not models:
        raise CnnlabError("give at least one model to compare")
    costs = model_costs(models, input_size)
    accs: dict[str, float] | None = None
    if accuracies is not None:
        accs = dict(accuracies) if isinstance(accuracies, Mapping) else run_accuracies(accuracies)
        accs = _percent(accs)
    panels = 1 if accs is None else 2
    fig, axes = plt.subplots(1, panels, figsize=FIGSIZE, squeeze=False)
    ax = axes[0][0]
    for c in costs:
        ax.scatter(c.macs, c.params, s=40, zorder=3)
        ax.annotate(f"{c.name}\n{_fmt(c.params)} params, {_fmt(c.macs)} MACs", (c.macs, c.params),
                    textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(0.35)
    ax.set_xlabel("MACs per image (log)")
    ax.set_ylabel("parameters (log)")
    ax.set_title(f"size and compute at {fmt_shape(_size3(input_size))}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    if accs is not None:
        ax2 = axes[0][1]
        shown = [c for c in costs if c.name in accs]
        if not shown:
            raise CnnlabError(f"no accuracy for any of {', '.join(c.name for c in costs)}: "
                              f"accuracies name {', '.join(accs) or 'nothing'}")
        for c in shown:
            ax2.scatter(c.macs, accs[c.name], s=40, zorder=3)
            ax2.annotate(f"{c.name} {accs[c.name]:.1f}%", (c.macs, accs[c.name]), textcoords="offset points",
                         xytext=(6, 4), fontsize=7)
        ax2.set_xscale("log")
        ax2.margins(0.3)
        ax2.set_xlabel("MACs per image (log)")
        ax2.set_ylabel("top-1 accuracy (%)")
        ax2.set_title("accuracy against compute", fontsize=9)
        ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return save_figure(fig, out, dpi=DPI)
