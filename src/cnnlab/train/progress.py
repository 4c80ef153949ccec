"""Training progress on stderr: a live bar in a terminal, plain lines in a log or a pipe."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress", "fmt_duration"]


def fmt_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Reports steps and epochs; silent when ``enabled`` is false (other ranks, --quiet)."""

    def __init__(self, enabled: bool, total_steps: int, epochs: int, start_step: int = 0) -> None:
        self.enabled = enabled
        self.total = total_steps
        self.epochs = epochs
        self.start_step = start_step
        self.t0 = time.perf_counter()
        self.live = enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            from cnnlab.console import err

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=err, transient=False)
            self._task = self._bar.add_task("training", total=total_steps, completed=start_step)
            self._bar.start()

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def step(self, step: int, epoch: int, loss: float, acc: float, images_per_s: float, lr: float) -> None:
        if not self.enabled:
            return
        done = step - self.start_step
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / max(done, 1) * (self.total - step)
        text = (f"epoch {epoch + 1}/{self.epochs} step {step}/{self.total} loss {loss:.4f} acc {acc:.2%} "
                f"lr {lr:.4g} {images_per_s:,.0f} img/s ETA {fmt_duration(eta)}")
        if self._bar is not None:
            self._bar.update(self._task, completed=step, description=text)
        else:
            self.message(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
