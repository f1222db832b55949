"""Detection metrics at an operating point: box conversions, IoU, class-aware matching, P/R/F1, the labelling cost
model and efficiency boost, the operating-point curve and COCO-style AP.

All functions work on plain NumPy arrays so they can be tested with hand-made boxes; the VAL1 evaluation *step*
(predicting, choosing the operating point, writing JSON) is :mod:`alnb.evaluation.step`.

Conventions
-----------
* ``xywhn``: YOLO label format, centre x, centre y, width, height, normalised to 0-1.
* ``xyxy``: corners ``x0, y0, x1, y1`` in any consistent unit (pixels or normalised).
* predictions for matching: (n, 6) ``cls, x0, y0, x1, y1, conf``; ground truth: (m, 5) ``cls, x0, y0, x1, y1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np


# ------------------------------------------------------------------------------------------------------- conversions
def xywhn_to_xyxy(boxes, w: float = 1.0, h: float = 1.0) -> np.ndarray:
    """Convert (n, 4) centre/size boxes (normalised) to corners, scaled by image width ``w`` and height ``h``.

    Parameters
    ----------
    boxes : array-like, shape (n, 4)
        ``cx, cy, bw, bh`` in 0-1.
    w, h : float
        Image size; the default 1 keeps normalised units.

    Returns
    -------
    numpy.ndarray, shape (n, 4), float64
        ``x0, y0, x1, y1``.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    out[:, 0] = (b[:, 0] - b[:, 2] / 2) * w
    out[:, 1] = (b[:, 1] - b[:, 3] / 2) * h
    out[:, 2] = (b[:, 0] + b[:, 2] / 2) * w
    out[:, 3] = (b[:, 1] + b[:, 3] / 2) * h
    return out


def xyxy_to_xywhn(boxes, w: float = 1.0, h: float = 1.0) -> np.ndarray:
    """Inverse of :func:`xywhn_to_xyxy`: corners in units of ``w``/``h`` to normalised centre/size boxes."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    out[:, 0] = (b[:, 0] + b[:, 2]) / 2 / w
    out[:, 1] = (b[:, 1] + b[:, 3]) / 2 / h
    out[:, 2] = (b[:, 2] - b[:, 0]) / w
    out[:, 3] = (b[:, 3] - b[:, 1]) / h
    return out


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU of (n, 4) and (m, 4) ``xyxy`` boxes; returns (n, m).  Degenerate boxes give IoU 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


# ----------------------------------------------------------------------------------------------------------- matching
def match_image(pred, gt, iou_thr: float = 0.5, nc: int | None = None) -> dict:
    """Greedy class-aware matching of one image's predictions to its ground truth.

    Predictions are visited by descending confidence (stable: ties keep input order); each one is matched to the
    unmatched ground-truth box **of the same class** with the highest IoU, if that IoU is ``>= iou_thr``.  Each
    ground-truth box is matched at most once.  (This is the usual VOC/COCO-style greedy rule.)

    Parameters
    ----------
    pred : array-like, shape (n, 6)
        ``cls, x0, y0, x1, y1, conf``.
    gt : array-like, shape (m, 5)
        ``cls, x0, y0, x1, y1`` in the same units as ``pred``.
    iou_thr : float
        Minimum IoU for a true positive.
    nc : int, optional
        Number of classes; when given, ``tp_c``/``fp_c``/``fn_c``/``n_gt_c``/``n_pred_c`` arrays of length ``nc``
        are added.

    Returns
    -------
    dict
        ``tp`` bool (n,) in input order, ``matched_gt`` bool (m,), ``gt_index`` int (n,) (-1 when unmatched),
        ``iou`` float (n,) IoU with the matched box (0 when unmatched), ``tp_n``, ``fp_n``, ``fn_n`` ints,
        ``per_class`` {class id: {"tp", "fp", "fn", "n_gt", "n_pred"}} for every class present, and the ``*_c``
        arrays when ``nc`` is given.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 6)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 5)
    n, m = len(pred), len(gt)
    tp = np.zeros(n, bool)
    matched = np.zeros(m, bool)
    gt_index = np.full(n, -1, int)
    ious = np.zeros(n)
    if n and m:
        iou = box_iou(pred[:, 1:5], gt[:, 1:5])
        same = pred[:, None, 0].astype(int) == gt[None, :, 0].astype(int)
        iou = np.where(same, iou, -1.0)
        for i in np.argsort(-pred[:, 5], kind="stable"):
            cand = np.where(matched, -1.0, iou[i])
            j = int(np.argmax(cand))
            if cand[j] >= iou_thr:
                tp[i], matched[j], gt_index[i], ious[i] = True, True, j, cand[j]
    pc, gc = pred[:, 0].astype(int), gt[:, 0].astype(int)
    per_class = {}
    for c in sorted(set(pc.tolist()) | set(gc.tolist())):
        t, n_p, n_g = int(tp[pc == c].sum()), int((pc == c).sum()), int((gc == c).sum())
        per_class[c] = {"tp": t, "fp": n_p - t, "fn": n_g - int(matched[gc == c].sum()), "n_gt": n_g, "n_pred": n_p}
    out = {"tp": tp, "matched_gt": matched, "gt_index": gt_index, "iou": ious,
           "tp_n": int(tp.sum()), "fp_n": int(n - tp.sum()), "fn_n": int(m - matched.sum()), "per_class": per_class}
    if nc is not None:
        if (n and pc.max() >= nc) or (m and gc.max() >= nc) or (n and pc.min() < 0) or (m and gc.min() < 0):
            raise ValueError(f"class ids must be in 0..{nc - 1}")
        out["tp_c"] = np.bincount(pc[tp], minlength=nc)
        out["n_pred_c"] = np.bincount(pc, minlength=nc)
        out["fp_c"] = out["n_pred_c"] - out["tp_c"]
        out["n_gt_c"] = np.bincount(gc, minlength=nc)
        out["fn_c"] = out["n_gt_c"] - np.bincount(gc[matched], minlength=nc)
    return out


