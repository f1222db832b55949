"""One writer per workspace: an advisory lock file ``<workspace>/.alnb.lock``.

Every step that writes to a workspace (setup, training, scoring, selection commits, label imports, exports, the whole
``alnb run``) holds the lock.  A second process that wants it stops at once with :class:`WorkspaceBusy`, whose message
names the holder (pid, host, command, since when) -- instead of both writing to the same runs and manifest.

* The lock is an ``flock`` on the lock file, so a process that dies (SIGKILL, power loss of a local disk) releases it
  by itself; the file's content (pid, host, command, time, token) only *describes* the holder.  A lock file left by a
  dead process is detected ("stale") and taken over; :func:`acquire` reports it.
* Re-entrant in a process: nested ``with workspace_lock(...)`` blocks on the same workspace just count up.
* Inherited by child processes: the holder exports ``ALNB_WORKSPACE_LOCKS`` (workspace path -> token), so the kernels
  started by ``alnb notebooks`` write under their parent's lock instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import json
import os
import socket
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

from alnb.core.workspace import WorkspaceError, check_folder

LOCK_NAME = ".alnb.lock"
ENV = "ALNB_WORKSPACE_LOCKS"

try:  # POSIX; elsewhere the lock degrades to the descriptive file (O_EXCL) only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


class WorkspaceBusy(WorkspaceError):
    """Another process holds the workspace lock; ``holder`` says who (pid, host, command, since)."""

    def __init__(self, root, holder: dict):
        self.root, self.holder = Path(root), dict(holder)
        h = self.holder
        who = f"pid {h.get('pid', '?')} on host {h.get('host', '?')}"
        cmd = f" ({h['command']})" if h.get("command") else ""
        super().__init__(
            f"workspace {self.root} is busy: {who}{cmd} has been writing to it since {h.get('since', '?')}. Wait for "
            f"it to finish (or stop it), then run this again; two processes must not write to one workspace. If that "
            f"process no longer exists, delete {self.root / LOCK_NAME}.")


_UMASK = os.umask(0o022)
os.umask(_UMASK)
_held: dict = {}  # resolved root -> {"count", "fd", "token"}
_guard = threading.Lock()


def lock_path(root) -> Path:
    return Path(root).expanduser().resolve() / LOCK_NAME


def _env_tokens() -> dict:
    try:
        return dict(json.loads(os.environ.get(ENV, "") or "{}"))
    except (ValueError, TypeError):
        return {}


def _set_env(root: str, token: str | None):
    tokens = _env_tokens()
    if token is None:
        tokens.pop(root, None)
    else:
        tokens[root] = token
    if tokens:
        os.environ[ENV] = json.dumps(tokens)
    else:
        os.environ.pop(ENV, None)


def read_holder(root) -> dict | None:
    """What the lock file says about its holder (None when there is no lock file or it is empty)."""
    try:
        text = lock_path(root).read_text()
    except OSError:
        return None
    try:
        h = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return h if isinstance(h, dict) else None


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except (OSError, ValueError, TypeError):
        return False
    return True


def holder_status(root) -> dict | None:
    """The lock holder plus ``alive`` (True/False, None when on another host) and ``stale`` (left by a dead
    process), or None when there is no lock."""
    h = read_holder(root)
    if not h:
        return None
    if fcntl is not None and lock_path(root).is_file():
        try:  # probe: if we can take the flock, nobody holds it (a leftover description of a dead process)
            fd = os.open(lock_path(root), os.O_RDONLY)
        except OSError:
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                free = True
            except OSError:
                free = False
            finally:
                os.close(fd)
            if free:  # a description left by a process that died: the next writer takes it over
                return {**h, "alive": False, "stale": True}
    alive = pid_alive(h.get("pid")) if h.get("host") == socket.gethostname() else None
    return {**h, "alive": alive, "stale": alive is False}


def _not_writable(root: Path, err: OSError) -> WorkspaceError:
    return WorkspaceError(f"workspace {root} is not writable ({err.strerror or err}). Choose a --workspace folder "
                          f"you can write to, or fix its permissions; nothing was changed.")


def _open_locked(root: Path) -> int:
    """Open ``root/.alnb.lock`` and flock it (non-blocking); retry when the file was replaced meanwhile."""
    path = root / LOCK_NAME
    for _ in range(20):
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise _not_writable(root, e) from None
            if e.errno in (errno.EEXIST, errno.ENOTDIR):  # the workspace path is a file: say so, not "File exists"
                check_folder(root)
            raise
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    raise WorkspaceBusy(root, read_holder(root) or {}) from None
            else:  # pragma: no cover - no flock: trust a live pid in the file
                old = read_holder(root)
                if old and old.get("host") == socket.gethostname() and pid_alive(old.get("pid")):
                    raise WorkspaceBusy(root, old)
            try:  # the holder before us may have removed the file between our open and our flock: retry
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)
    raise WorkspaceError(f"could not take the lock {path}: it keeps changing. Is another alnb starting there?")


def acquire(root, command: str = "", log=None) -> dict:
    """Take the lock of workspace ``root`` (created if missing) for this process; returns the holder record.

    Raises :class:`WorkspaceBusy` when another live process holds it and :class:`WorkspaceError` when the folder
    cannot be written.  A stale lock (its process is gone) is taken over, and ``log`` (if given) is told.
    """
    root = Path(root).expanduser().resolve()
    key = str(root)
    with _guard:
        if key in _held:
            _held[key]["count"] += 1
            return _held[key]["holder"]
        inherited = _env_tokens().get(key)
        if inherited is not None:
            h = read_holder(root)
            if h and h.get("token") == inherited:  # our parent process holds it for us
                _held[key] = {"count": 1, "fd": None, "token": inherited, "holder": h}
                return h
        created = not root.exists()
        fd = _open_locked(root)
        try:
            old = read_holder(root)
            if old and log:
                log(f"[alnb] took over a stale lock of {root}: pid {old.get('pid')} on {old.get('host')} "
                    f"({old.get('command') or 'unknown command'}, since {old.get('since')}) is no longer running.")
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                      "since": datetime.now(timezone.utc).isoformat(timespec="seconds"), "token": uuid.uuid4().hex}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
            os.chmod(root / LOCK_NAME, 0o666 & ~_UMASK)
        except BaseException:
            os.close(fd)
            raise
        _held[key] = {"count": 1, "fd": fd, "token": holder["token"], "holder": holder, "created": created}
        _set_env(key, holder["token"])
        return holder


def release(root):
    """Give back one level of the lock (the last one removes the lock file and unlocks it)."""
    key = str(Path(root).expanduser().resolve())
    with _guard:
        ent = _held.get(key)
        if ent is None:
            return
        ent["count"] -= 1
        if ent["count"] > 0:
            return
        del _held[key]
        fd = ent["fd"]
        if fd is None:  # inherited from the parent: the parent releases it
            return
        _set_env(key, None)
        try:  # remove the file while still holding the flock (a waiter re-checks the inode, see _open_locked)
            (Path(key) / LOCK_NAME).unlink(missing_ok=True)
        except OSError:
            pass
        finally:
            if fcntl is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            if ent.get("created"):  # a step that failed before writing anything leaves no empty workspace behind
                with contextlib.suppress(OSError):
                    Path(key).rmdir()


def is_held(root) -> bool:
    """True when this process holds the lock of ``root``."""
    return str(Path(root).expanduser().resolve()) in _held


@contextlib.contextmanager
def workspace_lock(root, command: str = "", log=None):
    """``with workspace_lock(ws.root, "alnb run"):`` -- hold the workspace lock for the block (re-entrant)."""
    acquire(root, command, log=log)
    try:
        yield
    finally:
        release(root)


def locked(func):
    """Decorator: run ``func`` under the lock of the workspace given as its first argument (a Workspace or a path)."""
    sig = inspect.signature(func)
    first = next(iter(sig.parameters))

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        ws = sig.bind_partial(*args, **kwargs).arguments.get(first)
        root = getattr(ws, "root", ws)
        if root is None:
            return func(*args, **kwargs)
        with workspace_lock(root, command=func.__qualname__):
            return func(*args, **kwargs)

    return wrapper
