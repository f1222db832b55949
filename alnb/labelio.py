"""Round trip with labelling tools: export the labelling queue with auto-labels as pre-annotations, import people's
corrected labels back into the workspace.

Export (:func:`export_queue`) writes, for a manifest selection (default: the GT2 images, hardest first):

* ``labelstudio``: ``tasks.json`` (Label Studio tasks with one ``predictions`` entry each) + ``label_config.xml``;
* ``cvat``: ``cvat_yolo1.1.zip`` in CVAT's *YOLO 1.1* layout (``obj.data``, ``obj.names``, ``obj_train_data/*.txt``,
  ``train.txt``), to upload as annotations of a CVAT task that holds the same images;
* ``coco``: ``instances.json`` (ground-truth style: images, categories, the auto-labels as annotations) and
  ``results.json`` (detections: ``image_id, category_id, bbox, score``);

and in every case ``queue.csv`` (rank, stem, image, score, tier, failed, model, number of auto boxes).

Import (:func:`import_labels`) reads a Label Studio JSON export, a COCO JSON file, or a YOLO label folder / zip (CVAT's
YOLO 1.1 export included), validates *everything* first, and only then writes ``labels/<stem>.txt`` and sets the
manifest's ``label_source`` to ``human`` for those images.  Any problem raises :class:`ImportProblem` listing every bad
item, and the workspace is left exactly as it was.

Box conventions (all conversions live here):

============  ========  ===============
format        origin    units
============  ========  ===============
YOLO txt      centre    normalised 0-1
COCO          top-left  pixels
Label Studio  top-left  percent 0-100
============  ========  ===============
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, unquote
from xml.etree import ElementTree as ET

import numpy as np
import pandas as pd
import yaml

from alnb.data import EDGE_TOL, LabelError, parse_label_lines
from alnb.workspace import FILE_MODE, WorkspaceError, atomic_write_json, atomic_write_text, has_tag, tag_set

EXPORT_FORMATS = ("labelstudio", "cvat", "coco")
IMPORT_FORMATS = ("labelstudio", "coco", "yolo")

#: Default Label Studio image URL prefix: Label Studio's *local files* serving.  The image path after ``?d=`` is
#: relative to ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (by default the dataset folder, see :func:`export_queue`).
LS_URL_PREFIX = "/data/local-files/?d="
LS_FROM_NAME, LS_TO_NAME = "label", "image"  # names used in the labelling config and in every result
CVAT_ZIP = "cvat_yolo1.1.zip"
QUEUE_COLUMNS = ["rank", "stem", "image", "width", "height", "score", "tier", "failed", "model", "auto_file", "n_auto"]
SUMMARY_COLUMNS = ["stem", "image", "n_boxes", "action", "item", "note"]
PROBLEM_FIELDS = ["source", "item", "image", "kind", "message"]

_PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
            "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075"]
_LS_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")  # Label Studio prefixes uploaded file names with 8 hex + '-'
_NOT_BOX_TYPES = {"polygonlabels", "brushlabels", "keypointlabels", "ellipselabels", "polygon", "brush", "keypoint",
                  "ellipse", "rectangle", "bitmask"}


class ImportProblem(ValueError):
    """Labels that cannot be imported; nothing was written.

    Attributes
    ----------
    problems : list of dict
        One entry per bad item with keys ``source`` (file), ``item`` (task id / annotation id / line), ``image``
        (stem or name, '' if unknown), ``kind`` (short code) and ``message`` (what is wrong and what to do).
    """

    def __init__(self, source, problems):
        self.source = str(source)
        self.problems = [dict(p) for p in problems]
        super().__init__(self._text())

    @property
    def table(self) -> pd.DataFrame:
        """The problems as a DataFrame (columns ``source, item, image, kind, message``)."""
        return pd.DataFrame(self.problems, columns=PROBLEM_FIELDS)

    @property
    def kinds(self) -> set:
        return {p["kind"] for p in self.problems}

    def _text(self, limit: int = 50) -> str:
        n = len(self.problems)
        lines = [f"{n} problem(s) importing {self.source}; nothing in the workspace was changed. Fix them in the "
                 f"labelling tool (or the file) and import again:"]
        for p in self.problems[:limit]:
            where = ", ".join(x for x in (p["item"], f"image {p['image']}" if p["image"] else "") if x)
            lines.append(f"  [{p['kind']}] {p['source']}" + (f" ({where})" if where else "") + f": {p['message']}")
        if n > limit:
            lines.append(f"  ... and {n - limit} more (see ImportProblem.table)")
        return "\n".join(lines)


def _problem(source, item, image, kind, message) -> dict:
    return {"source": str(source), "item": str(item), "image": str(image), "kind": kind, "message": message}


# ------------------------------------------------------------------------------------------------------ the queue
def load_scores(ws) -> pd.DataFrame | None:
    """``scores.csv`` of the workspace (:func:`alnb.scoretable.load_scores`), or None when it does not exist yet."""
    from alnb.scoretable import load_scores as _load

    return _load(ws) if (ws.root / "scores.csv").is_file() else None


def read_autolabels(path, n_classes: int) -> np.ndarray:
    """Read one auto-label file: an (n, 6) float64 array ``cls cx cy w h conf`` (conf NaN for 5-column lines).

    An empty file means the model found nothing.  Raises :class:`alnb.data.LabelError` naming the file and line for a
    malformed line (the box part is checked like any dataset label line).
    """
    path = Path(path)
    out = []
    for ln, raw in enumerate(path.read_text().splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        conf = np.nan
        if len(parts) == 6:
            try:
                conf = float(parts[5])
            except ValueError:
                conf = -1.0
            if not 0.0 <= conf <= 1.0:
                raise LabelError("bad_confidence", path, ln, f"confidence {parts[5]!r} is not a number in 0..1; "
                                                             f"auto-label lines are 'class cx cy w h conf'. Re-run the "
                                                             f"auto-labelling.")
            parts = parts[:5]
        try:
            parse_label_lines(" ".join(parts), n_classes, file=path)
        except LabelError as e:
            raise LabelError(e.kind, path, ln, e.message) from None
        out.append([float(p) for p in parts] + [conf])
    return np.asarray(out, np.float64).reshape(-1, 6)


def queue(ws, tag: str | None = "GT2", stems=None, model: str | None = None) -> pd.DataFrame:
    """The images to label, hardest first, with where their auto-labels are.

    Parameters
    ----------
    ws : Workspace
    tag : str or None
        Manifest tag that makes the selection (default ``GT2``); ignored when ``stems`` is given.
    stems : iterable of str, optional
        Explicit selection.
    model : str, optional
        Take the auto-labels of this model (``autolabels/<model>/``) for every image; default: the manifest's
        ``auto_model`` of each row ('' = no pre-annotations).

    Returns
    -------
    pandas.DataFrame
        Columns ``rank`` (1 = label first), ``stem, image, width, height, score, tier, failed, model, auto_file``
        ('' when the image has no auto-label file) and ``n_auto`` (boxes in it; 0 for an empty file = model found
        nothing).

    Notes
    -----
    Order: with ``scores.csv`` present, images whose scoring *failed* come first, then by ``score`` descending (higher
    = harder), images missing from ``scores.csv`` last; ties by stem.  Without ``scores.csv`` the manifest order is
    kept and ``score`` is NaN.
    """
    m = ws.manifest()
    if stems is not None:
        stems = list(dict.fromkeys(stems))
        unknown = sorted(set(stems) - set(m["stem"]))
        if unknown:
            raise WorkspaceError(f"{len(unknown)} stem(s) are not in {ws.manifest_path}, e.g. {unknown[:3]}.")
        sel = m.set_index("stem").loc[stems].reset_index()
    elif tag is None:
        sel = m[m["problem"] == ""].copy()
    else:
        sel = m[has_tag(m, tag)].copy()
        if sel.empty:
            raise WorkspaceError(f"no image in {ws.manifest_path} carries the tag {tag!r}: make the selection first "
                                 f"(notebook 03, or `alnb run`, which stops when the selection needs labels), or "
                                 f"export another tag (--tag / tag=).")
    sel = sel.reset_index(drop=True)
    sel["_order"] = np.arange(len(sel))
    scores = load_scores(ws)
    if scores is None:
        sel["score"], sel["tier"], sel["failed"] = np.nan, "", False
    else:
        sel = sel.merge(scores[["stem", "score", "tier", "failed"]], on="stem", how="left")
        sel["tier"] = sel["tier"].fillna("").astype(str).replace("nan", "")
        sel["failed"] = sel["failed"].fillna(False).astype(bool)
        known = sel["score"].notna() | sel["failed"]
        sel = (sel.assign(_known=~known, _nf=~sel["failed"], _neg=-sel["score"].fillna(-np.inf))
               .sort_values(["_known", "_nf", "_neg", "stem"], kind="stable"))
    if model is not None:
        if not (ws.root / "autolabels" / model).is_dir():
            have = sorted(p.name for p in (ws.root / "autolabels").glob("*") if p.is_dir())
            raise WorkspaceError(f"no auto-labels of model {model!r} in {ws.root / 'autolabels'} (found: "
                                 f"{have or 'none'}). Run the auto-labelling notebook (02) or pass model=None.")
        sel["model"] = model
    else:
        sel["model"] = sel["auto_model"].fillna("").astype(str)
    files, counts = [], []
    for stem, mod in zip(sel["stem"], sel["model"]):
        f = ws.root / "autolabels" / mod / f"{stem}.txt" if mod else None
        if f is not None and f.is_file():
            files.append(str(f))
            counts.append(sum(1 for line in f.read_text().splitlines() if line.strip()))
        else:
            files.append("")
            counts.append(0)
    sel["auto_file"], sel["n_auto"] = files, counts
    sel["rank"] = np.arange(1, len(sel) + 1)
    return sel[QUEUE_COLUMNS].reset_index(drop=True)


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


def _ls_url(rel_image: str, url_prefix: str, dataset_root: Path, document_root) -> str:
    path = (dataset_root / rel_image).resolve()
    root = Path(document_root).expanduser().resolve() if document_root is not None else dataset_root
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        raise WorkspaceError(f"image {path} is not below the Label Studio document root {root}; pass a "
                             f"document_root that contains the dataset folder.") from None
    return url_prefix + quote(rel, safe="/")


def _autolabel_boxes(ws, row) -> np.ndarray | None:
    return read_autolabels(row["auto_file"], len(ws.names)) if row["auto_file"] else None


def _labelstudio_tasks(ws, q, url_prefix, document_root) -> list:
    names = ws.names
    tasks = []
    for row in q.to_dict("records"):
        W, H = int(row["width"]), int(row["height"])
        data = {"image": _ls_url(row["image"], url_prefix, ws.dataset_root, document_root), "alnb_stem": row["stem"],
                "alnb_rank": int(row["rank"]), "alnb_tier": str(row["tier"]), "alnb_failed": bool(row["failed"])}
        if np.isfinite(row["score"]):
            data["alnb_score"] = float(row["score"])
        task = {"data": data, "predictions": []}
        boxes = _autolabel_boxes(ws, row)
        if boxes is not None:
            result = []
            for i, (c, cx, cy, w, h, conf) in enumerate(boxes):
                r = {"id": f"{row['stem']}_{i}", "type": "rectanglelabels", "from_name": LS_FROM_NAME,
                     "to_name": LS_TO_NAME, "original_width": W, "original_height": H, "image_rotation": 0,
                     "value": {"x": (cx - w / 2) * 100.0, "y": (cy - h / 2) * 100.0, "width": w * 100.0,
                               "height": h * 100.0, "rotation": 0, "rectanglelabels": [names[int(c)]]}}
                if np.isfinite(conf):
                    r["score"] = float(conf)
                result.append(r)
            pred = {"model_version": row["model"], "result": result}
            if np.isfinite(row["score"]):
                pred["score"] = float(row["score"])
            task["predictions"].append(pred)
        tasks.append(task)
    return tasks


def _yolo_line(c, cx, cy, w, h) -> str:
    return f"{int(c)} {cx:.10g} {cy:.10g} {w:.10g} {h:.10g}"


def _cvat_zip(ws, q, path: Path):
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
            boxes = _autolabel_boxes(ws, row)
            lines = [] if boxes is None else [_yolo_line(*b[:5]) for b in boxes]
            put(f"obj_train_data/{Path(name).stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
            train.append(f"data/obj_train_data/{name}")
        put("train.txt", "\n".join(train) + "\n")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; the zip is a normal file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _coco(ws, q, tag, model):
    names = ws.names
    images, anns, results = [], [], []
    for row in q.to_dict("records"):
        W, H, img_id = int(row["width"]), int(row["height"]), int(row["rank"])
        im = {"id": img_id, "file_name": row["image"], "width": W, "height": H, "alnb_stem": row["stem"]}
        if np.isfinite(row["score"]):
            im["alnb_score"] = float(row["score"])
        images.append(im)
        boxes = _autolabel_boxes(ws, row)
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def export_queue(ws, fmt: str, out_dir=None, tag: str | None = "GT2", model: str | None = None, stems=None,
                 url_prefix: str = LS_URL_PREFIX, document_root=None) -> Path:
    """Export a manifest selection with its auto-labels as pre-annotations for a labelling tool.

    Parameters
    ----------
    ws : Workspace
    fmt : {"labelstudio", "cvat", "coco"}
        ``labelstudio``: ``tasks.json`` + ``label_config.xml``.  Each task has ``data.image`` (the image URL),
        ``data.alnb_stem/alnb_rank/alnb_score/alnb_tier/alnb_failed`` (columns in Label Studio's Data Manager: sort
        by ``alnb_rank`` for our order) and one ``predictions`` entry (``model_version``, task-level ``score`` = our
        difficulty score from ``scores.csv`` so the Data Manager can sort by it -- higher = harder, so sort
        *descending*; Label Studio itself reads a prediction score as model confidence --, ``rectanglelabels``
        results in percent, top-left x/y, with ``original_width/height`` and a per-box ``score`` = auto-label
        confidence).  Images without auto-labels
        get no prediction; an empty auto-label file gives a prediction with no boxes.
        ``cvat``: ``cvat_yolo1.1.zip`` (``obj.data``, ``obj.names``, ``obj_train_data/<stem>.txt``, ``train.txt``).
        ``coco``: ``instances.json`` (images with ``file_name`` relative to the dataset folder, categories with
        ids 1..n, the auto-labels as annotations with a ``score``) and ``results.json`` (detections).
    out_dir : path, optional
        Default ``<workspace>/export/<fmt>``.  Files of the same name are replaced.
    tag, stems, model :
        The selection and the auto-labels, see :func:`queue` (hardest first).
    url_prefix : str
        Label Studio image URL prefix; the image path relative to ``document_root`` (URL-quoted) is appended.  The
        default ``/data/local-files/?d=`` is Label Studio's local-files serving: start Label Studio with
        ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<document_root>``
        and add a *Local files* source storage on the images folder.  For a plain web server use e.g.
        ``http://localhost:8081/``.
    document_root : path, optional
        Folder the image paths are relative to (default: the dataset folder).

    Returns
    -------
    Path
        The output folder (it also holds ``queue.csv``: the order and where each image's pre-annotations came from).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {EXPORT_FORMATS}.")
    q = queue(ws, tag=tag, stems=stems, model=model)
    out = Path(out_dir) if out_dir is not None else ws.root / "export" / fmt
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "labelstudio":
        atomic_write_json(out / "tasks.json", _labelstudio_tasks(ws, q, url_prefix, document_root))
        atomic_write_text(out / "label_config.xml", labelstudio_config(ws.names))
    elif fmt == "cvat":
        _cvat_zip(ws, q, out / CVAT_ZIP)
    else:
        gt, res = _coco(ws, q, tag, model)
        atomic_write_json(out / "instances.json", gt)
        atomic_write_json(out / "results.json", res)
    atomic_write_text(out / "queue.csv", q.to_csv(index=False))
    return out


# ------------------------------------------------------------------------------------------------------------ import
class _Ctx:
    """What the parsers need from the workspace: class names, stems by file name, image sizes."""

    def __init__(self, ws, manifest, source):
        self.names = ws.names
        self.name_to_id = {n: i for i, n in enumerate(self.names)}
        self.source = str(source)
        self.stems = set(manifest["stem"])
        self.size = {s: (int(w), int(h)) for s, w, h in zip(manifest["stem"], manifest["width"], manifest["height"])}
        self.problems: list = []
        self.items: list = []  # dicts: stem, boxes (n, 5) float64, item, source, note
        self.skipped: list = []  # dicts: stem, item, note

    def add(self, item, image, kind, message, source=None):
        self.problems.append(_problem(source or self.source, item, image, kind, message))

    def stem_of(self, name: str) -> str | None:
        """Manifest stem of an image name / path / URL (None if unknown)."""
        name = unquote(str(name)).replace("\\", "/").split("?d=")[-1].rstrip("/").rsplit("/", 1)[-1]
        stem = Path(name).stem
        if stem in self.stems:
            return stem
        mt = _LS_UPLOAD_PREFIX.match(name)
        if mt and Path(mt.group(1)).stem in self.stems:
            return Path(mt.group(1)).stem
        return None

    def check_box(self, item, stem, x0, y0, x1, y1, show) -> np.ndarray | None:
        """Validate a box given by normalised corners; return ``cx cy w h`` clipped to the image, or None."""
        vals = np.array([x0, y0, x1, y1], np.float64)
        if not np.all(np.isfinite(vals)):
            self.add(item, stem, "not_a_number", f"box {show} has a non-numeric coordinate. Redraw it.")
            return None
        if x1 <= x0 or y1 <= y0:
            self.add(item, stem, "zero_area", f"box {show} has zero or negative width/height. Delete or redraw it.")
            return None
        if x0 < -EDGE_TOL or y0 < -EDGE_TOL or x1 > 1 + EDGE_TOL or y1 > 1 + EDGE_TOL:
            self.add(item, stem, "out_of_bounds", f"box {show} lies outside the image. Move it inside the image "
                                                  f"(or check the image size / coordinate units).")
            return None
        x0, y0, x1, y1 = np.clip(vals, 0.0, 1.0)  # within the rounding tolerance: clip onto the image
        if x1 <= x0 or y1 <= y0:
            self.add(item, stem, "out_of_bounds", f"box {show} lies on or beyond the image border. Delete it.")
            return None
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])


