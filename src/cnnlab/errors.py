"""The errors cnnlab raises for mistakes a user can make.

Every such error carries one line that names the cause and the fix. The CLI prints that
line on stderr and exits with code 2; library callers can catch :class:`CnnlabError`
(or ``ValueError``, which it subclasses) like any other bad-argument error.
"""

from __future__ import annotations


class CnnlabError(ValueError):
    """A mistake in what the user asked for; its message is one line with cause and fix."""


_TORCHSCRIPT = "The following operation failed in the TorchScript interpreter."


def first_line(exc: BaseException) -> str:
    """The line of an exception's message that says what went wrong, else the exception's type.

    That is the first line, except for errors raised inside TorchScript, whose first line only
    says that an operation failed: their cause is the last line.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0] != _TORCHSCRIPT:
        return lines[0]
    last = lines[-1]  # "RuntimeError: mat1 and mat2 shapes cannot be multiplied ..."
    kind, sep, rest = last.partition(": ")
    return rest if sep and kind.isidentifier() and kind.endswith("Error") else last


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that memory ran out (torch's allocators and the C library word it differently)."""
    text = str(exc).lower()
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text
            or "can't allocate memory" in text or "cannot allocate memory" in text)
