"""Round trip with labelling tools: export the labelling queue with auto-labels as pre-annotations, import people's
corrected labels back into the workspace.

* :func:`export_queue` writes a manifest selection (default: the GT2 images, hardest first) as ``labelstudio``
  (``tasks.json`` + ``label_config.xml``), ``cvat`` (``cvat_yolo1.1.zip``) or ``coco`` (``instances.json`` +
  ``results.json``), and in every case ``queue.csv``.
* :func:`import_labels` reads a Label Studio JSON export, a COCO JSON file, or a YOLO label folder / zip, validates
  *everything* first, and only then writes ``labels/<stem>.txt`` and sets ``label_source`` to ``human``; any problem
  raises :class:`ImportProblem` listing every bad item, and the workspace is left exactly as it was.

The formats live in :mod:`alnb.labels.formats` (registries ``EXPORTERS`` / ``PARSERS``), the shared machinery in
:mod:`alnb.labels.formats.common`; this module is the two entry points and keeps the names callers import.
Design notes: docs/design/labelling-formats.md
"""

from __future__ import annotations

import os  # noqa: F401  (tests patch labelio.os.replace to break the commit half-way)
from pathlib import Path

import pandas as pd

from alnb.core.data import parse_label_lines
from alnb.labels.formats import EXPORTERS, PARSERS
from alnb.labels.formats.common import (BOX_ATOL, PROBLEM_FIELDS, QUEUE_COLUMNS, SUMMARY_COLUMNS, ImportProblem,  # noqa: F401
                                 ParseContext, check_duplicate_boxes, check_selection, commit, describe_import,
                                 label_diff, load_scores, now, problem, queue, read_autolabels, selection_tags,
                                 summary_counts, yolo_line)
from alnb.labels.formats.cvat import CVAT_ZIP  # noqa: F401
from alnb.labels.formats.labelstudio import LS_FROM_NAME, LS_TO_NAME, LS_URL_PREFIX, labelstudio_config  # noqa: F401
from alnb.core.workspace import atomic_write_text
from alnb.core.lock import workspace_lock

EXPORT_FORMATS = tuple(EXPORTERS)
IMPORT_FORMATS = tuple(PARSERS)


