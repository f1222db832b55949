"""What each notebook's numbers mean and what to do next, as Markdown built from the run's results.

Notebook prose never types a measured number: a sentence that quotes one is rendered here from the workspace's
metrics (or the dicts the steps return) and shown with ``IPython.display.Markdown``; the notebook test checks that
every figure quoted in a notebook's markdown cells appears in its outputs
(:func:`alnb.ui.notebooks.unbacked_prose_numbers`).
Pure functions of dicts / tables, plus thin ``*_from_workspace`` readers.
"""

from __future__ import annotations

import math

import pandas as pd

from alnb.ui.display import format_hours

STRONG_RHO = 0.6
"""|Spearman| from which a score is said to follow the box count strongly (0.3-0.6 moderately, below weakly): the
usual reading of a rank correlation's size."""
WEAK_RHO = 0.3


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _f(v, fmt: str = ".3f", na: str = "n/a") -> str:
    x = _num(v)
    return na if not math.isfinite(x) else format(x, fmt)


def _pct(part, whole) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "n/a"


def _n(count, word: str) -> str:
    """``1 box`` / ``3 boxes``, ``1 image`` / ``2 images``."""
    plural = word + ("es" if word.endswith(("x", "s")) else "s")
    return f"{count} {word if count == 1 else plural}"


def _and(items) -> str:
    items = [str(i) for i in items]
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _block(shows: list, todo: list) -> str:
    """The two-part ending: **What this shows** and **What to do next**."""
    return ("**What this shows.** " + " ".join(s for s in shows if s) + "\n\n**What to do next.** "
            + " ".join(t for t in todo if t))


# ------------------------------------------------------------------------------------------------------ notebook 00
def after_setup(summary: dict) -> str:
    """Notebook 00's ending, from ``metrics/setup.json`` (:func:`alnb.core.workspace.setup_summary`)."""
    sizes = summary.get("sizes", {})
    cc = summary.get("class_counts", {})
    gt1 = cc.get("GT1", {})
    n = sum(v for k, v in sizes.items() if k in ("VAL1", "GT1", "POOL"))
    mode = summary.get("mode", "")
    shows = [f"{n} usable images are split into VAL1 {sizes.get('VAL1', 0)}, GT1 {sizes.get('GT1', 0)} and POOL "
             f"{sizes.get('POOL', 0)}"
             + (f" ({summary['problems']} problem(s) found by validation; problem images are excluded)"
                if summary.get("problems") else "") + "."]
    shows.append("Simulation mode: the POOL's labels exist but stay hidden until an image is selected." if
                 mode == "simulation" else "The POOL images have no labels: people label what the study selects.")
    todo = ["Run notebook 01: it trains CAL1 on the GT1 images and measures it on VAL1."]
    if gt1:
        rare = min(gt1, key=lambda k: (gt1[k], k))
        shows.append(f"GT1 holds {sum(gt1.values())} boxes; its rarest class is {rare} ({_n(gt1[rare], 'box')}).")
    if summary.get("not_in_GT1"):
        todo.append(f"{_and(summary['not_in_GT1'])} has no GT1 box: CAL1 cannot learn it, so add labelled "
                    "examples of it to GT1 (or accept that only later rounds see it).")
    if summary.get("not_measurable_on_VAL1"):
        todo.append(f"{_and(summary['not_measurable_on_VAL1'])} has no VAL1 instance: its precision and recall "
                    "will read n/m (not measurable) in every later table.")
    return _block(shows, todo)


