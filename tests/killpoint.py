"""Run ``cnnlab ARGS`` and SIGKILL the process at one chosen instant (the kill tests' harness).

    python tests/killpoint.py POINT N ARGS...

POINT names the instant, N which occurrence of it:
  step             right after the N-th optimizer step (before anything records it)
  write:FILE       half way through writing the N-th FILE (best.pt, last.pt): half a file on disk
  rename:FILE      the N-th FILE written whole under its temporary name, not yet renamed
  metrics          after the N-th epoch's checkpoints, before its line in metrics.jsonl
  evaluate         at the start of the N-th evaluation (validation, then the final test)
  result           before result.json is written
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import torch


def main() -> int:
    point, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    seen = {"n": 0}

    def reached() -> bool:
        seen["n"] += 1
        return seen["n"] == nth

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    kind, _, name = point.partition(":")
    if kind == "step":
        step = torch.optim.SGD.step

        def counted_step(self, *args, **kwargs):
            out = step(self, *args, **kwargs)
            if reached():
                die()
            return out

        torch.optim.SGD.step = counted_step
    elif kind == "write":
        save = torch.save

        def half_save(obj, f, *args, **kwargs):
            if isinstance(f, (str, os.PathLike)) and Path(f).name.startswith(f".{name}.") and reached():
                buffer = io.BytesIO()
                save(obj, buffer, *args, **kwargs)
                Path(f).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                die()
            return save(obj, f, *args, **kwargs)

        torch.save = half_save
    elif kind == "rename":
        replace = os.replace

        def stopped_replace(src, dst):
            if Path(dst).name == name and reached():
                die()
            return replace(src, dst)

        os.replace = stopped_replace
    elif kind in ("metrics", "result"):
        from cnnlab.runs import RunDir

        method = "append_metrics" if kind == "metrics" else "write_result"
        original = getattr(RunDir, method)

        def stopped(self, *args, **kwargs):
            if reached():
                die()
            return original(self, *args, **kwargs)

        setattr(RunDir, method, stopped)
    elif kind == "evaluate":
        import cnnlab.train.loop as loop

        evaluate = loop.evaluate

        def stopped_evaluate(*args, **kwargs):
            if reached():
                die()
            return evaluate(*args, **kwargs)

        loop.evaluate = stopped_evaluate
    else:
        raise SystemExit(f"unknown kill point {point!r}")
    from cnnlab.cli import main as cnnlab

    return cnnlab(argv)


if __name__ == "__main__":
    raise SystemExit(main())
