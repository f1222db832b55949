"""Detection diagnostics on the auto-label path: per-class PR curves, per-class AP, a confusion matrix, and the VAL1
images where CAL1 / CAL2 / Control disagree most.

The boxes are the ones the auto-label path produces (the model's predictions with alnb's NMS IoU,
:data:`alnb.evaluation.metrics.NMS_IOU`, down to :data:`alnb.evaluation.metrics.SWEEP_CONF`), the same boxes the evaluation step scores, and
they are counted the way the evaluation counts them, so no figure here shows a second mAP or a second TP count:

* AP per class and the PR curves: the evaluation's COCO-style AP (:func:`alnb.evaluation.metrics.coco_matches`,
  :func:`alnb.evaluation.metrics.coco_accumulate`; its mean over the classes is the evaluation's mAP50 / mAP50-95);
* the confusion matrix: :func:`alnb.evaluation.metrics.confusion_counts`, whose diagonal is the per-class TP of the evaluation's
  table (class-aware greedy matching at IoU >= ``iou_thr``, the same cut ``conf > operating point``).
"""

from __future__ import annotations

import numpy as np

from alnb.core.workspace import load_image
from alnb.evaluation.metrics import (NMS_IOU, SWEEP_CONF, coco_accumulate, coco_matches, coco_pr_curves,
                                     confusion_counts, match_image, xywhn_to_xyxy, xyxy_to_xywhn)
from alnb.evaluation.step import operating_point, predict_boxes

MATCH_IOU = 0.5  # IoU for the confusion matrix (the evaluation's default ``iou_thr``)


def predictions(ws, model: str, tag: str = "VAL1", stems=None, conf: float | None = None) -> list:
    """``[(stem, pred (n, 6) cls x0 y0 x1 y1 conf in pixels, gt (m, 5) cls x0 y0 x1 y1, (h, w))]`` for the images of
    ``tag`` (or ``stems``) predicted by the finished run ``model`` down to ``conf`` (default the evaluation's sweep
    floor, :data:`alnb.evaluation.metrics.SWEEP_CONF`) with the auto-label NMS; predictions sorted by descending confidence."""
    # heavy, imported where used (not at module import): alnb.model.train (torch/ultralytics)
    from alnb.model.train import load_model, load_run

    m = ws.manifest()
    stems = ws.stems(tag, manifest=m) if stems is None else list(stems)
    rows = m.set_index("stem")
    paths = [ws.view_image({"stem": s, "image": rows.at[s, "image"]}) for s in stems]
    net = load_model(load_run(ws, model).weights)
    out = []
    low = SWEEP_CONF if conf is None else float(conf)
    for stem, (_, pred, (h, w)) in zip(stems, predict_boxes(net, paths, conf=low, iou=NMS_IOU)):
        lab = np.asarray(ws.true_labels(stem), float).reshape(-1, 5)
        gt = np.concatenate([lab[:, :1], xywhn_to_xyxy(lab[:, 1:], w, h)], axis=1)
        pred = pred[np.argsort(-pred[:, 5], kind="stable")]
        out.append((stem, pred, gt, (h, w)))
    return out


def diagnostics(preds: list, names, conf: float, iou_thr: float = MATCH_IOU) -> dict:
    """Per-class AP (IoU 0.5 and 0.5:0.95) and PR curves (IoU 0.5) as the evaluation computes its mAP
    (:func:`alnb.evaluation.metrics.coco_map`: COCO-style, 101 recall points), and the confusion matrix at the operating point
    ``conf`` with the evaluation's matches (:func:`alnb.evaluation.metrics.confusion_counts`, IoU >= ``iou_thr``; rows =
    predicted class, columns = true class, the last of each = background) of :func:`predictions`' output.

    Returns ``{"names", "conf", "iou_thr", "classes" (ids with ground truth), "ap50", "ap50_95" (per id in
    ``classes``), "mAP50", "mAP50-95" (the evaluation's numbers for these boxes), "recall" (COCO's 101 recall
    points), "precision" (per class in ``classes``, at IoU 0.5; NaN beyond the recall reached), "matrix" ((nc+1,
    nc+1) counts), "n_images", "n_gt"}``.
    """
    names = list(names)
    nc = len(names)
    pred = [p for _, p, _, _ in preds]
    gt = [g for _, _, g, _ in preds]
    matches = coco_matches(pred, gt, nc)
    acc = coco_accumulate(matches)
    curves = coco_pr_curves(matches, iou=0.5)
    classes = sorted(acc["per_class"])
    n_gt = int(sum(len(g) for g in gt))
    return {"names": names, "conf": float(conf), "iou_thr": float(iou_thr), "classes": [int(c) for c in classes],
            "ap50": [acc["per_class"][c]["AP50"] for c in classes],
            "ap50_95": [acc["per_class"][c]["AP50-95"] for c in classes],
            "mAP50": acc["mAP50"], "mAP50-95": acc["mAP50-95"],
            "recall": np.asarray(curves["recall"], float),
            "precision": np.asarray([curves["precision"][c] for c in classes], float).reshape(len(classes),
                                                                                             len(curves["recall"])),
            "matrix": confusion_counts(pred, gt, nc, float(conf), iou_thr).astype(float), "n_images": len(preds),
            "n_gt": n_gt}


