"""Bounds on what cnnlab agrees to build or allocate, each refused in one line past its limit.

Pure Python, no torch import: the command-line parser and every layer above may ask it.
Memory checks compare an estimate made before allocating with this machine's physical memory,
so a request that cannot fit is refused with its size instead of failing half way.
"""

from __future__ import annotations

import os

from cnnlab.errors import CnnlabError

__all__ = ["MAX_CHANNELS", "MAX_CLASSES", "MAX_SIDE", "available_memory_bytes", "check_count", "check_memory",
           "human_bytes", "memory_bytes", "parse_bytes"]

MAX_CLASSES = 100_000  # ImageNet-21k has 21,841; more is a mistake, not a dataset
MAX_CHANNELS = 4096  # input channels (hyperspectral images have a few hundred)
MAX_SIDE = 4096  # square side of images the training data are padded or resized to

_FALLBACK_MEMORY = 16 * 2**30


def memory_bytes() -> int:
    """This machine's physical memory (16 GiB where the system does not say)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_MEMORY
    return total if total > 0 else _FALLBACK_MEMORY


def available_memory_bytes() -> int:
    """The memory this machine could give a process now without swapping (Linux's MemAvailable);
    the physical memory where the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return memory_bytes()


_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20, "MIB": 2**20,
          "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40, "TIB": 2**40}


def parse_bytes(text: str, what: str = "size") -> int:
    """'8G', '512M', '1.5GiB' or a plain number of bytes -> bytes (K, M, G, T are powers of 1024)."""
    import re

    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise CnnlabError(f"{what} {text!r} is not a size: write it like 8G, 512M or 1.5G")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise CnnlabError(f"{what} must be more than 0 bytes, got {text!r}")
    return value


def human_bytes(n: float | None) -> str:
    """A byte count as a person reads it: 57.0 KiB, 1.2 GiB ("-" when unknown)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def check_memory(nbytes: float, what: str, fix: str) -> None:
    """Refuse ``what`` when it needs more than this machine's memory; ``fix`` says what to ask instead."""
    limit = memory_bytes()
    if not nbytes <= limit:
        raise CnnlabError(f"{what} would need about {human_bytes(nbytes)} of memory, more than this machine's "
                          f"{human_bytes(limit)}: {fix}")


def check_count(value: int, name: str, low: int = 1, high: int | None = None, fix: str = "") -> int:
    """``value`` if it is an integer in [low, high], else one line naming ``name`` and the range."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    if not ok:
        where = f"at least {low}" if high is None else f"from {low} to {high:,}"
        raise CnnlabError(f"{name} must be an integer {where}, got {value!r}" + (f": {fix}" if fix else ""))
    return value
