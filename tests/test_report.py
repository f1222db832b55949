"""Comparison tables, the computed verdict, markdown tables and report.md, on hand-made evaluation dicts."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from alnb import report
from alnb import select as sel

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


@pytest.mark.parametrize("kw, outcome", [
    ({}, "CAL2 better"),
    ({"cal2_boost": 4.8, "cal2_map": 0.30}, "Control better"),
    ({"cal2_boost": 5.12}, "CAL2 better"),  # boost tie (within 0.05x) + mAP win
    ({"cal2_boost": 4.8}, "no clear difference"),  # boost worse, mAP better: they disagree
    ({"cal2_boost": 5.12, "cal2_map": 0.352}, "no clear difference"),  # both within tolerance
])
def test_verdict_computed_from_numbers(kw, outcome):
    e = evals(**kw)
    v = report.verdict(report.summary_table(e), report.per_class_table(e))
    assert v["outcome"] == outcome
    assert f"CAL2 {e['CAL2']['overall']['boost']:.2f}x" in v["text"]
    assert v["wins"]["recall"] == (2, 2)  # CAL2 recall above Control in both measurable classes
    assert v["wins"]["precision"] == (1, 2)


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
    figs = report.comparison_figures(ws)
    assert set(figs) == {"compare_per_class", "compare_map", "compare_efficiency", "selection_overlap",
                         "selection_class_distribution"}
    for paths in figs.values():
        assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values()) and len(paths) == 3
    path = report.write_report(ws)
    text = path.read_text()
    assert "![" in text and "(figures/compare_per_class.png)" in text
    assert "**The actively selected GT2 set helped more" in text
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
