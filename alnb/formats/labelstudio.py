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
TIER_NAME, DIFFICULTY_NAME = "alnb_tier", "alnb_difficulty"  # the backend's read-outs (labelstudio_config)
TIER_CHOICES = ("easy", "medium", "hard", "failed")  # alnb.select.CATEGORIES (failed overrides the score's tier)

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


def region(rid: str, name: str, box, conf, width: int, height: int, from_name: str = LS_FROM_NAME,
           to_name: str = LS_TO_NAME) -> dict:
    """One ``rectanglelabels`` result: the box ``cx cy w h`` (YOLO) of class ``name``; ``score`` = its detection
    confidence (left out when NaN); ``original_width/height`` = the image size in pixels."""
    r = {"id": rid, "type": "rectanglelabels", "from_name": from_name, "to_name": to_name,
         "original_width": int(width), "original_height": int(height), "image_rotation": 0,
         "value": {**yolo_to_ls(*box), "rotation": 0, "rectanglelabels": [name]}}
    if np.isfinite(conf):
        r["score"] = float(conf)
    return r


def regions(stem: str, boxes: np.ndarray, names, width: int, height: int, from_name: str = LS_FROM_NAME,
            to_name: str = LS_TO_NAME) -> list:
    """The ``result`` list of a prediction: one :func:`region` per auto-label row ``cls cx cy w h conf``."""
    return [region(f"{stem}_{i}", names[int(c)], (cx, cy, w, h), conf, width, height, from_name, to_name)
            for i, (c, cx, cy, w, h, conf) in enumerate(boxes)]


# ------------------------------------------------------------------------------------------------------------ export
def labelstudio_config(names, from_name: str = LS_FROM_NAME, to_name: str = LS_TO_NAME, *,
                       difficulty: bool = False) -> str:
    """Label Studio labelling-config XML for rectangle boxes with the class list ``names`` (one colour each).

    Paste it into *Settings > Labeling Interface > Code*; the ``from_name``/``to_name`` match the exported tasks.
    ``difficulty=True`` (the config :mod:`alnb.serve` writes) adds two read-outs of the model's view of the image that
    its predictions fill in: the tier (``<Choices name="alnb_tier">``: easy / medium / hard / failed) and the
    MC-dropout difficulty score (``<Number name="alnb_difficulty">``, 0-1, higher = harder).  They are not labels:
    the import reads the boxes only.
    """
    view = ET.Element("View")
    ET.SubElement(view, "Image", name=to_name, value="$image", zoom="true", zoomControl="true")
    rl = ET.SubElement(view, "RectangleLabels", name=from_name, toName=to_name, strokeWidth="2")
    for i, n in enumerate(names):
        ET.SubElement(rl, "Label", value=str(n), background=_PALETTE[i % len(_PALETTE)])
    if difficulty:
        ET.SubElement(view, "Header", value="alnb: the model's view of this image (not a label)", size="6")
        ch = ET.SubElement(view, "Choices", name=TIER_NAME, toName=to_name, choice="single", showInline="true")
        for t in TIER_CHOICES:
            ET.SubElement(ch, "Choice", value=t)
        ET.SubElement(view, "Number", name=DIFFICULTY_NAME, toName=to_name, min="0", max="1", step="0.001")
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def parse_config(xml: str) -> dict:
    """What the backend needs from a project's labelling config: ``from_name`` / ``to_name`` of its (first)
    ``RectangleLabels``, ``image_key`` (the task data field of that image, ``$image`` -> ``image``), ``labels`` (its
    label values) and whether it has the tier / difficulty read-outs (``tier``, ``difficulty``).

    Raises ValueError (with what to do) for XML that does not parse or has no ``RectangleLabels`` on an ``Image``.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise ValueError(f"the labelling config is not valid XML ({e}).") from None
    rl = next(root.iter("RectangleLabels"), None)
    if rl is None or not rl.get("name") or not rl.get("toName"):
        raise ValueError("the labelling config has no <RectangleLabels name=... toName=...>: alnb predicts boxes. "
                         "Use the config `alnb serve` writes (<workspace>/serve/label_config.xml).")
    to_name = rl.get("toName")
    img = next((e for e in root.iter("Image") if e.get("name") == to_name), None)
    if img is None or not str(img.get("value", "")).startswith("$"):
        raise ValueError(f"the labelling config has no <Image name={to_name!r} value=\"$...\"> for its "
                         f"RectangleLabels.")
    def has(tag, name):
        return any(e.tag == tag and e.get("name") == name and e.get("toName") == to_name for e in root.iter())

    return {"from_name": rl.get("name"), "to_name": to_name, "image_key": img.get("value")[1:],
            "labels": [e.get("value") for e in rl.iter("Label")], "tier": has("Choices", TIER_NAME),
            "difficulty": has("Number", DIFFICULTY_NAME)}


def task_score(difficulty: float, failed: bool) -> float | None:
    """Label Studio's prediction ``score`` of a task, made so that sorting it **ascending** lists the images in the
    labelling-queue order (:func:`alnb.formats.common.queue`): images the model found nothing in first, then the
    hardest.  ``0.5 * (1 - difficulty) + (0 if failed else 0.5)``: failed images in (0, 0.5], the others in
    (0.5, 1]; within each group lower = harder.  Label Studio reads a prediction score as the model's confidence,
    which this is in spirit (low = the model is unsure).  None when the image has no difficulty score."""
    if difficulty is None or not np.isfinite(difficulty):
        return None
    return 0.5 * (1.0 - float(difficulty)) + (0.0 if failed else 0.5)


def difficulty_results(tier: str, difficulty: float, to_name: str = LS_TO_NAME, *, tier_choice: bool = True,
                       number: bool = True) -> list:
    """The tier (``choices``) and difficulty (``number``) read-outs of a prediction (see :func:`labelstudio_config`
    with ``difficulty=True``); each only when the project's config has it (``tier_choice`` / ``number``)."""
    out = []
    if tier_choice and tier:
        out.append({"id": TIER_NAME, "type": "choices", "from_name": TIER_NAME, "to_name": to_name,
                    "value": {"choices": [str(tier)]}})
    if number and difficulty is not None and np.isfinite(difficulty):
        out.append({"id": DIFFICULTY_NAME, "type": "number", "from_name": DIFFICULTY_NAME, "to_name": to_name,
                    "value": {"number": round(float(difficulty), 6)}})
    return out


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
