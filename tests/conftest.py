"""Shared fixtures: tiny generated datasets and workspaces, a network guard."""

from __future__ import annotations

import os
import socket

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import alnb  # noqa: E402,F401  (offline settings before ultralytics)
from alnb import weld  # noqa: E402
from alnb.workspace import Workspace  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")


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
