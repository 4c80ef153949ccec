"""A small network with a circular shift (torch.roll), an operation the analyzer has no receptive-field rule for.

`cnnlab inspect docs/examples/rollnet.py:Net --input 1x28x28` counts everything else and names
the node that stops the receptive field.
"""

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        x = torch.roll(x, shifts=1, dims=3)
        return self.fc(x.flatten(1))
