"""Comparison tables, the computed verdict, markdown tables and report.md, on hand-made evaluation dicts."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from alnb.ui import report
from alnb.loop import selection as sel

NAMES = ["crack", "pore", "slag"]


def ev(name, prec, rec, boost, m50, m5095, overall_boost):
    pcs = []
    for i, c in enumerate(NAMES):
        measurable = c != "slag"  # slag absent from VAL1
        pcs.append({"class_id": i, "class": c, "instances": 5 if measurable else 0, "measurable": measurable,
                    "precision": prec[i], "recall": rec[i] if measurable else None,
                    "f1": None if not measurable else 2 * prec[i] * rec[i] / (prec[i] + rec[i]),
                    "boost": boost[i] if measurable else None})
    return {"name": name, "conf": 0.25, "iou_thr": 0.5, "per_class": pcs, "mAP50": m50, "mAP50-95": m5095,
            "overall": {"precision": float(np.mean(prec[:2])), "recall": float(np.mean(rec[:2])), "f1": 0.5,
                        "boost": overall_boost}}


def evals(cal2_boost=5.3, ctl_boost=5.1, cal2_map=0.40, ctl_map=0.35):
    return {"CAL1": ev("CAL1", [0.5, 0.6, 0.0], [0.4, 0.5, 0], [2.0, 2.5, 0], 0.50, 0.30, 4.9),
            "CAL2": ev("CAL2", [0.7, 0.8, 0.2], [0.6, 0.7, 0], [3.0, 3.5, 0], 0.60, cal2_map, cal2_boost),
            "Control": ev("Control", [0.6, 0.9, 0.1], [0.5, 0.6, 0], [2.5, 3.0, 0], 0.55, ctl_map, ctl_boost)}


def test_tables_and_not_measurable():
    pc = report.per_class_table(evals())
    assert len(pc) == 9
    slag = pc[pc["class"] == "slag"]
    assert not slag["measurable"].any() and slag[["precision", "recall", "boost"]].isna().all().all()
    assert pc.set_index(["model", "class"]).at[("CAL2", "pore"), "recall"] == 0.7
    s = report.summary_table(evals()).set_index("model")
    assert s.at["CAL1", "boost"] == 4.9 and s.at["Control", "mAP50-95"] == 0.35


# Default noise bands (2 sd of the project's measured seed-to-seed spread): mAP50 +-0.064, mAP50-95 +-0.040, boost
# +-0.10x.  evals(): mAP50 +0.05 is inside its band (a tie), mAP50-95 +0.05 and boost +0.2x are not.
@pytest.mark.parametrize("kw, outcome", [
    ({}, "CAL2 better"),  # CAL2 ahead on mAP50-95, boost, recall (precision 1 : 1, a tie); mAP50 within the noise
    ({"cal2_boost": 4.8, "cal2_map": 0.30}, "mixed"),  # mAP50-95 and boost for Control, precision / recall for CAL2
    ({"cal2_boost": 5.12}, "CAL2 better"),  # boost tie (within the noise); mAP50-95 and precision / recall for CAL2
    ({"cal2_boost": 4.8}, "mixed"),  # boost for Control, mAP50-95 and precision / recall for CAL2: they disagree
])
def test_verdict_computed_from_numbers(kw, outcome):
    e = evals(**kw)
    v = report.verdict(report.summary_table(e), report.per_class_table(e))
    assert v["outcome"] == outcome
    assert f"| boost | {e['CAL2']['overall']['boost']:.2f}x | {e['Control']['overall']['boost']:.2f}x |" in v["text"]
    assert v["wins"]["recall"] == (2, 2)  # CAL2 recall above Control in both measurable classes
    assert v["wins"]["precision"] == (1, 2)
    assert "4.9x" not in v["text"]  # the seed article's figures are not this run's (report.reference_note)


# A crafted comparison where the measures disagree (the demo's pattern), and its verdict worked out by hand, first
# with fixed tolerances (0.005 mAP, 0.05x boost):
#   mAP50     CAL2 0.812 vs Control 0.820: -0.008, beyond the 0.005 tie  -> Control
#   mAP50-95  0.469 vs 0.457: +0.012                                      -> CAL2
#   boost     1.92x vs 2.00x: -0.08, beyond the 0.05 tie                  -> Control
#   precision / recall per class: recall higher for Control in 2 of 2 measurable classes, precision for CAL2 in 2 of
#             2 -- both hang on each model's own confidence cut, so opposite votes are a trade-off   -> tie
# -> 2 measures for Control, 1 for CAL2: "mixed", and the text says the random set did at least as well.
# With the default noise (2 sd: mAP50 +-0.064, mAP50-95 +-0.040, boost +-0.10x) every difference is a tie.
HAND = {"mAP50": "Control", "mAP50-95": "CAL2", "boost": "Control", "precision / recall per class": "tie"}


def disagreeing():
    return {"CAL1": ev("CAL1", [0.8, 0.8, 0], [0.6, 0.6, 0], [1.8, 1.8, 0], 0.753, 0.421, 1.81),
            "CAL2": ev("CAL2", [0.9, 0.9, 0.2], [0.6, 0.64, 0], [1.9, 1.9, 0], 0.812, 0.469, 1.92),
            "Control": ev("Control", [0.85, 0.85, 0.1], [0.7, 0.7, 0], [2.0, 2.0, 0], 0.820, 0.457, 2.00)}


def test_verdict_on_disagreeing_measures_matches_the_hand_computed_one():
    e = disagreeing()
    v = report.verdict(report.summary_table(e), report.per_class_table(e), tol_map=0.005, tol_boost=0.05)
    got = {r["measure"]: r["points_to"] for r in v["measures"]}
    assert got == HAND
    assert v["outcome"] == "mixed" and v["for_b"] == ["mAP50", "boost"] and v["for_a"] == ["mAP50-95"]
    assert v["headline"].startswith("**The measures disagree")
    text = v["text"]
    assert "The random set (Control) is ahead on mAP50 (0.820 vs 0.812) and boost (2.00x vs 1.92x)." in text
    assert "The actively selected set (CAL2) is ahead on mAP50-95 (0.469 vs 0.457)" in text
    assert ("precision / recall per class (CAL2 higher on precision in 2 of 2 classes, Control on recall in 2 of 2: "
            "a trade-off") in text
    assert "2 of 4 measures favour the random set" in text and "no sign that active selection helped" in text
    assert "Noise:" not in text  # fixed tolerances: no noise band to explain
    # the default: a one-seed difference within the measured noise is a tie, and the text says so with the band
    d = report.verdict(report.summary_table(e), report.per_class_table(e))
    assert d["outcome"] == "no clear difference" and not d["for_a"] and not d["for_b"]
    bands = report.noise_bands(report.default_noise())
    assert bands["mAP50"] == pytest.approx(2 * report.NOISE_SD_DEFAULT["mAP50"])
    assert "Within the noise measured for this setup (a tie): mAP50 (-0.008, within ±0.064)" in d["text"]
    assert "mAP50-95 (+0.012, within ±0.040) and boost (-0.08x, within ±0.10x)" in d["text"]
    assert "Noise: a one-seed difference counts only beyond ±2 standard deviations" in d["text"]
    assert "this workspace records no noise of its own" in d["text"]
    # with intervals over seeds a measure counts only when its whole interval is on one side of 0
    iv = report.seed_intervals(pd.DataFrame(
        [{"seed": k, "model": m, "mAP50": v50, "mAP50-95": v95, "boost": b} for k, (m, v50, v95, b) in enumerate(
            [("CAL2", 0.81, 0.47, 1.9), ("Control", 0.82, 0.45, 2.0), ("CAL2", 0.83, 0.48, 1.9),
             ("Control", 0.80, 0.46, 2.0)]) for _ in [0]]).assign(seed=[0, 0, 1, 1]))
    assert iv["boost"]["n"] == 2 and iv["boost"]["hi"] < 0  # -0.1 on both seeds: an interval of width 0
    assert iv["mAP50"]["lo"] < 0 < iv["mAP50"]["hi"]  # -0.01 and +0.03: contains 0
    v2 = report.verdict(report.summary_table(e), report.per_class_table(e), intervals=iv)
    pts = {r["measure"]: r["points_to"] for r in v2["measures"]}
    assert pts["mAP50"] == "tie" and pts["boost"] == "Control"  # the interval decides, not the noise band
    assert "95 % interval of the difference over 2 seeds" in v2["text"] and "Student-t" in v2["text"]


@pytest.mark.parametrize("recall, precision, want", [
    ("CAL2", "CAL2", ("CAL2", "")), ("CAL2", "tie", ("CAL2", "")), ("tie", "Control", ("Control", "")),
    ("Control", "CAL2", ("tie", "trade-off")), ("tie", "tie", ("tie", "")),
])
def test_precision_and_recall_vote_once(recall, precision, want):
    assert report.precision_recall_vote(recall, precision) == want


def test_noise_measured_by_a_study_sets_the_tie_band(tiny_workspace, tmp_path):
    """A study's paired differences to random (same seed, same budget) give the sd; record_noise stores it in the
    workspace and the verdict's band becomes 2 sd of it."""
    rows = []
    diffs = {"mAP50": [0.01, 0.03, -0.01], "mAP50-95": [0.02, 0.0, 0.01], "boost": [0.1, -0.1, 0.0]}
    for seed in range(3):
        rows.append({"strategy": "gt1_only", "budget": "0", "round": 0, "seed": seed, "images": 0,
                     "mAP50": 0.5, "mAP50-95": 0.3, "boost": 1.5})
        rows.append({"strategy": "random", "budget": "5", "round": 1, "seed": seed, "images": 5,
                     "mAP50": 0.6, "mAP50-95": 0.35, "boost": 1.8})
        rows.append({"strategy": "hybrid", "budget": "5", "round": 1, "seed": seed, "images": 5,
                     **{m: base + diffs[m][seed] for m, base in (("mAP50", 0.6), ("mAP50-95", 0.35), ("boost", 1.8))}})
    table = pd.DataFrame(rows)
    from alnb.loop import study as st

    got = st.noise_from_study(table)
    for m, d in diffs.items():
        assert got[m]["sd"] == pytest.approx(np.std(d, ddof=1)) and got[m]["n_seeds"] == 3
    ws = tiny_workspace
    assert report.measured_noise(ws) == report.default_noise()  # nothing recorded yet: the project's default
    study = tmp_path / "study"
    study.mkdir()
    table.to_csv(study / "results.csv", index=False)
    st.record_noise(ws, study)
    noise = report.measured_noise(ws)
    assert noise["mAP50"]["sd"] == pytest.approx(0.02) and "strategy study in study/" in noise["mAP50"]["source"]
    e = disagreeing()
    v = report.verdict(report.summary_table(e), report.per_class_table(e), noise=noise)
    rows = {r["measure"]: r for r in v["measures"]}
    assert rows["mAP50"]["tolerance"] == pytest.approx(0.04) and rows["mAP50-95"]["tolerance"] == pytest.approx(0.02)
    assert "measured by the strategy study in study/" in v["text"] and "records no noise" not in v["text"]
    with pytest.raises(report.WorkspaceError, match="results.csv"):
        st.record_noise(ws, tmp_path / "nowhere")


