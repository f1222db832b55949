"""Which CPU recipe gives a CAL1 worth auditing?  Train CAL1 on GT1 per recipe and print what auto-labelling gets.

Usage::

    python benchmarks/recipe_sweep.py --workspace runs/sweep --data data/weld [--recipes NAME ...] [--seed 0]

For each recipe (a dict of :func:`alnb.model.train.get_profile` overrides, below) CAL1 is trained on the workspace's GT1
(cached: a recipe that already ran is reused) and evaluated on VAL1 with :func:`alnb.evaluation.step.evaluate`:
mAP50, mAP50-95, precision / recall / F1 / boost at the chosen operating point (F1-maximising confidence on VAL1)
and at the study's fixed confidence 0.25, the share of auto-labels with a same-class duplicate (IoU >= 0.5) and the
training seconds.  Rows are appended to ``<workspace>/metrics/recipe_sweep.csv`` and the table is printed.
Training seconds are wall time on this machine, with whatever else was running (say so when you quote them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

import alnb  # noqa: F401  (offline before ultralytics)
from alnb.evaluation.step import evaluate, predict_boxes
from alnb.evaluation.metrics import NMS_IOU, duplicate_share
from alnb.model.pretrain import CHECKPOINT
from alnb.model.train import load_model, train_cal
from alnb.core.workspace import Workspace

PRE = str(CHECKPOINT)
BASE = {"profile": "quick"}
# name -> overrides (``weights`` = start checkpoint; everything else goes to train_cal / get_profile).
RECIPES = {
    "old-quick": dict(epochs=25, imgsz=256, nms=0.7, run="tiny256-scratch"),  # the previous default, NMS 0.7
    "tiny256-scratch": dict(epochs=25, imgsz=256),
    "tiny256-pre": dict(epochs=25, imgsz=256, weights=PRE, cls_pw=0.0),
    "tiny320-pre": dict(epochs=25, imgsz=320, weights=PRE, cls_pw=0.0),
    "tiny320-pre-e40": dict(epochs=40, imgsz=320, weights=PRE),
    "tiny384-pre": dict(epochs=25, imgsz=384, weights=PRE),
    "tiny320-pre-cw": dict(epochs=25, imgsz=320, weights=PRE, cls_pw=0.5),  # inverse-frequency class weights^0.5
    "tiny320-pre-cw1": dict(epochs=25, imgsz=320, weights=PRE, cls_pw=1.0),  # full inverse-frequency class weights
    # + LVIS repeat-factor sampling of images holding a rare class (alnb.model.train.repeat_factors)
    "tiny320-pre-cw-rfs": dict(epochs=25, imgsz=320, weights=PRE, cls_pw=0.5, repeat_thresh=0.2),  # = quick
    "tiny320-pre-cw-rfs3": dict(epochs=25, imgsz=320, weights=PRE, cls_pw=0.5, repeat_thresh=0.3),
    "tiny320-pre-aug": dict(epochs=25, imgsz=320, weights=PRE, flipud=0.5, scale=0.25, hsv_h=0.0, hsv_s=0.0),
    "tiny320-scratch-e40": dict(epochs=40, imgsz=320),
    "tiny384-scratch": dict(epochs=25, imgsz=384),
    "tiny256-scratch-e60": dict(epochs=60, imgsz=256),
    "n256-scratch": dict(epochs=25, imgsz=256, model="yolov8n.yaml"),
    # CAL2 / Control stand-in (GT1 + 251 random POOL images): warm start from CAL1 vs a fresh start
    "ctl320-warm-e10": dict(epochs=10, imgsz=320, control=True, warm="tiny320-pre"),
    "ctl320-fresh-e10": dict(epochs=10, imgsz=320, control=True, weights=PRE),  # same cost as the warm start
    "ctl320-fresh-e25": dict(epochs=25, imgsz=320, control=True, weights=PRE),
}


def duplicates_at(ws, weights, conf: float, iou_nms: float, tag: str = "VAL1") -> dict:
    """:func:`alnb.evaluation.metrics.duplicate_share` of the model's predictions on ``tag`` at ``conf``."""
    m = ws.manifest().set_index("stem")
    paths = [ws.view_image({"stem": s, "image": m.at[s, "image"]}) for s in ws.stems(tag)]
    return duplicate_share(p for _, p, _ in predict_boxes(load_model(weights), paths, conf=conf, iou=iou_nms))


