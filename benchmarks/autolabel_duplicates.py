"""Stacked duplicates in a workspace's auto-labels: same-class pairs overlapping with IoU >= 0.5.

Usage::

    python benchmarks/autolabel_duplicates.py --workspace runs/weld [--model CAL1]

Reads ``<workspace>/autolabels/<model>/*.txt`` (YOLO ``cls cx cy w h conf``) and prints
:func:`alnb.metrics.duplicate_share`: boxes, same-class pairs, duplicate pairs and the two shares (of pairs, of boxes),
plus the cross-class pairs at IoU >= 0.5 (one defect boxed with two classes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from alnb.metrics import box_iou, duplicate_share, xywhn_to_xyxy


def read_boxes(folder: Path) -> list:
    out = []
    for f in sorted(folder.glob("*.txt")):
        rows = [ln.split() for ln in f.read_text().splitlines() if ln.strip()]
        a = np.asarray(rows, float).reshape(-1, len(rows[0]) if rows else 6)
        out.append(np.concatenate([a[:, :1], xywhn_to_xyxy(a[:, 1:5])], axis=1) if len(a) else np.zeros((0, 5)))
    return out


def cross_class_pairs(boxes, thr: float = 0.5) -> int:
    n = 0
    for b in boxes:
        if len(b) > 1:
            iou = box_iou(b[:, 1:5], b[:, 1:5])
            other = b[:, None, 0] != b[None, :, 0]
            n += int(np.triu(other & (iou >= thr), 1).sum())
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default="runs/weld")
    ap.add_argument("--model", default="CAL1")
    a = ap.parse_args(argv)
    folder = Path(a.workspace) / "autolabels" / a.model
    if not folder.is_dir():
        print(f"no auto-labels in {folder}: run the auto-labelling step (notebook 02) first", file=sys.stderr)
        return 2
    boxes = read_boxes(folder)
    d = duplicate_share(boxes)
    print(f"{len(boxes)} images, {d['n_boxes']} auto-labels, {d['n_pairs']} same-class pairs in one image")
    print(f"same-class pairs with IoU >= 0.5: {d['dup_pairs']} = {100 * d['pair_share']:.2f} % of pairs; "
          f"boxes with such a duplicate: {100 * d['box_share']:.2f} %")
    print(f"cross-class pairs with IoU >= 0.5: {cross_class_pairs(boxes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
