"""The shipped starting checkpoint: a class-agnostic "defect" detector pretrained on a *disjoint* synthetic corpus.

:func:`make_corpus` writes :mod:`alnb.datasets.weld` radiographs drawn with another generator seed
(:data:`CORPUS_SEED`, so no study image is ever seen) with one box class, ``defect``; :func:`pretrain` trains the
quick profile's width-0.125 YOLOv8 with the dropout head on it and copies its ``best.pt`` to ``dest``
(``alnb/models/weld-defect-tiny.pt``).  A six-class CAL model that starts from it gets every weight whose shape
matches; the class branch's last conv starts afresh, as with COCO weights.

Rebuild the shipped file with::

    python -m alnb.model.pretrain --out data/pretrain

Design notes: docs/design/pretrain.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import yaml

from alnb.core.offline import ensure_offline

ensure_offline()

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"  # alnb/models: the yaml and the shipped checkpoint
CHECKPOINT = MODELS_DIR / "weld-defect-tiny.pt"
CORPUS_SEED = 1_000_003  # any seed but the study's 0; images are default_rng([seed, index]) streams
AGNOSTIC_NAME = "defect"

# The recipe of the shipped checkpoint (recorded next to it in weld-defect-tiny.json).
RECIPE = {"n_images": 2000, "n_val": 200, "imgsz": 320, "epochs": 15, "batch": 16, "optimizer": "AdamW",
          "lr0": 0.002, "nbs": 16, "close_mosaic": 3, "flipud": 0.5, "seed": 0, "dropout": 0.1}


def make_corpus(out: str | os.PathLike, n_images: int = RECIPE["n_images"], n_val: int = RECIPE["n_val"],
                seed: int = CORPUS_SEED, progress: bool = True) -> Path:
    """Generate the disjoint corpus and its class-agnostic YOLO view; returns the ``data.yaml`` to train on.

    ``out/weld`` holds the generated radiographs (six-class labels, untouched); ``out/agnostic`` holds symlinks to
    the images and labels whose class ids are all 0 (``defect``), split into train/val lists.
    """
    # heavy, imported where used (not at module import): alnb.datasets.weld (cv2), alnb.model.train (torch/ultralytics)
    from alnb.datasets import weld

    if seed == 0:
        raise ValueError("seed 0 is the study's dataset: the pretraining corpus must be disjoint from it.")
    out = Path(out).resolve()
    src = weld.generate(out / "weld", weld.WeldConfig(n_images=n_images, seed=seed), progress=progress)
    ag = out / "agnostic"
    (ag / "images").mkdir(parents=True, exist_ok=True)
    (ag / "labels").mkdir(parents=True, exist_ok=True)
    imgs = sorted((src / "images").glob("*.png"))
    for img in imgs:
        link = ag / "images" / img.name
        if not link.exists():
            link.symlink_to(img.resolve())
        lines = (src / "labels" / f"{img.stem}.txt").read_text().split("\n")
        agn = ["0 " + ln.split(maxsplit=1)[1] for ln in lines if ln.strip()]
        (ag / "labels" / f"{img.stem}.txt").write_text("\n".join(agn) + ("\n" if agn else ""))
    (ag / "train.txt").write_text("\n".join(str(ag / "images" / p.name) for p in imgs[n_val:]) + "\n")
    (ag / "val.txt").write_text("\n".join(str(ag / "images" / p.name) for p in imgs[:n_val]) + "\n")
    data = {"path": str(ag), "train": str(ag / "train.txt"), "val": str(ag / "val.txt"), "names": {0: AGNOSTIC_NAME}}
    (ag / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return ag / "data.yaml"


def pretrain(out: str | os.PathLike = "data/pretrain", dest: str | os.PathLike = CHECKPOINT, device: str | None = None,
             progress: bool = True, **recipe) -> dict:
    """Make the corpus, train the class-agnostic detector and copy its ``best.pt`` to ``dest``; returns a summary."""
    from alnb.model.train import auto_device, dropout_trainer, model_yaml_path

    r = {**RECIPE, **recipe}
    data_yaml = make_corpus(out, r["n_images"], r["n_val"], progress=progress)
    args = {k: r[k] for k in ("imgsz", "epochs", "batch", "optimizer", "lr0", "nbs", "close_mosaic", "flipud", "seed")}
    full = {**args, "model": str(model_yaml_path("yolov8-tiny.yaml")), "data": str(data_yaml),
            "project": str(Path(out).resolve() / "runs"), "name": "defect", "exist_ok": True, "plots": False,
            "deterministic": True, "device": device or auto_device(), "verbose": True}
    run_dir = Path(full["project"]) / "defect"
    shutil.rmtree(run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    tr = dropout_trainer(r["dropout"])(overrides=full)
    tr.train()
    seconds = time.perf_counter() - t0
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "weights" / "best.pt", dest)
    m = tr.metrics or {}
    summary = {"checkpoint": dest.name, "corpus_seed": CORPUS_SEED, "task": f"class-agnostic '{AGNOSTIC_NAME}' boxes",
               "recipe": r, "seconds": round(seconds, 1), "device": full["device"],
               "val_mAP50": float(m.get("metrics/mAP50(B)", float("nan"))),
               "val_mAP50-95": float(m.get("metrics/mAP50-95(B)", float("nan"))),
               "bytes": dest.stat().st_size}

    dest.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description="Pretrain the class-agnostic starting checkpoint on a disjoint corpus.")
    ap.add_argument("--out", default="data/pretrain", help="corpus + run folder (default data/pretrain)")
    ap.add_argument("--dest", default=str(CHECKPOINT), help=f"checkpoint to write (default {CHECKPOINT})")
    ap.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    ap.add_argument("--imgsz", type=int, default=RECIPE["imgsz"])
    ap.add_argument("--n-images", type=int, default=RECIPE["n_images"])
    ap.add_argument("--device", default=None)
    a = ap.parse_args(argv)
    s = pretrain(a.out, a.dest, device=a.device, epochs=a.epochs, imgsz=a.imgsz, n_images=a.n_images)
    print(yaml.safe_dump(s, sort_keys=False))


if __name__ == "__main__":
    main()
