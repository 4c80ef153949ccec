"""How many threads a run computes with: measured from the other processes' load, recorded, kept on resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.train import threads as threads_module
from cnnlab.train.loop import fit
from cnnlab.train.threads import Probe, resolve
from runlib import small_config

CPU = torch.device("cpu")
HZ = os.sysconf("SC_CLK_TCK")


def _stat(busy: int, idle: int) -> str:
    # user nice system idle iowait irq softirq steal: busy split over user and system, iowait 7 (not busy)
    return f"cpu  {busy - busy // 3} 0 {busy // 3} {idle} 7 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_probe_counts_the_busy_ticks_of_other_processes(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(_stat(busy=1000, idle=5000))
    probe = Probe(stat)
    # Over the window, the machine's cores did 1.5 cores' worth of work beyond this process's own.
    window = 0.3
    stat.write_text(_stat(busy=1000 + int(1.5 * HZ * window), idle=5000))
    busy = probe.busy_elsewhere(min_window_s=window)
    elapsed = time.monotonic() - probe.start  # at least the window; more when the machine is busy
    assert busy == pytest.approx(1.5 * window / elapsed, abs=0.15)  # less this process's own (tiny) CPU time


def test_the_probe_says_unknown_where_the_system_does_not(tmp_path: Path) -> None:
    assert Probe(tmp_path / "absent").busy_elsewhere(min_window_s=0) is None
    (tmp_path / "odd").write_text("nothing like /proc/stat\n")
    assert Probe(tmp_path / "odd").busy_elsewhere(min_window_s=0) is None


class _Fixed(Probe):
    def __init__(self, busy: float | None) -> None:
        self.value = busy

    def busy_elsewhere(self, min_window_s: float = 0) -> float | None:
        return self.value


@pytest.mark.parametrize(("busy", "expected"), [(0.0, 2), (0.4, 2), (0.6, 1), (1.0, 1), (2.0, 1), (7.5, 1)])
def test_auto_computes_with_the_cores_other_work_leaves(monkeypatch, busy, expected) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module, "_DEFAULT", 2)
    monkeypatch.setattr(threads_module, "_cores", lambda: 2)
    chosen = resolve(None, CPU, _Fixed(busy))
    assert chosen.count == expected and torch.get_num_threads() == expected
    assert chosen.reason == f"auto: {busy:.1f} of 2 cores busy with other work"


def test_asked_for_environment_and_unknown_load(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module, "_DEFAULT", 2)
    assert resolve(1, CPU, _Fixed(0.0)).describe() == "1 (asked for)"
    assert resolve(None, CPU, _Fixed(None)).describe() == "2 (auto: this system does not say how busy its cores are)"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert resolve(None, CPU, _Fixed(2.0)).describe() == "1 (OMP_NUM_THREADS)"
    with pytest.raises(CnnlabError, match="--threads must be at least 1"):
        resolve(0, CPU)


def test_the_probe_sees_real_load() -> None:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy = Probe().busy_elsewhere(min_window_s=0.5)
    finally:
        for p in spinners:
            p.kill()
    assert busy is not None and busy >= 1.0


def test_a_run_records_its_threads_and_a_resumed_run_keeps_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    stopped = fit(small_config(tmp_path, threads=None, epochs=2, name="auto"), on_step=lambda step: step == 5,
                  quiet=True)
    config = json.loads((stopped.run_dir / "config.json").read_text())
    assert isinstance(config["threads"], int) and 1 <= config["threads"] <= threads_module._DEFAULT
    assert any(line.startswith("precision ") and f"| threads {config['threads']} (auto: " in line
               for line in stopped.summary)
    resumed = fit(None, resume=stopped.run_dir, quiet=True)  # type: ignore[arg-type]
    assert resumed.status == "finished"
    assert any(line.endswith(f"| threads {config['threads']} (asked for)") for line in resumed.summary)
