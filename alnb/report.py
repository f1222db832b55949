"""CAL1 / CAL2 / Control comparison: tables, figures, a verdict computed from the numbers, and ``report.md``.

Input is the evaluation dicts written by :func:`alnb.evaluation.evaluate` (``metrics/eval_<MODEL>.json``); the functions
here turn them into tidy tables so they can be tested on hand-made dicts.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from alnb.workspace import Workspace, WorkspaceError, atomic_write_text

MODELS = ("CAL1", "CAL2", "Control")
FIGURES = {  # stable figure names -> caption
    "score_histogram": "Difficulty scores of the POOL images with the thresholds used for GT2.",
    "gt2_thumbnails_hard": "Hardest POOL images with CAL1's auto-labels.",
    "selection_class_distribution": "Instances per class in GT1, GT2 and Control (the labels the annotator gave).",
    "selection_overlap": "Overlap between the actively selected GT2 set and the random Control set.",
    "compare_per_class": "Precision and recall per class on VAL1 at the operating point (n/m = not measurable).",
    "compare_map": "mAP50 and mAP50-95 on VAL1.",
    "compare_efficiency": "Expected labelling-efficiency boost per class and overall (1 = no saving).",
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
    rows = []
    for model, ev in evals.items():
        for r in ev["per_class"]:
            n_gt = _num(r.get("instances"))
            meas = bool(r.get("measurable", n_gt > 0))
            rows.append({"model": model, "class": str(r["class"]), "precision": _num(r.get("precision")),
                         "recall": _num(r.get("recall")), "f1": _num(r.get("f1")), "boost": _num(r.get("boost")),
                         "n_gt": n_gt, "measurable": meas})
    t = pd.DataFrame(rows, columns=["model", "class", "precision", "recall", "f1", "boost", "n_gt", "measurable"])
    t.loc[~t["measurable"].astype(bool), ["precision", "recall", "f1", "boost"]] = np.nan
    return t


def summary_table(evals: dict) -> pd.DataFrame:
    """One row per model: ``mAP50, mAP50-95``, the operating point ``conf`` and the overall ``precision, recall, f1,
    boost`` there, and the same at the study's fixed confidence 0.25 (``P@0.25, R@0.25, boost@0.25``) when recorded."""
    rows = []
    for model, ev in evals.items():
        ov = ev.get("overall", {})
        fx = (ev.get("at_fixed_conf") or {}).get("overall", {})
        rows.append({"model": model, "mAP50": _num(ev.get("mAP50")), "mAP50-95": _num(ev.get("mAP50-95")),
                     "conf": _num(ev.get("conf")),
                     "precision": _num(ov.get("precision")), "recall": _num(ov.get("recall")),
                     "f1": _num(ov.get("f1")), "boost": _num(ov.get("boost")),
                     "P@0.25": _num(fx.get("precision")), "R@0.25": _num(fx.get("recall")),
                     "boost@0.25": _num(fx.get("boost"))})
    return pd.DataFrame(rows, columns=["model", "mAP50", "mAP50-95", "conf", "precision", "recall", "f1", "boost",
                                       "P@0.25", "R@0.25", "boost@0.25"])