def model_diagnostics(ws, model: str, tag: str = "VAL1", iou_thr: float = MATCH_IOU) -> dict:
    """:func:`diagnostics` of ``model`` on ``tag`` at the model's own operating point (chosen on VAL1)."""
    return diagnostics(predictions(ws, model, tag), ws.names, operating_point(ws, model), iou_thr=iou_thr)


def disagreement(evals: dict, models=("CAL1", "CAL2", "Control"), k: int = 4) -> list:
    """The ``k`` images where the models' errors differ most: per image the spread (max - min) of the models'
    errors (FP + FN at each model's operating point, from ``per_image`` of the evaluation dicts), ties broken by the
    total errors, then by stem.  Returns ``[{stem, errors: {model: n}, spread}]``."""
    models = [m for m in models if m in evals]
    per = {m: {r["stem"]: int(r["fp"]) + int(r["fn"]) for r in evals[m].get("per_image", [])} for m in models}
    stems = sorted(set.intersection(*(set(p) for p in per.values()))) if per else []
    rows = [{"stem": s, "errors": {m: per[m][s] for m in models},
             "spread": max(per[m][s] for m in models) - min(per[m][s] for m in models)} for s in stems]
    rows.sort(key=lambda r: (-r["spread"], -sum(r["errors"].values()), r["stem"]))
    return rows[:k]


TRUTH_COLOUR = "#00bfff"  # ground-truth boxes; on a model's panel, dashed = a truth box the model missed (FN)
TP_COLOUR, FP_COLOUR = "#2ca02c", "#d62728"


def disagreement_panels(image, stem: str, gt, preds: dict, confs: dict, names, *, iou_thrs: dict | None = None,
                        scale=(1.0, 1.0)) -> list:
    """The panels of one image for :func:`alnb.figures.plots.side_by_side` (pure: arrays in, panel dicts out): the ground
    truth, then each model of ``preds`` at its operating point ``confs[model]``: true positives green, false
    positives red (label: class conf), and the truth boxes it missed dashed in the truth's colour (no label: the
    ground-truth panel names them), so every TP, FP and FN a title counts is drawn.

    ``gt``: (m, 5) ``cls x0 y0 x1 y1`` and ``preds[model]``: (n, 6) ``cls x0 y0 x1 y1 conf``, in the predictions'
    pixels; ``scale``: (sx, sy) from those to ``image``'s pixels; ``iou_thrs``: each model's matching IoU (default
    0.5, the evaluation's).  The counts are the evaluation's (:func:`alnb.evaluation.metrics.match_image`).
    """
    h, w = image.shape[:2]
    sx, sy = scale

    def to_image(b):
        b = np.asarray(b, float)[:, :5].copy()
        b[:, [1, 3]] *= sx
        b[:, [2, 4]] *= sy
        return np.column_stack([b[:, 0], xyxy_to_xywhn(b[:, 1:5], w, h)]) if len(b) else np.zeros((0, 5))

    gt = np.asarray(gt, float).reshape(-1, 5)
    items = [{"image": image, "boxes": to_image(gt), "colours": [TRUTH_COLOUR] * len(gt),
              "title": f"{stem}\nground truth: {len(gt)} boxes"}]
    for m, p in preds.items():
        p = np.asarray(p, float).reshape(-1, 6)
        p = p[p[:, 5] > float(confs[m])]
        r = match_image(p, gt, iou_thr=float((iou_thrs or {}).get(m, 0.5)))
        tp, missed = r["tp"], ~r["matched_gt"]
        n_tp = int(tp.sum())
        boxes = np.concatenate([to_image(p), to_image(gt[missed])])
        items.append({"image": image, "boxes": boxes, "model": m,
                      "colours": [TP_COLOUR if t else FP_COLOUR for t in tp] + [TRUTH_COLOUR] * int(missed.sum()),
                      "styles": ["-"] * len(p) + ["--"] * int(missed.sum()),
                      "texts": [f"{names[int(c)]} conf {s:.2f}" for c, s in zip(p[:, 0], p[:, 5])]
                      + [None] * int(missed.sum()),
                      "title": f"{m}: {n_tp} TP, {len(p) - n_tp} FP, {int(missed.sum())} FN (dashed)"})
    return items


def side_by_side_items(ws, evals: dict, rows: list, models=("CAL1", "CAL2", "Control")) -> list:
    """Panels for :func:`alnb.figures.plots.side_by_side`: per image of ``rows`` (:func:`disagreement`) the ground truth,
    then each model's auto-labels at its own operating point (:func:`disagreement_panels`: TP green, FP red, missed
    truth boxes dashed)."""
    models = [m for m in models if m in evals]
    stems = [r["stem"] for r in rows]
    preds = {m: {p[0]: p for p in predictions(ws, m, stems=stems, conf=float(evals[m]["conf"]))} for m in models}
    man = ws.manifest()
    items = []
    for r in rows:
        s = r["stem"]
        img = load_image(ws, s, man)
        h, w = img.shape[:2]
        _, _, gt, (ph, pw) = preds[models[0]][s]
        items += disagreement_panels(img, s, gt, {m: preds[m][s][1] for m in models},
                                     {m: float(evals[m]["conf"]) for m in models}, ws.names,
                                     iou_thrs={m: float(evals[m].get("iou_thr", 0.5)) for m in models},
                                     scale=(w / pw, h / ph))  # predictions are in the view image's pixels
    return items
