"""What every labelling-tool format shares: the labelling queue, auto-label files, the parse context and its problems
(:class:`ImportProblem`), the per-image diff against the workspace's labels, the all-or-nothing commit, and the
summary people read.

The format modules (:mod:`alnb.labels.formats.labelstudio`, ``cvat``, ``coco``, ``yolo``) build on this module and never on
each other; :mod:`alnb.labels.labelio` drives them through the registry in :mod:`alnb.labels.formats`.

Box conventions (each conversion lives in its format's module; inside alnb every box is YOLO ``cx cy w h``): YOLO txt
centre, normalised 0-1; COCO top-left, pixels; Label Studio top-left, percent 0-100.

Design notes: docs/design/labelling-formats.md
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd

from alnb.core.data import (  # noqa: F401  (read_autolabels re-exported: the formats' reader of auto-label files)
    EDGE_TOL, LabelError, parse_label_lines, read_autolabels, read_label_text)
from alnb.core.workspace import (FILE_MODE, TMP_PREFIX, TMP_SUFFIX, WorkspaceError, atomic_write_json, atomic_write_text,
                            has_tag, tag_set)
from alnb.core.scoretable import load_scores as _load

QUEUE_COLUMNS = ["rank", "stem", "image", "width", "height", "score", "tier", "failed", "model", "auto_file", "n_auto"]
SUMMARY_COLUMNS = ["stem", "image", "n_boxes", "action", "item", "note"]
PROBLEM_FIELDS = ["source", "item", "image", "kind", "message"]
BOX_ATOL = 1e-6  # two boxes are the same label when class and every normalised coordinate agree this closely

_LS_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")  # Label Studio prefixes uploaded file names with 8 hex + '-'


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


def problem(source, item, image, kind, message) -> dict:
    return {"source": str(source), "item": str(item), "image": str(image), "kind": kind, "message": message}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------------ the queue
def load_scores(ws) -> pd.DataFrame | None:
    """``scores.csv`` of the workspace (:func:`alnb.core.scoretable.load_scores`), or None when it does not exist yet."""
    return _load(ws) if (ws.root / "scores.csv").is_file() else None


def autolabel_boxes(ws, row) -> np.ndarray | None:
    """The auto-labels of a :func:`queue` row (``read_autolabels``), None when the image has no auto-label file."""
    return read_autolabels(row["auto_file"], len(ws.names)) if row["auto_file"] else None


def yolo_line(c, cx, cy, w, h) -> str:
    """One YOLO label line ``class cx cy w h`` (10 significant digits: a box reads back to within 1e-10)."""
    return f"{int(c)} {cx:.10g} {cy:.10g} {w:.10g} {h:.10g}"


def write_bytes_atomic(path: Path, data: bytes):
    """Write ``data`` to ``path`` through a temporary file in the same folder (a normal file mode, not mkstemp's)."""
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=path.parent)  # short: any legal name works
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; the file is a normal one
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def queue(ws, tag: str | None = "GT2", stems=None, model: str | None = None, order: str = "difficulty"
          ) -> pd.DataFrame:
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
    order : {"difficulty", "given"}
        ``difficulty`` (default): the order below; ``given``: the order of ``stems`` as passed (the review plan's
        queue, :func:`alnb.loop.reviewstep.export_review`).

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
    if order not in ("difficulty", "given"):
        raise ValueError(f"order must be 'difficulty' or 'given', got {order!r}")
    if order == "given" and stems is None:
        raise ValueError("order='given' keeps the order of stems=: pass the stems.")
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
        if order == "given":  # the merge keeps the left order; sort on the position to be sure
            sel = sel.sort_values("_order", kind="stable")
        else:
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


# ------------------------------------------------------------------------------------------------ parsing context
class ParseContext:
    """What the parsers need from the workspace (class names, stems by file name, image sizes) and what they give
    back: ``items`` (dicts ``stem, boxes`` (n, 5) float64 YOLO, ``item, source, note``), ``skipped`` (``stem, item,
    note``) and ``problems`` (:func:`problem` dicts)."""

    def __init__(self, ws, manifest, source, annotation=None):
        self.annotation = annotation  # Label Studio: which of several annotations of a task (--annotation)
        self.names = ws.names
        self.name_to_id = {n: i for i, n in enumerate(self.names)}
        self.source = str(source)
        self.stems = set(manifest["stem"])
        self.size = {s: (int(w), int(h)) for s, w, h in zip(manifest["stem"], manifest["width"], manifest["height"])}
        self.problems: list = []
        self.items: list = []  # dicts: stem, boxes (n, 5) float64, item, source, note
        self.skipped: list = []  # dicts: stem, item, note

    def add(self, item, image, kind, message, source=None):
        self.problems.append(problem(source or self.source, item, image, kind, message))

    def stem_of(self, name: str) -> str | None:
        """Manifest stem of an image name / path / URL (None if unknown).

        URLs (``/data/local-files/?d=images/a%20b.png``, ``http://...``) are URL-decoded first; plain file names
        (COCO ``file_name``, a YOLO label file's name, an ``alnb_stem``) are taken as they are first, so a name
        with a valid %-escape in it (``weld_50%AB_0021.png``) is found; the other reading is the fallback."""
        raw = str(name).replace("\\", "/")
        url = "?d=" in raw or "://" in raw or raw.startswith("/data/")
        for cand in ((unquote(raw), raw) if url else (raw, unquote(raw))):
            base = cand.split("?d=")[-1].rstrip("/").rsplit("/", 1)[-1]
            stem = Path(base).stem if base else ""
            if stem in self.stems:
                return stem
            if base in self.stems:  # a bare stem with a dot in it (alnb_stem "a.b")
                return base
            mt = _LS_UPLOAD_PREFIX.match(base)
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