def prf(tp, fp, fn) -> tuple:
    """Precision, recall, F1 from counts.

    Precision is NaN without predictions and recall is NaN without instances (not measurable, never 0).
    F1 = 2TP / (2TP + FP + FN) (the harmonic mean where both exist; 0 when there were errors but no hit; NaN when
    there is nothing at all).
    """
    tp, fp, fn = float(tp), float(fp), float(fn)
    p = tp / (tp + fp) if tp + fp > 0 else float("nan")
    r = tp / (tp + fn) if tp + fn > 0 else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 0 else float("nan")
    return p, r, f1


def duplicate_share(boxes_per_image, thr: float = 0.5) -> dict:
    """How often the same object is boxed twice: same-class box pairs in one image overlapping with IoU >= ``thr``.

    ``boxes_per_image``: iterable of (n, 5+) arrays ``cls, x0, y0, x1, y1[, ...]`` (one per image).  Returns
    ``n_boxes``, ``n_pairs`` (same-class pairs in the same image), ``dup_pairs`` (of those, IoU >= ``thr``),
    ``pair_share = dup_pairs / n_pairs``, ``box_share`` (share of boxes that have such a duplicate) and
    ``cross_pairs`` (pairs of *different* classes with IoU >= ``thr``: one object called two things).
    """
    n_box = n_dup = n_pair = n_pair_dup = n_cross = 0
    for b in boxes_per_image:
        b = np.asarray(b, float)
        n_box += len(b)
        if len(b) < 2:
            continue
        iou = box_iou(b[:, 1:5], b[:, 1:5])
        same = b[:, None, 0] == b[None, :, 0]
        n_cross += int(np.triu(~same & (iou >= thr), 1).sum())
        np.fill_diagonal(same, False)
        hit = same & (iou >= thr)
        n_dup += int(hit.any(1).sum())
        n_pair += int(np.triu(same, 1).sum())
        n_pair_dup += int(np.triu(hit, 1).sum())
    return {"n_boxes": n_box, "n_pairs": n_pair, "dup_pairs": n_pair_dup, "cross_pairs": n_cross,
            "pair_share": n_pair_dup / n_pair if n_pair else 0.0, "box_share": n_dup / n_box if n_box else 0.0}


# ----------------------------------------------------------------------------------------------- labelling cost model
@dataclass(frozen=True)
class CostModel:
    """Seconds an annotator spends per action, used to turn TP/FP/FN counts into labelling time.

    Attributes
    ----------
    t_draw : float, default 10.0
        Draw one box and set its class from scratch.  Superb AI's published figure is ~10 s per box including the
        class (Superb AI blog, "how long does it take to label a bounding box"); academic measurements of manual
        drawing on ImageNet-style data are higher (Su, Deng & Fei-Fei 2012, cited by Papadopoulos et al.: tens of
        seconds per box including quality control), so 10 s is a conservative (small-boost) basis.
    t_verify : float, default 1.6
        Look at a proposed box and accept it.  Papadopoulos, Uijlings, Keller & Ferrari, CVPR 2016, "We don't need no
        bounding-boxes": box verification by a yes/no answer takes about 1.6 s.
    t_delete : float, default 1.6
        Extra time to remove a rejected (false-positive) proposal, on top of the look already counted in
        ``t_verify``: select it and delete it.  No published figure measures exactly this; we assume it takes as
        long as a verification (one more decision-and-click, 1.6 s), so a false positive costs 3.2 s in all.
        Assumption, chosen on the slow side so the boost is not overstated.
    t_image : float, default 3.0
        Per-image overhead (open the image, scan it for defects, move on), paid in both workflows, so it only
        dampens the boost on images with few boxes.  Assumption: a few seconds of scanning per image; set to 0 to
        compare box work only.

    Change any value with ``CostModel(t_draw=20)`` etc.; :meth:`to_dict` records the values next to the results.
    """

    t_draw: float = 10.0
    t_verify: float = 1.6
    t_delete: float = 1.6
    t_image: float = 3.0

    def to_dict(self) -> dict:
        return asdict(self)


