"""The review-plan step at the workspace edge: score VAL1 like the POOL, fit the calibration, write the plan; accept the
auto-labels of the images a plan leaves unreviewed; export the final label set with each image's provenance.

The numbers come from the pure :mod:`alnb.loop.review`; this module only reads and writes files:
``scores/<MODEL>/val1_scores.csv``, ``review_plan.csv``, ``review_curve.csv``, ``metrics/review_plan.json``,
``metrics/review_plan_rounds.json``; with ``--accept`` (:func:`accept`) ``accepted/<stem>.txt``,
``label_source='accepted'``, ``metrics/review_accept.json`` and ``final/`` (:func:`export_final`; its Label Studio
URL settings in ``metrics/review_final.json``).  Every label import (``alnb import-labels``, ``alnb run --labels``)
refreshes ``final/`` when it exists (:func:`refresh_final`).  The dataset folder is never written; a label a person
gave (``human``) or the dataset gave (``oracle``) is never replaced.

Provenance (:func:`provenance`): ``human``, ``machine-reviewed`` (people's labels on an image the plan sent to
review) or ``machine-accepted`` (the model's labels, accepted without a look).

Design notes: docs/design/review-plan.md
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from alnb.loop import review as rv
from alnb.evaluation.labeltimes import resolve_costs, workspace_costs
from alnb.evaluation.metrics import CostModel
from alnb.core.workspace import WorkspaceError, atomic_write_json, atomic_write_text, has_tag
from alnb.acquisition import difficulty as dif
from alnb.acquisition import strategies as acq
from alnb.core.cpu import cpu_threads
from alnb.core.data import parse_label_lines, read_label_text
from alnb.core.lock import workspace_lock
from alnb.core.scoretable import SCORES_DIR, scores_file
from alnb.labels import labelio
from alnb.labels.formats.common import now, read_autolabels, write_bytes_atomic, yolo_line
from alnb.labels.formats.cvat import CVAT_ZIP, yolo11_zip
from alnb.labels.formats.labelstudio import DOCUMENT_ROOT_ENV, LS_URL_PREFIX, image_url, region
from alnb.loop.selection import load_scores

ACCEPTED_DIR = "accepted"  # <workspace>/accepted/<stem>.txt: the machine labels accepted without a look
PLAN_FILE, CURVE_FILE, VAL1_FILE = "review_plan.csv", "review_curve.csv", "val1_scores.csv"
FINAL_DIR = "final"
PROVENANCE = ("human", "machine-reviewed", "machine-accepted")
DEFAULT_MAX_ERROR_RATE = 0.05  # the cut without a flag: at most 5 % of the accepted images with an error
HUMAN_SOURCES = ("human", "oracle")


# ---------------------------------------------------------------------------------------------------------- inputs
def latest_model(ws) -> str:
    """The model that scored the POOL last (``scores.csv``): the newest round's model."""
    s = load_scores(ws)
    if "model" not in s or not len(s):
        raise WorkspaceError(f"{ws.root / 'scores.csv'} names no model: score the POOL again (alnb score).")
    return str(s["model"].iloc[0])


def val1_scores(ws, model: str, *, device=None, progress: bool = False) -> pd.DataFrame:
    """VAL1 scored by ``model`` with the POOL's scorer and scale (:func:`alnb.acquisition.scoring.pool_scorer`), with each image's
    auto-label errors (``has_error, n_fp, n_fn, n_gt``); cached in ``scores/<model>/val1_scores.csv`` while the
    scoring key (model + settings) is the same."""
    # heavy, imported where used (not at module import): alnb.acquisition.scoring (torch)
    from alnb.acquisition.scoring import pool_scorer

    info = ws.load_json("mc_scoring")
    path = ws.root / SCORES_DIR / model / VAL1_FILE
    key = str(info.get("scoring_key", ""))
    if path.is_file():
        old = pd.read_csv(path, dtype={"stem": str}, keep_default_na=False)
        if len(old) and "scoring_key" in old and str(old["scoring_key"].iloc[0]) == key:
            old["failed"] = old["failed"].astype(str).str.lower().isin(("true", "1"))
            old["has_error"] = old["has_error"].astype(str).str.lower().isin(("true", "1"))
            return old
    man = ws.manifest()
    stems = ws.stems("VAL1", manifest=man)
    if not stems:
        raise WorkspaceError(f"{ws.manifest_path}: no VAL1 images to calibrate the review plan on.")
    scorer, info = pool_scorer(ws, model, device=device)
    mi = man.set_index("stem")

    with cpu_threads(None, device=device, what=f"VAL1 scoring for the review plan in {ws.root}"):
        res = scorer.score([(s, ws.dataset_root / mi.at[s, "image"]) for s in stems])
    dets, _ = acq.detection_uncertainty(res.detections, box_ref=info["box_ref"], conf_op=info["conf"])
    scores = acq.image_scores(dets, res.images, how=info.get("aggregation", "topk"), k=info.get("top_k", acq.TOP_K))
    errs, _ = dif.match_errors(ws, dets, stems)
    out = scores.merge(errs, on="stem", how="left")
    out.insert(1, "model", model)
    out["scoring_key"] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, out.to_csv(index=False))
    return out