def _read_json(path: Path, ctx: _Ctx):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        ctx.add("", "", "unreadable", f"cannot read the file ({type(e).__name__}: {e}).")
    except json.JSONDecodeError as e:
        ctx.add(f"line {e.lineno}", "", "not_json", f"not valid JSON ({e.msg}). Export it again from the tool.")
    return None


def _pick_annotation(anns):
    """The annotation to import from a Label Studio task: a ground-truth one, else the most recently updated."""
    gt = [a for a in anns if a.get("ground_truth")]
    pool = gt or anns
    return max(enumerate(pool), key=lambda ia: (str(ia[1].get("updated_at") or ia[1].get("created_at") or ""),
                                                ia[0]))[1]


def _parse_labelstudio(path: Path, ctx: _Ctx):
    data = _read_json(path, ctx)
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
        ann = _pick_annotation(anns)
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
                x, y, w, h = (float(v[k]) / 100.0 for k in ("x", "y", "width", "height"))
            except (KeyError, TypeError, ValueError):
                ctx.add(rid, stem, "not_a_number", "box lacks numeric x, y, width, height. Redraw it.")
                ok = False
                continue
            b = ctx.check_box(rid, stem, x, y, x + w, y + h,
                              f"x={v['x']}%, y={v['y']}%, width={v['width']}%, height={v['height']}%")
            if b is None:
                ok = False
                continue
            boxes.append([ctx.name_to_id[labels[0]], *b])
        if ok:
            note = f"annotation {ann.get('id', '?')} of {len(anns)}" if len(anns) > 1 else ""
            ctx.items.append({"stem": stem, "boxes": np.asarray(boxes, np.float64).reshape(-1, 5), "item": aitem,
                              "source": str(path), "note": note})


