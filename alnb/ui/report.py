"""CAL1 / CAL2 / Control comparison: tables, figures, a verdict computed from the numbers, and ``report.md``.

Input is the evaluation dicts written by :func:`alnb.evaluation.step.evaluate` (``metrics/eval_<MODEL>.json``); the functions
here turn them into tidy tables so they can be tested on hand-made dicts.  A one-seed verdict weighs each difference
against the seed-to-seed noise measured for this setup (:func:`measured_noise`: the workspace's ``metrics/noise.json``
from a strategy study, else :data:`NOISE_SD_DEFAULT`); the report also says what GT2 and Control cost to label and
why they differ (:func:`selection_facts`, :func:`selection_story`) and ends with a glossary (:data:`GLOSSARY`).
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from alnb.core.lock import locked
from alnb.core.workspace import Workspace, WorkspaceError, atomic_write_text, cal_name, control_name
from alnb.core.scoretable import load_scores, scores_file
from alnb.evaluation import diagnostics
from alnb.evaluation.labeltimes import (COEFS, DEFAULTS_NOTE, MIN_ANNOTATIONS, OUTLIER_RULE, boost_both, fit_table,
                                        summarise)
from alnb.evaluation.metrics import CostModel, efficiency_boost, predicted_cost
from alnb.evaluation.stats import interval
from alnb.evaluation.step import selection_cost
from alnb.loop import reviewstep
from alnb.loop.forecast import CAVEAT
from alnb.loop.forecaststep import write_forecast
from alnb.loop.selection import categorise, overlap
from alnb.ui.display import format_hours

MODELS = ("CAL1", "CAL2", "Control")
FIGURES = {  # stable figure names -> caption
    "score_histogram": "Difficulty scores of the POOL images with the thresholds used for GT2.",
    "errors_vs_difficulty": "Auto-label error rate per difficulty tier, and which score predicts errors (AUROC).",
    "gt2_thumbnails_hard": "Hardest POOL images with CAL1's auto-labels (box label: class conf).",
    "selection_class_distribution": "Instances per class in GT1, GT2 and Control (the labels the annotator gave).",
    "selection_overlap": "Overlap between the actively selected GT2 set and the random Control set.",
    "compare_per_class": "Precision and recall per class on VAL1 at the operating point (n/m = not measurable).",
    "compare_map": "mAP50 and mAP50-95 on VAL1.",
    "compare_efficiency": "Expected labelling-efficiency boost per class and overall (1 = no saving).",
    "training_curves_all": "Training loss and ultralytics' VAL1 mAP50 per epoch for every model (ring = best epoch).",
    "cal1_pr_curves": "CAL1's precision-recall curve per class on VAL1 (dot = its operating point).",
    "cal1_ap_per_class": "CAL1's AP50 and AP50-95 per class on VAL1 (the evaluation's COCO-style AP on the auto-label boxes, as in the per-class table).",
    "cal1_confusion_matrix": "CAL1's confusion matrix on VAL1 at its operating point (background = FP / missed).",
    "compare_disagreement": "VAL1 images where CAL1, CAL2 and Control disagree most: ground truth, then each model.",
}


# ----------------------------------------------------------------------------------------------------- eval dicts
def _num(v) -> float:
    """float, NaN for None (JSON null = not measurable) or anything non-numeric."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def load_evals(ws: Workspace, models=MODELS) -> dict:
    """``{model: eval dict}`` from ``metrics/eval_<model>.json`` for the models that have one."""
    out = {}
    for m in models:
        p = ws.root / "metrics" / f"eval_{m}.json"
        if p.is_file():
            out[m] = json.loads(p.read_text())
    if not out:
        raise WorkspaceError(f"no metrics/eval_*.json in {ws.root}: evaluate CAL1/CAL2/Control first (notebooks 01-04).")
    return out


def per_class_table(evals: dict) -> pd.DataFrame:
    """Long table, one row per (model, class): ``precision, recall, f1, boost, n_gt, measurable``.

    ``evals``: ``{model: dict}`` as written by :func:`alnb.evaluation.step.evaluate` (``per_class``: list of dicts with
    ``class, instances, measurable, precision, recall, f1, boost``).  A class without instances in VAL1 has NaN
    metrics and ``measurable=False`` (never 0).
    """
    rows = []
    for model, ev in evals.items():
        costs = CostModel(**{k: v for k, v in (ev.get("costs") or {}).items() if k in CostModel.__dataclass_fields__})
        for r in ev["per_class"]:
            n_gt = _num(r.get("instances"))
            meas = bool(r.get("measurable", n_gt > 0))
            cnt = [_num(r.get(k)) for k in ("instances", "predictions", "fp", "fn")]
            saved = (efficiency_boost(*cnt, 0, costs)["saved_s"] / 3600 if all(np.isfinite(cnt)) else float("nan"))
            rows.append({"model": model, "class": str(r["class"]), "precision": _num(r.get("precision")),
                         "recall": _num(r.get("recall")), "f1": _num(r.get("f1")), "boost": _num(r.get("boost")),
                         "saved h": saved, "n_gt": n_gt, "measurable": meas})
    t = pd.DataFrame(rows, columns=["model", "class", "precision", "recall", "f1", "boost", "saved h", "n_gt",
                                    "measurable"])
    t.loc[~t["measurable"].astype(bool), ["precision", "recall", "f1", "boost", "saved h"]] = np.nan
    return t


def summary_table(evals: dict) -> pd.DataFrame:
    """One row per model: ``mAP50, mAP50-95``, the operating point ``conf`` and the overall ``precision, recall, f1,
    boost`` there, the labelling hours behind the boost on the evaluated images (``manual h``: drawing every box,
    ``assisted h``: correcting the auto-labels, ``saved h``), and the same P/R/boost at the study's fixed confidence
    0.25 (``P@0.25, R@0.25, boost@0.25``) when recorded."""
    rows = []
    for model, ev in evals.items():
        ov = ev.get("overall", {})
        fx = (ev.get("at_fixed_conf") or {}).get("overall", {})
        rows.append({"model": model, "mAP50": _num(ev.get("mAP50")), "mAP50-95": _num(ev.get("mAP50-95")),
                     "conf": _num(ev.get("conf")),
                     "precision": _num(ov.get("precision")), "recall": _num(ov.get("recall")),
                     "f1": _num(ov.get("f1")), "boost": _num(ov.get("boost")),
                     "manual h": _num(ov.get("manual_s")) / 3600, "assisted h": _num(ov.get("assisted_s")) / 3600,
                     "saved h": (_num(ov.get("manual_s")) - _num(ov.get("assisted_s"))) / 3600,
                     "P@0.25": _num(fx.get("precision")), "R@0.25": _num(fx.get("recall")),
                     "boost@0.25": _num(fx.get("boost"))})
    return pd.DataFrame(rows, columns=["model", "mAP50", "mAP50-95", "conf", "precision", "recall", "f1", "boost",
                                       "manual h", "assisted h", "saved h", "P@0.25", "R@0.25", "boost@0.25"])


def operating_rules_table(evals: dict) -> pd.DataFrame:
    """Each model at the two operating-point rules chosen on VAL1 (``at_rules`` of the evaluation): ``f1`` (the
    highest F1, today's default) and ``seconds`` (the fewest predicted assisted labelling seconds by the cost model:
    a miss costs a drawing, 10 s, a false positive a check and a deletion, 3.2 s).  One row per (model, rule):
    ``conf``, ``precision``, ``recall``, ``boost`` (manual / assisted time), ``assisted h``, ``saved h`` on VAL1."""
    rows = []
    for model, ev in evals.items():
        for rule, r in (ev.get("at_rules") or {}).items():
            ov = r.get("overall", {})
            rows.append({"model": model, "rule": rule, "conf": _num(r.get("conf")),
                         "precision": _num(ov.get("precision")), "recall": _num(ov.get("recall")),
                         "boost": _num(ov.get("boost")), "assisted h": _num(ov.get("assisted_s")) / 3600,
                         "saved h": (_num(ov.get("manual_s")) - _num(ov.get("assisted_s"))) / 3600})
    return pd.DataFrame(rows, columns=["model", "rule", "conf", "precision", "recall", "boost", "assisted h",
                                       "saved h"])


# ------------------------------------------------------------------------------------------------------- verdict
STUDY_REFERENCE = {
    "source": "the published study this project reproduces (weld radiographs; its own data, models and cost figures)",
    "boost": {"CAL1": 4.9, "CAL2": 5.3, "Control": 5.1},
}
"""The seed article's figures: quoted beside this run's numbers, labelled as the article's, never compared as if
they were measured here."""

TOLERANCES = {"mAP50": 0.005, "mAP50-95": 0.005, "boost": 0.05}
"""Fixed tolerances (mAP in mAP units, boost in x) for callers that ask for them (``verdict(..., tol_map=,
tol_boost=)``); by default a one-seed verdict uses the measured noise instead (:data:`NOISE_SD_DEFAULT`)."""

