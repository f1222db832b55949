"""Detection metrics at an operating point: box conversions, IoU, class-aware matching, P/R/F1, efficiency boost.

All functions work on plain NumPy arrays so they can be tested with hand-made boxes.

Conventions
-----------
* ``xywhn``: YOLO label format, centre x, centre y, width, height, normalised to 0-1.
* ``xyxy``: corners ``x0, y0, x1, y1`` in any consistent unit (pixels or normalised).
* predictions for matching: (n, 6) ``cls, x0, y0, x1, y1, conf``; ground truth: (m, 5) ``cls, x0, y0, x1, y1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
        t = int(tp[pc == c].sum())
        per_class[c] = {"tp": t, "fp": int((pc == c).sum()) - t, "fn": int((gc == c).sum()) - int(matched[gc == c].sum()),
                        "n_gt": int((gc == c).sum()), "n_pred": int((pc == c).sum())}
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
    """Precision, recall, F1 from counts (NaN where the denominator is 0: not measurable, never 0)."""
    tp, fp, fn = float(tp), float(fp), float(fn)
    p = tp / (tp + fp) if tp + fp > 0 else float("nan")
    r = tp / (tp + fn) if tp + fn > 0 else float("nan")
    f1 = 2 * p * r / (p + r) if np.isfinite(p) and np.isfinite(r) and p + r > 0 else (
        0.0 if np.isfinite(p) and np.isfinite(r) else float("nan"))
    return p, r, f1


# ----------------------------------------------------------------------------------------------- labelling cost model
@dataclass(frozen=True)
class CostModel:
    """Seconds an annotator spends per action, used to turn TP/FP/FN counts into labelling time.

    Attributes
    ----------
    t_draw : float, default 10.0
        Draw one box and set its class from scratch.  Superb AI's published figure is ~10 s per box including the
        class (their "how long does it take to label a bounding box" estimates; Papadopoulos et al. 2017,
        "Extreme clicking", measure 7 s for the box alone with the classic method, 34.5 s on ImageNet incl. quality
        control, so 10 s is on the fast side for manual work and therefore a conservative basis for a boost).
    t_verify : float, default 1.6
        Look at a proposed box and accept it.  Papadopoulos, Uijlings, Keller & Ferrari, CVPR 2016, "We don't need no
        bounding-boxes": box verification by a yes/no answer takes about 1.6 s.
    t_delete : float, default 2.6
        Reject a false-positive proposal and remove it: the same look as a verification (1.6 s) plus about one
        second for the click/keystroke that removes it.  No published figure measures exactly this; it is an
        assumption, kept above ``t_verify`` and far below ``t_draw``.
    t_image : float, default 3.0
        Per-image overhead (open the image, scan it for defects, move on), paid in both workflows, so it only
        dampens the boost on images with few boxes.  Assumption: a few seconds of scanning per image; set to 0 to
        compare box work only.

    A predicted box that is wrong (FP) costs ``t_verify``-looking plus deletion: assisted cost counts it once in
    ``n_pred * t_verify`` and once in ``fp * t_delete``; so by default a false positive costs 1.6 + 2.6 = 4.2 s.
    """

    t_draw: float = 10.0
    t_verify: float = 1.6
    t_delete: float = 2.6
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