def _parse_coco(path: Path, ctx: _Ctx):
    data = _read_json(path, ctx)
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
            or not isinstance(data.get("categories"), list):
        ctx.add("", "", "not_coco", "expected a COCO JSON object with 'images', 'annotations' and 'categories'.")
        return
    cats = {}
    for c in data["categories"]:
        if not isinstance(c, dict):
            ctx.add("categories", "", "not_coco", f"category entry {c!r} is not an object with 'id' and 'name'.")
            continue
        if c.get("id") in cats:
            ctx.add(f"category id {c.get('id')}", "", "duplicate_category_id",
                    f"two categories share id {c.get('id')} ({cats[c.get('id')]!r} and {str(c.get('name'))!r}), so "
                    f"its boxes cannot be given a class. Export the file again or give each category its own id.")
            continue
        cats[c.get("id")] = str(c.get("name"))
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
        try:
            differs = (cw is not None and int(cw) != W) or (ch is not None and int(ch) != H)
        except (TypeError, ValueError):
            differs = True
        if differs:
            ctx.add(item, stem, "size_mismatch", f"COCO says {cw}x{ch} pixels but the dataset image is {W}x{H}; "
                                                 f"COCO boxes are in pixels of the labelled image. Label the "
                                                 f"original images (not resized copies).")
            continue
        if im.get("id") in images:
            ctx.add(item, stem, "duplicate_id", "two images share this id. Export the file again.")
            continue
        images[im.get("id")] = {"stem": stem, "boxes": [], "ok": True, "item": item}
    unknown_cats = {}
    for a in data.get("annotations") or []:
        if not isinstance(a, dict):
            ctx.add("annotations", "", "not_coco", f"annotation entry {a!r} is not an object.")
            continue
        item = f"annotation id {a.get('id')}"
        img = images.get(a.get("image_id"))
        if img is None:
            if not any(p["item"] == f"image id {a.get('image_id')}" for p in ctx.problems):
                ctx.add(item, "", "unknown_image_id", f"refers to image id {a.get('image_id')}, which is not in "
                                                      f"'images'. Export the file again.")
            continue
        stem = img["stem"]
        name = cats.get(a.get("category_id"))
        if name not in ctx.name_to_id:
            unknown_cats.setdefault((a.get("category_id"), name), []).append(stem)
            img["ok"] = False
            continue
        bbox = a.get("bbox")
        W, H = ctx.size[stem]
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            ctx.add(item, stem, "not_a_number", f"bbox {bbox!r} is not [x, y, width, height]. Redraw the box.")
            img["ok"] = False
            continue
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


