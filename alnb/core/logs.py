"""Training logs folded into a file: ultralytics' argument dump, layer table, per-epoch lines and progress bars go to
``<workspace>/.../<name>.log``, not into a notebook cell or the terminal.  The notebooks print a short summary
afterwards (:func:`alnb.ui.display.training_summary`); ``alnb run`` / ``alnb study`` keep their own ``[alnb]`` lines
on the terminal (``echo``) and show one progress bar.  Pure plumbing: nothing here computes a number."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from pathlib import Path


class _Echo(io.TextIOBase):
    """A stream that keeps everything in ``buf`` and also passes the whole lines that start with ``prefix`` to
    ``out`` (the terminal the block would have printed to)."""

    def __init__(self, buf: io.StringIO, out, prefix: str):
        super().__init__()
        self.buf, self.out, self.prefix, self.partial = buf, out, prefix, ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.buf.write(s)
        self.partial += s
        while "\n" in self.partial:
            line, self.partial = self.partial.split("\n", 1)
            if line.lstrip("\r").startswith(self.prefix):
                self.out.write(line.lstrip("\r") + "\n")
                self.out.flush()
        return len(s)

    def flush(self):
        self.out.flush()


class FoldedLog:
    """Everything printed or logged inside the ``with`` block goes to ``path`` (ultralytics' argument dump, layer
    table and per-epoch lines, progress bars), not into the cell or the terminal; :attr:`lines` counts them.
    ``echo``: lines that start with it (e.g. ``"[alnb]"``: a step's own messages, a wait for CPU cores) are shown as
    well.  The file is written when the block ends, also when it ends with an error -- unless the log folder did not
    exist yet (the very first step failed, e.g. a missing dataset: no workspace is left behind)."""

    def __init__(self, path, echo: str | None = None):
        self.path = Path(path)
        self.echo = echo
        self.lines = 0

    def __enter__(self):
        self._had_folder = self.path.parent.is_dir()
        self.buf = io.StringIO()
        target = _Echo(self.buf, sys.stdout, self.echo) if self.echo else self.buf
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(target))
        self._stack.enter_context(contextlib.redirect_stderr(self.buf))
        self._streams = []
        for name in ("ultralytics", "alnb"):
            for h in logging.getLogger(name).handlers:
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    old = h.stream
                    if getattr(old, "closed", False):  # setStream would flush it and raise, leaving stdout redirected
                        h.stream = target  # (a stream closed since the logger was made, e.g. a finished test's)
                    else:
                        h.setStream(target)
                    self._streams.append((h, old))
        return self

    def __exit__(self, *exc):
        for h, old in self._streams:
            h.setStream(old)
        self._stack.close()
        text = self.buf.getvalue().replace("\r", "\n")
        self.lines = len([ln for ln in text.splitlines() if ln.strip()])
        if exc[0] is not None and not self._had_folder:
            return False  # the very first step failed (a missing dataset): leave no folder behind
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(text)
        return False


def folded_log(path, echo: str | None = None) -> FoldedLog:
    """``with folded_log(ws.root / "runs" / "CAL2.log"): train(...)``: the log goes to the file (see
    :class:`FoldedLog`)."""
    return FoldedLog(path, echo)


def quiet(path, verbose: bool = False, echo: str = "[alnb]"):
    """The CLI's steps: :func:`folded_log` with ``echo``, or (``verbose``) nothing folded at all."""
    return contextlib.nullcontext() if verbose else folded_log(path, echo)