def pool_rows(ws, model: str) -> pd.DataFrame:
    """The POOL rows of ``model``'s score table whose labels are still the machine's (``label_source`` auto, none or
    accepted): what the plan orders.  Images people or the dataset labelled are never in it."""
    s = load_scores(ws, model)
    m = ws.manifest()
    ok = has_tag(m, "POOL") & ~has_tag(m, "VAL1") & ~has_tag(m, "GT1") & ~has_tag(m, "EXCLUDED")
    ok &= ~m["label_source"].isin(HUMAN_SOURCES) & (m["problem"] == "")
    return s[s["stem"].isin(set(m.loc[ok, "stem"]))].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------------ the plan
def build_plan(ws, *, model: str | None = None, costs: CostModel | None = None, method: str = "auto",
               seed: int = 0, n_boot: int = rv.N_BOOT, fraction: float | None = None, hours: float | None = None,
               max_error_rate: float | None = None, recalibrate: bool | None = None, device=None) -> dict:
    """Everything the plan step computes, nothing written: ``{"plan", "curve", "summary"}``.

    ``model``: the scoring model (default the latest); ``method``: ``auto`` (lower cross-fitted Brier on VAL1),
    ``logistic`` or ``isotonic``; ``recalibrate``: the second-stage count recalibration (default
    :data:`alnb.loop.review.RECALIBRATE`); the cut by one of ``fraction`` / ``hours`` / ``max_error_rate`` (default
    :data:`DEFAULT_MAX_ERROR_RATE`)."""
    costs = resolve_costs(ws, costs)[0]
    model = model or latest_model(ws)
    val = val1_scores(ws, model, device=device)
    pool = pool_rows(ws, model)
    if pool.empty:
        raise WorkspaceError(f"{ws.root}: no unlabelled POOL image scored by {model} is left to plan a review for.")
    Xc, Xp = rv.features(val), rv.features(pool)
    iso_c, iso_p = val[rv.ISOTONIC_FEATURE].to_numpy(float), pool[rv.ISOTONIC_FEATURE].to_numpy(float)
    recal = rv.RECALIBRATE if recalibrate is None else bool(recalibrate)
    evidence = rv.compare_methods(Xc, val, iso_x=iso_c, seed=seed, recalibrate=recal)
    chosen = evidence["chosen"] if method == "auto" else method
    cal = rv.fit_calibration(Xc, val, method=chosen, iso_x=iso_c, recalibrate=recal, seed=seed)
    plan = rv.make_plan(pool, rv.predict(cal, Xp, iso_x=iso_p), costs=costs)
    pos = {s: i for i, s in enumerate(pool["stem"])}
    idx = [pos[s] for s in plan["stem"]]
    boots = rv.bootstrap_predictions(Xc, val, Xp[idx], method=chosen, iso_cal=iso_c, iso_x=iso_p[idx],
                                     n_boot=n_boot, seed=seed, recalibrate=recal)
    draws = rv.residual_draws(boots, seed=seed)
    truth = None
    if ws.mode == "simulation" and all(c in plan for c in ("has_error", "n_fp", "n_fn", "n_gt")):
        truth = plan[["has_error", "n_fp", "n_fn", "n_gt"]].copy()
        truth["has_error"] = truth["has_error"].astype(str).str.lower().isin(("true", "1"))
    cv = rv.curve(plan, draws=draws, truth=truth, costs=costs)
    if fraction is None and hours is None and max_error_rate is None:
        max_error_rate = DEFAULT_MAX_ERROR_RATE
    j = rv.choose_cut(cv, fraction=fraction, hours=hours, max_error_rate=max_error_rate)
    asked = {"fraction": fraction, "hours": hours, "max_error_rate": max_error_rate}
    reported = sorted({rv.choose_cut(cv, fraction=f) for f in rv.REPORT_FRACTIONS} | {j})
    summary = {"model": model, "n_images": int(len(plan)), "seed": seed, "costs": costs.to_dict(),
               "calibration": {"method": chosen, "asked": method, "n_val1": int(len(val)),
                               "recalibrated": cal.recalibrated,
                               "features": list(rv.FEATURE_NAMES), "isotonic_feature": rv.ISOTONIC_FEATURE,
                               "cross_fitted": evidence, "folds": rv.N_FOLDS, "n_boot": n_boot},
               "order": "expected wrong boxes (false + missed) fixed per review second, highest first",
               "cut": {"asked": {k: v for k, v in asked.items() if v is not None}, **rv.cut_summary(cv, j)},
               "review_all_h": float(cv["review_h"].iloc[-1]), "manual_all_h": float(cv["manual_h"].iloc[0]),
               "cuts": [rv.cut_summary(cv, k) for k in reported], "simulation": truth is not None}
    if truth is not None:
        summary["orders_at_equal_hours"] = order_comparison(plan, truth, cv, costs=costs, seed=seed)
    return {"plan": plan, "curve": cv, "summary": summary}


