"""Label Studio: the labelling config, tasks with pre-annotations (export), a *JSON* project export (import), and
the one conversion between Label Studio's boxes (top-left, percent 0-100) and alnb's (YOLO centre, normalised 0-1),
which the export, the import and the ML backend (:mod:`alnb.apps.serve`) all use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote
from xml.etree import ElementTree as ET

import numpy as np

from alnb.labels.formats.common import ParseContext, autolabel_boxes, read_json
from alnb.evaluation.labeltimes import annotation_record
from alnb.core.workspace import WorkspaceError, atomic_write_json, atomic_write_text

#: Default Label Studio image URL prefix: Label Studio's *local files* serving.  The image path after ``?d=`` is
#: relative to ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (by default that variable when it is set, else the dataset
#: folder, see :func:`alnb.labels.labelio.export_queue`).
LS_URL_PREFIX = "/data/local-files/?d="
DOCUMENT_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"  # Label Studio's own local-files setting
LS_FROM_NAME, LS_TO_NAME = "label", "image"  # names used in the labelling config and in every result
TIER_NAME, DIFFICULTY_NAME = "alnb_tier", "alnb_difficulty"  # the backend's read-outs (labelstudio_config)
TIER_CHOICES = ("easy", "medium", "hard", "failed")  # alnb.acquisition.tiers.CATEGORIES (failed overrides the score's tier)

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
    """Normalised corners ``(x0, y0, x1, y1)`` of a Label Studio ``value`` (``x, y, width, height`` in percent),
    ``x0 <= x1`` and ``y0 <= y1``.

    A box drawn bottom-up or right-to-left can carry a negative ``width`` / ``height`` in an export: it spans
    ``x + width .. x`` (``y + height .. y``), a well-defined box, normalised here (a zero size stays zero, for the
    caller to refuse).  Raises KeyError / TypeError / ValueError when a coordinate is missing or not a number.
    """
    x, y, w, h = (float(value[k]) / 100.0 for k in ("x", "y", "width", "height"))
    return min(x, x + w), min(y, y + h), max(x, x + w), max(y, y + h)


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
    ``difficulty=True`` (the config :mod:`alnb.apps.serve` writes) adds two read-outs of the model's view of the image that
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
    labelling-queue order (:func:`alnb.labels.formats.common.queue`): images the model found nothing in first, then the
    hardest.  ``0.5 * (1 - difficulty) + (0 if failed else 0.5)``: failed images in (0, 0.5], the others in
    (0.5, 1]; within each group lower = harder.  Label Studio reads a prediction score as the model's confidence,
    which this is in spirit (low = the model is unsure).  None when the image has no difficulty score."""
    if difficulty is None or not np.isfinite(difficulty):
        return None
    return 0.5 * (1.0 - float(difficulty)) + (0.0 if failed else 0.5)


def review_task_score(place: str, position: int = 0, n: int = 1, base: float | None = None) -> float | None:
    """Label Studio's prediction ``score`` of a task while a review plan exists, made so that sorting it
    **ascending** lists the review queue first: ``place="review"`` (the plan sends the image to review; ``position``
    0-based in plan order among ``n``) in (0, 1/3), then every image the plan does not order (``place="other"``: its
    :func:`task_score` ``base`` mapped from (0, 1] onto (1/3, 2/3], so the labelling-queue order holds among them),
    then ``place="accepted"`` (the plan accepts its auto-labels) in (2/3, 1), in plan order.  None for ``other``
    without a ``base``."""
    if place in ("review", "accepted"):
        if not 0 <= position < n:
            raise ValueError(f"position {position} is not in 0..{n - 1}")
        return (0.0 if place == "review" else 2.0 / 3.0) + (position + 1.0) / (n + 1.0) / 3.0
    if place != "other":
        raise ValueError(f"place must be 'review', 'other' or 'accepted', got {place!r}")
    return None if base is None else 1.0 / 3.0 + float(base) / 3.0


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
    """Label Studio URL of a dataset image: ``url_prefix`` + its path relative to ``document_root`` (URL-quoted).

    The image's path is taken as it is below the dataset folder, symbolic links *not* resolved: Label Studio's local
    files serving joins the document root and the path the same way (an image that is a link to another disk is
    served through the link), so images that are links work with the default document root (the dataset folder)."""
    path = Path(os.path.abspath(Path(dataset_root) / rel_image))
    if document_root is None:  # the same default as alnb serve: Label Studio's own setting, else the dataset folder
        document_root = os.environ.get(DOCUMENT_ROOT_ENV) or None
    root = Path(document_root).expanduser() if document_root is not None else Path(dataset_root)
    for p, r in ((path, Path(os.path.abspath(root))), (path, root.resolve()), (path.resolve(), root.resolve())):
        try:
            return url_prefix + quote(p.relative_to(r).as_posix(), safe="/")
        except ValueError:
            continue
    raise WorkspaceError(f"image {path} is not below the Label Studio document root {root.resolve()}; pass a "
                         f"document root (--document-root / document_root=) that contains the dataset folder, the "
                         f"same folder as {DOCUMENT_ROOT_ENV} (set to {os.environ.get(DOCUMENT_ROOT_ENV)!r} here).")