# ------------------------------------------------------------------------------------------------------- verdict
def verdict(summary: pd.DataFrame, per_class: pd.DataFrame, tol_boost: float = 0.05, tol_map: float = 0.005) -> dict:
    """The study's question answered from the numbers: did the actively selected GT2 beat a random set of equal size?

    Compares CAL2 with Control (and both with CAL1) on the overall boost and mAP50-95, and counts classes where
    CAL2's recall/precision beat Control's.  Differences within ``tol_boost`` (boost) / ``tol_map`` (mAP) count as
    ties.  Returns ``{"outcome": "CAL2 better" | "Control better" | "no clear difference", "text": markdown, ...}``.
    """
    s = summary.set_index("model")
    need = [m for m in ("CAL2", "Control") if m not in s.index]
    if need:
        raise ValueError(f"verdict needs evaluations of CAL2 and Control; missing {need}.")

    def val(m, col):
        return float(s.at[m, col]) if m in s.index else float("nan")

    d_boost = val("CAL2", "boost") - val("Control", "boost")
    d_map = val("CAL2", "mAP50-95") - val("Control", "mAP50-95")
    votes = []
    for d, tol in ((d_boost, tol_boost), (d_map, tol_map)):
        votes.append(0 if not np.isfinite(d) or abs(d) <= tol else int(np.sign(d)))
    score = sum(votes)
    outcome = "CAL2 better" if score > 0 and min(votes) >= 0 else (
        "Control better" if score < 0 and max(votes) <= 0 else "no clear difference")

    pc = per_class[per_class["measurable"]]
    wide = {met: pc.pivot_table(index="class", columns="model", values=met, aggfunc="first") for met in
            ("recall", "precision")}
    wins = {}
    for met, w in wide.items():
        if {"CAL2", "Control"} <= set(w.columns):
            both = w[["CAL2", "Control"]].dropna()
            wins[met] = (int((both["CAL2"] > both["Control"]).sum()), int(len(both)))
        else:
            wins[met] = (0, 0)

    def fmt_x(v):
        return f"{v:.2f}x" if np.isfinite(v) else "n/a"

    def fmt(v):
        return f"{v:.3f}" if np.isfinite(v) else "n/a"

    lines = []
    if "CAL1" in s.index:
        lines.append(f"- Efficiency boost: CAL1 {fmt_x(val('CAL1', 'boost'))} -> CAL2 {fmt_x(val('CAL2', 'boost'))} "
                     f"(actively selected GT2) vs Control {fmt_x(val('Control', 'boost'))} (random set of the same "
                     f"size). Study: 4.9x -> 5.3x vs 5.1x.")
        lines.append(f"- mAP50-95: CAL1 {fmt(val('CAL1', 'mAP50-95'))}, CAL2 {fmt(val('CAL2', 'mAP50-95'))}, "
                     f"Control {fmt(val('Control', 'mAP50-95'))}; mAP50: CAL1 {fmt(val('CAL1', 'mAP50'))}, CAL2 "
                     f"{fmt(val('CAL2', 'mAP50'))}, Control {fmt(val('Control', 'mAP50'))}.")
    else:
        lines.append(f"- Efficiency boost: CAL2 {fmt_x(val('CAL2', 'boost'))} vs Control {fmt_x(val('Control', 'boost'))}.")
        lines.append(f"- mAP50-95: CAL2 {fmt(val('CAL2', 'mAP50-95'))} vs Control {fmt(val('Control', 'mAP50-95'))}.")
    for met, (w, n) in wins.items():
        if n:
            lines.append(f"- {met.capitalize()} per class: CAL2 above Control in {w} of {n} measurable classes.")
    head = {"CAL2 better": "**The actively selected GT2 set helped more than a random set of the same size.**",
            "Control better": "**A random set of the same size helped more than the actively selected GT2 set.**",
            "no clear difference": "**No clear difference between the actively selected GT2 set and a random set of "
                                   "the same size** (the boost and mAP disagree or differ by less than the "
                                   f"tolerances: {tol_boost}x boost, {tol_map} mAP)."}[outcome]
    text = head + "\n\n" + "\n".join(lines) + (
        "\n\nOne training run per model and one random Control draw: treat small differences as noise; repeat with "
        "other seeds (`alnb run --seed`) before drawing conclusions.")
    return {"outcome": outcome, "d_boost": d_boost, "d_map50_95": d_map, "votes": votes, "wins": wins, "text": text}


# ------------------------------------------------------------------------------------------------------ markdown
def _prose_num(v, fmt: str = ".4g") -> str:
    """A number for prose (4 significant digits), 'n/a' when missing."""
    return "n/a" if v is None else format(float(v), fmt)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f", index: bool = False, na: str = "n/m") -> str:
    """A GitHub-flavoured markdown table (no ``tabulate`` needed).  NaN is written as ``na``."""
    d = df.reset_index() if index else df

    def cell(v):
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return na if not math.isfinite(v) else format(float(v), floatfmt)
        return str(v).replace("|", "\\|")

    cols = [str(c) for c in d.columns]
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


TIER_GLYPHS = {"easy": "\U0001F7E9", "medium": "\U0001F7E8", "hard": "\U0001F7E5", "failed": "\U0001F7EA"}  # squares


