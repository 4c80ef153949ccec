"""LeNet-5: the common modern form and the form of LeCun, Bottou, Bengio & Haffner (1998).

The paper's network (Section II.B, Fig. 2) differs from what most tutorials call LeNet-5:
C3 sees only a subset of S2's maps (Table I), S2/S4 are trainable subsampling layers (one
coefficient and one bias per map), every layer up to F6 uses the scaled tanh
1.7159 * tanh(2/3 x) (Appendix A), and the output is a layer of Euclidean RBF units with fixed
parameters. The modern form uses plain convolutions, ReLU, max pooling and a linear output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.registry import register_model

__all__ = [
    "C3_TABLE",
    "ConnectionTableConv2d",
    "LeNet5",
    "LeNet5Paper",
    "RBFOutput",
    "ScaledTanh",
    "Subsampling",
    "lenet5",
    "lenet5_paper",
]

_PAPER = (
    "LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document "
    "Recognition, Proc. IEEE 86(11)"
)

# Table I of the paper: the S2 maps (0-5) each C3 map (0-15) takes its input from.
# Maps 0-5 read three neighbouring maps, 6-11 four neighbouring maps, 12-14 four maps that are
# not all neighbours, 15 all six. The paper's reason: break the symmetry between C3's maps and
# keep the number of connections in bounds.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


def _paper_uniform_(weight: torch.Tensor, fan_in: int) -> None:
    # Appendix A of the paper: weights uniform in (-2.4/F, 2.4/F), F = fan-in of the unit, which
    # keeps the weighted sums in the range where the scaled tanh is steepest.
    bound = 2.4 / fan_in
    nn.init.uniform_(weight, -bound, bound)


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A).

    The constants make f(1) = 1 and f(-1) = -1, with the largest second derivative at +-1.
    """

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


class Subsampling(nn.Module):
    """The paper's trainable subsampling (S2, S4): per map, coefficient * (sum of 2x2) + bias.

    Two parameters per map; the squashing function is applied by the next module.
    """

    def __init__(self, channels: int, kernel: int = 2) -> None:
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        _paper_uniform_(self.weight, kernel * kernel)
        _paper_uniform_(self.bias, kernel * kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The paper adds the inputs, it does not average them: avg * k^2 is that sum.
        summed = F.avg_pool2d(x, self.kernel) * (self.kernel * self.kernel)
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, kernel={self.kernel}"


class ConnectionTableConv2d(nn.Module):
    """A convolution in which output map j sees only the input maps listed in ``table[j]``.

    Only the kernels of listed connections exist as parameters (one k x k kernel per
    connection, one bias per output map), so the parameter count is the paper's. The forward
    pass scatters them into a dense, zero-filled kernel and runs one ordinary convolution.
    """

    def __init__(
        self,
        in_channels: int,
        table: Sequence[Sequence[int]],
        kernel: int = 5,
    ) -> None:
        super().__init__()
        pairs = [(out, inp) for out, inputs in enumerate(table) for inp in inputs]
        if any(not 0 <= inp < in_channels for _, inp in pairs):
            raise CnnlabError(f"connection table refers to a map outside 0..{in_channels - 1}")
        self.in_channels = in_channels
        self.out_channels = len(table)
        self.kernel = kernel
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel, kernel))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        # Flat position of each connection in an (out, in) grid; a buffer so it follows .to().
        index = torch.tensor([out * in_channels + inp for out, inp in pairs], dtype=torch.long)
        self.register_buffer("index", index, persistent=False)
        # Appendix A's init, with each output map's own fan-in (3, 4 or 6 inputs x k x k).
        fan_in = torch.tensor([len(table[out]) * kernel * kernel for out, _ in pairs])
        with torch.no_grad():
            bound = (2.4 / fan_in).view(-1, 1, 1)
            self.weight.copy_((torch.rand_like(self.weight) * 2 - 1) * bound)
            bias_bound = torch.tensor([2.4 / (len(inputs) * kernel * kernel) for inputs in table])
            self.bias.copy_((torch.rand_like(self.bias) * 2 - 1) * bias_bound)

    def dense_weight(self) -> torch.Tensor:
        """The (out, in, k, k) kernel with zeros where the table has no connection."""
        k = self.kernel
        flat = self.weight.new_zeros(self.out_channels * self.in_channels, k, k)
        flat = flat.index_copy(0, self.index, self.weight)
        return flat.view(self.out_channels, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size=({self.kernel}, {self.kernel}), "
            f"connections={self.weight.shape[0]}"
        )


