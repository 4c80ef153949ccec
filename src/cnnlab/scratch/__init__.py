"""cnnlab.scratch: a NumPy reference engine for convolutional networks.

Convolution written two ways, as the inner products of its definition (``method="naive"``) and
as one matrix product through im2col, with hand-written backward passes for every layer,
checked against torch autograd in the tests, and fast enough to train LeNet-5 on MNIST on a
CPU. The engine itself imports only NumPy; torch is needed only to read torch checkpoints
(:func:`load_checkpoint`).

    from cnnlab.scratch import explain_convolution, train_lenet
    print(explain_convolution().render())       # the 5x5 / 3x3 example, placement by placement
    result = train_lenet(epochs=2)              # LeNet-5 on MNIST, NumPy only

See docs/scratch.md.
"""

from __future__ import annotations

from cnnlab.scratch.convert import from_npz, from_state_dict, load_checkpoint
from cnnlab.scratch.data import Digits, load_digits, load_mnist, load_mnist_5k
from cnnlab.scratch.explain import (
    Explanation,
    Placement,
    PoolExplanation,
    explain_convolution,
    explain_pooling,
    parse_matrix,
)
from cnnlab.scratch.layers import (
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    MinPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from cnnlab.scratch.model import SGD, Sequential, lenet5
from cnnlab.scratch.train import evaluate, predict, train_lenet

__all__ = [
    "SGD",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Digits",
    "Dropout",
    "Explanation",
    "Flatten",
    "Layer",
    "Linear",
    "MaxPool2d",
    "MinPool2d",
    "Placement",
    "PoolExplanation",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "evaluate",
    "explain_convolution",
    "explain_pooling",
    "from_npz",
    "from_state_dict",
    "lenet5",
    "load_checkpoint",
    "load_digits",
    "load_mnist",
    "load_mnist_5k",
    "parse_matrix",
    "predict",
    "train_lenet",
]