_YOLO_META = {"obj.names", "classes.txt", "obj.data", "train.txt", "valid.txt", "val.txt", "test.txt"}


def _yolo_files(path: Path, ctx: _Ctx) -> dict:
    """{relative posix path: text} of a YOLO folder or zip (hidden files and __MACOSX skipped)."""
    files = {}
    try:
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        files[info.filename] = zf.read(info)
        elif path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file():
                    files[p.relative_to(path).as_posix()] = p.read_bytes()
        else:
            hint = (" This is a JSON file: a Label Studio export needs format 'labelstudio' (--label-format / "
                    "--format labelstudio), a COCO file 'coco'." if path.suffix.lower() == ".json" else "")
            ctx.add("", "", "not_yolo", "expected a folder of YOLO .txt label files or a .zip of one (CVAT: Export "
                                        "annotations > YOLO 1.1)." + hint)
    except (OSError, zipfile.BadZipFile) as e:
        ctx.add("", "", "unreadable", f"cannot read ({type(e).__name__}: {e}).")
    out = {}
    for rel, raw in files.items():
        parts = rel.split("/")
        if "__MACOSX" in parts or any(x.startswith(".") for x in parts):
            continue
        try:
            out[rel] = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            if rel.endswith(".txt") or rel.endswith(".names"):
                ctx.add(rel, "", "not_text", "not UTF-8 text. Export the labels again as YOLO txt.")
    return out


