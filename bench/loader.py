"""Data loading alone: cnnlab's TensorLoader against the loaders a user writes first, and what loading costs.

Batches of 128 from each loader, no model, at ``torch.set_num_threads`` 1 and 2:
- MNIST's 50,000 training images (``load_dataset("mnist")``): TensorLoader, shuffled; a
  ``TensorDataset`` of pre-normalised floats + ``DataLoader``; a torchvision-style ``Dataset``
  (uint8 array -> PIL image -> ``ToTensor`` -> ``Normalize``, as torchvision's MNIST does) +
  ``DataLoader`` with 0 and with 2 worker processes;
- 20,000 images of CIFAR-10's size, 3x32x32 (CIFAR-10's first 20,000 when it is installed,
  random uint8 pixels otherwise: the pixel values do not change the work): TensorLoader with a
  pad-4 random crop and a horizontal flip; torchvision's ``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize`` per sample, with 0 and 2 workers.

Each row is timed over windows of consecutive batches of one stream, after a few warm-up
batches; its figure is the median window. A TensorLoader window is an epoch's worth of batches,
so it pays for one epoch start (``set_epoch`` and the permutation); a DataLoader's windows stay
inside its first epoch, so worker start and epoch ends are left out (the baselines' most
favourable case). Then the batched crop and flip of one CIFAR-size batch against a per-image
Python loop and ``torch.where``, and the seconds ``import cnnlab.data`` and ``load_dataset``
take, in fresh processes. The load average before and after is recorded: on a shared machine
every figure depends on it, and 2 threads suffer most when the other core is busy.

    python bench/loader.py > bench/results/loader.json      # 1-2 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

BATCH = 128
THREADS = (1, 2)
CIFAR_SIZE = 20_000
WINDOW_SECONDS = 2.0  # per row and thread count, after the first 3 windows


# --------------------------------------------------------------------------- the loaders


def _plain_dataset(images, labels, transform):
    """torchvision's MNIST / CIFAR10 ``__getitem__``: one uint8 array -> PIL image -> transform."""
    from PIL import Image
    from torch.utils.data import Dataset

    class PilDataset(Dataset):
        def __init__(self) -> None:
            # N x H x W (gray) or N x H x W x C (colour) uint8, as torchvision's datasets hold them.
            self.data = images
            self.targets = labels

        def __len__(self) -> int:
            return len(self.targets)

        def __getitem__(self, i: int):
            return transform(Image.fromarray(self.data[i])), int(self.targets[i])

    return PilDataset()


def _stream(loader):
    """Batches of ``loader``, epoch after epoch."""
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def _windows(loader, warmup: int, size: int, most: int) -> list[float]:
    """Batches/s of consecutive windows of ``size`` batches after ``warmup``: at least 3, at most
    ``most``, fewer than ``most`` once WINDOW_SECONDS have passed (a busy machine stays within its time)."""
    stream = _stream(loader)
    for _ in range(warmup):
        next(stream)
    rates: list[float] = []
    began = time.perf_counter()
    while len(rates) < most and (len(rates) < 3 or time.perf_counter() - began < WINDOW_SECONDS):
        start = time.perf_counter()
        for _ in range(size):
            next(stream)
        rates.append(size / (time.perf_counter() - start))
    stream.close()
    return rates


def _row(rates: list[float], size: int) -> dict:
    median = statistics.median(rates)
    return {"batches_per_s": round(median, 1), "us_per_batch": round(1e6 / median, 1),
            "batches_per_window": size, "windows": [round(r, 1) for r in rates]}


