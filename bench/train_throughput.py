"""Training images/s: cnnlab's loop against the plain loop a user would write, same data, same run.

The plain loop is the torchvision idiom: a ``Dataset`` whose ``__getitem__`` turns one uint8
image into a normalised float tensor (with torchvision's per-sample RandomCrop and
RandomHorizontalFlip when the recipe augments), a ``DataLoader`` (shuffled; with 0 and with 2
worker processes) and the same model, optimizer and step, in fp32 and the default memory layout.
cnnlab's numbers are the training throughput ``cnnlab.train.fit`` reports for the same number of
steps (evaluation excluded), with its default precision (``auto``: bf16 autocast and
channels_last where the CPU has fast bf16) and with ``--precision fp32``. The main job is
``cnnlab train`` as ``make run`` calls it, timed from the start of the process to its result.

    python bench/train_throughput.py            # prints one JSON document (REPEATS=2: best of two runs each)
"""

from __future__ import annotations

import json
import os
import platform
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset


class PlainDataset(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std, augment: bool) -> None:
        from torchvision import transforms

        self.images, self.labels = images, labels
        steps = [transforms.RandomCrop(images.shape[-1], padding=4), transforms.RandomHorizontalFlip()] if augment \
            else []
        self.transform = transforms.Compose([*steps, transforms.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i].float() / 255), self.labels[i]


def plain(model_name: str, split, mean, std, steps: int, batch: int, workers: int, augment: bool) -> float:
    import cnnlab

    torch.manual_seed(0)
    model = cnnlab.create_model(model_name, num_classes=10, in_channels=split.images.shape[1])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loader = DataLoader(PlainDataset(split.images, split.labels, mean, std, augment), batch_size=batch, shuffle=True,
                        num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    model.train()
    done = seen = 0
    start = time.perf_counter()
    while done < steps:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            seen += y.shape[0]
            if done == steps:
                break
    return seen / (time.perf_counter() - start)


def ours(model_name: str, dataset: str, steps: int, batch: int, augment: bool, tmp: str, extra: dict,
         precision: str) -> tuple[float, str]:
    from cnnlab.train.config import override
    from cnnlab.train.loop import fit
    from cnnlab.train.recipes import get_recipe

    cfg = override(get_recipe("lenet5-mnist"), dict(
        model=model_name, dataset=dataset, iterations=steps, batch_size=batch, lr=0.05, out=tmp, device="cpu",
        crop_padding=4 if augment else 0, flip=augment, log_every=10_000, name=f"{model_name}-bench",
        precision=precision, threads=torch.get_num_threads(), **extra))  # the plain loop's threads: a like comparison
    result = fit(cfg, quiet=True, overwrite=True)
    return result.train_images_per_s, f"{result.config['precision']}{' + channels_last' if result.config['channels_last'] else ''}"


def main_job(tmp: str) -> dict:
    """``cnnlab train`` with no options, as ``make run`` runs it: wall time from start to the printed result."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("cnnlab")
    start = time.perf_counter()
    done = subprocess.run([str(exe), "train", "--out", tmp, "--quiet", "--json"], capture_output=True, text=True,
                          check=True)
    wall = time.perf_counter() - start
    result = json.loads(done.stdout)
    # Where the time goes: two imports every torch training script pays, then the epochs (each
    # with its validation pass), then the test pass and the files.
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    import_torch = time.perf_counter() - start
    # torch.optim imports torch._dynamo when the first optimizer is built (to mark its methods
    # as not compiled), whether or not anything is compiled.
    dynamo = subprocess.run([sys.executable, "-c", "import time, torch; t = time.perf_counter(); import torch._dynamo; "
                             "print(time.perf_counter() - t)"], capture_output=True, text=True, check=True)
    epochs = sum(h["seconds"] for h in result["history"])
    return {"command": "cnnlab train", "wall_seconds": round(wall, 1), "test_top1": result["test"]["top1"],
            "epochs": result["config"]["epochs"], "precision": result["config"]["precision"],
            "channels_last": result["config"]["channels_last"], "train_images_per_s": result["train_images_per_s"],
            "import_torch_seconds": round(import_torch, 1), "import_dynamo_seconds": round(float(dynamo.stdout), 1),
            "epochs_seconds": round(epochs, 1)}


REPEATS = int(os.environ.get("REPEATS", "2"))


def main() -> None:
    import tempfile

    from cnnlab.data import Adapt, load_dataset
    from cnnlab.train.precision import cpu_name

    torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count() or 2)))
    cases = [
        dict(model="lenet5", dataset="mnist", steps=390, batch=128, augment=False, adapt=None, extra={}),
        dict(model="resnet20", dataset="fashion-mnist", steps=120, batch=128, augment=True,
             adapt=Adapt(size=32), extra={"adapt_size": 32}),
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            ds = load_dataset(case["dataset"], adapt=case["adapt"])
            row = {"model": case["model"], "dataset": case["dataset"], "input": list(ds.train.images.shape[1:]),
                   "steps": case["steps"], "batch": case["batch"], "augment": case["augment"]}
            # Best of REPEATS runs for every loop alike: a shared machine's noise only ever slows a run down.
            for precision in ("auto", "fp32"):
                runs = [ours(case["model"], case["dataset"], case["steps"], case["batch"], case["augment"], tmp,
                             case["extra"], precision) for _ in range(REPEATS)]
                row[f"cnnlab_{precision}_images_per_s"] = round(max(speed for speed, _ in runs), 1)
                row[f"cnnlab_{precision}_uses"] = runs[0][1]
            for workers in (0, 2):
                row[f"plain_workers{workers}_images_per_s"] = round(max(plain(
                    case["model"], ds.train, ds.mean, ds.std, case["steps"], case["batch"], workers,
                    case["augment"]) for _ in range(REPEATS)), 1)
            best_plain = max(row["plain_workers0_images_per_s"], row["plain_workers2_images_per_s"])
            row["speedup_over_best_plain"] = round(row["cnnlab_auto_images_per_s"] / best_plain, 2)
            results.append(row)
            print(json.dumps(row), file=__import__("sys").stderr)
        job = main_job(tmp)
    print(json.dumps({"repeats": REPEATS, "machine": {"cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                                  "cpu": cpu_name(), "cpu_bf16": _cpu_feature(), "torch": torch.__version__,
                                  "python": platform.python_version()},
                      "results": results, "main_job": job}, indent=2))


def _cpu_feature() -> str | None:
    from cnnlab.train.precision import fast_bf16

    return fast_bf16(torch.device("cpu"))


if __name__ == "__main__":
    main()
