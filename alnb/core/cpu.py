"""One CPU thread policy for training, evaluation and MC scoring: every usable core for one job, never two jobs on
the same cores.

:func:`cpu_threads` (a context manager) sets a job's thread count and claims its cores:

* **How many threads**: an explicit ``threads`` (profile field, ``--threads``) wins; else ``ALNB_THREADS``; else the
  user's own ``OMP_NUM_THREADS``; else every core this process may run on.  The count changes a CPU training's
  numbers, so it is part of every training's cache key and recorded in ``alnb_run.json``.
* **No oversubscription**: a job claims one *core slot* per thread (an ``flock`` in ``ALNB_CPU_DIR`` or
  ``/tmp/alnb-cpu-<uid>``); a second job that wants held cores waits for them (``ALNB_CPU_WAIT=0``: share instead).
* Re-entrant within a process; the previous thread counts are restored on exit; GPU work claims no slots.

Writes nothing but the core slots' lock files.
Design notes: docs/design/cpu-threads.md
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

ENV_THREADS = "ALNB_THREADS"
ENV_DIR = "ALNB_CPU_DIR"
ENV_WAIT = "ALNB_CPU_WAIT"
ENV_USER_OMP = "ALNB_USER_OMP"  # the user's OMP_NUM_THREADS ("" = unset), for child processes

# OMP_NUM_THREADS as the user set it, captured by alnb.core.offline before ultralytics sets an unset one to "1"
USER_OMP_NUM_THREADS: str | None = None

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

_state = threading.local()
_guard = threading.Lock()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where affinity is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _positive_int(value, what: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{what}={value!r} is not a whole number of threads (e.g. 2).") from None
    if n < 1:
        raise ValueError(f"{what}={value!r}: the number of threads must be at least 1.")
    return n


def default_threads(threads=None) -> int:
    """The thread count of a CPU job: ``threads`` > ``ALNB_THREADS`` > the user's ``OMP_NUM_THREADS`` > every usable
    core (see the module docstring)."""
    if threads not in (None, "", 0, "auto"):
        return _positive_int(threads, "threads")
    env = os.environ.get(ENV_THREADS, "").strip()
    if env:
        return _positive_int(env, ENV_THREADS)
    if USER_OMP_NUM_THREADS:
        return _positive_int(USER_OMP_NUM_THREADS, "OMP_NUM_THREADS")
    return usable_cores()


def slot_dir() -> Path:
    d = os.environ.get(ENV_DIR)
    if d:
        return Path(d)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path("/tmp") / f"alnb-cpu-{uid}"


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "another process"
    except OSError:
        return "another process"


class _Slots:
    """The core slots a process holds: open file descriptors with an exclusive ``flock``."""

    def __init__(self, n: int, what: str, log, wait: bool):
        self.fds = []
        if fcntl is None or not wait:
            return
        d = slot_dir()
        d.mkdir(parents=True, exist_ok=True)
        total = usable_cores()
        gate = os.open(d / "gate.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)  # one claimer at a time: claims never interleave, so no deadlock
            held = []  # any n free slots (two 1-thread jobs on 2 cores run side by side)
            for i in range(total):
                if len(self.fds) == min(n, total):
                    break
                fd = os.open(d / f"core-{i}.lock", os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self._mark(fd, what)
                except BlockingIOError:
                    held.append((i, fd))
            if len(self.fds) < min(n, total):  # wait for held slots, one after the other (we hold the gate)
                if log:
                    log(f"[alnb] {what}: waiting for CPU cores held by {_holder(d / f'core-{held[0][0]}.lock')} "
                        f"(two jobs on the same cores slow each other ~15x; {ENV_WAIT}=0 shares them instead)")
                t0 = time.monotonic()
                for _, fd in held[:min(n, total) - len(self.fds)]:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    self._mark(fd, what)
                if log:
                    log(f"[alnb] {what}: got the cores after {time.monotonic() - t0:.0f} s")
            for fd in (fd for _, fd in held if fd not in self.fds):
                os.close(fd)
        except BaseException:
            self.release()
            raise
        finally:
            os.close(gate)

    def _mark(self, fd: int, what: str):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({what})".encode(), 0)
        self.fds.append(fd)

    def release(self):
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.close(fd)  # closing drops the flock
        self.fds = []


def current_threads() -> int | None:
    """The thread count of the enclosing :func:`cpu_threads` block of this thread, or None outside one."""
    return getattr(_state, "threads", None)


@contextlib.contextmanager
def cpu_threads(threads=None, *, device=None, what: str = "alnb", log=print, claim: bool = True):
    """Run the block with the policy's thread count (module docstring); yields the count.

    ``device``: a GPU device (anything but None/"cpu") claims no core slots and leaves the threads as they are.
    ``claim=False`` sets the threads without claiming core slots (short requests of a server that may run while its
    own background training holds them).  Nested blocks reuse the outer block's count and slots.
    """
    # heavy, imported where used (not at module import): torch, ultralytics
    import torch

    if device not in (None, "", "cpu") and str(device).lower() != "cpu":
        yield torch.get_num_threads()
        return
    outer = current_threads()
    if outer is not None:
        yield outer
        return
    n = default_threads(threads)
    wait = os.environ.get(ENV_WAIT, "1").strip().lower() not in ("0", "false", "no", "off")
    slots = _Slots(n, what, log, wait and claim)
    from ultralytics.utils import torch_utils

    with _guard:
        before = torch.get_num_threads(), torch_utils.NUM_THREADS
        torch.set_num_threads(n)
        torch_utils.NUM_THREADS = n  # select_device() inside trainers / predictors sets torch to this count
    _state.threads = n
    try:
        yield n
    finally:
        _state.threads = None
        with _guard:
            torch.set_num_threads(before[0])
            torch_utils.NUM_THREADS = before[1]
        slots.release()