def labelling_seconds(n_gt, n_pred, fp, fn, n_images=0, costs: CostModel = CostModel()) -> dict:
    """Manual and assisted labelling time in seconds (see :func:`efficiency_boost`)."""
    manual = n_gt * costs.t_draw + n_images * costs.t_image
    assisted = n_pred * costs.t_verify + fp * costs.t_delete + fn * costs.t_draw + n_images * costs.t_image
    return {"manual_s": float(manual), "assisted_s": float(assisted)}


def efficiency_boost(n_gt, n_pred, fp, fn, n_images=0, costs: CostModel = CostModel()) -> dict:
    """Expected Labeling Efficiency Boost = manual time / assisted time.

    * manual = ``n_gt * t_draw + n_images * t_image``: every true box drawn from scratch;
    * assisted = ``n_pred * t_verify + fp * t_delete + fn * t_draw + n_images * t_image``: every proposal is
      looked at, false positives are deleted, missed boxes are drawn.

    With no predictions (``n_pred = fp = 0``, ``fn = n_gt``) assisted equals manual and the boost is exactly 1.0;
    a boost below 1 means the proposals cost more time than they save.

    Parameters
    ----------
    n_gt, n_pred, fp, fn : int or array-like
        Ground-truth boxes, predicted boxes, false positives, false negatives (scalars or per-class arrays).
    n_images : int
        Images labelled (per-image overhead applies to both workflows; use 0 for per-class numbers).
    costs : CostModel

    Returns
    -------
    dict
        ``manual_s``, ``assisted_s``, ``boost`` (NaN when both times are 0, e.g. a class absent from the set),
        ``saved_s``.
    """
    if np.ndim(n_gt) or np.ndim(n_pred):
        n_gt, n_pred, fp, fn = (np.asarray(v, float) for v in (n_gt, n_pred, fp, fn))
        manual = n_gt * costs.t_draw + n_images * costs.t_image
        assisted = n_pred * costs.t_verify + fp * costs.t_delete + fn * costs.t_draw + n_images * costs.t_image
        with np.errstate(invalid="ignore", divide="ignore"):
            boost = np.where(assisted > 0, manual / np.where(assisted > 0, assisted, 1), np.nan)
        boost = np.where((manual == 0) & (assisted == 0), np.nan, boost)
        return {"manual_s": manual, "assisted_s": assisted, "boost": boost, "saved_s": manual - assisted}
    t = labelling_seconds(n_gt, n_pred, fp, fn, n_images, costs)
    m, a = t["manual_s"], t["assisted_s"]
    boost = m / a if a > 0 else (float("nan") if m == 0 else float("inf"))
    return {**t, "boost": boost, "saved_s": m - a}


# ---------------------------------------------------------------------------------------------- model evaluation
# NMS IoU of auto-labels, evaluation and mAP.  Ultralytics' default 0.7 left thin elongated defects boxed several times,
# every extra box a false positive at IoU 0.5 matching (docs/design/evaluation.md; benchmarks/recipe_sweep.py).
NMS_IOU = 0.5

# ------------------------------------------------------------------------------------------------ operating point
FIXED_CONF = 0.25  # the study's fixed auto-label confidence, always reported beside the chosen operating point
SWEEP_CONF = 0.01  # predictions are collected down to this confidence and the operating point is chosen above it
OP_RULES = ("f1", "precision", "seconds")
DEFAULT_OP_RULE = "f1"  # the rule evaluate() / auto-labelling use unless told otherwise (docs/guide/training.md)


def threshold_curve(conf, tp, n_gt: int) -> dict:
    """Precision / recall / F1 for every confidence cut of a set of matched predictions.

    ``conf`` (n,) and ``tp`` (n,) come from greedy matching at the lowest confidence (:func:`match_image` visits
    predictions by descending confidence, so the matches of the predictions above any cut are exactly those a
    prediction at that cut would make).  Returns arrays sorted by descending confidence: ``conf``, ``tp``, ``fp``
    (cumulative counts when keeping the top k+1), ``precision``, ``recall``, ``f1`` and ``threshold`` (a confidence
    strictly between neighbouring predictions, so that "``> threshold``" keeps exactly the top k+1).
    """
    conf = np.asarray(conf, float).reshape(-1)
    tp = np.asarray(tp, bool).reshape(-1)
    order = np.argsort(-conf, kind="stable")
    c, t = conf[order], tp[order]
    ctp = np.cumsum(t)
    cfp = np.cumsum(~t)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = ctp / np.maximum(ctp + cfp, 1)
        rec = ctp / n_gt if n_gt else np.full(len(c), np.nan)
        f1 = 2 * ctp / np.maximum(2 * ctp + cfp + (n_gt - ctp), 1)
    nxt = np.append(c[1:], 0.0)
    thr = np.where(c > nxt, (c + nxt) / 2, c)  # ties: cut at the value itself (keeps nothing more below it)
    return {"conf": c, "tp": ctp, "fp": cfp, "precision": prec, "recall": rec, "f1": f1, "threshold": thr,
            "n_gt": int(n_gt)}


