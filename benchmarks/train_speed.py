"""Measure CAL training and validation throughput (images/s) for candidate model/imgsz configurations.

Usage::

    python benchmarks/train_speed.py WORKSPACE [--configs yolov8-tiny.yaml:256 yolov8n.yaml:256 ...] [--epochs 2]

Trains each configuration on the workspace's GT1 images (validating on VAL1) in a scratch run folder
``<workspace>/runs/_bench_*`` (deleted afterwards) and prints, per configuration, the training throughput of the
last epoch (images/s, forward + backward + data loading) and the validation throughput (images/s).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import alnb  # noqa: F401  (offline before ultralytics)
from alnb.train import auto_device, dropout_trainer, get_profile, model_yaml_path
from alnb.workspace import Workspace


def measure(ws, model: str, imgsz: int, epochs: int = 2, batch: int = 16, tags=("GT1",)) -> dict:
    data_yaml = ws.write_data_yaml("_bench", list(tags))
    n_train = len(ws.stems(*tags))
    n_val = len(ws.stems("VAL1"))
    name = f"_bench_{Path(model).stem}_{imgsz}"
    marks = {}

    def mark(event):
        def cb(trainer):
            marks.setdefault(event, []).append(time.perf_counter())
        return cb

    y = model_yaml_path(model)
    prof = get_profile("quick", model=model, imgsz=imgsz, epochs=epochs, batch=batch)
    args = {**prof.train_args(), "model": str(y) if y else model, "data": str(data_yaml),
            "project": str(ws.root / "runs"), "name": name, "exist_ok": True, "plots": False, "seed": 0,
            "deterministic": True, "device": auto_device(), "verbose": False, "close_mosaic": 0}
    tr = dropout_trainer(prof.dropout)(overrides=args)
    for ev in ("on_train_epoch_start", "on_train_epoch_end", "on_fit_epoch_end"):
        tr.add_callback(ev, mark(ev))
    t0 = time.perf_counter()
    tr.train()
    total = time.perf_counter() - t0
    shutil.rmtree(ws.root / "runs" / name, ignore_errors=True)
    s, e, f = marks["on_train_epoch_start"][-1], marks["on_train_epoch_end"][-1], marks["on_fit_epoch_end"][-1]
    return {"model": model, "imgsz": imgsz, "train_img_s": n_train / (e - s), "val_img_s": n_val / (f - e),
            "epoch_s": f - s, "total_s": total, "n_train": n_train, "n_val": n_val}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace")
    ap.add_argument("--configs", nargs="+", default=["yolov8-tiny.yaml:256", "yolov8n.yaml:256"])
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args(argv)
    ws = Workspace.open(a.workspace)
    for c in a.configs:
        model, imgsz = c.rsplit(":", 1)
        r = measure(ws, model, int(imgsz), a.epochs)
        print(f"{r['model']:>20} imgsz {r['imgsz']:>4}: train {r['train_img_s']:6.1f} img/s, "
              f"val {r['val_img_s']:6.1f} img/s, epoch {r['epoch_s']:5.1f} s (train {r['n_train']}, val {r['n_val']})",
              flush=True)


if __name__ == "__main__":
    main()
