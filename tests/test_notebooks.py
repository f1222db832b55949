"""Each numbered notebook, executed headless with small parameters (smoke profile), as a person would see it:
every figure shown once (as an image, not as '<Figure ...>'), no traceback, a parameters cell papermill parses."""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import re
from pathlib import Path

import pandas as pd
import pytest

from alnb.ui.notebooks import NOTEBOOK_DIR
from alnb.core.workspace import Workspace
from notebook_ws import PARAMS, build

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    return build(tmp_path_factory.mktemp("notebooks"))


def _data(o, mime) -> str:
    v = o.get("data", {}).get(mime, "")
    return "".join(v) if isinstance(v, list) else v


def _outputs(path):
    nb = json.loads(path.read_text())
    return [(i, o) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" for o in c.get("outputs", [])]


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")))
def test_parameters_cell_is_literals_papermill_parses(name, caplog):
    import papermill

    src = NOTEBOOK_DIR / f"{name}.ipynb"
    cell = next(c for c in json.loads(src.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    names = []
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.unparse(node)
        ast.literal_eval(node.value)  # literals only: derived values belong in the next cell
        names.append(node.targets[0].id)
    with caplog.at_level(logging.WARNING, logger="papermill"):
        parsed = papermill.inspect_notebook(str(src))
    assert not [r.message for r in caplog.records if "Unable to parse" in r.message]
    assert list(parsed) == names
    assert set(PARAMS.get(name, {})) <= set(names)


@pytest.mark.parametrize("name", list(PARAMS))
def test_notebook_shows_each_figure_once_and_no_traceback(executed, name):
    outs = _outputs(executed["executed"][name])
    assert not [o for _, o in outs if o["output_type"] == "error"]
    stderr = "".join("".join(o["text"]) for _, o in outs if o["output_type"] == "stream" and o["name"] == "stderr")
    assert "Traceback" not in stderr
    pngs = [(i, hashlib.sha1(_data(o, "image/png").encode()).hexdigest()) for i, o in outs if _data(o, "image/png")]
    html_imgs = [(i, hashlib.sha1(_data(o, "text/html").split("base64,")[1].encode()).hexdigest()) for i, o in outs
                 if "base64," in _data(o, "text/html")]
    shown = [h for _, h in pngs + html_imgs]
    assert len(shown) == len(set(shown)), f"a figure is shown twice: {pngs + html_imgs}"
    as_text = [_data(o, "text/plain") for _, o in outs if "<Figure size" in _data(o, "text/plain")]
    assert not as_text, f"figures shown as text, not as images: {as_text}"
    expected = {"00_setup": 2, "01_train_gt1": 3, "02_autolabel": 4, "03_select_gt2": 1, "04_random_control": 4,
                "06_next_round": 2, "07_label_the_rest": 1}[name]
    assert len(shown) >= expected, (name, len(shown))


def test_notebooks_record_the_key_numbers(executed):
    ws = Workspace.open(executed["workspace"])
    counts = ws.tag_counts()
    assert (counts["VAL1"], counts["GT1"]) == (12, 12) and counts["POOL"] + counts["GT2"] + counts["CONTROL"] >= 24
    scores = pd.read_csv(ws.root / "scores.csv")
    assert len(scores) == 24 and scores["tier"].nunique() >= 2  # conf 0.001: the POOL spreads over the tiers
    sel = ws.load_json("selection")
    assert len(ws.stems("GT2")) == sel["counts"]["medium"] + sel["counts"]["hard"] + sel["counts"]["failed"]
    # notebook 03 in a headless run: the explorer's static snapshot (counts + histogram) stands in for the widget
    snap = [o for _, o in _outputs(executed["executed"]["03_select_gt2"])
            if "alnb-snapshot" in _data(o, "text/html")]
    assert len(snap) == 1 and f"<span class='alnb-gt2-size'>{len(ws.stems('GT2'))}</span>" in _data(snap[0], "text/html")
    # a per-class table never drops an all-n/m column silently
    text = "".join("".join(o.get("text", "")) for _, o in _outputs(executed["executed"]["03_select_gt2"]))
    html = "".join(_data(o, "text/html") for _, o in _outputs(executed["executed"]["03_select_gt2"]))
    assert "precision CAL2" in html and "recall CAL2" in html
    assert "n/m" in text
    assert (ws.root / "report.md").is_file()


MAX_LOG_LINES = 60  # a cell's printed text (stdout + stderr) stays a summary, not a training log


@pytest.mark.parametrize("name", list(PARAMS))
def test_no_cell_prints_a_wall_of_log(executed, name):
    nb = json.loads(executed["executed"][name].read_text())
    for i, c in enumerate(nb["cells"]):
        text = "".join("".join(o["text"]) if isinstance(o["text"], list) else o["text"]
                       for o in c.get("outputs", []) if o["output_type"] == "stream")
        lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
        assert len(lines) <= MAX_LOG_LINES, (name, i, len(lines), lines[:5])
        assert not any("0%" in ln and "/" in ln for ln in lines if "100%" not in ln), (name, i)  # no stuck bar
    widgets = [o for c in nb["cells"] for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets, f"{name}: a saved widget (a progress bar?) that reads 0 % when reopened"


def test_tier_counts_in_02_are_the_counts_of_scores_csv(executed):
    """One tier vocabulary, one count: failed counted apart, equal to scores.csv (printout, key numbers, table)."""
    import re

    ws = Workspace.open(executed["workspace"])
    s = pd.read_csv(ws.root / "scores.csv", dtype={"stem": str})
    cat = s["tier"].where(~s["failed"].astype(bool), "failed")
    want = {k: int((cat == k).sum()) for k in ("easy", "medium", "hard", "failed")}
    outs = _outputs(executed["executed"]["02_autolabel"])
    text = "".join("".join(o.get("text", "")) for _, o in outs if o["output_type"] == "stream")
    line = re.search(r"POOL images per category .*?: easy (\d+), medium (\d+), hard (\d+), failed (\d+)", text)
    assert line and dict(zip(("easy", "medium", "hard", "failed"), map(int, line.groups()))) == want
    from alnb.ui.notebooks import read_key_numbers

    kn = read_key_numbers(executed["executed"]["02_autolabel"])
    assert {k: kn[f"n_{k}"] for k in want} == want
    # the difficulty table holds every POOL image, each under its one category
    tables = [json.loads(json.loads(m.group(1))) for _, o in outs
              for m in [re.search(r'"data_json": ("(?:[^"\\]|\\.)*")', _data(o, "text/html"))] if m]
    assert len(tables) == 1 and len(tables[0]) == len(s)  # itables: every row, not the first 60
    rows = tables[0]
    got = {k: sum(str(r[0]).endswith(f"</span> {k}") for r in rows) for k in want}
    assert got == want and {r[1] for r in rows} == set(s["stem"])


def test_notebook_01_shows_one_map50_with_its_meaning(executed):
    outs = _outputs(executed["executed"]["01_train_gt1"])
    text = "".join("".join(o.get("text", "")) + _data(o, "text/plain") for _, o in outs)
    assert "best.pt" not in text  # ultralytics' own validation of best.pt is no longer shown beside evaluate's
    assert text.count("mAP on VAL1 (the evaluation step's; the report's number)") == 1


def test_notebook_06_runs_round_3_from_cal2s_scores(executed):
    from alnb.ui.notebooks import read_key_numbers

    ws = Workspace.open(executed["workspace"])
    ws = Workspace.open(executed["workspace_round3"])  # a copy of the round-2 workspace, continued
    key = read_key_numbers(executed["executed"]["06_next_round"])
    gt2, gt3, c3 = set(ws.stems("GT2")), set(ws.stems("GT3")), set(ws.stems("CONTROL3"))
    assert key["round"] == 3 and key["gt_size"] == len(gt3) == 4 and key["control_size"] == len(c3) == 4
    assert not gt3 & gt2 and not c3 & set(ws.stems("CONTROL"))  # nothing selected twice within a chain
    assert not (gt3 | c3) & set(ws.stems("VAL1", "GT1"))
    assert ws.load_json("gt3")["scores_model"] == "CAL2"
    assert key["scored"] == 24 - len(gt2)  # CAL2 scored exactly the POOL images its chain has not labelled
    assert key["images_cal"] == 12 + len(gt2) + 4 and key["images_control"] == 12 + len(ws.stems("CONTROL")) + 4
    assert key["mAP50_CAL3"] == pytest.approx(ws.load_json("eval_CAL3")["mAP50"])
    assert "## Round by round" in (ws.root / "report.md").read_text()
    # the review plan recomputed with the round's newest scorer (CAL2): its line per model, in the report
    rounds = ws.load_json("review_plan_rounds")
    plan = pd.read_csv(ws.root / "review_plan.csv", dtype={"stem": str})
    assert list(rounds) == ["CAL2"] and rounds["CAL2"]["n_images"] == len(plan) >= 1
    assert set(plan["stem"]) <= set(ws.stems("POOL")) - set(ws.stems("GT2", "CONTROL", "VAL1", "GT1"))
    assert rounds["CAL2"]["review_all_h"] == pytest.approx(plan["review_s"].sum() / 3600)
    report_md = (ws.root / "report.md").read_text()
    assert "Review hours for the remaining POOL per model" in report_md
    assert f"| CAL2 | {len(plan)} | {rounds['CAL2']['review_all_h']:.2f} |" in report_md.replace("  ", " ")


def test_notebook_07_reviews_half_and_accepts_the_rest(executed):
    """Label the rest: CAL1's plan of the 24 POOL images (the workspace as notebook 02 left it), the cut at half of
    them, the rest accepted as machine labels; the numbers shown are the plan's, the final set marks its source."""
    from alnb.ui.notebooks import read_key_numbers
    from alnb.ui.widgets import ReviewController

    ws = Workspace.open(executed["workspace_review"])
    key = read_key_numbers(executed["executed"]["07_label_the_rest"])
    plan = pd.read_csv(ws.root / "review_plan.csv", dtype={"stem": str})
    cv = pd.read_csv(ws.root / "review_curve.csv")
    assert key["model"] == "CAL1" and key["n_images"] == len(plan) == 24
    assert (key["reviewed"], key["accepted"], key["machine_accepted"]) == (12, 12, 12)
    row = cv.iloc[12]
    assert key["review_h"] == pytest.approx(plan["review_s"].iloc[:12].sum() / 3600) == pytest.approx(row["review_h"])
    assert key["err_images"] == pytest.approx(plan["p_error"].iloc[12:].sum())
    assert key["missed_boxes"] == pytest.approx(plan["e_fn"].iloc[12:].sum())
    assert key["false_boxes"] == pytest.approx(plan["e_fp"].iloc[12:].sum())
    assert key["err_images_lo"] <= key["err_images_hi"] and key["err_images_hi"] <= 12
    assert key["actual_err_images"] == int(plan["has_error"].astype(str).str.lower().isin(("true", "1"))
                                           .iloc[12:].sum())
    assert key["saved_h"] == pytest.approx(key["manual_all_h"] - key["review_h"])
    assert key["costs"] == "literature defaults"  # simulation: no measured annotation times
    # accepted: exactly the plan's second half, machine-marked; every person's / dataset label kept
    m = ws.manifest()
    acc = set(m.loc[m["label_source"] == "accepted", "stem"])
    assert acc == set(plan["stem"].iloc[12:]) == set(ws.load_json("review_accept")["accepted"])
    assert m.loc[m["stem"].isin(ws.stems("VAL1", "GT1")), "label_source"].isin(("human", "oracle")).all()
    assert (m.loc[m["stem"].isin(plan["stem"].iloc[:12]), "label_source"] == "auto").all()  # sent to review
    prov = pd.read_csv(ws.root / "final" / "yolo" / "provenance.csv", dtype={"stem": str})
    assert set(prov.loc[prov["provenance"] == "machine-accepted", "stem"]) == acc
    assert set(prov.loc[prov["provenance"] == "human", "stem"]) == set(ws.stems("VAL1", "GT1"))
    # what the notebook shows is what the controller computes for that cut
    c = ReviewController.from_workspace(ws, value=0.5)
    assert c.reviewed == 12
    text = "".join(_data(o, "text/html") for _, o in _outputs(executed["executed"]["07_label_the_rest"]))
    import html as _h

    assert _h.escape(c.hours_text()) in text and _h.escape(c.residual_text()) in text
    md = "".join(_data(o, "text/markdown") for _, o in _outputs(executed["executed"]["07_label_the_rest"]))
    assert "literature defaults" in md and "12 images now carry CAL1's labels" in md


@pytest.mark.parametrize("name", list(PARAMS))
def test_markdown_quotes_no_figure_its_outputs_do_not_show(executed, name):
    """Every decimal or percentage the committed notebook's markdown quotes appears in that notebook's executed
    outputs: narrative numbers are rendered from the run (alnb.ui.narrative), never typed by hand."""
    from alnb.ui.notebooks import prose_numbers, unbacked_prose_numbers

    committed = json.loads((NOTEBOOK_DIR / f"{name}.ipynb").read_text())
    run = json.loads(executed["executed"][name].read_text())
    md = lambda nb: [c["source"] for c in nb["cells"] if c["cell_type"] == "markdown"]  # noqa: E731
    assert md(committed) == md(run)  # the executed copy carries the committed markdown
    assert unbacked_prose_numbers(run) == [], name
    # a planted hand-typed figure in a copy fails the check; a figure the outputs do show passes
    from alnb.ui.notebooks import output_text

    shown = re.search(r"(?<![\w.])(\d+\.\d+)(?![\d])", output_text(run))
    planted = json.loads(json.dumps(run))
    i = next(i for i, c in enumerate(planted["cells"]) if c["cell_type"] == "markdown")
    planted["cells"][i]["source"] = ["the demo: AUROC 0.8413 and 97.3 % flagged"
                                     + (f", shown {shown.group(1)}" if shown else "")]
    assert [n for _, n in prose_numbers(planted)][:2] == ["0.8413", "97.3 %"]
    assert unbacked_prose_numbers(planted) == [(i, "0.8413"), (i, "97.3 %")]


@pytest.mark.parametrize("name", list(PARAMS))
def test_notebook_ends_with_what_it_shows_and_a_rounded_key_number_table(executed, name):
    from alnb.ui.notebooks import KEY_NUMBERS_MARK, KEY_NUMBERS_META, output_text, read_key_numbers

    nb = json.loads(executed["executed"][name].read_text())
    last = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
    md = "".join(_data(o, "text/markdown") for o in last["outputs"])
    assert "**What this shows.**" in md and "**What to do next.**" in md, name
    table = [o for o in last["outputs"] if KEY_NUMBERS_META in (o.get("metadata") or {})]
    assert len(table) == 1 and _data(table[0], "text/markdown").startswith("| key number | value |")
    assert KEY_NUMBERS_MARK not in output_text(nb)  # no raw dict of unrounded floats on screen
    exact = read_key_numbers(executed["executed"][name])
    for line in _data(table[0], "text/markdown").splitlines()[2:]:  # shown rounded: at most 3 significant digits
        key, value = (c.strip() for c in line.strip("|").split("|"))
        if isinstance(exact[key], float) and abs(exact[key]) < 100:
            assert value == f"{exact[key]:.3g}", (key, value, exact[key])
    if name == "01_train_gt1":
        assert "Profile(" not in output_text(nb)


def test_run_notebook_starts_a_new_kernel_when_one_does_not_come_up(tmp_path, monkeypatch, capsys):
    """A kernel start that fails (a port taken between jupyter_client's choice and the kernel's bind: "Kernel didn't
    respond in 60 seconds") is retried with a new kernel; any other error, or the last failed start, is raised."""
    import papermill

    from alnb.ui import notebooks

    calls = []

    def fake(src, dst, **kw):
        calls.append(dst)
        if len(calls) < fails_first:
            raise RuntimeError("Kernel didn't respond in 60 seconds")
        if error is not None:
            raise error
        Path(dst).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    fails_first, error = 2, None
    out = notebooks.run_notebook("00_setup", tmp_path, trust=False)
    assert len(calls) == 2 and out.read_text() == "{}" and "starting a new one (try 2 of 3)" in capsys.readouterr().out
    calls.clear()
    fails_first, error = 1, RuntimeError("some cell failed")
    with pytest.raises(RuntimeError, match="some cell failed"):
        notebooks.run_notebook("00_setup", tmp_path, trust=False)
    assert len(calls) == 1  # not a kernel start: not retried
    calls.clear()
    fails_first, error = notebooks.KERNEL_START_TRIES + 1, None
    with pytest.raises(RuntimeError, match="Kernel didn't respond"):
        notebooks.run_notebook("00_setup", tmp_path, trust=False)
    assert len(calls) == notebooks.KERNEL_START_TRIES
