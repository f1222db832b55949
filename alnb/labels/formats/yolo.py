"""YOLO label folders or zips (any depth; CVAT's *YOLO 1.1* export included): ``<stem>.txt`` files with lines
``class cx cy w h`` (centre, normalised).  Class ids are mapped by name through ``obj.names`` / ``classes.txt`` /
``data.yaml`` when present, else taken as workspace ids; an empty file means *no objects*.  Import only (the export for
CVAT is :mod:`alnb.labels.formats.cvat`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import yaml

from alnb.core.data import LabelError, parse_label_lines
from alnb.labels.formats.common import ParseContext

_YOLO_META = {"obj.names", "classes.txt", "obj.data", "train.txt", "valid.txt", "val.txt", "test.txt"}


def _yolo_files(path: Path, ctx: ParseContext) -> dict:
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
            if rel.lower().endswith((".txt", ".names")):
                ctx.add(rel, "", "not_text", "not UTF-8 text. Export the labels again as YOLO txt.")
    return out


def parse(path: Path, ctx: ParseContext):
    """Parse a folder or ``.zip`` of YOLO ``<stem>.txt`` label files into ``ctx``."""
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
            try:
                tool_names = [str(raw[k]) for k in sorted(raw)] if isinstance(raw, dict) else \
                    [str(n) for n in raw] if isinstance(raw, list) else []
            except TypeError:  # keys of mixed types
                tool_names = []
            if isinstance(raw, dict) and sorted(map(str, raw)) != sorted(map(str, range(len(raw)))):
                ctx.add(yaml_file, "", "unknown_class_name", f"'names' ids must be 0..n-1, found {list(raw)}; the "
                                                             f"class ids of the label files cannot be mapped.")
                return
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
        if name[-4:].lower() != ".txt" or name.lower() in _YOLO_META or rel == names_file:  # a.TXT is a label file
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