def _parse_yolo(path: Path, ctx: _Ctx):
    files = _yolo_files(path, ctx)
    if ctx.problems:
        return
    # class names of the tool, if given, map its ids to ours by name
    names_file = min((r for r in files if r.rsplit("/", 1)[-1] in ("obj.names", "classes.txt")),
                     key=lambda r: (r.count("/"), r), default=None)
    yaml_file = min((r for r in files if r.rsplit("/", 1)[-1] in ("data.yaml", "data.yml")),
                    key=lambda r: (r.count("/"), r), default=None)
    id_map = None
    if names_file is not None or yaml_file is not None:
        if names_file is not None:
            tool_names = [n.strip() for n in files[names_file].splitlines() if n.strip()]
            where = names_file
        else:
            try:
                raw = (yaml.safe_load(files[yaml_file]) or {}).get("names")
            except (yaml.YAMLError, AttributeError):
                raw = None
            tool_names = [str(raw[k]) for k in sorted(raw)] if isinstance(raw, dict) else \
                [str(n) for n in raw] if isinstance(raw, list) else []
            where = yaml_file
        id_map = {}
        for i, n in enumerate(tool_names):
            if n in ctx.name_to_id:
                id_map[i] = ctx.name_to_id[n]
            else:
                id_map[i] = None
                ctx.add(f"{where} line {i + 1}", "", "unknown_class_name",
                        f"class {n!r} is not one of the workspace classes {ctx.names}; boxes with id {i} cannot be "
                        f"imported. Rename the label in the tool (keep the workspace names).")
    seen = {}
    for rel in sorted(files):
        name = rel.rsplit("/", 1)[-1]
        if not name.endswith(".txt") or name in _YOLO_META or rel == names_file:
            continue
        stem = ctx.stem_of(name)
        src = f"{path}/{rel}" if path.is_dir() else f"{path}:{rel}"
        if stem is None:
            ctx.add(rel, Path(name).stem, "unknown_image", f"{name} matches no image of this workspace (by stem). "
                                                           f"Remove the file or rename it to the image's name.",
                    source=src)
            continue
        if stem in seen:
            ctx.add(rel, stem, "duplicate_image", f"a second label file for {stem} (first: {seen[stem]}). Keep one.",
                    source=src)
            continue
        seen[stem] = rel
        boxes, ok = [], True
        for ln, raw in enumerate(files[rel].splitlines(), start=1):
            parts = raw.split()
            if not parts:
                continue
            item = f"{rel} line {ln}"
            if len(parts) == 6:
                ctx.add(item, stem, "has_confidence", "6 fields: this looks like predictions with a confidence "
                                                      "column (auto-labels), not people's labels 'class cx cy w h'.",
                        source=src)
                ok = False
                continue
            n_ids = len(id_map) if id_map is not None else len(ctx.names)
            try:
                parse_label_lines(raw, n_ids, file=src)  # field count, numbers, class id range, bounds
            except LabelError as e:
                msg = e.message
                if e.kind == "class_out_of_range":
                    e.kind = "unknown_class"
                    msg = (f"class id {parts[0]} is not in 0..{n_ids - 1} of {names_file or yaml_file}." if id_map
                           is not None else f"class id {parts[0]} is not in 0..{n_ids - 1} (workspace classes "
                           f"{ctx.names}). Fix the id, or add obj.names/classes.txt to map ids by name.")
                ctx.add(item, stem, e.kind, msg, source=src)
                ok = False
                continue
            c, cx, cy, w, h = (float(p) for p in parts)
            cid = id_map[int(c)] if id_map is not None else int(c)
            if cid is None:  # a class name the workspace does not know: reported once above
                ok = False
                continue
            b = ctx.check_box(item, stem, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2,
                              f"(cx={parts[1]}, cy={parts[2]}, w={parts[3]}, h={parts[4]}) normalised")
            if b is None:
                ok = False
                continue
            boxes.append([cid, *b])
        if ok:
            ctx.items.append({"stem": stem, "boxes": np.asarray(boxes, np.float64).reshape(-1, 5), "item": rel,
                              "source": src, "note": ""})
    if not seen and not ctx.problems:
        ctx.add("", "", "no_labels", "no YOLO .txt label files found. Point at the labels folder or the CVAT zip.")


