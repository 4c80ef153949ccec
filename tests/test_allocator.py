"""The allocator keeps a step's memory for the next step, and gives it back when the run ends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = """
import json, os, sys
import torch
from cnnlab.train.allocator import give_back, keep_memory

def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

kept = keep_memory() if sys.argv[1] == "keep" else None
before = resident_mib()
block = torch.ones(4 << 20)  # 16 MiB: glibc maps a block this large afresh, unless told to keep it
held = resident_mib()
del block
freed = resident_mib()
give_back()
print(json.dumps({"kept": kept, "held": held - before, "freed": freed - before, "given_back": resident_mib() - before}))
"""


def _run(setting: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, setting], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _glibc() -> bool:
    from cnnlab.train.allocator import _glibc

    return sys.platform.startswith("linux") and _glibc() is not None


@pytest.mark.skipif(not _glibc(), reason="the allocator is tuned where the C library is glibc")
def test_a_freed_block_stays_in_the_process_until_the_run_gives_it_back() -> None:
    plain, kept = _run("plain"), _run("keep")
    assert plain["held"] >= 15 and kept["held"] >= 15  # the 16 MiB are resident while the tensor lives
    assert plain["freed"] < 2  # glibc as it starts: unmapped at once, to be faulted in again next step
    assert kept["kept"] is True and kept["freed"] >= 15  # kept for the next step's block
    assert kept["given_back"] < 2  # and returned when the run ends
