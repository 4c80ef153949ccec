"""Which numeric precision and memory layout a run uses: the one owner of that choice.

``auto`` (the default) picks bf16 autocast with channels_last memory where the hardware does
bf16 arithmetic natively — CPUs with AMX or AVX512-BF16 instructions, CUDA devices of compute
capability 8.0 (Ampere) or later — and plain fp32 everywhere else. The weights, the optimizer's state and the
loss stay fp32 (autocast runs only the matrix products and convolutions in bf16), so a run
that picks bf16 reaches the same accuracy as an fp32 one within seed noise, faster.

Training and ``cnnlab eval`` ask :func:`resolve` and use what it answers; the choice and its
reason are printed in the run's header and saved in its ``config.json``.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import CnnlabError
from cnnlab.train.config import PRECISIONS

__all__ = ["Precision", "cpu_name", "fast_bf16", "resolve"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """A resolved choice: ``name`` is fp32, bf16 or fp16; ``reason`` says why, for the run's header."""

    name: str
    channels_last: bool
    reason: str

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The context a forward pass runs in: autocast to bf16/fp16, or nothing for fp32."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=_DTYPES[self.name])

    def describe(self) -> str:
        text = "fp32" if self.name == "fp32" else f"{self.name} autocast"
        return f"{text}{' + channels_last' if self.channels_last else ''} ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.name, "channels_last": self.channels_last, "reason": self.reason}


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` line of Linux's /proc/cpuinfo, or None elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.split(":")[0].strip() == field:
            return line.partition(":")[2].strip()
    return None


def _cpu_flags() -> set[str]:
    return set((_cpuinfo("flags") or "").split())


def cpu_name() -> str:
    """The processor's model name ("AMD EPYC", "Intel(R) Xeon(R) ..."), as the operating system gives it."""
    import platform

    return _cpuinfo("model name") or platform.processor() or platform.machine()


@functools.cache
def _cpu_bf16() -> str | None:
    """The CPU feature that makes bf16 fast here, or None."""
    if not torch.backends.mkldnn.is_available():
        return None
    flags = _cpu_flags()
    probes = (("AMX-BF16", "amx_bf16", "_is_amx_tile_supported"),
              ("AVX512-BF16", "avx512_bf16", "_is_avx512_bf16_supported"))
    for name, flag, probe in probes:
        check = getattr(torch.cpu, probe, None)  # torch's own CPU probe, where this version has it
        if flag in flags or (check is not None and check()):
            return name
    return None


def fast_bf16(device: torch.device) -> str | None:
    """Why bf16 is fast on ``device`` (the CPU feature or the GPU's name), or None where it is not."""
    if device.type == "cpu":
        feature = _cpu_bf16()
        return f"this CPU has {feature}" if feature else None
    if device.type == "cuda" and torch.cuda.is_available() and _cuda_bf16(device):
        return f"{torch.cuda.get_device_name(device)} computes in bf16"
    return None


def _cuda_bf16(device: torch.device) -> bool:
    """Native bf16 on this GPU (compute capability 8.0, Ampere, and later), not torch's emulation of it."""
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def resolve(precision: str, channels_last: bool | None, device: torch.device) -> Precision:
    """What a run with ``precision`` (auto|fp32|bf16|fp16) and ``channels_last`` (None: follow it) uses on ``device``."""
    if precision not in PRECISIONS:
        raise CnnlabError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise CnnlabError("--precision fp16 needs a CUDA device; on the CPU use --precision bf16 or fp32")
    if precision == "auto":
        why = fast_bf16(device)
        name = "bf16" if why else "fp32"
        reason = f"auto: {why}" if why else f"auto: no fast bf16 on {device.type}"
    else:
        name, reason = precision, "asked for"
    if channels_last is None:  # the layout follows the precision: NHWC is what fast bf16/fp16 kernels want
        return Precision(name, name != "fp32", reason)
    return Precision(name, channels_last, reason)