def tier_glyphs(tier: str) -> str:
    """The difficulty bars in text (markdown keeps no colours of its own): green 1 / yellow 2 / red 3 of 3 squares,
    3 purple for failed, unlit squares white, as on the figures (:func:`alnb.plots.tier_bars`)."""
    from alnb.plots import n_bars

    n = n_bars(tier)
    return TIER_GLYPHS.get(tier, "") * n + "\u2B1C" * (3 - n)


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


def comparison_figures(ws: Workspace, evals: dict | None = None) -> dict:
    """Write the comparison figures (PNG+PDF+SVG, stable names) into ``figures/``; returns ``{name: {fmt: path}}``."""
    import matplotlib.pyplot as plt

    from alnb import plots
    from alnb.select import overlap

    evals = evals or load_evals(ws)
    pc, summ = per_class_table(evals), summary_table(evals)
    figs = {"compare_per_class": plots.compare_per_class(pc),
            "compare_map": plots.compare_map(summ),
            "compare_efficiency": plots.compare_efficiency(pc, dict(zip(summ["model"], summ["boost"])))}
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


def write_report(ws: Workspace, evals: dict | None = None, tol_boost: float = 0.05, tol_map: float = 0.005):
    """Write ``report.md`` (figures embedded by relative path, tables as markdown) and ``metrics/comparison.json``.

    Returns the report path.  Figures that exist in ``figures/`` are embedded; missing ones are skipped.
    """
    from alnb.select import overlap

    evals = evals or load_evals(ws)
    pc, summ = per_class_table(evals), summary_table(evals)
    ver = verdict(summ, pc, tol_boost, tol_map) if {"CAL2", "Control"} <= set(evals) else None
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

    md = [f"# Active-learning study report: {ws.root.name}", "",
          f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from workspace `{ws.root}` "
          f"(dataset `{ws.dataset_root}`, {ws.mode} mode).", "", "## Verdict", "",
          ver["text"] if ver else "_CAL2 and Control are not both evaluated yet: no verdict._", "",
          *([f"Note: GT2 and Control hold the same {len(gt2)} images here (the selection rule took the whole POOL), "
             "so this run cannot separate active selection from chance.", ""] if gt2 and set(gt2) == set(ctl) else []),
          "## Sets", "",
          markdown_table(pd.DataFrame([{"set": k, "images": v} for k, v in counts.items() if v])), "",
          f"GT2 rule: {selection.get('rule', 'n/a')}; thresholds t_medium = {_prose_num(selection.get('t_medium'))}, "
          f"t_hard = {_prose_num(selection.get('t_hard'))}; POOL images per tier: "
          f"{', '.join(f'{tier_glyphs(k)} {k} {v}' for k, v in selection.get('counts', {}).items()) or 'n/a'}.",
          f"Control: a random sample of {len(ctl)} POOL images (seed {control.get('seed', 'n/a')}), labelled the same "
          f"way. Overlap with GT2: {ov['both']} image(s) in both, {ov['only_a']} only in GT2, {ov['only_b']} only in "
          f"Control.", "",
          "CAL1 is trained on GT1, CAL2 on GT1 + GT2, Control on GT1 + Control. **VAL1 is held out: no model is "
          "trained on it** (the study's text can be read as adding the validation set to training; we do not). "
          f"All three are evaluated on the same VAL1 at their operating points ({op}).", "",
          "## Results on VAL1", "", markdown_table(summ), "",
          "Per class (n/m = not measurable: no instance of the class in VAL1, or for precision no prediction of it):",
          "",
          markdown_table(per_class_wide(pc)), "", "## Figures", ""]
    for name, caption in FIGURES.items():
        if (ws.figures_dir / f"{name}.png").is_file():
            md += [f"![{caption}](figures/{name}.png)", "", f"*{caption}* "
                   f"([PDF](figures/{name}.pdf), [SVG](figures/{name}.svg))", ""]
    path = ws.root / "report.md"
    atomic_write_text(path, "\n".join(md) + "\n")
    ws.save_json("comparison", {"summary": summ.to_dict("records"), "per_class": pc.to_dict("records"),
                                "verdict": ver, "overlap": ov, "sizes": counts})
    return path
