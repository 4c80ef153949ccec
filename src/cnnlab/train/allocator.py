"""The C allocator kept from handing a training loop's memory back and forth with the system.

Every training step allocates and frees the same few large blocks (activations, gradients,
batches). glibc's ``malloc`` serves a block above its mmap threshold (128 KiB at first) with a
fresh mapping, and returns the top of its heap to the system as soon as 128 KiB lie free there,
so each step faults its memory in again, page by zeroed page. glibc raises those thresholds by
itself only after freeing a large mapped block, which in a run first happens at the first
evaluation pass: until then, the first epoch runs slow.

:func:`keep_memory` sets both thresholds once per process with ``mallopt`` (``M_MMAP_THRESHOLD``
32 MiB, the most glibc takes, and ``M_TRIM_THRESHOLD`` 1 GiB), which is what preloading
jemalloc or tcmalloc, as PyTorch's CPU tuning guide suggests, would do for a loop like this.
``python bench/allocator.py`` measures it. Where the C library is not glibc (macOS, musl,
Windows) nothing changes. :func:`give_back` returns the kept free memory to the system when a
run ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["give_back", "keep_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc refuses more (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 1 << 30


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") and hasattr(libc, "gnu_get_libc_version")):
        return None
    return libc


@functools.cache
def keep_memory() -> bool:
    """Keep freed blocks of up to 32 MiB in the process for reuse (once per process); False where
    the C library is not glibc or refuses."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                      TRIM_THRESHOLD))


def give_back() -> None:
    """Return the free memory the allocator holds to the system (glibc's ``malloc_trim``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