# ------------------------------------------------------------------------------------------------------ notebook 01
def after_training(ev: dict, run_name: str = "CAL1") -> str:
    """Notebook 01's ending, from the evaluation dict (:func:`alnb.evaluation.step.evaluate`)."""
    o = ev.get("overall", {})
    pcs = [r for r in ev.get("per_class", []) if r.get("measurable") and math.isfinite(_num(r.get("recall")))]
    shows = [f"{run_name} reaches mAP50 {_f(ev.get('mAP50'))} and mAP50-95 {_f(ev.get('mAP50-95'))} on the "
             f"{ev.get('n_images', 'n/a')} VAL1 images.",
             f"At its operating point (confidence above {_f(ev.get('conf'))}) its auto-labels find "
             f"{_f(o.get('recall'), '.0%')} of the boxes, and {_f(o.get('precision'), '.0%')} of them are right;"
             f" correcting them would take {format_hours(_num(o.get('assisted_s')) / 3600)} instead of "
             f"{format_hours(_num(o.get('manual_s')) / 3600)} drawing every box (boost {_f(o.get('boost'), '.2f')}x)."]
    todo = ["Notebook 02 auto-labels the POOL with this model and scores each image's difficulty by MC dropout."]
    if pcs:
        lo = min(pcs, key=lambda r: (_num(r["recall"]), str(r["class"])))
        hi = max(pcs, key=lambda r: (_num(r["recall"]), str(r["class"])))
        shows.append(f"Recall per class runs from {lo['class']} {_f(lo['recall'], '.2f')} ({lo.get('instances')} "
                     f"instances) to {hi['class']} {_f(hi['recall'], '.2f')}.")
        zero = [str(r["class"]) for r in pcs if _num(r["recall"]) == 0]
        if zero:
            todo.append(f"{run_name} finds no {_and(zero)} at all: more labelled examples of "
                        + ("it" if len(zero) == 1 else "them") + " (or more epochs) before relying on its auto-labels "
                        + ("for that class." if len(zero) == 1 else "for those classes."))
    if ev.get("not_measurable"):
        shows.append(f"Not measurable on VAL1 (no instance): {_and(ev['not_measurable'])}.")
    return _block(shows, todo)


def profile_text(profile) -> str:
    """A training profile in one line for people (not its dataclass repr)."""
    parts = [f"{profile.name} profile: model {profile.model} at {profile.imgsz} px", f"{profile.epochs} epochs",
             f"batch {profile.batch}", f"head dropout {profile.dropout:g}"]
    if getattr(profile, "start", None):
        parts.append(f"starting from {profile.start}")
    if getattr(profile, "finetune_epochs", None):
        # heavy, imported where used (not at module import): alnb.model.train (torch/ultralytics)
        from alnb.model.train import recipe_of

        rec = recipe_of(profile)
        parts.append(f"round models (CAL2, Control, ...): {rec.name}" + (
            f", {profile.finetune_epochs} epochs from the previous round's model" if rec.warm else
            f", {profile.epochs} epochs from the start, as CAL1"))
    else:
        parts.append(f"round models (CAL2, Control, ...): fresh, {profile.epochs} epochs from the start, as CAL1")
    if getattr(profile, "repeat_thresh", None):
        parts.append(f"repeat-factor sampling below {profile.repeat_thresh:g}")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------------------ notebook 02
SCORE_TABLE_COLUMNS = {
    "auroc": "AUROC: has an error",
    "spearman_errors": "Spearman with the number of errors",
    "abs_spearman_candidates": "|Spearman| with the number of candidate boxes",
}
"""The columns of the score-quality table and what each one is (on the non-failed images)."""

BOX_MEANINGS = {
    "hybrid": "the study's per-detection uncertainty: mean of decision and localisation uncertainty",
    "decision_unc": "decision uncertainty: how close the box's confidence is to the auto-label threshold",
    "cls_unc": "class uncertainty: binary entropy of the box's class probability",
    "loc_unc": "localisation uncertainty: relative spread of the box corners over the passes, scaled by box_ref",
    "entropy": "predictive entropy of the class distribution (mean over the passes)",
    "mutual_info": "BALD: mutual information, how much the dropout passes disagree on the class",
    "box_spread": "relative spread of the box corners over the passes (unscaled)",
    "conf_std": "standard deviation of the box's class probability over the dropout passes",
    "low_conf": "1 - confidence: plain least confidence of the box",
}
"""What each per-detection uncertainty of the box-level table is."""


