"""Notebook 03 in a real browser: JupyterLab on 127.0.0.1 + the system Chromium driven by Playwright.

Runs all cells, drags the medium|hard slider to the right end and the easy|medium slider to the left end with the
mouse (the ends are the non-failed scores' range), checks the line under each slider that says what it changes
(medium|hard leaves GT2 as it is under the study rule), that the histogram sits right above the sliders, that the
predicted hours read in minutes below an hour, that the counts, the GT2 size and the cost line on screen
are the ones :class:`alnb.ui.widgets.DifficultyController` computes for the thresholds the kernel ended up with,
pages through a tier with the "next" button, clicks Commit GT2 and checks manifest.csv; no "Error displaying
widget", no traceback; every figure of notebooks 00-03 shown at 100 % (not scaled down); notebook 02's table
interactive when trusted ("Showing 1 to 10 of 24 entries", sorted by a click) and a static preview with the row
count when not; ``report.md`` rendered in JupyterLab's Markdown preview with no broken link or image, no emoji, no
``mailto:`` and no machine path.  Screenshots of 01-04 and the report are kept in ``test-artifacts/browser/`` (or
``$ALNB_SCREENSHOTS``).

Notebook 07 (label the rest) live: the review-cut slider dragged with the mouse; the hours and residual-error text on
screen equal :class:`alnb.ui.widgets.ReviewController`'s for the value the kernel ended at; Accept writes that cut.

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
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"defaultViewers": {"markdown": "Markdown Preview"}},
}
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"


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
    # `python -m jupyterlab`, not `jupyter lab`: the latter execs the jupyter-lab script, whose shebang may name another
    # interpreter (a copied venv), and the kernels would then import that interpreter's alnb
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
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
    """Keep the screenshots as test artefacts: ``$ALNB_SCREENSHOTS/<name>/``, by default ``test-artifacts/browser/``
    in the repository (git-ignored), to look at after the run."""
    dest = Path(os.environ.get("ALNB_SCREENSHOTS") or ARTIFACTS)
    (dest / name).mkdir(parents=True, exist_ok=True)
    for f in shots:
        shutil.copy(f, dest / name / f.name)


def _drag(page, slider, frac: float) -> str:
    """Drag ``slider``'s handle with the mouse to ``frac`` of its track (0 = left end, 1 = right end, a little past
    it so the handle lands on the end); returns the readout.  The drag itself is retried if the handle did not move."""
    readout0 = slider.locator(".widget-readout").inner_text()
    for _ in range(3):
        slider.scroll_into_view_if_needed()
        page.wait_for_timeout(300)  # let the output area settle before measuring where the handle is
        track, handle = slider.locator(".noUi-base").bounding_box(), slider.locator(".noUi-handle").bounding_box()
        x0, y0 = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(track["x"] + frac * track["width"] + (20 if frac >= 1 else -20 if frac <= 0 else 0), y0,
                        steps=12)
        page.mouse.up()
        if slider.locator(".widget-readout").inner_text() != readout0:
            break
    return slider.locator(".widget-readout").inner_text()


def _wait_text(page, selector: str, old: str, what: str, shot):
    """Wait until the text of ``selector`` differs from ``old`` (a kernel callback updated it)."""
    try:
        page.wait_for_function("""([sel, old]) => {
            const s = document.querySelector(sel);
            return s && s.textContent.trim() !== old;
        }""", arg=[selector, old.strip()], timeout=60_000)
    except Exception:
        page.screenshot(path=str(shot))
        raise AssertionError(f"{what}: {selector} still reads {old!r} 60 s later (screenshot {shot})") from None


def _images_unscaled(page, skip: str | None = None) -> list:
    """(natural width, shown width) of every figure image in the outputs (a 100 % view shows them 1:1), except in
    code cells whose source contains ``skip``."""
    return page.evaluate("""(skip) => [...document.querySelectorAll('.jp-CodeCell')]
        .filter(c => !skip || !c.querySelector('.jp-InputArea').textContent.includes(skip))
        .flatMap(c => [...c.querySelectorAll('.jp-OutputArea-output img')])
        .filter(i => i.naturalWidth > 0).map(i => [i.naturalWidth, i.getBoundingClientRect().width])""", skip)


def test_notebook_03_in_the_browser(tmp_path, lab, browser, tmp_path_factory):
    import papermill

    from alnb.ui.notebooks import NOTEBOOK_DIR
    from alnb.ui.widgets import DifficultyController
    from alnb.core.workspace import Workspace

    url, token, root = lab
    built = build(tmp_path_factory.getbasetemp() / "notebooks-shared")
    ws_dir = root / "ws"
    shutil.copytree(built["workspace"], ws_dir)
    papermill.execute_notebook(str(NOTEBOOK_DIR / "03_select_gt2.ipynb"), str(root / "03_select_gt2.ipynb"),
                               parameters={"workspace": str(ws_dir), "profile": "smoke", "n_thumbs": 4,
                                           "interactive": True}, prepare_only=True, kernel_name="python3")
    for name in ("00_setup", "01_train_gt1", "02_autolabel", "04_random_control"):  # executed copies, with outputs
        shutil.copy(built["executed"][name], root / f"{name}.ipynb")

    page = _open(browser, url, token, "03_select_gt2.ipynb")
    _run_all(page, tmp_path / "notebook03_run_all_failed.png")
    page.wait_for_selector(".alnb-snapshot")
    before = _snapshot_counts(page)
    assert before["status"] == "committed"  # the "Commit GT2" cell committed the thresholds on screen
    ws = Workspace.open(ws_dir)
    default = DifficultyController.from_workspace(ws)
    assert {k: before[k] for k in default.counts} == default.counts and before["gt2_size"] == default.gt2_size

    lo, hi = default.range
    pool = len(default.scores)
    effect_hard = page.locator(".alnb-effect-hard").inner_text()
    assert "stays the same" in effect_hard and "decides GT2" in page.locator(".alnb-effect-medium").inner_text()
    assert f"{default.gt2_size} of {pool} POOL images" in page.locator(".alnb-snapshot").inner_text()
    hours = page.locator(".alnb-snapshot .alnb-cost-hours").inner_text()  # predicted, from CAL1's VAL1 P/R
    assert re.fullmatch(r"\d+\.\d h|\d+ min|< 1 min", hours) and hours != "0.0 h", hours
    # the histogram sits right above the sliders: both in view together, no scrolling after a drag
    hist = page.locator(".alnb-snapshot img").bounding_box()
    s_medium_box = page.locator(".widget-slider", has_text="easy | medium").bounding_box()
    assert 0 <= s_medium_box["y"] - (hist["y"] + hist["height"]) < 200, (hist, s_medium_box)

    # medium|hard to the right end of its track: the non-failed scores' maximum; GT2 does not change
    s_hard = page.locator(".widget-slider", has_text="medium | hard")
    t_hard0 = page.locator(".alnb-snapshot .alnb-t-hard").inner_text()
    assert _drag(page, s_hard, 1.0) == format(hi, ".4g"), "the medium|hard slider does not end at the top score"
    _wait_text(page, ".alnb-snapshot .alnb-t-hard", t_hard0, "dragging medium | hard",
               tmp_path / "notebook03_hard.png")
    mid = _snapshot_counts(page)
    assert mid["gt2_size"] == before["gt2_size"]  # what the line under the slider says
    assert "stays the same" in page.locator(".alnb-effect-hard").inner_text()

    # easy|medium to the left end: the non-failed scores' minimum; every scored image goes to GT2
    slider = page.locator(".widget-slider", has_text="easy | medium")
    dragged = _drag(page, slider, 0.0)
    assert dragged == format(lo, ".4g"), "the easy|medium slider does not start at the lowest non-failed score"
    _wait_text(page, ".alnb-snapshot .alnb-gt2-size", str(before["gt2_size"]), "dragging easy | medium",
               tmp_path / "notebook03_drag_failed.png")
    after = _snapshot_counts(page)
    readout = float(slider.locator(".widget-readout").inner_text())
    page.screenshot(path=str(tmp_path / "notebook03_after_drag.png"))
    assert after["status"].startswith("not committed") and page.locator(".widget-html", has_text="Committed").count() == 0
    assert f"{after['gt2_size']} of {pool} POOL images" in page.locator(".alnb-snapshot").inner_text()
    assert after["easy"] == 0

    # page through the medium tier's thumbnails with the "next" button
    page.locator(".widget-dropdown", has_text="thumbnails").locator("select").select_option("medium")
    _wait_text(page, ".alnb-page", "", "choosing the medium tier", tmp_path / "notebook03_tier.png")
    page.wait_for_function("() => document.querySelector('.alnb-page').textContent.includes('medium')")
    label0 = page.locator(".alnb-page").inner_text()
    img0 = page.locator(".widget-output img").last.get_attribute("src")
    page.locator("button", has_text="next").click()
    _wait_text(page, ".alnb-page", label0, "clicking next", tmp_path / "notebook03_next.png")
    page.wait_for_function("(s) => [...document.querySelectorAll('.widget-output img')].pop().src !== s", arg=img0)
    paged = page.locator(".alnb-page").inner_text()
    page.locator(".widget-output img").last.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "notebook03_page2.png"))

    page.locator("button", has_text="Commit GT2").click()
    page.wait_for_selector(".widget-html:has-text('Committed')")
    page.wait_for_function("() => document.querySelector('.alnb-snapshot .alnb-commit-status').textContent === 'committed'")
    page.locator(".alnb-snapshot").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "notebook03_committed.png"))

    # the kernel's threshold is the one recorded by the commit; the controller's numbers for it are what we saw
    sel = json.loads((ws_dir / "metrics" / "selection.json").read_text())
    assert sel["t_medium"] == pytest.approx(readout, rel=1e-3) and sel["t_medium"] != default.t_medium
    assert (sel["t_medium"], sel["t_hard"]) == pytest.approx((lo, hi), rel=1e-3)  # the ends of the tracks
    want = DifficultyController.from_workspace(ws, t_medium=sel["t_medium"], t_hard=sel["t_hard"], page_size=4)
    assert paged == want.page_text("medium", 1) and want.pages("medium") >= 2
    assert {k: after[k] for k in want.counts} == want.counts and after["gt2_size"] == want.gt2_size
    assert after["gt2_size"] != before["gt2_size"]
    assert page.locator(".alnb-snapshot .alnb-cost").inner_text().strip() == \
        re.sub("<[^>]+>", "", want.cost_html()).strip()
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

    # notebooks 00, 01, 02, 04 (executed headless, signed by run_notebook) as a person opens them: figures once,
    # unscaled, no errors; screenshots kept
    for name in ("00_setup", "01_train_gt1", "02_autolabel", "04_random_control"):
        p = _open(browser, url, token, f"{name}.ipynb")
        p.wait_for_selector(".jp-OutputArea-output img")
        shots = []
        for k, img in enumerate(p.locator(".jp-OutputArea-output img").all()):
            img.scroll_into_view_if_needed()
            shots.append(tmp_path / f"{name}_figure{k}.png")
            img.screenshot(path=str(shots[-1]))
        p.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
        _keep(shots, name)
        if name != "04_random_control":  # 04 shows the saved 150-dpi PNG files (report figures), at their size
            shown = _images_unscaled(p, skip="study_plots")  # study_plots figures are checked elsewhere
            assert shown and all(abs(n - w) <= 1 for n, w in shown), (name, shown)
        assert not [t for t in _page_problems(p) if "Traceback" in t], name
        if name == "02_autolabel":  # trusted: the itables table is live, with every row, sortable
            info = p.locator(".dt-info").first
            info.wait_for()
            assert re.search(r"Showing 1 to 10 of 24 entries", info.inner_text()), info.inner_text()
            table = p.locator(".dt-container").first
            first = table.locator("tbody tr").first.inner_text()
            table.locator("thead th", has_text="score").first.click()  # hardest first -> by score, ascending
            p.wait_for_function("""(t) => document.querySelector('.dt-container tbody tr').innerText !== t""",
                                arg=first, timeout=30_000)
            col = [c.strip() for c in table.locator("thead th").all_inner_texts()].index("score")
            shown = [float(r.locator("td").nth(col).inner_text()) for r in table.locator("tbody tr").all()]
            assert len(shown) == 10 and shown == sorted(shown), shown
            p.screenshot(path=str(tmp_path / "02_table_sorted.png"))
        p.close()

    # untrusted (another machine, or not signed): the table's static preview says how many rows it leaves out
    nb02 = json.loads((root / "02_autolabel.ipynb").read_text())
    nb02["metadata"]["alnb_unsigned_copy"] = True  # other content: the notary's signature no longer applies
    (root / "02_untrusted.ipynb").write_text(json.dumps(nb02))
    p = _open(browser, url, token, "02_untrusted.ipynb")
    p.wait_for_selector(".jp-OutputArea-output img")
    preview = p.locator(".jp-OutputArea-output", has_text="more rows not shown")
    assert preview.count() == 1 and "(14 more rows not shown)" in preview.inner_text()
    assert p.locator(".dt-info").count() == 0
    p.close()

    # report.md in JupyterLab's Markdown preview: every image and link resolves, no mailto:, no emoji, no paths
    p = _open_markdown(browser, url, token, "ws/report.md")
    md = p.locator(".jp-RenderedMarkdown").last
    text = md.inner_text()
    assert "Verdict" in text and "For reference, not measured here" in text
    assert str(root) not in text and str(built["workspace"]) not in text and "/tmp/" not in text
    assert not re.search(r"[\U0001F000-\U0001FFFF\u2B00-\u2BFF\u2600-\u27BF]", text), "emoji / symbol glyphs"
    assert md.locator("a[href^='mailto:']").count() == 0 and "P@0.25" in text
    images = md.locator("img").evaluate_all("els => els.map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert images and all(w > 0 for _, w in images), [s for s, w in images if not w]
    assert sum("tier_" in s for s, _ in images) >= 4  # the tier bars, drawn as SVG
    hrefs = md.locator("a[href]").evaluate_all("els => els.map(a => a.href)")
    status = p.evaluate("async (hs) => Promise.all(hs.map(h => fetch(h).then(r => r.status)))", hrefs)
    assert hrefs and all(st == 200 for st in status), list(zip(hrefs, status))
    p.screenshot(path=str(tmp_path / "report_md.png"), full_page=True)
    p.close()
    _keep(sorted(tmp_path.glob("*.png")), "all")
    print("screenshots:", tmp_path)


def test_notebook_07_review_slider_in_the_browser(tmp_path, lab, browser, tmp_path_factory):
    """Notebook 07 live: drag the review-cut slider with the mouse; the hours and residual-error text on screen are the
    ones :class:`alnb.ui.widgets.ReviewController` computes for the value the kernel ended at; Accept writes that cut."""
    import papermill

    from alnb.ui.notebooks import NOTEBOOK_DIR
    from alnb.ui.widgets import ReviewController
    from alnb.core.workspace import Workspace

    url, token, root = lab
    built = build(tmp_path_factory.getbasetemp() / "notebooks-shared")
    ws_dir = root / "ws"
    shutil.copytree(built["workspace_review"], ws_dir)
    papermill.execute_notebook(str(NOTEBOOK_DIR / "07_label_the_rest.ipynb"), str(root / "07_label_the_rest.ipynb"),
                               parameters={"workspace": str(ws_dir), "T": 4, "conf": 0.001, "interactive": True},
                               prepare_only=True, kernel_name="python3")
    page = _open(browser, url, token, "07_label_the_rest.ipynb")
    _run_all(page, tmp_path / "notebook07_run_all_failed.png")
    page.wait_for_selector(".alnb-review .alnb-review-hours")
    box = page.locator(".alnb-review")
    reviewed0 = int(box.get_attribute("data-reviewed"))
    hours0 = page.locator(".alnb-review .alnb-review-hours").inner_text()
    slider = page.locator(".widget-slider", has_text="review share")
    frac = 0.3 if float(box.get_attribute("data-value")) > 0.6 else 0.8
    _drag(page, slider, frac)
    _wait_text(page, ".alnb-review .alnb-review-hours", hours0, "dragging the review cut",
               tmp_path / "notebook07_drag_failed.png")
    value = float(box.get_attribute("data-value"))  # the value the kernel's controller ended at
    readout = float(slider.locator(".widget-readout").inner_text())
    hours = page.locator(".alnb-review .alnb-review-hours").inner_text()
    residual = page.locator(".alnb-review .alnb-review-residual").inner_text()
    page.locator(".alnb-review").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "notebook07_after_drag.png"))
    want = ReviewController.from_workspace(Workspace.open(ws_dir), value=value)
    assert abs(readout - value) <= 5e-4 and abs(value - frac) < 0.2, (readout, value, frac)
    assert int(box.get_attribute("data-reviewed")) == want.reviewed != reviewed0
    assert hours == want.hours_text() and residual == want.residual_text()
    assert "0.0 h" not in hours and re.search(r"\d+\.\d h| min", hours), hours
    assert f"accept {want.n - want.reviewed} images unreviewed" in residual and "missed boxes" in residual
    # the curve beside the slider is drawn for that cut (one image in the widget's output)
    assert page.locator(".widget-output img").count() >= 1
    page.locator("button", has_text="Accept the rest").click()
    page.wait_for_selector(".alnb-review-accepted")
    rec = json.loads((ws_dir / "metrics" / "review_accept.json").read_text())
    assert rec["reviewed"] == want.reviewed and rec["n_accepted"] == want.n - want.reviewed
    assert not _page_problems(page)
    page.screenshot(path=str(tmp_path / "notebook07_accepted.png"))
    _keep(sorted(tmp_path.glob("notebook07_*.png")), "07_label_the_rest")
    page.close()


def _open_markdown(browser, url, token, path):
    """A new page with ``path`` open in the Markdown Preview (the default viewer set in :data:`LAB_SETTINGS`)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/lab/workspaces/{secrets.token_hex(4)}/tree/{path}?token={token}&reset")
    page.wait_for_selector(".jp-RenderedMarkdown h1")
    page.wait_for_function("""() => [...document.querySelectorAll('.jp-RenderedMarkdown img')]
        .every(i => i.complete)""")
    return page
