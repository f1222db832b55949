"""The scoring step at the pipeline edge: auto-label + MC-score the POOL with a trained model and write the files.

:func:`score_pool` streams the POOL through :class:`alnb.mc.MCScorer` (here or on Ray: :mod:`alnb.engines`) into
resumable part files, then turns the statistics into scores (:mod:`alnb.acquisition`), cuts tiers (:mod:`alnb.select`),
measures errors in simulation mode (:mod:`alnb.difficulty`) and writes every output of notebook 02 into the
workspace.  Nothing else in the package writes these files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alnb import acquisition as acq
from alnb import difficulty as dif
from alnb.engines import ENGINES, PART_SIZE, PartStore, score_local, score_ray, scoring_key
from alnb.mc import MCScorer
from alnb.select import assign_tiers, choose_thresholds, load_scores

EMBEDDINGS_FILE = "embeddings.npz"  # pooled backbone features of the scored POOL images (stems + matrix)


def write_autolabels(ws, model_name: str, detections: pd.DataFrame, images: pd.DataFrame) -> Path:
    """Write ``autolabels/<model_name>/<stem>.txt`` (YOLO ``cls cx cy w h conf``, normalised; empty = nothing found).

    One file per row of ``images``; lines in decreasing confidence (ties: detection order).
    """
    from alnb.workspace import atomic_write_text

    out = ws.root / "autolabels" / model_name
    out.mkdir(parents=True, exist_ok=True)
    det = detections[detections["above"].to_numpy(bool)] if len(detections) else detections
    text = {}
    if len(det):
        size = images.drop_duplicates("stem").set_index("stem")[["width", "height"]]
        wh = size.reindex(det["stem"]).to_numpy(np.float64)
        b = det[["x0", "y0", "x1", "y1"]].to_numpy(np.float64)
        cx, cy = (b[:, 0] + b[:, 2]) / 2 / wh[:, 0], (b[:, 1] + b[:, 3]) / 2 / wh[:, 1]
        w, h = (b[:, 2] - b[:, 0]) / wh[:, 0], (b[:, 3] - b[:, 1]) / wh[:, 1]
        conf, cls, stems = det["conf"].to_numpy(np.float64), det["cls"].to_numpy(), det["stem"].to_numpy()
        order = np.lexsort((-conf, pd.factorize(stems)[0]))  # image by image, highest confidence first (stable)
        for i in order:
            text.setdefault(stems[i], []).append(
                f"{int(cls[i])} {cx[i]:.6f} {cy[i]:.6f} {w[i]:.6f} {h[i]:.6f} {conf[i]:.5f}")
    for stem in images["stem"]:
        lines = text.get(stem, ())
        atomic_write_text(out / f"{stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
    return out


def _resolve_model(ws, model):
    """(name, model object, imgsz or None) for a run name, a weights path or a model object."""
    if isinstance(model, str) and not model.endswith((".pt", ".yaml")):
        try:
            from alnb import train
        except ImportError as e:  # pragma: no cover - train module missing
            raise ImportError("alnb.train is needed to load a run by name; pass weights= instead.") from e
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


def score_pool(ws, model="CAL1", T: int = 20, conf: float | None = None, iou: float | None = None, *,
               imgsz: int | None = None, batch: int = 8, p: float | None = None, cand_conf: float | None = None,
               seed: int = 0, target_fraction: float = 0.6, hard_share: float = 0.4, t_medium: float | None = None,
               t_hard: float | None = None, model_name: str | None = None, progress: bool = True, device=None,
               box_ref: float | None = None, aggregation: str = "topk", top_k: int = acq.TOP_K,
               engine: str = "local", address: str | None = None, workers: int | None = None,
               part_size: int = PART_SIZE, threads=None) -> pd.DataFrame:
    """Auto-label and MC-score every POOL image of the workspace; write all outputs; return the score table.

    Scoring is streamed and resumable: the raw results go to ``scoring/<key>/part-*.npz`` every ``part_size``
    images, and a rerun with the same model and settings scores only the images that have no part yet (after
    Ctrl-C, a killed job or a lost worker), then gives the same outputs as an uninterrupted run (:mod:`alnb.engines`).
    Pool-wide quantities (``box_ref``, thresholds, tiers, the ranking) are computed from all parts at the end.

    Parameters
    ----------
    ws : Workspace
    model : str | path | YOLO
        A run name in the workspace (``"CAL1"``, loaded with :func:`alnb.train.load_run`), a ``.pt`` path or a model.
    T, conf, iou, imgsz, batch, p, cand_conf, seed
        See :func:`alnb.mc.mc_predict` (``imgsz`` defaults to the run's training size).  ``conf=None`` (default)
        uses the model's operating point chosen on VAL1 (:func:`alnb.evaluation.operating_point`; 0.25 for a bare .pt /
        model); ``iou=None`` the evaluation's NMS IoU (:data:`alnb.metrics.NMS_IOU`).
    target_fraction, hard_share
        Default thresholds (:func:`alnb.select.choose_thresholds`); ``t_medium``/``t_hard`` override them.
    model_name : str, optional
        Name under which auto-labels are recorded (default: the run name / file stem).
    box_ref, aggregation, top_k
        Scale of localisation uncertainty (None: the median box spread of this pool) and the image aggregation
        (:func:`alnb.acquisition.image_scores`).
    engine : {"local", "ray"}
        Where the images are scored (:mod:`alnb.engines`): this process, or Ray Data actors (one model replica per
        worker; optional extra ``pip install -e ".[ray]"``).  Both give the same numbers, bit for bit on CPU.
    address, workers
        Ray only: the cluster (None: a running local instance or a new one; ``"auto"``: an existing cluster) and
        the number of actors (default: one per CPU, or per GPU when ``device`` is a GPU).
    part_size : int
        Images per part file (and per Ray task).
    threads : int, optional
        CPU threads of the local engine (:mod:`alnb.cpu`; default the policy's: every usable core, never shared
        with another alnb job).  MC scores do not depend on it (:mod:`alnb.mc`), only the time does.

    Writes
    ------
    ``autolabels/<MODEL>/<stem>.txt``, ``scores.csv`` (one row per POOL image), ``detections.csv`` (per candidate
    detection, with ``hybrid``), ``embeddings.npz`` (pooled features), ``metrics/thresholds.json``,
    ``metrics/mc_scoring.json`` (settings, box_ref, time, engine, images scored now / reused, saturation checks),
    ``scoring/<key>/`` (the raw parts), in simulation mode
    ``metrics/difficulty_vs_errors.json``; manifest: ``auto_model`` for the scored images and ``label_source='auto'``
    where it was ``none`` (human/oracle labels are never touched).
    """
    from alnb.workspace import atomic_write_text

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "ray":
        from alnb.engines import _import_ray

        _import_ray()  # a clear message before any work when the extra is missing
    name, mdl, run_imgsz = _resolve_model(ws, model)
    if conf is None:  # the model's operating point, chosen on VAL1 (alnb.evaluation.evaluate)
        from alnb.evaluation import operating_point
        from alnb.metrics import FIXED_CONF

        conf = operating_point(ws, name) if isinstance(model, str) and not model.endswith(".pt") else FIXED_CONF
    if iou is None:  # the same NMS as evaluation (alnb.metrics.NMS_IOU)
        from alnb.metrics import NMS_IOU

        iou = NMS_IOU
    name = model_name or name
    man = ws.manifest()
    stems = ws.stems("POOL", manifest=man)
    held = set(ws.stems("VAL1", "GT1", manifest=man))
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
        from alnb.cpu import cpu_threads

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

    man = ws.manifest()
    sel = man["stem"].isin(stems)
    man.loc[sel, "auto_model"] = name
    man.loc[sel & (man["label_source"] == "none"), "label_source"] = "auto"
    ws.write_manifest(man)
    return scores


def save_embeddings(ws, stems, embeddings) -> Path:
    """Write ``embeddings.npz`` (``stems``, ``embeddings``) atomically."""
    import os
    import tempfile

    p = ws.root / EMBEDDINGS_FILE
    fd, tmp = tempfile.mkstemp(dir=ws.root, suffix=".npz")
    os.close(fd)
    np.savez(tmp, stems=np.asarray(stems, dtype=str), embeddings=np.asarray(embeddings, dtype=np.float32))
    from alnb.workspace import FILE_MODE

    os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; the workspace's files are readable like any other
    os.replace(tmp, p)
    return p


def load_embeddings(ws, stems=None) -> np.ndarray | None:
    """Pooled features of ``stems`` (rows in that order) from ``embeddings.npz``; None when the file is missing."""
    p = ws.root / EMBEDDINGS_FILE
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


def load_pool(ws, *, manifest=None, thresholds: tuple | None = None):
    """The :class:`alnb.acquisition.Pool` of the workspace: eligible POOL rows of ``scores.csv`` + their embeddings."""
    from alnb.select import eligible

    scores = eligible(load_scores(ws), ws.manifest() if manifest is None else manifest)
    emb = load_embeddings(ws, list(scores["stem"]))
    return acq.Pool(scores, emb, thresholds)


def retier(ws, t_medium: float, t_hard: float) -> pd.DataFrame:
    """Re-cut the tiers of ``scores.csv`` with new thresholds, save them and the thresholds; return the table."""
    from alnb.workspace import atomic_write_text

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
    return scores