def choose_conf(curve: dict, rule: str = "f1", target_precision: float = 0.8, floor: float = SWEEP_CONF,
                costs: CostModel | None = None) -> dict:
    """Pick the auto-label confidence from a :func:`threshold_curve`.

    * ``rule="f1"`` (default): the cut with the highest F1 (ties: the higher confidence) - the point where the
      labelling work left over (misses + false boxes) is smallest relative to the hits;
    * ``rule="precision"``: the lowest cut whose precision is at least ``target_precision`` (most recall at that
      precision); falls back to the F1 rule when no cut reaches it;
    * ``rule="seconds"``: the cut with the fewest predicted assisted labelling seconds on this set under ``costs``
      (:func:`cut_seconds`: every proposal verified, false ones deleted, misses drawn).  F1 weighs a miss like a
      false box; the cost model does not (10 s to draw a miss, 3.2 s to look at and delete a false box), so this
      cut sits lower, where more proposals are worth their checking time (ties: the higher confidence).

    Returns ``{"conf", "rule", "precision", "recall", "f1"}``; with no prediction at all ``conf`` is
    :data:`FIXED_CONF`.
    """
    if rule not in OP_RULES:
        raise ValueError(f"operating-point rule must be one of {OP_RULES}, not {rule!r}")
    n = len(curve["conf"])
    if n == 0:
        return {"conf": FIXED_CONF, "rule": rule, "precision": float("nan"), "recall": 0.0, "f1": 0.0}
    k, used = None, rule
    if rule == "precision":
        ok = np.where(curve["precision"] >= target_precision)[0]
        k = int(ok[-1]) if len(ok) else None
    if rule == "seconds":
        sec = cut_seconds(curve, costs or CostModel())
        k = int(np.flatnonzero(sec == sec.min())[0])
    if k is None:
        f1 = curve["f1"]
        k, used = int(np.flatnonzero(f1 == f1.max())[0]), "f1"
    thr = max(float(curve["threshold"][k]), floor)
    out = {"conf": round(thr, 6), "rule": used,
           "precision": float(curve["precision"][k]), "recall": float(curve["recall"][k]), "f1": float(curve["f1"][k])}
    if rule == "precision":
        out["target_precision"] = target_precision
    if rule == "seconds":
        out["predicted_box_s"] = float(cut_seconds(curve, costs or CostModel())[k])
    return out


def cut_seconds(curve: dict, costs: CostModel) -> np.ndarray:
    """Assisted labelling seconds of the box work (no per-image time: the same at every cut) when keeping the top
    k+1 predictions of a :func:`threshold_curve`, for every k: proposals x verify + false ones x delete + misses x
    draw."""
    tp, fp = np.asarray(curve["tp"], float), np.asarray(curve["fp"], float)
    return (tp + fp) * costs.t_verify + fp * costs.t_delete + (curve["n_gt"] - tp) * costs.t_draw


def counts_at(preds: list, gts: list, nc: int, thr: float) -> dict:
    """Per-class TP/FP/FN/instances/predictions when keeping predictions with confidence > ``thr``."""
    tot = {k: np.zeros(nc, int) for k in ("tp_c", "fp_c", "fn_c", "n_gt_c", "n_pred_c")}
    per_image = []
    for (cls, conf, tp), gcls in zip(preds, gts):
        keep = conf > thr
        pc = cls[keep]
        tpc = np.bincount(pc[tp[keep]], minlength=nc)
        npc = np.bincount(pc, minlength=nc)
        ngc = np.bincount(gcls, minlength=nc)
        tot["tp_c"] += tpc
        tot["n_pred_c"] += npc
        tot["fp_c"] += npc - tpc
        tot["n_gt_c"] += ngc
        tot["fn_c"] += ngc - tpc
        per_image.append((int(tpc.sum()), int((npc - tpc).sum()), int((ngc - tpc).sum()), len(gcls), int(keep.sum())))
    return {**tot, "per_image": per_image}


