"""Reading torch files without ever executing code from them.

``torch.load(..., weights_only=True)`` refuses every pickled object that is not a tensor or a
plain container; this module turns its refusals and other read failures into one clear line.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import CnnlabError, first_line

__all__ = ["safe_torch_load"]


def _imports_objects(path: Path) -> bool:
    """Does a bare pickle file name Python objects (a class or a function to call)?"""
    import pickletools

    try:
        with path.open("rb") as fh:
            return any(op.name in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE")
                       for op, _, _ in pickletools.genops(fh))
    except Exception:  # not a pickle at all: plainly damaged
        return False


def safe_torch_load(path: str | Path, what: str = "file", fix: str = "check the path") -> Any:
    """Load ``path`` with ``weights_only=True`` onto the CPU; one-line errors for every failure."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"{what} {path} does not exist: {fix}")
    try:
        fh = path.open("rb")
    except PermissionError:
        raise CnnlabError(f"cannot read {what} {path}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise CnnlabError(f"cannot read {what} {path} ({exc.strerror or exc}): {fix}") from None
    try:
        with fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before it refuses a file
            return torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch names the refused class ("Unsupported global: ...", "unsupported GLOBAL ... blocked"); a
        # bare pickle (not torch's zip format) is refused earlier, so its opcodes are read, never run.
        if "global" in str(exc).lower() or _imports_objects(path):
            raise CnnlabError(
                f"{path} holds Python objects, not only tensors, and cnnlab never loads those (they can run "
                "code): re-save it with torch.save(model.state_dict(), PATH) or as .safetensors"
            ) from None
        raise CnnlabError(f"{path} is damaged or not a PyTorch {what}") from None
    except Exception as exc:  # any parse failure of an untrusted file is the file's fault, not a bug
        raise CnnlabError(f"{path} is damaged or not a PyTorch {what} ({first_line(exc)})") from None
