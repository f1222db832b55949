"""Committing a selection to the manifest and getting it labelled; the rules that choose it are
:mod:`alnb.acquisition.tiers` (re-exported here, so ``selection.study_rule`` etc. keep working)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from alnb.acquisition.tiers import (  # noqa: F401  (re-exported: the rules the loop applies)
    ABOVE_ALL,
    CATEGORIES,
    FORBIDDEN,
    SELECTION_TAGS,
    STUDY_CATEGORIES,
    TIERS,
    TIER_BARS,
    _order,
    assign_tiers,
    budgeted,
    categorise,
    check_thresholds,
    choose_thresholds,
    default_thresholds,
    eligible,
    overlap,
    pool_stems,
    random_control,
    study_rule,
    tier_counts,
    tier_of,
    tier_stems,
    SelectionError,
    check_scores,
    load_scores,
)
from alnb.core.lock import locked
from alnb.core.workspace import Workspace, WorkspaceError, has_tag, tag_set, with_tag
from alnb.evaluation.step import write_prelabels
from alnb.labels import labelio


# ------------------------------------------------------------------------------------------------------------- commit
@locked
def commit(ws: Workspace, stems, tag: str = "GT2", info: dict | None = None) -> pd.DataFrame:
    """Tag ``stems`` as ``tag`` in the manifest (atomic write); earlier ``tag`` tags are replaced.

    Refuses VAL1, GT1 and EXCLUDED images.  Images that leave the selection and are in no other selection lose
    labels the *simulated annotator* revealed (``oracle`` -> ``none``: hidden from training again); labels people gave
    (``human``) always stay.  Writes ``lists/<tag>.txt`` and, with ``info``, ``metrics/<tag>.json`` (e.g. the rule and
    thresholds used).  Returns the new manifest.
    """
    if tag in ("VAL1", "GT1", "POOL", "EXCLUDED"):
        raise SelectionError(f"commit() sets selection tags (GT2, CONTROL), not {tag}.")
    stems = list(dict.fromkeys(map(str, stems)))
    m = ws.manifest()
    rows = m.set_index("stem")
    unknown = [s for s in stems if s not in rows.index]
    if unknown:
        raise SelectionError(f"{len(unknown)} stem(s) are not in {ws.manifest_path}, e.g. {unknown[:3]}.")
    bad = [s for s in stems if tag_set(rows.at[s, "tags"]) & set(FORBIDDEN)]
    if bad:
        raise SelectionError(f"{len(bad)} selected image(s) are VAL1/GT1/EXCLUDED (e.g. {bad[:3]}); {tag} is drawn "
                             f"from the POOL only.")
    before = set(ws.stems(tag, manifest=m))
    # the record of the selection first (old and new images: whichever manifest a kill leaves, it matches it), then
    # the manifest, then the record of the new selection alone (Workspace.check_selections reads it)
    ws.write_list(tag, sorted(before | set(stems)))
    m = with_tag(m, stems, tag, replace=True)
    dropped = before - set(stems)
    if dropped:
        still = set(ws.stems(*ws.selection_tags(m), manifest=m))
        hide = m["stem"].isin(dropped - still) & (m["label_source"] == "oracle")
        m.loc[hide, "label_source"] = "none"
    ws.write_manifest(m)
    if dropped:
        ws.sync_view(m)
    ws.write_list(tag, stems)
    if info is not None:
        ws.save_json(tag.lower() if tag != "GT2" else "selection", {**info, "tag": tag, "n": len(stems),
                                                                   "stems": sorted(stems)})
    return m


# ------------------------------------------------------------------------------------------------------------ labels
def label_status(ws: Workspace, tag: str = "GT2") -> dict:
    """How many ``tag`` images have trainable labels (``human``/``oracle``) and which are still waiting."""
    m = ws.manifest()
    sel = m[has_tag(m, tag)]
    waiting = sorted(sel.loc[~sel["label_source"].isin(("human", "oracle")), "stem"])
    return {"tag": tag, "n": int(len(sel)), "labelled": int(len(sel) - len(waiting)), "waiting": waiting}


@locked
def label_selection(ws: Workspace, tag: str = "GT2", source=None, fmt: str = "yolo",
                    export_fmt: str = "labelstudio", import_tags=None, annotation=None,
                    prelabels: str | None = None) -> dict:
    """Get the ``tag`` images labelled so they can be trained on.

    * Simulation mode (every image of the dataset is labelled): the simulated annotator reveals the true labels of
      exactly these images (``label_source='oracle'``), nothing else.
    * Real mode: images that already have dataset labels are revealed (those labels are people's); labels people
      gave earlier in this workspace (``labels/<stem>.txt``, e.g. before a re-split) are used again; when ``source``
      is given, people's labels are imported from it (:func:`alnb.labels.labelio.import_labels`, never overwriting labels
      people gave: changed ones are refused with a diff; ``fmt``: ``yolo`` folder/zip, ``labelstudio`` or ``coco``;
      ``import_tags``: which selections it may label, default every selection present, GT2 and CONTROL, so one
      whole-project export serves both); the images still waiting are exported as a labelling queue
      (``<workspace>/export/<tag>_<export_fmt>/``, :func:`alnb.labels.labelio.export_queue`).

    ``prelabels``: the model whose auto-labels pre-annotate the exported queue (default: each image's latest
    auto-labels).

    Returns :func:`label_status` plus ``queue`` (where the queue was exported, or None) and ``imported`` (the import
    summary table, or None).  Images still ``waiting`` cannot be trained on yet.
    """
    m = ws.manifest()
    stems = ws.stems(tag, manifest=m)
    if ws.mode == "simulation":
        ws.reveal(stems, m)
        return {**label_status(ws, tag), "queue": None, "imported": None}
    rows = m.set_index("stem")
    back = [s for s in stems if rows.at[s, "label_source"] != "human" and (ws.root / "labels" / f"{s}.txt").is_file()]
    if back:  # people's labels from an earlier import in this workspace: never thrown away, used again
        m.loc[m["stem"].isin(back), "label_source"] = "human"
        ws.write_manifest(m)
        ws.sync_view(m)
        rows = m.set_index("stem")
    have = [s for s in stems if rows.at[s, "label_file"] and rows.at[s, "label_source"] not in ("human", "oracle")]
    if have:
        m = ws.reveal(have, m)

    imported = None
    if label_status(ws, tag)["waiting"] and source is not None:
        if not Path(source).expanduser().exists():
            raise WorkspaceError(f"labels source {source} does not exist. Pass the file or folder exported from the "
                                 f"labelling tool (Label Studio: Export > JSON).")
        tags = import_tags or ws.selection_tags(m)
        imported = labelio.import_labels(ws, source, fmt, tag=tags, overwrite=False, annotation=annotation)
    todo = label_status(ws, tag)["waiting"]
    queue = None
    if todo:
        if prelabels:  # the queue's pre-annotations come from this model (e.g. Control<k-1> for CONTROL<k>)
            write_prelabels(ws, prelabels, todo)
        queue = Path(labelio.export_queue(ws, export_fmt, out_dir=ws.root / "export" / f"{tag}_{export_fmt}",
                                          tag=None, stems=todo, model=prelabels))
    return {**label_status(ws, tag), "queue": str(queue) if queue else None, "imported": imported}