def score_quality_table(dve: dict) -> pd.DataFrame:
    """Every image score's numbers from ``metrics/difficulty_vs_errors.json`` in one table: the strategies' scores,
    then the study score's other aggregations, with the columns of :data:`SCORE_TABLE_COLUMNS` (non-failed images)."""
    rows = {k: v for k, v in (dve.get("strategies") or {}).items()}
    rows.update({f"hybrid aggregated by {k}": v for k, v in (dve.get("aggregations") or {}).items()})
    t = pd.DataFrame({name: {c: _num(v.get(c)) for c in SCORE_TABLE_COLUMNS} for name, v in rows.items()}).T
    return t.rename(columns=SCORE_TABLE_COLUMNS).rename_axis("image score")


def box_level_table(dve: dict) -> pd.DataFrame:
    """The box-level AUROCs ("this auto-label is a false positive") with what each uncertainty is."""
    bl = dve.get("box_level") or {}
    return pd.DataFrame({"AUROC: auto-label is a false positive": {k: _num(v) for k, v in bl.items()},
                         "what it is": {k: BOX_MEANINGS.get(k, "") for k in bl}}).rename_axis("per-detection")


def _rho_words(rho: float) -> str:
    if not math.isfinite(rho):
        return "an unmeasured share of"
    return "strongly" if rho >= STRONG_RHO else ("moderately" if rho >= WEAK_RHO else "weakly")


def score_choice(dve: dict | None, run_info: dict | None = None) -> str:
    """Why the study's score (``hybrid``) and how it did in this run, from the numbers: AUROC and |Spearman| with
    the candidate count for ``hybrid`` and the count-like scores, whether the tiers order the error rate, and the
    failed tier's error rate against the easy tier's.  Without truth (a real labelling loop) it says so."""
    if not dve:
        return ("No ground truth for the POOL (a real labelling loop): whether the score predicts auto-label errors "
                "cannot be measured here.")
    st = dve.get("strategies") or {}
    h = st.get("hybrid", {})
    au, rho = _num(h.get("auroc")), _num(h.get("abs_spearman_candidates"))
    out = []
    if math.isfinite(au):
        out.append(f"In this run `hybrid` ranks an image with an auto-label error above one without with AUROC "
                   f"{au:.3f} (0.5 = chance), and its score follows the number of candidate boxes "
                   f"{_rho_words(rho)} (|Spearman| {_f(rho)}).")
    else:
        out.append("In this run the AUROC of `hybrid` is not measurable: every non-failed image has an auto-label "
                   "error (or none has), so there is nothing to rank.")
    counts = [k for k in ("count_variance", "hybrid_sum") if k in st]
    if counts:
        out.append("The count-like scores: " + _and(
            f"`{k}` AUROC {_f(st[k].get('auroc'))} at |Spearman| {_f(st[k].get('abs_spearman_candidates'))}"
            for k in counts) + ".")
        higher = [k for k in counts if _num(st[k].get("auroc")) > au]
        more_count = [k for k in counts if _num(st[k].get("abs_spearman_candidates")) > rho]
        if higher and set(higher) <= set(more_count):
            out.append(f"{_and(f'`{k}`' for k in higher)} reach{'es' if len(higher) == 1 else ''} a higher AUROC "
                       "and follow the box count more closely than `hybrid`: much of their lead is the count.")
        elif math.isfinite(rho) and all(_num(st[k].get("abs_spearman_candidates")) <= rho for k in counts):
            out.append("Here `hybrid` follows the box count at least as closely as they do: this run does not "
                       "show the difference the design aims at.")
    tiers = dve.get("tiers") or {}
    rates = {t: _num(tiers.get(t, {}).get("error_rate")) for t in ("easy", "medium", "hard")}
    if all(math.isfinite(v) for v in rates.values()):
        same = rates["easy"] == rates["medium"] == rates["hard"]
        ordered = rates["easy"] <= rates["medium"] <= rates["hard"] and not same
        out.append("Error rate per tier: " + ", ".join(f"{k} {v:.2f}" for k, v in rates.items())
                   + (" — the same in every tier: the tiers do not separate errors in this run." if same else
                      " — the tiers order the error rate." if ordered else
                      " — the tiers do *not* order the error rate in this run."))
        fr = _num(tiers.get("failed", {}).get("error_rate"))
        if math.isfinite(fr):
            cmp = "below" if fr < rates["easy"] else ("above" if fr > rates["easy"] else "equal to")
            out.append(f"The failed images' error rate is {fr:.2f}, {cmp} the easy tier's: a failed image is wrong "
                       "only when it holds a defect.")
    return " ".join(out)


