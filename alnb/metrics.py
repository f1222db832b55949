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
from pathlib import Path

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
# NMS IoU of auto-labels, evaluation and mAP.  Ultralytics' default 0.7 keeps same-class boxes that overlap up to 0.7:
# on thin elongated defects (bite-edge, unfused, broken-arc) that left the same defect boxed 3-10 times, and every
# extra box is a false positive at IoU 0.5 matching (benchmarks/recipe_sweep.py measures the duplicate share).
NMS_IOU = 0.5


def predict_boxes(model, image_paths, conf: float = 0.25, imgsz: int | None = None, device=None, batch: int = 16,
                  iou: float = NMS_IOU):
    """Run ultralytics prediction; yields ``(path, pred (n, 6) cls x0 y0 x1 y1 conf in pixels, (h, w))``."""
    kw = {"conf": conf, "iou": iou, "verbose": False, "stream": True, "batch": batch}
    if imgsz is not None:
        kw["imgsz"] = imgsz
    if device is not None:
        kw["device"] = device
    paths = [str(p) for p in image_paths]
    for i in range(0, len(paths), 64):  # bounded memory; ultralytics batches inside each chunk
        for path, r in zip(paths[i:i + 64], model.predict(paths[i:i + 64], **kw)):
            b = r.boxes
            pred = np.concatenate([b.cls.cpu().numpy()[:, None], b.xyxy.cpu().numpy(), b.conf.cpu().numpy()[:, None]],
                                  axis=1) if len(b) else np.zeros((0, 6))
            yield path, pred.astype(np.float64), tuple(r.orig_shape)


def _resolve_weights(ws, name_or_weights):
    """(display name, weights path, run info or None) for a run name, a TrainResult or a .pt path."""
    from pathlib import Path

    from alnb.train import load_run

    w = getattr(name_or_weights, "weights", None)
    if w is not None:
        return name_or_weights.name, Path(w), getattr(name_or_weights, "info", None)
    s = str(name_or_weights)
    if s.endswith(".pt"):
        p = Path(s).expanduser().resolve()
        if not p.is_file():
            raise FileNotFoundError(f"weights file {p} does not exist.")
        name = p.parent.parent.name if p.parent.name == "weights" else p.stem
        return name, p, None
    run = load_run(ws, s)
    return run.name, run.weights, run.info


def map_scores(ws, weights, tag: str = "VAL1", imgsz: int | None = None, device=None, name: str = "eval",
               iou: float = NMS_IOU) -> dict:
    """mAP50 and mAP50-95 (overall and per class id) from ultralytics ``val`` on the images of ``tag``.

    Ultralytics reads the labels from the workspace ``view/`` (the trainable labels), so the tag's images must all
    have trainable labels (VAL1 always has).  The val output folder is ``runs/<name>_val_<tag>`` in the workspace.
    """
    from alnb.train import auto_device, load_model
    from alnb.workspace import WorkspaceError, atomic_write_text

    m = ws.manifest()
    stems = ws.stems(tag, manifest=m)
    src = m.set_index("stem").loc[stems, "label_source"]
    hidden = src[~src.isin(["human", "oracle"])]
    if len(hidden):
        raise WorkspaceError(f"{len(hidden)} {tag} image(s) have no trainable labels (e.g. {list(hidden.index[:3])});"
                             f" mAP needs them in view/labels.")
    ws.sync_view(m)
    lst = ws.write_list(f"eval_{tag}", stems)
    import yaml

    data = {"path": str(ws.root / "view"), "train": str(lst), "val": str(lst), "names": dict(enumerate(ws.names))}
    data_yaml = ws.path("data", f"eval_{tag}.yaml")
    atomic_write_text(data_yaml, yaml.safe_dump(data, sort_keys=False))
    model = load_model(weights)
    kw = {"data": str(data_yaml), "split": "val", "plots": False, "verbose": False, "batch": 16,
          "device": device or auto_device(), "project": str(ws.root / "runs"), "name": f"{name}_val_{tag}",
          "exist_ok": True, "iou": iou}
    if imgsz is not None:
        kw["imgsz"] = imgsz
    res = model.val(**kw)
    save_dir = Path(kw["project"]) / kw["name"]
    if save_dir.is_dir() and not any(save_dir.iterdir()):
        save_dir.rmdir()  # ultralytics makes the folder even when it saves nothing (plots off)
    box = res.box
    per_class = {}
    for j, c in enumerate(np.asarray(box.ap_class_index).tolist()):
        per_class[int(c)] = {"mAP50": float(box.ap50[j]), "mAP50-95": float(box.ap[j])}
    return {"mAP50": float(box.map50), "mAP50-95": float(box.map), "per_class": per_class}


