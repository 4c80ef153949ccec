"""Image folders (ImageNet layout): a torch Dataset over files and a worker-backed loader.

``root/train/<class>/<image>``, ``root/val/<class>/<image>`` and optionally
``root/test/<class>/<image>``; class names (and label order) are the sorted folder names of
``train/``. Each item is decoded (PIL) and transformed per
sample in the worker processes: training RandomResizedCrop(size) + horizontal flip, evaluation
Resize(round(size * 256/224)) + CenterCrop(size), the torchvision reference recipe. Items are
uint8 ``C x size x size``; :func:`folder_loader` moves each batch to the device and normalises
it there (uint8 crosses the bus: 4x fewer bytes than float).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.utils.data

from cnnlab.data.augment import IMAGENET_PCA, Augment, BatchAugment
from cnnlab.data.loader import _AUG, _PERM, _WORKERS, chunk, epoch_order, mix_seed, shard_plan
from cnnlab.errors import CnnlabError, first_line

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "FolderDataset",
    "FolderLoader",
    "folder_loader",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ImageNet's mean colour through ITU-R 601 luma, for images decoded gray; std about the same.
IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD = (0.299 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406,), (0.226,)
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
)


def scan_classes(folder: Path) -> list[str]:
    """Sorted names of the sub-folders of ``folder`` (hidden ones skipped)."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


