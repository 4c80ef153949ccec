"""An experiment's pictures: error curves with a band over seeds, accuracy against parameters and MACs.

    draw_experiment(results_document, folder)  # -> [curves.png, accuracy_params.png, accuracy_macs.png]

The document is what :func:`cnnlab.experiments.run_experiment` returns (``results.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cnnlab.viz.common import save_figure

__all__ = ["draw_experiment"]

DPI = 90


def _colours() -> list[str]:
    return plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _curves(doc: dict[str, Any], out: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), sharey=True)
    colours = _colours()
    for ax, key, title in ((axes[0], "train_error", "training error"), (axes[1], "val_error", "validation error")):
        for i, m in enumerate(doc["models"]):
            c = m["curves"]
            series = c[key]
            points = [(e, mean, lo, hi) for e, mean, lo, hi in zip(c["epoch"], series["mean"], series["low"],
                                                                    series["high"], strict=True) if mean is not None]
            if not points:
                continue
            e, mean, lo, hi = zip(*points, strict=True)
            colour = colours[i % len(colours)]
            ax.plot(e, mean, marker="o", color=colour, label=m["label"])
            if doc["seeds"] > 1:
                ax.fill_between(e, lo, hi, color=colour, alpha=0.18, linewidth=0)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("error (mean over seeds; band: lowest to highest)")
    axes[1].legend(fontsize=8)
    fig.suptitle(doc["title"], fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out / "curves.png", dpi=DPI)


def _against(doc: dict[str, Any], out: Path, key: str, xlabel: str, file: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colours = _colours()
    for i, m in enumerate(doc["models"]):
        x = m[key]
        if x is None or m["test_top1_mean"] is None:
            continue
        colour = colours[i % len(colours)]
        ax.errorbar([x], [m["test_top1_mean"]], yerr=[m["test_top1_std"] or 0.0], fmt="o", color=colour, capsize=4,
                    label=m["label"])
        ax.annotate(m["label"], (x, m["test_top1_mean"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"test accuracy (mean ± std, {doc['seeds']} seeds)")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3, which="both")
    ax.set_title(doc["title"], fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out / file, dpi=DPI)


def draw_experiment(doc: dict[str, Any], folder: str | Path) -> list[Path]:
    """Write the experiment's three pictures into ``folder`` and return their paths."""
    out = Path(folder)
    return [_curves(doc, out),
            _against(doc, out, "params", "parameters (log scale)", "accuracy_params.png"),
            _against(doc, out, "macs", "multiply-adds per sample (log scale)", "accuracy_macs.png")]