def order_comparison(plan, truth, cv, *, costs=None, seed: int = 0) -> list:
    """Actual residuals of every order (:data:`alnb.loop.review.ORDERS`) at the true review hours of a quarter, half and
    three quarters of the POOL in plan order (simulation only)."""
    hours = [float(cv["actual_review_h"].iloc[rv.choose_cut(cv, fraction=f)]) for f in (0.25, 0.5, 0.75)]
    return pd.concat([rv.equal_hours(plan, truth, hours, how=h, seed=seed, costs=costs) for h in rv.ORDERS]
                     ).to_dict("records")


def write_plan(ws, **kw) -> dict:
    """:func:`build_plan` and write ``review_plan.csv``, ``review_curve.csv``, ``metrics/review_plan.json`` and the
    model's line of ``metrics/review_plan_rounds.json``; returns the result."""
    res = build_plan(ws, **kw)
    drop = [c for c in ("_random",) if c in res["plan"]]
    atomic_write_text(ws.root / PLAN_FILE, res["plan"].drop(columns=drop).to_csv(index=False))
    atomic_write_text(ws.root / CURVE_FILE, res["curve"].to_csv(index=False))
    ws.save_json("review_plan", res["summary"])
    p = ws.root / "metrics" / "review_plan_rounds.json"
    try:
        rounds = ws.load_json("review_plan_rounds") if p.is_file() else {}
    except ValueError:
        rounds = {}
    s = res["summary"]
    rounds[s["model"]] = {"n_images": s["n_images"], "review_all_h": s["review_all_h"],
                          "manual_all_h": s["manual_all_h"], "cut": s["cut"]}
    ws.save_json("review_plan_rounds", rounds)
    return res


def newest_model(ws) -> str:
    """The newest model of the CAL chain that is trained and evaluated on VAL1 (``CAL<k>`` with the highest k)."""
    found = []
    for d in (ws.root / "runs").glob("CAL*"):
        m = re.fullmatch(r"CAL(\d+)", d.name)
        if m and (d / "alnb_run.json").is_file() and (d / "weights" / "best.pt").is_file() \
                and (ws.root / "metrics" / f"eval_{d.name}.json").is_file():
            found.append(int(m.group(1)))
    if not found:
        raise WorkspaceError(f"{ws.root}: no trained and evaluated CAL model yet: run notebook 01 (CAL1) first.")
    return f"CAL{max(found)}"


def scored_by(ws, model: str) -> bool:
    """Whether ``model`` has scored the POOL (its score table exists: ``scores/<model>/`` or the latest one)."""
    return scores_file(ws, "scores.csv", model).is_file()