CONTROL_N = 251  # the study's GT2 size: GT1 + 251 random POOL images stands in for CAL2 / Control training sets


def control_set(ws, n: int = CONTROL_N):
    """A seeded random CONTROL set of ``n`` POOL images with revealed labels (made once per workspace)."""
    from alnb.loop import pipeline

    if len(ws.stems("CONTROL")) != n:
        pipeline.make_control(ws, seed=0, n=n)
    pipeline.ensure_labelled(ws, "CONTROL")


def run_recipe(ws, name: str, recipe: dict, seed: int = 0) -> dict:
    r = dict(recipe)
    r.setdefault("repeat_thresh", None)  # rare-class oversampling only where a recipe names it
    nms = r.pop("nms", NMS_IOU)
    run = r.pop("run", name)  # recipes that differ only in evaluation share one training run
    weights = r.pop("weights", None)
    profile = r.pop("profile", BASE["profile"])
    tags = ["GT1"]
    if r.pop("control", False):  # GT1 + a random POOL sample, the size of the study's GT2 (CAL2 / Control)
        control_set(ws)
        tags = ["GT1", "CONTROL"]
    warm = r.pop("warm", None)  # warm start from the CAL1 of another recipe (same seed)
    if warm is not None:
        weights = str(ws.root / "runs" / f"sweep_{RECIPES[warm].get('run', warm)}_s{seed}" / "weights" / "best.pt")
    t0 = time.perf_counter()
    res = train_cal(ws, f"sweep_{run}_s{seed}", tags, profile, weights=weights, seed=seed, verbose=False, **r)
    ev = evaluate(ws, res, conf=None, nms_iou=nms, save=False)
    o, f = ev["overall"], ev["at_fixed_conf"]["overall"]
    dup = duplicates_at(ws, res.weights, ev["conf"], nms)
    pc = {c["class"]: c["recall"] for c in ev["per_class"] if c["measurable"]}
    return {"recipe": name, "seed": seed, "mAP50": ev["mAP50"], "mAP50-95": ev["mAP50-95"], "conf": ev["conf"],
            "P": o["precision"], "R": o["recall"], "F1": o["f1"], "boost": o["boost"],
            "P@0.25": f["precision"], "R@0.25": f["recall"], "boost@0.25": f["boost"],
            "dup_box_share": dup["box_share"], "dup_pair_share": dup["pair_share"], "min_class_R": min(pc.values()) if pc else float("nan"),
            "train_s": res.seconds, "reused": res.reused, "nms_iou": nms,
            "epochs": res.info.get("epochs_run"), "imgsz": res.info.get("args", {}).get("imgsz"),
            "n_train": res.info.get("n_train"),
            "wall_s": round(time.perf_counter() - t0, 1),
            **{f"R[{k}]": v for k, v in pc.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default="runs/sweep")
    ap.add_argument("--data", default="data/weld")
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds")
    ap.add_argument("--split-seed", type=int, default=0,
                    help="seed of the VAL1/GT1/POOL split when the workspace is created (the study's seed k uses k)")
    a = ap.parse_args(argv)
    root = Path(a.workspace)
    ws = Workspace.open(root) if (root / "manifest.csv").is_file() else Workspace.create(root, a.data, seed=a.split_seed)
    out = ws.root / "metrics" / "recipe_sweep.csv"
    rows = []
    for name in a.recipes:
        for seed in a.seeds:
            row = run_recipe(ws, name, RECIPES[name], seed)
            rows.append(row)
            df = pd.DataFrame([row])
            old = pd.read_csv(out) if out.is_file() else None
            pd.concat([old, df], ignore_index=True).to_csv(out, index=False)  # columns may grow between versions
            print(df[[c for c in df.columns if not c.startswith("R[")]].to_string(index=False, float_format="%.3f"),
                  flush=True)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print(df.to_string(index=False, float_format="%.3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
