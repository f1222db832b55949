"""COCO: the queue as ``instances.json`` (ground-truth style, auto-labels as annotations) + ``results.json``
(detections) for export, and a COCO ground-truth style JSON for import.  Boxes: top-left, pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alnb.labels.formats.common import ParseContext, autolabel_boxes, read_json
from alnb.core.workspace import atomic_write_json


def instances(ws, q, tag=None, model=None) -> tuple:
    """``(instances, results)``: the queue as a COCO ground-truth file (images, categories 1..n, the auto-labels as
    annotations with a ``score``) and as a COCO results list (detections)."""
    names = ws.names
    images, anns, results = [], [], []
    for row in q.to_dict("records"):
        W, H, img_id = int(row["width"]), int(row["height"]), int(row["rank"])
        im = {"id": img_id, "file_name": row["image"], "width": W, "height": H, "alnb_stem": row["stem"]}
        if np.isfinite(row["score"]):
            im["alnb_score"] = float(row["score"])
        images.append(im)
        boxes = autolabel_boxes(ws, row)
        for c, cx, cy, w, h, conf in ([] if boxes is None else boxes):
            bbox = [(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H]
            a = {"id": len(anns) + 1, "image_id": img_id, "category_id": int(c) + 1, "bbox": bbox,
                 "area": bbox[2] * bbox[3], "iscrowd": 0}
            if np.isfinite(conf):
                a["score"] = float(conf)
                results.append({"image_id": img_id, "category_id": int(c) + 1, "bbox": bbox, "score": float(conf)})
            anns.append(a)
    gt = {"info": {"description": f"alnb labelling queue ({tag or 'selection'}), auto-labels as pre-annotations",
                   "model": model or "per-image auto_model"},
          "licenses": [], "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(names)],
          "images": images, "annotations": anns}
    return gt, results


def export(ws, q, out: Path, *, tag=None, model=None, **_):
    """``instances.json`` + ``results.json`` in ``out`` (:func:`instances`)."""
    gt, res = instances(ws, q, tag, model)
    atomic_write_json(out / "instances.json", gt)
    atomic_write_json(out / "results.json", res)


# ------------------------------------------------------------------------------------------------------------ import
def _key(v):
    """An id as a dict key: JSON scalars as they are (1 and 1.0 are one id, as in COCO tools), ``true`` apart from 1,
    lists / objects (a damaged file) as their JSON text, so no id makes the parser fail."""
    if isinstance(v, bool):
        return ("bool", v)
    if v is None or isinstance(v, (int, float, str)):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse(path: Path, ctx: ParseContext):
    """Parse a COCO ground-truth style JSON (``images``, ``annotations``, ``categories``) into ``ctx``."""
    data = read_json(path, ctx)
    if data is None:
        return
    if isinstance(data, list) and data and isinstance(data[0], dict) and "data" in data[0]:
        ctx.add("", "", "not_coco", "this is a Label Studio export (a list of tasks), not COCO: import it with format "
                                    "'labelstudio' (--format / --label-format labelstudio).")
        return
    if isinstance(data, list):
        ctx.add("", "", "coco_results", "this is a COCO *results* list (detections), not labels. Import the "
                                        "ground-truth style file with 'images', 'annotations' and 'categories'.")
        return
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list) or not isinstance(data.get("annotations") or [], list):
        ctx.add("", "", "not_coco", "expected a COCO JSON object with the lists 'images', 'annotations' and "
                                    "'categories'.")
        return
    cats = {}
    for c in data["categories"]:
        if not isinstance(c, dict):
            ctx.add("categories", "", "not_coco", f"category entry {c!r} is not an object with 'id' and 'name'.")
            continue
        if _key(c.get("id")) in cats:
            ctx.add(f"category id {c.get('id')}", "", "duplicate_category_id",
                    f"two categories share id {c.get('id')} ({cats[_key(c.get('id'))]!r} and {str(c.get('name'))!r}), "
                    f"so its boxes cannot be given a class. Export the file again or give each category its own id.")
            continue
        cats[_key(c.get("id"))] = c.get("name") if isinstance(c.get("name"), str) else repr(c.get("name"))
    if ctx.problems:
        return
    images = {}
    for im in data["images"]:
        if not isinstance(im, dict):
            ctx.add("images", "", "not_coco", f"image entry {im!r} is not an object with 'id' and 'file_name'.")
            continue
        item = f"image id {im.get('id')}"
        fname = im.get("file_name", "")
        stem = ctx.stem_of(fname)
        if stem is None:
            ctx.add(item, fname, "unknown_image", f"{fname!r} is not an image of this workspace (matched by file "
                                                  f"name). Remove it from the file or check the image folder.")
            continue
        W, H = ctx.size[stem]
        cw, ch = im.get("width"), im.get("height")
        differs = any(v is not None and (not _number(v) or v != want) for v, want in ((cw, W), (ch, H)))
        if differs:
            ctx.add(item, stem, "size_mismatch", f"COCO says {cw}x{ch} pixels but the dataset image is {W}x{H}; "
                                                 f"COCO boxes are in pixels of the labelled image. Label the "
                                                 f"original images (not resized copies).")
            continue
        if _key(im.get("id")) in images:
            ctx.add(item, stem, "duplicate_id", "two images share this id. Export the file again.")
            continue
        images[_key(im.get("id"))] = {"stem": stem, "boxes": [], "ok": True, "item": item}
    unknown_cats = {}
    for a in data.get("annotations") or []:
        if not isinstance(a, dict):
            ctx.add("annotations", "", "not_coco", f"annotation entry {a!r} is not an object.")
            continue
        item = f"annotation id {a.get('id')}"
        img = images.get(_key(a.get("image_id")))
        if img is None:
            if not any(p["item"] == f"image id {a.get('image_id')}" for p in ctx.problems):
                ctx.add(item, "", "unknown_image_id", f"refers to image id {a.get('image_id')}, which is not in "
                                                      f"'images'. Export the file again.")
            continue
        stem = img["stem"]
        name = cats.get(_key(a.get("category_id")))
        if name not in ctx.name_to_id:
            unknown_cats.setdefault((_key(a.get("category_id")), name), []).append(stem)
            img["ok"] = False
            continue
        bbox = a.get("bbox")
        W, H = ctx.size[stem]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
            # a string "1234" would read as four numbers: only a list of four numbers is a COCO box
            ctx.add(item, stem, "not_a_number", f"bbox {bbox!r} is not [x, y, width, height] (four numbers, pixels). "
                                                f"Redraw the box or export the file again.")
            img["ok"] = False
            continue
        x, y, w, h = (float(v) for v in bbox)
        b = ctx.check_box(item, stem, x / W, y / H, (x + w) / W, (y + h) / H,
                          f"[x={x}, y={y}, w={w}, h={h}] px in a {W}x{H} image")
        if b is None:
            img["ok"] = False
            continue
        img["boxes"].append([ctx.name_to_id[name], *b])
    for (cid, name), stems in unknown_cats.items():
        ctx.add(f"category id {cid}", ", ".join(sorted(set(stems))[:5]), "unknown_class",
                f"category {name!r} ({len(stems)} annotation(s)) is not one of the workspace classes {ctx.names}. "
                f"Rename the category in the tool or relabel those boxes.")
    for img in images.values():
        if img["ok"]:
            ctx.items.append({"stem": img["stem"], "boxes": np.asarray(img["boxes"], np.float64).reshape(-1, 5),
                              "item": img["item"], "source": str(path), "note": ""})
