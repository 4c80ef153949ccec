"""Reading torch files without ever executing code from them.

``torch.load(..., weights_only=True)`` refuses every pickled object that is not a tensor or a
plain container; this module turns its refusals and other read failures into one clear line.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import CnnlabError

__all__ = ["safe_torch_load"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def safe_torch_load(path: str | Path, what: str = "file", fix: str = "check the path") -> Any:
    """Load ``path`` with ``weights_only=True`` onto the CPU; one-line errors for every failure."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"{what} {path} does not exist: {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch names the refused class ("Unsupported global: ...", "unsupported GLOBAL ... blocked").
        if "global" in str(exc).lower():
            raise CnnlabError(
                f"{path} holds Python objects, not only tensors, and cnnlab never loads those (they can run "
                "code): re-save it with torch.save(model.state_dict(), PATH) or as .safetensors"
            ) from None
        raise CnnlabError(f"{path} is damaged or not a PyTorch {what}") from None
    except Exception as exc:  # any parse failure of an untrusted file is the file's fault, not a bug
        raise CnnlabError(f"{path} is damaged or not a PyTorch {what} ({_first_line(exc)})") from None
