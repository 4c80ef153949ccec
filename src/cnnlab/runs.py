"""The run folder: the one place that knows what a training run keeps, and how it is written.

    runs/NAME/
      config.json     the resolved training config, written when the run starts
      metrics.jsonl   one JSON record per finished epoch, in epoch order
      best.pt         checkpoint of the best epoch on validation: the weights the test uses
                      (the newest epoch's when there is no validation split)
      last.pt         checkpoint of the newest commit: an epoch's end, a periodic save, a stop
      previous.pt     the last.pt before it, used when last.pt turns out to be damaged
      result.json     the final report, written once the run has finished
      tensorboard/    event files (with --tensorboard)
      .lock           held by the one process that writes the run

How it stays consistent (training, evaluation, the explorer and the pictures all go through
this module): a run is written only by the process that holds its lock; a new run never
takes a folder that already holds one; every file is replaced atomically; best.pt is written
before the last.pt that names it, and metrics.jsonl after it, so a kill at any instant leaves
a last.pt (or previous.pt) from which :meth:`RunDir.resume_point` continues and whose saved
history :meth:`RunDir.write_metrics` restores metrics.jsonl to.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.atomic import (
    atomic_write,
    check_replaceable,
    remove_stale_temporaries,
    replace_with_link,
)
from cnnlab.errors import CnnlabError

__all__ = ["RUN_NAME", "Metrics", "RunDir", "check_name"]

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # one plain folder name: never ".", "..", "-x"
_LOCK_WAIT_S = 2.0  # a reader's brief shared lock (the explorer asking "is it running?") is waited out
_READ_MAX_BYTES = 64 * 2**20  # a run's JSON files: metrics.jsonl holds ~200 bytes an epoch

CONFIG, METRICS, BEST, LAST, PREVIOUS, RESULT, EVENTS, LOCK = (
    "config.json", "metrics.jsonl", "best.pt", "last.pt", "previous.pt", "result.json", "tensorboard", ".lock")
_RUN_FILES = (CONFIG, METRICS, BEST, LAST, PREVIOUS, RESULT)
_REQUIRED = ("epoch", "step", "train_loss")


def check_name(name: str) -> str:
    """A run name is one folder inside the runs folder: no separators, no '.' or '..', no hidden names."""
    if not isinstance(name, str) or not RUN_NAME.match(name):
        raise CnnlabError(f"run name {name!r} is not a plain folder name: use letters, digits, '.', '_' and '-' "
                          "(at most 128, starting with a letter or digit; no '/')")
    return name


def _write_error(path: Path, exc: OSError) -> CnnlabError:
    if isinstance(exc, PermissionError):
        return CnnlabError(f"cannot write {path}: permission denied; choose another --out or fix its permissions")
    if exc.errno == errno.ENOSPC:
        return CnnlabError(f"cannot write {path}: no space left on the device; free some space or choose another "
                           "--out")
    return CnnlabError(f"cannot write {path} ({exc.strerror or exc}): choose another --out")


@dataclass
class Metrics:
    """What a tolerant read of metrics.jsonl found: the good epoch records and what was skipped."""

    records: list[dict[str, Any]] = field(default_factory=list)
    damaged_lines: int = 0  # lines that are not an epoch record (skipped)
    non_finite: int = 0  # numbers that were NaN or infinite (read as None)
    notes: list[str] = field(default_factory=list)  # one line per kind of damage, the first place it is


class RunDir:
    """One run folder. Readers use it as it is; a writer first takes the lock (:meth:`acquire`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- the layout -------------------------------------------------------------------------------

    config_file = property(lambda self: self.path / CONFIG)
    metrics_file = property(lambda self: self.path / METRICS)
    best = property(lambda self: self.path / BEST)
    last = property(lambda self: self.path / LAST)
    previous = property(lambda self: self.path / PREVIOUS)
    result_file = property(lambda self: self.path / RESULT)
    events = property(lambda self: self.path / EVENTS)
    lock_file = property(lambda self: self.path / LOCK)

    def is_run(self) -> bool:
        """Does the folder hold anything a run writes?"""
        return self.path.is_dir() and any((self.path / n).exists() for n in _RUN_FILES)

    # -- finding and making runs ------------------------------------------------------------------

    @classmethod
    def create(cls, out: str | os.PathLike[str], name: str | None, default_name: str,
               overwrite: bool = False) -> tuple[RunDir, str | None]:
        """A new run's folder, locked: ``out/name`` (or ``out/default_name``) and a note to print, if any.

        A folder that already holds a run is never written into: an explicit ``name`` is refused
        (unless ``overwrite``, which clears that run's files first); the generated default name
        moves on to the next free ``NAME-2``, ``NAME-3`` ... An existing empty folder is used.
        """
        base = check_name(name if name is not None else default_name)
        parent = Path(out)
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise CnnlabError(f"--out {parent} is a file, not a folder: choose another --out") from None
        except OSError as exc:
            raise _write_error(parent, exc) from None
        if not parent.is_dir():
            raise CnnlabError(f"--out {parent} is not a folder: choose another --out")
        for i in range(1, 10_000):
            run = cls(parent / (base if i == 1 else f"{base}-{i}"))
            try:
                run.path.mkdir()
            except FileExistsError:
                if not run.path.is_dir() or run.path.is_symlink():
                    if name is not None:
                        raise CnnlabError(f"{run.path} exists and is not a run folder: choose another --name") \
                            from None
                    continue
                if overwrite and i == 1:
                    run.acquire()
                    run.clear()
                    return run, f"replacing the run in {run.path} (--overwrite)"
                if all(p.name == LOCK for p in run.path.iterdir()):  # empty, or left by a failed start
                    run.acquire()
                    if all(p.name == LOCK for p in run.path.iterdir()):
                        return run, None
                    run.release()
                if name is not None:
                    raise CnnlabError(f"{run.path} already holds a run: choose another --name, or pass --overwrite "
                                      "to replace it") from None
                continue
            except OSError as exc:
                raise _write_error(run.path, exc) from None
            run.acquire()
            note = None if i == 1 else f"{parent / base} is taken: this run is {run.path}"
            return run, note
        raise CnnlabError(f"{parent} holds 10,000 runs named {base}*: choose another --name")

    @classmethod
    def holding(cls, path: str | os.PathLike[str]) -> tuple[RunDir, Path | None]:
        """The run folder ``path`` is, or the one that holds the checkpoint file ``path`` (and that file)."""
        p = Path(path)
        if p.is_dir():
            return cls(p), None
        if p.is_file():
            return cls(p.parent), p
        raise CnnlabError(f"{p} does not exist: give a run folder or a checkpoint file")

    # -- the writer's lock ------------------------------------------------------------------------

    def acquire(self) -> RunDir:
        """Become the run's only writer, and clear what killed writers left; one line if another holds it."""
        import fcntl

        if self._lock_fd is not None:
            return self
        try:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = self._holder(fd)
                    os.close(fd)
                    raise CnnlabError(f"{self.path} is being written by another process{holder}: wait for it to "
                                      "finish, or train under another --name") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        remove_stale_temporaries(self.path)
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        with contextlib.suppress(OSError, ValueError):
            pid = int(os.pread(fd, 32, 0).decode().strip())
            return f" (pid {pid})"
        return ""

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def __enter__(self) -> RunDir:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def writing(self) -> bool:
        """Is a process writing this run now (holding its lock)? Never blocks."""
        import fcntl

        try:
            fd = os.open(self.lock_file, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)  # also drops the shared lock at once
        return False

    def _writer(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"{self.path} is written without its lock")

    # -- writing (the lock holder only) ------------------------------------------------------------

    def discard_if_empty(self) -> None:
        """Remove the folder of a run that ended before writing anything (only its lock is there)."""
        self._writer()
        if all(p.name == LOCK for p in self.path.iterdir()):
            self.release()
            with contextlib.suppress(OSError):
                self.lock_file.unlink()
                self.path.rmdir()

    def clear(self) -> None:
        """Remove the files a run writes (for --overwrite); anything else in the folder is left alone."""
        self._writer()
        for name in _RUN_FILES:
            check_replaceable(self.path / name)
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        if self.events.is_dir() and not self.events.is_symlink():
            shutil.rmtree(self.events)

    def write_config(self, text: str) -> None:
        self._writer()
        self._write_text(self.config_file, text if text.endswith("\n") else text + "\n")

    def write_result(self, doc: dict[str, Any]) -> None:
        self._writer()
        self._write_text(self.result_file, json.dumps(doc, indent=2) + "\n")

    def _write_text(self, path: Path, text: str) -> None:
        try:
            with atomic_write(path) as tmp:
                tmp.write_text(text)
        except OSError as exc:
            raise _write_error(path, exc) from None

    def commit(self, payload: dict[str, Any], best: bool) -> None:
        """Make one state of the run durable. When it is the best so far, best.pt is written first and
        last.pt becomes a second name of it; the last.pt it replaces is kept as previous.pt."""
        from cnnlab.checkpoint import write_payload

        self._writer()
        try:
            if best:
                write_payload(self.best, payload)
            if self.last.is_file():
                replace_with_link(self.last, self.previous)
            if best:
                replace_with_link(self.best, self.last)
            else:
                write_payload(self.last, payload)
        except OSError as exc:
            raise _write_error(self.path, exc) from None

    def append_metrics(self, record: dict[str, Any]) -> None:
        self._writer()
        check_replaceable(self.metrics_file)
        try:
            with self.metrics_file.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise _write_error(self.metrics_file, exc) from None

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Replace metrics.jsonl with ``records`` (a resume restores it to its checkpoint's history)."""
        self._writer()
        self._write_text(self.metrics_file, "".join(json.dumps(r) + "\n" for r in records))

    # -- reading ----------------------------------------------------------------------------------

    def file(self, name: str) -> Path:
        """The run's file ``name``; one line if it is a link that leads out of the run folder.

        Readers never follow a link out of the run: a run folder shown by the explorer could
        otherwise serve any file of the machine as its config or checkpoint.
        """
        path = self.path / name
        try:
            home = self.path.resolve()
            real = path.resolve()
        except (OSError, RuntimeError):  # a loop of links
            raise CnnlabError(f"{self.path.name}/{name} is a link that cannot be followed: replace it with the "
                              "file") from None
        if real != home and home not in real.parents:
            raise CnnlabError(f"{self.path.name}/{name} is a link to a file outside the run folder, which cnnlab "
                              "does not follow: replace the link with the file itself")
        return path

    def read_config(self) -> dict[str, Any] | None:
        return _read_json(self.file(CONFIG))

    def read_result(self) -> dict[str, Any] | None:
        return _read_json(self.file(RESULT))

    def read_metrics(self, strict: bool = True) -> list[dict[str, Any]]:
        """The epoch records, in order. A last line still being written is left for the next read.

        ``strict`` (the pictures): a damaged line is one error naming it. Otherwise (the explorer,
        which must keep answering) damaged lines are skipped: :meth:`scan_metrics` also counts them.
        Either way a number that is not finite reads as None, so what comes out is always valid JSON.
        """
        return self._scan_metrics(strict).records

    def scan_metrics(self) -> Metrics:
        """The tolerant read: the good records, and how many lines were damaged and numbers not finite."""
        return self._scan_metrics(False)

    def _scan_metrics(self, strict: bool) -> Metrics:
        found = Metrics()
        try:
            data = _read_bounded(self.file(METRICS))
        except FileNotFoundError:
            if strict:
                raise CnnlabError(f"{self.path} has no {METRICS}: is it a cnnlab run folder?") from None
            return found
        except CnnlabError as exc:
            if strict:
                raise
            found.notes.append(str(exc))
            return found
        except OSError as exc:
            if strict:
                raise CnnlabError(f"cannot read {self.metrics_file} ({exc.strerror or exc})") from None
            found.notes.append(f"{METRICS} cannot be read ({exc.strerror or exc})")
            return found
        for number, raw in enumerate(data.splitlines(keepends=True), 1):
            if not raw.endswith(b"\n") or not raw.strip():
                continue
            problem, record, non_finite = _parse_record(raw)
            if problem is None and found.records and record["epoch"] <= found.records[-1]["epoch"]:
                problem = f"epoch {record['epoch']} comes after epoch {found.records[-1]['epoch']}"
            if problem is not None:
                if strict:
                    raise CnnlabError(f"{self.metrics_file} line {number} is damaged ({problem}): repair or "
                                      "remove that line")
                if not found.damaged_lines:
                    found.notes.append(f"{METRICS} line {number} is damaged ({problem}); damaged lines are "
                                       "skipped")
                found.damaged_lines += 1
                continue
            if non_finite and not found.non_finite:
                found.notes.append(f"{METRICS} line {number} holds a number that is not finite (NaN or "
                                   "infinity): such numbers read as null")
            found.non_finite += non_finite
            found.records.append(record)
        return found

    def checkpoint(self) -> Path | None:
        """The checkpoint a run's users mean: best.pt (best on validation), else last.pt, else previous.pt;
        None before the first one (a link out of the run folder is not one)."""
        for name in (BEST, LAST, PREVIOUS):
            with contextlib.suppress(CnnlabError):
                if self.file(name).is_file():
                    return self.path / name
        return None

    def weights(self) -> Path:
        """:meth:`checkpoint`, or one line saying why there is none."""
        path = self.checkpoint()
        if path is not None:
            return path
        if not self.path.is_dir():
            raise CnnlabError(f"{self.path} does not exist: give a run folder or a checkpoint file")
        for name in (BEST, LAST, PREVIOUS):
            if (self.path / name).is_symlink():
                self.file(name)  # says which link leads out
        raise CnnlabError(f"{self.path} holds no checkpoint (best.pt or last.pt) yet: is it a cnnlab run folder, "
                          "and has its first epoch finished?")

    def resume_point(self, chosen: Path | None = None) -> tuple[dict[str, Any] | None, Path | None, str | None]:
        """(checkpoint, its path, a note) to continue the run from: ``chosen``, else last.pt, else previous.pt.

        A damaged last.pt (its checksum no longer matches, or it cannot be read) falls back to
        previous.pt with a note saying so; best.pt is a snapshot of an earlier state and is refused.
        A run stopped before its first checkpoint gives (None, None, note): it starts again from
        step 0 with the config it saved, which fixes everything up to there.
        """
        from cnnlab.checkpoint import load_checkpoint

        if chosen is not None and chosen.name == BEST:
            raise CnnlabError(f"{chosen} is the best-on-validation snapshot, not where the run stopped: resume "
                              f"from the run folder {self.path} (its last.pt)")
        candidates = [chosen] if chosen is not None else [self.last, self.previous]
        damaged: list[str] = []
        for path in candidates:
            if not path.exists():
                continue
            try:
                ckpt = load_checkpoint(self.file(path.name) if path.parent == self.path else path)
            except CnnlabError as exc:
                damaged.append(str(exc))
                continue
            if not isinstance(ckpt.get("train"), dict) or not isinstance(ckpt.get("config"), dict):
                raise CnnlabError(f"{path} holds weights but no training state: resume from a run's last.pt")
            note = None
            if damaged:
                note = f"{self.last} is damaged; continuing from {path.name} (step {ckpt['train'].get('step')})"
            return ckpt, path, note
        if damaged:
            raise CnnlabError(damaged[0] if chosen is not None else
                              f"{self.path} has no intact checkpoint to resume from: {damaged[0]}")
        if chosen is None and self.read_config() is not None and not self.result_file.exists():
            return None, None, f"{self.path} stopped before its first checkpoint: starting it again from step 0"
        raise CnnlabError(f"{self.path} holds no last.pt: nothing to resume (start a new run instead)")

    def updated(self) -> float:
        """When the run last wrote anything (seconds since the epoch)."""
        times = [self.path.stat().st_mtime] if self.path.exists() else [0.0]
        for name in (*_RUN_FILES, LOCK):
            with contextlib.suppress(OSError):
                times.append((self.path / name).stat().st_mtime)
        return max(times)

    def status(self) -> str:
        """finished (result.json), running (a process holds the lock) or stopped."""
        if self.writing():
            return "running"
        result = self.read_result()
        return str(result.get("status", "finished")) if result is not None else "stopped"


def _read_bounded(path: Path) -> bytes:
    """The bytes of a run's JSON file; one line (an OSError) when it is larger than a run writes."""
    with path.open("rb") as fh:
        data = fh.read(_READ_MAX_BYTES + 1)
    if len(data) > _READ_MAX_BYTES:
        raise OSError(errno.EFBIG, f"larger than the {_READ_MAX_BYTES // 2**20} MB a run writes")
    return data


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_read_bounded(path).decode("utf-8", errors="replace"))
    except (OSError, ValueError, RecursionError):
        return None
    return _finite(data) if isinstance(data, dict) else None


def _finite(value: Any) -> Any:
    """NaN and infinities as None: JSON that every reader (a browser's included) can parse."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _parse_record(raw: bytes) -> tuple[str | None, dict[str, Any], int]:
    """(the problem or None, the record, how many of its numbers were not finite)."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "not JSON", {}, 0
    if not isinstance(record, dict):
        return "not a JSON object", {}, 0
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        return f"no {', '.join(missing)}", {}, 0
    if type(record["epoch"]) is not int or record["epoch"] < 1:
        return f"epoch {_short(record['epoch'])} is not a whole number from 1", {}, 0
    for key, value in record.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{_short(key)} {_short(value)} is not a number", {}, 0
    non_finite = sum(1 for v in record.values() if isinstance(v, float) and not math.isfinite(v))
    return None, _finite(record), non_finite


def _short(value: Any) -> str:
    """A value as a message shows it: its repr, cut at 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
