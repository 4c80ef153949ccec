"""Training curves: loss and accuracy of one or more cnnlab runs against epochs.

    draw_curves(["runs/lenet5-a", "runs/lenet5-b"], "curves.png")

A run folder is what ``cnnlab train`` writes: ``metrics.jsonl`` (one JSON record per epoch) and
``config.json`` (with the recipe and the model).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cnnlab.errors import CnnlabError
from cnnlab.runs import RunDir
from cnnlab.viz.common import save_figure

__all__ = ["draw_curves", "read_run", "run_label"]

FIGSIZE = (10.0, 4.0)  # inches; with DPI: 900x360 pixels
DPI = 90


def read_run(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The epoch records of a run folder's ``metrics.jsonl``, in epoch order; a damaged line is an error."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise CnnlabError(f"{run.path}: no such run folder (give the folder `cnnlab train` wrote)")
    records = run.read_metrics(strict=True)
    if not records:
        raise CnnlabError(f"{run.metrics_file} has no epochs yet: wait for the first epoch to finish")
    return records


def run_label(run_dir: str | os.PathLike[str]) -> str:
    """The folder name, with the model from ``config.json`` when it is there."""
    run = RunDir(run_dir)
    model = (run.read_config() or {}).get("model")
    return f"{run.path.name} ({model})" if model and model not in run.path.name else run.path.name


def draw_curves(run_dirs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
                out: str | os.PathLike[str]) -> Path:
    """Loss (left) and top-1 accuracy (right) per epoch; train solid, validation dashed, one colour per run."""
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise CnnlabError("give at least one run folder")
    runs = [(run_label(d), read_run(d)) for d in run_dirs]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=FIGSIZE)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, records) in enumerate(runs):
        colour = colours[i % len(colours)]
        epochs = [r["epoch"] for r in records]
        # A run without a validation split (or a value that was not finite) has gaps: NaN leaves them.
        for ax, key, style, scale in ((loss_ax, "train_loss", "-", 1), (loss_ax, "val_loss", "--", 1),
                                      (acc_ax, "train_top1", "-", 100), (acc_ax, "val_top1", "--", 100)):
            values = [r.get(key) for r in records]
            if any(v is not None for v in values):
                ax.plot(epochs, [math.nan if v is None else scale * v for v in values], color=colour, ls=style,
                        marker=".", label=f"{label} {key.split('_')[0]}")
    loss_ax.set_title("loss (solid: train, dashed: validation)", fontsize=9)
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.set_title("top-1 accuracy (solid: train, dashed: validation)", fontsize=9)
    acc_ax.set_ylabel("top-1 accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out, dpi=DPI)