def confusion_counts(preds, gts, nc: int, conf: float, iou_thr: float = 0.5) -> np.ndarray:
    """The confusion matrix at the operating point ``conf``, counted with the evaluation's own matches.

    ``preds``: per image an (n, 6) array ``cls, x0, y0, x1, y1, conf``; ``gts``: per image an (m, 5) array ``cls,
    x0, y0, x1, y1``.  The predictions with confidence > ``conf`` are matched by :func:`match_image` (class-aware,
    greedy by confidence, IoU >= ``iou_thr``), the matches :func:`counts_at` (the evaluation's per-class table)
    counts: they are the diagonal.  What is left unmatched in an image is then paired *across* classes by the same
    greedy rule (by descending confidence, to the highest-IoU unpaired truth with IoU >= ``iou_thr``): such a pair is
    a class confusion (row = predicted class, column = true class), still one FP of its row's class and one FN of
    its column's.  The rest is background: a false positive (last column) or a missed box (last row).

    Returns (nc + 1, nc + 1) int counts: ``diag[c]`` = TP of class c, row ``c`` sums to the predictions of class c,
    column ``c`` to its instances, so FP_c = row sum - TP_c and FN_c = column sum - TP_c, as in the table.
    (Ultralytics' ``ConfusionMatrix`` matches class-agnostically first: a box of another class with a higher
    confidence can take a truth the right class would have matched, so its diagonal is lower than the table's TP.)
    """
    mat = np.zeros((nc + 1, nc + 1), int)
    for pred, gt in zip(preds, gts):
        pred = np.asarray(pred, dtype=np.float64).reshape(-1, 6)
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 5)
        pred = pred[pred[:, 5] > conf]
        r = match_image(pred, gt, iou_thr=iou_thr)
        pc, gc = pred[:, 0].astype(int), gt[:, 0].astype(int)
        np.add.at(mat, (pc[r["tp"]], pc[r["tp"]]), 1)
        left_p, left_g = np.flatnonzero(~r["tp"]), np.flatnonzero(~r["matched_gt"])
        paired_p, paired_g = np.zeros(len(left_p), bool), np.zeros(len(left_g), bool)
        if len(left_p) and len(left_g):
            iou = box_iou(pred[left_p, 1:5], gt[left_g, 1:5])
            for i in np.argsort(-pred[left_p, 5], kind="stable"):
                cand = np.where(paired_g, -1.0, iou[i])
                j = int(np.argmax(cand))
                if cand[j] >= iou_thr:
                    paired_p[i], paired_g[j] = True, True
                    mat[pc[left_p[i]], gc[left_g[j]]] += 1
        np.add.at(mat, (pc[left_p[~paired_p]], nc), 1)
        np.add.at(mat, (nc, gc[left_g[~paired_g]]), 1)
    return mat


def overall_counts(tot: dict, n_images: int, costs) -> dict:
    """Overall instances / predictions / TP / FP / FN, P / R / F1 and the boost of :func:`counts_at` totals."""
    TP, FP, FN = (int(tot[k].sum()) for k in ("tp_c", "fp_c", "fn_c"))
    n_gt, n_pred = int(tot["n_gt_c"].sum()), int(tot["n_pred_c"].sum())
    p, rcl, f1 = prf(TP, FP, FN)
    boost = efficiency_boost(n_gt, n_pred, FP, FN, n_images, costs)
    return {"instances": n_gt, "predictions": n_pred, "tp": TP, "fp": FP, "fn": FN, "precision": p, "recall": rcl,
            "f1": f1, **boost, "boost_boxes_only": efficiency_boost(n_gt, n_pred, FP, FN, 0, costs)["boost"]}


# ---------------------------------------------------------------------------------------------------- COCO-style AP
COCO_IOUS = np.linspace(0.5, 0.95, 10)  # IoU thresholds of mAP50-95 (COCO)
COCO_RECALLS = np.linspace(0.0, 1.0, 101)  # recall points of COCO's interpolated precision
COCO_MAX_DETS = 100  # detections per image and class that count (COCO's maxDets for AP)


def coco_matches(preds, gts, nc: int, *, iou_thrs=COCO_IOUS, max_dets: int = COCO_MAX_DETS) -> dict:
    """The per-image part of COCO-style AP (:func:`coco_map`): for every image and class the detections' scores
    (descending, at most ``max_dets``), whether each matches at every IoU threshold, and the ground-truth count.
    Accumulating them (:func:`coco_accumulate`) gives the AP of any multiset of the images (a bootstrap sample)
    without matching again.  Returns ``{"scores": [[array per class] per image], "hits": [[(n_t, n) bool]],
    "n_gt": (n_images, nc) int, "iou_thrs", "nc"}``."""
    iou_thrs = np.asarray(iou_thrs, float)
    n_t = len(iou_thrs)
    scores, hits = [], []
    n_gt = np.zeros((len(preds), nc), int)
    for ii, (pred, gt) in enumerate(zip(preds, gts)):
        pred = np.asarray(pred, float).reshape(-1, 6)
        gt = np.asarray(gt, float).reshape(-1, 5)
        sc_i, hit_i = [], []
        for c in range(nc):
            g = gt[gt[:, 0] == c, 1:5]
            d = pred[pred[:, 0] == c]
            n_gt[ii, c] = len(g)
            d = d[np.argsort(-d[:, 5], kind="mergesort")][:max_dets]
            hit = np.zeros((n_t, len(d)), bool)
            if len(g) and len(d):
                iou = box_iou(d[:, 1:5], g)
                for ti, t in enumerate(iou_thrs):
                    taken = np.zeros(len(g), bool)
                    for di in range(len(d)):
                        best, m = min(t, 1 - 1e-10), -1
                        for gi in range(len(g)):
                            if taken[gi] or iou[di, gi] < best:
                                continue
                            best, m = iou[di, gi], gi
                        if m >= 0:
                            taken[m] = True
                            hit[ti, di] = True
            sc_i.append(d[:, 5])
            hit_i.append(hit)
        scores.append(sc_i)
        hits.append(hit_i)
    return {"scores": scores, "hits": hits, "n_gt": n_gt, "iou_thrs": iou_thrs, "nc": int(nc)}