def read_json(path: Path, ctx: ParseContext):
    """The parsed JSON of ``path``, or None with a problem (unreadable / not JSON) added to ``ctx``."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        ctx.add("", "", "unreadable", f"cannot read the file ({type(e).__name__}: {e}).")
    except json.JSONDecodeError as e:
        ctx.add(f"line {e.lineno}", "", "not_json", f"not valid JSON ({e.msg}). Export it again from the tool.")
    return None


def check_duplicate_boxes(ctx: ParseContext):
    """Refuse an item that holds one box twice (the same class and coordinates once written as a YOLO line): the
    trainer would keep one copy (ultralytics drops duplicate labels) while the label file counts two, so a repeat is
    never imported silently.  Adds a ``duplicate_box`` problem naming the box(es) and takes the item out."""
    keep = []
    for it in ctx.items:
        seen, twice = {}, {}
        for b in it["boxes"]:
            line = yolo_line(*b)
            key = (np.asarray([float(v) for v in line.split()], np.float32) + np.float32(0)).tobytes()
            if key in seen:
                twice[key] = twice.get(key, 1) + 1
            else:
                seen[key] = b
        if not twice:
            keep.append(it)
            continue
        boxes = "; ".join(f"{_box_text(seen[k], ctx.names)} {n} times" for k, n in twice.items())
        ctx.add(it["item"], it["stem"], "duplicate_box",
                f"the same box appears more than once: {boxes}. The trainer would keep one copy (ultralytics drops "
                f"duplicate labels), so a repeat is not a second object and alnb does not guess which was meant: "
                f"delete the duplicate region (line) in the tool, or move it if two objects were meant, and export "
                f"again.", source=it["source"])
    ctx.items = keep


# ------------------------------------------------------------------------------------- diff against the workspace
def selection_tags(tag) -> list | None:
    """``tag`` argument of :func:`alnb.labels.labelio.import_labels` as a list of tags (None = any image): ``"GT2"``,
    ``"GT2,CONTROL"``, ``["GT2", "CONTROL"]``, ``None`` / ``"any"``."""
    if tag is None or (isinstance(tag, str) and tag.strip().lower() == "any"):
        return None
    tags = [t.strip() for t in tag.split(",")] if isinstance(tag, str) else [str(t) for t in tag]
    return [t for t in tags if t]


def current_labels(ws, row) -> np.ndarray | None:
    """The labels training uses for a manifest row now (people's or the dataset's), None when it has none."""
    if row["label_source"] not in ("human", "oracle"):
        return None
    f = ws.label_source_file(row)
    if f is None or not Path(f).is_file():
        return None
    return parse_label_lines(read_label_text(f), len(ws.names), file=f).astype(np.float64)


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


def check_selection(ctx: ParseContext, ws, m: pd.DataFrame, tags, overwrite: bool):
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
        cur = current_labels(ws, {**r.to_dict(), "stem": s})
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


# ------------------------------------------------------------------------------------------------- what people read
def summary_counts(summary: pd.DataFrame) -> dict:
    """``{imported, replaced, unchanged, skipped}`` counts of an import summary (dry runs too)."""
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
        if act == "skipped" and len(rows) and not rows["note"].str.startswith("no submitted").all():
            what = "skipped"  # e.g. --annotation NAME: no annotation by NAME; the notes say why
            rows = rows.assign(stem=[f"{s} ({n})" for s, n in zip(rows["stem"], rows["note"])])
        if len(rows):
            names = ", ".join(rows["stem"].head(limit)) + (f" ... (+{len(rows) - limit})" if len(rows) > limit else "")
            lines.append(f"  {what}: {names}")
    chosen = summary[summary["note"].str.contains(" annotations", regex=False) & ~summary["action"].eq("skipped")]
    if len(chosen):  # several people annotated one task: say which work was taken, never silently
        lines.append(f"  {len(chosen)} task(s) with several annotations: " + "; ".join(
            f"{s}: {n}" for s, n in zip(chosen["stem"].head(limit), chosen["note"].head(limit)))
                     + (f" ... (+{len(chosen) - limit})" if len(chosen) > limit else ""))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- the all-or-nothing commit
NAME_MAX = 255  # bytes of one file name on the usual file systems (ext4, XFS, APFS, NTFS: 255 characters)


def history_name(stem: str, stamp: str) -> str:
    """``<stem>.<stamp>.txt``, the name of a replaced label file in ``labels/.history/``; for a stem so long that the
    name would pass :data:`NAME_MAX` bytes, the stem is shortened and a hash of it added (``<start>~<hash>``), so any
    image name that is legal works (the import record maps each stem to its file)."""
    name = f"{stem}.{stamp}.txt"
    if len(name.encode()) <= NAME_MAX:
        return name

    tag = "~" + hashlib.sha1(stem.encode()).hexdigest()[:10]
    room = NAME_MAX - len(f"{tag}.{stamp}.txt".encode())
    short = stem.encode()[:room].decode(errors="ignore")  # never half a character
    return f"{short}{tag}.{stamp}.txt"


def commit(ws, texts: dict, manifest: pd.DataFrame, record: dict, replaced_from: dict | None = None):
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
                dst = history / history_name(stem, stamp)
                k = 1
                while dst.exists():
                    k += 1
                    dst = history / history_name(stem, f"{stamp}_{k}")
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