def loaders(mnist, cifar) -> list[dict]:
    """Every row of the table: what it is and how to build and time it."""
    from torch.utils.data import DataLoader, TensorDataset
    from torchvision import transforms

    from cnnlab.data import Augment, TensorLoader

    mnist_x = mnist.images[:, 0].numpy()  # N x 28 x 28
    cifar_x = cifar.images.permute(0, 2, 3, 1).contiguous().numpy()  # N x 32 x 32 x 3
    mnist_norm = transforms.Normalize(mnist.mean, mnist.std)
    mnist_tv = transforms.Compose([transforms.ToTensor(), mnist_norm])
    cifar_tv = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), transforms.Normalize(cifar.mean, cifar.std)])
    epoch_mnist = -(-len(mnist.split) // BATCH)
    epoch_cifar = -(-len(cifar.split) // BATCH)

    def tensor_loader(data, augment):
        return lambda: TensorLoader(data.split, BATCH, shuffle=True, augment=augment, mean=data.mean, std=data.std)

    def pre_normalised():
        x = mnist_norm(mnist.images.float() / 255)
        return DataLoader(TensorDataset(x, mnist.split.labels), batch_size=BATCH, shuffle=True)

    def plain(data, array, transform, workers):
        return lambda: DataLoader(_plain_dataset(array, data.split.labels.numpy(), transform), batch_size=BATCH,
                                  shuffle=True, num_workers=workers)

    # A TensorLoader window is an epoch's worth of consecutive batches, so it holds exactly one
    # epoch start (set_epoch, the permutation). A DataLoader's windows stay inside its first epoch
    # (warmup + size * most <= batches per epoch): worker start and epoch ends are left out.
    return [
        dict(data="mnist", kind="tensorloader", workers=None, loader="TensorLoader, shuffled",
             build=tensor_loader(mnist, None), warmup=5, size=epoch_mnist, most=15),
        dict(data="mnist", kind="tensordataset", workers=0,
             loader="`TensorDataset` of pre-normalised floats + DataLoader",
             build=pre_normalised, warmup=5, size=70, most=5),
        dict(data="mnist", kind="torchvision", workers=0,
             loader="torchvision-style Dataset (PIL image, `ToTensor`, `Normalize`) + DataLoader, 0 workers",
             build=plain(mnist, mnist_x, mnist_tv, 0), warmup=3, size=40, most=5),
        dict(data="mnist", kind="torchvision", workers=2, loader="the same, 2 workers",
             build=plain(mnist, mnist_x, mnist_tv, 2), warmup=6, size=40, most=5),
        dict(data="cifar", kind="tensorloader", workers=None, loader="TensorLoader, pad-4 crop + flip",
             build=tensor_loader(cifar, Augment(crop_padding=4, flip=True)), warmup=5, size=epoch_cifar, most=9),
        dict(data="cifar", kind="torchvision", workers=0,
             loader="torchvision `RandomCrop(32, 4)`, `RandomHorizontalFlip`, `ToTensor`, `Normalize`, 0 workers",
             build=plain(cifar, cifar_x, cifar_tv, 0), warmup=3, size=20, most=5),
        dict(data="cifar", kind="torchvision", workers=2, loader="the same, 2 workers",
             build=plain(cifar, cifar_x, cifar_tv, 2), warmup=6, size=20, most=5),
    ]


class _Data:
    def __init__(self, split, mean, std, what: str) -> None:
        self.split, self.mean, self.std, self.what = split, mean, std, what

    @property
    def images(self):
        return self.split.images

    def describe(self) -> dict:
        return {"images": len(self.split), "shape": list(self.split.images.shape[1:]), "source": self.what}


def datasets(notes: list[str]) -> tuple[_Data, _Data]:
    import torch

    from cnnlab.data import Split, channel_stats, load_dataset
    from cnnlab.errors import CnnlabError

    try:
        ds = load_dataset("mnist")
        mnist = _Data(ds.train, ds.mean, ds.std, "load_dataset('mnist').train")
    except CnnlabError as exc:
        notes.append(f"MNIST rows use random pixels of MNIST's size: {exc}")
        gen = torch.Generator().manual_seed(0)
        split = Split(torch.randint(0, 256, (50_000, 1, 28, 28), generator=gen, dtype=torch.uint8),
                      torch.randint(0, 10, (50_000,), generator=gen))
        mnist = _Data(split, *channel_stats(split.images), "random uint8 pixels, 50,000 x 1 x 28 x 28")
    try:
        ds = load_dataset("cifar10", limit=CIFAR_SIZE)
        cifar = _Data(ds.train, ds.mean, ds.std, f"load_dataset('cifar10', limit={CIFAR_SIZE}).train")
    except CnnlabError:
        notes.append("CIFAR-10 is not installed here: the CIFAR-size rows use random uint8 pixels of its shape")
        gen = torch.Generator().manual_seed(0)
        split = Split(torch.randint(0, 256, (CIFAR_SIZE, 3, 32, 32), generator=gen, dtype=torch.uint8),
                      torch.randint(0, 10, (CIFAR_SIZE,), generator=gen))
        cifar = _Data(split, *channel_stats(split.images), f"random uint8 pixels, {CIFAR_SIZE:,} x 3 x 32 x 32")
    return mnist, cifar


# --------------------------------------------------------------------------- crop and flip alone


def _median_us(fn, repeat: int = 7, seconds: float = 0.02) -> float:
    """Median microseconds per call over ``repeat`` runs of as many calls as fill ``seconds``."""
    start = time.perf_counter()
    fn()
    number = max(1, min(200, int(seconds / (time.perf_counter() - start))))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return round(statistics.median(times) * 1e6, 1)


def micro() -> dict:
    """The batched crop and flip on one CIFAR-size uint8 batch against the obvious alternatives."""
    import torch
    import torch.nn.functional as F

    from cnnlab.data.augment import crop_with_offsets, flip_where

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (BATCH, 3, 32, 32), generator=gen, dtype=torch.uint8)
    pad = 4
    offsets = torch.randint(0, 2 * pad + 1, (BATCH, 2), generator=gen)
    mask = torch.rand(BATCH, generator=gen) < 0.5

    def crop_loop():
        xp = F.pad(x, (pad, pad, pad, pad))
        return torch.stack([xp[i, :, r:r + 32, c:c + 32] for i, (r, c) in enumerate(offsets.tolist())])

    def flip_broadcast():
        return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)

    same_crop = torch.equal(crop_with_offsets(x, pad, offsets), crop_loop())
    same_flip = torch.equal(flip_where(x, mask), flip_broadcast())
    out = {"input": f"{BATCH} x 3 x 32 x 32 uint8", "crop_padding": pad,
           "same_result": {"crop": same_crop, "flip": same_flip}}
    for threads in THREADS:
        torch.set_num_threads(threads)
        out[f"threads_{threads}"] = {
            "crop_batched_us": _median_us(lambda: crop_with_offsets(x, pad, offsets)),
            "crop_python_loop_us": _median_us(crop_loop),
            "flip_gather_us": _median_us(lambda: flip_where(x, mask)),
            "flip_torch_where_us": _median_us(flip_broadcast),
        }
    return out


