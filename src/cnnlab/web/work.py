"""The explorer's heavy work: one worker thread, a bounded queue, and identical requests shared.

The queries that trace or run a network (:data:`cnnlab.lab.HEAVY`) run here, one job at a time:
torch.fx patches torch globally while it traces and the kept models carry hooks while they run,
so two jobs must not overlap, and one job already uses every core. A request thread hands its
job over and waits for the answer, so the threads that answer everything else (the page, the
health check, the calculators, the runs) never wait on the work.

- Single flight: a request identical to one already queued or running waits for that job's
  answer instead of queueing another.
- Admission: at most ``queue_size`` jobs wait; beyond that a request is refused at once with
  :class:`~cnnlab.lab.Busy` (HTTP 503) and a Retry-After from the recent jobs' durations.
- Deadline: each job must finish within the lab's ``deadline_s`` of its first request. A job
  still waiting at its deadline is dropped without running; a running one stops at its next
  check (:meth:`cnnlab.lab.Lab.in_time`); its requests get :class:`~cnnlab.lab.TimedOut` (504).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from cnnlab.lab import Busy, Lab, TimedOut

__all__ = ["Work"]


class _Job:
    def __init__(self, key: Hashable, fn: Callable[[], Any], deadline: float) -> None:
        self.key = key
        self.fn = fn
        self.deadline = deadline
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class Work:
    """One worker thread running the lab's heavy jobs in order, at most ``queue_size`` waiting."""

    def __init__(self, lab: Lab, queue_size: int = 16) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.lab = lab
        self.queue_size = queue_size
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._flights: dict[Hashable, _Job] = {}
        self._running: _Job | None = None
        self._seconds: deque[float] = deque(maxlen=32)  # how long recent jobs ran
        self._done = 0
        self._thread = threading.Thread(target=self._loop, name="cnnlab-work", daemon=True)
        self._thread.start()

    @property
    def deadline_s(self) -> float:
        return self.lab.deadline_s or 30.0

    def status(self) -> dict[str, int]:
        """What the worker holds now (jobs running, 0 or 1, and waiting) and how many jobs it has run."""
        with self._cond:
            return {"running": int(self._running is not None), "queued": len(self._queue),
                    "queue_size": self.queue_size, "done": self._done}

    def answer(self, key: Hashable, fn: Callable[[], Any]) -> Any:
        """``fn()``, computed on the worker (once for all identical requests in flight); raises what it
        raises, :class:`Busy` when the queue is full and :class:`TimedOut` past the deadline."""
        arrived = time.monotonic()
        with self._cond:
            job = self._flights.get(key)
            if job is None:
                if len(self._queue) >= self.queue_size:
                    n = len(self._queue)
                    raise Busy(f"the explorer is busy: {n} request{' already waits' if n == 1 else 's already wait'} "
                               "for the model work; try again in a moment", self._retry_after())
                job = _Job(key, fn, arrived + self.deadline_s)
                self._flights[key] = job
                self._queue.append(job)
                self._cond.notify()
        if not job.done.wait(timeout=max(min(job.deadline, arrived + self.deadline_s) - time.monotonic(), 0.0)):
            raise TimedOut(f"no answer within the {self.deadline_s:g} s deadline (the model work was busy or the "
                           "question is too large): try again, ask for less, or start cnnlab serve with a longer "
                           "--deadline")
        if job.error is not None:
            raise job.error
        return job.result

    def _retry_after(self) -> int:
        """Seconds until the queue has probably room again: the waiting jobs at the recent jobs' pace."""
        typical = sorted(self._seconds)[len(self._seconds) // 2] if self._seconds else 1.0
        return max(1, min(int(self.deadline_s), round(typical * (len(self._queue) + 1) / 2)))

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                job = self._queue.popleft()
                self._running = job
            start = time.monotonic()
            if start > job.deadline:
                job.error = TimedOut(f"the request waited past the {self.deadline_s:g} s deadline for the model "
                                     "work and was dropped: try again in a moment")
            else:
                try:
                    with self.lab.deadline(job.deadline):
                        job.result = job.fn()
                except Exception as exc:  # handed to the requests, which answer it
                    job.error = exc
            with self._cond:
                self._flights.pop(job.key, None)
                self._running = None
                self._seconds.append(time.monotonic() - start)
                self._done += 1
            job.done.set()