def plan_with_newest(ws, *, model: str | None = None, T: int = 20, conf=None, seed: int = 0, **kw) -> dict:
    """The review plan with the newest model (:func:`newest_model`, or ``model``): the POOL is scored by it first
    when it has not been (:func:`alnb.acquisition.scoring.score_pool` with ``T`` / ``conf`` / ``seed``, the call the next round
    makes, so its parts are reused there), the cost model is the workspace's (measured seconds once enough
    annotations exist, else the literature defaults: :func:`alnb.evaluation.labeltimes.workspace_costs`), then
    :func:`write_plan` (``kw``: the cut, ``method``, ``n_boot``).  Returns its result plus ``costs_note`` (where the
    seconds come from) and ``scored_now`` (whether the POOL was scored here)."""
    model = model or newest_model(ws)
    scored_now = not scored_by(ws, model)
    if scored_now:
        from alnb.acquisition.scoring import score_pool

        score_pool(ws, model=model, T=T, conf=conf, seed=seed, progress=False)
    costs, note = workspace_costs(ws)
    res = write_plan(ws, model=model, costs=costs, seed=seed, **kw)
    res["costs_note"], res["scored_now"] = note, scored_now
    return res


def update_plan(ws, model: str, *, log=print, **kw) -> dict | None:
    """After a round: the plan recomputed with ``model`` (which has just scored the POOL), its line added to
    ``metrics/review_plan_rounds.json``; None (and a line in ``log``, None: silent) when no unlabelled POOL image is
    left."""
    log = log or (lambda msg: None)
    if pool_rows(ws, model).empty:
        log(f"[alnb] review plan: no unlabelled POOL image scored by {model} is left; nothing to plan")
        return None
    res = write_plan(ws, model=model, **kw)  # build_plan prices with the workspace's costs
    s = res["summary"]
    log(f"[alnb] review plan with {model}: {s['n_images']} unlabelled POOL images, reviewing all "
        f"{s['review_all_h']:.2f} h, the chosen cut {s['cut']['review_h']:.2f} h (drawing all {s['manual_all_h']:.2f} h)")
    return res


def load_plan(ws) -> tuple:
    """``(plan, curve, summary)`` as written by :func:`write_plan`."""
    for name in (PLAN_FILE, CURVE_FILE):
        if not (ws.root / name).is_file():
            raise WorkspaceError(f"{ws.root / name} missing: run `alnb review --workspace {ws.root}` first.")
    plan = pd.read_csv(ws.root / PLAN_FILE, dtype={"stem": str}, keep_default_na=False)
    return plan, pd.read_csv(ws.root / CURVE_FILE), ws.load_json("review_plan")


def describe(summary: dict) -> str:
    """A few lines for people: the model, the calibration, review-all vs draw-all, the reported cuts."""
    c, cal = summary["cut"], summary["calibration"]
    ev = cal["cross_fitted"]
    lines = [f"review plan for {summary['n_images']} unlabelled POOL images, auto-labels of {summary['model']}; "
             f"calibration {cal['method']} on {cal['n_val1']} VAL1 images (cross-fitted Brier: logistic "
             f"{ev['logistic']['brier']:.3f}, isotonic {ev['isotonic']['brier']:.3f})"
             + ("; expected counts recalibrated (cross-fitted isotonic second stage)" if cal.get("recalibrated")
                else ""),
             f"review everything {summary['review_all_h']:.2f} h; draw everything by hand "
             f"{summary['manual_all_h']:.2f} h",
             "  reviewed  hours  accepted  err.images [95 %]      wrong boxes [95 %]     saved h"
             + ("   actual: err.images  wrong boxes  hours" if summary.get("simulation") else "")]
    for r in summary["cuts"]:
        mark = " <- chosen" if r["reviewed"] == c["reviewed"] else ""
        line = (f"  {r['reviewed']:8d}  {r['review_h']:5.2f}  {r['accepted']:8d}  {r['err_images']:6.1f} "
                f"[{r.get('err_images_lo', np.nan):4.0f}, {r.get('err_images_hi', np.nan):4.0f}]  "
                f"{r['wrong_boxes']:7.1f} [{r.get('wrong_boxes_lo', np.nan):4.0f}, "
                f"{r.get('wrong_boxes_hi', np.nan):4.0f}]  {r['saved_h']:6.2f}")
        if summary.get("simulation"):
            line += (f"   {r['actual_err_images']:10.0f}  {r['actual_wrong_boxes']:11.0f}  "
                     f"{r['actual_review_h']:5.2f}")
        lines.append(line + mark)
    asked = ", ".join(f"{k}={v}" for k, v in c["asked"].items())
    lines.append(f"chosen cut ({asked}): review {c['reviewed']} images ({c['review_h']:.2f} h), accept "
                 f"{c['accepted']}; predicted {c['err_images']:.1f} accepted images with an error "
                 f"({100 * c['err_rate']:.1f} %), {c['wrong_boxes']:.1f} wrong boxes; {c['saved_h']:.2f} h saved "
                 f"against drawing everything")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- the review queue