def export_queue(ws, fmt: str, out_dir=None, tag: str | None = "GT2", model: str | None = None, stems=None,
                 url_prefix: str = LS_URL_PREFIX, document_root=None, order: str = "difficulty",
                 priority=None) -> Path:
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
    tag, stems, model, order :
        The selection and the auto-labels, see :func:`queue` (hardest first; ``order="given"``: as ``stems``).
    priority : mapping stem -> float, optional
        Label Studio's prediction ``score`` of each task instead of the difficulty (higher = first, so sorting by
        prediction score *descending* gives the queue's order, as for the difficulty) and ``data.alnb_priority``;
        a ``priority`` column in ``queue.csv``.  The review queue passes the plan's expected wrong boxes fixed per
        review second (:func:`alnb.loop.reviewstep.export_review`).
    url_prefix : str
        Label Studio image URL prefix; the image path relative to ``document_root`` (URL-quoted) is appended.  The
        default ``/data/local-files/?d=`` is Label Studio's local-files serving: start Label Studio with
        ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<document_root>``
        and add a *Local files* source storage on the images folder.  For a plain web server use e.g.
        ``http://localhost:8081/``.
    document_root : path, optional
        Folder the image paths are relative to (default: ``$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` when it is set,
        as for the Label Studio started from the same shell and for ``alnb serve``; else the dataset folder).  The
        queues ``alnb run`` exports when it waits for labels use this default.

    Returns
    -------
    Path
        The output folder (it also holds ``queue.csv``: the order and where each image's pre-annotations came from).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {EXPORT_FORMATS}.")
    q = queue(ws, tag=tag, stems=stems, model=model, order=order)
    if priority is not None:
        q["priority"] = [float(priority.get(s, float("nan"))) for s in q["stem"]]
    out = Path(out_dir) if out_dir is not None else ws.root / "export" / fmt
    out.mkdir(parents=True, exist_ok=True)
    EXPORTERS[fmt](ws, q, out, tag=tag, model=model, url_prefix=url_prefix, document_root=document_root)
    atomic_write_text(out / "queue.csv", q.to_csv(index=False))
    return out


def import_labels(ws, source, fmt: str, tag="GT2", overwrite: bool = False, dry_run: bool = False,
                  annotation: str | None = None) -> pd.DataFrame:
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
        several; ``"selections"``: every round's selections present, GT2, CONTROL, GT3, CONTROL3 ...; None or ``"any"``
        accepts any image of the workspace).  Images whose labels equal what the workspace
        already uses count as *unchanged* wherever they are, so one whole-project export can be imported again and
        again (for GT2, then for Control).
    overwrite : bool
        Replace labels that differ from the ones the workspace already has (people's, ``label_source=human``, which
        includes VAL1/GT1 images labelled in the dataset, or dataset labels revealed for training).  Default: refuse,
        with a per-image diff.  Replaced files are kept in ``labels/.history/``.
    dry_run : bool
        Validate and return the summary without writing anything.
    annotation : str, optional
        ``labelstudio`` only: which annotation of a task that several people annotated (``--annotation``):
        ``"latest"`` (most recently updated), ``"first"`` (earliest created) or an annotator (user id, e-mail or
        username: their latest annotation; tasks they did not annotate are skipped and listed).  Default: the one
        marked ground truth, or the latest when all hold the same regions; annotations that differ are refused,
        listed.  Every choice is named in the summary's ``note`` (and by :func:`describe_import`).

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
    Holds the workspace lock (:mod:`alnb.core.lock`) unless ``dry_run``.
    """
    if fmt not in IMPORT_FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; choose one of {IMPORT_FORMATS}.")
    check_annotation_choice(annotation, fmt)
    if dry_run:
        return _import_labels(ws, source, fmt, tag, overwrite, dry_run, annotation)

    with workspace_lock(ws.root, "import-labels"):
        return _import_labels(ws, source, fmt, tag, overwrite, dry_run, annotation)


def check_annotation_choice(annotation, fmt: str):
    """``annotation`` (``--annotation``) is for Label Studio exports only, and not an empty name."""
    if annotation is None:
        return
    if fmt != "labelstudio":
        raise ValueError(f"--annotation {annotation} (annotation=) chooses among the annotations of a Label Studio "
                         f"task; a {fmt} import has one label set per image. Leave it out.")
    if not str(annotation).strip():
        raise ValueError("--annotation needs 'latest', 'first' or an annotator (user id, e-mail or username).")


def _import_labels(ws, source, fmt, tag, overwrite, dry_run, annotation=None) -> pd.DataFrame:
    source = Path(source).expanduser()
    m = ws.manifest()
    if isinstance(tag, str) and tag.strip().lower() == "selections":  # every round's selections present
        tags = ws.selection_tags(m) or ["GT2"]
    else:
        tags = selection_tags(tag)
    ctx = ParseContext(ws, m, source, annotation=annotation)
    if not source.exists():
        raise ImportProblem(source, [problem(source, "", "", "missing", "file or folder does not exist.")])
    PARSERS[fmt](source, ctx)
    check_duplicate_boxes(ctx)  # one box twice: named, never imported as two (the trainer keeps one)
    check_selection(ctx, ws, m, tags, overwrite)
    if not ctx.problems and not ctx.items:
        ctx.add("", "", "nothing_to_import", "no labelled image found (all tasks unlabelled or skipped?). Submit "
                                             "annotations in the tool and export again.")
    if ctx.problems:
        raise ImportProblem(source, ctx.problems)

    # final check: what will be written must read back through alnb.core.data like any dataset label file
    texts = {}
    for it in ctx.items:
        if it["action"] == "unchanged":
            continue
        lines = [yolo_line(*b) for b in it["boxes"]]
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
    # the annotators' seconds and actions (Label Studio's lead_time; alnb.evaluation.labeltimes fits the cost model from them)
    times = [it["timing"] for it in ctx.items if it.get("timing")]
    record = {"time": now(), "format": fmt, "source": str(source.resolve()), "tag": tags, "overwrite": overwrite,
              "counts": summary_counts(summary), "images": summary.to_dict("records"), "times": times}
    replaced = {it["stem"]: ws.label_source_file(m.set_index("stem").loc[it["stem"]].to_dict() | {"stem": it["stem"]})
                for it in ctx.items if it["action"] == "replaced"}
    commit(ws, texts, new, record, replaced)
    ws.sync_view(new)
    return summary