def after_scoring(scores: pd.DataFrame, counts: dict, dve: dict | None) -> str:
    """Notebook 02's ending, from the score table, the tier counts and the error analysis (None without truth)."""
    n = len(scores)
    flagged = counts.get("medium", 0) + counts.get("hard", 0) + counts.get("failed", 0)
    shows = [f"CAL1 auto-labelled and scored {n} POOL images: {flagged} ({_pct(flagged, n)}) are flagged for "
             f"people (medium {counts.get('medium', 0)}, hard {counts.get('hard', 0)}, failed "
             f"{counts.get('failed', 0)}), {counts.get('easy', 0)} are easy."]
    if dve:
        au = _num((dve.get("strategies") or {}).get("hybrid", {}).get("auroc"))
        shows.append(f"The difficulty score predicts which auto-labels hold an error with AUROC {au:.3f} "
                     "(0.5 = chance)." if math.isfinite(au) else
                     "Whether it predicts auto-label errors cannot be measured in this run (see above).")
    todo = ["Notebook 03: move the two thresholds in the difficulty explorer, page through each tier's thumbnails, "
            "and commit GT2; its cost line predicts the labelling hours before you commit."]
    return _block(shows, todo)


# ------------------------------------------------------------------------------------------------------ notebook 03
def after_selection(selection: dict, gt2_facts: dict | None, summary: pd.DataFrame | None,
                    bands: dict | None = None) -> str:
    """Notebook 03's ending, from ``metrics/selection.json``, GT2's facts (:func:`alnb.ui.report.selection_facts`),
    CAL1 / CAL2's summary rows (:func:`alnb.ui.report.summary_table`, None before CAL2) and the noise bands
    (:func:`alnb.ui.report.noise_bands`)."""
    c = selection.get("counts", {})
    f = gt2_facts or {}
    shows = [f"GT2 holds {f.get('images', 'n/a')} images ({selection.get('rule', 'n/a')})"
             + (": " + ", ".join(f"{k} {v}" for k, v in (f.get("tiers") or {}).items() if v) if f.get("tiers")
                else "") + f", out of the POOL's categories {', '.join(f'{k} {v}' for k, v in c.items())}."]
    if math.isfinite(_num(f.get("assisted_h"))):
        shows.append(f"Correcting CAL1's auto-labels on them took {format_hours(f['assisted_h'])} by the cost model "
                     f"on the labels given (predicted before labelling: {format_hours(f.get('predicted_h'))}).")
    elif math.isfinite(_num(f.get("predicted_h"))):
        shows.append(f"Predicted labelling time: {format_hours(f['predicted_h'])} correcting CAL1's auto-labels.")
    todo = []
    if summary is not None and {"CAL1", "CAL2"} <= set(summary["model"]):
        s = summary.set_index("model")
        d = float(s.at["CAL2", "mAP50"] - s.at["CAL1", "mAP50"])
        band = (bands or {}).get("mAP50", float("nan"))
        shows.append(f"CAL2 (GT1 + GT2) reaches mAP50 {s.at['CAL2', 'mAP50']:.3f} against CAL1's "
                     f"{s.at['CAL1', 'mAP50']:.3f} ({d:+.3f}"
                     + (f", within the noise measured for this setup, ±{band:.3f}" if math.isfinite(band)
                        and abs(d) <= band else "") + ").")
        todo.append("That difference mixes the selection with having more labelled images: notebook 04 trains "
                    "Control on as many random POOL images, and only that comparison says whether the selection beat "
                    "chance.")
    else:
        todo.append("Label the exported GT2 queue, set `labels_dir` and run this notebook again to train CAL2; then "
                    "notebook 04.")
    return _block(shows, todo)


