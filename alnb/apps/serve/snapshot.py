"""The model being served: :class:`Snapshot` of the workspace's scoring outputs (the model that scored the POOL,
its scores, tiers and auto-labels, read once per change) and :func:`review_order`, the review plan's queue order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alnb.core.workspace import WorkspaceError
from alnb.labels.formats.common import ParseContext
from alnb.core.scoretable import load_scores
from alnb.loop import reviewstep


def model_version(ws, model: str) -> str:
    """``<run>-<first 8 hex of its cache key>`` (e.g. ``CAL2-1f3a9c0d``): names the run and changes with every
    retraining, so Label Studio asks for new predictions."""
    # heavy, imported where used (not at module import): alnb.model.train (torch/ultralytics)
    from alnb.model.train import load_run

    return f"{model}-{load_run(ws, model).key[:8]}"


@dataclass(frozen=True)
class Snapshot:
    """What ``/predict`` answers from: the model that scored the POOL and its outputs, read once per change."""

    model: str
    version: str
    info: dict  # metrics/mc_scoring.json
    thresholds: dict  # metrics/thresholds.json
    scores: dict  # stem -> (score, tier, failed) from scores.csv
    ctx: ParseContext  # class names, stems by file name, image sizes (the importer's matching rules)
    images: dict  # stem -> image path relative to the dataset
    autolabels: Path
    stamp: tuple
    plan: dict = field(default_factory=dict)  # stem -> (place, position, n) in the review plan; {} without one
    plan_note: str = ""  # what the review plan does to the order, or why it is not used


def _stamp(ws) -> tuple:
    out = []
    for f in (ws.root / "metrics" / "mc_scoring.json", ws.root / "scores.csv", ws.manifest_path,
              ws.root / "review_plan.csv", ws.root / "metrics" / "review_plan.json"):
        try:
            st = f.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def load_snapshot(ws) -> Snapshot:
    """The served model: the one whose auto-labels and scores are in the workspace (``metrics/mc_scoring.json``)."""
    stamp = _stamp(ws)
    if not (ws.root / "metrics" / "mc_scoring.json").is_file() or not (ws.root / "scores.csv").is_file():
        raise WorkspaceError(f"{ws.root} has no scored model yet: train CAL1 and score the POOL first (`alnb run "
                             f"--data DATASET --workspace {ws.root}`, which stops when GT2 needs labels, or "
                             f"notebooks 00-02), then start `alnb serve` again.")
    info = ws.load_json("mc_scoring")
    thresholds = ws.load_json("thresholds")
    s = load_scores(ws)
    tiers = s["tier"].astype(str) if "tier" in s else [""] * len(s)
    scores = {st: (float(sc), str(t), bool(f)) for st, sc, t, f in zip(s["stem"], s["score"], tiers, s["failed"])}
    m = ws.manifest()
    plan, note = review_order(ws, info["model"])
    return Snapshot(model=info["model"], version=model_version(ws, info["model"]), info=info, thresholds=thresholds,
                    scores=scores, ctx=ParseContext(ws, m, "Label Studio task"), images=dict(zip(m["stem"], m["image"])),
                    autolabels=ws.root / "autolabels" / info["model"], stamp=stamp, plan=plan, plan_note=note)


def review_order(ws, model: str) -> tuple:
    """``(order, note)``: the review plan's place of every image it orders, ``stem -> (place, position, n)`` with
    place ``review`` (its cut sends the image to review) or ``accepted`` (:func:`alnb.loop.reviewstep.review_split`), for
    :func:`alnb.labels.formats.labelstudio.review_task_score`; ``({}, why)`` without a plan, or with a plan of another
    model than the served one (its order is stale: ``alnb review`` again) or one that cannot be read."""
    if not (ws.root / reviewstep.PLAN_FILE).is_file():
        return {}, ""
    try:
        split = reviewstep.review_split(ws)
    except (WorkspaceError, ValueError, KeyError, OSError) as e:
        return {}, f"review plan not used ({type(e).__name__}: {e})"
    if split["model"] != model:
        return {}, (f"review plan not used: it orders {split['model']}'s auto-labels, this serves {model}; run `alnb "
                    f"review --workspace {ws.root}` again")
    out = {}
    for place in ("review", "accepted"):
        stems = list(split[place]["stem"])
        out.update({s: (place, i, len(stems)) for i, s in enumerate(stems)})
    return out, (f"review plan of {model}: its {split['reviewed']} review image(s) first (plan order), its "
                 f"{len(split['accepted'])} accepted image(s) last (sort by prediction score ascending)")
