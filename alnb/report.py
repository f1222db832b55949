"""CAL1 / CAL2 / Control comparison: tables, figures, a verdict computed from the numbers, and ``report.md``.

Input is the evaluation dicts written by :func:`alnb.evaluation.evaluate` (``metrics/eval_<MODEL>.json``); the functions
here turn them into tidy tables so they can be tested on hand-made dicts.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from alnb.workspace import Workspace, WorkspaceError, atomic_write_text

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
    "cal1_ap_per_class": "CAL1's AP50 and AP50-95 per class on VAL1 (ultralytics' ap_per_class on the auto-label boxes).",
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

    ``evals``: ``{model: dict}`` as written by :func:`alnb.evaluation.evaluate` (``per_class``: list of dicts with
    ``class, instances, measurable, precision, recall, f1, boost``).  A class without instances in VAL1 has NaN
    metrics and ``measurable=False`` (never 0).
    """
    from alnb.metrics import CostModel, efficiency_boost

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
"""Differences of at most this much count as a tie (mAP in mAP units, boost in x)."""

HEADLINE = ("mAP50", "mAP50-95", "boost", "recall per class", "precision per class")
"""Every measure the verdict weighs, in the order it reports them."""

OUTCOMES = {
    "CAL2 better": "**The actively selected GT2 set helped more than a random set of the same size.**",
    "Control better": "**A random set of the same size helped more than the actively selected GT2 set.**",
    "mixed": "**The measures disagree: no clear winner between the actively selected GT2 set and a random set of "
             "the same size.**",
    "no clear difference": "**No clear difference between the actively selected GT2 set and a random set of the "
                           "same size.**",
}


def paired_interval(diffs) -> dict:
    """Mean and 95 % Student-t interval of paired differences (one per seed): ``{mean, lo, hi, sd, n}``
    (:func:`alnb.stats.interval`); ``lo``/``hi`` NaN with fewer than two finite values."""
    from alnb.stats import interval

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


def verdict_measures(summary: pd.DataFrame, per_class: pd.DataFrame, *, a: str = "CAL2", b: str = "Control",
                     tolerances: dict | None = None, intervals: dict | None = None) -> pd.DataFrame:
    """One row per headline measure (:data:`HEADLINE`): both values, the difference ``a - b``, the tolerance, the
    interval over seeds (when given) and ``points_to`` (``a``, ``b`` or ``tie``).

    Per-class recall / precision: ``a`` and ``b`` are the number of measurable classes where that model is higher,
    of ``n_classes``; it points to the model that is higher in more than half of them.
    """
    tol = {**TOLERANCES, **(tolerances or {})}
    intervals = intervals or {}
    s = summary.set_index("model")
    missing = [m for m in (a, b) if m not in s.index]
    if missing:
        raise ValueError(f"verdict needs evaluations of {a} and {b}; missing {missing}.")
    rows = []
    for m in ("mAP50", "mAP50-95", "boost"):
        va, vb = float(s.at[a, m]), float(s.at[b, m])
        iv = intervals.get(m)
        rows.append({"measure": m, a: va, b: vb, "difference": va - vb, "tolerance": tol[m],
                     "lo": (iv or {}).get("lo", np.nan), "hi": (iv or {}).get("hi", np.nan),
                     "n_seeds": (iv or {}).get("n", 1), "n_classes": np.nan,
                     "points_to": _direction(va - vb, tol[m], iv, a, b)})
    pc = per_class[per_class["measurable"].astype(bool)]
    for met in ("recall", "precision"):
        w = pc.pivot_table(index="class", columns="model", values=met, aggfunc="first")
        both = w[[a, b]].dropna() if {a, b} <= set(w.columns) else pd.DataFrame(columns=[a, b])
        wa, wb, n = int((both[a] > both[b]).sum()), int((both[b] > both[a]).sum()), int(len(both))
        to = a if wa * 2 > n else (b if wb * 2 > n else "tie")
        rows.append({"measure": f"{met} per class", a: wa, b: wb, "difference": wa - wb, "tolerance": np.nan,
                     "lo": np.nan, "hi": np.nan, "n_seeds": 1, "n_classes": n, "points_to": to if n else "tie"})
    return pd.DataFrame(rows)


