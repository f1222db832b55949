"""Lock files for the environments this project creates: write them (``make lock``) and check them (CI, tests).

Standard library only (``python3 requirements/lock.py check`` works before any venv exists).

* ``requirements/main.txt``        -- every package of ``.venv`` (alnb's runtime + ``dev`` + ``ray`` extras), exact
  versions; the Makefile installs with ``pip install -c requirements/main.txt -e ".[dev]"`` (and ``.[ray]``), so
  pip resolves nothing itself.
* ``requirements/labelstudio.txt`` -- every package of ``.venv-ls`` (``requirements/labelstudio.in``), exact versions,
  installed with ``pip install -r``.

``refresh`` builds each environment afresh in a temporary folder from the *ranges* (``pyproject.toml``,
``labelstudio.in``) with the machine's own pip, then writes ``pip freeze`` of it: the lock is what really installed
together, not a resolver's guess. Each lock's header records a hash of its inputs; ``check`` fails when an input
changed after the lock was written (a dependency added to ``pyproject.toml`` without ``make lock``) or when a locked
version no longer satisfies its range.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ModuleNotFoundError:  # a bare python3: pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
MAIN_LOCK = ROOT / "requirements" / "main.txt"
LS_IN = ROOT / "requirements" / "labelstudio.in"
LS_LOCK = ROOT / "requirements" / "labelstudio.txt"
MAIN_EXTRAS = ("dev", "ray")  # what .venv holds after `make test` + `make ray` (and so in CI)
HASH_LINE = re.compile(r"^# inputs-sha256: ([0-9a-f]{64})$", re.M)


def main_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """The requirement strings of alnb's runtime and the locked extras, in file order."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in MAIN_EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return reqs


def ls_requirements(path: Path = LS_IN) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def inputs_hash(reqs: list[str]) -> str:
    """A hash of the requirement strings (comments and formatting of the input file do not count)."""
    norm = sorted(str(Requirement(r)) for r in reqs)
    return hashlib.sha256(json.dumps(norm).encode()).hexdigest()


def read_lock(path: Path) -> tuple[str | None, dict[str, str]]:
    """(recorded inputs hash, {canonical name: version}) of a lock file."""
    text = path.read_text()
    m = HASH_LINE.search(text)
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise ValueError(f"{path}: '{line}' is not 'name==version' (write locks with `make lock`)")
        pins[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return (m.group(1) if m else None), pins


def problems(lock: Path, reqs: list[str], inputs: Path) -> list[str]:
    """Why ``lock`` does not match ``reqs`` (empty when it does)."""
    rel = lock.relative_to(ROOT) if lock.is_relative_to(ROOT) else lock
    if not lock.is_file():
        return [f"{rel} is missing: run `make lock`"]
    recorded, pins = read_lock(lock)
    out = []
    if recorded != inputs_hash(reqs):
        out.append(f"{rel} was written for other requirements than {inputs.name} has now: run `make lock` "
                   f"(then re-measure, docs/guide/installs.md)")
    for r in map(Requirement, reqs):
        name = canonicalize_name(r.name)
        if r.marker is not None and not r.marker.evaluate():
            continue
        if name not in pins:
            out.append(f"{rel}: {r.name} (required by {inputs.name}) is not locked: run `make lock`")
        elif r.specifier and not r.specifier.contains(pins[name], prereleases=True):
            out.append(f"{rel}: {r.name}=={pins[name]} does not satisfy '{r}' in {inputs.name}: run `make lock`")
    return out


def check() -> int:
    errs = problems(MAIN_LOCK, main_requirements(), PYPROJECT) + problems(LS_LOCK, ls_requirements(), LS_IN)
    for e in errs:
        print(f"lock: {e}", file=sys.stderr)
    if not errs:
        print("lock: requirements/main.txt and requirements/labelstudio.txt match their inputs")
    return 1 if errs else 0


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _freeze(venv: Path, exclude: set[str]) -> list[str]:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all", "--exclude-editable"],
                         check=True, capture_output=True, text=True).stdout
    lines = []
    for line in out.splitlines():
        name = canonicalize_name(line.split("==")[0].split(" @ ")[0])
        if name in exclude or "==" not in line:
            continue
        lines.append(line)
    return sorted(lines, key=str.lower)


def _write(lock: Path, reqs: list[str], pins: list[str], what: str) -> None:
    head = [f"# {what}",
            f"# Written by `make lock` on {datetime.date.today()} (Python {platform.python_version()}, "
            f"{platform.system()} {platform.machine()}): exact versions of one fresh install; do not edit by hand.",
            f"# inputs-sha256: {inputs_hash(reqs)}"]
    lock.write_text("\n".join(head + pins) + "\n")
    print(f"wrote {lock.relative_to(ROOT)} ({len(pins)} packages)")


def refresh(which: str, python: str) -> int:
    with tempfile.TemporaryDirectory(prefix="alnb-lock-") as tmp:
        if which in ("main", "all"):
            venv = Path(tmp) / "main"
            _run([python, "-m", "venv", str(venv)])
            pip = [str(venv / "bin" / "python"), "-m", "pip"]
            _run(pip + ["install", "-q", "--upgrade", "pip"])
            _run(pip + ["install", "-q", "-e", f"{ROOT}[{','.join(MAIN_EXTRAS)}]"])
            _write(MAIN_LOCK, main_requirements(), _freeze(venv, {"alnb"}),
                   "alnb's .venv: runtime + dev + ray extras (pip install -c requirements/main.txt -e '.[dev]')")
        if which in ("labelstudio", "all"):
            venv = Path(tmp) / "ls"
            _run([python, "-m", "venv", str(venv)])
            pip = [str(venv / "bin" / "python"), "-m", "pip"]
            _run(pip + ["install", "-q", "--upgrade", "pip"])
            _run(pip + ["install", "-q", "-r", str(LS_IN)])
            _write(LS_LOCK, ls_requirements(), _freeze(venv, set()),
                   "Label Studio's .venv-ls (pip install -r requirements/labelstudio.txt)")
    return check()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="fail when a lock file no longer matches pyproject.toml / labelstudio.in")
    r = sub.add_parser("refresh", help="install the ranges afresh in a temporary venv and write the lock(s)")
    r.add_argument("which", nargs="?", default="all", choices=["all", "main", "labelstudio"])
    r.add_argument("--python", default=sys.executable, help="the interpreter the venvs are made with")
    a = ap.parse_args()
    sys.exit(check() if a.cmd == "check" else refresh(a.which, a.python))
