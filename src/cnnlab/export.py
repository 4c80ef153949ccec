"""Export a model to ONNX, TorchScript or safetensors, and check every file after writing it.

Each export is verified by loading what was written and comparing its output with the
model's own on the same input: ONNX through onnxruntime, TorchScript through
``torch.jit.load``, safetensors by loading the weights into a freshly built model.
Files are written to a temporary name first and renamed, so a failed export never leaves
a half-written file behind.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.atomic import atomic_write
from cnnlab.errors import CnnlabError, first_line, is_out_of_memory
from cnnlab.shapes import fmt_shape

__all__ = ["FORMATS", "ExportResult", "check_target", "export_model"]

FORMATS = ("onnx", "torchscript", "safetensors")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
# Exported graphs reorder float arithmetic; outputs agree to about 1e-5 of their scale.
_RTOL = 1e-4
# Inputs of more elements than this get a memory estimate before the model runs on them.
_ESTIMATE_ABOVE = 2**20


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


def _tensors(output: Any) -> list[torch.Tensor]:
    """The tensors of a model's output, in order, whatever holds them (a segmentation network's dict
    of "out" and "aux", a tuple of heads)."""
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]


_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # terminal colour codes, which torch's exporter puts in its messages


def _root_cause(exc: BaseException) -> str:
    """The first line of the innermost cause of an exporter's failure (its outer layers only say which
    step failed), without colour codes, shortened to one readable line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = _COLOUR.sub("", first_line(exc))
    return text if len(text) <= 200 else text[:197] + "..."


def _write_onnx(model: nn.Module, example: torch.Tensor, tmp: Path, outputs: int) -> None:
    # The exporter reports its progress on stdout, and a failure with the whole graph on stderr (thousands
    # of lines); keep stdout for results (and --json) alone, and stderr for the one line a failure ends in.
    names = ["logits"] if outputs == 1 else None  # several outputs keep the names the exporter gives them
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            # torch.export-based exporter (torch >= 2.5, needs onnxscript); batch stays dynamic.
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(model, (example,), str(tmp), dynamo=True, input_names=["input"],
                              output_names=names, dynamic_shapes=({0: batch},), external_data=False)
        except TypeError:
            torch.onnx.export(model, (example,), str(tmp), input_names=["input"], output_names=names)


def _run_onnx(tmp: Path, example: torch.Tensor) -> list[torch.Tensor]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [torch.from_numpy(a) for a in session.run(None, {name: example.numpy()})]


def _write_torchscript(model: nn.Module, example: torch.Tensor, tmp: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still the TorchScript format
        traced = torch.jit.trace(model, example, strict=False)  # strict=False: dict and list outputs too
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)  # into memory: torch's C++ writer aborts the process on a full disk
    with tmp.open("wb") as fh:
        fh.write(buffer.getbuffer())


def _run_torchscript(tmp: Path, example: torch.Tensor) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(tmp), map_location="cpu")
    with torch.no_grad():
        return loaded(example)


def _write_safetensors(model: nn.Module, tmp: Path, metadata: dict[str, str]) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import save_model

    try:
        save_model(model, str(tmp), metadata=metadata)
    except SafetensorError as exc:  # its Rust writer reports I/O failures as "... (os error N)"
        code = re.search(r"os error (\d+)", str(exc))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(tmp)) from None