def tasks(ws, q, url_prefix: str = LS_URL_PREFIX, document_root=None) -> list:
    """Label Studio tasks of a queue (:func:`alnb.labels.formats.common.queue`), each with its one prediction."""
    names = ws.names
    out = []
    for row in q.to_dict("records"):
        W, H = int(row["width"]), int(row["height"])
        data = {"image": image_url(row["image"], url_prefix, ws.dataset_root, document_root),
                "alnb_stem": row["stem"], "alnb_rank": int(row["rank"]), "alnb_tier": str(row["tier"]),
                "alnb_failed": bool(row["failed"])}
        if np.isfinite(row["score"]):
            data["alnb_score"] = float(row["score"])
        rank_score = row["score"]  # what the prediction score sorts by (descending): the difficulty ...
        if np.isfinite(row.get("priority", np.nan)):  # ... or the caller's priority (the review plan's)
            data["alnb_priority"] = rank_score = float(row["priority"])
        task = {"data": data, "predictions": []}
        boxes = autolabel_boxes(ws, row)
        if boxes is not None:
            pred = {"model_version": row["model"], "result": regions(row["stem"], boxes, names, W, H)}
            if np.isfinite(rank_score):
                pred["score"] = float(rank_score)
            task["predictions"].append(pred)
        out.append(task)
    return out


def export(ws, q, out: Path, *, url_prefix: str = LS_URL_PREFIX, document_root=None, **_):
    """``tasks.json`` (:func:`tasks`) + ``label_config.xml`` (:func:`labelstudio_config`) in ``out``."""
    atomic_write_json(out / "tasks.json", tasks(ws, q, url_prefix, document_root))
    atomic_write_text(out / "label_config.xml", labelstudio_config(ws.names))


# ------------------------------------------------------------------------------------------------------------ import
#: ``--annotation`` choices besides an annotator's name / e-mail / user id: which of several annotations of one task
ANNOTATION_CHOICES = ("latest", "first")
_BOX_TYPES = ("rectanglelabels", "labels")  # Label Studio's converter reads both as a box when it has geometry
_GEOMETRY = ("x", "y", "width", "height")
_DAMAGED = "The export is damaged or was edited: export the project again (Export > JSON)."


