"""The scoring step at the pipeline edge: auto-label + MC-score the POOL with a trained model and write the files.

:func:`score_pool` streams the POOL through :class:`alnb.model.mc.MCScorer` (here or on Ray: :mod:`alnb.acquisition.engines`) into
resumable part files, then turns the statistics into scores (:mod:`alnb.acquisition.strategies`), cuts tiers (:mod:`alnb.acquisition.tiers`),
measures errors in simulation mode (:mod:`alnb.acquisition.difficulty`) and writes every output of notebook 02 into the
workspace.  Nothing else in the package writes these files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alnb.acquisition import strategies as acq
from alnb.acquisition import difficulty as dif
from alnb.evaluation.labeltimes import resolve_costs
from alnb.acquisition.engines import ENGINES, PART_SIZE, PartStore, score_local, score_ray, scoring_key
from alnb.model.mc import MCScorer
from alnb.acquisition.tiers import assign_tiers, choose_thresholds, eligible, load_scores
from alnb.core.records import Options, takes_options
from alnb.core.cpu import cpu_threads
from alnb.core.scoretable import SCORES_DIR, scores_file
from alnb.core.workspace import FILE_MODE, atomic_write_text
from alnb.evaluation.metrics import FIXED_CONF, NMS_IOU, autolabel_lines, predicted_seconds
from alnb.evaluation.step import operating_point

EMBEDDINGS_FILE = "embeddings.npz"  # pooled backbone features of the scored POOL images (stems + matrix)


def autolabel_texts(detections: pd.DataFrame, images: pd.DataFrame) -> dict:
    """``{stem: [line, ...]}``: the auto-labels (detections above the threshold) of each image as YOLO lines
    ``cls cx cy w h conf`` (:func:`alnb.evaluation.metrics.autolabel_lines`: normalised, highest confidence first, ties in
    detection order); images without one are absent.  What :func:`write_autolabels` writes and what
    :mod:`alnb.apps.serve` answers for an image scored on the fly."""
    det = detections[detections["above"].to_numpy(bool)] if len(detections) else detections
    text = {}
    if len(det):
        size = images.drop_duplicates("stem").set_index("stem")[["width", "height"]]
        for stem, g in det.groupby("stem", sort=False):
            w, h = size.loc[stem]
            text[stem] = autolabel_lines(g["cls"], g[["x0", "y0", "x1", "y1"]], g["conf"], float(w), float(h))
    return text


def write_autolabels(ws, model_name: str, detections: pd.DataFrame, images: pd.DataFrame) -> Path:
    """Write ``autolabels/<model_name>/<stem>.txt`` (YOLO ``cls cx cy w h conf``, normalised; empty = nothing found).

    One file per row of ``images``; lines from :func:`autolabel_texts`.
    """
    out = ws.root / "autolabels" / model_name
    out.mkdir(parents=True, exist_ok=True)
    text = autolabel_texts(detections, images)
    for stem in images["stem"]:
        lines = text.get(stem, ())
        atomic_write_text(out / f"{stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
    return out


def _resolve_model(ws, model):
    """(name, model object, imgsz or None) for a run name, a weights path or a model object."""
    if isinstance(model, str) and not model.endswith((".pt", ".yaml")):
        try:
            # heavy, imported where used (not at module import): alnb.model.train (ultralytics)
            from alnb.model import train
        except ImportError as e:  # pragma: no cover - train module missing
            raise ImportError("alnb.model.train is needed to load a run by name; pass weights= instead.") from e
        run = train.load_run(ws, model)
        imgsz = (getattr(run, "info", None) or {}).get("args", {}).get("imgsz")
        if imgsz is None:
            try:
                imgsz = train.get_profile(run.profile).imgsz
            except Exception:  # an unknown profile: fall back to the checkpoint's own training size
                imgsz = None
        return model, train.load_model(run.weights), imgsz
    name = Path(str(model)).stem if isinstance(model, (str, Path)) else type(model).__name__
    return name, model, None


@dataclass(frozen=True)
class ScoreOptions(Options):
    """The settings of :func:`score_pool` (its parameters of the same names and defaults, documented there):
    ``score_pool(ws, "CAL1", options=ScoreOptions(T=4))``.  What is scored (the model, ``model_name``, ``exclude``)
    stays an argument of the call."""

    # MC-dropout sampling (alnb.model.mc.mc_predict)
    T: int = 20
    conf: float | None = None  # None: the model's operating point on VAL1
    iou: float | None = None  # None: the evaluation's NMS IoU
    imgsz: int | None = None
    batch: int = 8
    p: float | None = None
    cand_conf: float | None = None
    seed: int = 0
    # thresholds and tiers (alnb.acquisition.tiers.choose_thresholds)
    target_fraction: float = 0.6
    hard_share: float = 0.4
    t_medium: float | None = None
    t_hard: float | None = None
    progress: bool = True
    device: object = None
    # image scores (alnb.acquisition.strategies.image_scores)
    box_ref: float | None = None
    aggregation: str = "topk"
    top_k: int = acq.TOP_K
    # where and how the images are scored (alnb.acquisition.engines)
    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    part_size: int = PART_SIZE
    threads: int | None = None


@takes_options(ScoreOptions)
def score_pool(ws, model="CAL1", T: int = 20, conf: float | None = None, iou: float | None = None, *,
               imgsz: int | None = None, batch: int = 8, p: float | None = None, cand_conf: float | None = None,
               seed: int = 0, target_fraction: float = 0.6, hard_share: float = 0.4, t_medium: float | None = None,
               t_hard: float | None = None, model_name: str | None = None, progress: bool = True, device=None,
               box_ref: float | None = None, aggregation: str = "topk", top_k: int = acq.TOP_K,
               engine: str = "local", address: str | None = None, workers: int | None = None,
               part_size: int = PART_SIZE, threads=None, exclude=None) -> pd.DataFrame:
    """Auto-label and MC-score every POOL image of the workspace; write all outputs; return the score table.

    ``options=ScoreOptions(...)`` gives the settings in one object instead of keywords (:class:`ScoreOptions`); a
    keyword beside it for one of its fields is a TypeError (:func:`alnb.core.records.takes_options`).

    Scoring is streamed and resumable: the raw results go to ``scoring/<key>/part-*.npz`` every ``part_size``
    images, and a rerun with the same model and settings scores only the images that have no part yet (after
    Ctrl-C, a killed job or a lost worker), then gives the same outputs as an uninterrupted run (:mod:`alnb.acquisition.engines`).
    Pool-wide quantities (``box_ref``, thresholds, tiers, the ranking) are computed from all parts at the end.

    Parameters
    ----------
    ws : Workspace
    model : str | path | YOLO
        A run name in the workspace (``"CAL1"``, loaded with :func:`alnb.model.train.load_run`), a ``.pt`` path or a model.
    T, conf, iou, imgsz, batch, p, cand_conf, seed
        See :func:`alnb.model.mc.mc_predict` (``imgsz`` defaults to the run's training size).  ``conf=None`` (default)
        uses the model's operating point chosen on VAL1 (:func:`alnb.evaluation.step.operating_point`; 0.25 for a bare .pt /
        model); ``iou=None`` the evaluation's NMS IoU (:data:`alnb.evaluation.metrics.NMS_IOU`).
    target_fraction, hard_share
        Default thresholds (:func:`alnb.acquisition.tiers.choose_thresholds`); ``t_medium``/``t_hard`` override them.
    model_name : str, optional
        Name under which auto-labels are recorded (default: the run name / file stem).
    box_ref, aggregation, top_k
        Scale of localisation uncertainty (None: the median box spread of this pool) and the image aggregation
        (:func:`alnb.acquisition.strategies.image_scores`).
    engine : {"local", "ray"}
        Where the images are scored (:mod:`alnb.acquisition.engines`): this process, or Ray Data actors (one model replica per
        worker; optional extra ``pip install -e ".[ray]"``).  Both give the same numbers, bit for bit on CPU.
    address, workers
        Ray only: the cluster (None: a running local instance or a new one; ``"auto"``: an existing cluster) and
        the number of actors (default: one per CPU, or per GPU when ``device`` is a GPU).
    part_size : int
        Images per part file (and per Ray task).
    exclude : list of str, optional
        Tags whose images are not scored.  Default: the images the model was trained on (its run's tags: CAL2,
        trained on GT1 + GT2, scores the POOL without GT2), so round k's model scores only what is still to label.
        VAL1 and GT1 are never scored.
    threads : int, optional
        CPU threads of the local engine (:mod:`alnb.core.cpu`; default the policy's: every usable core, never shared
        with another alnb job).  MC scores do not depend on it (:mod:`alnb.model.mc`), only the time does.

    Writes
    ------
    ``autolabels/<MODEL>/<stem>.txt``, ``scores.csv`` (one row per POOL image), ``detections.csv`` (per candidate
    detection, with ``hybrid``), ``embeddings.npz`` (pooled features), ``metrics/thresholds.json``,
    ``metrics/mc_scoring.json`` (settings, box_ref, time, engine, images scored now / reused, saturation checks),
    ``scoring/<key>/`` (the raw parts), in simulation mode
    ``metrics/difficulty_vs_errors.json``; manifest: ``auto_model`` for the scored images and ``label_source='auto'``
    where it was ``none`` (human/oracle labels are never touched).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "ray":
        from alnb.acquisition.engines import _import_ray

        _import_ray()  # a clear message before any work when the extra is missing
    name, mdl, run_imgsz = _resolve_model(ws, model)
    if conf is None:  # the model's operating point, chosen on VAL1 (alnb.evaluation.step.evaluate)
        conf = operating_point(ws, name) if isinstance(model, str) and not model.endswith(".pt") else FIXED_CONF
    if iou is None:  # the same NMS as evaluation (alnb.evaluation.metrics.NMS_IOU)
        iou = NMS_IOU
    if exclude is None:
        exclude = _trained_on(ws, model)
    name = model_name or name
    man = ws.manifest()
    stems = ws.stems("POOL", manifest=man)
    held = set(ws.stems("VAL1", "GT1", *exclude, manifest=man))
    stems = [s for s in stems if s not in held]
    if not stems:
        raise ValueError(f"{ws.root}: no POOL images to score.")
    mi = man.set_index("stem")
    root = ws.dataset_root
    items = [(s, root / rel) for s, rel in zip(stems, mi.loc[stems, "image"])]
    kwargs = dict(T=T, conf=conf, iou=iou, imgsz=imgsz or run_imgsz, batch=batch, p=p, device=device,
                  cand_conf=cand_conf, seed=seed)
    scorer = MCScorer(mdl, **kwargs)
    key, desc = scoring_key(scorer)
    store = PartStore(ws.root, key, desc)
    done = store.done()
    todo = [(s, path) for s, path in items if done.get(s) != str(path)]
    if progress and len(todo) < len(items):
        print(f"[alnb] scoring: {len(items) - len(todo)} of {len(items)} POOL images already scored "
              f"({store.dir}); scoring the other {len(todo)}")
    seconds = 0.0
    if todo and engine == "local":
        with cpu_threads(threads, device=device, what=f"MC scoring in {ws.root}"):
            seconds = score_local(scorer, todo, store, part_size=part_size, progress=progress)
    elif todo:
        ray_kwargs = {**kwargs, "imgsz": scorer.imgsz, "p": scorer.settings["p"],
                      "device": "cuda" if scorer.device.type == "cuda" else "cpu"}
        seconds = score_ray(scorer, ray_kwargs, todo, store, address=address, workers=workers, part_size=part_size,
                            progress=progress)
    res = store.load(items, scorer.settings)
    timing = store.timing()  # scoring time of the whole pool (all runs that wrote its parts)
    dets, ref = acq.detection_uncertainty(res.detections, box_ref=box_ref, conf_op=conf)
    scores = acq.image_scores(dets, res.images, how=aggregation, k=top_k)
    th = choose_thresholds(scores, target_fraction, hard_share)
    if t_medium is not None:
        th["t_medium"] = float(t_medium)
    if t_hard is not None:
        th["t_hard"] = float(t_hard)
    th["t_hard"] = max(th["t_hard"], th["t_medium"])
    scores = assign_tiers(scores, th["t_medium"], th["t_hard"])
    truth = ws.mode == "simulation" and (mi.loc[stems, "label_state"] != "unlabelled").all()
    boxes = None
    if truth:
        errs, boxes = dif.match_errors(ws, dets, stems)
        scores = scores.merge(errs, on="stem", how="left")
    scores.insert(1, "model", name)

    write_autolabels(ws, name, dets, res.images)
    atomic_write_text(ws.root / "scores.csv", scores.to_csv(index=False))
    out = dets.copy()
    out.insert(0, "model", name)
    atomic_write_text(ws.root / "detections.csv", out.to_csv(index=False))
    if res.embeddings is not None:
        save_embeddings(ws, list(res.images["stem"]), res.embeddings)
    ws.save_json("thresholds", th)
    checks = dif.detection_summary(dets, scores)
    ws.save_json("mc_scoring", {**res.settings, "model": name, "n_images": len(stems), "engine": engine,
                                "n_scored": len(todo), "n_reused": len(stems) - len(todo), "scoring_key": key,
                                "seconds": round(timing["seconds"], 3),
                                "seconds_per_image": round(timing["seconds"] / max(timing["images"], 1), 4),
                                "seconds_this_run": round(seconds, 3),
                                "box_ref": ref, "aggregation": aggregation, "top_k": top_k, **checks})
    if truth:
        ws.save_json("difficulty_vs_errors", {**dif.difficulty_vs_errors(scores, boxes, th), **checks})
    keep_model_copy(ws, name)

    man = ws.manifest()
    sel = man["stem"].isin(stems)
    man.loc[sel, "auto_model"] = name
    man.loc[sel & (man["label_source"] == "none"), "label_source"] = "auto"
    ws.write_manifest(man)
    return scores