NOISE_SD_DEFAULT = {"mAP50": 0.032, "mAP50-95": 0.020, "boost": 0.05}
"""Seed-to-seed standard deviation of a one-seed difference between two models trained on two selections of the same
size (the default noise of this setup when the workspace records none, :func:`measured_noise`).  mAP50 / mAP50-95:
the paired differences to random of the seven strategies of the strategy study at +100 images, 5 seeds each
(docs/results/2026-12-06-strategy-study.md, quick profile): each strategy's sd recovered from its 95 %
Student-t interval (``half width * sqrt(5) / t(0.975, 4)``), pooled as the root mean square (mAP50 0.026-0.042,
mAP50-95 0.012-0.027).  boost: that study reports no paired boost difference; the sd of CAL1's boost over the five
split seeds of docs/results/2026-12-06-stability-over-seeds.md (1.83x-1.95x) stands in."""

NOISE_SOURCE_DEFAULT = ("the project's strategy study (docs/results/2026-12-06-strategy-study.md: 7 selections vs random at +100 "
                        "images, 5 seeds, quick profile on the weld data)")
"""Where :data:`NOISE_SD_DEFAULT` comes from, as the report says it."""

NOISE_BAND_SD = 2.0
"""A one-seed difference counts as a tie while it is within this many standard deviations of the seed-to-seed noise:
about 95 % of one-seed differences between two equally good selections fall inside +-2 sd."""

NOISE_MEASURES = ("mAP50", "mAP50-95", "boost")

HEADLINE = ("mAP50", "mAP50-95", "boost", "precision / recall per class")
"""Every measure the verdict weighs, in the order it reports them.  Per-class precision and recall are one measure:
both hang on each model's own confidence cut (a higher cut trades recall for precision), so they vote together."""

OUTCOMES = {
    "CAL2 better": "**The actively selected GT2 set helped more than a random set of the same size.**",
    "Control better": "**A random set of the same size helped more than the actively selected GT2 set.**",
    "mixed": "**The measures disagree: no clear winner between the actively selected GT2 set and a random set of "
             "the same size.**",
    "no clear difference": "**No clear difference between the actively selected GT2 set and a random set of the "
                           "same size.**",
}


def default_noise() -> dict:
    """:data:`NOISE_SD_DEFAULT` as a noise record (:func:`measured_noise`)."""
    return {m: {"sd": NOISE_SD_DEFAULT[m], "n_seeds": None, "source": NOISE_SOURCE_DEFAULT}
            for m in NOISE_MEASURES}


def measured_noise(ws: Workspace | None) -> dict:
    """The noise a one-seed verdict of this workspace uses: ``metrics/noise.json`` when the workspace has one
    (:func:`alnb.loop.study.record_noise`: a strategy study's seed-to-seed spread on the same data), else
    :func:`default_noise`, measure by measure.  ``{measure: {sd, n_seeds, source}}``."""
    rec = _json_or_none(ws, "noise") if ws is not None else None
    out = default_noise()
    for m, v in (rec or {}).items():
        if m in out and isinstance(v, dict) and np.isfinite(_num(v.get("sd"))):
            out[m] = {"sd": float(v["sd"]), "n_seeds": v.get("n_seeds"), "source": str(v.get("source", ""))}
    return out


def noise_bands(noise: dict | None) -> dict:
    """``{measure: half width of the tie band}`` = :data:`NOISE_BAND_SD` x the noise's sd."""
    noise = noise or default_noise()
    return {m: NOISE_BAND_SD * float(noise[m]["sd"]) for m in NOISE_MEASURES if m in noise}


def paired_interval(diffs) -> dict:
    """Mean and 95 % Student-t interval of paired differences (one per seed): ``{mean, lo, hi, sd, n}``
    (:func:`alnb.evaluation.stats.interval`); ``lo``/``hi`` NaN with fewer than two finite values."""
    return interval(diffs)


def seed_intervals(per_seed: pd.DataFrame, a: str = "CAL2", b: str = "Control",
                   measures=("mAP50", "mAP50-95", "boost")) -> dict:
    """``{measure: paired_interval(a - b)}`` from a table with one row per (``seed``, ``model``) and the measures as
    columns (repeated seeds of the same comparison); {} when fewer than two seeds have both models."""
    w = per_seed.pivot_table(index="seed", columns="model", values=list(measures), aggfunc="first")
    out = {}
    for m in measures:
        if m in w and {a, b} <= set(w[m].columns):
            iv = paired_interval((w[m][a] - w[m][b]).to_numpy(float))
            if iv["n"] >= 2:
                out[m] = iv
    return out


def _direction(d: float, tol: float, iv: dict | None, a: str, b: str) -> str:
    """Which model a difference ``d = a - b`` points to: ``a``, ``b`` or ``"tie"`` (within ``tol``, or an interval
    over seeds that contains 0)."""
    if iv is not None and np.isfinite(iv.get("lo", np.nan)):
        return a if iv["lo"] > 0 else (b if iv["hi"] < 0 else "tie")
    if not np.isfinite(d) or abs(d) <= tol:
        return "tie"
    return a if d > 0 else b


def _majority(wa: int, wb: int, n: int, a: str, b: str) -> str:
    """``a`` when it is higher in more than half of ``n`` classes, ``b`` likewise, else ``"tie"``."""
    return a if n and wa * 2 > n else (b if n and wb * 2 > n else "tie")


def precision_recall_vote(recall_to: str, precision_to: str) -> tuple:
    """One vote from per-class recall and precision, which both hang on each model's own confidence cut: the side
    both point to, or the side one points to while the other ties; ``("tie", "trade-off")`` when they point to
    different models (what moving a cut does), ``("tie", "")`` when both tie.  Returns ``(points_to, why)``."""
    if recall_to == precision_to:
        return recall_to, ""
    if "tie" in (recall_to, precision_to):
        return (precision_to if recall_to == "tie" else recall_to), ""
    return "tie", "trade-off"


def verdict_measures(summary: pd.DataFrame, per_class: pd.DataFrame, *, a: str = "CAL2", b: str = "Control",
                     tolerances: dict | None = None, intervals: dict | None = None,
                     noise: dict | None = None) -> pd.DataFrame:
    """One row per headline measure (:data:`HEADLINE`): both values, the difference ``a - b``, the tie band, the
    interval over seeds (when given) and ``points_to`` (``a``, ``b`` or ``tie``).

    The tie band of mAP50, mAP50-95 and the boost is ``tolerances`` where given, else :data:`NOISE_BAND_SD` x the
    measured seed-to-seed noise (``noise``, :func:`measured_noise`; default :func:`default_noise`); ``band`` says
    which (``"noise"`` / ``"tolerance"``).  With ``intervals`` over seeds an interval that contains 0 is the tie.

    Precision / recall per class is one measure: ``recall_a`` / ``recall_b`` (``precision_a`` / ``precision_b``)
    count the measurable classes where that model is higher, of ``n_classes``; each points to the model higher in
    more than half of them, and the two combine by :func:`precision_recall_vote` (``why``: ``"trade-off"`` when they
    point to different models).
    """
    bands = noise_bands(noise)
    tol = {m: (tolerances or {}).get(m, bands[m]) for m in NOISE_MEASURES}
    kind = {m: "tolerance" if m in (tolerances or {}) else "noise" for m in NOISE_MEASURES}
    intervals = intervals or {}
    s = summary.set_index("model")
    missing = [m for m in (a, b) if m not in s.index]
    if missing:
        raise ValueError(f"verdict needs evaluations of {a} and {b}; missing {missing}.")
    rows = []
    for m in NOISE_MEASURES:
        va, vb = float(s.at[a, m]), float(s.at[b, m])
        iv = intervals.get(m)
        rows.append({"measure": m, a: va, b: vb, "difference": va - vb, "tolerance": tol[m],
                     "band": "interval" if iv is not None and np.isfinite(iv.get("lo", np.nan)) else kind[m],
                     "lo": (iv or {}).get("lo", np.nan), "hi": (iv or {}).get("hi", np.nan),
                     "n_seeds": (iv or {}).get("n", 1), "n_classes": np.nan,
                     "points_to": _direction(va - vb, tol[m], iv, a, b), "why": ""})
    pc = per_class[per_class["measurable"].astype(bool)]
    wins = {}
    for met in ("recall", "precision"):
        w = pc.pivot_table(index="class", columns="model", values=met, aggfunc="first")
        both = w[[a, b]].dropna() if {a, b} <= set(w.columns) else pd.DataFrame(columns=[a, b])
        wins[met] = (int((both[a] > both[b]).sum()), int((both[b] > both[a]).sum()), int(len(both)))
    to_r, to_p = (_majority(*wins[met], a, b) for met in ("recall", "precision"))
    to, why = precision_recall_vote(to_r, to_p)
    n = max(wins["recall"][2], wins["precision"][2])
    rows.append({"measure": HEADLINE[-1], a: np.nan, b: np.nan, "difference": np.nan, "tolerance": np.nan,
                 "band": "", "lo": np.nan, "hi": np.nan, "n_seeds": 1, "n_classes": n,
                 "recall_a": wins["recall"][0], "recall_b": wins["recall"][1], "recall_n": wins["recall"][2],
                 "precision_a": wins["precision"][0], "precision_b": wins["precision"][1],
                 "precision_n": wins["precision"][2], "recall_to": to_r, "precision_to": to_p,
                 "points_to": to if n else "tie", "why": why})
    return pd.DataFrame(rows)