_PARSERS = {"labelstudio": _parse_labelstudio, "coco": _parse_coco, "yolo": _parse_yolo}


def selection_tags(tag) -> list | None:
    """``tag`` argument of :func:`import_labels` as a list of tags (None = any image): ``"GT2"``,
    ``"GT2,CONTROL"``, ``["GT2", "CONTROL"]``, ``None`` / ``"any"``."""
    if tag is None or (isinstance(tag, str) and tag.strip().lower() == "any"):
        return None
    tags = [t.strip() for t in tag.split(",")] if isinstance(tag, str) else [str(t) for t in tag]
    return [t for t in tags if t]


BOX_ATOL = 1e-6  # two boxes are the same label when class and every normalised coordinate agree this closely


def _current_labels(ws, row) -> np.ndarray | None:
    """The labels training uses for a manifest row now (people's or the dataset's), None when it has none."""
    if row["label_source"] not in ("human", "oracle"):
        return None
    f = ws.label_source_file(row)
    if f is None or not Path(f).is_file():
        return None
    return parse_label_lines(Path(f).read_text(), len(ws.names), file=f).astype(np.float64)


def _box_text(b, names) -> str:
    return f"{names[int(b[0])]} (cx={b[1]:.4f}, cy={b[2]:.4f}, w={b[3]:.4f}, h={b[4]:.4f})"


def label_diff(old: np.ndarray, new: np.ndarray, names) -> tuple:
    """``(removed, added)``: boxes of ``old`` with no equal box in ``new`` and vice versa (class + coordinates)."""
    left = list(range(len(new)))
    removed = []
    for b in old:
        hit = next((j for j in left if int(new[j][0]) == int(b[0]) and np.allclose(new[j][1:], b[1:], atol=BOX_ATOL)),
                   None)
        if hit is None:
            removed.append(b)
        else:
            left.remove(hit)
    return [_box_text(b, names) for b in removed], [_box_text(new[j], names) for j in left]


def _check_selection(ctx: _Ctx, ws, m: pd.DataFrame, tags, overwrite: bool):
    """Which images are imported, and how: sets ``action`` of every item (imported | replaced | unchanged) or adds
    a problem (duplicate, excluded, outside the selection, labels people gave that the import would change)."""
    rows = m.set_index("stem")
    first = {}
    hint = ("--overwrite (alnb import-labels) / overwrite=True; the old file is kept in labels/.history/")
    for it in ctx.items:
        s = it["stem"]
        if s in first:
            ctx.add(it["item"], s, "duplicate_image", f"{s} appears twice in the import (also {first[s]}). Keep one "
                                                      f"task/entry per image.", source=it["source"])
            continue
        first[s] = it["item"]
        r = rows.loc[s]
        if r["problem"]:
            ctx.add(it["item"], s, "excluded_image", f"{s} is excluded from the study ({r['problem']}); fix the "
                                                     f"dataset problem first.", source=it["source"])
            continue
        cur = _current_labels(ws, {**r.to_dict(), "stem": s})
        if cur is not None:
            removed, added = label_diff(cur, it["boxes"], ctx.names)
            if not removed and not added:
                it["action"] = "unchanged"  # same labels as the workspace already uses: nothing to do
                continue
        if tags is not None and not (set(tags) & tag_set(r["tags"])):
            ctx.add(it["item"], s, "not_in_selection", f"{s} is not in the selection {' / '.join(map(repr, tags))} (its tags: "
                                                       f"{r['tags']}). Remove it from the import, or import with "
                                                       f"--tag any (tag=None) to accept any image of the workspace.",
                    source=it["source"])
        elif cur is not None and not overwrite:
            who = "people" if r["label_source"] == "human" else "the dataset's label file"
            diff = "; ".join(x for x in (f"removed {', '.join(removed)}" if removed else "",
                                         f"added {', '.join(added)}" if added else "") if x)
            ctx.add(it["item"], s, "changed_human",
                    f"{s} already has labels from {who} ({len(cur)} box(es), tags {r['tags']}) and this import "
                    f"changes them ({len(it['boxes'])} box(es)): {diff}. They are kept. To replace them pass {hint}.",
                    source=it["source"])
        else:
            it["action"] = "replaced" if cur is not None else "imported"


