"""Datasets, tensor-resident loaders and batched augmentation (see docs/data.md).

from cnnlab.data import load_dataset, Adapt, Augment, TensorLoader
ds = load_dataset("mnist", adapt=Adapt(size=32))          # 50k / 10k / 10k, padded to 32x32
loader = TensorLoader(ds.train, 128, shuffle=True, augment=None, mean=ds.mean, std=ds.std)
for epoch in range(epochs):
    loader.set_epoch(epoch)
    for x, y in loader: ...
"""

from __future__ import annotations

from cnnlab.data.augment import IMAGENET_PCA, Augment, BatchAugment, pca_from_images
from cnnlab.data.core import Adapt, Dataset, Split, adapt_images, channel_stats
from cnnlab.data.folder import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FolderDataset,
    FolderLoader,
    folder_loader,
)
from cnnlab.data.loader import TensorLoader
from cnnlab.data.sources import DATASETS, carve, data_roots, load_dataset

__all__ = [
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_PCA",
    "IMAGENET_STD",
    "Adapt",
    "Augment",
    "BatchAugment",
    "Dataset",
    "FolderDataset",
    "FolderLoader",
    "Split",
    "TensorLoader",
    "adapt_images",
    "carve",
    "channel_stats",
    "data_roots",
    "folder_loader",
    "load_dataset",
    "pca_from_images",
]