REVIEW_EXPORT_DIR = "review"  # <workspace>/export/review/<fmt>: the review queue (the GT2 queue keeps export/<fmt>)


def review_split(ws) -> dict:
    """The current plan at its chosen cut: ``{"model", "reviewed", "review", "accepted"}`` -- the plan rows the cut
    sends to review and the ones it accepts, each in plan order (``rank`` 1 = review first).  Raises
    :class:`WorkspaceError` (run ``alnb review`` first) when there is no plan."""
    if not (ws.root / "metrics" / "review_plan.json").is_file():
        raise WorkspaceError(f"{ws.root / 'metrics' / 'review_plan.json'} missing: run `alnb review --workspace "
                             f"{ws.root}` first.")
    plan, _, summary = load_plan(ws)
    j = int(summary["cut"]["reviewed"])
    return {"model": str(summary["model"]), "reviewed": j, "review": plan.iloc[:j].reset_index(drop=True),
            "accepted": plan.iloc[j:].reset_index(drop=True)}


def export_review(ws, fmt: str, out_dir=None, **kw) -> Path:
    """Export the review queue for a labelling tool: exactly the images the current plan's cut sends to review
    (``review_plan.csv``, the cut of ``metrics/review_plan.json``), in plan order, with the plan model's auto-labels
    as pre-annotations (:func:`alnb.labels.labelio.export_queue`, ``order="given"``).  Label Studio: each prediction's
    ``score`` (and ``data.alnb_priority``) is the plan's expected wrong boxes fixed per review second, so sorting by
    prediction score descending (or by ``alnb_rank`` ascending) reviews in plan order.  Default folder
    ``<workspace>/export/review/<fmt>``; ``kw``: ``url_prefix``, ``document_root``.  Refuses (WorkspaceError) a
    plan whose model's auto-labels are gone, and a cut that reviews nothing."""
    split = review_split(ws)
    if not (ws.root / "autolabels" / split["model"]).is_dir():
        raise WorkspaceError(f"{ws.root / PLAN_FILE} is the plan of {split['model']}'s auto-labels, but "
                             f"{ws.root / 'autolabels' / split['model']} is missing: run `alnb review --workspace "
                             f"{ws.root}` again to plan with the model that scored the POOL.")
    rev = split["review"]
    if rev.empty:
        raise WorkspaceError(f"{ws.root / PLAN_FILE}: the chosen cut reviews no image (all {len(split['accepted'])} "
                             f"accepted), so there is no review queue to export. Choose a cut that reviews some: "
                             f"`alnb review --workspace {ws.root} --fraction 0.5` (or --hours / --max-error-rate).")
    out = Path(out_dir) if out_dir is not None else ws.root / "export" / REVIEW_EXPORT_DIR / fmt
    return labelio.export_queue(ws, fmt, out_dir=out, stems=list(rev["stem"]), model=split["model"], order="given",
                                priority=dict(zip(rev["stem"], rev["value"].astype(float))), **kw)