def _and(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _fmt(measure: str, v: float, signed: bool = False) -> str:
    """A value of a verdict measure as the verdict writes it: boost ``1.92x``, mAP ``0.812`` (3 decimals)."""
    if measure == "boost":
        return f"{v:+.2f}x" if signed else f"{v:.2f}x"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def _pr_words(row, side: str, a: str, b: str) -> str:
    """``recall higher in 2 of 6 classes, precision in 6 of 6`` from the point of view of ``side``."""
    k = "a" if side == a else "b"
    return (f"recall higher in {int(row[f'recall_{k}'])} of {int(row['recall_n'])} classes, precision in "
            f"{int(row[f'precision_{k}'])} of {int(row['precision_n'])}")


def _measure_words(row, side: str, a: str, b: str) -> str:
    """``mAP50 (0.820 vs 0.812)`` / ``precision / recall per class (recall higher in 6 of 6 classes, ...)``, from the
    point of view of ``side``."""
    other = b if side == a else a
    if row["measure"] == HEADLINE[-1]:
        return f"{row['measure']} ({_pr_words(row, side, a, b)})"
    iv = (f", 95 % interval of the difference over {int(row['n_seeds'])} seeds {row['lo']:+.3f} to {row['hi']:+.3f}"
          if np.isfinite(row["lo"]) else "")
    return f"{row['measure']} ({_fmt(row['measure'], row[side])} vs {_fmt(row['measure'], row[other])}{iv})"


def _tie_words(row, a: str, b: str) -> str:
    """Why a measure is a tie, in words."""
    m = row["measure"]
    if m == HEADLINE[-1]:
        if row["why"] == "trade-off":
            sa, sb = (a, b) if row["precision_to"] == a else (b, a)
            ka, kb = ("a", "b") if sa == a else ("b", "a")
            return (f"{m} ({sa} higher on precision in {int(row[f'precision_{ka}'])} of {int(row['precision_n'])} "
                    f"classes, {sb} on recall in {int(row[f'recall_{kb}'])} of {int(row['recall_n'])}: a trade-off "
                    "that each model's own confidence cut can move, not a gain)")
        return (f"{m} (recall higher for {a} in {int(row['recall_a'])}, for {b} in {int(row['recall_b'])} of "
                f"{int(row['recall_n'])} classes; precision {int(row['precision_a'])} and {int(row['precision_b'])} "
                f"of {int(row['precision_n'])})")
    if row["band"] == "interval":
        return f"{m} (95 % interval {row['lo']:+.3f} to {row['hi']:+.3f} contains 0)"
    if not np.isfinite(row["difference"]):
        return f"{m} (not measurable)"
    return f"{m} ({_fmt(m, row['difference'], signed=True)}, within ±{_fmt(m, row['tolerance'])})"


def verdict(summary: pd.DataFrame, per_class: pd.DataFrame, tol_boost: float | None = None,
            tol_map: float | None = None, *, intervals: dict | None = None, noise: dict | None = None,
            a: str = "CAL2", b: str = "Control") -> dict:
    """The study's question answered from every headline measure: did the actively selected set (``a``, CAL2) beat
    a random set of the same size (``b``, Control)?

    A pure function of the measures (:func:`summary_table`, :func:`per_class_table`; any pair of models, e.g. a
    later round's): each of mAP50, mAP50-95, the boost and precision / recall per class points to ``a``, to ``b`` or
    is a tie (:func:`verdict_measures`).  A one-seed difference is a tie while it is within the noise measured for
    this setup (``noise``: :func:`measured_noise`, by default :func:`default_noise`; band :data:`NOISE_BAND_SD` sd),
    or within ``tol_map`` / ``tol_boost`` where a caller fixes them; with ``intervals`` over repeated seeds
    (:func:`seed_intervals`) while the interval contains 0.  The outcome is ``"CAL2 better"`` / ``"Control better"``
    when every measure that is not a tie points the same way, ``"mixed"`` when they disagree (the text says which
    points where) and ``"no clear difference"`` when all are ties.

    Returns ``{"outcome", "headline", "text", "measures" (records), "for_a", "for_b", "wins", "noise", ...}``.
    """
    tols = {**({"mAP50": tol_map, "mAP50-95": tol_map} if tol_map is not None else {}),
            **({"boost": tol_boost} if tol_boost is not None else {})}
    noise = noise or default_noise()
    t = verdict_measures(summary, per_class, a=a, b=b, tolerances=tols, intervals=intervals, noise=noise)
    for_a = [r for _, r in t.iterrows() if r["points_to"] == a]
    for_b = [r for _, r in t.iterrows() if r["points_to"] == b]
    ties = [r for _, r in t.iterrows() if r["points_to"] == "tie"]
    outcome = ("CAL2 better" if for_a and not for_b else "Control better" if for_b and not for_a else
               "mixed" if for_a and for_b else "no clear difference")
    head = OUTCOMES[outcome]
    words = []
    if for_b:
        words.append(f"The random set ({b}) is ahead on " + _and(_measure_words(r, b, a, b) for r in for_b) + ".")
    if for_a:
        words.append(f"The actively selected set ({a}) is ahead on " + _and(_measure_words(r, a, a, b) for r in for_a)
                     + ".")
    noisy = [r for r in ties if r["band"] == "noise"]
    other = [r for r in ties if r["band"] != "noise"]
    if noisy:
        words.append("Within the noise measured for this setup (a tie): " + _and(_tie_words(r, a, b) for r in noisy)
                     + ".")
    if other:
        words.append("A tie: " + _and(_tie_words(r, a, b) for r in other) + ".")
    if outcome == "mixed":
        words.append(f"{len(for_b)} of {len(t)} measures favour the random set, {len(for_a)} the actively selected "
                     "one: " + ("on balance the random set did at least as well, so this run gives no sign that "
                                "active selection helped." if len(for_b) >= len(for_a) else
                                "on balance the actively selected set is ahead, but not on every measure."))
    lines = [head, "", " ".join(words), "", markdown_table(verdict_table(t, a, b)), ""]
    if intervals:
        n = max(int(iv.get("n", 0)) for iv in intervals.values())
        lines.append(f"Intervals: 95 % Student-t intervals of the paired difference {a} - {b} over {n} seeds; a "
                     "measure points to a model only when its whole interval is on that side of 0.")
    if (t["band"] == "noise").any():
        lines.append(noise_note(noise))
    if not intervals:
        lines.append("One training run per model and one random Control draw (no repeated seeds in this workspace, "
                     "so no intervals): repeat with other seeds (`alnb run --seed`, or `alnb study`) before drawing "
                     "conclusions.")
    s = summary.set_index("model")
    pr = t.iloc[-1]
    wins = {met: (int(pr[f"{met}_a"]), int(pr[f"{met}_n"])) for met in ("recall", "precision")}
    return {"outcome": outcome, "headline": head, "text": "\n".join(lines), "measures": t.to_dict("records"),
            "for_a": [r["measure"] for r in for_a], "for_b": [r["measure"] for r in for_b],
            "d_boost": float(s.at[a, "boost"] - s.at[b, "boost"]),
            "d_map50_95": float(s.at[a, "mAP50-95"] - s.at[b, "mAP50-95"]), "wins": wins,
            "noise": {m: {**noise[m], "band": float(v)} for m, v in noise_bands(noise).items()}}


def noise_note(noise: dict | None = None) -> str:
    """The sentence saying what "within the noise" means and where the noise comes from."""
    noise = noise or default_noise()
    bands = noise_bands(noise)
    parts = [f"{m} ±{_fmt(m, bands[m])}" for m in bands]
    sources = list(dict.fromkeys(str(noise[m].get("source", "")) for m in bands))
    default = NOISE_SOURCE_DEFAULT in sources
    return (f"Noise: a one-seed difference counts only beyond ±{NOISE_BAND_SD:g} standard deviations of the "
            "seed-to-seed difference between two models trained on two selections of the same size ("
            + ", ".join(parts) + "), measured by " + _and(sources)
            + ("; this workspace records no noise of its own (`alnb.loop.study.record_noise` writes "
               "`metrics/noise.json` from a strategy study on this data)." if default else "."))


def verdict_table(t: pd.DataFrame, a: str = "CAL2", b: str = "Control") -> pd.DataFrame:
    """The verdict's measures as a table for people: value of each model, difference, the tie band, which way it
    points."""
    def val(r, side):
        if r["measure"] == HEADLINE[-1]:
            k = "a" if side == a else "b"
            return (f"recall higher in {int(r[f'recall_{k}'])} of {int(r['recall_n'])}, precision in "
                    f"{int(r[f'precision_{k}'])} of {int(r['precision_n'])} classes")
        return _fmt(r["measure"], r[side])

    rows = []
    for _, r in t.iterrows():
        per = r["measure"] == HEADLINE[-1]
        diff = "" if per else _fmt(r["measure"], r["difference"], signed=True)
        if np.isfinite(r["lo"]):
            diff += f" (95 % interval {r['lo']:+.3f} to {r['hi']:+.3f})"
        if per:
            band = "trade-off = tie" if r["why"] == "trade-off" else "majority of classes"
        elif r["band"] == "interval":
            band = "interval contains 0"
        else:
            band = f"±{_fmt(r['measure'], r['tolerance'])}" + (" (noise)" if r["band"] == "noise" else "")
        rows.append({"measure": r["measure"], a: val(r, a), b: val(r, b), f"difference {a} - {b}": diff,
                     "tie if within": band,
                     "points to": {a: f"{a} (active)", b: f"{b} (random)"}.get(r["points_to"], "tie")})
    return pd.DataFrame(rows)


def reference_note() -> str:
    """The seed article's figures, labelled as such (never as this run's)."""
    bo = STUDY_REFERENCE["boost"]
    return (f"For reference, not measured here: {STUDY_REFERENCE['source']} reported an expected labelling-efficiency "
            f"boost of {bo['CAL1']}x (CAL1) -> {bo['CAL2']}x (CAL2) vs {bo['Control']}x (Control).")


# ------------------------------------------------------------------------------------------------------ markdown
def _prose_num(v, fmt: str = ".4g") -> str:
    """A number for prose (4 significant digits), 'n/a' when missing."""
    return "n/a" if v is None else format(float(v), fmt)


MD_SPECIAL = "\\`*_[]<>|@#~"
"""Characters a markdown renderer would read as markup (``@`` included: ``P@0.25`` becomes a ``mailto:`` link)."""


def md_escape(text) -> str:
    """``text`` with every markdown special character backslash-escaped, so a renderer shows it as written."""
    return "".join("\\" + ch if ch in MD_SPECIAL else ch for ch in str(text))


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f", index: bool = False, na: str = "n/m") -> str:
    """A GitHub-flavoured markdown table (no ``tabulate`` needed).  NaN is written as ``na``; headers and text cells
    are escaped (:func:`md_escape`)."""
    d = df.reset_index() if index else df

    def cell(v):
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return na if not math.isfinite(v) else format(float(v), floatfmt)
        return md_escape(v)

    cols = [md_escape(c) for c in d.columns]
    out = ["| " + " | ".join(cols) + " |",
           "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(d[c]) and not pd.api.types.is_bool_dtype(d[c])
                          else "---" for c in d.columns) + "|"]
    for row in d.itertuples(index=False):
        out.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(out)


