"""Detection diagnostics on the auto-label path: per-class PR curves, per-class AP, a confusion matrix, and the VAL1
images where CAL1 / CAL2 / Control disagree most.

The numbers come from ultralytics' own metric code (:func:`ultralytics.utils.metrics.ap_per_class`,
:class:`ultralytics.utils.metrics.ConfusionMatrix`, the validator's ``match_predictions``), applied to the boxes the
auto-label path produces (the model's predictions with alnb's NMS IoU, :data:`alnb.metrics.NMS_IOU`), so they are the
familiar ultralytics quantities for exactly those boxes.  The study's headline mAP is the evaluation step's; these
figures are for looking at where a model goes wrong.
"""

from __future__ import annotations

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO / ultralytics: mAP50-95 averages over these
MATCH_IOU = 0.5  # IoU for the confusion matrix (as the evaluation's matching)


def predictions(ws, model: str, tag: str = "VAL1", stems=None, conf: float | None = None) -> list:
    """``[(stem, pred (n, 6) cls x0 y0 x1 y1 conf in pixels, gt (m, 5) cls x0 y0 x1 y1, (h, w))]`` for the images of
    ``tag`` (or ``stems``) predicted by the finished run ``model`` down to ``conf`` (default the evaluation's sweep
    floor, :data:`alnb.metrics.SWEEP_CONF`) with the auto-label NMS; predictions sorted by descending confidence."""
    from alnb.evaluation import predict_boxes
    from alnb.metrics import NMS_IOU, SWEEP_CONF, xywhn_to_xyxy
    from alnb.train import load_model, load_run

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


def _match(pred, gt) -> np.ndarray:
    """(n, 10) bool: prediction i is a true positive at IoU threshold j (ultralytics' validator matching)."""
    import torch
    from types import SimpleNamespace

    from ultralytics.engine.validator import BaseValidator
    from ultralytics.utils.metrics import box_iou

    if not len(pred) or not len(gt):
        return np.zeros((len(pred), len(IOU_THRESHOLDS)), bool)
    iou = box_iou(torch.tensor(gt[:, 1:5]), torch.tensor(pred[:, 1:5]))
    ns = SimpleNamespace(iouv=torch.tensor(IOU_THRESHOLDS))
    return BaseValidator.match_predictions(ns, torch.tensor(pred[:, 0]), torch.tensor(gt[:, 0]), iou).numpy()


def diagnostics(preds: list, names, conf: float) -> dict:
    """Per-class AP (at IoU 0.5 and 0.5:0.95) and PR curves (:func:`ultralytics.utils.metrics.ap_per_class`), and
    the confusion matrix at the operating point ``conf`` (:class:`ultralytics.utils.metrics.ConfusionMatrix`, IoU
    :data:`MATCH_IOU`; rows = predicted class, columns = true class, the last of each = background) of
    :func:`predictions`' output.

    Returns ``{"names", "conf", "classes" (ids with data), "ap50", "ap50_95" (per id in ``classes``), "recall"
    (the 1000-point recall axis), "precision" (per class, at IoU 0.5), "matrix" ((nc+1, nc+1) counts),
    "n_images", "n_gt"}``.
    """
    import torch
    from ultralytics.utils.metrics import ConfusionMatrix, ap_per_class

    names = list(names)
    nc = len(names)
    cm = ConfusionMatrix(names={i: n for i, n in enumerate(names)})
    tps, confs, pcls, tcls = [], [], [], []
    for _, pred, gt, _ in preds:
        tps.append(_match(pred, gt))
        confs.append(pred[:, 5])
        pcls.append(pred[:, 0])
        tcls.append(gt[:, 0])
        cm.process_batch({"cls": torch.tensor(pred[:, 0]), "conf": torch.tensor(pred[:, 5]),
                          "bboxes": torch.tensor(pred[:, 1:5])},
                         {"cls": torch.tensor(gt[:, 0]), "bboxes": torch.tensor(gt[:, 1:5])},
                         conf=float(conf), iou_thres=MATCH_IOU)
    tp = np.concatenate(tps) if tps else np.zeros((0, len(IOU_THRESHOLDS)), bool)
    target = np.concatenate(tcls) if tcls else np.zeros(0)
    if len(target):
        res = ap_per_class(tp, np.concatenate(confs), np.concatenate(pcls), target,
                           names={i: n for i, n in enumerate(names)})
        ap, classes, x, prec = res[5], res[6], res[10], res[11]
    else:
        ap, classes, x, prec = np.zeros((0, 10)), np.zeros(0, int), np.linspace(0, 1, 1000), np.zeros((0, 1000))
    return {"names": names, "conf": float(conf), "classes": [int(c) for c in classes],
            "ap50": [float(a) for a in ap[:, 0]], "ap50_95": [float(a) for a in ap.mean(1)] if len(ap) else [],
            "recall": np.asarray(x, float), "precision": np.asarray(prec, float).reshape(len(classes), len(x)),
            "matrix": np.asarray(cm.matrix, float)[:nc + 1, :nc + 1], "n_images": len(preds),
            "n_gt": int(len(target))}