# -------------------------------------------------------------------------------------------------------- accept
def accept(ws, *, plan: pd.DataFrame | None = None, reviewed: int | None = None, url_prefix: str | None = None,
           document_root=None) -> dict:
    """Accept the model's labels of every image after the first ``reviewed`` rows of the plan (default: the chosen
    cut of ``metrics/review_plan.json``): ``accepted/<stem>.txt`` (YOLO, the auto-labels without confidence),
    ``label_source='accepted'``; images the cut now sends to review lose an earlier acceptance.  Rows labelled by
    people or the dataset (``human`` / ``oracle``) are never touched.  Writes ``metrics/review_accept.json`` and the
    final label set (:func:`export_final`, with ``url_prefix`` / ``document_root`` for its Label Studio image URLs;
    a dataset outside the document root is refused before anything changes)."""
    final_kw = final_settings(ws, url_prefix, document_root)
    check_document_root(ws, final_kw)  # before anything is accepted

    if plan is None:
        plan, _, summary = load_plan(ws)
        model = summary["model"]
        reviewed = summary["cut"]["reviewed"] if reviewed is None else reviewed
    else:
        if reviewed is None:
            raise ValueError("accept(plan=...) needs reviewed= (how many of the plan's first images go to review).")
        model = str(plan["model"].iloc[0]) if "model" in plan and len(plan) else ""
    reviewed = int(reviewed)
    m = ws.manifest()
    src = m.set_index("stem")["label_source"]
    review = [s for s in plan["stem"].iloc[:reviewed] if src.get(s) not in HUMAN_SOURCES]
    take = [s for s in plan["stem"].iloc[reviewed:] if src.get(s) not in HUMAN_SOURCES]
    out = ws.root / ACCEPTED_DIR
    out.mkdir(exist_ok=True)
    n_classes = len(ws.names)
    texts = {}
    for s in take:
        f = ws.root / "autolabels" / model / f"{s}.txt"
        if not f.is_file():
            raise WorkspaceError(f"{f} missing: the auto-labels of {model} are gone; score the POOL again "
                                 f"(alnb score --model {model}) and rerun `alnb review`.")
        boxes = read_autolabels(f, n_classes)
        lines = [yolo_line(*b[:5]) for b in boxes]
        texts[s] = "\n".join(lines) + ("\n" if lines else "")
    for s, t in texts.items():
        atomic_write_text(out / f"{s}.txt", t)
    for s in review:
        (out / f"{s}.txt").unlink(missing_ok=True)
    m = ws.manifest()  # re-read: the only change is label_source of machine rows
    machine = ~m["label_source"].isin(HUMAN_SOURCES)
    m.loc[machine & m["stem"].isin(take), "label_source"] = "accepted"
    m.loc[machine & m["stem"].isin(review) & (m["label_source"] == "accepted"), "label_source"] = "auto"
    ws.write_manifest(m)
    try:  # images an earlier plan sent to review that people have reviewed since: they stay machine-reviewed
        old = ws.load_json("review_accept")
    except (WorkspaceError, ValueError):
        old = {}
    people = set(m.loc[m["label_source"] == "human", "stem"])
    before = sorted((set(old.get("review", ())) | set(old.get("reviewed_before", ()))) & people - set(review))
    rec = {"time": now(), "model": model, "reviewed": reviewed, "n_accepted": len(take), "n_review": len(review),
           "review": review, "accepted": take, "reviewed_before": before}
    ws.save_json("review_accept", rec)
    rec["final"] = {fmt: str(p) for fmt, p in _write_final(ws, None, final_kw)[0].items()}
    return rec


def provenance(ws, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per image of the final label set: ``stem, image, width, height, provenance, model, label_file``
    (``human``, ``machine-reviewed``, ``machine-accepted``); images without usable labels (hidden, waiting for
    review) are absent.  ``machine-reviewed``: people's labels on an image an accepted plan sent to review (the last
    one, or an earlier one: ``reviewed_before`` of ``metrics/review_accept.json``)."""
    m = ws.manifest() if manifest is None else manifest
    try:
        rec = ws.load_json("review_accept")
    except WorkspaceError:
        rec = {}
    sent = set(rec.get("review", ())) | set(rec.get("reviewed_before", ()))
    rows = []
    for r in m.to_dict("records"):
        if r["problem"]:
            continue
        if r["label_source"] == "accepted":
            f = ws.root / ACCEPTED_DIR / f"{r['stem']}.txt"
            prov, model = "machine-accepted", r["auto_model"] or rec.get("model", "")
        else:
            f = ws.label_source_file(r)
            if f is None:
                continue
            prov = "machine-reviewed" if (r["stem"] in sent and r["label_source"] == "human") else "human"
            model = r["auto_model"] if prov == "machine-reviewed" else ""
        if f is None or not Path(f).is_file():
            continue
        rows.append({"stem": r["stem"], "image": r["image"], "width": int(r["width"]), "height": int(r["height"]),
                     "provenance": prov, "model": model, "label_file": str(f)})
    return pd.DataFrame(rows, columns=["stem", "image", "width", "height", "provenance", "model", "label_file"])


def _boxes(path, n_classes) -> np.ndarray:
    """(n, 5) ``class cx cy w h`` of a label file, checked like any label file (:func:`alnb.core.data.parse_label_lines`)
    but read at full precision: the final set carries a person's numbers as written (float32 made 0.3 0.3000000119)."""
    text = read_label_text(path)
    parse_label_lines(text, n_classes, file=path)
    rows = [[float(v) for v in line.split()] for line in text.splitlines() if line.strip()]
    return np.asarray(rows, np.float64).reshape(-1, 5)


