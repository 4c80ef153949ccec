"""Helpers the run-folder tests share: a tiny run's config, and comparing two runs field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cnnlab.checkpoint import load_checkpoint

# Wall-clock figures: the only fields two runs of the same config may differ in.
TIMING = ("seconds", "train_images_per_s")

# A LeNet-5 run of 2 epochs x 10 steps on 500 MNIST-5k images (about 55% test accuracy), with random crops (so
# every random generator matters) and a mid-epoch checkpoint every 4 steps.
TINY = ["--dataset", "mnist-5k", "--limit", "500", "--epochs", "2", "--batch-size", "50",
        "--eval-batch-size", "500", "--device", "cpu", "--lr", "0.2", "--crop-padding", "2",
        "--checkpoint-every", "4", "--log-every", "5"]


def small_config(tmp_path: Path, **changes: Any) -> Any:
    """LeNet-5 on 1,000 images of the MNIST 5k subset: a run takes about a second."""
    from cnnlab.train.config import override
    from cnnlab.train.recipes import get_recipe

    # One thread, whatever the load: runs that tests compare bit for bit must compute alike.
    base = dict(dataset="mnist-5k", limit=1000, epochs=2, batch_size=50, eval_batch_size=500, log_every=5,
                out=str(tmp_path), device="cpu", lr=0.05, threads=1)
    return override(get_recipe("lenet5-mnist"), {**base, **changes})


def untimed(value: Any) -> Any:
    """``value`` without wall-clock fields and without the run's own folder (named in out, run_dir, summary)."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in (*TIMING, "run_dir", "out", "summary")}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def metrics(run: Path) -> list[dict[str, Any]]:
    return [untimed(json.loads(line)) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(a: Path, b: Path) -> None:
    """Weights (last and best), metrics.jsonl and result.json agree bit for bit, timings aside."""
    for name in ("last.pt", "best.pt"):
        wa, wb = load_checkpoint(a / name)["state_dict"], load_checkpoint(b / name)["state_dict"]
        assert wa.keys() == wb.keys()
        for key in wa:
            assert torch.equal(wa[key], wb[key]), f"{name}: {key}"
    assert metrics(a) == metrics(b)
    ra, rb = (untimed(json.loads((run / "result.json").read_text())) for run in (a, b))
    assert ra == rb
    assert not list(b.glob(".*.tmp")), "a temporary file survived"