# --------------------------------------------------------------------------- loading, in fresh processes

LOADED = ("mnist", "fashion-mnist", "mnist-5k")


def loading_child() -> None:
    """Run in a fresh process: import times, then each dataset's load_dataset (MNIST twice)."""
    start = time.perf_counter()
    import torch  # noqa: F401

    torch_s = time.perf_counter() - start
    import cnnlab.data
    from cnnlab.errors import CnnlabError

    out: dict = {"import_torch_s": torch_s, "import_cnnlab_data_s": time.perf_counter() - start, "missing": {}}
    for name in LOADED:
        for key in ("first", "again") if name == "mnist" else ("first",):
            start = time.perf_counter()
            try:
                cnnlab.data.load_dataset(name)
            except CnnlabError as exc:
                out["missing"][name] = str(exc)
                break
            out[f"{name}_{key}_s"] = time.perf_counter() - start
    print(json.dumps(out))


def loading() -> dict:
    """Four fresh processes, each with ``XDG_CACHE_HOME`` in one of two empty folders.

    The first process in a folder decodes MNIST's pickle (and keeps the uint8 arrays there);
    the later ones read those arrays back. Fashion-MNIST and mnist-5k have no such cache.
    """
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in ("a", "a", "b", "b"):
            env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, folder))
            done = subprocess.run([sys.executable, __file__, "--loading-child"], env=env, capture_output=True,
                                  text=True, check=True)
            runs.append({"mnist_decoded": not any(r["folder"] == folder for r in runs), "folder": folder,
                         **json.loads(done.stdout)})

    def median(key: str, decoded: bool | None = None) -> float | None:
        values = [r[key] for r in runs if key in r and decoded in (None, r["mnist_decoded"])]
        return round(statistics.median(values), 3) if values else None

    seconds = {
        "import_torch": median("import_torch_s"),
        "import_cnnlab_data": median("import_cnnlab_data_s"),
        "mnist_decode": median("mnist_first_s", True),
        "mnist_decoded_cache": median("mnist_first_s", False),
        "mnist_again_in_process": median("mnist_again_s"),
        "fashion-mnist": median("fashion-mnist_first_s"),
        "mnist-5k": median("mnist-5k_first_s"),
    }
    missing = runs[0]["missing"]
    return {"processes": len(runs), "median_seconds": seconds,
            "not_installed": missing,
            "runs": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items() if k != "missing"}
                     for r in runs]}


