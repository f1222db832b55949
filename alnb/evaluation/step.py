"""The VAL1 evaluation step: predict with a trained model, choose its operating point, measure it, write JSON.

This is the one place that decides which boxes a number describes.  Every figure comes from **one prediction pass**
over the set, the same path the auto-labels take (:func:`predict_boxes`: single-label NMS at IoU
:data:`alnb.evaluation.metrics.NMS_IOU`, the model's training size, letterboxed, down to confidence
:data:`alnb.evaluation.metrics.SWEEP_CONF`): COCO-style mAP50 / mAP50-95 (:func:`alnb.evaluation.metrics.coco_map`)
and precision / recall / F1 / boost at the operating point (:func:`alnb.evaluation.metrics.choose_conf`).
Ultralytics' own validator scores other boxes; :func:`map_scores` computes it only on request
(``ultralytics_map=True``), labelled as such.

Reads the workspace and the model, writes ``metrics/eval_<model>.json`` and ``metrics/operating_point_<model>.json``;
the arithmetic lives in :mod:`alnb.evaluation.metrics` (pure).
Design notes: docs/design/evaluation.md
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from alnb.core.records import Record
from alnb.evaluation.labeltimes import resolve_costs
from alnb.evaluation.metrics import (FIXED_CONF, NMS_IOU, OP_RULES, SWEEP_CONF, CostModel, choose_conf, coco_map,  # noqa: F401
                          cost_calibration,
                          counts_at, efficiency_boost, match_image, overall_counts, prf, threshold_curve,
                          xywhn_to_xyxy)
from alnb.core.cpu import cpu_threads
from alnb.core.data import load_dataset, read_autolabels
from alnb.core.workspace import WorkspaceError, atomic_write_text
from alnb.evaluation.metrics import DEFAULT_OP_RULE, autolabel_lines, labelling_seconds


@dataclass(frozen=True, eq=False)
class EvalResult(Record):
    """What :func:`evaluate` returns (and ``metrics/eval_<model>.json`` holds: :meth:`to_dict`).

    Attributes are the typed way (``ev.map50``, ``ev.overall["precision"]``); the record is also the read-only
    mapping it was as a dict, keys as in the JSON file (``ev["mAP50"]``, ``ev["mAP50-95"]``).
    """

    name: str  # the model (run name, or the weights' run folder / file stem)
    weights: str  # path of the weights evaluated
    tag: str  # the images evaluated on (VAL1)
    conf: float  # the operating point: confidence cut of the auto-labels
    conf_rule: str  # how it was chosen: "f1", "seconds", "precision" or "fixed"
    operating_point: dict  # {conf, rule, chosen_on, ...} as alnb.evaluation.metrics.choose_conf gives it
    iou_thr: float  # IoU of a match
    nms_iou: float  # NMS IoU of the predictions
    costs: dict  # the labelling cost model (CostModel.to_dict())
    costs_source: str  # where the costs come from (measured / literature defaults)
    n_images: int
    overall: dict  # counts, precision, recall, F1, boost, seconds at the operating point
    per_class: list  # one dict per class (per_class_frame makes the table)
    per_image: list  # one dict per image: stem, tp, fp, fn, n_gt, n_pred (per_image_frame)
    not_measurable: list  # class names with no instance in the set
    at_fixed_conf: dict  # {conf: FIXED_CONF, overall}
    at_rules: dict  # {rule: {conf, overall}} for the rules "f1" and "seconds"
    cost_calibration: dict
    curve: dict  # precision / recall per confidence cut 0.05 ... 0.95
    map50: float  # key "mAP50": COCO-style mAP50 of the prediction path (NaN without with_map)
    map50_95: float  # key "mAP50-95"
    map_boxes: str  # what the mAP describes
    train: dict  # the run's profile, seconds, n_train, epochs_run, key, threads ({} for a bare .pt)
    ultralytics_map50: float | None = None  # key "ultralytics_mAP50": only with ultralytics_map=True
    ultralytics_map50_95: float | None = None  # key "ultralytics_mAP50-95"

    KEYS = {"map50": "mAP50", "map50_95": "mAP50-95", "ultralytics_map50": "ultralytics_mAP50",
            "ultralytics_map50_95": "ultralytics_mAP50-95"}
    OPTIONAL = frozenset({"ultralytics_map50", "ultralytics_map50_95"})


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
    # heavy, imported where used (not at module import): alnb.model.train (torch/ultralytics)
    from alnb.model.train import load_run

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
    from alnb.model.train import auto_device, load_model

    m = ws.manifest()
    stems = ws.stems(tag, manifest=m)
    src = m.set_index("stem").loc[stems, "label_source"]
    hidden = src[~src.isin(["human", "oracle"])]
    if len(hidden):
        raise WorkspaceError(f"{len(hidden)} {tag} image(s) have no trainable labels (e.g. {list(hidden.index[:3])});"
                             f" mAP needs them in view/labels.")
    ws.sync_view(m)
    lst = ws.write_list(f"eval_{tag}", stems)

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
def operating_point(ws, name: str, *, recompute: bool = False, rule: str | None = None, tag: str = "VAL1") -> float:
    """The auto-label confidence of model ``name``: chosen on ``tag`` (VAL1) by :func:`evaluate` and recorded in
    ``metrics/operating_point_<name>.json``; computed (one prediction pass over VAL1) when missing or stale."""
    rule = rule or DEFAULT_OP_RULE
    rec = None
    try:
        rec = ws.load_json(f"operating_point_{name}")
    except Exception:  # noqa: BLE001 - missing or unreadable: compute it
        rec = None
    from alnb.model.train import load_run

    key = load_run(ws, name).key if (ws.root / "runs" / name).is_dir() else None
    if rec is None or recompute or rec.get("key") != key or rec.get("rule") != rule:
        evaluate(ws, name, conf=None, op_rule=rule, tag=tag, with_map=False, save=False)
        rec = ws.load_json(f"operating_point_{name}")
    return float(rec["conf"])


def evaluate(ws, name_or_weights, conf: float | None = None, iou_thr: float = 0.5, tag: str = "VAL1",
             costs: CostModel | None = None, *, imgsz: int | None = None, device=None, with_map: bool = True,
             save: bool = True, op_rule: str | None = None, target_precision: float = 0.8, nms_iou: float = NMS_IOU,
             ultralytics_map: bool = False, threads=None) -> EvalResult:
    """Evaluate a CAL model on the images of ``tag`` at the auto-labelling operating point (module docstring).

    Predicts once down to confidence :data:`SWEEP_CONF`, matches predictions to the ground truth (``ws.true_labels``)
    with :func:`alnb.evaluation.metrics.match_image` at IoU >= ``iou_thr``, and reports per class and overall: instances,
    predictions, TP, FP, FN, precision, recall, F1 and the expected labelling efficiency boost at the operating point,
    plus COCO-style mAP50 / mAP50-95 of the same predictions.  A class with no instance in the set is *not
    measurable*: its recall/F1/boost/AP are NaN (``null`` in JSON), never 0.

    The operating point: ``conf=None`` (default) chooses it on this set with :func:`alnb.evaluation.metrics.choose_conf`
    (``op_rule``: ``"f1"``, ``"seconds"`` = fewest predicted labelling seconds, ``"precision"`` = the lowest cut
    with precision >= ``target_precision``; default :data:`alnb.evaluation.metrics.DEFAULT_OP_RULE`) and, for VAL1, records it
    in ``metrics/operating_point_<name>.json`` (read by auto-labelling, :func:`operating_point`); a number fixes it.
    The figures at the study's fixed confidence :data:`FIXED_CONF` and at the other rules' cuts are reported beside
    (``at_fixed_conf``, ``at_rules``); ``curve`` holds precision / recall / F1 per cut.

    Parameters
    ----------
    ws : Workspace
    name_or_weights : str, Path or TrainResult
        A run name in ``ws`` (``"CAL1"``), a ``.pt`` path or a :class:`alnb.model.train.TrainResult`.
    conf : float, optional
        Operating point (confidence threshold of auto-labels); None = choose it (see above).
    iou_thr : float
        IoU for a match.
    tag : str
        Images to evaluate on (default VAL1, which has human labels).
    costs : CostModel, optional
        Labelling cost model (default :class:`alnb.evaluation.metrics.CostModel`).
    imgsz : int, optional
        Inference size (default: the training size stored in the weights).
    with_map : bool
        Compute the COCO-style mAP (cheap: no extra pass).
    ultralytics_map : bool
        Also run ultralytics' own validator (another pass over the set, other boxes: docs/design/evaluation.md) and
        report it as ``ultralytics_mAP50`` / ``ultralytics_mAP50-95``.
    nms_iou : float
        NMS IoU of the predictions (:data:`NMS_IOU`, as for auto-labels).
    threads : int, optional
        CPU threads (:mod:`alnb.core.cpu`; default the policy's).
    save : bool
        Write ``metrics/eval_<name>.json`` in the workspace (``eval_<name>_<tag>`` when ``tag`` is not VAL1).

    Returns
    -------
    EvalResult
        The fields and keys of :class:`EvalResult` (``name, weights, tag, conf, conf_rule, operating_point,
        iou_thr, nms_iou, costs, n_images, overall, per_class, per_image, not_measurable, at_fixed_conf, at_rules,
        curve``, ``mAP50`` / ``mAP50-95`` as ``map50`` / ``map50_95``, ``map_boxes``, ``train``).  Use
        :func:`per_class_frame` / :func:`per_image_frame` for tables.
    """
    from alnb.model.train import load_model

    op_rule = op_rule or DEFAULT_OP_RULE
    costs, costs_source = resolve_costs(ws, costs)  # measured seconds once the workspace has enough annotations
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
    preds, gts, raw_pred, raw_gt = [], [], [], []
    with cpu_threads(threads, device=device, what=f"evaluating {name}"):
        for stem, (path, pred, (h, w)) in zip(stems, predict_boxes(model, paths, conf=low, imgsz=imgsz,
                                                                   device=device, iou=nms_iou)):
            lab = np.asarray(ws.true_labels(stem), float).reshape(-1, 5)
            gt = np.concatenate([lab[:, :1], xywhn_to_xyxy(lab[:, 1:], w, h)], axis=1)
            r = match_image(pred, gt, iou_thr=iou_thr, nc=nc)
            preds.append((pred[:, 0].astype(int), pred[:, 5], r["tp"]))
            gts.append(gt[:, 0].astype(int))
            raw_pred.append(pred)
            raw_gt.append(gt)
        ul = (map_scores(ws, weights, tag, imgsz=imgsz, device=device, name=name, iou=nms_iou)
              if ultralytics_map else None)
    all_conf = np.concatenate([p[1] for p in preds]) if preds else np.zeros(0)
    all_tp = np.concatenate([p[2] for p in preds]) if preds else np.zeros(0, bool)
    n_gt_all = int(sum(len(g) for g in gts))
    curve = threshold_curve(all_conf, all_tp, n_gt_all)
    if conf is None:
        op = choose_conf(curve, op_rule, target_precision, costs=costs)
        chosen = {**op, "chosen_on": tag}
    else:
        chosen = {"conf": float(conf), "rule": "fixed", "chosen_on": None}
    thr = float(chosen["conf"])
    tot = counts_at(preds, gts, nc, thr)
    maps = coco_map(raw_pred, raw_gt, nc) if with_map else None
    boost_c = efficiency_boost(tot["n_gt_c"], tot["n_pred_c"], tot["fp_c"], tot["fn_c"], 0, costs)
    per_class = []
    for c in range(nc):
        p, rcl, f1 = prf(tot["tp_c"][c], tot["fp_c"][c], tot["fn_c"][c])
        measurable = bool(tot["n_gt_c"][c] > 0)
        ap = maps["per_class"].get(c, {}) if maps and measurable else {}
        row = {"class_id": c, "class": names[c], "instances": int(tot["n_gt_c"][c]),
               "predictions": int(tot["n_pred_c"][c]),
               "tp": int(tot["tp_c"][c]), "fp": int(tot["fp_c"][c]), "fn": int(tot["fn_c"][c]),
               "measurable": measurable, "precision": p, "recall": rcl if measurable else float("nan"),
               "f1": f1 if measurable else float("nan"),
               "boost": float(boost_c["boost"][c]) if measurable else float("nan"),
               "mAP50": ap.get("AP50", float("nan")), "mAP50-95": ap.get("AP50-95", float("nan"))}
        if ul is not None:
            u = ul["per_class"].get(c, {}) if measurable else {}
            row.update({"ultralytics_mAP50": u.get("mAP50", float("nan")),
                        "ultralytics_mAP50-95": u.get("mAP50-95", float("nan"))})
        per_class.append(row)
    per_image = [{"stem": s, "tp": a, "fp": b, "fn": c_, "n_gt": d, "n_pred": e}
                 for s, (a, b, c_, d, e) in zip(stems, tot["per_image"])]
    fixed = counts_at(preds, gts, nc, FIXED_CONF)
    at_rules = {}
    for rule in ("f1", "seconds"):
        op_r = choose_conf(curve, rule, target_precision, costs=costs)
        at_rules[rule] = {"conf": op_r["conf"], "overall": overall_counts(counts_at(preds, gts, nc, op_r["conf"]),
                                                                          len(stems), costs)}
    every = np.linspace(0.05, 0.95, 19)
    idx = [int(np.searchsorted(-curve["conf"], -t, side="left")) - 1 for t in every]
    imgsz_used = imgsz or (info or {}).get("args", {}).get("imgsz")
    result = {"name": name, "weights": str(weights), "tag": tag, "conf": thr, "conf_rule": chosen["rule"],
              "operating_point": chosen, "iou_thr": iou_thr, "nms_iou": nms_iou,
              "costs": costs.to_dict(), "costs_source": costs_source, "n_images": len(stems),
              "overall": overall_counts(tot, len(stems), costs),
              "per_class": per_class, "per_image": per_image,
              "not_measurable": [names[c] for c in range(nc) if tot["n_gt_c"][c] == 0],
              "at_fixed_conf": {"conf": FIXED_CONF, "overall": overall_counts(fixed, len(stems), costs)},
              "at_rules": at_rules,
              "cost_calibration": cost_calibration(preds, gts, thr),
              "curve": {"conf": [round(float(t), 3) for t in every],
                        "precision": [float(curve["precision"][i]) if i >= 0 else float("nan") for i in idx],
                        "recall": [float(curve["recall"][i]) if i >= 0 else 0.0 for i in idx]},
              "mAP50": maps["mAP50"] if maps else float("nan"), "mAP50-95": maps["mAP50-95"] if maps else float("nan"),
              "map_boxes": (f"COCO-style AP (101-point, IoU 0.50:0.95, <= 100 per image and class) of the auto-label "
                            f"prediction path: single-label NMS IoU {nms_iou}, confidence >= {low}, "
                            f"{imgsz_used or 'training-size'} px"),
              "train": {k: info[k] for k in ("profile", "seconds", "n_train", "epochs_run", "key", "threads")
                        if k in info} if info else {}}
    if ul is not None:
        result.update({"ultralytics_mAP50": ul["mAP50"], "ultralytics_mAP50-95": ul["mAP50-95"]})
    if conf is None and tag == "VAL1":
        ws.save_json(f"operating_point_{name}", {**chosen, "model": name, "weights": str(weights),
                                                 "key": (info or {}).get("key"), "iou_thr": iou_thr,
                                                 "nms_iou": nms_iou,
                                                 "fixed_conf": FIXED_CONF})
    if save:
        ws.save_json(f"eval_{name}" if tag == "VAL1" else f"eval_{name}_{tag}", result)
    return EvalResult.from_dict(result)


def per_class_frame(result: dict):
    """Per-class table (pandas) of an :func:`evaluate` result, indexed by class name."""
    df = pd.DataFrame(result["per_class"]).set_index("class")
    return df.astype({"precision": float, "recall": float, "f1": float, "boost": float})


def per_image_frame(result: dict):
    """Per-image TP/FP/FN table (pandas) of an :func:`evaluate` result, worst images (most errors) first."""
    df = pd.DataFrame(result["per_image"])
    if len(df):
        df = df.assign(errors=df["fp"] + df["fn"]).sort_values(["errors", "stem"], ascending=[False, True])
    return df.reset_index(drop=True)


# -------------------------------------------------------------------------------------- what a selection costs
def predict_at_operating_point(ws, model: str, stems, *, threads=None) -> dict:
    """``{stem: (pred (n, 6) cls x0 y0 x1 y1 conf in pixels, (h, w))}``: the auto-labels ``model`` (a run of the
    workspace) gives the images ``stems`` at its operating point (:func:`operating_point`)."""
    from alnb.model.train import load_model, load_run

    stems = list(stems)
    if not stems:
        return {}
    conf = operating_point(ws, model)
    m = ws.manifest().set_index("stem")
    paths = [ws.view_image({"stem": s, "image": m.at[s, "image"]}) for s in stems]
    net = load_model(load_run(ws, model).weights)
    with cpu_threads(threads, what=f"auto-labels of {model}"):
        out = {}
        for s, (_, pred, hw) in zip(stems, predict_boxes(net, paths, conf=min(conf, SWEEP_CONF))):
            out[s] = (pred[pred[:, 5] > conf], hw)
    return out


def write_prelabels(ws, model: str, stems, preds: dict | None = None) -> Path:
    """Write ``autolabels/<model>/<stem>.txt`` for ``stems`` from :func:`predict_at_operating_point` (the
    pre-annotations of a labelling queue), in the auto-label format (:func:`alnb.evaluation.metrics.autolabel_lines`)."""
    preds = predict_at_operating_point(ws, model, stems) if preds is None else preds
    out = ws.root / "autolabels" / model
    for s in stems:
        p, (h, w) = preds[s]
        lines = autolabel_lines(p[:, 0], p[:, 1:5], p[:, 5], w, h)
        atomic_write_text(out / f"{s}.txt", "\n".join(lines) + ("\n" if lines else ""))
    return out


def prelabel_boxes(ws, model: str, stems) -> dict:
    """``{stem: (pred (n, 6) cls x0 y0 x1 y1 conf in pixels, (h, w))}``: the pre-annotations people get for
    ``stems`` -- the auto-label files ``autolabels/<model>/<stem>.txt`` (MC scoring's, or :func:`write_prelabels`'),
    written now from :func:`predict_at_operating_point` for the images that have none."""
    stems = list(stems)
    d = ws.root / "autolabels" / model
    missing = [s for s in stems if not (d / f"{s}.txt").is_file()]
    if missing:
        write_prelabels(ws, model, missing)
    m = ws.manifest().set_index("stem")
    out = {}
    for s in stems:
        w, h = float(m.at[s, "width"]), float(m.at[s, "height"])
        a = read_autolabels(d / f"{s}.txt", len(ws.names))
        out[s] = (np.concatenate([a[:, :1], xywhn_to_xyxy(a[:, 1:5], w, h), a[:, 5:6]], axis=1), (h, w))
    return out


def selection_cost(ws, stems, model: str, costs: CostModel | None = None, *, iou_thr: float = 0.5,
                   preds: dict | None = None) -> dict:
    """What labelling ``stems`` costs when people correct ``model``'s pre-annotations (:func:`prelabel_boxes`: the
    auto-label files the queue exports): every proposal verified, false ones deleted, misses drawn, per-image time
    (:func:`alnb.evaluation.metrics.labelling_seconds`), against the images' trainable labels (people's or, in simulation mode,
    the revealed truth).  Returns ``images, boxes, proposals, tp, fp, fn, manual_s, assisted_s, model``."""
    costs = resolve_costs(ws, costs)[0]
    stems = list(stems)
    preds = prelabel_boxes(ws, model, stems) if preds is None else preds
    m = ws.manifest()
    nc = len(ws.names)
    tp = fp = fn = n_gt = n_pred = 0
    for s in stems:
        p, (h, w) = preds[s]
        lab = np.asarray(ws.trainable_labels(s, m), float).reshape(-1, 5)
        gt = np.concatenate([lab[:, :1], xywhn_to_xyxy(lab[:, 1:], w, h)], axis=1)
        r = match_image(p, gt, iou_thr=iou_thr, nc=nc)
        t = int(np.sum(r["tp"]))
        tp, fp, fn, n_gt, n_pred = tp + t, fp + len(p) - t, fn + len(gt) - t, n_gt + len(gt), n_pred + len(p)
    sec = labelling_seconds(n_gt, n_pred, fp, fn, len(stems), costs)
    return {"model": model, "images": len(stems), "boxes": n_gt, "proposals": n_pred, "tp": tp, "fp": fp, "fn": fn,
            **sec}


# ----------------------------------------------------------------------------------------- a held-out TEST set
def evaluate_external(ws, name: str, data_dir, *, conf: float | None = None, costs: CostModel | None = None,
                      iou_thr: float = 0.5, save_predictions=None, threads=None) -> dict:
    """Evaluate run ``name`` of ``ws`` on another labelled YOLO dataset (a held-out TEST set: never in the
    workspace, so never trained on or selected from) at its VAL1 operating point (``conf=None``) with the same
    prediction path and measures as :func:`evaluate`: COCO-style mAP of the boxes down to :data:`SWEEP_CONF`, P / R /
    boost at the operating point.  ``save_predictions``: an ``.npz`` for :func:`load_predictions` (the paired
    bootstrap of the study's evaluation noise).  Returns ``mAP50, mAP50-95, precision, recall, f1, boost, conf,
    n_images``."""
    from alnb.model.train import load_model, load_run

    costs = costs or CostModel()
    ds = load_dataset(data_dir, progress=False)
    if list(ds.names) != list(ws.names):
        raise ValueError(f"{data_dir} has classes {ds.names}, the workspace {ws.names}: evaluate on a dataset with "
                         f"the same classes.")
    conf = operating_point(ws, name) if conf is None else float(conf)
    imgs = ds.usable[ds.usable["label_state"] != "unlabelled"].sort_values("stem")
    paths = [ds.root / rel for rel in imgs["image"]]
    net = load_model(load_run(ws, name).weights)
    nc = len(ws.names)
    raw_pred, raw_gt, preds, gts = [], [], [], []
    with cpu_threads(threads, what=f"evaluating {name} on {data_dir}"):
        for stem, (_, pred, (h, w)) in zip(imgs["stem"], predict_boxes(net, paths, conf=min(SWEEP_CONF, conf))):
            lab = np.asarray(ds.labels(stem), float).reshape(-1, 5)
            gt = np.concatenate([lab[:, :1], xywhn_to_xyxy(lab[:, 1:], w, h)], axis=1)
            r = match_image(pred, gt, iou_thr=iou_thr, nc=nc)
            raw_pred.append(pred)
            raw_gt.append(gt)
            preds.append((pred[:, 0].astype(int), pred[:, 5], r["tp"]))
            gts.append(gt[:, 0].astype(int))
    maps = coco_map(raw_pred, raw_gt, nc)
    ov = overall_counts(counts_at(preds, gts, nc, conf), len(paths), costs)
    if save_predictions is not None:
        save_predictions = Path(save_predictions)
        save_predictions.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(save_predictions, stems=np.asarray(list(imgs["stem"]), str), nc=nc,
                            pred=np.concatenate([np.c_[np.full(len(p), i), p] for i, p in enumerate(raw_pred)])
                            if raw_pred else np.zeros((0, 7)),
                            gt=np.concatenate([np.c_[np.full(len(g), i), g] for i, g in enumerate(raw_gt)])
                            if raw_gt else np.zeros((0, 6)))
    return {"mAP50": maps["mAP50"], "mAP50-95": maps["mAP50-95"], "precision": ov["precision"],
            "recall": ov["recall"], "f1": ov["f1"], "boost": ov["boost"], "conf": conf, "n_images": len(paths)}


def load_predictions(path) -> tuple:
    """``(preds, gts, nc)`` per image from an :func:`evaluate_external` ``.npz``."""
    with np.load(path) as z:
        n, nc, p, g = len(z["stems"]), int(z["nc"]), z["pred"], z["gt"]
    return ([p[p[:, 0] == i, 1:] for i in range(n)], [g[g[:, 0] == i, 1:] for i in range(n)], nc)
