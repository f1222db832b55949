"""Shared fixtures: tiny generated datasets and workspaces, a network guard."""

from __future__ import annotations

import os
import socket

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import alnb  # noqa: E402,F401  (offline settings before ultralytics)
from alnb.datasets import weld  # noqa: E402
from alnb.core.workspace import Workspace  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")

# `make test` runs the suite on two pytest-xdist workers (one per core of the CI machine): each worker's trainings,
# evaluations and scorings then use one thread (alnb.core.cpu), so the two never share a core; the numbers the tests
# compare are always computed under one setting.  A single process (plain `pytest`) keeps the default policy.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("ALNB_THREADS", "1")

# Test files that share an expensive fixture run on the same worker (`--dist loadgroup`): each file is a group (its
# module-scoped trained models and servers are built once), and the notebook checks and the browser test share the
# workspace built by executing the notebooks (tests/notebook_ws.py).
SHARED_GROUPS = {"test_notebooks": "notebook_ws", "test_browser": "notebook_ws"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.module.__name__.rsplit(".", 1)[-1]
        item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(name, name)))


# Skips for a service that is not installed (Label Studio, Chromium, Ray: their reasons say "not installed").  Under
# ALNB_REQUIRE_SERVICES=1 (.ci/run) such a skip fails the run, so CI never turns green with those tests not run.
MISSING_SERVICE = "not installed"
_service_skips: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and os.environ.get("ALNB_REQUIRE_SERVICES") == "1":
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if MISSING_SERVICE in reason:
            _service_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _service_skips and not os.environ.get("PYTEST_XDIST_WORKER"):
        print(f"\nALNB_REQUIRE_SERVICES=1 but {len(_service_skips)} test(s) were skipped for a missing service:")
        for line in _service_skips:
            print("  " + line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class NetworkAccessError(RuntimeError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test on any attempt to open a network connection or resolve a host name (loopback allowed)."""
    attempts = []
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or "/" in host):
            return real_connect(self, address)
        attempts.append(address)
        raise NetworkAccessError(f"network access attempted: {address}")

    def guarded_getaddrinfo(host, *a, **k):
        if host in ("localhost", "127.0.0.1", "::1", None):
            return real_getaddrinfo(host, *a, **k)
        attempts.append(host)
        raise NetworkAccessError(f"DNS lookup attempted: {host}")

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket, "create_connection",
                        lambda address, *a, **k: (_ for _ in ()).throw(NetworkAccessError(f"connect {address}")))
    yield attempts
    assert not attempts, f"network access attempted: {attempts}"


TINY = weld.WeldConfig(n_images=40, width=64, height=64, seed=3)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """40 generated weld images at 64x64 (session-wide, read-only: tests must not modify it)."""
    return weld.generate(tmp_path_factory.mktemp("data") / "weld", TINY, progress=False)


@pytest.fixture
def tiny_workspace(tiny_dataset, tmp_path):
    """A fresh workspace over the tiny dataset: 10 VAL1, 10 GT1, 20 POOL."""
    return Workspace.create(tmp_path / "ws", tiny_dataset, n_val=10, n_gt1=10, seed=0, progress=False)
