"""The experiment workspace: one folder that holds everything a study produces.

:class:`Workspace` reads and writes ``runs/<experiment>/``: ``workspace.json`` (dataset folder, class names, mode,
split settings), ``manifest.csv`` (one row per dataset image, :data:`MANIFEST_COLUMNS`), ``view/`` (symlinks to the
dataset images, and the labels *visible to training*), ``lists/``, ``data/`` (ultralytics data yaml per training
run), ``labels/`` (people's labels), ``autolabels/<MODEL>/``, ``runs/<NAME>/`` (training runs), ``metrics/*.json``,
``figures/``, ``scores.csv``, ``report.md``.  Nothing under the dataset folder is ever written.

Manifest: ``tags`` is a ';'-joined set of VAL1, GT1, POOL, GT2, CONTROL, EXCLUDED; ``label_source`` (human | oracle |
auto | none | accepted) says where the labels *training may use* come from (``accepted``: the model's labels accepted
by a review plan, never used for training).

Design notes: docs/design/workspace.md
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from alnb.core.data import Dataset, dataset_folder, load_dataset, read_label_text, read_labels

MANIFEST_COLUMNS = ["stem", "image", "label_file", "label_state", "n_boxes", "width", "height", "tags",
                    "label_source", "auto_model", "problem"]
BASE_TAGS = ("VAL1", "GT1", "POOL")
KNOWN_TAGS = ("VAL1", "GT1", "POOL", "GT2", "CONTROL", "EXCLUDED")  # + GT<k>, CONTROL<k> of rounds k >= 3
TRAINABLE_SOURCES = ("human", "oracle")
LABEL_SOURCES = ("human", "oracle", "auto", "none", "accepted")  # accepted: machine labels kept without a look
LABEL_STATES = ("labelled", "empty", "unlabelled")
CONFIG_KEYS = ("dataset", "names", "mode")  # what workspace.json must hold


class WorkspaceError(RuntimeError):
    """Misuse of a workspace (missing manifest, overwrite without the flag, ...)."""


class WaitingForLabels(WorkspaceError):
    """A selection (GT2 / CONTROL) still has images without labels: people have to label them first.

    ``tag``, ``n``, ``waiting`` (stems), ``queue`` (the exported labelling queue folder, or None) say what and where.
    The CLI turns it into a "what to label next" message and its own exit code (3).
    """

    def __init__(self, tag: str, n: int, waiting, queue=None, message: str | None = None):
        self.tag, self.n, self.waiting, self.queue = tag, int(n), list(waiting), queue
        super().__init__(message or (
            f"{len(self.waiting)} of {self.n} {tag} image(s) have no labels yet"
            + (f"; the labelling queue is in {queue}" if queue else "") + ". Label them, then import the labels "
            f"(alnb import-labels EXPORT --workspace WS --format labelstudio) and run this step again."))


# file mode of the files we write: what a plain open() would give (mkstemp's temporary files are 0600)
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


# ----------------------------------------------------------------------------------------------------------- atomic io
#: name of the temporary files of atomic writes: ``.alnb-<random>.tmp``, short whatever the target's name (a label
#: file may be named up to the file system's 255 bytes; ``.<name>.<random>.tmp`` went over it: "File name too long")
TMP_PREFIX, TMP_SUFFIX = ".alnb-", ".tmp"


def atomic_write_text(path, text: str):
    """Write ``text`` to ``path`` via a temporary file in the same folder + rename (no half-written files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, Mapping):  # a typed result (alnb.core.records.Record): its dict
        return dict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def finite_json(o):
    """``o`` as plain JSON data: NaN / inf -> None, numpy scalars -> Python numbers, recursively (mappings, typed
    results included, become dicts; tuples lists).  What every metrics JSON holds, and what a person reads."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, (dict, Mapping)):  # a dict, or a typed result (alnb.core.records.Record) written as its dict
        return {k: finite_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite_json(v) for v in o]
    return o


def atomic_write_json(path, obj):
    """Atomic JSON write; NaN/inf become ``null`` (e.g. a class that is not measurable)."""
    atomic_write_text(path, json.dumps(finite_json(obj), indent=2, default=_json_default) + "\n")


# --------------------------------------------------------------------------------------------------------------- tags
def tag_set(tags: str) -> set:
    return {t for t in str(tags).split(";") if t and t != "nan"}


# ------------------------------------------------------------------------------------------------------------ rounds
# Round k >= 2 of the loop adds a selection GT<k> (chosen with CAL<k-1>'s scores) and trains CAL<k> on GT1 + GT2 ...
# GT<k>; the control chain adds CONTROL<k> (random) and trains Control<k> on GT1 + CONTROL ... CONTROL<k>.  Round 2
# keeps the seed's names: GT2 / CAL2, and CONTROL / Control (not CONTROL2 / Control2).
_ROUND_TAG = re.compile(r"^(GT|CONTROL)(\d*)$")
_ROUND_RUN = re.compile(r"^(CAL|Control)(\d*)$")


def gt_tag(k: int) -> str:
    """Tag of round ``k``'s selection (``GT2``, ``GT3``, ...)."""
    _check_round(k)
    return f"GT{k}"


