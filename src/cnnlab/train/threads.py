"""How many CPU threads a run computes with: the one owner of that choice.

PyTorch starts one compute thread per core and lets each spin while it waits for the others. On
a machine whose cores are busy with other work, a thread that waits for a busy core stalls the
whole operation: on 2 cores kept busy elsewhere, LeNet-5 trains several times slower with two
threads than with one (``bench/busy_threads.py``). ``auto`` (the default) therefore measures, for a fraction of
a second before the run starts, how many cores other processes keep busy, and computes with the
cores left (at least one, at most torch's default). An explicit ``--threads N`` or an
``OMP_NUM_THREADS`` in the environment (torchrun sets it) wins.

The run's ``config.json`` records the number used, never ``auto``: a resumed run computes with
the same threads, so it continues bit for bit whatever the machine's load then.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError

__all__ = ["Probe", "Threads", "resolve"]

# torch's own default (one thread per usable core), read before any run changes it.
_DEFAULT = torch.get_num_threads()
_WINDOW_S = 0.25


@dataclass(frozen=True)
class Threads:
    """A resolved choice: ``count`` threads, and why, for the run's header."""

    count: int
    reason: str

    def describe(self) -> str:
        return f"{self.count} ({self.reason})"


def _busy_jiffies(stat: str) -> int | None:
    """Non-idle clock ticks of all cores together, from /proc/stat's first line."""
    first = stat.splitlines()[0].split() if stat else []
    if not first or first[0] != "cpu" or len(first) < 6:
        return None
    ticks = [int(v) for v in first[1:9]]
    return sum(ticks) - ticks[3] - ticks[4]  # minus idle and iowait


class Probe:
    """How busy other processes keep the cores, from now until :meth:`busy_elsewhere` is asked.

    This process's own CPU time is subtracted, so the run can load its data meanwhile: the
    measurement then costs no wall time.
    """

    def __init__(self, stat: Path = Path("/proc/stat")) -> None:
        self.stat = stat
        self.start = time.monotonic()
        self.busy = self._busy()
        self.own = sum(os.times()[:2])

    def _busy(self) -> int | None:
        try:
            return _busy_jiffies(self.stat.read_text())
        except OSError:
            return None

    def busy_elsewhere(self, min_window_s: float = _WINDOW_S) -> float | None:
        """Cores other processes kept busy on average since the probe began; None where the system does not say."""
        time.sleep(max(0.0, self.start + min_window_s - time.monotonic()))
        busy, own = self._busy(), sum(os.times()[:2])
        if busy is None or self.busy is None:
            return None
        seconds = time.monotonic() - self.start
        others = (busy - self.busy) / os.sysconf("SC_CLK_TCK") - (own - self.own)
        return max(0.0, others / seconds)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve(threads: int | None, device: torch.device, probe: Probe | None = None) -> Threads:
    """The threads a run asked for (``None``: auto) computes with on ``device``; torch is set to them.

    ``auto`` reads ``probe`` (started earlier, while the run loaded its data) or measures now.
    """
    if threads is not None and threads < 1:
        raise CnnlabError(f"--threads must be at least 1, got {threads}")
    if threads is not None:
        chosen = Threads(threads, "asked for")
    elif os.environ.get("OMP_NUM_THREADS"):
        chosen = Threads(torch.get_num_threads(), "OMP_NUM_THREADS")
    elif device.type != "cpu":
        chosen = Threads(_DEFAULT, f"auto: the computing is on {device.type}")
    else:
        busy = (probe or Probe()).busy_elsewhere()
        if busy is None:
            chosen = Threads(_DEFAULT, "auto: this system does not say how busy its cores are")
        else:
            free = _cores() - busy
            count = max(1, min(_DEFAULT, int(free + 0.5)))
            chosen = Threads(count, f"auto: {busy:.1f} of {_cores()} cores busy with other work")
    torch.set_num_threads(chosen.count)
    return chosen