def per_class_wide(per_class: pd.DataFrame, metrics=("precision", "recall", "boost")) -> pd.DataFrame:
    """class x (metric, model) table for the report."""
    models = [m for m in MODELS if m in set(per_class["model"])] + sorted(set(per_class["model"]) - set(MODELS))
    classes = list(dict.fromkeys(per_class["class"]))
    out = pd.DataFrame({"class": classes})
    for met in metrics:
        w = per_class.pivot_table(index="class", columns="model", values=met, aggfunc="first", dropna=False)
        for m in models:
            out[f"{met} {m}"] = w.reindex(classes)[m].to_numpy(float) if m in w.columns else np.nan
    return out


def tier_bars_image(ws: Workspace, tier: str) -> str:
    """Markdown for the difficulty bars of ``tier`` as a small SVG drawn into ``figures/tier_<tier>.svg`` (1 green /
    2 yellow / 3 red of 3 bars, 3 purple for failed, as on the figures; no emoji font needed)."""
    # heavy, imported where used (not at module import): matplotlib, alnb.figures.plots (matplotlib)
    from alnb.figures.plots import tier_bars_svg

    p = ws.figures_dir / f"tier_{tier}.svg"
    p.parent.mkdir(parents=True, exist_ok=True)
    svg = tier_bars_svg(tier)
    if not p.is_file() or p.read_text() != svg:
        atomic_write_text(p, svg)
    return f"![{tier}](figures/tier_{tier}.svg)"


def missing_metrics_note(per_class: pd.DataFrame, metrics=("precision", "recall")) -> str:
    """Say which (model, metric) is n/m for *every* class, and why ("" when none): a table never drops it silently."""
    why = {"precision": "it made no prediction above the operating point (precision = TP / predictions is "
                        "undefined without predictions)",
           "recall": "no class has an instance in VAL1"}
    out = []
    for model, g in per_class.groupby("model", sort=False):
        for met in metrics:
            if len(g) and g[met].isna().all():
                out.append(f"{met} of {model} is n/m for every class: {why.get(met, 'not measurable')}.")
    return " ".join(out)


# ------------------------------------------------------------------------------------------------------- figures
def selection_class_counts(ws: Workspace, tags=("GT1", "GT2", "CONTROL")) -> dict:
    """{tag: {class: instances}} from the labels training may use (so only labelled images count)."""
    m = ws.manifest()
    out = {}
    for t in tags:
        counts = np.zeros(len(ws.names), int)
        for s in ws.stems(t, manifest=m):
            try:
                lab = ws.trainable_labels(s, m)
            except WorkspaceError:
                continue
            counts += np.bincount(lab[:, 0].astype(int), minlength=len(ws.names))
        out["Control" if t == "CONTROL" else t] = dict(zip(ws.names, counts.tolist()))
    return out


SETS = {"GT2": "GT2", "Control": "CONTROL"}
"""The two round-2 selections the report compares (name -> manifest tag)."""


def _set_labels(ws: Workspace, stems, manifest) -> list | None:
    """Trainable labels of every stem (None when any is not labelled yet)."""
    out = []
    for s in stems:
        try:
            out.append(ws.trainable_labels(s, manifest))
        except WorkspaceError:
            return None
    return out


def selection_facts(ws: Workspace, model: str = "CAL1") -> dict:
    """What the round-2 selections hold and cost, read from the workspace: ``{"GT2": {...}, "Control": {...}}``
    (sets that exist), each with ``images``, ``tiers`` (its images per category of ``model``'s scores at the
    committed thresholds, or None), and once labelled ``boxes``, ``defect_free``, ``per_class`` ({class: boxes});
    ``predicted_h`` (from the auto-labels and ``model``'s VAL1 precision / recall, as the explorer predicts it:
    :func:`alnb.evaluation.metrics.predicted_cost`) and ``assisted_h`` / ``manual_h`` (the cost model on the labels people gave,
    correcting ``model``'s auto-labels / drawing every box: ``metrics/round_2.json`` when recorded, else
    :func:`alnb.evaluation.step.selection_cost` when the auto-label files exist).  Plus ``"tier_errors"`` (auto-label
    error rate per category in simulation mode, ``metrics/difficulty_vs_errors.json``) when known."""
    m = ws.manifest()
    sets = {name: ws.stems(tag, manifest=m) for name, tag in SETS.items()}
    sets = {k: v for k, v in sets.items() if v}
    if not sets:
        return {}
    sel_rec = _json_or_none(ws, "selection") or {}
    try:
        scores = load_scores(ws, model).set_index("stem")
    except (WorkspaceError, ValueError):
        scores = None
    ev = _json_or_none(ws, f"eval_{model}") or {}
    costs = CostModel(**{k: v for k, v in (ev.get("costs") or {}).items() if k in CostModel.__dataclass_fields__})
    rounds = (_json_or_none(ws, "round_2") or {}).get("chains", {})
    out = {}
    for name, stems in sets.items():
        f = {"images": len(stems), "tiers": None, "predicted_h": float("nan"), "assisted_h": float("nan"),
             "manual_h": float("nan")}
        if scores is not None and {"t_medium", "t_hard"} <= set(sel_rec) and set(stems) <= set(scores.index):
            cat = categorise(scores.reset_index(), sel_rec["t_medium"], sel_rec["t_hard"])
            cat.index = scores.index
            f["tiers"] = {t: int((cat.loc[stems] == t).sum()) for t in ("easy", "medium", "hard", "failed")}
            if "n_det" in scores:
                ov = ev.get("overall", {})
                f["predicted_h"] = predicted_cost(len(stems), int(scores.loc[stems, "n_det"].sum()),
                                                  _num(ov.get("precision")), _num(ov.get("recall")),
                                                  costs)["assisted_h"]
        labels = _set_labels(ws, stems, m)
        if labels is not None:
            counts = np.zeros(len(ws.names), int)
            for lab in labels:
                counts += np.bincount(lab[:, 0].astype(int), minlength=len(ws.names))
            f.update(boxes=int(counts.sum()), defect_free=int(sum(len(lab) == 0 for lab in labels)),
                     per_class=dict(zip(ws.names, counts.tolist())))
            if f["tiers"] is not None:
                failed = set(cat.loc[stems][cat.loc[stems] == "failed"].index)
                f["failed_defect_free"] = int(sum(len(lab) == 0 for s, lab in zip(stems, labels) if s in failed))
            rec = rounds.get({"GT2": "cal", "Control": "control"}[name], {})
            if rec.get("prelabels") == model and "new_assisted_s" in rec:
                f.update(assisted_h=rec["new_assisted_s"] / 3600, manual_h=rec["new_manual_s"] / 3600)
            elif all((ws.root / "autolabels" / model / f"{s}.txt").is_file() for s in stems):
                c = selection_cost(ws, stems, model, costs)
                f.update(assisted_h=c["assisted_s"] / 3600, manual_h=c["manual_s"] / 3600)
        out[name] = f
    dve_path = scores_file(ws, "metrics/difficulty_vs_errors.json", model)
    if dve_path.is_file():
        tiers = json.loads(dve_path.read_text()).get("tiers")
        if tiers:
            out["tier_errors"] = {t: {"n": int(v.get("n", 0)), "error_rate": _num(v.get("error_rate"))}
                                  for t, v in tiers.items()}
    return out


