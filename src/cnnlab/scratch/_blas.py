"""Keep NumPy's BLAS on one thread while the engine trains.

The engine's matrix products are small (one image and one group at a time, or LeNet's linear
layers), too small for a second BLAS thread to pay for the hand-off. OpenBLAS still starts one
for some of them, and its threads spin while they wait: on two cores that doubles the CPU time
for no gain in speed (measured: same steps per second, ~1.8x the CPU seconds), and on a busy
machine a spinning thread that has to wait for a core stalls every product behind it.

NumPy has no public switch for this, so :func:`single_threaded_blas` finds the OpenBLAS library
the process has loaded (Linux: ``/proc/self/maps``) and calls its own ``set_num_threads`` through
ctypes, restoring the previous count afterwards. Where that is not possible it does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

__all__ = ["single_threaded_blas"]

# Symbol names of the OpenBLAS builds NumPy ships (scipy-openblas, 64-bit ints) and of others.
_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")


@lru_cache(maxsize=1)
def _openblas() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    """(set_num_threads, get_num_threads) of the loaded OpenBLAS, or None."""
    import numpy  # noqa: F401  (make sure NumPy, and with it its BLAS, is loaded)

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = {line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower() and ".so" in line}
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, name) for name in _SETTERS if hasattr(lib, name)), None)
        getter = next((getattr(lib, name) for name in _GETTERS if hasattr(lib, name)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            return setter, getter
    return None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the body with OpenBLAS limited to one thread (a no-op where that cannot be done)."""
    functions = _openblas()
    if functions is None:
        yield
        return
    setter, getter = functions
    before = getter()
    setter(1)
    try:
        yield
    finally:
        setter(before)