FINAL_SETTINGS = "review_final"  # metrics/review_final.json: the Label Studio URL settings final/ was written with


def final_settings(ws, url_prefix: str | None = None, document_root=None) -> dict:
    """The Label Studio URL settings of the final label set, as :func:`export_final` records them: ``url_prefix``
    (default :data:`alnb.labels.formats.labelstudio.LS_URL_PREFIX`) and ``document_root``, with the queue export's
    default (``$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` when it is set, else the dataset folder: recorded as None)
    resolved now, as an absolute path, so a later refresh (:func:`refresh_final`) from another shell or folder writes
    the same URLs."""
    if document_root is None:
        document_root = os.environ.get(DOCUMENT_ROOT_ENV) or None
    if document_root is not None:
        document_root = os.path.abspath(Path(document_root).expanduser())
    return {"url_prefix": LS_URL_PREFIX if url_prefix is None else str(url_prefix), "document_root": document_root}


def recorded_final_settings(ws) -> dict:
    """The settings ``final/`` was last written with (``metrics/review_final.json``); a final set written before they
    were recorded used the default prefix and the dataset folder."""
    p = ws.root / "metrics" / f"{FINAL_SETTINGS}.json"
    rec = {}
    if p.is_file():
        try:
            rec = ws.load_json(FINAL_SETTINGS)
        except ValueError:
            rec = {}
    return {"url_prefix": str(rec.get("url_prefix") or LS_URL_PREFIX), "document_root": rec.get("document_root")}


def check_document_root(ws, settings: dict):
    """Refuse (WorkspaceError naming both folders, :func:`alnb.labels.formats.labelstudio.image_url`) a document root
    that does not contain the dataset folder."""
    m = ws.manifest()
    for img in m["image"].head(1):
        image_url(img, settings["url_prefix"], ws.dataset_root, settings["document_root"] or ws.dataset_root)