def selection_table(facts: dict) -> pd.DataFrame:
    """One row per set of :func:`selection_facts`: images, images per category, defect-free images, boxes and the
    hours (predicted from the auto-labels; by the cost model on the labels: correcting / drawing everything)."""
    rows = []
    for name in SETS:
        f = facts.get(name)
        if not f:
            continue
        tiers = f.get("tiers") or {}
        rows.append({"set": name, "images": f["images"],
                     **{t: tiers.get(t, np.nan) for t in ("easy", "medium", "hard", "failed")},
                     "defect-free": f.get("defect_free", np.nan), "boxes": f.get("boxes", np.nan),
                     "predicted h": f["predicted_h"], "assisted h": f["assisted_h"], "manual h": f["manual_h"]})
    t = pd.DataFrame(rows)
    for c in ("easy", "medium", "hard", "failed", "defect-free", "boxes"):  # counts: no decimals
        if c in t and t[c].notna().all():
            t[c] = t[c].astype(int)
    return t


def selection_story(facts: dict, model: str = "CAL1") -> str:
    """Why the actively selected GT2 differs from the random Control, in sentences built from
    :func:`selection_facts`: what each cost in hours, which categories each holds, the auto-label error rate per
    category (the failed tier's against the easy one's), defect-free images and the class mix.  "" without both
    sets."""
    g, c = facts.get("GT2"), facts.get("Control")
    if not (g and c):
        return ""
    out = []
    if np.isfinite(g["assisted_h"]) and np.isfinite(c["assisted_h"]):
        out.append(f"**Cost.** Correcting {model}'s auto-labels takes {format_hours(g['assisted_h'])} for GT2 and "
                   f"{format_hours(c['assisted_h'])} for Control by the cost model on the labels people gave "
                   f"({format_hours(g['manual_h'])} and {format_hours(c['manual_h'])} drawing every box)"
                   + (f"; predicted from the auto-labels before labelling (the explorer's estimate): "
                      f"{format_hours(g['predicted_h'])} and {format_hours(c['predicted_h'])}."
                      if np.isfinite(g["predicted_h"]) and np.isfinite(c["predicted_h"]) else "."))
    elif np.isfinite(g["predicted_h"]) and np.isfinite(c["predicted_h"]):
        out.append(f"**Cost.** Predicted from the auto-labels (the explorer's estimate): correcting {model}'s "
                   f"auto-labels takes {format_hours(g['predicted_h'])} for GT2 and {format_hours(c['predicted_h'])} "
                   "for Control.")
    if g.get("tiers") and c.get("tiers"):
        words = lambda t: ", ".join(f"{k} {v}" for k, v in t.items() if v)  # noqa: E731
        out.append(f"**Categories** ({model}'s scores at the committed thresholds): GT2 holds {words(g['tiers'])}; "
                   f"the random Control {words(c['tiers'])}.")
    te = facts.get("tier_errors")
    if te:
        rates = {t: v["error_rate"] for t, v in te.items() if v["n"] and np.isfinite(v["error_rate"])}
        if rates:
            line = ("**Auto-label error rate per category** (share of images whose auto-labels hold a false "
                    "positive or miss a box): " + ", ".join(f"{t} {r:.2f} ({te[t]['n']} images)"
                                                           for t, r in rates.items()) + ".")
            if "failed" in rates and "easy" in rates and (g.get("tiers") or {}).get("failed"):
                cmp = ("lower than" if rates["failed"] < rates["easy"] else
                       "higher than" if rates["failed"] > rates["easy"] else "equal to")
                lowest = rates["failed"] == min(rates.values())
                line += (f" GT2 holds {g['tiers']['failed']} failed image(s) (Control "
                         f"{(c.get('tiers') or {}).get('failed', 'n/a')}), "
                         + ("yet" if cmp == "lower than" else "and") + f" the failed tier's error rate is {cmp} "
                         f"the easy tier's ({rates['failed']:.2f} vs {rates['easy']:.2f})"
                         + (", the lowest of all" if lowest else "") + ".")
                if "failed_defect_free" in g:
                    line += (f" {g['failed_defect_free']} of GT2's {g['tiers']['failed']} failed images hold no "
                             "defect: their empty auto-label was already right.")
            out.append(line)
    if "boxes" in g and "boxes" in c:
        line = (f"**Contents.** GT2 holds {g['boxes']} boxes and {g['defect_free']} defect-free image(s), the random "
                f"Control {c['boxes']} boxes and {c['defect_free']} defect-free image(s).")
        diff = sorted(g["per_class"], key=lambda k: (-abs(g["per_class"][k] - c["per_class"][k]), k))
        big = [k for k in diff if g["per_class"][k] != c["per_class"][k]][:2]
        if big:
            line += (" The largest differences per class: " + _and(
                f"{k} {g['per_class'][k]} vs {c['per_class'][k]}" for k in big) + " (GT2 vs Control).")
        out.append(line)
    return "\n\n".join(out)


GLOSSARY = {
    "CAL1, CAL2, CALk": "computer-assisted-labelling model: a detector trained to pre-label images for people. "
                        "CAL1 is trained on GT1, CAL2 on GT1 + GT2, CALk on GT1 + GT2 + ... + GTk.",
    "Control, Controlk": "the same training on GT1 + a random POOL sample of the same size as GT2 (GTk): the "
                         "yardstick that says whether the active selection beat chance.",
    "GT1": "the first hand-labelled training set.",
    "GT2, GTk": "the images the active-learning rule selects from the POOL in round 2 (k) and people then label.",
    "POOL": "the images without labels the study may select from (in simulation mode their labels exist but stay "
            "hidden until selected).",
    "VAL1": "the held-out validation images every model is measured on; no model is ever trained on them.",
    "easy / medium / hard": "categories of a POOL image's difficulty score, cut by the two thresholds t_medium and "
                            "t_hard.",
    "failed tier": "POOL images where the model found nothing above its auto-label confidence: no auto-label at "
                   "all (an empty radiograph, or a missed defect); counted apart from the three categories.",
    "simulation mode": "a fully labelled dataset used as if the POOL were unlabelled: a simulated annotator reveals "
                       "the true labels of exactly the selected images, and the hidden truth measures the "
                       "auto-labels' errors.",
    "MC dropout": "Monte-Carlo dropout: the detection head's dropout stays on at inference and the head runs T "
                  "times; the spread of the T predictions measures the model's uncertainty.",
    "BALD": "Bayesian active learning by disagreement: the mutual information between the prediction and the "
            "model's weights, i.e. how much the T dropout passes disagree (epistemic uncertainty).",
    "AUROC": "area under the ROC curve: the probability that a score ranks a random image with an auto-label error "
             "above a random image without one (0.5 = chance, 1 = perfect).",
    "mAP50, mAP50-95": "mean average precision over classes, with a box counted correct at IoU >= 0.5 (mAP50) or "
                       "averaged over IoU thresholds 0.5 to 0.95 (mAP50-95, stricter on localisation); the "
                       "evaluation step's, on VAL1.",
    "operating point": "the confidence above which a model's detections become auto-labels (chosen on VAL1 where F1 "
                       "is highest); precision, recall and the boost are measured there.",
    "efficiency boost": "manual / assisted labelling time by the cost model: drawing every box by hand against "
                        "checking the auto-labels, deleting the false ones and drawing the missed ones (1 = no "
                        "saving).",
    "noise (tie band)": "the seed-to-seed spread of a one-seed difference between two selections; a difference "
                        "within it is reported as a tie.",
}
"""The report's glossary: definitions only (no measured number)."""


def glossary_section() -> list:
    """The report's "Glossary" lines (markdown)."""
    return ["## Glossary", "", *[f"* **{md_escape(k)}**: {md_escape(v)}" for k, v in GLOSSARY.items()], ""]


def comparison_figures(ws: Workspace, evals: dict | None = None, disagreement: int = 3) -> dict:
    """Write the comparison figures (PNG+PDF+SVG, stable names) into ``figures/``; returns ``{name: {fmt: path}}``.

    Besides the per-class / mAP / boost bars: every model's training curves (``training_curves_all``) and the
    ``disagreement`` VAL1 images where the models' errors differ most, side by side (``compare_disagreement``;
    0 = skip it)."""
    import matplotlib.pyplot as plt

    from alnb.figures import plots

    evals = evals or load_evals(ws)
    pc, summ = per_class_table(evals), summary_table(evals)
    figs = {"compare_per_class": plots.compare_per_class(pc),
            "compare_map": plots.compare_map(summ),
            "compare_efficiency": plots.compare_efficiency(pc, dict(zip(summ["model"], summ["boost"])))}
    runs = {m: ws.root / "runs" / m / "results.csv" for m in evals}
    runs = {m: p for m, p in runs.items() if p.is_file()}
    if runs:
        figs["training_curves_all"] = plots.training_curves_compare(runs)
    if disagreement and len(evals) > 1 and all("per_image" in ev for ev in evals.values()):
        rows = diagnostics.disagreement(evals, k=disagreement)
        if rows:
            models = [m for m in MODELS if m in evals]
            figs["compare_disagreement"] = plots.side_by_side(diagnostics.side_by_side_items(ws, evals, rows, models),
                                                              ws.names, len(models))
    gt2, ctl = ws.stems("GT2"), ws.stems("CONTROL")
    if gt2 or ctl:
        figs["selection_overlap"] = plots.selection_overlap(overlap(gt2, ctl), "GT2", "Control")
        figs["selection_class_distribution"] = plots.class_distribution(
            selection_class_counts(ws), title="Instances per class: GT1, GT2 (active) and Control (random)")
    out = {}
    for name, fig in figs.items():
        out[name] = plots.save_figure(fig, name, ws)
        plt.close(fig)
    return out