class FolderDataset(torch.utils.data.Dataset):
    """Images in ``folder/<class>/...``; ``dataset[i]`` is (uint8 C x size x size tensor, label)."""

    def __init__(
        self,
        folder: str | Path,
        *,
        classes: list[str] | None = None,
        train: bool = False,
        size: int = 224,
        resize: int | None = None,
        channels: int = 3,
        scale: tuple[float, float] = (0.08, 1.0),
        flip: bool = True,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CnnlabError(f"image folder {self.folder} does not exist")
        found = scan_classes(self.folder)
        if classes is None:
            classes = found
        else:
            unknown = sorted(set(found) - set(classes))
            if unknown:
                raise CnnlabError(
                    f"{self.folder} has class folders not in train/: {', '.join(unknown[:5])}"
                    f"{' ...' if len(unknown) > 5 else ''}: give every split the same class folders"
                )
        if not classes:
            raise CnnlabError(
                f"{self.folder} has no class folders: put images in {self.folder}/<class>/"
            )
        if channels not in (1, 3):
            raise CnnlabError(f"image folders decode to 1 or 3 channels, not {channels}")
        self.classes = list(classes)
        index = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        for name in found:
            for dirpath, _, files in sorted(os.walk(self.folder / name, followlinks=True)):
                for f in sorted(files):
                    if f.lower().endswith(IMAGE_EXTENSIONS):
                        self.samples.append((os.path.join(dirpath, f), index[name]))
        if not self.samples:
            raise CnnlabError(
                f"{self.folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its class folders"
            )
        self.targets = [label for _, label in self.samples]
        self.train = train
        self.size = size
        self.resize = resize if resize is not None else round(size * 256 / 224)
        self.channels = channels
        self.scale = scale
        self.flip = flip
        # The normalisation folder_loader applies unless told otherwise: ImageNet's statistics.
        self.mean = IMAGENET_MEAN if channels == 3 else IMAGENET_GRAY_MEAN
        self.std = IMAGENET_STD if channels == 3 else IMAGENET_GRAY_STD
        self._transform = None

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        mode = "train" if self.train else "eval"
        return f"FolderDataset({self.folder}, {len(self)} images, {len(self.classes)} classes, {mode}, {self.size}px)"

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size, self.size

    def subset(self, indices: list[int], *, train: bool | None = None) -> FolderDataset:
        """A copy over ``samples[i] for i in indices`` (optionally switching train/eval transforms)."""
        import copy

        out = copy.copy(self)
        out.samples = [self.samples[i] for i in indices]
        out.targets = [label for _, label in out.samples]
        out._transform = None
        if train is not None:
            out.train = train
        return out

    def limit(self, count: int) -> FolderDataset:
        """At most ``count`` images, evenly spaced over the sorted files (so every class shows up)."""
        n = len(self.samples)
        if count >= n:
            return self
        return self.subset([i * n // count for i in range(count)])

    def describe_transform(self) -> str:
        if self.train:
            flip = " + horizontal flip" if self.flip else ""
            return f"RandomResizedCrop({self.size}, scale={self.scale}){flip}"
        return f"Resize({self.resize}) + CenterCrop({self.size})"

    def _build_transform(self):
        from torchvision.transforms import v2

        if self.train:
            steps = [v2.RandomResizedCrop(self.size, scale=self.scale, antialias=True)]
            if self.flip:
                steps.append(v2.RandomHorizontalFlip())
        else:
            steps = [v2.Resize(self.resize, antialias=True), v2.CenterCrop(self.size)]
        return v2.Compose(steps)

    def decode(self, path: str) -> torch.Tensor:
        """uint8 C x H x W of the image at ``path`` (RGB or gray as configured)."""
        # PIL, as torchvision's reference scripts do: torchvision.io's decoders are deprecated
        # from torchvision 0.29 on (in favour of TorchCodec).
        try:
            from PIL import Image

            from cnnlab.data.images import to_uint8

            with Image.open(path) as im:
                return to_uint8(im, 3 if self.channels == 3 else 1)
        except Exception as exc:  # decoders raise RuntimeError, OSError, ValueError, ...
            msg = first_line(exc)
            raise CnnlabError(
                f"cannot decode image {path} ({msg}): remove or replace the file"
            ) from None

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        if self._transform is None:
            self._transform = self._build_transform()
        return self._transform(self.decode(path)).contiguous(), label


class FolderLoader:
    """Batches of a :class:`FolderDataset` through a DataLoader with workers, normalised on device.

    Sharding follows TensorLoader's scheme (rank r takes the r-th chunk of each global batch).
    Per-sample transforms use each worker's RNG, which the DataLoader seeds from a generator
    seeded with (seed, epoch): runs reproduce with the same number of workers (with workers=0
    the transforms draw from the global torch RNG). ``state_dict`` holds the epoch only: a
    resumed run restarts the interrupted epoch from its beginning.
    """

    def __init__(
        self,
        dataset: FolderDataset,
        batch_size: int,
        *,
        shuffle: bool,
        workers: int = 4,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
        augment: Augment | None = None,
        mean=None,
        std=None,
        drop_last: bool = False,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
        even_shards: bool | None = None,
        pin_memory: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise CnnlabError(f"batch size must be at least 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise CnnlabError(f"rank {rank} is not in a world of {world_size} processes")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.workers = workers
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.device = torch.device(device)
        self.drop_last = drop_last
        self.even_shards = shuffle if even_shards is None else even_shards
        self.pin_memory = self.device.type == "cuda" if pin_memory is None else pin_memory
        self.channels_last = channels_last
        self.epoch = 0
        # Geometric augmentation is the dataset's per-sample transform; on the device only
        # the photometric ones remain (lighting with ImageNet's published PCA, cutout).
        if augment is not None:
            augment = Augment(pca_lighting=augment.pca_lighting, cutout=augment.cutout)
        pca = tuple(torch.tensor(t) for t in IMAGENET_PCA) if dataset.in_channels == 3 else None
        if augment is not None and augment.pca_lighting and pca is None:
            pca = (torch.tensor([0.2175]), torch.ones(1, 1))
        self._batch = BatchAugment(
            augment,
            dataset.mean if mean is None else mean,
            dataset.std if std is None else std,
            channels=dataset.in_channels,
            device=self.device,
            dtype=dtype,
            pca=pca,
            channels_last=channels_last,
        )
        self._augment = augment if augment is not None and augment.enabled else None
        self._gen = torch.Generator(device=self.device) if self._augment else None
        n = len(dataset)
        self._total, self._num_global = shard_plan(
            n, batch_size, world_size, drop_last, self.even_shards
        )
        full, last = divmod(self._total, batch_size * world_size)
        lo, hi = chunk(last, rank, world_size)
        self.num_samples = full * batch_size + (hi - lo)
        self._len = full + (1 if hi > lo else 0)

    def __len__(self) -> int:
        return self._len

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": 0, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at the start of the checkpoint's epoch (folders do not resume mid-epoch)."""
        self.epoch = int(state["epoch"])

    def _batches(self) -> list[tuple[int, int, int, list[int]]]:
        """(global batch index, global length, lo, indices) for this rank."""
        gen = (
            torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, _PERM))
            if self.shuffle
            else None
        )
        order = epoch_order(len(self.dataset), self._total, self.shuffle, gen, "cpu").tolist()
        g = self.batch_size * self.world_size
        out = []
        for i in range(self._num_global):
            length = min(g, self._total - i * g)
            lo, hi = chunk(length, self.rank, self.world_size)
            if hi > lo:
                out.append((i, length, lo, order[i * g + lo : i * g + hi]))
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        plan = self._batches()
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=[indices for _, _, _, indices in plan],
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            generator=torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, _WORKERS)),
        )
        it = iter(loader)
        try:
            for i, length, lo, indices in plan:
                try:
                    x, y = next(it)
                except StopIteration:
                    return
                except Exception as exc:
                    raise _one_line(exc) from None
                x = x.to(self.device, non_blocking=self.pin_memory)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = y.to(self.device, non_blocking=self.pin_memory)
                if self._gen is not None:
                    self._gen.manual_seed(mix_seed(self.seed, self.epoch, _AUG, i))
                yield self._batch(x, self._gen, length, lo, lo + len(indices)), y
        finally:
            # Stop the workers now (an error, a `break`, or the end): left to the garbage
            # collector, a DataLoader iterator can take 5 s to shut its workers down.
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()


def _one_line(exc: BaseException) -> BaseException:
    """A worker's CnnlabError arrives wrapped with its traceback: keep only its message."""
    text = str(exc)
    marker = "CnnlabError: "
    if marker in text:
        return CnnlabError(text.rsplit(marker, 1)[1].strip().splitlines()[0])
    return exc


def folder_loader(
    ds: FolderDataset,
    batch_size: int,
    shuffle: bool,
    workers: int = 4,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    **options: Any,
) -> FolderLoader:
    """A :class:`FolderLoader` (same (x, y) contract and set_epoch/len as TensorLoader).

    ``options``: augment (its pca_lighting and cutout apply on the device), mean, std
    (default ``ds.mean``/``ds.std``: ImageNet's, gray-converted for 1 channel), drop_last, channels_last, dtype, even_shards, pin_memory.
    """
    return FolderLoader(
        ds,
        batch_size,
        shuffle=shuffle,
        workers=workers,
        seed=seed,
        rank=rank,
        world_size=world_size,
        device=device,
        **options,
    )
