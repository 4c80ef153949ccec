"""Export a model to ONNX, TorchScript or safetensors, and check every file after writing it.

Each export is verified by loading what was written and comparing its output with the
model's own on the same input: ONNX through onnxruntime, TorchScript through
``torch.jit.load``, safetensors by loading the weights into a freshly built model.
Files are written to a temporary name first and renamed, so a failed export never leaves
a half-written file behind.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.atomic import atomic_write
from cnnlab.errors import CnnlabError

__all__ = ["FORMATS", "ExportResult", "export_model"]

FORMATS = ("onnx", "torchscript", "safetensors")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
# Exported graphs reorder float arithmetic; outputs agree to about 1e-5 of their scale.
_RTOL = 1e-4


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    bytes: int
    input_shape: tuple[int, ...]
    max_abs_diff: float
    output_scale: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "bytes": self.bytes,
            "input_shape": list(self.input_shape),
            "max_abs_diff": self.max_abs_diff,
            "output_scale": self.output_scale,
            "verified": True,
        }


def _write_onnx(model: nn.Module, example: torch.Tensor, tmp: Path) -> None:
    # The exporter reports progress on stdout; keep stdout for results (and --json) alone.
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        try:
            # torch.export-based exporter (torch >= 2.5, needs onnxscript); batch stays dynamic.
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(model, (example,), str(tmp), dynamo=True, input_names=["input"],
                              output_names=["logits"], dynamic_shapes=({0: batch},), external_data=False)
        except TypeError:
            torch.onnx.export(model, (example,), str(tmp), input_names=["input"], output_names=["logits"])


def _run_onnx(tmp: Path, example: torch.Tensor) -> torch.Tensor:
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: example.numpy()})[0])


def _write_torchscript(model: nn.Module, example: torch.Tensor, tmp: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still the TorchScript format
        traced = torch.jit.trace(model, example)
        traced.save(str(tmp))


def _run_torchscript(tmp: Path, example: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(tmp), map_location="cpu")
    with torch.no_grad():
        return loaded(example)


def _write_safetensors(model: nn.Module, tmp: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_model

    save_model(model, str(tmp), metadata=metadata)


def export_model(
    model: nn.Module,
    fmt: str,
    out: str | Path,
    input_size: Sequence[int] = (3, 224, 224),
    rebuild: Callable[[], nn.Module] | None = None,
    metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Write ``model`` in format ``fmt`` to ``out`` and verify the written file.

    ``rebuild`` builds a fresh model of the same architecture; the safetensors check loads the
    written weights into it (and ``metadata`` is stored in the file's header).
    """
    if fmt not in FORMATS:
        raise CnnlabError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError:
            raise CnnlabError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'cnnlab[export]'") from None
    path = Path(out)
    if path.is_dir():
        raise CnnlabError(f"{path} is a folder: give a file name such as {path / ('model' + SUFFIX[fmt])}")
    model = model.eval()
    torch.manual_seed(0)
    example = torch.randn(1, *input_size)
    with torch.no_grad():
        expected = model(example)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CnnlabError(f"cannot write {path} ({exc.strerror or exc}): choose another --out") from None
    with atomic_write(path, path.suffix) as tmp:
        if fmt == "onnx":
            _write_onnx(model, example, tmp)
            got = _run_onnx(tmp, example)
        elif fmt == "torchscript":
            _write_torchscript(model, example, tmp)
            got = _run_torchscript(tmp, example)
        else:
            if rebuild is None:
                raise CnnlabError("a safetensors export needs a way to rebuild the model to check the file")
            _write_safetensors(model, tmp, metadata or {})
            from safetensors.torch import load_model

            fresh = rebuild().eval()
            load_model(fresh, str(tmp))
            with torch.no_grad():
                got = fresh(example)
        diff = float((got - expected).abs().max())
        scale = float(expected.abs().max())
        if not diff <= _RTOL * max(scale, 1.0):
            raise CnnlabError(
                f"the exported {fmt} file disagrees with the model (largest difference {diff:.3g} at output "
                f"scale {scale:.3g}); nothing was written"
            )
    return ExportResult(path, fmt, path.stat().st_size, tuple(example.shape), diff, scale)