# -------------------------------------------------------------------------------------------------------- report
def _json_or_none(ws, name):
    try:
        return ws.load_json(name)
    except WorkspaceError:
        return None


def dataset_description(ws: Workspace) -> str:
    """One sentence on the data: the embedded synthetic generator (with its settings) or the user's dataset,
    named relative to the workspace (no machine paths)."""
    root = Path(ws.dataset_root)
    try:
        rel = os.path.relpath(root, ws.root)
    except ValueError:  # another drive (Windows)
        rel = root.name
    n = len(ws.manifest())
    stamp = root / "generator.yaml"
    gen = None
    if stamp.is_file():
        try:
            gen = yaml.safe_load(stamp.read_text())
        except yaml.YAMLError:
            gen = None
    classes = ", ".join(ws.names)
    if isinstance(gen, dict) and gen.get("generator") == "alnb.weld":
        return (f"**Synthetic data**: {n} radiographs of steel-pipe welds made by alnb's generator (`alnb.datasets.weld`, "
                f"seed {gen.get('seed')}, {gen.get('width')}x{gen.get('height')} px) in `{rel}`; classes: "
                f"{classes}. Results on synthetic images say how the method behaves, not how it does on real "
                f"radiographs.")
    return f"**Your dataset** `{rel}`: {n} images; classes: {classes}."


RECIPE_TEXT = {"finetune": "fine-tuned from {start}", "finetune-lowlr": "fine-tuned from {start} at a quarter of the "
               "learning rate", "shrink-perturb": "trained from {start} shrunk and perturbed", "fresh": "trained afresh "
               "from the profile's start checkpoint, as CAL1"}
"""How a model's round recipe (:data:`alnb.model.train.RECIPES`, recorded in its ``alnb_run.json``) reads in the
report."""


def recipe_lines(ws, evals: dict) -> list:
    """One line saying how each evaluated model was trained (its recipe, start and epochs, from
    ``runs/<name>/alnb_run.json``), so every number in the report names the protocol that produced it."""
    parts = []
    for name in evals:
        f = ws.root / "runs" / name / "alnb_run.json"
        if not f.is_file():
            continue
        info = json.loads(f.read_text())
        start = Path(str(info.get("model", ""))).parent.parent.name if str(info.get("model", "")).endswith(
            "best.pt") else None
        recipe = info.get("recipe") or ("finetune" if start else "fresh")  # runs from before recipes were recorded
        if name == "CAL1" and not info.get("recipe"):
            how = "trained from the profile's start checkpoint"
        else:
            how = RECIPE_TEXT.get(recipe, recipe).format(start=start or "its start")
        parts.append(f"{md_escape(name)} {how}, {info.get('epochs_run', 'n/a')} epochs")
    if not parts:
        return []
    return ["How each model was trained (its round recipe; `runs/<model>/alnb_run.json`): " + "; ".join(parts)
            + ".", ""]


def _rules_section(evals: dict) -> list:
    """The report's lines on the two operating-point rules (:func:`operating_rules_table`); none without data."""
    t = operating_rules_table(evals)
    if t.empty:
        return []
    c = next(iter(evals.values())).get("costs") or {}
    miss = _prose_num(c.get("t_draw"))
    fp = _prose_num(_num(c.get("t_verify")) + _num(c.get("t_delete")))
    return ["### Operating point: highest F1 vs fewest labelling seconds", "",
            "The auto-label confidence is chosen on VAL1 where F1 is highest (`f1`, the default). F1 weighs a miss "
            f"like a false positive, yet by the cost model a miss costs {miss} s to draw and a false positive {fp} s "
            "to check and delete; `seconds` is the confidence with the fewest predicted assisted seconds. Both on "
            "VAL1 (boost = manual / assisted time; hours on the VAL1 images):", "", markdown_table(t), ""]


def write_report(ws: Workspace, evals: dict | None = None, tol_boost: float | None = None,
                 tol_map: float | None = None, *, intervals: dict | None = None, noise: dict | None = None):
    """Write ``report.md`` (figures embedded by relative path, tables as markdown) and ``metrics/comparison.json``.

    Every path in it is relative to the workspace (the report's folder); special characters are escaped; the tier
    bars are small SVG drawings (``figures/tier_*.svg``), not emoji.  ``intervals``: paired CAL2 - Control
    intervals over repeated seeds (:func:`seed_intervals`) for the verdict, when the caller has them; ``noise``:
    the seed-to-seed noise a one-seed difference is weighed against (default :func:`measured_noise`: the
    workspace's ``metrics/noise.json``, else the project's measured default).  The report also says what GT2 and
    Control cost to label and why they differ (:func:`selection_story`) and ends with a glossary.
    Returns the report path.  Figures that exist in ``figures/`` are embedded; missing ones are skipped.
    """
    evals = evals or load_evals(ws)
    pc, summ = per_class_table(evals), summary_table(evals)
    noise = noise or measured_noise(ws)
    ver = (verdict(summ, pc, tol_boost, tol_map, intervals=intervals, noise=noise)
           if {"CAL2", "Control"} <= set(evals) else None)
    facts = selection_facts(ws)
    story = selection_story(facts)
    counts = ws.tag_counts()
    gt2, ctl = ws.stems("GT2"), ws.stems("CONTROL")
    ov = overlap(gt2, ctl)
    selection = _json_or_none(ws, "selection") or {}
    control = _json_or_none(ws, "control") or {}
    any_ev = next(iter(evals.values()))
    rules = {ev.get("conf_rule", "fixed") for ev in evals.values()}
    op = (f"each model's own auto-label confidence (`conf`), chosen on VAL1 where F1 is highest; IoU >= "
          f"{any_ev.get('iou_thr', 'n/a')} for a match; the study's fixed confidence 0.25 is shown beside"
          if rules - {"fixed"} else f"confidence {any_ev.get('conf', 'n/a')}, IoU {any_ev.get('iou_thr', 'n/a')}")
    tiers = ", ".join(f"{tier_bars_image(ws, k)} {k} {v}" for k, v in selection.get("counts", {}).items()) or "n/a"
    n_val = any_ev.get("n_images", "n/a")
    md = [f"# Active-learning study report: {md_escape(ws.root.name)}", "",
          f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from this workspace folder "
          f"({ws.mode} mode). Every path below is relative to it.", "",
          dataset_description(ws), "", "## Verdict", "",
          ver["text"] if ver else "_CAL2 and Control are not both evaluated yet: no verdict._", "",
          reference_note(), "",
          *([f"Note: GT2 and Control hold the same {len(gt2)} images here (the selection rule took the whole POOL), "
             "so this run cannot separate active selection from chance.", ""] if gt2 and set(gt2) == set(ctl) else []),
          "## Sets", "",
          markdown_table(pd.DataFrame([{"set": k, "images": v} for k, v in counts.items() if v])), "",
          f"GT2 rule: {md_escape(selection.get('rule', 'n/a'))}; thresholds t\\_medium = "
          f"{_prose_num(selection.get('t_medium'))}, t\\_hard = {_prose_num(selection.get('t_hard'))}; POOL images "
          f"per tier (failed counted apart): {tiers}.",
          f"Control: a random sample of {len(ctl)} POOL images (seed {control.get('seed', 'n/a')}), labelled the same "
          f"way. Overlap with GT2: {ov['both']} image(s) in both, {ov['only_a']} only in GT2, {ov['only_b']} only in "
          f"Control.", "",
          *(["### What each set cost, and why the active set differs", "",
             "Hours: *predicted h* from the auto-labels before labelling (the explorer's estimate); *assisted h* by "
             "the cost model on the labels people gave, correcting CAL1's auto-labels; *manual h* drawing every box. "
             "easy / medium / hard / failed: the set's images per category of CAL1's scores.", "",
             markdown_table(selection_table(facts)), "", story, ""] if story else []),
          "CAL1 is trained on GT1, CAL2 on GT1 + GT2, Control on GT1 + Control. **VAL1 is held out: no model is "
          "trained on it** (the study's text can be read as adding the validation set to training; we do not). "
          f"All three are evaluated on the same VAL1 at their operating points ({op}).", "",
          *recipe_lines(ws, evals),
          "## Results on VAL1", "",
          f"mAP50 / mAP50-95: the evaluation step's, on VAL1. boost = manual / assisted labelling time by the cost "
          f"model; beside it the hours on the {n_val} VAL1 images (manual h: drawing every box, assisted h: "
          f"correcting the model's auto-labels, saved h = manual - assisted). P, R, boost at 0.25: the same at the "
          f"study's fixed confidence 0.25.", "",
          markdown_table(summ), "",
          "Per class (n/m = not measurable: no instance of the class in VAL1, or for precision no prediction of it; "
          "saved h: labelling hours the auto-labels save on that class's boxes):",
          "",
          markdown_table(per_class_wide(pc, metrics=("precision", "recall", "boost", "saved h"))), "",
          *_rules_section(evals),
          *rounds_section(ws),
          *next_round_section(ws),
          *review_plan_section(ws),
          *labelling_seconds_section(ws, evals),
          "## Figures", ""]
    for name, caption in FIGURES.items():
        if (ws.figures_dir / f"{name}.png").is_file():
            md += [f"![{caption}](figures/{name}.png)", "", f"*{caption}* "
                   f"([PDF](figures/{name}.pdf), [SVG](figures/{name}.svg))", ""]
    md += glossary_section()
    path = ws.root / "report.md"
    atomic_write_text(path, "\n".join(md) + "\n")
    ws.save_json("comparison", {"summary": summ.to_dict("records"), "per_class": pc.to_dict("records"),
                                "verdict": ver, "overlap": ov, "sizes": counts, "noise": noise,
                                "selections": {k: v for k, v in facts.items() if k in SETS}})
    return path


