"""Measuring the real peak memory of one training step, to set beside the analyzer's estimate.

On CUDA the caching allocator's own peak is read. On Linux CPUs the process's resident-set
high-water mark is reset just before the step (``/proc/self/clear_refs``) and read after it;
the measurement is that peak minus the memory the process held before the model was built,
so it includes the weights, gradients, optimizer state, the batch, the activations and the
allocator's slack. Elsewhere nothing is measured and the report says so.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["measure_training_peak", "pass_bytes", "peak_bytes"]

_STATUS = Path("/proc/self/status")


def _status_bytes(key: str) -> int | None:
    try:
        match = re.search(rf"{key}:\s+(\d+)\s+kB", _STATUS.read_text())
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def _real_copy(model: nn.Module, device: torch.device) -> nn.Module:
    """A trainable copy on ``device``; a meta model gets random weights (memory is all that counts)."""
    if any(p.device.type == "meta" for p in model.parameters()):
        real = copy.deepcopy(model).to_empty(device=device)
        with torch.no_grad():
            for p in real.parameters():
                p.normal_(0.0, 0.01)
            for name, b in real.named_buffers():
                if b.is_floating_point():
                    b.fill_(1.0 if name.endswith("running_var") else 0.0)
        return real
    return copy.deepcopy(model).to(device)


def _step(model: nn.Module, size: Sequence[int], batch: int, optimizer: str, device: torch.device) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer in ("adam", "adamw"):
        opt: torch.optim.Optimizer | None = torch.optim.AdamW(params, lr=1e-3)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    elif optimizer == "sgd-nomomentum":
        opt = torch.optim.SGD(params, lr=0.01)
    else:
        opt = None
    model.train()
    x = torch.randn(batch, *size, device=device)
    out = model(x)
    logits = out if isinstance(out, torch.Tensor) else out[0]
    loss = logits.float().square().mean()
    loss.backward()
    if opt is not None:
        opt.step()


def _cpu_peak_in_child(meta_model: nn.Module, size: Sequence[int], batch: int, optimizer: str) -> int | None:
    """Runs in a fresh process, whose allocator has no freed pages to reuse: the RSS growth is real."""
    torch.set_num_threads(1)
    before = _status_bytes("VmRSS")
    real = _real_copy(meta_model, torch.device("cpu"))
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    _step(real, size, batch, optimizer, torch.device("cpu"))
    peak = _status_bytes("VmHWM")
    return None if before is None or peak is None else peak - before


def measure_training_peak(model: nn.Module, size: Sequence[int], batch: int,
                          optimizer: str) -> tuple[int | None, str | None]:
    """(peak bytes of one training step, where it was measured), or (None, why not)."""
    if torch.cuda.is_available():
        device = torch.device("cuda")
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        real = _real_copy(model, device)
        _step(real, size, batch, optimizer, device)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del real
        torch.cuda.empty_cache()
        return peak, f"cuda ({torch.cuda.get_device_name(device)}), allocator peak"
    if _status_bytes("VmRSS") is None or not Path("/proc/self/clear_refs").exists():
        return None, "not measured: CPU peaks are read from /proc, which this system lacks"
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    meta = model if all(p.device.type == "meta" for p in model.parameters()) else copy.deepcopy(model).to("meta")
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            peak = pool.submit(_cpu_peak_in_child, meta, tuple(size), batch, optimizer).result()
        except OSError as exc:
            return None, f"not measured: {exc}"
    if peak is None:
        return None, "not measured"
    return peak, "cpu, resident-set growth of a fresh process during one step"


def pass_bytes(report: Any, backward: bool = False) -> tuple[int, int]:
    """Estimated memory of a forward pass at the report's input, as (what does not grow with the batch,
    what each sample adds).

    Without gradients a pass holds the weights and about three activations at a time (a
    layer's input, its output and some workspace); with them (``backward``) it keeps every
    activation for the backward pass, which needs as much again for their gradients.
    """
    n = max(report.batch, 1)
    if backward:
        return report.memory.parameters + report.memory.gradients, -(-2 * report.activation_bytes // n)
    return report.memory.parameters, -(-3 * max((r.activation_bytes for r in report.layers), default=0) // n)


def peak_bytes(report: Any, backward: bool = False) -> int:
    """Estimated peak memory of a forward pass at the report's input and batch (see :func:`pass_bytes`)."""
    fixed, per_sample = pass_bytes(report, backward)
    return fixed + report.batch * per_sample