MODEL_FILES = ("scores.csv", "detections.csv", EMBEDDINGS_FILE, "metrics/thresholds.json", "metrics/mc_scoring.json",
               "metrics/difficulty_vs_errors.json")  # the scoring outputs kept per model in scores/<MODEL>/


def _trained_on(ws, model) -> list:
    """The selection tags a run was trained on (none for a .pt path or a model object)."""
    from alnb.model.train import load_run

    if not isinstance(model, str) or model.endswith(".pt") or not (ws.root / "runs" / model).is_dir():
        return []
    try:
        tags = load_run(ws, model).info.get("tags") or []
    except FileNotFoundError:
        return []
    return [t for t in tags if t not in ("GT1", "VAL1")]


def keep_model_copy(ws, name: str) -> Path:
    """Copy the latest scoring outputs (:data:`MODEL_FILES`) to ``scores/<name>/``, where round k's selection reads
    the scores of the model that chose it (:func:`alnb.core.scoretable.scores_file`) after later rounds rescored."""
    out = ws.root / SCORES_DIR / name
    for rel in MODEL_FILES:
        src = ws.root / rel
        dst = out / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dst)
        else:
            dst.unlink(missing_ok=True)
    return out


def pool_scorer(ws, model: str | None = None, *, device=None) -> tuple:
    """``(MCScorer, info)``: the model and settings that scored the POOL (``metrics/mc_scoring.json``), rebuilt, so
    images outside the pool (:func:`score_more`) are scored exactly like the pool was.  ``model`` must be the one
    that scored it (default: that one)."""
    from alnb.model import train

    info = ws.load_json("mc_scoring")
    name = info["model"] if model is None else model
    if name != info["model"]:
        raise ValueError(f"the POOL was scored with {info['model']!r}, not {name!r}: score it with {name!r} first.")
    net = train.load_model(train.load_run(ws, name).weights)
    scorer = MCScorer(net, T=info["T"], conf=info["conf"], iou=info["iou"], imgsz=info["imgsz"], batch=info["batch"],
                      p=info["p"], cand_conf=info["cand_conf"], seed=info["seed"], method=info["method"],
                      device=device)
    return scorer, info