def control_tag(k: int) -> str:
    """Tag of round ``k``'s random control images: ``CONTROL`` for round 2 (the seed's name), ``CONTROL<k>`` after."""
    _check_round(k)
    return "CONTROL" if k == 2 else f"CONTROL{k}"


def cal_name(k: int) -> str:
    """Run name of the model of round ``k`` (``CAL1`` on GT1, ``CAL2`` on GT1 + GT2, ...)."""
    if int(k) != k or k < 1:
        raise ValueError(f"round must be a whole number >= 1, got {k!r}")
    return f"CAL{int(k)}"


def control_name(k: int) -> str:
    """Run name of the control chain's model of round ``k``: ``Control`` for round 2, ``Control<k>`` after."""
    _check_round(k)
    return "Control" if k == 2 else f"Control{k}"


def _check_round(k):
    if int(k) != k or k < 2:
        raise ValueError(f"a selection round is a whole number >= 2 (round 1 is GT1 / CAL1), got {k!r}")


def tag_round(tag: str):
    """``("gt", k)`` / ``("control", k)`` for a selection tag, None for any other tag."""
    m = _ROUND_TAG.match(str(tag))
    if not m:
        return None
    arm, num = m.groups()
    if arm == "GT":
        return ("gt", int(num)) if num and int(num) >= 2 else None
    if not num:
        return ("control", 2)
    return ("control", int(num)) if int(num) >= 3 else None


def model_round(name: str):
    """``("cal", k)`` / ``("control", k)`` for a round model's run name (``CAL3``, ``Control``), else None."""
    m = _ROUND_RUN.match(str(name))
    if not m:
        return None
    arm, num = m.groups()
    if arm == "CAL":
        return ("cal", int(num)) if num and int(num) >= 1 else None
    if not num:
        return ("control", 2)
    return ("control", int(num)) if int(num) >= 3 else None


def is_selection_tag(tag: str) -> bool:
    return tag_round(tag) is not None


def train_tags(arm: str, k: int) -> list:
    """Training tags of round ``k``'s model: ``GT1`` + the chain's selections of rounds 2..k."""
    if arm not in ("cal", "control"):
        raise ValueError(f"arm must be 'cal' or 'control', not {arm!r}")
    if k == 1:
        return ["GT1"]
    f = gt_tag if arm == "cal" else control_tag
    return ["GT1", *(f(j) for j in range(2, int(k) + 1))]


def _tag_order(t: str):
    order = {t: i for i, t in enumerate(KNOWN_TAGS)}
    r = tag_round(t)
    if r is not None:
        return (3, r[1], 0 if r[0] == "gt" else 1, t)
    return (order.get(t, 99) if t != "EXCLUDED" else 98, 0, 0, t)


def join_tags(tags) -> str:
    return ";".join(sorted(set(tags), key=_tag_order))


def has_tag(manifest: pd.DataFrame, tag: str) -> pd.Series:
    """Boolean mask of rows that carry ``tag``."""
    return manifest["tags"].map(lambda s: tag in tag_set(s))


def with_tag(manifest: pd.DataFrame, stems, tag: str, replace: bool = False) -> pd.DataFrame:
    """Return a copy of ``manifest`` where ``stems`` carry ``tag``; ``replace`` first removes ``tag`` everywhere."""
    m = manifest.copy()
    stems = set(stems)
    unknown = stems - set(m["stem"])
    if unknown:
        raise KeyError(f"{len(unknown)} stem(s) not in the manifest, e.g. {sorted(unknown)[:3]}")

    def upd(row):
        t = tag_set(row["tags"])
        if replace:
            t.discard(tag)
        if row["stem"] in stems:
            t.add(tag)
        return join_tags(t)

    m["tags"] = m.apply(upd, axis=1) if len(m) else m["tags"]
    return m


# -------------------------------------------------------------------------------------------------------------- split
def _count(n, total, what):
    if isinstance(n, float) and 0 < n < 1:
        return int(round(n * total))
    if isinstance(n, float) and not n.is_integer():
        raise ValueError(f"{what}={n}: give a whole count or a fraction between 0 and 1.")
    n = int(n)
    if n < 0:
        raise ValueError(f"{what}={n} must not be negative.")
    return n


