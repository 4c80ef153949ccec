"""Writing files so that a crash, a kill or a failed check never leaves half a file behind."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cnnlab.errors import CnnlabError

__all__ = ["atomic_write", "check_replaceable", "remove_stale_temporaries", "replace_with_link"]

# The temporary files atomic_write makes: ".NAME.RANDOM.tmp" (mkstemp's 8 random characters).
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def check_replaceable(path: str | Path) -> None:
    """Refuse a target that is not a regular file (a folder, a link, a device, a pipe) in one line."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError:
        return  # an unreadable parent shows itself, with its own error, when the file is written
    if stat.S_ISREG(mode):
        return
    kind = ("a folder" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a pipe or socket")
    raise CnnlabError(f"{path} is {kind}, not a regular file: cnnlab only replaces files it can rewrite whole; "
                      "write to another path")


@contextlib.contextmanager
def atomic_write(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside ``path`` that replaces it only if the block finishes.

    The block writes the yielded path. On success the file is flushed to disk, given ordinary
    permissions (``mkstemp`` makes it private) and renamed onto ``path`` in one step, so a
    reader sees the old file or the new one, never a part of one. On any exception (a failed
    check inside the block included) the temporary file is removed and ``path`` is untouched.
    A target that exists but is not a regular file is refused before anything is written.
    A kill leaves at most the temporary file, which :func:`remove_stale_temporaries` clears.
    """
    path = Path(path)
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        check_replaceable(path)  # still a file: nothing became a link while the block wrote
        os.replace(tmp, path)
        _sync_folder(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def replace_with_link(source: Path, path: Path) -> None:
    """Make ``path`` a second name of the file ``source`` in one step (same folder, no copy).

    Where the file system has no hard links, ``path`` becomes a flushed copy instead, still
    replaced in one step.
    """
    check_replaceable(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            shutil.copyfile(source, tmp)
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete what killed writes left in ``folder``; call it only while no one else writes there."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if _TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _sync_folder(folder: Path) -> None:
    """Flush the rename itself, so that it survives a power cut as well as a kill."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
