"""The tensor-resident loader: a whole split on the training device, batches as index slices.

After airbench (KellerJordan/cifar10-airbench): the uint8 split is moved to the device once;
an epoch is a permutation of indices; a batch is ``images[perm[i*B:(i+1)*B]]`` followed by
batched tensor augmentation and one fused uint8 -> float normalisation. No worker processes,
no per-sample Python, no host-to-device copies after the first.

Sharding (DistributedDataParallel). All ranks compute the same global order for an epoch.
Global batch i is ``order[i*G:(i+1)*G]`` with ``G = batch_size * world_size``, and rank r
takes the r-th contiguous chunk of it: rows ``[r*L//W, (r+1)*L//W)`` of a global batch of
``L`` samples. So the union of the ranks' i-th batches is exactly the single-process i-th
batch when that process uses batch size G, and augmentation (drawn for the whole global
batch, then sliced) is the same too.

- ``even_shards`` (default: ``shuffle``; the training case): every rank sees the same number
  of samples and batches. ``drop_last`` keeps only whole global batches; otherwise the order
  is padded to a multiple of ``world_size`` with its own first samples, as
  torch's DistributedSampler does (so with world_size 1 nothing is padded).
- otherwise (the evaluation case, shuffle False): no padding; the last global batch is split
  into chunks whose sizes differ by at most one, so the ranks together cover every sample
  exactly once; a rank whose last chunk is empty has one batch fewer. Reduce sums (correct
  counts, loss sums) across ranks once at the end.

Randomness: the permutation of epoch e comes from a generator on the device seeded with
(seed, e); the augmentation of global batch i from one seeded with (seed, e, i). Resuming at
batch k therefore reproduces batches k.. of the uninterrupted epoch exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from cnnlab.data.augment import Augment, BatchAugment, pca_from_images
from cnnlab.data.core import Split
from cnnlab.errors import CnnlabError

__all__ = ["TensorLoader", "mix_seed", "shard_plan"]

_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 rounds): nearby inputs give unrelated seeds."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & _MASK64)) & _MASK64
        h = (h + 0x9E3779B97F4A7C15) & _MASK64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h & ((1 << 63) - 1)


_PERM, _AUG, _WORKERS = 1, 2, 3  # seed domains


def shard_plan(
    n: int, batch_size: int, world_size: int, drop_last: bool, even: bool
) -> tuple[int, int]:
    """``(total, global_batches)``: samples in the epoch's global order and global batches."""
    g = batch_size * world_size
    if drop_last:
        total = (n // g) * g
    elif even:
        total = math.ceil(n / world_size) * world_size if n else 0
    else:
        total = n
    return total, math.ceil(total / g)


def chunk(length: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows of a global batch of ``length`` that ``rank`` takes."""
    return rank * length // world_size, (rank + 1) * length // world_size


def epoch_order(
    n: int, total: int, shuffle: bool, gen: torch.Generator | None, device
) -> torch.Tensor:
    """The global sample order of an epoch, cut or padded (with its own start) to ``total``."""
    if shuffle:
        order = torch.randperm(n, generator=gen, device=device)
    else:
        order = torch.arange(n, device=device)
    if total < n:
        order = order[:total]
    elif total > n:
        reps = math.ceil(total / n)
        order = order.repeat(reps)[:total]
    return order


class TensorLoader:
    """Batches of a :class:`Split` resident on ``device``; see the module docstring.

    Yields ``(images, labels)``: images ``(x/255 - mean)/std`` in ``dtype`` (channels_last
    if asked) on ``device``, labels int64 on ``device``.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool,
        augment: Augment | None,
        mean,
        std,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
        even_shards: bool | None = None,
        pca: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        if batch_size < 1:
            raise CnnlabError(f"batch size must be at least 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise CnnlabError(f"rank {rank} is not in a world of {world_size} processes")
        if not isinstance(split, Split):
            raise CnnlabError(
                f"TensorLoader takes an in-memory Split, got {type(split).__name__}: "
                "use folder_loader for image folders"
            )
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.even_shards = shuffle if even_shards is None else even_shards
        self.images, self.labels = split.to_device(self.device)
        self._nhwc = channels_last and split.in_channels > 1
        if self._nhwc:  # stored N x H x W x C once, so every batch comes out channels_last
            self.images = self.images.permute(0, 2, 3, 1).contiguous()
        self.dataset_size = len(split)
        self.augment = augment if augment is not None and augment.enabled else None
        if self.augment is not None and self.augment.pca_lighting and pca is None:
            pca = pca_from_images(split.images)
        self._batch = BatchAugment(
            self.augment,
            mean,
            std,
            channels=split.in_channels,
            device=self.device,
            dtype=dtype,
            pca=pca,
            channels_last=channels_last,
        )
        self._total, self._num_global = shard_plan(
            self.dataset_size, batch_size, world_size, drop_last, self.even_shards
        )
        g = batch_size * world_size
        full, last = divmod(self._total, g)
        lo, hi = chunk(last, rank, world_size)
        self.num_samples = full * batch_size + (hi - lo)
        self._len = full + (1 if hi > lo else 0)
        self.epoch = 0
        self._pos = 0  # global batches of the current epoch already handed out
        self._resume: int | None = None  # where the next pass starts, after load_state_dict
        self._order: tuple[int, torch.Tensor] | None = None
        self._gen = torch.Generator(device=self.device) if (shuffle or self.augment) else None

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return (
            f"TensorLoader({self.dataset_size} samples, batch {self.batch_size}, shuffle={self.shuffle}, "
            f"rank {self.rank}/{self.world_size}, {self._len} batches, device {self.device})"
        )

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s order (call it before each epoch, like DistributedSampler's).

        Setting the epoch a checkpoint was resumed in keeps the resume position; any other
        epoch starts at batch 0.
        """
        if epoch != self.epoch:
            self._pos = 0
            self._resume = None
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Epoch and position (global batches handed out) for an exact mid-epoch resume."""
        return {
            "epoch": self.epoch,
            "batch": self._pos,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "dataset_size": self.dataset_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` was taken: the next pass yields batches ``state["batch"]``.. of its epoch."""
        for key in ("batch_size", "world_size", "dataset_size", "seed"):
            if key in state and state[key] != getattr(self, key):
                raise CnnlabError(
                    f"cannot resume the data order: the checkpoint has {key} {state[key]}, this run "
                    f"{getattr(self, key)}; resume with the same {key.replace('_', ' ')}"
                )
        self.epoch = int(state["epoch"])
        self._pos = self._resume = int(state["batch"])

    def _epoch_order(self) -> torch.Tensor:
        if self._order is None or self._order[0] != self.epoch:
            gen = None
            if self.shuffle:
                gen = self._gen
                gen.manual_seed(mix_seed(self.seed, self.epoch, _PERM))
            order = epoch_order(self.dataset_size, self._total, self.shuffle, gen, self.device)
            self._order = (self.epoch, order)
        return self._order[1]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._epoch_order()
        # A fresh pass starts at batch 0 (like a DataLoader), a resumed one where it stopped.
        start, self._resume = (self._resume or 0), None
        sliceable = not self.shuffle and self._total <= self.dataset_size
        g, w, r = self.batch_size * self.world_size, self.world_size, self.rank
        gen, augment, images, labels = self._gen, self.augment, self.images, self.labels
        for i in range(start, self._num_global):
            length = min(g, self._total - i * g)
            lo, hi = chunk(length, r, w)
            self._pos = i + 1
            if hi <= lo:
                continue
            a, b = i * g + lo, i * g + hi
            if sliceable:  # in order: a view, no gather
                x, y = images[a:b], labels[a:b]
            else:
                idx = order[a:b]
                # index_select copies whole rows: ~20x faster than images[idx] on the CPU.
                x, y = images.index_select(0, idx), labels.index_select(0, idx)
            if self._nhwc:  # an N x C x H x W view in channels_last layout
                x = x.permute(0, 3, 1, 2)
            if augment is not None:
                gen.manual_seed(mix_seed(self.seed, self.epoch, _AUG, i))
            yield self._batch(x, gen, length, lo, hi), y
