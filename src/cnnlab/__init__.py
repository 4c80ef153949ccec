"""cnnlab: build, inspect, train, look inside and compare the classic CNNs on PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"
