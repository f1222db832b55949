"""The CPU thread policy (alnb.core.cpu): thread count precedence, restored state, and no two jobs on the same cores."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from alnb.core import cpu


def test_thread_count_precedence(monkeypatch):
    monkeypatch.delenv(cpu.ENV_THREADS, raising=False)
    monkeypatch.setattr(cpu, "USER_OMP_NUM_THREADS", None)
    assert cpu.default_threads() == cpu.usable_cores()
    monkeypatch.setattr(cpu, "USER_OMP_NUM_THREADS", "3")
    assert cpu.default_threads() == 3  # the user's OMP_NUM_THREADS (as set before ultralytics replaced it)
    monkeypatch.setenv(cpu.ENV_THREADS, "2")
    assert cpu.default_threads() == 2  # ALNB_THREADS wins over OMP_NUM_THREADS
    assert cpu.default_threads(5) == 5  # an explicit count wins over both
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="threads"):
            cpu.default_threads(bad)


def test_block_sets_and_restores_threads(tmp_path, monkeypatch):
    from ultralytics.utils import torch_utils

    monkeypatch.setenv(cpu.ENV_DIR, str(tmp_path))
    before = torch.get_num_threads(), torch_utils.NUM_THREADS
    with cpu.cpu_threads(2, log=None) as n:
        assert n == 2 and torch.get_num_threads() == 2 and torch_utils.NUM_THREADS == 2
        with cpu.cpu_threads(1, log=None) as inner:  # nested: the outer block's count, no second claim
            assert inner == 2 and torch.get_num_threads() == 2
        assert cpu.current_threads() == 2
    assert (torch.get_num_threads(), torch_utils.NUM_THREADS) == before and cpu.current_threads() is None
    with cpu.cpu_threads(3, device="0", log=None):  # GPU work: no claim, threads untouched
        assert torch.get_num_threads() == before[0]


HOLD = """
import sys, time
from alnb.core import cpu
with cpu.cpu_threads(int(sys.argv[1]), what="holder", log=None):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.mark.skipif(cpu.fcntl is None, reason="flock-based core slots need POSIX")
def test_second_job_waits_for_the_cores(tmp_path, monkeypatch):
    """A job that wants cores another alnb process holds waits for them (saying who holds them) instead of sharing
    them; a killed holder releases them."""
    monkeypatch.setenv(cpu.ENV_DIR, str(tmp_path))
    monkeypatch.delenv(cpu.ENV_WAIT, raising=False)  # the default (wait), whatever the shell running the tests says
    n = cpu.usable_cores()
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(n), "3"], stdout=subprocess.PIPE, text=True,
                         env={**__import__("os").environ, cpu.ENV_DIR: str(tmp_path)})
    try:
        assert p.stdout.readline().strip() == "holding"
        msgs = []
        t0 = time.monotonic()
        with cpu.cpu_threads(1, what="second job", log=msgs.append):
            waited = time.monotonic() - t0
        assert waited > 1.0, "the second job did not wait for the held core"
        assert "waiting for CPU cores held by pid" in msgs[0] and str(p.pid) in msgs[0] and "holder" in msgs[0]
    finally:
        p.kill()
        p.wait()
    # a killed holder: its flock is gone, the next claim is immediate
    k = subprocess.Popen([sys.executable, "-c", HOLD, str(n), "60"], stdout=subprocess.PIPE, text=True,
                         env={**__import__("os").environ, cpu.ENV_DIR: str(tmp_path)})
    assert k.stdout.readline().strip() == "holding"
    k.kill()
    k.wait()
    t0 = time.monotonic()
    with cpu.cpu_threads(1, log=None):
        assert time.monotonic() - t0 < 1.0


def test_no_wait_shares_the_cores(tmp_path, monkeypatch):
    monkeypatch.setenv(cpu.ENV_DIR, str(tmp_path))
    monkeypatch.setenv(cpu.ENV_WAIT, "0")
    with cpu.cpu_threads(1, log=None):
        assert not list(tmp_path.glob("core-*.lock"))  # nothing claimed


@pytest.mark.skipif(cpu.fcntl is None or cpu.usable_cores() < 2, reason="needs POSIX and 2 cores")
def test_one_thread_jobs_share_a_machine_side_by_side(tmp_path, monkeypatch):
    """A 1-thread job takes any free core: with one core held by another 1-thread job it does not wait."""
    monkeypatch.setenv(cpu.ENV_DIR, str(tmp_path))
    p = subprocess.Popen([sys.executable, "-c", HOLD, "1", "5"], stdout=subprocess.PIPE, text=True,
                         env={**__import__("os").environ, cpu.ENV_DIR: str(tmp_path)})
    try:
        assert p.stdout.readline().strip() == "holding"
        msgs = []
        t0 = time.monotonic()
        with cpu.cpu_threads(1, log=msgs.append):
            assert time.monotonic() - t0 < 1.0 and not msgs
    finally:
        p.kill()
        p.wait()