def coco_accumulate(matches: dict, images=None) -> dict:
    """COCO-style AP from :func:`coco_matches` over the images ``images`` (indices, repeats allowed: a bootstrap
    sample; default every image once), as ``COCOeval.accumulate`` + ``summarize`` do: per class, all detections by
    descending score (stable, image order), cumulative TP/FP, the precision envelope, precision at 101 recall points
    (0 beyond the reached recall), averaged.  Returns ``mAP50``, ``mAP50-95`` (means over the classes with ground
    truth; NaN if none) and ``per_class``."""
    nc, iou_thrs = matches["nc"], matches["iou_thrs"]
    idx = np.arange(len(matches["scores"])) if images is None else np.asarray(images, int)
    n_t = len(iou_thrs)
    n_gt = matches["n_gt"][idx].sum(0) if len(idx) else np.zeros(nc, int)
    ap = np.full((n_t, nc), np.nan)
    for c in range(nc):
        if n_gt[c] == 0:
            continue
        sc = [matches["scores"][i][c] for i in idx]
        if not sum(len(x) for x in sc):
            ap[:, c] = 0.0
            continue
        sc = np.concatenate(sc)
        order = np.argsort(-sc, kind="mergesort")
        hit = np.concatenate([matches["hits"][i][c] for i in idx], axis=1)[:, order]
        tp = np.cumsum(hit, axis=1).astype(float)
        fp = np.cumsum(~hit, axis=1).astype(float)
        for ti in range(n_t):
            rc = tp[ti] / n_gt[c]
            pr = tp[ti] / (tp[ti] + fp[ti] + np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope (non-increasing)
            k = np.searchsorted(rc, COCO_RECALLS, side="left")
            q = np.where(k < len(pr), pr[np.minimum(k, len(pr) - 1)], 0.0)
            ap[ti, c] = q.mean()
    has = n_gt > 0
    i50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    per_class = {int(c): {"AP50": float(ap[i50, c]), "AP50-95": float(ap[:, c].mean()), "n_gt": int(n_gt[c])}
                 for c in np.flatnonzero(has)}
    return {"mAP50": float(np.nanmean(ap[i50, has])) if has.any() else float("nan"),
            "mAP50-95": float(np.nanmean(ap[:, has])) if has.any() else float("nan"), "per_class": per_class}


def coco_pr_curves(matches: dict, iou: float = 0.5) -> dict:
    """Per class, the precision-recall curve that :func:`coco_accumulate` averages into AP at IoU ``iou``: the
    precision envelope at COCO's 101 recall points (:data:`COCO_RECALLS`), NaN beyond the recall the class reaches
    (where AP counts 0), so ``nan_to_num(precision).mean()`` is the class's AP.  Returns ``{"recall": (101,),
    "precision": {class id: (101,)}}`` for the classes with ground truth."""
    nc, iou_thrs = matches["nc"], matches["iou_thrs"]
    ti = int(np.argmin(np.abs(np.asarray(iou_thrs, float) - iou)))
    n_gt = matches["n_gt"].sum(0) if len(matches["n_gt"]) else np.zeros(nc, int)
    out = {}
    for c in range(nc):
        if n_gt[c] == 0:
            continue
        sc = [s[c] for s in matches["scores"]]
        if not sum(len(x) for x in sc):
            out[c] = np.full(len(COCO_RECALLS), np.nan)
            continue
        order = np.argsort(-np.concatenate(sc), kind="mergesort")
        hit = np.concatenate([h[c] for h in matches["hits"]], axis=1)[ti, order]
        tp, fp = np.cumsum(hit).astype(float), np.cumsum(~hit).astype(float)
        rc = tp / n_gt[c]
        pr = np.maximum.accumulate((tp / (tp + fp + np.spacing(1)))[::-1])[::-1]
        k = np.searchsorted(rc, COCO_RECALLS, side="left")
        out[c] = np.where(k < len(pr), pr[np.minimum(k, len(pr) - 1)], np.nan)
    return {"recall": COCO_RECALLS.copy(), "precision": out}


def coco_map(preds, gts, nc: int, *, iou_thrs=COCO_IOUS, max_dets: int = COCO_MAX_DETS) -> dict:
    """COCO-style mean average precision of detections, computed as pycocotools' ``COCOeval`` does (bbox, area
    "all", ``maxDets`` per image and class, 101-point interpolated precision, greedy matching by descending score
    to the best-IoU unmatched ground truth); a test checks it against pycocotools to 1e-6.

    ``preds``: per image an (n, 6) array ``cls, x0, y0, x1, y1, conf``; ``gts``: per image an (m, 5) array
    ``cls, x0, y0, x1, y1`` (same units).  Returns ``mAP50``, ``mAP50-95`` (means over the classes that have ground
    truth; NaN if none has) and ``per_class`` ``{class id: {"AP50", "AP50-95", "n_gt"}}`` for those classes.
    """
    return coco_accumulate(coco_matches(preds, gts, nc, iou_thrs=iou_thrs, max_dets=max_dets))


def coco_bootstrap_diff(matches_a: dict, matches_b: dict, *, metric: str = "mAP50", n_boot: int = 200,
                        seed: int = 0) -> np.ndarray:
    """Paired bootstrap of a COCO-style metric's difference between two models on the **same** images: each sample
    draws the images with replacement once and scores both models on it; returns the ``n_boot`` differences
    ``a - b`` (their variance is the evaluation noise of the comparison)."""
    n = len(matches_a["scores"])
    if len(matches_b["scores"]) != n:
        raise ValueError(f"the two models were evaluated on different image sets ({n} vs {len(matches_b['scores'])})")
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        out[i] = coco_accumulate(matches_a, idx)[metric] - coco_accumulate(matches_b, idx)[metric]
    return out


# ------------------------------------------------------------------------------------- predicted labelling seconds
CAL_BINS = 5  # confidence bins of the precision calibration (quantiles of the kept proposals' confidences)
WEAK_FACTOR = 0.5  # a "weak" candidate: confidence in (WEAK_FACTOR * op, op], the MC scorer's cand_conf default


def cost_calibration(preds: list, gts: list, thr: float, *, bins: int = CAL_BINS) -> dict:
    """What predicts an image's correction work, measured on a labelled set (VAL1) at the operating point ``thr``.

    ``preds``: per image ``(cls, conf, tp)`` arrays of the predictions down to the sweep floor (``tp`` at IoU 0.5,
    as :func:`alnb.evaluation.step.evaluate` collects them); ``gts``: per image the true classes.  Returns

    * ``edges`` / ``p_tp``: the share of true positives among the kept proposals (conf > ``thr``) per confidence bin
      (quantile edges, Laplace-smoothed ``(tp + 1) / (n + 2)``): a proposal's chance to be verified, not deleted;
    * ``miss``: non-negative least-squares coefficients of the misses of an image on ``[1, n_weak, n_kept]``
      (``n_weak``: candidates with confidence in ``(WEAK_FACTOR * thr, thr]``, the ones auto-labelling drops; ``n_kept``
      the proposals): the boxes people will have to draw;
    * ``fit``: the set's own totals, true vs predicted false positives and misses (how well the model fits here).

    :func:`predicted_seconds` applies it to unlabelled images through the :class:`CostModel`.
    """
    kept_conf, kept_tp, X, y = [], [], [], []
    for (cls, conf, tp), g in zip(preds, gts):
        conf, tp = np.asarray(conf, float), np.asarray(tp, bool)
        keep = conf > thr
        weak = (conf > WEAK_FACTOR * thr) & ~keep
        kept_conf.append(conf[keep])
        kept_tp.append(tp[keep])
        X.append([1.0, float(weak.sum()), float(keep.sum())])
        y.append(float(len(g) - tp[keep].sum()))
    kc = np.concatenate(kept_conf) if kept_conf else np.zeros(0)
    kt = np.concatenate(kept_tp) if kept_tp else np.zeros(0, bool)
    if len(kc):
        inner = np.unique(np.quantile(kc, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        inner = np.zeros(0)
    idx = np.searchsorted(inner, kc, side="right")
    p_tp = [float((kt[idx == b].sum() + 1) / ((idx == b).sum() + 2)) for b in range(len(inner) + 1)]
    X, y = np.asarray(X).reshape(-1, 3), np.asarray(y)
    coef = nonneg_lstsq(X, y) if len(y) else np.zeros(3)
    cal = {"thr": float(thr), "weak_factor": WEAK_FACTOR, "edges": [float(e) for e in inner], "p_tp": p_tp,
           "miss": [float(c) for c in coef], "n_images": len(y)}
    fp_hat = float(sum(expected_fp(c, cal) for c in kept_conf))
    cal["fit"] = {"fp": int(sum(len(t) - t.sum() for t in kept_tp)), "fp_predicted": round(fp_hat, 3),
                  "fn": int(y.sum()), "fn_predicted": round(float((X @ coef).sum()), 3)}
    return cal


def nonneg_lstsq(X, y) -> np.ndarray:
    """Least squares with non-negative coefficients for a few columns: the best of the unconstrained solutions on
    every subset of columns whose coefficients are all >= 0 (exact for the handful of columns used here)."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    p = X.shape[1]
    best, best_r = np.zeros(p), float(np.sum(y ** 2))
    for r in range(1, p + 1):
        for cols in combinations(range(p), r):
            c = np.linalg.lstsq(X[:, cols], y, rcond=None)[0]
            if np.all(c >= -1e-12):
                full = np.zeros(p)
                full[list(cols)] = np.maximum(c, 0)
                res = float(np.sum((X @ full - y) ** 2))
                if res < best_r - 1e-12:
                    best, best_r = full, res
    return best


def expected_fp(conf, calibration: dict) -> float:
    """Expected false positives among proposals with confidences ``conf`` (:func:`cost_calibration`'s bins)."""
    conf = np.asarray(conf, float)
    if not len(conf):
        return 0.0
    p = np.asarray(calibration["p_tp"], float)[np.searchsorted(calibration["edges"], conf, side="right")]
    return float((1 - p).sum())


def predicted_seconds(scores, detections, calibration: dict, costs: CostModel | None = None) -> np.ndarray:
    """Predicted assisted labelling seconds of each image of ``scores`` (rows in order) from its auto-labels alone:
    ``n_kept * t_verify + E[fp] * t_delete + E[misses] * t_draw + t_image`` (:func:`cost_calibration`).

    ``detections``: the scoring step's ``detections.csv`` (``stem, conf, above``; ``above`` = kept as an auto-label,
    the others are the weak candidates between the MC scorer's ``cand_conf`` and the operating point).
    """
    costs = costs or CostModel()
    a, b, c = calibration["miss"]
    by = {s: g for s, g in detections.groupby("stem", sort=False)} if len(detections) else {}
    out = []
    for stem in scores["stem"].astype(str):
        g = by.get(stem)
        if g is None:
            kept, n_weak = np.zeros(0), 0
        else:
            above = g["above"].to_numpy(bool)
            kept, n_weak = g["conf"].to_numpy(float)[above], int((~above).sum())
        fp = expected_fp(kept, calibration)
        fn = a + b * n_weak + c * len(kept)
        out.append(len(kept) * costs.t_verify + fp * costs.t_delete + fn * costs.t_draw + costs.t_image)
    return np.asarray(out, float)


# ------------------------------------------------------------------------------------------------ auto-label lines
def autolabel_lines(cls, xyxy, conf, w: float, h: float) -> list:
    """The lines of one image's auto-label file (YOLO ``cls cx cy w h conf``, normalised), highest confidence first
    (ties: the order given) — the format of ``autolabels/<MODEL>/<stem>.txt``."""
    cls = np.asarray(cls).reshape(-1)
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    conf = np.asarray(conf, np.float64).reshape(-1)
    cx, cy = (b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h
    bw, bh = (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h
    order = np.argsort(-conf, kind="stable")
    return [f"{int(cls[i])} {cx[i]:.6f} {cy[i]:.6f} {bw[i]:.6f} {bh[i]:.6f} {conf[i]:.5f}" for i in order]


def predicted_cost(n_images: int, n_pred: int, precision: float, recall: float, costs=None) -> dict:
    """Predicted labelling cost of a selection from its auto-labels and the model's precision / recall on VAL1.

    ``n_pred`` auto-label boxes of which ``precision`` are expected to be right; the true boxes are expected to be
    ``tp / recall``; the rest is drawn.  Times by :class:`alnb.evaluation.metrics.CostModel` (``costs``): ``assisted_h``
    (correct the auto-labels), ``manual_h`` (draw every box).  NaN where precision or recall is not measurable.
    """
    costs = costs or CostModel()
    p, r = float(precision), float(recall)
    if not (np.isfinite(p) and np.isfinite(r) and r > 0):
        nan = float("nan")
        return {"images": int(n_images), "auto_boxes": int(n_pred), "expected_boxes": nan, "assisted_h": nan,
                "manual_h": nan}
    tp = n_pred * p
    n_gt = tp / r
    t = labelling_seconds(n_gt, n_pred, n_pred - tp, n_gt - tp, n_images, costs)
    return {"images": int(n_images), "auto_boxes": int(n_pred), "expected_boxes": float(n_gt),
            "assisted_h": t["assisted_s"] / 3600, "manual_h": t["manual_s"] / 3600}