def summary_counts(summary: pd.DataFrame) -> dict:
    """``{imported, replaced, unchanged, skipped}`` counts of an :func:`import_labels` summary (dry runs too)."""
    acts = summary["action"].str.replace("would be ", "", regex=False)
    return {k: int((acts == k).sum()) for k in ("imported", "replaced", "unchanged", "skipped")}


def describe_import(summary: pd.DataFrame, source, dry_run: bool = False, limit: int = 10) -> str:
    """A few lines for people: honest counts, then the skipped and replaced images by name."""
    c = summary_counts(summary)
    verb = "would import" if dry_run else "imported"
    lines = [f"{verb} labels from {source}: {c['imported']} new, {c['replaced']} replaced, {c['unchanged']} "
             f"unchanged, {c['skipped']} skipped"]
    for act, what in (("skipped", "skipped (no submitted annotation)"), ("replaced", "replaced (old files in "
                                                                                    "labels/.history/)")):
        rows = summary[summary["action"].str.endswith(act)]
        if len(rows):
            names = ", ".join(rows["stem"].head(limit)) + (f" ... (+{len(rows) - limit})" if len(rows) > limit else "")
            lines.append(f"  {what}: {names}")
    return "\n".join(lines)


def import_labels(ws, source, fmt: str, tag="GT2", overwrite: bool = False, dry_run: bool = False) -> pd.DataFrame:
    """Import people's labels into ``<workspace>/labels/<stem>.txt`` and mark those images ``label_source=human``.

    Parameters
    ----------
    ws : Workspace
    source : path
        ``labelstudio``: a Label Studio export in the *JSON* format (tasks with ``annotations``; the submitted,
        non-cancelled annotation is used: a ground-truth one if marked, else the most recently updated; predictions
        are never imported; tasks without an annotation are skipped and listed).  Images are matched by
        ``data.alnb_stem`` (set by :func:`export_queue`) or by the image file name in ``data.image``.
        ``coco``: a COCO ground-truth style JSON (``images``, ``annotations``, ``categories``); categories matched by
        name, images by file name, sizes must equal the dataset's; an image listed without annotations is imported
        as *no objects*.
        ``yolo``: a folder or ``.zip`` of ``<stem>.txt`` files (any depth, e.g. CVAT's YOLO 1.1 export); class ids are
        mapped by name through ``obj.names`` / ``classes.txt`` / ``data.yaml`` when present, else taken as workspace
        ids; an empty file means *no objects*.
    fmt : {"labelstudio", "coco", "yolo"}
    tag : str, list of str, or None
        Only images carrying one of these tags may get new labels (default ``GT2``; ``"GT2,CONTROL"`` or a list for
        several; None or ``"any"`` accepts any image of the workspace).  Images whose labels equal what the workspace
        already uses count as *unchanged* wherever they are, so one whole-project export can be imported again and
        again (for GT2, then for Control).
    overwrite : bool
        Replace labels that differ from the ones the workspace already has (people's, ``label_source=human``, which
        includes VAL1/GT1 images labelled in the dataset, or dataset labels revealed for training).  Default: refuse,
        with a per-image diff.  Replaced files are kept in ``labels/.history/``.
    dry_run : bool
        Validate and return the summary without writing anything.

    Returns
    -------
    pandas.DataFrame
        One row per image: ``stem, image, n_boxes, action`` (imported | replaced | unchanged | skipped, or
        "would be ..." for a dry run), ``item`` (where in the source), ``note``.  :func:`summary_counts` counts them.

    Raises
    ------
    ImportProblem
        Listing every problem (unknown class, box out of the image, image not in the selection, labels people gave
        that would change, malformed file ...).  Nothing in the workspace is changed.

    Notes
    -----
    All-or-nothing: everything is validated first, label files are staged in a temporary folder inside the
    workspace, moved into ``labels/`` (replaced files go to ``labels/.history/<stem>.<time>.txt``) and only then the
    manifest is written; on any error the moved files are restored.  A record of each import that changed something is
    written to ``imports/<time>_<fmt>.json``; an import that changes nothing (all unchanged / skipped) writes nothing.
    Holds the workspace lock (:mod:`alnb.lock`) unless ``dry_run``.
    """
    if fmt not in IMPORT_FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; choose one of {IMPORT_FORMATS}.")
    if dry_run:
        return _import_labels(ws, source, fmt, tag, overwrite, dry_run)
    from alnb.lock import workspace_lock

    with workspace_lock(ws.root, "import-labels"):
        return _import_labels(ws, source, fmt, tag, overwrite, dry_run)