# --------------------------------------------------------------------------- main


def machine() -> dict:
    import PIL
    import torch
    import torchvision

    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "pillow": PIL.__version__, "python": platform.python_version()}


def main() -> None:
    import torch

    began = time.perf_counter()
    load_start = os.getloadavg()
    notes: list[str] = []
    mnist, cifar = datasets(notes)
    rows = []
    for spec in loaders(mnist, cifar):
        row = {k: spec[k] for k in ("data", "kind", "workers", "loader")}
        for threads in THREADS:
            torch.set_num_threads(threads)
            loader = spec["build"]()
            row[f"threads_{threads}"] = _row(_windows(loader, spec["warmup"], spec["size"], spec["most"]),
                                             spec["size"])
            del loader
            print(f"{row['data']} {row['loader']}: {threads} thread(s) "
                  f"{row[f'threads_{threads}']['batches_per_s']:,.0f} batches/s", file=sys.stderr)
        rows.append(row)
    speedup = {}
    for data in ("mnist", "cifar"):
        ours = next(r for r in rows if r["data"] == data and r["kind"] == "tensorloader")
        speedup[data] = {}
        for threads in THREADS:
            key = f"threads_{threads}"
            plain = max(r[key]["batches_per_s"] for r in rows if r["data"] == data and r["kind"] == "torchvision")
            speedup[data][key] = round(ours[key]["batches_per_s"] / plain, 1)
    crop_flip = micro()
    loads = loading()
    notes += [f"{name} is not installed: {why}" for name, why in loads["not_installed"].items()]
    print(json.dumps({
        "benchmark": "data loading alone: batches/s of each loader, no model; crop and flip alone; loading costs",
        "command": "python bench/loader.py > bench/results/loader.json",
        "machine": machine(),
        "load_average": {"start": [round(v, 2) for v in load_start],
                         "end": [round(v, 2) for v in os.getloadavg()]},
        "batch_size": BATCH,
        "threads": list(THREADS),
        "timing": "median of windows of consecutive batches; a TensorLoader window is one whole epoch, "
                  "a DataLoader window a run of batches inside an epoch after warm-up",
        "data": {"mnist": mnist.describe(), "cifar": cifar.describe()},
        "rows": rows,
        "tensorloader_over_best_torchvision": speedup,
        "crop_flip": crop_flip,
        "loading": loads,
        "notes": notes,
        "seconds": round(time.perf_counter() - began, 1),
    }, indent=2))


if __name__ == "__main__":
    if sys.argv[1:] == ["--loading-child"]:
        loading_child()
    else:
        main()