def check_folder(root, flag: str = "--workspace"):
    """Refuse a workspace path that is (or lies below) an existing *file*: one message naming the path and what to do
    instead of ``File exists`` / ``Not a directory``."""
    root = Path(root).expanduser()
    p = root
    while not os.path.lexists(p) and p.parent != p:
        p = p.parent
    if os.path.lexists(p) and not p.is_dir():
        what = "is a file, not a folder" if p == root else f"lies below {p}, which is a file, not a folder"
        raise WorkspaceError(f"{flag} {root} {what}: a workspace is a folder that alnb creates and fills. Choose "
                             f"another {flag} path (a new folder or an existing workspace), or move the file away. "
                             f"Nothing was done.")


def check_location(root, dataset_root):
    """Refuse a workspace inside the dataset folder (alnb never writes there) or a dataset inside the workspace, and a
    workspace path that is a file (:func:`check_folder`)."""
    check_folder(root)
    root, data = Path(root).expanduser().resolve(), dataset_folder(dataset_root)[0]
    if root == data or data in root.parents:
        raise WorkspaceError(f"the workspace {root} is inside the dataset folder {data}: alnb never writes into the "
                             f"dataset folder (and would read its own files as dataset images). Choose a workspace "
                             f"outside it, e.g. --workspace runs/{data.name}.")
    if root in data.parents:
        raise WorkspaceError(f"the dataset folder {data} is inside the workspace {root}: keep them apart (the "
                             f"workspace writes data/, labels/, view/ ...). Choose another --workspace folder.")


