"""Does difficulty predict auto-label errors?  Evaluation of every score against the truth (simulation mode).

Contract: :func:`difficulty_vs_errors` is pure (score and detection tables in, a dict of numbers out);
:func:`match_errors` / :func:`image_errors` read the ground truth through the workspace and write nothing.  Errors
are counted at the operating point (``above=True``) with :func:`alnb.evaluation.metrics.match_image`:

* **image level**, AUROC of each score for "the image has at least one auto-label error", on non-failed images;
* **how many errors**, Spearman correlation of each score with ``n_fp + n_fn`` per non-failed image;
* **box level**, AUROC of each per-detection uncertainty for "this auto-label is a false positive";
* ``|Spearman(score, n_cand)|``: how far a score is just a count of candidate boxes.

Every strategy's numbers sit side by side in ``strategies``, the aggregations (sum / mean / max / top-k) in
``aggregations``.
Design notes: docs/design/uncertainty-and-strategies.md
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnb.acquisition.strategies import SCORE_COLUMNS
from alnb.acquisition.tiers import TIERS, assign_tiers, choose_thresholds
from alnb.evaluation.metrics import match_image, xywhn_to_xyxy

BOX_COLUMNS = ("hybrid", "decision_unc", "cls_unc", "loc_unc", "entropy", "mutual_info", "box_spread", "conf_std",
               "low_conf")
"""Per-detection uncertainties evaluated against "this auto-label is a false positive" (``low_conf = 1 - conf``)."""


# ------------------------------------------------------------------------------------------------------ statistics
def auroc(score, label) -> float:
    """Area under the ROC curve of ``score`` for binary ``label`` (rank-based Mann-Whitney U, ties averaged).

    NaN when only one class is present.
    """
    score = np.asarray(score, dtype=np.float64)
    label = np.asarray(label, dtype=bool)
    n1, n0 = int(label.sum()), int((~label).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def spearman(a, b) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); NaN with < 2 values or a constant input."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2:
        return float("nan")
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


# ---------------------------------------------------------------------------------------------------------- errors
def _gt_boxes(ws, manifest, stem):
    w, h = float(manifest.at[stem, "width"]), float(manifest.at[stem, "height"])
    gt = np.asarray(ws.true_labels(stem), dtype=np.float64).reshape(-1, 5)
    return np.column_stack([gt[:, 0], xywhn_to_xyxy(gt[:, 1:5], w, h)]) if len(gt) else np.zeros((0, 5))


def match_errors(ws, detections: pd.DataFrame, stems, *, iou_thr: float = 0.5) -> tuple:
    """Auto-label errors against the dataset ground truth (simulation only).

    Returns ``(images, detections)``: ``images`` one row per stem (``stem, n_gt, n_tp, n_fp, n_fn, n_err,
    has_error``), ``detections`` the above-threshold rows of ``detections`` with ``is_fp`` added.
    """
    m = ws.manifest().set_index("stem")
    det = detections[detections["above"].astype(bool)] if len(detections) else detections
    groups = {s: g for s, g in det.groupby("stem")} if len(det) else {}
    rows, boxes = [], []
    for stem in stems:
        gt = _gt_boxes(ws, m, stem)
        g = groups.get(stem)
        pred = g[["cls", "x0", "y0", "x1", "y1", "conf"]].to_numpy(float) if g is not None else np.zeros((0, 6))
        r = match_image(pred, gt, iou_thr=iou_thr)
        if g is not None:
            boxes.append(g.assign(is_fp=~r["tp"]))
        rows.append({"stem": stem, "n_gt": len(gt), "n_tp": r["tp_n"], "n_fp": r["fp_n"], "n_fn": r["fn_n"],
                     "n_err": r["fp_n"] + r["fn_n"], "has_error": bool(r["fp_n"] + r["fn_n"] > 0)})
    images = pd.DataFrame(rows, columns=["stem", "n_gt", "n_tp", "n_fp", "n_fn", "n_err", "has_error"])
    dets = pd.concat(boxes, ignore_index=True) if boxes else det.assign(is_fp=pd.Series(dtype=bool))
    return images, dets


def image_errors(ws, detections: pd.DataFrame, stems, iou_thr: float = 0.5) -> pd.DataFrame:
    """Per-image auto-label errors (``stem, n_gt, n_tp, n_fp, n_fn, n_err, has_error``); see :func:`match_errors`."""
    return match_errors(ws, detections, stems, iou_thr=iou_thr)[0]


# ------------------------------------------------------------------------------------------------------ evaluation
def _tier_table(tiers, failed, err) -> dict:
    """Error counts per category; each image counted once: failed images only under ``failed``."""
    out = {}
    for t in TIERS:
        sel = (tiers == t) & ~failed
        out[t] = {"n": int(sel.sum()), "n_error": int(err[sel].sum()),
                  "error_rate": float(err[sel].mean()) if sel.any() else float("nan")}
    out["failed"] = {"n": int(failed.sum()), "n_error": int(err[failed].sum()),
                     "error_rate": float(err[failed].mean()) if failed.any() else float("nan")}
    return out


def score_quality(values, scores: pd.DataFrame) -> dict:
    """The numbers of one image score: AUROC (has_error) and Spearman (n_err) on non-failed images, AUROC on all
    images, and ``|Spearman(score, n_cand)|`` on non-failed images."""
    v = np.asarray(values, dtype=np.float64)
    ok = ~scores["failed"].to_numpy(bool)
    err = scores["has_error"].to_numpy(bool)
    n_err = scores["n_err"].to_numpy(float) if "n_err" in scores else (scores["n_fp"] + scores["n_fn"]).to_numpy(float)
    out = {"auroc": auroc(v[ok], err[ok]), "spearman_errors": spearman(v[ok], n_err[ok]),
           "auroc_all_images": auroc(v, err)}
    if "n_cand" in scores:
        rho = spearman(v[ok], scores["n_cand"].to_numpy(float)[ok])
        out["abs_spearman_candidates"] = abs(rho) if np.isfinite(rho) else float("nan")
    return out


def difficulty_vs_errors(scores: pd.DataFrame, detections: pd.DataFrame | None = None,
                         thresholds: dict | None = None) -> dict:
    """Every strategy's score against the auto-label errors, side by side.

    Parameters
    ----------
    scores : DataFrame
        The score table (:func:`alnb.acquisition.scoring.score_pool`) with ``has_error``, ``n_fp``, ``n_fn`` (simulation mode),
        ``failed``, ``tier``, ``n_cand`` and the strategies' score columns.
    detections : DataFrame, optional
        Above-threshold detections with ``is_fp`` (:func:`match_errors`) for the box-level AUROCs.
    thresholds : dict, optional
        ``{"target_fraction", "hard_share"}`` to cut least-confidence into tiers of the same sizes as the score's.

    Returns
    -------
    dict
        ``n, n_nonfailed, n_error, error_rate, error_rate_nonfailed``; ``strategies`` {strategy: {column, auroc,
        spearman_errors, auroc_all_images, abs_spearman_candidates}}; ``auroc`` {column: AUROC on non-failed images};
        ``aggregations`` {sum/mean/max/topk: the same numbers for the hybrid uncertainty aggregated that way};
        ``box_level`` {column: AUROC for "this auto-label is a false positive"} (+ ``n_boxes``, ``n_fp``);
        ``detection_uncertainty_median``; ``tiers`` / ``least_conf_tiers`` error rates per category.
    """
    if "has_error" not in scores:
        raise ValueError("scores have no 'has_error' column: errors can only be measured in simulation mode "
                         "(every POOL image has dataset labels).")
    err = scores["has_error"].to_numpy(bool)
    failed = scores["failed"].to_numpy(bool)
    ok = ~failed
    strategies = {}
    for name, col in SCORE_COLUMNS.items():
        if col in scores:
            strategies[name] = {"column": col, **score_quality(scores[col], scores)}
    aggregations = {how: score_quality(scores[f"score_{how}"], scores)
                    for how in ("topk", "mean", "max", "sum") if f"score_{how}" in scores}
    th = thresholds or {}
    tf, hf = th.get("target_fraction", 0.6), th.get("hard_share", 0.4)
    lc_th = choose_thresholds(scores, tf, hf, column="least_conf")
    lc_tiers = assign_tiers(scores, lc_th["t_medium"], lc_th["t_hard"], column="least_conf")["tier"].to_numpy()
    res = {"n": int(len(scores)), "n_nonfailed": int(ok.sum()), "n_error": int(err.sum()),
           "error_rate": float(err.mean()) if len(err) else None,
           "error_rate_nonfailed": float(err[ok].mean()) if ok.any() else None,
           "note": "AUROC / Spearman on non-failed images (failed: nothing above the auto-label threshold); "
                   "auroc_all_images includes them.",
           "strategies": strategies, "aggregations": aggregations,
           "auroc": {d["column"]: d["auroc"] for d in strategies.values()},
           "least_conf_thresholds": lc_th}
    if "tier" in scores:
        res["tiers"] = _tier_table(scores["tier"].to_numpy(), failed, err)
        res["least_conf_tiers"] = _tier_table(lc_tiers, failed, err)
        for key in ("tiers", "least_conf_tiers"):
            t = res[key]
            res[f"{key}_hard_minus_easy"] = t["hard"]["error_rate"] - t["easy"]["error_rate"]
    if detections is not None and len(detections) and "is_fp" in detections:
        d = detections.assign(low_conf=1.0 - detections["conf"].astype(float))
        fp = d["is_fp"].to_numpy(bool)
        res["box_level"] = {c: auroc(d[c], fp) for c in BOX_COLUMNS if c in d}
        res["n_boxes"], res["n_fp_boxes"] = int(len(d)), int(fp.sum())
    return res


def detection_summary(detections: pd.DataFrame, scores: pd.DataFrame) -> dict:
    """Saturation checks that need no truth: median per-detection ``hybrid`` and |Spearman(score, n_cand)|."""
    h = detections["hybrid"].to_numpy(float) if len(detections) else np.zeros(0)
    ok = ~scores["failed"].to_numpy(bool)
    rho = spearman(scores.loc[ok, "score"], scores.loc[ok, "n_cand"])
    return {"detection_uncertainty_median": float(np.median(h)) if len(h) else float("nan"),
            "detection_uncertainty_q90": float(np.quantile(h, 0.9)) if len(h) else float("nan"),
            "abs_spearman_score_candidates": abs(rho) if np.isfinite(rho) else float("nan")}