def export_model(
    model: nn.Module,
    fmt: str,
    out: str | Path,
    input_size: Sequence[int] = (3, 224, 224),
    rebuild: Callable[[], nn.Module] | None = None,
    metadata: dict[str, str] | None = None,
    announce: Callable[[], None] | None = None,
) -> ExportResult:
    """Write ``model`` in format ``fmt`` to ``out`` and verify the written file.

    ``rebuild`` builds a fresh model of the same architecture; the safetensors check loads the
    written weights into it (and ``metadata`` is stored in the file's header). ``announce`` is
    called once the arguments are checked, before the export's real work begins.
    """
    if fmt not in FORMATS:
        raise CnnlabError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError:
            raise CnnlabError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'cnnlab[export]'") from None
    path = check_target(out, fmt)
    model = model.eval()
    if math.prod(input_size) > _ESTIMATE_ABOVE:
        from cnnlab.analysis import require_memory

        require_memory(model, input_size, f"running the model on a {fmt_shape(input_size)} input",
                       "export at a smaller --input")
    if announce is not None:
        announce()
    torch.manual_seed(0)
    example = torch.randn(1, *input_size)
    try:
        with torch.no_grad():
            expected = _tensors(model(example))
    except (RuntimeError, ValueError, IndexError, AssertionError, TypeError) as exc:
        if is_out_of_memory(exc):
            raise
        raise CnnlabError(f"{type(model).__name__} cannot run on input {fmt_shape(input_size)}: "
                          f"{first_line(exc)}") from None
    if not expected:
        raise CnnlabError(f"{type(model).__name__}'s output holds no tensor: there is nothing to check an "
                          "exported file against")
    try:
        with atomic_write(path, path.suffix) as tmp:
            diff, scale = _write_and_check(model, fmt, tmp, example, expected, rebuild, metadata)
    except OSError as exc:  # name the file asked for, not the temporary one beside it
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    return ExportResult(path, fmt, path.stat().st_size, tuple(example.shape), diff, scale)


def check_target(out: str | Path, fmt: str) -> Path:
    """The path to export to, once it is known to be a file name whose folder exists or can be made."""
    path = Path(out)
    if path.is_dir():
        raise CnnlabError(f"{path} is a folder: give a file name such as {path / ('model' + SUFFIX[fmt])}")
    if path.exists() and not path.is_file():
        raise CnnlabError(f"{path} is not a regular file: give the path of a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CnnlabError(f"cannot write {path} ({exc.strerror or exc}): choose another --out") from None
    return path


def _write_and_check(model: nn.Module, fmt: str, tmp: Path, example: torch.Tensor, expected: list[torch.Tensor],
                     rebuild: Callable[[], nn.Module] | None, metadata: dict[str, str] | None) -> tuple[float, float]:
    """Write the file, load it back and compare outputs: (largest difference, output scale)."""
    if fmt in ("onnx", "torchscript"):
        try:
            if fmt == "onnx":
                _write_onnx(model, example, tmp, len(expected))
                got = _run_onnx(tmp, example)
            else:
                _write_torchscript(model, example, tmp)
                got = _tensors(_run_torchscript(tmp, example))
        except OSError:
            raise
        except Exception as exc:  # the exporters raise many kinds; what they say is the cause
            if is_out_of_memory(exc):
                raise
            raise CnnlabError(f"torch cannot write {type(model).__name__} as {fmt}: {_root_cause(exc)}") from None
    else:
        if rebuild is None:
            raise CnnlabError("a safetensors export needs a way to rebuild the model to check the file")
        _write_safetensors(model, tmp, metadata or {})
        from safetensors.torch import load_model

        fresh = rebuild().eval()
        load_model(fresh, str(tmp))
        with torch.no_grad():
            got = _tensors(fresh(example))
    if [tuple(t.shape) for t in got] != [tuple(t.shape) for t in expected]:
        raise CnnlabError(
            f"the exported {fmt} file gives outputs of shapes {', '.join(fmt_shape(t.shape) for t in got)} where "
            f"the model gives {', '.join(fmt_shape(t.shape) for t in expected)}; nothing was written")
    diff = max(float((g.float() - e.float()).abs().max()) if e.numel() else 0.0 for g, e in zip(got, expected, strict=True))
    scale = max(float(e.float().abs().max()) if e.numel() else 0.0 for e in expected)
    if not diff <= _RTOL * max(scale, 1.0):
        raise CnnlabError(
            f"the exported {fmt} file disagrees with the model (largest difference {diff:.3g} at output "
            f"scale {scale:.3g}); nothing was written"
        )
    return diff, scale
