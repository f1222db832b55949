"""``/predict``'s work: a Label Studio task -> the served model's prediction (:class:`Predictor`).

A task whose image is in the workspace's score table is answered from its files (auto-labels, score, tier); any
other image (a task added in Label Studio later, a VAL1/GT1 image, a local file, an upload) is scored on the fly with
the same model and settings.  The regions and the task score come from :mod:`alnb.labels.formats.labelstudio`
(ascending = hardest first; with a review plan of the served model, its review queue first, its accepted images last).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import traceback
import urllib.parse
from collections import OrderedDict
from pathlib import Path

import numpy as np

from alnb.apps.serve.client import LabelStudioAPI
from alnb.apps.serve.common import CACHE_SIZE, TOKEN_ENV, URL_ENV, RequestError, TaskError
from alnb.apps.serve.snapshot import Snapshot
from alnb.core.workspace import WorkspaceError
from alnb.labels.formats import labelstudio as lsf
from alnb.labels.formats.common import read_autolabels
from alnb.core.cpu import cpu_threads


def _category(tier: str, failed: bool) -> str:
    return "failed" if failed else tier  # alnb.loop.selection.categorise: failed overrides the score's tier


class Predictor:
    """Predictions for one backend: the labelling configs it was sent (parsed once), the on-the-fly scorer and its
    cache.  ``backend``: what it reads of the server -- ``ws``, ``document_root``, ``config_path``,
    ``label_studio_url()`` and ``log``."""

    def __init__(self, backend):
        self.backend = backend
        self._lock = threading.Lock()
        self._infer = threading.Lock()
        self._scorer = None  # (model version, MCScorer, info), loaded on the first image scored on the fly
        self._cache: OrderedDict = OrderedDict()
        self._configs: dict = {}

    def config(self, xml) -> dict:
        """The parsed labelling config (cached); 400 when it lacks a RectangleLabels or a workspace class."""
        names = self.backend.ws.names
        if xml is None:
            return {"from_name": lsf.LS_FROM_NAME, "to_name": lsf.LS_TO_NAME, "image_key": "image",
                    "labels": list(names), "tier": False, "difficulty": False}
        if not isinstance(xml, str):
            raise RequestError(400, "'label_config' / 'schema' must be the labelling config XML (a string).")
        if xml not in self._configs:
            try:
                cfg = lsf.parse_config(xml)
            except ValueError as e:
                raise RequestError(400, str(e)) from None
            missing = [n for n in names if n not in cfg["labels"]]
            if missing:
                raise RequestError(400, f"the project's RectangleLabels {cfg['from_name']!r} lack the workspace "
                                        f"class(es) {missing}: its predictions could not be shown. Use the config "
                                        f"{self.backend.config_path} (Settings > Labeling Interface > Code).")
            if len(self._configs) > 32:
                self._configs.clear()
            self._configs[xml] = cfg
        return self._configs[xml]

    def predict(self, snap: Snapshot, cfg: dict, tasks: list) -> list:
        """One result per task: its prediction, or ``{"task", "error"}`` (one task never spoils the batch)."""
        results = []
        for i, task in enumerate(tasks):
            tid = task.get("id", f"#{i + 1}") if isinstance(task, dict) else f"#{i + 1}"
            try:
                results.append(self.predict_task(snap, cfg, task))
            except TaskError as e:
                results.append({"task": tid, "error": str(e)})
            except Exception as e:  # noqa: BLE001 - one task never spoils the batch
                self.backend.log(f"[alnb serve] task {tid}: {traceback.format_exc()}")
                results.append({"task": tid, "error": f"unexpected error ({type(e).__name__}: {e})"})
        return results

    def predict_task(self, snap: Snapshot, cfg: dict, task) -> dict:
        """One task's prediction (``POST /predict``, docs/design/serve.md); raises :class:`TaskError` naming what is
        wrong."""
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise TaskError("not a Label Studio task: it has no 'data' object.")
        d = task["data"]
        ref = d.get(cfg["image_key"])
        stem = d.get("alnb_stem") if d.get("alnb_stem") in snap.images else (
            snap.ctx.stem_of(ref) if isinstance(ref, str) and ref else None)
        auto = snap.autolabels / f"{stem}.txt" if stem else None
        if stem in snap.scores and auto.is_file():
            boxes = read_autolabels(auto, len(snap.ctx.names))
            score, tier, failed = snap.scores[stem]
            width, height = snap.ctx.size[stem]
        else:
            boxes, score, tier, failed, width, height = self.on_the_fly(snap, stem, ref, cfg["image_key"])
            stem = stem or Path(urllib.parse.unquote(str(ref)).split("?d=")[-1]).stem
        result = lsf.regions(stem, boxes, snap.ctx.names, width, height, cfg["from_name"], cfg["to_name"])
        result += lsf.difficulty_results(_category(tier, failed), score, cfg["to_name"], tier_choice=cfg["tier"],
                                         number=cfg["difficulty"])
        pred = {"model_version": snap.version, "result": result}
        ls_score = lsf.task_score(score, failed)
        if snap.plan:  # a review plan: its review queue first, its accepted images last
            ls_score = lsf.review_task_score(*snap.plan[stem]) if stem in snap.plan else lsf.review_task_score(
                "other", base=ls_score)
        if ls_score is not None:
            pred["score"] = ls_score
        return pred

    # ---- images the score table does not cover
    def image_path(self, snap: Snapshot, stem, ref, key: str) -> tuple:
        """``(local path, temporary folder or None)`` of a task's image."""
        if stem is not None:
            return self.backend.ws.dataset_root / snap.images[stem], None
        if not isinstance(ref, str) or not ref:
            raise TaskError(f"the task has no image: its data lacks {key!r} (the $-field of the labelling config's "
                            f"Image).")
        u = urllib.parse.urlsplit(ref)
        q = urllib.parse.parse_qs(u.query)
        if u.path.rstrip("/").endswith("/data/local-files") and q.get("d"):
            return self._local_file(ref, q["d"][0]), None
        ls = self.backend.label_studio_url()
        same_host = ls and u.netloc and u.netloc == urllib.parse.urlsplit(ls).netloc
        if ref.startswith("/data/") or same_host:
            return self._download(ref, u, ls)
        raise TaskError(f"cannot read image {ref!r}: alnb serve reads the workspace's dataset images, Label "
                        f"Studio's local files (/data/local-files/?d=...) and uploads (/data/upload/...).")

    def _local_file(self, ref: str, d: str) -> Path:
        """Label Studio's local file ``/data/local-files/?d=<d>``, inside the document root."""
        root = self.backend.document_root
        p = (root / d).resolve()
        if not p.is_relative_to(root):
            raise TaskError(f"image {ref!r} points outside the local-files document root {root}.")
        if not p.is_file():
            raise TaskError(f"image {ref!r}: {p} does not exist. Start alnb serve with --document-root = Label "
                            f"Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT.")
        return p

    @staticmethod
    def _download(ref: str, u, ls) -> tuple:
        """An image Label Studio serves (an upload), fetched into a temporary folder: ``(path, folder)``."""
        if not os.environ.get(TOKEN_ENV) or not ls:
            raise TaskError(f"image {ref!r} is served by Label Studio: start alnb serve with {TOKEN_ENV} (and "
                            f"{URL_ENV}) so it can download it.")
        try:
            data = LabelStudioAPI(ls, os.environ.get(TOKEN_ENV), timeout=60).download(ref)
        except WorkspaceError as e:
            raise TaskError(f"image {ref!r}: {e}") from None
        tmp = Path(tempfile.mkdtemp(prefix="alnb-serve-"))
        name = Path(urllib.parse.unquote(u.path)).name or "image"
        (tmp / name).write_bytes(data)
        return tmp / name, tmp

    def on_the_fly(self, snap: Snapshot, stem, ref, key: str) -> tuple:
        """Score one image with the served model: ``(boxes (n, 6), score, tier, failed, width, height)``."""
        ck = (snap.version, stem, ref)
        with self._lock:
            if ck in self._cache:
                self._cache.move_to_end(ck)
                return self._cache[ck]
        path, tmp = self.image_path(snap, stem, ref, key)
        try:
            scores, lines = self._score(snap, stem, ref, path)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        row = scores.iloc[0]
        boxes = np.asarray([[float(v) for v in ln.split()] for ln in lines.get(row["stem"], [])],
                           np.float64).reshape(-1, 6)
        out = (boxes, float(row["score"]), str(row["tier"]), bool(row["failed"]), int(row["width"]),
               int(row["height"]))
        with self._lock:
            self._cache[ck] = out
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return out

    def _score(self, snap: Snapshot, stem, ref, path: Path) -> tuple:
        """:func:`alnb.acquisition.scoring.score_more` of one image: ``(scores, auto-label lines)``."""
        # heavy, imported where used (not at module import): alnb.acquisition.scoring (torch)
        from alnb.acquisition import scoring

        # the policy's threads (alnb.core.cpu), without claiming core slots: a request must not wait for the
        # background training that holds them
        with self._infer, cpu_threads(what="alnb serve /predict", claim=False, log=None):
            if self._scorer is None or self._scorer[0] != snap.version:
                scorer, info = scoring.pool_scorer(self.backend.ws, snap.model)
                self._scorer = (snap.version, scorer, info)
            _, scorer, info = self._scorer
            name = stem or path.stem
            try:
                return scoring.score_more(scorer, [(name, path)], info, snap.thresholds)
            except Exception as e:  # noqa: BLE001 - an unreadable image is this task's problem only
                raise TaskError(f"image {ref!r} cannot be read as an image ({type(e).__name__}: {e}).") from None