# ------------------------------------------------------------------------------------------------------ notebook 04
def after_comparison(verdict: dict | None, facts: dict | None) -> str:
    """Notebook 04's ending, from the verdict (:func:`alnb.ui.report.verdict`) and the selections' facts
    (:func:`alnb.ui.report.selection_facts`)."""
    if not verdict:
        return _block(["CAL2 and Control are not both evaluated yet: no verdict."],
                      ["Train and evaluate both (notebooks 03 and 04)."])
    words = {"CAL2 better": "the actively selected GT2 set trained the better model",
             "Control better": "a random set of the same size trained the better model",
             "mixed": "the measures disagree on which set trained the better model",
             "no clear difference": "neither set trained a clearly better model"}
    shows = [f"On VAL1, {words[verdict['outcome']]} (a difference counts only beyond the noise measured for this "
             "setup)."]
    g, c = (facts or {}).get("GT2"), (facts or {}).get("Control")
    if g and c and math.isfinite(_num(g.get("assisted_h"))) and math.isfinite(_num(c.get("assisted_h"))):
        more = "more" if g["assisted_h"] > c["assisted_h"] else "less"
        shows.append(f"GT2 took {format_hours(g['assisted_h'])} to label against Control's "
                     f"{format_hours(c['assisted_h'])} ({more} for the active set; the report says why).")
    todo = ["One seed and one random draw decide nothing: repeat the comparison over seeds (notebook 05, "
            "`alnb study`) for intervals, and record that study's noise in this workspace "
            "(`alnb.loop.study.record_noise`) so its verdicts use it."]
    if verdict["outcome"] == "CAL2 better":
        todo.append("Check that the lead holds over seeds before relying on the active selection.")
    todo.append("Notebook 06 runs round 3 (CAL2 selects again) and compares both chains round by round; "
                "`report.md` in the workspace collects the figures and tables.")
    return _block(shows, todo)


# ------------------------------------------------------------------------------------------------------ notebook 05
def after_study(verdicts: pd.DataFrame, level: float = 0.95) -> str:
    """Notebook 05's ending, from the study's verdicts table (:func:`alnb.loop.study.verdicts`): per strategy and
    budget, mAP50 per image against random."""
    v = verdicts[(verdicts["metric"] == "mAP50") & (verdicts["x"] == "images")] if len(verdicts) else verdicts
    if v is None or not len(v):
        return _block(["No strategy was compared with random (too few seeds or no random run)."],
                      ["Add seeds (two or more) and the `random` strategy to the grid."])
    parts = []
    for r in v.itertuples():
        mde = _num(getattr(r, "mde", float("nan")))
        parts.append(f"{r.strategy} ({r.budget}): {r.verdict}, mean difference {_num(r.mean_diff):+.3f} mAP50 "
                     f"over {int(r.n_seeds)} seeds"
                     + (f", smallest detectable effect {mde:.3f}" if math.isfinite(mde) else ""))
    better = [r.strategy for r in v.itertuples() if r.verdict == "better"]
    shows = [f"Against random on the same seeds, per image ({level:.0%} intervals): " + "; ".join(parts) + "."]
    todo = ([f"{_and(better)} beat random here: check the same holds per labelling second (the verdicts table's "
             "`labelling_s` rows) before using it."] if better else
            ["No strategy is ahead of random beyond the noise: random selection is the safe default; more seeds "
             "shrink the smallest detectable effect."])
    return _block(shows, todo)