def _import_labels(ws, source, fmt, tag, overwrite, dry_run) -> pd.DataFrame:
    tags = selection_tags(tag)
    source = Path(source).expanduser()
    m = ws.manifest()
    ctx = _Ctx(ws, m, source)
    if not source.exists():
        raise ImportProblem(source, [_problem(source, "", "", "missing", "file or folder does not exist.")])
    _PARSERS[fmt](source, ctx)
    _check_selection(ctx, ws, m, tags, overwrite)
    if not ctx.problems and not ctx.items:
        ctx.add("", "", "nothing_to_import", "no labelled image found (all tasks unlabelled or skipped?). Submit "
                                             "annotations in the tool and export again.")
    if ctx.problems:
        raise ImportProblem(source, ctx.problems)

    # final check: what will be written must read back through alnb.data like any dataset label file
    texts = {}
    for it in ctx.items:
        if it["action"] == "unchanged":
            continue
        lines = [_yolo_line(*b) for b in it["boxes"]]
        texts[it["stem"]] = "\n".join(lines) + ("\n" if lines else "")
        parse_label_lines(texts[it["stem"]], len(ws.names), file=f"labels/{it['stem']}.txt")

    image_of = dict(zip(m["stem"], m["image"]))
    prefix = "would be " if dry_run else ""
    rows = [{"stem": it["stem"], "image": image_of[it["stem"]], "n_boxes": len(it["boxes"]),
             "action": prefix + it["action"], "item": it["item"], "note": it["note"]} for it in ctx.items]
    done = {it["stem"] for it in ctx.items}
    rows += [{"stem": s["stem"], "image": image_of[s["stem"]], "n_boxes": 0, "action": "skipped", "item": s["item"],
              "note": s["note"]} for s in ctx.skipped if s["stem"] not in done]
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if dry_run or not texts:
        return summary

    new = m.copy()
    new.loc[new["stem"].isin(list(texts)), "label_source"] = "human"
    record = {"time": _now(), "format": fmt, "source": str(source.resolve()), "tag": tags, "overwrite": overwrite,
              "counts": summary_counts(summary), "images": summary.to_dict("records")}
    replaced = {it["stem"]: ws.label_source_file(m.set_index("stem").loc[it["stem"]].to_dict() | {"stem": it["stem"]})
                for it in ctx.items if it["action"] == "replaced"}
    _commit(ws, texts, new, record, replaced)
    ws.sync_view(new)
    return summary


def _commit(ws, texts: dict, manifest: pd.DataFrame, record: dict, replaced_from: dict | None = None):
    """Stage, move into ``labels/``, write the import record and the manifest; undo everything on any error.

    ``replaced_from``: {stem: the label file in use before} for replaced images; a copy of each goes to
    ``labels/.history/<stem>.<time>.txt`` (people's earlier work is never lost) and the record lists it.
    """
    labels = ws.root / "labels"
    history = labels / ".history"
    created = [d for d in (labels, history, ws.root / "imports") if not d.exists()]
    stage = Path(tempfile.mkdtemp(prefix=".import-", dir=ws.root))
    old = stage / "_replaced"
    old.mkdir()
    moved, replaced, rec_file, kept = [], [], None, {}
    manifest_before = ws.manifest_path.read_bytes()
    try:
        for stem, text in texts.items():
            (stage / f"{stem}.txt").write_text(text)
        labels.mkdir(exist_ok=True)
        stamp = record["time"].replace(":", "").replace("-", "")
        for stem, prev in (replaced_from or {}).items():
            if prev is not None and Path(prev).is_file():
                history.mkdir(exist_ok=True)
                dst = history / f"{stem}.{stamp}.txt"
                k = 1
                while dst.exists():
                    k += 1
                    dst = history / f"{stem}.{stamp}_{k}.txt"
                atomic_write_text(dst, Path(prev).read_text())
                kept[stem] = str(dst.relative_to(ws.root))
        record["history"] = kept
        for stem in texts:
            dst = labels / f"{stem}.txt"
            if dst.exists():
                os.replace(dst, old / dst.name)
                replaced.append(dst)
            os.replace(stage / dst.name, dst)
            moved.append(dst)
        rec_file = ws.root / "imports" / f"{stamp}_{record['format']}.json"
        k = 1
        while rec_file.exists():
            k += 1
            rec_file = ws.root / "imports" / f"{stamp}_{record['format']}_{k}.json"
        atomic_write_json(rec_file, record)
        ws.write_manifest(manifest)
    except BaseException:
        for dst in moved:
            dst.unlink(missing_ok=True)
        for dst in replaced:
            os.replace(old / dst.name, dst)
        if rec_file is not None:
            rec_file.unlink(missing_ok=True)
        if ws.manifest_path.read_bytes() != manifest_before:
            atomic_write_text(ws.manifest_path, manifest_before.decode())
        for f in kept.values():
            (ws.root / f).unlink(missing_ok=True)
        for d in reversed(created):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