def score_more(scorer: MCScorer, items, info: dict, thresholds: dict) -> tuple:
    """Score images outside the pool run against the pool's scale: ``(scores, autolabels)``.

    ``items`` are ``(stem, path)`` pairs; ``info`` is ``metrics/mc_scoring.json`` (operating point, ``box_ref``,
    aggregation) and ``thresholds`` ``metrics/thresholds.json``.  ``scores`` has one row per image like
    ``scores.csv`` (``score, tier, failed`` ...), ``autolabels`` is :func:`autolabel_texts`.  Nothing is written.
    Per-image determinism (:mod:`alnb.model.mc`) makes a POOL image scored here equal its ``scores.csv`` row.
    """
    res = scorer.score(items)
    dets, _ = acq.detection_uncertainty(res.detections, box_ref=info["box_ref"], conf_op=info["conf"])
    scores = acq.image_scores(dets, res.images, how=info.get("aggregation", "topk"), k=info.get("top_k", acq.TOP_K))
    scores = assign_tiers(scores, thresholds["t_medium"], thresholds["t_hard"])
    return scores, autolabel_texts(dets, res.images)


def save_embeddings(ws, stems, embeddings) -> Path:
    """Write ``embeddings.npz`` (``stems``, ``embeddings``) atomically."""
    p = ws.root / EMBEDDINGS_FILE
    fd, tmp = tempfile.mkstemp(dir=ws.root, suffix=".npz")
    os.close(fd)
    np.savez(tmp, stems=np.asarray(stems, dtype=str), embeddings=np.asarray(embeddings, dtype=np.float32))

    os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; the workspace's files are readable like any other
    os.replace(tmp, p)
    return p