# ------------------------------------------------------------------------------------------------------ notebook 06
def after_round(table: pd.DataFrame, verdicts: list, k: int) -> str:
    """Notebook 06's ending, from :func:`alnb.ui.report.rounds_table` and :func:`alnb.ui.report.round_verdicts`."""
    words = {"CAL2 better": "the actively selected chain is ahead", "Control better": "the random chain is ahead",
             "mixed": "the measures disagree", "no clear difference": "no clear difference between the chains"}
    last = table[table["round"] == k].set_index("chain")
    v = next((x for x in verdicts if x["round"] == k), None)
    shows = []
    if v:
        shows.append(f"Round {k} ({v['a']} vs {v['b']}): {words[v['outcome']]} (beyond the noise measured for this "
                     "setup).")
    if {"CAL", "Control"} <= set(last.index):
        shows.append(f"After {k} rounds the CAL chain has {int(last.at['CAL', 'images'])} labelled images and "
                     f"{format_hours(last.at['CAL', 'labelling h'])} of assisted labelling for the images it added, "
                     f"the random chain {int(last.at['Control', 'images'])} and "
                     f"{format_hours(last.at['Control', 'labelling h'])}; mAP50 "
                     f"{last.at['CAL', 'mAP50']:.3f} vs {last.at['Control', 'mAP50']:.3f}.")
    todo = [f"Run this notebook with `round = {k + 1}` for the next round, or stop when the learning curves "
            "flatten; `alnb study` repeats the chains over seeds with intervals."]
    return _block(shows, todo)


# ------------------------------------------------------------------------------------------------------ notebook 07
def after_review(summary: dict, cut: dict, accepted: dict | None = None, costs_note: str = "") -> str:
    """Notebook 07's ending, from the plan's summary (:func:`alnb.loop.reviewstep.build_plan`), the cut on screen
    (:meth:`alnb.ui.widgets.ReviewController.cut`), the acceptance record (:func:`alnb.loop.reviewstep.accept`, or None)
    and where the seconds come from."""
    n, model = summary.get("n_images", 0), summary.get("model", "the model")
    shows = [f"{model}'s review plan orders the {n} unlabelled POOL images by the wrong boxes a review is expected "
             f"to fix per second it costs. Reviewing all of them would take {format_hours(summary.get('review_all_h'))}"
             f", drawing every box by hand {format_hours(summary.get('manual_all_h'))}."]
    shows.append(f"At the cut shown, people review {cut['reviewed']} images ({format_hours(cut['review_h'])}) and "
                 f"accept {cut['accepted']}; about {_f(cut['err_images'], '.1f')} of the accepted images are "
                 f"predicted to hold an error ({_f(cut.get('err_images_lo'), '.0f')} to "
                 f"{_f(cut.get('err_images_hi'), '.0f')} at 95 %), with {_f(cut['fn'], '.1f')} missed and "
                 f"{_f(cut['fp'], '.1f')} false boxes.")
    if "actual_err_images" in cut:
        inside = (_num(cut.get("err_images_lo")) <= _num(cut["actual_err_images"]) <= _num(cut.get("err_images_hi")))
        actual = int(round(_num(cut["actual_err_images"])))
        shows.append(f"Simulation mode knows the truth: {actual} accepted "
                     f"{'image actually holds' if actual == 1 else 'images actually hold'} an error, "
                     f"{'inside' if inside else 'outside'} the predicted interval.")
    if costs_note:
        shows.append(f"Seconds per action: {costs_note}.")
    todo = []
    if accepted:
        todo.append(f"{_n(accepted['n_accepted'], 'image')} now "
                    f"{'carries' if accepted['n_accepted'] == 1 else 'carry'} {accepted.get('model', model)}'s labels, "
                    f"marked machine-accepted; {_n(accepted['n_review'], 'image')} wait for review: export them "
                    "with pre-annotations (`alnb export-queue --review`), label them and import the labels (`alnb "
                    "import-labels`); the final label set with each image's provenance is in `final/`.")
    else:
        todo.append("Move the slider until the residual errors are ones you can live with, then accept the rest "
                    "(the Accept button, or `accept = True`): accepted images are marked machine-accepted and "
                    "nothing a person labelled is replaced.")
    todo.append("A round of training (notebook 06) changes the plan: run this notebook again after it; the report's "
                "review-plan section lists the review hours per model, so you see what a round buys in review time.")
    return _block(shows, todo)
