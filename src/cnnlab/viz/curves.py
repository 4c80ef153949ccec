"""Training curves: loss and accuracy of one or more cnnlab runs against epochs.

    draw_curves(["runs/lenet5-a", "runs/lenet5-b"], "curves.png")

A run folder is what ``cnnlab train`` writes: ``metrics.jsonl`` (one JSON record per epoch) and
``config.json`` (with the recipe and the model).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cnnlab.errors import CnnlabError
from cnnlab.viz.common import save_figure

__all__ = ["draw_curves", "read_run", "run_label"]

FIGSIZE = (10.0, 4.0)  # inches; with DPI: 900x360 pixels
DPI = 90
_REQUIRED = ("epoch", "train_loss", "val_loss")


def read_run(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The epoch records of a run folder's ``metrics.jsonl``, in epoch order."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise CnnlabError(f"{folder}: no such run folder (give the folder `cnnlab train` wrote)")
    path = folder / "metrics.jsonl"
    if not path.is_file():
        raise CnnlabError(f"{folder} has no metrics.jsonl: is it a cnnlab run folder?")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CnnlabError(f"{path} line {number} is not JSON ({exc.msg}): the file is damaged") from None
        if not isinstance(record, dict) or any(k not in record for k in _REQUIRED):
            raise CnnlabError(f"{path} line {number} lacks {', '.join(_REQUIRED)}: not a cnnlab metrics file")
        records.append(record)
    if not records:
        raise CnnlabError(f"{path} has no epochs yet: wait for the first epoch to finish")
    return sorted(records, key=lambda r: r["epoch"])


def run_label(run_dir: str | os.PathLike[str]) -> str:
    """The folder name, with the model from ``config.json`` when it is there."""
    folder = Path(run_dir)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return folder.name
    model = config.get("model") if isinstance(config, dict) else None
    return f"{folder.name} ({model})" if model and model not in folder.name else folder.name


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
        loss_ax.plot(epochs, [r["train_loss"] for r in records], color=colour, marker=".", label=f"{label} train")
        loss_ax.plot(epochs, [r["val_loss"] for r in records], color=colour, ls="--", marker=".",
                     label=f"{label} val")
        for key, style in (("train_top1", "-"), ("val_top1", "--")):
            if all(key in r for r in records):
                acc_ax.plot(epochs, [100 * r[key] for r in records], color=colour, ls=style, marker=".",
                            label=f"{label} {key.split('_')[0]}")
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
