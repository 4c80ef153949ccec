"""Building blocks shared across the model families.

- :mod:`cnnlab.layers.common`: ``ConvNormAct`` (conv, optional norm, optional activation) and
  ``MinPool2d`` (PyTorch has none).
- :mod:`cnnlab.layers.inception`: GoogLeNet's ``Inception`` block with 1x1 reductions and its
  auxiliary classifier.
- :mod:`cnnlab.layers.residual`: ``BasicBlock``, ``Bottleneck``, ``PreActBlock``,
  ``PreActBottleneck`` and the shortcut types A, B and C.
- :mod:`cnnlab.layers.dense`: ``DenseLayer``, ``DenseBlock`` and ``Transition``
  (BN-ReLU-1x1 conv-2x2 average pool).
"""

from cnnlab.layers.common import ConvNormAct, MinPool2d
from cnnlab.layers.dense import DenseBlock, DenseLayer, Transition
from cnnlab.layers.inception import Inception, InceptionAux
from cnnlab.layers.residual import (
    BasicBlock,
    Bottleneck,
    PreActBlock,
    PreActBottleneck,
    ZeroPadShortcut,
)

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ConvNormAct",
    "DenseBlock",
    "DenseLayer",
    "Inception",
    "InceptionAux",
    "MinPool2d",
    "PreActBlock",
    "PreActBottleneck",
    "Transition",
    "ZeroPadShortcut",
]
