"""Stacked duplicates in a workspace's auto-labels: same-class pairs overlapping with IoU >= 0.5.

Usage::

    python benchmarks/autolabel_duplicates.py --workspace runs/weld [--model CAL1]

Reads ``<workspace>/autolabels/<model>/*.txt`` (YOLO ``cls cx cy w h conf``) and prints
:func:`alnb.evaluation.metrics.duplicate_share`: boxes, same-class pairs, duplicate pairs and the two shares (of pairs, of boxes),
plus the cross-class pairs at IoU >= 0.5 (one defect boxed with two classes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from alnb.labels.labelio import read_autolabels
from alnb.evaluation.metrics import duplicate_share, xywhn_to_xyxy
from alnb.core.workspace import Workspace


def read_boxes(ws, folder: Path) -> list:
    """(n, 5) ``cls x0 y0 x1 y1`` (normalised) per auto-label file, read by :func:`alnb.labels.labelio.read_autolabels`."""
    out = []
    for f in sorted(folder.glob("*.txt")):
        a = read_autolabels(f, len(ws.names))
        out.append(np.concatenate([a[:, :1], xywhn_to_xyxy(a[:, 1:5])], axis=1))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default="runs/weld")
    ap.add_argument("--model", default="CAL1")
    a = ap.parse_args(argv)
    folder = Path(a.workspace) / "autolabels" / a.model
    if not folder.is_dir():
        print(f"no auto-labels in {folder}: run the auto-labelling step (notebook 02) first", file=sys.stderr)
        return 2
    boxes = read_boxes(Workspace.open(a.workspace), folder)
    d = duplicate_share(boxes)
    print(f"{len(boxes)} images, {d['n_boxes']} auto-labels, {d['n_pairs']} same-class pairs in one image")
    print(f"same-class pairs with IoU >= 0.5: {d['dup_pairs']} = {100 * d['pair_share']:.2f} % of pairs; "
          f"boxes with such a duplicate: {100 * d['box_share']:.2f} %")
    print(f"cross-class pairs with IoU >= 0.5: {d['cross_pairs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
