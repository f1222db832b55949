"""Notebook 03 in a real browser: JupyterLab on 127.0.0.1 + the system Chromium driven by Playwright.

Runs all cells, drags the easy|medium slider with the mouse, checks that the counts and the GT2 size on screen are
the ones :class:`alnb.widgets.DifficultyController` computes for the threshold the kernel ended up with, clicks
Commit GT2 and checks manifest.csv; no "Error displaying widget", no traceback; every figure of notebooks 00, 02
and 03 shown at 100 % (not scaled down).  Screenshots go to the test's temp folder.

Needs ``chromium`` on PATH (Debian: ``apt-get install chromium``; ``.ci/run`` installs it) and the ``playwright``
package (no browser download: it drives the system binary).  Skipped only when Chromium is not installed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from notebook_ws import build

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y "
                                                          "chromium; .ci/run does this)")]
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 120_000  # cells that train (CAL2, smoke profile) take ~10-30 s on 2 busy cores
LAB_SETTINGS = {  # no pop-ups over the notebook, every cell in the DOM (no virtual scrolling)
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                      "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving ``tmp_path/root`` on a free loopback port with a token; yields ``(url, root)``."""
    root, settings = tmp_path / "root", tmp_path / "lab-settings"
    root.mkdir()
    for rel, value in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # kernels get the inline backend, as users do
    env.update(JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
               YOLO_OFFLINE="1")
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
                             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                             "--LabApp.news_url=", "--LabServerApp.announcements_url="],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        br = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield br
        finally:
            br.close()


def _open(browser, url, token, name):
    """A new page with only notebook ``name`` open (a fresh Lab workspace: no tabs restored), kernel idle."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/lab/workspaces/{secrets.token_hex(4)}/tree/{name}?token={token}&reset")
    page.wait_for_selector(f".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel:text-is('{name}')")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")
    # Under load Lab may ask which kernel to start (its kernel-spec list came late): answer as a person would
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not (page.locator(".jp-StatusBar-TextItem", has_text="Python 3 (ipykernel) | Idle").count()
               and page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count()):
        dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
        if dialog.count():
            try:
                dialog.locator("select").select_option(label="Python 3 (ipykernel)", timeout=5_000)
            except Exception:  # noqa: BLE001 - the preselected choice is the notebook's own kernel
                pass
            dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: the kernel never became idle")
        page.wait_for_timeout(500)
    return page


def _run_all(page, shot):
    """Run > Run All Cells, wait until every code cell has run; on a timeout save ``shot`` and say which cell.

    The menu command is retried if no cell starts within 20 s (right after a kernel starts, Lab can drop it)."""
    for attempt in range(3):
        dialogs = page.locator(".jp-Dialog").all_inner_texts()
        if dialogs:
            page.screenshot(path=str(shot))
            raise AssertionError(f"a dialog is open: {dialogs} (screenshot {shot})")
        page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click(timeout=20_000)
        page.keyboard.press("Escape")
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").click(timeout=20_000)
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click(timeout=20_000)
        try:
            page.wait_for_function("""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                .some(e => e.textContent.trim() !== '[ ]:')""", timeout=30_000)
            break
        except Exception:
            page.screenshot(path=str(shot.with_name(f"{shot.stem}_attempt{attempt}.png")))
    # every code cell has an execution count (no "[*]", no "[ ]")
    try:
        page.wait_for_function("""() => {
            const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
            return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t));
        }""")
    except Exception:
        page.screenshot(path=str(shot))
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        raise AssertionError(f"Run All did not finish: prompts {prompts}; outputs {_page_problems(page)}; "
                             f"screenshot {shot}") from None


def _page_problems(page) -> list:
    """'Error displaying widget' or a traceback anywhere in the notebook's outputs."""
    texts = page.locator(".jp-OutputArea-output").all_inner_texts()
    return [t[:300] for t in texts if "Error displaying widget" in t or "Traceback" in t]