def _and(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _measure_words(row, side: str, a: str, b: str) -> str:
    """``mAP50 (0.820 vs 0.812)`` / ``recall per class (6 of 6 classes)``, from the point of view of ``side``."""
    other = b if side == a else a
    if row["measure"].endswith("per class"):
        return f"{row['measure']} (higher in {int(row[side])} of {int(row['n_classes'])} classes)"
    f = (lambda v: f"{v:.2f}x") if row["measure"] == "boost" else (lambda v: f"{v:.3f}")
    iv = (f", 95 % interval of the difference over {int(row['n_seeds'])} seeds {row['lo']:+.3f} to {row['hi']:+.3f}"
          if np.isfinite(row["lo"]) else "")
    return f"{row['measure']} ({f(row[side])} vs {f(row[other])}{iv})"


def verdict(summary: pd.DataFrame, per_class: pd.DataFrame, tol_boost: float = 0.05, tol_map: float = 0.005, *,
            intervals: dict | None = None, a: str = "CAL2", b: str = "Control") -> dict:
    """The study's question answered from every headline measure: did the actively selected set (``a``, CAL2) beat
    a random set of the same size (``b``, Control)?

    A pure function of the measures (:func:`summary_table`, :func:`per_class_table`; any pair of models, e.g. a
    later round's): each of mAP50, mAP50-95, the boost and per-class recall / precision points to ``a``, to ``b`` or
    is a tie (:func:`verdict_measures`: within ``tol_map`` / ``tol_boost``, or, with ``intervals`` over repeated
    seeds (:func:`seed_intervals`), an interval that contains 0).  The outcome is ``"CAL2 better"`` / ``"Control
    better"`` when every measure that is not a tie points the same way, ``"mixed"`` when they disagree (the text
    says which points where) and ``"no clear difference"`` when all are ties.

    Returns ``{"outcome", "headline", "text", "measures" (records), "for_a", "for_b", "wins", ...}``.
    """
    tol = {"mAP50": tol_map, "mAP50-95": tol_map, "boost": tol_boost}
    t = verdict_measures(summary, per_class, a=a, b=b, tolerances=tol, intervals=intervals)
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
    if ties:
        words.append("Within the tolerance (a tie): " + _and(
            r["measure"] + (f" (|difference| <= {r['tolerance']:g})" if np.isfinite(r["tolerance"]) else "")
            for r in ties) + ".")
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
    else:
        lines.append("One training run per model and one random Control draw (no repeated seeds in this workspace, "
                     "so no intervals): treat small differences as noise; repeat with other seeds (`alnb run "
                     "--seed`, or `alnb study`) before drawing conclusions.")
    s = summary.set_index("model")
    wins = {r["measure"].split()[0]: (int(r[a]), int(r["n_classes"])) for _, r in t.iterrows()
            if r["measure"].endswith("per class")}
    return {"outcome": outcome, "headline": head, "text": "\n".join(lines), "measures": t.to_dict("records"),
            "for_a": [r["measure"] for r in for_a], "for_b": [r["measure"] for r in for_b],
            "d_boost": float(s.at[a, "boost"] - s.at[b, "boost"]),
            "d_map50_95": float(s.at[a, "mAP50-95"] - s.at[b, "mAP50-95"]), "wins": wins}


def verdict_table(t: pd.DataFrame, a: str = "CAL2", b: str = "Control") -> pd.DataFrame:
    """The verdict's measures as a table for people: value of each model, difference, which way it points."""
    def val(r, side):
        if r["measure"].endswith("per class"):
            return f"higher in {int(r[side])} of {int(r['n_classes'])} classes"
        return f"{r[side]:.2f}x" if r["measure"] == "boost" else f"{r[side]:.3f}"

    rows = []
    for _, r in t.iterrows():
        per = r["measure"].endswith("per class")
        diff = "" if per else (f"{r['difference']:+.2f}x" if r["measure"] == "boost" else f"{r['difference']:+.3f}")
        if np.isfinite(r["lo"]):
            diff += f" (95 % interval {r['lo']:+.3f} to {r['hi']:+.3f})"
        rows.append({"measure": r["measure"], a: val(r, a), b: val(r, b), f"difference {a} - {b}": diff,
                     "tie if within": "" if per else (f"{r['tolerance']:g}x" if r["measure"] == "boost"
                                                      else f"{r['tolerance']:g}"),
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
    from alnb.plots import tier_bars_svg

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


def comparison_figures(ws: Workspace, evals: dict | None = None, disagreement: int = 3) -> dict:
    """Write the comparison figures (PNG+PDF+SVG, stable names) into ``figures/``; returns ``{name: {fmt: path}}``.

    Besides the per-class / mAP / boost bars: every model's training curves (``training_curves_all``) and the
    ``disagreement`` VAL1 images where the models' errors differ most, side by side (``compare_disagreement``;
    0 = skip it)."""
    import matplotlib.pyplot as plt

    from alnb import plots
    from alnb.select import overlap

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
        from alnb import diagnostics

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
    import os

    import yaml

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
        return (f"**Synthetic data**: {n} radiographs of steel-pipe welds made by alnb's generator (`alnb.weld`, "
                f"seed {gen.get('seed')}, {gen.get('width')}x{gen.get('height')} px) in `{rel}`; classes: "
                f"{classes}. Results on synthetic images say how the method behaves, not how it does on real "
                f"radiographs.")
    return f"**Your dataset** `{rel}`: {n} images; classes: {classes}."


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


def write_report(ws: Workspace, evals: dict | None = None, tol_boost: float = 0.05, tol_map: float = 0.005, *,
                 intervals: dict | None = None):
    """Write ``report.md`` (figures embedded by relative path, tables as markdown) and ``metrics/comparison.json``.

    Every path in it is relative to the workspace (the report's folder); special characters are escaped; the tier
    bars are small SVG drawings (``figures/tier_*.svg``), not emoji.  ``intervals``: paired CAL2 - Control
    intervals over repeated seeds (:func:`seed_intervals`) for the verdict, when the caller has them.
    Returns the report path.  Figures that exist in ``figures/`` are embedded; missing ones are skipped.
    """
    from alnb.select import overlap

    evals = evals or load_evals(ws)
    pc, summ = per_class_table(evals), summary_table(evals)
    ver = verdict(summ, pc, tol_boost, tol_map, intervals=intervals) if {"CAL2", "Control"} <= set(evals) else None
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
          "CAL1 is trained on GT1, CAL2 on GT1 + GT2, Control on GT1 + Control. **VAL1 is held out: no model is "
          "trained on it** (the study's text can be read as adding the validation set to training; we do not). "
          f"All three are evaluated on the same VAL1 at their operating points ({op}).", "",
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
          "## Figures", ""]
    for name, caption in FIGURES.items():
        if (ws.figures_dir / f"{name}.png").is_file():
            md += [f"![{caption}](figures/{name}.png)", "", f"*{caption}* "
                   f"([PDF](figures/{name}.pdf), [SVG](figures/{name}.svg))", ""]
    path = ws.root / "report.md"
    atomic_write_text(path, "\n".join(md) + "\n")
    ws.save_json("comparison", {"summary": summ.to_dict("records"), "per_class": pc.to_dict("records"),
                                "verdict": ver, "overlap": ov, "sizes": counts})
    return path


# -------------------------------------------------------------------------------------------------------- rounds
ROUND_MEASURES = ("mAP50", "mAP50-95", "recall", "boost")
"""The measures of the round-by-round table and its learning curves (each model at its own operating point)."""


def evaluated_rounds(ws: Workspace) -> list:
    """Rounds ``k >= 2`` whose two models (CAL<k> and Control<k>) are both evaluated on VAL1, in order."""
    from alnb.workspace import cal_name, control_name

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
    from alnb.workspace import cal_name, control_name

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


def round_verdicts(ws: Workspace, tol_boost: float = 0.05, tol_map: float = 0.005) -> list:
    """:func:`verdict` of CAL<k> against Control<k> for every evaluated round ``k >= 2`` (one run per model: no
    intervals), as ``[{"round", "a", "b", "outcome", "for_a", "for_b"}]``."""
    from alnb.workspace import cal_name, control_name

    out = []
    for k in evaluated_rounds(ws):
        a, b = cal_name(k), control_name(k)
        evals = {m: ws.load_json(f"eval_{m}") for m in (a, b)}
        v = verdict(summary_table(evals), per_class_table(evals), tol_boost, tol_map, a=a, b=b)
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
            "nothing): " + "; ".join(ver) + ".", "",
            "![Learning curves of both chains](figures/rounds_curves.png)", "",
            "*Learning curves of both chains over cumulative labelled images (top) and cumulative assisted "
            "labelling hours (bottom).* ([PDF](figures/rounds_curves.pdf), [SVG](figures/rounds_curves.svg))", ""]


def rounds_figure(ws: Workspace):
    """Write ``figures/rounds_curves.{png,pdf,svg}`` (:func:`alnb.plots.rounds_curves`); returns its paths, or None
    without a round after 2 (:func:`has_later_rounds`)."""
    import matplotlib.pyplot as plt

    from alnb import plots

    if not has_later_rounds(ws):
        return None
    fig = plots.rounds_curves(rounds_table(ws))
    out = plots.save_figure(fig, "rounds_curves", ws)
    plt.close(fig)
    return out