# -------------------------------------------------------------------------------------------------------- rounds
ROUND_MEASURES = ("mAP50", "mAP50-95", "recall", "boost")
"""The measures of the round-by-round table and its learning curves (each model at its own operating point)."""


def evaluated_rounds(ws: Workspace) -> list:
    """Rounds ``k >= 2`` whose two models (CAL<k> and Control<k>) are both evaluated on VAL1, in order."""
    out, k = [], 2
    while all((ws.root / "metrics" / f"eval_{m}.json").is_file() for m in (cal_name(k), control_name(k))):
        out.append(k)
        k += 1
    return out


def rounds_table(ws: Workspace) -> pd.DataFrame:
    """One row per (chain, round): the CAL chain (CAL1, CAL2, CAL3, ...) and the random control chain (CAL1,
    Control, Control3, ...), both starting from CAL1 in round 1.

    Columns: ``chain`` (``CAL`` / ``Control``), ``round``, ``model``, ``images`` (the chain's cumulative labelled
    training images, GT1 included), ``labelling h`` (the chain's cumulative *assisted* labelling hours for the
    images it added, each round's images corrected from the chain's previous model's auto-labels by the cost model,
    ``metrics/round_<k>.json``; 0 in round 1: GT1 is common to both chains), and :data:`ROUND_MEASURES` on VAL1.
    Rounds whose two models are not both evaluated are left out.
    """
    ks = evaluated_rounds(ws)
    if not (ws.root / "metrics" / "eval_CAL1.json").is_file():
        raise WorkspaceError(f"no metrics/eval_CAL1.json in {ws.root}: train and evaluate CAL1 first.")
    n_gt1 = len(ws.stems("GT1"))
    rows = []
    for chain, arm, name in (("CAL", "cal", cal_name), ("Control", "control", control_name)):
        for k in [1, *ks]:
            model = "CAL1" if k == 1 else name(k)
            summ = summary_table({model: ws.load_json(f"eval_{model}")}).iloc[0]
            rec = (_json_or_none(ws, f"round_{k}") or {}).get("chains", {}).get(arm, {}) if k > 1 else {}
            rows.append({"chain": chain, "round": k, "model": model,
                         "images": n_gt1 + int(rec.get("cumulative_images", 0)) if (k == 1 or rec) else np.nan,
                         "labelling h": _num(rec.get("cumulative_assisted_s", 0.0 if k == 1 else None)) / 3600,
                         **{m: float(summ[m]) for m in ROUND_MEASURES}})
    return pd.DataFrame(rows, columns=["chain", "round", "model", "images", "labelling h", *ROUND_MEASURES])


def round_verdicts(ws: Workspace, tol_boost: float | None = None, tol_map: float | None = None, *,
                   noise: dict | None = None) -> list:
    """:func:`verdict` of CAL<k> against Control<k> for every evaluated round ``k >= 2`` (one run per model: no
    intervals; ties within the workspace's measured noise, :func:`measured_noise`, unless tolerances are given), as
    ``[{"round", "a", "b", "outcome", "for_a", "for_b"}]``."""
    noise = noise or measured_noise(ws)
    out = []
    for k in evaluated_rounds(ws):
        a, b = cal_name(k), control_name(k)
        evals = {m: ws.load_json(f"eval_{m}") for m in (a, b)}
        v = verdict(summary_table(evals), per_class_table(evals), tol_boost, tol_map, noise=noise, a=a, b=b)
        out.append({"round": k, "a": a, "b": b, "outcome": v["outcome"], "for_a": v["for_a"], "for_b": v["for_b"]})
    return out


def has_later_rounds(ws: Workspace) -> bool:
    """Whether a round after 2 is evaluated: the report then shows both chains round by round."""
    return len(evaluated_rounds(ws)) >= 2


def rounds_section(ws: Workspace) -> list:
    """The report's "Round by round" lines (markdown), or ``[]`` without a later round (:func:`has_later_rounds`)."""
    if not has_later_rounds(ws):
        return []
    t = rounds_table(ws)
    words = {"CAL2 better": "the actively selected chain", "Control better": "the random chain",
             "mixed": "the measures disagree", "no clear difference": "no clear difference"}
    ver = []
    for v in round_verdicts(ws):
        ahead = ([f"selected chain ahead on {_and(v['for_a'])}"] if v["for_a"] else []) + (
            [f"random chain ahead on {_and(v['for_b'])}"] if v["for_b"] else [])
        ver.append(f"round {v['round']} ({v['a']} vs {v['b']}): {words[v['outcome']]}"
                   + (f" ({'; '.join(ahead)})" if ahead else ""))
    return ["## Round by round", "",
            "Both chains start from CAL1 (round 1). Each later round, the CAL chain adds the images its current model "
            "selected, the control chain as many random images it had not taken yet; every model is evaluated on the "
            "same VAL1 at its own operating point. images: the chain's cumulative training images (GT1 included); "
            "labelling h: the chain's cumulative assisted labelling hours for the images it added (cost model, each "
            "round's images corrected from the chain's previous model's auto-labels).", "",
            markdown_table(t), "",
            "Per round, from every headline measure (one run per model, no intervals: a single seed decides "
            "nothing; a difference within the noise measured for this setup is a tie): " + "; ".join(ver) + ".", "",
            "![Learning curves of both chains](figures/rounds_curves.png)", "",
            "*Learning curves of both chains over cumulative labelled images (top) and cumulative assisted "
            "labelling hours (bottom).* ([PDF](figures/rounds_curves.pdf), [SVG](figures/rounds_curves.svg))", ""]


def rounds_figure(ws: Workspace):
    """Write ``figures/rounds_curves.{png,pdf,svg}`` (:func:`alnb.figures.plots.rounds_curves`); returns its paths, or None
    without a round after 2 (:func:`has_later_rounds`)."""
    import matplotlib.pyplot as plt

    from alnb.figures import plots

    if not has_later_rounds(ws):
        return None
    fig = plots.rounds_curves(rounds_table(ws))
    out = plots.save_figure(fig, "rounds_curves", ws)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------------------------------- next round