def load_embeddings(ws, stems=None, model: str | None = None) -> np.ndarray | None:
    """Pooled features of ``stems`` (rows in that order) from ``embeddings.npz`` (``model``: that model's copy);
    None when the file is missing."""
    p = scores_file(ws, EMBEDDINGS_FILE, model)
    if not p.is_file():
        return None
    with np.load(p) as z:
        all_stems, emb = [str(s) for s in z["stems"]], z["embeddings"]
    if stems is None:
        return emb
    pos = {s: i for i, s in enumerate(all_stems)}
    missing = [s for s in stems if s not in pos]
    if missing:
        raise KeyError(f"{len(missing)} stem(s) have no embedding in {p}, e.g. {missing[:3]}: score the pool again.")
    return emb[[pos[s] for s in stems]]


def load_pool(ws, *, manifest=None, thresholds: tuple | None = None, model: str | None = None, exclude=(),
              costs=None):
    """The :class:`alnb.acquisition.strategies.Pool` of the workspace: eligible POOL rows of ``scores.csv`` (``model``: that
    model's scores) + their embeddings and detections; images carrying a tag of ``exclude`` are left out.

    With the scoring model's VAL1 evaluation on file (``metrics/eval_<MODEL>.json``) the pool also carries the class
    weights (:func:`alnb.acquisition.strategies.class_weights_from_eval`) and each image's predicted assisted labelling seconds
    ``pred_s`` under ``costs`` (:func:`alnb.evaluation.metrics.predicted_seconds` with the evaluation's ``cost_calibration``)."""
    costs = resolve_costs(ws, costs)[0]
    scores = eligible(load_scores(ws, model), ws.manifest() if manifest is None else manifest, exclude)
    emb = load_embeddings(ws, list(scores["stem"]), model)
    det_path = scores_file(ws, "detections.csv", model)
    dets = pd.read_csv(det_path, dtype={"stem": str}) if det_path.is_file() else None
    name = model or (str(scores["model"].iloc[0]) if "model" in scores and len(scores) else None)
    weights = None
    ev_path = ws.root / "metrics" / f"eval_{name}.json"
    if name and ev_path.is_file():
        ev = ws.load_json(f"eval_{name}")
        weights = acq.class_weights_from_eval(ev)
        if dets is not None and "cost_calibration" in ev:
            scores = scores.assign(pred_s=predicted_seconds(scores, dets, ev["cost_calibration"], costs))
    return acq.Pool(scores, emb, thresholds, dets, weights)


def retier(ws, t_medium: float, t_hard: float) -> pd.DataFrame:
    """Re-cut the tiers of ``scores.csv`` with new thresholds, save them and the thresholds; return the table."""
    scores = assign_tiers(load_scores(ws), t_medium, t_hard)
    atomic_write_text(ws.root / "scores.csv", scores.to_csv(index=False))
    try:
        th = ws.load_json("thresholds")
    except Exception:  # noqa: BLE001 - missing: start a new record
        th = {}
    th.update({"t_medium": float(t_medium), "t_hard": float(t_hard)})
    ws.save_json("thresholds", th)
    if "has_error" in scores:  # tier error rates change with the thresholds; box-level numbers do not
        try:
            old = ws.load_json("difficulty_vs_errors")
        except Exception:  # noqa: BLE001 - missing: nothing to keep
            old = {}
        ws.save_json("difficulty_vs_errors", {**old, **dif.difficulty_vs_errors(scores, None, th)})
    if "model" in scores and len(scores):
        keep_model_copy(ws, str(scores["model"].iloc[0]))
    return scores
