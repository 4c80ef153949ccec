"""The CUDA path in one run: bf16 autocast, channels_last and torch.compile, on Fashion-MNIST.

Trains ResNet-20 and a small-stem ResNet-18 with the `resnet20-fashion-mnist` recipe on the GPU,
first in plain fp32 and then with bf16 + channels_last + torch.compile, and records training
images/s, wall time and test accuracy (the recipe's target is 94%). Prints one JSON document.

    python bench/gpu_check.py [--epochs 15] [--out gpu-runs]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch


def run(model: str, options: dict, fast: bool, epochs: int, out: str) -> dict:
    from cnnlab.train.config import override
    from cnnlab.train.loop import fit
    from cnnlab.train.recipes import get_recipe

    cfg = override(get_recipe("resnet20-fashion-mnist"), dict(
        model=model, model_options=options, epochs=epochs, device="cuda", out=out,
        name=f"{model}-{'fast' if fast else 'fp32'}", precision="bf16" if fast else "fp32", channels_last=fast,
        compile=fast, log_every=100))
    start = time.perf_counter()
    result = fit(cfg, quiet=True, overwrite=True)
    return {"model": model, "options": options, "bf16_channels_last_compile": fast, "epochs": epochs,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "train_images_per_s": round(result.train_images_per_s, 1),
            "test_top1": result.test["top1"] if result.test else None,
            "reached_94": bool(result.test and result.test["top1"] >= 0.94),
            "val_top1_per_epoch": [round(h["val_top1"], 4) for h in result.history]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device")
    out = args.out or tempfile.mkdtemp(prefix="cnnlab-gpu-")
    results = [run(m, o, fast, args.epochs, out) for m, o in (("resnet20", {}), ("resnet18", {"small_input": True}))
               for fast in (False, True)]
    print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "results": results},
                     indent=2))


if __name__ == "__main__":
    main()