def next_round_markdown(res) -> list:
    """The "Next round" lines (markdown) of a :class:`alnb.loop.forecaststep.NextRound`: the forecast per measure
    with its interval, the model and where the interval comes from, the stop rule's advice with the numbers behind it,
    and :data:`alnb.loop.forecast.CAVEAT`."""
    md = ["## Next round", ""]
    if not res.ok:
        return md + [f"No forecast: {md_escape(res.note)}.", "", f"*{CAVEAT}*", ""]
    pts = pd.DataFrame([{"round": r.round, "model": r.model, "images": r.images,
                         **{m: r.measures[m] for m in res.forecasts},
                         "new labelling h": _num(r.new_labelling_s) / 3600} for r in res.rounds])
    last = res.rounds[-1]
    rows = []
    for m, f in res.forecasts.items():
        g = res.gains[m]
        rows.append({"measure": m, f"now ({last.model})": last.measures[m], f"forecast at {res.n_next}": f.mean,
                     f"{f.level:.0%} interval": f"{f.low:.3f} to {f.high:.3f}", "gain": f"{g.mean:+.3f}",
                     "gain interval": f"{g.low:+.3f} to {g.high:+.3f}", "model": f.model,
                     "interval from": res.interval_source[m]})
    src = []
    for m, f in res.forecasts.items():
        if res.interval_source[m] == "backtest":
            b = (res.backtest or {}).get("measures", {}).get(m) or {}
            src.append(f"{m}: the backtest's one-step-ahead error sd {b.get('error_scale', float('nan')):.4f} and "
                       f"bias {b.get('bias', float('nan')):+.4f} (subtracted) over {b.get('n_forecasts', 'n/a')} "
                       f"forecasts of {md_escape(Path(res.backtest['file']).name)}")
        else:
            src.append(f"{m}: {md_escape(f.note)}")
    a = res.advice
    reason = a.reason[:-len(CAVEAT)].rstrip() if a.reason.endswith(CAVEAT) else a.reason
    reason = reason.split(": ", 1)[1] if reason.startswith(("stop: ", "continue: ")) else reason
    nums = pd.DataFrame([{"number": k, "value": v if isinstance(v, str) else f"{_num(v):.4g}"}
                         for k, v in a.numbers.items()])
    rv = res.review or {}
    review = ("no review plan in this workspace" if not rv else
              f"{md_escape(rv['model'])}'s plan: reviewing all {rv['images']} unlabelled images "
              f"{_num(rv['review_all_h']):.2f} h, its cut {_num(rv['cut_h']):.2f} h"
              + (f"; {_num(rv['hours_saved_per_point']):.2f} review h saved per point of mAP50-95 "
                 f"({md_escape(rv['note'])})" if rv.get("hours_saved_per_point") is not None
                 else f" ({md_escape(rv.get('note', ''))})" if rv.get("note") else "")
              + (f"; hours rule {md_escape(rv['hours_rule'])}" if rv.get("hours_rule") else "")
              + (f"; reviewing the {rv['review_next_h']['images_left']} images left after round {res.next_round} "
                 f"predicted {_num(rv['review_next_h']['mean']):.2f} h ({_num(rv['review_next_h']['low']):.2f} to "
                 f"{_num(rv['review_next_h']['high']):.2f})" if rv.get("review_next_h") else ""))
    change = ("not measured" if res.label_change is None else f"{res.label_change:.1%} of boxes changed")
    hours = "unknown" if res.next_round_hours is None else f"{res.next_round_hours:.2f} h"
    return md + [
        f"Is round {res.next_round} worth it? The CAL chain's learning curve on VAL1 ({len(res.rounds)} rounds, "
        f"cumulative labelled images, GT1 included) extrapolated to {res.n_next} images: +{res.budget} "
        f"({md_escape(res.budget_source)}).", "",
        markdown_table(pts), "", markdown_table(pd.DataFrame(rows)), "",
        "Intervals: " + "; ".join(src) + ".", "",
        f"Next round's labelling: {hours} ({md_escape(res.hours_note)}). Review plan: {review}. Auto-label change "
        f"since the last round: {change} ({md_escape(res.label_change_note)}).", "",
        f"**Advice: {'stop' if a.stop else 'continue'}.** {md_escape(reason)}", "",
        "The numbers behind it:", "", markdown_table(nums), "",
        f"*{CAVEAT}*", ""]


def next_round_section(ws: Workspace) -> list:
    """:func:`alnb.loop.forecaststep.write_forecast` (``metrics/forecast.json``) and its :func:`next_round_markdown`."""
    md = next_round_markdown(write_forecast(ws))
    return md[:-1] + ["The forecast's record: `metrics/forecast.json`.", ""]


# --------------------------------------------------------------------------------------------------- review plan
def review_plan_section(ws: Workspace) -> list:
    """"Review plan" (:mod:`alnb.loop.reviewstep`): the curve figure, the chosen cut and its numbers, the reported cuts
    (in simulation mode the actual residual errors and hours beside the predicted ones), the orders at equal hours
    and the review hours per round.  Empty when no plan was written (``alnb review``)."""
    from alnb.figures.plots import review_curve, save_figure

    if not (ws.root / "metrics" / "review_plan.json").is_file() or not (ws.root / reviewstep.CURVE_FILE).is_file():
        return []
    _, cv, s = reviewstep.load_plan(ws)
    fig = review_curve(cv, s["cut"])
    save_figure(fig, "review_plan", ws)
    c, cal = s["cut"], s["calibration"]
    sim = bool(s.get("simulation"))
    rows = []
    for r in s["cuts"]:
        row = {"reviewed": r["reviewed"], "accepted": r["accepted"], "review h": r["review_h"],
               "saved h": r["saved_h"],
               "err. images [95 %]": f"{r['err_images']:.1f} [{r.get('err_images_lo', float('nan')):.0f}, "
                                     f"{r.get('err_images_hi', float('nan')):.0f}]",
               "wrong boxes [95 %]": f"{r['wrong_boxes']:.1f} [{r.get('wrong_boxes_lo', float('nan')):.0f}, "
                                     f"{r.get('wrong_boxes_hi', float('nan')):.0f}]"}
        if sim:
            row.update({"actual err. images": r["actual_err_images"], "actual wrong boxes": r["actual_wrong_boxes"],
                        "actual review h": r["actual_review_h"]})
        rows.append(row)
    asked = ", ".join(f"{k} = {v}" for k, v in c["asked"].items())
    ev = cal["cross_fitted"]
    md = ["## Review plan", "",
          f"Which auto-labels of {md_escape(s['model'])} people must check, for the {s['n_images']} unlabelled POOL "
          f"images: ordered by the wrong boxes (false + missed) a review is expected to fix per second it costs "
          f"(cost model on each image's auto-labels). The error probability and the expected false / missed boxes "
          f"come from the difficulty scores, calibrated on VAL1 ({cal['method']}; cross-fitted Brier score: "
          f"logistic {ev['logistic']['brier']:.3f}, isotonic {ev['isotonic']['brier']:.3f}). Reviewing everything: "
          f"{s['review_all_h']:.2f} h; drawing everything by hand: {s['manual_all_h']:.2f} h.", "",
          f"![Review plan](figures/review_plan.png)", "",
          f"**Chosen cut** ({md_escape(asked)}): review {c['reviewed']} images ({c['review_h']:.2f} h), accept "
          f"{c['accepted']}; predicted {c['err_images']:.1f} accepted images with an error "
          f"({100 * c['err_rate']:.1f} %) and {c['wrong_boxes']:.1f} wrong boxes; {c['saved_h']:.2f} h saved against "
          f"drawing everything.", "",
          markdown_table(pd.DataFrame(rows), floatfmt=".2f"), ""]
    if sim and s.get("orders_at_equal_hours"):
        t = pd.DataFrame(s["orders_at_equal_hours"])
        md += ["Orders at equal (true) review hours, one seed (simulation): residual wrong boxes and images with an "
               "error.", "", markdown_table(t, floatfmt=".2f"), ""]
    rounds = _json_or_none(ws, "review_plan_rounds") or {}
    if rounds:  # one line per model that planned (alnb run --review-plan, notebook 06 each round, notebook 07)
        md += ["Review hours for the remaining POOL per model (what a round of training buys in review time):", "",
               markdown_table(pd.DataFrame([{"model": k, "images": v["n_images"], "review all h": v["review_all_h"],
                                             "draw all h": v["manual_all_h"], "cut h": v["cut"]["review_h"]}
                                            for k, v in rounds.items()]), floatfmt=".2f"), ""]
    return md


def labelling_seconds_section(ws, evals: dict | None = None) -> list:
    """The report's "Labelling seconds: measured vs assumed" section (Markdown lines)."""
    summary = summarise(ws)
    out = ["## Labelling seconds: measured vs assumed", ""]
    if summary is None:
        return out + [f"No annotation times in this workspace (simulation mode, or labels imported from files "
                      f"without them): every hour and boost here uses {DEFAULTS_NOTE}. Import Label Studio JSON "
                      f"exports (`alnb import-labels`, or `alnb serve`'s Start training) and the annotators' own "
                      f"seconds replace them once {MIN_ANNOTATIONS} annotations are measured (`alnb costs`).", ""]
    fit = summary["fit"]
    out += [f"Costs used in this report: **{fit.message}**"
            + ("." if fit.trusted else f"; {DEFAULTS_NOTE}."), "",
            f"Seconds per action (lead time = t_image + t_verify x proposals + t_delete x deleted + t_draw x drawn "
            f"+ t_adjust x moved; non-negative least squares, 95 % intervals by bootstrap over annotations; outlier "
            f"rule: {OUTLIER_RULE}; t_adjust is measured for reference, the boost's matching prices a moved box as "
            f"verified):", "", markdown_table(fit_table(fit), floatfmt=".2f"), ""]
    if fit.per_annotator:
        rows = [{"annotator": a, "annotations": f.n, **{c: f.value[c] for c in COEFS}}
                for a, f in fit.per_annotator.items()]
        out += ["Per annotator (each fitted alone):", "", markdown_table(pd.DataFrame(rows), floatfmt=".2f"), ""]
    out += ["Measured seconds per image and per box (outliers left out):", "",
            markdown_table(summary["times"], floatfmt=".1f"), ""]
    if np.isfinite(summary["boost"]):
        out += [f"The team's own boost, measured: **{summary['boost']:.2f}x** (seconds per box from scratch / "
                f"pre-labelled).", ""]
    if evals:
        out += ["Each model's predicted boost on VAL1 under both cost models:", "",
                markdown_table(boost_both(evals, fit.fitted), floatfmt=".2f"), ""]
    return out


@locked
def compare(ws: Workspace) -> Path:
    """Comparison figures + ``md``; returns the report path."""
    evals = load_evals(ws)
    comparison_figures(ws, evals)
    rounds_figure(ws)  # rounds 3, 4, ...: both chains round by round (nothing before)
    return write_report(ws, evals)
