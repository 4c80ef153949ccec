"""SIGKILL at every kind of instant of a run, then --resume: the run ends as if nothing had happened.

Each case is two real processes (the killed one and the resume), so the sweep is marked slow.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runlib import TINY, assert_same_run

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 600  # generous: the machine may be busy

# The tiny run: 2 epochs of 10 steps; commits at steps 4 and 8, the epoch end 10, then 12, 16 and 20.
POINTS = [
    ("step", 3),  # between two commits
    ("step", 10),  # the first epoch's last step, before its validation
    ("step", 20),  # the run's last step
    ("write:last.pt", 1),  # half way through the first periodic save
    ("rename:last.pt", 3),  # the epoch-end last.pt, whole but not yet in place
    ("write:best.pt", 1),  # half way through the first best.pt
    ("rename:best.pt", 1),
    ("rename:last.pt", 6),  # the final commit's last.pt, after its best.pt (when the last epoch is the best)
    ("rename:previous.pt", 2),
    ("metrics", 1),  # checkpoints written, metrics.jsonl not yet
    ("metrics", 2),
    ("evaluate", 3),  # in the final test
    ("result", 1),  # everything but result.json
]


def cnnlab(*argv: str, point: tuple[str, int] | None = None) -> subprocess.CompletedProcess[str]:
    head = [str(HERE / "killpoint.py"), point[0], str(point[1])] if point else ["-m", "cnnlab"]
    return subprocess.run([sys.executable, *head, *argv], capture_output=True, text=True, timeout=TIMEOUT_S,
                          cwd=HERE.parent)


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    done = cnnlab("train", *TINY, "--out", str(out), "--name", "r", "--quiet")
    assert done.returncode == 0, done.stderr
    return out / "r"


@pytest.mark.parametrize("point", POINTS, ids=[f"{p}-{n}" for p, n in POINTS])
def test_a_kill_at_any_instant_resumes_to_the_uninterrupted_run(tmp_path: Path, whole: Path,
                                                                point: tuple[str, int]) -> None:
    killed = cnnlab("train", *TINY, "--out", str(tmp_path), "--name", "r", "--quiet", point=point)
    assert killed.returncode == -signal.SIGKILL, f"the kill point was never reached: {killed.stderr}"
    run = tmp_path / "r"
    resumed = cnnlab("train", "--resume", str(run), "--quiet", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "finished"
    assert_same_run(whole, run)
