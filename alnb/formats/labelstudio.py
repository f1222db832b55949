"""Label Studio: the labelling config, tasks with pre-annotations (export), a *JSON* project export (import), and
the one conversion between Label Studio's boxes (top-left, percent 0-100) and alnb's (YOLO centre, normalised 0-1),
which the export, the import and the ML backend (:mod:`alnb.serve`) all use.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote
from xml.etree import ElementTree as ET

import numpy as np

from alnb.formats.common import ParseContext, autolabel_boxes, read_json
from alnb.workspace import WorkspaceError, atomic_write_json, atomic_write_text

#: Default Label Studio image URL prefix: Label Studio's *local files* serving.  The image path after ``?d=`` is
#: relative to ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (by default the dataset folder, see
#: :func:`alnb.labelio.export_queue`).
LS_URL_PREFIX = "/data/local-files/?d="
LS_FROM_NAME, LS_TO_NAME = "label", "image"  # names used in the labelling config and in every result

_PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
            "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075"]
_NOT_BOX_TYPES = {"polygonlabels", "brushlabels", "keypointlabels", "ellipselabels", "polygon", "brush", "keypoint",
                  "ellipse", "rectangle", "bitmask"}


# ------------------------------------------------------------------------------------------ the box conversion
def yolo_to_ls(cx, cy, w, h) -> dict:
    """A YOLO box (centre, normalised 0-1) as Label Studio's ``value`` geometry: ``x, y`` (top-left), ``width,
    height``, all in percent of the image (0-100)."""
    return {"x": (cx - w / 2) * 100.0, "y": (cy - h / 2) * 100.0, "width": w * 100.0, "height": h * 100.0}


def ls_to_corners(value: dict) -> tuple:
    """Normalised corners ``(x0, y0, x1, y1)`` of a Label Studio ``value`` (``x, y, width, height`` in percent).

    Raises KeyError / TypeError / ValueError when a coordinate is missing or not a number.
    """
    x, y, w, h = (float(value[k]) / 100.0 for k in ("x", "y", "width", "height"))
    return x, y, x + w, y + h


def region(rid: str, name: str, box, conf, width: int, height: int) -> dict:
    """One ``rectanglelabels`` result: the box ``cx cy w h`` (YOLO) of class ``name``; ``score`` = its detection
    confidence (left out when NaN); ``original_width/height`` = the image size in pixels."""
    r = {"id": rid, "type": "rectanglelabels", "from_name": LS_FROM_NAME, "to_name": LS_TO_NAME,
         "original_width": int(width), "original_height": int(height), "image_rotation": 0,
         "value": {**yolo_to_ls(*box), "rotation": 0, "rectanglelabels": [name]}}
    if np.isfinite(conf):
        r["score"] = float(conf)
    return r


def regions(stem: str, boxes: np.ndarray, names, width: int, height: int) -> list:
    """The ``result`` list of a prediction: one :func:`region` per auto-label row ``cls cx cy w h conf``."""
    return [region(f"{stem}_{i}", names[int(c)], (cx, cy, w, h), conf, width, height)
            for i, (c, cx, cy, w, h, conf) in enumerate(boxes)]


# ------------------------------------------------------------------------------------------------------------ export
def labelstudio_config(names, from_name: str = LS_FROM_NAME, to_name: str = LS_TO_NAME) -> str:
    """Label Studio labelling-config XML for rectangle boxes with the class list ``names`` (one colour each).

    Paste it into *Settings > Labeling Interface > Code*; the ``from_name``/``to_name`` match the exported tasks.
    """
    view = ET.Element("View")
    ET.SubElement(view, "Image", name=to_name, value="$image", zoom="true", zoomControl="true")
    rl = ET.SubElement(view, "RectangleLabels", name=from_name, toName=to_name, strokeWidth="2")
    for i, n in enumerate(names):
        ET.SubElement(rl, "Label", value=str(n), background=_PALETTE[i % len(_PALETTE)])
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def image_url(rel_image: str, url_prefix: str, dataset_root: Path, document_root) -> str:
    """Label Studio URL of a dataset image: ``url_prefix`` + its path relative to ``document_root`` (URL-quoted)."""
    path = (dataset_root / rel_image).resolve()
    root = Path(document_root).expanduser().resolve() if document_root is not None else dataset_root
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        raise WorkspaceError(f"image {path} is not below the Label Studio document root {root}; pass a "
                             f"document_root that contains the dataset folder.") from None
    return url_prefix + quote(rel, safe="/")


def tasks(ws, q, url_prefix: str = LS_URL_PREFIX, document_root=None) -> list:
    """Label Studio tasks of a queue (:func:`alnb.formats.common.queue`), each with its one prediction."""
    names = ws.names
    out = []
    for row in q.to_dict("records"):
        W, H = int(row["width"]), int(row["height"])
        data = {"image": image_url(row["image"], url_prefix, ws.dataset_root, document_root),
                "alnb_stem": row["stem"], "alnb_rank": int(row["rank"]), "alnb_tier": str(row["tier"]),
                "alnb_failed": bool(row["failed"])}
        if np.isfinite(row["score"]):
            data["alnb_score"] = float(row["score"])
        task = {"data": data, "predictions": []}
        boxes = autolabel_boxes(ws, row)
        if boxes is not None:
            pred = {"model_version": row["model"], "result": regions(row["stem"], boxes, names, W, H)}
            if np.isfinite(row["score"]):
                pred["score"] = float(row["score"])
            task["predictions"].append(pred)
        out.append(task)
    return out


def export(ws, q, out: Path, *, url_prefix: str = LS_URL_PREFIX, document_root=None, **_):
    """``tasks.json`` (:func:`tasks`) + ``label_config.xml`` (:func:`labelstudio_config`) in ``out``."""
    atomic_write_json(out / "tasks.json", tasks(ws, q, url_prefix, document_root))
    atomic_write_text(out / "label_config.xml", labelstudio_config(ws.names))


# ------------------------------------------------------------------------------------------------------------ import
def pick_annotation(anns):
    """The annotation to import from a Label Studio task: a ground-truth one, else the most recently updated."""
    gt = [a for a in anns if a.get("ground_truth")]
    pool = gt or anns
    return max(enumerate(pool), key=lambda ia: (str(ia[1].get("updated_at") or ia[1].get("created_at") or ""),
                                                ia[0]))[1]


def parse(path: Path, ctx: ParseContext):
    """Parse a Label Studio *JSON* export into ``ctx`` (items, skipped tasks, problems)."""
    data = read_json(path, ctx)
    if data is None:
        return
    if isinstance(data, dict) and "images" in data and "categories" in data:
        ctx.add("", "", "not_labelstudio", "this is a COCO file, not a Label Studio export: import it with format "
                                           "'coco' (--format / --label-format coco).")
        return
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        ctx.add("", "", "not_labelstudio", "expected a list of tasks (Label Studio: Export > JSON).")
        return
    for i, task in enumerate(data):
        item = f"task {task.get('id', f'#{i + 1}')}" if isinstance(task, dict) else f"task #{i + 1}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            if isinstance(task, dict) and ("image" in task and "annotations" not in task):
                ctx.add(item, "", "json_min", "this looks like a JSON-MIN export, which drops the annotation details. "
                                              "Export with the 'JSON' format instead.")
            else:
                ctx.add(item, "", "not_labelstudio", "not a Label Studio task (no 'data' object). Use Export > JSON.")
            continue
        d = task["data"]
        ref = d.get("alnb_stem") if d.get("alnb_stem") in ctx.stems else d.get("image")
        if ref is None:
            ref = next((v for v in d.values() if isinstance(v, str)), "")
        stem = ctx.stem_of(ref)
        if stem is None:
            ctx.add(item, str(ref), "unknown_image", f"image {ref!r} is not an image of this workspace (matched by "
                                                     f"file name). Remove the task or label the right image.")
            continue
        anns = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if not anns:
            ctx.skipped.append({"stem": stem, "item": item, "note": "no submitted annotation (not labelled yet or "
                                                                    "skipped); predictions are never imported"})
            continue
        ann = pick_annotation(anns)
        aitem = f"{item}, annotation {ann.get('id', '?')}"
        W, H = ctx.size[stem]
        boxes, ok = [], True
        for r in ann.get("result") or []:
            typ = r.get("type", "")
            rid = f"{aitem}, region {r.get('id', '?')}"
            if typ in _NOT_BOX_TYPES:
                ctx.add(rid, stem, "not_a_box", f"region of type {typ!r}: alnb imports boxes with a class "
                                                f"('rectanglelabels'). Use the exported labelling config.")
                ok = False
                continue
            if typ != "rectanglelabels":
                continue  # choices, text areas, relations... carry no boxes
            v = r.get("value") or {}
            labels = v.get("rectanglelabels") or []
            if len(labels) != 1:
                ctx.add(rid, stem, "class_count", f"box has {len(labels)} class labels {labels}; give it exactly one.")
                ok = False
                continue
            if labels[0] not in ctx.name_to_id:
                ctx.add(rid, stem, "unknown_class", f"class {labels[0]!r} is not one of the workspace classes "
                                                    f"{ctx.names}. Rename it in Label Studio (use the exported "
                                                    f"label_config.xml) or relabel the box.")
                ok = False
                continue
            if abs(float(v.get("rotation") or 0.0)) > 1e-6:
                ctx.add(rid, stem, "rotated", f"box is rotated by {v.get('rotation')} degrees; alnb needs "
                                              f"axis-aligned boxes. Set the rotation back to 0.")
                ok = False
                continue
            ow, oh = r.get("original_width"), r.get("original_height")
            if ow and oh and abs(ow / oh - W / H) > 0.01 * W / H:
                ctx.add(rid, stem, "size_mismatch", f"Label Studio showed a {ow}x{oh} image but the dataset image "
                                                    f"is {W}x{H}: a different image under the same name? Check the "
                                                    f"task's image.")
                ok = False
                continue
            try:
                corners = ls_to_corners(v)
            except (KeyError, TypeError, ValueError):
                ctx.add(rid, stem, "not_a_number", "box lacks numeric x, y, width, height. Redraw it.")
                ok = False
                continue
            b = ctx.check_box(rid, stem, *corners,
                              f"x={v['x']}%, y={v['y']}%, width={v['width']}%, height={v['height']}%")
            if b is None:
                ok = False
                continue
            boxes.append([ctx.name_to_id[labels[0]], *b])
        if ok:
            note = f"annotation {ann.get('id', '?')} of {len(anns)}" if len(anns) > 1 else ""
            ctx.items.append({"stem": stem, "boxes": np.asarray(boxes, np.float64).reshape(-1, 5), "item": aitem,
                              "source": str(path), "note": note})