def test_paired_interval_is_the_student_t_interval():
    iv = report.paired_interval([0.01, 0.03, -0.01])
    half = 4.302652729911275 * np.std([0.01, 0.03, -0.01], ddof=1) / np.sqrt(3)  # t(0.975, df=2)
    assert iv["mean"] == pytest.approx(0.01) and iv["hi"] - iv["mean"] == pytest.approx(half, rel=1e-3)
    assert np.isnan(report.paired_interval([0.02])["lo"])


def _readme_demo():
    """The README's demo results table (model rows) and its quoted verdict inputs / outcome."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| (CAL1|CAL2|Control) \(.*?\) \| (\d+) \| \**([\d.]+)\** \| \**([\d.]+)\** \| [\d.]+ \| "
                     r"\**([\d.]+)\** \| \**([\d.]+)\** \| \**([\d.]+)×\** \|", line)
        if m:
            rows[m.group(1)] = {"mAP50": float(m.group(3)), "mAP50-95": float(m.group(4)),
                                "precision": float(m.group(5)), "recall": float(m.group(6)),
                                "boost": float(m.group(7))}
    rec = re.search(r"recall per class: CAL2 higher in (\d+), Control in (\d+) of (\d+) classes", text)
    prec = re.search(r"precision per class: CAL2 higher in (\d+), Control in (\d+) of (\d+) classes", text)
    quoted = re.search(r'the report\'s verdict: "([^"]+)"', text)
    return rows, rec, quoted, prec


def test_readme_verdict_is_the_verdict_of_the_readme_numbers():
    """README quotes the demo's verdict: it must be what report.verdict says for README's own numbers (per-class
    precision as README quotes it, or, where it does not, whichever way it points); else README and report
    disagree."""
    rows, rec, quoted, prec = _readme_demo()
    assert set(rows) == {"CAL1", "CAL2", "Control"} and rec and quoted, "README lost the demo's results / verdict"
    wa, wb, n = (int(g) for g in rec.groups())
    pa, pb = (int(prec.group(1)), int(prec.group(2))) if prec else (None, None)
    heads = set()
    for prec_a in ([pa] if prec else range(n + 1)):  # as quoted, else every possible per-class precision split
        pcs = {m: [{"class": f"c{i}", "instances": 5, "measurable": True,
                    "recall": 0.6 + 0.1 * ((m == "CAL2") == (i < wa)) if i < wa + wb else 0.6,
                    "precision": (0.5 + 0.1 * ((m == "CAL2") == (i < prec_a))) if not prec or i < pa + pb else 0.5}
                   for i in range(n)] for m in ("CAL1", "CAL2", "Control")}
        e = {m: {"per_class": pcs[m], "mAP50": r["mAP50"], "mAP50-95": r["mAP50-95"],
                 "overall": {"precision": r["precision"], "recall": r["recall"], "boost": r["boost"]}}
             for m, r in rows.items()}
        heads.add(report.verdict(report.summary_table(e), report.per_class_table(e))["headline"].strip("*"))
    assert heads == {" ".join(quoted.group(1).split())}, (heads, quoted.group(1))


def test_report_is_a_document(tiny_workspace):
    """Workspace-relative paths only, no emoji (the tier bars are SVG files), escaped markdown, the data described,
    hours next to the boost."""
    import re

    ws = tiny_workspace
    for name, e in disagreeing().items():
        e["overall"].update(manual_s=3600.0, assisted_s=1800.0)
        e["costs"] = {"t_draw": 10.0, "t_verify": 1.6, "t_delete": 1.6, "t_image": 3.0}
        for r in e["per_class"]:
            r.update(predictions=4, fp=1, fn=2)
        ws.save_json(f"eval_{name}", e)
    sel.commit(ws, ws.stems("POOL")[:6], "GT2", info={"rule": "study: medium + hard + failed", "t_medium": 0.4,
                                                      "t_hard": 0.8, "counts": {"easy": 14, "medium": 4, "hard": 2,
                                                                                "failed": 0}})
    sel.commit(ws, sel.random_control(ws.manifest(), 6, seed=1), "CONTROL", info={"seed": 1})
    text = report.write_report(ws).read_text()
    assert str(ws.root) not in text and str(ws.dataset_root) not in text and "/tmp/" not in text
    assert not re.search(r"[\U0001F000-\U0001FFFF\u2B1C]", text)  # no emoji squares
    for tier in ("easy", "medium", "hard", "failed"):
        assert f"![{tier}](figures/tier_{tier}.svg)" in text
        assert (ws.figures_dir / f"tier_{tier}.svg").read_text().startswith("<svg")
    assert "P\\@0.25" in text and " P@0.25" not in text  # no mailto: link
    assert "**Synthetic data**" in text and "alnb.datasets.weld" in text
    assert "| CAL2 | 0.812 | 0.469 |" in text and "| 1.000 | 0.500 | 0.500 |" in text  # boost col. then manual/assisted/saved h
    assert "saved h" in text and "**No clear difference" in text and "seed article" not in text.lower()
    assert "Within the noise measured for this setup" in text  # a one-seed run: the default noise band
    assert "For reference, not measured here:" in text and "4.9x (CAL1)" in text
    glossary = text.split("## Glossary", 1)[1]
    for term in ("CAL1, CAL2, CALk", "GT1", "GT2, GTk", "POOL", "VAL1", "failed tier", "simulation mode",
                 "MC dropout", "BALD", "AUROC", "mAP50, mAP50-95", "operating point", "efficiency boost"):
        assert f"* **{term}**: " in glossary, term


def test_operating_rules_table_and_its_report_section(tiny_workspace):
    """Both rules' figures from ``at_rules``, one row per (model, rule), with the cost model's own seconds."""
    ev = {"CAL1": {"costs": {"t_draw": 12.0, "t_verify": 1.5, "t_delete": 2.0, "t_image": 3.0},
                   "at_rules": {"f1": {"conf": 0.4, "overall": {"precision": 0.8, "recall": 0.6, "boost": 1.5,
                                                                "manual_s": 7200.0, "assisted_s": 4800.0}},
                                "seconds": {"conf": 0.2, "overall": {"precision": 0.6, "recall": 0.75, "boost": 1.8,
                                                                     "manual_s": 7200.0, "assisted_s": 4000.0}}}}}
    t = report.operating_rules_table(ev)
    assert t[["model", "rule"]].values.tolist() == [["CAL1", "f1"], ["CAL1", "seconds"]]
    assert t["assisted h"].tolist() == pytest.approx([4800 / 3600, 4000 / 3600])
    assert t["saved h"].tolist() == pytest.approx([2400 / 3600, 3200 / 3600])
    text = "\n".join(report._rules_section(ev))
    assert "a miss costs 12 s to draw and a false positive 3.5 s" in text
    assert "| CAL1 | seconds | 0.200 | 0.600 | 0.750 | 1.800 | 1.111 | 0.889 |" in text
    assert report._rules_section({"CAL1": {}}) == []  # older evaluations without at_rules: no section


def test_markdown_table():
    df = pd.DataFrame({"model": ["A|B", "C"], "x": [0.12345, np.nan], "ok": [True, False]})
    md = report.markdown_table(df)
    lines = md.splitlines()
    assert lines[0] == "| model | x | ok |" and lines[1] == "|---|---:|---|"
    assert lines[2] == "| A\\|B | 0.123 | yes |" and lines[3] == "| C | n/m | no |"


def test_report_md_and_figures(tiny_workspace):
    ws = tiny_workspace
    for name, e in evals().items():
        ws.save_json(f"eval_{name}", e)
    pool = ws.stems("POOL")
    sel.commit(ws, pool[:6], "GT2", info={"rule": "study: medium + hard + failed", "t_medium": 0.4, "t_hard": 0.8,
                                          "counts": {"easy": 14, "medium": 4, "hard": 2, "failed": 0}})
    sel.commit(ws, sel.random_control(ws.manifest(), 6, seed=1), "CONTROL", info={"seed": 1})
    sel.label_selection(ws, "GT2")
    sel.label_selection(ws, "CONTROL")
    figs = report.comparison_figures(ws, disagreement=0)  # hand-made evaluations: no trained models to predict
    assert set(figs) == {"compare_per_class", "compare_map", "compare_efficiency", "selection_overlap",
                         "selection_class_distribution"}
    for paths in figs.values():
        assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values()) and len(paths) == 3
    path = report.write_report(ws)
    text = path.read_text()
    assert "![" in text and "(figures/compare_per_class.png)" in text
    assert "**The actively selected GT2 set helped more" in text and "| mAP50 | 0.600 | 0.550 | +0.050 |" in text
    assert "| CAL2 | 0.600 | 0.400 |" in text  # summary row: mAP50, mAP50-95
    assert "VAL1 is held out" in text and "seed 1" in text
    comp = json.loads((ws.root / "metrics" / "comparison.json").read_text())
    assert comp["verdict"]["outcome"] == "CAL2 better"
    ov = sel.overlap(ws.stems("GT2"), ws.stems("CONTROL"))
    assert comp["overlap"] == ov
    # class distribution counts only labelled selections, from the revealed labels
    counts = report.selection_class_counts(ws)
    assert sum(counts["GT2"].values()) == sum(len(ws.trainable_labels(s)) for s in ws.stems("GT2"))
    plt.close("all")


def test_report_says_what_each_set_cost_and_why_they_differ(tiny_workspace):
    """Hours, categories, error rates per category, defect-free images and class mix of GT2 vs Control, each
    computed from the workspace by hand here."""
    from alnb.evaluation.metrics import CostModel
    from alnb.evaluation.metrics import predicted_cost

    ws = tiny_workspace
    pool = ws.stems("POOL")
    scores = pd.DataFrame({"stem": pool, "score": np.linspace(0, 1, len(pool)), "n_det": 2, "failed": False,
                           "model": "CAL1"})
    scores.loc[scores.index[:3], "failed"] = True
    scores.to_csv(ws.root / "scores.csv", index=False)
    for name, e in evals().items():
        e["costs"] = {"t_draw": 10.0, "t_verify": 1.6, "t_delete": 1.6, "t_image": 3.0}
        ws.save_json(f"eval_{name}", e)
    gt2, ctl = pool[:8], pool[10:18]  # the first 8 hold the 3 failed images
    sel.commit(ws, gt2, "GT2", info={"rule": "study: medium + hard + failed", "t_medium": 0.4, "t_hard": 0.8,
                                     "counts": {}})
    sel.commit(ws, ctl, "CONTROL", info={"seed": 1})
    sel.label_selection(ws, "GT2")
    sel.label_selection(ws, "CONTROL")
    # CAL1's auto-labels = the true boxes (confidence 0.9): every proposal verified, nothing deleted or drawn
    (ws.root / "autolabels" / "CAL1").mkdir(parents=True)
    for s in gt2 + ctl:
        lab = ws.trainable_labels(s)
        (ws.root / "autolabels" / "CAL1" / f"{s}.txt").write_text(
            "".join(f"{int(r[0])} {r[1]} {r[2]} {r[3]} {r[4]} 0.9\n" for r in lab))
    ws.save_json("difficulty_vs_errors", {"tiers": {"easy": {"n": 6, "n_error": 3, "error_rate": 0.5},
                                                    "medium": {"n": 5, "n_error": 3, "error_rate": 0.6},
                                                    "hard": {"n": 6, "n_error": 5, "error_rate": 5 / 6},
                                                    "failed": {"n": 3, "n_error": 1, "error_rate": 1 / 3}}})
    facts = report.selection_facts(ws)
    cat = sel.categorise(scores, 0.4, 0.8).set_axis(scores["stem"])
    costs = CostModel()
    for name, stems in (("GT2", gt2), ("Control", ctl)):
        f = facts[name]
        labels = [ws.trainable_labels(s) for s in stems]
        boxes = sum(len(lab) for lab in labels)
        assert f["images"] == 8 and f["boxes"] == boxes and f["defect_free"] == sum(len(lab) == 0 for lab in labels)
        assert f["tiers"] == {t: int((cat.loc[stems] == t).sum()) for t in ("easy", "medium", "hard", "failed")}
        assert sum(f["per_class"].values()) == boxes
        assert f["assisted_h"] == pytest.approx((boxes * costs.t_verify + 8 * costs.t_image) / 3600)
        assert f["manual_h"] == pytest.approx((boxes * costs.t_draw + 8 * costs.t_image) / 3600)
        ov = evals()["CAL1"]["overall"]
        assert f["predicted_h"] == pytest.approx(predicted_cost(8, 16, ov["precision"], ov["recall"])["assisted_h"])
    assert facts["GT2"]["tiers"]["failed"] == 3 and facts["Control"]["tiers"]["failed"] == 0
    story = report.selection_story(facts)
    from alnb.ui.display import format_hours

    g = facts["GT2"]
    assert f"takes {format_hours(g['assisted_h'])} for GT2" in story and " min " in story  # minutes, not "0.0 h"
    assert "failed 3" in story and "failed tier's error rate is lower than the easy tier's (0.33 vs 0.50)" in story
    assert "GT2 holds 3 failed image(s) (Control 0), yet the failed tier's" in story and "the lowest of all" in story
    n_empty = sum(len(ws.trainable_labels(s)) == 0 for s in scores.loc[scores["failed"], "stem"])
    assert f"{n_empty} of GT2's 3 failed images hold no defect" in story
    assert f"GT2 holds {g['boxes']} boxes and {g['defect_free']} defect-free image(s)" in story
    text = report.write_report(ws).read_text()
    assert "### What each set cost, and why the active set differs" in text and story.split("\n")[0] in text
    table = report.markdown_table(report.selection_table(facts))
    assert table in text and f"| GT2 | 8 | {g['tiers']['easy']} |" in table
    comp = json.loads((ws.root / "metrics" / "comparison.json").read_text())
    assert comp["selections"]["GT2"]["boxes"] == g["boxes"] and comp["noise"]["mAP50"]["sd"] > 0
    plt.close("all")


def test_report_says_which_recipe_trained_each_model(tmp_path):
    import json
    from types import SimpleNamespace

    from alnb.ui.report import recipe_lines

    runs = {"CAL1": {"model": "/x/alnb/models/weld-defect-tiny.pt", "epochs_run": 25, "recipe": None},
            "CAL2": {"model": str(tmp_path / "runs" / "CAL1" / "weights" / "best.pt"), "epochs_run": 10,
                     "recipe": "finetune-lowlr"},
            "Control": {"model": "/x/alnb/models/weld-defect-tiny.pt", "epochs_run": 25, "recipe": "fresh"},
            "CAL3": {"model": str(tmp_path / "runs" / "CAL2" / "weights" / "best.pt"), "epochs_run": 10}}  # old run
    for name, info in runs.items():
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "alnb_run.json").write_text(json.dumps(info))
    line = recipe_lines(SimpleNamespace(root=tmp_path), dict.fromkeys(["CAL1", "CAL2", "Control", "CAL3", "CAL4"]))[0]
    assert "CAL1 trained from the profile's start checkpoint, 25 epochs" in line
    assert "CAL2 fine-tuned from CAL1 at a quarter of the learning rate, 10 epochs" in line
    assert "Control trained afresh from the profile's start checkpoint, as CAL1, 25 epochs" in line
    assert "CAL3 fine-tuned from CAL2, 10 epochs" in line and "CAL4" not in line  # no run file: not listed