def _snapshot_counts(page) -> dict:
    snap = page.locator(".alnb-snapshot")
    out = {k: int(snap.locator(f".alnb-count-{k}").inner_text()) for k in ("easy", "medium", "hard", "failed")}
    out["gt2_size"] = int(snap.locator(".alnb-gt2-size").inner_text())
    out["status"] = snap.locator(".alnb-commit-status").inner_text()
    return out


def _kernels_shut_down(url, token):
    """Shut down every kernel (REST API): a page opened next starts a new kernel that knows no widget models."""
    req = urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=10)
    for k in json.loads(req.read()):
        urllib.request.urlopen(urllib.request.Request(f"{url}/api/kernels/{k['id']}?token={token}",
                                                      method="DELETE"), timeout=30)


def _keep(shots, name):
    """Copy the screenshots to ``$ALNB_SCREENSHOTS/<name>/`` when that is set (to look at them after the run)."""
    dest = os.environ.get("ALNB_SCREENSHOTS")
    if dest:
        (Path(dest) / name).mkdir(parents=True, exist_ok=True)
        for f in shots:
            shutil.copy(f, Path(dest) / name / f.name)


def _images_unscaled(page, skip: str | None = None) -> list:
    """(natural width, shown width) of every figure image in the outputs (a 100 % view shows them 1:1), except in
    code cells whose source contains ``skip``."""
    return page.evaluate("""(skip) => [...document.querySelectorAll('.jp-CodeCell')]
        .filter(c => !skip || !c.querySelector('.jp-InputArea').textContent.includes(skip))
        .flatMap(c => [...c.querySelectorAll('.jp-OutputArea-output img')])
        .filter(i => i.naturalWidth > 0).map(i => [i.naturalWidth, i.getBoundingClientRect().width])""", skip)


