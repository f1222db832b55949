"""CVAT: the queue as a *YOLO 1.1* annotation zip (``obj.data``, ``obj.names``, ``obj_train_data/<stem>.txt``,
``train.txt``) to upload as annotations of a CVAT task holding the same images.  CVAT's own *YOLO 1.1* export comes
back through the ``yolo`` import (:mod:`alnb.labels.formats.yolo`).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from alnb.labels.formats.common import autolabel_boxes, write_bytes_atomic, yolo_line

CVAT_ZIP = "cvat_yolo1.1.zip"


def yolo11_zip(names, items, extra: dict | None = None) -> bytes:
    """The bytes of a CVAT *YOLO 1.1* zip: ``items`` = ``(image path, boxes)`` pairs (rows ``cls cx cy w h ...`` or
    None), ``extra`` = more files by name (e.g. ``provenance.csv``); fixed time stamps, so the same input gives the
    same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:

        def put(name, text):
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), text, zipfile.ZIP_DEFLATED)

        put("obj.data", f"classes = {len(names)}\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
        put("obj.names", "\n".join(names) + "\n")
        train = []
        for image, boxes in items:
            name = Path(image).name
            lines = [] if boxes is None else [yolo_line(*b[:5]) for b in boxes]
            put(f"obj_train_data/{Path(name).stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
            train.append(f"data/obj_train_data/{name}")
        put("train.txt", "\n".join(train) + "\n")
        for name, text in (extra or {}).items():
            put(name, text)
    return buf.getvalue()


def export(ws, q, out: Path, **_):
    """``<out>/cvat_yolo1.1.zip``; the same queue gives the same bytes (fixed time stamps)."""
    items = [(row["image"], autolabel_boxes(ws, row)) for row in q.to_dict("records")]
    write_bytes_atomic(out / CVAT_ZIP, yolo11_zip(ws.names, items))