def model_diagnostics(ws, model: str, tag: str = "VAL1") -> dict:
    """:func:`diagnostics` of ``model`` on ``tag`` at the model's own operating point (chosen on VAL1)."""
    from alnb.evaluation import operating_point

    return diagnostics(predictions(ws, model, tag), ws.names, operating_point(ws, model))


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


def side_by_side_items(ws, evals: dict, rows: list, models=("CAL1", "CAL2", "Control")) -> list:
    """Panels for :func:`alnb.plots.side_by_side`: per image of ``rows`` (:func:`disagreement`) the ground truth,
    then each model's auto-labels at its own operating point, true positives green, false positives red."""
    from alnb.metrics import match_image, xyxy_to_xywhn
    from alnb.workspace import load_image

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
        sx, sy = w / pw, h / ph  # predictions are in the view image's pixels (the same image)
        g = gt.copy()
        g[:, [1, 3]] *= sx
        g[:, [2, 4]] *= sy
        items.append({"image": img, "boxes": np.column_stack([g[:, 0], xyxy_to_xywhn(g[:, 1:5], w, h)]) if len(g)
                      else np.zeros((0, 5)), "colours": ["#00bfff"] * len(g),
                      "title": f"{s}: ground truth, {len(g)} box(es)"})
        for m in models:
            _, p, gt_m, _ = preds[m][s]
            keep = p[:, 5] > float(evals[m]["conf"])
            p = p[keep]
            tp = match_image(p, gt_m, iou_thr=float(evals[m].get("iou_thr", 0.5)))["tp"]
            q = p.copy()
            q[:, [1, 3]] *= sx
            q[:, [2, 4]] *= sy
            n_fn = len(gt_m) - int(tp.sum())
            items.append({"image": img, "boxes": np.column_stack([q[:, 0], xyxy_to_xywhn(q[:, 1:5], w, h)]) if len(q)
                          else np.zeros((0, 5)), "scores": q[:, 5], "score_kind": "conf",
                          "colours": ["#2ca02c" if t else "#d62728" for t in tp], "model": m,
                          "title": f"{m}: {int(tp.sum())} TP, {len(tp) - int(tp.sum())} FP, {n_fn} FN"})
    return items


def diagnostic_figures(ws, model: str = "CAL1", tag: str = "VAL1", save: bool = True) -> dict:
    """``model``'s precision-recall curve per class (its operating point as a dot on each), AP per class and the
    confusion matrix at its operating point on ``tag``: ``{"<model>_pr_curves" | "_ap_per_class" |
    "_confusion_matrix": figure}`` (lower-case model name), written to ``figures/`` when ``save``.  Notebook 01 and the
    headless ``alnb run`` draw the same three figures, and ``report.md`` embeds them."""
    import json

    from alnb import plots

    diag = model_diagnostics(ws, model, tag)
    ev_path = ws.root / "metrics" / f"eval_{model}.json"
    per_class = json.loads(ev_path.read_text()).get("per_class", []) if ev_path.is_file() else []
    ops = {r["class"]: (r["recall"], r["precision"]) for r in per_class}
    prefix = model.lower()
    figs = {f"{prefix}_pr_curves": plots.pr_curves(diag, op_points=ops,
                                                   title=f"{model} on {tag}: precision-recall per class"),
            f"{prefix}_ap_per_class": plots.per_class_ap(diag, model=model,
                                                         title=f"{model} on {tag}: AP per class (ultralytics "
                                                               f"ap_per_class)"),
            f"{prefix}_confusion_matrix": plots.confusion_matrix(diag, title=f"{model} on {tag} at conf > "
                                                                             f"{diag['conf']:.3g}, IoU ≥ 0.5")}
    if save:
        for name, fig in figs.items():
            plots.save_figure(fig, name, ws)
    return figs