def test_notebook_03_in_the_browser(tmp_path, lab, browser, tmp_path_factory):
    import papermill

    from alnb.notebooks import NOTEBOOK_DIR
    from alnb.widgets import DifficultyController
    from alnb.workspace import Workspace

    url, token, root = lab
    built = build(tmp_path_factory.getbasetemp() / "notebooks-shared")
    ws_dir = root / "ws"
    shutil.copytree(built["workspace"], ws_dir)
    papermill.execute_notebook(str(NOTEBOOK_DIR / "03_select_gt2.ipynb"), str(root / "03_select_gt2.ipynb"),
                               parameters={"workspace": str(ws_dir), "profile": "smoke", "n_thumbs": 4,
                                           "interactive": True}, prepare_only=True, kernel_name="python3")
    for name in ("00_setup", "02_autolabel"):  # executed copies, with their outputs, to look at
        shutil.copy(built["executed"][name], root / f"{name}.ipynb")

    page = _open(browser, url, token, "03_select_gt2.ipynb")
    _run_all(page, tmp_path / "notebook03_run_all_failed.png")
    page.wait_for_selector(".alnb-snapshot")
    before = _snapshot_counts(page)
    assert before["status"] == "committed"  # the "Commit GT2" cell committed the thresholds on screen
    ws = Workspace.open(ws_dir)
    default = DifficultyController.from_workspace(ws)
    assert {k: before[k] for k in default.counts} == default.counts and before["gt2_size"] == default.gt2_size

    # drag the easy|medium handle with the mouse to 20 % (or 80 %) of the track, away from where it is
    slider = page.locator(".widget-slider", has_text="easy | medium")
    readout0 = slider.locator(".widget-readout").inner_text()
    for _ in range(3):  # the mouse drag itself (not the callback) is retried if the handle did not move
        slider.scroll_into_view_if_needed()
        page.wait_for_timeout(300)  # let the output area settle before measuring where the handle is
        track, handle = slider.locator(".noUi-base").bounding_box(), slider.locator(".noUi-handle").bounding_box()
        x0, y0 = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
        frac = 0.2 if x0 > track["x"] + track["width"] / 2 else 0.8
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(track["x"] + frac * track["width"], y0, steps=12)
        page.mouse.up()
        if slider.locator(".widget-readout").inner_text() != readout0:
            break
    dragged = slider.locator(".widget-readout").inner_text()
    assert dragged != readout0, "the mouse did not move the slider handle"
    try:
        page.wait_for_function("""(g) => {
            const s = document.querySelector('.alnb-snapshot .alnb-gt2-size');
            return s && s.textContent.trim() !== String(g);
        }""", arg=before["gt2_size"], timeout=60_000)
    except Exception:
        page.screenshot(path=str(tmp_path / "notebook03_drag_failed.png"))
        raise AssertionError(f"GT2 size on screen still {before['gt2_size']} 60 s after dragging the easy|medium "
                             f"slider from {readout0} to {dragged} (default "
                             f"{default.t_medium:.4g}): the slider callback did not update the explorer") from None
    after = _snapshot_counts(page)
    readout = float(slider.locator(".widget-readout").inner_text())
    page.screenshot(path=str(tmp_path / "notebook03_after_drag.png"))
    assert after["status"].startswith("not committed") and page.locator(".widget-html", has_text="Committed").count() == 0

    page.locator("button", has_text="Commit GT2").click()
    page.wait_for_selector(".widget-html:has-text('Committed')")
    page.wait_for_function("() => document.querySelector('.alnb-snapshot .alnb-commit-status').textContent === 'committed'")
    page.locator(".alnb-snapshot").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "notebook03_committed.png"))

    # the kernel's threshold is the one recorded by the commit; the controller's numbers for it are what we saw
    sel = json.loads((ws_dir / "metrics" / "selection.json").read_text())
    assert sel["t_medium"] == pytest.approx(readout, rel=1e-3) and sel["t_medium"] != default.t_medium
    want = DifficultyController.from_workspace(ws, t_medium=sel["t_medium"], t_hard=sel["t_hard"])
    assert {k: after[k] for k in want.counts} == want.counts and after["gt2_size"] == want.gt2_size
    assert after["gt2_size"] != before["gt2_size"]
    m = Workspace.open(ws_dir)
    assert sorted(m.stems("GT2")) == sorted(want.selection) and len(m.stems("GT2")) == want.gt2_size
    assert sel["counts"] == want.counts
    assert not _page_problems(page)
    shown = _images_unscaled(page)
    assert shown and all(abs(n - w) <= 1 for n, w in shown), shown
    thumbs = page.locator(".widget-output img").last
    thumbs.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "notebook03_thumbnails.png"))

    # saved and reopened with a new kernel: the widgets are gone, the snapshot still shows the committed selection
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')")
    page.close()
    _kernels_shut_down(url, token)
    page = _open(browser, url, token, "03_select_gt2.ipynb")
    page.locator(".alnb-snapshot").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "notebook03_reopened.png"))
    reopened = _snapshot_counts(page)
    assert reopened == {**after, "status": "committed"}
    assert page.locator(".alnb-snapshot img").evaluate("i => i.naturalWidth") > 300
    page.close()

    # notebooks 00 and 02 (executed headless) as a person opens them: figures once, unscaled, no errors
    for name in ("00_setup", "02_autolabel"):
        p = _open(browser, url, token, f"{name}.ipynb")
        p.wait_for_selector(".jp-OutputArea-output img")
        shots = []
        for k, img in enumerate(p.locator(".jp-OutputArea-output img").all()):
            img.scroll_into_view_if_needed()
            shots.append(tmp_path / f"{name}_figure{k}.png")
            img.screenshot(path=str(shots[-1]))
        p.screenshot(path=str(tmp_path / f"{name}.png"))
        _keep(shots, name)
        shown = _images_unscaled(p, skip="study_plots")  # alnb.plots figures; study_plots is checked elsewhere
        assert shown and all(abs(n - w) <= 1 for n, w in shown), (name, shown)
        assert not [t for t in _page_problems(p) if "Traceback" in t], name
        p.close()
    _keep(sorted(tmp_path.glob("*.png")), "all")
    print("screenshots:", tmp_path)
