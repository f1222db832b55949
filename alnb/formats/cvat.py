"""CVAT: the queue as a *YOLO 1.1* annotation zip (``obj.data``, ``obj.names``, ``obj_train_data/<stem>.txt``,
``train.txt``) to upload as annotations of a CVAT task holding the same images.  CVAT's own *YOLO 1.1* export comes
back through the ``yolo`` import (:mod:`alnb.formats.yolo`).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from alnb.formats.common import autolabel_boxes, write_bytes_atomic, yolo_line

CVAT_ZIP = "cvat_yolo1.1.zip"


def export(ws, q, out: Path, **_):
    """``<out>/cvat_yolo1.1.zip``; the same queue gives the same bytes (fixed time stamps)."""
    names = ws.names
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:

        def put(name, text):  # fixed time stamps: the same queue gives the same bytes
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), text, zipfile.ZIP_DEFLATED)

        put("obj.data", f"classes = {len(names)}\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
        put("obj.names", "\n".join(names) + "\n")
        train = []
        for row in q.to_dict("records"):
            name = Path(row["image"]).name
            boxes = autolabel_boxes(ws, row)
            lines = [] if boxes is None else [yolo_line(*b[:5]) for b in boxes]
            put(f"obj_train_data/{Path(name).stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
            train.append(f"data/obj_train_data/{name}")
        put("train.txt", "\n".join(train) + "\n")
    write_bytes_atomic(out / CVAT_ZIP, buf.getvalue())
