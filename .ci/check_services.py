"""Start each service the test suite needs once, before ``make test``, and say by name what failed and the fix.

Run by ``.ci/run`` with ``.venv/bin/python`` after the installs: Chromium (driven by Playwright, as
tests/test_browser.py does), Label Studio from ``.venv-ls`` (started on a free loopback port with a fresh data folder,
until its API answers, as tests/test_labelstudio.py does) and Ray (a local 1-CPU instance runs one task, as
tests/test_streaming.py does). Exit 1 if any of them fails: a broken service is one named line here, not a skipped
or erroring test at the end of the suite.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LS_BIN = ROOT / ".venv-ls" / "bin" / "label-studio"
LS_TIMEOUT = 420  # a fresh database is migrated on the first start: 1-2 min on 2 cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise RuntimeError("no chromium on PATH. Fix: apt-get install -y chromium (.ci/run does this as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu",
                                                                "--disable-background-networking"])
        page = browser.new_page()
        page.set_content("<p id=x>ok</p>")
        text = page.inner_text("#x")
        browser.close()
    if text != "ok":
        raise RuntimeError(f"Chromium rendered {text!r} instead of 'ok'")
    return exe


def check_labelstudio() -> str:
    if not LS_BIN.is_file():
        raise RuntimeError(f"{LS_BIN.relative_to(ROOT)} is missing. Fix: make labelstudio "
                           "(installs requirements/labelstudio.txt into .venv-ls)")
    with tempfile.TemporaryDirectory(prefix="alnb-ls-check-") as tmp:
        port, token = _free_port(), secrets.token_hex(20)
        log = Path(tmp) / "labelstudio.log"
        env = {**os.environ, "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
               "LABEL_STUDIO_BASE_DATA_DIR": str(Path(tmp) / "data")}
        cmd = [str(LS_BIN), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(Path(tmp) / "data"), "--username", "check@alnb.local", "--password",
               "alnb-check-pw", "--user-token", token, "--enable-legacy-api-token"]
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < LS_TIMEOUT:
                if proc.poll() is not None:
                    tail = log.read_text()[-2500:]
                    raise RuntimeError(f"Label Studio exited at start-up (code {proc.returncode}). Its log ends:\n"
                                       f"{tail}\nFix: a dependency of .venv-ls moved or broke -- pin it in "
                                       "requirements/labelstudio.in, run `make lock`, then `rm -rf .venv-ls && "
                                       "make labelstudio`")
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/projects",
                                             headers={"Authorization": f"Token {token}"})
                try:
                    with urllib.request.urlopen(req, timeout=10) as f:
                        if f.status == 200:
                            return f"answered in {time.monotonic() - t0:.0f} s"
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
                time.sleep(2)
            raise RuntimeError(f"Label Studio did not answer in {LS_TIMEOUT} s; log: {log.read_text()[-2500:]}")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def check_ray() -> str:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data  # noqa: F401  (the engine uses Ray Data)
    except ImportError as e:
        raise RuntimeError(f"{e}. Fix: make ray (pip install -c requirements/main.txt -e '.[ray]')") from e
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        value = ray.get(ray.remote(lambda x: x + 1).remote(41), timeout=120)
    finally:
        ray.shutdown()
    if value != 42:
        raise RuntimeError(f"a Ray task returned {value!r} instead of 42")
    return f"ray {ray.__version__}"


def main() -> int:
    failed = []
    for name, check in [("Chromium", check_chromium), ("Label Studio", check_labelstudio), ("Ray", check_ray)]:
        t0 = time.monotonic()
        try:
            what = check()
            print(f"[services] {name}: ok ({what}; {time.monotonic() - t0:.0f} s)", flush=True)
        except Exception as e:  # noqa: BLE001 -- every failure is reported by name, then CI stops
            failed.append(name)
            print(f"[services] {name}: FAILED -- {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    if failed:
        print(f"[services] {', '.join(failed)} failed to start: the tests that need them would not run. "
              "Fix the above before `make test`.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