def make_split(ds: Dataset, n_val=178, n_gt1=177, seed: int = 0) -> pd.DataFrame:
    """Random split into VAL1 / GT1 / POOL; returns a manifest.

    ``n_val`` and ``n_gt1`` are absolute counts or fractions (0-1) of the usable images.  VAL1 and GT1 are drawn
    from images that have labels (they must be evaluated/trained on); every other usable image goes to POOL.  POOL
    images keep ``label_source='none'``: in simulation mode their labels stay hidden until selected.  Images with
    validation problems are tagged EXCLUDED.  The same seed on the same dataset gives the same split.
    """
    usable = ds.usable.sort_values("stem")
    labelled = usable[usable["label_state"] != "unlabelled"]
    total = len(usable)
    nv, ng = _count(n_val, total, "n_val"), _count(n_gt1, total, "n_gt1")
    if nv < 1:
        raise ValueError(f"n_val={n_val} gives no VAL1 image: VAL1 is the held-out set every model is evaluated on, "
                         f"so it needs at least 1 labelled image (the study uses 178). Raise n_val (--n-val).")
    if ng < 1:
        raise ValueError(f"n_gt1={n_gt1} gives no GT1 image: CAL1 is trained on GT1, so it needs at least 1 labelled "
                         f"image (the study uses 177). Raise n_gt1 (--n-gt1).")
    if nv + ng > len(labelled):
        raise ValueError(
            f"asked for {nv} VAL1 + {ng} GT1 = {nv + ng} labelled images, but the dataset has only {len(labelled)} "
            f"labelled usable images ({total} usable in all). Lower n_val/n_gt1 or label more images.")
    if nv + ng >= total:
        raise ValueError(f"asked for {nv} VAL1 + {ng} GT1 images out of {total} usable: nothing would be left for "
                         f"the POOL. Lower n_val/n_gt1.")
    if len(labelled) and int(labelled["n_boxes"].sum()) == 0:
        raise ValueError(f"none of the {len(labelled)} labelled images of {ds.root} holds a box (every label file is "
                         f"empty): a detector cannot be trained or evaluated. Check that the label files are in "
                         f"labels/ next to images/ and hold 'class cx cy w h' lines.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(labelled["stem"].to_numpy())
    val, gt1 = set(order[:nv]), set(order[nv:nv + ng])
    n_gt1_boxes = int(labelled.loc[labelled["stem"].isin(gt1), "n_boxes"].sum())
    if n_gt1_boxes == 0:
        raise ValueError(f"the {ng} GT1 image(s) drawn with seed {seed} hold no box at all, so CAL1 would learn "
                         f"nothing ({int((labelled['n_boxes'] > 0).sum())} of the {len(labelled)} labelled images "
                         f"have boxes). Raise n_gt1 (--n-gt1) or change the seed.")
    m = ds.images.copy()
    tags = []
    for stem, problem in zip(m["stem"], m["problem"]):
        tags.append("EXCLUDED" if problem else "VAL1" if stem in val else "GT1" if stem in gt1 else "POOL")
    m["tags"] = tags
    m["label_source"] = np.where(m["tags"].isin(["VAL1", "GT1"]), "human", "none")
    m["auto_model"] = ""
    return m[MANIFEST_COLUMNS].reset_index(drop=True)


# ------------------------------------------------------------------------------------- files a person can edit
_MANIFEST_ADVICE = ("manifest.csv is written by alnb: undo the edit (or restore the file), or make a new split with "
                    "`alnb run --data DATASET --workspace WORKSPACE --overwrite` and your split settings (labels "
                    "people gave, in labels/, are kept).")


def _read_config(path: Path) -> dict:
    """``workspace.json``, checked: a message naming the file instead of a JSON or key error."""
    try:
        cfg = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise WorkspaceError(f"{path} is not valid JSON ({e}). It is written by alnb: undo the edit, or start again "
                             f"with `alnb run --data DATASET --workspace {path.parent} --overwrite`.") from None
    missing = [k for k in CONFIG_KEYS if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise WorkspaceError(f"{path} lacks {missing}. It is written by alnb: undo the edit, or start again with "
                             f"`alnb run --data DATASET --workspace {path.parent} --overwrite`.")
    return cfg


def check_manifest(m: pd.DataFrame, path) -> pd.DataFrame:
    """Validate a manifest read from disk (a person may have edited it): every column there, one row per stem,
    counts and sizes whole numbers, known label sources / states.  Raises :class:`WorkspaceError` naming the file,
    the line and the column, with what to do; returns ``m`` with integer columns as ints."""
    missing = [c for c in MANIFEST_COLUMNS if c not in m.columns]
    if missing:
        raise WorkspaceError(f"{path}: column(s) {missing} missing (its header has {list(m.columns)}). "
                             f"{_MANIFEST_ADVICE}")

    def bad(i, col, what):
        raise WorkspaceError(f"{path} line {i + 2}, column {col!r}: {what}. {_MANIFEST_ADVICE}")

    for i in np.flatnonzero(m["stem"].str.strip() == ""):
        bad(i, "stem", "empty stem")
    dup = m["stem"].duplicated(keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(m["stem"] == m["stem"].iloc[i])[0])
        bad(i, "stem", f"stem {m['stem'].iloc[i]!r} appears again (first on line {first + 2}; "
                       f"{int(dup.sum())} duplicate row(s) in all)")
    for col in ("n_boxes", "width", "height"):
        vals = pd.to_numeric(m[col], errors="coerce")
        wrong = vals.isna() | (vals < 0) | (vals != vals.round())
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            bad(i, col, f"{m[col].iloc[i]!r} is not a whole number >= 0")
        m[col] = vals.astype(int)
    for col, allowed in (("label_source", LABEL_SOURCES), ("label_state", LABEL_STATES)):
        wrong = ~m[col].isin(allowed)
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            bad(i, col, f"{m[col].iloc[i]!r} is not one of {list(allowed)}")
    return m


# ---------------------------------------------------------------------------------------------------------- workspace
class Workspace:
    """Handle on an experiment folder.  Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, root):
        check_folder(root)
        self.root = Path(root).expanduser().resolve()
        cfg_file = self.root / "workspace.json"
        if not cfg_file.is_file():
            raise WorkspaceError(f"{self.root} is not an alnb workspace (no workspace.json). Create it with notebook "
                                 f"00 or `alnb run --data DATASET --workspace {self.root}` first.")
        self.config = _read_config(cfg_file)
        self._dataset = None
        self.refreshed = None  # what :meth:`refresh` changed when the workspace was reopened by :meth:`create`

    # ---- construction
    @classmethod
    def create(cls, root, dataset_root, n_val=178, n_gt1=177, seed: int = 0, overwrite: bool = False,
               dataset: Dataset | None = None, progress: bool = True) -> "Workspace":
        """Validate the dataset, split it and write ``workspace.json`` + ``manifest.csv``.

        An existing manifest is never replaced silently: pass ``overwrite=True`` to start the study again (earlier
        runs, scores and figures stay on disk; labels imported into ``labels/`` are kept).  If the workspace already
        holds exactly this split (same dataset, sizes and seed), it is reopened unchanged.
        """
        root = Path(root).expanduser().resolve()
        check_location(root, dataset.root if dataset is not None else dataset_root)
        ds = dataset or load_dataset(dataset_root, progress=progress)
        settings = {"dataset": str(ds.root), "n_val": n_val, "n_gt1": n_gt1, "seed": seed}
        cfg_file, man = root / "workspace.json", root / "manifest.csv"
        if man.exists():
            old = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
            if {k: old.get(k) for k in settings} == settings and not overwrite:
                if list(old.get("names") or []) != list(ds.names):
                    raise WorkspaceError(
                        f"the class names in {ds.root}'s data.yaml changed since this workspace was made "
                        f"(was {old.get('names')}, now {ds.names}); its labels and models use the old ids. Start a "
                        f"new workspace, or pass --overwrite (overwrite=True) to split again.")
                ws = cls(root)
                ws._dataset = ds
                ws.refreshed = ws.refresh(ds)  # re-validated: fixed images rejoin the POOL, new problems leave
                return ws
            if not overwrite:
                raise WorkspaceError(
                    f"{man} already exists with other settings ({ {k: old.get(k) for k in settings} }). "
                    f"Pass --overwrite (alnb run) / overwrite=True (Python) to replace the split (labels people gave, "
                    f"in labels/, are kept), or use another workspace folder.")
        manifest = make_split(ds, n_val=n_val, n_gt1=n_gt1, seed=seed)
        config = {**settings, "names": ds.names, "mode": "simulation" if ds.fully_labelled else "real",
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if ds.yaml is not None:  # --data DIR/NAME.yaml: reopened with the same yaml
            config["data_yaml"] = str(ds.yaml)
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cfg_file, config)
        ws = cls(root)
        ws._dataset = ds
        if overwrite and (ws.root / "view").exists():
            shutil.rmtree(ws.root / "view")  # derived data only: symlinks + label copies
        ws.write_manifest(manifest)
        ws.sync_view()
        ws.write_subset_lists()
        return ws

    @classmethod
    def open(cls, root) -> "Workspace":
        return cls(root)

    def refresh(self, ds: Dataset) -> dict:
        """Bring the manifest up to date with a fresh validation of the dataset, keeping the split.

        Images whose problem was fixed rejoin the POOL; images with a new problem (or that vanished) leave every set
        (tagged EXCLUDED); new images join the POOL; label counts and sizes are updated.  Returns the stems per change
        (``fixed, new_problem, added, removed, relabelled``); the manifest is written only when something changed.
        """
        m = self.manifest()
        self.check_selections(m)  # before anything is rewritten from a hand-edited manifest
        cur = ds.images.set_index("stem")
        changes = {"fixed": [], "new_problem": [], "added": [], "removed": [], "relabelled": []}
        cols = ["image", "label_file", "label_state", "n_boxes", "width", "height", "problem"]
        rows = []
        for r in m.to_dict("records"):
            stem = r["stem"]
            if stem not in cur.index:
                changes["removed"].append(stem)
                continue
            c = cur.loc[stem]
            tags = tag_set(r["tags"])
            if r["problem"] and not c["problem"]:
                tags, r["label_source"], r["auto_model"] = {"POOL"}, "none", ""
                changes["fixed"].append(stem)
            elif c["problem"] and not r["problem"]:
                tags, r["label_source"], r["auto_model"] = {"EXCLUDED"}, "none", ""
                changes["new_problem"].append(stem)
            elif not c["problem"] and (str(r["label_file"]), int(r["n_boxes"]), str(r["label_state"])) != \
                    (str(c["label_file"]), int(c["n_boxes"]), str(c["label_state"])):
                changes["relabelled"].append(stem)
            for k in cols:
                r[k] = c[k]
            r["tags"] = join_tags(tags)
            rows.append(r)
        for stem in sorted(set(cur.index) - set(m["stem"])):
            c = cur.loc[stem]
            rows.append({"stem": stem, **{k: c[k] for k in cols}, "tags": "EXCLUDED" if c["problem"] else "POOL",
                         "label_source": "none", "auto_model": ""})
            changes["added"].append(stem)
        new = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
        for k in ("n_boxes", "width", "height"):
            new[k] = new[k].astype(int)
        if new.to_csv(index=False) != m[MANIFEST_COLUMNS].to_csv(index=False):
            self.write_manifest(new)
            self.sync_view(new)
            self.write_subset_lists()
        return changes

    # ---- basic properties
    @property
    def dataset_root(self) -> Path:
        return Path(self.config["dataset"])

    @property
    def names(self) -> list:
        return list(self.config["names"])

    @property
    def mode(self) -> str:
        return self.config["mode"]

    def path(self, *parts) -> Path:
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def figures_dir(self) -> Path:
        d = self.root / "figures"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def dataset(self) -> Dataset:
        """The dataset, re-validated on first use (cached)."""
        if self._dataset is None:
            self._dataset = load_dataset(self.config.get("data_yaml") or self.dataset_root, progress=False)
        return self._dataset

    # ---- manifest
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.csv"

    def manifest(self) -> pd.DataFrame:
        if not self.manifest_path.is_file():
            raise WorkspaceError(f"{self.manifest_path} missing: create the workspace with notebook 00 or "
                                 f"`alnb run --data DATASET --workspace {self.root}` first.")
        try:
            m = pd.read_csv(self.manifest_path, dtype={"stem": str, "image": str, "label_file": str, "tags": str,
                                                       "label_source": str, "auto_model": str, "problem": str,
                                                       "label_state": str}, keep_default_na=False)
        except (ValueError, UnicodeDecodeError) as e:  # pandas' ParserError / EmptyDataError are ValueErrors
            raise WorkspaceError(f"{self.manifest_path} cannot be read as CSV ({str(e).strip()}). "
                                 f"{_MANIFEST_ADVICE}") from None
        return check_manifest(m, self.manifest_path)

    def write_manifest(self, manifest: pd.DataFrame):
        missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
        if missing:
            raise WorkspaceError(f"manifest lacks columns {missing}")
        if manifest["stem"].duplicated().any():
            raise WorkspaceError("manifest has duplicate stems")
        atomic_write_text(self.manifest_path, manifest[MANIFEST_COLUMNS].to_csv(index=False))

    def stems(self, *tags, manifest: pd.DataFrame | None = None) -> list:
        """Sorted stems carrying any of ``tags``."""
        m = self.manifest() if manifest is None else manifest
        mask = np.zeros(len(m), bool)
        for t in tags:
            mask |= has_tag(m, t).to_numpy()
        return sorted(m.loc[mask, "stem"])

    def tags_present(self, manifest: pd.DataFrame | None = None) -> list:
        """Every tag some image carries, in the order of :func:`join_tags` (base tags, then round by round)."""
        m = self.manifest() if manifest is None else manifest
        seen = set()
        for t in m["tags"]:
            seen |= tag_set(t)
        return sorted(seen, key=_tag_order)

    def selection_tags(self, manifest: pd.DataFrame | None = None) -> list:
        """The selection tags present (GT2, CONTROL, GT3, CONTROL3, ...), round by round."""
        return [t for t in self.tags_present(manifest) if is_selection_tag(t)]

    def check_selections(self, manifest: pd.DataFrame | None = None):
        """Raise :class:`WorkspaceError` naming ``manifest.csv``'s line when an image carries a selection tag (GT2,
        CONTROL, GT3 ...) that the workspace has no record of: every selection alnb commits
        (:func:`alnb.loop.selection.commit`) writes ``lists/<tag>.txt`` with its images, so a tag outside that list was typed
        into the manifest (a hand edit GT2 -> GT3 made ``alnb status`` report round 3 without a word)."""
        m = self.manifest() if manifest is None else manifest
        for tag in self.selection_tags(m):
            lst = self.root / "lists" / f"{tag}.txt"
            try:
                listed = {Path(line).name for line in lst.read_text().splitlines() if line.strip()}
            except FileNotFoundError:
                listed, why = set(), f"there is no lists/{tag}.txt"
            else:
                why = f"lists/{tag}.txt does not list it"
            rows = m[has_tag(m, tag)]
            names = [s + Path(i).suffix for s, i in zip(rows["stem"], rows["image"])]
            bad = [(int(i), s) for i, s, n in zip(rows.index, rows["stem"], names) if n not in listed]
            if bad:
                (i, stem), n = bad[0], len(bad)
                raise WorkspaceError(
                    f"{self.manifest_path} line {i + 2}: {stem} carries the tag {tag}, but the workspace has no record "
                    f"of selecting it ({why}; alnb writes lists/{tag}.txt whenever it commits a selection)"
                    + (f"; {n} image(s) like that" if n > 1 else "") + ". Was manifest.csv edited by hand? "
                    + _MANIFEST_ADVICE)

    def tag_counts(self, manifest: pd.DataFrame | None = None) -> dict:
        """Images per tag: the seed's tags always (0 when absent), later rounds' tags when present."""
        m = self.manifest() if manifest is None else manifest
        tags = list(KNOWN_TAGS) + [t for t in self.tags_present(m) if t not in KNOWN_TAGS]
        return {t: int(has_tag(m, t).sum()) for t in sorted(tags, key=_tag_order)}

    # ---- labels visible to training
    def label_source_file(self, row) -> Path | None:
        """Where the trainable labels of a manifest row live (None if hidden or absent)."""
        src = row["label_source"]
        if src == "human" and (self.root / "labels" / f"{row['stem']}.txt").is_file():
            return self.root / "labels" / f"{row['stem']}.txt"  # imported by people
        if src in TRAINABLE_SOURCES and row["label_file"]:
            return self.dataset_root / row["label_file"]
        return None

    def view_image(self, row) -> Path:
        return self.root / "view" / "images" / (row["stem"] + Path(row["image"]).suffix)

    def sync_view(self, manifest: pd.DataFrame | None = None):
        """Make ``view/`` match the manifest: a symlink per usable image, a label copy per trainable label.

        Labels whose source is ``none`` or ``auto`` are removed from the view (they must never reach training).
        """
        m = self.manifest() if manifest is None else manifest
        img_dir, lab_dir = self.root / "view" / "images", self.root / "view" / "labels"
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        for row in m.to_dict("records"):
            if row["problem"]:
                continue
            link = self.view_image(row)
            target = self.dataset_root / row["image"]
            if not link.is_symlink() or os.readlink(link) != str(target):
                link.unlink(missing_ok=True)
                try:
                    link.symlink_to(target)
                except OSError:  # file systems without symlinks: fall back to a copy
                    shutil.copy2(target, link)
            lab = lab_dir / f"{row['stem']}.txt"
            src = self.label_source_file(row)
            if src is None:
                lab.unlink(missing_ok=True)
            else:
                text = read_label_text(src)  # what ultralytics reads: no byte-order mark to break the first id
                if not lab.is_file() or lab.read_text() != text:
                    atomic_write_text(lab, text)
        cache = self.root / "view" / "labels.cache"
        cache.unlink(missing_ok=True)  # ultralytics re-hashes anyway; drop a stale one early

    def write_list(self, name: str, stems) -> Path:
        """Write ``lists/<name>.txt`` with the view image paths of ``stems`` (sorted, absolute)."""
        m = self.manifest().set_index("stem")
        lines = [str(self.view_image({"stem": s, "image": m.at[s, "image"]})) for s in sorted(stems)]
        p = self.path("lists", f"{name}.txt")
        atomic_write_text(p, "\n".join(lines) + ("\n" if lines else ""))
        return p

    def write_subset_lists(self) -> dict:
        """One image list per tag present (VAL1, GT1, POOL and every selection)."""
        m = self.manifest()
        return {t: self.write_list(t, self.stems(t, manifest=m)) for t in self.tags_present(m) if t != "EXCLUDED"}

    def write_data_yaml(self, name: str, train_tags, val_tag: str = "VAL1") -> Path:
        """Write ``data/<name>.yaml`` for ultralytics: train on ``train_tags``, validate on ``val_tag``.

        Refuses to train on VAL1, or on images whose labels are hidden (label_source ``none``/``auto``).
        """
        train_tags = [train_tags] if isinstance(train_tags, str) else list(train_tags)
        if val_tag in train_tags or "VAL1" in train_tags:
            raise WorkspaceError("VAL1 is held out and is never trained on.")
        m = self.manifest()
        stems = self.stems(*train_tags, manifest=m)
        stems = [s for s in stems if s not in set(self.stems("VAL1", manifest=m))]
        src = m.set_index("stem").loc[stems, "label_source"] if stems else pd.Series(dtype=str)
        hidden = sorted(src[~src.isin(TRAINABLE_SOURCES)].index)
        if hidden:
            raise WorkspaceError(
                f"{len(hidden)} image(s) tagged {train_tags} have no trainable labels yet (e.g. {hidden[:3]}): "
                f"label them first (simulated annotator in simulation mode, or import people's labels).")
        if not stems:
            raise WorkspaceError(f"no images carry tags {train_tags}.")
        self.sync_view(m)
        train = self.write_list(f"{name}_train", stems)
        val = self.write_list(f"{name}_val", self.stems(val_tag, manifest=m))
        data = {"path": str(self.root / "view"), "train": str(train), "val": str(val),
                "names": dict(enumerate(self.names))}
        p = self.path("data", f"{name}.yaml")
        atomic_write_text(p, yaml.safe_dump(data, sort_keys=False))
        return p

    # ---- labels
    def trainable_labels(self, stem: str, manifest: pd.DataFrame | None = None) -> np.ndarray:
        """The labels of ``stem`` that training may use, (n, 5) ``cls cx cy w h``; raises if hidden."""
        m = self.manifest() if manifest is None else manifest
        row = m.loc[m["stem"] == stem].iloc[0]
        src = self.label_source_file(row)
        if src is None:
            raise WorkspaceError(f"labels of {stem} are not available to training (label_source={row['label_source']}).")
        return read_labels(src, len(self.names))

    def reveal(self, stems, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
        """Simulated annotator: make the dataset labels of ``stems`` trainable (``label_source='oracle'``).

        Only images whose dataset label file exists can be revealed; unlabelled ones raise (they need people's
        labels: export the queue and import the result).  Images already labelled by people (``human``) keep their
        labels.  Writes the manifest atomically, syncs ``view/`` and returns the new manifest.
        """
        m = self.manifest() if manifest is None else manifest.copy()
        stems = set(stems)
        rows = m["stem"].isin(stems)
        missing = stems - set(m.loc[rows, "stem"])
        if missing:
            raise KeyError(f"{len(missing)} stem(s) not in the manifest, e.g. {sorted(missing)[:3]}")
        if (rows & has_tag(m, "VAL1")).any():
            raise WorkspaceError("VAL1 images are held out; they are never revealed for training.")
        unlabelled = sorted(m.loc[rows & (m["label_file"] == ""), "stem"])
        unlabelled = [s for s in unlabelled if m.loc[m["stem"] == s, "label_source"].iloc[0] != "human"]
        if unlabelled:
            raise WorkspaceError(
                f"{len(unlabelled)} selected image(s) have no labels in the dataset (e.g. {unlabelled[:3]}); a "
                f"simulated annotator cannot label them. Export the queue, label it, and import the labels.")
        todo = rows & (m["label_source"] != "human")
        m.loc[todo, "label_source"] = "oracle"
        self.write_manifest(m)
        self.sync_view(m)
        return m

    def true_labels(self, stem: str) -> np.ndarray:
        """Dataset ground truth of ``stem`` (for evaluation/simulation only; empty array if unlabelled)."""
        return self.dataset.labels(stem)

    # ---- json helpers
    def save_json(self, name: str, obj) -> Path:
        p = self.path("metrics", f"{name}.json")
        atomic_write_json(p, obj)
        return p

    def load_json(self, name: str):
        p = self.root / "metrics" / f"{name}.json"
        if not p.is_file():
            raise WorkspaceError(f"{p} missing: run the notebook that produces it first.")
        return json.loads(p.read_text())

    def __repr__(self):
        return f"Workspace({str(self.root)!r}, mode={self.mode!r})"


def not_measurable(ws: Workspace, tag: str = "VAL1") -> list:
    """Class names with no instance among ``tag`` images (precision/recall cannot be measured there)."""
    counts = ws.dataset.class_counts(ws.stems(tag))
    return [n for n, c in counts.items() if c == 0]


def class_counts_by_tag(ws: Workspace, tags=("VAL1", "GT1", "POOL")) -> dict:
    """{tag: {class name: instances}} from the dataset ground truth (POOL counts are what is hidden there)."""
    return {t: {k: int(v) for k, v in ws.dataset.class_counts(ws.stems(t)).items()} for t in tags}


def setup_summary(ws: Workspace) -> dict:
    """What notebook 00 records in metrics/setup.json: sizes, mode, class counts, unmeasurable classes."""
    counts = ws.tag_counts()
    cc = class_counts_by_tag(ws)
    probs = ws.dataset.problems
    return {"dataset": str(ws.dataset_root), "mode": ws.mode, "names": ws.names, "seed": ws.config["seed"],
            "sizes": counts, "class_counts": cc,
            "not_measurable_on_VAL1": not_measurable(ws),
            "not_in_GT1": [n for n, c in cc["GT1"].items() if c == 0],
            "problems": int(len(probs)),
            "problem_kinds": {str(k): int(v) for k, v in probs["kind"].value_counts().items()},
            "problem_list": probs.to_dict("records"),
            "refreshed": {k: v for k, v in (ws.refreshed or {}).items() if v}}


def excluded_summary(ws: Workspace, limit: int = 10) -> str:
    """What validation excluded (or flagged), in a few lines: counts per kind, the first problems with file:line."""
    probs = ws.dataset.problems
    m = ws.manifest()
    n_ex = int(has_tag(m, "EXCLUDED").sum())
    if not len(probs):
        return "validation: no problems found"
    kinds = ", ".join(f"{k} {v}" for k, v in probs["kind"].value_counts().items())
    lines = [f"validation: {n_ex} image(s) excluded, {len(probs)} problem(s) ({kinds}); nothing in the dataset folder "
             f"was changed. Full list: {ws.root / 'metrics' / 'setup.json'} (problem_list) and manifest.csv."]
    for p in probs.head(limit).itertuples():
        where = f"{p.file}:{p.line}" if p.line else p.file
        lines.append(f"  [{p.kind}] {where}: {p.message}")
    if len(probs) > limit:
        lines.append(f"  ... and {len(probs) - limit} more")
    return "\n".join(lines)


def load_image(ws: Workspace, stem: str, manifest: pd.DataFrame | None = None):
    """Read one dataset image as uint8 grayscale/RGB array (for figures)."""
    # heavy, imported where used (not at module import): cv2
    import cv2

    m = ws.manifest() if manifest is None else manifest
    rel = m.loc[m["stem"] == stem, "image"].iloc[0]
    # ANYCOLOR | ANYDEPTH: grayscale stays grayscale and, unlike IMREAD_UNCHANGED, the EXIF orientation is applied
    # (the image the trainer sees, whose size alnb.core.data.image_size gives)
    im = cv2.imread(str(ws.dataset_root / rel), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if im is None:
        raise FileNotFoundError(f"cannot read {ws.dataset_root / rel}")
    return im if im.ndim == 2 else cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