def _short(v, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _text(v) -> str:
    """A JSON scalar as text for ids and names ('' for None); containers are shown shortened."""
    return "" if v is None else v if isinstance(v, str) else str(v) if isinstance(v, (int, float)) else _short(v, 40)


def annotator(ann: dict) -> str:
    """Who made an annotation, as Label Studio's export says it: ``completed_by`` is a user id, or (expanded) an
    object with ``email`` / ``username`` / ``id``."""
    who = ann.get("completed_by")
    if isinstance(who, dict):
        return _text(who.get("email") or who.get("username") or who.get("id")) or "?"
    return _text(who) or "?"


def _annotator_keys(ann: dict) -> set:
    who = ann.get("completed_by")
    vals = [who.get(k) for k in ("email", "username", "id", "first_name")] if isinstance(who, dict) else [who]
    if isinstance(who, dict) and who.get("first_name") and who.get("last_name"):
        vals.append(f"{who['first_name']} {who['last_name']}")
    return {_text(v) for v in vals if v not in (None, "")}


def _when(ann: dict, *keys) -> str:
    return next((_text(ann.get(k)) for k in keys if ann.get(k)), "")


def _describe(ann: dict) -> str:
    res = ann.get("result")
    n = len(res) if isinstance(res, list) else 0
    when = _when(ann, "updated_at", "created_at")
    return (f"annotation {_text(ann.get('id')) or '?'} by {annotator(ann)}" + (f" ({when})" if when else "")
            + f": {n} region(s)" + (", ground truth" if ann.get("ground_truth") else ""))


def _same_work(anns) -> bool:
    """Every annotation holds the same regions (type + value), whatever their ids and times."""
    def key(a):
        res = a.get("result") if isinstance(a.get("result"), list) else []
        return sorted(json.dumps([r.get("type"), r.get("value")], sort_keys=True, default=str)
                      if isinstance(r, dict) else _short(r) for r in res)

    first = key(anns[0])
    return all(key(a) == first for a in anns[1:])


def choose_annotation(anns: list, choice, ctx: ParseContext, item: str, stem: str):
    """``(annotation, note)`` for a task's submitted annotations, or ``(None, note)``: a problem was added (several
    annotations that differ and no ``choice``) or the task is skipped (``choice`` names an annotator who did not
    annotate it).

    ``choice`` None: the one annotation; else the one marked *ground truth* (a reviewer's choice in Label Studio);
    else, when all agree, the latest; else a refusal listing them.  ``"latest"`` (most recently updated), ``"first"``
    (earliest created), or an annotator (user id, e-mail, username; their latest annotation)."""
    order = list(range(len(anns)))
    latest = max(order, key=lambda i: (_when(anns[i], "updated_at", "created_at"), i))
    if len(anns) == 1:
        return anns[0], ""
    of = f"of {len(anns)} annotations"
    if choice is None:
        gt = [a for a in anns if a.get("ground_truth")]
        if len(gt) == 1:
            return gt[0], f"annotation {_text(gt[0].get('id'))} by {annotator(gt[0])} (marked ground truth) {of}"
        if _same_work(anns):
            a = anns[latest]
            return a, f"annotation {_text(a.get('id'))} {of} (all {len(anns)} hold the same regions)"
        listed = "; ".join(_describe(a) for a in anns)
        names = sorted({annotator(a) for a in anns} - {"?"})
        ctx.add(item, stem, "several_annotations",
                f"{len(anns)} submitted annotations that differ ({listed}). alnb does not choose between people's "
                f"work silently: pass --annotation latest, --annotation first"
                + (f" or an annotator (--annotation {names[0]})" if names else "")
                + " (annotation= in Python), mark one as ground truth in Label Studio, or delete the extra ones.")
        return None, ""
    if choice == "latest":
        a = anns[latest]
        return a, f"annotation {_text(a.get('id'))} by {annotator(a)} {of} (--annotation latest)"
    if choice == "first":
        i = min(order, key=lambda i: (_when(anns[i], "created_at", "updated_at") or "\uffff", i))
        return anns[i], f"annotation {_text(anns[i].get('id'))} by {annotator(anns[i])} {of} (--annotation first)"
    mine = [i for i in order if str(choice) in _annotator_keys(anns[i])]
    if not mine:
        ctx.skipped.append({"stem": stem, "item": item, "note": f"no annotation by {choice} ({len(anns)} by others: "
                                                                f"{', '.join(sorted({annotator(a) for a in anns}))})"})
        return None, ""
    i = max(mine, key=lambda i: (_when(anns[i], "updated_at", "created_at"), i))
    return anns[i], f"annotation {_text(anns[i].get('id'))} by {annotator(anns[i])} {of} (--annotation {choice})"


def _region_box(r, rid: str, stem: str, ctx: ParseContext, W: int, H: int):
    """``(box or None, ok)`` for one result entry: a box ``[cls, cx, cy, w, h]``; None with ok=True for a region that
    carries no box (choices, text, relations); ok=False when a problem was added."""
    if not isinstance(r, dict):
        ctx.add(rid, stem, "malformed", f"this region is a {type(r).__name__} ({_short(r)}), not an object with "
                                        f"'type' and 'value'. {_DAMAGED}")
        return None, False
    typ = r.get("type", "")
    v = r.get("value")
    if v is None:
        v = {}
    if not isinstance(typ, str) or not isinstance(v, dict):
        ctx.add(rid, stem, "malformed", f"region type {_short(typ)} / value {_short(v)}: expected a type name and a "
                                        f"value object. {_DAMAGED}")
        return None, False
    geometry = [k for k in _GEOMETRY if k in v]
    if typ in _NOT_BOX_TYPES:
        ctx.add(rid, stem, "not_a_box", f"region of type {typ!r}: alnb imports boxes with a class "
                                        f"('rectanglelabels'). Use the exported labelling config.")
        return None, False
    if typ not in _BOX_TYPES:
        if not geometry:
            return None, True  # choices, text areas, relations... carry no boxes
        ctx.add(rid, stem, "unknown_region", f"region of type {typ!r} carries box geometry ({', '.join(geometry)}) "
                                             f"but alnb does not know that type, so it cannot tell whether it is a box "
                                             f"and of which class; it is not dropped silently. Use the exported "
                                             f"labelling config (RectangleLabels) or relabel the region.")
        return None, False
    labels = v.get("rectanglelabels") if "rectanglelabels" in v else v.get("labels")
    if not isinstance(labels, list) or len(labels) != 1:
        ctx.add(rid, stem, "class_count", f"box ({typ}) has {len(labels) if isinstance(labels, list) else 'no'} class "
                                          f"label(s) {_short(labels)}; give it exactly one.")
        return None, False
    name = labels[0]
    if not isinstance(name, str) or name not in ctx.name_to_id:
        ctx.add(rid, stem, "unknown_class", f"class {_short(name)} is not one of the workspace classes {ctx.names}. "
                                            f"Rename it in Label Studio (use the exported label_config.xml) or "
                                            f"relabel the box.")
        return None, False
    try:
        rotation = float(v.get("rotation") or 0.0)
        ow, oh = (None if r.get(k) in (None, 0) else float(r.get(k)) for k in ("original_width", "original_height"))
    except (TypeError, ValueError):
        ctx.add(rid, stem, "not_a_number", f"rotation {_short(v.get('rotation'))} or original size "
                                           f"{_short(r.get('original_width'))}x{_short(r.get('original_height'))} is "
                                           f"not a number. {_DAMAGED}")
        return None, False
    if not np.isfinite(rotation) or abs(rotation) > 1e-6:
        ctx.add(rid, stem, "rotated", f"box is rotated by {v.get('rotation')} degrees; alnb needs "
                                      f"axis-aligned boxes. Set the rotation back to 0.")
        return None, False
    if ow is not None and oh is not None and (not (ow > 0 and oh > 0) or abs(ow / oh - W / H) > 0.01 * W / H):
        ctx.add(rid, stem, "size_mismatch", f"Label Studio showed a {r.get('original_width')}x"
                                            f"{r.get('original_height')} image but the dataset image is {W}x{H} (as "
                                            f"the trainer sees it, EXIF orientation applied): a different image under "
                                            f"the same name? Check the task's image.")
        return None, False
    try:
        corners = ls_to_corners(v)
    except (KeyError, TypeError, ValueError, OverflowError):
        ctx.add(rid, stem, "not_a_number", "box lacks numeric x, y, width, height. Redraw it.")
        return None, False
    b = ctx.check_box(rid, stem, *corners, f"x={v['x']}%, y={v['y']}%, width={v['width']}%, height={v['height']}%")
    if b is None:
        return None, False
    return [ctx.name_to_id[name], *b], True


def _prediction_boxes(result, ctx: ParseContext) -> np.ndarray:
    """The boxes ``cls cx cy w h`` of a prediction's regions (what the annotator was shown), for the action counts of
    :mod:`alnb.evaluation.labeltimes`; regions that are not a box of a workspace class are left out (a prediction is never
    imported as a label)."""
    out = []
    for r in result if isinstance(result, list) else []:
        v = r.get("value") if isinstance(r, dict) else None
        labels = (v.get("rectanglelabels") or v.get("labels")) if isinstance(v, dict) else None
        if not isinstance(labels, list) or len(labels) != 1 or labels[0] not in ctx.name_to_id:
            continue
        try:
            x0, y0, x1, y1 = ls_to_corners(v)
        except (KeyError, TypeError, ValueError, OverflowError):
            continue
        out.append([ctx.name_to_id[labels[0]], (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])
    return np.asarray(out, np.float64).reshape(-1, 5)


def parse(path: Path, ctx: ParseContext):
    """Parse a Label Studio *JSON* export into ``ctx`` (items, skipped tasks, problems).

    ``ctx.annotation`` (``--annotation``) chooses among several annotations of one task (:func:`choose_annotation`);
    a malformed entry (a string where a task, an annotation or a region belongs) is a problem naming the task."""
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
    choice = getattr(ctx, "annotation", None)
    for i, task in enumerate(data):
        tid = task.get("id") if isinstance(task, dict) else None
        item = f"task {_text(tid)}" if isinstance(tid, (str, int)) and not isinstance(tid, bool) else f"task #{i + 1}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            if isinstance(task, dict) and ("image" in task and "annotations" not in task):
                ctx.add(item, "", "json_min", "this looks like a JSON-MIN export, which drops the annotation details. "
                                              "Export with the 'JSON' format instead.")
            else:
                ctx.add(item, "", "not_labelstudio", f"not a Label Studio task (no 'data' object; found "
                                                     f"{_short(task)}). Use Export > JSON.")
            continue
        d = task["data"]
        st = d.get("alnb_stem")  # set by alnb's export: the manifest stem itself
        ref = st if isinstance(st, str) and st in ctx.stems else d.get("image")
        if not isinstance(ref, str):
            ref = next((v for v in d.values() if isinstance(v, str)), "")
        stem = ref if ref == st else ctx.stem_of(ref)
        if stem is None:
            ctx.add(item, ref, "unknown_image", f"image {ref!r} is not an image of this workspace (matched by "
                                                f"file name). Remove the task or label the right image.")
            continue
        raw = task.get("annotations")
        raw = [] if raw is None else raw
        if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
            bad = raw if not isinstance(raw, list) else next(a for a in raw if not isinstance(a, dict))
            ctx.add(item, stem, "malformed", f"'annotations' holds {_short(bad)} where an annotation object belongs. "
                                             f"{_DAMAGED}")
            continue
        anns = [a for a in raw if not a.get("was_cancelled")]
        if not anns:
            ctx.skipped.append({"stem": stem, "item": item, "note": "no submitted annotation (not labelled yet or "
                                                                    "skipped); predictions are never imported"})
            continue
        ann, note = choose_annotation(anns, choice, ctx, item, stem)
        if ann is None:
            continue
        aitem = f"{item}, annotation {_text(ann.get('id')) or '?'}"
        result = ann.get("result")
        if result is None:  # not "no objects" (that is an empty list): nothing was recorded, so nothing is imported
            ctx.skipped.append({"stem": stem, "item": aitem, "note": (
                f"{aitem}: 'result' is {'null' if 'result' in ann else 'missing'}, so it records no regions and is "
                f"not 'no objects' (an empty list []); open the task in Label Studio, submit it again (with no boxes "
                f"if the image has no objects) and export again")})
            continue
        if not isinstance(result, list):
            ctx.add(aitem, stem, "malformed", f"'result' is {_short(result)}, not a list of regions. {_DAMAGED}")
            continue
        W, H = ctx.size[stem]
        boxes, ok = [], True
        for k, r in enumerate(result):
            rid = r.get("id") if isinstance(r, dict) else None
            rid = f"{aitem}, region {_text(rid)}" if isinstance(rid, (str, int)) else f"{aitem}, region #{k + 1}"
            box, fine = _region_box(r, rid, stem, ctx, W, H)
            ok &= fine
            if box is not None:
                boxes.append(box)
        if ok:
            final = np.asarray(boxes, np.float64).reshape(-1, 5)
            timing = annotation_record(task, ann, final, stem=stem, who=annotator(ann),
                                       to_boxes=lambda res: _prediction_boxes(res, ctx))
            ctx.items.append({"stem": stem, "boxes": final, "item": aitem, "source": str(path), "note": note,
                              "timing": timing})