def _put(path: Path, data) -> bool:
    """Write ``data`` (text or bytes) atomically unless ``path`` already holds exactly it; whether it was written."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if path.read_bytes() == raw:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, raw)
    return True


def _json(obj) -> str:
    return json.dumps(obj, indent=2) + "\n"


def export_final(ws, out_dir=None, *, url_prefix: str | None = None, document_root=None) -> dict:
    """The final label set in every format, each label marked with its provenance (:func:`provenance`):

    * ``yolo/labels/<stem>.txt`` + ``yolo/provenance.csv`` + ``yolo/classes.txt`` (YOLO files carry no attributes);
    * ``coco/instances.json``: ``alnb_provenance`` on every image and annotation (``machine-accepted`` ones also
      ``alnb_model``);
    * ``labelstudio/tasks.json``: people's labels as ``annotations``, machine-accepted labels as ``predictions``
      (``model_version`` ``machine-accepted:<MODEL>``), ``data.alnb_provenance`` on every task; ``data.image`` is
      the image URL exactly as the queue export writes it (:func:`alnb.labels.formats.labelstudio.image_url`):
      ``url_prefix`` (default ``/data/local-files/?d=``) + the path relative to ``document_root`` (default
      ``$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` when it is set, else the dataset folder);
    * ``cvat/cvat_yolo1.1.zip``: CVAT's YOLO 1.1 layout with ``provenance.csv`` inside.

    Default folder ``<workspace>/final`` (its settings are recorded in ``metrics/review_final.json`` for
    :func:`refresh_final`).  A dataset outside ``document_root`` is refused (WorkspaceError naming both folders)
    before anything is written; files whose content stays the same are not rewritten, and label files of images no
    longer in the set are removed.  Returns ``{format: folder}``.
    """
    return _write_final(ws, out_dir, final_settings(ws, url_prefix, document_root))[0]


def refresh_final(ws, *, log=print) -> list | None:
    """After labels changed (``alnb import-labels``, ``alnb run --labels`` / :func:`alnb.loop.pipeline.ensure_labelled`):
    rewrite ``<workspace>/final/`` when one was written before, from the current manifest and acceptance record with
    the settings it was written with (:func:`recorded_final_settings`), so it never keeps machine labels of images
    people have labelled since.  Only files whose content changes are written; returns their paths (a line in
    ``log`` when there are some), or None when there is no final label set."""
    out = ws.root / FINAL_DIR
    if not out.is_dir():
        return None
    with workspace_lock(ws.root, "final label set (refresh)"):
        try:
            changed = _write_final(ws, None, recorded_final_settings(ws))[1]
        except WorkspaceError as e:
            raise WorkspaceError(f"the labels are in, but the final label set {out} could not be refreshed: {e}") \
                from e
    if changed and log:
        log(f"[alnb] final label set (with provenance) updated: {out} ({len(changed)} file(s) changed)")
    return changed


def _write_final(ws, out_dir, settings: dict) -> tuple:
    """:func:`export_final` with resolved ``settings`` (:func:`final_settings`): ``({format: folder}, changed paths)``."""
    default = out_dir is None
    out = Path(out_dir) if out_dir is not None else ws.root / FINAL_DIR
    prov = provenance(ws)
    names, nc = ws.names, len(ws.names)
    root = settings["document_root"] if settings["document_root"] is not None else ws.dataset_root
    # the image URLs first: a dataset outside the document root is refused before anything is written
    urls = {r["stem"]: image_url(r["image"], settings["url_prefix"], ws.dataset_root, root)
            for r in prov.to_dict("records")}
    boxes = {r["stem"]: _boxes(r["label_file"], nc) for r in prov.to_dict("records")}
    table = prov.drop(columns=["label_file"]).assign(n_boxes=[len(boxes[s]) for s in prov["stem"]])
    paths, changed = {}, []

    def put(path, data):
        if _put(path, data):
            changed.append(path)

    # YOLO
    y = out / "yolo"
    (y / "labels").mkdir(parents=True, exist_ok=True)
    for s, b in boxes.items():
        lines = [yolo_line(*x) for x in b]
        put(y / "labels" / f"{s}.txt", "\n".join(lines) + ("\n" if lines else ""))
    for f in sorted((y / "labels").glob("*.txt")):  # images no longer in the set (e.g. sent to review again)
        if f.stem not in boxes:
            f.unlink()
            changed.append(f)
    put(y / "classes.txt", "\n".join(names) + "\n")
    put(y / "provenance.csv", table.to_csv(index=False))
    paths["yolo"] = y
    # COCO
    images, anns = [], []
    for i, r in enumerate(prov.to_dict("records"), start=1):
        W, H = r["width"], r["height"]
        im = {"id": i, "file_name": r["image"], "width": W, "height": H, "alnb_stem": r["stem"],
              "alnb_provenance": r["provenance"]}
        images.append(im)
        for c, cx, cy, w, h in boxes[r["stem"]]:
            bbox = [float(v) for v in ((cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H)]
            a = {"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "bbox": bbox,
                 "area": bbox[2] * bbox[3], "iscrowd": 0, "alnb_provenance": r["provenance"]}
            if r["provenance"] == "machine-accepted":
                a["alnb_model"] = r["model"]
            anns.append(a)
    put(out / "coco" / "instances.json", _json({
        "info": {"description": "alnb final label set; alnb_provenance: human | machine-reviewed | machine-accepted"},
        "licenses": [], "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(names)],
        "images": images, "annotations": anns}))
    paths["coco"] = out / "coco"
    # Label Studio
    tasks = []
    for r in prov.to_dict("records"):
        W, H = r["width"], r["height"]
        result = [region(f"{r['stem']}_{k}", names[int(c)], (cx, cy, w, h), float("nan"), W, H)
                  for k, (c, cx, cy, w, h) in enumerate(boxes[r["stem"]])]
        task = {"data": {"image": urls[r["stem"]], "alnb_stem": r["stem"], "alnb_provenance": r["provenance"]},
                "annotations": [], "predictions": []}
        if r["provenance"] == "machine-accepted":
            task["predictions"].append({"model_version": f"machine-accepted:{r['model']}", "result": result})
        else:
            task["annotations"].append({"result": result, "alnb_provenance": r["provenance"]})
        tasks.append(task)
    put(out / "labelstudio" / "tasks.json", _json(tasks))
    paths["labelstudio"] = out / "labelstudio"
    # CVAT (YOLO 1.1 zip)
    zipped = yolo11_zip(names, [(r["image"], boxes[r["stem"]]) for r in prov.to_dict("records")],
                        extra={"provenance.csv": table.to_csv(index=False)})
    put(out / "cvat" / CVAT_ZIP, zipped)
    paths["cvat"] = out / "cvat"
    if default:  # how final/ was written, for refresh_final
        _put(ws.root / "metrics" / f"{FINAL_SETTINGS}.json", _json(settings))
    return paths, changed