class RBFOutput(nn.Module):
    """Euclidean RBF output units: y_i = sum_j (x_j - w_ij)^2, returned as logits -y.

    The paper sets the w_ij by hand to -1 or +1 (for the digits, 7x12 bitmaps of stylised
    characters) and keeps them fixed; here they are +-1 codes drawn from a fixed seed, stored
    as a parameter with ``requires_grad=False`` (counted as non-trainable). Returning -y makes
    cross-entropy on the output y_correct + log sum_i exp(-y_i): the paper's MAP criterion
    (Section II.C) without its constant for the "rubbish" class.
    """

    def __init__(self, in_features: int, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        codes = torch.randint(0, 2, (num_classes, in_features), generator=generator) * 2 - 1
        self.weight = nn.Parameter(codes.float(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = x.unsqueeze(1) - self.weight.unsqueeze(0)
        return -(diff * diff).sum(-1)

    def extra_repr(self) -> str:
        return f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}, fixed"


class LeNet5(nn.Module):
    """LeNet-5 as most courses build it: conv6-5 / pool / conv16-5 / pool / fc120 / fc84 / fc.

    ``padding=2`` (default) takes 28x28 MNIST digits as they are and gives C1 the paper's 28x28
    maps; ``padding=0`` takes 32x32 inputs, like the paper's padded digits.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        padding: int = 2,
        act: Literal["relu", "tanh", "sigmoid"] = "relu",
        pool: Literal["max", "avg"] = "max",
    ) -> None:
        super().__init__()
        acts: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
        pools: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
        if act not in acts:
            raise CnnlabError(f"act must be one of {sorted(acts)}, got {act!r}")
        if pool not in pools:
            raise CnnlabError(f"pool must be one of {sorted(pools)}, got {pool!r}")
        act_cls, pool_cls = acts[act], pools[pool]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=padding),
            act_cls(),
            pool_cls(2, 2),
            nn.Conv2d(6, 16, 5),
            act_cls(),
            pool_cls(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            act_cls(),
            nn.Linear(120, 84),
            act_cls(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class LeNet5Paper(nn.Module):
    """LeNet-5 as in LeCun et al. 1998, Section II.B, on 32x32 inputs.

    C1 conv 6@5x5 (156 params) -> S2 subsampling (12) -> C3 conv 16@5x5 with Table I's
    connections (1,516) -> S4 subsampling (32) -> C5 conv 120@5x5 (48,120) -> F6 fc 84 (10,164)
    -> output (RBF units with fixed weights, or a trainable linear layer). Every layer up to F6
    is followed by the scaled tanh. Trainable parameters C1..F6: 60,000.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        output: Literal["rbf", "linear"] = "rbf",
    ) -> None:
        super().__init__()
        if output not in ("rbf", "linear"):
            raise CnnlabError(f"output must be 'rbf' or 'linear', got {output!r}")
        self.c1 = nn.Conv2d(in_channels, 6, 5)
        self.act1 = ScaledTanh()
        self.s2 = Subsampling(6)
        self.act2 = ScaledTanh()
        self.c3 = ConnectionTableConv2d(6, C3_TABLE, 5)
        self.act3 = ScaledTanh()
        self.s4 = Subsampling(16)
        self.act4 = ScaledTanh()
        # A convolution, not a linear layer: on inputs larger than 32x32 C5's maps grow past
        # 1x1 (the paper's own remark); at 32x32 it is equivalent to a 400 -> 120 linear layer.
        self.c5 = nn.Conv2d(16, 120, 5)
        self.act5 = ScaledTanh()
        self.f6 = nn.Linear(120, 84)
        self.act6 = ScaledTanh()
        self.output: nn.Module = (
            RBFOutput(84, num_classes) if output == "rbf" else nn.Linear(84, num_classes)
        )
        for layer in (self.c1, self.c5, self.f6):
            fan_in = layer.weight[0].numel()
            _paper_uniform_(layer.weight, fan_in)
            _paper_uniform_(layer.bias, fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.s2(self.act1(self.c1(x))))  # N x 6 x 14 x 14
        x = self.act4(self.s4(self.act3(self.c3(x))))  # N x 16 x 5 x 5
        x = self.act5(self.c5(x))  # N x 120 x 1 x 1
        x = self.act6(self.f6(torch.flatten(x, 1)))  # N x 84
        return self.output(x)


@register_model(family="lenet", paper=_PAPER, default_input=(1, 28, 28), torchvision=None, min_input=28)
def lenet5(
    num_classes: int = 10,
    in_channels: int = 1,
    padding: int = 2,
    act: Literal["relu", "tanh", "sigmoid"] = "relu",
    pool: Literal["max", "avg"] = "max",
) -> LeNet5:
    """LeNet-5, common modern form: ReLU, max pooling, linear output (28x28; 32x32 with padding=0)."""
    return LeNet5(num_classes, in_channels, padding=padding, act=act, pool=pool)


@register_model(family="lenet", paper=_PAPER, default_input=(1, 32, 32), torchvision=None, min_input=32)
def lenet5_paper(
    num_classes: int = 10, in_channels: int = 1, output: Literal["rbf", "linear"] = "rbf"
) -> LeNet5Paper:
    """LeNet-5 as published: Table I connections, trainable subsampling, scaled tanh, RBF output."""
    return LeNet5Paper(num_classes=num_classes, in_channels=in_channels, output=output)
