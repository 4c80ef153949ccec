"""A small network to try `cnnlab inspect` on: the course's exercise, written as a student would.

    cnnlab inspect docs/examples/mynet.py:Net --input 1x28x28 --batch 64

prints every layer's output shape with the batch first, as ``torch.Size`` has it. Put your own
network in a file the same way (a class or a function that returns an ``nn.Module``) and name it
after the colon.
"""

import torch
from torch import nn
from torch.nn import functional as F


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5)  # 1x28x28 -> 32x24x24
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)  # 32x12x12 -> 64x12x12
        self.fc1 = nn.Linear(64 * 6 * 6, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)