# ------------------------------------------------------------------------------------------------ operating point
FIXED_CONF = 0.25  # the study's fixed auto-label confidence, always reported beside the chosen operating point
SWEEP_CONF = 0.01  # predictions are collected down to this confidence and the operating point is chosen above it
OP_RULES = ("f1", "precision")


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


def choose_conf(curve: dict, rule: str = "f1", target_precision: float = 0.8, floor: float = SWEEP_CONF) -> dict:
    """Pick the auto-label confidence from a :func:`threshold_curve`.

    * ``rule="f1"`` (default): the cut with the highest F1 (ties: the higher confidence) - the point where the
      labelling work left over (misses + false boxes) is smallest relative to the hits;
    * ``rule="precision"``: the lowest cut whose precision is at least ``target_precision`` (most recall at that
      precision); falls back to the F1 rule when no cut reaches it.

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
    if k is None:
        f1 = curve["f1"]
        k, used = int(np.flatnonzero(f1 == f1.max())[0]), "f1"
    thr = max(float(curve["threshold"][k]), floor)
    out = {"conf": round(thr, 6), "rule": used,
           "precision": float(curve["precision"][k]), "recall": float(curve["recall"][k]), "f1": float(curve["f1"][k])}
    if rule == "precision":
        out["target_precision"] = target_precision
    return out


def operating_point(ws, name: str, *, recompute: bool = False, rule: str = "f1", tag: str = "VAL1") -> float:
    """The auto-label confidence of model ``name``: chosen on ``tag`` (VAL1) by :func:`evaluate` and recorded in
    ``metrics/operating_point_<name>.json``; computed (one prediction pass over VAL1) when missing or stale."""
    rec = None
    try:
        rec = ws.load_json(f"operating_point_{name}")
    except Exception:  # noqa: BLE001 - missing or unreadable: compute it
        rec = None
    from alnb.train import load_run

    key = load_run(ws, name).key if (ws.root / "runs" / name).is_dir() else None
    if rec is None or recompute or rec.get("key") != key or rec.get("rule") != rule:
        evaluate(ws, name, conf=None, op_rule=rule, tag=tag, with_map=False, save=False)
        rec = ws.load_json(f"operating_point_{name}")
    return float(rec["conf"])


def _counts_at(preds: list, gts: list, nc: int, thr: float) -> dict:
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


def _overall(tot: dict, n_images: int, costs) -> dict:
    TP, FP, FN = (int(tot[k].sum()) for k in ("tp_c", "fp_c", "fn_c"))
    n_gt, n_pred = int(tot["n_gt_c"].sum()), int(tot["n_pred_c"].sum())
    p, rcl, f1 = prf(TP, FP, FN)
    boost = efficiency_boost(n_gt, n_pred, FP, FN, n_images, costs)
    return {"instances": n_gt, "predictions": n_pred, "tp": TP, "fp": FP, "fn": FN, "precision": p, "recall": rcl,
            "f1": f1, **boost, "boost_boxes_only": efficiency_boost(n_gt, n_pred, FP, FN, 0, costs)["boost"]}


def evaluate(ws, name_or_weights, conf: float | None = None, iou_thr: float = 0.5, tag: str = "VAL1",
             costs: CostModel | None = None, *, imgsz: int | None = None, device=None, with_map: bool = True,
             save: bool = True, op_rule: str = "f1", target_precision: float = 0.8, nms_iou: float = NMS_IOU) -> dict:
    """Evaluate a CAL model on the images of ``tag`` at the auto-labelling operating point.

    Predicts once with ultralytics down to confidence :data:`SWEEP_CONF`, matches predictions to the ground truth
    (``ws.true_labels``) with :func:`match_image` at IoU >= ``iou_thr``, and reports per class and overall:
    instances, predictions, TP, FP, FN, precision, recall, F1 and the expected labelling efficiency boost
    (:func:`efficiency_boost`) at the operating point.  A class with no instance in the set is *not measurable*:
    its recall/F1/boost are NaN (``null`` in JSON) and ``measurable`` is False, never 0.  mAP50 / mAP50-95 come from
    ultralytics ``val``.

    The operating point: ``conf=None`` (default) chooses it on this set with :func:`choose_conf` (``op_rule``: the
    F1-maximising cut, or the lowest cut with precision >= ``target_precision``) and, for VAL1, records it in
    ``metrics/operating_point_<name>.json`` (read by auto-labelling, :func:`operating_point`); a number fixes it.
    The figures at the study's fixed confidence :data:`FIXED_CONF` are always reported beside (``at_fixed_conf``),
    and ``curve`` holds precision / recall / F1 per cut.

    Parameters
    ----------
    ws : Workspace
    name_or_weights : str, Path or TrainResult
        A run name in ``ws`` (``"CAL1"``), a ``.pt`` path or a :class:`alnb.train.TrainResult`.
    conf : float, optional
        Operating point (confidence threshold of auto-labels); None = choose it (see above).
    iou_thr : float
        IoU for a match.
    tag : str
        Images to evaluate on (default VAL1, which has human labels).
    nms_iou : float
        NMS IoU of the predictions (:data:`NMS_IOU`, as for auto-labels).
    costs : CostModel, optional
        Labelling cost model (default :class:`CostModel`).
    imgsz : int, optional
        Inference size (default: the training size stored in the weights).
    with_map : bool
        Also run ultralytics ``val`` for mAP (skip for speed).
    save : bool
        Write ``metrics/eval_<name>.json`` in the workspace (``eval_<name>_<tag>`` when ``tag`` is not VAL1).

    Returns
    -------
    dict
        ``name, weights, tag, conf, conf_rule, iou_thr, costs, n_images, overall, per_class (list of dicts),
        per_image (list of dicts: stem, tp, fp, fn, n_gt, n_pred), not_measurable (class names), mAP50, mAP50-95,
        at_fixed_conf {conf, overall}, curve``.  Use :func:`per_class_frame` / :func:`per_image_frame` for tables.
    """
    from alnb.train import load_model

    costs = costs or CostModel()
    name, weights, info = _resolve_weights(ws, name_or_weights)
    names = ws.names
    nc = len(names)
    m = ws.manifest()
    stems = ws.stems(tag, manifest=m)
    if not stems:
        raise ValueError(f"no images tagged {tag} in {ws.root}.")
    rows = m.set_index("stem")
    paths = [ws.view_image({"stem": s, "image": rows.at[s, "image"]}) for s in stems]
    model = load_model(weights)
    low = SWEEP_CONF if conf is None else min(SWEEP_CONF, float(conf))
    preds, gts = [], []
    for stem, (path, pred, (h, w)) in zip(stems, predict_boxes(model, paths, conf=low, imgsz=imgsz, device=device,
                                                               iou=nms_iou)):
        lab = np.asarray(ws.true_labels(stem), float).reshape(-1, 5)
        gt = np.concatenate([lab[:, :1], xywhn_to_xyxy(lab[:, 1:], w, h)], axis=1)
        r = match_image(pred, gt, iou_thr=iou_thr, nc=nc)
        preds.append((pred[:, 0].astype(int), pred[:, 5], r["tp"]))
        gts.append(gt[:, 0].astype(int))
    all_conf = np.concatenate([p[1] for p in preds]) if preds else np.zeros(0)
    all_tp = np.concatenate([p[2] for p in preds]) if preds else np.zeros(0, bool)
    n_gt_all = int(sum(len(g) for g in gts))
    curve = threshold_curve(all_conf, all_tp, n_gt_all)
    if conf is None:
        op = choose_conf(curve, op_rule, target_precision)
        chosen = {**op, "chosen_on": tag}
    else:
        chosen = {"conf": float(conf), "rule": "fixed", "chosen_on": None}
    thr = float(chosen["conf"])
    tot = _counts_at(preds, gts, nc, thr)
    maps = map_scores(ws, weights, tag, imgsz=imgsz, device=device, name=name, iou=nms_iou) if with_map else None
    boost_c = efficiency_boost(tot["n_gt_c"], tot["n_pred_c"], tot["fp_c"], tot["fn_c"], 0, costs)
    per_class = []
    for c in range(nc):
        p, rcl, f1 = prf(tot["tp_c"][c], tot["fp_c"][c], tot["fn_c"][c])
        measurable = bool(tot["n_gt_c"][c] > 0)
        per_class.append({
            "class_id": c, "class": names[c], "instances": int(tot["n_gt_c"][c]),
            "predictions": int(tot["n_pred_c"][c]),
            "tp": int(tot["tp_c"][c]), "fp": int(tot["fp_c"][c]), "fn": int(tot["fn_c"][c]), "measurable": measurable,
            "precision": p, "recall": rcl if measurable else float("nan"), "f1": f1 if measurable else float("nan"),
            "boost": float(boost_c["boost"][c]) if measurable else float("nan"),
            "mAP50": maps["per_class"].get(c, {}).get("mAP50", float("nan")) if maps and measurable else float("nan"),
            "mAP50-95": (maps["per_class"].get(c, {}).get("mAP50-95", float("nan")) if maps and measurable
                         else float("nan"))})
    per_image = [{"stem": s, "tp": a, "fp": b, "fn": c_, "n_gt": d, "n_pred": e}
                 for s, (a, b, c_, d, e) in zip(stems, tot["per_image"])]
    fixed = _counts_at(preds, gts, nc, FIXED_CONF)
    every = np.linspace(0.05, 0.95, 19)
    idx = [int(np.searchsorted(-curve["conf"], -t, side="left")) - 1 for t in every]
    result = {"name": name, "weights": str(weights), "tag": tag, "conf": thr, "conf_rule": chosen["rule"],
              "operating_point": chosen, "iou_thr": iou_thr, "nms_iou": nms_iou,
              "costs": costs.to_dict(), "n_images": len(stems), "overall": _overall(tot, len(stems), costs),
              "per_class": per_class, "per_image": per_image,
              "not_measurable": [names[c] for c in range(nc) if tot["n_gt_c"][c] == 0],
              "at_fixed_conf": {"conf": FIXED_CONF, "overall": _overall(fixed, len(stems), costs)},
              "curve": {"conf": [round(float(t), 3) for t in every],
                        "precision": [float(curve["precision"][i]) if i >= 0 else float("nan") for i in idx],
                        "recall": [float(curve["recall"][i]) if i >= 0 else 0.0 for i in idx]},
              "mAP50": maps["mAP50"] if maps else float("nan"), "mAP50-95": maps["mAP50-95"] if maps else float("nan"),
              "train": {k: info[k] for k in ("profile", "seconds", "n_train", "epochs_run", "key") if k in info}
              if info else {}}
    if conf is None and tag == "VAL1":
        ws.save_json(f"operating_point_{name}", {**chosen, "model": name, "weights": str(weights),
                                                 "key": (info or {}).get("key"), "iou_thr": iou_thr,
                                                 "nms_iou": nms_iou,
                                                 "fixed_conf": FIXED_CONF})
    if save:
        ws.save_json(f"eval_{name}" if tag == "VAL1" else f"eval_{name}_{tag}", result)
    return result


def per_class_frame(result: dict):
    """Per-class table (pandas) of an :func:`evaluate` result, indexed by class name."""
    import pandas as pd

    df = pd.DataFrame(result["per_class"]).set_index("class")
    return df.astype({"precision": float, "recall": float, "f1": float, "boost": float})


def per_image_frame(result: dict):
    """Per-image TP/FP/FN table (pandas) of an :func:`evaluate` result, worst images (most errors) first."""
    import pandas as pd

    df = pd.DataFrame(result["per_image"])
    if len(df):
        df = df.assign(errors=df["fp"] + df["fn"]).sort_values(["errors", "stem"], ascending=[False, True])
    return df.reset_index(drop=True)
