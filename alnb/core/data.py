"""Read and validate a YOLO-format detection dataset.

Layout accepted: a folder with a ``data.yaml`` that has ``names``, and images in any folder named ``images`` below it
(``images/``, ``images/train/``, ``train/images/`` ... nested sub-folders allowed).  The label file of
``.../images/sub/a.png`` is ``.../labels/sub/a.txt`` (ultralytics' convention; the extension in any case, ``a.TXT``).
Symbolic links are followed (an ``images/`` folder that is a link, images that are links).  Image sizes are the ones
the trainer sees: EXIF orientation applied (:func:`image_size`).

* an image **without** a label file is *unlabelled* (a POOL candidate for the real loop);
* an **empty** label file means *no objects* (a labelled background image).

:func:`load_dataset` never modifies anything in the dataset folder.  Problems are collected, not raised: each names the
file and line and says what to do; images with problems are excluded from splits and listed in ``Dataset.problems``.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

IMG_EXTS = {".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm"}
EDGE_TOL = 1e-3  # box edges may poke this far outside [0, 1] (rounding) before it counts as a problem
MIN_SIDE = 10  # images narrower/lower than this are excluded: ultralytics drops them ("image size < 10 pixels")

PROBLEM_COLUMNS = ["kind", "file", "line", "image", "message"]


class DatasetError(ValueError):
    """A dataset that cannot be used at all (missing data.yaml, no names, no images)."""


@dataclass
class Dataset:
    """A YOLO dataset as read from disk.

    Attributes
    ----------
    root : Path
        Dataset folder.
    names : list of str
        Class names, index = class id.
    images : pandas.DataFrame
        One row per image file: ``stem, image`` (path relative to root), ``label_file`` (relative, '' if none),
        ``label_state`` (labelled | empty | unlabelled), ``n_boxes``, ``width``, ``height``, ``problem`` ('' if ok).
    problems : pandas.DataFrame
        One row per problem: ``kind, file, line, image, message``.
    """

    root: Path
    names: list
    images: pd.DataFrame
    problems: pd.DataFrame
    yaml: Path | None = None  # the data yaml named explicitly (``--data DIR/data.yaml``); None: found in ``root``

    @property
    def usable(self) -> pd.DataFrame:
        """Images without problems."""
        return self.images[self.images["problem"] == ""]

    @property
    def fully_labelled(self) -> bool:
        """True when every usable image has a label file (simulation mode is possible)."""
        u = self.usable
        return len(u) > 0 and bool((u["label_state"] != "unlabelled").all())

    def labels(self, stem: str) -> np.ndarray:
        """Boxes of one image as an (n, 5) float array ``cls cx cy w h`` (normalised); empty if unlabelled."""
        row = self.images.loc[self.images["stem"] == stem]
        if row.empty:
            raise KeyError(f"no image with stem {stem!r} in {self.root}")
        lf = row.iloc[0]["label_file"]
        return read_labels(self.root / lf, len(self.names)) if lf else np.zeros((0, 5), np.float32)

    def class_counts(self, stems=None) -> pd.Series:
        """Instances per class name over ``stems`` (default: all usable labelled images)."""
        rows = self.usable if stems is None else self.images[self.images["stem"].isin(list(stems))]
        counts = np.zeros(len(self.names), int)
        for lf in rows["label_file"]:
            if lf:
                arr = read_labels(self.root / lf, len(self.names))
                counts += np.bincount(arr[:, 0].astype(int), minlength=len(self.names))
        return pd.Series(counts, index=self.names, name="instances")


class LabelError(ValueError):
    """A label file line that cannot be used; ``file`` and ``line`` say where."""

    def __init__(self, kind: str, file, line: int, message: str):
        super().__init__(f"{file}:{line}: {message}")
        self.kind, self.file, self.line, self.message = kind, str(file), line, message


def _duplicate_error(dups: list, file) -> LabelError:
    """The ``duplicate_box`` problem of a label file: ``dups`` = [(line, the earlier line it repeats), ...]."""
    line, first = dups[0]
    more = (f"; in all, line(s) {', '.join(str(i) for i, _ in dups)} repeat line(s) "
            f"{', '.join(str(j) for _, j in dups)}" if len(dups) > 1 else "")
    return LabelError("duplicate_box", file, line,
                      f"this box repeats line {first} (the same class and coordinates){more}. The trainer would keep "
                      f"one copy (ultralytics drops duplicate labels) while alnb's counts and evaluation would see "
                      f"each line, so alnb does not guess which was meant: delete the repeated line(s), or fix the "
                      f"coordinates if two objects were meant.")


def parse_label_lines(text: str, n_classes: int, file="<labels>"):
    """Parse YOLO label text into an (n, 5) float32 array; raise :class:`LabelError` at the first bad line.

    A line that repeats an earlier box exactly (as float32, what ultralytics compares) is a ``duplicate_box`` problem
    naming every repeated line: ultralytics would silently train on one copy of it."""
    rows, seen, dups = [], {}, []
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            vals = _check_label_line(line, i, n_classes, file)
        except LabelError:
            if dups:  # an earlier line was already bad: name the first problem
                raise _duplicate_error(dups, file) from None
            raise
        key = (np.asarray(vals, np.float32) + np.float32(0)).tobytes()  # + 0: -0.0 and 0.0 are one number
        if key in seen:
            dups.append((i, seen[key]))
            continue
        seen[key] = i
        rows.append(vals)
    if dups:
        raise _duplicate_error(dups, file)
    return np.asarray(rows, np.float32).reshape(-1, 5)


def _check_label_line(line: str, i: int, n_classes: int, file) -> list:
    """The five numbers of one non-empty label line, or :class:`LabelError` naming line ``i`` of ``file``."""
    parts = line.split()
    if len(parts) != 5:
        hint = (" It looks like a polygon (segmentation) label; alnb needs boxes." if len(parts) > 5 and
                (len(parts) - 1) % 2 == 0 else "")
        raise LabelError("field_count", file, i,
                         f"expected 5 fields 'class cx cy w h', found {len(parts)}.{hint} Fix or delete this line.")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise LabelError("not_a_number", file, i,
                         f"non-numeric value in {line!r}; every field must be a number. Fix this line.") from None
    if not all(np.isfinite(vals)):
        raise LabelError("not_a_number", file, i, f"non-finite value in {line!r}. Fix this line.")
    c, cx, cy, w, h = vals
    if c != int(c) or not 0 <= c < n_classes:
        raise LabelError("class_out_of_range", file, i,
                         f"class id {parts[0]} is not an integer in 0..{n_classes - 1} (data.yaml has "
                         f"{n_classes} names). Fix the id or add the class to data.yaml names.")
    if w <= 0 or h <= 0:
        raise LabelError("zero_area", file, i, f"box has zero or negative size (w={w}, h={h}). Delete or fix it.")
    if (min(cx, cy, w, h) < 0 or max(cx, cy, w, h) > 1 or cx - w / 2 < -EDGE_TOL or cy - h / 2 < -EDGE_TOL
            or cx + w / 2 > 1 + EDGE_TOL or cy + h / 2 > 1 + EDGE_TOL):
        raise LabelError("out_of_bounds", file, i,
                         f"box ({cx}, {cy}, {w}, {h}) lies outside the image; YOLO boxes are centre x, centre y, "
                         f"width, height normalised to 0..1. Clip or fix it (pixel coordinates are not allowed).")
    return vals


def read_label_text(path) -> str:
    """The text of a label file: UTF-8, a byte-order mark (Notepad, Excel) dropped, any newline style.  Raises
    ``UnicodeDecodeError`` for other encodings (validation reports it as ``not_text``)."""
    with open(path, encoding="utf-8-sig") as f:
        return f.read()


def read_labels(path, n_classes: int) -> np.ndarray:
    """Read one YOLO label file (:func:`read_label_text`, :func:`parse_label_lines`)."""
    return parse_label_lines(read_label_text(path), n_classes, file=path)


def read_names(root: Path, yml: Path | None = None) -> list:
    """Class names from ``yml`` (default ``root/data.yaml``, or the folder's only ``*.yaml``/``*.yml``; list or
    {id: name} mapping)."""
    if yml is None:
        yml = root / "data.yaml"
    if not yml.is_file():
        cands = sorted(p for p in root.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
        if len(cands) == 1:
            yml = cands[0]
        else:
            found = f" (found {len(cands)}: {', '.join(p.name for p in cands)}; pass one with --data DIR/NAME.yaml)" \
                if cands else ""
            raise DatasetError(f"{root / 'data.yaml'} not found{found}. A YOLO dataset needs a data.yaml with "
                               f"'names' (e.g. 'names: [crack, pore]').")
    try:
        data = yaml.safe_load(yml.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise DatasetError(f"{yml}{line}: not valid YAML ({getattr(e, 'problem', None) or e}). Fix the file; it "
                           f"needs e.g. 'names: [crack, pore]'.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{yml}: cannot read it ({type(e).__name__}: {e}).") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{yml}: expected a mapping with a 'names' key, found a {type(data).__name__}. Write e.g. "
                           f"'names: [crack, pore]'.")
    names = data.get("names")
    if isinstance(names, dict):
        try:
            keys = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            raise DatasetError(f"{yml}: 'names' keys must be class ids 0..n-1, found {list(names)}. Write e.g. "
                               f"'names: {{0: crack, 1: pore}}' or a list.") from None
        if sorted(keys) != list(range(len(keys))):
            raise DatasetError(f"{yml}: 'names' ids must be 0..n-1 without gaps, found {sorted(keys)}.")
        names = [keys[k] for k in sorted(keys)]
    if not names or not isinstance(names, list):
        raise DatasetError(f"{yml}: no 'names' list. Add e.g. 'names: [crack, pore]' (index = class id).")
    bad = [i for i, n in enumerate(names) if n is None or isinstance(n, (list, dict)) or not str(n).strip()]
    if bad:
        raise DatasetError(f"{yml}: class name(s) at id {bad} are empty or not plain names. Give every class a name.")
    names = [str(n).strip() for n in names]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        ids = {n: [i for i, m in enumerate(names) if m == n] for n in dup}
        raise DatasetError(f"{yml}: duplicate class name(s) {ids} (name: ids). Each class needs its own name: merge "
                           f"the ids in the label files or rename one.")
    nc = data.get("nc")
    if nc is not None and (not isinstance(nc, int) or nc != len(names)):
        raise DatasetError(f"{yml}: nc={nc!r} but 'names' has {len(names)} entries. Make them agree (or drop nc).")
    return names


def _label_path_for(rel_image: Path) -> Path:
    parts = list(rel_image.parts)
    idx = len(parts) - 1 - parts[::-1].index("images")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


#: EXIF orientations that turn the stored image by 90 degrees (5 transpose, 6 rotate 270, 7 transverse, 8 rotate 90)
EXIF_ORIENTATION_TAG, SWAPPING_ORIENTATIONS = 274, {5, 6, 7, 8}


def image_size(path) -> tuple:
    """``(width, height)`` of an image **as the trainer sees it**: the EXIF orientation applied.

    The one function for the size of an image: validation, ``manifest.csv``, every export and every import use it (via
    the manifest).  OpenCV, which ultralytics reads images with, turns an image stored 160x128 with EXIF orientation 6
    into 128x160 (so does every browser, and so Label Studio's ``original_width/height``); the stored size would put
    COCO pixel boxes on the wrong axes.  The rule is ultralytics' own (``ultralytics.data.utils.exif_size``):
    orientations 5-8 swap width and height for JPEG/MPO/PNG/AVIF; for other formats (WebP, TIFF) the image is decoded
    with OpenCV, whose handling varies by version.  Decodes the whole image, so a truncated file raises here.
    """
    # heavy, imported where used (not at module import): PIL, cv2, tqdm
    from PIL import Image

    with Image.open(path) as im:
        im.verify()  # structure check, cheap
    with Image.open(path) as im:
        im.load()  # decode: catches truncated files
        size, fmt = im.size, im.format
        try:
            tags = im.tag_v2 if fmt == "TIFF" else im.getexif()
            orientation = tags.get(EXIF_ORIENTATION_TAG)
        except Exception:  # noqa: BLE001 - unreadable EXIF: OpenCV ignores it too
            orientation = None
    if orientation not in SWAPPING_ORIENTATIONS:
        return size
    if fmt in {"JPEG", "MPO", "PNG", "AVIF"}:
        return size[1], size[0]
    import cv2

    arr = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise ValueError(f"OpenCV cannot decode this {fmt} image with EXIF orientation {orientation}; the trainer "
                         f"could not read it either. Save it again without the orientation tag (rotate the pixels)")
    return int(arr.shape[1]), int(arr.shape[0])


def dataset_folder(path) -> tuple:
    """``(folder, yaml file or None)`` of a ``--data`` argument: the dataset folder itself, or its data yaml
    (``--data path/to/data.yaml``: the folder holding the yaml is the dataset folder, the yaml gives the names)."""
    p = Path(path).expanduser()
    if p.suffix.lower() in (".yaml", ".yml") and not p.is_dir():
        if not p.is_file():
            raise DatasetError(f"{p.resolve()} does not exist. Pass the dataset folder or its data.yaml.")
        p = p.resolve()
        return p.parent, p
    return p.resolve(), None


def _walk(root: Path):
    """``os.walk`` that follows symbolic links to folders (an ``images/`` that is a link works) and never visits one
    real folder twice (no endless loop on a link that points to its own parent)."""
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        yield dirpath, dirnames, filenames


def _is_label_name(name: str) -> bool:
    """A YOLO label file name: ``<stem>.txt`` with the extension in any case (``a.TXT`` from Windows tools)."""
    return name[-4:].lower() == ".txt" and len(name) > 4


def load_dataset(root, check_images: bool = True, progress: bool = True) -> Dataset:
    """Scan and validate a YOLO dataset folder.  Never writes to it.

    Parameters
    ----------
    root : path
        Folder holding ``data.yaml`` and ``images/`` (+ ``labels/``), nested sub-folders allowed; or the data yaml
        itself (its folder is the dataset folder).  Symbolic links (an ``images/`` folder that is a link, images that
        are links) are followed.
    check_images : bool
        Decode every image to catch corrupt files and read its size (:func:`image_size`, EXIF orientation applied;
        recommended; ~1 ms per image).
    progress : bool
        Show a progress bar.
    """
    from tqdm.auto import tqdm

    root, yml = dataset_folder(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist.")
    names = read_names(root, yml)
    image_files, label_files, label_folders, beside = [], {}, [], {}
    for dirpath, dirnames, filenames in _walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if "images" in rel_dir.parts:
            image_files += [rel_dir / f for f in sorted(filenames) if Path(f).suffix.lower() in IMG_EXTS]
            # label files saved next to the images (LabelImg's default): found to be named, never read as labels
            beside.update({(rel_dir / f).as_posix()[:-4]: rel_dir / f for f in sorted(filenames) if _is_label_name(f)
                           and f.lower() != "classes.txt"})
        if "labels" in rel_dir.parts:
            for f in sorted(filenames):
                if _is_label_name(f):  # keyed by the lower-case path: labels/a.TXT is the label file of a.png
                    label_files.setdefault((rel_dir / f).as_posix()[:-4] + ".txt", []).append(rel_dir / f)
            label_folders += [rel_dir / d for d in dirnames if _is_label_name(d)]
    if not image_files:
        raise DatasetError(f"no images found under {root}: put them in a folder named 'images' "
                           f"(e.g. {root}/images/*.png) with labels in {root}/labels/*.txt.")
    folder_of = {p.as_posix()[:-4] + ".txt": p for p in label_folders}

    problems = []
    stems = pd.Series([p.stem for p in image_files])
    dup = set(stems[stems.duplicated(keep=False)])
    rows = []
    for rel in tqdm(image_files, desc="validating", disable=not progress, unit="img"):
        lab_key = _label_path_for(rel).as_posix()
        row = {"stem": rel.stem, "image": rel.as_posix(), "label_file": "", "label_state": "unlabelled",
               "n_boxes": 0, "width": 0, "height": 0, "problem": ""}

        def problem(kind, file, line, message):
            problems.append((kind, file, line, rel.stem, message))
            row["problem"] = row["problem"] or kind

        if rel.stem in dup:
            others = [p.as_posix() for p in image_files if p.stem == rel.stem and p != rel]
            problem("duplicate_stem", rel.as_posix(), 0, f"another image has the same name stem {rel.stem!r} "
                                                          f"({', '.join(others)}); stems must be unique. Rename one of "
                                                          f"them.")
        if check_images:
            try:
                row["width"], row["height"] = image_size(root / rel)
            except Exception as e:  # noqa: BLE001 - any decoder error means unreadable
                why = (f"it is a symbolic link to {os.readlink(root / rel)}, which does not exist"
                       if (root / rel).is_symlink() and not (root / rel).exists() else f"{type(e).__name__}: {e}")
                problem("unreadable_image", rel.as_posix(), 0, f"cannot read image ({why}). Re-export or remove the "
                                                               f"file.")
            else:
                if min(row["width"], row["height"]) < MIN_SIDE:
                    problem("too_small", rel.as_posix(), 0,
                            f"image is {row['width']}x{row['height']} px; images need at least {MIN_SIDE} px per side "
                            f"(smaller ones cannot be trained on). Remove it or use the full image.")
        found = label_files.get(lab_key, [])
        if lab_key in folder_of:
            problem("label_is_folder", folder_of[lab_key].as_posix(), 0,
                    "the label path of this image is a folder, not a file, so the image's labels cannot be read "
                    "(it is not treated as unlabelled). Replace the folder by the YOLO label file, or remove it if "
                    "the image is unlabelled.")
        elif len(found) > 1:
            problem("two_label_files", found[0].as_posix(), 0,
                    f"this image has {len(found)} label files that differ only in the case of the extension "
                    f"({', '.join(p.as_posix() for p in found)}); alnb cannot tell which one is meant. Keep one.")
        elif not found and rel.with_suffix("").as_posix() in beside:
            near = beside[rel.with_suffix("").as_posix()]
            problem("label_beside_image", near.as_posix(), 0,
                    f"this label file lies next to its image, but alnb (like ultralytics) reads the label of "
                    f"{rel.as_posix()} from {lab_key} (a 'labels' folder parallel to 'images'), so the image would "
                    f"count as unlabelled. Move the file to {lab_key} (LabelImg: File > Change Save Dir to the "
                    f"labels folder).")
        elif found:
            lab = found[0]
            row["label_file"] = lab.as_posix()
            try:
                arr = read_labels(root / lab, len(names))
                row["n_boxes"] = len(arr)
                row["label_state"] = "labelled" if len(arr) else "empty"
            except LabelError as e:
                problem(e.kind, lab.as_posix(), e.line, e.message)
                row["label_state"] = "labelled"
            except UnicodeDecodeError:
                problem("not_text", lab.as_posix(), 0, "label file is not UTF-8 text. Re-export it as plain YOLO txt.")
            except OSError as e:
                problem("unreadable_label", lab.as_posix(), 0, f"cannot read the label file ({type(e).__name__}: "
                                                               f"{e.strerror or e}). Check it exists and is readable.")
        if rel.stem in dup:  # manifest ids must be unique: the excluded twins are keyed by their path
            row["stem"] = rel.as_posix()
        rows.append(row)
    image_label_paths = {_label_path_for(p).as_posix() for p in image_files}
    for key, labs in label_files.items():
        for lab in labs:
            if key not in image_label_paths and lab.name.lower() != "classes.txt":
                problems.append(("orphan_label", lab.as_posix(), 0, "",
                                 "label file has no matching image (same stem, under a parallel 'images' folder). "
                                 "Add the image or remove the label file."))
    images = pd.DataFrame(rows)
    probs = pd.DataFrame(problems, columns=PROBLEM_COLUMNS)
    _refuse_labels_beside_images(root, images, probs)
    return Dataset(root=root, names=names, images=images, problems=probs, yaml=yml)


def _refuse_labels_beside_images(root: Path, images: pd.DataFrame, probs: pd.DataFrame):
    """Every label file lies next to its image (LabelImg's default save folder) and none is under ``labels/``: the
    whole dataset would read as unlabelled ("only 0 labelled usable images"), so say what the layout is and how to
    fix it.  A few such files among labels in ``labels/`` stay per-image ``label_beside_image`` problems."""
    near = probs[probs["kind"] == "label_beside_image"]
    if not len(near) or (images["label_file"] != "").any():
        return
    first = Path(near["file"].iloc[0])
    flat = all(Path(f).parent == first.parent for f in near["file"])
    target = _label_path_for(first).parent
    how = (f": mkdir -p {shlex.quote(str(root / target))} && mv {shlex.quote(str(root / first.parent))}/*.txt "
           f"{shlex.quote(str(root / target))}/" if flat else
           " (each images/<sub-folder>/<name>.txt to labels/<sub-folder>/<name>.txt)")
    raise DatasetError(
        f"{len(near)} label file(s) lie next to their images in {root} (e.g. {first.as_posix()}; LabelImg saves them "
        f"there by default) and none is in a 'labels' folder. alnb, like ultralytics, reads the label of "
        f"images/<name>.png from labels/<name>.txt (here {_label_path_for(first).as_posix()}), "
        f"so every image would count as unlabelled. Move the label files there{how}; nothing was changed.")


def validation_summary(ds: Dataset) -> str:
    """A readable multi-line summary of what :func:`load_dataset` found."""
    im = ds.images
    n_bad = int((im["problem"] != "").sum())
    states = ds.usable["label_state"].value_counts()
    lines = [
        f"Dataset {ds.root}",
        f"  classes ({len(ds.names)}): {', '.join(ds.names)}",
        f"  images: {len(im)} found, {len(im) - n_bad} usable, {n_bad} excluded for problems",
        f"  labelled: {int(states.get('labelled', 0))}, empty (no objects): {int(states.get('empty', 0))}, "
        f"unlabelled: {int(states.get('unlabelled', 0))}",
        f"  boxes: {int(ds.usable['n_boxes'].sum())}",
        "  mode: " + ("simulation (every image is labelled: POOL labels stay hidden until selected)"
                      if ds.fully_labelled else "real loop (unlabelled images form the POOL; labels arrive by import)"),
    ]
    if len(ds.problems):
        lines.append(f"  {len(ds.problems)} problem(s); nothing was modified or deleted:")
        for p in ds.problems.itertuples():
            where = f"{p.file}:{p.line}" if p.line else p.file
            lines.append(f"    [{p.kind}] {where}: {p.message}")
    else:
        lines.append("  no problems found")
    return "\n".join(lines)


def read_autolabels(path, n_classes: int) -> np.ndarray:
    """Read one auto-label file: an (n, 6) float64 array ``cls cx cy w h conf`` (conf NaN for 5-column lines).

    An empty file means the model found nothing.  Raises :class:`alnb.core.data.LabelError` naming the file and line for a
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
